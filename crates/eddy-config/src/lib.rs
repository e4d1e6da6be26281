//! # eddy-config: the TOML configuration of an Eddy node
//!
//! Two layers: [`File`] is the external schema (serde, `deny_unknown_fields`, one doc comment per
//! key, exactly what an operator writes in `edge.toml`); [`Config`] is the validated internal form
//! the rest of Eddy consumes. [`load`] reads a file (or nothing), applies command-line
//! [`Overrides`], validates, and returns either a `Config` or a [`ConfigError`] that names the file,
//! the key and what is allowed.
//!
//! Layout, one module per section (every public item is also re-exported here):
//! - [`edge`]: `[edge]`, the cache node itself: addresses, origins, shields, limits, timeouts.
//! - [`cache`]: `[cache]`, its memory and disk tiers and freshness defaults.
//! - [`site`]: `[sites."<host>"]`, per-site options such as path normalisation.
//! - [`bus`]: `[bus]`, the event bus, shared by every role.
//! - [`spike`]: `[spike]`, traffic-spike detection.
//! - [`streaming`]: `[streaming]`, TTL classes of streaming objects and the LL-HLS hold.
//! - [`tls`]: `[tls]`, the HTTPS viewer port and its certificates.
//! - [`signed`]: `[[signed_urls]]`, routes whose content needs a signed URL.
//! - [`api`]: `[[api_tokens]]`, named bearer tokens with scopes for the admin API.
//! - [`router`], [`dashboard`], [`control`]: the other roles and their loaders.
//! - [`topology`]: checks across the nodes of one deployment (`eddy check`).
//!
//! This file keeps what every section shares: [`ConfigError`], [`File`], [`Overrides`],
//! [`Config`], [`load`], [`parse`], [`validate`] and the value helpers.
//!
//! Must not touch: sockets, the cache, pingora. Validation never panics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytesize::ByteSize;
use serde::Deserialize;

pub mod api;
pub mod bus;
pub mod cache;
pub mod control;
pub mod dashboard;
pub mod edge;
pub mod router;
pub mod signed;
pub mod site;
pub mod spike;
pub mod streaming;
pub mod tls;
pub mod topology;

pub use bus::{BusConfig, BusFile, Fsync};
pub use cache::{CacheConfig, CacheFile, DiskConfig};
pub use control::{ControlConfig, ControlFile, load_control};
pub use dashboard::{DashboardConfig, DashboardFile, load_dashboard};
pub use edge::{EdgeConfig, EdgeFile, Origin, Role, parse_origin};
pub use router::{RouterConfig, RouterFile, load_router};
pub use signed::{SignedRoute, SignedUrlsFile};
pub use site::{SiteConfig, SiteFile};
pub use spike::{SpikeFile, SpikeSettings};
pub use streaming::{PrefetchBudget, StreamingFile, StreamingSettings};
pub use tls::{Certificate, CertificateFile, TlsConfig, TlsFile};
pub use topology::{check_topology, file_role};

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
    /// Per-site options, one `[sites."<host>"]` table per site, keyed by the host viewers send
    /// in `Host` (`host` or `host:port`; case, a trailing dot and port 80 do not matter). A host
    /// without a table gets the defaults.
    #[serde(default)]
    pub sites: BTreeMap<String, SiteFile>,
    /// The event bus.
    #[serde(default)]
    pub bus: Option<BusFile>,
    /// Traffic-spike detection.
    #[serde(default)]
    pub spike: SpikeFile,
    /// Streaming: TTL classes and LL-HLS holds.
    #[serde(default)]
    pub streaming: StreamingFile,
    /// HTTPS on the viewer side.
    #[serde(default)]
    pub tls: TlsFile,
    /// Routes whose content needs a signed URL.
    #[serde(default)]
    pub signed_urls: Vec<SignedUrlsFile>,
    /// Named bearer tokens with scopes for the admin API.
    #[serde(default)]
    pub api_tokens: Vec<api::ApiTokenFile>,
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
    /// `--insecure-admin`: accept an admin API (`edge.admin`) on a non-loopback address without
    /// `edge.admin_token`, which is otherwise an error (default false).
    pub insecure_admin: bool,
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
    /// Streaming: TTL classes and LL-HLS holds.
    pub streaming: StreamingSettings,
    /// The HTTPS viewer port, if configured.
    pub tls: Option<TlsConfig>,
    /// Routes whose content needs a signed URL, in the file's order (the first that covers a
    /// request decides).
    pub signed_urls: Vec<SignedRoute>,
    /// The options of a host without a `[sites]` table: none but the token names dropped.
    pub default_site: SiteConfig,
    /// Who may use the admin API, and for what (`[[api_tokens]]` and `edge.admin_token`);
    /// empty: the API is open (loopback, or `--insecure-admin`).
    pub api_tokens: eddy_auth::api::ApiTokens,
    /// Per-site options, keyed by canonical host (`eddy_url::host` with default port 80).
    pub sites: BTreeMap<String, SiteConfig>,
}

