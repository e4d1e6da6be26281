//! LL-HLS blocking playlist reload at the edge, woken by `segment.published` events.
//!
//! A player asks for `live.m3u8?_HLS_msn=M&_HLS_part=P` before part P of segment M exists. The
//! edge holds that request until the origin's packager announces the part on the bus
//! (`dev.eddy.segment.published.v1`, topic [`eddy_control::SEGMENT_TOPIC`]), then lets every
//! held request for it go at once: they share one cache key (the path plus the directives, CMCD
//! dropped), so the cache lock makes one origin fetch and the rest are served from it.
//!
//! [`Streams`] is what the edge knows of each live stream: the newest part announced, which only
//! moves forward, in a `watch` the held requests wait on. It is bounded ([`MAX_STREAMS`], the
//! least recently announced stream goes first), and knowledge goes stale: a stream with no event
//! for [`STALE_AFTER`] is treated as unknown.
//!
//! What a request meets ([`Streams::judge`]):
//! - no directives, or a stream the edge knows nothing of (no bus, no events yet): it goes on to
//!   the origin, which holds it (the hold bound then limits the origin's answer);
//! - `_HLS_part` without `_HLS_msn`, a malformed directive, or `_HLS_msn` more than two segments
//!   past the newest: 400, as the spec asks;
//! - an announced part: it goes on at once;
//! - otherwise it is held until the part is announced, for at most half the hold bound; an edge
//!   that missed the event (bus down) then asks the origin once, with what is left of the bound.
//!
//! Preload hints are held the same way. When the edge fills an LL-HLS playlist of a stream it
//! follows, it reads the playlist's `EXT-X-PRELOAD-HINT:TYPE=PART` ([`Streams::learn`]): the URI
//! names the part after the playlist's last, so a request for that path (a player asking ahead,
//! as the spec invites) is held until that part is announced, instead of going to the origin
//! to wait there. A hint with a byte range names part of a resource that grows; it is not held.
//! Hints are bounded: [`HINTS_PER_STREAM`] per stream, forgotten with their stream.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use eddy_streaming::hls::directives::{ADVANCE_MSN_LIMIT, Directives};
use eddy_streaming::hls::media::MediaPlaylist;
use parking_lot::Mutex;
use tokio::sync::watch;

/// Most live streams an edge tracks.
pub const MAX_STREAMS: usize = 4096;
/// A stream with no announcement for this long is treated as unknown.
pub const STALE_AFTER: Duration = Duration::from_secs(30);
/// Preload-hinted parts remembered per stream, newest last (a player asks for the one the
/// newest playlist names; older ones cover players a playlist or two behind).
pub const HINTS_PER_STREAM: usize = 4;

/// The newest announcement of a stream: part `part` of segment `msn`, or the whole segment
/// ([`Pos::WHOLE`]). Ordered as the stream advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Media sequence number.
    pub msn: u64,
    /// Part index, or [`Pos::WHOLE`] when the segment is complete.
    pub part: u64,
}

impl Pos {
    /// The part index of a complete segment.
    pub const WHOLE: u64 = u64::MAX;

    /// Whether a playlist with this newest announcement answers `_HLS_msn=msn` (and
    /// `_HLS_part=part`): the spec's "contains segment M" (complete) or "contains part P of M".
    pub fn answers(self, msn: u64, part: Option<u64>) -> bool {
        match part {
            Some(p) => self.msn > msn || (self.msn == msn && self.part >= p),
            None => self.msn > msn || (self.msn == msn && self.part == Pos::WHOLE),
        }
    }
}

struct Stream {
    pos: watch::Sender<Pos>,
    updated: Instant,
    /// Paths of the preload-hinted parts learned from this stream's playlists, newest last.
    hints: VecDeque<String>,
}

/// A preload-hinted part: the stream whose playlist named it, and where it lies.
struct Hint {
    stream: String,
    pos: Pos,
}

#[derive(Default)]
struct Known {
    /// By the media playlist's canonical path.
    streams: HashMap<String, Stream>,
    /// By the hinted part's canonical path.
    hints: HashMap<String, Hint>,
}

impl Known {
    fn forget(&mut self, stream: &str) {
        if let Some(s) = self.streams.remove(stream) {
            for h in s.hints {
                self.hints.remove(&h);
            }
        }
    }
}

