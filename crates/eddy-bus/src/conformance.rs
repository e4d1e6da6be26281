//! The behaviour every [`Bus`] backend must show, written once. A backend's integration tests
//! implement [`Harness`] against a real broker (or the embedded log) and call each check; a check
//! returns `Err` with what it saw.
//!
//! | check | property |
//! |---|---|
//! | [`per_key_order`] | records with the same key arrive in publish order |
//! | [`fan_out`] | every consumer name receives every record |
//! | [`resume_from_committed`] | a restarted consumer resumes after its last commit |
//! | [`at_least_once_idempotent`] | uncommitted records come again; duplicate ids apply once |
//! | [`restart_loses_nothing_acknowledged`] | a broker restart keeps every acknowledged record |
//! | [`unreachable_is_a_clear_error`] | a backend that is down gives an error naming it, fast |
//! | [`malformed_goes_to_dead_letter`] | undecodable records are dead-lettered and counted; the consumer goes on |

use crate::consumer::EventConsumer;
use crate::{Bus, BusError, Delivery, StartFrom, Subscription};
use async_trait::async_trait;
use bytes::Bytes;
use eddy_events::{Event, PurgeRequested, PurgeTarget};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One `#[tokio::test]` per check, for a backend's integration tests: `$make` builds a fresh
/// [`Harness`] for each test.
///
/// A second form takes a separate harness for the one check that restarts the broker, for a
/// backend whose other checks share a long-running broker:
///
/// ```ignore
/// eddy_bus::conformance_tests!(MyBroker::new());
/// eddy_bus::conformance_tests!(MyBroker::shared(), restart: MyBroker::private());
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!($make, restart: $make);
    };
    ($make:expr, restart: $restart:expr) => {
        $crate::conformance_tests!(@each $make; per_key_order, fan_out, resume_from_committed,
            at_least_once_idempotent, unreachable_is_a_clear_error, malformed_goes_to_dead_letter);
        $crate::conformance_tests!(@each $restart; restart_loses_nothing_acknowledged);
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let h = $make;
                if let Err(e) = $crate::conformance::$name(&h).await {
                    panic!("{}: {e}", stringify!($name));
                }
            }
        )*
    };
}

/// What a backend's tests provide.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new client connected to the backend under test.
    async fn connect(&self) -> Result<Arc<dyn Bus>, BusError>;
    /// Restart the backend, keeping its data. The checks drop their clients first.
    async fn restart(&self) -> Result<(), BusError>;
    /// Try to connect to a backend that is not running (a closed port, a bad path).
    async fn connect_unreachable(&self) -> Result<Arc<dyn Bus>, BusError>;
}

const WAIT: Duration = Duration::from_secs(10);

/// A topic name unique to this run of a check.
pub fn unique(name: &str) -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("conf.{name}.{n}")
}

async fn next(sub: &mut Box<dyn Subscription>) -> Result<Delivery, String> {
    match tokio::time::timeout(WAIT, sub.next()).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(format!("next() failed: {e}")),
        Err(_) => Err(format!("no delivery within {WAIT:?}")),
    }
}

async fn next_event(c: &mut EventConsumer) -> Result<crate::consumer::Received, String> {
    match tokio::time::timeout(WAIT, c.next()).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(err)) => Err(format!("next event failed: {err}")),
        Err(_) => Err(format!("no event within {WAIT:?}")),
    }
}

fn e<T>(r: Result<T, BusError>, what: &str) -> Result<T, String> {
    r.map_err(|err| format!("{what}: {err}"))
}

fn purge_event(i: usize) -> Bytes {
    let ev = Event::PurgeRequested(PurgeRequested {
        target: PurgeTarget::Url(format!("h/{i}")),
        soft: false,
    })
    .to_cloud(format!("purge-{i}"), "/conformance");
    Bytes::from(ev.encode())
}

