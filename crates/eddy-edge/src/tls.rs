//! HTTPS on the viewer side: rustls under the edge's own gate.
//!
//! The HTTPS port (`[tls] listen`) is a plain TCP listener of the same pingora service as the
//! cleartext port. The gate ([`crate::h2c`]) admits a connection under the connection caps
//! first, then runs the TLS handshake here ([`Tls::accept`]) within `edge.head_timeout_ms` of the
//! accept, so a client that never finishes a handshake holds a socket no longer than one that
//! never finishes a request head. After the handshake the connection is a [`TlsConn`]: HTTP/1.1
//! goes through the same loop as cleartext (strict head judging, the hit fast path, one request at
//! a time to pingora), and ALPN `h2` goes to pingora's HTTP/2 server, which reads ALPN from the
//! stream's [`Ssl`] answers. pingora's own TLS listener is not used: it handshakes before the
//! connection caps with a fixed 60 s timeout, cannot issue session tickets, and hands over a
//! stream that cannot take bytes back, which the gate needs to pass one request at a time.
//!
//! Certificates ([`CertStore`]) are chosen by SNI: an exact name, then one label of wildcard
//! (`*.example.com` answers `a.example.com`, not `example.com` nor `a.b.example.com`, RFC 6125
//! §6.4.3), else the first certificate. [`Tls::reload`] reads every file again and swaps the
//! whole table at once; if any file fails, the old table stays and the error says which file.
//! Handshakes in flight and open connections keep the certificate they got: nothing is dropped.
//!
//! Session resumption: TLS 1.3 and 1.2 session tickets from rustls' rotating ticketer (a new
//! ChaCha20-Poly1305 key every 6 hours, the previous one still accepted), and a session cache for
//! TLS 1.2 clients without tickets. No 0-RTT (early data can be replayed).
//!
//! No secret is ever logged: errors name files and what is wrong with them, never their bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use eddy_config::{Certificate, TlsConfig};
use parking_lot::RwLock;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{ALPN, SslDigest};
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// TLS 1.2 sessions kept for resumption by session id (clients without tickets).
const SESSION_CACHE: usize = 4096;

/// Why the HTTPS port could not be set up or its certificates not (re)loaded. Names the file and
/// what is wrong, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate chain file.
    #[error("tls certificate file {path}: {why}")]
    Cert {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        why: String,
    },
    /// A private key file.
    #[error("tls key file {path}: {why}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        why: String,
    },
    /// The CA file that `https://` upstreams are verified against (`edge.upstream_ca_file`).
    #[error("edge.upstream_ca_file {path}: {why}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        why: String,
    },
    /// The TLS configuration as a whole.
    #[error("tls: {0}")]
    Setup(String),
}

/// One loaded certificate and the names it answers for.
struct Loaded {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
}

/// The certificates by name: exact names, wildcard parents (`*.example.com` under
/// `example.com`), and the default (the first configured).
pub struct Table {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
    names: Vec<String>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: a key is never printed.
        f.debug_struct("Table").field("names", &self.names).finish()
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |why: String| TlsError::Cert {
        path: path.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(bad(
            "holds no CERTIFICATE block; give the chain in PEM, leaf first".into(),
        ));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bad = |why: String| TlsError::Key {
        path: path.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        bad(format!(
            "no private key in PEM (PKCS#8, PKCS#1 or SEC1) could be read: {e}"
        ))
    })
}