/// What the edge knows of live streams, keyed by the media playlist's canonical path, and of
/// the parts their playlists hint at.
#[derive(Default)]
pub struct Streams {
    known: Mutex<Known>,
    /// How many hinted parts are remembered, as of the last change under `known`: a request on
    /// an edge with none (no LL-HLS, the common case) is judged without taking the lock.
    hinted: AtomicUsize,
    /// When a playlist that did not read was last logged (at most once a second).
    logged: Mutex<Option<Instant>>,
}

/// Largest playlist read for its preload hint; a larger one is passed over.
pub const PLAYLIST_MAX: usize = 1 << 20;

/// What [`Streams::learn`] made of a playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Learned {
    /// A part hint: the hinted path and the part's position.
    Hint(String, Pos),
    /// Nothing to hold on: a stream the edge does not follow, a playlist without a part hint,
    /// or a hint with a byte range.
    Nothing,
}

/// What to do with a playlist request.
#[derive(Debug)]
pub enum Verdict {
    /// No blocking directive: an ordinary request.
    Ordinary,
    /// A blocking request to go on to the cache and the origin now (the part is announced, or
    /// the stream is unknown); what follows is bounded by the hold.
    Go,
    /// Refuse with 400 and this reason.
    Refuse(String),
    /// Hold until the stream's newest announcement answers `msn`/`part`: a blocking playlist
    /// request, or (`part` given, `hinted`) a request for a preload-hinted part.
    Hold {
        /// A preload-hinted part, not a playlist.
        hinted: bool,
        /// The stream's announcements.
        rx: watch::Receiver<Pos>,
        /// `_HLS_msn`.
        msn: u64,
        /// `_HLS_part`.
        part: Option<u64>,
    },
}

/// How a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The announcement came.
    Woken,
    /// None came in time: ask the origin.
    TimedOut,
}

impl Streams {
    /// Apply an announcement of `path` (canonical): the stream's position moves forward, never
    /// back (a late or repeated event changes nothing).
    pub fn announce(&self, path: &str, pos: Pos) {
        let mut k = self.known.lock();
        let now = Instant::now();
        if let Some(s) = k.streams.get_mut(path) {
            s.updated = now;
            s.pos.send_if_modified(|p| {
                let forward = pos > *p;
                if forward {
                    *p = pos;
                }
                forward
            });
            return;
        }
        if k.streams.len() >= MAX_STREAMS
            && let Some(oldest) = k
                .streams
                .iter()
                .min_by_key(|(_, s)| s.updated)
                .map(|(p, _)| p.clone())
        {
            k.forget(&oldest);
            self.hinted.store(k.hints.len(), Ordering::Relaxed);
        }
        k.streams.insert(
            path.to_string(),
            Stream {
                pos: watch::Sender::new(pos),
                updated: now,
                hints: VecDeque::new(),
            },
        );
    }

    /// Read a filled playlist of `path` (canonical) for its preload hint: the part after its
    /// last, named by a URI resolved against `path` with `opts`. Only for a stream the edge
    /// follows (announced, not stale): a hint is held on its announcements. An error names why
    /// the playlist does not read; it changes nothing.
    pub fn learn(
        &self,
        path: &str,
        body: &[u8],
        opts: eddy_url::PathOptions<'_>,
    ) -> Result<Learned, String> {
        let p = MediaPlaylist::parse(body).map_err(|e| e.to_string())?;
        let Some(h) = p.preload_hints.iter().find(|h| h.part) else {
            return Ok(Learned::Nothing);
        };
        if h.byterange_start.is_some() || h.byterange_length.is_some() || p.ended {
            return Ok(Learned::Nothing);
        }
        let hinted = eddy_streaming::cmcd::resolve(path, &h.uri, opts).ok_or_else(|| {
            format!(
                "preload hint URI {:?} does not name a path on this site",
                clip(&h.uri)
            )
        })?;
        let pos = Pos {
            msn: p.next_msn(),
            part: p.parts_in_progress.len() as u64,
        };
        if hinted == path {
            return Err("the preload hint names the playlist itself".into());
        }
        let mut k = self.known.lock();
        let Some(s) = k
            .streams
            .get_mut(path)
            .filter(|s| s.updated.elapsed() < STALE_AFTER)
        else {
            return Ok(Learned::Nothing);
        };
        if !s.hints.contains(&hinted) {
            s.hints.push_back(hinted.clone());
        }
        let dropped = if s.hints.len() > HINTS_PER_STREAM {
            s.hints.pop_front()
        } else {
            None
        };
        if let Some(d) = dropped {
            k.hints.remove(&d);
        }
        // A path hinted by another stream's playlist moves to this one (one owner per path).
        if let Some(old) = k.hints.insert(
            hinted.clone(),
            Hint {
                stream: path.to_string(),
                pos,
            },
        ) && old.stream != path
            && let Some(o) = k.streams.get_mut(&old.stream)
        {
            o.hints.retain(|h| *h != hinted);
        }
        self.hinted.store(k.hints.len(), Ordering::Relaxed);
        Ok(Learned::Hint(hinted, pos))
    }

