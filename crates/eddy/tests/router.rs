//! The request router as production runs it: three `eddy edge` processes and one `eddy router`
//! process, each its own OS process, joined by a private NATS JetStream server. Under load, one
//! edge is killed with SIGKILL (no goodbye heartbeat): the router must stop sending viewers to it
//! within a second, and clients that follow the router and retry once must see no failure.
#![allow(clippy::unwrap_used)]

mod common;
use common::{EDDY, Proc};

use eddy_testkit::brokers::NatsServer;
use eddy_testkit::origin::{Origin, Reply, Seen};
use eddy_testkit::{free_port, wait_for_listener, wait_until};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn spawn(args: &[&str], config: &std::path::Path) -> Proc {
    Proc(
        Command::new(EDDY)
            .args(args)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
}

/// One viewer request through the router: ask it, fetch from the edge it names; on failure ask
/// again with `Eddy-Avoid` naming the failed edge and fetch once more. Returns the edges the
/// router chose, with when it answered.
async fn viewer(
    client: &reqwest::Client,
    router: SocketAddr,
    path: &str,
    tally: &Tally,
) -> Vec<(Instant, String)> {
    let mut chosen = Vec::new();
    let mut avoid: Option<String> = None;
    for attempt in 0..2 {
        let mut req = client.get(format!("http://{router}{path}"));
        if let Some(a) = &avoid {
            req = req.header("eddy-avoid", a.as_str());
        }
        let Ok(r) = req.send().await else { continue };
        let at = Instant::now();
        if r.status() != 302 {
            continue;
        }
        let edge = r
            .headers()
            .get("eddy-edge")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        chosen.push((at, edge));
        let ok = match client.get(&location).send().await {
            Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
            Err(_) => false,
        };
        if ok {
            tally.requests.fetch_add(1, Ordering::Relaxed);
            if attempt > 0 {
                tally.retried.fetch_add(1, Ordering::Relaxed);
            }
            return chosen;
        }
        avoid = location
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_string);
    }
    tally.failed.fetch_add(1, Ordering::Relaxed);
    chosen
}

#[test]
fn killing_an_edge_under_load_reroutes_within_a_second_and_no_viewer_fails_after_one_retry() {
    assert!(
        NatsServer::available(),
        "nats-server is not installed: run scripts/test-prep.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&dir.path().join("nats")).unwrap();
    let origin = Origin::start(|_: &Seen| {
        Reply::ok(vec![b'v'; 2048]).header("cache-control", "max-age=600")
    })
    .unwrap();
    let bus = format!("[bus]\nkind = \"nats\"\nurl = \"{}\"\n", nats.url());
    let mut edges = Vec::new();
    let mut listens = Vec::new();
    for i in 1..=3 {
        let listen = free_port().unwrap();
        let admin = free_port().unwrap();
        let path = dir.path().join(format!("edge-{i}.toml"));
        std::fs::write(
            &path,
            format!(
                "[edge]\nid = \"edge-{i}\"\nlisten = \"{listen}\"\nadmin = \"{admin}\"\norigins = [\"{}\"]\norigin_probe_interval_ms = 0\n{bus}",
                origin.url()
            ),
        )
        .unwrap();
        edges.push(Some(spawn(&["edge"], &path)));
        listens.push(listen);
    }
    let router = free_port().unwrap();
    let rpath = dir.path().join("router.toml");
    std::fs::write(&rpath, format!("[router]\nlisten = \"{router}\"\n{bus}")).unwrap();
    let _router = spawn(&["router"], &rpath);
    for l in listens.iter().chain([&router]) {
        assert!(
            wait_for_listener(*l, Duration::from_secs(30)),
            "{l} never listened"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let up = || {
        rt.block_on(async {
            let r = client
                .get(format!("http://{router}/_eddy/edges"))
                .send()
                .await
                .ok()?;
            let v: serde_json::Value = r.json().await.ok()?;
            Some(
                v.as_array()?
                    .iter()
                    .filter(|e| e["up"].as_bool() == Some(true))
                    .count(),
            )
        })
    };
    assert!(
        wait_until(Duration::from_secs(15), || up() == Some(3)),
        "the router never saw three edges up: {:?}",
        up()
    );

    // Load: 16 viewers, 50 objects (so path affinity spreads them over every edge).
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let choices = Arc::new(choices::Choices::default());
    let mut tasks = Vec::new();
    for v in 0..16u64 {
        let (client, tally, stop, choices) =
            (client.clone(), tally.clone(), stop.clone(), choices.clone());
        tasks.push(rt.spawn(async move {
            let mut i = v;
            while !stop.load(Ordering::Relaxed) {
                let path = format!("/obj/{}", i % 50);
                let c = viewer(&client, router, &path, &tally).await;
                choices.add(c);
                i += 7;
            }
        }));
    }
    let warm = tally.clone();
    assert!(
        wait_until(Duration::from_secs(10), || warm
            .requests
            .load(Ordering::Relaxed)
            > 500),
        "the load never got going"
    );
    let before = choices.count("edge-2");
    assert!(before > 0, "edge-2 got no traffic before the kill");
    let failed_before = tally.failed.load(Ordering::Relaxed);
    assert_eq!(failed_before, 0, "viewers failed before any kill");

    // SIGKILL edge-2: no goodbye, its heartbeats just stop.
    let killed_at = Instant::now();
    let mut e2 = edges[1].take().unwrap();
    e2.0.kill().unwrap();
    let _ = e2.0.wait();
    let after_kill = tally.requests.load(Ordering::Relaxed);
    let settled = tally.clone();
    assert!(
        wait_until(Duration::from_secs(10), || settled
            .requests
            .load(Ordering::Relaxed)
            > after_kill + 2000
            && killed_at.elapsed() > Duration::from_secs(2)),
        "the load stalled after the kill"
    );
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });

    let last_to_killed = choices
        .last_at("edge-2")
        .filter(|t| *t > killed_at)
        .map(|t| t - killed_at)
        .unwrap_or_default();
    let served = tally.requests.load(Ordering::Relaxed);
    let retried = tally.retried.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    println!(
        "ROUTER: edge killed -> last redirect to it after {} ms; {} requests served after the kill, {} needed their one retry, {} failed",
        last_to_killed.as_millis(),
        served - after_kill,
        retried,
        failed
    );
    assert!(
        last_to_killed < Duration::from_secs(1),
        "the router kept sending viewers to the dead edge for {last_to_killed:?}"
    );
    assert_eq!(failed, 0, "viewers failed even after one retry");
    assert!(
        retried > 0,
        "no request hit the dead edge: the test did not test"
    );
    drop(origin);
}

/// The router's choices, recorded by the viewers (a plain std mutex).
mod choices {
    use std::sync::Mutex;
    use std::time::Instant;

    #[derive(Default)]
    pub struct Choices(Mutex<Vec<(Instant, String)>>);

    impl Choices {
        pub fn add(&self, c: Vec<(Instant, String)>) {
            if let Ok(mut v) = self.0.lock() {
                v.extend(c);
            }
        }
        pub fn count(&self, edge: &str) -> usize {
            self.0
                .lock()
                .map(|v| v.iter().filter(|(_, e)| e == edge).count())
                .unwrap_or(0)
        }
        pub fn last_at(&self, edge: &str) -> Option<Instant> {
            self.0
                .lock()
                .ok()?
                .iter()
                .filter(|(_, e)| e == edge)
                .map(|(t, _)| *t)
                .max()
        }
    }
}
