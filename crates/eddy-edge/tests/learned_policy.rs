//! Issue 14: an edge runs the learned eviction policy (`[cache] policy = "learned"`): it caches
//! and serves hits on both the fast path and the full proxy while evicting under pressure, and
//! reports no fallback while its model is sound.
#![allow(clippy::unwrap_used)]

mod common;

use common::start_with;
use eddy_testkit::origin::{Reply, Seen};

#[test]
fn an_edge_with_the_learned_policy_caches_evicts_and_serves_hits() {
    let rig = start_with(
        |s: &Seen| {
            Reply::ok(format!("{} {}", s.path, "x".repeat(20_000)))
                .header("content-type", "image/jpeg")
                .header("cache-control", "max-age=3600")
                .header("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")
        },
        |o| o.memory_size = Some("1 MiB".into()),
        "[cache]\npolicy = \"learned\"\n",
    );
    // A hot set of 10 objects between many cold ones: about 200 KiB hot in a 1 MiB tier that
    // sees 4 MiB of cold objects go by.
    let mut hot_hits = 0;
    for round in 0..20 {
        for h in 0..10 {
            let r = rig.get(&format!("/hot/{h}.jpg"));
            assert_eq!(r.status, 200);
            if round > 0 && r.x_cache().starts_with("HIT") {
                hot_hits += 1;
            }
        }
        for c in 0..10 {
            assert_eq!(rig.get(&format!("/cold/{round}/{c}.jpg")).status, 200);
        }
    }
    // Untrained this early (it learns over tens of thousands of requests), it evicts among
    // sampled residents: most hot requests still hit.
    assert!(hot_hits >= 120, "hot objects hit {hot_hits} of 190 times");
    // Evictions happened, the tier stayed within its budget, and the policy did not fail.
    assert!(rig.metric("eddy_cache_evictions_total{tier=\"memory\"}") > 0);
    assert_eq!(rig.metric("eddy_cache_policy_fallbacks_total"), 0);
    // The same bytes through the full proxy (a request the fast path hands over: a Range).
    let r = rig.get_h("/hot/0.jpg", &[("range", "bytes=0-9")]);
    assert_eq!(r.status, 206);
    assert!(r.x_cache().starts_with("HIT"), "{}", r.x_cache());
}
