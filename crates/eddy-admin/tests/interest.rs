//! Issue 14, items 4 and 5 end to end on one embedded bus: a site posts viewer interactions to
//! an edge's ingest (malformed ones counted and dropped); the control plane folds them into
//! trending per region and recommendations per viewer, served at `/trending` and
//! `/recommendations`; its forecast sees an item take off and hints it (`dev.eddy.prewarm.v1`);
//! every edge fetches the hinted object before any viewer asks, within its byte budget and
//! only for its own region.
#![allow(clippy::unwrap_used)]

use eddy_admin::control::ControlNode;
use eddy_testkit::origin::{Origin, Reply, Seen};
use eddy_testkit::{free_port, wait_until};
use std::sync::Arc;
use std::time::Duration;

struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    fn new() -> Http {
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::new(),
        }
    }

    fn post(&self, url: String, ct: &str, body: String) -> (u16, serde_json::Value) {
        self.rt.block_on(async {
            let r = self
                .client
                .post(url)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or_default())
        })
    }

    fn get(&self, url: String) -> (u16, String, String) {
        self.rt.block_on(async {
            let r = self.client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let x = r
                .headers()
                .get("x-cache")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, x, r.text().await.unwrap())
        })
    }

    fn json(&self, url: String) -> serde_json::Value {
        serde_json::from_str(&self.get(url).2).unwrap()
    }

    /// A counter's value in an edge's `/metrics` (0 when absent).
    fn metric(&self, edge: &eddy_edge::Edge, line: &str) -> u64 {
        let text = self.get(format!("http://{}/metrics", edge.admin_addr())).2;
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }
}

fn edge(bus: &Arc<dyn eddy_bus::Bus>, origin: &Origin, id: &str, toml: &str) -> eddy_edge::Edge {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, toml).unwrap();
    let o = eddy_config::Overrides {
        listen: Some(free_port().unwrap().to_string()),
        admin: Some(free_port().unwrap().to_string()),
        origins: vec![origin.url()],
        id: Some(id.into()),
        ..Default::default()
    };
    let mut c = eddy_config::load(Some(&path), &o).unwrap();
    c.edge.origin_probe_interval = None;
    eddy_edge::Edge::start_with_bus(c, Some(bus.clone())).unwrap()
}

fn interaction(viewer: &str, item: &str, action: &str, region: &str) -> serde_json::Value {
    serde_json::json!({"viewer": viewer, "item": item, "action": action, "region": region,
        "url": format!("v.test/{item}/seg-1.m4s")})
}

