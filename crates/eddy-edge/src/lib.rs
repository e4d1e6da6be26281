//! # eddy-edge: the Eddy edge node
//!
//! A caching reverse proxy on pingora (`=0.9.1`), the only crate that depends on it. The cache
//! core lives in `eddy-cache`; this crate adapts it and runs the servers.
//!
//! Layout:
//! - [`storage`]: pingora's `Storage` seam over [`eddy_cache::Cache`], with streaming in-flight
//!   fills so coalesced waiters receive bytes as the origin sends them.
//! - [`proxy`]: the `ProxyHttp` phases: purge, cache key, RFC 9111 decisions, Vary, origin
//!   failover, `X-Cache` / `Cache-Status`, invalidation after unsafe methods.
//! - [`h2c`]: tells HTTP/1.1 from h2c on the one viewer port by the first bytes, never waiting.
//! - [`request`]: what the edge accepts of a request (strict head, `Host`, target forms, framing),
//!   judged once for both paths, with the canonical URL from `eddy-url`.
//! - [`conn`]: caps on viewer connections, in total and per client address.
//! - [`fast`]: the hit fast path: fresh memory hits of plain HTTP/1.1 GET/HEAD answered before
//!   pingora's session machinery; everything else goes the full way through [`proxy`].
//! - [`admin`]: the admin API (`/purge`, `/metrics`, `/healthz`, `/stats`).
//! - [`metrics`]: Prometheus metrics in an injected registry.
//!
//! [`Edge::start`] builds everything from a validated [`eddy_config::Config`], runs pingora on its
//! own thread with a shutdown watch we control (never `run_forever`), and the admin API on another;
//! [`Edge::stop`] shuts both down and waits.

pub mod access;
pub mod admin;
pub mod batch;
mod classes;
pub mod client;
pub mod cmsd;
pub mod conn;
pub mod control;
pub mod date;
pub mod fast;
pub mod fields;
pub mod guard;
pub mod h2c;
pub mod health;
pub mod llhls;
pub mod metrics;
pub mod prefetch;
pub mod proxy;
pub mod qoe;
pub mod reports;
pub mod request;
pub mod slice;
pub mod spike;
pub mod storage;
pub mod tls;
pub mod upstream;

use async_trait::async_trait;

/// Raise the process's soft open-file limit to its hard limit, as nginx's
/// `worker_rlimit_nofile` does: an edge holds a descriptor per viewer and origin connection and
/// per large cached body (sealed for `sendfile`), and the usual soft limit of 1024 is far below
/// what a node serves. The cache sizes its sealing budget from the limit afterwards.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, lim) {
            tracing::warn!(error = %e, "could not raise the open-file limit");
        }
    }
}
use eddy_cache::disk::DiskOptions;
use eddy_cache::{Cache, CacheOptions};
use eddy_config::Config;
use pingora_cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use proxy::{EdgeProxy, EdgeState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use storage::EddyStorage;
use tokio::sync::watch;

/// Why an edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The cache could not be opened.
    #[error("cache: {0}")]
    Cache(#[from] eddy_cache::CacheError),
    /// An address is taken or not bindable.
    #[error(
        "cannot listen on {addr} ({what}): {source}; pick a free address with --listen / --admin"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which listener.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The HTTPS port's certificates or settings.
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    /// A thread or runtime could not be created.
    #[error("could not start {0}: {1}")]
    Runtime(&'static str, std::io::Error),
    /// Catching up on purges published while the edge was down failed; it does not serve
    /// possibly purged content.
    #[error(
        "catching up on purges from the event bus failed: {0}; the edge did not start so it never serves purged content"
    )]
    CatchUp(eddy_control::ControlError),
    /// Subscribing to another event stream the edge follows failed.
    #[error("following {0} on the event bus failed: {1}; check the bus")]
    Follow(&'static str, eddy_control::ControlError),
    /// Another running node announces the same id.
    #[error(
        "edge.id {id:?} is already used by a running node at {other} (heard on the bus just now); give every node its own id: purge catch-up and routing key on it"
    )]
    DuplicateId {
        /// The id.
        id: String,
        /// Where the other node serves.
        other: String,
    },
    /// A configured shield is not announced by any node while other nodes are.
    #[error(
        "edge.shields lists {shield}, but no node announces itself there while {others} other node(s) do; fix the address, or start the shield first"
    )]
    UnknownShield {
        /// The configured shield URL.
        shield: String,
        /// Other nodes heard.
        others: usize,
    },
    /// A configured shield announces itself as an edge.
    #[error(
        "edge.shields lists {shield}, but the node there is {id}, an edge; list shields only (role = \"shield\", `eddy shield`)"
    )]
    NotAShield {
        /// The configured shield URL.
        shield: String,
        /// The node that answers there.
        id: String,
    },
}