/// The DNS names a certificate lists (subjectAltName), lower-case.
fn names_in(cert: &CertificateDer<'_>) -> Vec<String> {
    match webpki::EndEntityCert::try_from(cert) {
        Ok(c) => c
            .valid_dns_names()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .filter(|n| eddy_config::tls::valid_name(n))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn load_one(c: &Certificate, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let chain = read_chain(&c.cert)?;
    let key = read_key(&c.key)?;
    let names = if c.names.is_empty() {
        names_in(&chain[0])
    } else {
        c.names.clone()
    };
    if names.is_empty() {
        return Err(TlsError::Cert {
            path: c.cert.clone(),
            why: "lists no DNS name (subjectAltName); give its names in [tls] certificates (names = [\"video.example.com\"])".into(),
        });
    }
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Key {
        path: c.key.clone(),
        why: format!(
            "does not go with the certificate {} or is not a supported key: {e}",
            c.cert.display()
        ),
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        names,
    })
}

impl Table {
    /// Read every certificate and key of `certs`; the first failure names its file.
    pub fn load(certs: &[Certificate], provider: &CryptoProvider) -> Result<Table, TlsError> {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        let mut all = Vec::new();
        for c in certs {
            let l = load_one(c, provider)?;
            default.get_or_insert_with(|| l.key.clone());
            for n in &l.names {
                // The first certificate to claim a name keeps it.
                match n.strip_prefix("*.") {
                    Some(parent) => {
                        wildcard
                            .entry(parent.to_string())
                            .or_insert_with(|| l.key.clone());
                    }
                    None => {
                        exact.entry(n.clone()).or_insert_with(|| l.key.clone());
                    }
                }
                all.push(n.clone());
            }
        }
        let default =
            default.ok_or_else(|| TlsError::Setup("[tls] certificates is empty".into()))?;
        Ok(Table {
            exact,
            wildcard,
            default,
            names: all,
        })
    }

    /// The certificate for the SNI name `sni` (any case, a trailing dot allowed).
    pub fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(sni) = sni else {
            return self.default.clone();
        };
        let lower;
        let name = if sni.bytes().any(|b| b.is_ascii_uppercase()) || sni.ends_with('.') {
            lower = sni.trim_end_matches('.').to_ascii_lowercase();
            lower.as_str()
        } else {
            sni
        };
        if let Some(k) = self.exact.get(name) {
            return k.clone();
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.wildcard.get(parent)
        {
            return k.clone();
        }
        self.default.clone()
    }

    /// The names the table answers for, in the configured order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// The certificates in use, swapped whole on reload.
#[derive(Debug)]
pub struct CertStore {
    table: RwLock<Arc<Table>>,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.read().clone();
        Some(table.pick(hello.server_name()))
    }
}

/// The HTTPS port's TLS: the acceptor and its certificates.
pub struct Tls {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    store: Arc<CertStore>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("listen", &self.config.listen)
            .field("store", &self.store)
            .finish()
    }
}

impl Tls {
    /// Read the certificates of `config` and build the acceptor.
    pub fn new(config: &TlsConfig) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let table = Table::load(&config.certificates, &provider)?;
        let store = Arc::new(CertStore {
            table: RwLock::new(Arc::new(table)),
        });
        let mut sc = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Setup(format!("protocol versions: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        sc.alpn_protocols = if config.h2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        sc.max_early_data_size = 0;
        if config.tickets {
            sc.ticketer = rustls::crypto::ring::Ticketer::new()
                .map_err(|e| TlsError::Setup(format!("session tickets: {e}")))?;
            sc.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        } else {
            sc.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            sc.send_tls13_tickets = 0;
        }
        Ok(Tls {
            config: config.clone(),
            provider,
            store,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(sc)),
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &TlsConfig {
        &self.config
    }

    /// Read every certificate again and use the new set for new handshakes; on any error keep
    /// the set in use and say which file failed. Returns the names now answered for.
    pub fn reload(&self) -> Result<Vec<String>, TlsError> {
        let table = Table::load(&self.config.certificates, &self.provider)?;
        let names = table.names().to_vec();
        *self.store.table.write() = Arc::new(table);
        Ok(names)
    }

    /// The handshake on an accepted connection, within `within`. Counted in `metrics`
    /// (`eddy_tls_handshakes_total{what}`); `None` when it failed or took too long.
    pub async fn accept(
        &self,
        l4: L4Stream,
        within: Duration,
        metrics: &crate::metrics::Metrics,
    ) -> Option<TlsConn> {
        match tokio::time::timeout(within, self.acceptor.accept(l4)).await {
            Ok(Ok(s)) => {
                let conn = TlsConn::new(s);
                metrics.tls(if conn.resumed { "resumed" } else { "full" });
                Some(conn)
            }
            Ok(Err(e)) => {
                metrics.tls("failed");
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                metrics.tls("timeout");
                metrics.closed("tls_handshake_timeout");
                None
            }
        }
    }
}

/// Reload `tls` (see [`Tls::reload`]) and log what came of it: the names now served, or the
/// error and that the old certificates stay.
pub fn reload(tls: &Tls) -> Result<Vec<String>, TlsError> {
    let r = tls.reload();
    match &r {
        Ok(names) => tracing::info!(names = ?names, "reloaded the TLS certificates"),
        Err(e) => {
            tracing::error!(error = %e, "TLS certificates not reloaded; still serving the ones loaded before")
        }
    }
    r
}

/// Where `[tls] redirect` sends a cleartext request: the same host (its canonical form, from the
/// cache key `url`, without the cleartext port) on the HTTPS port `tls_port`, and the request's
/// own path and query (`target`, as the client sent it).
pub fn https_location(url: &str, target: &str, tls_port: u16) -> String {
    let host = eddy_url::without_port(crate::classes::host_of(url));
    let target = if target.starts_with('/') { target } else { "/" };
    if tls_port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{tls_port}{target}")
    }
}

/// A viewer connection after its TLS handshake, able to take bytes back ([`TlsConn::rewind`]) as
/// a plain pingora stream can, so the gate can pass pingora one request at a time.
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<L4Stream>,
    /// Bytes put back, read before the connection's own.
    rewound: Vec<u8>,
    at: usize,
    digest: Arc<SslDigest>,
    alpn: Option<ALPN>,
    /// Resumed from a ticket or the session cache.
    resumed: bool,
    /// The SNI name the client sent, lower-case.
    sni: Option<String>,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn")
            .field("version", &self.digest.version)
            .field("alpn", &self.alpn)
            .field("sni", &self.sni)
            .finish()
    }
}

