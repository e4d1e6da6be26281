//! The router's view of the fleet, built from `edge.health` heartbeats, and the choice of an
//! edge for one request. Pure: no I/O, time passed in, so every rule is unit-tested.
//!
//! An edge is **up** while its last heartbeat said `healthy` and is younger than the timeout
//! (fixed, or three of the intervals the edge announces). A clean stop says `healthy = false` and
//! takes the edge out at once; a crash takes it out when its heartbeats stop.
//!
//! **Choice.** Among up edges (role `edge`, not in the client's avoid list): with affinity and a
//! path, the edge that owns the path by rendezvous hashing, so each object is cached on few edges,
//! unless that edge's load is over `slack` times the mean, then the least-loaded edge. Load is what
//! the edge reported plus what this router sent it since that report, so a burst of requests
//! between two heartbeats spreads instead of herding onto the edge that looked idlest.

use eddy_events::EdgeHealth;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Most edges the table holds; heartbeats of further ids are ignored (and counted by the caller).
pub const MAX_EDGES: usize = 10_000;
/// An edge silent this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Below this load, affinity always holds: spreading an idle fleet only costs cache hits.
const AFFINITY_FLOOR: f64 = 0.05;

/// One edge as last heard.
#[derive(Debug, Clone)]
struct Entry {
    url: String,
    admin: Option<String>,
    role: String,
    healthy: bool,
    load: f64,
    capacity: f64,
    interval: Duration,
    heard: Instant,
    /// Requests this router sent it since its last heartbeat.
    assigned: u64,
}

/// Where to send a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    /// Edge id.
    pub edge: String,
    /// Its viewer URL (`http://host:port`).
    pub url: String,
    /// Its load as the router estimates it.
    pub load: f64,
    /// The next best edges, best first (for a client's retry).
    pub alternates: Vec<Alternate>,
    /// False when affinity was broken because the path's edge was too busy.
    pub affinity: bool,
}

/// A fallback edge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alternate {
    /// Edge id.
    pub edge: String,
    /// Its viewer URL.
    pub url: String,
}

/// One edge, for `/_eddy/edges` and the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeView {
    /// Edge id.
    pub edge: String,
    /// Viewer URL.
    pub url: String,
    /// Admin URL.
    pub admin: Option<String>,
    /// `edge` or `shield`.
    pub role: String,
    /// Up for routing.
    pub up: bool,
    /// Estimated load.
    pub load: f64,
    /// Milliseconds since the last heartbeat.
    pub silent_ms: u64,
}

/// Why a heartbeat was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// It has no URL: viewers cannot be sent there.
    NoUrl,
    /// The table holds [`MAX_EDGES`] edges already and this is a new one.
    Full,
}

/// A change of an edge's state, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// First heard, or back.
    Up(String),
    /// Said it stops, or went silent.
    Down(String, &'static str),
}

/// The table.
#[derive(Debug)]
pub struct EdgeTable {
    edges: BTreeMap<String, Entry>,
    /// Ids currently up, as of the last [`EdgeTable::sweep`] or heartbeat.
    up: BTreeMap<String, bool>,
    timeout: Option<Duration>,
    affinity: bool,
    slack: f64,
}

impl EdgeTable {
    /// An empty table: `timeout` fixed or `None` for three announced intervals.
    pub fn new(timeout: Option<Duration>, affinity: bool, slack: f64) -> Self {
        EdgeTable {
            edges: BTreeMap::new(),
            up: BTreeMap::new(),
            timeout,
            affinity,
            slack,
        }
    }

    fn timeout_of(&self, e: &Entry) -> Duration {
        self.timeout.unwrap_or(e.interval * 3)
    }

    fn is_up(&self, e: &Entry, now: Instant) -> bool {
        e.healthy && now.saturating_duration_since(e.heard) <= self.timeout_of(e)
    }

    /// Take a heartbeat sent `age` ago; returns the edge's state change, if any.
    pub fn observe(
        &mut self,
        h: &EdgeHealth,
        age: Duration,
        now: Instant,
    ) -> Result<Option<Transition>, Ignored> {
        let Some(url) = h.url.clone() else {
            return Err(Ignored::NoUrl);
        };
        if !self.edges.contains_key(&h.edge) && self.edges.len() >= MAX_EDGES {
            return Err(Ignored::Full);
        }
        let heard = now.checked_sub(age).unwrap_or(now);
        let interval = Duration::from_millis(h.interval_ms.unwrap_or(1000).clamp(10, 600_000));
        if let Some(old) = self.edges.get(&h.edge)
            && old.heard > heard
        {
            // An older heartbeat delivered late (a redelivery): the newer one stands.
            return Ok(None);
        }
        self.edges.insert(
            h.edge.clone(),
            Entry {
                url: url.trim_end_matches('/').to_string(),
                admin: h.admin.clone(),
                role: h.role.clone().unwrap_or_else(|| "edge".into()),
                healthy: h.healthy,
                load: h.load.unwrap_or(0.0).max(0.0),
                capacity: h.capacity_rps.unwrap_or(50_000).max(1) as f64,
                interval,
                heard,
                assigned: 0,
            },
        );
        Ok(self.transition(&h.edge, now))
    }

