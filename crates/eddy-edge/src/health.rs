//! Origin and shield health: passive error tracking on the request path plus active evidence
//! (probes for origins, heartbeats for shields), so requests go straight to a healthy peer
//! instead of failing over on every request. One [`OriginHealth`] per peer list.
//!
//! - **Passive.** Every origin connect failure counts; `edge.origin_fail_threshold` (3) in a row
//!   mark the origin down. A success resets the count.
//! - **Active.** The admin runtime probes every origin every `edge.origin_probe_interval_ms`
//!   (1000) with `GET edge.origin_probe_path` and a deadline of half the interval. An answer
//!   below 500 marks it up; a failure counts like a passive one.
//! - **Choosing.** [`OriginHealth::pick`] returns the first healthy origin the request has not
//!   tried, so a connect failure moves to the next healthy one and no origin is tried twice.
//!   With none healthy, it goes through all of them in order anyway: a stale copy or a 502 is
//!   decided by the proxy.
//! - Every change of state is logged, shown on `/metrics` (`eddy_origin_up`) and sent (bounded
//!   queue of [`QUEUE`]; a full queue drops and counts) to the admin runtime, which publishes
//!   `dev.eddy.origin.health.v1` on the bus.

use eddy_config::Origin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use tokio::sync::mpsc;

/// Health changes waiting to be published, at most.
pub const QUEUE: usize = 64;

/// A change of an origin's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Index in the configured origins.
    pub index: usize,
    /// The origin's URL.
    pub origin: String,
    /// Its new state.
    pub healthy: bool,
    /// Why.
    pub detail: String,
}

struct Slot {
    url: String,
    healthy: AtomicBool,
    failures: AtomicU32,
}

/// Health of this edge's origins.
pub struct OriginHealth {
    /// `origin` or `shield`, for logs.
    what: &'static str,
    slots: Vec<Slot>,
    threshold: u32,
    tx: mpsc::Sender<Change>,
    /// Changes dropped because the queue was full.
    pub dropped: AtomicU32,
}

impl OriginHealth {
    /// Every origin starts healthy.
    pub fn new(origins: &[Origin], threshold: u32) -> (OriginHealth, mpsc::Receiver<Change>) {
        Self::of("origin", origins, threshold)
    }

    /// Every peer (`what`: `origin` or `shield`) starts healthy.
    pub fn of(
        what: &'static str,
        origins: &[Origin],
        threshold: u32,
    ) -> (OriginHealth, mpsc::Receiver<Change>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let slots = origins
            .iter()
            .map(|o| Slot {
                url: o.url.clone(),
                healthy: AtomicBool::new(true),
                failures: AtomicU32::new(0),
            })
            .collect();
        (
            OriginHealth {
                what,
                slots,
                threshold: threshold.max(1),
                tx,
                dropped: AtomicU32::new(0),
            },
            rx,
        )
    }

    /// Whether origin `i` is usable now.
    pub fn is_healthy(&self, i: usize) -> bool {
        self.slots
            .get(i)
            .is_some_and(|s| s.healthy.load(Ordering::Relaxed))
    }

    /// The origin for a request's next attempt, given the origins it `tried` already: the first
    /// healthy one in preference order, else the first untried one (with every origin down, all
    /// are still tried in order). `None` once every origin was tried. Health may change between
    /// attempts; no origin is tried twice for one request.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        let untried = (0..self.slots.len()).filter(|i| !tried.contains(i));
        let mut first = None;
        for i in untried {
            if self.is_healthy(i) {
                return Some(i);
            }
            first.get_or_insert(i);
        }
        first
    }

    /// Origin `i` failed (connect error or failed probe).
    pub fn failure(&self, i: usize, why: &str) {
        let Some(s) = self.slots.get(i) else { return };
        let n = s.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.threshold && s.healthy.swap(false, Ordering::Relaxed) {
            self.changed(i, false, format!("{n} failures in a row; last: {why}"));
        }
    }

    /// Origin `i` answered (a request or a probe).
    pub fn success(&self, i: usize, why: &str) {
        let Some(s) = self.slots.get(i) else { return };
        s.failures.store(0, Ordering::Relaxed);
        if !s.healthy.swap(true, Ordering::Relaxed) {
            self.changed(i, true, why.to_string());
        }
    }

    /// Set peer `i`'s state from outside evidence (its own heartbeat said so, or its heartbeats
    /// stopped), whatever the failure count.
    pub fn set(&self, i: usize, healthy: bool, why: &str) {
        let Some(s) = self.slots.get(i) else { return };
        s.failures.store(0, Ordering::Relaxed);
        if s.healthy.swap(healthy, Ordering::Relaxed) != healthy {
            self.changed(i, healthy, why.to_string());
        }
    }

    fn changed(&self, index: usize, healthy: bool, detail: String) {
        let origin = self.slots[index].url.clone();
        let what = self.what;
        if healthy {
            tracing::info!(peer = %origin, %detail, "{what} is up");
        } else {
            tracing::warn!(peer = %origin, %detail, "{what} is down; sending requests to the others");
        }
        let c = Change {
            index,
            origin,
            healthy,
            detail,
        };
        if self.tx.try_send(c).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(n: usize) -> Vec<Origin> {
        (0..n)
            .map(|i| Origin {
                url: format!("http://o{i}:80"),
                host: format!("o{i}"),
                port: 80,
                tls: false,
            })
            .collect()
    }

    #[test]
    fn failures_past_the_threshold_move_traffic_and_a_success_brings_it_back() {
        let (h, mut rx) = OriginHealth::new(&origins(3), 3);
        assert_eq!(
            (
                h.pick(&[]),
                h.pick(&[0]),
                h.pick(&[0, 1]),
                h.pick(&[0, 1, 2])
            ),
            (Some(0), Some(1), Some(2), None)
        );
        h.failure(0, "refused");
        h.failure(0, "refused");
        assert_eq!(h.pick(&[]), Some(0), "two failures are not enough");
        h.failure(0, "refused");
        assert_eq!(
            (h.pick(&[]), h.pick(&[1]), h.pick(&[1, 2])),
            (Some(1), Some(2), Some(0))
        );
        let c = rx.try_recv().expect("a down event");
        assert_eq!((c.index, c.healthy), (0, false));
        h.success(0, "probe answered 200");
        assert_eq!(h.pick(&[]), Some(0));
        assert!(rx.try_recv().expect("an up event").healthy);
        assert!(rx.try_recv().is_err(), "one change, one event");
    }

    #[test]
    fn with_every_origin_down_all_are_still_tried_in_order() {
        let (h, _rx) = OriginHealth::new(&origins(2), 1);
        h.failure(0, "x");
        h.failure(1, "x");
        assert_eq!((h.pick(&[]), h.pick(&[0])), (Some(0), Some(1)));
    }

    #[test]
    fn an_origin_marked_down_mid_request_is_not_tried_twice() {
        let (h, _rx) = OriginHealth::new(&origins(2), 1);
        assert_eq!(h.pick(&[]), Some(0));
        // The first attempt fails and marks origin 0 down: the retry goes to 1, not 0 again.
        h.failure(0, "refused");
        assert_eq!(h.pick(&[0]), Some(1));
    }
}