struct WatchSignal(watch::Receiver<bool>);

#[async_trait]
impl ShutdownSignalWatch for WatchSignal {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|v| *v).await;
        ShutdownSignal::FastShutdown
    }
}

/// A running edge.
pub struct Edge {
    state: Arc<EdgeState>,
    shutdown: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    admin_addr: SocketAddr,
}

impl Edge {
    /// Open the cache, bind the listeners and start serving, without an event bus.
    pub fn start(config: Config) -> Result<Edge, EdgeError> {
        Edge::start_with_bus(config, None)
    }

    /// Open the cache, apply every purge published on `bus` since this edge last ran, then bind
    /// the listeners, start serving and follow new purges.
    pub fn start_with_bus(
        config: Config,
        bus: Option<Arc<dyn eddy_bus::Bus>>,
    ) -> Result<Edge, EdgeError> {
        let c = &config.cache;
        raise_open_file_limit();
        let cache = Cache::open_with(
            &CacheOptions {
                memory_bytes: c.memory_bytes,
                memory_max_object: c.memory_max_object,
                disk: c.disk.as_ref().map(|d| DiskOptions {
                    dir: d.dir.clone(),
                    capacity: d.bytes,
                    fsync: d.fsync,
                }),
                policy: c.policy.clone(),
                admission: c.admission.clone(),
            },
            &make_policy,
        )?;
        let has_disk = c.disk.is_some();
        // pingora wants &'static storage and lock: built once per edge, leaked once.
        let storage: &'static EddyStorage = Box::leak(Box::new(EddyStorage::new(
            Arc::new(cache),
            has_disk,
            config.streaming.clone(),
        )));
        let lock: &'static CacheKeyLockImpl = Box::leak(Box::new(CacheLock::new(
            config.edge.coalesce_timeout + Duration::from_secs(1),
        )));
        let limits = eddy_cache::rfc9111::Limits {
            max_heuristic: c.max_heuristic_ttl,
            stale_on_error: c.stale_on_error,
            ..Default::default()
        };
        let listen = config.edge.listen;
        let admin = config.edge.admin;
        // Bind the admin listener now and check the proxy address, so a clash is a clear error.
        let admin_listener =
            std::net::TcpListener::bind(admin).map_err(|source| EdgeError::Bind {
                addr: admin,
                what: "admin",
                source,
            })?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|e| EdgeError::Runtime("admin", e))?;
        drop(
            std::net::TcpListener::bind(listen).map_err(|source| EdgeError::Bind {
                addr: listen,
                what: "proxy",
                source,
            })?,
        );
        let tls = match &config.tls {
            Some(t) => {
                drop(
                    std::net::TcpListener::bind(t.listen).map_err(|source| EdgeError::Bind {
                        addr: t.listen,
                        what: "https",
                        source,
                    })?,
                );
                Some(Arc::new(tls::Tls::new(t)?))
            }
            None => None,
        };
        let (spikes, spike_rx) = if config.spike.enabled {
            let (w, rx) = spike::SpikeWatch::new(&config.spike);
            (Some(w), Some(rx))
        } else {
            (None, None)
        };
        let client_limiter = config
            .edge
            .client_limit
            .and_then(|(rate, burst)| proxy::client_limiter(rate, burst));
        let origin_limiter = config
            .edge
            .origin_limit
            .and_then(|(rate, burst)| proxy::origin_limiter(rate, burst));
        let (health, health_rx) =
            health::OriginHealth::new(&config.edge.origins, config.edge.origin_fail_threshold);
        let (shield_health, shield_rx) = health::OriginHealth::of(
            "shield",
            &config.edge.shields,
            config.edge.origin_fail_threshold,
        );
        let config_conns = (
            config.edge.max_connections,
            config.edge.max_client_connections,
        );
        if config.edge.insecure_admin {
            tracing::warn!(admin = %admin_addr, "the admin API listens on a non-loopback address without a token (--insecure-admin): anyone who reaches it can purge");
        }
        let metrics = Arc::new(metrics::Metrics::new());
        // Player telemetry is read when there is a bus to publish QoE on, or prefetch to drive.
        let (qoe, qoe_rx) =
            if bus.is_some() || config.streaming.prefetch.is_some() || config.streaming.guard {
                let (q, rx) = qoe::Qoe::new(metrics.clone(), config.streaming.telemetry_rate);
                (Some(q), Some(rx))
            } else {
                (None, None)
            };
        // Read before pingora's connector does: it would panic on a CA file that does not read.
        let upstream_roots = upstream::roots(&config.edge)?;
        let upstreams = upstream::Upstreams::new(&config.edge);
        let cmsd = cmsd::Hop::new(&config.edge.id);
        let audit_metrics = metrics.clone();
        let (auditor, audit_rx) = eddy_control::audit::Auditor::new(
            &config.edge.id,
            Arc::new(move |what| audit_metrics.audit(what)),
        );
        let state = Arc::new(EdgeState {
            cmsd,
            recent_purges: Default::default(),
            prefetching: Default::default(),
            caps: guard::Caps::new(guard::Networks {
                v4: config.streaming.guard_network.0,
                v6: config.streaming.guard_network.1,
            }),
            config,
            storage,
            lock,
            metrics,
            limits,
            bus: bus.clone(),
            spikes,
            client_limiter,
            origin_limiter,
            health,
            shield_health,
            streams: Arc::new(llhls::Streams::default()),
            qoe,
            conns: conn::ConnLimits::new(config_conns.0, config_conns.1),
            tls,
            audit: auditor,
            upstreams,
        });
        let (shutdown, rx) = watch::channel(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EdgeError::Runtime("admin runtime", e))?;
        // Catch up before the proxy listens: no purged object is served after a restart. Then
        // pre-warm on other edges' spikes (from now on: old spikes are not worth acting on).
        let (follower, prewarm, peers) = match &bus {
            Some(bus) => {
                let handle: Arc<dyn eddy_control::EdgeControl> =
                    Arc::new(control::EdgeHandle(state.clone()));
                let mut f = rt
                    .block_on(eddy_control::purge::PurgeFollower::start(
                        bus.clone(),
                        handle.clone(),
                    ))
                    .map_err(EdgeError::CatchUp)?;
                state.metrics.watch_purge_consumer(f.stats());
                rt.block_on(f.catch_up()).map_err(EdgeError::CatchUp)?;
                let p = rt
                    .block_on(eddy_control::prewarm::PrewarmFollower::start(
                        bus.clone(),
                        handle.clone(),
                    ))
                    .map_err(|e| EdgeError::Follow("traffic spikes", e))?;
                // And on the forecast's hints, within the byte budget (none: no hints).
                let budget = state.config.edge.prewarm_budget;
                let hints = if budget > 0 {
                    let metrics = state.metrics.clone();
                    let count: eddy_control::prewarm::HintCounter = Arc::new(move |what, bytes| {
                        metrics.prewarm_counted(what).inc();
                        metrics.prewarm_bytes.inc_by(bytes);
                    });
                    Some(
                        rt.block_on(eddy_control::prewarm::HintFollower::start(
                            bus.clone(),
                            handle,
                            budget,
                            count,
                        ))
                        .map_err(|e| EdgeError::Follow("pre-warm hints", e))?,
                    )
                } else {
                    None
                };
                let peers = rt.block_on(check_peers(bus, &state.config.edge, admin_addr))?;
                (Some(f), Some((p, hints)), Some(peers))
            }
            None => (None, None, None),
        };

        let conf = ServerConf {
            threads: state.config.edge.threads,
            // Attempts per request: one per shield and origin for connect failover, plus the one
            // retry error_while_proxy allows (pingora's default is 16).
            max_retries: state.config.edge.shields.len() + state.config.edge.origins.len() + 1,
            grace_period_seconds: Some(0),
            graceful_shutdown_timeout_seconds: Some(1),
            // https:// upstreams: this file's roots, else the system's (upstream::roots read
            // either one already).
            ca_file: state
                .config
                .edge
                .upstream_ca_file
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            ..Default::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        // HTTP/1.1 and h2c on one port, judged by the first bytes without waiting (see h2c).
        let h1 = pingora_proxy::http_proxy(&server.configuration, EdgeProxy::new(state.clone()));
        let mut h2 =
            pingora_proxy::http_proxy(&server.configuration, EdgeProxy::new(state.clone()));
        let mut opts = HttpServerOptions::default();
        opts.h2c = true;
        opts.h2_idle_timeout = Some(state.config.edge.keepalive_timeout);
        h2.server_options = Some(opts);
        let mut svc = pingora_core::services::listening::Service::new(
            "eddy-edge".to_string(),
            h2c::H2cGate {
                h1: Arc::new(h1),
                h2: Arc::new(h2),
                fast: state
                    .config
                    .edge
                    .fast_hits
                    .then(|| Arc::new(fast::FastHits::new(state.clone()))),
                state: state.clone(),
            },
        );
        // No L4 read buffer: the gate reads each connection into its own buffer (and pingora into
        // its own), so pingora's default 64 KiB BufReader per connection would only add a copy
        // and 64 KiB of memory to every open connection, idle or trickling.
        let l4 = pingora_core::protocols::l4::stream::L4BufferSettings::default()
            .read(0)
            .write(state.config.edge.write_buffer_bytes);
        svc.add_listener(
            pingora_core::listeners::ListenerConfig::tcp(listen.to_string()).l4_buffer(l4),
        );
        // The HTTPS port: plain TCP to pingora, TLS in the gate (see tls).
        if let Some(t) = &state.config.tls {
            svc.add_listener(
                pingora_core::listeners::ListenerConfig::tcp(t.listen.to_string()).l4_buffer(l4),
            );
        }
        server.add_service(svc);
        let proxy_rx = rx.clone();
        let proxy_thread = std::thread::Builder::new()
            .name("eddy-edge".into())
            .spawn(move || {
                server.run(RunArgs {
                    shutdown_signal: Box::new(WatchSignal(proxy_rx)),
                });
            })
            .map_err(|e| EdgeError::Runtime("proxy thread", e))?;

        let admin_state = state.clone();
        let mut admin_rx = rx;
        admin_listener
            .set_nonblocking(true)
            .map_err(|e| EdgeError::Runtime("admin", e))?;
        let follower_rx = admin_rx.clone();
        let limiter_state = state.clone();
        let health_state = state.clone();
        let admin_thread = std::thread::Builder::new()
            .name("eddy-admin".into())
            .spawn(move || {
                rt.block_on(async move {
                    if let Some(f) = follower {
                        tokio::spawn(f.run(follower_rx.clone()));
                    }
                    if let Some((spikes, hints)) = prewarm {
                        tokio::spawn(spikes.run(follower_rx.clone()));
                        if let Some(h) = hints {
                            tokio::spawn(h.run(follower_rx.clone()));
                        }
                    }
                    for o in &health_state.config.edge.origins {
                        health_state.metrics.set_origin_up(&o.url, true);
                    }
                    tokio::spawn(publish_each(
                        audit_rx,
                        health_state.clone(),
                        eddy_control::AUDIT_TOPIC,
                        |_| {},
                        |a, _| Some(eddy_events::Event::Audit(a)),
                        follower_rx.clone(),
                    ));
                    let metrics = health_state.metrics.clone();
                    tokio::spawn(publish_each(
                        health_rx,
                        health_state.clone(),
                        eddy_control::ORIGIN_HEALTH_TOPIC,
                        move |c: &health::Change| metrics.set_origin_up(&c.origin, c.healthy),
                        |c, edge| {
                            Some(eddy_events::Event::OriginHealth(
                                eddy_events::OriginHealth {
                                    origin: c.origin,
                                    healthy: c.healthy,
                                    edge: Some(edge.to_string()),
                                    detail: Some(c.detail),
                                },
                            ))
                        },
                        follower_rx.clone(),
                    ));
                    // Shields announce their own health in heartbeats: changes here only
                    // steer this edge and show on its /metrics.
                    for s in &health_state.config.edge.shields {
                        health_state.metrics.set_shield_up(&s.url, true);
                    }
                    let metrics = health_state.metrics.clone();
                    tokio::spawn(publish_each(
                        shield_rx,
                        health_state.clone(),
                        eddy_control::ORIGIN_HEALTH_TOPIC,
                        move |c: &health::Change| metrics.set_shield_up(&c.origin, c.healthy),
                        |_, _| None,
                        follower_rx.clone(),
                    ));
                    if let Some(peers) = peers {
                        tokio::spawn(watch_shields(
                            peers,
                            health_state.clone(),
                            follower_rx.clone(),
                        ));
                    }
                    if let Some(every) = health_state.config.edge.origin_probe_interval {
                        for i in 0..health_state.config.edge.origins.len() {
                            tokio::spawn(probe_origin(
                                health_state.clone(),
                                i,
                                every,
                                upstream_roots.clone(),
                                follower_rx.clone(),
                            ));
                        }
                    }
                    if let Some(rx) = qoe_rx {
                        let prefetch =
                            health_state.config.streaming.prefetch.map(|budget| {
                                prefetch::Prefetch::new(health_state.clone(), budget)
                            });
                        tokio::spawn(qoe::run(
                            rx,
                            health_state.clone(),
                            prefetch,
                            health_state
                                .config
                                .streaming
                                .guard
                                .then(|| guard::Steering::new(health_state.clone())),
                            follower_rx.clone(),
                        ));
                    }
                    if let Some(bus) = health_state.bus.clone() {
                        tokio::spawn(llhls::follow(
                            bus,
                            health_state.streams.clone(),
                            health_state.metrics.clone(),
                            health_state.config.edge.id.clone(),
                            follower_rx.clone(),
                        ));
                    }
                    tokio::spawn(prune_client_limiter(limiter_state, follower_rx.clone()));
                    let beat = tokio::spawn(heartbeat(
                        health_state.clone(),
                        admin_addr,
                        follower_rx.clone(),
                    ));
                    if let Some(rx) = spike_rx {
                        tokio::spawn(publish_each(
                            rx,
                            health_state.clone(),
                            eddy_control::TRAFFIC_SPIKE_TOPIC,
                            |_| {},
                            |s: eddy_control::spike::Spike, edge| {
                                Some(eddy_events::Event::TrafficSpike(
                                    eddy_events::TrafficSpike {
                                        edge: edge.to_string(),
                                        key: s.key,
                                        rate: s.rate,
                                        baseline: s.baseline,
                                    },
                                ))
                            },
                            follower_rx,
                        ));
                    }
                    let Ok(l) = tokio::net::TcpListener::from_std(admin_listener) else {
                        tracing::error!("admin listener could not be registered");
                        return;
                    };
                    let app = admin::router(admin_state);
                    let res =
                        axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>())
                            .with_graceful_shutdown(async move {
                                let _ = admin_rx.wait_for(|v| *v).await;
                            })
                            .await;
                    if let Err(e) = res {
                        tracing::error!(error = %e, "admin server failed");
                    }
                    // The last heartbeat says "stopping": let it out before the runtime ends.
                    let _ = tokio::time::timeout(Duration::from_secs(2), beat).await;
                });
            })
            .map_err(|e| EdgeError::Runtime("admin thread", e))?;
        let https = state.config.tls.as_ref().map(|t| t.listen.to_string());
        tracing::info!(%listen, https = https.as_deref().unwrap_or("off"), admin = %admin_addr, id = %state.config.edge.id, "edge started");
        Ok(Edge {
            state,
            shutdown,
            threads: vec![proxy_thread, admin_thread],
            admin_addr,
        })
    }

    /// Shared state (cache, metrics).
    pub fn state(&self) -> &Arc<EdgeState> {
        &self.state
    }

    /// The proxy address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.state.config.edge.listen
    }

    /// The admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The HTTPS address, when `[tls]` configures one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.state.config.tls.as_ref().map(|t| t.listen)
    }

    /// Read the HTTPS certificates again (`SIGHUP`, `POST /tls/reload`): new handshakes use the
    /// new set, open connections keep theirs; on any error the set in use stays. `None` when
    /// the edge has no HTTPS port.
    pub fn reload_tls(&self) -> Option<Result<Vec<String>, tls::TlsError>> {
        let t = self.state.tls.as_ref()?;
        let r = tls::reload(t);
        let (outcome, detail) = match &r {
            Ok(names) => (eddy_control::audit::Outcome::Ok, format!("names {names:?}")),
            Err(e) => (eddy_control::audit::Outcome::Failed, e.to_string()),
        };
        self.state
            .audit
            .record("SIGHUP", None, "tls.reload", outcome, &detail);
        Some(r)
    }

    /// Stop serving and wait for the threads to finish.
    pub fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Block until the edge stops (after [`Edge::shutdown_handle`] fires).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// A handle that stops the edge when sent `true`.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Before serving, listen to the fleet's heartbeats for two intervals: a running node with this
