//! Issue 13, HTTPS at the edge: certificates chosen by SNI (wildcards too), ALPN h2 and
//! http/1.1, TLS hits on the hit fast path, certificate reload under open connections, session
//! resumption, and handshakes that fail or stall are cut within the head deadline. Certificates
//! come from a CA made at test time.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Rig, counting, start_with};
use eddy_testkit::pki::{Issued, TestCa};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Https {
    rig: Rig,
    ca: TestCa,
    tls: SocketAddr,
    a: Issued,
    _dir: tempfile::TempDir,
}

/// An origin and an edge with an HTTPS port serving `a.test` and `*.b.test`; `extra` goes
/// before `[tls]`.
fn https(extra: &str) -> Https {
    https_with(extra, "")
}

/// As [`https`], with `tls_extra` in `[tls]`.
fn https_with(extra: &str, tls_extra: &str) -> Https {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new().unwrap();
    let a = ca.issue(dir.path(), "a", &["a.test"]).unwrap();
    let w = ca.issue(dir.path(), "w", &["*.b.test"]).unwrap();
    let tls = eddy_testkit::free_port().unwrap();
    let toml = format!(
        "{extra}[tls]\nlisten = \"{tls}\"\n{tls_extra}certificates = [\n  {{ cert = {:?}, key = {:?} }},\n  {{ cert = {:?}, key = {:?} }},\n]\n",
        a.cert, a.key, w.cert, w.key
    );
    let count = counting("max-age=600");
    // The origin sends its own Strict-Transport-Security; `[tls] hsts` replaces it on HTTPS.
    let rig = start_with(
        move |s: &eddy_testkit::origin::Seen| {
            count(s).header("strict-transport-security", "max-age=1")
        },
        |_| {},
        &toml,
    );
    Https {
        rig,
        ca,
        tls,
        a,
        _dir: dir,
    }
}

impl Https {
    /// A client that trusts the test CA and reaches `names` at the HTTPS port.
    fn client(&self, names: &[&str], h1_only: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca.pem().as_bytes()).unwrap())
            .pool_max_idle_per_host(0);
        for n in names {
            b = b.resolve(n, self.tls);
        }
        if h1_only {
            b = b.http1_only();
        }
        b.build().unwrap()
    }

    fn url(&self, name: &str, path: &str) -> String {
        format!("https://{name}:{}{path}", self.tls.port())
    }

    /// A rustls client configuration trusting the test CA, offering `alpn`.
    fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(self.ca.der())).unwrap();
        let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(c)
    }

    /// A TLS connection to the HTTPS port as `name`.
    async fn connect(
        &self,
        config: &Arc<rustls::ClientConfig>,
        name: &str,
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(self.tls).await.unwrap();
        tokio_rustls::TlsConnector::from(config.clone())
            .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
            .await
            .unwrap()
    }
}

/// One keep-alive GET on `s`: the status and body.
async fn get_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    host: &str,
    path: &str,
) -> (u16, String) {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a whole response");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                return (status, body);
            }
        }
    }
}

