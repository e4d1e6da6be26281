//! The edge's upstreams (origins and shields) as places to connect to.
//!
//! - **Addresses.** An upstream named by a host name is resolved off the request path: the first
//!   request resolves it (within the connect timeout), and from then on an answer older than
//!   [`RESOLVE_EVERY`] is refreshed by one background lookup while requests keep the address they
//!   have. A lookup that fails keeps the last good address. Pingora's `HttpPeer::new` would
//!   resolve on the worker thread with a blocking call per request, and panic on a name that does
//!   not resolve; peers here are built from an address that is already known.
//! - **TLS roots.** `https://` origins and shields are verified against `edge.upstream_ca_file`,
//!   or the system's roots when it is unset. Pingora's connector reads the same file with the same
//!   code at start-up and would panic on one that does not read, so [`roots`] reads it first and
//!   stops start-up with an error naming the file. The roots also serve the origin probes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_config::{EdgeConfig, Origin};
use rustls::RootCertStore;

use crate::tls::TlsError;

/// How long a resolved address is used before it is looked up again (in the background).
pub const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// The longest a background re-resolution may take.
const REFRESH_DEADLINE: Duration = Duration::from_secs(5);

/// Origins or shields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// `edge.origins`.
    Origin,
    /// `edge.shields`.
    Shield,
}

/// The addresses of every configured upstream.
pub struct Upstreams {
    origins: Vec<Arc<Slot>>,
    shields: Vec<Arc<Slot>>,
}

struct Slot {
    host: String,
    port: u16,
    /// An IP address as written: never looked up.
    fixed: Option<SocketAddr>,
    resolved: Mutex<Resolved>,
}

#[derive(Default)]
struct Resolved {
    addr: Option<SocketAddr>,
    at: Option<Instant>,
    refreshing: bool,
}

impl Slot {
    fn new(o: &Origin) -> Arc<Slot> {
        Arc::new(Slot {
            host: o.host.clone(),
            port: o.port,
            fixed: o
                .host
                .parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, o.port)),
            resolved: Mutex::new(Resolved::default()),
        })
    }

    async fn lookup(&self, deadline: Duration) -> Result<SocketAddr, String> {
        let name = (self.host.as_str(), self.port);
        match tokio::time::timeout(deadline, tokio::net::lookup_host(name)).await {
            Err(_) => Err(format!(
                "the name {} did not resolve within {deadline:?}",
                self.host
            )),
            Ok(Err(e)) => Err(format!("the name {} does not resolve: {e}", self.host)),
            Ok(Ok(mut addrs)) => addrs
                .next()
                .ok_or_else(|| format!("the name {} resolves to no address", self.host)),
        }
    }

    fn store(&self, addr: SocketAddr) {
        let mut r = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        r.addr = Some(addr);
        r.at = Some(Instant::now());
        r.refreshing = false;
    }
}

impl Upstreams {
    /// The upstreams of `edge`, none resolved yet.
    pub fn new(edge: &EdgeConfig) -> Upstreams {
        Upstreams {
            origins: edge.origins.iter().map(Slot::new).collect(),
            shields: edge.shields.iter().map(Slot::new).collect(),
        }
    }

    /// Where to connect for upstream `i` of `tier`: its IP address, or its name's last known
    /// address (refreshed in the background once older than [`RESOLVE_EVERY`]), or, the first
    /// time, the name resolved now within `deadline`. The error says which name failed.
    pub async fn addr(
        &self,
        tier: Tier,
        i: usize,
        deadline: Duration,
    ) -> Result<SocketAddr, String> {
        let list = match tier {
            Tier::Origin => &self.origins,
            Tier::Shield => &self.shields,
        };
        let Some(slot) = list.get(i) else {
            return Err(format!("no upstream {i}"));
        };
        if let Some(a) = slot.fixed {
            return Ok(a);
        }
        let known = {
            let mut r = slot.resolved.lock().unwrap_or_else(|p| p.into_inner());
            match (r.addr, r.at) {
                (Some(a), Some(at)) => {
                    if at.elapsed() >= RESOLVE_EVERY && !r.refreshing {
                        r.refreshing = true;
                        let s = slot.clone();
                        tokio::spawn(async move {
                            match s.lookup(REFRESH_DEADLINE).await {
                                Ok(a) => s.store(a),
                                Err(e) => {
                                    // Keep the last good address; try again after another period.
                                    tracing::warn!(upstream = %s.host, error = %e, "re-resolving an upstream failed; keeping its last address");
                                    let mut r =
                                        s.resolved.lock().unwrap_or_else(|p| p.into_inner());
                                    r.at = Some(Instant::now());
                                    r.refreshing = false;
                                }
                            }
                        });
                    }
                    Some(a)
                }
                _ => None,
            }
        };
        if let Some(a) = known {
            return Ok(a);
        }
        let a = slot.lookup(deadline).await?;
        slot.store(a);
        Ok(a)
    }
}