    fn transition(&mut self, id: &str, now: Instant) -> Option<Transition> {
        // Only edges are routed to: a shield's comings and goings are not the router's news.
        if self.edges.get(id).is_some_and(|e| e.role != "edge") {
            return None;
        }
        let up = self.edges.get(id).is_some_and(|e| self.is_up(e, now));
        let was = self.up.insert(id.to_string(), up).unwrap_or(false);
        match (was, up) {
            (false, true) => Some(Transition::Up(id.to_string())),
            (true, false) => {
                let why = if self.edges.get(id).is_some_and(|e| !e.healthy) {
                    "said it is stopping"
                } else {
                    "heartbeats stopped"
                };
                Some(Transition::Down(id.to_string(), why))
            }
            _ => None,
        }
    }

    /// Re-evaluate every edge against the clock (heartbeats that stopped), forget edges silent
    /// for ten minutes, and return what changed.
    pub fn sweep(&mut self, now: Instant) -> Vec<Transition> {
        self.edges
            .retain(|_, e| now.saturating_duration_since(e.heard) < FORGET_AFTER);
        let edges = &self.edges;
        self.up.retain(|id, _| edges.contains_key(id));
        let ids: Vec<String> = self.edges.keys().cloned().collect();
        ids.iter()
            .filter_map(|id| self.transition(id, now))
            .collect()
    }

    /// Edges up now.
    pub fn up_count(&self, now: Instant) -> usize {
        self.edges
            .values()
            .filter(|e| e.role == "edge" && self.is_up(e, now))
            .count()
    }

    fn effective_load(e: &Entry) -> f64 {
        e.load + e.assigned as f64 / (e.interval.as_secs_f64().max(0.001) * e.capacity)
    }

    /// Choose an edge for a request for `path` (or any, for `None`), skipping edges whose id, URL
    /// or `host:port` is in `avoid`. Counts the request against the chosen edge.
    pub fn choose(&mut self, path: Option<&str>, avoid: &[&str], now: Instant) -> Option<Choice> {
        let avoided = |id: &str, url: &str| {
            let authority = url.split_once("://").map_or(url, |(_, a)| a);
            avoid
                .iter()
                .any(|a| !a.is_empty() && (*a == id || *a == url || *a == authority))
        };
        let mut cands: Vec<(&String, f64, u64)> = self
            .edges
            .iter()
            .filter(|(id, e)| e.role == "edge" && self.is_up(e, now) && !avoided(id, &e.url))
            .map(|(id, e)| {
                let rank = path.map_or(0, |p| {
                    xxh3_64_with_seed(p.as_bytes(), xxh3_64_with_seed(id.as_bytes(), 0))
                });
                (id, Self::effective_load(e), rank)
            })
            .collect();
        if cands.is_empty() {
            return None;
        }
        let mean = cands.iter().map(|c| c.1).sum::<f64>() / cands.len() as f64;
        let by_load = |a: &(&String, f64, u64), b: &(&String, f64, u64)| {
            a.1.total_cmp(&b.1).then(b.2.cmp(&a.2))
        };
        // Best first: by rendezvous rank while the path's owner is not overloaded, else by load.
        let mut affinity = true;
        if self.affinity && path.is_some() {
            cands.sort_by_key(|c| std::cmp::Reverse(c.2));
            if cands[0].1 > (mean * self.slack).max(AFFINITY_FLOOR) {
                cands.sort_by(by_load);
                affinity = false;
            }
        } else {
            cands.sort_by(by_load);
        }
        let chosen = cands[0].0.clone();
        let alternates: Vec<Alternate> = cands[1..]
            .iter()
            .take(2)
            .filter_map(|c| {
                self.edges.get(c.0).map(|e| Alternate {
                    edge: c.0.clone(),
                    url: e.url.clone(),
                })
            })
            .collect();
        let e = self.edges.get_mut(&chosen)?;
        e.assigned += 1;
        Some(Choice {
            load: Self::effective_load(e),
            url: e.url.clone(),
            edge: chosen,
            alternates,
            affinity,
        })
    }

