//! The admin API of an edge (loopback by default): `POST /purge`, `POST /events`,
//! `POST /interactions`, `GET /metrics`, `GET /healthz`, `GET /stats`, `POST /tls/reload`. This is the seam the event bus drives in the next step.

use crate::proxy::EdgeState;
use crate::proxy::Purge;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use eddy_auth::api::{Scope, Verdict};
use eddy_control::audit::Outcome as AuditOutcome;
use eddy_control::purge::CommandError;
use eddy_events::{CloudEvent, Event, PurgeTarget};
use std::net::SocketAddr;
use std::sync::Arc;

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(serde_json::json!({ "error": msg }))).into_response()
}

/// Whether the request may do `scope` (`[[api_tokens]]`, `edge.admin_token`): the verdict,
/// and the answer that refuses it (401 without a known token, 403 without the scope).
fn allowed(state: &EdgeState, headers: &HeaderMap, scope: Scope) -> (Verdict, Option<Response>) {
    let v = state.config.api_tokens.check(
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        scope,
    );
    let refused = v
        .refusal(scope, "[[api_tokens]] or edge.admin_token")
        .map(|(status, msg)| {
            error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
                &msg,
            )
        });
    (v, refused)
}

/// Run an operation that needs `scope` and record it in the audit trail: who asked (the
/// token's name), from `peer`, `action`, what the request said (`detail`), and the outcome the
/// answer's status gives.
async fn audited<F, Fut>(
    state: &EdgeState,
    peer: SocketAddr,
    headers: &HeaderMap,
    scope: Scope,
    action: &'static str,
    detail: &[u8],
    run: F,
) -> Response
where
    F: FnOnce(Verdict) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let (verdict, refused) = allowed(state, headers, scope);
    let actor = verdict.actor().to_string();
    let resp = match refused {
        Some(r) => r,
        None => run(verdict).await,
    };
    let status = resp.status().as_u16();
    let detail = eddy_control::audit::detail(detail, status);
    state.audit.record(
        &actor,
        Some(peer.ip()),
        action,
        AuditOutcome::of_status(status),
        &detail,
    );
    resp
}

async fn purge(
    State(state): State<Arc<EdgeState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    audited(&state, peer, &headers, Scope::Purge, "purge", &body, |v| {
        purge_allowed(&state, &headers, &body, v)
    })
    .await
}

