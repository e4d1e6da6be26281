//! `eddy control`: the control plane's front door. Purge commands come in over HTTP and go onto
//! the bus as `purge.requested`; the edges' `purge.applied` reports come back, and the control
//! plane says when a purge is done on every live edge — so a publisher can purge and know,
//! instead of purging and hoping.
//!
//! - `POST /purge` with `{"url"|"prefix"|"key": "...", "soft": bool}` (or the `Fastly-Soft-Purge`
//!   header), or `{"all": true}` (only from a token that was presented and verified): publishes
//!   it and answers `202` with its id and the edges expected to apply it.
//!   `?wait=<ms>` (at most 30000) holds the answer until every live edge reported (`200`, with
//!   each edge's latency) or the time is up (`202`, with the edges still pending).
//! - `GET /purges/<id>`: the same report for a purge published here in the last ten minutes.
//! - `GET /trending?region=<r>&n=<n>`: the items viewers are into in region `r` (every region
//!   without it), highest first, from the `dev.eddy.interaction.v1` events on the bus
//!   ([`crate::interest`]).
//! - `GET /recommendations?viewer=<v>&n=<n>`: items for viewer `v`, and how they were chosen.
//! - `GET /metrics`, `GET /healthz`.
//!
//! Every [`crate::interest::HINT_EVERY`] the forecast's hints (rising and new items, items many
//! viewers are recommended) go out as `dev.eddy.prewarm.v1` for the edges to fetch ahead.
//!
//! "Live edges" are the nodes whose heartbeats are healthy and on time when the purge is
//! published (edges and shields: both cache). A node that starts later catches up on its own.
//! With API tokens configured (`[[api_tokens]]`, or `control.token` as `control_token`),
//! `POST /purge` needs `Authorization: Bearer <token>` of a token with the `purge` scope, and
//! `GET /purges/<id>`, `/trending` and `/recommendations` one with `read`: `401` without a
//! known token, `403` without the scope.
//! Every purge command, allowed or not, is recorded in the audit trail
//! ([`eddy_control::audit`]): logged, and published as `dev.eddy.audit.v1` with the token's
//! name, the client's address and the outcome.
//!
//! Bounded: at most [`MAX_TRACKED`] purges are tracked; the oldest is forgotten first.

use crate::fleet::Fleet;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use eddy_auth::api::{ApiTokens, Scope, Verdict};
use eddy_bus::consumer::{EventConsumer, Received};
use eddy_bus::{Bus, StartFrom};
use eddy_control::audit::{Auditor, Outcome as AuditOutcome};
use eddy_control::{ControlError, Follower};
use eddy_events::{Event, PurgeTarget};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;

/// Purges tracked at once.
pub const MAX_TRACKED: usize = 10_000;
/// How long a purge is tracked.
const TRACK_FOR: Duration = Duration::from_secs(600);
/// Longest `?wait=`.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// One purge's progress. With no live node when it was published, it is never `done`: the
/// nodes apply it when they start (they catch up), and nobody is left to report now.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeReport {
    /// The `purge.requested` event id.
    pub id: String,
    /// What it purges.
    pub target: PurgeTarget,
    /// Soft or hard.
    pub soft: bool,
    /// Every live node has reported.
    pub done: bool,
    /// Node → milliseconds from publish to its report.
    pub applied: BTreeMap<String, f64>,
    /// Live nodes that have not reported yet.
    pub pending: Vec<String>,
    /// Milliseconds since it was published.
    pub age_ms: f64,
}

struct Tracked {
    target: PurgeTarget,
    soft: bool,
    published: Instant,
    expected: Vec<String>,
    applied: BTreeMap<String, f64>,
}

impl Tracked {
    fn report(&self, id: &str) -> PurgeReport {
        let pending: Vec<String> = self
            .expected
            .iter()
            .filter(|e| !self.applied.contains_key(*e))
            .cloned()
            .collect();
        PurgeReport {
            id: id.to_string(),
            target: self.target.clone(),
            soft: self.soft,
            done: !self.expected.is_empty() && pending.is_empty(),
            applied: self.applied.clone(),
            pending,
            age_ms: self.published.elapsed().as_secs_f64() * 1000.0,
        }
    }
}

/// `eddy_control_audit_total{what}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct AuditLabel {
    what: &'static str,
}

#[derive(Default)]
struct Book {
    purges: BTreeMap<String, Tracked>,
    order: VecDeque<String>,
}