#[test]
fn sni_alpn_and_tls_hits_on_the_fast_path() {
    let h = https("");
    let rig = &h.rig;
    let h1 = h.client(&["a.test", "v.b.test", "c.test"], true);
    let h2 = h.client(&["a.test"], false);
    rig.rt.block_on(async {
        let r = h1.get(h.url("a.test", "/obj")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.version(), reqwest::Version::HTTP_11);
        assert_eq!(r.text().await.unwrap(), "response 1");
    });
    let fast = rig.metric("eddy_fast_hits_total");
    rig.rt.block_on(async {
        let r = h1.get(h.url("a.test", "/obj")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-cache"], "HIT");
        assert_eq!(r.text().await.unwrap(), "response 1");
    });
    assert_eq!(
        rig.metric("eddy_fast_hits_total"),
        fast + 1,
        "an HTTPS/1.1 hit takes the fast path"
    );
    rig.rt.block_on(async {
        // The wildcard certificate answers one label under b.test (the client verifies it).
        let r = h1.get(h.url("v.b.test", "/obj")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // No certificate names c.test: the first one is presented, and the client refuses it.
        let e = h1.get(h.url("c.test", "/obj")).send().await.unwrap_err();
        assert!(format!("{e:?}").contains("NotValidForName"), "{e:?}");
        // HTTP/2 by ALPN, served from the same cache.
        let r = h2.get(h.url("a.test", "/obj")).send().await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.headers()["x-cache"], "HIT");
        assert_eq!(r.text().await.unwrap(), "response 1");
    });
    assert_eq!(
        rig.origin.count("/obj"),
        2,
        "a.test and v.b.test are two sites"
    );
    // Two clients, five connections: reqwest resumes sessions where it can.
    let full = rig.metric("eddy_tls_handshakes_total{what=\"full\"}");
    let resumed = rig.metric("eddy_tls_handshakes_total{what=\"resumed\"}");
    assert!(
        full >= 2 && full + resumed >= 4,
        "{full} full, {resumed} resumed"
    );
    assert_eq!(rig.metric("eddy_tls_handshakes_total{what=\"failed\"}"), 1);
    // The cleartext port serves the same cache (the Host the clients sent named the port).
    let host = format!("a.test:{}", h.tls.port());
    let r = rig.get_h("/obj", &[("host", &host)]);
    assert_eq!((r.status, r.x_cache()), (200, "HIT"));
}

#[test]
fn reload_swaps_certificates_and_keeps_open_connections() {
    let h = https("");
    let rig = &h.rig;
    let config = h.client_config(&[b"http/1.1"]);
    let peer = |s: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    // `POST /tls/reload`: its status and body.
    let reload = || async {
        let r = rig
            .client
            .post(rig.admin_url("/tls/reload"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    rig.rt.block_on(async {
        let mut open = h.connect(&config, "a.test").await;
        assert_eq!(peer(&open), h.a.der);
        assert_eq!(get_on(&mut open, "a.test", "/r").await.0, 200);
        // `a.test:443` on HTTPS is the same site as `a.test`: the same cached object.
        assert_eq!(
            get_on(&mut open, "a.test:443", "/r").await,
            (200, "response 1".into())
        );
        assert_eq!(rig.origin.count("/r"), 1);
        // A new certificate for a.test in the same files, then a reload.
        let dir = h.a.cert.parent().unwrap();
        let renewed = h.ca.issue(dir, "a", &["a.test"]).unwrap();
        assert_ne!(renewed.der, h.a.der);
        let (status, text) = reload().await;
        assert_eq!(status, 200);
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["names"], serde_json::json!(["a.test", "*.b.test"]));
        // The open connection goes on; a new one gets the new certificate.
        assert_eq!(
            get_on(&mut open, "a.test", "/r").await,
            (200, "response 1".into())
        );
        // (A new client: a resumed session would present no certificate at all.)
        let fresh = h.connect(&h.client_config(&[b"http/1.1"]), "a.test").await;
        assert_eq!(peer(&fresh), renewed.der);
        // A key that does not read: the reload is refused, naming the file, and the
        // certificates in use stay.
        std::fs::write(&renewed.key, "-----BEGIN PRIVATE KEY-----\nnot a key\n").unwrap();
        let (status, text) = reload().await;
        assert_eq!(status, 500);
        assert!(
            text.contains("tls key file") && text.contains("a.key"),
            "{text}"
        );
        let again = h.connect(&h.client_config(&[b"http/1.1"]), "a.test").await;
        assert_eq!(peer(&again), renewed.der);
        assert_eq!(get_on(&mut open, "a.test", "/r").await.0, 200);
    });
}

#[test]
fn returning_clients_resume_and_stalled_handshakes_are_cut() {
    let h = https("[edge]\nhead_timeout_ms = 500\n");
    let rig = &h.rig;
    let config = h.client_config(&[b"http/1.1"]);
    rig.rt.block_on(async {
        for round in 0..2 {
            let mut s = h.connect(&config, "a.test").await;
            // The ticket comes after the handshake: read a response before leaving.
            assert_eq!(get_on(&mut s, "a.test", "/t").await.0, 200);
            let kind = s.get_ref().1.handshake_kind();
            let want = if round == 0 {
                rustls::HandshakeKind::Full
            } else {
                rustls::HandshakeKind::Resumed
            };
            assert_eq!(kind, Some(want), "round {round}");
        }
    });
    assert_eq!(rig.metric("eddy_tls_handshakes_total{what=\"resumed\"}"), 1);
    // A client that connects and says nothing is cut at the head deadline.
    let t0 = Instant::now();
    rig.rt.block_on(async {
        let mut s = tokio::net::TcpStream::connect(h.tls).await.unwrap();
        let mut b = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .expect("closed by the edge")
            .unwrap_or(0);
        assert_eq!(n, 0);
    });
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(rig.metric("eddy_tls_handshakes_total{what=\"timeout\"}"), 1);
    // Cleartext HTTP on the HTTPS port is not a handshake.
    rig.rt.block_on(async {
        let mut s = tokio::net::TcpStream::connect(h.tls).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        let mut b = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut b)).await;
    });
    assert_eq!(rig.metric("eddy_tls_handshakes_total{what=\"failed\"}"), 1);
}

#[test]
fn a_certificate_that_does_not_load_stops_start_up_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new().unwrap();
    let a = ca.issue(dir.path(), "a", &["a.test"]).unwrap();
    let missing = dir.path().join("missing.key");
    let toml = format!(
        "[tls]\nlisten = \"{}\"\ncertificates = [{{ cert = {:?}, key = {:?} }}]\n",
        eddy_testkit::free_port().unwrap(),
        a.cert,
        missing
    );
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, toml).unwrap();
    let o = common::node_overrides(vec!["http://127.0.0.1:9".into()], None);
    let cfg = eddy_config::load(Some(&path), &o).unwrap();
    let e = eddy_edge::Edge::start(cfg).err().expect("start-up fails");
    let msg = e.to_string();
    assert!(
        msg.contains("tls key file") && msg.contains("missing.key") && msg.contains("cannot read"),
        "{msg}"
    );
}

