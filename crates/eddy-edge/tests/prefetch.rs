//! Issue 12, prefetch: the object a player names next (CMCD `nor`, `nrr`) is fetched into the
//! cache before the player asks for it; deduplicated with fills in flight, within the edge's
//! budget, never for an object a hard purge just removed, never for another site, and never
//! recursively. A prefetch that gets no object stores nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Rig, start_with};
use eddy_testkit::origin::{Reply, Seen};
use eddy_testkit::wait_until;

/// `CMCD=` for a segment request naming `nor` (percent-encoded as hls.js does).
fn cmcd(nor: &str) -> String {
    let nor: String = nor
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("CMCD=bl%3D2000%2Cbr%3D1200%2Cnor%3D%22{nor}%22%2Cot%3Dv%2Csid%3D%22s1%22")
}

fn segments(slow: Duration) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |s: &Seen| {
        if s.path.ends_with(".m3u8") {
            let end = if s.path.contains("live") {
                ""
            } else {
                "#EXT-X-ENDLIST\n"
            };
            return Reply::ok(format!(
                "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n\
                 #EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.0,\nseg_1.m4s\n#EXTINF:2.0,\nseg_2.m4s\n\
                 #EXTINF:2.0,\nseg_3.m4s\n{end}"
            ))
            .header("content-type", "application/vnd.apple.mpegurl")
            .header("cache-control", "max-age=3600");
        }
        if s.path.contains("missing") {
            return Reply::status(404)
                .body("not yet")
                .header("cache-control", "max-age=60");
        }
        Reply::ok(format!("{} {}", s.path, "x".repeat(4000)))
            .header("content-type", "video/mp4")
            .header("cache-control", "max-age=3600")
            .delay(if s.path.contains("slow") {
                slow
            } else {
                Duration::ZERO
            })
    }
}

fn rig(toml: &str) -> Rig {
    start_with(segments(Duration::from_millis(300)), |_| {}, toml)
}

fn prefetched(rig: &Rig, what: &str, want: u64) -> u64 {
    rig.metric_becomes(&format!("eddy_prefetch_total{{what=\"{what}\"}}"), want)
}

#[test]
fn the_next_object_a_player_names_is_a_hit_when_it_asks() {
    let rig = rig("");
    let r = rig.get(&format!("/v/720p/seg_1.m4s?{}", cmcd("seg_2.m4s")));
    assert_eq!((r.status, r.x_cache()), (200, "MISS"));
    assert_eq!(prefetched(&rig, "fetched", 1), 1);
    assert_eq!(rig.metric("eddy_prefetch_inflight"), 0);
    assert_eq!(rig.origin.count("/v/720p/seg_2.m4s"), 1);
    // The prefetch carried no CMCD, so it named nothing next: no seg_3 (nor did it reach the
    // origin with the viewer's telemetry).
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rig.origin.count("/v/720p/seg_3.m4s"), 0);
    assert_eq!(rig.origin.total(), 2);
    let r = rig.get(&format!("/v/720p/seg_2.m4s?{}", cmcd("seg_3.m4s")));
    assert_eq!((r.status, r.x_cache()), (200, "HIT"));
    assert!(r.text().starts_with("/v/720p/seg_2.m4s "));
    assert_eq!(prefetched(&rig, "fetched", 2), 2);
    assert_eq!(rig.origin.count("/v/720p/seg_2.m4s"), 1);
    // Relative paths resolve as the player would: `../480p/...`.
    rig.get(&format!("/v/720p/seg_3.m4s?{}", cmcd("../480p/seg_4.m4s")));
    assert_eq!(prefetched(&rig, "fetched", 3), 3);
    assert_eq!(rig.origin.count("/v/480p/seg_4.m4s"), 1);
    // Something fresh in memory already is not fetched again.
    rig.get(&format!("/v/720p/seg_9.m4s?{}", cmcd("seg_1.m4s")));
    assert_eq!(prefetched(&rig, "cached", 1), 1);
    assert_eq!(rig.origin.count("/v/720p/seg_1.m4s"), 1);
    // Another site, or no path at all, is never fetched.
    for nor in ["http://elsewhere.test/x.m4s", "//elsewhere.test/x.m4s"] {
        rig.get(&format!("/v/720p/seg_10.m4s?{}", cmcd(nor)));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        rig.origin.seen().iter().all(|s| !s.path.contains("x.m4s")),
        "{:?}",
        rig.origin.seen()
    );
}