/// Records with the same key arrive in publish order.
pub async fn per_key_order(h: &dyn Harness) -> Result<(), String> {
    let bus = e(h.connect().await, "connect")?;
    let topic = unique("order");
    let mut sub = e(
        bus.subscribe(&topic, "c-order", StartFrom::Earliest).await,
        "subscribe",
    )?;
    for i in 0..50u32 {
        for k in ["a", "b", "c"] {
            e(
                bus.publish(&topic, k, Bytes::from(format!("{k}:{i}")))
                    .await,
                "publish",
            )?;
        }
    }
    let mut last: HashMap<String, i64> = HashMap::new();
    for _ in 0..150 {
        let d = next(&mut sub).await?;
        let text = String::from_utf8_lossy(&d.payload).to_string();
        let (k, i) = text.split_once(':').ok_or(format!("bad payload {text}"))?;
        let i: i64 = i.parse().map_err(|_| format!("bad payload {text}"))?;
        let prev = last.insert(k.to_string(), i).unwrap_or(-1);
        if i != prev + 1 {
            return Err(format!("key {k}: got {i} after {prev}"));
        }
    }
    Ok(())
}

/// Every consumer name receives every record.
pub async fn fan_out(h: &dyn Harness) -> Result<(), String> {
    let bus = e(h.connect().await, "connect")?;
    let topic = unique("fanout");
    let mut subs = Vec::new();
    for c in ["edge-1", "edge-2", "edge-3"] {
        subs.push(e(
            bus.subscribe(&topic, c, StartFrom::Earliest).await,
            "subscribe",
        )?);
    }
    for i in 0..20 {
        e(
            bus.publish(&topic, "k", Bytes::from(format!("{i}"))).await,
            "publish",
        )?;
    }
    for (n, sub) in subs.iter_mut().enumerate() {
        for i in 0..20 {
            let d = next(sub).await?;
            if d.payload != format!("{i}").as_bytes() {
                return Err(format!("consumer {n} got {:?} at {i}", d.payload));
            }
        }
    }
    Ok(())
}

/// A restarted consumer resumes after its last commit.
pub async fn resume_from_committed(h: &dyn Harness) -> Result<(), String> {
    let bus = e(h.connect().await, "connect")?;
    let topic = unique("resume");
    {
        let mut sub = e(
            bus.subscribe(&topic, "c-resume", StartFrom::Earliest).await,
            "subscribe",
        )?;
        for i in 0..20 {
            e(
                bus.publish(&topic, "k", Bytes::from(format!("{i}"))).await,
                "publish",
            )?;
        }
        for _ in 0..10 {
            let d = next(&mut sub).await?;
            e(sub.commit(&d).await, "commit")?;
        }
    }
    let mut sub = e(
        bus.subscribe(&topic, "c-resume", StartFrom::Committed)
            .await,
        "resubscribe",
    )?;
    let d = next(&mut sub).await?;
    if d.payload != Bytes::from_static(b"10") {
        return Err(format!("resumed at {:?}, expected 10", d.payload));
    }
    let backlog = e(sub.backlog().await, "backlog")?;
    if backlog != 9 {
        return Err(format!("backlog {backlog} after resuming, expected 9"));
    }
    Ok(())
}

/// Uncommitted records are delivered again; a duplicate event id is applied once.
pub async fn at_least_once_idempotent(h: &dyn Harness) -> Result<(), String> {
    let bus = e(h.connect().await, "connect")?;
    let topic = unique("alo");
    for i in 0..5 {
        e(bus.publish(&topic, "k", purge_event(i)).await, "publish")?;
    }
    // The same event id published twice (a producer retry).
    e(
        bus.publish(&topic, "k", purge_event(4)).await,
        "publish duplicate",
    )?;
    {
        let sub = e(
            bus.subscribe(&topic, "c-alo", StartFrom::Earliest).await,
            "subscribe",
        )?;
        let mut c = EventConsumer::new(sub, bus.clone());
        for _ in 0..3 {
            next_event(&mut c).await?;
        }
        // Crash before committing.
    }
    let sub = e(
        bus.subscribe(&topic, "c-alo", StartFrom::Committed).await,
        "resubscribe",
    )?;
    let mut c = EventConsumer::new(sub, bus.clone());
    let mut ids = Vec::new();
    for _ in 0..5 {
        let r = next_event(&mut c).await?;
        ids.push(r.cloud.id.clone());
        e(c.commit(&r).await, "commit")?;
    }
    if ids.first().map(String::as_str) != Some("purge-0") {
        return Err(format!("uncommitted events were not redelivered: {ids:?}"));
    }
    // The duplicate is skipped: nothing more arrives, and it was counted.
    let more = tokio::time::timeout(Duration::from_millis(500), c.next()).await;
    if let Ok(Ok(r)) = more {
        return Err(format!("duplicate id {} applied twice", r.cloud.id));
    }
    if c.stats.duplicates.load(Ordering::Relaxed) != 1 {
        return Err(format!(
            "duplicates counted: {}",
            c.stats.duplicates.load(Ordering::Relaxed)
        ));
    }
    Ok(())
}

