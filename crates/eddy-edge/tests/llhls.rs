//! Issue 12, LL-HLS at the edge: blocking playlist requests are held until the demo packager
//! announces the part on the bus, woken by that event (not by polling the origin), and all held
//! requests for one playlist update make one origin fetch. Directives the spec refuses get 400;
//! an edge that hears no events still answers within the hold bound by asking the origin once.
//!
//! A request for the part a playlist's preload hint names is held at the edge the same way,
//! and held requests on edges behind a shield make one origin fetch per part between them.
//!
//! `EDDY_FANOUT=1000 cargo test -p eddy-edge --test llhls -- --nocapture fan_out` measures the
//! issue's fan-out figure (the default holds 200 requests per part).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Rig, embedded_bus, node_overrides, start_with};
use eddy_demo::announce::Announcer;
use eddy_demo::live::Live;
use eddy_streaming::hls::media::MediaPlaylist;
use eddy_testkit::origin::{Reply, Seen};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PLAYLIST: &str = "/live/0/live.m3u8";

/// A demo live origin; the edge in front of it follows `bus` when given.
fn rig(bus: Option<Arc<dyn eddy_bus::Bus>>, live: Arc<Live>, toml: &str) -> Rig {
    let l = live.clone();
    let mut rig = start_with(
        move |s: &Seen| {
            let (path, query) = s.path.split_once('?').unwrap_or((&s.path, ""));
            match path.strip_prefix("/live/") {
                Some(rest) => l.answer(rest, query, Instant::now()),
                None => Reply::status(404),
            }
        },
        |_| {},
        toml,
    );
    if let Some(bus) = bus {
        rig.stop_edge();
        let o = node_overrides(vec![rig.origin.url()], Some("llhls-edge"));
        rig.start_edge_with_bus(&o, toml, Some(bus));
    }
    rig
}

/// Wait until the edge of `rig` has applied `n` announcements, or fail.
fn following(rig: &Rig, n: u64) {
    assert!(
        eddy_testkit::wait_until(Duration::from_secs(5), || {
            rig.metric("eddy_llhls_total{what=\"announced\"}") >= n
        }),
        "the edge at {} applied no announcements",
        rig.listen
    );
}

/// One GET on a new connection: status, body, and when the response ended.
async fn fetch(addr: std::net::SocketAddr, target: String) -> (u16, Vec<u8>, Instant) {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    fetch_on(s, target).await
}

/// One GET on the connection `s`.
async fn fetch_on(mut s: tokio::net::TcpStream, target: String) -> (u16, Vec<u8>, Instant) {
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: live.test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let n = s.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(len) = len
                && buf.len() >= end + 4 + len
            {
                break;
            }
        }
    }
    let at = Instant::now();
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
    let status = std::str::from_utf8(&buf[9..12.min(buf.len())])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, buf[(end + 4).min(buf.len())..].to_vec(), at)
}

/// The newest part of the playlist the edge serves now (a plain request, no directives).
fn newest(rig: &Rig) -> (u64, u64) {
    let (status, body, _) = rig.rt.block_on(fetch(rig.listen, PLAYLIST.into()));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    MediaPlaylist::parse(&body).unwrap().last_part().unwrap()
}

/// The directives for the part after (msn, part) of a stream with four parts per segment.
fn next_part((msn, part): (u64, u64)) -> (u64, u64) {
    if part + 1 == eddy_demo::live::PARTS {
        (msn + 1, 0)
    } else {
        (msn, part + 1)
    }
}

fn target((msn, part): (u64, u64)) -> String {
    format!("{PLAYLIST}?_HLS_msn={msn}&_HLS_part={part}")
}

