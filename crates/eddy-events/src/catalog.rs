//! The event catalog (see ARCHITECTURE.md, Events): typed payloads and their `type` names.

use crate::envelope::{CloudEvent, EventError};
use crate::interest::{Interaction, Prewarm};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `dev.eddy.content.updated.v1`: an origin or CMS says content changed.
pub const CONTENT_UPDATED: &str = "dev.eddy.content.updated.v1";
/// `dev.eddy.purge.requested.v1`: purge this on every edge.
pub const PURGE_REQUESTED: &str = "dev.eddy.purge.requested.v1";
/// `dev.eddy.purge.applied.v1`: an edge applied a purge.
pub const PURGE_APPLIED: &str = "dev.eddy.purge.applied.v1";
/// `dev.eddy.origin.health.v1`.
pub const ORIGIN_HEALTH: &str = "dev.eddy.origin.health.v1";
/// `dev.eddy.edge.health.v1`.
pub const EDGE_HEALTH: &str = "dev.eddy.edge.health.v1";
/// `dev.eddy.traffic.spike.v1`.
pub const TRAFFIC_SPIKE: &str = "dev.eddy.traffic.spike.v1";
/// `dev.eddy.qoe.cmcd.v1`.
pub const QOE_CMCD: &str = "dev.eddy.qoe.cmcd.v1";
/// `dev.eddy.qoe.samples.v1`.
pub const QOE_SAMPLES: &str = "dev.eddy.qoe.samples.v1";
/// `dev.eddy.qoe.guard.v1`.
pub const QOE_GUARD: &str = "dev.eddy.qoe.guard.v1";
/// `dev.eddy.interaction.v1`: a viewer played, finished, liked or skipped an item.
pub const INTERACTION: &str = "dev.eddy.interaction.v1";
/// `dev.eddy.prewarm.v1`: objects likely to get hot, for edges to fetch ahead of demand.
pub const PREWARM: &str = "dev.eddy.prewarm.v1";
/// `dev.eddy.segment.published.v1`.
pub const SEGMENT_PUBLISHED: &str = "dev.eddy.segment.published.v1";
/// `dev.eddy.audit.v1`: who asked a node to do something, and what came of it.
pub const AUDIT: &str = "dev.eddy.audit.v1";

/// What a purge reaches. JSON: `{"url": "host/path"}`, `{"prefix": "host/dir/"}`,
/// `{"key": "surrogate-key"}` or `"all"`.
///
/// Every door builds it through [`PurgeTarget::url`], [`PurgeTarget::prefix`] or
/// [`PurgeTarget::key`], and decoding an event does too (a target that fails them makes the event
/// undecodable: it is counted and dead-lettered, never applied). URLs and prefixes are kept in the
/// canonical form cache keys have ([`eddy_url`]), so a purge reaches every spelling a viewer
/// could have used. An empty prefix never means "everything": that is [`PurgeTarget::All`], a
/// command of its own that the front doors accept only with a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "RawPurgeTarget")]
pub enum PurgeTarget {
    /// One URL (every stored variant), as `host/path?query`.
    Url(String),
    /// Every URL under a prefix, `host/path`.
    Prefix(String),
    /// Every object tagged with a surrogate key.
    Key(String),
    /// Everything in the cache.
    All,
}

/// The wire form of a [`PurgeTarget`] before it is checked.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawPurgeTarget {
    Url(String),
    Prefix(String),
    Key(String),
    All,
}

impl TryFrom<RawPurgeTarget> for PurgeTarget {
    type Error = TargetError;
    fn try_from(raw: RawPurgeTarget) -> Result<Self, TargetError> {
        match raw {
            RawPurgeTarget::Url(u) => PurgeTarget::url(&u),
            RawPurgeTarget::Prefix(p) => PurgeTarget::prefix(&p),
            RawPurgeTarget::Key(k) => PurgeTarget::key(&k),
            RawPurgeTarget::All => Ok(PurgeTarget::All),
        }
    }
}

