//! Bus benchmark (not a test): throughput of the embedded log for 200-byte events, and purge
//! propagation latency: publish `purge.requested` → `purge.applied` seen from all of 3 edges.
//!
//!     cargo run --release -p eddy-control --example bus_bench [events] [purges]
//!
//! Prints a Markdown table. Compare within one run; the machine is shared and noisy.
use async_trait::async_trait;
use bytes::Bytes;
use eddy_bus::embedded::{EmbeddedBus, EmbeddedOptions, FsyncPolicy};
use eddy_bus::{Bus, StartFrom};
use eddy_control::purge::{PurgeFollower, request};
use eddy_control::{ControlError, EdgeControl, PURGE_APPLIED_TOPIC};
use eddy_events::{Event, PurgeTarget};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct NullEdge(String);

#[async_trait]
impl EdgeControl for NullEdge {
    fn edge_id(&self) -> &str {
        &self.0
    }
    async fn purge(&self, _t: &PurgeTarget, _soft: bool) -> Result<u64, ControlError> {
        Ok(0)
    }
}

fn open(dir: &std::path::Path, fsync: FsyncPolicy) -> Arc<EmbeddedBus> {
    let mut o = EmbeddedOptions::new(dir);
    o.fsync = fsync;
    o.tail_bytes = 64 << 20;
    match EmbeddedBus::open(o) {
        Ok(b) => Arc::new(b),
        Err(e) => panic!("open: {e}"),
    }
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:.0}", n as f64 / d.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let purges: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000);
    let payload = Bytes::from(vec![b'x'; 200]);
    let mut rows = Vec::new();

    // In-process: batched appends, no fsync, consumed by an in-process subscriber.
    let dir = tempfile::tempdir()?;
    let bus = open(dir.path(), FsyncPolicy::Never);
    let mut sub = bus.subscribe("bench", "c", StartFrom::Earliest).await?;
    let batch: Vec<(&str, Bytes)> = (0..1000).map(|_| ("k", payload.clone())).collect();
    let t = Instant::now();
    for _ in 0..events / 1000 {
        bus.publish_batch("bench", &batch)?;
    }
    let publish = t.elapsed();
    let t = Instant::now();
    for _ in 0..(events / 1000) * 1000 {
        sub.next().await?;
    }
    let consume = t.elapsed();
    rows.push((
        "embedded, in-process (batches of 1000, no fsync)",
        rate(events, publish),
        rate(events, consume),
    ));

    // Durable: one publish call per event, fsync every 10 ms by the background thread.
    let dir = tempfile::tempdir()?;
    let bus = open(dir.path(), FsyncPolicy::Interval(Duration::from_millis(10)));
    let n = events / 5;
    let t = Instant::now();
    for _ in 0..n {
        bus.publish("bench", "k", payload.clone()).await?;
    }
    let publish = t.elapsed();
    bus.flush();
    drop(bus);
    // Consume from the files after a reopen (replay path, no in-memory tail).
    let bus = open(dir.path(), FsyncPolicy::Never);
    let mut sub = bus.subscribe("bench", "c", StartFrom::Earliest).await?;
    let t = Instant::now();
    for _ in 0..n {
        sub.next().await?;
    }
    let consume = t.elapsed();
    rows.push((
        "embedded, durable (fsync every 10 ms; replay from disk)",
        rate(n, publish),
        rate(n, consume),
    ));

    // Purge propagation to 3 edges.
    let dir = tempfile::tempdir()?;
    let bus: Arc<dyn Bus> = open(dir.path(), FsyncPolicy::Interval(Duration::from_millis(10)));
    let mut rtt_rows = vec![("embedded", round_trip(bus.clone(), purges).await?)];
    let mut purge_rows = vec![("embedded", purge_latency(bus, purges).await?)];

    // NATS JetStream, on a private nats-server started for the bench.
    if eddy_testkit::brokers::NatsServer::available() {
        let dir = tempfile::tempdir()?;
        let server = eddy_testkit::brokers::NatsServer::start(dir.path())?;
        let bus: Arc<dyn Bus> = Arc::new(eddy_bus_nats::NatsBus::connect(&server.url()).await?);
        let n = (events / 50).max(1000);
        let t = Instant::now();
        for _ in 0..n {
            bus.publish("bench", "k", payload.clone()).await?;
        }
        let publish = t.elapsed();
        let mut sub = bus.subscribe("bench", "c", StartFrom::Earliest).await?;
        let t = Instant::now();
        for i in 0..n {
            let d = sub.next().await?;
            if i % 100 == 99 {
                sub.commit(&d).await?;
            }
        }
        let consume = t.elapsed();
        rows.push((
            "NATS JetStream 2.9 (one acknowledged publish at a time; commit every 100)",
            rate(n, publish),
            rate(n, consume),
        ));
        let edges: Vec<Arc<dyn Bus>> = {
            let mut v: Vec<Arc<dyn Bus>> = Vec::new();
            for _ in 0..3 {
                v.push(Arc::new(
                    eddy_bus_nats::NatsBus::connect(&server.url()).await?,
                ));
            }
            v
        };
        rtt_rows.push(("NATS JetStream", round_trip(bus.clone(), purges).await?));
        purge_rows.push((
            "NATS JetStream",
            purge_latency_on(bus, edges, purges).await?,
        ));
    }

    println!("| backend | publish events/s | consume events/s |");
    println!("|---|---:|---:|");
    for (name, p, c) in rows {
        println!("| {name} | {p} | {c} |");
    }
    print_latencies(
        "publish → purge.applied from all 3 edges",
        "purges",
        &purge_rows,
    );
    print_latencies(
        "the broker alone: publish → consume, same client",
        "records",
        &rtt_rows,
    );
    Ok(())
}

