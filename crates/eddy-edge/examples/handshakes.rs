//! TLS handshakes per second against any HTTPS server, for `bench/https.sh`: `conns` clients each
//! open a connection, shake hands, send one `GET` with `Connection: close`, read the answer to
//! its end, and start again, for `secs` seconds. With `--resume` they share a ticket store, so
//! every handshake after the first resumes (TLS 1.3 tickets; the count of resumed ones is
//! printed, to check the server issued and took them); without it every one is full.
//!
//! One client for every server: TLS 1.3 only, `TLS_AES_256_GCM_SHA384` only (what OpenSSL
//! clients pick first, so the same suite as wrk and h2load get), verified against `--ca`.
//!
//! ```sh
//! cargo run --release -p eddy-edge --example handshakes -- \
//!     --ca cert.pem --name bench.test --addr 127.0.0.1:8443 --path /bytes/1024 \
//!     --conns 32 --secs 10 [--resume]
//! ```
//!
//! Prints one line: `<handshakes/s> <resumed> <failed>`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench tool: a bad argument is a panic

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Args {
    ca: String,
    name: String,
    addr: SocketAddr,
    path: String,
    conns: usize,
    secs: u64,
    resume: bool,
}

fn args() -> Args {
    let mut a = Args {
        ca: String::new(),
        name: "localhost".into(),
        addr: "127.0.0.1:443".parse().unwrap(),
        path: "/".into(),
        conns: 32,
        secs: 10,
        resume: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().expect("a value after each option");
        match k.as_str() {
            "--ca" => a.ca = v(),
            "--name" => a.name = v(),
            "--addr" => a.addr = v().parse().expect("--addr host:port"),
            "--path" => a.path = v(),
            "--conns" => a.conns = v().parse().expect("--conns N"),
            "--secs" => a.secs = v().parse().expect("--secs N"),
            "--resume" => a.resume = true,
            other => panic!("unknown option {other}"),
        }
    }
    a
}

fn main() {
    let a = args();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&a.ca).expect("--ca: a PEM file") {
        roots.add(c.expect("a certificate")).expect("a usable CA");
    }
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|s| s.suite() == rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = if a.resume {
        rustls::client::Resumption::in_memory_sessions(4096)
    } else {
        rustls::client::Resumption::disabled()
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(a.name.clone()).expect("--name: a server name");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        a.path, a.name
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let resumed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..a.conns {
            let (connector, name, request) = (connector.clone(), name.clone(), request.clone());
            let (done, resumed, failed, stop) =
                (done.clone(), resumed.clone(), failed.clone(), stop.clone());
            let addr = a.addr;
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    let one = async {
                        let tcp = tokio::net::TcpStream::connect(addr).await?;
                        tcp.set_nodelay(true)?;
                        let mut tls = connector.connect(name.clone(), tcp).await?;
                        tls.write_all(request.as_bytes()).await?;
                        let mut got = 0usize;
                        loop {
                            let n = tls.read(&mut buf).await?;
                            if n == 0 {
                                break;
                            }
                            got += n;
                        }
                        let kind = tls.get_ref().1.handshake_kind();
                        std::io::Result::Ok((got, kind))
                    };
                    match tokio::time::timeout(Duration::from_secs(5), one).await {
                        Ok(Ok((got, kind))) if got > 0 => {
                            done.fetch_add(1, Ordering::Relaxed);
                            if kind == Some(rustls::HandshakeKind::Resumed) {
                                resumed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        other => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("first failure: {other:?}");
                            }
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(a.secs)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{:.1} {} {}",
        done.load(Ordering::Relaxed) as f64 / secs,
        resumed.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
}