    /// [`Streams::learn`] from a playlist the edge filled, counted in `metrics`
    /// (`eddy_llhls_total{what="hint_learned"}`, `"playlist_ignored"`); a playlist that does not
    /// read is logged, at most once a second. It is served as it came either way.
    pub fn read_filled(
        &self,
        path: &str,
        body: &[u8],
        opts: eddy_url::PathOptions<'_>,
        metrics: &crate::metrics::Metrics,
    ) {
        match self.learn(path, body, opts) {
            Ok(Learned::Hint(..)) => {
                metrics.llhls("hint_learned").inc();
            }
            Ok(Learned::Nothing) => {}
            Err(why) => {
                metrics.llhls("playlist_ignored").inc();
                let mut logged = self.logged.lock();
                if logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    *logged = Some(Instant::now());
                    tracing::warn!(playlist = %clip(path), reason = %why, "did not read a live playlist for its preload hint; requests for the hinted part go to the origin");
                }
            }
        }
    }

    /// Whether the edge follows `path`: announced, and not stale.
    pub fn follows(&self, path: &str) -> bool {
        self.known
            .lock()
            .streams
            .get(path)
            .is_some_and(|s| s.updated.elapsed() < STALE_AFTER)
    }

    /// How many streams are tracked.
    pub fn len(&self) -> usize {
        self.known.lock().streams.len()
    }

    /// How many hinted parts are remembered.
    pub fn hints(&self) -> usize {
        self.known.lock().hints.len()
    }

    /// Whether no stream is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The verdict on a request for `path` (canonical) with query `query`.
    pub fn judge(&self, path: &str, query: &str) -> Verdict {
        if !query.contains("_HLS_msn") && !query.contains("_HLS_part") {
            return self.judge_hinted(path);
        }
        let d = match Directives::from_query(query) {
            Ok(d) => d,
            Err(e) => return Verdict::Refuse(format!("LL-HLS delivery directive: {e}")),
        };
        let Some(msn) = d.msn else {
            return Verdict::Ordinary;
        };
        let k = self.known.lock();
        let Some(s) = k
            .streams
            .get(path)
            .filter(|s| s.updated.elapsed() < STALE_AFTER)
        else {
            return Verdict::Go;
        };
        let now = *s.pos.borrow();
        if msn > now.msn.saturating_add(ADVANCE_MSN_LIMIT) {
            return Verdict::Refuse(format!(
                "LL-HLS delivery directive: _HLS_msn={msn} is more than {ADVANCE_MSN_LIMIT} past the last segment ({})",
                now.msn
            ));
        }
        if now.answers(msn, d.part) {
            return Verdict::Go;
        }
        Verdict::Hold {
            hinted: false,
            rx: s.pos.subscribe(),
            msn,
            part: d.part,
        }
    }

    /// A request with no directives: held when it names a preload-hinted part not announced
    /// yet, of a stream still followed.
    fn judge_hinted(&self, path: &str) -> Verdict {
        if self.hinted.load(Ordering::Relaxed) == 0 {
            return Verdict::Ordinary;
        }
        let k = self.known.lock();
        let Some(h) = k.hints.get(path) else {
            return Verdict::Ordinary;
        };
        let Some(s) = k
            .streams
            .get(&h.stream)
            .filter(|s| s.updated.elapsed() < STALE_AFTER)
        else {
            return Verdict::Ordinary;
        };
        if s.pos.borrow().answers(h.pos.msn, Some(h.pos.part)) {
            return Verdict::Ordinary;
        }
        Verdict::Hold {
            hinted: true,
            rx: s.pos.subscribe(),
            msn: h.pos.msn,
            part: Some(h.pos.part),
        }
    }
}

/// Wait until `rx` answers `msn`/`part`, or `within` passes.
pub async fn hold(
    mut rx: watch::Receiver<Pos>,
    msn: u64,
    part: Option<u64>,
    within: Duration,
) -> Held {
    match tokio::time::timeout(within, rx.wait_for(|p| p.answers(msn, part))).await {
        Ok(Ok(_)) => Held::Woken,
        // The stream was dropped (evicted): nothing more will come; ask the origin.
        Ok(Err(_)) | Err(_) => Held::TimedOut,
    }
}

