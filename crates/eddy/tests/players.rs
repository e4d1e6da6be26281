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
use common::{EDDY, Proc};

use eddy_testkit::{free_port, wait_for_listener, wait_until};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `eddy up` on free loopback ports.
struct Up {
    _proc: Proc,
    _dir: tempfile::TempDir,
    origin: SocketAddr,
    edge: SocketAddr,
    admin: SocketAddr,
    dashboard: SocketAddr,
}

fn up() -> Up {
    let dir = tempfile::tempdir().unwrap();
    let port = || free_port().unwrap();
    let pair = || format!("{},{}", port(), port());
    let (origin, edge, admin) = (port(), port(), port());
    let (router, dashboard, control) = (port(), port(), port());
    let child = Command::new(EDDY)
        .args(["up", "--origin-listen", &origin.to_string()])
        .args(["--listen", &edge.to_string(), "--admin", &admin.to_string()])
        .args(["--shield", &pair(), "--router", &router.to_string()])
        .args(["--dashboard", &dashboard.to_string()])
        .args(["--control", &control.to_string(), "--state-dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc = Proc(child);
    for a in [origin, edge, dashboard] {
        assert!(wait_for_listener(a, Duration::from_secs(30)), "{a} listens");
    }
    Up {
        _proc: proc,
        _dir: dir,
        origin,
        edge,
        admin,
        dashboard,
    }
}

/// The body of `GET url`.
fn get_text(url: String) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}

/// The edge's `eddy_prefetch_*` lines from its `/metrics`.
fn prefetch_metrics(up: &Up) -> String {
    get_text(format!("http://{}/metrics", up.admin))
        .lines()
        .filter(|l| l.starts_with("eddy_prefetch"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Run the scenarios (`name`, page URL, seconds) in one browser; their reports by name.
fn play(scenarios: &[(&str, String, u32)]) -> Vec<(String, Value)> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/players.mjs");
    let modules = script.with_file_name("node_modules");
    for m in ["playwright-core", "hls.js", "dashjs"] {
        assert!(
            modules.join(m).exists(),
            "{m} is not installed next to {}: run scripts/test-prep.sh",
            script.display()
        );
    }
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "chromium is not installed: run scripts/test-prep.sh"
    );
    let json: Vec<Value> = scenarios
        .iter()
        .map(|(name, url, secs)| serde_json::json!({"name": name, "url": url, "seconds": secs}))
        .collect();
    let out_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("players.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Proc(
        Command::new("node")
            .arg(&script)
            .arg(Value::Array(json).to_string())
            .stdout(out)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    // Each scenario's seconds, plus loading and closing; a browser that hangs is killed.
    let budget =
        Duration::from_secs(30 + scenarios.iter().map(|s| u64::from(s.2) + 15).sum::<u64>());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < budget,
            "the browser did not finish within {budget:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&out_path).unwrap();
    println!("{text}");
    assert!(status.success(), "the browser driver failed: {text}");
    text.lines()
        .filter_map(|l| l.strip_prefix("PLAYER "))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["name"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

fn report<'a>(reports: &'a [(String, Value)], name: &str) -> &'a Value {
    &reports
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no report for {name}: {reports:?}"))
        .1
}

/// Playback advanced, no player error, CMCD on every media request.
fn played_well(r: &Value, min_seconds: f64) {
    assert!(r["failed"].is_null(), "{r}");
    assert_eq!(r["pageErrors"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["eddy"]["errors"].as_array().unwrap().len(), 0, "{r}");
    let t: Vec<f64> = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["t"].as_f64().unwrap())
        .collect();
    let last = *t.last().unwrap();
    assert!(last >= min_seconds, "played only {last} s: {r}");
    // Still playing at the end: the last three samples move forward.
    assert!(
        t[t.len() - 3] < t[t.len() - 2] && t[t.len() - 2] < last,
        "{t:?}"
    );
    let net = &r["net"];
    let (media, cmcd) = (
        net["media"].as_u64().unwrap(),
        net["cmcd"].as_u64().unwrap(),
    );
    assert!(
        media >= 5 && cmcd == media,
        "CMCD on every media request: {net}"
    );
    assert_eq!(net["statuses"].as_object().unwrap().len(), 1, "{net}");
    assert!(net["statuses"]["200"].as_u64().is_some(), "{net}");
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
    let up = up();
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
