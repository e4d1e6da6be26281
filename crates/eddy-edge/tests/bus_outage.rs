//! A broker outage under a running edge: the edge keeps serving (hits from cache, misses from the
//! origin) while its NATS server is down, answers purges it cannot publish with a clear error
//! instead of hanging, and after the server is back follows purges again without a restart.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;
use eddy_testkit::brokers::NatsServer;
use eddy_testkit::wait_until;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn an_edge_serves_through_a_broker_outage_and_follows_purges_after_it() {
    assert!(
        NatsServer::available(),
        "nats-server is not installed: run scripts/test-prep.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut server = NatsServer::start(&dir.path().join("nats")).unwrap();
    let mut rig = start(counting("max-age=600"));
    rig.stop_edge();
    let bus: Arc<dyn eddy_bus::Bus> = Arc::new(
        rig.rt
            .block_on(eddy_bus_nats::NatsBus::connect(&server.url()))
            .unwrap(),
    );
    let mut o = node_overrides(vec![rig.origin.url()], Some("edge-outage"));
    o.listen = Some(rig.listen.to_string());
    o.admin = Some(rig.admin.to_string());
    rig.start_edge_with_bus(&o, "", Some(bus));
    rig.get("/a");
    assert_eq!(rig.get("/a").x_cache(), "HIT");

    server.stop();
    // Serving goes on: hits from cache, a miss from the origin, no request waits on the bus.
    let t = Instant::now();
    for _ in 0..50 {
        let r = rig.get("/a");
        assert_eq!((r.status, r.x_cache()), (200, "HIT"));
    }
    let r = rig.get("/b");
    assert_eq!((r.status, r.x_cache()), (200, "MISS"));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "requests slowed down while the broker was away: {:?}",
        t.elapsed()
    );
    // A purge that cannot be published says so (and is not reported as done).
    let t = Instant::now();
    let r = rig.admin_post("/purge", r#"{"key": "k"}"#, &[]);
    assert!(r.status >= 500, "{} {}", r.status, r.text());
    assert!(
        r.text().contains("publishing the purge failed"),
        "{}",
        r.text()
    );
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());

    server.restart().unwrap();
    // The client reconnects by itself; a purge published through the edge reaches its cache.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let url = format!("{}/a", rig.listen);
            rig.admin_post("/purge", &format!("{{\"url\": \"{url}\"}}"), &[])
                .status
                == 200
        }),
        "purges never published again after the broker came back"
    );
    assert!(
        wait_until(Duration::from_secs(10), || rig.get("/a").x_cache()
            == "MISS"),
        "the edge never applied the purge after the outage"
    );
}
