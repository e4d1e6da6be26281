//! Next-object prefetch: a player that says what it will ask for next (CMCD `nor`, with `nrr` for
//! a byte range) finds it in the cache when it asks.
//!
//! The telemetry task ([`crate::qoe::run`]) reads each CMCD-carrying request off the serving path
//! and offers its next objects here ([`Prefetch::offer`]). Each is resolved against the request's
//! path and normalised (`Cmcd::next_objects`), so it names what the cache names, on the same site
//! (an absolute or network-path `nor` is dropped: a player does not get to point an edge
//! elsewhere). A next object is fetched through this edge's own proxy port, so every caching rule
//! applies to it as to a viewer's request (the shield, coalescing with other fills, TTL classes),
//! unless:
//! - it is fresh in memory already (`cached`);
//! - a fill of it, or a prefetch of it, is in flight (`inflight`; a viewer's request that comes
//!   while a prefetch is starting waits for its answer to begin, counted as `joined`:
//!   [`Starting`]);
//! - a hard purge removed it within [`PURGE_QUIET`] (`purged`): the next viewer's request fills
//!   it again, the edge does not on its own;
//! - the budget is spent: prefetches started per second or in flight at once
//!   (`[streaming] prefetch_rate`, `prefetch_inflight`; `refused`).
//!
//! Beyond what a player names (hls.js names nothing for audio segments), the media playlist
//! says what comes next: the media playlists a session asked for (CMCD `ot=m`) are remembered,
//! a few per session, and a segment request finds its successors in the one of them that lists
//! it, read from the memory cache (VOD playlists only: a live playlist's next segment does not
//! exist yet; LL-HLS parts are named by `nor`). Up to `[streaming] prefetch_depth` objects (2)
//! are offered per request: a player asks for its next segment the moment the last one
//! arrived, before the telemetry task has read that request, so only the object after next is
//! sure to be fetched ahead of it. While a player starts up or rebuffers (CMCD `su` or `bs`)
//! it asks for segment after segment as fast as hits arrive, and a fill through the shield
//! loses that race one or two ahead; so such a request offers twice the depth (at most
//! [`DEPTH_MAX`]).
//!
//! The same request URL naming the same next objects again within a second (many viewers of
//! one title at one moment) is passed over without being judged again.
//!
//! A prefetch request carries no CMCD, so it never offers a prefetch of its own: prefetch never
//! recurses, and the load it adds is bounded by the budget whatever players send. It carries
//! [`HEADER`], and an answer other than 2xx to it is not stored (a live segment asked for a moment
//! before it exists must not be cached as a 404).
//!
//! `eddy_prefetch_total{what}` counts every offer by what became of it: `fetched`, `failed`,
//! `cached`, `inflight`, `purged`, `refused`; `eddy_prefetch_inflight` is the budget in use.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_config::PrefetchBudget;
use eddy_streaming::cmcd::{ByteRange, Cmcd, ObjectType};
use eddy_streaming::hls::media::MediaPlaylist;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::proxy::{EdgeState, Purge};
use crate::storage::primary_of;

/// The request field that marks an edge's own prefetch.
pub const HEADER: &str = "eddy-prefetch";

/// How long after a hard purge its objects are not prefetched.
pub const PURGE_QUIET: Duration = Duration::from_secs(30);

/// Hard purges remembered, at most; an older one is forgotten early (then its objects may be
/// prefetched again before [`PURGE_QUIET`]).
const PURGES_KEPT: usize = 1024;

/// Sessions whose media playlists are remembered; past it the table starts afresh.
const SESSIONS_KEPT: usize = 10_000;
/// Media playlists remembered per session, newest last.
const PLAYLISTS_PER_SESSION: usize = 4;
/// A media playlist larger than this is not read for the next segment.
const PLAYLIST_MAX: usize = 1 << 20;
/// Media playlists whose segment lists are kept, at most, and the bytes they may hold; past
/// either the memory starts afresh.
const LISTINGS_KEPT: usize = 256;
const LISTINGS_BYTES: usize = 16 << 20;

/// An offer repeated within this long (the same request URL naming the same next objects: many
/// viewers of one live title at the same moment) is passed over without judging it again.
const REPEAT: Duration = Duration::from_secs(1);
/// Offers remembered for [`REPEAT`]; past it the memory starts afresh.
const REPEATS_KEPT: usize = 4096;

/// Longest one prefetch may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Most objects offered ahead of one request, a starting player's included.
pub const DEPTH_MAX: usize = 8;

/// Hard purges of the last [`PURGE_QUIET`], newest last.
#[derive(Debug, Default)]
pub struct RecentPurges(Mutex<VecDeque<(Instant, Purge)>>);

