//! # eddy-control: reactions
//!
//! Events come in from the bus, actions go out to edges through one seam, [`EdgeControl`], which
//! each edge implements (and tests fake). Reactions never reach into an edge's internals.
//!
//! This crate holds, so far:
//! - [`purge`]: purge fan-out. [`purge::request`] publishes `purge.requested`; every edge runs a
//!   [`purge::PurgeFollower`] as its own consumer (`edge-<id>`), applies each purge through
//!   [`EdgeControl::purge`], publishes `purge.applied`, commits. On start an edge first
//!   [catches up](purge::PurgeFollower::catch_up) on purges published while it was down, and
//!   only then serves.
//! - [`content`]: `content.updated` (from an origin or CMS) becomes purge requests.
//! - [`audit`]: the audit trail of admin operations, recorded by edges and the control plane
//!   and published on [`AUDIT_TOPIC`].
//! - [`guard`]: the adaptive-quality guard's policy (QoE samples in, bitrate caps out), which
//!   each edge runs over its own players' telemetry.
//!
//! Must not touch: caches, HTTP servers, pingora.

pub mod audit;
pub mod content;
pub mod guard;
pub mod prewarm;
pub mod purge;
pub mod spike;

use async_trait::async_trait;
use eddy_events::PurgeTarget;

/// Topic of `purge.requested` events.
pub const PURGE_REQUESTED_TOPIC: &str = "eddy.purge.requested";
/// Topic of `purge.applied` events.
pub const PURGE_APPLIED_TOPIC: &str = "eddy.purge.applied";
/// Topic of `content.updated` events.
pub const CONTENT_TOPIC: &str = "eddy.content";
/// Topic of `dev.eddy.traffic.spike.v1`: edges publish what their detectors see.
pub const TRAFFIC_SPIKE_TOPIC: &str = "eddy.traffic.spike";
/// Topic of `dev.eddy.origin.health.v1`: edges publish their origins' state changes.
pub const ORIGIN_HEALTH_TOPIC: &str = "eddy.origin.health";
/// Topic of `dev.eddy.edge.health.v1`: every edge and shield publishes its heartbeat here.
pub const EDGE_HEALTH_TOPIC: &str = "eddy.edge.health";
/// Topic of `dev.eddy.segment.published.v1`: a packager announces each new segment and LL-HLS
/// part here (keyed by its stream, the media playlist's path), so edges can answer held
/// playlist requests the moment a part exists.
pub const SEGMENT_TOPIC: &str = "eddy.segment.published";
/// Topic of `dev.eddy.qoe.samples.v1`: each edge's batch of player telemetry (CMCD) samples, at
/// most one event per edge per second, keyed by the edge.
pub const QOE_TOPIC: &str = "eddy.qoe.samples";
/// Topic of `dev.eddy.qoe.guard.v1`: each edge's quality guard decisions (a bitrate cap set,
/// moved or lifted, with its reason), keyed by edge and title.
pub const QOE_GUARD_TOPIC: &str = "eddy.qoe.guard";
/// Who asked a node's API to do what (`dev.eddy.audit.v1`).
pub const AUDIT_TOPIC: &str = "eddy.audit";
/// Viewers' interactions with items (`dev.eddy.interaction.v1`), keyed by viewer: what the
/// control plane folds into trending, recommendations and forecasts.
pub const INTERACTION_TOPIC: &str = "eddy.interaction";
/// Objects likely to get hot (`dev.eddy.prewarm.v1`), keyed by the first object: every edge
/// fetches those it lacks, within its byte budget.
pub const PREWARM_TOPIC: &str = "eddy.prewarm";

/// Why a reaction failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The bus failed.
    #[error("event bus: {0}")]
    Bus(#[from] eddy_bus::BusError),
    /// The edge could not apply an action.
    #[error("edge {edge}: {detail}")]
    Edge {
        /// Edge id.
        edge: String,
        /// What failed.
        detail: String,
    },
}

/// What reactions may ask of an edge.
#[async_trait]
pub trait EdgeControl: Send + Sync {
    /// The edge's id (its consumer name is `edge-<id>`).
    fn edge_id(&self) -> &str;

    /// Purge `target` from this edge's cache, removing (hard) or marking stale (`soft`). Must be
    /// idempotent: the same purge applied twice leaves the same cache. Returns the objects
    /// affected now.
    async fn purge(&self, target: &PurgeTarget, soft: bool) -> Result<u64, ControlError>;

    /// Fetch `url` (`host/path?query`, the cache's URL form) into this edge's cache as if a
    /// viewer had asked for it, following the edge's normal cache rules (an object the origin
    /// marks uncacheable stays uncached). Returns the body's length when the answer was a 2xx,
    /// `None` for any other answer.
    async fn prefetch(&self, url: &str) -> Result<Option<u64>, ControlError>;

    /// Whether this edge's cache holds `url` now (index lookups only, no I/O): a pre-warm
    /// skips what is held, so it spends no budget on it.
    fn holds(&self, url: &str) -> bool;

    /// The edge's region (`[edge] region`), if it has one: pre-warm hints for another region
    /// are skipped.
    fn region(&self) -> Option<&str> {
        None
    }
}

/// Anything that applies the events of its own consumer, driven by [`follow`]: the edges'
/// reactions here, and the router's and the dashboard's views of the fleet.
#[async_trait]
pub trait Follower: Send {
    /// What it follows, for logs.
    const WHAT: &'static str;
    /// Its consumer.
    fn consumer(&mut self) -> &mut eddy_bus::consumer::EventConsumer;
    /// The node it acts for, for logs.
    fn who(&self) -> &str;
    /// Apply one event and commit it.
    async fn apply(&mut self, r: eddy_bus::consumer::Received) -> Result<(), ControlError>;
}

/// Apply events as they arrive until `shutdown` turns true. Errors are logged and retried with a
/// growing back-off (50 ms doubling, capped at 5 s); the loop never spins. Shutdown interrupts a
/// wait for the next event or a back-off, never an event being applied.
pub async fn follow<F: Follower>(mut f: F, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    use std::time::Duration;
    let mut backoff = Duration::from_millis(50);
    let stopped =
        |f: &F| tracing::info!(node = %f.who(), "{} follower stopped: shutting down", F::WHAT);
    loop {
        let next = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => {
                stopped(&f);
                return;
            }
            r = f.consumer().next() => r,
        };
        let result = match next {
            Ok(r) => f.apply(r).await,
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => {
                tracing::error!(node = %f.who(), error = %e, retry_in = ?backoff, "{} follower failed", F::WHAT);
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => {
                        stopped(&f);
                        return;
                    }
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A unique event id: time, process and a counter.
pub fn event_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{nanos:x}-{:x}-{:x}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}