/// Longest surrogate key accepted (Fastly's limit is 1024 bytes).
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a purge target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// A URL that does not normalise.
    #[error("purge url: {0}")]
    Url(eddy_url::UrlError),
    /// A prefix that does not normalise (an empty prefix included).
    #[error("purge prefix: {0} (to purge everything, send the purge-all command with a token)")]
    Prefix(eddy_url::UrlError),
    /// A surrogate key that is empty, too long, or has spaces or controls.
    #[error("surrogate key {0:?} is not 1-{MAX_KEY_BYTES} visible ASCII characters without spaces")]
    Key(String),
}

impl PurgeTarget {
    /// A URL target, `http://Host/a/../b` or `host/b`, in canonical form.
    pub fn url(u: &str) -> Result<PurgeTarget, TargetError> {
        eddy_url::content_url(u, |_| Default::default())
            .map(PurgeTarget::Url)
            .map_err(TargetError::Url)
    }

    /// A prefix target, `host/dir/` (a bare host is its whole site, `host/`), in canonical form.
    pub fn prefix(p: &str) -> Result<PurgeTarget, TargetError> {
        eddy_url::content_prefix(p, |_| Default::default())
            .map(PurgeTarget::Prefix)
            .map_err(TargetError::Prefix)
    }

    /// A surrogate key target.
    pub fn key(k: &str) -> Result<PurgeTarget, TargetError> {
        if k.is_empty() || k.len() > MAX_KEY_BYTES || !k.bytes().all(|b| b.is_ascii_graphic()) {
            let shown: String = k.chars().take(80).collect();
            return Err(TargetError::Key(shown));
        }
        Ok(PurgeTarget::Key(k.to_string()))
    }

    /// A stable text form, used as the ordering key.
    pub fn as_key(&self) -> String {
        match self {
            PurgeTarget::Url(u) => format!("url:{u}"),
            PurgeTarget::Prefix(p) => format!("prefix:{p}"),
            PurgeTarget::Key(k) => format!("key:{k}"),
            PurgeTarget::All => "all".to_string(),
        }
    }
}

/// `dev.eddy.purge.requested.v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRequested {
    /// What to purge.
    pub target: PurgeTarget,
    /// Mark stale (revalidate) instead of removing.
    #[serde(default)]
    pub soft: bool,
}

/// `dev.eddy.purge.applied.v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeApplied {
    /// The edge that applied it.
    pub edge: String,
    /// The `id` of the purge.requested event.
    pub request_id: String,
    /// Objects removed or marked stale at once.
    pub objects: u64,
}

/// `dev.eddy.content.updated.v1`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContentUpdated {
    /// Changed URLs (`host/path` or `http://host/path`).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Changed surrogate keys.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Changed URL prefixes.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Revalidate rather than remove.
    #[serde(default)]
    pub soft: bool,
    /// Fetch the new version again on the edges that had it.
    #[serde(default)]
    pub rewarm: bool,
}

/// `dev.eddy.origin.health.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OriginHealth {
    /// Origin URL.
    pub origin: String,
    /// Usable or not.
    pub healthy: bool,
    /// Reporting edge.
    #[serde(default)]
    pub edge: Option<String>,
    /// Why.
    #[serde(default)]
    pub detail: Option<String>,
}

