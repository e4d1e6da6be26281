//! The hit fast path (`eddy_edge::fast`) against the full proxy: the same answers, the same
//! counts, and hand-over to the full proxy in the middle of a keep-alive connection. Real origin,
//! real edges, 127.0.0.1.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;
use eddy_testkit::origin::{Reply, Seen};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn origin(req: &Seen) -> Reply {
    match req.path.as_str() {
        "/vary" => Reply::ok("varies")
            .header("cache-control", "max-age=60")
            .header("vary", "accept-language"),
        // Between the copied and the sealed sizes: head and body in one vectored write.
        "/mid" => Reply::ok(vec![b'm'; 32 << 10])
            .header("cache-control", "max-age=60")
            .header("content-type", "video/mp4"),
        "/big" => Reply::ok(vec![b'b'; 100 << 10])
            .header("cache-control", "max-age=60")
            .header("content-type", "video/mp4"),
        // Larger than a socket buffer: sendfile meets a full socket and waits to write again.
        "/huge" => Reply::ok(
            (0..8u32 << 20)
                .map(|i| (i % 253) as u8)
                .collect::<Vec<u8>>(),
        )
        .header("cache-control", "max-age=60")
        .header("content-type", "video/mp4"),
        p => Reply::ok(format!("body of {p}"))
            .header("cache-control", "public, max-age=60")
            .header("etag", "\"v1\"")
            .header("surrogate-key", "k1 k2")
            .header("eddy-cdn-cache-control", "max-age=30")
            .header("x-custom", "a")
            .header("content-type", "text/plain"),
    }
}

