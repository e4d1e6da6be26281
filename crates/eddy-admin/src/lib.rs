//! # eddy-admin: the operator's view of a running fleet
//!
//! `eddy admin` follows the fleet's events on the bus and shows them live. It never asks a node
//! anything: what it shows is what the nodes published, so it works the same for three edges on
//! one machine and for three hundred across regions.
//!
//! Layout:
//! - [`control`] — `eddy control`: purge commands in, and when each is done on every live edge.
//! - [`serve`] — what every operator-facing role shares: bind, own thread and runtime, shutdown,
//!   `/metrics`.
//! - [`fleet`] — the fleet folded from events (rates, hit ratio, health, spikes, purge latency);
//!   pure and bounded.
//! - [`qoe`] — live QoE per title and per edge, folded from the edges' CMCD samples.
//! - [`interest`] — trending, recommendations and pre-warm hints, folded from viewers'
//!   interactions (served by [`control`]).
//! - [`Dashboard::start`] — subscribes (consumers `dashboard-<id>.<topic>`, from the latest event)
//!   to `edge.health`, `origin.health`, `traffic.spike`, `purge.requested`, `purge.applied` and
//!   `qoe.samples`,
//!   and serves on its own thread until [`Dashboard::stop`]:
//!   - `GET /`: the dashboard page (no build step, no external assets);
//!   - `GET /events`: server-sent events, one `snapshot` every 500 ms to every open page;
//!   - `GET /api/status`: the same snapshot as JSON (what `eddy status` prints);
//!   - `GET /metrics` (Prometheus) and `GET /healthz`.
//!
//! Every buffer is bounded: the fleet's collections (see [`fleet`]), and one snapshot slot that
//! every page reads (a slow page skips snapshots, it never queues them).
//!
//! Must not touch: caches, pingora, edges' internals; the bus is only read.

pub mod control;
pub mod fleet;
pub mod interest;
pub mod qoe;
pub mod serve;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use eddy_bus::consumer::{EventConsumer, Received};
use eddy_bus::{Bus, StartFrom};
use eddy_control::{ControlError, Follower};
use fleet::Fleet;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// The page, served as is.
const PAGE: &str = include_str!("dashboard.html");

/// The topics the dashboard follows.
pub const TOPICS: [&str; 8] = [
    eddy_control::QOE_TOPIC,
    eddy_control::QOE_GUARD_TOPIC,
    eddy_control::EDGE_HEALTH_TOPIC,
    eddy_control::ORIGIN_HEALTH_TOPIC,
    eddy_control::TRAFFIC_SPIKE_TOPIC,
    eddy_control::PURGE_REQUESTED_TOPIC,
    eddy_control::PURGE_APPLIED_TOPIC,
    eddy_control::AUDIT_TOPIC,
];

/// How often pages get a snapshot.
pub const PUSH_EVERY: Duration = Duration::from_millis(500);

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Binding or starting the server failed.
    #[error(transparent)]
    Serve(#[from] serve::ServeError),
    /// Subscribing failed.
    #[error("dashboard: following {topic} on the bus failed: {source}; check the bus")]
    Follow {
        /// The topic.
        topic: &'static str,
        /// The error.
        source: eddy_bus::BusError,
    },
}

struct Shared {
    fleet: Mutex<Fleet>,
    /// Fleet requests/s at each push, newest last, bounded by [`fleet::MAX_HISTORY`].
    history: Mutex<std::collections::VecDeque<f64>>,
    snapshot: watch::Sender<Arc<String>>,
    registry: Registry,
    events: Counter,
    pages: Gauge,
    qoe: qoe::QoeMetrics,
    /// Turns true at shutdown: open event streams end, so the server can stop.
    stop: watch::Receiver<bool>,
}

struct Feed {
    consumer: EventConsumer,
    shared: Arc<Shared>,
    who: String,
}

