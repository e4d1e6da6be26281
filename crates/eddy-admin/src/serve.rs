//! The plumbing every operator-facing role shares (the dashboard, the control plane, and the
//! router in `eddy-router`): bind up front so a taken port is a clear error at start, run an axum
//! app and its background tasks on a runtime of its own thread, stop on one shutdown watch, and
//! answer `/metrics` from a Prometheus registry.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use tokio::sync::watch;

/// Why a role could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address is taken or not bindable.
    #[error(
        "{role}: cannot listen on {addr}: {source}; pick a free address with [{role}] listen or --listen"
    )]
    Bind {
        /// `router`, `dashboard` or `control` (also the config section).
        role: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// A thread, runtime or listener could not be set up.
    #[error("{role}: could not start its {what}: {source}")]
    Runtime {
        /// The role.
        role: &'static str,
        /// Which part.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

/// A bound listener with its runtime and shutdown watch, before it serves.
pub struct Bound {
    role: &'static str,
    listener: std::net::TcpListener,
    addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    shutdown: watch::Sender<bool>,
}

/// Bind `listen` for `role` and build its runtime with `workers` threads.
pub fn bind(role: &'static str, listen: SocketAddr, workers: usize) -> Result<Bound, ServeError> {
    let runtime_err = |what| move |source| ServeError::Runtime { role, what, source };
    let listener = std::net::TcpListener::bind(listen).map_err(|source| ServeError::Bind {
        role,
        addr: listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(runtime_err("listener"))?;
    listener
        .set_nonblocking(true)
        .map_err(runtime_err("listener"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(format!("eddy-{role}"))
        .enable_all()
        .build()
        .map_err(runtime_err("runtime"))?;
    let (shutdown, _) = watch::channel(false);
    Ok(Bound {
        role,
        listener,
        addr,
        runtime,
        shutdown,
    })
}

impl Bound {
    /// The runtime, for set-up work (subscriptions) before serving.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// A receiver that turns true at shutdown.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Serve `app` on a thread of its own until [`Node::stop`]. `tasks` runs first inside the
    /// runtime to spawn the role's background work, given the shutdown signal.
    pub fn serve(
        self,
        app: axum::Router,
        tasks: impl FnOnce(watch::Receiver<bool>) + Send + 'static,
    ) -> Result<Node, ServeError> {
        let Bound {
            role,
            listener,
            addr,
            runtime,
            shutdown,
        } = self;
        let rx = shutdown.subscribe();
        let thread = std::thread::Builder::new()
            .name(format!("eddy-{role}"))
            .spawn(move || {
                runtime.block_on(async move {
                    tasks(rx.clone());
                    let Ok(l) = tokio::net::TcpListener::from_std(listener) else {
                        tracing::error!(role, "listener could not be registered");
                        return;
                    };
                    let mut stop = rx;
                    // Handlers may ask for the client's address (audit records do).
                    let app = app.into_make_service_with_connect_info::<SocketAddr>();
                    let res = axum::serve(l, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop.wait_for(|v| *v).await;
                        })
                        .await;
                    if let Err(e) = res {
                        tracing::error!(role, error = %e, "server failed");
                    }
                });
            })
            .map_err(|source| ServeError::Runtime {
                role,
                what: "thread",
                source,
            })?;
        tracing::info!(%addr, "{role} started");
        Ok(Node {
            addr,
            shutdown,
            thread: Some(thread),
        })
    }
}

/// A role serving on its own thread; dropping it stops it too.
pub struct Node {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop serving and wait.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The Prometheus text exposition of `registry`.
pub fn metrics_response(registry: &Registry) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
