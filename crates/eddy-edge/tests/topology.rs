//! Topology mistakes found at start from the fleet's heartbeats: a second node with a running
//! node's id refuses to start (the running one goes on), and an edge whose configured shield is
//! really an edge, or is announced by nobody while the fleet heartbeats, refuses to start, each
//! with an error naming the id or address.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;
use eddy_edge::{Edge, EdgeError};

#[test]
fn a_duplicate_id_and_an_edge_listed_as_shield_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path());
    let origin =
        eddy_testkit::origin::Origin::start(|_| eddy_testkit::origin::Reply::ok("x")).unwrap();
    let config = |id: &str, shields: &[String]| {
        let mut c = eddy_config::load(None, &node_overrides(vec![origin.url()], Some(id))).unwrap();
        c.edge.origin_probe_interval = None;
        c.edge.shields = shields
            .iter()
            .map(|s| eddy_config::parse_origin(s).unwrap())
            .collect();
        c
    };
    let first = Edge::start_with_bus(config("edge-a", &[]), Some(bus.clone())).unwrap();

    let twin = Edge::start_with_bus(config("edge-a", &[]), Some(bus.clone()));
    match twin {
        Err(e @ EdgeError::DuplicateId { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("\"edge-a\"") && msg.contains(&first.listen_addr().to_string()),
                "{msg}"
            );
        }
        Err(e) => panic!("expected a duplicate-id error, got {e}"),
        Ok(_) => panic!("a second edge-a started"),
    }

    let shield_url = format!("http://{}", first.listen_addr());
    match Edge::start_with_bus(
        config("edge-b", std::slice::from_ref(&shield_url)),
        Some(bus.clone()),
    ) {
        Err(e @ EdgeError::NotAShield { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&shield_url) && msg.contains("edge-a"), "{msg}");
        }
        Err(e) => panic!("expected a not-a-shield error, got {e}"),
        Ok(_) => panic!("an edge started with an edge as its shield"),
    }

    // A shield address nobody announces, while edge-a heartbeats: a wrong address.
    match Edge::start_with_bus(
        config("edge-c", &["http://127.0.0.1:9".to_string()]),
        Some(bus.clone()),
    ) {
        Err(e @ EdgeError::UnknownShield { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("http://127.0.0.1:9"), "{msg}");
        }
        Err(e) => panic!("expected an unknown-shield error, got {e}"),
        Ok(_) => panic!("an edge started with a shield nobody announces"),
    }

    // The running node was not disturbed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        reqwest::get(format!("http://{}/x", first.listen_addr()))
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eq!(status.ok(), Some(200));
    first.stop();
}
