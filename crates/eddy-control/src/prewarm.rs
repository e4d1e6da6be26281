//! Pre-warm: this edge fetches objects into its cache before its own viewers ask.
//!
//! - **On spikes** ([`PrewarmFollower`]): when another edge reports a traffic spike on an
//!   object, so a flash crowd that spreads across edges finds it cached. Each edge follows
//!   `eddy.traffic.spike` as consumer `edge-<id>.spikes`; host-level spikes and the edge's own
//!   reports are skipped.
//! - **On hints** ([`HintFollower`]): the control plane's forecast publishes
//!   `dev.eddy.prewarm.v1` hints (rising items, new episodes, what viewers are recommended) on
//!   `eddy.prewarm`; each edge follows them as `edge-<id>.prewarm` and fetches the objects it
//!   lacks within a byte budget a minute (`[edge] prewarm_budget`), skipping hints for another
//!   region (`[edge] region`).
//!
//! Both start from the latest event (an old spike or hint is not worth acting on after a
//! restart), and fetch one object at a time in the follower, so a storm of events can never
//! queue unbounded work.

use crate::{ControlError, EdgeControl, PREWARM_TOPIC, TRAFFIC_SPIKE_TOPIC};
use eddy_bus::consumer::{EventConsumer, Received};
use eddy_bus::{Bus, StartFrom};
use eddy_events::Event;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// Follows spike events for one edge.
pub struct PrewarmFollower {
    consumer: EventConsumer,
    edge: Arc<dyn EdgeControl>,
}

impl PrewarmFollower {
    /// Subscribe for `edge`.
    pub async fn start(
        bus: Arc<dyn Bus>,
        edge: Arc<dyn EdgeControl>,
    ) -> Result<Self, ControlError> {
        let name = format!("edge-{}.spikes", edge.edge_id());
        let sub = bus
            .subscribe(TRAFFIC_SPIKE_TOPIC, &name, StartFrom::Latest)
            .await?;
        Ok(PrewarmFollower {
            consumer: EventConsumer::new(sub, bus),
            edge,
        })
    }

    /// Apply spike events until `shutdown` turns true; bus errors are logged and retried with
    /// back-off.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        crate::follow(self, shutdown).await
    }
}

#[async_trait::async_trait]
impl crate::Follower for PrewarmFollower {
    const WHAT: &'static str = "spike";
    fn consumer(&mut self) -> &mut EventConsumer {
        &mut self.consumer
    }
    fn who(&self) -> &str {
        self.edge.edge_id()
    }
    /// Prefetch another edge's spiking object. A failed prefetch or commit is logged, not
    /// retried: the next spike report brings the object again.
    async fn apply(&mut self, r: Received) -> Result<(), ControlError> {
        if let Event::TrafficSpike(s) = &r.event
            && s.edge != self.edge.edge_id()
            && s.key.contains('/')
        {
            match self.edge.prefetch(&s.key).await {
                Ok(fetched) => {
                    tracing::info!(edge = %self.edge.edge_id(), url = %s.key, from = %s.edge, cached = fetched.is_some(), "pre-warmed a spiking object")
                }
                Err(e) => {
                    tracing::warn!(edge = %self.edge.edge_id(), url = %s.key, error = %e, "pre-warm failed")
                }
            }
        }
        if let Err(e) = self.consumer.commit(&r).await {
            tracing::warn!(error = %e, "could not commit a spike event");
        }
        Ok(())
    }
}

