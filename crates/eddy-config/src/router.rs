//! `[router]`: the `eddy router` role, which sends each viewer to a healthy, lightly loaded edge
//! it learns about from heartbeats on the bus. Owns [`RouterFile`] (the keys an operator
//! writes), [`RouterConfig`] and [`load_router`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::bus::{BusConfig, role_bus};
use crate::{ConfigError, addr, invalid, node_id, read_file};

/// `[router]`: `eddy router` sends each viewer to a healthy, lightly loaded edge.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterFile {
    /// Router id, unique in a deployment: its bus consumer is `router-<id>` (default `1`).
    pub id: Option<String>,
    /// Address viewers and players ask (default `127.0.0.1:8000`).
    pub listen: Option<String>,
    /// An edge is down when no heartbeat came for this many milliseconds (default: three of the
    /// heartbeat intervals the edge announces).
    pub edge_timeout_ms: Option<u64>,
    /// Route by the request path first (rendezvous hashing, for cache locality) and fall back to
    /// the least-loaded edge only when the path's edge is over `load_slack` times the mean load
    /// (default true). False: always the least-loaded edge.
    pub affinity: Option<bool>,
    /// How much busier than the mean the path's edge may be before the router sends elsewhere
    /// (default 1.25).
    pub load_slack: Option<f64>,
}

/// Validated `[router]` plus the bus it listens on.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Router id.
    pub id: String,
    /// Viewer-facing address.
    pub listen: SocketAddr,
    /// Fixed heartbeat timeout, or `None` for three announced intervals.
    pub edge_timeout: Option<Duration>,
    /// Route by path first.
    pub affinity: bool,
    /// Load ratio over the mean that breaks affinity.
    pub load_slack: f64,
    /// The bus that carries the edges' heartbeats.
    pub bus: BusConfig,
}

/// Load the `eddy router` role: `[router]` and `[bus]` (`listen` and `bus_dir` override).
pub fn load_router(
    path: Option<&Path>,
    listen: Option<&str>,
    bus_dir: Option<&PathBuf>,
) -> Result<RouterConfig, ConfigError> {
    let (file, name) = read_file(path)?;
    let r = file.router;
    let listen = addr(
        &name,
        "router.listen",
        listen.or(r.listen.as_deref()).unwrap_or("127.0.0.1:8000"),
    )?;
    let edge_timeout = match r.edge_timeout_ms {
        None => None,
        Some(v @ 100..=600_000) => Some(Duration::from_millis(v)),
        Some(v) => {
            return Err(invalid(
                &name,
                "router.edge_timeout_ms",
                &v.to_string(),
                "100 to 600000 milliseconds",
            ));
        }
    };
    let load_slack = r.load_slack.unwrap_or(1.25);
    if !(load_slack.is_finite() && (1.0..=100.0).contains(&load_slack)) {
        return Err(invalid(
            &name,
            "router.load_slack",
            &load_slack.to_string(),
            "a ratio of 1 to 100",
        ));
    }
    Ok(RouterConfig {
        id: node_id(&name, "router.id", r.id)?,
        listen,
        edge_timeout,
        affinity: r.affinity.unwrap_or(true),
        load_slack,
        bus: role_bus(&name, "the router", file.bus, bus_dir)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::tempdir;

    #[test]
    fn the_router_needs_a_bus_and_fills_in_defaults() -> Result<(), ConfigError> {
        let dir = tempdir()?;
        let write = |name: &str, text: &str| -> PathBuf {
            let p = dir.path().join(name);
            std::fs::write(&p, text).ok();
            p
        };
        let bare = write("router.toml", "[router]\nlisten=\"127.0.0.1:8001\"\n");
        let msg = load_router(Some(&bare), None, None)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(msg.contains("bus") && msg.contains("[bus]"), "{msg}");
        let r = write(
            "router2.toml",
            "[router]\nlisten=\"127.0.0.1:8001\"\nedge_timeout_ms=600\n[bus]\nkind=\"nats\"\n",
        );
        let rc = load_router(Some(&r), None, None)?;
        assert_eq!(rc.listen.port(), 8001);
        assert_eq!(rc.edge_timeout, Some(Duration::from_millis(600)));
        assert!(rc.affinity);
        let slack = write(
            "router3.toml",
            "[router]\nload_slack=0.5\n[bus]\nkind=\"nats\"\n",
        );
        let msg = load_router(Some(&slack), None, None)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(msg.contains("router.load_slack"), "{msg}");
        let timeout = write(
            "router4.toml",
            "[router]\nedge_timeout_ms=50\n[bus]\nkind=\"nats\"\n",
        );
        let msg = load_router(Some(&timeout), None, None)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(msg.contains("router.edge_timeout_ms"), "{msg}");
        Ok(())
    }
}
