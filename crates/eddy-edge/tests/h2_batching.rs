//! Issue 13, HTTP/2 write batching (`eddy-edge/src/batch.rs`): the edge sends the responses of
//! many streams of one connection together. Hundreds of concurrent streams on one connection,
//! over TLS (ALPN h2) and cleartext (h2c), with bodies from 100 B to 300 KiB, misses and hits
//! mixed, all get their whole bodies and nothing waits: a batch left unsent would stall a
//! stream until the deadline.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::start_with;
use eddy_testkit::origin::{Reply, Seen};
use eddy_testkit::pki::TestCa;

const SIZES: [usize; 5] = [100, 1024, 5000, 70_000, 300_000];

/// The body for `/obj/<i>`: its size from [`SIZES`], its bytes from `i`.
fn body(i: usize) -> Vec<u8> {
    (0..SIZES[i % SIZES.len()])
        .map(|k| b'a' + ((i * 7 + k) % 26) as u8)
        .collect()
}

fn origin(s: &Seen) -> Reply {
    let i: usize = s
        .path
        .trim_start_matches("/obj/")
        .parse()
        .unwrap_or_default();
    Reply::ok(body(i)).header("cache-control", "max-age=600")
}

/// `rounds` rounds of `streams` concurrent GETs on `client` (one HTTP/2 connection) for
/// `base/obj/<i>`, `i` over 40 objects: every answer whole, HTTP/2, within 20 s a round.
fn check(rt: &tokio::runtime::Runtime, client: &reqwest::Client, base: &str, rounds: usize) {
    for round in 0..rounds {
        let got = rt.block_on(async {
            let tasks: Vec<_> = (0..300)
                .map(|n| {
                    let (c, url) = (client.clone(), format!("{base}/obj/{}", n % 40));
                    tokio::spawn(async move {
                        let r = c.get(&url).send().await.unwrap();
                        assert_eq!(r.version(), reqwest::Version::HTTP_2);
                        (n % 40, r.status().as_u16(), r.bytes().await.unwrap())
                    })
                })
                .collect();
            tokio::time::timeout(Duration::from_secs(20), async {
                let mut out = Vec::new();
                for t in tasks {
                    out.push(t.await.unwrap());
                }
                out
            })
            .await
            .unwrap_or_else(|_| panic!("round {round}: streams stalled on {base}"))
        });
        for (i, status, b) in got {
            assert_eq!(status, 200, "{base}/obj/{i}");
            assert!(b[..] == body(i)[..], "{base}/obj/{i}: {} bytes", b.len());
        }
    }
}

#[test]
fn many_streams_on_one_connection_get_whole_answers_over_tls_and_h2c() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new().unwrap();
    let cert = ca.issue(dir.path(), "a", &["a.test"]).unwrap();
    let tls = eddy_testkit::free_port().unwrap();
    let rig = start_with(
        origin,
        |_| {},
        &format!(
            "[tls]\nlisten = \"{tls}\"\ncertificates = [{{ cert = {:?}, key = {:?} }}]\n",
            cert.cert, cert.key
        ),
    );
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    check(&rig.rt, &h2c, &format!("http://{}", rig.listen), 3);
    let https = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .resolve("a.test", tls)
        .http2_prior_knowledge()
        .build()
        .unwrap();
    check(
        &rig.rt,
        &https,
        &format!("https://a.test:{}", tls.port()),
        3,
    );
    // Each object was fetched once per site (127.0.0.1:<port> and a.test): the rest were hits,
    // batched with the misses.
    assert_eq!(rig.origin.total(), 80);
}