/// node's id but another address means a duplicate id (this node refuses to start; the running
/// one goes on), and a configured shield that announces itself as an edge is a topology error.
/// So is a shield nobody announces while other nodes do (a wrong address). With no heartbeat at
/// all (the first node of a fleet, or a fleet without heartbeats) a missing shield is only
/// logged: it may simply start later.
async fn check_peers(
    bus: &Arc<dyn eddy_bus::Bus>,
    e: &eddy_config::EdgeConfig,
    admin: SocketAddr,
) -> Result<eddy_bus::consumer::EventConsumer, EdgeError> {
    use eddy_bus::consumer::EventConsumer;
    let follow_err = |err: eddy_bus::BusError| EdgeError::Follow("edge heartbeats", err.into());
    let sub = bus
        .subscribe(
            eddy_control::EDGE_HEALTH_TOPIC,
            &format!("edge-{}.peers", e.id),
            eddy_bus::StartFrom::Latest,
        )
        .await
        .map_err(follow_err)?;
    let mut consumer = EventConsumer::new(sub, bus.clone());
    let window = e.heartbeat_interval * 2;
    let deadline = tokio::time::Instant::now() + window;
    let me = (e.public_url.as_str(), format!("http://{admin}"));
    let same = |url: &str, o: &eddy_config::Origin| {
        eddy_config::parse_origin(url)
            .is_some_and(|p| p.host.eq_ignore_ascii_case(&o.host) && p.port == o.port)
    };
    let mut heard = vec![false; e.shields.len()];
    let mut others = std::collections::HashSet::new();
    loop {
        let r = match tokio::time::timeout_at(deadline, consumer.next()).await {
            Err(_) => break,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "could not listen to heartbeats before start; skipping the duplicate-id check");
                break;
            }
            Ok(Ok(r)) => r,
        };
        let eddy_events::Event::EdgeHealth(h) = &r.event else {
            continue;
        };
        let url = h.url.as_deref().unwrap_or("");
        if h.edge != e.id && h.healthy {
            others.insert(h.edge.clone());
        }
        if h.edge == e.id && h.healthy && (url != me.0 || h.admin.as_deref() != Some(me.1.as_str()))
        {
            return Err(EdgeError::DuplicateId {
                id: e.id.clone(),
                other: url.to_string(),
            });
        }
        for (i, s) in e.shields.iter().enumerate() {
            if same(url, s) {
                heard[i] = true;
                if h.role.as_deref() == Some("edge") {
                    return Err(EdgeError::NotAShield {
                        shield: s.url.clone(),
                        id: h.edge.clone(),
                    });
                }
            }
        }
    }
    for (s, h) in e.shields.iter().zip(heard) {
        if !h && !others.is_empty() {
            return Err(EdgeError::UnknownShield {
                shield: s.url.clone(),
                others: others.len(),
            });
        }
        if !h {
            tracing::warn!(shield = %s.url, ?window, "this shield has not announced itself on the bus; misses will fail over to the next shield or the origins while it is away");
        }
    }
    Ok(consumer)
}