/// `dev.eddy.edge.health.v1`: a node's heartbeat. Every edge and shield publishes one every
/// `interval_ms` while it serves, and a last one with `healthy = false` when it stops cleanly. A
/// node whose heartbeats stop (crash, partition) is down for consumers after a few missed
/// intervals; the router and the dashboard decide how many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeHealth {
    /// Edge id.
    pub edge: String,
    /// Serving or not.
    pub healthy: bool,
    /// Load, 0..1: requests/s over the last interval divided by the node's configured capacity.
    #[serde(default)]
    pub load: Option<f64>,
    /// `edge` (serves viewers) or `shield` (serves edges only).
    #[serde(default)]
    pub role: Option<String>,
    /// Where viewers reach it, e.g. `http://198.51.100.7:8080`.
    #[serde(default)]
    pub url: Option<String>,
    /// Its admin API (`/metrics`, `/purge`).
    #[serde(default)]
    pub admin: Option<String>,
    /// The next heartbeat is due within this many milliseconds.
    #[serde(default)]
    pub interval_ms: Option<u64>,
    /// Requests/s the node is sized for (`load` is requests/s over this).
    #[serde(default)]
    pub capacity_rps: Option<u64>,
    /// Counters since the node started (consumers take differences for rates).
    #[serde(default)]
    pub stats: Option<EdgeStats>,
}

/// Cumulative counters of one node, carried by its heartbeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeStats {
    /// Client requests answered.
    pub requests: u64,
    /// Of those, served from cache (fresh, stale or revalidated).
    pub hits: u64,
    /// Requests sent to an origin.
    pub origin_fetches: u64,
    /// Requests sent to a shield.
    #[serde(default)]
    pub shield_fetches: u64,
    /// Answers that were errors (5xx made by the edge).
    #[serde(default)]
    pub errors: u64,
    /// Response body bytes sent.
    #[serde(default)]
    pub bytes_sent: u64,
    /// Purges applied.
    #[serde(default)]
    pub purges: u64,
    /// Traffic spikes detected.
    #[serde(default)]
    pub spikes: u64,
}

/// `dev.eddy.traffic.spike.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficSpike {
    /// Reporting edge.
    pub edge: String,
    /// Object URL or host.
    pub key: String,
    /// Requests/s now.
    pub rate: f64,
    /// Baseline requests/s.
    pub baseline: f64,
}

/// `dev.eddy.qoe.cmcd.v1`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QoeCmcd {
    /// CMCD session id (`sid`).
    pub session: String,
    /// Buffer length, ms (`bl`).
    #[serde(default)]
    pub buffer_ms: Option<u64>,
    /// Measured throughput, kbit/s (`mtp`).
    #[serde(default)]
    pub throughput_kbps: Option<u64>,
    /// Encoded bitrate, kbit/s (`br`).
    #[serde(default)]
    pub bitrate_kbps: Option<u64>,
    /// Buffer starvation seen (`bs`).
    #[serde(default)]
    pub stalled: bool,
    /// Requested object.
    #[serde(default)]
    pub url: Option<String>,
}

/// One CMCD-carrying request as an edge saw it: what the player said, with the object it asked
/// for. Rates kbit/s, durations ms, as CTA-5004 has them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QoeSample {
    /// The canonical URL asked for, without its query (`host/path`).
    pub url: String,
    /// Milliseconds since the batch's window began.
    #[serde(default)]
    pub at_ms: u32,
    /// Session id (`sid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Content id (`cid`): the title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Object type (`ot`), as CMCD spells it (`v`, `a`, `av`, `i`, `m`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ot: Option<String>,
    /// Encoded bitrate of the object (`br`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub br: Option<u32>,
    /// Top bitrate the player may pick (`tb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tb: Option<u32>,
    /// Throughput the player measured (`mtp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtp: Option<u32>,
    /// Buffer length (`bl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bl: Option<u32>,
    /// Object duration (`d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<u32>,
    /// The buffer ran dry since the last request (`bs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bs: bool,
    /// Startup or urgent (`su`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub su: bool,
    /// Live stream (`st=l`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub live: bool,
    /// A CMCD v2 event report (`e`), as CMCD spells it (`ps`, `bc`, `e`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Player state (`sta`, v2), as CMCD spells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sta: Option<String>,
    /// The client's network: its address cut to the edge's guard prefix (`203.0.113.0/24`),
    /// never the whole address. Players behind one network share its last mile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
}

