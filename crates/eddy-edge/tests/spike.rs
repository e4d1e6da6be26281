//! Traffic-spike detection through a real edge: one object goes from 0 to 5,000 requests/s and a
//! `dev.eddy.traffic.spike.v1` event reaches the bus within 500 ms, while every client request
//! still succeeds and the origin sees one fetch; and another edge on the same bus pre-warms the
//! spiking object before any of its own viewers ask.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;
use eddy_bus::StartFrom;
use std::time::{Duration, Instant};

const RATE: u64 = 5_000;
const CLIENTS: u64 = 20;

#[test]
fn zero_to_5000_requests_per_second_publishes_a_spike_within_500_ms() {
    let mut rig = start(counting("max-age=600"));
    let bus_dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(bus_dir.path());
    let o = node_overrides(vec![rig.origin.url()], Some("spiky"));
    rig.stop_edge();
    rig.start_edge_with_bus(&o, "", Some(bus.clone()));
    let mut spikes = rig
        .rt
        .block_on(bus.subscribe(
            eddy_control::TRAFFIC_SPIKE_TOPIC,
            "test-watch",
            StartFrom::Latest,
        ))
        .unwrap();
    // A normal client's object, cached before the surge.
    assert_eq!(rig.get("/calm").status, 200);

    let start = Instant::now();
    let load = rig.rt.spawn(surge(rig.url("/hot"), RATE, 1.5));
    // The first spike event for the object, as the bus delivers it.
    let (delay, spike) = rig.rt.block_on(async {
        loop {
            let d = tokio::time::timeout(Duration::from_secs(5), spikes.next())
                .await
                .expect("a spike event within 5 s")
                .unwrap();
            if let Ok((_, eddy_events::Event::TrafficSpike(s))) =
                eddy_events::Event::decode(&d.payload)
                && s.key.ends_with("/hot")
            {
                return (start.elapsed(), s);
            }
        }
    });
    // Normal clients are served during the surge.
    assert_eq!(rig.get("/calm").x_cache(), "HIT");
    let (n, failed) = rig.rt.block_on(load).unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    eprintln!(
        "spike published after {delay:?}: {spike:?}; {n} requests in {elapsed:.2} s ({:.0}/s)",
        n as f64 / elapsed
    );
    assert!(delay < Duration::from_millis(500), "spike after {delay:?}");
    assert_eq!(spike.edge, "spiky");
    assert!(spike.rate > 10.0 * spike.baseline, "{spike:?}");
    assert_eq!(failed, 0, "failed requests");
    assert!(
        n as f64 / elapsed > 0.6 * RATE as f64,
        "load too low to mean anything: {n}"
    );
    let origin_hot = rig
        .origin
        .seen()
        .iter()
        .filter(|s| s.path == "/hot")
        .count();
    assert_eq!(origin_hot, 1, "the origin saw one fetch of the hot object");
    // The spike is counted on /metrics.
    let m = rig.metrics_text();
    assert!(
        m.lines()
            .any(|l| l.starts_with("eddy_traffic_spikes_total ") && !l.ends_with(" 0")),
        "{m}"
    );
}

/// Drive `rate` requests/s for `secs` at `url` from `CLIENTS` keep-alive clients; returns
/// (requests, failures).
async fn surge(url: String, rate: u64, secs: f64) -> (u64, u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS as usize)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 * CLIENTS / rate));
            let until = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
            let (mut n, mut failed) = (0, 0);
            while tokio::time::Instant::now() < until {
                tick.tick().await;
                n += 1;
                let ok = match client.get(&url).send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if !ok {
                    failed += 1;
                }
            }
            (n, failed)
        }));
    }
    let mut total = (0, 0);
    for t in tasks {
        let (n, f) = t.await.unwrap();
        total = (total.0 + n, total.1 + f);
    }
    total
}