/// Steer by the shields' own heartbeats (from `consumer`, which [`check_peers`] opened): a shield
/// that says it stops is down at once, one whose heartbeats stop is down after three of its
/// intervals, and a healthy heartbeat brings it back. A shield this edge marked down by its own
/// connect failures while it still heartbeats (a path problem between the two) is retried after
/// [`SHIELD_RETRY`], not at its next heartbeat. Shields never heard from are left to passive
/// tracking (deployments without heartbeats keep working).
/// How long a heartbeating shield that this edge cannot reach stays skipped before a retry.
pub const SHIELD_RETRY: Duration = Duration::from_secs(5);

async fn watch_shields(
    mut consumer: eddy_bus::consumer::EventConsumer,
    state: Arc<EdgeState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let shields = &state.config.edge.shields;
    if shields.is_empty() {
        return;
    }
    let owner = |url: &str| {
        let p = eddy_config::parse_origin(url)?;
        shields
            .iter()
            .position(|s| s.host.eq_ignore_ascii_case(&p.host) && s.port == p.port)
    };
    // Per shield: when it was last heard healthy, and its heartbeat interval.
    let mut heard: Vec<Option<(tokio::time::Instant, Duration)>> = vec![None; shields.len()];
    // Per shield: since when it is down by this edge's own failures while heartbeating.
    let mut passive_down: Vec<Option<tokio::time::Instant>> = vec![None; shields.len()];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Duration::from_millis(50);
    loop {
        let next = tokio::select! {
            _ = shutdown.wait_for(|v| *v) => {
                tracing::info!("shield heartbeat follower stopped: shutting down");
                return;
            }
            _ = tick.tick() => None,
            r = consumer.next() => Some(r),
        };
        match next {
            None => {
                let now = tokio::time::Instant::now();
                for (i, h) in heard.iter_mut().enumerate() {
                    if let Some((at, every)) = *h
                        && now.duration_since(at) > every * 3
                    {
                        state.shield_health.set(i, false, "its heartbeats stopped");
                        *h = None;
                    }
                }
            }
            Some(Ok(r)) => {
                backoff = Duration::from_millis(50);
                if let eddy_events::Event::EdgeHealth(h) = &r.event
                    && let Some(i) = h.url.as_deref().and_then(owner)
                {
                    if h.healthy {
                        let now = tokio::time::Instant::now();
                        let every = Duration::from_millis(h.interval_ms.unwrap_or(1000).max(10));
                        let was_heard = heard[i].is_some();
                        heard[i] = Some((now, every));
                        if state.shield_health.is_healthy(i) {
                            passive_down[i] = None;
                        } else if !was_heard {
                            // Down because its heartbeats had stopped or it said so: back now.
                            state.shield_health.set(i, true, "its heartbeats are back");
                        } else {
                            let since = *passive_down[i].get_or_insert(now);
                            if now.duration_since(since) >= SHIELD_RETRY {
                                passive_down[i] = None;
                                state.shield_health.set(
                                    i,
                                    true,
                                    "retrying: it heartbeats though connects failed",
                                );
                            }
                        }
                    } else {
                        heard[i] = None;
                        state.shield_health.set(i, false, "it said it is stopping");
                    }
                }
                let _ = consumer.commit(&r).await;
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "reading shield heartbeats failed");
                tokio::select! {
                    _ = shutdown.wait_for(|v| *v) => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Publish this node's `edge.health` heartbeat (load, counters, where it serves) every
/// `edge.heartbeat_interval` until shutdown, then a last one with `healthy = false` so routers
/// stop sending viewers here at once rather than after a timeout. A publish that takes longer
/// than an interval is abandoned (and logged): a slow bus never delays the next beat.
async fn heartbeat(state: Arc<EdgeState>, admin: SocketAddr, mut shutdown: watch::Receiver<bool>) {
    let Some(bus) = state.bus.clone() else { return };
    let e = &state.config.edge;
    let every = e.heartbeat_interval;
    let source = format!("/eddy/edge/{}", e.id);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (tokio::time::Instant::now(), 0u64);
    loop {
        let stopping = tokio::select! {
            _ = shutdown.wait_for(|v| *v) => true,
            _ = tick.tick() => false,
        };
        let stats = state.metrics.snapshot();
        let now = tokio::time::Instant::now();
        let secs = now.duration_since(last.0).as_secs_f64().max(0.001);
        let rps = stats.requests.saturating_sub(last.1) as f64 / secs;
        last = (now, stats.requests);
        let ev = eddy_events::Event::EdgeHealth(eddy_events::EdgeHealth {
            edge: e.id.clone(),
            healthy: !stopping,
            load: Some(rps / f64::from(e.capacity_rps)),
            role: Some(e.role.as_str().to_string()),
            url: Some(e.public_url.clone()),
            admin: Some(format!("http://{admin}")),
            interval_ms: Some(u64::try_from(every.as_millis()).unwrap_or(u64::MAX)),
            capacity_rps: Some(u64::from(e.capacity_rps)),
            stats: Some(stats),
        });
        let cloud = ev.to_cloud(eddy_control::event_id(), source.clone());
        let key = ev.key();
        let publish = bus.publish(
            eddy_control::EDGE_HEALTH_TOPIC,
            &key,
            bytes::Bytes::from(cloud.encode()),
        );
        match tokio::time::timeout(every.max(Duration::from_millis(500)), publish).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "could not publish a heartbeat"),
            Err(_) => tracing::warn!(?every, "a heartbeat publish took longer than its interval"),
        }
        if stopping {
            return;
        }
    }
}

/// Every 5 s, drop per-client limiter state that is back to a full bucket (so memory follows the
/// clients active in the last few seconds) and report how many clients it holds.
async fn prune_client_limiter(state: Arc<EdgeState>, mut shutdown: watch::Receiver<bool>) {
    let Some(limiter) = &state.client_limiter else {
        return;
    };
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|v| *v) => return,
            _ = every.tick() => {}
        }
        limiter.retain_recent();
        limiter.shrink_to_fit();
        state
            .metrics
            .client_limiter_keys
            .set(i64::try_from(limiter.len()).unwrap_or(i64::MAX));
    }
}

