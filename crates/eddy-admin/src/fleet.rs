//! The fleet as the dashboard sees it, folded from events: heartbeats (`edge.health`), origin
//! health, traffic spikes, purge requests and the edges' purge reports. Pure: no I/O, times
//! passed in. Every collection is bounded: a misbehaving producer cannot grow it without limit.
//!
//! Rates come from consecutive heartbeats of one node: (counter difference) / (time between their
//! `time` attributes). Purge latency is the time from a `purge.requested` event to each edge's
//! `purge.applied` for it, by event times (the producers' clocks: keep them in sync with NTP).

use eddy_events::{EdgeHealth, EdgeStats, Event};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, SystemTime};

/// Most nodes, origins and in-flight purges remembered.
pub const MAX_NODES: usize = 10_000;
/// Most purge requests waiting for their reports.
pub const MAX_PENDING_PURGES: usize = 10_000;
/// Spike alerts kept.
pub const MAX_SPIKES: usize = 20;
/// Quality guard decisions kept, newest first.
pub const MAX_GUARD: usize = 20;
/// Audit records kept, newest first.
pub const MAX_AUDIT: usize = 50;
/// Purge latencies kept for percentiles.
pub const MAX_LATENCIES: usize = 500;
/// A purge request older than this stops waiting for reports.
const PURGE_WAIT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
struct Node {
    role: String,
    url: Option<String>,
    admin: Option<String>,
    healthy: bool,
    interval: Duration,
    heard: SystemTime,
    stats: EdgeStats,
    rps: f64,
    hit_ratio: Option<f64>,
    origin_rps: f64,
    load: f64,
}

/// One node in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Node id.
    pub id: String,
    /// `edge` or `shield`.
    pub role: String,
    /// Viewer URL.
    pub url: Option<String>,
    /// Admin URL.
    pub admin: Option<String>,
    /// Up: heartbeats healthy and on time.
    pub up: bool,
    /// Requests/s over the last heartbeat interval.
    pub rps: f64,
    /// Hits over requests in the last interval (none when it had no requests).
    pub hit_ratio: Option<f64>,
    /// Origin fetches/s over the last interval.
    pub origin_rps: f64,
    /// Reported load, 0..1.
    pub load: f64,
    /// Counters since the node started.
    pub requests: u64,
    /// Errors since the node started.
    pub errors: u64,
    /// Milliseconds since its last heartbeat.
    pub silent_ms: u64,
}

/// An origin as last reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OriginView {
    /// Origin URL.
    pub origin: String,
    /// Usable.
    pub healthy: bool,
    /// The edge that reported it last.
    pub edge: Option<String>,
    /// Why.
    pub detail: Option<String>,
    /// When (RFC 3339).
    pub since: String,
}

/// A spike alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpikeView {
    /// When (RFC 3339).
    pub time: String,
    /// Reporting edge.
    pub edge: String,
    /// Object URL or host.
    pub key: String,
    /// Requests/s at detection.
    pub rate: f64,
    /// Baseline requests/s.
    pub baseline: f64,
}

/// A quality guard decision (`dev.eddy.qoe.guard.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardView {
    /// When (RFC 3339).
    pub time: String,
    /// The deciding edge.
    pub edge: String,
    /// The title capped; `None` (and no `network`): every title on the edge.
    pub title: Option<String>,
    /// The client network capped (the first, when one decision moved several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// How many client networks the decision moved.
    #[serde(default)]
    pub networks: u32,
    /// The cap from then on, kbit/s; `None`: lifted.
    pub cap_kbps: Option<u32>,
    /// The cap before.
    pub previous_kbps: Option<u32>,
    /// Why, as a token.
    pub reason: String,
    /// Why, for people.
    pub detail: String,
}

/// An operation on a node's API (`dev.eddy.audit.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditView {
    /// When (RFC 3339).
    pub time: String,
    /// The node asked.
    pub node: String,
    /// Who asked (a token's name, never the token).
    pub actor: String,
    /// From where.
    pub address: Option<String>,
    /// What.
    pub action: String,
    /// `ok`, `refused` or `failed`.
    pub outcome: String,
    /// Details.
    pub detail: String,
}