#[async_trait::async_trait]
impl Follower for Feed {
    const WHAT: &'static str = "dashboard";
    fn consumer(&mut self) -> &mut EventConsumer {
        &mut self.consumer
    }
    fn who(&self) -> &str {
        &self.who
    }
    async fn apply(&mut self, r: Received) -> Result<(), ControlError> {
        let sent = r.cloud.sent_at().unwrap_or_else(SystemTime::now);
        self.shared.fleet.lock().apply(&r.cloud.id, &r.event, sent);
        self.shared.events.inc();
        self.consumer.commit(&r).await?;
        Ok(())
    }
}

/// A running dashboard.
pub struct Dashboard(serve::Node);

impl Dashboard {
    /// Bind `listen`, subscribe as `dashboard-<id>` and serve on a thread of its own.
    pub fn start(id: &str, listen: SocketAddr, bus: Arc<dyn Bus>) -> Result<Dashboard, AdminError> {
        let bound = serve::bind("dashboard", listen, 1)?;
        let mut registry = Registry::with_prefix("eddy_dashboard");
        let events = Counter::default();
        registry.register("events", "Events folded into the view", events.clone());
        let pages = Gauge::default();
        registry.register("pages", "Open dashboard pages (SSE streams)", pages.clone());
        let qoe = qoe::QoeMetrics::register(&mut registry);
        let (snapshot, _) = watch::channel(Arc::new(String::from("{}")));
        let shared = Arc::new(Shared {
            fleet: Mutex::new(Fleet::new()),
            history: Mutex::new(std::collections::VecDeque::new()),
            snapshot,
            registry,
            events,
            pages,
            qoe,
            stop: bound.stop_signal(),
        });
        let mut feeds = Vec::new();
        for topic in TOPICS {
            let who = format!("dashboard-{id}.{}", topic.trim_start_matches("eddy."));
            let sub = bound
                .runtime()
                .block_on(bus.subscribe(topic, &who, StartFrom::Latest))
                .map_err(|source| AdminError::Follow { topic, source })?;
            feeds.push(Feed {
                consumer: EventConsumer::new(sub, bus.clone()),
                shared: shared.clone(),
                who,
            });
        }
        let node = bound.serve(app(shared.clone()), move |stop| {
            for f in feeds {
                tokio::spawn(eddy_control::follow(f, stop.clone()));
            }
            tokio::spawn(publish_snapshots(shared, stop));
        })?;
        Ok(Dashboard(node))
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

/// The snapshot now, with the rate history; `record` adds this moment's rate to the history.
fn snapshot_json(shared: &Shared, record: bool) -> String {
    let mut s = shared.fleet.lock().snapshot(SystemTime::now());
    {
        let mut h = shared.history.lock();
        if record {
            h.push_back(s.totals.rps);
            while h.len() > fleet::MAX_HISTORY {
                h.pop_front();
            }
        }
        s.history = h.iter().copied().collect();
    }
    if record {
        shared.qoe.set(&s.qoe);
    }
    serde_json::to_string(&s).unwrap_or_else(|_| "{}".into())
}

/// Every [`PUSH_EVERY`], put a fresh snapshot in the one slot every page reads.
async fn publish_snapshots(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(PUSH_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|v| *v) => return,
            _ = tick.tick() => {}
        }
        let json = snapshot_json(&shared, true);
        shared.snapshot.send_replace(Arc::new(json));
    }
}

fn app(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/events", get(events))
        .route("/api/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(shared)
}

/// Decrements the open-pages gauge when a page's stream ends.
struct PageGuard(Gauge);

impl Drop for PageGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn events(State(shared): State<Arc<Shared>>) -> Response {
    shared.pages.inc();
    let guard = PageGuard(shared.pages.clone());
    let mut rx = shared.snapshot.subscribe();
    rx.mark_changed();
    let stop = shared.stop.clone();
    let stream =
        futures_util::stream::unfold((rx, stop, guard), |(mut rx, mut stop, guard)| async move {
            tokio::select! {
                _ = stop.wait_for(|v| *v) => return None,
                r = rx.changed() => r.ok()?,
            }
            let json = rx.borrow_and_update().clone();
            let ev = SseEvent::default().event("snapshot").data(json.as_str());
            Some((Ok::<_, Infallible>(ev), (rx, stop, guard)))
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let json = snapshot_json(&shared, false);
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        json,
    )
        .into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    serve::metrics_response(&shared.registry)
}
