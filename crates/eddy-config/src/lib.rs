//! # eddy-config: the TOML configuration of an Eddy node
//!
//! Two layers: [`File`] is the external schema (serde, `deny_unknown_fields`, one doc comment per
//! key, exactly what an operator writes in `edge.toml`); [`Config`] is the validated internal form
//! the rest of Eddy consumes. [`load`] reads a file (or nothing), applies command-line
//! [`Overrides`], validates, and returns either a `Config` or a [`ConfigError`] that names the file,
//! the key and what is allowed.
//!
//! Must not touch: sockets, the cache, pingora. Validation never panics.

use bytesize::ByteSize;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration problem: which file, which key, what is wrong and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {file}: cannot read it: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema (unknown key, wrong type).
    #[error("config file {file}: {message}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A key has a value outside what is allowed.
    #[error("config {file}: key `{key}` = {value:?} is invalid: {allowed}")]
    Invalid {
        /// The file (or `<command line>`).
        file: PathBuf,
        /// Dotted key path.
        key: &'static str,
        /// The offending value.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// Several nodes' files disagree (checked by `eddy check` over a whole topology).
    #[error("topology: {file}: {detail}")]
    Topology {
        /// The file of the node at fault.
        file: PathBuf,
        /// What clashes with what, and the fix.
        detail: String,
    },
}

/// The external schema of a config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// The edge role.
    #[serde(default)]
    pub edge: EdgeFile,
    /// The cache of the edge.
    #[serde(default)]
    pub cache: CacheFile,
    /// The event bus.
    #[serde(default)]
    pub bus: Option<BusFile>,
    /// Traffic-spike detection.
    #[serde(default)]
    pub spike: SpikeFile,
    /// The request router role (`eddy router`).
    #[serde(default)]
    pub router: RouterFile,
    /// The live dashboard role (`eddy admin`).
    #[serde(default)]
    pub dashboard: DashboardFile,
    /// The control plane role (`eddy control`).
    #[serde(default)]
    pub control: ControlFile,
}

/// `[control]`: `eddy control` takes purge commands and reports when each is done everywhere.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlFile {
    /// Control plane id, unique in a deployment: its bus consumers are `control-<id>.*`
    /// (default `1`).
    pub id: Option<String>,
    /// Address of its API (default `127.0.0.1:8070`).
    pub listen: Option<String>,
    /// If set, `POST /purge` requires `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

/// Validated `[control]` plus the bus it uses.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Control plane id.
    pub id: String,
    /// API address.
    pub listen: SocketAddr,
    /// Bearer token for commands.
    pub token: Option<String>,
    /// The bus.
    pub bus: BusConfig,
}

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

/// `[dashboard]`: `eddy admin` serves the live dashboard and the status API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardFile {
    /// Dashboard id, unique in a deployment: its bus consumers are `dashboard-<id>.*` (default
    /// `1`).
    pub id: Option<String>,
    /// Address of the dashboard (default `127.0.0.1:8888`).
    pub listen: Option<String>,
}

/// `[spike]`: per-object and per-host request rates against a slow baseline.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeFile {
    /// Detect spikes (default true).
    pub enabled: Option<bool>,
    /// A rate this many times its baseline is a spike (default 10).
    pub factor: Option<f64>,
    /// Rates below this many requests/s are never spikes (default 200).
    pub min_rate: Option<f64>,
    /// Time constant of the baseline, such as "60s" (default 60 s).
    pub baseline_window: Option<String>,
    /// Least time between two reports for one key, such as "30s" (default 30 s).
    pub cooldown: Option<String>,
}

/// `[bus]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusFile {
    /// `"embedded"` (default), `"kafka"`, `"rabbitmq"` or `"nats"`.
    pub kind: Option<String>,
    /// Broker URL for `nats` (`nats://127.0.0.1:4222`) and `rabbitmq`
    /// (`amqp://guest:guest@127.0.0.1:5672/%2f`).
    pub url: Option<String>,
    /// Bootstrap servers for `kafka` (`127.0.0.1:9092`, comma-separated).
    pub brokers: Option<String>,
    /// Replication factor of the topics Eddy creates on `kafka` (default 1).
    pub replication: Option<i32>,
    /// `kafka`: how long the broker may hold an empty fetch, in ms (default 10). Raise it to
    /// 100-500 on Apache Kafka (which answers as soon as a record arrives) to cut idle fetches.
    pub fetch_wait_ms: Option<u64>,
    /// Directory of the embedded log (default `./eddy-bus`).
    pub dir: Option<PathBuf>,
    /// When the embedded log fsyncs: `"always"`, `"never"` or an interval such as `"10ms"`.
    pub fsync: Option<String>,
}

