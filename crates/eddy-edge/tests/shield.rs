//! The shield tier through real edges: three edges send their misses to one shield, which alone
//! fetches from the origin. A flash crowd of 300 concurrent clients spread over the three edges,
//! all asking for one new object, makes exactly one origin request.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;
use eddy_testkit::origin::{Reply, Seen};
use std::time::Duration;

fn slow_origin(_: &Seen) -> Reply {
    // Slow enough that every client's request is in flight before the first answer.
    Reply::ok("the new episode")
        .header("cache-control", "max-age=600")
        .delay(Duration::from_millis(300))
}

#[test]
fn a_flash_crowd_over_three_edges_makes_one_origin_request() {
    let shield = start(slow_origin);
    let origin_url = shield.origin.url();
    let toml = format!("[edge]\nshields = [\"http://{}\"]\n", shield.listen);
    let edges: Vec<Rig> = (0..3)
        .map(|_| {
            start_with(
                |_: &Seen| Reply::status(500),
                |o| o.origins = vec![origin_url.clone()],
                &toml,
            )
        })
        .collect();
    let urls: Vec<String> = edges.iter().map(|e| e.url("/flash")).collect();
    let bodies: Vec<(u16, String)> = shield.rt.block_on(async {
        let client = reqwest::Client::new();
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let (client, url) = (client.clone(), urls[i % 3].clone());
                tokio::spawn(async move {
                    // One site name on every edge, as behind a CDN hostname.
                    let r = client
                        .get(&url)
                        .header("host", "cdn.example")
                        .send()
                        .await
                        .unwrap();
                    (r.status().as_u16(), r.text().await.unwrap())
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert!(
        bodies
            .iter()
            .all(|(s, b)| *s == 200 && b == "the new episode"),
        "{:?}",
        bodies.iter().find(|(s, _)| *s != 200)
    );
    assert_eq!(shield.origin.count("/flash"), 1, "origin requests");
    let to_shield: u64 = edges
        .iter()
        .map(|e| e.metric("eddy_shield_fetches_total"))
        .sum();
    assert_eq!(to_shield, 3, "one shield fetch per edge (coalesced)");
    assert_eq!(
        edges.iter().map(|e| e.origin.total()).sum::<usize>(),
        0,
        "edges never went to their fallback origin"
    );
    // Edges now serve it from their own caches.
    for e in &edges {
        assert_eq!(
            e.get_h("/flash", &[("host", "cdn.example")]).x_cache(),
            "HIT"
        );
    }
}

#[test]
fn a_dead_shield_falls_back_to_the_origin() {
    let origin_rig = start(|_: &Seen| Reply::ok("direct").header("cache-control", "max-age=60"));
    let dead = eddy_testkit::free_fixed_port().unwrap();
    let origin_url = origin_rig.origin.url();
    let edge = start_with(
        |_: &Seen| Reply::status(500),
        |o| o.origins = vec![origin_url.clone()],
        &format!("[edge]\nshields = [\"http://{dead}\"]\n"),
    );
    let r = edge.get("/x");
    assert_eq!((r.status, r.text()), (200, "direct".to_string()));
    assert_eq!(origin_rig.origin.count("/x"), 1);
}
