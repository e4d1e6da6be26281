//! Bus benchmark (not a test): throughput of the embedded log for 200-byte events, and purge
//! propagation latency: publish `purge.requested` → `purge.applied` seen from all of 3 edges.
//!
//!     cargo run --release -p eddy-control --example bus_bench [events] [purges]
//!
//! The same for each broker whose server is installed (tansu, RabbitMQ, nats-server), each
//! started privately for the run. Prints Markdown tables. Compare within one run; the machine is shared and noisy.
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
    async fn prefetch(&self, _url: &str) -> Result<Option<u64>, ControlError> {
        Ok(None)
    }
    fn holds(&self, _url: &str) -> bool {
        false
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
    let mut rows: Rows = Vec::new();

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
        next(&mut sub, "in-process consume").await?;
    }
    let consume = t.elapsed();
    rows.push((
        "embedded, in-process (batches of 1000, no fsync)".to_string(),
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
        next(&mut sub, "replay from disk").await?;
    }
    let consume = t.elapsed();
    rows.push((
        "embedded, durable (fsync every 10 ms; replay from disk)".to_string(),
        rate(n, publish),
        rate(n, consume),
    ));

    // Purge propagation to 3 edges.
    let dir = tempfile::tempdir()?;
    let bus: Arc<dyn Bus> = open(dir.path(), FsyncPolicy::Interval(Duration::from_millis(10)));
    let rtt_rows = vec![(
        "embedded".to_string(),
        round_trip(bus.clone(), purges).await?,
    )];
    let echo_rows = vec![(
        "embedded".to_string(),
        echo(
            bus.clone(),
            vec![bus.clone(), bus.clone(), bus.clone()],
            purges,
        )
        .await?,
    )];
    let purge_rows = vec![("embedded".to_string(), purge_latency(bus, purges).await?)];

    let mut t = Tables {
        rows,
        rtt: rtt_rows,
        echo: echo_rows,
        purge: purge_rows,
    };
    let n = (events / 50).max(1000);
    // Each broker is private to the bench: started here on an ephemeral port, stopped at the end.
    if eddy_testkit::brokers::TansuServer::available() {
        let dir = tempfile::tempdir()?;
        let server = eddy_testkit::brokers::TansuServer::start(dir.path())?;
        let bootstrap = server.bootstrap();
        broker(&mut t, "Kafka protocol (tansu 0.6, sqlite)", n, purges, &payload, || {
            let b = bootstrap.clone();
            async move { Ok(Arc::new(eddy_bus_kafka::KafkaBus::connect(&b).await?) as Arc<dyn Bus>) }
        })
        .await?;
    }
    if eddy_testkit::brokers::RabbitServer::available() {
        let dir = tempfile::tempdir()?;
        let node = eddy_testkit::brokers::RabbitServer::start(dir.path())?;
        let url = node.url();
        broker(
            &mut t,
            "RabbitMQ 3.10 (stream queues)",
            n,
            purges,
            &payload,
            || {
                let u = url.clone();
                async move {
                    Ok(Arc::new(eddy_bus_rabbitmq::RabbitBus::connect(&u).await?) as Arc<dyn Bus>)
                }
            },
        )
        .await?;
    }
    if eddy_testkit::brokers::NatsServer::available() {
        let dir = tempfile::tempdir()?;
        let server = eddy_testkit::brokers::NatsServer::start(dir.path())?;
        let url = server.url();
        broker(&mut t, "NATS JetStream 2.9", n, purges, &payload, || {
            let u = url.clone();
            async move { Ok(Arc::new(eddy_bus_nats::NatsBus::connect(&u).await?) as Arc<dyn Bus>) }
        })
        .await?;
    }
    let Tables {
        rows,
        rtt: rtt_rows,
        echo: echo_rows,
        purge: purge_rows,
    } = t;

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
        "the broker alone, the same path: publish → 3 consumers each publish a reply → all replies consumed",
        "records",
        &echo_rows,
    );
    print_latencies(
        "the broker alone: publish → consume, same client",
        "records",
        &rtt_rows,
    );
    Ok(())
}

type Rows = Vec<(String, String, String)>;

struct Tables {
    rows: Rows,
    rtt: Vec<(String, Vec<Duration>)>,
    echo: Vec<(String, Vec<Duration>)>,
    purge: Vec<(String, Vec<Duration>)>,
}