impl RecentPurges {
    /// Remember a hard purge.
    pub fn record(&self, purge: &Purge) {
        let mut q = self.0.lock();
        if q.len() >= PURGES_KEPT {
            q.pop_front();
        }
        q.push_back((Instant::now(), purge.clone()));
    }

    /// Whether a hard purge of the last [`PURGE_QUIET`] may have removed `url` (`host/path`). A
    /// surrogate-key purge may have removed anything: the object is gone, and its keys with it.
    pub fn touched(&self, url: &str) -> bool {
        let mut q = self.0.lock();
        while q.front().is_some_and(|(at, _)| at.elapsed() > PURGE_QUIET) {
            q.pop_front();
        }
        q.iter().any(|(_, p)| match p {
            Purge::Url(u) => u == url,
            Purge::Prefix(prefix) => url.starts_with(prefix.as_str()),
            Purge::Key(_) | Purge::All => true,
        })
    }
}

/// Prefetches started whose answer has not begun yet, by URL (`host/path`), each with a flag
/// that turns true when the answer's head arrived (its fill exists then, so a viewer's request
/// streams it), and closes when the prefetch ends.
///
/// A player asks for a segment the moment the last one arrived, so its request can reach the
/// edge after the prefetch of that segment started but before the prefetch's own request took
/// the fill: it would then fetch the segment itself, and the prefetch would join it. A viewer's
/// request for a URL found here instead waits (at most the coalescing timeout) for the answer to
/// begin, and is then served from the fill as a hit.
#[derive(Debug, Default)]
pub struct Starting(Mutex<HashMap<String, tokio::sync::watch::Receiver<bool>>>);

impl Starting {
    /// Register a prefetch of `url`; `None` if one is registered already. The sender says when
    /// the head arrived; dropping it ends the wait of whoever joined.
    fn begin(&self, url: &str) -> Option<tokio::sync::watch::Sender<bool>> {
        let mut m = self.0.lock();
        if m.contains_key(url) {
            return None;
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        m.insert(url.to_string(), rx);
        Some(tx)
    }

    fn end(&self, url: &str) {
        self.0.lock().remove(url);
    }

    fn contains(&self, url: &str) -> bool {
        self.0.lock().contains_key(url)
    }

    /// If a prefetch of `url` is starting, wait until its answer begins, it ends, or `limit`
    /// passes; whether there was one to wait for.
    pub async fn join(&self, url: &str, limit: Duration) -> bool {
        let Some(mut rx) = self.0.lock().get(url).cloned() else {
            return false;
        };
        // Err: the prefetch ended (its sender dropped); either way the request goes on.
        let _ = tokio::time::timeout(limit, rx.wait_for(|head| *head)).await;
        true
    }
}

/// What became of one offered object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Offer {
    /// A prefetch started.
    Started,
    /// Fresh in memory already.
    Cached,
    /// A fill or a prefetch of it is in flight.
    Inflight,
    /// A hard purge removed it a moment ago.
    Purged,
    /// Over the budget.
    Refused,
}

impl Offer {
    fn label(self) -> &'static str {
        match self {
            Offer::Started => "started",
            Offer::Cached => "cached",
            Offer::Inflight => "inflight",
            Offer::Purged => "purged",
            Offer::Refused => "refused",
        }
    }
}

/// A media playlist read for its segments: the copy read (held, so its address names it) and
/// its segment paths (`None`: not a VOD media playlist).
type Listing = (bytes::Bytes, Option<Arc<Vec<String>>>);

/// One edge's prefetcher.
pub struct Prefetch {
    state: Arc<EdgeState>,
    slots: Arc<Semaphore>,
    rate: governor::DefaultDirectRateLimiter,
    /// Per session (`sid`), the media playlists it asked for (`host/path`).
    playlists: Mutex<HashMap<String, VecDeque<String>>>,
    /// Offers judged lately, by a hash of the request URL and the next objects it named.
    recent: Mutex<HashMap<u64, Instant>>,
    /// Media playlists read for their segments, by `host/path`: the copy read (held, so its
    /// address names it) and its segment paths (`None`: not a VOD media playlist).
    listings: Mutex<HashMap<String, Listing>>,
    /// Objects offered ahead of a request, at most (`[streaming] prefetch_depth`).
    depth: usize,
    /// `eddy_prefetch_total{what}` for each outcome judged here, looked up once.
    counted: [prometheus_client::metrics::counter::Counter; 5],
}

impl Prefetch {
    /// A prefetcher over `state` within `budget`.
    pub fn new(state: Arc<EdgeState>, budget: PrefetchBudget) -> Prefetch {
        let per_second = std::num::NonZeroU32::new(budget.per_second).unwrap_or(nonzero_one());
        Prefetch {
            slots: Arc::new(Semaphore::new(budget.inflight as usize)),
            rate: governor::RateLimiter::direct(governor::Quota::per_second(per_second)),
            playlists: Mutex::new(HashMap::new()),
            recent: Mutex::new(HashMap::new()),
            listings: Mutex::new(HashMap::new()),
            depth: budget.depth.max(1) as usize,
            counted: [
                Offer::Started,
                Offer::Cached,
                Offer::Inflight,
                Offer::Purged,
                Offer::Refused,
            ]
            .map(|o| state.metrics.prefetch(o.label())),
            state,
        }
    }