/// A broker restart keeps every acknowledged record, and committed positions.
pub async fn restart_loses_nothing_acknowledged(h: &dyn Harness) -> Result<(), String> {
    let topic = unique("restart");
    {
        let bus = e(h.connect().await, "connect")?;
        let mut sub = e(
            bus.subscribe(&topic, "c-restart", StartFrom::Earliest)
                .await,
            "subscribe",
        )?;
        for i in 0..100 {
            e(
                bus.publish(&topic, "k", Bytes::from(format!("{i}"))).await,
                "publish",
            )?;
        }
        for _ in 0..40 {
            let d = next(&mut sub).await?;
            e(sub.commit(&d).await, "commit")?;
        }
    }
    e(h.restart().await, "restart")?;
    let bus = e(h.connect().await, "reconnect")?;
    let mut sub = e(
        bus.subscribe(&topic, "c-restart", StartFrom::Committed)
            .await,
        "subscribe",
    )?;
    for i in 40..100 {
        let d = next(&mut sub).await?;
        if d.payload != format!("{i}").as_bytes() {
            return Err(format!("after restart got {:?}, expected {i}", d.payload));
        }
    }
    let mut all = e(
        bus.subscribe(&topic, "c-replay", StartFrom::Earliest).await,
        "replay",
    )?;
    let first = next(&mut all).await?;
    if first.payload != Bytes::from_static(b"0") {
        return Err(format!("replay starts at {:?}", first.payload));
    }
    Ok(())
}

/// A backend that is down gives an error naming it, within a few seconds.
pub async fn unreachable_is_a_clear_error(h: &dyn Harness) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(15), h.connect_unreachable()).await {
        Err(_) => Err("connecting to a down backend hung".into()),
        Ok(Ok(_)) => Err("connecting to a down backend succeeded".into()),
        Ok(Err(err)) => {
            let msg = err.to_string();
            if matches!(err, BusError::Unreachable { .. }) {
                Ok(())
            } else {
                Err(format!("expected an Unreachable error, got: {msg}"))
            }
        }
    }
}

/// Undecodable records go to the dead-letter topic and are counted; the consumer goes on.
pub async fn malformed_goes_to_dead_letter(h: &dyn Harness) -> Result<(), String> {
    let bus = e(h.connect().await, "connect")?;
    let topic = unique("dlq");
    let mut dead = e(
        bus.subscribe(
            &format!("{topic}.dead-letter"),
            "c-dlq-watch",
            StartFrom::Earliest,
        )
        .await,
        "subscribe dlq",
    )?;
    e(bus.publish(&topic, "k", purge_event(1)).await, "publish")?;
    e(
        bus.publish(&topic, "k", Bytes::from_static(b"not json"))
            .await,
        "publish",
    )?;
    e(
        bus.publish(
            &topic,
            "k",
            Bytes::from_static(br#"{"specversion":"0.3","id":"x","source":"/s","type":"t"}"#),
        )
        .await,
        "publish",
    )?;
    e(bus.publish(&topic, "k", purge_event(2)).await, "publish")?;
    let sub = e(
        bus.subscribe(&topic, "c-dlq", StartFrom::Earliest).await,
        "subscribe",
    )?;
    let mut c = EventConsumer::new(sub, bus.clone());
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = next_event(&mut c).await?;
        ids.push(r.cloud.id.clone());
        e(c.commit(&r).await, "commit")?;
    }
    if ids != ["purge-1", "purge-2"] {
        return Err(format!("consumer got {ids:?}"));
    }
    if c.stats.dead_lettered.load(Ordering::Relaxed) != 2 {
        return Err(format!(
            "dead-lettered {}",
            c.stats.dead_lettered.load(Ordering::Relaxed)
        ));
    }
    let d = next(&mut dead).await?;
    if d.payload != Bytes::from_static(b"not json") {
        return Err(format!("dead letter holds {:?}", d.payload));
    }
    Ok(())
}