impl TlsConn {
    fn new(inner: tokio_rustls::server::TlsStream<L4Stream>) -> TlsConn {
        let (_, c) = inner.get_ref();
        let cipher = c
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown");
        let version = c
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("unknown");
        let alpn = match c.alpn_protocol() {
            Some(b"h2") => Some(ALPN::H2),
            Some(b"http/1.1") => Some(ALPN::H1),
            _ => None,
        };
        let resumed = matches!(c.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        let sni = c.server_name().map(|s| s.to_ascii_lowercase());
        TlsConn {
            digest: Arc::new(SslDigest::new(cipher, version, None, None, Vec::new())),
            inner,
            rewound: Vec::new(),
            at: 0,
            alpn,
            resumed,
            sni,
        }
    }

    /// Put `bytes` back: they are read again before anything else.
    pub fn rewind(&mut self, bytes: &[u8]) {
        if self.at >= self.rewound.len() {
            self.rewound.clear();
            self.at = 0;
        }
        let mut v = bytes.to_vec();
        v.extend_from_slice(&self.rewound[self.at..]);
        self.rewound = v;
        self.at = 0;
    }

    /// The application protocol agreed by ALPN.
    pub fn alpn(&self) -> Option<&ALPN> {
        self.alpn.as_ref()
    }

    fn l4(&self) -> &L4Stream {
        self.inner.get_ref().0
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.rewound.len() {
            let n = (self.rewound.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.rewound[at..at + n]);
            self.at += n;
            if self.at == self.rewound.len() {
                self.rewound = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for TlsConn {
    async fn shutdown(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for TlsConn {
    fn id(&self) -> UniqueIDType {
        self.l4().id()
    }
}

impl Ssl for TlsConn {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        Some(self.digest.clone())
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.alpn.clone()
    }
}

impl GetTimingDigest for TlsConn {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.l4().get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.l4().get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.l4().get_write_pending_time()
    }
}

impl GetProxyDigest for TlsConn {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.l4().get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.get_mut().0.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for TlsConn {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.l4().get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.get_mut().0.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for TlsConn {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate for `names` signed by itself, written as PEM files in `dir`.
    fn cert(dir: &Path, file: &str, names: &[&str]) -> Certificate {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let c = params.self_signed(&key).expect("cert");
        let cert = dir.join(format!("{file}.pem"));
        let keyf = dir.join(format!("{file}.key"));
        std::fs::write(&cert, c.pem()).expect("write");
        std::fs::write(&keyf, key.serialize_pem()).expect("write");
        Certificate {
            cert,
            key: keyf,
            names: Vec::new(),
        }
    }

    fn leaf(k: &CertifiedKey) -> Vec<String> {
        names_in(&k.cert[0])
    }

    #[test]
    fn redirects_name_the_same_host_on_the_https_port() {
        assert_eq!(
            https_location("a.test/v/x.m4s?y=1", "/v/x.m4s?y=1&CMCD=sid%3D1", 443),
            "https://a.test/v/x.m4s?y=1&CMCD=sid%3D1"
        );
        assert_eq!(
            https_location("a.test:8080/x", "/x", 8443),
            "https://a.test:8443/x"
        );
        assert_eq!(https_location("[::1]:8080/x", "/x", 443), "https://[::1]/x");
        assert_eq!(https_location("[::1]/", "*", 443), "https://[::1]/");
    }

    #[test]
    fn sni_picks_exact_then_one_wildcard_label_then_the_first() {
        let dir = tempfile::tempdir().expect("dir");
        let provider = rustls::crypto::ring::default_provider();
        let certs = vec![
            cert(dir.path(), "a", &["a.test"]),
            cert(dir.path(), "w", &["*.b.test"]),
            cert(dir.path(), "x", &["x.b.test"]),
        ];
        let t = Table::load(&certs, &provider).expect("load");
        assert_eq!(leaf(&t.pick(Some("a.test"))), vec!["a.test"]);
        assert_eq!(leaf(&t.pick(Some("A.TEST."))), vec!["a.test"]);
        assert_eq!(leaf(&t.pick(Some("v.b.test"))), vec!["*.b.test"]);
        assert_eq!(leaf(&t.pick(Some("x.b.test"))), vec!["x.b.test"]);
        // One label only; the bare parent is not covered; unknown names get the first.
        assert_eq!(leaf(&t.pick(Some("a.v.b.test"))), vec!["a.test"]);
        assert_eq!(leaf(&t.pick(Some("b.test"))), vec!["a.test"]);
        assert_eq!(leaf(&t.pick(None)), vec!["a.test"]);
        assert_eq!(t.names(), ["a.test", "*.b.test", "x.b.test"]);
    }

    /// The error loading `certs` gives.
    fn load_err(certs: &[Certificate]) -> String {
        let provider = rustls::crypto::ring::default_provider();
        match Table::load(certs, &provider) {
            Err(e) => e.to_string(),
            Ok(t) => panic!("loaded {:?}", t.names()),
        }
    }

    #[test]
    fn bad_files_name_the_file_and_never_their_contents() {
        let dir = tempfile::tempdir().expect("dir");
        let provider = rustls::crypto::ring::default_provider();
        let good = cert(dir.path(), "a", &["a.test"]);
        let other = cert(dir.path(), "b", &["b.test"]);
        let missing = Certificate {
            cert: dir.path().join("nope.pem"),
            ..good.clone()
        };
        let e = load_err(&[missing]);
        assert!(e.contains("nope.pem") && e.contains("cannot read"), "{e}");
        let not_pem = dir.path().join("junk.pem");
        std::fs::write(&not_pem, "hello").expect("write");
        let e = load_err(&[Certificate {
            cert: not_pem.clone(),
            ..good.clone()
        }]);
        assert!(
            e.contains("junk.pem") && e.contains("no CERTIFICATE"),
            "{e}"
        );
        let e = load_err(&[Certificate {
            key: not_pem.clone(),
            ..good.clone()
        }]);
        assert!(e.contains("tls key file") && e.contains("junk.pem"), "{e}");
        // A key that belongs to another certificate.
        let e = load_err(&[Certificate {
            key: other.key.clone(),
            ..good.clone()
        }]);
        assert!(e.contains("b.key") && e.contains("a.pem"), "{e}");
        let secret = std::fs::read_to_string(&other.key).expect("read");
        let body = secret.lines().nth(1).unwrap_or("");
        assert!(!e.contains(body), "the key's bytes are never in an error");
        // Names given in config win over the certificate's own.
        let named = Certificate {
            names: vec!["*.c.test".into()],
            ..good
        };
        let t = Table::load(&[named], &provider).expect("load");
        assert_eq!(t.names(), ["*.c.test"]);
    }
}