/// `CMCD=` naming no next object: object type `ot`, session `sid`.
fn plain(ot: &str, sid: &str) -> String {
    format!("CMCD=br%3D128%2Cot%3D{ot}%2Csid%3D%22{sid}%22")
}

#[test]
fn without_nor_the_sessions_vod_playlist_names_the_next_segments() {
    // hls.js names no next object for audio segments: the playlist the session asked for does,
    // two ahead by default (a player asks for its next segment before the edge has read the
    // request for the last one).
    let rig = rig("");
    assert_eq!(
        rig.get(&format!("/a/audio.m3u8?{}", plain("m", "s9")))
            .status,
        200
    );
    rig.get(&format!("/a/seg_1.m4s?{}", plain("a", "s9")));
    assert_eq!(prefetched(&rig, "fetched", 2), 2);
    assert_eq!(rig.origin.count("/a/seg_2.m4s"), 1);
    assert_eq!(rig.origin.count("/a/seg_3.m4s"), 1);
    let r = rig.get(&format!("/a/seg_2.m4s?{}", plain("a", "s9")));
    assert_eq!((r.status, r.x_cache()), (200, "HIT"));
    assert_eq!(prefetched(&rig, "cached", 1), 1);
    // The last segment has no next; another session did not ask for this playlist; a live
    // playlist's next segment does not exist yet.
    let r = rig.get(&format!("/a/seg_3.m4s?{}", plain("a", "s9")));
    assert_eq!((r.status, r.x_cache()), (200, "HIT"));
    rig.get(&format!("/b/seg_1.m4s?{}", plain("a", "other")));
    rig.get(&format!("/l/live.m3u8?{}", plain("m", "s8")));
    rig.get(&format!("/l/seg_1.m4s?{}", plain("a", "s8")));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rig.metric("eddy_prefetch_total{what=\"fetched\"}"), 2);
    assert_eq!(rig.metric("eddy_prefetch_total{what=\"cached\"}"), 1);
    assert_eq!(
        rig.origin.count("/b/seg_2.m4s") + rig.origin.count("/l/seg_2.m4s"),
        0
    );
    assert_eq!(rig.origin.total(), 7, "{:?}", rig.origin.seen());

    // What a player names comes first, then the playlist, within `prefetch_depth`.
    let rig = self::rig("[streaming]\nprefetch_depth = 1\n");
    rig.get(&format!("/a/audio.m3u8?{}", plain("m", "s9")));
    rig.get(&format!("/a/seg_1.m4s?{}", plain("a", "s9")));
    assert_eq!(prefetched(&rig, "fetched", 1), 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rig.origin.count("/a/seg_3.m4s"), 0);
    let named = format!(
        "/a/seg_1.m4s?{}",
        plain("a", "s9").replace("br%3D128", "br%3D128%2Cnor%3D%22seg_3.m4s%22")
    );
    rig.get(&named);
    assert_eq!(prefetched(&rig, "fetched", 2), 2);
    assert_eq!(rig.origin.count("/a/seg_3.m4s"), 1);

    // A player starting up (CMCD `su`) asks as fast as hits arrive: twice the depth ahead.
    rig.get(&format!("/c/audio.m3u8?{}", plain("m", "s7")));
    rig.get(&format!("/c/seg_1.m4s?{}%2Csu", plain("a", "s7")));
    assert_eq!(prefetched(&rig, "fetched", 4), 4);
    assert_eq!(rig.origin.count("/c/seg_2.m4s"), 1);
    assert_eq!(rig.origin.count("/c/seg_3.m4s"), 1);
}

#[test]
fn a_prefetch_that_gets_no_object_stores_nothing() {
    let rig = rig("");
    rig.get(&format!("/v/seg_1.m4s?{}", cmcd("missing_2.m4s")));
    assert_eq!(prefetched(&rig, "failed", 1), 1);
    assert_eq!(rig.origin.count("/v/missing_2.m4s"), 1);
    // The player's own request goes to the origin: the 404 was not kept.
    let r = rig.get("/v/missing_2.m4s");
    assert_eq!((r.status, r.x_cache()), (404, "MISS"));
    assert_eq!(rig.origin.count("/v/missing_2.m4s"), 2);
}