#[test]
fn fan_out() {
    let n: usize = std::env::var("EDDY_FANOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path());
    let live = Arc::new(Live::new().unwrap());
    let rig = rig(
        Some(bus.clone()),
        live.clone(),
        "[edge]\nmax_connections = 8192\nmax_client_connections = 8192\n",
    );
    let _announcer = Announcer::start(live, bus.clone(), "test-origin".into()).unwrap();
    following(&rig, 1);

    let mut lags = Vec::new();
    for round in 0..5 {
        // Ask for the part after the newest: every request is held.
        let want = next_part(newest(&rig));
        let key = target(want);
        let fetches_before = rig.origin.count(&key);
        let (results, woken_at) = rig.rt.block_on(async {
            let mut sub = bus
                .subscribe(
                    eddy_control::SEGMENT_TOPIC,
                    &format!("fan-out-{round}"),
                    eddy_bus::StartFrom::Latest,
                )
                .await
                .unwrap();
            let tasks: Vec<_> = (0..n)
                .map(|_| tokio::spawn(fetch(rig.listen, key.clone())))
                .collect();
            // When the announcement of that part reached this process (and so the edge).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let woken_at = loop {
                let rec = tokio::time::timeout_at(deadline, sub.next())
                    .await
                    .expect("the part is announced within 5 s")
                    .unwrap();
                let (_, ev) = eddy_events::Event::decode(&rec.payload).unwrap();
                if let eddy_events::Event::SegmentPublished(s) = ev
                    && s.stream == PLAYLIST
                    && (s.msn, s.part) == (want.0, Some(want.1))
                {
                    break Instant::now();
                }
            };
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            (out, woken_at)
        });
        for (status, body, _) in &results {
            assert_eq!(*status, 200, "{}", String::from_utf8_lossy(body));
            let p = MediaPlaylist::parse(body).unwrap();
            assert!(p.has(want.0, Some(want.1)), "round {round}: {want:?}");
        }
        // One origin fetch for every held request of this update.
        if rig.origin.count(&key) - fetches_before != 1 {
            // Seen once under a loaded machine and not reproduced since: say what the edge did.
            let text = rig.metrics_text();
            let llhls: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("eddy_llhls"))
                .collect();
            eprintln!("round {round}: {llhls:?}");
        }
        assert_eq!(
            rig.origin.count(&key) - fetches_before,
            1,
            "round {round}: {n} held requests for {key}"
        );
        for (_, _, at) in &results {
            lags.push(at.saturating_duration_since(woken_at));
        }
    }
    lags.sort();
    let p99 = lags[lags.len() * 99 / 100 - 1];
    let last = lags[lags.len() - 1];
    println!(
        "fan-out: {n} held requests per part, 5 parts: event to response p50 {:?}, p99 {p99:?}, last {last:?}",
        lags[lags.len() / 2]
    );
    // The floor on this machine: the same number of requests for an answer already cached,
    // sent at one instant on connections already open (no hold, no origin).
    let cached = target(newest(&rig));
    rig.rt.block_on(fetch(rig.listen, cached.clone()));
    let floor = rig.rt.block_on(async {
        let mut conns = Vec::new();
        for _ in 0..n {
            conns.push(tokio::net::TcpStream::connect(rig.listen).await.unwrap());
        }
        let (go, ready) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|c| {
                let mut ready = ready.clone();
                let t = cached.clone();
                tokio::spawn(async move {
                    let _ = ready.wait_for(|g| *g).await;
                    fetch_on(c, t).await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t0 = Instant::now();
        go.send_replace(true);
        let mut lags = Vec::new();
        for t in tasks {
            let (status, _, at) = t.await.unwrap();
            assert_eq!(status, 200);
            lags.push(at - t0);
        }
        lags.sort();
        lags
    });
    println!(
        "floor: {n} cached answers released at once on open connections: p50 {:?}, p99 {:?}, last {:?}",
        floor[n / 2],
        floor[n * 99 / 100 - 1],
        floor[n - 1]
    );
    // Woken by the event: no origin poll, no timer. Loose here (a busy CI machine); the issue's
    // 20 ms is measured with EDDY_FANOUT=1000 and reported.
    assert!(last < Duration::from_secs(2), "{last:?}");
    assert!(rig.metric("eddy_llhls_total{what=\"woken\"}") >= n as u64);
    assert_eq!(rig.metric("eddy_llhls_total{what=\"fallback\"}"), 0);
}

#[test]
fn directives_the_spec_refuses_get_400_and_known_parts_go_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path());
    let live = Arc::new(Live::new().unwrap());
    let rig = rig(Some(bus.clone()), live.clone(), "");
    let _announcer = Announcer::start(live, bus, "test-origin".into()).unwrap();
    following(&rig, 3);
    let (msn, part) = newest(&rig);
    let asked = rig.origin.total();
    for bad in [
        format!("{PLAYLIST}?_HLS_part=1"),
        format!("{PLAYLIST}?_HLS_msn=x"),
        format!("{PLAYLIST}?_HLS_msn=1&_HLS_msn=2"),
        format!("{PLAYLIST}?_HLS_msn={}", msn + 3),
        format!("{PLAYLIST}?_HLS_msn={msn}&_HLS_skip=NO"),
    ] {
        let (status, body, _) = rig.rt.block_on(fetch(rig.listen, bad.clone()));
        assert_eq!(status, 400, "{bad}: {}", String::from_utf8_lossy(&body));
    }
    // None of them reached the origin.
    assert_eq!(rig.origin.total(), asked);
    assert_eq!(rig.metric("eddy_llhls_total{what=\"refused\"}"), 5);
    // A part already announced is answered without a hold, and a delta update is its own key.
    let t0 = Instant::now();
    let (status, body, _) = rig.rt.block_on(fetch(rig.listen, target((msn, part))));
    assert_eq!(status, 200);
    assert!(
        t0.elapsed() < Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
    assert!(MediaPlaylist::parse(&body).unwrap().has(msn, Some(part)));
    let (status, body, _) = rig.rt.block_on(fetch(
        rig.listen,
        format!("{}&_HLS_skip=YES", target((msn, part))),
    ));
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body).to_string();
    let full = MediaPlaylist::parse(&body).unwrap();
    assert!(full.has(msn, Some(part)), "{text}");
    // The two answers are two objects: the plain one is a hit now, the delta one was fetched.
    assert_eq!(rig.origin.count(&target((msn, part))), 1);
    assert_eq!(
        rig.origin
            .count(&format!("{}&_HLS_skip=YES", target((msn, part)))),
        1
    );
}