async fn purge_allowed(
    state: &Arc<EdgeState>,
    headers: &HeaderMap,
    body: &[u8],
    verdict: Verdict,
) -> Response {
    let (scope, soft) = match eddy_control::purge::command(
        body,
        |h| headers.get(h)?.to_str().ok(),
        matches!(verdict, Verdict::Allowed(_)),
    ) {
        Ok((t, soft)) => (Purge::of(&t, &state.config), soft),
        Err(e @ CommandError::NeedsToken) => return error(StatusCode::FORBIDDEN, &e.to_string()),
        Err(CommandError::Invalid(m)) => return error(StatusCode::BAD_REQUEST, &m),
    };
    match apply_or_publish(state, vec![(scope.clone(), soft)]).await {
        Ok(Outcome::Published(ids)) => Json(serde_json::json!({
            "published": true, "request_id": ids.first(), "soft": soft, "scope": format!("{scope:?}")
        }))
        .into_response(),
        Ok(Outcome::Applied(n)) => {
            Json(serde_json::json!({ "purged": n, "soft": soft, "scope": format!("{scope:?}") }))
                .into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

enum Outcome {
    /// Published as purge.requested events (every edge applies them, this one included).
    Published(Vec<String>),
    /// No bus: applied to this edge's cache; objects affected.
    Applied(usize),
}

impl From<&Purge> for PurgeTarget {
    fn from(p: &Purge) -> PurgeTarget {
        match p {
            Purge::Url(u) => PurgeTarget::Url(u.clone()),
            Purge::Prefix(p) => PurgeTarget::Prefix(p.clone()),
            Purge::Key(k) => PurgeTarget::Key(k.clone()),
            Purge::All => PurgeTarget::All,
        }
    }
}

/// With a bus, publish each purge for every edge; without one, apply them here.
async fn apply_or_publish(
    state: &Arc<EdgeState>,
    purges: Vec<(Purge, bool)>,
) -> Result<Outcome, String> {
    if let Some(bus) = &state.bus {
        let source = format!("/eddy/edge/{}/admin", state.config.edge.id);
        let mut ids = Vec::new();
        for (p, soft) in &purges {
            let id = eddy_control::purge::request(bus.as_ref(), &source, p.into(), *soft)
                .await
                .map_err(|e| format!("publishing the purge failed: {e}"))?;
            ids.push(id);
        }
        return Ok(Outcome::Published(ids));
    }
    let st = state.clone();
    match tokio::task::spawn_blocking(move || {
        purges
            .iter()
            .try_fold(0usize, |n, (p, soft)| st.purge(p, *soft).map(|m| n + m))
    })
    .await
    {
        Ok(Ok(n)) => Ok(Outcome::Applied(n)),
        Ok(Err(e)) => Err(format!("purge failed: {e}")),
        Err(e) => Err(format!("purge task failed: {e}")),
    }
}

/// Read a CloudEvent from an HTTP request in structured mode (`application/cloudevents+json`)
/// or binary mode (`ce-*` headers, the body is `data`).
fn cloud_event_from_http(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<CloudEvent, (StatusCode, String)> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with("application/cloudevents+json") {
        return CloudEvent::decode(body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()));
    }
    if ct.starts_with("application/cloudevents-batch") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "batch mode is not supported; send one event per request".into(),
        ));
    }
    // Binary mode: build the structured form from the ce-* headers.
    let mut map = serde_json::Map::new();
    for (name, value) in headers {
        if let Some(attr) = name.as_str().strip_prefix("ce-") {
            let v = value.to_str().map_err(|_| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("header {name} is not text"),
                )
            })?;
            map.insert(attr.to_string(), serde_json::Value::String(v.to_string()));
        }
    }
    if map.is_empty() {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send a CloudEvent as application/cloudevents+json, or in binary mode with ce-specversion, ce-id, ce-source and ce-type headers".into(),
        ));
    }
    if !body.is_empty() {
        let data = if ct.starts_with("application/json") || ct.is_empty() {
            serde_json::from_slice(body)
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")))?
        } else {
            serde_json::Value::String(String::from_utf8_lossy(body).into_owned())
        };
        map.insert("data".into(), data);
        if !ct.is_empty() {
            map.insert(
                "datacontenttype".into(),
                serde_json::Value::String(ct.to_string()),
            );
        }
    }
    let bytes = serde_json::to_vec(&serde_json::Value::Object(map)).unwrap_or_default();
    CloudEvent::decode(&bytes).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
}

/// `POST /events`: content-update ingest from an origin or CMS.
async fn events(
    State(state): State<Arc<EdgeState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    audited(
        &state,
        peer,
        &headers,
        Scope::Events,
        "events",
        &body,
        |v| events_allowed(&state, &headers, &body, v),
    )
    .await
}