#[test]
fn hsts_on_https_and_cleartext_redirected_to_https() {
    let h = https_with("", "hsts = \"max-age=600\"\nredirect = true\n");
    let rig = &h.rig;
    let h1 = h.client(&["a.test"], true);
    let h2 = h.client(&["a.test"], false);
    let fast = rig.metric("eddy_fast_hits_total");
    rig.rt.block_on(async {
        // A miss through the full proxy, a hit on the fast path, a hit over HTTP/2: the same
        // Strict-Transport-Security, once.
        for c in [&h1, &h1, &h2] {
            let r = c.get(h.url("a.test", "/obj")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let v: Vec<_> = r
                .headers()
                .get_all("strict-transport-security")
                .iter()
                .collect();
            assert_eq!(v, ["max-age=600"], "{:?}", r.version());
        }
    });
    assert_eq!(rig.metric("eddy_fast_hits_total"), fast + 1);
    // Cleartext: 308 to the same URL on the HTTPS port, on the fast path's port and for h2c.
    let head = rig.rt.block_on(async {
        let mut s = tokio::net::TcpStream::connect(rig.listen).await.unwrap();
        s.write_all(
            b"GET /obj?x=1&CMCD=sid%3D%22s%22 HTTP/1.1\r\nHost: a.test:8080\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut b = Vec::new();
        s.read_to_end(&mut b).await.unwrap();
        String::from_utf8_lossy(&b).to_ascii_lowercase()
    });
    assert!(head.starts_with("http/1.1 308"), "{head}");
    let location = format!(
        "location: https://a.test:{}/obj?x=1&cmcd=sid%3d%22s%22\r\n",
        h.tls.port()
    );
    assert!(head.contains(&location), "{head}");
    assert!(
        !head.contains("strict-transport-security"),
        "no HSTS over cleartext: {head}"
    );
    let status = rig.rt.block_on(async {
        let c = reqwest::Client::builder()
            .http2_prior_knowledge()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = c
            .get(rig.url("/obj?x=1&CMCD=sid%3D%22s%22"))
            .send()
            .await
            .unwrap();
        let location = r.headers()["location"].to_str().unwrap().to_string();
        (r.status().as_u16(), r.version(), location)
    });
    assert_eq!(
        status,
        (
            308,
            reqwest::Version::HTTP_2,
            format!(
                "https://127.0.0.1:{}/obj?x=1&CMCD=sid%3D%22s%22",
                h.tls.port()
            )
        )
    );
    // Purges are not redirected.
    let r = rig.req("PURGE", "/obj", &[("host", "a.test")]);
    assert_eq!(r.status, 200);
    assert_eq!(
        rig.origin.count("/obj"),
        1,
        "redirects never reach the origin"
    );
}