/// `dev.eddy.qoe.samples.v1`: one edge's QoE samples of one window (at most one event per edge
/// per second).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QoeSamples {
    /// The edge that saw them.
    pub edge: String,
    /// When the window began, Unix ms.
    pub since_ms: u64,
    /// The samples, in arrival order.
    pub samples: Vec<QoeSample>,
    /// Samples of this window the edge could not keep (queue or batch full).
    #[serde(default)]
    pub dropped: u64,
}

/// `dev.eddy.qoe.guard.v1`: an edge's quality guard set, moved or lifted a bitrate cap for a
/// title, for clients' networks, or for the whole edge. Rates kbit/s.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QoeGuard {
    /// The edge that decided.
    pub edge: String,
    /// The title (`cid`) capped; `None` (and no `network`): every title on the edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A client network capped (`203.0.113.0/24`): every player in it, whatever it watches.
    /// When one second's decisions moved several networks the same way they make one event:
    /// this is the first of them and `networks` counts them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// How many networks this decision moved (0 when it is about a title or the edge).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub networks: u32,
    /// The cap from now on; `None`: lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_kbps: Option<u32>,
    /// The cap before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_kbps: Option<u32>,
    /// Why, as a token: `starvation`, `low_buffer`, `throughput`, `recovered`.
    pub reason: String,
    /// Why, for people.
    #[serde(default)]
    pub detail: String,
    /// Sessions in the scope.
    #[serde(default)]
    pub sessions: u32,
    /// Of them, in trouble.
    #[serde(default)]
    pub troubled: u32,
}

/// `dev.eddy.segment.published.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentPublished {
    /// Stream id.
    pub stream: String,
    /// Segment or part URI.
    pub uri: String,
    /// Media sequence number.
    pub msn: u64,
    /// LL-HLS part index, if a part.
    #[serde(default)]
    pub part: Option<u64>,
}

/// `dev.eddy.audit.v1`: an operation on a node's API (purge, event ingest, certificate
/// reload), who asked and what came of it. Never carries a secret: `actor` is a token's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Audit {
    /// The node that was asked.
    pub node: String,
    /// Who asked: an API token's name, `anonymous` (no tokens configured), `no token`,
    /// `unknown token`, or `SIGHUP`.
    pub actor: String,
    /// The client's address, when over the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// What was asked: `purge`, `events`, `tls.reload`.
    pub action: String,
    /// `ok`, `refused` (not allowed), or `failed` (allowed, did not work).
    pub outcome: String,
    /// What was purged or published, or why it was refused or failed.
    #[serde(default)]
    pub detail: String,
}

/// A decoded event of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Content changed.
    ContentUpdated(ContentUpdated),
    /// Purge command.
    PurgeRequested(PurgeRequested),
    /// Purge applied by an edge.
    PurgeApplied(PurgeApplied),
    /// Origin health.
    OriginHealth(OriginHealth),
    /// Edge health.
    EdgeHealth(EdgeHealth),
    /// Traffic spike.
    TrafficSpike(TrafficSpike),
    /// Player telemetry.
    QoeCmcd(QoeCmcd),
    /// An edge's batch of QoE samples.
    QoeSamples(QoeSamples),
    /// An edge's quality guard decided.
    QoeGuard(QoeGuard),
    /// A viewer's interaction with an item.
    Interaction(Interaction),
    /// Objects to fetch ahead of demand.
    Prewarm(Prewarm),
    /// LL-HLS segment or part published.
    SegmentPublished(SegmentPublished),
    /// An operation on a node's API.
    Audit(Audit),
    /// A type this build does not know: skipped by consumers, never an error.
    Unknown {
        /// Its `type`.
        ty: String,
    },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn data<T: DeserializeOwned>(ev: &CloudEvent) -> Result<T, EventError> {
    let v = ev.data.clone().unwrap_or(serde_json::Value::Null);
    serde_json::from_value(v).map_err(|e| EventError::BadData {
        ty: ev.ty.clone(),
        reason: e.to_string(),
    })
}