#[test]
fn a_spike_on_one_edge_prewarms_the_object_on_the_others() {
    let bus_dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(bus_dir.path());
    let mut edges = Vec::new();
    for id in ["a", "b"] {
        let mut rig = start(counting("max-age=600"));
        let o = node_overrides(vec![rig.origin.url()], Some(id));
        rig.stop_edge();
        rig.start_edge_with_bus(&o, "", Some(bus.clone()));
        edges.push(rig);
    }
    let (a, b) = (&edges[0], &edges[1]);
    let (n, failed) = a.rt.block_on(surge(a.url("/hot"), 2_000, 1.0));
    assert_eq!(failed, 0, "{failed} of {n} failed");
    // Edge b fetched /hot from its origin with no viewer asking it...
    let b_fetches = || b.origin.seen().iter().filter(|s| s.path == "/hot").count();
    assert!(
        eddy_testkit::wait_until(Duration::from_secs(5), || b_fetches() == 1),
        "edge b was not pre-warmed (origin fetches {})",
        b_fetches()
    );
    let stored = || {
        let m = b.metrics_text();
        m.lines()
            .any(|l| l.starts_with("eddy_cache_objects{tier=\"memory\"}") && !l.ends_with(" 0"))
    };
    assert!(eddy_testkit::wait_until(Duration::from_secs(5), stored));
    // ...so its first viewer request (same site name as on edge a) is a hit.
    let site = a.listen.to_string();
    let r = b.get_h("/hot", &[("host", site.as_str())]);
    assert_eq!(r.x_cache(), "HIT");
    assert_eq!(b_fetches(), 1);
}

#[test]
fn an_abusive_client_is_limited_and_others_are_not() {
    let rig = start_with(
        counting("max-age=600"),
        |_| {},
        "[edge]\nclient_rate = 50\nclient_burst = 20\n",
    );
    assert_eq!(rig.get("/page").status, 200);
    let url = rig.url("/page");
    let (ok, limited, retry_after, elapsed) = rig.rt.block_on(async {
        let c = reqwest::Client::new();
        let start = Instant::now();
        let (mut ok, mut limited, mut retry_after) = (0u32, 0u32, None);
        for _ in 0..300 {
            let r = c.get(&url).send().await.unwrap();
            match r.status().as_u16() {
                200 => ok += 1,
                429 => {
                    limited += 1;
                    retry_after = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                }
                s => panic!("unexpected status {s}"),
            }
        }
        (ok, limited, retry_after, start.elapsed().as_secs_f64())
    });
    // The burst plus what the rate refills during the loop (one earlier request counted too).
    let allowed = 20.0 + 50.0 * elapsed;
    assert!(
        f64::from(ok) <= allowed + 1.0,
        "{ok} allowed in {elapsed:.2} s"
    );
    assert!(limited > 0 && ok >= 19, "ok {ok}, limited {limited}");
    assert!(
        retry_after.is_some_and(|s| (1..=2).contains(&s)),
        "{retry_after:?}"
    );
    // Another client address (127.0.0.2 is loopback too) is not affected.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let statuses: Vec<u16> = rig.rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..10 {
            v.push(other.get(&url).send().await.unwrap().status().as_u16());
        }
        v
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let m = rig.metrics_text();
    assert!(
        m.lines()
            .any(|l| l == format!("eddy_client_rate_limited_total {limited}")),
        "{m}"
    );
}

#[test]
fn the_origin_fetch_limit_serves_stale_or_503_and_never_queues() {
    let rig = start_with(
        counting("max-age=0, stale-if-error=60"),
        |_| {},
        "[edge]\norigin_rate = 1\norigin_burst = 2\n",
    );
    // One fetch stores /s (immediately stale, usable if the origin fails for 60 s).
    assert_eq!(rig.get("/s").status, 200);
    // A burst of new objects: the second token goes, then the limit answers at once.
    let start = Instant::now();
    let statuses: Vec<(u16, String)> = (0..20)
        .map(|i| {
            let r = rig.get(&format!("/new/{i}"));
            (r.status, r.h("retry-after").to_string())
        })
        .collect();
    let elapsed = start.elapsed();
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 503).collect();
    assert!(
        ok >= 1 && ok as f64 <= 1.0 + elapsed.as_secs_f64() + 1.0,
        "{ok} fetched in {elapsed:?}"
    );
    assert_eq!(ok + refused.len(), 20, "{statuses:?}");
    assert!(refused.iter().all(|(_, ra)| ra == "1"), "{refused:?}");
    assert!(
        elapsed < Duration::from_secs(5),
        "refusals must not queue: {elapsed:?}"
    );
    // The stored object needs revalidation, the limit refuses the fetch: served stale instead.
    let r = rig.get("/s");
    assert_eq!((r.status, r.x_cache()), (200, "STALE"));
    let fetched = rig.origin.seen().len();
    assert_eq!(fetched, 1 + ok, "origin requests");
}
