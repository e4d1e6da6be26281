//! Issue 12, streaming-aware caching: a player's CMCD query parameter, and the query parameters a
//! site names (session ids, tokens), never make a new cache entry, never reach the origin, and
//! never keep a hit off the fast path; streaming objects get the TTL of their class. Each check
//! runs with the fast path on and off.
#![allow(clippy::unwrap_used)]

mod common;

use common::raw::{RawConn, get};
use common::{Rig, start_with};
use eddy_testkit::origin::{Reply, Seen};

/// An edge whose origin answers every path; prefetch off, so the origin sees only what viewers
/// asked (the player's `nor` would add the next segment; tests/prefetch.rs covers that).
fn rig(fast: bool) -> Rig {
    start_with(
        |s: &Seen| {
            Reply::ok(format!("{} {}", s.path, "x".repeat(1000)))
                .header("cache-control", "max-age=60")
        },
        |_| {},
        &format!(
            "[edge]\nfast_hits = {fast}\n[streaming]\nprefetch = false\n[sites.\"v.test\"]\nignore_query = [\"sid\", \"token\"]\n"
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
            c.send(&get(&format!("/v/list.json?{q}"), "v.test"));
            assert_eq!(c.read(false).unwrap().status, 200);
        }
        assert_eq!(
            rig.origin.count("/v/list.json?q=a"),
            1,
            "{:?}",
            rig.origin.seen()
        );
        c.send(&get("/v/list.json?q=b&CMCD=x", "v.test"));
        assert_eq!(c.read(false).unwrap().h("x-cache"), Some("MISS"));
        // Another site keeps `sid` in its keys: it is the site that says what names content.
        c.send(&get("/v/list.json?q=a&sid=1", "w.test"));
        c.read(false).unwrap();
        assert_eq!(rig.origin.count("/v/list.json?q=a&sid=1"), 1);

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

/// What the origin of the TTL-class test serves: each object with headers that, alone, would give
/// it a different freshness than its class.
fn media_origin(s: &Seen) -> Reply {
    let path = s.path.split('?').next().unwrap_or("");
    let (body, cc): (&str, &str) = match path {
        "/vod/master.m3u8" => (
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1200000\nv/index.m3u8\n",
            "no-cache",
        ),
        "/vod/v/index.m3u8" => (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg_1.m4s\n#EXT-X-ENDLIST\n",
            "max-age=1",
        ),
        "/live/live.m3u8" => (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:9\n#EXTINF:2,\nseg_9.m4s\n",
            "max-age=600",
        ),
        "/vod/v/seg_1.m4s" | "/vod/v/init.mp4" => ("media", "max-age=1"),
        "/vod/v/private.m4s" => ("media", "private, max-age=600"),
        "/vod/v/gone.m4s" => {
            return Reply::status(404)
                .body("gone")
                .header("cache-control", "max-age=1");
        }
        _ => return Reply::status(404).body("no such object"),
    };
    Reply::ok(body.to_string()).header("cache-control", cc)
}

#[test]
fn streaming_objects_get_the_ttl_of_their_class() {
    for fast in [true, false] {
        let rig = start_with(
            media_origin,
            |_| {},
            &format!("[edge]\nfast_hits = {fast}\n[streaming.ttl]\ninit = \"2h\"\n"),
        );
        let paths = [
            "/vod/master.m3u8",
            "/vod/v/index.m3u8",
            "/live/live.m3u8",
            "/vod/v/seg_1.m4s",
            "/vod/v/init.mp4",
            "/vod/v/private.m4s",
            "/vod/v/gone.m4s",
        ];
        let mut c = RawConn::open(rig.listen);
        for p in paths {
            c.send(&get(p, "v.test"));
            assert!(c.read(false).is_some(), "{p}");
        }
        // Past every origin max-age of 1 s and past the live playlist's class TTL (1 s, bounded
        // by half its 2 s target duration), within every other class's TTL.
        std::thread::sleep(std::time::Duration::from_millis(1300));
        for p in paths {
            c.send(&get(p, "v.test"));
            assert!(c.read(false).is_some(), "{p}");
        }
        let twice: Vec<_> = paths
            .iter()
            .filter(|p| rig.origin.count(p) == 2)
            .copied()
            .collect();
        assert_eq!(
            twice,
            [
                // Its max-age=600 loses to the live class.
                "/live/live.m3u8",
                // Never stored, whatever the class: the origin said private.
                "/vod/v/private.m4s",
                // Classes are for 200s; a 404 keeps its own max-age=1.
                "/vod/v/gone.m4s",
            ],
            "fast={fast}: {:?}",
            rig.origin.seen()
        );
        assert!(paths.iter().all(|p| rig.origin.count(p) >= 1));
    }
}

#[test]
fn without_ttl_classes_the_origin_alone_decides() {
    let rig = start_with(media_origin, |_| {}, "[streaming]\nttl_classes = false\n");
    let mut c = RawConn::open(rig.listen);
    for round in 0..2 {
        for p in ["/vod/master.m3u8", "/vod/v/seg_1.m4s", "/live/live.m3u8"] {
            c.send(&get(p, "v.test"));
            assert!(c.read(false).is_some(), "{p}");
        }
        if round == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1300));
        }
    }
    // no-cache and max-age=1 are asked again, max-age=600 is not.
    assert_eq!(rig.origin.count("/vod/master.m3u8"), 2);
    assert_eq!(rig.origin.count("/vod/v/seg_1.m4s"), 2);
    assert_eq!(rig.origin.count("/live/live.m3u8"), 1);
}
