//! Edge behaviour beyond RFC 9111 rules: coalescing, ranges, purge, admin API, h2c, restart,
//! bad input and origin failures. Real origin, real edge, 127.0.0.1.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;
use eddy_testkit::origin::{Reply, Seen};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[test]
fn coalescing_one_origin_fetch_and_streaming_to_waiters() {
    // A slow origin sends 200 KiB over 2 s. 100 concurrent requests: 1 origin request, and every
    // waiter's first byte arrives within 50 ms of the first one's.
    let rig = start(|_req: &Seen| {
        Reply::status(200)
            .slow(vec![b'z'; 200 << 10], 20, Duration::from_secs(2))
            .header("content-length", (200 << 10).to_string())
            .header("cache-control", "max-age=60")
    });
    let url = rig.url("/big");
    let client = rig.client.clone();
    let results: Vec<(Duration, Duration, usize)> = rig.rt.block_on(async move {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let c = client.clone();
            let u = url.clone();
            tasks.push(tokio::spawn(async move {
                let mut r = c.get(&u).send().await.expect("response");
                let mut first = None;
                let mut n = 0;
                while let Some(chunk) = r.chunk().await.expect("chunk") {
                    if first.is_none() && !chunk.is_empty() {
                        first = Some(start.elapsed());
                    }
                    n += chunk.len();
                }
                (first.unwrap_or_default(), start.elapsed(), n)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    assert_eq!(rig.origin.count("/big"), 1, "exactly one origin request");
    assert!(
        results.iter().all(|(_, _, n)| *n == 200 << 10),
        "every waiter got the whole body"
    );
    let firsts: Vec<Duration> = results.iter().map(|r| r.0).collect();
    let min = firsts.iter().min().copied().unwrap_or_default();
    let max = firsts.iter().max().copied().unwrap_or_default();
    eprintln!(
        "coalescing: first byte min {min:?} max {max:?} spread {:?}",
        max - min
    );
    assert!(
        max - min < Duration::from_millis(50),
        "waiters' first byte spread {:?}",
        max - min
    );
    // Streaming, not store-and-forward: first bytes come long before the 2 s body ends.
    assert!(max < Duration::from_millis(1000), "first byte at {max:?}");
}

#[test]
fn failed_fill_hands_over_to_next_waiter() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let rig = start(move |_req: &Seen| {
        if n2.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::reset().delay(Duration::from_millis(300))
        } else {
            Reply::ok("second try").header("cache-control", "max-age=60")
        }
    });
    let url = rig.url("/flaky");
    let client = rig.client.clone();
    let statuses: Vec<u16> = rig.rt.block_on(async move {
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let c = client.clone();
            let u = url.clone();
            tasks.push(tokio::spawn(async move {
                c.get(&u)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or(0));
        }
        out
    });
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        ok >= 9,
        "only the request whose fetch failed may fail: {statuses:?}"
    );
    // One failed fetch, then a waiter takes over: no stampede of one fetch per waiter. Under load
    // a waiter whose lock wait ends at the moment of the failure may fetch too, hence up to 3.
    let fetches = rig.origin.count("/flaky");
    assert!(
        (2..=3).contains(&fetches),
        "{fetches} origin fetches for 10 waiters"
    );
}

#[test]
fn ranges_from_cache() {
    let body: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let b2 = body.clone();
    let rig = start(move |_req: &Seen| Reply::ok(b2.clone()).header("cache-control", "max-age=60"));
    // Once an object is cached whole, ranges are cut from it (no slicing, no origin request).
    assert_eq!(rig.get("/r").x_cache(), "MISS");
    let r = rig.get_h("/r", &[("range", "bytes=0-99")]);
    assert_eq!((r.status, r.x_cache()), (206, "HIT"));
    assert_eq!(r.body, body[0..100].to_vec());
    assert_eq!(r.h("content-range"), "bytes 0-99/1000");
    let r = rig.get_h("/r", &[("range", "bytes=-10")]);
    assert_eq!((r.status, r.x_cache()), (206, "HIT"));
    assert_eq!(r.body, body[990..].to_vec());
    let r = rig.get_h("/r", &[("range", "bytes=10-19,50-59")]);
    assert_eq!(r.status, 206);
    assert!(
        r.h("content-type").starts_with("multipart/byteranges"),
        "{}",
        r.h("content-type")
    );
    let text = r.body.clone();
    assert!(
        text.windows(10).any(|w| w == &body[10..20])
            && text.windows(10).any(|w| w == &body[50..60])
    );
    let r = rig.get_h("/r", &[("range", "bytes=5000-6000")]);
    assert_eq!(r.status, 416);
    assert_eq!(rig.origin.count("/r"), 1);
}

#[test]
fn purge_method_hard_and_soft() {
    let rig = start(|req: &Seen| {
        if req.header("if-none-match") == Some("\"p\"") {
            Reply::status(304)
                .header("etag", "\"p\"")
                .header("cache-control", "max-age=60")
        } else {
            Reply::ok("purgeable")
                .header("etag", "\"p\"")
                .header("cache-control", "max-age=60")
        }
    });
    rig.get("/p");
    assert_eq!(rig.get("/p").x_cache(), "HIT");
    let p = rig.req("PURGE", "/p", &[]);
    assert_eq!(p.status, 200);
    assert!(p.text().contains("\"purged\":1"));
    assert_eq!(rig.get("/p").x_cache(), "MISS", "hard purge removes");
    let p = rig.req("PURGE", "/p", &[("fastly-soft-purge", "1")]);
    assert!(p.text().contains("\"soft\":true"));
    let r = rig.get("/p");
    assert_eq!(
        (r.x_cache(), r.text().as_str()),
        ("REVALIDATED", "purgeable"),
        "soft purge revalidates"
    );
    assert_eq!(
        rig.origin
            .seen()
            .last()
            .and_then(|s| s.header("if-none-match").map(str::to_string)),
        Some("\"p\"".into())
    );
}

#[test]
fn purge_method_refused_outside_allowed_networks() {
    let rig = start_with(
        counting("max-age=60"),
        |_| {},
        "[edge]\npurge_allow = [\"10.0.0.0/8\"]\n",
    );
    rig.get("/x");
    let p = rig.req("PURGE", "/x", &[]);
    assert_eq!(p.status, 405);
    assert_eq!(rig.get("/x").x_cache(), "HIT");
}

#[test]
fn admin_purge_by_prefix_and_surrogate_key_with_token() {
    let rig = start_with(
        |req: &Seen| {
            let keys = if req.path.starts_with("/show/") {
                "show all"
            } else {
                "all"
            };
            Reply::ok(req.path.clone())
                .header("cache-control", "max-age=60")
                .header("surrogate-key", keys)
        },
        |_| {},
        "[edge]\nadmin_token = \"s3cret\"\n",
    );
    for p in ["/show/1", "/show/2", "/other/1"] {
        rig.get(p);
    }
    let auth = [("authorization", "Bearer s3cret")];
    let host = rig.listen.to_string();
    let denied = rig.admin_post("/purge", &format!("{{\"prefix\":\"{host}/show/\"}}"), &[]);
    assert_eq!(denied.status, 401);
    let r = rig.admin_post("/purge", &format!("{{\"prefix\":\"{host}/show/\"}}"), &auth);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("\"purged\":2"), "{}", r.text());
    assert_eq!(rig.get("/show/1").x_cache(), "MISS");
    assert_eq!(rig.get("/other/1").x_cache(), "HIT");
    let r = rig.admin_post("/purge", "{\"key\":\"all\"}", &auth);
    assert!(r.text().contains("\"purged\":2"), "{}", r.text());
    assert_eq!(rig.get("/other/1").x_cache(), "MISS");
    // Bad bodies get a 400 that says what is expected.
    let r = rig.admin_post("/purge", "{\"url\":\"a\",\"key\":\"b\"}", &auth);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("exactly one"));
    let r = rig.admin_post("/purge", "not json", &auth);
    assert_eq!(r.status, 400);
}

#[test]
fn h2c_on_the_same_port() {
    let rig = start(counting("max-age=60"));
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let a = rig.send(h2.get(rig.url("/h2")));
    let b = rig.send(h2.get(rig.url("/h2")));
    assert_eq!((a.status, b.x_cache()), (200, "HIT"));
    let v = rig
        .rt
        .block_on(async { h2.get(rig.url("/h2")).send().await.map(|r| r.version()) });
    assert_eq!(v.ok(), Some(reqwest::Version::HTTP_2));
    assert_eq!(rig.get("/h2").x_cache(), "HIT", "HTTP/1.1 shares the cache");
}

#[test]
fn disk_tier_survives_restart() {
    let mut rig = start(counting("max-age=600"));
    let dir = rig.dir.path().join("cache");
    let o = eddy_config::Overrides {
        listen: Some(eddy_testkit::free_port().unwrap().to_string()),
        admin: Some(eddy_testkit::free_port().unwrap().to_string()),
        origins: vec![rig.origin.url()],
        cache_dir: Some(dir.clone()),
        ..Default::default()
    };
    rig.stop_edge();
    rig.start_edge(&o, "");
    assert_eq!(rig.get("/persist").x_cache(), "MISS");
    let host = rig.listen.to_string();
    rig.stop_edge();
    // Same listen address so the cache key (host + path) is the same.
    let o2 = eddy_config::Overrides {
        listen: Some(host),
        admin: Some(eddy_testkit::free_port().unwrap().to_string()),
        ..o
    };
    rig.start_edge(&o2, "");
    let r = rig.get("/persist");
    assert_eq!((r.x_cache(), r.text().as_str()), ("HIT", "response 1"));
    assert_eq!(rig.origin.count("/persist"), 1);
    let m = rig.send(rig.client.get(rig.admin_url("/metrics")));
    assert!(
        m.text()
            .contains("eddy_cache_tier_hits_total{tier=\"disk\"} 1"),
        "{}",
        m.text()
    );
}

#[test]
fn malformed_and_smuggling_requests_never_reach_origin() {
    let rig = start(counting("max-age=60"));
    // Shorter than the HTTP/2 preface: answered at once, never left waiting for more bytes.
    let t = std::time::Instant::now();
    assert_eq!(rig.raw(b"GARBAGE\r\n\r\n"), 400);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Control characters in the target, raw (pingora escapes them) or percent-encoded.
    assert_eq!(rig.raw(b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(rig.raw(b"GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(rig.raw(b"GET /a?q=%7f HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(
        rig.raw(b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n"),
        400
    );
    assert_eq!(rig.raw(b"GET /x HTTP/9.9\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(rig.raw(b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400);
    assert_eq!(
        rig.raw(
            b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
        ),
        400
    );
    let big = format!(
        "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let s = rig.raw(big.as_bytes());
    assert!(s == 431 || s == 400, "oversized header got {s}");
    assert_eq!(rig.origin.total(), 0, "nothing reached the origin");
    // A request shorter than the HTTP/2 preface (18 bytes) is answered, not left waiting for
    // the rest of a preface: here 400, as an edge serves by Host and this one names none.
    let t = std::time::Instant::now();
    assert_eq!(rig.raw(b"GET /x HTTP/1.0\r\n\r\n"), 400);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// An origin that answers every request with bytes that are not HTTP.
fn garbage_origin() -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        l.set_nonblocking(false).unwrap();
        for _ in 0..2 {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 abc nonsense\r\n\x00\x01\r\n\r\n");
        }
    });
    (addr, t)
}

#[test]
fn invalid_origin_response_is_502_and_not_cached() {
    let (addr, t) = garbage_origin();
    let rig = start_with(
        counting("max-age=60"),
        |o| o.origins = vec![format!("http://{addr}")],
        "",
    );
    let r = rig.get("/bad");
    assert_eq!(r.status, 502);
    let r = rig.get("/bad");
    assert_eq!(r.status, 502, "nothing was cached");
    drop(rig);
    let _ = t.join();
}

#[test]
fn unreachable_origin_502_and_failover_to_next() {
    let dead = eddy_testkit::free_port().unwrap();
    let rig = start_with(
        counting("max-age=60"),
        |o| o.origins = vec![format!("http://{dead}")],
        "",
    );
    assert_eq!(rig.get("/u").status, 502);
    let live = rig.origin.url();
    let rig2 = start_with(
        counting("max-age=60"),
        |o| o.origins = vec![format!("http://{dead}"), live],
        "",
    );
    let r = rig2.get("/u");
    assert_eq!(r.status, 200, "second origin answered");
}

#[test]
fn slow_origin_times_out_with_504() {
    let rig = start_with(
        |_req: &Seen| Reply::ok("late").delay(Duration::from_secs(3)),
        |_| {},
        "[edge]\norigin_read_timeout_ms = 300\n",
    );
    let t = Instant::now();
    let r = rig.get("/slow");
    assert_eq!(r.status, 504);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn metrics_count_outcomes() {
    let rig = start(counting("max-age=60"));
    rig.get("/m1");
    rig.get("/m1");
    let m = rig.send(rig.client.get(rig.admin_url("/metrics"))).text();
    for needle in [
        "eddy_requests_total{cache=\"MISS\"} 1",
        "eddy_requests_total{cache=\"HIT\"} 1",
        "eddy_origin_fetches_total 1",
        "eddy_cache_objects{tier=\"memory\"} 1",
        "eddy_request_duration_seconds_bucket",
    ] {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }
    let h = rig.send(rig.client.get(rig.admin_url("/healthz")));
    assert_eq!(h.status, 200);
}

/// An origin that honours single ranges, like a real file server.
fn ranged(body: Arc<Vec<u8>>) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |req: &Seen| {
        let len = body.len() as u64;
        let r = req
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok())));
        match r {
            Some((a, _)) if a >= len => {
                Reply::status(416).header("content-range", format!("bytes */{len}"))
            }
            Some((a, b)) => {
                let b = b.unwrap_or(len - 1).min(len - 1);
                Reply::status(206)
                    .body(body[a as usize..=b as usize].to_vec())
                    .header("content-range", format!("bytes {a}-{b}/{len}"))
                    .header("cache-control", "max-age=600")
                    .header("etag", "\"big\"")
            }
            None => Reply::ok(body.as_ref().clone())
                .header("cache-control", "max-age=600")
                .header("etag", "\"big\""),
        }
    }
}

#[test]
fn ranges_of_a_large_file_fetch_only_their_block() {
    let body: Arc<Vec<u8>> = Arc::new((0..10u32 << 20).map(|i| (i % 253) as u8).collect());
    let total = body.len();
    let rig = start_with(
        ranged(body.clone()),
        |_| {},
        "[cache]\nslice_size = \"1 MiB\"\n",
    );
    let r = rig.get_h("/movie.mp4", &[("range", "bytes=5000000-5000099")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.h("content-range"),
        format!("bytes 5000000-5000099/{total}")
    );
    assert_eq!(r.body, body[5_000_000..5_000_100].to_vec());
    assert!(!r.headers.contains_key("eddy-slice-total"));
    let seen = rig.origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("range"),
        Some("bytes=4194304-5242879"),
        "only block 4 was fetched"
    );
    // Another range in the same block: a hit.
    let r = rig.get_h("/movie.mp4", &[("range", "bytes=4200000-4200009")]);

    assert_eq!((r.status, r.x_cache()), (206, "HIT"));
    assert_eq!(r.body, body[4_200_000..4_200_010].to_vec());
    assert_eq!(rig.origin.total(), 1);
    // An open range gets the rest of its block; the player asks again for more.
    let r = rig.get_h("/movie.mp4", &[("range", "bytes=0-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.h("content-range"), format!("bytes 0-1048575/{total}"));
    assert_eq!(r.body.len(), 1 << 20);
    // The last, short block.
    let r = rig.get_h(
        "/movie.mp4",
        &[("range", &format!("bytes={}-", total - 10))],
    );
    assert_eq!(r.body, body[total - 10..].to_vec());
    assert_eq!(
        r.h("content-range"),
        format!("bytes {}-{}/{total}", total - 10, total - 1)
    );
    assert_eq!(
        rig.origin.total(),
        3,
        "three blocks fetched, never the whole file"
    );
    // Purging the URL removes its blocks.
    let p = rig.req("PURGE", "/movie.mp4", &[]);
    assert!(p.text().contains("\"purged\":3"), "{}", p.text());
    assert_eq!(
        rig.get_h("/movie.mp4", &[("range", "bytes=4200000-4200009")])
            .x_cache(),
        "MISS"
    );
}

#[test]
fn range_beyond_the_end_is_416_with_the_length() {
    let body: Arc<Vec<u8>> = Arc::new(vec![7u8; 3000]);
    let rig = start_with(ranged(body), |_| {}, "[cache]\nslice_size = \"1 MiB\"\n");
    let r = rig.get_h("/small", &[("range", "bytes=5000-6000")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.h("content-range"), "bytes */3000");
}
