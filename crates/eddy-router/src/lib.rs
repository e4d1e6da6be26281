//! # eddy-router: send each viewer to a healthy, lightly loaded edge
//!
//! `eddy router` follows the edges' `edge.health` heartbeats on the bus and answers viewers and
//! players. It never proxies content: it only says where to go.
//!
//! Layout:
//! - [`table`] — the fleet as heard from heartbeats, and the choice of an edge (pure, unit-tested).
//! - [`RouterNode::start`] — binds the listener (with `eddy_admin::serve`, as every operator
//!   role does), follows the heartbeats (consumer `router-<id>`,
//!   from the latest event) and serves HTTP on its own thread until [`RouterNode::stop`]:
//!   - any `GET`/`HEAD` outside `/_eddy/`: `302 Found` to the chosen edge, same path and query,
//!     `Cache-Control: no-store`. A client retrying after an edge failed sends
//!     `Eddy-Avoid: <host:port or edge id>` (comma-separated) and is sent elsewhere.
//!   - `GET /_eddy/route?path=/x&avoid=a,b`: the same choice as JSON (`edge`, `url`,
//!     `location`, `alternates`) for players and DNS front-ends.
//!   - `GET /_eddy/edges`: every edge the router knows, up or down, with its load.
//!   - `GET /_eddy/healthz` (503 when no edge is up) and `GET /_eddy/metrics` (Prometheus).
//!
//! With no edge up, requests get `503` with `Retry-After: 1`, never a redirect to a dead edge.
//!
//! Must not touch: caches, pingora, edges' internals; the bus is only read.

pub mod table;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use eddy_bus::consumer::{EventConsumer, Received};
use eddy_bus::{Bus, StartFrom};
use eddy_control::{ControlError, EDGE_HEALTH_TOPIC, Follower};
use eddy_events::Event;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use table::{EdgeTable, Transition};
use tokio::sync::watch;

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// Binding or starting the server failed.
    #[error(transparent)]
    Serve(#[from] eddy_admin::serve::ServeError),
    /// Subscribing to heartbeats failed.
    #[error("router: following edge heartbeats on the bus failed: {0}; check the bus")]
    Follow(#[from] ControlError),
}

/// What the router needs to run.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// Router id (consumer `router-<id>`).
    pub id: String,
    /// Listen address.
    pub listen: SocketAddr,
    /// Fixed heartbeat timeout, or three announced intervals.
    pub edge_timeout: Option<Duration>,
    /// Route by path first.
    pub affinity: bool,
    /// Load ratio over the mean that breaks affinity.
    pub load_slack: f64,
}

impl From<&eddy_config::RouterConfig> for RouterSettings {
    fn from(c: &eddy_config::RouterConfig) -> Self {
        RouterSettings {
            id: c.id.clone(),
            listen: c.listen,
            edge_timeout: c.edge_timeout,
            affinity: c.affinity,
            load_slack: c.load_slack,
        }
    }
}

/// Label: how a request was answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: &'static str,
}

/// The router's metrics, in its own registry.
struct Metrics {
    registry: Registry,
    routed: Family<ModeLabel, Counter>,
    unavailable: Counter,
    overflow: Counter,
    heartbeats: Counter,
    ignored: Counter,
    edges_up: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("eddy_router");
        let routed = Family::<ModeLabel, Counter>::default();
        registry.register(
            "requests",
            "Requests routed, by mode (redirect, api)",
            routed.clone(),
        );
        let unavailable = Counter::default();
        registry.register(
            "unavailable",
            "Requests answered 503 because no edge was up",
            unavailable.clone(),
        );
        let overflow = Counter::default();
        registry.register(
            "affinity_overflow",
            "Requests sent away from their path's edge because it was too busy",
            overflow.clone(),
        );
        let heartbeats = Counter::default();
        registry.register(
            "heartbeats",
            "edge.health heartbeats taken",
            heartbeats.clone(),
        );
        let ignored = Counter::default();
        registry.register(
            "heartbeats_ignored",
            "Heartbeats ignored: no URL, or the edge table was full",
            ignored.clone(),
        );
        let edges_up = Gauge::default();
        registry.register(
            "edges_up",
            "Edges up for routing (role edge)",
            edges_up.clone(),
        );
        Metrics {
            registry,
            routed,
            unavailable,
            overflow,
            heartbeats,
            ignored,
            edges_up,
        }
    }
}

struct Shared {
    table: Mutex<EdgeTable>,
    metrics: Metrics,
}

/// How long ago an event was sent, from its `time` (zero when missing or in the future).
fn age_of(r: &Received) -> Duration {
    r.cloud
        .sent_at()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or(Duration::ZERO)
}

struct Heartbeats {
    consumer: EventConsumer,
    shared: Arc<Shared>,
    who: String,
}

#[async_trait::async_trait]
impl Follower for Heartbeats {
    const WHAT: &'static str = "heartbeat";
    fn consumer(&mut self) -> &mut EventConsumer {
        &mut self.consumer
    }
    fn who(&self) -> &str {
        &self.who
    }
    async fn apply(&mut self, r: Received) -> Result<(), ControlError> {
        if let Event::EdgeHealth(h) = &r.event {
            let now = Instant::now();
            let t = {
                let mut table = self.shared.table.lock();
                let t = table.observe(h, age_of(&r), now);
                self.shared
                    .metrics
                    .edges_up
                    .set(i64::try_from(table.up_count(now)).unwrap_or(i64::MAX));
                t
            };
            self.shared.metrics.heartbeats.inc();
            match t {
                Ok(Some(t)) => log_transition(&t),
                Ok(None) => {}
                Err(why) => {
                    self.shared.metrics.ignored.inc();
                    tracing::debug!(edge = %h.edge, ?why, "heartbeat ignored");
                }
            }
        }
        self.consumer.commit(&r).await?;
        Ok(())
    }
}

