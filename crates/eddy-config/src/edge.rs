//! `[edge]`: the cache node itself, an edge or a shield. Owns [`EdgeFile`] (the keys an
//! operator writes), [`EdgeConfig`] (what the edge runs with), the node's [`Role`], its upstreams
//! ([`Origin`], parsed strictly by [`parse_origin`]), and the checks that tie them together: an
//! edge never lists itself as an upstream, a shield lists no shields, an admin API beyond
//! loopback needs a token.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::{ConfigError, Overrides, addr, admin_exposure, invalid, within};

/// `[edge]`: the cache node itself (an edge, or a shield with `role = "shield"`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeFile {
    /// Node id, unique in a deployment (default: `edge-1`).
    pub id: Option<String>,
    /// Address viewers connect to, HTTP/1.1 and h2c on one port (default `127.0.0.1:8080`).
    pub listen: Option<String>,
    /// Admin API and `/metrics` address (default `127.0.0.1:9080`). A non-loopback address needs
    /// `admin_token`, or the `--insecure-admin` flag to accept an unauthenticated admin API on
    /// the network.
    pub admin: Option<String>,
    /// If set, the admin API requires `Authorization: Bearer <token>` (not for `/metrics`).
    pub admin_token: Option<String>,
    /// Origins as `http://host[:port]` or `https://host[:port]` URLs (port 1-65535, 80 or 443
    /// when absent); the first healthy one is used, the next on failure. An `https://` origin's
    /// certificate must be valid for `host` (sent as SNI) and signed by a root of
    /// `upstream_ca_file`, or of the system when that is unset.
    pub origins: Option<Vec<String>>,
    /// Shield edges (`http://host[:port]`, or `https://host[:port]` for a shield's `[tls]`
    /// port): a miss goes to the shield that owns the object by
    /// rendezvous hashing of its URL, then to the next shield, then to the origins. Empty (the
    /// default) for a shield itself or an edge that fetches from origins directly.
    pub shields: Option<Vec<String>>,
    /// Client networks allowed to send `PURGE` (default: loopback only).
    pub purge_allow: Option<Vec<String>>,
    /// Worker threads for the proxy (default: number of CPUs).
    pub threads: Option<usize>,
    /// Largest request header block accepted, in bytes; larger gets 431 (default 65536).
    pub max_header_bytes: Option<usize>,
    /// Longest time a client may take to send a whole request head, in milliseconds, from the
    /// connection's first byte (or accept) to the blank line that ends the head: what keeps a
    /// slow client from holding a connection open (default 10000; 100 to 600000).
    pub head_timeout_ms: Option<u64>,
    /// Longest idle time of a client connection between requests, in milliseconds (default
    /// 30000; 100 to 3600000).
    pub keepalive_timeout_ms: Option<u64>,
    /// Viewer connections this edge holds at once; more are closed at accept (default 65536;
    /// 1 to 10000000).
    pub max_connections: Option<usize>,
    /// Viewer connections one client address may hold at once; more are closed at accept
    /// (default 1024, or `max_connections` if that is lower; 1 to `max_connections`). Clients
    /// behind one NAT share an address: set it with that in mind.
    pub max_client_connections: Option<usize>,
    /// Requests per second allowed from one client address; more get 429 with `Retry-After`
    /// (default 0: no limit). Clients behind one NAT share an address: set it with that in mind.
    pub client_rate: Option<u32>,
    /// Requests a client may send at once above `client_rate` (default: `client_rate`).
    pub client_burst: Option<u32>,
    /// Origin fetches per second this edge may start (default 0: no limit). Over it, a request
    /// gets a stale copy where its directives allow, else 503 with `Retry-After`: nothing queues.
    pub origin_rate: Option<u32>,
    /// Origin fetches that may start at once above `origin_rate` (default: `origin_rate`).
    pub origin_burst: Option<u32>,
    /// Per-connection write buffer toward viewers, in bytes (default 1460, pingora's). A response
    /// whose head and body fit is sent in one write; larger ones are sent as head + body.
    pub write_buffer_bytes: Option<usize>,
    /// Answer fresh in-memory hits of plain HTTP/1.1 GET and HEAD requests on the hit fast path,
    /// before the full proxy (default true; `false` sends every request through the full proxy).
    pub fast_hits: Option<bool>,
    /// Timeout to connect to an origin, in milliseconds (default 2000).
    pub origin_connect_timeout_ms: Option<u64>,
    /// Timeout for an origin's response head, in milliseconds (default 30000).
    pub origin_read_timeout_ms: Option<u64>,
    /// Connect failures in a row that mark an origin down (default 3).
    pub origin_fail_threshold: Option<u32>,
    /// How often each origin is probed, in milliseconds (default 1000; 0 turns probes off).
    pub origin_probe_interval_ms: Option<u64>,
    /// Path probed with GET; any answer below 500 means up (default "/").
    pub origin_probe_path: Option<String>,
    /// PEM file of the CA certificates that `https://` origins and shields must chain to
    /// (default: the system's roots). Read at start-up; a file that does not read stops it.
    pub upstream_ca_file: Option<String>,
    /// How long a request waits for another request's fill of the same object before fetching
    /// itself, in milliseconds (default 10000).
    pub coalesce_timeout_ms: Option<u64>,
    /// `edge` (default: serves viewers; the router sends viewers here) or `shield` (serves other
    /// edges' misses; never routed to). `eddy shield` sets it.
    pub role: Option<String>,
    /// The URL viewers reach this node at, `http://host[:port]`, announced in heartbeats for the
    /// router (default `http://<listen>`; required when `listen` is a wildcard address such as
    /// 0.0.0.0).
    pub public_url: Option<String>,
    /// How often the node publishes its `edge.health` heartbeat, in milliseconds (default 250).
    pub heartbeat_interval_ms: Option<u64>,
    /// Requests/s this node is sized for; heartbeats report load as requests/s over this
    /// (default 50000).
    pub capacity_rps: Option<u32>,
    /// The node's region, such as "eu-west" (1-32 of a-z, 0-9 and '-'; default none). Pre-warm
    /// hints for another region are skipped; hints for no region reach every node.
    pub region: Option<String>,
    /// Bytes a minute this node may fetch ahead of demand on pre-warm hints
    /// (`dev.eddy.prewarm.v1`), such as "256 MiB" (the default); "0" follows no hints.
    pub prewarm_budget: Option<String>,
}

