//! Issue 12, CMCD → QoE: every CMCD-carrying request (query or `CMCD-*` fields, fast path or
//! full proxy) becomes a QoE sample on the bus, at most one event per edge per second; malformed
//! CMCD is counted and never changes what the player receives.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::raw::{RawConn, get};
use common::{embedded_bus, node_overrides, start_with};
use eddy_events::Event;
use eddy_testkit::origin::{Reply, Seen};

fn cmcd(i: usize) -> String {
    format!(
        "CMCD=bl%3D{}%2Cbr%3D2306%2Ccid%3D%22show%22%2Cmtp%3D4500%2Cot%3Dav%2Csid%3D%22s{}%22%2Cst%3Dv",
        i * 100,
        i % 3
    )
}

/// The QoE samples edge `qoe-edge` published on `bus`, read until there are `want` (within
/// 10 s), and when each event arrived.
fn samples_on(
    rig: &common::Rig,
    bus: &std::sync::Arc<dyn eddy_bus::Bus>,
    want: usize,
) -> (Vec<Instant>, Vec<eddy_events::QoeSample>) {
    rig.rt.block_on(async {
        let mut sub = bus
            .subscribe(eddy_control::QOE_TOPIC, "t", eddy_bus::StartFrom::Earliest)
            .await
            .unwrap();
        let mut events = Vec::new();
        let mut samples = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while samples.len() < want {
            let rec = tokio::time::timeout_at(deadline, sub.next())
                .await
                .unwrap_or_else(|_| panic!("{want} samples within 10 s"))
                .unwrap();
            let (cloud, ev) = Event::decode(&rec.payload).unwrap();
            let Event::QoeSamples(q) = ev else {
                panic!("{ev:?}")
            };
            assert_eq!(q.edge, "qoe-edge");
            assert_eq!(cloud.ty, "dev.eddy.qoe.samples.v1");
            samples.extend(q.samples);
            events.push(Instant::now());
        }
        (events, samples)
    })
}

#[test]
fn cmcd_requests_become_samples_on_the_bus_once_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path());
    let mut rig = start_with(
        |s: &Seen| {
            Reply::ok(format!("{} {}", s.path, "x".repeat(500)))
                .header("cache-control", "max-age=60")
        },
        |_| {},
        "",
    );
    rig.stop_edge();
    let o = node_overrides(vec![rig.origin.url()], Some("qoe-edge"));
    rig.start_edge_with_bus(&o, "", Some(bus.clone()));

    let started = Instant::now();
    let mut c = RawConn::open(rig.listen);
    // Query mode: a miss, then fast-path hits.
    for i in 0..30 {
        c.send(&get(&format!("/v/seg_1.m4s?{}", cmcd(i)), "v.test"));
        assert_eq!(c.read(false).unwrap().status, 200);
    }
    // Header mode (the full proxy: the fields are not in the key, the path is).
    c.send(
        b"GET /v/seg_2.m4s HTTP/1.1\r\nHost: v.test\r\nCMCD-Request: bl=2100,su\r\nCMCD-Session: sid=\"h1\",cid=\"show\"\r\nCMCD-Status: bs\r\n\r\n",
    );
    assert_eq!(c.read(false).unwrap().status, 200);
    // Malformed CMCD: the same answer as without it.
    c.send(&get("/v/seg_1.m4s?CMCD=bl%3D-5%2Cbr%3Dx", "v.test"));
    let r = c.read(false).unwrap();
    assert_eq!((r.status, r.h("x-cache")), (200, Some("HIT")));
    // A request without CMCD is no sample.
    c.send(&get("/v/seg_1.m4s", "v.test"));
    assert_eq!(c.read(false).unwrap().status, 200);

    let (events, samples) = samples_on(&rig, &bus, 31);
    let took = started.elapsed();
    // At most one event per second (plus the first window).
    assert!(
        events.len() as f64 <= took.as_secs_f64() + 1.0,
        "{} events in {took:?}",
        events.len()
    );
    assert_eq!(samples.len(), 31, "{samples:?}");
    let q: Vec<_> = samples
        .iter()
        .filter(|s| s.url == "v.test/v/seg_1.m4s")
        .collect();
    assert_eq!(q.len(), 30);
    assert!(
        q.iter()
            .all(|s| s.br == Some(2306) && s.cid.as_deref() == Some("show"))
    );
    assert_eq!(q[7].bl, Some(700));
    let h = samples
        .iter()
        .find(|s| s.url == "v.test/v/seg_2.m4s")
        .unwrap();
    assert_eq!(
        (h.sid.as_deref(), h.bl, h.bs, h.su),
        (Some("h1"), Some(2100), true, true)
    );
    assert_eq!(rig.metric("eddy_qoe_samples_total{what=\"malformed\"}"), 1);
    assert_eq!(
        rig.metric_becomes("eddy_qoe_samples_total{what=\"sampled\"}", 31),
        31
    );
    assert_eq!(rig.metric("eddy_qoe_samples_total{what=\"dropped\"}"), 0);
}