impl Config {
    /// The path options of the site `host`, or the defaults for a host without a
    /// `[sites."<host>"]` table. `host` is canonical, as `eddy_url` makes it (the host half of a
    /// cache key; what `eddy_url::Canonical::new` and `eddy_url::content_url` pass their `opts`).
    pub fn path_options(&self, host: &str) -> eddy_url::PathOptions<'_> {
        let s = self.sites.get(host).unwrap_or(&self.default_site);
        eddy_url::PathOptions {
            merge_slashes: s.merge_slashes,
            drop_params: &s.ignore_query,
        }
    }
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

/// Validate the external schema plus overrides.
pub fn validate(mut file: File, o: &Overrides, name: &Path) -> Result<Config, ConfigError> {
    let has_api_tokens = !file.api_tokens.is_empty();
    let api_token_files = std::mem::take(&mut file.api_tokens);
    let edge = edge::edge_config(name, file.edge, o, has_api_tokens)?;
    let api_tokens = api::api_tokens(
        name,
        api_token_files,
        ("admin_token", edge.admin_token.as_deref()),
    )?;
    let cache = cache::cache_config(name, file.cache, o)?;
    let bus = match (file.bus, &o.bus_dir) {
        (None, None) => None,
        (None, Some(dir)) => Some(bus::embedded_in(dir)),
        (Some(b), dir) => Some(bus::bus_config(name, b, dir.as_ref())?),
    };
    let spike = spike::spike_settings(name, file.spike)?;
    let sites = site::sites(name, file.sites)?;
    let streaming = streaming::streaming_settings(name, file.streaming)?;
    let tls = tls::tls_config(name, file.tls)?;
    let signed_urls = signed::signed_routes(name, file.signed_urls)?;
    // A token is never part of any site's cache keys, purges or origin requests.
    let mut sites = sites;
    let mut default_site = SiteConfig::default();
    for r in &signed_urls {
        for s in sites.values_mut().chain([&mut default_site]) {
            if !s.ignore_query.contains(&r.name) {
                s.ignore_query.push(r.name.clone());
            }
        }
    }
    if let Some(t) = &tls
        && [edge.listen.port(), edge.admin.port()].contains(&t.listen.port())
    {
        // The edge tells HTTPS connections from cleartext ones by the port they came to.
        return Err(invalid(
            name,
            "tls.listen",
            &t.listen.to_string(),
            "a port of its own, not edge.listen's or edge.admin's",
        ));
    }
    Ok(Config {
        streaming,
        tls,
        signed_urls,
        default_site,
        api_tokens,
        edge,
        cache,
        bus,
        spike,
        sites,
    })
}