impl Event {
    /// Decode the payload of a checked envelope. Unknown types become [`Event::Unknown`]; a
    /// known type with malformed data is an error (dead-letter it).
    pub fn from_cloud(ev: &CloudEvent) -> Result<Event, EventError> {
        Ok(match ev.ty.as_str() {
            CONTENT_UPDATED => Event::ContentUpdated(data(ev)?),
            PURGE_REQUESTED => Event::PurgeRequested(data(ev)?),
            PURGE_APPLIED => Event::PurgeApplied(data(ev)?),
            ORIGIN_HEALTH => Event::OriginHealth(data(ev)?),
            EDGE_HEALTH => Event::EdgeHealth(data(ev)?),
            TRAFFIC_SPIKE => Event::TrafficSpike(data(ev)?),
            QOE_CMCD => Event::QoeCmcd(data(ev)?),
            QOE_SAMPLES => Event::QoeSamples(data(ev)?),
            QOE_GUARD => Event::QoeGuard(data(ev)?),
            INTERACTION => Event::Interaction(data(ev)?),
            PREWARM => Event::Prewarm(data(ev)?),
            SEGMENT_PUBLISHED => Event::SegmentPublished(data(ev)?),
            AUDIT => Event::Audit(data(ev)?),
            other => Event::Unknown {
                ty: other.to_string(),
            },
        })
    }

    /// Decode bytes all the way: envelope, then payload.
    pub fn decode(bytes: &[u8]) -> Result<(CloudEvent, Event), EventError> {
        let ev = CloudEvent::decode(bytes)?;
        let typed = Event::from_cloud(&ev)?;
        Ok((ev, typed))
    }

    /// The CloudEvents `type`.
    pub fn type_name(&self) -> &str {
        match self {
            Event::ContentUpdated(_) => CONTENT_UPDATED,
            Event::PurgeRequested(_) => PURGE_REQUESTED,
            Event::PurgeApplied(_) => PURGE_APPLIED,
            Event::OriginHealth(_) => ORIGIN_HEALTH,
            Event::EdgeHealth(_) => EDGE_HEALTH,
            Event::TrafficSpike(_) => TRAFFIC_SPIKE,
            Event::QoeCmcd(_) => QOE_CMCD,
            Event::QoeSamples(_) => QOE_SAMPLES,
            Event::QoeGuard(_) => QOE_GUARD,
            Event::Interaction(_) => INTERACTION,
            Event::Prewarm(_) => PREWARM,
            Event::SegmentPublished(_) => SEGMENT_PUBLISHED,
            Event::Audit(_) => AUDIT,
            Event::Unknown { ty } => ty,
        }
    }

    /// The ordering key: events with the same key are delivered in order.
    pub fn key(&self) -> String {
        match self {
            Event::ContentUpdated(c) => c
                .urls
                .first()
                .or(c.keys.first())
                .or(c.prefixes.first())
                .cloned()
                .unwrap_or_default(),
            Event::PurgeRequested(p) => p.target.as_key(),
            Event::PurgeApplied(a) => a.edge.clone(),
            Event::OriginHealth(h) => h.origin.clone(),
            Event::EdgeHealth(h) => h.edge.clone(),
            Event::TrafficSpike(s) => s.key.clone(),
            Event::QoeCmcd(q) => q.session.clone(),
            Event::QoeSamples(q) => q.edge.clone(),
            Event::QoeGuard(g) => match &g.title {
                Some(t) => format!("{}/{t}", g.edge),
                None => g.edge.clone(),
            },
            Event::Interaction(i) => i.viewer.clone(),
            Event::Prewarm(p) => p.urls.first().cloned().unwrap_or_default(),
            Event::SegmentPublished(s) => s.stream.clone(),
            Event::Audit(a) => a.node.clone(),
            Event::Unknown { .. } => String::new(),
        }
    }

