//! Pre-warm on spikes: when another edge reports a traffic spike on an object, this edge fetches
//! the object into its cache before its own viewers ask, so a flash crowd that spreads across
//! edges finds it cached.
//!
//! Each edge follows `eddy.traffic.spike` as consumer `edge-<id>.spikes` from the latest event
//! (an old spike is not worth acting on after a restart). Prefetches run one at a time in the
//! follower, so a storm of spike events can never queue unbounded work; host-level spikes and the
//! edge's own reports are skipped.

use crate::{ControlError, EdgeControl, TRAFFIC_SPIKE_TOPIC};
use eddy_bus::consumer::{EventConsumer, Received};
use eddy_bus::{Bus, StartFrom};
use eddy_events::Event;
use std::sync::Arc;
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
                Ok(cached) => {
                    tracing::info!(edge = %self.edge.edge_id(), url = %s.key, from = %s.edge, cached, "pre-warmed a spiking object")
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