    /// Every edge, for display.
    pub fn view(&self, now: Instant) -> Vec<EdgeView> {
        self.edges
            .iter()
            .map(|(id, e)| EdgeView {
                edge: id.clone(),
                url: e.url.clone(),
                admin: e.admin.clone(),
                role: e.role.clone(),
                up: self.is_up(e, now),
                load: Self::effective_load(e),
                silent_ms: u64::try_from(now.saturating_duration_since(e.heard).as_millis())
                    .unwrap_or(u64::MAX),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(id: &str, healthy: bool, load: f64) -> EdgeHealth {
        EdgeHealth {
            edge: id.into(),
            healthy,
            load: Some(load),
            role: Some("edge".into()),
            url: Some(format!("http://127.0.0.1:80{}", &id[id.len() - 2..])),
            admin: None,
            interval_ms: Some(100),
            capacity_rps: Some(100_000),
            stats: None,
        }
    }

    fn table(affinity: bool) -> (EdgeTable, Instant) {
        let now = Instant::now();
        let mut t = EdgeTable::new(None, affinity, 1.25);
        for id in ["edge-01", "edge-02", "edge-03"] {
            assert!(t.observe(&beat(id, true, 0.0), Duration::ZERO, now).is_ok());
        }
        (t, now)
    }

    #[test]
    fn a_silent_edge_is_down_after_three_intervals_and_a_stopping_one_at_once() {
        let (mut t, now) = table(false);
        assert_eq!(t.up_count(now), 3);
        let later = now + Duration::from_millis(250);
        for id in ["edge-01", "edge-02"] {
            assert!(
                t.observe(&beat(id, true, 0.0), Duration::ZERO, later)
                    .is_ok()
            );
        }
        // edge-03 last spoke at `now`: fine at +300 ms, down after.
        assert_eq!(t.up_count(now + Duration::from_millis(300)), 3);
        let gone = now + Duration::from_millis(301);
        assert_eq!(t.up_count(gone), 2);
        assert_eq!(
            t.sweep(gone),
            vec![Transition::Down("edge-03".into(), "heartbeats stopped")]
        );
        for _ in 0..100 {
            let c = t.choose(Some("/x"), &[], gone);
            assert_ne!(c.map(|c| c.edge), Some("edge-03".into()));
        }
        let r = t.observe(&beat("edge-01", false, 0.0), Duration::ZERO, gone);
        assert_eq!(
            r,
            Ok(Some(Transition::Down(
                "edge-01".into(),
                "said it is stopping"
            )))
        );
        assert_eq!(t.up_count(gone), 1);
        // Back.
        let r = t.observe(&beat("edge-03", true, 0.0), Duration::ZERO, gone);
        assert_eq!(r, Ok(Some(Transition::Up("edge-03".into()))));
    }

    #[test]
    fn a_late_old_heartbeat_does_not_revive_an_edge() {
        let (mut t, now) = table(false);
        let later = now + Duration::from_secs(1);
        assert!(
            t.observe(&beat("edge-01", false, 0.0), Duration::ZERO, later)
                .is_ok()
        );
        // A redelivered heartbeat from before the stop.
        assert_eq!(
            t.observe(
                &beat("edge-01", true, 0.0),
                Duration::from_millis(900),
                later
            ),
            Ok(None)
        );
        assert_eq!(t.up_count(later), 0);
    }

    #[test]
    fn affinity_keeps_a_path_on_one_edge_until_it_is_too_busy() {
        let (mut t, now) = table(true);
        let first = t.choose(Some("/video/a.ts"), &[], now).map(|c| c.edge);
        for _ in 0..10 {
            assert_eq!(
                t.choose(Some("/video/a.ts"), &[], now).map(|c| c.edge),
                first
            );
        }
        // Different paths spread over the fleet.
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..60 {
            if let Some(c) = t.choose(Some(&format!("/p/{i}")), &[], now) {
                seen.insert(c.edge);
            }
        }
        assert_eq!(seen.len(), 3);
        // The owner reports itself busy: its path goes to another edge.
        let owner = first.clone().unwrap_or_default();
        let later = now + Duration::from_millis(10);
        for id in ["edge-01", "edge-02", "edge-03"] {
            let load = if id == owner { 0.9 } else { 0.1 };
            assert!(
                t.observe(&beat(id, true, load), Duration::ZERO, later)
                    .is_ok()
            );
        }
        let c = t.choose(Some("/video/a.ts"), &[], later);
        assert!(
            c.as_ref().is_some_and(|c| c.edge != owner && !c.affinity),
            "{c:?}"
        );
    }

    #[test]
    fn least_loaded_spreads_a_burst_between_heartbeats() {
        let (mut t, now) = table(false);
        let mut counts = BTreeMap::new();
        for _ in 0..300 {
            if let Some(c) = t.choose(None, &[], now) {
                *counts.entry(c.edge).or_insert(0) += 1;
            }
        }
        assert_eq!(counts.len(), 3, "{counts:?}");
        assert!(counts.values().all(|&n| n == 100), "{counts:?}");
    }

    #[test]
    fn avoid_takes_ids_urls_and_host_port() {
        let (mut t, now) = table(false);
        let c = t.choose(None, &["edge-01", "127.0.0.1:8002"], now);
        assert_eq!(c.map(|c| c.edge), Some("edge-03".into()));
        let c = t.choose(None, &["edge-01", "edge-02", "http://127.0.0.1:8003"], now);
        assert_eq!(c, None);
    }

    #[test]
    fn shields_and_unroutable_heartbeats_are_never_chosen() {
        let now = Instant::now();
        let mut t = EdgeTable::new(None, true, 1.25);
        let mut s = beat("shield-01", true, 0.0);
        s.role = Some("shield".into());
        assert!(t.observe(&s, Duration::ZERO, now).is_ok());
        let mut no_url = beat("edge-09", true, 0.0);
        no_url.url = None;
        assert_eq!(t.observe(&no_url, Duration::ZERO, now), Err(Ignored::NoUrl));
        assert_eq!(t.choose(Some("/a"), &[], now), None);
        assert_eq!(t.up_count(now), 0);
    }
}
