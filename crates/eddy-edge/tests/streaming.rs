//! Issue 12, streaming-aware caching: a player's CMCD query parameter, and the query parameters a
//! site names (session ids, tokens), never make a new cache entry, never reach the origin, and
//! never keep a hit off the fast path. Each check runs with the fast path on and off.
#![allow(clippy::unwrap_used)]

mod common;

use common::raw::{RawConn, get};
use common::{Rig, start_with};
use eddy_testkit::origin::{Reply, Seen};

fn rig(fast: bool) -> Rig {
    start_with(
        |s: &Seen| {
            Reply::ok(format!("{} {}", s.path, "x".repeat(1000)))
                .header("cache-control", "max-age=60")
        },
        |_| {},
        &format!(
            "[edge]\nfast_hits = {fast}\n[sites.\"v.test\"]\nignore_query = [\"sid\", \"token\"]\n"
        ),
    )
}

/// What hls.js sends on a segment request, its buffer length and throughput changing each time.
fn cmcd(i: usize) -> String {
    format!(
        "CMCD=bl%3D{}%2Cbr%3D2306%2Ccid%3D%22show%22%2Cd%3D2000%2Cmtp%3D{}%2Cnor%3D%22seg_2.m4s%22%2Cot%3Dav%2Csf%3Dh%2Csid%3D%226e2f%22%2Cst%3Dv%2Ctb%3D2306",
        i * 100,
        2300 + i
    )
}

#[test]
fn cmcd_and_named_parameters_are_not_in_the_key_and_hits_stay_fast() {
    for fast in [true, false] {
        let rig = rig(fast);
        let mut c = RawConn::open(rig.listen);
        for i in 0..20 {
            c.send(&get(&format!("/v/seg_1.m4s?{}", cmcd(i)), "v.test"));
            let r = c.read(false).expect("a response");
            assert_eq!(r.status, 200);
            assert_eq!(
                r.h("x-cache"),
                Some(if i == 0 { "MISS" } else { "HIT" }),
                "fast={fast} request {i}"
            );
        }
        // One fill, and the origin was asked without the player's telemetry.
        assert_eq!(
            rig.origin.count("/v/seg_1.m4s"),
            1,
            "{:?}",
            rig.origin.seen()
        );
        assert_eq!(rig.origin.total(), 1);
        if fast {
            // The hits after the first (the fill completes just after the miss's last byte)
            // went through the fast path.
            let fast_hits = rig.metric_becomes("eddy_fast_hits_total", 19);
            assert!(fast_hits >= 18, "{fast_hits}");
        } else {
            assert_eq!(rig.metric("eddy_fast_hits_total"), 0);
        }
        // The same object with no query and with a CMCD of another shape.
        for target in [
            "/v/seg_1.m4s",
            "/v/seg_1.m4s?%43MCD=su",
            "/v/seg_1.m4s?CMCD",
        ] {
            c.send(&get(target, "v.test"));
            assert_eq!(c.read(false).unwrap().h("x-cache"), Some("HIT"), "{target}");
        }
        // A range with CMCD goes through the full proxy and is cut from the same object.
        c.send(
            format!(
                "GET /v/seg_1.m4s?{} HTTP/1.1\r\nHost: v.test\r\nRange: bytes=0-3\r\n\r\n",
                cmcd(99)
            )
            .as_bytes(),
        );
        let r = c.read(false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (206, b"/v/s".as_slice()));
        assert_eq!(rig.origin.total(), 1);

        // The site's own parameters go the same way; others still name content.
        for q in ["sid=1&q=a&token=x", "q=a&sid=2", "token=y&q=a"] {
            c.send(&get(&format!("/v/live.m3u8?{q}"), "v.test"));
            assert_eq!(c.read(false).unwrap().status, 200);
        }
        assert_eq!(
            rig.origin.count("/v/live.m3u8?q=a"),
            1,
            "{:?}",
            rig.origin.seen()
        );
        c.send(&get("/v/live.m3u8?q=b&CMCD=x", "v.test"));
        assert_eq!(c.read(false).unwrap().h("x-cache"), Some("MISS"));
        // Another site keeps `sid` in its keys: it is the site that says what names content.
        c.send(&get("/v/live.m3u8?q=a&sid=1", "w.test"));
        c.read(false).unwrap();
        assert_eq!(rig.origin.count("/v/live.m3u8?q=a&sid=1"), 1);

        // A purge of the plain URL reaches what was asked for with CMCD.
        let p = rig.admin_post("/purge", r#"{"url": "http://v.test/v/seg_1.m4s"}"#, &[]);
        assert_eq!(p.status, 200, "{}", p.text());
        c.send(&get(&format!("/v/seg_1.m4s?{}", cmcd(7)), "v.test"));
        assert_eq!(c.read(false).unwrap().h("x-cache"), Some("MISS"));
        assert_eq!(rig.origin.count("/v/seg_1.m4s"), 2);
        assert!(
            rig.origin.seen().iter().all(|s| !s.path.contains("CMCD")
                && !s.path.contains("sid=1&")
                && !s.path.contains("token")),
            "{:?}",
            rig.origin.seen()
        );
    }
}
