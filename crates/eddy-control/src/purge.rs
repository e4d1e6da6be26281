//! Purge fan-out and catch-up.

use crate::{ControlError, EdgeControl, PURGE_APPLIED_TOPIC, PURGE_REQUESTED_TOPIC, event_id};
use bytes::Bytes;
use eddy_bus::consumer::{EventConsumer, Received};
use eddy_bus::{Bus, StartFrom};
use eddy_events::{Event, PurgeApplied, PurgeRequested, PurgeTarget};
use std::sync::Arc;
use tokio::sync::watch;

/// The JSON body of a purge command (`POST /purge` on an edge's admin API or on `eddy control`):
/// exactly one of `url`, `prefix`, `key` or `"all": true`, and `soft`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// A URL (`http://host/path` or `host/path`): every stored variant.
    pub url: Option<String>,
    /// A URL prefix (`host/path/`, or a bare `host` for all of it): everything below it.
    pub prefix: Option<String>,
    /// A surrogate key.
    pub key: Option<String>,
    /// Everything in the cache (only with a token).
    #[serde(default)]
    pub all: bool,
    /// Mark stale (revalidate) instead of removing.
    #[serde(default)]
    pub soft: bool,
}

/// Why a purge command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The body is not a valid command: answer 400 with this message.
    #[error("{0}")]
    Invalid(String),
    /// Purging everything without a token: answer 403.
    #[error(
        "purging everything needs a token: configure one (edge.admin_token, [control] token) and send Authorization: Bearer <token>"
    )]
    NeedsToken,
}

impl PurgeBody {
    /// The target, checked by the one constructor every door uses ([`PurgeTarget::url`] and
    /// friends), or what is wrong.
    pub fn target(&self) -> Result<PurgeTarget, String> {
        let t = match (&self.url, &self.prefix, &self.key, self.all) {
            (Some(u), None, None, false) => PurgeTarget::url(u),
            (None, Some(p), None, false) => PurgeTarget::prefix(p),
            (None, None, Some(k), false) => PurgeTarget::key(k),
            (None, None, None, true) => Ok(PurgeTarget::All),
            _ => {
                return Err(
                    "give exactly one of \"url\", \"prefix\", \"key\" or \"all\": true".into(),
                );
            }
        };
        t.map_err(|e| e.to_string())
    }
}

/// A purge command from an HTTP request: its JSON `body` and its headers (through `header`), as
/// (target, soft), or why it is refused. `with_token`: the request presented a configured token
/// (purging everything needs one). Every purge front door (an edge's admin API, `eddy control`)
/// reads commands through this.
pub fn command<'a>(
    body: &[u8],
    header: impl Fn(&str) -> Option<&'a str>,
    with_token: bool,
) -> Result<(PurgeTarget, bool), CommandError> {
    let req: PurgeBody = serde_json::from_slice(body).map_err(|e| {
        CommandError::Invalid(format!(
            "purge body is not valid JSON of the form {{\"url\"|\"prefix\"|\"key\": \"...\", \"soft\": bool}} or {{\"all\": true}}: {e}"
        ))
    })?;
    let target = req.target().map_err(CommandError::Invalid)?;
    if target == PurgeTarget::All && !with_token {
        return Err(CommandError::NeedsToken);
    }
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

    /// The consumer's counters: events delivered and applied, duplicates, and dead letters (events
    /// that do not decode, a purge target that fails its checks included: never applied).
    pub fn stats(&self) -> Arc<eddy_bus::consumer::ConsumerStats> {
        self.consumer.stats.clone()
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
                // Decoding checked the target (PurgeTarget's constructors).
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
