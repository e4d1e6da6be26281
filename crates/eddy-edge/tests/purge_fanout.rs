//! Purge fan-out through the event bus: every edge applies every purge, and an edge that was
//! down catches up before it serves again. Real edges, a real origin, and each bus backend: the
//! embedded log, tansu (Kafka protocol), RabbitMQ and NATS JetStream, each broker private to its
//! test.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;
use eddy_bus::embedded::{EmbeddedBus, EmbeddedOptions};
use eddy_bus::{Bus, StartFrom};
use eddy_config::Overrides;
use std::sync::Arc;
use std::time::Duration;

fn overrides(rig: &Rig, id: &str, listen: &str, cache: &std::path::Path) -> Overrides {
    Overrides {
        listen: Some(listen.to_string()),
        admin: Some(eddy_testkit::free_port().unwrap().to_string()),
        origins: vec![rig.origin.url()],
        cache_dir: Some(cache.to_path_buf()),
        id: Some(id.to_string()),
        ..Default::default()
    }
}

#[test]
fn embedded_purges_reach_every_edge_and_a_restarted_edge_catches_up_first() {
    let bus_dir = tempfile::tempdir().unwrap();
    let bus: Arc<dyn Bus> =
        Arc::new(EmbeddedBus::open(EmbeddedOptions::new(bus_dir.path())).unwrap());
    fan_out_and_catch_up(&|_rt| bus.clone());
}

#[test]
fn nats_purges_reach_every_edge_and_a_restarted_edge_catches_up_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = eddy_testkit::brokers::NatsServer::start(dir.path())
        .expect("nats-server (scripts/test-prep.sh installs it)");
    let url = server.url();
    // Each edge gets its own client, as edges on different machines would.
    fan_out_and_catch_up(&|rt| {
        let bus = rt.block_on(eddy_bus_nats::NatsBus::connect(&url)).unwrap();
        Arc::new(bus) as Arc<dyn Bus>
    });
}

#[test]
fn kafka_purges_reach_every_edge_and_a_restarted_edge_catches_up_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = eddy_testkit::brokers::TansuServer::start(dir.path())
        .expect("tansu (scripts/test-prep.sh installs it)");
    let bootstrap = server.bootstrap();
    fan_out_and_catch_up(&|rt| {
        let bus = rt
            .block_on(eddy_bus_kafka::KafkaBus::connect(&bootstrap))
            .unwrap();
        Arc::new(bus) as Arc<dyn Bus>
    });
}

#[test]
fn rabbitmq_purges_reach_every_edge_and_a_restarted_edge_catches_up_first() {
    // A private node: the purge topics and edge names are fixed, so this test must not share a
    // broker with anything else.
    let dir = tempfile::tempdir().unwrap();
    let node = eddy_testkit::brokers::RabbitServer::start(dir.path())
        .expect("RabbitMQ (scripts/test-prep.sh installs it)");
    let url = node.url();
    fan_out_and_catch_up(&|rt| {
        let bus = rt
            .block_on(eddy_bus_rabbitmq::RabbitBus::connect(&url))
            .unwrap();
        Arc::new(bus) as Arc<dyn Bus>
    });
}

