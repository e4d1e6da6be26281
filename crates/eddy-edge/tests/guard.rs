//! Issue 12, the adaptive-quality guard: players of a title whose CMCD shows throughput below
//! the bitrate they pull are steered down by `mb` in the edge's CMSD-Dynamic member within a
//! second or two, on hits (fast path and proxy alike) and misses; the decision is a
//! `dev.eddy.qoe.guard.v1` event with its reason; other titles are untouched; and the cap is
//! lifted step by step once the players' throughput carries the ladder again.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Rig, embedded_bus, node_overrides, start_with};
use eddy_events::Event;
use eddy_testkit::origin::{Reply, Seen};
use eddy_testkit::wait_until;

const MASTER: &str = "#EXTM3U\n#EXT-X-VERSION:6\n\
#EXT-X-STREAM-INF:BANDWIDTH=1200000,CODECS=\"avc1.4d401f,mp4a.40.2\"\n1200/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=600000,CODECS=\"avc1.4d401f,mp4a.40.2\"\n600/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=300000,CODECS=\"avc1.4d401e,mp4a.40.2\"\n300/index.m3u8\n";

/// A dash.js-like request of `title`'s segment `i` at bitrate `br`, throughput `mtp`, by the
/// title's one session; the response's CMSD-Dynamic.
fn seg(rig: &Rig, title: &str, i: usize, br: u32, mtp: u32) -> String {
    seg_from(rig, &rig.client, title, &format!("{title}-1"), i, br, mtp).0
}

/// The origin: the multivariant playlist [`MASTER`] under any title, else a 2 KB segment.
fn origin(s: &Seen) -> Reply {
    if s.path.ends_with("master.m3u8") {
        return Reply::ok(MASTER)
            .header("content-type", "application/vnd.apple.mpegurl")
            .header("cache-control", "max-age=600")
            .header("etag", "\"m1\"");
    }
    Reply::ok(format!("{} {}", s.path, "x".repeat(2000)))
        .header("content-type", "video/mp4")
        .header("cache-control", "max-age=600")
}

/// An edge `id` with this `[streaming]` configuration (prefetch off) on `bus`, in front of
/// [`origin`].
fn guard_rig(bus: &std::sync::Arc<dyn eddy_bus::Bus>, id: &str, streaming: &str) -> Rig {
    let mut rig = start_with(origin, |_| {}, "");
    rig.stop_edge();
    let o = node_overrides(vec![rig.origin.url()], Some(id));
    rig.start_edge_with_bus(
        &o,
        &format!("[streaming]\nprefetch = false\n{streaming}"),
        Some(bus.clone()),
    );
    rig
}

/// The first guard decision on `bus`.
fn first_guard_event(rig: &Rig, bus: &std::sync::Arc<dyn eddy_bus::Bus>) -> eddy_events::QoeGuard {
    let (ty, ev) = common::events_on(rig, bus, eddy_control::QOE_GUARD_TOPIC, 1).remove(0);
    assert_eq!(ty, "dev.eddy.qoe.guard.v1");
    let Event::QoeGuard(g) = ev else {
        panic!("{ev:?}")
    };
    g
}

