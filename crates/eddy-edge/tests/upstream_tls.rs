//! Issue 13, TLS to origins and shields: an `https://` origin whose certificate comes from a
//! private CA is refused by default (the system's roots) and accepted with that CA in
//! `edge.upstream_ca_file`; the certificate must name the host in the origin's URL, which is
//! also the SNI; connections are reused; an origin named by a host name is resolved once, off
//! the request path; and an edge reaches its shield on the shield's HTTPS port.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::{Rig, counting, start_with};
use eddy_testkit::origin::{Origin, Reply, Seen};
use eddy_testkit::pki::TestCa;
use rustls::pki_types::pem::PemObject;

/// A TLS terminator in front of a cleartext origin: what an `https://` origin looks like to the
/// edge. It records the SNI of every handshake it completes.
struct TlsFront {
    addr: SocketAddr,
    snis: Arc<Mutex<Vec<Option<String>>>>,
    _rt: tokio::runtime::Runtime,
}

impl TlsFront {
    fn start(ca: &TestCa, dir: &std::path::Path, names: &[&str], to: SocketAddr) -> TlsFront {
        TlsFront::serving(&ca.issue(dir, "front", names).unwrap(), to)
    }

    /// A front serving `issued`.
    fn serving(issued: &eddy_testkit::pki::Issued, to: SocketAddr) -> TlsFront {
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(&issued.cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&issued.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let snis = Arc::new(Mutex::new(Vec::new()));
        let seen = snis.clone();
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().map(str::to_owned);
                    seen.lock().unwrap().push(sni);
                    let Ok(mut plain) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront {
            addr,
            snis,
            _rt: rt,
        }
    }

    fn handshakes(&self) -> Vec<Option<String>> {
        self.snis.lock().unwrap().clone()
    }
}

/// A new test CA and its certificate written as `ca.pem` in `dir`.
fn ca_in(dir: &std::path::Path) -> (TestCa, std::path::PathBuf) {
    let ca = TestCa::new().unwrap();
    let file = dir.join("ca.pem");
    std::fs::write(&file, ca.pem()).unwrap();
    (ca, file)
}

/// An edge in front of `origin_url`, with `upstream_ca_file` set to `ca` when given.
fn edge_for(origin_url: &str, ca: Option<&std::path::Path>) -> Rig {
    let toml = match ca {
        Some(p) => format!("[edge]\nupstream_ca_file = {:?}\n", p),
        None => String::new(),
    };
    let url = origin_url.to_string();
    start_with(
        // The rig's own origin is not used: every request must come through the TLS front.
        |_: &Seen| Reply::status(500),
        move |o| o.origins = vec![url],
        &toml,
    )
}

#[test]
fn an_https_origin_from_a_private_ca_is_refused_by_default_and_used_with_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_file) = ca_in(dir.path());
    let origin = Origin::start(counting("max-age=600")).unwrap();
    let front = TlsFront::start(&ca, dir.path(), &["localhost"], origin.addr());
    let url = format!("https://localhost:{}", front.addr.port());

    // The system's roots do not know the test CA: refused, counted, and the origin never asked.
    let rig = edge_for(&url, None);
    let r = rig.get("/refused");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(rig.metric("eddy_upstream_tls_failures_total") >= 1);
    assert_eq!(origin.total(), 0);
    drop(rig);

    // With the CA: fetched over TLS, with the origin's host as SNI, on one reused connection.
    let rig = edge_for(&url, Some(&ca_file));
    let before = front.handshakes().len();
    for i in 0..5 {
        let r = rig.get_h(&format!("/ok/{i}"), &[("host", "video.example")]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.x_cache(), "MISS");
    }
    assert_eq!(
        rig.get_h("/ok/0", &[("host", "video.example")]).x_cache(),
        "HIT"
    );
    assert_eq!(origin.count("/ok/0"), 1);
    let handshakes = front.handshakes()[before..].to_vec();
    assert_eq!(
        handshakes,
        vec![Some("localhost".to_string())],
        "one TLS connection, reused for every miss, with SNI = the origin's host"
    );
    // Host is the site the viewer asked for; SNI named the origin.
    let seen = origin.seen();
    assert!(
        seen.iter()
            .all(|s| s.header("host") == Some("video.example")),
        "{:?}",
        seen.iter().map(|s| s.header("host")).collect::<Vec<_>>()
    );
    assert_eq!(rig.metric("eddy_upstream_tls_failures_total"), 0);
}