fn fan_out_and_catch_up(connect: &dyn Fn(&tokio::runtime::Runtime) -> Arc<dyn Bus>) {
    // Edge 1 is the rig's own; edge 2 a second rig on the same origin. Same listen host:port is
    // not possible, so each keys objects under its own address; purges name both.
    let mut a = start(counting("max-age=600"));
    let a_listen = eddy_testkit::free_port().unwrap().to_string();
    let a_cache = a.dir.path().join("cache");
    let oa = overrides(&a, "a", &a_listen, &a_cache);
    a.stop_edge();
    let bus = connect(&a.rt);
    a.start_edge_with_bus(&oa, "", Some(bus.clone()));

    let mut b = start(counting("max-age=600"));
    let b_listen = eddy_testkit::free_port().unwrap().to_string();
    let b_cache = b.dir.path().join("cache");
    let ob = overrides(&b, "b", &b_listen, &b_cache);
    b.stop_edge();
    let bus_b = connect(&b.rt);
    b.start_edge_with_bus(&ob, "", Some(bus_b.clone()));

    let mut applied =
        a.rt.block_on(bus.subscribe(
            eddy_control::PURGE_APPLIED_TOPIC,
            "test-watch",
            StartFrom::Latest,
        ))
        .unwrap();
    // Viewers ask both edges for one site, so both hold `cdn.test/show/1`.
    let site = [("host", "cdn.test")];
    for rig in [&a, &b] {
        rig.get_h("/show/1", &site);
        assert_eq!(rig.get_h("/show/1", &site).x_cache(), "HIT");
    }
    // One purge by prefix through edge a's admin API reaches both edges.
    let r = a.admin_post("/purge", r#"{"prefix":"CDN.test/show/","soft":false}"#, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("\"published\":true"), "{}", r.text());
    for rig in [&a, &b] {
        assert!(
            eddy_testkit::wait_until(Duration::from_secs(5), || rig
                .get_h("/show/1", &site)
                .x_cache()
                == "MISS"),
            "purge reached {}",
            rig.listen
        );
    }
    let mut reporters = Vec::new();
    for _ in 0..2 {
        let d = a
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), applied.next()).await })
            .unwrap()
            .unwrap();
        if let eddy_events::Event::PurgeApplied(p) =
            eddy_events::Event::decode(&d.payload).unwrap().1
        {
            reporters.push(p.edge);
        }
    }
    reporters.sort();
    assert_eq!(reporters, ["a", "b"]);

    // Edge b goes down with /show/2 cached on disk; a purge of it is published meanwhile.
    b.get("/show/2");
    assert_eq!(b.get("/show/2").x_cache(), "HIT");
    b.stop_edge();
    let url = format!("{b_listen}/show/2");
    let r = a.admin_post("/purge", &format!("{{\"url\":\"{url}\"}}"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    // On restart b applies it before serving: the very first request is a miss.
    b.start_edge_with_bus(&ob, "", Some(bus.clone()));
    assert_eq!(
        b.get("/show/2").x_cache(),
        "MISS",
        "a purged object was never served after restart"
    );
    // An object not purged survives the restart as a hit from disk.
    assert_eq!(b.get_h("/show/1", &site).x_cache(), "HIT");
}

#[test]
fn content_update_events_become_purges() {
    let bus_dir = tempfile::tempdir().unwrap();
    let bus: Arc<dyn Bus> =
        Arc::new(EmbeddedBus::open(EmbeddedOptions::new(bus_dir.path())).unwrap());
    let mut rig = start(|req: &eddy_testkit::origin::Seen| {
        eddy_testkit::origin::Reply::ok(req.path.clone())
            .header("cache-control", "max-age=600")
            .header("surrogate-key", "article-7")
    });
    let o = overrides(
        &rig,
        "c",
        &rig.listen.to_string(),
        &rig.dir.path().join("cache"),
    );
    rig.stop_edge();
    rig.start_edge_with_bus(&o, "", Some(bus.clone()));
    rig.get("/news/7");
    assert_eq!(rig.get("/news/7").x_cache(), "HIT");
    // Structured mode.
    let body = r#"{"specversion":"1.0","id":"cms-1","source":"https://cms.example","type":"dev.eddy.content.updated.v1","data":{"keys":["article-7"]}}"#;
    let r = rig.send(
        rig.client
            .post(rig.admin_url("/events"))
            .header("content-type", "application/cloudevents+json")
            .body(body),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(eddy_testkit::wait_until(Duration::from_secs(5), || rig
        .get("/news/7")
        .x_cache()
        == "MISS"));
    // Binary mode, by URL.
    rig.get("/news/8");
    let r = rig.send(
        rig.client
            .post(rig.admin_url("/events"))
            .header("ce-specversion", "1.0")
            .header("ce-id", "cms-2")
            .header("ce-source", "https://cms.example")
            .header("ce-type", "dev.eddy.content.updated.v1")
            .header("content-type", "application/json")
            .body(format!(r#"{{"urls":["http://{}/news/8"]}}"#, rig.listen)),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(eddy_testkit::wait_until(Duration::from_secs(5), || rig
        .get("/news/8")
        .x_cache()
        == "MISS"));
    // Bad input: a clear 4xx, nothing applied.
    let r = rig.send(
        rig.client
            .post(rig.admin_url("/events"))
            .header("content-type", "application/cloudevents+json")
            .body("{}"),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("specversion"), "{}", r.text());
    let r = rig.send(rig.client.post(rig.admin_url("/events")).body("hello"));
    assert_eq!(r.status, 415);
}
