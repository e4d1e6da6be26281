//! The live stream's announcements: each new LL-HLS part of each rendition becomes a
//! `dev.eddy.segment.published.v1` event on the bus (topic [`eddy_control::SEGMENT_TOPIC`],
//! keyed by the media playlist's path), the moment the clock makes it.
//!
//! Runs on a thread of its own with a small runtime, like the demo origin; stops (and says why)
//! when its handle drops. A publish that fails or takes longer than a part is logged and skipped:
//! the next part's event supersedes it, and an edge that misses events still asks the origin.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use eddy_bus::Bus;
use eddy_events::{Event, SegmentPublished};
use tokio::sync::watch;

use crate::live::{Live, PART, PARTS};

/// A running announcer; stops when dropped.
pub struct Announcer {
    stop: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Announcer {
    /// Announce `live`'s parts on `bus` as `source`, from the next part on.
    pub fn start(live: Arc<Live>, bus: Arc<dyn Bus>, source: String) -> std::io::Result<Announcer> {
        let (tx, rx) = watch::channel(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("eddy-live-announce".into())
            .spawn(move || rt.block_on(run(live, bus, source, rx)))?;
        Ok(Announcer {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The events for part `n` (counting from 1) of every rendition: the part, and when it is a
/// segment's last, the complete segment after it (`part` absent), so an edge holding
/// `_HLS_msn=M` without `_HLS_part` wakes when segment M is in the playlist.
pub fn events_for(n: u64) -> Vec<SegmentPublished> {
    let (msn, part) = ((n - 1) / PARTS, (n - 1) % PARTS);
    let mut out = Vec::new();
    for r in 0..Live::RENDITIONS {
        out.push(SegmentPublished {
            stream: format!("/live/{r}/live.m3u8"),
            uri: format!("/live/{r}/part-{msn}-{part}.m4s"),
            msn,
            part: Some(part),
        });
        if part + 1 == PARTS {
            out.push(SegmentPublished {
                stream: format!("/live/{r}/live.m3u8"),
                uri: format!("/live/{r}/seg-{msn}.m4s"),
                msn,
                part: None,
            });
        }
    }
    out
}

async fn run(live: Arc<Live>, bus: Arc<dyn Bus>, source: String, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u64;
    let mut next = live.made(Instant::now()) + 1;
    loop {
        let at = tokio::time::Instant::from_std(live.when(next));
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = stop.changed() => {
                tracing::info!("live announcer stopping: the demo origin is stopping");
                return;
            }
        }
        for ev in events_for(next) {
            let event = Event::SegmentPublished(ev);
            let cloud = event.to_cloud(eddy_control::event_id(), source.clone());
            let key = event.key();
            let publish = bus.publish(
                eddy_control::SEGMENT_TOPIC,
                &key,
                Bytes::from(cloud.encode()),
            );
            let failed = match tokio::time::timeout(PART, publish).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {PART:?}")),
            };
            if let Some(why) = failed {
                failures += 1;
                // One line per 20 failures: a bus that is down must not flood the log.
                if failures % 20 == 1 {
                    tracing::warn!(%why, failures, "could not announce a live part; later parts supersede it");
                }
            }
        }
        // Catch up without a burst if the thread was held up: announce only the newest part.
        next = (next + 1).max(live.made(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use eddy_bus::StartFrom;
    use eddy_bus::embedded::{EmbeddedBus, EmbeddedOptions};
    use std::time::Duration;

    #[test]
    fn each_new_part_of_each_rendition_is_announced_in_order() {
        assert_eq!(events_for(1)[2].uri, "/live/2/part-0-0.m4s");
        assert_eq!(events_for(6)[0].uri, "/live/0/part-1-1.m4s");
        let last = events_for(PARTS);
        assert_eq!(last.len(), 2 * Live::RENDITIONS);
        assert_eq!(
            (last[1].uri.as_str(), last[1].part),
            ("/live/0/seg-0.m4s", None)
        );
        let dir = tempfile::tempdir().unwrap();
        let bus: Arc<dyn Bus> =
            Arc::new(EmbeddedBus::open(EmbeddedOptions::new(dir.path())).unwrap());
        let live = Arc::new(Live::new().unwrap());
        let announcer = Announcer::start(live, bus.clone(), "test-origin".into()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = rt.block_on(async {
            let mut sub = bus
                .subscribe(eddy_control::SEGMENT_TOPIC, "t", StartFrom::Earliest)
                .await
                .unwrap();
            let mut got = Vec::new();
            // Three parts of three renditions within a deadline (a part is 0.5 s).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while got.len() < 9 {
                let rec = tokio::time::timeout_at(deadline, sub.next())
                    .await
                    .expect("events within 10 s")
                    .unwrap();
                let cloud = eddy_events::CloudEvent::decode(&rec.payload).unwrap();
                match Event::from_cloud(&cloud).unwrap() {
                    Event::SegmentPublished(s) => got.push(s),
                    other => panic!("{other:?}"),
                }
            }
            got
        });
        drop(announcer);
        // Per stream, parts only move forward.
        for r in 0..3 {
            let mine: Vec<(u64, u64)> = got
                .iter()
                .filter(|s| s.stream == format!("/live/{r}/live.m3u8"))
                .filter_map(|s| Some((s.msn, s.part?)))
                .collect();
            assert!(mine.len() >= 2, "{got:?}");
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        }
    }
}