/// A [`ConfigError::Invalid`] for `key` = `value` in `file`.
fn invalid(file: &Path, key: &'static str, value: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_path_buf(),
        key,
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

/// A socket address (`ip:port`; port 0 allowed, for an ephemeral port).
fn addr(file: &Path, key: &'static str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse()
        .map_err(|_| invalid(file, key, v, "an IP address and port, e.g. 127.0.0.1:8080"))
}

/// A size such as `"256 MiB"`.
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

/// `v` if it is in `lo..=hi`, else an error naming `key` and the range in `unit`s.
fn within<T>(
    file: &Path,
    key: &'static str,
    v: T,
    lo: T,
    hi: T,
    unit: &str,
) -> Result<T, ConfigError>
where
    T: PartialOrd + std::fmt::Display,
{
    if lo <= v && v <= hi {
        Ok(v)
    } else {
        Err(invalid(
            file,
            key,
            &v.to_string(),
            &format!("{lo} to {hi} {unit}"),
        ))
    }
}

/// An API that takes commands (the edge's admin API, the control plane) may listen beyond
/// loopback only with a token, or with the operator's explicit `--insecure-admin`. Returns
/// whether the opt-in was what let it through (so the role can log a warning).
fn admin_exposure(
    file: &Path,
    key: &'static str,
    at: SocketAddr,
    has_token: bool,
    token_key: &str,
    insecure_admin: bool,
) -> Result<bool, ConfigError> {
    if has_token || at.ip().to_canonical().is_loopback() {
        return Ok(false);
    }
    if insecure_admin {
        return Ok(true);
    }
    Err(invalid(
        file,
        key,
        &at.to_string(),
        &format!(
            "an API that takes commands on a non-loopback address needs a token: bind it to loopback, set {token_key}, or start with --insecure-admin to accept an unauthenticated admin API on the network"
        ),
    ))
}

/// Read a config file: `None` is all defaults.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Overrides with one origin.
    pub(crate) fn ov(origin: &str) -> Overrides {
        Overrides {
            origins: vec![origin.into()],
            ..Default::default()
        }
    }

    /// Parse and validate `text` as the file `e.toml`.
    pub(crate) fn from_text(text: &str, o: &Overrides) -> Result<Config, ConfigError> {
        let name = Path::new("e.toml");
        parse(text, name).and_then(|f| validate(f, o, name))
    }

    /// Every `(text, key)` case fails with a message naming `key` and `e.toml`.
    pub(crate) fn each_fails_naming_its_key(cases: &[(&str, &str)]) {
        for (text, key) in cases {
            match from_text(text, &Overrides::default()) {
                Ok(_) => panic!("{text} should fail"),
                Err(e) => {
                    let m = e.to_string();
                    assert!(
                        m.contains(&format!("`{key}`")) && m.contains("e.toml"),
                        "{text}: {m}"
                    );
                }
            }
        }
    }

    /// A temporary directory, as a config error so tests can use `?`.
    pub(crate) fn tempdir() -> Result<tempfile::TempDir, ConfigError> {
        tempfile::tempdir().map_err(|source| ConfigError::Read {
            file: PathBuf::from("tempdir"),
            source,
        })
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
        assert!(c.sites.is_empty());
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
    fn sizes_parse() {
        assert_eq!(parse_size("1 MiB"), Some(1 << 20));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("many"), None);
    }

    #[test]
    fn the_example_file_is_valid_and_says_the_defaults() -> Result<(), ConfigError> {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/edge.toml");
        let c = load(Some(&example), &Overrides::default())?;
        let d = load(None, &ov("http://127.0.0.1:9000"))?;
        let (e, de) = (&c.edge, &d.edge);
        assert_eq!(e.head_timeout, de.head_timeout);
        assert_eq!(e.keepalive_timeout, de.keepalive_timeout);
        assert_eq!(e.max_connections, de.max_connections);
        assert_eq!(e.max_client_connections, de.max_client_connections);
        assert_eq!(c.cache.stale_on_error, d.cache.stale_on_error);
        assert_eq!(c.cache.memory_max_object, d.cache.memory_max_object);
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s, Path::new("x.toml")).map(|f| validate(f, &Overrides::default(), Path::new("x.toml")));
        }
    }
}