#[test]
fn a_hard_purge_is_not_undone_by_prefetch() {
    let rig = rig("");
    rig.get("/v/seg_5.m4s");
    let r = rig.req("PURGE", "/v/seg_5.m4s", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    rig.get(&format!("/v/seg_4.m4s?{}", cmcd("seg_5.m4s")));
    assert_eq!(prefetched(&rig, "purged", 1), 1);
    assert_eq!(rig.origin.count("/v/seg_5.m4s"), 1);
    // The viewer's own request fills it again.
    assert_eq!(rig.get("/v/seg_5.m4s").x_cache(), "MISS");
}

#[test]
fn prefetch_stays_within_its_budget_and_joins_fills_in_flight() {
    // One prefetch at a time, two a second; the origin takes 300 ms for `slow` objects.
    let rig = rig("[streaming]\nprefetch_inflight = 1\nprefetch_rate = 2\n");
    for i in 0..20 {
        rig.get(&format!(
            "/v/seg_{i}.m4s?{}",
            cmcd(&format!("slow_{i}.m4s"))
        ));
    }
    wait_until(Duration::from_secs(10), || {
        rig.metric("eddy_prefetch_inflight") == 0
            && rig.metric("eddy_prefetch_total{what=\"fetched\"}")
                + rig.metric("eddy_prefetch_total{what=\"refused\"}")
                == 20
    });
    let fetched = rig.metric("eddy_prefetch_total{what=\"fetched\"}");
    let refused = rig.metric("eddy_prefetch_total{what=\"refused\"}");
    assert_eq!(fetched + refused, 20);
    assert!((1..=3).contains(&fetched), "{fetched} fetched");
    let slow = rig
        .origin
        .seen()
        .iter()
        .filter(|s| s.path.contains("slow_"))
        .count() as u64;
    assert_eq!(slow, fetched, "the origin saw only the budget's prefetches");

    // A viewer's fill in flight is not fetched a second time.
    let rig = rig_slow_fill();
    let client = rig.client.clone();
    let url = rig.url("/v/slow_a.m4s");
    let viewer = rig.rt.spawn(async move { client.get(url).send().await });
    wait_until(Duration::from_secs(5), || {
        rig.origin.count("/v/slow_a.m4s") == 1
    });
    rig.get(&format!("/v/seg_0.m4s?{}", cmcd("slow_a.m4s")));
    rig.rt.block_on(viewer).unwrap().unwrap();
    // Seen as in flight when offered (a body already streaming), or joined through the cache
    // lock (the origin has not answered yet): either way one origin fetch.
    assert!(wait_until(Duration::from_secs(5), || {
        rig.metric("eddy_prefetch_total{what=\"inflight\"}")
            + rig.metric("eddy_prefetch_total{what=\"fetched\"}")
            == 1
    }));
    assert_eq!(rig.origin.count("/v/slow_a.m4s"), 1);

    // A viewer who asks while a prefetch of the object is in flight waits for it: one origin
    // fetch, and the viewer is answered from the cache.
    rig.get(&format!("/v/seg_1.m4s?{}", cmcd("slow_b.m4s")));
    assert!(wait_until(Duration::from_secs(5), || {
        rig.origin.count("/v/slow_b.m4s") == 1
    }));
    let r = rig.get("/v/slow_b.m4s");
    assert_eq!((r.status, r.x_cache()), (200, "HIT"));
    assert_eq!(rig.origin.count("/v/slow_b.m4s"), 1);
    // It waited for the prefetch's answer to begin (not on the cache lock, which a prefetch
    // that has not reached the proxy yet does not hold).
    assert_eq!(rig.metric("eddy_prefetch_total{what=\"joined\"}"), 1);
}

fn rig_slow_fill() -> Rig {
    start_with(segments(Duration::from_millis(1500)), |_| {}, "")
}

#[test]
fn prefetch_can_be_turned_off() {
    let rig = rig("[streaming]\nprefetch = false\n");
    rig.get(&format!("/v/seg_1.m4s?{}", cmcd("seg_2.m4s")));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rig.origin.count("/v/seg_2.m4s"), 0);
    assert_eq!(rig.metric("eddy_prefetch_total{what=\"fetched\"}"), 0);
}
