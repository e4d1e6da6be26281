//! Issue 12, the quality guard's figure: rebuffering under a bandwidth drop, with and without the
//! guard, in one run.
//!
//! `eddy up` runs with its edge on one end of a veth pair; the other end sits in a network
//! namespace of this test's own, where headless chromium plays `/vod/long.mpd` (dash.js, CMCD
//! on) in three pages at once: viewers sharing one access link, as a household or a congested
//! last mile does. The edge-to-viewer direction is shaped with `tc tbf`: first above what three
//! players pulling the top rendition need, then, mid-stream, below what three need at the middle
//! one. The same edge serves two titles in turn (their own `cid`, so each has its own guard
//! state): players that ignore the edge's CMSD `mb` (dash.js `applyMb` off: no guard), then
//! players that honour it (the guard). Stall time is what the page measured, a stall still going
//! on at the end included.
//!
//! Needs root (`ip netns`, `tc`), as CI has.
#![allow(clippy::unwrap_used)]

mod common;
use common::browser::{Scenario, get_text, play_in, playback_times, up};

use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// Viewers sharing the shaped link.
const VIEWERS: u32 = 3;
/// The link before the drop (kbit/s): above three times the top rendition (1200 + 64 audio).
const HIGH_KBIT: u32 = 6_000;
/// The link after it: three viewers get 400 each, below the middle rendition (600 + 64), above
/// the lowest (300 + 64).
const LOW_KBIT: u32 = 1_200;
/// When the link drops, seconds after the first page loaded.
const DROP_AT: Duration = Duration::from_secs(15);
/// How long each viewer watches.
const SECONDS: u32 = 50;

/// Run `ip` (or `tc`) with these arguments; panics with what it said on failure.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e} (this test needs iproute2 and root)"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {} (this test needs root for ip netns and tc)",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with a veth pair into it: the host end (`HOST_IP`) shaped by `tc tbf`,
/// the namespace's end at `.2`. Removed, with the pair, on drop.
struct Link {
    ns: String,
    host_if: String,
    host_ip: String,
}

