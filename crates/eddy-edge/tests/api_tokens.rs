//! Issue 13, scoped API tokens: the admin API admits named tokens kept as hashes, each to its
//! scopes (purge, events, read, admin); `401` without a known token, `403` without the scope.
#![allow(clippy::unwrap_used)]

mod common;

use common::{counting, start_with};

#[test]
fn each_token_may_do_what_its_scopes_say() {
    let cms = "cms-0123456789abcdef";
    let reader = "reader-0123456789abcdef";
    let toml = format!(
        "[[api_tokens]]\nname = \"cms\"\nsha256 = \"{}\"\nscopes = [\"purge\", \"events\"]\n[[api_tokens]]\nname = \"reader\"\nsha256 = \"{}\"\nscopes = [\"read\"]\n",
        eddy_auth::api::hash(cms),
        eddy_auth::api::hash(reader)
    );
    let rig = start_with(counting("max-age=60"), |_| {}, &toml);
    let bearer = |t: &str| [("authorization", format!("Bearer {t}"))];
    let post = |path: &str, body: &str, token: Option<&str>| {
        let h = token.map(bearer);
        let h: Vec<(&str, &str)> = h.iter().flatten().map(|(k, v)| (*k, v.as_str())).collect();
        rig.admin_post(path, body, &h)
    };
    let purge = format!("{{\"url\":\"http://{}/a\"}}", rig.listen);
    assert_eq!(post("/purge", &purge, None).status, 401);
    assert_eq!(post("/purge", &purge, Some("guess")).status, 401);
    let r = post("/purge", &purge, Some(reader));
    assert_eq!(r.status, 403);
    assert!(
        r.text()
            .contains("token reader does not have the purge scope"),
        "{}",
        r.text()
    );
    assert_eq!(post("/purge", &purge, Some(cms)).status, 200);
    // A token-holder with the purge scope may purge everything.
    assert_eq!(post("/purge", "{\"all\": true}", Some(cms)).status, 200);
    // Reading needs `read`; reloading certificates needs `admin`.
    let stats = |t: &str| {
        rig.rt.block_on(async {
            rig.client
                .get(rig.admin_url("/stats"))
                .header("authorization", format!("Bearer {t}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    assert_eq!(stats(reader), 200);
    assert_eq!(stats(cms), 403);
    assert_eq!(post("/tls/reload", "", Some(cms)).status, 403);
    // Event ingest needs `events`.
    let event = serde_json::json!({
        "specversion": "1.0", "id": "e1", "source": "/cms", "type": "dev.eddy.purge.requested.v1",
        "datacontenttype": "application/json",
        "data": {"target": {"url": format!("http://{}/a", rig.listen)}}
    })
    .to_string();
    let with_ct = |t: &str| {
        rig.send(
            rig.client
                .post(rig.admin_url("/events"))
                .header("content-type", "application/cloudevents+json")
                .header("authorization", format!("Bearer {t}"))
                .body(event.clone()),
        )
    };
    assert_eq!(with_ct(reader).status, 403);
    let r = with_ct(cms);
    assert!(r.status < 300, "{}: {}", r.status, r.text());
}

/// The first `n` audit records on `bus`.
fn audit_records(
    rig: &common::Rig,
    bus: &std::sync::Arc<dyn eddy_bus::Bus>,
    n: usize,
) -> Vec<eddy_events::Audit> {
    common::events_on(rig, bus, eddy_control::AUDIT_TOPIC, n)
        .into_iter()
        .map(|(ty, ev)| {
            assert_eq!(ty, "dev.eddy.audit.v1");
            let eddy_events::Event::Audit(a) = ev else {
                panic!("{ev:?}")
            };
            a
        })
        .collect()
}

#[test]
fn every_operation_is_audited_on_the_bus_with_the_token_name_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let bus = common::embedded_bus(dir.path());
    let cms = "cms-0123456789abcdef";
    let toml = format!(
        "[[api_tokens]]\nname = \"cms\"\nsha256 = \"{}\"\nscopes = [\"purge\"]\n",
        eddy_auth::api::hash(cms)
    );
    let mut rig = start_with(counting("max-age=60"), |_| {}, &toml);
    rig.stop_edge();
    let o = common::node_overrides(vec![rig.origin.url()], Some("audit-edge"));
    rig.start_edge_with_bus(&o, &toml, Some(bus.clone()));
    let purge = format!("{{\"url\":\"http://{}/a\"}}", rig.listen);
    let auth = format!("Bearer {cms}");
    assert_eq!(
        rig.admin_post("/purge", &purge, &[("authorization", &auth)])
            .status,
        200
    );
    assert_eq!(rig.admin_post("/purge", &purge, &[]).status, 401);
    assert_eq!(
        rig.admin_post("/tls/reload", "", &[("authorization", &auth)])
            .status,
        403
    );
    let records = audit_records(&rig, &bus, 3);
    let summary: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|a| (a.actor.as_str(), a.action.as_str(), a.outcome.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("cms", "purge", "ok"),
            ("no token", "purge", "refused"),
            ("cms", "tls.reload", "refused"),
        ]
    );
    for a in &records {
        assert_eq!(a.node, "audit-edge");
        assert_eq!(a.address.as_deref(), Some("127.0.0.1"));
        assert!(!a.detail.contains(cms), "{}", a.detail);
    }
    assert!(records[0].detail.contains("/a") && records[0].detail.ends_with("→ 200"));
    assert_eq!(rig.metric("eddy_audit_total{what=\"ok\"}"), 1);
    assert_eq!(rig.metric("eddy_audit_total{what=\"refused\"}"), 2);
}