async fn events_allowed(
    state: &Arc<EdgeState>,
    headers: &HeaderMap,
    body: &[u8],
    verdict: Verdict,
) -> Response {
    let cloud = match cloud_event_from_http(headers, body) {
        Ok(c) => c,
        Err((status, msg)) => return error(status, &msg),
    };
    // Every target goes through PurgeTarget's constructors (decoding checks a purge.requested;
    // purges_for checks a content.updated); one that fails is refused and nothing is applied.
    let purges: Vec<(Purge, bool)> = match Event::from_cloud(&cloud) {
        Ok(Event::ContentUpdated(c)) => match eddy_control::content::purges_for(&c) {
            Ok(p) => p
                .iter()
                .map(|p| (Purge::of(&p.target, &state.config), p.soft))
                .collect(),
            Err(e) => {
                state.metrics.events_refused.inc();
                return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string());
            }
        },
        Ok(Event::PurgeRequested(p))
            if p.target == PurgeTarget::All && !matches!(verdict, Verdict::Allowed(_)) =>
        {
            state.metrics.events_refused.inc();
            return error(StatusCode::FORBIDDEN, &CommandError::NeedsToken.to_string());
        }
        Ok(Event::PurgeRequested(p)) => vec![(Purge::of(&p.target, &state.config), p.soft)],
        Ok(ev @ (Event::Interaction(_) | Event::Prewarm(_))) => {
            if matches!(ev, Event::Interaction(_)) {
                state.metrics.interactions_counted("accepted").inc();
            }
            return publish_interest(state, &ev, &cloud).await;
        }
        Err(e) if cloud.ty == eddy_events::INTERACTION => {
            state.metrics.events_refused.inc();
            state.metrics.interactions_counted("refused").inc();
            return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string());
        }
        Ok(other) => {
            return (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({"accepted": cloud.id, "ignored": other.type_name()})),
            )
                .into_response();
        }
        Err(e) => {
            state.metrics.events_refused.inc();
            return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string());
        }
    };
    if let Some(bus) = &state.bus {
        let ev = Bytes::from(cloud.encode());
        if let Err(e) = bus
            .publish(
                eddy_control::CONTENT_TOPIC,
                cloud.subject.as_deref().unwrap_or(""),
                ev,
            )
            .await
        {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("publishing the event failed: {e}"),
            );
        }
    }
    let n = purges.len();
    match apply_or_publish(state, purges).await {
        Ok(Outcome::Published(ids)) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"accepted": cloud.id, "purges": n, "published": ids})),
        )
            .into_response(),
        Ok(Outcome::Applied(objects)) => {
            Json(serde_json::json!({"accepted": cloud.id, "purges": n, "purged": objects}))
                .into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// Put an interaction or a pre-warm hint (already checked) on its topic: `202` with its id, or
/// `503` when the bus refuses it (nothing was taken; retry). Without a bus there is no one to
/// fold or follow it: `202`, ignored.
async fn publish_interest(state: &EdgeState, ev: &Event, cloud: &CloudEvent) -> Response {
    let Some(bus) = &state.bus else {
        return (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"accepted": cloud.id, "ignored": "this edge has no bus"})),
        )
            .into_response();
    };
    let topic = match ev {
        Event::Prewarm(_) => eddy_control::PREWARM_TOPIC,
        _ => eddy_control::INTERACTION_TOPIC,
    };
    match bus
        .publish(topic, &ev.key(), Bytes::from(cloud.encode()))
        .await
    {
        Ok(_) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"accepted": cloud.id, "published": topic})),
        )
            .into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("publishing the event failed: {e}; nothing was taken, retry"),
        ),
    }
}

/// Most interactions in one `POST /interactions`.
pub const MAX_INTERACTIONS: usize = 1000;