/// Purge completion figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PurgeView {
    /// Purge requests seen.
    pub requested: u64,
    /// Edge reports seen.
    pub applied: u64,
    /// Latency of the latest report, ms.
    pub last_ms: Option<f64>,
    /// Median over the recent reports, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile over the recent reports, ms.
    pub p99_ms: Option<f64>,
}

/// Fleet-wide totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Totals {
    /// Viewer requests/s over the edges (role `edge`).
    pub rps: f64,
    /// Hit ratio over the edges' last intervals.
    pub hit_ratio: Option<f64>,
    /// Origin fetches/s over every node (the origin's load).
    pub origin_rps: f64,
    /// Edges up.
    pub edges_up: usize,
    /// Edges known.
    pub edges: usize,
    /// Shields up.
    pub shields_up: usize,
    /// Origins reported down.
    pub origins_down: usize,
    /// Events folded in so far.
    pub events: u64,
}

/// What the dashboard shows and `eddy status` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    /// When (RFC 3339).
    pub time: String,
    /// Totals.
    pub totals: Totals,
    /// Every node, edges first.
    pub nodes: Vec<NodeView>,
    /// Every origin reported.
    pub origins: Vec<OriginView>,
    /// Recent spike alerts, newest first.
    pub spikes: Vec<SpikeView>,
    /// Recent quality guard decisions, newest first.
    #[serde(default)]
    pub guard: Vec<GuardView>,
    /// Recent operations on nodes' APIs, newest first.
    #[serde(default)]
    pub audit: Vec<AuditView>,
    /// Purge completion.
    pub purge: PurgeView,
    /// Fleet requests/s, one point per push (500 ms), oldest first, at most [`MAX_HISTORY`].
    #[serde(default)]
    pub history: Vec<f64>,
    /// Live QoE from player telemetry, per title and per edge.
    #[serde(default)]
    pub qoe: crate::qoe::QoeView,
}

/// Points of request-rate history kept (two minutes at one per 500 ms).
pub const MAX_HISTORY: usize = 240;