#[test]
fn a_throughput_drop_steers_the_title_down_with_cmsd_mb_and_recovery_lifts_it() {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path());
    // Every request here comes from 127.0.0.1: client networks off, the title alone judges.
    let rig = guard_rig(&bus, "guard-edge", "guard_network_v4 = 0\n");

    // The players see the ladder 300/600/1200 and pull the top; nothing is capped.
    let mut i = 0;
    for br in [300, 600, 1200, 1200, 1200] {
        i += 1;
        assert_eq!(seg(&rig, "film", i, br, 5000), "\"guard-edge\"");
    }
    // The link drops to 500 kbit/s while they pull 1200: 500 × 0.8 carries 300.
    assert!(
        wait_until(Duration::from_secs(5), || {
            i += 1;
            seg(&rig, "film", i, 1200, 500).contains("mb=300")
        }),
        "no cap within 5 s: {}",
        rig.metrics_text()
            .lines()
            .filter(|l| l.contains("qoe") || l.contains("guard"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(rig.metric("eddy_qoe_guard_total{what=\"throughput\"}"), 1);
    assert_eq!(rig.metric("eddy_qoe_guard_caps"), 1);
    // A hit carries it too (the fast path writes the cap as the proxy does), and another title
    // is not capped.
    let hit = rig.get("/film/1200/seg_3.m4s?CMCD=cid%3D%22film%22%2Cot%3Dv");
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.h("cmsd-dynamic"), "\"guard-edge\";mb=300");
    assert_eq!(seg(&rig, "news", 1, 1200, 5000), "\"guard-edge\"");
    // hls.js reads no CMSD: a session of the capped title that starts now gets the multivariant
    // playlist without the variants above the cap, uncacheable downstream; the cached object,
    // and a request without the title's CMCD, keep them all. Both through the proxy: a cache
    // miss, then a hit.
    let plain = rig.get("/film/master.m3u8");
    assert_eq!(plain.text(), MASTER);
    for _ in 0..2 {
        let capped = rig.get("/film/master.m3u8?CMCD=cid%3D%22film%22%2Cot%3Dm%2Csid%3D%22n%22");
        assert_eq!(capped.status, 200);
        let text = capped.text();
        assert!(
            text.contains("300/index.m3u8") && !text.contains("600/") && !text.contains("1200/"),
            "{text}"
        );
        assert_eq!(capped.h("cache-control"), "private, no-store");
        assert_eq!(capped.h("etag"), "");
    }
    assert_eq!(rig.get("/film/master.m3u8").text(), MASTER);
    // A request without CMCD gets no CMSD at all.
    assert_eq!(rig.get("/film/1200/seg_3.m4s").h("cmsd-dynamic"), "");

    // The decision is on the bus, with its reason.
    let guard = first_guard_event(&rig, &bus);
    assert_eq!(
        (
            guard.edge.as_str(),
            guard.title.as_deref(),
            guard.cap_kbps,
            guard.previous_kbps,
            guard.reason.as_str()
        ),
        ("guard-edge", Some("film"), Some(300), None, "throughput")
    );

    // The link comes back: a rung at a time (600), then lifted, never above the ladder.
    let mut seen = Vec::new();
    let lifted = wait_until(Duration::from_secs(40), || {
        i += 1;
        let v = seg(&rig, "film", i, 300, 5000);
        if seen.last() != Some(&v) {
            seen.push(v.clone());
        }
        v == "\"guard-edge\""
    });
    assert!(lifted, "{seen:?}");
    assert_eq!(
        seen,
        vec![
            "\"guard-edge\";mb=300".to_string(),
            "\"guard-edge\";mb=600".into(),
            "\"guard-edge\"".into()
        ]
    );
    assert_eq!(rig.metric("eddy_qoe_guard_total{what=\"recovered\"}"), 2);
    assert_eq!(rig.metric("eddy_qoe_guard_caps"), 0);
}

/// A segment request of `title` by session `sid` pulling `br` at throughput `mtp`, sent by
/// `client`; the response's CMSD-Dynamic and X-Cache.
fn seg_from(
    rig: &Rig,
    client: &reqwest::Client,
    title: &str,
    sid: &str,
    i: usize,
    br: u32,
    mtp: u32,
) -> (String, String) {
    let q = format!(
        "CMCD=bl%3D12000%2Cbr%3D{br}%2Ccid%3D%22{title}%22%2Cmtp%3D{mtp}%2Cot%3Dv%2Csid%3D%22{sid}%22%2Ctb%3D1200"
    );
    let r = rig.send(client.get(rig.url(&format!("/{title}/{br}/seg_{i}.m4s?{q}"))));
    assert_eq!(r.status, 200);
    (r.h("cmsd-dynamic").to_string(), r.x_cache().to_string())
}

#[test]
fn one_troubled_player_caps_its_own_network_whatever_its_neighbours_watch() {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path());
    // Each address its own network: 127.0.0.1 is one home, 127.0.0.2 another.
    let rig = guard_rig(&bus, "net-edge", "guard_network_v4 = 32\n");
    let home = rig.client.clone();
    let away = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    // Four sessions of one title, three of them in the other home; all pull the top.
    let mut i = 0;
    for br in [300, 600, 1200, 1200] {
        i += 1;
        seg_from(&rig, &home, "film", "h1", i, br, 5000);
        for sid in ["a1", "a2", "a3"] {
            seg_from(&rig, &away, "film", sid, i, br, 5000);
        }
    }
    // The first home's link drops. One session in four is not the title's trouble, but it is
    // all of that home's.
    let capped = wait_until(Duration::from_secs(5), || {
        i += 1;
        for sid in ["a1", "a2", "a3"] {
            seg_from(&rig, &away, "film", sid, i, 1200, 5000);
        }
        seg_from(&rig, &home, "film", "h1", i, 1200, 500)
            .0
            .contains("mb=300")
    });
    assert!(capped, "{}", rig.metrics_text());
    assert_eq!(rig.metric("eddy_qoe_guard_caps"), 1);
    // Everything the home asks for carries the cap, whatever the title, hits by the fast path
    // included; the other home gets none.
    let (news, _) = seg_from(&rig, &home, "news", "h2", 1, 1200, 5000);
    assert_eq!(news, "\"net-edge\";mb=300");
    let fast_before = rig.metric("eddy_fast_hits_total");
    let (hit, cache) = seg_from(&rig, &home, "news", "h2", 1, 1200, 5000);
    assert_eq!(
        (hit.as_str(), cache.as_str()),
        ("\"net-edge\";mb=300", "HIT")
    );
    assert_eq!(rig.metric("eddy_fast_hits_total"), fast_before + 1);
    let (far, cache) = seg_from(&rig, &away, "news", "a4", 1, 1200, 5000);
    assert_eq!((far.as_str(), cache.as_str()), ("\"net-edge\"", "HIT"));
    // The decision on the bus names the network, never a whole address of a wider one.
    let guard = first_guard_event(&rig, &bus);
    assert_eq!(
        (
            guard.title.as_deref(),
            guard.network.as_deref(),
            guard.networks,
            guard.cap_kbps,
            guard.troubled,
        ),
        (None, Some("127.0.0.1/32"), 1, Some(300), 1)
    );
}

#[test]
fn the_guard_can_be_turned_off() {
    let mut rig = start_with(
        |_: &Seen| Reply::ok("x".repeat(100)).header("cache-control", "max-age=600"),
        |_| {},
        "",
    );
    rig.stop_edge();
    let o = node_overrides(vec![rig.origin.url()], Some("off-edge"));
    rig.start_edge(&o, "[streaming]\nguard = false\nprefetch = false\n");
    for i in 0..4 {
        seg_any(&rig, i, 1200, 5000);
    }
    for i in 4..12 {
        assert_eq!(seg_any(&rig, i, 1200, 300), "\"off-edge\"");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(rig.metric("eddy_qoe_guard_caps"), 0);
}

fn seg_any(rig: &Rig, i: usize, br: u32, mtp: u32) -> String {
    let q = format!("CMCD=br%3D{br}%2Ccid%3D%22f%22%2Cmtp%3D{mtp}%2Cot%3Dv%2Csid%3D%22s%22");
    rig.get(&format!("/f/seg_{i}.m4s?{q}"))
        .h("cmsd-dynamic")
        .to_string()
}