/// What a cache node does in the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves viewers; misses go to shields or origins.
    Edge,
    /// Serves edges' misses from the origins.
    Shield,
}

impl Role {
    /// `edge` or `shield`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Edge => "edge",
            Role::Shield => "shield",
        }
    }
}

/// An origin server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// As written.
    pub url: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `https://`: fetched over TLS, the certificate verified for `host` (also the SNI).
    pub tls: bool,
}

/// Validated `[edge]`.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Node id.
    pub id: String,
    /// Viewer listen address.
    pub listen: SocketAddr,
    /// Admin listen address.
    pub admin: SocketAddr,
    /// Edge or shield.
    pub role: Role,
    /// Where viewers reach it (`http://host:port`, no trailing slash).
    pub public_url: String,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Requests/s it is sized for.
    pub capacity_rps: u32,
    /// Its region, lower-case.
    pub region: Option<String>,
    /// Bytes a minute it may fetch on pre-warm hints (0: it follows none).
    pub prewarm_budget: u64,
    /// Admin bearer token.
    pub admin_token: Option<String>,
    /// The admin API listens beyond loopback without a token because the operator opted in
    /// ([`Overrides::insecure_admin`](crate::Overrides::insecure_admin)); the edge should warn.
    pub insecure_admin: bool,
    /// Origins, in preference order (at least one).
    pub origins: Vec<Origin>,
    /// Shield tier, in configuration order (hashing picks the owner per object).
    pub shields: Vec<Origin>,
    /// Networks allowed to `PURGE`.
    pub purge_allow: Vec<IpNet>,
    /// Proxy worker threads.
    pub threads: usize,
    /// Largest request header block in bytes.
    pub max_header_bytes: usize,
    /// Longest time to receive a whole request head.
    pub head_timeout: Duration,
    /// Longest idle time of a client connection between requests.
    pub keepalive_timeout: Duration,
    /// Viewer connections held at once.
    pub max_connections: usize,
    /// Viewer connections one client address may hold at once (at most `max_connections`).
    pub max_client_connections: usize,
    /// Per-client limit: (requests/s, burst), or `None` for no limit.
    pub client_limit: Option<(u32, u32)>,
    /// Origin fetch limit of this edge: (fetches/s, burst), or `None` for no limit.
    pub origin_limit: Option<(u32, u32)>,
    /// Per-connection write buffer toward viewers.
    pub write_buffer_bytes: usize,
    /// Serve plain fresh memory hits on the fast path.
    pub fast_hits: bool,
    /// Origin connect timeout.
    pub origin_connect_timeout: Duration,
    /// Origin read timeout.
    pub origin_read_timeout: Duration,
    /// Failures in a row that mark an origin down.
    pub origin_fail_threshold: u32,
    /// Probe interval, or `None` for no active probes.
    pub origin_probe_interval: Option<Duration>,
    /// Probe path.
    pub origin_probe_path: String,
    /// CA certificates for `https://` upstreams, or `None` for the system's roots.
    pub upstream_ca_file: Option<std::path::PathBuf>,
    /// Coalescing wait.
    pub coalesce_timeout: Duration,
}