struct Shared {
    bus: Arc<dyn Bus>,
    source: String,
    tokens: ApiTokens,
    audit: Auditor,
    fleet: Mutex<Fleet>,
    book: Mutex<Book>,
    reported: Notify,
    registry: Registry,
    published: Counter,
    completed: Counter,
    tracked: Gauge,
    interest: Mutex<crate::interest::Interest>,
    /// The clock the interest models run on.
    started: Instant,
    interactions: Counter,
    hints: Family<AuditLabel, Counter>,
}

impl Shared {
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

struct Reports {
    consumer: EventConsumer,
    shared: Arc<Shared>,
    who: String,
}

#[async_trait::async_trait]
impl Follower for Reports {
    const WHAT: &'static str = "control";
    fn consumer(&mut self) -> &mut EventConsumer {
        &mut self.consumer
    }
    fn who(&self) -> &str {
        &self.who
    }
    async fn apply(&mut self, r: Received) -> Result<(), ControlError> {
        match &r.event {
            Event::EdgeHealth(_) => {
                let sent = r.cloud.sent_at().unwrap_or_else(SystemTime::now);
                self.shared.fleet.lock().apply(&r.cloud.id, &r.event, sent);
            }
            Event::Interaction(i) => {
                let now = self.shared.now();
                self.shared.interest.lock().apply(i, now);
                self.shared.interactions.inc();
            }
            Event::PurgeApplied(a) => {
                let done = {
                    let mut book = self.shared.book.lock();
                    match book.purges.get_mut(&a.request_id) {
                        Some(t) if !t.applied.contains_key(&a.edge) => {
                            let complete =
                                |t: &Tracked| t.expected.iter().all(|e| t.applied.contains_key(e));
                            let before = complete(t);
                            let ms = t.published.elapsed().as_secs_f64() * 1000.0;
                            t.applied.insert(a.edge.clone(), ms);
                            !before && complete(t)
                        }
                        _ => false,
                    }
                };
                if done {
                    self.shared.completed.inc();
                }
                self.shared.reported.notify_waiters();
            }
            _ => {}
        }
        self.consumer.commit(&r).await?;
        Ok(())
    }
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlStartError {
    /// Binding or starting the server failed.
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    /// Subscribing failed.
    #[error("control: following {topic} on the bus failed: {source}; check the bus")]
    Follow {
        /// The topic.
        topic: &'static str,
        /// The error.
        source: eddy_bus::BusError,
    },
}

/// A running control plane.
pub struct ControlNode(crate::serve::Node);

impl ControlNode {
    /// Bind `listen`, follow heartbeats and purge reports as `control-<id>.*`, serve on a thread
    /// of its own.
    /// `tokens` decide who may purge and read (open when empty).
    pub fn start(
        id: &str,
        listen: SocketAddr,
        tokens: ApiTokens,
        bus: Arc<dyn Bus>,
    ) -> Result<ControlNode, ControlStartError> {
        Self::start_with(id, listen, tokens, bus, crate::interest::HINT_EVERY)
    }