/// One HTTP/1.1 connection that reads responses framed by `Content-Length`.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Conn {
    fn open(rig: &Rig) -> Conn {
        let s = TcpStream::connect(rig.listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed early");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next response; `head` when it answers a HEAD request (no body).
    fn answer(&mut self, head: bool) -> Answer {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill();
        };
        let text = String::from_utf8(self.buf[..end].to_vec()).unwrap();
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let mut headers = BTreeMap::new();
        for l in lines.filter(|l| !l.is_empty()) {
            let (k, v) = l.split_once(':').unwrap();
            let old = headers.insert(k.to_ascii_lowercase(), v.trim().to_string());
            assert!(old.is_none(), "{k} twice");
        }
        self.buf.drain(..end);
        let len: usize = if head {
            0
        } else {
            headers["content-length"].parse().unwrap()
        };
        while self.buf.len() < len {
            self.fill();
        }
        let body = self.buf.drain(..len).collect();
        Answer {
            status,
            headers,
            body,
        }
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n").into_bytes()
}

/// Wait, with a deadline, until the memory tier holds `n` objects: a fill is stored (and leaves
/// the in-flight table) just after its last byte reaches the first client.
fn stored(rig: &Rig, n: u64) {
    let series = "eddy_cache_objects{tier=\"memory\"}";
    assert_eq!(rig.metric_becomes(series, n), n, "never stored {n} objects");
}

/// GET `path` until one answer comes from the fast path (the fill has been stored and has left
/// the in-flight table), with a deadline. Returns the fast-hit count then.
fn fast_ready(rig: &Rig, path: &str) -> u64 {
    let before = rig.metric("eddy_fast_hits_total");
    let mut now = before;
    let fast = eddy_testkit::wait_until(Duration::from_secs(10), || {
        assert_eq!(fetch(rig, &get(path), false).status, 200);
        now = rig.metric("eddy_fast_hits_total");
        now > before
    });
    assert!(fast, "{path} never became a fast hit");
    now
}

fn fetch(rig: &Rig, req: &[u8], head: bool) -> Answer {
    let mut c = Conn::open(rig);
    c.send(req);
    c.answer(head)
}

#[test]
fn a_fast_hit_answers_what_the_full_proxy_answers() {
    let fast = start(origin);
    let full = start_with(origin, |_| {}, "[edge]\nfast_hits = false\n");
    for (i, path) in ["/a", "/mid", "/big", "/huge"].into_iter().enumerate() {
        for rig in [&fast, &full] {
            let miss = fetch(rig, &get(path), false);
            assert_eq!(miss.headers["x-cache"], "MISS");
        }
        fast_ready(&fast, path);
        stored(&full, i as u64 + 1);
        let fast_before = fast.metric("eddy_fast_hits_total");
        let sendfile_before = fast.metric("eddy_fast_hits_sendfile_total");
        let a = fetch(&fast, &get(path), false);
        let b = fetch(&full, &get(path), false);
        assert_eq!((a.status, b.status), (200, 200));
        assert_eq!(a.body, b.body, "{path}");
        let mut ha = a.headers.clone();
        let mut hb = b.headers.clone();
        // Age counts whole seconds since the fill, and a second may have turned in between.
        let (age_a, age_b) = (ha.remove("age").unwrap(), hb.remove("age").unwrap());
        assert!(age_a.parse::<u64>().unwrap() <= 1 && age_b.parse::<u64>().unwrap() <= 1);
        let (cs_a, cs_b) = (
            ha.remove("cache-status").unwrap(),
            hb.remove("cache-status").unwrap(),
        );
        let ttl =
            |cs: &str| -> i64 { cs.strip_prefix("Eddy; hit; ttl=").unwrap().parse().unwrap() };
        assert!((ttl(&cs_a) - ttl(&cs_b)).abs() <= 1, "{cs_a} / {cs_b}");
        // Date is the origin's, from each edge's own fill.
        ha.remove("date");
        hb.remove("date");
        assert_eq!(ha, hb, "{path}: the fast and the full hit differ");
        assert_eq!(ha["x-cache"], "HIT");
        assert!(!ha.contains_key("eddy-cdn-cache-control"));

        let a = fetch(
            &fast,
            format!("HEAD {path} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes(),
            true,
        );
        let b = fetch(
            &full,
            format!("HEAD {path} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes(),
            true,
        );
        assert_eq!(a.headers["content-length"], b.headers["content-length"]);
        assert_eq!(a.headers["x-cache"], "HIT");
        // Both answers came from the fast path; a large body (sealed in a memory file) went by
        // sendfile.
        assert_eq!(
            fast.metric_becomes("eddy_fast_hits_total", fast_before + 2),
            fast_before + 2
        );
        let by_sendfile = u64::from(path == "/big" || path == "/huge");
        let want = sendfile_before + by_sendfile;
        assert_eq!(
            fast.metric_becomes("eddy_fast_hits_sendfile_total", want),
            want
        );
    }
    // Both edges fetched each object once; only one answered on the fast path.
    for path in ["/a", "/mid", "/big", "/huge"] {
        assert_eq!((fast.origin.count(path), full.origin.count(path)), (1, 1));
    }
    assert_eq!(full.metric("eddy_fast_hits_total"), 0);
    assert_eq!(fast.metric("eddy_cache_sealed_bodies"), 2);
    assert_eq!(fast.metric("eddy_cache_seal_errors_total"), 0);
    // Every hit counts as a hit, fast or not.
    let hits = "eddy_requests_total{cache=\"HIT\"}";
    let fast_hits = fast.metric("eddy_fast_hits_total");
    assert_eq!(fast.metric_becomes(hits, fast_hits), fast_hits);
    assert_eq!(full.metric_becomes(hits, 8), 8);
}

#[test]
fn one_connection_moves_between_the_fast_path_and_the_full_proxy() {
    let rig = start(origin);
    assert_eq!(fetch(&rig, &get("/p"), false).headers["x-cache"], "MISS");
    let base = fast_ready(&rig, "/p");
    let mut c = Conn::open(&rig);
    // Two pipelined requests in one write: both fast.
    let mut two = get("/p");
    two.extend_from_slice(&get("/p"));
    c.send(&two);
    for _ in 0..2 {
        let a = c.answer(false);
        assert_eq!((a.status, a.headers["x-cache"].as_str()), (200, "HIT"));
        assert_eq!(a.body, b"body of /p");
    }
    // A range request is the full proxy's, on the same connection.
    c.send(b"GET /p HTTP/1.1\r\nHost: example.com\r\nRange: bytes=0-3\r\n\r\n");
    let a = c.answer(false);
    assert_eq!((a.status, a.body.as_slice()), (206, &b"body"[..]));
    // A conditional request too: 304 from the stored validator.
    c.send(b"GET /p HTTP/1.1\r\nHost: example.com\r\nIf-None-Match: \"v1\"\r\n\r\n");
    let a = c.answer(true);
    assert_eq!(a.status, 304);
    // Back to the fast path for the next plain hit.
    c.send(&get("/p"));
    let a = c.answer(false);
    assert_eq!(
        (a.headers["x-cache"].as_str(), a.body.as_slice()),
        ("HIT", &b"body of /p"[..])
    );
    assert_eq!(
        rig.metric_becomes("eddy_fast_hits_total", base + 3),
        base + 3
    );
    // A miss on the same connection, then its hit. (The hit may still come from the fill
    // finishing in the background, which the full proxy streams: fast or not, it is a hit.)
    c.send(&get("/q"));
    assert_eq!(c.answer(false).headers["x-cache"], "MISS");
    c.send(&get("/q"));
    let a = c.answer(false);
    assert_eq!(
        (a.headers["x-cache"].as_str(), a.body.as_slice()),
        ("HIT", &b"body of /q"[..])
    );
    assert_eq!(rig.origin.count("/p") + rig.origin.count("/q"), 2);
}

#[test]
fn what_the_fast_path_declines_still_works() {
    let rig = start(origin);
    fetch(&rig, &get("/s"), false);
    stored(&rig, 1);
    assert_eq!(fetch(&rig, &get("/s"), false).headers["x-cache"], "HIT");
    assert_eq!(rig.metric_becomes("eddy_fast_hits_total", 1), 1);
    // A soft purge: the next request revalidates (the full proxy), not a fast stale answer.
    let purge = rig.admin_post(
        "/purge",
        "{\"url\":\"http://example.com/s\",\"soft\":true}",
        &[],
    );
    assert_eq!(purge.status, 200, "{}", purge.text());
    assert_ne!(fetch(&rig, &get("/s"), false).headers["x-cache"], "HIT");
    // A hard purge: the next request is a miss.
    let purge = rig.admin_post("/purge", "{\"url\":\"http://example.com/s\"}", &[]);
    assert_eq!(purge.status, 200, "{}", purge.text());
    let after = fetch(&rig, &get("/s"), false);
    assert_eq!(after.headers["x-cache"], "MISS");
    // Request Cache-Control and HTTP/1.0 go the full way (and still hit).
    let a = fetch(
        &rig,
        b"GET /s HTTP/1.1\r\nHost: example.com\r\nCache-Control: max-age=600\r\n\r\n",
        false,
    );
    assert_eq!(a.headers["x-cache"], "HIT");
    assert_eq!(
        rig.raw(b"GET /s HTTP/1.0\r\nHost: example.com\r\n\r\n"),
        200
    );
    // Vary: stored with a secondary key, so never a fast hit; still a hit per variant.
    let vary = |lang: &str| {
        format!("GET /vary HTTP/1.1\r\nHost: example.com\r\nAccept-Language: {lang}\r\n\r\n")
            .into_bytes()
    };
    assert_eq!(fetch(&rig, &vary("en"), false).headers["x-cache"], "MISS");
    stored(&rig, 2);
    assert_eq!(fetch(&rig, &vary("en"), false).headers["x-cache"], "HIT");
    assert_eq!(rig.metric_becomes("eddy_fast_hits_total", 1), 1);
}