/// Parse an origin URL `http://host[:port]` or `https://host[:port]`: no path, and a port of 1
/// to 65535 (80 or 443 when absent).
pub fn parse_origin(v: &str) -> Option<Origin> {
    let uri: http::Uri = v.parse().ok()?;
    let (tls, default_port) = match uri.scheme_str() {
        Some("http") => (false, 80),
        Some("https") => (true, 443),
        _ => return None,
    };
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() || uri.path() != "/" && !uri.path().is_empty() {
        return None;
    }
    Some(Origin {
        url: v.to_string(),
        host,
        port: strict_port(uri.authority()?.as_str(), default_port)?,
        tls,
    })
}

/// The port of an authority `[userinfo@]host[:port]`: the scheme's `default` when absent or
/// empty (RFC 3986 §3.2.3), else 1 to 65535; `None` for anything else (`http::Uri` reads 0 and
/// >65535 as "no port").
fn strict_port(authority: &str, default: u16) -> Option<u16> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let after_host = match host_port.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.1,
        None => host_port.find(':').map_or("", |i| &host_port[i..]),
    };
    match after_host.strip_prefix(':') {
        None if after_host.is_empty() => Some(default),
        Some("") => Some(default),
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().ok().filter(|&n| n != 0)
        }
        _ => None,
    }
}