/// What became of one object a hint named, for the edge's counters: `fetched`, `cached`
/// (held already), `region` (another region's hint), `budget` (over the byte budget),
/// `failed`; with the bytes fetched.
pub type HintCounter = Arc<dyn Fn(&'static str, u64) + Send + Sync>;

/// A byte budget that refills continuously: `per_minute` bytes a minute, at most a minute's worth
/// saved. An object's size is known only once it has arrived, so a fetch is started while any
/// budget is left and its bytes are charged after: the overshoot is at most one object, and the
/// debt is paid before the next fetch.
#[derive(Debug)]
pub struct ByteBudget {
    per_minute: f64,
    left: f64,
    at: Instant,
}

impl ByteBudget {
    /// A full budget of `per_minute` bytes a minute.
    pub fn new(per_minute: u64) -> ByteBudget {
        ByteBudget {
            per_minute: per_minute as f64,
            left: per_minute as f64,
            at: Instant::now(),
        }
    }

    /// Whether a fetch may start at `now`.
    pub fn allows(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.left = (self.left + elapsed * self.per_minute / 60.0).min(self.per_minute);
        self.left > 0.0
    }

    /// Charge `bytes` fetched.
    pub fn charge(&mut self, bytes: u64) {
        self.left -= bytes as f64;
    }
}

/// Follows pre-warm hints for one edge.
pub struct HintFollower {
    consumer: EventConsumer,
    edge: Arc<dyn EdgeControl>,
    budget: ByteBudget,
    count: HintCounter,
}

impl HintFollower {
    /// Subscribe for `edge`, fetching at most `budget_per_minute` bytes a minute; `count` hears
    /// what became of every object named.
    pub async fn start(
        bus: Arc<dyn Bus>,
        edge: Arc<dyn EdgeControl>,
        budget_per_minute: u64,
        count: HintCounter,
    ) -> Result<Self, ControlError> {
        let name = format!("edge-{}.prewarm", edge.edge_id());
        let sub = bus
            .subscribe(PREWARM_TOPIC, &name, StartFrom::Latest)
            .await?;
        Ok(HintFollower {
            consumer: EventConsumer::new(sub, bus),
            edge,
            budget: ByteBudget::new(budget_per_minute),
            count,
        })
    }

    /// Apply hints until `shutdown` turns true; bus errors are logged and retried with
    /// back-off.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        crate::follow(self, shutdown).await
    }

    /// Fetch what `hint` names that this edge lacks, within the budget.
    async fn prewarm(&mut self, hint: &eddy_events::Prewarm) {
        if let (Some(want), Some(mine)) = (&hint.region, self.edge.region())
            && want != mine
        {
            (self.count)("region", 0);
            return;
        }
        let (mut fetched, mut bytes) = (0usize, 0u64);
        for url in &hint.urls {
            if self.edge.holds(url) {
                (self.count)("cached", 0);
                continue;
            }
            if !self.budget.allows(Instant::now()) {
                (self.count)("budget", 0);
                continue;
            }
            match self.edge.prefetch(url).await {
                Ok(Some(n)) => {
                    self.budget.charge(n);
                    (self.count)("fetched", n);
                    fetched += 1;
                    bytes += n;
                }
                Ok(None) => (self.count)("failed", 0),
                Err(e) => {
                    (self.count)("failed", 0);
                    tracing::warn!(edge = %self.edge.edge_id(), %url, error = %e, "pre-warm on a hint failed");
                }
            }
        }
        tracing::debug!(edge = %self.edge.edge_id(), reason = hint.reason.as_str(), item = ?hint.item, fetched, bytes, "pre-warmed on a hint");
    }
}

#[async_trait::async_trait]
impl crate::Follower for HintFollower {
    const WHAT: &'static str = "pre-warm hint";
    fn consumer(&mut self) -> &mut EventConsumer {
        &mut self.consumer
    }
    fn who(&self) -> &str {
        self.edge.edge_id()
    }
    /// Fetch a hint's objects. A failed fetch is logged, not retried: the forecast hints again
    /// while the item stays hot.
    async fn apply(&mut self, r: Received) -> Result<(), ControlError> {
        if let Event::Prewarm(hint) = &r.event {
            self.prewarm(hint).await;
        }
        if let Err(e) = self.consumer.commit(&r).await {
            tracing::warn!(error = %e, "could not commit a pre-warm hint");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_byte_budget_refills_by_the_minute_and_overshoots_by_one_object_at_most() {
        let t0 = Instant::now();
        let mut b = ByteBudget::new(600);
        assert!(b.allows(t0));
        b.charge(1000);
        // 400 in debt: paid back at 10 bytes a second.
        assert!(!b.allows(t0 + Duration::from_secs(39)));
        assert!(b.allows(t0 + Duration::from_secs(41)));
        // Never more than a minute's worth saved.
        assert!(b.allows(t0 + Duration::from_secs(3600)));
        b.charge(600);
        assert!(!b.allows(t0 + Duration::from_secs(3600)));
        // Time going backwards changes nothing.
        assert!(!b.allows(t0));
        let mut off = ByteBudget::new(0);
        assert!(!off.allows(t0 + Duration::from_secs(60)));
    }
}