impl Link {
    fn new() -> Link {
        let pid = std::process::id();
        let (ns, host_if, peer) = (
            format!("eddy-guard-{pid}"),
            format!("egh{}", pid % 1_000_000),
            format!("egp{}", pid % 1_000_000),
        );
        let net = format!("10.{}.{}", 64 + (pid >> 8) % 64, pid % 256);
        let link = Link {
            ns: ns.clone(),
            host_if: host_if.clone(),
            host_ip: format!("{net}.1"),
        };
        run("ip", &["netns", "add", &ns]);
        run(
            "ip",
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &peer,
            ],
        );
        run("ip", &["link", "set", &peer, "netns", &ns]);
        run(
            "ip",
            &["addr", "add", &format!("{net}.1/30"), "dev", &host_if],
        );
        run("ip", &["link", "set", &host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns, "ip"];
            all.extend_from_slice(args);
            run("ip", &all);
        };
        inside(&["addr", "add", &format!("{net}.2/30"), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        run(
            "tc",
            &[
                "qdisc", "add", "dev", &host_if, "root", "tbf", "rate", "1gbit", "burst", "64kb",
                "latency", "200ms",
            ],
        );
        link
    }

    /// Shape what the host sends into the namespace to `kbit` kbit/s.
    fn rate(&self, kbit: u32) {
        shape(&self.host_if, kbit);
    }
}

/// Shape what leaves `dev` to `kbit` kbit/s.
fn shape(dev: &str, kbit: u32) {
    let rate = format!("{kbit}kbit");
    run(
        "tc",
        &[
            "qdisc", "change", "dev", dev, "root", "tbf", "rate", &rate, "burst", "32kb",
            "latency", "200ms",
        ],
    );
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// What one viewer went through.
#[derive(Debug)]
struct Viewer {
    /// Waiting for data after the start, as the page's `waiting`/`playing` events tell it.
    stalled_ms: f64,
    /// Seconds after the first frame in which playback did not advance: what the events miss
    /// when a player stops without saying `waiting` (the figure takes the larger).
    stuck_s: f64,
    played_s: f64,
    errors: Vec<String>,
    /// (seconds since load, kbit/s) at each change of the rendition shown.
    switches: Vec<(f64, u64)>,
}

fn viewer(r: &Value) -> Viewer {
    assert!(r["failed"].is_null(), "the browser failed: {r}");
    // A measuring run reports what went wrong rather than stop: dash.js 5.2.1 now and then
    // throws in the page on a link this slow.
    let errors: Vec<String> = [&r["pageErrors"], &r["eddy"]["errors"]]
        .iter()
        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
        .map(|e| e.to_string().chars().take(160).collect())
        .collect();
    let mut switches: Vec<(f64, u64)> = Vec::new();
    for s in r["eddy"]["switches"].as_array().unwrap() {
        let (at, kbps) = (s[0].as_f64().unwrap(), s[1].as_u64().unwrap());
        // dash.js may report the rendition it already shows: not a switch.
        if switches.last().is_none_or(|l| l.1 != kbps) {
            switches.push((at, kbps));
        }
    }
    // Samples are a second apart: each that moved less than that after the first frame adds
    // what it lacked.
    let t = playback_times(r);
    let first = t.iter().position(|&x| x > 0.0).unwrap_or(t.len());
    let stuck_s = t[first..]
        .windows(2)
        .map(|w| (1.0 - (w[1] - w[0])).clamp(0.0, 1.0))
        .sum();
    Viewer {
        stalled_ms: r["eddy"]["stalledMs"].as_f64().unwrap(),
        stuck_s,
        played_s: t.last().copied().unwrap_or(0.0),
        errors,
        switches,
    }
}

/// The guard's caps held by the edge whose admin listens on `admin`, and its decisions so far.
fn guard_state(admin: std::net::SocketAddr) -> (u64, String) {
    let metrics = get_text(format!("http://{admin}/metrics"));
    let caps = metrics
        .lines()
        .find_map(|l| l.strip_prefix("eddy_qoe_guard_caps "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    let decisions = metrics
        .lines()
        .filter(|l| l.starts_with("eddy_qoe_guard_total"))
        .collect::<Vec<_>>()
        .join("; ");
    (caps, decisions)
}

/// The viewers of one title through the drop: what each went through. Every viewer plays from
/// one address, so one client network: a run starts only once the caps of the run before were
/// lifted (the guard lifts a cap nobody was heard under for 32 s), so no run inherits one.
fn watch(
    link: &Link,
    admin: std::net::SocketAddr,
    page: &str,
    title: &str,
    guard: bool,
) -> Vec<Viewer> {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (caps, _) = guard_state(admin);
        if caps == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the guard still holds {caps} caps 90 s after the last viewer left"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    link.rate(HIGH_KBIT);
    let scenario = Scenario {
        name: title.to_string(),
        url: format!("{page}&cid={title}&applymb={}", if guard { 1 } else { 0 }),
        seconds: SECONDS,
        viewers: VIEWERS,
    };
    let mut drop = None;
    let reports = play_in(Some(&link.ns), &[scenario], |_| {
        // The drop comes on a clock from the first page's load, while the browser plays.
        let dev = link.host_if.clone();
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        println!(
            "{title}: first page loaded at unix {:.1} s",
            at.as_secs_f64()
        );
        drop = Some(std::thread::spawn(move || {
            std::thread::sleep(DROP_AT);
            shape(&dev, LOW_KBIT);
        }));
    });
    drop.expect("the page loaded").join().unwrap();
    println!("{title}: guard decisions so far: {}", guard_state(admin).1);
    reports.iter().map(|(_, r)| viewer(r)).collect()
}

/// Stall seconds of a title's viewers: the larger of what the events and the progress tell.
fn stall_s(v: &[Viewer]) -> f64 {
    v.iter()
        .map(|v| (v.stalled_ms / 1000.0).max(v.stuck_s))
        .sum()
}

/// Rendition switches shown closer than 4 s to the one before, from `after` seconds on (the
/// player's own start-up ramp is not the guard's doing).
fn quick_switches(v: &[Viewer], after: f64) -> usize {
    v.iter()
        .map(|v| {
            v.switches
                .windows(2)
                .filter(|w| w[1].0 >= after && w[1].0 - w[0].0 < 4.0)
                .count()
        })
        .sum()
}

/// A measuring run, not a gate (run with `--run-ignored only`; `EDDY_GUARD_ROUNDS` rounds,
/// default 1, the order of the two titles swapped every other round): three dash.js players
/// sharing one link compete, and their stall time swings from run to run far more than any
/// guard moves it (see the closing note of issue 12), so a pass/fail on the ratio would be a
/// coin toss. It prints each viewer, each round's stall seconds with and without the guard, and
/// the sums.
#[test]
#[ignore = "a measuring run of about 2 minutes per round; needs root for ip netns and tc"]
fn stall_time_under_a_bandwidth_drop_with_and_without_the_guard() {
    let rounds: u32 = std::env::var("EDDY_GUARD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let link = Link::new();
    let up = up(&link.host_ip);
    let page = format!("http://{}/player.html?src=/vod/long.mpd", up.edge);
    let (mut off_sum, mut on_sum, mut quick, mut quick_after) = (0.0, 0.0, 0, 0);
    let drop_s = DROP_AT.as_secs_f64();
    for round in 0..rounds {
        let (off_title, on_title) = (format!("off-{round}"), format!("on-{round}"));
        let (without, with) = if round % 2 == 0 {
            let without = watch(&link, up.admin, &page, &off_title, false);
            (without, watch(&link, up.admin, &page, &on_title, true))
        } else {
            let with = watch(&link, up.admin, &page, &on_title, true);
            (watch(&link, up.admin, &page, &off_title, false), with)
        };
        println!("round {round} without the guard: {without:?}");
        println!("round {round} with the guard: {with:?}");
        let (off, on) = (stall_s(&without), stall_s(&with));
        for (what, v) in [("without", &without), ("with", &with)] {
            let played: Vec<f64> = v.iter().map(|v| v.played_s).collect();
            let errors: Vec<&String> = v.iter().flat_map(|v| &v.errors).collect();
            println!(
                "round {round} {what} the guard: played {played:?} s; player errors {errors:?}"
            );
        }
        let (q10, q_drop, q_drop_off) = (
            quick_switches(&with, 10.0),
            quick_switches(&with, drop_s),
            quick_switches(&without, drop_s),
        );
        println!(
            "GUARD round {round}: {VIEWERS} viewers, {HIGH_KBIT} -> {LOW_KBIT} kbit/s at \
             {DROP_AT:?}: stall {off:.1} s without the guard, {on:.1} s with it; switches under \
             4 s apart with it: {q10} after 10 s, {q_drop} after the drop ({q_drop_off} without)"
        );
        off_sum += off;
        on_sum += on;
        quick += q10;
        quick_after += q_drop;
    }
    println!(
        "GUARD {rounds} rounds: stall {off_sum:.1} s without the guard, {on_sum:.1} s with it; \
         switches under 4 s apart with it: {quick} after 10 s, {quick_after} after the drop"
    );
    let metrics = get_text(format!("http://{}/metrics", up.admin));
    for l in metrics.lines().filter(|l| l.starts_with("eddy_qoe_guard")) {
        println!("{l}");
    }
}