/// The roots `https://` upstreams are verified against, as a client configuration for the
/// edge's own requests to them (origin probes); `None` when no upstream uses TLS and no CA file
/// is set. Reads `edge.upstream_ca_file` with the code pingora's connector uses, so a file that
/// passes here also passes there.
pub fn roots(edge: &EdgeConfig) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
    let any_tls = edge.origins.iter().chain(&edge.shields).any(|o| o.tls);
    let mut store = RootCertStore::empty();
    match &edge.upstream_ca_file {
        Some(path) => {
            pingora_core::tls::load_ca_file_into_store(path, &mut store).map_err(|e| {
                TlsError::Ca {
                    path: path.clone(),
                    why: format!(
                        "{e}; it must be a readable PEM file of CERTIFICATE blocks and nothing else"
                    ),
                }
            })?;
            if store.is_empty() {
                return Err(TlsError::Ca {
                    path: path.clone(),
                    why: "no CERTIFICATE block in it".into(),
                });
            }
        }
        None if !any_tls => return Ok(None),
        None => {
            pingora_core::tls::load_platform_certs_incl_env_into_store(&mut store).map_err(
                |e| {
                    TlsError::Setup(format!(
                        "the system's CA certificates did not load ({e}); set edge.upstream_ca_file to a PEM file of the CAs your https:// upstreams use"
                    ))
                },
            )?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn edge(origins: &[&str], ca: Option<std::path::PathBuf>) -> EdgeConfig {
        let o = eddy_config::Overrides {
            origins: origins.iter().map(|o| o.to_string()).collect(),
            ..Default::default()
        };
        let mut e = eddy_config::load(None, &o).unwrap().edge;
        e.upstream_ca_file = ca;
        e
    }

    #[tokio::test]
    async fn addresses_are_fixed_or_resolved_once_and_unknown_names_are_errors() {
        let u = Upstreams::new(&edge(
            &[
                "http://127.0.0.1:9000",
                "http://localhost:9001",
                "http://no-such-host.invalid",
            ],
            None,
        ));
        let d = Duration::from_secs(5);
        assert_eq!(
            u.addr(Tier::Origin, 0, d).await.unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        );
        let a = u.addr(Tier::Origin, 1, d).await.unwrap();
        assert!(a.ip().is_loopback() && a.port() == 9001, "{a}");
        // Known now: answered from the slot.
        assert_eq!(u.addr(Tier::Origin, 1, d).await.unwrap(), a);
        let e = u.addr(Tier::Origin, 2, d).await.unwrap_err();
        assert!(e.contains("no-such-host.invalid"), "{e}");
        assert!(u.addr(Tier::Shield, 0, d).await.is_err());
    }

    #[test]
    fn roots_are_read_only_when_needed_and_a_bad_ca_file_is_named() {
        assert!(roots(&edge(&["http://a:1"], None)).unwrap().is_none());
        assert!(roots(&edge(&["https://a"], None)).unwrap().is_some());
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = roots(&edge(&["https://a"], Some(missing.clone())))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = roots(&edge(&["https://a"], Some(empty.clone())))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("empty.pem") && e.contains("CERTIFICATE"), "{e}");
        let ca = eddy_testkit::pki::TestCa::new().unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.pem()).unwrap();
        assert!(roots(&edge(&["https://a"], Some(good))).unwrap().is_some());
    }
}
