//! Origin health and failover through a real edge: the primary origin dies under steady traffic
//! and comes back. No client request fails, the edge marks the primary down (and publishes
//! `dev.eddy.origin.health.v1`) within 1 s, and traffic returns once probes see it again.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;
use eddy_bus::{StartFrom, Subscription};
use eddy_testkit::origin::{Origin, Reply};
use std::time::{Duration, Instant};

fn named(name: &'static str) -> impl Fn(&eddy_testkit::origin::Seen) -> Reply + Send + Sync {
    move |_| Reply::ok(name).header("cache-control", "no-store")
}

async fn health_event(sub: &mut Box<dyn Subscription>, healthy: bool) -> eddy_events::OriginHealth {
    loop {
        let d = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("an origin health event within 5 s")
            .unwrap();
        if let Ok((_, eddy_events::Event::OriginHealth(h))) = eddy_events::Event::decode(&d.payload)
            && h.healthy == healthy
        {
            return h;
        }
    }
}

#[test]
fn primary_down_moves_traffic_with_no_failed_request_and_recovery_brings_it_back() {
    let primary_addr = eddy_testkit::free_fixed_port().unwrap();
    let mut primary = Some(Origin::start_on(primary_addr, named("primary")).unwrap());
    let mut rig = start(named("secondary"));
    let bus_dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(bus_dir.path());
    let o = node_overrides(
        vec![format!("http://{primary_addr}"), rig.origin.url()],
        None,
    );
    rig.stop_edge();
    rig.start_edge_with_bus(
        &o,
        "[edge]\norigin_probe_interval_ms = 200\norigin_fail_threshold = 3\n",
        Some(bus.clone()),
    );
    let mut events = rig
        .rt
        .block_on(bus.subscribe(
            eddy_control::ORIGIN_HEALTH_TOPIC,
            "test-watch",
            StartFrom::Latest,
        ))
        .unwrap();
    let url = rig.url("/live");
    let client = reqwest::Client::new();
    let ask = |client: &reqwest::Client| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            match client.get(&url).send().await {
                Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default(),
                Ok(r) => format!("status {}", r.status()),
                Err(e) => format!("error {e}"),
            }
        }
    };
    rig.rt.block_on(async {
        for _ in 0..20 {
            assert_eq!(ask(&client).await, "primary");
        }
    });

    // The primary dies. Requests keep coming every 5 ms.
    drop(primary.take());
    let killed = Instant::now();
    let (answers, down) = rig.rt.block_on(async {
        let mut answers = Vec::new();
        let watch = async {
            let h = health_event(&mut events, false).await;
            (killed.elapsed(), h)
        };
        tokio::pin!(watch);
        let mut down = None;
        while killed.elapsed() < Duration::from_millis(1500) {
            answers.push(ask(&client).await);
            tokio::select! {
                d = &mut watch, if down.is_none() => down = Some(d),
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        (answers, down)
    });
    let failed: Vec<_> = answers.iter().filter(|a| *a != "secondary").collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(5)]
    );
    let (after, event) = down.expect("origin.health down event");
    eprintln!(
        "primary marked down {after:?} after it died; {} requests, 0 failed",
        answers.len()
    );
    assert!(after < Duration::from_secs(1), "down after {after:?}");
    assert_eq!(event.origin, format!("http://{primary_addr}"));

    // The primary comes back on its address: probes see it and traffic returns.
    primary = Some(Origin::start_on(primary_addr, named("primary")).unwrap());
    let back = Instant::now();
    let (returned, up) = rig.rt.block_on(async {
        let up = health_event(&mut events, true).await;
        let mut seen = Vec::new();
        loop {
            let a = ask(&client).await;
            let done = a == "primary";
            seen.push(a);
            if done || back.elapsed() > Duration::from_secs(5) {
                return (seen, (back.elapsed(), up));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    eprintln!("primary back in service after {:?}", up.0);
    assert_eq!(
        returned.last().map(String::as_str),
        Some("primary"),
        "{returned:?}"
    );
    assert!(
        returned.iter().all(|a| a == "primary" || a == "secondary"),
        "{returned:?}"
    );
    let m = rig.metrics_text();
    assert!(
        m.contains(&format!(
            "eddy_origin_up{{origin=\"http://{primary_addr}\"}} 1"
        )),
        "{m}"
    );
    drop(primary);
}

#[test]
fn with_every_origin_down_cached_objects_are_served_stale_within_the_limit() {
    let addr = eddy_testkit::free_fixed_port().unwrap();
    let handler = || {
        |s: &eddy_testkit::origin::Seen| {
            let cc = if s.path.starts_with("/strict") {
                "max-age=1, must-revalidate"
            } else {
                "max-age=1"
            };
            Reply::ok("fresh").header("cache-control", cc)
        }
    };
    let mut origin = Some(Origin::start_on(addr, handler()).unwrap());
    let mut rig = start(named("unused"));
    let o = node_overrides(vec![format!("http://{addr}")], None);
    rig.stop_edge();
    rig.start_edge(
        &o,
        "[edge]\norigin_probe_interval_ms = 200\n[cache]\nstale_on_error_s = 2\n",
    );
    assert_eq!(rig.get("/obj").x_cache(), "MISS");
    let cached = Instant::now();
    assert_eq!(rig.get("/strict").x_cache(), "MISS");
    drop(origin.take());
    // Once /obj expires it is served stale (and says so) while the origin stays down...
    let mut statuses = Vec::new();
    assert!(
        eddy_testkit::wait_until(Duration::from_secs(5), || {
            let r = rig.get("/obj");
            statuses.push(r.status);
            r.x_cache() == "STALE"
        }),
        "never served stale"
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let stale_at = cached.elapsed();
    // ...but not an object whose directives forbid it, nor one never cached.
    assert!(
        eddy_testkit::wait_until(Duration::from_secs(5), || rig.get("/strict").status >= 500),
        "must-revalidate object served stale"
    );
    assert!(rig.get("/never-cached").status >= 500);
    // Past the limit (1 s fresh + 2 s stale) the stale copy is no longer used.
    assert!(
        eddy_testkit::wait_until(Duration::from_secs(6), || rig.get("/obj").status >= 500),
        "stale served past the limit"
    );
    let gone_at = cached.elapsed();
    eprintln!("stale from {stale_at:?}, refused from {gone_at:?} after caching");
    // Freshness is counted from the origin's Date (whole seconds), so it ends up to 1 s early.
    assert!(
        gone_at >= stale_at + Duration::from_millis(1900),
        "stale from {stale_at:?}, refused from {gone_at:?}: the window is 2 s"
    );
    // The origin comes back: fresh content again.
    origin = Some(Origin::start_on(addr, handler()).unwrap());
    assert!(
        eddy_testkit::wait_until(Duration::from_secs(5), || {
            let r = rig.get("/obj");
            r.status == 200 && r.x_cache() != "STALE"
        }),
        "recovery not detected"
    );
    drop(origin);
}
