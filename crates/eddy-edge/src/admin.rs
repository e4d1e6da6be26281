//! The admin API of an edge (loopback by default): `POST /purge`, `GET /metrics`, `GET /healthz`,
//! `GET /stats`. This is the seam the event bus drives in the next step.

use crate::proxy::Purge;
use crate::proxy::{EdgeState, normalise_url};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

/// `POST /purge` body: exactly one of `url`, `prefix`, `key`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// A URL (`http://host/path` or `host/path`): every stored variant.
    pub url: Option<String>,
    /// A URL prefix (`host/path/`): everything below it.
    pub prefix: Option<String>,
    /// A surrogate key.
    pub key: Option<String>,
    /// Mark stale (revalidate) instead of removing.
    #[serde(default)]
    pub soft: bool,
}

impl PurgeRequest {
    /// The scope, or a message saying what is wrong.
    pub fn scope(&self) -> Result<Purge, &'static str> {
        match (&self.url, &self.prefix, &self.key) {
            (Some(u), None, None) if !u.is_empty() => Ok(Purge::Url(normalise_url(u))),
            (None, Some(p), None) if !p.is_empty() => Ok(Purge::Prefix(normalise_url(p))),
            (None, None, Some(k)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                Ok(Purge::Key(k.clone()))
            }
            _ => Err(
                "give exactly one non-empty field of \"url\", \"prefix\" or \"key\" (a key has no spaces)",
            ),
        }
    }
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(serde_json::json!({ "error": msg }))).into_response()
}

fn authorized(state: &EdgeState, headers: &HeaderMap) -> bool {
    match &state.config.edge.admin_token {
        None => true,
        Some(t) => headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|v| v == t),
    }
}

async fn purge(
    State(state): State<Arc<EdgeState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&state, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <edge.admin_token>)",
        );
    }
    let req: PurgeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "purge body is not valid JSON of the form {{\"url\"|\"prefix\"|\"key\": \"...\", \"soft\": bool}}: {e}"
                ),
            );
        }
    };
    let scope = match req.scope() {
        Ok(s) => s,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let soft = req.soft
        || ["fastly-soft-purge", "eddy-soft-purge"]
            .iter()
            .any(|h| headers.get(*h).and_then(|v| v.to_str().ok()) == Some("1"));
    let st = state.clone();
    let scope2 = scope.clone();
    let n = match tokio::task::spawn_blocking(move || st.purge(&scope2, soft)).await {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("purge failed: {e}"),
            );
        }
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("purge task failed: {e}"),
            );
        }
    };
    Json(serde_json::json!({ "purged": n, "soft": soft, "scope": format!("{scope:?}") }))
        .into_response()
}

async fn metrics(State(state): State<Arc<EdgeState>>) -> Response {
    let c = &state.config.cache;
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
    if !authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let u = state.storage.cache().usage();
    Json(serde_json::json!({
        "id": state.config.edge.id,
        "memory": {"used": u.memory_used, "objects": u.memory_objects, "evictions": u.memory_evictions},
        "disk": {"used": u.disk_used, "objects": u.disk_objects, "evictions": u.disk_evictions},
    }))
    .into_response()
}

/// The admin router.
pub fn router(state: Arc<EdgeState>) -> Router {
    Router::new()
        .route("/purge", post(purge))
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}
