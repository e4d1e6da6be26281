//! `eddy`: the one binary.
//!
//! - `eddy up`: a demo origin and one edge in front of it on fixed loopback ports.
//! - `eddy edge --config edge.toml [flags]`: one edge node.
//! - `eddy check --config edge.toml`: validate a config file and exit.
//!
//! Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration or usage.

mod purge;
mod sign;
mod sim;
mod status;
mod token;

use eddy_bus::embedded::{EmbeddedBus, EmbeddedOptions, FsyncPolicy};
use std::sync::Arc;

// The request path allocates small, short-lived objects on every request; mimalloc's
// thread-local free lists took glibc malloc's ~12 % of a 1 KiB hit profile down (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use eddy_config::{Config, Overrides};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "eddy",
    version,
    about = "Eddy: an event-driven CDN and streaming delivery platform"
)]
struct Cli {
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a demo origin and an edge in front of it on loopback, print what to try.
    Up(UpArgs),
    /// Run an edge cache node (serves viewers).
    Edge(EdgeArgs),
    /// Run a shield cache node (serves edges' misses from the origins; never routed to).
    Shield(EdgeArgs),
    /// Run the request router: sends viewers to a healthy, lightly loaded edge.
    Router(RoleArgs),
    /// Run the live dashboard and status API over the fleet's events.
    Admin(RoleArgs),
    /// Run the control plane: purge commands in, and when each is done on every live edge.
    Control(ControlArgs),
    /// Print the fleet's state from a dashboard's status API.
    Status {
        /// The dashboard (`eddy admin`) address.
        #[arg(long, default_value = "127.0.0.1:8888")]
        admin: String,
        /// Print the raw JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Purge through an edge's admin API (published to every edge when it runs with a bus).
    Purge(purge::PurgeArgs),
    /// Print a URL with a signed token for a `[[signed_urls]]` route.
    Sign(sign::SignArgs),
    /// Make a new API token: the token on stdout, its `[[api_tokens]]` table on stderr.
    Token(token::TokenArgs),
    /// Simulate the edge's eviction policies (and the offline optimum) over a trace or a
    /// synthetic CDN workload: miss ratios by cache size, as a table, CSV and SVG plot.
    Sim(sim::SimArgs),
    /// Run only the demo origin (for benches and experiments).
    Origin {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
    },
    /// Validate config files and print the result; given every node's file, also check the
    /// topology (unique ids, no port clashes, shields that exist and are shields).
    Check {
        /// Config file (repeatable).
        #[arg(long, required = true)]
        config: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct UpArgs {
    /// Where `eddy up` keeps its state (the embedded bus, each node's disk cache). Default:
    /// `$XDG_DATA_HOME/eddy/up`, else `~/.local/share/eddy/up`, else `eddy-up` in the temp
    /// directory; never the directory it runs from.
    #[arg(long, alias = "dir")]
    state_dir: Option<PathBuf>,
    /// Demo origin address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    origin_listen: String,
    /// Edge address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Edge admin address.
    #[arg(long, default_value = "127.0.0.1:9080")]
    admin: String,
    /// More edges, as LISTEN,ADMIN pairs (repeatable).
    #[arg(long = "more-edge", default_values = ["127.0.0.1:8081,127.0.0.1:9081", "127.0.0.1:8082,127.0.0.1:9082"])]
    more_edges: Vec<String>,
    /// The shield every edge sends its misses to, as LISTEN,ADMIN.
    #[arg(long, default_value = "127.0.0.1:8090,127.0.0.1:9090")]
    shield: String,
    /// The request router's address.
    #[arg(long, default_value = "127.0.0.1:8000")]
    router: String,
    /// The dashboard's address.
    #[arg(long, default_value = "127.0.0.1:8888")]
    dashboard: String,
    /// The control plane's address.
    #[arg(long, default_value = "127.0.0.1:8070")]
    control: String,
}

#[derive(Args)]
struct RoleArgs {
    /// TOML config file ([router] or [dashboard], and [bus]); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    listen: Option<String>,
    /// Use the embedded event bus in this directory (one process only; across processes use a
    /// broker in [bus]).
    #[arg(long)]
    bus_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ControlArgs {
    #[command(flatten)]
    role: RoleArgs,
    /// Accept a control plane on a non-loopback address without `[control] token`: anyone who
    /// reaches it can purge. Logged at start.
    #[arg(long)]
    insecure_admin: bool,
}

#[derive(Args)]
struct EdgeArgs {
    /// TOML config file; flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address for viewers (HTTP/1.1 and h2c).
    #[arg(long)]
    listen: Option<String>,
    /// Origin URL, repeatable, in preference order.
    #[arg(long = "origin")]
    origins: Vec<String>,
    /// Admin API address.
    #[arg(long)]
    admin: Option<String>,
    /// Disk cache directory.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Memory cache size, e.g. "256 MiB".
    #[arg(long)]
    memory_size: Option<String>,
    /// Disk cache size, e.g. "10 GiB".
    #[arg(long)]
    disk_size: Option<String>,
    /// Node id.
    #[arg(long)]
    id: Option<String>,
    /// Use the embedded event bus in this directory (purges fan out, catch-up on restart).
    #[arg(long)]
    bus_dir: Option<PathBuf>,
    /// Accept an admin API on a non-loopback address without `edge.admin_token`: anyone who
    /// reaches it can purge. Logged at start.
    #[arg(long)]
    insecure_admin: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format.as_str() {
        "json" => eddy_telemetry::Format::Json,
        "text" => eddy_telemetry::Format::Text,
        other => {
            eprintln!("error: --log-format {other:?} is not supported; use text or json");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = eddy_telemetry::init(format, "info,pingora_core=warn,pingora_proxy=warn") {
        eprintln!("warning: {e}");
    }
    let result = match cli.cmd {
        Cmd::Up(a) => up(a),
        Cmd::Edge(a) => match node_config(a, eddy_config::Role::Edge) {
            Ok(c) => edge(c),
            Err(code) => return code,
        },
        Cmd::Shield(a) => match node_config(a, eddy_config::Role::Shield) {
            Ok(c) => edge(c),
            Err(code) => return code,
        },
        Cmd::Router(a) => {
            match eddy_config::load_router(
                a.config.as_deref(),
                a.listen.as_deref(),
                a.bus_dir.as_ref(),
            ) {
                Ok(c) => router(c),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        Cmd::Admin(a) => {
            match eddy_config::load_dashboard(
                a.config.as_deref(),
                a.listen.as_deref(),
                a.bus_dir.as_ref(),
            ) {
                Ok(c) => dashboard(c),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        Cmd::Control(a) => {
            match eddy_config::load_control(
                a.role.config.as_deref(),
                a.role.listen.as_deref(),
                a.role.bus_dir.as_ref(),
                a.insecure_admin,
            ) {
                Ok(c) => control(c),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        Cmd::Status { admin, json } => status::run(&admin, json),
        Cmd::Origin { listen } => origin_only(&listen),
        Cmd::Purge(a) => purge::run(a),
        Cmd::Sign(a) => sign::run(a),
        Cmd::Token(a) => token::run(a),
        Cmd::Sim(a) => sim::run(a),
        Cmd::Check { config } => match check(&config) {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
                Ok(())
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Validate each file by the role it configures, then the cache nodes together.
fn check(files: &[PathBuf]) -> Result<Vec<String>, eddy_config::ConfigError> {
    let mut lines = Vec::new();
    let mut nodes = Vec::new();
    for f in files {
        match eddy_config::file_role(f)? {
            "router" => {
                let c = eddy_config::load_router(Some(f), None, None)?;
                lines.push(format!(
                    "{}: ok (router {} on {})",
                    f.display(),
                    c.id,
                    c.listen
                ));
            }
            "control" => {
                let c = eddy_config::load_control(Some(f), None, None, false)?;
                lines.push(format!(
                    "{}: ok (control {} on {})",
                    f.display(),
                    c.id,
                    c.listen
                ));
            }
            "dashboard" => {
                let c = eddy_config::load_dashboard(Some(f), None, None)?;
                lines.push(format!(
                    "{}: ok (dashboard {} on {})",
                    f.display(),
                    c.id,
                    c.listen
                ));
            }
            _ => {
                let c = eddy_config::load(Some(f), &Overrides::default())?;
                lines.push(format!(
                    "{}: ok ({} {} on {}, {} origin(s), {} shield(s))",
                    f.display(),
                    c.edge.role.as_str(),
                    c.edge.id,
                    c.edge.listen,
                    c.edge.origins.len(),
                    c.edge.shields.len()
                ));
                nodes.push((f.clone(), c));
            }
        }
    }
    if nodes.len() > 1 {
        eddy_config::check_topology(&nodes)?;
        lines.push(format!(
            "topology: ok ({} cache nodes: ids unique, ports distinct, shields exist)",
            nodes.len()
        ));
    }
    Ok(lines)
}

/// The validated config of a cache node run as `role`, or exit code 2 after printing why.
fn node_config(a: EdgeArgs, role: eddy_config::Role) -> Result<Config, ExitCode> {
    let overrides = Overrides {
        listen: a.listen,
        origins: a.origins,
        admin: a.admin,
        cache_dir: a.cache_dir,
        memory_size: a.memory_size,
        disk_size: a.disk_size,
        id: a.id,
        bus_dir: a.bus_dir,
        role: Some(role),
        insecure_admin: a.insecure_admin,
    };
    eddy_config::load(a.config.as_deref(), &overrides).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn router(c: eddy_config::RouterConfig) -> anyhow::Result<()> {
    let bus = connect_bus(&c.bus)?;
    let r = eddy_router::RouterNode::start((&c).into(), bus).context("starting the router")?;
    println!("router on http://{}", r.addr());
    wait_for_ctrl_c()?;
    r.stop();
    Ok(())
}

fn dashboard(c: eddy_config::DashboardConfig) -> anyhow::Result<()> {
    let bus = connect_bus(&c.bus)?;
    let d = eddy_admin::Dashboard::start(&c.id, c.listen, bus).context("starting the dashboard")?;
    println!("dashboard on http://{}", d.addr());
    wait_for_ctrl_c()?;
    d.stop();
    Ok(())
}

fn control(c: eddy_config::ControlConfig) -> anyhow::Result<()> {
    if c.insecure_admin {
        tracing::warn!(listen = %c.listen, "the control plane listens on a non-loopback address without a token (--insecure-admin): anyone who reaches it can purge");
    }
    let bus = connect_bus(&c.bus)?;
    let n = eddy_admin::control::ControlNode::start(&c.id, c.listen, c.api_tokens.clone(), bus)
        .context("starting the control plane")?;
    println!("control plane on http://{}", n.addr());
    wait_for_ctrl_c()?;
    n.stop();
    Ok(())
}

fn wait_for_ctrl_c() -> anyhow::Result<()> {
    wait_for_stop(|| tracing::info!("SIGHUP: nothing to reload in this role"))
}

/// Wait for Ctrl-C or SIGTERM; on each SIGHUP call `on_hangup` and wait on.
fn wait_for_stop(on_hangup: impl Fn()) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("signal runtime")?;
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => return r,
                _ = term.recv() => return Ok(()),
                _ = hup.recv() => on_hangup(),
            }
        }
    })
    .context("waiting for Ctrl-C")
}

/// Open the bus a config asks for.
fn open_bus(config: &Config) -> anyhow::Result<Option<Arc<dyn eddy_bus::Bus>>> {
    config.bus.as_ref().map(connect_bus).transpose()
}

fn connect_bus(bus: &eddy_config::BusConfig) -> anyhow::Result<Arc<dyn eddy_bus::Bus>> {
    match bus {
        eddy_config::BusConfig::Embedded { dir, fsync } => {
            let mut opts = EmbeddedOptions::new(dir);
            opts.fsync = match fsync {
                eddy_config::Fsync::Always => FsyncPolicy::Always,
                eddy_config::Fsync::Never => FsyncPolicy::Never,
                eddy_config::Fsync::Every(d) => FsyncPolicy::Interval(*d),
            };
            let bus = EmbeddedBus::open(opts)
                .with_context(|| format!("opening the embedded bus in {}", dir.display()))?;
            Ok(Arc::new(bus))
        }
        eddy_config::BusConfig::Nats { url } => on_own_runtime("nats", || async {
            eddy_bus_nats::NatsBus::connect(url)
                .await
                .map(|b| Arc::new(b) as _)
        }),
        eddy_config::BusConfig::Rabbitmq { url } => on_own_runtime("rabbitmq", || async {
            eddy_bus_rabbitmq::RabbitBus::connect(url)
                .await
                .map(|b| Arc::new(b) as _)
        }),
        eddy_config::BusConfig::Kafka {
            brokers,
            replication,
            fetch_wait,
        } => {
            let mut opts = eddy_bus_kafka::KafkaOptions::new(brokers);
            opts.replication = *replication;
            opts.fetch_wait = *fetch_wait;
            on_own_runtime("kafka", || {
                let opts = opts.clone();
                async move {
                    eddy_bus_kafka::KafkaBus::connect_with(opts)
                        .await
                        .map(|b| Arc::new(b) as _)
                }
            })
        }
    }
}

/// Connect a broker client on a runtime of its own, kept alive on a thread: a client's
/// background tasks run on the runtime it was created in. A broker that cannot be reached is
/// retried with back-off (0.5 s doubling to 10 s), each attempt logged with the error naming
/// the broker: the edge does not serve until it has caught up on purges, and it does not exit
/// because a broker is briefly away.
fn on_own_runtime<F, Fut>(name: &'static str, connect: F) -> anyhow::Result<Arc<dyn eddy_bus::Bus>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Arc<dyn eddy_bus::Bus>, eddy_bus::BusError>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("bus runtime")?;
    let bus = rt.block_on(async {
        let mut backoff = std::time::Duration::from_millis(500);
        loop {
            match connect().await {
                Ok(bus) => return Ok(bus),
                Err(e @ eddy_bus::BusError::Unreachable { .. }) => {
                    tracing::error!(bus = name, error = %e, retry_in = ?backoff, "cannot reach the bus; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
                }
                Err(e) => return Err(e),
            }
        }
    });
    let bus = bus.with_context(|| format!("connecting to the {name} bus"))?;
    std::thread::Builder::new()
        .name(format!("eddy-{name}"))
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .context("bus client thread")?;
    Ok(bus)
}

fn edge(config: Config) -> anyhow::Result<()> {
    let bus = open_bus(&config)?;
    let edge = eddy_edge::Edge::start_with_bus(config, bus).context("starting the edge")?;
    // SIGHUP reads the HTTPS certificates again (the reload logs what came of it).
    wait_for_stop(|| {
        if edge.reload_tls().is_none() {
            tracing::info!("SIGHUP: this edge has no HTTPS port ([tls] listen); nothing to reload");
        }
    })?;
    tracing::info!("stopping");
    edge.stop();
    Ok(())
}

fn origin_only(listen: &str) -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen {listen:?} is not an address"))?;
    let origin = eddy_demo::site::start(addr, eddy_demo::live::Live::new().map(Arc::new))
        .with_context(|| format!("starting the demo origin on {addr}"))?;
    println!("demo origin on {}", origin.url());
    wait_for_ctrl_c()?;
    drop(origin);
    Ok(())
}

/// Where `eddy up` keeps state when `--state-dir` is not given: the user's data directory
/// (XDG), else the temp directory. Never the working directory, which may be a source tree.
fn default_state_dir() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local").join("share"))
        });
    match data {
        Some(d) => d.join("eddy").join("up"),
        None => std::env::temp_dir().join("eddy-up"),
    }
}

fn up(a: UpArgs) -> anyhow::Result<()> {
    let origin_addr: std::net::SocketAddr = a
        .origin_listen
        .parse()
        .with_context(|| format!("--origin-listen {:?} is not an address", a.origin_listen))?;
    let pair = |flag: &str, v: &str| -> anyhow::Result<(String, String)> {
        v.split_once(',')
            .map(|(l, m)| (l.trim().to_string(), m.trim().to_string()))
            .with_context(|| {
                format!("{flag} {v:?}: expected LISTEN,ADMIN such as 127.0.0.1:8081,127.0.0.1:9081")
            })
    };
    let (shield_listen, shield_admin) = pair("--shield", &a.shield)?;
    let mut edges = vec![(a.listen.clone(), a.admin.clone())];
    for e in &a.more_edges {
        edges.push(pair("--more-edge", e)?);
    }
    let state_dir = a.state_dir.clone().unwrap_or_else(default_state_dir);
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating the state directory {}", state_dir.display()))?;
    println!("state in {} (--state-dir to change)", state_dir.display());
    let live = eddy_demo::live::Live::new().map(Arc::new);
    let origin = eddy_demo::site::start(origin_addr, live.clone())
        .with_context(|| format!("starting the demo origin on {origin_addr}"))?;
    // One embedded bus for every node in this process: purges, spikes and health reach all.
    let bus_dir = state_dir.join("bus");
    let bus: Arc<dyn eddy_bus::Bus> = Arc::new(
        EmbeddedBus::open(EmbeddedOptions::new(&bus_dir))
            .with_context(|| format!("opening the embedded bus in {}", bus_dir.display()))?,
    );
    // The live stream announces each new part on the bus (dev.eddy.segment.published.v1).
    let announcer = live
        .map(|l| eddy_demo::announce::Announcer::start(l, bus.clone(), "eddy-up/origin".into()))
        .transpose()
        .context("starting the live stream's announcer")?;
    let node = |id: &str, listen: &str, admin: &str, shield: Option<&str>, is_shield: bool| {
        let overrides = Overrides {
            listen: Some(listen.to_string()),
            origins: vec![origin.url()],
            admin: Some(admin.to_string()),
            cache_dir: Some(state_dir.join(id).join("cache")),
            memory_size: Some("64 MiB".into()),
            disk_size: Some("512 MiB".into()),
            id: Some(id.to_string()),
            bus_dir: None,
            role: Some(if is_shield {
                eddy_config::Role::Shield
            } else {
                eddy_config::Role::Edge
            }),
            insecure_admin: false,
        };
        let mut config = eddy_config::load(None, &overrides)
            .with_context(|| format!("building the configuration of {id}"))?;
        if let Some(s) = shield {
            config.edge.shields = vec![
                eddy_config::parse_origin(&format!("http://{s}"))
                    .with_context(|| format!("shield address {s}"))?,
            ];
        }
        eddy_edge::Edge::start_with_bus(config, Some(bus.clone()))
            .with_context(|| format!("starting {id} on {listen} (admin {admin})"))
    };
    let addr = |flag: &str, v: &str| -> anyhow::Result<std::net::SocketAddr> {
        v.parse()
            .with_context(|| format!("{flag} {v:?} is not an address such as 127.0.0.1:8000"))
    };
    let router_addr = addr("--router", &a.router)?;
    let dashboard_addr = addr("--dashboard", &a.dashboard)?;
    let control_addr = addr("--control", &a.control)?;
    let control = eddy_admin::control::ControlNode::start(
        "up",
        control_addr,
        eddy_auth::api::ApiTokens::default(),
        bus.clone(),
    )
    .with_context(|| format!("starting the control plane on {control_addr}"))?;
    // The viewers' side starts first, so it sees every node's first heartbeat.
    let dash = eddy_admin::Dashboard::start("up", dashboard_addr, bus.clone())
        .with_context(|| format!("starting the dashboard on {dashboard_addr}"))?;
    let router = eddy_router::RouterNode::start(
        eddy_router::RouterSettings {
            id: "up".into(),
            listen: router_addr,
            edge_timeout: None,
            affinity: true,
            load_slack: 1.25,
        },
        bus.clone(),
    )
    .with_context(|| format!("starting the router on {router_addr}"))?;
    let mut running = vec![node("shield-1", &shield_listen, &shield_admin, None, true)?];
    for (i, (listen, admin)) in edges.iter().enumerate() {
        running.push(node(
            &format!("edge-{}", i + 1),
            listen,
            admin,
            Some(&shield_listen),
            false,
        )?);
    }
    let e = format!("http://{}", a.listen);
    let adm = format!("http://{}", a.admin);
    println!("\nEddy is up.\n");
    println!("  role      address                 admin                   what");
    println!(
        "  origin    {:<23} {:<23} demo origin (files below)",
        origin.url(),
        "-"
    );
    println!(
        "  shield    http://{shield_listen:<16} http://{shield_admin:<16} fetches from the origin for every edge"
    );
    for (i, (listen, admin)) in edges.iter().enumerate() {
        println!(
            "  edge-{}    http://{listen:<16} http://{admin:<16} cache near viewers; misses go to the shield",
            i + 1
        );
    }
    println!(
        "  router    http://{router_addr:<16} {:<23} sends viewers to a healthy edge (302, /_eddy/route)",
        "-"
    );
    println!(
        "  dashboard http://{dashboard_addr:<16} {:<23} live view; `eddy status` prints it",
        "-"
    );
    println!(
        "  control   http://{control_addr:<16} {:<23} purge API that reports when every edge applied it",
        "-"
    );
    println!(
        "  bus       {:<47} embedded, shared by every node",
        bus_dir.display()
    );
    println!("\nTry:");
    println!(
        "  curl -si {e}/index.html | grep -i -E 'x-cache|cache-status|age'   # twice: MISS then HIT"
    );
    println!(
        "  curl -s --http2-prior-knowledge -o /dev/null -w '%{{http_version}}\\n' {e}/index.html"
    );
    println!("  curl -si -H 'Range: bytes=0-99' {e}/video/seg-1.ts | head -5");
    println!(
        "\nVideo (12 s, three renditions). Open a player page (hls.js or dash.js from cdn.jsdelivr.net, CMCD on),"
    );
    println!("or give the playlist to any HLS or DASH player (VLC, ffplay, Safari):");
    println!("  HLS   {e}/player.html?src=/vod/master.m3u8     {e}/vod/master.m3u8");
    println!("  DASH  {e}/player.html?src=/vod/manifest.mpd    {e}/vod/manifest.mpd");
    println!("  DASH  {e}/player.html?src=/vod/long.mpd        (the video ten times over, 2 min)");
    println!("  live  {e}/player.html?src=/live/master.m3u8    {e}/live/master.m3u8");
    println!("        (LL-HLS cut from the video on a clock: 0.5 s parts, 2 s segments)");
    println!(
        "  curl -s '{e}/vod/seg-0-001.m4s?CMCD=bl%3D0%2Cbr%3D1200' -o /dev/null -D - | grep -i x-cache   # CMCD is not in the key"
    );
    println!(
        "  curl -s -o /dev/null -w '%{{time_total}}s\\n' {e}/slow.bin          # 8 MiB over 4 s, then instant"
    );
    println!(
        "  curl -s -X POST {adm}/purge -d '{{\"key\":\"show-1\"}}'             # purge by surrogate key, on every node"
    );
    println!("  curl -s -X PURGE {e}/index.html                                   # purge one URL");
    println!("  curl -s {adm}/metrics | grep -E 'eddy_(requests|shield_fetches|origin_up)'");
    println!(
        "  curl -sL http://{router_addr}/index.html -o /dev/null -w '%{{url_effective}}\\n'   # the router picks an edge"
    );
    println!("  curl -s 'http://{router_addr}/_eddy/route?path=/video/seg-1.ts'");
    println!(
        "  curl -s -X POST 'http://{control_addr}/purge?wait=2000' -d '{{\"prefix\":\"127.0.0.1:8080/video/\"}}'   # returns when every node applied it"
    );
    println!("  open http://{dashboard_addr}/   or   eddy status --admin {dashboard_addr}\n");
    println!("Ctrl-C stops everything.");
    wait_for_ctrl_c()?;
    println!("stopping");
    for n in running.into_iter().rev() {
        n.stop();
    }
    router.stop();
    control.stop();
    dash.stop();
    drop(announcer);
    drop(origin);
    Ok(())
}