#[test]
fn without_events_the_origin_is_asked_once_within_the_hold_bound() {
    // An edge on a bus nobody announces on: it tracks no stream, so a blocking request goes to
    // the origin (which holds it); a part the origin never makes gets 503 at the bound.
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path());
    let live = Arc::new(Live::new().unwrap());
    let rig = rig(Some(bus), live, "[streaming]\nhold = \"1500ms\"\n");
    let want = next_part(newest(&rig));
    let t0 = Instant::now();
    let (status, body, _) = rig.rt.block_on(fetch(rig.listen, target(want)));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        MediaPlaylist::parse(&body)
            .unwrap()
            .has(want.0, Some(want.1))
    );
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(rig.origin.count(&target(want)), 1);
    // Two segments ahead is within the spec's limit, but will not exist within the bound.
    let far = format!("{PLAYLIST}?_HLS_msn={}", want.0 + 2);
    let t0 = Instant::now();
    let (status, body, _) = rig.rt.block_on(fetch(rig.listen, far));
    let took = t0.elapsed();
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(rig.metric("eddy_llhls_total{what=\"timeout\"}"), 1);
}

/// The hinted part's path in a playlist body.
fn hint_of(body: &[u8]) -> String {
    let p = MediaPlaylist::parse(body).unwrap();
    let hint = p.preload_hints.iter().find(|h| h.part).unwrap();
    format!("/live/0/{}", hint.uri)
}

