//! Shield health from heartbeats: an edge learns from the bus that one of its two shields stopped
//! and sends that shield's objects straight to the other, without a failed connect per request;
//! when the shield comes back, its objects go to it again.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;
use eddy_edge::Edge;
use eddy_testkit::origin::{Origin, Reply, Seen};
use eddy_testkit::wait_until;
use std::time::Duration;

fn metric(rt: &tokio::runtime::Runtime, admin: std::net::SocketAddr, line: &str) -> Option<u64> {
    let text = rt.block_on(async {
        reqwest::get(format!("http://{admin}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
}

#[test]
fn an_edge_skips_a_shield_whose_heartbeat_says_it_stopped_and_returns_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path());
    let origin = Origin::start(|s: &Seen| {
        Reply::ok(format!("v {}", s.path)).header("cache-control", "max-age=600")
    })
    .unwrap();
    let shield_config = |listen: Option<std::net::SocketAddr>| {
        let mut o = node_overrides(vec![origin.url()], None);
        if let Some(l) = listen {
            o.listen = Some(l.to_string());
        }
        o.id = Some(format!(
            "shield-{}",
            o.listen.clone().unwrap().replace([':', '.'], "-")
        ));
        o.role = Some(eddy_config::Role::Shield);
        let mut c = eddy_config::load(None, &o).unwrap();
        c.edge.origin_probe_interval = None;
        c
    };
    let s1 = Edge::start_with_bus(shield_config(None), Some(bus.clone())).unwrap();
    let s2 = Edge::start_with_bus(shield_config(None), Some(bus.clone())).unwrap();
    let s1_listen = s1.listen_addr();
    let mut c =
        eddy_config::load(None, &node_overrides(vec![origin.url()], Some("edge-1"))).unwrap();
    c.edge.origin_probe_interval = None;
    c.edge.shields = [s1_listen, s2.listen_addr()]
        .iter()
        .map(|a| eddy_config::parse_origin(&format!("http://{a}")).unwrap())
        .collect();
    let shields = c.edge.shields.clone();
    let edge = Edge::start_with_bus(c, Some(bus.clone())).unwrap();
    let host = edge.listen_addr().to_string();
    for a in [edge.listen_addr(), s1_listen, s2.listen_addr()] {
        assert!(eddy_testkit::wait_for_listener(a, Duration::from_secs(10)));
    }
    // Objects shield 1 owns.
    let owned: Vec<String> = (0..200)
        .map(|i| format!("/obj/{i}"))
        .filter(|p| eddy_edge::proxy::shield_order(&shields, &format!("{host}{p}"))[0] == 0)
        .take(3)
        .collect();
    assert_eq!(owned.len(), 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let get = |p: &str| {
        rt.block_on(async {
            reqwest::get(format!("http://{host}{p}"))
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    };
    let up = format!("eddy_shield_up{{shield=\"http://{s1_listen}\"}} ");
    let fetches = "eddy_shield_fetches_total ";
    assert_eq!(get(&owned[0]), 200);
    assert_eq!(metric(&rt, edge.admin_addr(), &up), Some(1));

    // Shield 1 stops cleanly: its last heartbeat says so, and the edge stops using it.
    s1.stop();
    let shield_up_is = |v: u64| {
        wait_until(Duration::from_secs(2), || {
            metric(&rt, edge.admin_addr(), &up) == Some(v)
        })
    };
    assert!(
        shield_up_is(0),
        "the edge never marked the stopped shield down"
    );
    let before = metric(&rt, edge.admin_addr(), fetches).unwrap();
    assert_eq!(get(&owned[1]), 200);
    let after = metric(&rt, edge.admin_addr(), fetches).unwrap();
    assert_eq!(
        after - before,
        1,
        "one shield fetch, to shield 2: shield 1 was not tried"
    );

    // Shield 1 comes back on its address: its heartbeats bring it back into use.
    let s1 = Edge::start_with_bus(shield_config(Some(s1_listen)), Some(bus.clone())).unwrap();
    assert!(eddy_testkit::wait_for_listener(
        s1_listen,
        Duration::from_secs(10)
    ));
    assert!(shield_up_is(1), "the edge never took the shield back");
    let s1_fetches = || metric(&rt, s1.admin_addr(), "eddy_origin_fetches_total ").unwrap_or(0);
    let n = s1_fetches();
    assert_eq!(get(&owned[2]), 200);
    assert_eq!(s1_fetches(), n + 1, "shield 1 fetched its object again");
    edge.stop();
    s1.stop();
    s2.stop();
}