    /// [`ControlNode::start`], making pre-warm hints every `hint_every` (tests use less than
    /// the default).
    pub fn start_with(
        id: &str,
        listen: SocketAddr,
        tokens: ApiTokens,
        bus: Arc<dyn Bus>,
        hint_every: Duration,
    ) -> Result<ControlNode, ControlStartError> {
        let bound = crate::serve::bind("control", listen, 1)?;
        let mut registry = Registry::with_prefix("eddy_control");
        let published = Counter::default();
        registry.register(
            "purges_published",
            "Purge commands published onto the bus",
            published.clone(),
        );
        let completed = Counter::default();
        registry.register(
            "purges_completed",
            "Purges every expected node reported applied",
            completed.clone(),
        );
        let tracked = Gauge::default();
        registry.register("purges_tracked", "Purges being tracked", tracked.clone());
        let interactions = Counter::default();
        registry.register(
            "interactions",
            "Viewer interactions folded into trending, recommendations and the forecast",
            interactions.clone(),
        );
        let hints = Family::<AuditLabel, Counter>::default();
        registry.register(
            "prewarm_hints",
            "Pre-warm hints published, by reason (rising, new, recommended), or failed to publish",
            hints.clone(),
        );
        let audited = Family::<AuditLabel, Counter>::default();
        registry.register(
            "audit",
            "Purge commands recorded in the audit trail: ok, refused (not allowed or not valid), failed; dropped when the queue to the bus was full (still logged)",
            audited.clone(),
        );
        let (audit, audit_rx) = Auditor::new(
            &format!("control-{id}"),
            Arc::new(move |what| {
                audited.get_or_create(&AuditLabel { what }).inc();
            }),
        );
        let source = format!("/eddy/control/{id}");
        let shared = Arc::new(Shared {
            bus: bus.clone(),
            source: source.clone(),
            tokens,
            audit,
            fleet: Mutex::new(Fleet::new()),
            book: Mutex::new(Book::default()),
            reported: Notify::new(),
            registry,
            published,
            completed,
            tracked,
            interest: Mutex::new(crate::interest::Interest::default()),
            started: Instant::now(),
            interactions,
            hints,
        });
        let mut feeds = Vec::new();
        for topic in [
            eddy_control::EDGE_HEALTH_TOPIC,
            eddy_control::PURGE_APPLIED_TOPIC,
            eddy_control::INTERACTION_TOPIC,
        ] {
            let who = format!("control-{id}.{}", topic.trim_start_matches("eddy."));
            let sub = bound
                .runtime()
                .block_on(bus.subscribe(topic, &who, StartFrom::Latest))
                .map_err(|source| ControlStartError::Follow { topic, source })?;
            feeds.push(Reports {
                consumer: EventConsumer::new(sub, bus.clone()),
                shared: shared.clone(),
                who,
            });
        }
        let hinting = shared.clone();
        let node = bound.serve(app(shared), move |stop| {
            tokio::spawn(publish_hints(hinting, hint_every, stop.clone()));
            tokio::spawn(eddy_control::audit::publish(
                audit_rx,
                bus,
                source,
                stop.clone(),
            ));
            for f in feeds {
                tokio::spawn(eddy_control::follow(f, stop.clone()));
            }
        })?;
        Ok(ControlNode(node))
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// Stop serving and wait.
    pub fn stop(self) {
        self.0.stop();
    }
}

fn app(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/purge", post(purge))
        .route("/purges/{id}", get(report))
        .route("/trending", get(trending))
        .route("/recommendations", get(recommendations))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(shared)
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

#[derive(serde::Deserialize)]
struct WaitQuery {
    wait: Option<u64>,
}

/// Who is asking, and the answer for one who may not: `401` without a known token, `403`
/// without `scope`.
fn allowed(shared: &Shared, headers: &HeaderMap, scope: Scope) -> (Verdict, Option<Response>) {
    let v = shared.tokens.check(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        scope,
    );
    let refused = v
        .refusal(scope, "[[api_tokens]] or control.token")
        .map(|(status, msg)| {
            error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
                &msg,
            )
        });
    (v, refused)
}

async fn purge(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (verdict, refused) = allowed(&shared, &headers, Scope::Purge);
    let resp = match refused {
        Some(r) => r,
        None => purge_allowed(&shared, &q, &headers, &body, &verdict).await,
    };
    let status = resp.status().as_u16();
    shared.audit.record(
        verdict.actor(),
        Some(peer.ip()),
        "purge",
        AuditOutcome::of_status(status),
        &eddy_control::audit::detail(&body, status),
    );
    resp
}

async fn purge_allowed(
    shared: &Shared,
    q: &WaitQuery,
    headers: &HeaderMap,
    body: &[u8],
    verdict: &Verdict,
) -> Response {
    // Purging everything needs a token that was presented and verified.
    let with_token = matches!(verdict, Verdict::Allowed(_));
    let (target, soft) =
        match eddy_control::purge::command(body, |h| headers.get(h)?.to_str().ok(), with_token) {
            Ok(c) => c,
            Err(e @ eddy_control::purge::CommandError::NeedsToken) => {
                return error(StatusCode::FORBIDDEN, &e.to_string());
            }
            Err(eddy_control::purge::CommandError::Invalid(m)) => {
                return error(StatusCode::BAD_REQUEST, &m);
            }
        };
    // The nodes expected to apply it: every cache node up now.
    let expected: Vec<String> = shared
        .fleet
        .lock()
        .snapshot(SystemTime::now())
        .nodes
        .into_iter()
        .filter(|n| n.up)
        .map(|n| n.id)
        .collect();
    let published = Instant::now();
    let id = match eddy_control::purge::request(
        shared.bus.as_ref(),
        &shared.source,
        target.clone(),
        soft,
    )
    .await
    {
        Ok(id) => id,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("publishing the purge failed: {e}; nothing was purged, retry"),
            );
        }
    };
    shared.published.inc();
    {
        let mut book = shared.book.lock();
        while book.order.len() >= MAX_TRACKED
            || book
                .order
                .front()
                .and_then(|id| book.purges.get(id))
                .is_some_and(|t| t.published.elapsed() > TRACK_FOR)
        {
            let Some(old) = book.order.pop_front() else {
                break;
            };
            book.purges.remove(&old);
        }
        book.purges.insert(
            id.clone(),
            Tracked {
                target,
                soft,
                published,
                expected,
                applied: BTreeMap::new(),
            },
        );
        book.order.push_back(id.clone());
        shared
            .tracked
            .set(i64::try_from(book.purges.len()).unwrap_or(i64::MAX));
    }
    let wait = Duration::from_millis(q.wait.unwrap_or(0)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Register interest before checking, so a report between the two is not missed.
        let notified = shared.reported.notified();
        let report = shared.book.lock().purges.get(&id).map(|t| t.report(&id));
        let Some(report) = report else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "the purge was forgotten");
        };
        if report.done || wait.is_zero() || tokio::time::Instant::now() >= deadline {
            let status = if report.done && !wait.is_zero() {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            return (status, axum::Json(report)).into_response();
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

async fn report(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let (_, Some(refused)) = allowed(&shared, &headers, Scope::Read) {
        return refused;
    }
    match shared.book.lock().purges.get(&id) {
        Some(t) => axum::Json(t.report(&id)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "no purge with that id was published here in the last ten minutes",
        ),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    crate::serve::metrics_response(&shared.registry)
}

/// Publish the forecast's hints every `period` until `stop`. A hint the bus refuses is counted
/// and dropped: the item is hinted again while it stays hot.
async fn publish_hints(
    shared: Arc<Shared>,
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(period.max(Duration::from_millis(10)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => {
                tracing::info!("pre-warm hints stopped: the control plane is shutting down");
                return;
            }
            _ = every.tick() => {}
        }
        let now = shared.now();
        let hints = shared.interest.lock().hints(now);
        for h in hints {
            let ev = Event::Prewarm(h);
            let what = match &ev {
                Event::Prewarm(h) => h.reason.as_str(),
                _ => "other",
            };
            let cloud = ev.to_cloud(eddy_control::event_id(), shared.source.as_str());
            let sent = shared
                .bus
                .publish(
                    eddy_control::PREWARM_TOPIC,
                    &ev.key(),
                    bytes::Bytes::from(cloud.encode()),
                )
                .await;
            let what = match sent {
                Ok(_) => what,
                Err(e) => {
                    tracing::warn!(error = %e, "publishing a pre-warm hint failed");
                    "failed"
                }
            };
            shared.hints.get_or_create(&AuditLabel { what }).inc();
        }
    }
}

#[derive(serde::Deserialize)]
struct TrendingQuery {
    region: Option<String>,
    n: Option<usize>,
}

/// Whether a read of the interest models may go on: the token allows `read`, and `n` (10 when
/// absent) is 1 to 100. The count, or the answer that refuses.
fn interest_read(
    shared: &Shared,
    headers: &HeaderMap,
    n: Option<usize>,
) -> Result<usize, Box<Response>> {
    if let (_, Some(refused)) = allowed(shared, headers, Scope::Read) {
        return Err(Box::new(refused));
    }
    match n.unwrap_or(10) {
        n @ 1..=100 => Ok(n),
        n => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            &format!("n must be 1 to 100 (got {n})"),
        ))),
    }
}

async fn trending(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<TrendingQuery>,
) -> Response {
    let n = match interest_read(&shared, &headers, q.n) {
        Ok(n) => n,
        Err(refused) => return *refused,
    };
    let region = match q.region.as_deref().map(eddy_events::region).transpose() {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let now = shared.now();
    let items = shared.interest.lock().trending(region.as_deref(), n, now);
    axum::Json(serde_json::json!({ "region": region, "items": items })).into_response()
}

#[derive(serde::Deserialize)]
struct ViewerQuery {
    viewer: Option<String>,
    n: Option<usize>,
}

async fn recommendations(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<ViewerQuery>,
) -> Response {
    let n = match interest_read(&shared, &headers, q.n) {
        Ok(n) => n,
        Err(refused) => return *refused,
    };
    let viewer = match q.viewer {
        Some(v)
            if !v.is_empty()
                && v.len() <= eddy_events::MAX_VIEWER_BYTES
                && !v.chars().any(char::is_control) =>
        {
            v
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "viewer must be given, 1-{} bytes without control characters",
                    eddy_events::MAX_VIEWER_BYTES
                ),
            );
        }
    };
    let (items, basis) = shared.interest.lock().recommendations(&viewer, n);
    axum::Json(serde_json::json!({ "viewer": viewer, "items": items, "basis": basis }))
        .into_response()
}