fn post(path: &str, kind: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: v.test\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn cmcd_event_reports_posted_to_the_edge_become_samples() {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path());
    let mut rig = start_with(|s: &Seen| Reply::ok(s.path.clone()), |_| {}, "");
    rig.stop_edge();
    let o = node_overrides(vec![rig.origin.url()], Some("qoe-edge"));
    rig.start_edge_with_bus(&o, "", Some(bus.clone()));
    let mut c = RawConn::open(rig.listen);

    // A CORS preflight, as a player page on another origin sends first.
    c.send(b"OPTIONS /_eddy/cmcd HTTP/1.1\r\nHost: v.test\r\nOrigin: http://page.test\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n");
    let r = c.read(false).unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.h("access-control-allow-origin"), Some("*"));
    assert!(
        r.h("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    // Two reports as dash.js sends them (v2, one per line), and a response report naming the
    // object it is about.
    let body = "e=ps,sid=\"ev1\",cid=\"show\",sn=1,sta=r,ts=1733300000000,v=2\n\
                br=(2306),cid=\"show\",e=rr,mtp=(2300),ot=v,rc=200,sid=\"ev1\",sn=2,ts=1733300000100,ttfb=5,ttlb=15,url=\"http://V.test/v/./seg_3.m4s?CMCD=x\",v=2\n";
    c.send(&post("/_eddy/cmcd", "application/cmcd", body));
    let r = c.read(false).unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.h("access-control-allow-origin"), Some("*"));
    // A line that does not read refuses the body, naming the line; nothing of it is taken.
    c.send(&post(
        "/_eddy/cmcd",
        "application/cmcd",
        "e=ps,sid=\"ev2\",ts=1,v=2\nbr=-5,e=t,ts=2,v=2\n",
    ));
    let r = c.read(false).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("report 2"), "{}", r.text());
    // Another type, another method, too large: each answered, then the connection closes
    // (its body was not read).
    c.send(&post("/_eddy/cmcd", "text/plain", "e=t,ts=1,v=2\n"));
    assert_eq!(c.read(false).unwrap().status, 415);
    assert!(c.closed_within(Duration::from_secs(5)));
    let mut c = RawConn::open(rig.listen);
    c.send(&get("/_eddy/cmcd", "v.test"));
    let r = c.read(false).unwrap();
    assert_eq!((r.status, r.h("allow")), (405, Some("POST, OPTIONS")));
    let big = "e=t,ts=1,v=2\n".repeat(6000);
    let mut c = RawConn::open(rig.listen);
    c.send(&post("/_eddy/cmcd", "application/cmcd", &big));
    assert_eq!(c.read(false).unwrap().status, 413);
    // None of it reached the origin.
    assert_eq!(rig.origin.total(), 0, "{:?}", rig.origin.seen());

    let (_, samples) = samples_on(&rig, &bus, 2);
    assert_eq!(samples.len(), 2, "{samples:?}");
    assert_eq!(samples[0].url, "v.test/_eddy/cmcd");
    assert_eq!(
        (
            samples[0].sid.as_deref(),
            samples[0].e.as_deref(),
            samples[0].sta.as_deref()
        ),
        (Some("ev1"), Some("ps"), Some("r"))
    );
    assert_eq!(samples[1].url, "v.test/v/seg_3.m4s");
    assert_eq!((samples[1].br, samples[1].mtp), (Some(2306), Some(2300)));
    assert_eq!(rig.metric("eddy_qoe_samples_total{what=\"malformed\"}"), 1);
    // A site whose path is "" passes it to the origin like any other.
    let mut rig = start_with(
        |s: &Seen| Reply::ok(s.path.clone()),
        |_| {},
        "[streaming]\ncmcd_events = \"\"\n",
    );
    rig.stop_edge();
    let o = node_overrides(vec![rig.origin.url()], Some("qoe-edge-2"));
    rig.start_edge_with_bus(&o, "[streaming]\ncmcd_events = \"\"\n", Some(bus.clone()));
    let mut c = RawConn::open(rig.listen);
    c.send(&post("/_eddy/cmcd", "application/cmcd", "e=t,ts=1,v=2\n"));
    assert_eq!(c.read(false).unwrap().status, 200);
    assert_eq!(rig.origin.count("/_eddy/cmcd"), 1);
}