/// `[edge]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeFile {
    /// Node id, unique in a deployment (default: `edge-1`).
    pub id: Option<String>,
    /// Address viewers connect to, HTTP/1.1 and h2c on one port (default `127.0.0.1:8080`).
    pub listen: Option<String>,
    /// Admin API and `/metrics` address (default `127.0.0.1:9080`, loopback only unless changed).
    pub admin: Option<String>,
    /// If set, the admin API requires `Authorization: Bearer <token>` (not for `/metrics`).
    pub admin_token: Option<String>,
    /// Origins as `http://host:port` URLs; the first healthy one is used, the next on failure.
    pub origins: Option<Vec<String>>,
    /// Shield edges (`http://host:port`): a miss goes to the shield that owns the object by
    /// rendezvous hashing of its URL, then to the next shield, then to the origins. Empty (the
    /// default) for a shield itself or an edge that fetches from origins directly.
    pub shields: Option<Vec<String>>,
    /// Client networks allowed to send `PURGE` (default: loopback only).
    pub purge_allow: Option<Vec<String>>,
    /// Worker threads for the proxy (default: number of CPUs).
    pub threads: Option<usize>,
    /// Largest request header block accepted, in bytes; larger gets 431 (default 65536).
    pub max_header_bytes: Option<usize>,
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
    /// How long a request waits for another request's fill of the same object before fetching
    /// itself, in milliseconds (default 10000).
    pub coalesce_timeout_ms: Option<u64>,
    /// `edge` (default: serves viewers; the router sends viewers here) or `shield` (serves other
    /// edges' misses; never routed to). `eddy shield` sets it.
    pub role: Option<String>,
    /// The URL viewers reach this node at, announced in heartbeats for the router (default
    /// `http://<listen>`; required when `listen` is a wildcard address such as 0.0.0.0).
    pub public_url: Option<String>,
    /// How often the node publishes its `edge.health` heartbeat, in milliseconds (default 250).
    pub heartbeat_interval_ms: Option<u64>,
    /// Requests/s this node is sized for; heartbeats report load as requests/s over this
    /// (default 50000).
    pub capacity_rps: Option<u32>,
}

/// `[cache]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    /// Memory tier size, e.g. `"256 MiB"` (default 256 MiB).
    pub memory_size: Option<String>,
    /// Largest object kept in memory, e.g. `"16 MiB"` (default 16 MiB or the memory size).
    pub memory_max_object: Option<String>,
    /// Disk tier directory; no disk tier when absent.
    pub dir: Option<PathBuf>,
    /// Disk tier size, e.g. `"10 GiB"` (default 1 GiB when `dir` is set).
    pub disk_size: Option<String>,
    /// fsync every object file before it becomes visible (default false).
    pub fsync: Option<bool>,
    /// Eviction policy: `"s3fifo"` (default) or `"lru"`.
    pub policy: Option<String>,
    /// Admission policy: `"always"` (default) or `"second-hit"`.
    pub admission: Option<String>,
    /// Upper bound for heuristic freshness in seconds (default 86400).
    pub max_heuristic_ttl_s: Option<u64>,
    /// Seconds past freshness an object may be served when every origin fails, for responses
    /// without their own `stale-if-error` and not forbidding stale (default 0: only what the
    /// origin allows). The response says so: `X-Cache: STALE`.
    pub stale_on_error_s: Option<u64>,
    /// Range requests are fetched and cached as blocks of this size, so a range of a large file
    /// never pulls the whole file from the origin (default "4 MiB"; "0" turns slicing off).
    pub slice_size: Option<String>,
}

/// Command-line flags that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--origin` (repeatable); replaces the file's list when given.
    pub origins: Vec<String>,
    /// `--admin`.
    pub admin: Option<String>,
    /// `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// `--memory-size`.
    pub memory_size: Option<String>,
    /// `--disk-size`.
    pub disk_size: Option<String>,
    /// `--id`.
    pub id: Option<String>,
    /// `--bus-dir`: use the embedded bus in this directory.
    pub bus_dir: Option<PathBuf>,
    /// The role the command runs (`eddy shield` sets [`Role::Shield`]); a file that says
    /// otherwise is an error.
    pub role: Option<Role>,
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

/// Validated `[dashboard]` plus the bus it listens on.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Dashboard id.
    pub id: String,
    /// Dashboard address.
    pub listen: SocketAddr,
    /// The bus it reads.
    pub bus: BusConfig,
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
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The edge role.
    pub edge: EdgeConfig,
    /// Its cache.
    pub cache: CacheConfig,
    /// The event bus, if configured.
    pub bus: Option<BusConfig>,
    /// Traffic-spike detection.
    pub spike: SpikeSettings,
}

/// Validated `[spike]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeSettings {
    /// Whether edges detect spikes.
    pub enabled: bool,
    /// Rate / baseline ratio that is a spike.
    pub factor: f64,
    /// Floor in requests/s.
    pub min_rate: f64,
    /// Baseline EWMA time constant.
    pub baseline_window: Duration,
    /// Least time between reports for one key.
    pub cooldown: Duration,
}