/// `POST /interactions`: viewer interactions from a site's back end, one JSON object or an array
/// of at most [`MAX_INTERACTIONS`] (`{"viewer", "item", "action": "play"|"complete"|"like"|"skip",
/// "region"?, "url"?}`), with a token of the `events` scope. Each valid one goes on the bus as a
/// `dev.eddy.interaction.v1`; each malformed one is counted and dropped, and the answer says
/// which (`202` with `accepted`, `refused` and the first errors). Data, not an operation: not
/// recorded in the audit trail.
async fn interactions(
    State(state): State<Arc<EdgeState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let (_, Some(refused)) = allowed(&state, &headers, Scope::Events) {
        return refused;
    }
    let refuse = |n: u64, msg: &str| {
        state.metrics.interactions_counted("refused").inc_by(n);
        error(StatusCode::BAD_REQUEST, msg)
    };
    let items: Vec<serde_json::Value> = match serde_json::from_slice(&body) {
        Ok(serde_json::Value::Array(a)) if a.len() > MAX_INTERACTIONS => {
            return refuse(
                a.len() as u64,
                &format!(
                    "{} interactions in one request; send at most {MAX_INTERACTIONS}",
                    a.len()
                ),
            );
        }
        Ok(serde_json::Value::Array(a)) => a,
        Ok(one @ serde_json::Value::Object(_)) => vec![one],
        Ok(_) => return refuse(1, "send an interaction object or an array of them"),
        Err(e) => return refuse(1, &format!("body is not JSON: {e}")),
    };
    let source = format!("/eddy/edge/{}/interactions", state.config.edge.id);
    let (mut accepted, mut refused, mut errors) = (0usize, 0usize, Vec::new());
    for (i, v) in items.into_iter().enumerate() {
        let ev = match serde_json::from_value::<eddy_events::Interaction>(v) {
            Ok(x) => Event::Interaction(x),
            Err(e) => {
                state.metrics.interactions_counted("refused").inc();
                refused += 1;
                if errors.len() < 10 {
                    errors.push(format!("#{i}: {e}"));
                }
                continue;
            }
        };
        let cloud = ev.to_cloud(eddy_control::event_id(), source.as_str());
        let resp = publish_interest(&state, &ev, &cloud).await;
        if resp.status() != StatusCode::ACCEPTED {
            return resp;
        }
        state.metrics.interactions_counted("accepted").inc();
        accepted += 1;
    }
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"accepted": accepted, "refused": refused, "errors": errors})),
    )
        .into_response()
}

async fn metrics(State(state): State<Arc<EdgeState>>) -> Response {
    let c = &state.config.cache;
    state
        .metrics
        .open_connections
        .set(i64::try_from(state.conns.open()).unwrap_or(i64::MAX));
    let text = state.metrics.render(
        state.storage.cache(),
        c.memory_bytes,
        c.disk.as_ref().map_or(0, |d| d.bytes),
    );
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn stats(State(state): State<Arc<EdgeState>>, headers: HeaderMap) -> Response {
    if let (_, Some(refused)) = allowed(&state, &headers, Scope::Read) {
        return refused;
    }
    let u = state.storage.cache().usage();
    Json(serde_json::json!({
        "id": state.config.edge.id,
        "memory": {"used": u.memory_used, "objects": u.memory_objects, "evictions": u.memory_evictions},
        "disk": {"used": u.disk_used, "objects": u.disk_objects, "evictions": u.disk_evictions},
    }))
    .into_response()
}

/// `POST /tls/reload`: read the HTTPS certificates again (as `SIGHUP` does). `200` with the
/// names now served; `409` when the edge has no HTTPS port; `500` with the file at fault when a
/// file did not load (the certificates in use stay).
async fn tls_reload(
    State(state): State<Arc<EdgeState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    audited(
        &state,
        peer,
        &headers,
        Scope::Admin,
        "tls.reload",
        b"",
        |_| async {
            let Some(tls) = &state.tls else {
                return error(
                    StatusCode::CONFLICT,
                    "this edge has no HTTPS port ([tls] listen): nothing to reload",
                );
            };
            match crate::tls::reload(tls) {
                Ok(names) => {
                    Json(serde_json::json!({ "reloaded": true, "names": names })).into_response()
                }
                Err(e) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("{e}; the certificates loaded before are still served"),
                ),
            }
        },
    )
    .await
}

/// The admin router.
pub fn router(state: Arc<EdgeState>) -> Router {
    Router::new()
        .route("/purge", post(purge))
        .route("/events", post(events))
        .route("/interactions", post(interactions))
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .route("/tls/reload", post(tls_reload))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}
