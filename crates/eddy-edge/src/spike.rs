//! Traffic-spike detection on the request path: every GET or HEAD is counted for its object
//! (`host/path?query`) and its host in one [`SpikeDetector`]. A spike is logged, counted and
//! handed to a bounded queue (capacity [`QUEUE`]; a full queue drops and counts) that the admin
//! runtime drains into `dev.eddy.traffic.spike.v1` events on the bus. The request path never
//! waits on the bus.

use crate::metrics::Metrics;
use eddy_config::SpikeSettings;
use eddy_control::spike::{Spike, SpikeConfig, SpikeDetector};
use parking_lot::Mutex;
use std::time::Instant;
use tokio::sync::mpsc;

/// Spikes waiting to be published, at most.
pub const QUEUE: usize = 64;

/// The detector of one edge and the queue to its publisher.
pub struct SpikeWatch {
    detector: Mutex<SpikeDetector>,
    tx: mpsc::Sender<Spike>,
}

impl SpikeWatch {
    /// A watch per `settings`, and the receiving end of its queue.
    pub fn new(settings: &SpikeSettings) -> (SpikeWatch, mpsc::Receiver<Spike>) {
        let cfg = SpikeConfig {
            factor: settings.factor,
            min_rate: settings.min_rate,
            baseline_window: settings.baseline_window,
            cooldown: settings.cooldown,
            ..SpikeConfig::default()
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            SpikeWatch {
                detector: Mutex::new(SpikeDetector::new(cfg, Instant::now())),
                tx,
            },
            rx,
        )
    }

    /// Count one request for `url` (`host/path?query`).
    pub fn observe(&self, url: &str, metrics: &Metrics) {
        let host = url.split('/').next().unwrap_or(url);
        let now = Instant::now();
        let mut spikes = {
            let mut d = self.detector.lock();
            let mut s = d.record(url, now);
            s.extend(d.record(host, now));
            s
        };
        for s in spikes.drain(..) {
            metrics.spikes.inc();
            tracing::warn!(key = %s.key, rate = s.rate, baseline = s.baseline, "traffic spike");
            if self.tx.try_send(s).is_err() {
                metrics.spikes_dropped.inc();
            }
        }
    }
}
