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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_streaming::hls::directives::{ADVANCE_MSN_LIMIT, Directives};
use parking_lot::Mutex;
use tokio::sync::watch;

/// Most live streams an edge tracks.
pub const MAX_STREAMS: usize = 4096;
/// A stream with no announcement for this long is treated as unknown.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

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
}

/// What the edge knows of live streams, keyed by the media playlist's canonical path.
#[derive(Default)]
pub struct Streams {
    streams: Mutex<HashMap<String, Stream>>,
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
    /// Hold until the stream's newest announcement answers `msn`/`part`.
    Hold {
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
        let mut g = self.streams.lock();
        let now = Instant::now();
        if let Some(s) = g.get_mut(path) {
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
        if g.len() >= MAX_STREAMS
            && let Some(oldest) = g
                .iter()
                .min_by_key(|(_, s)| s.updated)
                .map(|(k, _)| k.clone())
        {
            g.remove(&oldest);
        }
        g.insert(
            path.to_string(),
            Stream {
                pos: watch::Sender::new(pos),
                updated: now,
            },
        );
    }

    /// How many streams are tracked.
    pub fn len(&self) -> usize {
        self.streams.lock().len()
    }

    /// Whether no stream is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The verdict on a request for `path` (canonical) with query `query`.
    pub fn judge(&self, path: &str, query: &str) -> Verdict {
        if !query.contains("_HLS_msn") && !query.contains("_HLS_part") {
            return Verdict::Ordinary;
        }
        let d = match Directives::from_query(query) {
            Ok(d) => d,
            Err(e) => return Verdict::Refuse(format!("LL-HLS delivery directive: {e}")),
        };
        let Some(msn) = d.msn else {
            return Verdict::Ordinary;
        };
        let g = self.streams.lock();
        let Some(s) = g.get(path).filter(|s| s.updated.elapsed() < STALE_AFTER) else {
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
            rx: s.pos.subscribe(),
            msn,
            part: d.part,
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
                let Verdict::Hold { rx, msn, part } = s.judge(
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