/// Probe origin `i` every `every` with `GET edge.origin_probe_path` (deadline: half the
/// interval), over TLS verified with `roots` for an `https://` origin; an answer below 500 marks
/// it up, anything else counts as a failure.
async fn probe_origin(
    state: Arc<EdgeState>,
    i: usize,
    every: Duration,
    roots: Option<Arc<rustls::ClientConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let edge = &state.config.edge;
    let Some(o) = edge.origins.get(i) else { return };
    let default_port = if o.tls { 443 } else { 80 };
    let host_header = if o.port == default_port {
        o.host.clone()
    } else {
        format!("{}:{}", o.host, o.port)
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|v| *v) => return,
            _ = tick.tick() => {}
        }
        let deadline = every / 2;
        let r = match state
            .upstreams
            .addr(upstream::Tier::Origin, i, deadline)
            .await
        {
            Err(e) => Err(e),
            Ok(addr) => {
                let tls = match (&roots, o.tls) {
                    (Some(r), true) => Some((r, o.host.as_str())),
                    _ => None,
                };
                client::get(
                    addr,
                    tls,
                    &host_header,
                    &edge.origin_probe_path,
                    &[("user-agent", "eddy-probe")],
                    deadline,
                    None,
                )
                .await
                .map(|(status, _)| status)
            }
        };
        match r {
            Ok(s) if s.as_u16() < 500 => state.health.success(i, &format!("probe answered {s}")),
            Ok(s) => state.health.failure(i, &format!("probe answered {s}")),
            Err(e) => state.health.failure(i, &format!("probe failed: {e}")),
        }
    }
}