/// A broker's rows: throughput of `n` events published one acknowledged publish at a time and
/// consumed with a commit every 100, then the broker's own round trip and purge propagation to
/// three edges, each edge on its own client.
async fn broker<F, Fut>(
    t: &mut Tables,
    name: &str,
    n: usize,
    purges: usize,
    payload: &Bytes,
    connect: F,
) -> Result<(), Box<dyn std::error::Error>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Arc<dyn Bus>, eddy_bus::BusError>>,
{
    let bus = connect().await?;
    let start = Instant::now();
    for _ in 0..n {
        bus.publish("bench", "k", payload.clone()).await?;
    }
    let publish = start.elapsed();
    let mut sub = bus.subscribe("bench", "c", StartFrom::Earliest).await?;
    let start = Instant::now();
    for i in 0..n {
        let d = next(&mut sub, "consume").await?;
        if i % 100 == 99 {
            sub.commit(&d).await?;
        }
    }
    let consume = start.elapsed();
    t.rows.push((
        format!("{name} (one acknowledged publish at a time; commit every 100)"),
        rate(n, publish),
        rate(n, consume),
    ));
    let mut edges = Vec::new();
    for _ in 0..3 {
        edges.push(connect().await?);
    }
    t.rtt
        .push((name.to_string(), round_trip(bus.clone(), purges).await?));
    let mut echoers = Vec::new();
    for _ in 0..3 {
        echoers.push(connect().await?);
    }
    t.echo
        .push((name.to_string(), echo(bus.clone(), echoers, purges).await?));
    t.purge.push((
        name.to_string(),
        purge_latency_on(bus, edges, purges).await?,
    ));
    Ok(())
}

/// Longest wait for one record: past it the bench stops and says where, instead of hanging.
const STUCK: Duration = Duration::from_secs(30);

/// The next record of `sub`, or an error naming `what` if none comes within [`STUCK`].
async fn next(
    sub: &mut Box<dyn eddy_bus::Subscription>,
    what: &str,
) -> Result<eddy_bus::Delivery, Box<dyn std::error::Error>> {
    match tokio::time::timeout(STUCK, sub.next()).await {
        Ok(d) => Ok(d?),
        Err(_) => Err(format!(
            "{what}: no record within {STUCK:?} (a lost wake-up, or a stalled broker); stopping"
        )
        .into()),
    }
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
        let d = next(&mut sub, "round trip").await?;
        lat.push(t.elapsed());
        sub.commit(&d).await?;
    }
    lat.sort();
    Ok(lat)
}

/// Sorted latencies of the purge path with the broker alone: publish a request, three echo
/// consumers (each on its own client, committing like an edge) publish a reply, wait for all
/// three replies. Purge propagation minus this is what Eddy adds.
async fn echo(
    bus: Arc<dyn Bus>,
    echoers: Vec<Arc<dyn Bus>>,
    n: usize,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for (i, e) in echoers.into_iter().enumerate() {
        let mut sub = e
            .subscribe("bench-echo-req", &format!("echo-{i}"), StartFrom::Latest)
            .await?;
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                let d = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    d = sub.next() => match d {
                        Ok(d) => d,
                        Err(err) => {
                            eprintln!("echo consumer {i} stopped: reading failed: {err}");
                            return;
                        }
                    },
                };
                let (r, c) = tokio::join!(
                    e.publish("bench-echo-rep", "k", d.payload.clone()),
                    sub.commit(&d)
                );
                if let Err(err) = r.map(|_| ()).and(c) {
                    eprintln!("echo consumer {i} stopped: replying failed: {err}");
                    return;
                }
            }
        });
    }
    let mut replies = bus
        .subscribe("bench-echo-rep", "echo-watch", StartFrom::Latest)
        .await?;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let tag = Bytes::from(format!("{i:0200}"));
        let start = Instant::now();
        bus.publish("bench-echo-req", "k", tag.clone()).await?;
        let mut got = 0;
        while got < 3 {
            if next(&mut replies, "echo replies").await?.payload == tag {
                got += 1;
            }
        }
        lat.push(start.elapsed());
    }
    let _ = stop_tx.send(true);
    lat.sort();
    Ok(lat)
}

/// One Markdown table of sorted latency samples per backend.
fn print_latencies(title: &str, unit: &str, rows: &[(String, Vec<Duration>)]) {
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
            let d = next(&mut applied, "purge.applied reports").await?;
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