    /// Offer the next objects of a request of `url` (`host/path`) with telemetry `cmcd`: those
    /// it names, then the ones after it in its session's VOD media playlist, up to the depth.
    pub fn offer(&self, url: &str, cmcd: &Cmcd) {
        let (host, path) = url.find('/').map_or((url, "/"), |i| (&url[..i], &url[i..]));
        let opts = self.state.config.path_options(host);
        let mut next = if !cmcd.next.is_empty() {
            if self.repeated(url, cmcd) {
                return;
            }
            cmcd.next_objects(path, opts)
        } else {
            match cmcd.ot {
                Some(ObjectType::Manifest) => {
                    if let (Some(sid), true) = (&cmcd.sid, path.ends_with(".m3u8")) {
                        self.remember_playlist(sid, url);
                    }
                    return;
                }
                Some(ObjectType::Audio | ObjectType::Video | ObjectType::Muxed) | None => {
                    Vec::new()
                }
                Some(_) => return,
            }
        };
        // A player starting up or rebuffering pulls back to back: look further ahead.
        let depth = if cmcd.su || cmcd.bs {
            (self.depth * 2).min(DEPTH_MAX)
        } else {
            self.depth
        };
        if next.len() < depth
            && let Some(sid) = &cmcd.sid
        {
            for n in self.ahead_in_playlist(sid, host, path, depth) {
                if next.len() >= depth {
                    break;
                }
                if !next.iter().any(|(u, r)| r.is_none() && *u == n) {
                    next.push((n, None));
                }
            }
        }
        for (next, range) in next {
            let what = self.consider(format!("{host}{next}"), range);
            if what != Offer::Started {
                self.counted[what as usize].inc();
            }
        }
    }

    /// Whether the same request URL named the same next objects within [`REPEAT`].
    fn repeated(&self, url: &str, cmcd: &Cmcd) -> bool {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        url.hash(&mut h);
        for n in &cmcd.next {
            n.url.hash(&mut h);
            n.range.hash(&mut h);
        }
        let sig = h.finish();
        let now = Instant::now();
        let mut recent = self.recent.lock();
        if recent
            .get(&sig)
            .is_some_and(|at| now.saturating_duration_since(*at) < REPEAT)
        {
            return true;
        }
        if recent.len() >= REPEATS_KEPT {
            recent.retain(|_, at| now.saturating_duration_since(*at) < REPEAT);
            if recent.len() >= REPEATS_KEPT {
                recent.clear();
            }
        }
        recent.insert(sig, now);
        false
    }

    fn remember_playlist(&self, sid: &str, url: &str) {
        let mut all = self.playlists.lock();
        if all.len() >= SESSIONS_KEPT && !all.contains_key(sid) {
            all.clear();
        }
        let mine = all.entry(sid.to_string()).or_default();
        if mine.iter().any(|u| u == url) {
            return;
        }
        if mine.len() >= PLAYLISTS_PER_SESSION {
            mine.pop_front();
        }
        mine.push_back(url.to_string());
    }

    /// The segments after `path` (up to `depth`) in a VOD media playlist session `sid` asked
    /// for, as it sits in the memory cache.
    fn ahead_in_playlist(&self, sid: &str, host: &str, path: &str, depth: usize) -> Vec<String> {
        let Some(playlists) = self
            .playlists
            .lock()
            .get(sid)
            .map(|p| p.iter().cloned().collect::<Vec<String>>())
        else {
            return Vec::new();
        };
        playlists
            .iter()
            .rev()
            .find_map(|pl| {
                let (pl_host, _) = pl.split_at(pl.find('/')?);
                if pl_host != host {
                    return None;
                }
                let uris = self.listing(pl)?;
                let at = uris.iter().position(|u| u == path)?;
                Some(uris.iter().skip(at + 1).take(depth).cloned().collect())
            })
            .unwrap_or_default()
    }