#[test]
fn a_self_signed_origin_is_refused_by_default_and_used_with_its_certificate_as_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let own = eddy_testkit::pki::self_signed(dir.path(), "origin", &["localhost"]).unwrap();
    let origin = Origin::start(counting("max-age=600")).unwrap();
    let front = TlsFront::serving(&own, origin.addr());
    let url = format!("https://localhost:{}", front.addr.port());
    let rig = edge_for(&url, None);
    assert_eq!(rig.get("/a").status, 502);
    assert!(rig.metric("eddy_upstream_tls_failures_total") >= 1);
    assert_eq!(origin.total(), 0);
    drop(rig);
    // Its own certificate as the CA file: trusted.
    let rig = edge_for(&url, Some(&own.cert));
    let r = rig.get("/a");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(origin.count("/a"), 1);
}

#[test]
fn an_origin_certificate_must_name_the_host_in_the_origin_url() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_file) = ca_in(dir.path());
    let origin = Origin::start(counting("max-age=600")).unwrap();
    // Signed by the trusted CA, but for another name than the one the edge connects to.
    let front = TlsFront::start(&ca, dir.path(), &["origin.example"], origin.addr());
    let rig = edge_for(
        &format!("https://127.0.0.1:{}", front.addr.port()),
        Some(&ca_file),
    );
    assert_eq!(rig.get("/x").status, 502);
    assert!(rig.metric("eddy_upstream_tls_failures_total") >= 1);
    assert_eq!(origin.total(), 0);
}

#[test]
fn a_missing_upstream_ca_file_stops_start_up_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.pem");
    std::fs::write(
        dir.path().join("edge.toml"),
        format!(
            "[edge]\norigins = [\"https://localhost:1\"]\nupstream_ca_file = {:?}\n",
            missing
        ),
    )
    .unwrap();
    let o = eddy_config::Overrides {
        listen: Some(eddy_testkit::free_port().unwrap().to_string()),
        admin: Some(eddy_testkit::free_port().unwrap().to_string()),
        ..Default::default()
    };
    let cfg = eddy_config::load(Some(&dir.path().join("edge.toml")), &o).unwrap();
    let err = eddy_edge::Edge::start(cfg).err().unwrap().to_string();
    assert!(
        err.contains("no-such-ca.pem") && err.contains("upstream_ca_file"),
        "{err}"
    );
}

#[test]
fn an_edge_reaches_its_shield_on_the_shields_https_port() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_file) = ca_in(dir.path());
    let issued = ca.issue(dir.path(), "shield", &["localhost"]).unwrap();
    let shield_tls = eddy_testkit::free_port().unwrap();
    let shield = start_with(
        counting("max-age=600"),
        |_| {},
        &format!(
            "[tls]\nlisten = \"{shield_tls}\"\ncertificates = [{{ cert = {:?}, key = {:?} }}]\n",
            issued.cert, issued.key
        ),
    );
    let origin_url = shield.origin.url();
    let edge = start_with(
        |_: &Seen| Reply::status(500),
        |o| o.origins = vec![origin_url],
        &format!(
            "[edge]\nshields = [\"https://localhost:{}\"]\nupstream_ca_file = {:?}\n",
            shield_tls.port(),
            ca_file
        ),
    );
    for _ in 0..3 {
        let r = edge.get_h("/through-the-shield", &[("host", "cdn.example")]);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(edge.metric("eddy_shield_fetches_total"), 1);
    assert_eq!(shield.origin.count("/through-the-shield"), 1);
    assert_eq!(
        edge.origin.total(),
        0,
        "the edge never fell back to its origin"
    );
    assert_eq!(
        shield.metric("eddy_tls_handshakes_total{what=\"full\"}"),
        1,
        "the edge's fetch came over TLS"
    );
    assert_eq!(edge.metric("eddy_upstream_tls_failures_total"), 0);
}

#[test]
fn origin_probes_reach_an_https_origin_over_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_file) = ca_in(dir.path());
    let origin = Origin::start(counting("max-age=600")).unwrap();
    let front = TlsFront::start(&ca, dir.path(), &["localhost"], origin.addr());
    let url = format!("https://localhost:{}", front.addr.port());
    let _rig = start_with(
        |_: &Seen| Reply::status(500),
        move |o| o.origins = vec![url],
        &format!(
            "[edge]\nupstream_ca_file = {ca_file:?}\norigin_probe_interval_ms = 100\norigin_probe_path = \"/probe\"\n"
        ),
    );
    assert!(
        eddy_testkit::wait_until(std::time::Duration::from_secs(10), || origin
            .count("/probe")
            >= 2),
        "the probes never reached the origin through TLS"
    );
    assert!(
        front
            .handshakes()
            .iter()
            .all(|sni| sni.as_deref() == Some("localhost"))
    );
    assert!(
        origin
            .seen()
            .iter()
            .filter(|s| s.path == "/probe")
            .all(|s| s.header("user-agent") == Some("eddy-probe"))
    );
}
