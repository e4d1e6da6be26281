//! The audit trail: every operation on an admin API or the control plane (purge, event ingest,
//! certificate reload, including `SIGHUP`), who asked (an API token's name, never the token),
//! from where, and what came of it. Each record is logged (target `eddy::audit`) and, with a
//! bus, published as `dev.eddy.audit.v1` on [`AUDIT_TOPIC`](crate::AUDIT_TOPIC), where the
//! dashboard lists the last ones.
//!
//! Records go through a bounded queue to the publisher: an operation never waits for the bus,
//! and a record the queue cannot take is counted as `dropped` (still logged).

use std::net::IpAddr;
use std::sync::Arc;

use eddy_events::{Audit, Event};
use tokio::sync::{mpsc, watch};

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

/// Counts each record by its outcome's name, or `dropped`.
pub type Count = Arc<dyn Fn(&'static str) + Send + Sync>;

/// Records operations; see the module doc.
pub struct Auditor {
    node: String,
    tx: mpsc::Sender<Audit>,
    count: Count,
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

/// A record's detail for a request whose body was `body` and whose answer had `status`: the
/// start of the body ([`DETAIL_BYTES`] at most is read), then the status.
pub fn detail(body: &[u8], status: u16) -> String {
    let body = &body[..body.len().min(DETAIL_BYTES)];
    format!("{} → {status}", String::from_utf8_lossy(body).trim())
}

impl Auditor {
    /// An auditor for `node` that counts with `count`, and the queue its publisher reads.
    pub fn new(node: &str, count: Count) -> (Auditor, mpsc::Receiver<Audit>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Auditor {
                node: node.to_string(),
                tx,
                count,
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
        (self.count)(what);
    }
}

/// Publish the records of `rx` on `bus` as `source` until `shutdown`. A record the bus refuses
/// is logged (it was logged when recorded too) and the next one is tried.
pub async fn publish(
    mut rx: mpsc::Receiver<Audit>,
    bus: Arc<dyn eddy_bus::Bus>,
    source: String,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let a = tokio::select! {
            _ = shutdown.wait_for(|v| *v) => return,
            a = rx.recv() => match a {
                Some(a) => a,
                None => {
                    tracing::warn!("audit publisher stopped: its queue closed");
                    return;
                }
            },
        };
        let ev = Event::Audit(a);
        let cloud = ev.to_cloud(crate::event_id(), source.clone());
        if let Err(e) = bus
            .publish(
                crate::AUDIT_TOPIC,
                &ev.key(),
                bytes::Bytes::from(cloud.encode()),
            )
            .await
        {
            tracing::warn!(error = %e, "an audit record did not reach the bus (it is in the log)");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn records_are_queued_bounded_and_clean() {
        let counted = Arc::new(Mutex::new(Vec::new()));
        let c = counted.clone();
        let (a, mut rx) = Auditor::new("edge-1", Arc::new(move |w| c.lock().unwrap().push(w)));
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
        let dropped = counted
            .lock()
            .unwrap()
            .iter()
            .filter(|w| **w == "dropped")
            .count();
        assert_eq!(dropped, 3);
        assert_eq!(clean(&"a".repeat(300)).chars().count(), DETAIL_MAX + 1);
        assert_eq!(Outcome::of_status(403), Outcome::Refused);
        assert_eq!(Outcome::of_status(502), Outcome::Failed);
        assert_eq!(
            detail(b" {\"url\": \"x\"}\n", 202),
            "{\"url\": \"x\"} → 202"
        );
    }
}
