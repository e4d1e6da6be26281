//! Real players for the `eddy` binary's tests: `eddy up` on free ports, and the demo player page
//! played in Debian's headless chromium by `tests/browser/players.mjs` (playwright-core, hls.js
//! and dash.js pinned by its package-lock.json), optionally inside a network namespace.

use super::{EDDY, Proc};

use eddy_testkit::{free_port, wait_for_listener};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `eddy up` on free ports.
pub struct Up {
    _proc: Proc,
    _dir: tempfile::TempDir,
    pub origin: SocketAddr,
    pub edge: SocketAddr,
    pub admin: SocketAddr,
    pub dashboard: SocketAddr,
}

/// `eddy up` with its first edge listening on `edge_ip` (loopback, or an address a test's
/// network namespace reaches), everything else on loopback.
pub fn up(edge_ip: &str) -> Up {
    let dir = tempfile::tempdir().unwrap();
    let port = || free_port().unwrap();
    let pair = || format!("{},{}", port(), port());
    let (origin, admin) = (port(), port());
    let ip: IpAddr = edge_ip.parse().unwrap();
    let edge = SocketAddr::new(ip, port().port());
    let (router, dashboard, control) = (port(), port(), port());
    let child = Command::new(EDDY)
        .args(["up", "--origin-listen", &origin.to_string()])
        .args(["--listen", &edge.to_string(), "--admin", &admin.to_string()])
        .args(["--shield", &pair(), "--router", &router.to_string()])
        .args(["--dashboard", &dashboard.to_string()])
        .args(["--control", &control.to_string(), "--state-dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(log_to())
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

/// Where `eddy up`'s log goes: the file `EDDY_UP_LOG` names (a measuring run's timeline),
/// else nowhere.
fn log_to() -> Stdio {
    std::env::var_os("EDDY_UP_LOG")
        .and_then(|p| std::fs::File::create(p).ok())
        .map_or_else(Stdio::null, Stdio::from)
}

/// The body of `GET url`.
pub fn get_text(url: String) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}

/// One scenario of [`play_in`]: `viewers` pages of `url` at once, each watched for `seconds`.
pub struct Scenario {
    pub name: String,
    pub url: String,
    pub seconds: u32,
    pub viewers: u32,
}

/// Run the scenarios (`name`, page URL, seconds; one viewer each) in one browser on this
/// machine's network; their reports by name.
pub fn play(scenarios: &[(&str, String, u32)]) -> Vec<(String, Value)> {
    let scenarios: Vec<Scenario> = scenarios
        .iter()
        .map(|(name, url, seconds)| Scenario {
            name: name.to_string(),
            url: url.clone(),
            seconds: *seconds,
            viewers: 1,
        })
        .collect();
    play_in(None, &scenarios, |_| {})
}

/// Run the scenarios in one browser, inside network namespace `netns` if one is named, calling
/// `started` with a scenario's name once its first page loaded; one report per viewer, by name.
pub fn play_in(
    netns: Option<&str>,
    scenarios: &[Scenario],
    mut started: impl FnMut(&str),
) -> Vec<(String, Value)> {
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
        .map(|s| {
            serde_json::json!({"name": s.name, "url": s.url, "seconds": s.seconds,
                "viewers": s.viewers})
        })
        .collect();
    let out_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("players-{}.out", std::process::id()));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "node"]);
            c
        }
        None => Command::new("node"),
    };
    let mut child = Proc(
        cmd.arg(&script)
            .arg(Value::Array(json).to_string())
            .stdout(out)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    // Each scenario's seconds, plus loading and closing; a browser that hangs is killed.
    let budget = Duration::from_secs(
        30 + scenarios
            .iter()
            .map(|s| u64::from(s.seconds) + 15)
            .sum::<u64>(),
    );
    let began = Instant::now();
    let mut announced = 0;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            began.elapsed() < budget,
            "the browser did not finish within {budget:?}"
        );
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        for name in text
            .lines()
            .filter_map(|l| l.strip_prefix("STARTED "))
            .skip(announced)
        {
            started(&serde_json::from_str::<String>(name).unwrap());
            announced += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
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

/// The (first) report for `name`.
pub fn report<'a>(reports: &'a [(String, Value)], name: &str) -> &'a Value {
    &reports
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no report for {name}: {reports:?}"))
        .1
}

/// The playback time (s) of a report's samples, a second apart.
pub fn playback_times(r: &Value) -> Vec<f64> {
    r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["t"].as_f64().unwrap())
        .collect()
}

/// Playback advanced, no player error, CMCD on every media request.
pub fn played_well(r: &Value, min_seconds: f64) {
    assert!(r["failed"].is_null(), "{r}");
    assert_eq!(r["pageErrors"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["eddy"]["errors"].as_array().unwrap().len(), 0, "{r}");
    let t = playback_times(r);
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
