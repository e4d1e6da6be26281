//! Purge fan-out and catch-up.

use crate::{ControlError, EdgeControl, PURGE_APPLIED_TOPIC, PURGE_REQUESTED_TOPIC, event_id};
use bytes::Bytes;
use eddy_bus::consumer::{EventConsumer, Received};
use eddy_bus::{Bus, StartFrom};
use eddy_events::{Event, PurgeApplied, PurgeRequested, PurgeTarget};
use std::sync::Arc;
use tokio::sync::watch;

/// The JSON body of a purge command (`POST /purge` on an edge's admin API or on `eddy control`):
/// exactly one of `url`, `prefix`, `key`, and `soft`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// A URL (`http://host/path` or `host/path`): every stored variant.
    pub url: Option<String>,
    /// A URL prefix (`host/path/`): everything below it.
    pub prefix: Option<String>,
    /// A surrogate key.
    pub key: Option<String>,
    /// Mark stale (revalidate) instead of removing.
    #[serde(default)]
    pub soft: bool,
}

impl PurgeBody {
    /// The target in the form edges key objects by, or a message saying what is wrong.
    pub fn target(&self) -> Result<PurgeTarget, &'static str> {
        match (&self.url, &self.prefix, &self.key) {
            (Some(u), None, None) if !u.is_empty() => {
                Ok(PurgeTarget::Url(crate::content::normalise(u)))
            }
            (None, Some(p), None) if !p.is_empty() => {
                Ok(PurgeTarget::Prefix(crate::content::normalise_prefix(p)))
            }
            (None, None, Some(k)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                Ok(PurgeTarget::Key(k.clone()))
            }
            _ => Err(
                "give exactly one non-empty field of \"url\", \"prefix\" or \"key\" (a key has no spaces)",
            ),
        }
    }
}

/// A purge command from an HTTP request: its JSON `body` and its headers (through `header`), as
/// (target, soft), or a message for a 400 saying what is wrong. Every purge front door (an edge's
/// admin API, `eddy control`) reads commands through this.
pub fn command<'a>(
    body: &[u8],
    header: impl Fn(&str) -> Option<&'a str>,
) -> Result<(PurgeTarget, bool), String> {
    let req: PurgeBody = serde_json::from_slice(body).map_err(|e| {
        format!(
            "purge body is not valid JSON of the form {{\"url\"|\"prefix\"|\"key\": \"...\", \"soft\": bool}}: {e}"
        )
    })?;
    let target = req.target().map_err(str::to_string)?;
    Ok((target, req.soft || soft_header(header)))
}

/// Whether request headers ask for a soft purge (`Fastly-Soft-Purge: 1` or `Eddy-Soft-Purge: 1`),
/// given a header lookup.
fn soft_header<'a>(get: impl Fn(&str) -> Option<&'a str>) -> bool {
    ["fastly-soft-purge", "eddy-soft-purge"]
        .iter()
        .any(|h| get(h) == Some("1"))
}

/// Publish a `purge.requested` event; returns its id.
pub async fn request(
    bus: &dyn Bus,
    source: &str,
    target: PurgeTarget,
    soft: bool,
) -> Result<String, ControlError> {
    let id = event_id();
    let ev = Event::PurgeRequested(PurgeRequested { target, soft });
    let cloud = ev.to_cloud(id.clone(), source);
    bus.publish(
        PURGE_REQUESTED_TOPIC,
        &ev.key(),
        Bytes::from(cloud.encode()),
    )
    .await?;
    Ok(id)
}

/// One edge's purge consumer.
pub struct PurgeFollower {
    consumer: EventConsumer,
    bus: Arc<dyn Bus>,
    edge: Arc<dyn EdgeControl>,
    source: String,
}

impl PurgeFollower {
    /// Subscribe as `edge-<id>` from the edge's committed position.
    pub async fn start(
        bus: Arc<dyn Bus>,
        edge: Arc<dyn EdgeControl>,
    ) -> Result<Self, ControlError> {
        let name = format!("edge-{}", edge.edge_id());
        let sub = bus
            .subscribe(PURGE_REQUESTED_TOPIC, &name, StartFrom::Committed)
            .await?;
        Ok(PurgeFollower {
            consumer: EventConsumer::new(sub, bus.clone()),
            source: format!("/eddy/edge/{}", edge.edge_id()),
            bus,
            edge,
        })
    }

    /// Apply every purge published so far (while this edge was down). Call before serving.
    /// Returns how many were applied.
    pub async fn catch_up(&mut self) -> Result<u64, ControlError> {
        let mut n = 0;
        while self.consumer.backlog().await? > 0 {
            let r = self.consumer.next().await?;
            if self.apply(r).await? {
                n += 1;
            }
        }
        if n > 0 {
            tracing::info!(edge = %self.edge.edge_id(), purges = n, "caught up on purges published while down");
        }
        Ok(n)
    }

    async fn apply(&mut self, r: Received) -> Result<bool, ControlError> {
        let applied = match &r.event {
            Event::PurgeRequested(p) => {
                let objects = self.edge.purge(&p.target, p.soft).await?;
                let done = Event::PurgeApplied(PurgeApplied {
                    edge: self.edge.edge_id().to_string(),
                    request_id: r.cloud.id.clone(),
                    objects,
                });
                let cloud = done.to_cloud(event_id(), self.source.clone());
                let key = done.key();
                // The purge is applied: committing it and reporting it are independent, so they
                // overlap (a crash between them loses at most one report, never a purge).
                let (reported, committed) = tokio::join!(
                    self.bus
                        .publish(PURGE_APPLIED_TOPIC, &key, Bytes::from(cloud.encode()),),
                    self.consumer.commit(&r)
                );
                committed?;
                reported?;
                return Ok(true);
            }
            other => {
                tracing::debug!(ty = other.type_name(), "not a purge request; skipped");
                false
            }
        };
        self.consumer.commit(&r).await?;
        Ok(applied)
    }

    /// Apply purges as they arrive until `shutdown` turns true. Errors are logged and retried
    /// with a growing back-off (capped at 5 s); the loop never spins.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        crate::follow(self, shutdown).await
    }
}

#[async_trait::async_trait]
impl crate::Follower for PurgeFollower {
    const WHAT: &'static str = "purge";
    fn consumer(&mut self) -> &mut EventConsumer {
        &mut self.consumer
    }
    fn who(&self) -> &str {
        self.edge.edge_id()
    }
    async fn apply(&mut self, r: Received) -> Result<(), ControlError> {
        PurgeFollower::apply(self, r).await.map(|_| ())
    }
}