/// An announcement as the edge applies it: the playlist's canonical path and the position, or
/// why the event is ignored.
pub fn announcement(e: &eddy_events::SegmentPublished) -> Result<(String, Pos), String> {
    let path = canonical_path(&e.stream)
        .ok_or_else(|| format!("stream {:?} is not a path", clip(&e.stream)))?;
    Ok((
        path,
        Pos {
            msn: e.msn,
            part: e.part.unwrap_or(Pos::WHOLE),
        },
    ))
}

/// The canonical path of an announced stream: a path, or a URL whose path is taken.
fn canonical_path(stream: &str) -> Option<String> {
    let path = match stream.find("://") {
        Some(i) => {
            let rest = &stream[i + 3..];
            &rest[rest.find('/')?..]
        }
        None => stream,
    };
    if !path.starts_with('/') || path.len() > 2048 {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    eddy_url::push_path(path.as_bytes(), eddy_url::PathOptions::default(), &mut out).ok()?;
    Some(out)
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Follow `segment.published` on `bus` into `streams` until `shutdown`. A bus that fails is
/// re-subscribed after a pause (held requests fall back to the origin meanwhile); a malformed
/// event is counted, logged (at most once a second) and skipped.
pub async fn follow(
    bus: Arc<dyn eddy_bus::Bus>,
    streams: Arc<Streams>,
    metrics: Arc<crate::metrics::Metrics>,
    edge_id: String,
    mut shutdown: watch::Receiver<bool>,
) {
    use eddy_bus::consumer::EventConsumer;
    let consumer_name = format!("edge-{edge_id}.segments");
    let mut last_log = Instant::now() - Duration::from_secs(2);
    'outer: loop {
        let sub = tokio::select! {
            _ = shutdown.changed() => break,
            s = bus.subscribe(eddy_control::SEGMENT_TOPIC, &consumer_name, eddy_bus::StartFrom::Latest) => s,
        };
        let mut consumer = match sub {
            Ok(s) => EventConsumer::new(s, bus.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow segment announcements; LL-HLS holds fall back to the origin; retrying in 1 s");
                tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let r = tokio::select! {
                _ = shutdown.changed() => break 'outer,
                r = consumer.next() => r,
            };
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "segment announcements stopped; LL-HLS holds fall back to the origin; re-subscribing in 1 s");
                    tokio::select! {
                        _ = shutdown.changed() => break 'outer,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue 'outer,
                    }
                }
            };
            let eddy_events::Event::SegmentPublished(e) = &r.event else {
                continue;
            };
            match announcement(e) {
                Ok((path, pos)) => {
                    streams.announce(&path, pos);
                    metrics.llhls("announced").inc();
                }
                Err(why) => {
                    metrics.llhls("announcement_ignored").inc();
                    if last_log.elapsed() >= Duration::from_secs(1) {
                        last_log = Instant::now();
                        tracing::warn!(reason = %why, "ignored a segment announcement");
                    }
                }
            }
        }
    }
    tracing::info!("stopped following segment announcements: the edge is shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(msn: u64, part: u64) -> Pos {
        Pos { msn, part }
    }

    #[test]
    fn positions_answer_directives() {
        assert!(pos(5, 2).answers(5, Some(2)));
        assert!(pos(5, 3).answers(5, Some(2)));
        assert!(!pos(5, 1).answers(5, Some(2)));
        assert!(pos(6, 0).answers(5, Some(9)));
        // A segment is in the playlist once it is complete.
        assert!(!pos(5, 3).answers(5, None));
        assert!(pos(5, Pos::WHOLE).answers(5, None));
        assert!(pos(6, 0).answers(5, None));
        assert!(!pos(4, Pos::WHOLE).answers(5, Some(0)));
    }

    #[test]
    fn judging_holds_refuses_and_passes() {
        let s = Streams::default();
        let p = "/live/0/live.m3u8";
        // Unknown stream: go; no directives: an ordinary request.
        assert!(matches!(s.judge(p, "_HLS_msn=9"), Verdict::Go));
        assert!(matches!(s.judge(p, ""), Verdict::Ordinary));
        assert!(matches!(s.judge(p, "_HLS_skip=YES"), Verdict::Ordinary));
        assert!(matches!(s.judge(p, "_HLS_msnx=3"), Verdict::Ordinary));
        assert!(matches!(s.judge(p, "_HLS_part=1"), Verdict::Refuse(_)));
        assert!(matches!(s.judge(p, "_HLS_msn=x"), Verdict::Refuse(_)));
        s.announce(p, pos(10, 2));
        assert!(matches!(s.judge(p, "_HLS_msn=10&_HLS_part=2"), Verdict::Go));
        assert!(matches!(s.judge(p, "_HLS_msn=9"), Verdict::Go));
        assert!(matches!(
            s.judge(p, "_HLS_msn=10&_HLS_part=3"),
            Verdict::Hold { .. }
        ));
        assert!(matches!(s.judge(p, "_HLS_msn=12"), Verdict::Hold { .. }));
        assert!(matches!(s.judge(p, "_HLS_msn=13"), Verdict::Refuse(_)));
        // Late and repeated events never move it back.
        s.announce(p, pos(9, 0));
        assert!(matches!(s.judge(p, "_HLS_msn=10&_HLS_part=2"), Verdict::Go));
    }

    #[test]
    fn streams_are_bounded() {
        let s = Streams::default();
        for i in 0..MAX_STREAMS + 10 {
            s.announce(&format!("/s/{i}.m3u8"), pos(1, 0));
        }
        assert_eq!(s.len(), MAX_STREAMS);
    }

    #[test]
    fn announcements_name_canonical_paths() {
        let e = |stream: &str| eddy_events::SegmentPublished {
            stream: stream.into(),
            uri: "/x".into(),
            msn: 3,
            part: Some(1),
        };
        assert_eq!(
            announcement(&e("/live/./0/%6Cive.m3u8")),
            Ok(("/live/0/live.m3u8".to_string(), pos(3, 1)))
        );
        assert_eq!(
            announcement(&e("http://o.test:8080/live/0/live.m3u8")).map(|a| a.0),
            Ok("/live/0/live.m3u8".to_string())
        );
        assert!(announcement(&e("live.m3u8")).is_err());
        assert!(announcement(&e("http://o.test")).is_err());
    }

    /// An LL-HLS playlist of `/live/0/` whose last part is `msn`.`part` (of four per segment),
    /// hinting at the next.
    fn playlist(msn: u64, part: u64, hint: &str) -> String {
        let mut o = String::from(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.5\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5\n",
        );
        o += &format!("#EXT-X-MEDIA-SEQUENCE:{msn}\n");
        for i in 0..=part {
            o += &format!("#EXT-X-PART:DURATION=0.5,URI=\"part-{msn}-{i}.m4s\"\n");
        }
        if part == 3 {
            o += &format!("#EXTINF:2,\nseg-{msn}.m4s\n");
        }
        o += &format!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{hint}\"\n");
        o
    }

    fn opts() -> eddy_url::PathOptions<'static> {
        eddy_url::PathOptions::default()
    }

    #[test]
    fn preload_hints_are_held_until_their_part_is_announced() {
        let s = Streams::default();
        let p = "/live/0/live.m3u8";
        let body = playlist(7, 1, "part-7-2.m4s");
        // A stream the edge does not follow teaches nothing: nothing would wake a hold.
        assert_eq!(s.learn(p, body.as_bytes(), opts()), Ok(Learned::Nothing));
        assert!(matches!(
            s.judge("/live/0/part-7-2.m4s", ""),
            Verdict::Ordinary
        ));
        s.announce(p, pos(7, 1));
        assert_eq!(
            s.learn(p, body.as_bytes(), opts()),
            Ok(Learned::Hint("/live/0/part-7-2.m4s".into(), pos(7, 2)))
        );
        assert!(matches!(
            s.judge("/live/0/part-7-2.m4s", ""),
            Verdict::Hold {
                hinted: true,
                msn: 7,
                part: Some(2),
                ..
            }
        ));
        // Other paths, and the parts already listed, are ordinary.
        assert!(matches!(
            s.judge("/live/0/part-7-1.m4s", ""),
            Verdict::Ordinary
        ));
        assert!(matches!(s.judge(p, ""), Verdict::Ordinary));
        // Once announced, the part goes on at once.
        s.announce(p, pos(7, 2));
        assert!(matches!(
            s.judge("/live/0/part-7-2.m4s", ""),
            Verdict::Ordinary
        ));
        // After a complete segment the hint is part 0 of the next; a relative URI resolves.
        let body = playlist(7, 3, "../0/./part-8-0.m4s");
        assert_eq!(
            s.learn(p, body.as_bytes(), opts()),
            Ok(Learned::Hint("/live/0/part-8-0.m4s".into(), pos(8, 0)))
        );
        assert!(matches!(
            s.judge("/live/0/part-8-0.m4s", ""),
            Verdict::Hold {
                hinted: true,
                msn: 8,
                part: Some(0),
                ..
            }
        ));
        s.announce(p, pos(7, Pos::WHOLE));
        assert!(matches!(
            s.judge("/live/0/part-8-0.m4s", ""),
            Verdict::Hold { .. }
        ));
        s.announce(p, pos(8, 0));
        assert!(matches!(
            s.judge("/live/0/part-8-0.m4s", ""),
            Verdict::Ordinary
        ));
    }

    #[test]
    fn hints_that_cannot_be_held_are_not_learned() {
        let s = Streams::default();
        let p = "/live/0/live.m3u8";
        s.announce(p, pos(7, 1));
        let ranged = playlist(7, 1, "seg-7.m4s").replace(
            "URI=\"seg-7.m4s\"",
            "URI=\"seg-7.m4s\",BYTERANGE-START=1000",
        );
        assert_eq!(s.learn(p, ranged.as_bytes(), opts()), Ok(Learned::Nothing));
        for uri in [
            "http://elsewhere.test/x.m4s",
            "//elsewhere.test/x.m4s",
            "live.m3u8",
        ] {
            assert!(
                s.learn(p, playlist(7, 1, uri).as_bytes(), opts()).is_err(),
                "{uri}"
            );
        }
        assert!(s.learn(p, b"not a playlist", opts()).is_err());
        let ended = playlist(7, 3, "part-8-0.m4s") + "#EXT-X-ENDLIST\n";
        assert_eq!(s.learn(p, ended.as_bytes(), opts()), Ok(Learned::Nothing));
        assert_eq!(s.hints(), 0);
    }

    #[test]
    fn hints_are_bounded_and_forgotten_with_their_stream() {
        let s = Streams::default();
        let p = "/live/0/live.m3u8";
        s.announce(p, pos(0, 0));
        for i in 0..20u64 {
            let body = playlist(i, 1, &format!("part-{i}-2.m4s"));
            assert!(matches!(
                s.learn(p, body.as_bytes(), opts()),
                Ok(Learned::Hint(..))
            ));
        }
        assert_eq!(s.hints(), HINTS_PER_STREAM);
        assert!(matches!(
            s.judge("/live/0/part-19-2.m4s", ""),
            Verdict::Hold { .. }
        ));
        assert!(matches!(
            s.judge("/live/0/part-0-2.m4s", ""),
            Verdict::Ordinary
        ));
        // A path hinted by a second stream belongs to that stream alone.
        let q = "/live/1/live.m3u8";
        s.announce(q, pos(0, 0));
        let body = playlist(19, 1, "../0/part-19-2.m4s");
        assert!(matches!(
            s.learn(q, body.as_bytes(), opts()),
            Ok(Learned::Hint(..))
        ));
        assert_eq!(s.hints(), HINTS_PER_STREAM);
        // Streams evicted past the bound take their hints with them.
        for i in 0..MAX_STREAMS + 1 {
            s.announce(&format!("/s/{i}.m3u8"), pos(1, 0));
        }
        assert_eq!(s.hints(), 0);
        assert!(matches!(
            s.judge("/live/0/part-19-2.m4s", ""),
            Verdict::Ordinary
        ));
    }

    /// Many tasks hold while announcements race forward on a busy runtime: every hold whose part
    /// is announced is woken, and the position never moves back.
    #[test]
    fn holds_race_with_announcements() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let s = Arc::new(Streams::default());
            let p = "/r/live.m3u8";
            s.announce(p, pos(0, 0));
            for round in 0..2000u64 {
                let target = (round / 4, round % 4);
                let Verdict::Hold { rx, msn, part, .. } = s.judge(
                    p,
                    &format!("_HLS_msn={}&_HLS_part={}", target.0, target.1 + 1),
                ) else {
                    // Already announced by an earlier round's racer.
                    continue;
                };
                let waiter = tokio::spawn(hold(rx, msn, part, Duration::from_secs(5)));
                let s2 = s.clone();
                let racer = tokio::spawn(async move {
                    for k in 0..3 {
                        s2.announce(p, pos(target.0, target.1 + k));
                    }
                    s2.announce(p, pos(target.0, target.1 + 1));
                });
                racer.await.expect("racer");
                assert_eq!(waiter.await.expect("waiter"), Held::Woken, "round {round}");
            }
        });
    }
}