fn log_transition(t: &Transition) {
    match t {
        Transition::Up(id) => tracing::info!(edge = %id, "edge up for routing"),
        Transition::Down(id, why) => tracing::warn!(edge = %id, why, "edge down for routing"),
    }
}

/// A running router.
pub struct RouterNode(eddy_admin::serve::Node);

impl RouterNode {
    /// Bind, subscribe to heartbeats and serve on a thread of its own.
    pub fn start(settings: RouterSettings, bus: Arc<dyn Bus>) -> Result<RouterNode, RouterError> {
        let bound = eddy_admin::serve::bind("router", settings.listen, 2)?;
        let shared = Arc::new(Shared {
            table: Mutex::new(EdgeTable::new(
                settings.edge_timeout,
                settings.affinity,
                settings.load_slack,
            )),
            metrics: Metrics::new(),
        });
        let who = format!("router-{}", settings.id);
        let sub = bound
            .runtime()
            .block_on(bus.subscribe(EDGE_HEALTH_TOPIC, &who, StartFrom::Latest))
            .map_err(|e| RouterError::Follow(e.into()))?;
        let follower = Heartbeats {
            consumer: EventConsumer::new(sub, bus),
            shared: shared.clone(),
            who,
        };
        let node = bound.serve(app(shared.clone()), move |stop| {
            tokio::spawn(eddy_control::follow(follower, stop.clone()));
            tokio::spawn(sweep(shared, stop));
        })?;
        Ok(RouterNode(node))
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

/// Every 50 ms, notice edges whose heartbeats stopped (for logs and the `edges_up` gauge; the
/// choice itself checks the clock on every request).
async fn sweep(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|v| *v) => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let (changes, up) = {
            let mut t = shared.table.lock();
            (t.sweep(now), t.up_count(now))
        };
        shared
            .metrics
            .edges_up
            .set(i64::try_from(up).unwrap_or(i64::MAX));
        for c in &changes {
            log_transition(c);
        }
    }
}

fn app(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/_eddy/route", get(route_api))
        .route("/_eddy/edges", get(edges))
        .route("/_eddy/healthz", get(healthz))
        .route("/_eddy/metrics", get(metrics))
        .fallback(redirect)
        .with_state(shared)
}

fn split_avoid(v: &str) -> Vec<&str> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn unavailable(shared: &Shared) -> Response {
    shared.metrics.unavailable.inc();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1"), (header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({
            "error": "no healthy edge is available; retry in a second, or check `eddy status` and the edges' heartbeats",
        })),
    )
        .into_response()
}

async fn redirect(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "the router only redirects GET and HEAD; send other methods to an edge\n",
        )
            .into_response();
    }
    let avoid_header = req
        .headers()
        .get_all("eddy-avoid")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let avoid = split_avoid(&avoid_header);
    let path = req.uri().path();
    let choice = shared
        .table
        .lock()
        .choose(Some(path), &avoid, Instant::now());
    let Some(c) = choice else {
        return unavailable(&shared);
    };
    shared
        .metrics
        .routed
        .get_or_create(&ModeLabel { mode: "redirect" })
        .inc();
    if !c.affinity {
        shared.metrics.overflow.inc();
    }
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = format!("{}{}", c.url, target);
    let mut h = HeaderMap::new();
    match HeaderValue::from_str(&location) {
        Ok(v) => h.insert(header::LOCATION, v),
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "the request target cannot be redirected\n",
            )
                .into_response();
        }
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&c.edge) {
        h.insert("eddy-edge", v);
    }
    (StatusCode::FOUND, h).into_response()
}

#[derive(serde::Deserialize)]
struct RouteQuery {
    path: Option<String>,
    avoid: Option<String>,
}

async fn route_api(State(shared): State<Arc<Shared>>, Query(q): Query<RouteQuery>) -> Response {
    let avoid = split_avoid(q.avoid.as_deref().unwrap_or(""));
    let path = q.path.as_deref();
    if let Some(p) = path
        && !p.starts_with('/')
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": format!("path {p:?} must start with '/'")})),
        )
            .into_response();
    }
    let choice = shared.table.lock().choose(path, &avoid, Instant::now());
    let Some(c) = choice else {
        return unavailable(&shared);
    };
    shared
        .metrics
        .routed
        .get_or_create(&ModeLabel { mode: "api" })
        .inc();
    if !c.affinity {
        shared.metrics.overflow.inc();
    }
    let location = format!("{}{}", c.url, path.unwrap_or("/"));
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({
            "edge": c.edge,
            "url": c.url,
            "location": location,
            "load": c.load,
            "alternates": c.alternates,
        })),
    )
        .into_response()
}

async fn edges(State(shared): State<Arc<Shared>>) -> Response {
    let v = shared.table.lock().view(Instant::now());
    axum::Json(v).into_response()
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let up = shared.table.lock().up_count(Instant::now());
    if up > 0 {
        format!("ok: {up} edge(s) up\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no edge is up\n").into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    eddy_admin::serve::metrics_response(&shared.metrics.registry)
}
