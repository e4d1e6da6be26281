//! The adaptive-quality guard at the edge: the caps it holds, and how responses carry them.
//!
//! The decisions are [`eddy_control::guard::Guard`]'s, made in the telemetry task
//! ([`crate::qoe::run`]) from every CMCD sample this edge reads, at most once a second. Each is
//! applied here ([`Caps::apply`]), counted (`eddy_qoe_guard_total{what}`, `eddy_qoe_guard_caps`),
//! logged, and published as `dev.eddy.qoe.guard.v1` on [`eddy_control::QOE_GUARD_TOPIC`] for the
//! dashboard. The guard runs on the edge, beside the samples, so a cap reaches the players within
//! a second of the telemetry that called for it, with or without a bus.
//!
//! A response to a CMCD-carrying request whose title (its `cid`, else its directory) is capped,
//! or on a capped edge, carries the cap as `mb` in this hop's `CMSD-Dynamic` member: dash.js
//! (with `cmsd.abr.applyMb`) switches down at once. While any cap is held, the hit fast path
//! hands CMCD-carrying requests to the full proxy, so both give the same answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use eddy_control::guard::{Decision, Guard, GuardConfig, Scope};
use eddy_events::{Event, QoeGuard, QoeSample};
use eddy_streaming::cmcd::Cmcd;
use parking_lot::RwLock;

/// The caps in force on this edge.
#[derive(Debug, Default)]
pub struct Caps {
    /// Any cap held: the one thing the hot path reads.
    active: AtomicBool,
    held: RwLock<Held>,
}

#[derive(Debug, Default)]
struct Held {
    titles: HashMap<String, u32>,
    edge: Option<u32>,
}

impl Caps {
    /// Whether any cap is held.
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Hold what a decision says; the number of caps held after it.
    pub fn apply(&self, d: &Decision) -> usize {
        let mut held = self.held.write();
        match (&d.scope, d.cap_kbps) {
            (Scope::Title(t), Some(c)) => {
                held.titles.insert(t.clone(), c);
            }
            (Scope::Title(t), None) => {
                held.titles.remove(t);
            }
            (Scope::Edge, c) => held.edge = c,
        }
        let n = held.titles.len() + usize::from(held.edge.is_some());
        self.active.store(n > 0, Ordering::Relaxed);
        n
    }

    /// The cap for a title: the lower of its own and the edge's.
    pub fn cap(&self, title: &str) -> Option<u32> {
        if !self.active() {
            return None;
        }
        let held = self.held.read();
        match (held.titles.get(title).copied(), held.edge) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The cap for a request for `url` (`host/path?query`) with this query and these fields,
    /// judged as the guard judges samples: by the CMCD `cid`, else the object's directory.
    /// Malformed CMCD is nobody's title: only the edge's cap applies to it.
    pub fn for_request<'a>(
        &self,
        url: &str,
        query: Option<&str>,
        fields: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) -> Option<u32> {
        if !self.active() {
            return None;
        }
        let from_query = query.and_then(|q| Cmcd::from_query(q).ok().flatten());
        let cmcd = from_query.or_else(|| Cmcd::from_headers(fields).ok().flatten());
        let url = crate::qoe::without_query(url);
        let title = eddy_control::guard::title(cmcd.as_ref().and_then(|c| c.cid.as_deref()), url);
        self.cap(&title)
    }
}

impl Caps {
    /// [`Caps::for_request`] for an HTTP/1 head as the client sent it (the gate's view, before
    /// the canonical target drops the `CMCD` parameter).
    pub fn for_head(&self, head: &[u8], url: &str) -> Option<u32> {
        if !self.active() {
            return None;
        }
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut fields);
        if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
            return None;
        }
        let query = req.path.and_then(|p| p.split_once('?')).map(|(_, q)| q);
        self.for_request(url, query, req.headers.iter().map(|h| (h.name, h.value)))
    }
}

/// The guard as the telemetry task runs it: decisions made, held in [`Caps`], counted, logged.
pub struct Steering {
    guard: Guard,
    state: Arc<crate::proxy::EdgeState>,
}