/// Drain what the request path queued (spikes, origin health changes) into events on the bus
/// until shutdown: `observe` sees each item first (metrics), `to_event` makes its event. Without
/// a bus, or when `to_event` makes none, items are only observed; they were logged where they
/// arose.
async fn publish_each<T>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
    state: Arc<EdgeState>,
    topic: &'static str,
    observe: impl Fn(&T),
    to_event: impl Fn(T, &str) -> Option<eddy_events::Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    let edge = state.config.edge.id.clone();
    let source = format!("/eddy/edge/{edge}");
    loop {
        let item = tokio::select! {
            _ = shutdown.wait_for(|v| *v) => return,
            i = rx.recv() => match i {
                Some(i) => i,
                None => {
                    tracing::warn!(topic, "event publisher stopped: its queue closed");
                    return;
                }
            },
        };
        observe(&item);
        let Some(bus) = &state.bus else { continue };
        let Some(ev) = to_event(item, &edge) else {
            continue;
        };
        let cloud = ev.to_cloud(eddy_control::event_id(), source.clone());
        if let Err(e) = bus
            .publish(topic, &ev.key(), bytes::Bytes::from(cloud.encode()))
            .await
        {
            tracing::warn!(error = %e, topic, "could not publish an event");
        }
    }
}

/// The edge's eviction policies: `eddy-cache`'s built-in ones, and `learned` (`eddy-predict`,
/// guarded: it falls back to S3-FIFO if it fails, counting it in `fallbacks`).
fn make_policy(
    name: &str,
    capacity: u64,
    fallbacks: &Arc<std::sync::atomic::AtomicU64>,
) -> Result<Box<dyn eddy_cache::Policy>, eddy_cache::CacheError> {
    match name {
        "learned" => Ok(Box::new(eddy_predict::guard::Guarded::new(
            capacity,
            fallbacks.clone(),
        ))),
        other => eddy_cache::policy::by_name(other, capacity),
    }
}