/// The fleet.
#[derive(Debug, Default)]
pub struct Fleet {
    nodes: BTreeMap<String, Node>,
    origins: BTreeMap<String, OriginView>,
    spikes: VecDeque<SpikeView>,
    guard: VecDeque<GuardView>,
    audit: VecDeque<AuditView>,
    pending: HashMap<String, SystemTime>,
    latencies: VecDeque<f64>,
    purge: PurgeView,
    events: u64,
    qoe: crate::qoe::QoeBoard,
    /// Reports that arrived before their request (the two come on different topics), by request.
    early: HashMap<String, Vec<SystemTime>>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl Fleet {
    /// An empty fleet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fold in one event sent at `sent` (its `time`; the receive time when it has none).
    pub fn apply(&mut self, id: &str, event: &Event, sent: SystemTime) {
        self.events += 1;
        match event {
            Event::EdgeHealth(h) => self.heartbeat(h, sent),
            Event::OriginHealth(o)
                if self.origins.len() < MAX_NODES || self.origins.contains_key(&o.origin) =>
            {
                self.origins.insert(
                    o.origin.clone(),
                    OriginView {
                        origin: o.origin.clone(),
                        healthy: o.healthy,
                        edge: o.edge.clone(),
                        detail: o.detail.clone(),
                        since: rfc3339(sent),
                    },
                );
            }
            Event::TrafficSpike(s) => {
                self.spikes.push_front(SpikeView {
                    time: rfc3339(sent),
                    edge: s.edge.clone(),
                    key: s.key.clone(),
                    rate: s.rate,
                    baseline: s.baseline,
                });
                self.spikes.truncate(MAX_SPIKES);
            }
            Event::QoeSamples(q) => self.qoe.apply(q, sent),
            Event::QoeGuard(g) => {
                self.guard.push_front(GuardView {
                    time: rfc3339(sent),
                    edge: g.edge.clone(),
                    title: g.title.clone(),
                    network: g.network.clone(),
                    networks: g.networks,
                    cap_kbps: g.cap_kbps,
                    previous_kbps: g.previous_kbps,
                    reason: g.reason.clone(),
                    detail: g.detail.clone(),
                });
                self.guard.truncate(MAX_GUARD);
            }
            Event::Audit(a) => {
                self.audit.push_front(AuditView {
                    time: rfc3339(sent),
                    node: a.node.clone(),
                    actor: a.actor.clone(),
                    address: a.address.clone(),
                    action: a.action.clone(),
                    outcome: a.outcome.clone(),
                    detail: a.detail.clone(),
                });
                self.audit.truncate(MAX_AUDIT);
            }
            Event::PurgeRequested(_) => {
                self.purge.requested += 1;
                if self.pending.len() >= MAX_PENDING_PURGES {
                    self.pending
                        .retain(|_, t| sent.duration_since(*t).unwrap_or_default() < PURGE_WAIT);
                }
                if self.pending.len() < MAX_PENDING_PURGES {
                    self.pending.insert(id.to_string(), sent);
                }
                for at in self.early.remove(id).unwrap_or_default() {
                    self.latency(sent, at);
                }
            }
            Event::PurgeApplied(a) => {
                self.purge.applied += 1;
                if let Some(t) = self.pending.get(&a.request_id).copied() {
                    self.latency(t, sent);
                } else if self.early.len() < MAX_PENDING_PURGES
                    || self.early.contains_key(&a.request_id)
                {
                    let v = self.early.entry(a.request_id.clone()).or_default();
                    if v.len() < MAX_NODES {
                        v.push(sent);
                    }
                }
            }
            _ => {}
        }
    }

    /// A purge applied at `applied` that was requested at `requested`.
    fn latency(&mut self, requested: SystemTime, applied: SystemTime) {
        let ms = applied
            .duration_since(requested)
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0;
        self.purge.last_ms = Some(ms);
        self.latencies.push_back(ms);
        if self.latencies.len() > MAX_LATENCIES {
            self.latencies.pop_front();
        }
    }

    fn heartbeat(&mut self, h: &EdgeHealth, sent: SystemTime) {
        if !self.nodes.contains_key(&h.edge) && self.nodes.len() >= MAX_NODES {
            return;
        }
        let stats = h.stats.clone().unwrap_or_default();
        let interval = Duration::from_millis(h.interval_ms.unwrap_or(1000).clamp(10, 600_000));
        let (rps, hit_ratio, origin_rps) = match self.nodes.get(&h.edge) {
            Some(old) if sent > old.heard && stats.requests >= old.stats.requests => {
                let secs = sent
                    .duration_since(old.heard)
                    .unwrap_or_default()
                    .as_secs_f64()
                    .max(0.001);
                let dr = stats.requests - old.stats.requests;
                let dh = stats.hits.saturating_sub(old.stats.hits);
                let dof = stats
                    .origin_fetches
                    .saturating_sub(old.stats.origin_fetches);
                (
                    dr as f64 / secs,
                    (dr > 0).then(|| dh as f64 / dr as f64),
                    dof as f64 / secs,
                )
            }
            // An older heartbeat delivered late: ignore it.
            Some(old) if sent <= old.heard => return,
            // First heartbeat, or the node restarted (counters went back).
            _ => (0.0, None, 0.0),
        };
        self.nodes.insert(
            h.edge.clone(),
            Node {
                role: h.role.clone().unwrap_or_else(|| "edge".into()),
                url: h.url.clone(),
                admin: h.admin.clone(),
                healthy: h.healthy,
                interval,
                heard: sent,
                stats,
                rps,
                hit_ratio,
                origin_rps,
                load: h.load.unwrap_or(0.0),
            },
        );
    }

    /// The view at `now`: a node is up while healthy and heard within three intervals.
    pub fn snapshot(&self, now: SystemTime) -> Snapshot {
        let mut nodes: Vec<NodeView> = self
            .nodes
            .iter()
            .map(|(id, n)| {
                let silent = now.duration_since(n.heard).unwrap_or_default();
                let up = n.healthy && silent <= n.interval * 3;
                NodeView {
                    id: id.clone(),
                    role: n.role.clone(),
                    url: n.url.clone(),
                    admin: n.admin.clone(),
                    up,
                    rps: if up { n.rps } else { 0.0 },
                    hit_ratio: n.hit_ratio,
                    origin_rps: if up { n.origin_rps } else { 0.0 },
                    load: n.load,
                    requests: n.stats.requests,
                    errors: n.stats.errors,
                    silent_ms: u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
                }
            })
            .collect();
        nodes.sort_by(|a, b| (a.role != "edge", &a.id).cmp(&(b.role != "edge", &b.id)));
        let edges: Vec<&NodeView> = nodes.iter().filter(|n| n.role == "edge").collect();
        let (mut reqs, mut hits) = (0.0, 0.0);
        for n in edges.iter().filter(|n| n.up) {
            if let Some(h) = n.hit_ratio {
                reqs += n.rps;
                hits += n.rps * h;
            }
        }
        let totals = Totals {
            rps: edges.iter().map(|n| n.rps).sum(),
            hit_ratio: (reqs > 0.0).then(|| hits / reqs),
            origin_rps: nodes.iter().map(|n| n.origin_rps).sum(),
            edges_up: edges.iter().filter(|n| n.up).count(),
            edges: edges.len(),
            shields_up: nodes.iter().filter(|n| n.role == "shield" && n.up).count(),
            origins_down: self.origins.values().filter(|o| !o.healthy).count(),
            events: self.events,
        };
        let mut sorted: Vec<f64> = self.latencies.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            (!sorted.is_empty()).then(|| {
                let i = ((sorted.len() - 1) as f64 * p).round() as usize;
                sorted[i.min(sorted.len() - 1)]
            })
        };
        Snapshot {
            time: rfc3339(now),
            totals,
            nodes,
            origins: self.origins.values().cloned().collect(),
            spikes: self.spikes.iter().cloned().collect(),
            guard: self.guard.iter().cloned().collect(),
            audit: self.audit.iter().cloned().collect(),
            purge: PurgeView {
                p50_ms: pct(0.5),
                p99_ms: pct(0.99),
                ..self.purge.clone()
            },
            history: Vec::new(),
            qoe: self.qoe.snapshot(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_events::{PurgeApplied, PurgeRequested, PurgeTarget, TrafficSpike};

    fn beat(id: &str, role: &str, requests: u64, hits: u64, fetches: u64) -> Event {
        Event::EdgeHealth(EdgeHealth {
            edge: id.into(),
            healthy: true,
            load: Some(0.1),
            role: Some(role.into()),
            url: Some("http://127.0.0.1:8080".into()),
            admin: None,
            interval_ms: Some(250),
            capacity_rps: None,
            stats: Some(EdgeStats {
                requests,
                hits,
                origin_fetches: fetches,
                ..Default::default()
            }),
        })
    }

    #[test]
    fn rates_and_hit_ratio_come_from_consecutive_heartbeats() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let t1 = t0 + Duration::from_millis(250);
        let mut f = Fleet::new();
        f.apply("a", &beat("edge-1", "edge", 100, 50, 10), t0);
        f.apply("b", &beat("edge-2", "edge", 0, 0, 0), t0);
        f.apply("c", &beat("shield-1", "shield", 0, 0, 0), t0);
        f.apply("d", &beat("edge-1", "edge", 200, 140, 15), t1);
        f.apply("e", &beat("edge-2", "edge", 100, 100, 0), t1);
        f.apply("f", &beat("shield-1", "shield", 5, 0, 5), t1);
        let s = f.snapshot(t1);
        assert_eq!(s.totals.rps, 800.0);
        assert_eq!(s.totals.hit_ratio, Some(0.95));
        assert_eq!(s.totals.origin_rps, 40.0);
        assert_eq!((s.totals.edges_up, s.totals.shields_up), (2, 1));
        assert_eq!(s.nodes[0].id, "edge-1");
        assert_eq!(s.nodes[2].role, "shield");
        // Silent for more than three intervals: down, and its rate no longer counts.
        let late = t1 + Duration::from_millis(751);
        f.apply("g", &beat("edge-2", "edge", 200, 200, 0), late);
        let s = f.snapshot(late);
        assert_eq!(s.totals.edges_up, 1);
        assert!(
            (s.totals.rps - 100.0 / 0.751).abs() < 1e-6,
            "{}",
            s.totals.rps
        );
    }

    #[test]
    fn purge_latency_is_request_to_report() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut f = Fleet::new();
        f.apply(
            "req-1",
            &Event::PurgeRequested(PurgeRequested {
                target: PurgeTarget::Url("h/a".into()),
                soft: false,
            }),
            t0,
        );
        for (edge, ms) in [("edge-1", 2), ("edge-2", 4), ("edge-3", 40)] {
            f.apply(
                "x",
                &Event::PurgeApplied(PurgeApplied {
                    edge: edge.into(),
                    request_id: "req-1".into(),
                    objects: 1,
                }),
                t0 + Duration::from_millis(ms),
            );
        }
        let p = f.snapshot(t0).purge;
        assert_eq!((p.requested, p.applied), (1, 3));
        assert_eq!(
            (p.last_ms, p.p50_ms, p.p99_ms),
            (Some(40.0), Some(4.0), Some(40.0))
        );
    }

    #[test]
    fn a_report_that_arrives_before_its_request_still_counts() {
        // Requests and reports come on two topics: their order is not guaranteed.
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut f = Fleet::new();
        f.apply(
            "x",
            &Event::PurgeApplied(PurgeApplied {
                edge: "edge-1".into(),
                request_id: "req-1".into(),
                objects: 1,
            }),
            t0 + Duration::from_millis(3),
        );
        f.apply(
            "req-1",
            &Event::PurgeRequested(PurgeRequested {
                target: PurgeTarget::Url("h/a".into()),
                soft: false,
            }),
            t0,
        );
        assert_eq!(f.snapshot(t0).purge.p99_ms, Some(3.0));
    }

    #[test]
    fn spike_alerts_are_bounded_newest_first() {
        let mut f = Fleet::new();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for i in 0..(MAX_SPIKES + 5) {
            f.apply(
                "s",
                &Event::TrafficSpike(TrafficSpike {
                    edge: "edge-1".into(),
                    key: format!("h/{i}"),
                    rate: 5000.0,
                    baseline: 1.0,
                }),
                t0,
            );
        }
        let s = f.snapshot(t0);
        assert_eq!(s.spikes.len(), MAX_SPIKES);
        assert_eq!(s.spikes[0].key, format!("h/{}", MAX_SPIKES + 4));
    }

    #[test]
    fn guard_decisions_are_bounded_newest_first() {
        let mut f = Fleet::new();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for i in 0..(MAX_GUARD + 5) {
            f.apply(
                "g",
                &Event::QoeGuard(eddy_events::QoeGuard {
                    edge: "edge-1".into(),
                    title: Some(format!("t{i}")),
                    cap_kbps: Some(600),
                    reason: "throughput".into(),
                    ..Default::default()
                }),
                t0,
            );
        }
        let s = f.snapshot(t0);
        assert_eq!(s.guard.len(), MAX_GUARD);
        assert_eq!(s.guard[0].title, Some(format!("t{}", MAX_GUARD + 4)));
        assert_eq!(s.guard[0].cap_kbps, Some(600));
    }

    #[test]
    fn audit_records_are_bounded_newest_first() {
        let mut f = Fleet::new();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for i in 0..(MAX_AUDIT + 5) {
            f.apply(
                "a",
                &Event::Audit(eddy_events::Audit {
                    node: "edge-1".into(),
                    actor: "cms".into(),
                    action: "purge".into(),
                    outcome: "ok".into(),
                    detail: format!("url {i}"),
                    ..Default::default()
                }),
                t0,
            );
        }
        let s = f.snapshot(t0);
        assert_eq!(s.audit.len(), MAX_AUDIT);
        assert_eq!(s.audit[0].detail, format!("url {}", MAX_AUDIT + 4));
        assert_eq!(s.audit[0].actor, "cms");
    }
}
