//! The control plane's purge front door against real edges on one embedded bus: a purge with
//! `?wait=` answers once every live edge applied it, with each edge's latency; the edges really
//! miss afterwards; bad commands and missing tokens get clear errors; scoped API tokens decide
//! who may purge and read, and every purge command lands in the audit trail on the bus.
#![allow(clippy::unwrap_used)]

use eddy_admin::control::ControlNode;
use eddy_testkit::origin::{Origin, Reply, Seen};
use eddy_testkit::{free_port, wait_until};
use std::sync::Arc;
use std::time::Duration;

/// `control.token` "sekrit" (every scope, as `control_token`), and by hash: `cms` may purge,
/// `reader` may read.
fn tokens() -> eddy_auth::api::ApiTokens {
    use eddy_auth::api::{ApiToken, Scope, hash};
    eddy_auth::api::ApiTokens::new(vec![
        ApiToken::new("cms", &hash("cms-secret"), &[Scope::Purge]).unwrap(),
        ApiToken::new("reader", &hash("reader-secret"), &[Scope::Read]).unwrap(),
        ApiToken::from_secret("control_token", "sekrit", &[Scope::Admin]),
    ])
}

#[test]
fn a_purge_reports_when_every_live_edge_applied_it() {
    let dir = tempfile::tempdir().unwrap();
    let bus: Arc<dyn eddy_bus::Bus> = Arc::new(
        eddy_bus::embedded::EmbeddedBus::open(eddy_bus::embedded::EmbeddedOptions::new(
            dir.path().join("bus"),
        ))
        .unwrap(),
    );
    let control =
        ControlNode::start("t", "127.0.0.1:0".parse().unwrap(), tokens(), bus.clone()).unwrap();
    let origin = Origin::start(|s: &Seen| {
        Reply::ok(format!("v {}", s.path)).header("cache-control", "max-age=600")
    })
    .unwrap();
    let edges: Vec<eddy_edge::Edge> = ["edge-1", "edge-2"]
        .iter()
        .map(|id| {
            let o = eddy_config::Overrides {
                listen: Some(free_port().unwrap().to_string()),
                admin: Some(free_port().unwrap().to_string()),
                origins: vec![origin.url()],
                id: Some((*id).into()),
                ..Default::default()
            };
            let mut c = eddy_config::load(None, &o).unwrap();
            c.edge.origin_probe_interval = None;
            eddy_edge::Edge::start_with_bus(c, Some(bus.clone())).unwrap()
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let get = |url: String| {
        rt.block_on(async {
            let r = client.get(url).send().await.unwrap();
            let x = r
                .headers()
                .get("x-cache")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let _ = r.bytes().await;
            x
        })
    };
    // Warm both edges.
    for e in &edges {
        let url = format!("http://{}/show/ep1.ts", e.listen_addr());
        get(url.clone());
        assert_eq!(get(url), "HIT");
    }
    let post = |path: &str, body: &str, token: Option<&str>| {
        rt.block_on(async {
            let mut req = client
                .post(format!("http://{}{path}", control.addr()))
                .body(body.to_string());
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let v: serde_json::Value = r.json().await.unwrap();
            (status, v)
        })
    };
    // The control plane learns the live edges from their heartbeats.
    let (status, v) = post("/purge", r#"{"key": "warm-up"}"#, Some("sekrit"));
    assert_eq!(status, 202, "{v}");
    assert!(
        wait_until(Duration::from_secs(5), || {
            let (_, v) = post("/purge?wait=2000", r#"{"key": "probe"}"#, Some("sekrit"));
            v["applied"].as_object().map(|m| m.len()) == Some(2)
        }),
        "the control plane never saw both edges report"
    );

    // One prefix purge per edge host, each waited for.
    for e in &edges {
        let body = format!(r#"{{"prefix": "{}/show/"}}"#, e.listen_addr());
        let (status, v) = post("/purge?wait=5000", &body, Some("sekrit"));
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["done"], true, "{v}");
        let applied = v["applied"].as_object().unwrap();
        assert!(
            applied.contains_key("edge-1") && applied.contains_key("edge-2"),
            "{v}"
        );
        assert!(applied.values().all(|ms| ms.as_f64().unwrap() < 5000.0));
        println!("CONTROL: purge applied on every edge after {applied:?} ms");
        // The report is there afterwards too.
        let id = v["id"].as_str().unwrap().to_string();
        let again: serde_json::Value = rt.block_on(async {
            client
                .get(format!("http://{}/purges/{id}", control.addr()))
                .bearer_auth("reader-secret")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        assert_eq!(again["done"], true, "{again}");
        assert_eq!(
            get(format!("http://{}/show/ep1.ts", e.listen_addr())),
            "MISS"
        );
    }

    // Bad input.
    let (status, v) = post("/purge", r#"{"url": "a", "key": "b"}"#, Some("sekrit"));
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("exactly one"), "{v}");
    let (status, v) = post("/purge", "not json", Some("sekrit"));
    assert_eq!(status, 400, "{v}");
    let (status, v) = post("/purge", r#"{"key": "x"}"#, None);
    assert_eq!(status, 401, "{v}");
    let (status, v) = post("/purge", r#"{"key": "x"}"#, Some("not-a-token"));
    assert_eq!(status, 401, "{v}");

    // Scopes: cms may purge, reader may not; reader may read reports, nobody without a token.
    let (status, v) = post("/purge", r#"{"key": "by-cms"}"#, Some("cms-secret"));
    assert_eq!(status, 202, "{v}");
    let (status, v) = post("/purge", r#"{"key": "by-reader"}"#, Some("reader-secret"));
    assert_eq!(status, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("reader"), "{v}");
    let report_status = |token: Option<&str>| {
        rt.block_on(async {
            let mut req = client.get(format!("http://{}/purges/nope", control.addr()));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.unwrap().status().as_u16()
        })
    };
    assert_eq!(report_status(None), 401);
    assert_eq!(report_status(Some("cms-secret")), 403);
    assert_eq!(report_status(Some("reader-secret")), 404);

    // Every purge command is in the audit trail, in order, with who, from where and the
    // outcome, and never the token itself.
    let records: Vec<eddy_events::Audit> = rt.block_on(async {
        let mut sub = bus
            .subscribe(
                eddy_control::AUDIT_TOPIC,
                "audit-reader",
                eddy_bus::StartFrom::Earliest,
            )
            .await
            .unwrap();
        let mut out = Vec::new();
        loop {
            let Ok(rec) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await else {
                break;
            };
            let (cloud, ev) = eddy_events::Event::decode(&rec.unwrap().payload).unwrap();
            assert_eq!(cloud.ty, "dev.eddy.audit.v1");
            let eddy_events::Event::Audit(a) = ev else {
                panic!("not an audit record: {ev:?}")
            };
            out.push(a);
        }
        out
    });
    let tail: Vec<(&str, &str, &str)> = records
        .iter()
        .rev()
        .take(6)
        .rev()
        .map(|a| (a.actor.as_str(), a.action.as_str(), a.outcome.as_str()))
        .collect();
    assert_eq!(
        tail,
        vec![
            ("control_token", "purge", "refused"),
            ("control_token", "purge", "refused"),
            ("no token", "purge", "refused"),
            ("unknown token", "purge", "refused"),
            ("cms", "purge", "ok"),
            ("reader", "purge", "refused"),
        ],
        "{records:#?}"
    );
    assert!(records.iter().all(|a| a.node == "control-t"
        && a.address.as_deref() == Some("127.0.0.1")
        && !a.detail.contains("secret")
        && !a.detail.contains("sekrit")));
    assert!(
        records.len() >= 8,
        "every purge above is recorded: {}",
        records.len()
    );
    for e in edges {
        e.stop();
    }
    control.stop();
}