#[test]
fn preload_hinted_parts_are_held_at_the_edge_until_announced() {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path());
    let live = Arc::new(Live::new().unwrap());
    let rig = rig(Some(bus.clone()), live.clone(), "");
    let _announcer = Announcer::start(live.clone(), bus, "test-origin".into()).unwrap();
    following(&rig, 1);
    let n = 50;
    for round in 0..3 {
        // A blocking request for the next part is answered the moment it is announced: its
        // fill teaches the edge the hint, a part that will take another 0.5 s to make.
        let want = next_part(newest(&rig));
        let learned = rig.metric("eddy_llhls_total{what=\"hint_learned\"}");
        let (status, body, _) = rig.rt.block_on(fetch(rig.listen, target(want)));
        assert_eq!(status, 200);
        let hinted = hint_of(&body);
        assert_eq!(
            rig.metric("eddy_llhls_total{what=\"hint_learned\"}"),
            learned + 1,
            "round {round}: the fill of {} teaches the hint",
            target(want)
        );
        let held_before = rig.metric("eddy_llhls_total{what=\"hint_held\"}");
        let results = rig.rt.block_on(async {
            let tasks: Vec<_> = (0..n)
                .map(|_| tokio::spawn(fetch(rig.listen, hinted.clone())))
                .collect();
            // Every request is held at the edge: none of them has reached the origin.
            let deadline = Instant::now() + Duration::from_secs(5);
            while rig_metric(&rig, "eddy_llhls_total{what=\"hint_held\"}").await
                < held_before + n as u64
            {
                assert!(
                    Instant::now() < deadline,
                    "round {round}: requests not held"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let asked_while_held = rig.origin.count(&hinted);
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            (out, asked_while_held)
        });
        let (results, asked_while_held) = results;
        let made = live.answer(hinted.trim_start_matches("/live/"), "", Instant::now());
        assert_eq!(made.status, 200);
        let part: Vec<u8> = made.chunks.iter().flat_map(|(_, b)| b.to_vec()).collect();
        for (status, body, _) in &results {
            assert_eq!(
                *status,
                200,
                "round {round}: {}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(body, &part, "round {round}: the part's bytes");
        }
        // Held, and only the one fetch once the part was announced (the origin would hold it
        // itself: the proof is that nothing reached it while the requests were held).
        assert_eq!(asked_while_held, 0, "round {round}: {hinted}");
        assert_eq!(rig.origin.count(&hinted), 1, "round {round}: {hinted}");
    }
    assert!(rig.metric("eddy_llhls_total{what=\"hint_held\"}") >= n as u64);
    assert_eq!(rig.metric("eddy_llhls_total{what=\"fallback\"}"), 0);
    assert_eq!(rig.metric("eddy_llhls_total{what=\"playlist_ignored\"}"), 0);
}

/// The edge's counter `series`, read on the test's runtime.
async fn rig_metric(rig: &Rig, series: &str) -> u64 {
    let text = rig
        .client
        .get(rig.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn held_requests_on_edges_behind_a_shield_make_one_origin_fetch_per_part() {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path());
    let live = Arc::new(Live::new().unwrap());
    let mut shield = rig(None, live.clone(), "");
    shield.stop_edge();
    let mut o = node_overrides(vec![shield.origin.url()], Some("llhls-shield"));
    o.role = Some(eddy_config::Role::Shield);
    shield.start_edge_with_bus(&o, "", Some(bus.clone()));
    let toml = format!("[edge]\nshields = [\"http://{}\"]\n", shield.listen);
    let edges: Vec<Rig> = (0..2)
        .map(|i| {
            // Each edge's own origin answers 500: the edges must go through the shield.
            let mut e = start_with(|_: &Seen| Reply::status(500), |_| {}, &toml);
            e.stop_edge();
            let o = node_overrides(vec![e.origin.url()], Some(&format!("edge-{i}")));
            e.start_edge_with_bus(&o, &toml, Some(bus.clone()));
            e
        })
        .collect();
    let _announcer = Announcer::start(live, bus, "test-origin".into()).unwrap();
    for e in edges.iter().chain([&shield]) {
        following(e, 1);
    }
    let n = 100;
    for round in 0..3 {
        let want = next_part(newest(&edges[0]));
        let key = target(want);
        let via_shield: Vec<u64> = edges
            .iter()
            .map(|e| e.metric("eddy_shield_fetches_total"))
            .collect();
        let results = shield.rt.block_on(async {
            let tasks: Vec<_> = (0..n)
                .map(|i| tokio::spawn(fetch(edges[i % 2].listen, key.clone())))
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        for (status, body, _) in &results {
            assert_eq!(
                *status,
                200,
                "round {round}: {}",
                String::from_utf8_lossy(body)
            );
            assert!(
                MediaPlaylist::parse(body)
                    .unwrap()
                    .has(want.0, Some(want.1))
            );
        }
        assert_eq!(
            shield.origin.count(&key),
            1,
            "round {round}: origin fetches of {key}"
        );
        for (e, before) in edges.iter().zip(via_shield) {
            assert_eq!(
                e.metric("eddy_shield_fetches_total") - before,
                1,
                "round {round}: one shield fetch per edge for {key}"
            );
            assert_eq!(e.origin.total(), 0, "edges never went to their own origin");
        }
    }
    // Woken by events. (On a starved machine an announcement can come after half the hold
    // bound; those requests fall back to one shield fetch, which the counts above include.)
    for e in &edges {
        assert!(e.metric("eddy_llhls_total{what=\"woken\"}") >= 1);
    }
}
