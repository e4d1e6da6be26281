//! The dashboard against a real fleet: two edges on one embedded bus, traffic flowing, one purge.
//! The status API must show the fleet, and a real browser (Debian chromium driven by
//! playwright-core, both installed by scripts/test-prep.sh) must see the figures move live, with
//! no reload, and save a screenshot under the test's output directory.
#![allow(clippy::unwrap_used)]

use eddy_testkit::origin::{Origin, Reply, Seen};
use eddy_testkit::{free_port, wait_until};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

fn edge(id: &str, origin: &Origin, bus: &Arc<dyn eddy_bus::Bus>) -> eddy_edge::Edge {
    let o = eddy_config::Overrides {
        listen: Some(free_port().unwrap().to_string()),
        admin: Some(free_port().unwrap().to_string()),
        origins: vec![origin.url()],
        memory_size: Some("16 MiB".into()),
        id: Some(id.into()),
        ..Default::default()
    };
    let mut c = eddy_config::load(None, &o).unwrap();
    c.edge.origin_probe_interval = None;
    eddy_edge::Edge::start_with_bus(c, Some(bus.clone())).unwrap()
}

#[test]
fn the_dashboard_shows_the_fleet_live_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let bus: Arc<dyn eddy_bus::Bus> = Arc::new(
        eddy_bus::embedded::EmbeddedBus::open(eddy_bus::embedded::EmbeddedOptions::new(
            dir.path().join("bus"),
        ))
        .unwrap(),
    );
    let dash =
        eddy_admin::Dashboard::start("test", "127.0.0.1:0".parse().unwrap(), bus.clone()).unwrap();
    let origin = Origin::start(|s: &Seen| {
        Reply::ok(format!("object {}", s.path)).header("cache-control", "max-age=600")
    })
    .unwrap();
    let edges = [edge("edge-1", &origin, &bus), edge("edge-2", &origin, &bus)];
    let targets: Vec<String> = edges
        .iter()
        .map(|e| format!("http://{}", e.listen_addr()))
        .collect();

    // Traffic: a few viewers over 20 objects on both edges, until the test ends.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = reqwest::Client::new();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    // Half of them carry a player's CMCD: two sessions of one title, one on each edge.
                    let url = if i.is_multiple_of(2) {
                        format!(
                            "{}/obj/{}?CMCD=bl%3D{}%2Cbr%3D1200%2Ccid%3D%22show%22%2Cot%3Dav%2Csid%3D%22s{}%22",
                            targets[(i / 2) % targets.len()],
                            i % 20,
                            1000 + i % 7,
                            i % 4
                        )
                    } else {
                        format!("{}/obj/{}", targets[i % targets.len()], i % 20)
                    };
                    if let Ok(r) = client.get(&url).send().await {
                        let _ = r.bytes().await;
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                    // About 200 requests/s: traffic, not a benchmark.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let status = || -> serde_json::Value {
        rt.block_on(async {
            let r = client
                .get(format!("http://{}/api/status", dash.addr()))
                .send()
                .await
                .unwrap();
            r.json().await.unwrap()
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            let s = status();
            s["totals"]["edges_up"] == 2 && s["totals"]["rps"].as_f64().unwrap_or(0.0) > 0.0
        }),
        "the status API never showed two edges with traffic: {}",
        status()
    );
    // The players' telemetry, folded from both edges' QoE samples.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let s = status();
            s["qoe"]["titles"][0]["name"] == "show"
                && s["qoe"]["titles"][0]["sessions"] == 2
                && s["qoe"]["titles"][0]["bitrate_kbps"] == 1200.0
                && s["qoe"]["edges"].as_array().map_or(0, Vec::len) == 2
        }),
        "the status API never showed the title's QoE: {}",
        status()
    );
    // /metrics shows the same (set at each snapshot, every 500 ms).
    let metrics = || {
        rt.block_on(async {
            client
                .get(format!("http://{}/metrics", dash.addr()))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    assert!(
        wait_until(Duration::from_secs(5), || metrics().contains(
            "eddy_dashboard_qoe_sessions{scope=\"title\",name=\"show\"} 2"
        )),
        "{}",
        metrics()
    );
    // One purge through an edge's admin API: it goes over the bus to both edges.
    let purge = rt.block_on(async {
        client
            .post(format!("http://{}/purge", edges[0].admin_addr()))
            .body(format!(
                r#"{{"prefix": "{}/obj/1"}}"#,
                edges[0].listen_addr()
            ))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(purge.is_success(), "purge answered {purge}");
    assert!(
        wait_until(Duration::from_secs(10), || status()["purge"]["applied"]
            .as_u64()
            .unwrap_or(0)
            >= 2),
        "the purge reports never reached the dashboard: {}",
        status()
    );
    let s = status();
    assert!(s["purge"]["p99_ms"].as_f64().is_some(), "{s}");
    // 20 objects, all cacheable: once warm, nearly every request is a hit.
    assert!(
        wait_until(Duration::from_secs(10), || status()["totals"]["hit_ratio"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.8),
        "the hit ratio never rose: {}",
        status()
    );

    // The browser.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.mjs");
    let modules = script
        .with_file_name("node_modules")
        .join("playwright-core");
    assert!(
        modules.exists(),
        "playwright-core is not installed next to {}: run scripts/test-prep.sh",
        script.display()
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "chromium is not installed: run scripts/test-prep.sh"
    );
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(format!("http://{}/", dash.addr()))
        .arg(&shot)
        .arg("2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser check failed:\n{stdout}\n{stderr}"
    );
    assert!(shot.exists(), "no screenshot at {}", shot.display());
    println!("screenshot: {}", shot.display());

    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    assert!(sent.load(Ordering::Relaxed) > 0);
    for e in edges {
        e.stop();
    }
    dash.stop();
}