/// When the embedded log fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Every record.
    Always,
    /// Never explicitly.
    Never,
    /// Every interval.
    Every(Duration),
}

/// Validated `[bus]`.
#[derive(Debug, Clone)]
pub enum BusConfig {
    /// The embedded durable log.
    Embedded {
        /// Log directory.
        dir: PathBuf,
        /// fsync policy.
        fsync: Fsync,
    },
    /// NATS JetStream.
    Nats {
        /// Server URL.
        url: String,
    },
    /// RabbitMQ (stream queues over AMQP 0-9-1).
    Rabbitmq {
        /// `amqp://` URL with credentials and vhost.
        url: String,
    },
    /// Kafka.
    Kafka {
        /// Bootstrap servers, `host:port[,host:port]`.
        brokers: String,
        /// Replication factor of created topics.
        replication: i32,
        /// Longest wait of an empty fetch.
        fetch_wait: Duration,
    },
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
    /// Admin bearer token.
    pub admin_token: Option<String>,
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
    /// Coalescing wait.
    pub coalesce_timeout: Duration,
}

/// Validated `[cache]`.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Memory bytes.
    pub memory_bytes: u64,
    /// Largest in-memory object.
    pub memory_max_object: u64,
    /// Disk tier.
    pub disk: Option<DiskConfig>,
    /// Eviction policy.
    pub policy: String,
    /// Admission policy.
    pub admission: String,
    /// Heuristic freshness cap.
    pub max_heuristic_ttl: Duration,
    /// Stale-on-error window for responses without their own.
    pub stale_on_error: Duration,
    /// Block size for range requests; 0 = off.
    pub slice_size: u64,
}

/// Validated disk tier settings.
#[derive(Debug, Clone)]
pub struct DiskConfig {
    /// Directory.
    pub dir: PathBuf,
    /// Bytes.
    pub bytes: u64,
    /// fsync before publish.
    pub fsync: bool,
}

/// Parse a size such as `"256 MiB"`, `"1GB"` or `"1048576"`.
pub fn parse_size(s: &str) -> Option<u64> {
    s.trim().parse::<ByteSize>().ok().map(|b| b.as_u64())
}

/// Load `path` (or defaults when `None`), apply `overrides`, validate.
pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let (file, name) = read_file(path)?;
    validate(file, overrides, &name)
}

/// Parse TOML text into the external schema.
pub fn parse(text: &str, name: &Path) -> Result<File, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: name.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

fn invalid(file: &Path, key: &'static str, value: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_path_buf(),
        key,
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

fn addr(file: &Path, key: &'static str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse()
        .map_err(|_| invalid(file, key, v, "an IP address and port, e.g. 127.0.0.1:8080"))
}

fn size(file: &Path, key: &'static str, v: &str) -> Result<u64, ConfigError> {
    parse_size(v).ok_or_else(|| {
        invalid(
            file,
            key,
            v,
            "a size such as \"256 MiB\", \"10 GiB\" or a number of bytes",
        )
    })
}

/// Parse an origin URL `http://host:port`.
pub fn parse_origin(v: &str) -> Option<Origin> {
    let uri: http::Uri = v.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
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
        port: uri.port_u16().unwrap_or(80),
    })
}