#[test]
fn interactions_drive_trending_recommendations_and_prewarm() {
    let dir = tempfile::tempdir().unwrap();
    let bus: Arc<dyn eddy_bus::Bus> = Arc::new(
        eddy_bus::embedded::EmbeddedBus::open(eddy_bus::embedded::EmbeddedOptions::new(
            dir.path().join("bus"),
        ))
        .unwrap(),
    );
    let control = ControlNode::start_with(
        "t",
        "127.0.0.1:0".parse().unwrap(),
        eddy_auth::api::ApiTokens::default(),
        bus.clone(),
        Duration::from_millis(200),
    )
    .unwrap();
    let origin = Origin::start(|s: &Seen| {
        Reply::ok(format!("{} {}", s.path, "x".repeat(5000))).header("cache-control", "max-age=600")
    })
    .unwrap();
    // An edge in eu, one in us with a budget of one object a minute, one with no region.
    let eu = edge(&bus, &origin, "edge-eu", "[edge]\nregion = \"EU\"\n");
    let us = edge(
        &bus,
        &origin,
        "edge-us",
        "[edge]\nregion = \"us\"\nprewarm_budget = \"1 KiB\"\n",
    );
    let any = edge(&bus, &origin, "edge-any", "");
    let http = Http::new();
    let ingest = |body: serde_json::Value| {
        http.post(
            format!("http://{}/interactions", eu.admin_addr()),
            "application/json",
            body.to_string(),
        )
    };

    // A quiet catalog, then an item takes off in eu; fans also like its trailer. One batch has
    // a malformed entry: counted and dropped, the rest taken.
    let mut quiet: Vec<serde_json::Value> = (0..200)
        .map(|k| {
            interaction(
                &format!("q{}", k % 40),
                &format!("old{}", k % 30),
                "play",
                "us",
            )
        })
        .collect();
    quiet.push(serde_json::json!({"viewer": "x", "item": "y", "action": "seek"}));
    let (status, v) = ingest(serde_json::Value::Array(quiet));
    assert_eq!(
        (status, v["accepted"].as_u64(), v["refused"].as_u64()),
        (202, Some(200), Some(1)),
        "{v}"
    );
    assert!(v["errors"][0].as_str().unwrap().contains("action"), "{v}");
    for round in 0..3 {
        let burst: Vec<serde_json::Value> = (0..100)
            .flat_map(|k| {
                let fan = format!("fan{}", round * 100 + k);
                [
                    interaction(&fan, "premiere", "play", "eu"),
                    interaction(&fan, "trailer", "like", "eu"),
                ]
            })
            .collect();
        let (status, v) = ingest(serde_json::Value::Array(burst));
        assert_eq!((status, v["accepted"].as_u64()), (202, Some(200)), "{v}");
    }
    // Refused as a whole: too many, not JSON; and a malformed CloudEvent at /events.
    let (status, _) = ingest(serde_json::Value::Array(vec![
        interaction(
            "a", "b", "play", "eu"
        );
        1001
    ]));
    assert_eq!(status, 400);
    let (status, v) = http.post(
        format!("http://{}/events", eu.admin_addr()),
        "application/cloudevents+json",
        serde_json::json!({"specversion": "1.0", "id": "bad-1", "source": "/site",
            "type": "dev.eddy.interaction.v1", "data": {"viewer": "", "item": "i", "action": "play"}})
        .to_string(),
    );
    assert_eq!(status, 422, "{v}");
    assert_eq!(
        http.metric(&eu, "eddy_interactions_total{what=\"accepted\"}"),
        800
    );
    assert_eq!(
        http.metric(&eu, "eddy_interactions_total{what=\"refused\"}"),
        1 + 1001 + 1
    );

    // The control plane folded them.
    let trending = |q: &str| http.json(format!("http://{}/trending{q}", control.addr()));
    assert!(
        wait_until(Duration::from_secs(10), || {
            // 300 likes (3 each) above 300 plays (1 each).
            trending("?region=eu")["items"].as_array().is_some_and(|a| {
                a.len() == 2 && a[0]["item"] == "trailer" && a[1]["item"] == "premiere"
            })
        }),
        "{}",
        trending("?region=eu")
    );
    let eu_top = trending("?region=EU&n=2");
    assert_eq!(eu_top["region"], "eu");
    assert_eq!(eu_top["items"][1]["url"], "v.test/premiere/seg-1.m4s");
    assert!(
        trending("?region=us")["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["item"].as_str().unwrap().starts_with("old")),
        "{}",
        trending("?region=us")
    );
    assert_eq!(trending("")["items"].as_array().unwrap().len(), 10);
    assert_eq!(
        http.get(format!("http://{}/trending?region=e%20u", control.addr()))
            .0,
        400
    );
    assert_eq!(
        http.get(format!("http://{}/trending?n=0", control.addr()))
            .0,
        400
    );
    let recs = |q: &str| http.json(format!("http://{}/recommendations{q}", control.addr()));
    let fan = recs("?viewer=fan1&n=3");
    assert!(
        !fan["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "premiere" || i == "trailer"),
        "what a viewer had is not recommended again: {fan}"
    );
    // A late viewer who only played the premiere is recommended the trailer first.
    ingest(interaction("late", "premiere", "play", "eu"));
    assert!(
        wait_until(Duration::from_secs(10), || {
            recs("?viewer=late&n=1")["items"] == serde_json::json!(["trailer"])
        }),
        "{}",
        recs("?viewer=late&n=3")
    );
    assert_eq!(recs("?viewer=late")["basis"], "co-occurrence");
    assert_eq!(recs("?viewer=stranger&n=4")["basis"], "most-popular");
    assert_eq!(
        recs("?viewer=stranger&n=4")["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        http.get(format!("http://{}/recommendations", control.addr()))
            .0,
        400
    );

    // The forecast hinted the premiere and the trailer: eu and the region-less edge fetched both
    // before any viewer asked; us, with its small budget, one at most.
    assert!(
        wait_until(Duration::from_secs(10), || {
            // The premiere (rising) and its trailer (rising too, and recommended to fans).
            http.metric(&eu, "eddy_prewarm_total{what=\"fetched\"}") >= 2
                && http.metric(&any, "eddy_prewarm_total{what=\"fetched\"}") >= 2
        }),
        "no pre-warm on a hint: origin saw {:?}",
        origin
            .seen()
            .iter()
            .map(|s| s.path.clone())
            .collect::<Vec<_>>()
    );
    assert!(origin.count("/premiere/seg-1.m4s") >= 2);
    assert!(http.metric(&eu, "eddy_prewarm_fetched_bytes_total") >= 5000);
    // The hint's host is v.test: a viewer of v.test on the eu edge finds it cached.
    let viewer = http.rt.block_on(async {
        http.client
            .get(format!("http://{}/premiere/seg-1.m4s", eu.listen_addr()))
            .header("host", "v.test")
            .send()
            .await
            .unwrap()
            .headers()
            .get("x-cache")
            .map(|v| v.to_str().unwrap().to_string())
    });
    assert_eq!(
        viewer.as_deref(),
        Some("HIT"),
        "{:?}",
        origin
            .seen()
            .iter()
            .map(|s| (
                s.path.clone(),
                s.header("host").map(str::to_string),
                s.header("eddy-prefetch").is_some()
            ))
            .collect::<Vec<_>>()
    );

    // A hint for us only, naming three objects: eu skips it; the region-less edge fetches all
    // three; us, with a budget of 1 KiB a minute, fetches one at most (an object's size is
    // known only once it arrived: the overshoot is one object) and refuses the rest.
    let (status, v) = http.post(
        format!("http://{}/events", any.admin_addr()),
        "application/cloudevents+json",
        serde_json::json!({"specversion": "1.0", "id": "hint-1", "source": "/ops",
            "type": "dev.eddy.prewarm.v1", "data": {"urls": ["v.test/us/a.m4s", "v.test/us/b.m4s",
            "v.test/us/c.m4s"], "reason": "rising", "region": "us"}})
        .to_string(),
    );
    assert_eq!(status, 202, "{v}");
    assert!(
        wait_until(Duration::from_secs(10), || {
            http.metric(&eu, "eddy_prewarm_total{what=\"region\"}") >= 1
                && http.metric(&us, "eddy_prewarm_total{what=\"budget\"}") >= 2
                && ["a", "b", "c"]
                    .iter()
                    .all(|o| origin.count(&format!("/us/{o}.m4s")) >= 1)
        }),
        "eu region {}, us budget {}, origin saw {:?}",
        http.metric(&eu, "eddy_prewarm_total{what=\"region\"}"),
        http.metric(&us, "eddy_prewarm_total{what=\"budget\"}"),
        origin
            .seen()
            .iter()
            .map(|s| s.path.clone())
            .collect::<Vec<_>>()
    );
    let us_bytes = http.metric(&us, "eddy_prewarm_fetched_bytes_total");
    assert!(us_bytes <= 1024 + 5100, "us fetched {us_bytes} bytes");
    // A malformed hint is refused at the ingest.
    let (status, _) = http.post(
        format!("http://{}/events", any.admin_addr()),
        "application/cloudevents+json",
        serde_json::json!({"specversion": "1.0", "id": "hint-2", "source": "/ops",
            "type": "dev.eddy.prewarm.v1", "data": {"urls": [], "reason": "rising"}})
        .to_string(),
    );
    assert_eq!(status, 422);
    for e in [eu, us, any] {
        e.stop();
    }
    control.stop();
}