/// Sorted latencies of one publish until the same client's subscription delivers it: the
/// broker's own cost, to compare purge propagation against.
async fn round_trip(
    bus: Arc<dyn Bus>,
    n: usize,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let mut sub = bus.subscribe("bench-rtt", "rtt", StartFrom::Latest).await?;
    let payload = Bytes::from(vec![b'r'; 200]);
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        bus.publish("bench-rtt", "k", payload.clone()).await?;
        let d = sub.next().await?;
        lat.push(t.elapsed());
        sub.commit(&d).await?;
    }
    lat.sort();
    Ok(lat)
}

/// One Markdown table of sorted latency samples per backend.
fn print_latencies(title: &str, unit: &str, rows: &[(&str, Vec<Duration>)]) {
    println!();
    println!("| backend ({title}) | {unit} | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (name, lat) in rows {
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        println!(
            "| {name} | {} | {} | {} | {} |",
            lat.len(),
            ms(pct(0.50)),
            ms(pct(0.99)),
            ms(*lat.last().unwrap_or(&Duration::ZERO))
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

async fn purge_latency(
    bus: Arc<dyn Bus>,
    purges: usize,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let edges = vec![bus.clone(), bus.clone(), bus.clone()];
    purge_latency_on(bus, edges, purges).await
}

/// Sorted latencies from publishing a purge to seeing `purge.applied` from all three edges, each
/// edge following through its own bus client.
async fn purge_latency_on(
    bus: Arc<dyn Bus>,
    edges: Vec<Arc<dyn Bus>>,
    purges: usize,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for (i, edge_bus) in edges.into_iter().enumerate() {
        let f =
            PurgeFollower::start(edge_bus, Arc::new(NullEdge(format!("edge-{}", i + 1)))).await?;
        tokio::spawn(f.run(stop_rx.clone()));
    }
    let mut applied = bus
        .subscribe(PURGE_APPLIED_TOPIC, "bench-watch", StartFrom::Latest)
        .await?;
    let mut lat = Vec::with_capacity(purges);
    for i in 0..purges {
        let t = Instant::now();
        let id = request(
            bus.as_ref(),
            "/bench",
            PurgeTarget::Url(format!("h/{i}")),
            false,
        )
        .await?;
        let mut seen: HashMap<String, ()> = HashMap::new();
        while seen.len() < 3 {
            let d = applied.next().await?;
            if let Ok((_, Event::PurgeApplied(a))) = Event::decode(&d.payload)
                && a.request_id == id
            {
                seen.insert(a.edge, ());
            }
        }
        lat.push(t.elapsed());
    }
    let _ = stop_tx.send(true);
    lat.sort();
    Ok(lat)
}