/// Validate the external schema plus overrides.
pub fn validate(file: File, o: &Overrides, name: &Path) -> Result<Config, ConfigError> {
    let e = file.edge;
    let c = file.cache;
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
                    "http://host:port with no path (TLS origins are not supported yet)",
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
                    "http://host:port of another Eddy edge, with no path",
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
                    "http://host:port with no path",
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
    let edge = EdgeConfig {
        id,
        listen,
        admin,
        role,
        public_url,
        heartbeat_interval,
        capacity_rps,
        admin_token: e.admin_token.filter(|t| !t.is_empty()),
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
    };

    let memory_bytes = size(
        name,
        "cache.memory_size",
        o.memory_size
            .as_deref()
            .or(c.memory_size.as_deref())
            .unwrap_or("256 MiB"),
    )?;
    if memory_bytes < 1 << 20 {
        return Err(invalid(
            name,
            "cache.memory_size",
            &memory_bytes.to_string(),
            "at least 1 MiB",
        ));
    }
    let memory_max_object = match c.memory_max_object.as_deref() {
        Some(v) => size(name, "cache.memory_max_object", v)?,
        None => (16 << 20).min(memory_bytes / 4),
    };
    let dir = o.cache_dir.clone().or(c.dir);
    let disk = match dir {
        Some(dir) => {
            let bytes = size(
                name,
                "cache.disk_size",
                o.disk_size
                    .as_deref()
                    .or(c.disk_size.as_deref())
                    .unwrap_or("1 GiB"),
            )?;
            if bytes < 1 << 20 {
                return Err(invalid(
                    name,
                    "cache.disk_size",
                    &bytes.to_string(),
                    "at least 1 MiB",
                ));
            }
            Some(DiskConfig {
                dir,
                bytes,
                fsync: c.fsync.unwrap_or(false),
            })
        }
        None => None,
    };
    let policy = c.policy.unwrap_or_else(|| "s3fifo".into());
    if !matches!(policy.as_str(), "s3fifo" | "lru") {
        return Err(invalid(
            name,
            "cache.policy",
            &policy,
            "\"s3fifo\" or \"lru\"",
        ));
    }
    let admission = c.admission.unwrap_or_else(|| "always".into());
    if !matches!(admission.as_str(), "always" | "second-hit") {
        return Err(invalid(
            name,
            "cache.admission",
            &admission,
            "\"always\" or \"second-hit\"",
        ));
    }
    let cache = CacheConfig {
        memory_bytes,
        memory_max_object,
        disk,
        policy,
        admission,
        max_heuristic_ttl: Duration::from_secs(c.max_heuristic_ttl_s.unwrap_or(86_400)),
        stale_on_error: match c.stale_on_error_s.unwrap_or(0) {
            s @ 0..=31_536_000 => Duration::from_secs(s),
            s => {
                return Err(invalid(
                    name,
                    "cache.stale_on_error_s",
                    &s.to_string(),
                    "0 to 31536000 seconds",
                ));
            }
        },
        slice_size: match size(
            name,
            "cache.slice_size",
            c.slice_size.as_deref().unwrap_or("4 MiB"),
        )? {
            0 => 0,
            n if (64 << 10..=1 << 30).contains(&n) => n,
            n => {
                return Err(invalid(
                    name,
                    "cache.slice_size",
                    &n.to_string(),
                    "0 (off) or 64 KiB to 1 GiB",
                ));
            }
        },
    };
    let bus = match (file.bus, &o.bus_dir) {
        (None, None) => None,
        (None, Some(dir)) => Some(BusConfig::Embedded {
            dir: dir.clone(),
            fsync: Fsync::Every(Duration::from_millis(10)),
        }),
        (Some(b), dir) => Some(bus_config(name, b, dir.as_ref())?),
    };
    let spike = spike_settings(name, file.spike)?;
    Ok(Config {
        edge,
        cache,
        bus,
        spike,
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

fn spike_settings(name: &Path, f: SpikeFile) -> Result<SpikeSettings, ConfigError> {
    let factor = f.factor.unwrap_or(10.0);
    if !(factor.is_finite() && (1.5..=1000.0).contains(&factor)) {
        return Err(invalid(
            name,
            "spike.factor",
            &factor.to_string(),
            "a ratio of 1.5 to 1000",
        ));
    }
    let min_rate = f.min_rate.unwrap_or(200.0);
    if !(min_rate.is_finite() && (1.0..=10_000_000.0).contains(&min_rate)) {
        return Err(invalid(
            name,
            "spike.min_rate",
            &min_rate.to_string(),
            "1 to 10000000 requests/s",
        ));
    }
    let dur = |key: &'static str,
               v: Option<String>,
               default: u64|
     -> Result<Duration, ConfigError> {
        match v {
            None => Ok(Duration::from_secs(default)),
            Some(text) => match humantime::parse_duration(&text) {
                Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(86_400) => Ok(d),
                _ => Err(invalid(
                    name,
                    key,
                    &text,
                    "a duration of 1s to 24h, such as \"60s\"",
                )),
            },
        }
    };
    Ok(SpikeSettings {
        enabled: f.enabled.unwrap_or(true),
        factor,
        min_rate,
        baseline_window: dur("spike.baseline_window", f.baseline_window, 60)?,
        cooldown: dur("spike.cooldown", f.cooldown, 30)?,
    })
}

/// Check the cache nodes of one deployment together, as `eddy check --config a.toml --config
/// b.toml ...` does: node ids are unique; no two nodes on one host share a port; every shield an
/// edge lists is a node whose role is `shield`, found by its listen address or public URL.
pub fn check_topology(nodes: &[(PathBuf, Config)]) -> Result<(), ConfigError> {
    let topo = |file: &PathBuf, detail: String| ConfigError::Topology {
        file: file.clone(),
        detail,
    };
    let mut ids: std::collections::HashMap<&str, &PathBuf> = std::collections::HashMap::new();
    let mut ports: std::collections::HashMap<SocketAddr, (&PathBuf, &'static str)> =
        std::collections::HashMap::new();
    for (file, c) in nodes {
        if let Some(other) = ids.insert(&c.edge.id, file) {
            return Err(topo(
                file,
                format!(
                    "edge.id {:?} is also the id of {}; every node needs its own id (purge catch-up and routing key on it)",
                    c.edge.id,
                    other.display()
                ),
            ));
        }
        for (addr, what) in [(c.edge.listen, "edge.listen"), (c.edge.admin, "edge.admin")] {
            // Wildcard and specific addresses on one port clash too.
            let clash = ports.iter().find(|(a, _)| {
                a.port() == addr.port()
                    && (*a == &addr || a.ip().is_unspecified() || addr.ip().is_unspecified())
            });
            if let Some((a, (other, key))) = clash {
                return Err(topo(
                    file,
                    format!(
                        "{what} {addr} clashes with {key} {a} of {}; give each node its own ports",
                        other.display()
                    ),
                ));
            }
            ports.insert(addr, (file, what));
        }
    }
    let find = |o: &Origin| {
        nodes.iter().find(|(_, c)| {
            let by_listen = o.port == c.edge.listen.port()
                && o.host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip == c.edge.listen.ip());
            let by_url = parse_origin(&c.edge.public_url)
                .is_some_and(|p| p.host.eq_ignore_ascii_case(&o.host) && p.port == o.port);
            by_listen || by_url
        })
    };
    for (file, c) in nodes {
        for s in &c.edge.shields {
            match find(s) {
                None => {
                    return Err(topo(
                        file,
                        format!(
                            "edge.shields lists {} but no node in this topology listens there; add the shield's file to the check or fix the address",
                            s.url
                        ),
                    ));
                }
                Some((other, sc)) if sc.edge.role != Role::Shield => {
                    return Err(topo(
                        file,
                        format!(
                            "edge.shields lists {}, which is {} ({}), an edge, not a shield; set role = \"shield\" there or list a shield",
                            s.url,
                            sc.edge.id,
                            other.display()
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// What a config file configures: `"router"`, `"dashboard"` or `"control"` when it has that section and no
/// `[edge]`, else `"node"` (an edge or shield).
pub fn file_role(path: &Path) -> Result<&'static str, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        file: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    Ok(if table.contains_key("edge") {
        "node"
    } else if table.contains_key("router") {
        "router"
    } else if table.contains_key("dashboard") {
        "dashboard"
    } else if table.contains_key("control") {
        "control"
    } else {
        "node"
    })
}

/// Read a role file (router, dashboard): `None` is all defaults.
fn read_file(path: Option<&Path>) -> Result<(File, PathBuf), ConfigError> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                file: p.to_path_buf(),
                source,
            })?;
            Ok((parse(&text, p)?, p.to_path_buf()))
        }
        None => Ok((
            File::default(),
            PathBuf::from("<defaults and command line>"),
        )),
    }
}

/// The bus a role that only consumes events needs: without one it would see nothing.
fn role_bus(
    name: &Path,
    role: &str,
    bus: Option<BusFile>,
    bus_dir: Option<&PathBuf>,
) -> Result<BusConfig, ConfigError> {
    match (bus, bus_dir) {
        (Some(b), dir) => bus_config(name, b, dir),
        (None, Some(dir)) => Ok(BusConfig::Embedded {
            dir: dir.clone(),
            fsync: Fsync::Every(Duration::from_millis(10)),
        }),
        (None, None) => Err(invalid(
            name,
            "bus",
            "(missing)",
            &format!(
                "a [bus] section: {role} learns about edges from their events (kind = \"nats\", \"kafka\" or \"rabbitmq\" across machines)"
            ),
        )),
    }
}

/// A role's id: letters, digits, '-' and '_' (default `1`).
fn node_id(name: &Path, key: &'static str, id: Option<String>) -> Result<String, ConfigError> {
    let id = id.unwrap_or_else(|| "1".into());
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(name, key, &id, "letters, digits, '-' and '_'"));
    }
    Ok(id)
}

/// Load the `eddy control` role: `[control]` and `[bus]` (`listen` and `bus_dir` override).
pub fn load_control(
    path: Option<&Path>,
    listen: Option<&str>,
    bus_dir: Option<&PathBuf>,
) -> Result<ControlConfig, ConfigError> {
    let (file, name) = read_file(path)?;
    let c = file.control;
    let listen = addr(
        &name,
        "control.listen",
        listen.or(c.listen.as_deref()).unwrap_or("127.0.0.1:8070"),
    )?;
    Ok(ControlConfig {
        id: node_id(&name, "control.id", c.id)?,
        listen,
        token: c.token.filter(|t| !t.is_empty()),
        bus: role_bus(&name, "the control plane", file.bus, bus_dir)?,
    })
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

/// Load the `eddy admin` role: `[dashboard]` and `[bus]` (`listen` and `bus_dir` override).
pub fn load_dashboard(
    path: Option<&Path>,
    listen: Option<&str>,
    bus_dir: Option<&PathBuf>,
) -> Result<DashboardConfig, ConfigError> {
    let (file, name) = read_file(path)?;
    let listen = addr(
        &name,
        "dashboard.listen",
        listen
            .or(file.dashboard.listen.as_deref())
            .unwrap_or("127.0.0.1:8888"),
    )?;
    Ok(DashboardConfig {
        id: node_id(&name, "dashboard.id", file.dashboard.id)?,
        listen,
        bus: role_bus(&name, "the dashboard", file.bus, bus_dir)?,
    })
}

/// Validate `[bus]`; `dir_override` is `--bus-dir` (meaningful for the embedded log only).
fn bus_config(
    name: &Path,
    b: BusFile,
    dir_override: Option<&PathBuf>,
) -> Result<BusConfig, ConfigError> {
    let kind = b.kind.clone().unwrap_or_else(|| "embedded".into());
    // A key that belongs to another kind is a mistake worth stopping for.
    let only = |key: &'static str, set: bool, kinds: &[&str]| -> Result<(), ConfigError> {
        if set && !kinds.contains(&kind.as_str()) {
            return Err(invalid(
                name,
                key,
                &format!("set with bus.kind = {kind:?}"),
                &format!("{key} only with bus.kind = {}", kinds.join(" or ")),
            ));
        }
        Ok(())
    };
    only("bus.dir", b.dir.is_some(), &["embedded"])?;
    only("bus.fsync", b.fsync.is_some(), &["embedded"])?;
    only("bus.url", b.url.is_some(), &["nats", "rabbitmq"])?;
    only("bus.brokers", b.brokers.is_some(), &["kafka"])?;
    only("bus.replication", b.replication.is_some(), &["kafka"])?;
    only("bus.fetch_wait_ms", b.fetch_wait_ms.is_some(), &["kafka"])?;
    let url_with = |default: &str, schemes: &[&str], example: &str| {
        let url = b.url.clone().unwrap_or_else(|| default.to_string());
        if schemes.iter().any(|s| url.starts_with(s)) {
            Ok(url)
        } else {
            Err(invalid(name, "bus.url", &url, example))
        }
    };
    match kind.as_str() {
        "nats" => Ok(BusConfig::Nats {
            url: url_with(
                "nats://127.0.0.1:4222",
                &["nats://"],
                "a nats:// URL such as nats://127.0.0.1:4222",
            )?,
        }),
        "rabbitmq" => Ok(BusConfig::Rabbitmq {
            url: url_with(
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                &["amqp://", "amqps://"],
                "an amqp:// URL such as amqp://guest:guest@127.0.0.1:5672/%2f",
            )?,
        }),
        "kafka" => {
            let brokers = b.brokers.unwrap_or_else(|| "127.0.0.1:9092".into());
            let ok = !brokers.is_empty()
                && brokers.split(',').all(|hp| {
                    hp.trim()
                        .rsplit_once(':')
                        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                });
            if !ok {
                return Err(invalid(
                    name,
                    "bus.brokers",
                    &brokers,
                    "host:port, comma-separated, such as 127.0.0.1:9092",
                ));
            }
            let replication = b.replication.unwrap_or(1);
            if !(1..=7).contains(&replication) {
                return Err(invalid(
                    name,
                    "bus.replication",
                    &replication.to_string(),
                    "a replication factor of 1 to 7 for the topics Eddy creates",
                ));
            }
            let fetch_wait_ms = b.fetch_wait_ms.unwrap_or(10);
            if !(1..=5_000).contains(&fetch_wait_ms) {
                return Err(invalid(
                    name,
                    "bus.fetch_wait_ms",
                    &fetch_wait_ms.to_string(),
                    "1 to 5000 (milliseconds)",
                ));
            }
            Ok(BusConfig::Kafka {
                brokers,
                replication,
                fetch_wait: Duration::from_millis(fetch_wait_ms),
            })
        }
        "embedded" => {
            let fsync_text = b.fsync.unwrap_or_else(|| "10ms".into());
            let fsync = match fsync_text.as_str() {
                "always" => Fsync::Always,
                "never" => Fsync::Never,
                other => match other.strip_suffix("ms").and_then(|n| n.parse::<u64>().ok()) {
                    Some(ms) if (1..=60_000).contains(&ms) => {
                        Fsync::Every(Duration::from_millis(ms))
                    }
                    _ => {
                        return Err(invalid(
                            name,
                            "bus.fsync",
                            other,
                            "\"always\", \"never\" or an interval of 1 to 60000 ms such as \"10ms\"",
                        ));
                    }
                },
            };
            Ok(BusConfig::Embedded {
                dir: dir_override
                    .cloned()
                    .or(b.dir)
                    .unwrap_or_else(|| PathBuf::from("eddy-bus")),
                fsync,
            })
        }
        _ => Err(invalid(
            name,
            "bus.kind",
            &kind,
            "\"embedded\", \"kafka\", \"rabbitmq\" or \"nats\"",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(origin: &str) -> Overrides {
        Overrides {
            origins: vec![origin.into()],
            ..Default::default()
        }
    }

    #[test]
    fn flags_alone_are_enough() -> Result<(), ConfigError> {
        let c = load(
            None,
            &Overrides {
                listen: Some("127.0.0.1:8081".into()),
                ..ov("http://127.0.0.1:9000")
            },
        )?;
        assert_eq!(c.edge.listen.port(), 8081);
        assert_eq!(c.edge.origins[0].port, 9000);
        assert!(c.cache.disk.is_none());
        Ok(())
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let err = parse(
            "[edge]\nlisten = \"127.0.0.1:1\"\nlsiten = 3\n",
            Path::new("edge.toml"),
        );
        let msg = err.map(|_| String::new()).unwrap_or_else(|e| e.to_string());
        assert!(msg.contains("edge.toml") && msg.contains("lsiten"), "{msg}");
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_allowed() {
        let cases = [
            ("[edge]\norigins=[\"ftp://x\"]", "edge.origins"),
            (
                "[edge]\norigins=[\"http://a:1\"]\nlisten=\"nope\"",
                "edge.listen",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[cache]\nmemory_size=\"lots\"",
                "cache.memory_size",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[cache]\npolicy=\"arc\"",
                "cache.policy",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\npurge_allow=[\"10.0.0.0/99\"]",
                "edge.purge_allow",
            ),
            ("[edge]\n", "edge.origins"),
            (
                "[edge]\norigins=[\"http://a:1\"]\nclient_burst=5",
                "edge.client_burst",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\norigin_rate=20000000",
                "edge.origin_rate",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\nlisten=\"127.0.0.1:8080\"\nshields=[\"http://127.0.0.1:8080\"]",
                "edge.shields",
            ),
            (
                "[edge]\norigins=[\"http://localhost:8080\"]\nlisten=\"127.0.0.1:8080\"",
                "edge.origins",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\nshields=[\"http://s:1\", \"http://s:1\"]",
                "edge.shields",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\nrole=\"mid\"",
                "edge.role",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\nrole=\"shield\"\nshields=[\"http://s:1\"]",
                "edge.shields",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\nlisten=\"0.0.0.0:8080\"",
                "edge.public_url",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\npublic_url=\"http://e:1/x\"",
                "edge.public_url",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\nheartbeat_interval_ms=5",
                "edge.heartbeat_interval_ms",
            ),
        ];
        for (text, key) in cases {
            let r = parse(text, Path::new("e.toml"))
                .and_then(|f| validate(f, &Overrides::default(), Path::new("e.toml")));
            match r {
                Ok(_) => panic!("{text} should fail"),
                Err(e) => {
                    let m = e.to_string();
                    assert!(m.contains(key) && m.contains("e.toml"), "{m}");
                }
            }
        }
    }

    fn bus_of(text: &str) -> Result<Option<BusConfig>, ConfigError> {
        let text = format!("[edge]\norigins=[\"http://a:1\"]\n[bus]\n{text}");
        parse(&text, Path::new("b.toml"))
            .and_then(|f| validate(f, &Overrides::default(), Path::new("b.toml")))
            .map(|c| c.bus)
    }

    #[test]
    fn every_bus_kind_validates() -> Result<(), ConfigError> {
        assert!(matches!(
            bus_of("kind = \"kafka\"\nbrokers = \"10.0.0.1:9092,10.0.0.2:9092\"\nreplication = 3")?,
            Some(BusConfig::Kafka { replication: 3, .. })
        ));
        assert!(matches!(
            bus_of("kind = \"rabbitmq\"")?,
            Some(BusConfig::Rabbitmq { url }) if url.starts_with("amqp://")
        ));
        assert!(matches!(
            bus_of("kind = \"nats\"\nurl = \"nats://10.0.0.1:4222\"")?,
            Some(BusConfig::Nats { .. })
        ));
        assert!(matches!(
            bus_of("dir = \"/tmp/x\"\nfsync = \"always\"")?,
            Some(BusConfig::Embedded {
                fsync: Fsync::Always,
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn bad_bus_settings_name_the_key() {
        let cases = [
            ("kind = \"pulsar\"", "bus.kind"),
            ("kind = \"kafka\"\nbrokers = \"nohost\"", "bus.brokers"),
            ("kind = \"kafka\"\nreplication = 0", "bus.replication"),
            ("kind = \"kafka\"\nfetch_wait_ms = 0", "bus.fetch_wait_ms"),
            ("kind = \"nats\"\n[spike]\nfactor = 1.0", "spike.factor"),
            (
                "kind = \"nats\"\n[spike]\nbaseline_window = \"soon\"",
                "spike.baseline_window",
            ),
            ("kind = \"kafka\"\nurl = \"nats://x:1\"", "bus.url"),
            ("kind = \"rabbitmq\"\nurl = \"http://x\"", "bus.url"),
            ("kind = \"nats\"\nfsync = \"always\"", "bus.fsync"),
            ("kind = \"embedded\"\nbrokers = \"a:1\"", "bus.brokers"),
        ];
        for (text, key) in cases {
            match bus_of(text) {
                Ok(_) => panic!("{text} should fail"),
                Err(e) => {
                    let m = e.to_string();
                    assert!(m.contains(key) && m.contains("b.toml"), "{text}: {m}");
                }
            }
        }
    }

    #[test]
    fn roles_and_their_files() -> Result<(), ConfigError> {
        let dir = tempfile::tempdir().map_err(|source| ConfigError::Read {
            file: PathBuf::from("tempdir"),
            source,
        })?;
        let write = |name: &str, text: &str| -> PathBuf {
            let p = dir.path().join(name);
            std::fs::write(&p, text).ok();
            p
        };
        // A shield file run by `eddy edge` (role from the command) is an error naming the key.
        let shield = write(
            "shield.toml",
            "[edge]\nrole=\"shield\"\norigins=[\"http://a:1\"]\n",
        );
        let as_edge = Overrides {
            role: Some(Role::Edge),
            ..Default::default()
        };
        let msg = load(Some(&shield), &as_edge)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            msg.contains("edge.role") && msg.contains("eddy edge"),
            "{msg}"
        );
        let c = load(Some(&shield), &Overrides::default())?;
        assert_eq!(c.edge.role, Role::Shield);
        assert_eq!(c.edge.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.edge.heartbeat_interval, Duration::from_millis(250));

        // The router needs a bus; with one, defaults fill in.
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
        let d = load_dashboard(None, Some("127.0.0.1:8899"), Some(&dir.path().join("bus")))?;
        assert_eq!(d.listen.port(), 8899);
        assert!(matches!(d.bus, BusConfig::Embedded { .. }));
        Ok(())
    }

    #[test]
    fn a_topology_names_duplicate_ids_port_clashes_and_unknown_shields() -> Result<(), ConfigError>
    {
        let node = |id: &str, listen: &str, admin: &str, role: Option<Role>, shields: &[&str]| {
            let mut c = load(
                None,
                &Overrides {
                    id: Some(id.into()),
                    listen: Some(listen.into()),
                    admin: Some(admin.into()),
                    role,
                    ..ov("http://10.0.0.9:80")
                },
            )?;
            c.edge.shields = shields.iter().filter_map(|s| parse_origin(s)).collect();
            Ok::<_, ConfigError>((PathBuf::from(format!("{id}.toml")), c))
        };
        let shield = node(
            "shield-1",
            "127.0.0.1:8090",
            "127.0.0.1:9090",
            Some(Role::Shield),
            &[],
        )?;
        let e1 = node(
            "edge-1",
            "127.0.0.1:8080",
            "127.0.0.1:9080",
            None,
            &["http://127.0.0.1:8090"],
        )?;
        let e2 = node(
            "edge-2",
            "127.0.0.1:8081",
            "127.0.0.1:9081",
            None,
            &["http://127.0.0.1:8090"],
        )?;
        check_topology(&[shield.clone(), e1.clone(), e2.clone()])?;

        let msg = |nodes: &[(PathBuf, Config)]| {
            check_topology(nodes)
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string())
        };
        let mut dup = e2.clone();
        dup.1.edge.id = "edge-1".into();
        let m = msg(&[shield.clone(), e1.clone(), dup]);
        assert!(m.contains("\"edge-1\"") && m.contains("edge-1.toml"), "{m}");

        let (p3, mut c3) = node("edge-3", "127.0.0.1:8083", "127.0.0.1:9083", None, &[])?;
        c3.edge.listen = SocketAddr::from(([0, 0, 0, 0], 8081));
        let clash = (p3, c3);
        let m = msg(&[e2.clone(), clash]);
        assert!(m.contains("8081") && m.contains("edge-2.toml"), "{m}");

        let m = msg(&[e1.clone(), e2.clone()]);
        assert!(m.contains("127.0.0.1:8090") && m.contains("no node"), "{m}");

        let pointed_at_edge = node(
            "edge-4",
            "127.0.0.1:8084",
            "127.0.0.1:9084",
            None,
            &["http://127.0.0.1:8081"],
        )?;
        let mut plain = e2;
        plain.1.edge.shields.clear();
        let m = msg(&[plain, pointed_at_edge]);
        assert!(
            m.contains("an edge, not a shield") && m.contains("edge-2"),
            "{m}"
        );
        Ok(())
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1 MiB"), Some(1 << 20));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("many"), None);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s, Path::new("x.toml")).map(|f| validate(f, &Overrides::default(), Path::new("x.toml")));
        }
    }
}