/// Validate `[edge]` plus the command line's overrides.
pub(crate) fn edge_config(
    name: &Path,
    e: EdgeFile,
    o: &Overrides,
    has_api_tokens: bool,
) -> Result<EdgeConfig, ConfigError> {
    let id = o.id.clone().or(e.id).unwrap_or_else(|| "edge-1".into());
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            name,
            "edge.id",
            &id,
            "letters, digits, '-' and '_'",
        ));
    }
    let listen = addr(
        name,
        "edge.listen",
        o.listen
            .as_deref()
            .or(e.listen.as_deref())
            .unwrap_or("127.0.0.1:8080"),
    )?;
    let admin = addr(
        name,
        "edge.admin",
        o.admin
            .as_deref()
            .or(e.admin.as_deref())
            .unwrap_or("127.0.0.1:9080"),
    )?;
    if listen == admin {
        return Err(invalid(
            name,
            "edge.admin",
            &admin.to_string(),
            "a different address than edge.listen",
        ));
    }
    let admin_token = e.admin_token.filter(|t| !t.is_empty());
    let insecure_admin = admin_exposure(
        name,
        "edge.admin",
        admin,
        admin_token.is_some() || has_api_tokens,
        "edge.admin_token (or [[api_tokens]])",
        o.insecure_admin,
    )?;
    let origin_strings = if o.origins.is_empty() {
        e.origins.unwrap_or_default()
    } else {
        o.origins.clone()
    };
    if origin_strings.is_empty() {
        return Err(invalid(
            name,
            "edge.origins",
            "[]",
            "at least one origin, e.g. origins = [\"http://127.0.0.1:9000\"] or --origin URL",
        ));
    }
    let origins = origin_strings
        .iter()
        .map(|u| {
            parse_origin(u).ok_or_else(|| {
                invalid(
                    name,
                    "edge.origins",
                    u,
                    "http://host[:port] or https://host[:port] with a port of 1 to 65535 (80 or 443 when absent) and no path",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let shields = e
        .shields
        .unwrap_or_default()
        .iter()
        .map(|u| {
            parse_origin(u).ok_or_else(|| {
                invalid(
                    name,
                    "edge.shields",
                    u,
                    "http://host[:port] or https://host[:port] (its [tls] port) of another Eddy node, with a port of 1 to 65535 (80 or 443 when absent) and no path",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // An edge that lists itself as its shield or origin would fetch from itself forever.
    let is_self = |o: &Origin| {
        o.port == listen.port()
            && match o.host.parse::<std::net::IpAddr>() {
                Ok(ip) => ip == listen.ip() || (listen.ip().is_unspecified() && ip.is_loopback()),
                Err(_) => {
                    o.host.eq_ignore_ascii_case("localhost")
                        && (listen.ip().is_loopback() || listen.ip().is_unspecified())
                }
            }
    };
    for (key, list) in [("edge.shields", &shields), ("edge.origins", &origins)] {
        if let Some(me) = list.iter().find(|o| is_self(o)) {
            return Err(invalid(
                name,
                key,
                &me.url,
                "other nodes: this is this edge's own listen address",
            ));
        }
    }
    for (i, s) in shields.iter().enumerate() {
        if shields[..i]
            .iter()
            .any(|t| t.host == s.host && t.port == s.port)
        {
            return Err(invalid(
                name,
                "edge.shields",
                &s.url,
                "each shield once (a duplicate would take twice its share)",
            ));
        }
    }
    let purge_allow = match e.purge_allow {
        Some(list) => list
            .iter()
            .map(|n| {
                n.parse::<IpNet>()
                    .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        invalid(
                            name,
                            "edge.purge_allow",
                            n,
                            "CIDR networks such as \"10.0.0.0/8\" or addresses",
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![
            IpNet::new(std::net::IpAddr::from([127, 0, 0, 0]), 8)
                .map_err(|_| invalid(name, "edge.purge_allow", "127.0.0.0/8", "a CIDR"))?,
            IpNet::from(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        ],
    };
    let threads = e.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    if threads == 0 || threads > 1024 {
        return Err(invalid(
            name,
            "edge.threads",
            &threads.to_string(),
            "1 to 1024",
        ));
    }
    let ms = |key: &'static str, v: Option<u64>, default: u64| -> Result<Duration, ConfigError> {
        let v = v.unwrap_or(default);
        if v == 0 || v > 3_600_000 {
            return Err(invalid(
                name,
                key,
                &v.to_string(),
                "1 to 3600000 milliseconds",
            ));
        }
        Ok(Duration::from_millis(v))
    };
    let role = match (e.role.as_deref(), o.role) {
        (None, r) => r.unwrap_or(Role::Edge),
        (Some("edge"), None | Some(Role::Edge)) => Role::Edge,
        (Some("shield"), None | Some(Role::Shield)) => Role::Shield,
        (Some(v @ ("edge" | "shield")), Some(cmd)) => {
            return Err(invalid(
                name,
                "edge.role",
                v,
                &format!(
                    "\"{}\" for this command (eddy {} runs a {0}); drop the key or run the other command",
                    cmd.as_str(),
                    cmd.as_str()
                ),
            ));
        }
        (Some(v), _) => return Err(invalid(name, "edge.role", v, "\"edge\" or \"shield\"")),
    };
    if role == Role::Shield && !shields.is_empty() {
        return Err(invalid(
            name,
            "edge.shields",
            &shields[0].url,
            "none on a shield: a shield fetches from the origins (one tier of shields)",
        ));
    }
    let public_url = match e.public_url {
        Some(u) => match parse_origin(&u) {
            Some(_) => u.trim_end_matches('/').to_string(),
            None => {
                return Err(invalid(
                    name,
                    "edge.public_url",
                    &u,
                    "http://host[:port] or https://host[:port] with a port of 1 to 65535 (80 or 443 when absent) and no path",
                ));
            }
        },
        None if listen.ip().is_unspecified() => {
            return Err(invalid(
                name,
                "edge.public_url",
                "(unset)",
                &format!(
                    "the URL viewers reach this node at, needed because edge.listen {listen} is a wildcard address"
                ),
            ));
        }
        None => format!("http://{listen}"),
    };
    let heartbeat_interval = match e.heartbeat_interval_ms.unwrap_or(250) {
        v @ 50..=60_000 => Duration::from_millis(v),
        v => {
            return Err(invalid(
                name,
                "edge.heartbeat_interval_ms",
                &v.to_string(),
                "50 to 60000 milliseconds",
            ));
        }
    };
    let capacity_rps = match e.capacity_rps.unwrap_or(50_000) {
        v @ 1..=100_000_000 => v,
        v => {
            return Err(invalid(
                name,
                "edge.capacity_rps",
                &v.to_string(),
                "1 to 100000000 requests/s",
            ));
        }
    };
    let region = match e.region {
        None => None,
        Some(r) => {
            let lower = r.trim().to_ascii_lowercase();
            if lower.is_empty()
                || lower.len() > 32
                || !lower
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(invalid(
                    name,
                    "edge.region",
                    &r,
                    "1 to 32 of a-z, 0-9 and '-', such as \"eu-west\"",
                ));
            }
            Some(lower)
        }
    };
    let prewarm_budget = match e.prewarm_budget.as_deref() {
        None => 256 << 20,
        Some(text) => match crate::parse_size(text) {
            Some(b) if b <= 1 << 40 => b,
            _ => {
                return Err(invalid(
                    name,
                    "edge.prewarm_budget",
                    text,
                    "a size a minute up to 1 TiB, such as \"256 MiB\" (\"0\" follows no hints)",
                ));
            }
        },
    };
    let head_timeout = within(
        name,
        "edge.head_timeout_ms",
        e.head_timeout_ms.unwrap_or(10_000),
        100,
        600_000,
        "milliseconds",
    )?;
    let keepalive_timeout = within(
        name,
        "edge.keepalive_timeout_ms",
        e.keepalive_timeout_ms.unwrap_or(30_000),
        100,
        3_600_000,
        "milliseconds",
    )?;
    let max_connections = within(
        name,
        "edge.max_connections",
        e.max_connections.unwrap_or(65_536),
        1,
        10_000_000,
        "connections",
    )?;
    let max_client_connections = match e.max_client_connections {
        None => max_connections.min(1024),
        Some(n) => within(
            name,
            "edge.max_client_connections",
            n,
            1,
            max_connections,
            "connections (no more than edge.max_connections)",
        )?,
    };
    Ok(EdgeConfig {
        id,
        listen,
        admin,
        role,
        public_url,
        heartbeat_interval,
        capacity_rps,
        region,
        prewarm_budget,
        admin_token,
        insecure_admin,
        head_timeout: Duration::from_millis(head_timeout),
        keepalive_timeout: Duration::from_millis(keepalive_timeout),
        max_connections,
        max_client_connections,
        origins,
        shields,
        purge_allow,
        threads,
        client_limit: rate_limit(
            name,
            ("edge.client_rate", e.client_rate),
            ("edge.client_burst", e.client_burst),
        )?,
        origin_limit: rate_limit(
            name,
            ("edge.origin_rate", e.origin_rate),
            ("edge.origin_burst", e.origin_burst),
        )?,
        max_header_bytes: match e.max_header_bytes.unwrap_or(65_536) {
            n @ 1024..=1_048_576 => n,
            n => {
                return Err(invalid(
                    name,
                    "edge.max_header_bytes",
                    &n.to_string(),
                    "1024 to 1048576 bytes",
                ));
            }
        },
        write_buffer_bytes: match e.write_buffer_bytes.unwrap_or(1460) {
            n @ 0..=4_194_304 => n,
            n => {
                return Err(invalid(
                    name,
                    "edge.write_buffer_bytes",
                    &n.to_string(),
                    "0 to 4194304 bytes",
                ));
            }
        },
        fast_hits: e.fast_hits.unwrap_or(true),
        origin_connect_timeout: ms(
            "edge.origin_connect_timeout_ms",
            e.origin_connect_timeout_ms,
            2_000,
        )?,
        origin_read_timeout: ms(
            "edge.origin_read_timeout_ms",
            e.origin_read_timeout_ms,
            30_000,
        )?,
        coalesce_timeout: ms("edge.coalesce_timeout_ms", e.coalesce_timeout_ms, 10_000)?,
        origin_fail_threshold: match e.origin_fail_threshold.unwrap_or(3) {
            n @ 1..=1000 => n,
            n => {
                return Err(invalid(
                    name,
                    "edge.origin_fail_threshold",
                    &n.to_string(),
                    "1 to 1000 failures",
                ));
            }
        },
        origin_probe_interval: match e.origin_probe_interval_ms {
            Some(0) => None,
            v => Some(ms("edge.origin_probe_interval_ms", v, 1_000)?),
        },
        origin_probe_path: match e.origin_probe_path {
            None => "/".to_string(),
            Some(p) if p.starts_with('/') && !p.chars().any(|c| c.is_control() || c == ' ') => p,
            Some(p) => {
                return Err(invalid(
                    name,
                    "edge.origin_probe_path",
                    &p,
                    "a path starting with '/', without spaces",
                ));
            }
        },
        upstream_ca_file: match e.upstream_ca_file {
            Some(f) if f.trim().is_empty() => {
                return Err(invalid(
                    name,
                    "edge.upstream_ca_file",
                    &f,
                    "the path of a PEM file of CA certificates",
                ));
            }
            f => f.map(std::path::PathBuf::from),
        },
    })
}

/// A (rate, burst) pair where rate 0 means no limit and burst defaults to the rate.
fn rate_limit(
    name: &Path,
    (rate_key, rate): (&'static str, Option<u32>),
    (burst_key, burst): (&'static str, Option<u32>),
) -> Result<Option<(u32, u32)>, ConfigError> {
    const MAX: u32 = 10_000_000;
    match (rate.unwrap_or(0), burst) {
        (0, None) => Ok(None),
        (0, Some(_)) => Err(invalid(
            name,
            burst_key,
            &format!("set without {rate_key}"),
            &format!("{burst_key} only with {rate_key} > 0"),
        )),
        (rate @ 1..=MAX, burst) => match burst.unwrap_or(rate) {
            b @ 1..=MAX => Ok(Some((rate, b))),
            b => Err(invalid(name, burst_key, &b.to_string(), "1 to 10000000")),
        },
        (rate, _) => Err(invalid(
            name,
            rate_key,
            &rate.to_string(),
            "0 (no limit) to 10000000 per second",
        )),
    }
}

#[cfg(test)]
mod tests;