impl Steering {
    /// A guard with the default settings over this edge.
    pub fn new(state: Arc<crate::proxy::EdgeState>) -> Steering {
        Steering {
            guard: Guard::new(GuardConfig::default()),
            state,
        }
    }

    /// Take one sample.
    pub fn observe(&mut self, s: &QoeSample) {
        self.guard.observe(s, Instant::now());
    }

    /// Make the decisions due, hold them, and return them as events to publish.
    pub fn decide(&mut self) -> Vec<Event> {
        let edge = &self.state.config.edge.id;
        let mut out = Vec::new();
        for d in self.guard.decide(Instant::now()) {
            let held = self.state.caps.apply(&d);
            let metrics = &self.state.metrics;
            metrics.guard(d.reason.token()).inc();
            metrics
                .guard_caps
                .set(i64::try_from(held).unwrap_or(i64::MAX));
            let title = match &d.scope {
                Scope::Title(t) => Some(t.clone()),
                Scope::Edge => None,
            };
            tracing::info!(
                title = title.as_deref().unwrap_or("(every title)"),
                cap_kbps = ?d.cap_kbps,
                previous_kbps = ?d.previous_kbps,
                reason = %d.reason,
                sessions = d.sessions,
                troubled = d.troubled,
                "quality guard"
            );
            out.push(Event::QoeGuard(QoeGuard {
                edge: edge.clone(),
                title,
                cap_kbps: d.cap_kbps,
                previous_kbps: d.previous_kbps,
                reason: d.reason.token().to_string(),
                detail: d.reason.to_string(),
                sessions: d.sessions,
                troubled: d.troubled,
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_control::guard::Reason;

    fn decision(scope: Scope, cap: Option<u32>) -> Decision {
        Decision {
            scope,
            cap_kbps: cap,
            previous_kbps: None,
            reason: Reason::Starvation,
            sessions: 1,
            troubled: 1,
        }
    }

    #[test]
    fn caps_apply_by_title_or_directory_and_the_edge_cap_bounds_them_all() {
        let caps = Caps::default();
        assert!(!caps.active());
        let q = |cid: &str| format!("CMCD=br%3D1200%2Ccid%3D%22{cid}%22%2Cot%3Dv");
        let none = || std::iter::empty::<(&str, &[u8])>();
        assert_eq!(
            caps.for_request("h/film/s.m4s", Some(&q("film")), none()),
            None
        );
        assert_eq!(
            caps.apply(&decision(Scope::Title("film".into()), Some(600))),
            1
        );
        assert!(caps.active());
        assert_eq!(
            caps.for_request("h/x/s.m4s", Some(&q("film")), none()),
            Some(600)
        );
        assert_eq!(
            caps.for_request("h/x/s.m4s", Some(&q("other")), none()),
            None
        );
        // Without a cid, the directory is the title; CMCD in fields counts as in the query.
        caps.apply(&decision(Scope::Title("/vod".into()), Some(300)));
        assert_eq!(
            caps.for_request("h/vod/s.m4s?CMCD=br%3D1", None, none()),
            Some(300)
        );
        let fields = [("cmcd-session", &b"cid=\"film\""[..])];
        assert_eq!(
            caps.for_request("h/vod/s.m4s", None, fields.iter().copied()),
            Some(600)
        );
        // The edge's cap bounds every title, and malformed CMCD too.
        caps.apply(&decision(Scope::Edge, Some(400)));
        assert_eq!(
            caps.for_request("h/a/s.m4s", Some("CMCD=%%%"), none()),
            Some(400)
        );
        assert_eq!(
            caps.for_request("h/x/s.m4s", Some(&q("film")), none()),
            Some(400)
        );
        assert_eq!(caps.for_request("h/vod/s.m4s", None, none()), Some(300));
        // Lifted one by one: inactive again.
        caps.apply(&decision(Scope::Edge, None));
        caps.apply(&decision(Scope::Title("film".into()), None));
        assert_eq!(caps.apply(&decision(Scope::Title("/vod".into()), None)), 0);
        assert!(!caps.active());
    }
}