    fn payload(&self) -> serde_json::Value {
        let r = match self {
            Event::ContentUpdated(x) => serde_json::to_value(x),
            Event::PurgeRequested(x) => serde_json::to_value(x),
            Event::PurgeApplied(x) => serde_json::to_value(x),
            Event::OriginHealth(x) => serde_json::to_value(x),
            Event::EdgeHealth(x) => serde_json::to_value(x),
            Event::TrafficSpike(x) => serde_json::to_value(x),
            Event::QoeCmcd(x) => serde_json::to_value(x),
            Event::QoeSamples(x) => serde_json::to_value(x),
            Event::QoeGuard(x) => serde_json::to_value(x),
            Event::Interaction(x) => serde_json::to_value(x),
            Event::Prewarm(x) => serde_json::to_value(x),
            Event::SegmentPublished(x) => serde_json::to_value(x),
            Event::Audit(x) => serde_json::to_value(x),
            Event::Unknown { .. } => Ok(serde_json::Value::Null),
        };
        r.unwrap_or(serde_json::Value::Null)
    }

    /// Wrap in a CloudEvent with this `id` and `source`; the subject is the ordering key.
    pub fn to_cloud(&self, id: impl Into<String>, source: impl Into<String>) -> CloudEvent {
        let mut ev = CloudEvent::new(id, source, self.type_name(), self.payload());
        let key = self.key();
        if !key.is_empty() {
            ev.subject = Some(key);
        }
        ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purge_event(target: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "specversion": "1.0", "id": "1", "source": "/t", "type": PURGE_REQUESTED,
            "data": {"target": target},
        }))
        .unwrap_or_default()
    }

    /// Issue 11 item 6: an event whose purge target fails the constructor does not decode, so it
    /// is dead-lettered and never applied; a good one decodes in canonical form.
    #[test]
    fn purge_targets_are_checked_when_an_event_is_decoded() {
        for bad in [
            serde_json::json!({"prefix": ""}),
            serde_json::json!({"prefix": "/obj"}),
            serde_json::json!({"url": ""}),
            serde_json::json!({"url": "h/a b"}),
            serde_json::json!({"key": ""}),
            serde_json::json!({"key": "a b"}),
            serde_json::json!({"key": "x".repeat(MAX_KEY_BYTES + 1)}),
        ] {
            assert!(Event::decode(&purge_event(bad.clone())).is_err(), "{bad}");
        }
        let ok = Event::decode(&purge_event(
            serde_json::json!({"url": "http://H:80/a/../%62"}),
        ));
        assert!(
            matches!(&ok, Ok((_, Event::PurgeRequested(p))) if p.target == PurgeTarget::Url("h/b".into())),
            "{ok:?}"
        );
        let all = Event::decode(&purge_event(serde_json::json!("all")));
        assert!(matches!(&all, Ok((_, Event::PurgeRequested(p))) if p.target == PurgeTarget::All));
        assert_eq!(
            PurgeTarget::prefix("Example.com"),
            Ok(PurgeTarget::Prefix("example.com/".into()))
        );
        let msg = PurgeTarget::prefix("").map_or_else(|e| e.to_string(), |_| String::new());
        assert!(msg.contains("purge-all"), "{msg}");
    }

    #[test]
    fn every_type_round_trips() -> Result<(), EventError> {
        let events = vec![
            Event::ContentUpdated(ContentUpdated {
                urls: vec!["h/a".into()],
                ..Default::default()
            }),
            Event::PurgeRequested(PurgeRequested {
                target: PurgeTarget::Prefix("h/v/".into()),
                soft: true,
            }),
            Event::PurgeApplied(PurgeApplied {
                edge: "edge-1".into(),
                request_id: "r1".into(),
                objects: 3,
            }),
            Event::OriginHealth(OriginHealth {
                origin: "http://o".into(),
                healthy: false,
                edge: None,
                detail: Some("refused".into()),
            }),
            Event::EdgeHealth(EdgeHealth {
                edge: "e".into(),
                healthy: true,
                load: Some(0.5),
                role: Some("edge".into()),
                url: Some("http://127.0.0.1:8080".into()),
                admin: Some("http://127.0.0.1:9080".into()),
                interval_ms: Some(250),
                capacity_rps: Some(50_000),
                stats: Some(EdgeStats {
                    requests: 10,
                    hits: 9,
                    origin_fetches: 1,
                    ..Default::default()
                }),
            }),
            Event::TrafficSpike(TrafficSpike {
                edge: "e".into(),
                key: "h/hot".into(),
                rate: 5000.0,
                baseline: 10.0,
            }),
            Event::QoeCmcd(QoeCmcd {
                session: "s".into(),
                buffer_ms: Some(1200),
                ..Default::default()
            }),
            Event::QoeSamples(QoeSamples {
                edge: "e".into(),
                since_ms: 1,
                samples: vec![QoeSample {
                    url: "v.test/seg.m4s".into(),
                    sid: Some("s".into()),
                    br: Some(2306),
                    bs: true,
                    ..Default::default()
                }],
                dropped: 3,
            }),
            Event::QoeGuard(QoeGuard {
                edge: "e".into(),
                title: Some("film".into()),
                cap_kbps: Some(600),
                reason: "throughput".into(),
                detail: "players measured 500 kbit/s while pulling 1200 kbit/s".into(),
                sessions: 1,
                troubled: 1,
                ..Default::default()
            }),
            Event::Interaction(Interaction {
                viewer: "u".into(),
                item: "i".into(),
                action: crate::Action::Play,
                region: Some("eu".into()),
                url: Some("h/i/master.m3u8".into()),
            }),
            Event::Prewarm(Prewarm {
                urls: vec!["h/i/seg-1.m4s".into()],
                reason: crate::PrewarmReason::Rising,
                item: Some("i".into()),
                region: None,
                forecast: 2.5,
            }),
            Event::SegmentPublished(SegmentPublished {
                stream: "live".into(),
                uri: "seg1.m4s".into(),
                msn: 1,
                part: Some(2),
            }),
            Event::Audit(Audit {
                node: "edge-1".into(),
                actor: "cms".into(),
                address: Some("203.0.113.7".into()),
                action: "purge".into(),
                outcome: "ok".into(),
                detail: "prefix v.test/show-1/: 3 objects".into(),
            }),
        ];
        for (i, e) in events.into_iter().enumerate() {
            let ce = e.to_cloud(format!("id-{i}"), "/eddy/test");
            let (back_ce, back) = Event::decode(&ce.encode())?;
            assert_eq!(back, e);
            assert_eq!(back_ce.subject.as_deref().unwrap_or(""), e.key());
        }
        Ok(())
    }

    #[test]
    fn purge_target_json_shape() {
        let p = PurgeRequested {
            target: PurgeTarget::Url("h/a".into()),
            soft: false,
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap_or_default(),
            r#"{"target":{"url":"h/a"},"soft":false}"#
        );
    }

    #[test]
    fn unknown_types_are_not_errors_but_bad_data_is() {
        let ce = CloudEvent::new(
            "1",
            "/x",
            "com.example.other.v3",
            serde_json::json!({"x": 1}),
        );
        assert_eq!(
            Event::from_cloud(&ce),
            Ok(Event::Unknown {
                ty: "com.example.other.v3".into()
            })
        );
        let bad = CloudEvent::new("2", "/x", PURGE_REQUESTED, serde_json::json!({"target": 5}));
        assert!(matches!(
            Event::from_cloud(&bad),
            Err(EventError::BadData { .. })
        ));
    }
}
