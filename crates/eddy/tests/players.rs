//! Issue 12, real players: hls.js and dash.js in Debian's headless chromium (playwright-core,
//! pinned by tests/browser/package-lock.json) play the demo video and the live LL-HLS stream
//! through `eddy up` (demo origin, shield, edge, embedded bus, dashboard), from the player page
//! the demo origin serves (`/player.html`) with CMCD on.
//!
//! Each player must advance playback with no player error; every media request carries CMCD; the
//! edge answers those with its CMSD-Dynamic member (dash.js reads it); the CMCD becomes QoE events
//! on the bus, which the dashboard (another component of `eddy up`, fed only by the bus) folds
//! per title; dash.js's CMCD v2 event reports, POSTed to the edge, are taken; and hls.js's live
//! latency through the edge stays within 0.5 s of its latency straight at the origin.
#![allow(clippy::unwrap_used)]

mod common;
use common::browser::{Up, get_text, play, played_well, report, up};

use eddy_testkit::wait_until;
use serde_json::Value;
use std::time::Duration;

/// The edge's `eddy_prefetch_*` lines from its `/metrics`.
fn prefetch_metrics(up: &Up) -> String {
    get_text(format!("http://{}/metrics", up.admin))
        .lines()
        .filter(|l| l.starts_with("eddy_prefetch"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Mean of the last `n` latency samples.
fn latency(r: &Value, n: usize) -> f64 {
    let l: Vec<f64> = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["latency"].as_f64())
        .collect();
    assert!(l.len() >= n, "fewer than {n} latency samples: {r}");
    l[l.len() - n..].iter().sum::<f64>() / n as f64
}

/// The dashboard (fed only by the bus) shows QoE for each of `titles`, with a session and a
/// bitrate. Sessions end 30 s after their last request, so ask right after they played.
fn dashboard_shows(up: &Up, titles: &[&str]) {
    let status = || -> Value {
        serde_json::from_str(&get_text(format!("http://{}/api/status", up.dashboard))).unwrap()
    };
    let has_titles = |s: &Value| {
        let shown = s["qoe"]["titles"].as_array().cloned().unwrap_or_default();
        titles.iter().all(|want| {
            shown.iter().any(|t| {
                t["name"] == *want
                    && t["sessions"].as_u64() >= Some(1)
                    && t["bitrate_kbps"].as_f64().is_some()
            })
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), || has_titles(&status())),
        "QoE for {titles:?} on the dashboard: {}",
        status()["qoe"]
    );
}

/// Of the media segments after the first of each track (`seg-<track>-…`), the share the edge
/// answered from its cache.
fn hits_after_first(r: &Value) -> (usize, usize) {
    let mut seen = std::collections::HashSet::new();
    let (mut hits, mut all) = (0, 0);
    for s in r["net"]["segments"].as_array().unwrap() {
        let path = s[0].as_str().unwrap();
        let track = path.rsplit_once('-').map_or(path, |(t, _)| t);
        if seen.insert(track.to_string()) {
            continue;
        }
        all += 1;
        if s[1].as_str().is_some_and(|x| x.starts_with("HIT")) {
            hits += 1;
        }
    }
    (hits, all)
}

#[test]
fn hls_js_and_dash_js_play_through_the_edge_with_cmcd_and_cmsd() {
    let up = up("127.0.0.1");
    let page = |src: &str, cid: &str| format!("http://{}/player.html?src={src}&cid={cid}", up.edge);

    // VOD on a cold edge (shield and origin behind it): hls.js first, then dash.js.
    let vod = play(&[
        ("hls-vod", page("/vod/master.m3u8", "vod-hls"), 8),
        // dash.js also POSTs CMCD v2 event reports to the edge.
        (
            "dash-vod",
            page("/vod/manifest.mpd", "vod-dash") + "&events=/_eddy/cmcd",
            8,
        ),
    ]);
    dashboard_shows(&up, &["vod-hls", "vod-dash"]);
    for name in ["hls-vod", "dash-vod"] {
        played_well(report(&vod, name), 4.0);
        // The edge wrote its CMSD-Dynamic member on what it served the players.
        let net = &report(&vod, name)["net"];
        assert_eq!(net["cmsd"], net["media"], "{name}: {net}");
    }
    // The edge took dash.js's event reports (every 2 s at least, and one per response).
    let reports = &report(&vod, "dash-vod")["net"]["reports"];
    assert!(
        reports["204"].as_u64() >= Some(4) && reports.as_object().unwrap().len() == 1,
        "event reports: {reports}"
    );
    // Prefetch: after the first segment of each track, the player finds its segments cached.
    let (hits, all) = hits_after_first(report(&vod, "hls-vod"));
    println!("hls.js on a cold edge: {hits} of {all} segments after the first were hits");
    assert!(
        all >= 8 && hits * 100 >= all * 95,
        "{hits} of {all}; the edge's prefetch counters:\n{}",
        prefetch_metrics(&up)
    );

    // LL-HLS: straight at the origin, then through the edge.
    let live = play(&[
        (
            "hls-live-origin",
            page(
                &format!("http://{}/live/master.m3u8", up.origin),
                "live-origin",
            ),
            14,
        ),
        ("hls-live-edge", page("/live/master.m3u8", "live-edge"), 14),
    ]);
    dashboard_shows(&up, &["live-edge"]);
    for name in ["hls-live-edge", "hls-live-origin"] {
        played_well(report(&live, name), 5.0);
    }
    let net = &report(&live, "hls-live-edge")["net"];
    assert_eq!(net["cmsd"], net["media"], "{net}");
    assert_eq!(report(&live, "hls-live-origin")["net"]["cmsd"], 0);
    // LL-HLS through the edge is as live as straight at the origin (or more: hls.js picks its
    // start point from the first playlist it reads, so either may start a part closer).
    let (via_edge, direct) = (
        latency(report(&live, "hls-live-edge"), 5),
        latency(report(&live, "hls-live-origin"), 5),
    );
    println!("hls.js live latency: {via_edge:.2} s through the edge, {direct:.2} s at the origin");
    assert!(
        via_edge <= direct + 0.5,
        "through the edge {via_edge:.2} s, at the origin {direct:.2} s"
    );
}