    /// The segment paths of the VOD media playlist `pl` (`host/path`) as it sits fresh in the
    /// memory cache, read once per stored copy.
    fn listing(&self, pl: &str) -> Option<Arc<Vec<String>>> {
        let found = self.state.storage.cache().peek_memory(&primary_of(pl))?;
        let body = &found.object.body;
        if found.stale || body.len() > PLAYLIST_MAX {
            return None;
        }
        if let Some((held, uris)) = self.listings.lock().get(pl) {
            // The held copy keeps its bytes alive, so the same address is the same copy.
            if held.as_ptr() == body.as_ptr() && held.len() == body.len() {
                return uris.clone();
            }
        }
        let (host, pl_path) = pl.split_at(pl.find('/')?);
        let opts = self.state.config.path_options(host);
        let uris = MediaPlaylist::parse(body)
            .ok()
            .filter(|list| list.ended)
            .map(|list| {
                Arc::new(
                    list.segments
                        .iter()
                        .filter_map(|s| eddy_streaming::cmcd::resolve(pl_path, &s.uri, opts))
                        .collect::<Vec<String>>(),
                )
            });
        let mut listings = self.listings.lock();
        let held: usize = listings.values().map(|(b, _)| b.len()).sum();
        if listings.len() >= LISTINGS_KEPT || held + body.len() > LISTINGS_BYTES {
            listings.clear();
        }
        listings.insert(pl.to_string(), (body.clone(), uris.clone()));
        uris
    }

    /// Judge one next object, and start its prefetch when it passes.
    pub fn consider(&self, url: String, range: Option<ByteRange>) -> Offer {
        let st = &self.state;
        let key = primary_of(&url);
        let cache = st.storage.cache();
        if cache.peek_memory(&key).is_some_and(|f| !f.stale) && range.is_none() {
            return Offer::Cached;
        }
        if st.storage.filling(&key) || st.prefetching.contains(&url) {
            return Offer::Inflight;
        }
        if st.recent_purges.touched(&url) {
            return Offer::Purged;
        }
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return Offer::Refused;
        };
        if self.rate.check().is_err() {
            return Offer::Refused;
        }
        let Some(head) = st.prefetching.begin(&url) else {
            return Offer::Inflight;
        };
        let state = self.state.clone();
        state.metrics.prefetch_inflight.inc();
        tokio::spawn(async move {
            let range = range.map(|(a, b)| match b {
                Some(b) => format!("bytes={a}-{b}"),
                None => format!("bytes={a}-"),
            });
            let mut headers = vec![(HEADER, "1")];
            if let Some(r) = &range {
                headers.push(("range", r.as_str()));
            }
            let what = match self_get_notify(&state, &url, &headers, Some(head)).await {
                Ok((s, _)) if s.is_success() => "fetched",
                Ok((s, _)) => {
                    tracing::debug!(%url, status = s.as_u16(), "prefetch got no object");
                    "failed"
                }
                Err(e) => {
                    tracing::debug!(%url, error = %e, "prefetch failed");
                    "failed"
                }
            };
            state.metrics.prefetch(what).inc();
            state.metrics.prefetch_inflight.dec();
            state.prefetching.end(&url);
            drop(slot);
        });
        Offer::Started
    }
}

fn nonzero_one() -> std::num::NonZeroU32 {
    std::num::NonZeroU32::MIN
}

/// `GET url` (`host/path`) through this edge's own proxy port, so the object is cached by the
/// normal rules; the status and the body's length once the whole body has arrived.
pub async fn self_get(
    state: &EdgeState,
    url: &str,
    headers: &[(&'static str, &str)],
) -> Result<(http::StatusCode, u64), String> {
    self_get_notify(state, url, headers, None).await
}

/// [`self_get`], setting `head` to true when the answer's head arrived.
async fn self_get_notify(
    state: &EdgeState,
    url: &str,
    headers: &[(&'static str, &str)],
    head: Option<tokio::sync::watch::Sender<bool>>,
) -> Result<(http::StatusCode, u64), String> {
    let (host, path) = url.find('/').map_or((url, "/"), |i| (&url[..i], &url[i..]));
    let mut addr = state.config.edge.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    crate::client::get(addr, None, host, path, headers, TIMEOUT, head).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_hard_purges_cover_what_they_may_have_removed() {
        let r = RecentPurges::default();
        assert!(!r.touched("v.test/a/seg_1.m4s"));
        r.record(&Purge::Url("v.test/a/seg_1.m4s".into()));
        assert!(r.touched("v.test/a/seg_1.m4s"));
        assert!(!r.touched("v.test/a/seg_2.m4s"));
        r.record(&Purge::Prefix("v.test/b/".into()));
        assert!(r.touched("v.test/b/seg_9.m4s"));
        assert!(!r.touched("v.test/c/seg_9.m4s"));
        r.record(&Purge::Key("show".into()));
        assert!(r.touched("v.test/c/seg_9.m4s"));
        // Bounded: the oldest go first.
        let r = RecentPurges::default();
        for i in 0..PURGES_KEPT + 5 {
            r.record(&Purge::Url(format!("v.test/{i}")));
        }
        assert!(!r.touched("v.test/0"));
        assert!(r.touched(&format!("v.test/{}", PURGES_KEPT + 4)));
    }
}
