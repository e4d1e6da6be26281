//! The audit trail: every operation on the edge's admin API (purge, event ingest, certificate
//! reload, including `SIGHUP`), who asked (an API token's name, never the token), from where, and
//! what came of it. Each record is logged (target `eddy::audit`) and, with a bus, published as
//! `dev.eddy.audit.v1` on [`eddy_control::AUDIT_TOPIC`], where the dashboard lists the last ones.
//!
//! Records go through a bounded queue to the publisher: an operation never waits for the bus,
//! and a record the queue cannot take is counted (`eddy_audit_total{what="dropped"}`), still
//! logged.

use std::net::IpAddr;
use std::sync::Arc;

use eddy_events::Audit;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Records waiting for the bus, at most.
pub const QUEUE: usize = 1024;

/// Longest detail kept in a record, in characters.
const DETAIL_MAX: usize = 240;
/// Most bytes of a request read for a record's detail (enough for [`DETAIL_MAX`] characters).
pub const DETAIL_BYTES: usize = DETAIL_MAX * 4;

/// What became of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Not allowed, or not a valid request.
    Refused,
    /// Allowed and valid, but it did not work.
    Failed,
}

impl Outcome {
    /// Its name in records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }

    /// The outcome an HTTP answer with `status` says.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Ok,
            400..=499 => Outcome::Refused,
            _ => Outcome::Failed,
        }
    }
}

/// Records operations; see the module doc.
pub struct Auditor {
    node: String,
    tx: mpsc::Sender<Audit>,
    metrics: Arc<Metrics>,
}

/// `text` as a record may carry it: printable, on one line, at most [`DETAIL_MAX`] characters.
pub fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(DETAIL_MAX)
        .collect();
    if text.chars().count() > DETAIL_MAX {
        out.push('…');
    }
    out
}

impl Auditor {
    /// An auditor for `node`, and the queue its publisher reads.
    pub fn new(node: &str, metrics: Arc<Metrics>) -> (Auditor, mpsc::Receiver<Audit>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Auditor {
                node: node.to_string(),
                tx,
                metrics,
            },
            rx,
        )
    }

    /// Record that `actor` from `address` asked for `action`, with this `outcome` and `detail`.
    pub fn record(
        &self,
        actor: &str,
        address: Option<IpAddr>,
        action: &'static str,
        outcome: Outcome,
        detail: &str,
    ) {
        let detail = clean(detail);
        tracing::info!(target: "eddy::audit", node = %self.node, actor, address = ?address, action, outcome = outcome.as_str(), %detail, "audit");
        let a = Audit {
            node: self.node.clone(),
            actor: actor.to_string(),
            address: address.map(|a| a.to_canonical().to_string()),
            action: action.to_string(),
            outcome: outcome.as_str().to_string(),
            detail,
        };
        let what = match self.tx.try_send(a) {
            Ok(()) => outcome.as_str(),
            Err(_) => "dropped",
        };
        self.metrics.audit(what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_queued_bounded_and_clean() {
        let metrics = Arc::new(Metrics::new());
        let (a, mut rx) = Auditor::new("edge-1", metrics.clone());
        a.record(
            "cms",
            Some("::ffff:203.0.113.7".parse().expect("ip")),
            "purge",
            Outcome::Ok,
            "url\nv.test/a",
        );
        let r = rx.try_recv().expect("a record");
        assert_eq!(r.address.as_deref(), Some("203.0.113.7"));
        assert_eq!(r.detail, "url v.test/a");
        assert_eq!((r.actor.as_str(), r.outcome.as_str()), ("cms", "ok"));
        for _ in 0..QUEUE + 3 {
            a.record("cms", None, "purge", Outcome::Ok, "x");
        }
        let dropped = metrics
            .audit
            .get_or_create(&crate::metrics::LlhlsLabel { what: "dropped" })
            .get();
        assert_eq!(dropped, 3);
        assert_eq!(clean(&"a".repeat(300)).chars().count(), DETAIL_MAX + 1);
        assert_eq!(Outcome::of_status(403), Outcome::Refused);
        assert_eq!(Outcome::of_status(502), Outcome::Failed);
    }
}
