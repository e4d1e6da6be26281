//! Issue 11, "Edge trust": cache poisoning and purge bypass, control inputs, misbehaving clients
//! and origins, RFC 9110/9111/9213 points. Every check runs against a real origin on 127.0.0.1,
//! and those a request decides run twice: with the hit fast path on and off, which must give the
//! same answer to the same bytes.
#![allow(clippy::unwrap_used)]

mod common;

use common::raw::{RawConn, RawOrigin, Script, get, response};
use common::{Rig, counting, start_with};
use eddy_testkit::origin::{Reply, Seen};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// An edge (fast path on or off) in front of `handler`, or of `origin` when given.
fn rig(
    fast: bool,
    handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    origin: Option<String>,
    toml: &str,
) -> Rig {
    start_with(
        handler,
        |o| {
            if let Some(u) = origin {
                o.origins = vec![u];
            }
        },
        &format!("[edge]\nfast_hits = {fast}\n{toml}"),
    )
}

/// An origin handler that echoes the path, cacheable for a minute.
fn echo() -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    |s: &Seen| {
        Reply::ok(format!("{} for {}", s.path, s.header("host").unwrap_or("")))
            .header("cache-control", "max-age=60")
    }
}

/// One request on a new connection; its response.
fn once(rig: &Rig, bytes: &[u8]) -> common::raw::RawResp {
    let mut c = RawConn::open(rig.listen);
    c.send(bytes);
    c.read(false).expect("a response")
}

#[test]
fn a_host_must_be_one_valid_host_and_keys_use_it_normalised() {
    for fast in [true, false] {
        let rig = rig(fast, echo(), None, "");
        // Item 1: `shop.test/static` + `/app.js` once became `shop.test/static/app.js`.
        for bad in [
            "GET /app.js HTTP/1.1\r\nHost: shop.test/static\r\n\r\n",
            "GET /app.js HTTP/1.1\r\nHost: shop.test:65536\r\n\r\n",
            "GET /app.js HTTP/1.1\r\nHost: shop test\r\n\r\n",
            "GET /app.js HTTP/1.1\r\nHost:\r\n\r\n",
            // Item 3: no Host, or two.
            "GET /app.js HTTP/1.1\r\n\r\n",
            "GET /app.js HTTP/1.1\r\nHost: shop.test\r\nHost: other.test\r\n\r\n",
        ] {
            let r = once(&rig, bad.as_bytes());
            assert_eq!(r.status, 400, "fast={fast} {bad:?}: {}", r.text());
            assert!(r.text().contains("error"), "{}", r.text());
        }
        assert_eq!(
            rig.origin.total(),
            0,
            "fast={fast}: nothing reached the origin"
        );
        // Spellings of one host are one key, and the origin is asked with the normal form.
        let a = once(&rig, &get("/static/app.js", "SHOP.test:80"));
        let b = once(&rig, &get("/static/app.js", "shop.test"));
        assert_eq!(
            (a.h("x-cache"), b.h("x-cache")),
            (Some("MISS"), Some("HIT"))
        );
        assert_eq!(b.text(), "/static/app.js for shop.test");
        assert_eq!(rig.origin.total(), 1);
    }
}

#[test]
fn only_origin_absolute_and_asterisk_targets_are_accepted() {
    for fast in [true, false] {
        let rig = rig(fast, echo(), None, "");
        assert_eq!(
            once(&rig, &get("/", "victim.test")).h("x-cache"),
            Some("MISS")
        );
        // Item 2: each of these overwrote the site's `/` entry.
        for bad in [
            "GET evil.html HTTP/1.1\r\nHost: victim.test\r\n\r\n",
            "GET victim.test/p HTTP/1.1\r\nHost: victim.test\r\n\r\n",
            "GET  /x HTTP/1.1\r\nHost: victim.test\r\n\r\n",
            "GET * HTTP/1.1\r\nHost: victim.test\r\n\r\n",
            "GET http://other.test/ HTTP/1.1\r\nHost: victim.test\r\n\r\n",
            "GET /x HTTP/1.1 junk\r\nHost: victim.test\r\n\r\n",
        ] {
            assert_eq!(
                once(&rig, bad.as_bytes()).status,
                400,
                "fast={fast} {bad:?}"
            );
        }
        let root = once(&rig, &get("/", "victim.test"));
        assert_eq!(root.h("x-cache"), Some("HIT"), "fast={fast}");
        assert_eq!(root.text(), "/ for victim.test");
        assert_eq!(
            rig.origin.total(),
            1,
            "fast={fast}: only the first `/` reached the origin"
        );
        // Absolute form whose authority agrees with Host: the same object as origin form.
        let abs = once(
            &rig,
            b"GET http://Victim.test:80/p HTTP/1.1\r\nHost: victim.test\r\n\r\n",
        );
        assert_eq!(abs.status, 200);
        assert_eq!(
            once(&rig, &get("/p", "victim.test")).h("x-cache"),
            Some("HIT")
        );
        assert_eq!(
            rig.origin.seen().last().map(|s| s.path.clone()),
            Some("/p".into())
        );
        // `*` is for OPTIONS: it passes the gate and goes on (the origin answers it).
        let star = once(&rig, b"OPTIONS * HTTP/1.1\r\nHost: victim.test\r\n\r\n");
        assert!(
            star.h("x-cache").is_some(),
            "{} {:?}",
            star.status,
            star.headers
        );
    }
}

#[test]
fn equivalent_paths_are_one_object_and_one_purge_reaches_them_all() {
    let toml = "[sites.\"m.test\"]\nmerge_slashes = true\n";
    for fast in [true, false] {
        let rig = rig(fast, echo(), None, toml);
        let spellings = [
            "/a/../b",
            "/%2e%2e/b",
            "/./b",
            "/%62",
            "/%2E%2E/%62",
            "/x/y/../../b",
        ];
        assert_eq!(
            once(&rig, &get("/b", "shop.test")).h("x-cache"),
            Some("MISS")
        );
        for p in spellings {
            let r = once(&rig, &get(p, "shop.test"));
            assert_eq!(
                (r.status, r.h("x-cache")),
                (200, Some("HIT")),
                "fast={fast} {p}"
            );
            assert_eq!(r.text(), "/b for shop.test");
        }
        assert_eq!(rig.origin.total(), 1);
        // Item 4: a purge of `/b`, spelled any way, reaches every spelling.
        let p = rig.admin_post("/purge", r#"{"url": "http://SHOP.test/a/./../%62"}"#, &[]);
        assert_eq!(p.status, 200, "{}", p.text());
        let first = once(&rig, &get(spellings[0], "shop.test"));
        assert_eq!(first.h("x-cache"), Some("MISS"), "fast={fast}");
        for p in &spellings[1..] {
            assert_eq!(once(&rig, &get(p, "shop.test")).h("x-cache"), Some("HIT"));
        }
        // The origin was asked for `/b` both times, never for a spelling.
        assert!(
            rig.origin.seen().iter().all(|s| s.path == "/b"),
            "{:?}",
            rig.origin.seen()
        );
        // `%2F` stays encoded: a different resource.
        let enc = once(&rig, &get("/a%2fb", "shop.test"));
        assert_eq!(enc.text(), "/a%2Fb for shop.test");
        // A prefix purge goes through the same normaliser.
        let p = rig.admin_post("/purge", r#"{"prefix": "shop.test/q/../a%2F"}"#, &[]);
        assert_eq!(p.status, 200, "{}", p.text());
        assert_eq!(
            once(&rig, &get("/a%2Fb", "shop.test")).h("x-cache"),
            Some("MISS")
        );
        // Merging `//` is per site.
        assert_eq!(once(&rig, &get("/c", "m.test")).h("x-cache"), Some("MISS"));
        assert_eq!(once(&rig, &get("//c", "m.test")).h("x-cache"), Some("HIT"));
        assert_eq!(
            once(&rig, &get("/c", "shop.test")).h("x-cache"),
            Some("MISS")
        );
        assert_eq!(
            once(&rig, &get("//c", "shop.test")).h("x-cache"),
            Some("MISS")
        );
    }
}

#[test]
fn a_content_length_list_goes_on_as_one_value_or_is_refused() {
    for fast in [true, false] {
        let origin = RawOrigin::start(|_| {
            Script::Bytes(response("200 OK", &[("Cache-Control", "no-store")], "ok"))
        });
        let rig = rig(fast, echo(), Some(origin.url()), "");
        let mut c = RawConn::open(rig.listen);
        c.send(b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc");
        assert_eq!(c.read(false).map(|r| r.status), Some(200));
        let seen = origin.seen();
        assert_eq!(seen.len(), 1);
        // Item 5: `3, 3` once went to the origin as it came.
        assert_eq!(seen[0].header("content-length").as_deref(), Some("3"));
        assert_eq!(seen[0].body, b"abc");
        let r = once(
            &rig,
            b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\nabcd",
        );
        assert_eq!(r.status, 400);
        assert_eq!(
            origin.seen().len(),
            1,
            "a conflicting length never reaches the origin"
        );
    }
}

#[test]
fn pipelined_requests_are_all_answered_in_order() {
    for fast in [true, false] {
        let rig = rig(fast, echo(), None, "");
        let mut c = RawConn::open(rig.listen);
        // Item 9: misses through the full proxy, three in one write.
        let mut batch = get("/a", "h");
        batch.extend(get("/b", "h"));
        batch.extend(get("/c", "h"));
        c.send(&batch);
        for p in ["/a", "/b", "/c"] {
            let r = c
                .read(false)
                .unwrap_or_else(|| panic!("fast={fast}: no answer for {p}"));
            assert_eq!((r.status, r.text()), (200, format!("{p} for h")));
            assert_eq!(r.h("connection"), Some("keep-alive"));
        }
        // Hits and a POST with a body, mixed, in one write.
        let mut batch = get("/a", "h");
        batch.extend_from_slice(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz");
        batch.extend(get("/c", "h"));
        batch.extend_from_slice(
            b"POST /q HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        );
        batch.extend(get("/b", "h"));
        c.send(&batch);
        for (p, cache) in [
            ("/a", "HIT"),
            ("/p", "PASS"),
            ("/c", "HIT"),
            ("/q", "PASS"),
            ("/b", "HIT"),
        ] {
            let r = c
                .read(false)
                .unwrap_or_else(|| panic!("fast={fast}: no answer for {p}"));
            assert_eq!(r.text(), format!("{p} for h"), "fast={fast}");
            assert_eq!(r.h("x-cache"), Some(cache), "fast={fast} {p}");
        }
        // The connection is still good.
        c.send(&get("/a", "h"));
        assert_eq!(c.read(false).map(|r| r.status), Some(200));
    }
}

#[test]
fn a_reused_origin_connection_that_closes_is_retried_once_on_a_new_one() {
    // An origin that answers the first request of each connection (slowly for /w*, so the edge
    // opens many connections) and closes any connection on its second request unanswered: every
    // pooled connection fails.
    let origin = RawOrigin::start(|r| {
        if r.nth_on_conn > 0 {
            return Script::Close;
        }
        if r.path.starts_with("/w") {
            std::thread::sleep(Duration::from_millis(300));
        }
        Script::Bytes(response(
            "200 OK",
            &[("Cache-Control", "no-store")],
            &r.path,
        ))
    });
    let rig = rig(true, echo(), Some(origin.url()), "");
    // Twenty requests at once leave twenty idle connections in the edge's pool.
    let warm: Vec<_> = (0..20)
        .map(|i| {
            let addr = rig.listen;
            std::thread::spawn(move || {
                let mut c = RawConn::open(addr);
                c.send(&get(&format!("/w{i}"), "h"));
                c.read(false).map(|r| r.status)
            })
        })
        .collect();
    for w in warm {
        assert_eq!(w.join().unwrap(), Some(200));
    }
    assert!(origin.connections.load(Ordering::Relaxed) >= 10);
    // Item 10: a GET on a pooled connection the origin closes: one retry, on a new connection.
    let r = once(&rig, &get("/x", "h"));
    assert_eq!((r.status, r.text()), (200, "/x".to_string()));
    assert_eq!(
        origin.count("/x"),
        2,
        "sent once on a pooled and once on a new connection"
    );
    assert_eq!(rig.metric_becomes("eddy_origin_retries_total", 1), 1);
    // A POST is never sent twice.
    let r = once(
        &rig,
        b"POST /y HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nz",
    );
    assert_eq!(r.status, 502);
    assert_eq!(origin.count("/y"), 1);
    assert_eq!(rig.metric("eddy_origin_retries_total"), 1);
}

#[test]
fn interim_responses_reach_the_client_and_are_never_stored() {
    for fast in [true, false] {
        // A 103 and the final response in one write: the case pingora dropped.
        let origin = RawOrigin::start(|r| {
            let cc = if r.path.starts_with("/n") {
                "no-store"
            } else {
                "max-age=60"
            };
            let mut b = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n".to_vec();
            b.extend(response("200 OK", &[("Cache-Control", cc)], "ok"));
            Script::Bytes(b)
        });
        let rig = rig(fast, echo(), Some(origin.url()), "");
        let mut c = RawConn::open(rig.listen);
        for i in 0..20 {
            for prefix in ["/e", "/n"] {
                c.send(&get(&format!("{prefix}{i}"), "h"));
                let early = c.read(false).unwrap();
                // Item 11: every 1xx is forwarded, unstamped.
                assert_eq!(early.status, 103, "fast={fast} {prefix}{i}");
                assert_eq!(early.h("link"), Some("</s.css>; rel=preload"));
                assert_eq!((early.h("x-cache"), early.h("cache-status")), (None, None));
                let fin = c.read(false).unwrap();
                assert_eq!((fin.status, fin.text()), (200, "ok".to_string()));
            }
        }
        // Stored is the final response only: a hit has no 103.
        c.send(&get("/e0", "h"));
        let hit = c.read(false).unwrap();
        assert_eq!((hit.status, hit.h("x-cache")), (200, Some("HIT")));
        assert_eq!(hit.h("link"), None);
    }
}

/// Seconds since the epoch of an HTTP-date.
fn secs(date: &str) -> u64 {
    httpdate::parse_http_date(date)
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

#[test]
fn a_hit_keeps_the_stored_date() {
    for fast in [true, false] {
        let rig = rig(fast, counting("max-age=60"), None, "");
        let miss = once(&rig, &get("/d", "h"));
        let stored = miss.h("date").unwrap_or("").to_string();
        assert!(secs(&stored) > 0, "{stored:?}");
        // Let the clock pass the stored Date's second.
        assert!(eddy_testkit::wait_until(Duration::from_secs(3), || {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                > secs(&stored) + 1
        }));
        // Item 12: a plain hit (the fast path when on) and one the full proxy answers.
        let plain = once(&rig, &get("/d", "h"));
        let full = once(
            &rig,
            b"GET /d HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"other\"\r\n\r\n",
        );
        for r in [&plain, &full] {
            assert_eq!(r.h("x-cache"), Some("HIT"), "fast={fast}");
            assert_eq!(r.h("date"), Some(stored.as_str()), "fast={fast}");
            assert!(r.h("age").and_then(|a| a.parse::<u64>().ok()) >= Some(1));
        }
    }
}

#[test]
fn fields_named_in_connection_are_never_stored_or_forwarded() {
    for fast in [true, false] {
        let origin = RawOrigin::start(|_| {
            Script::Bytes(response(
                "200 OK",
                &[
                    ("Cache-Control", "max-age=60"),
                    ("Connection", "X-Private, keep-alive"),
                    ("X-Private", "secret"),
                    ("Keep-Alive", "timeout=5"),
                    ("X-Public", "fine"),
                ],
                "ok",
            ))
        });
        let rig = rig(fast, echo(), Some(origin.url()), "");
        let miss = once(
            &rig,
            b"GET /h HTTP/1.1\r\nHost: h\r\nConnection: X-Client-Secret\r\nX-Client-Secret: 1\r\n\r\n",
        );
        let hit = once(&rig, &get("/h", "h"));
        let full_hit = once(
            &rig,
            b"GET /h HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        );
        // Item 13.
        for r in [&miss, &hit, &full_hit] {
            assert_eq!(r.h("x-private"), None, "fast={fast} {:?}", r.headers);
            assert_eq!(r.h("keep-alive"), None, "fast={fast} {:?}", r.headers);
            assert_eq!(r.h("x-public"), Some("fine"));
        }
        assert_eq!(hit.h("x-cache"), Some("HIT"));
        assert_eq!(full_hit.h("x-cache"), Some("HIT"));
        assert_eq!(origin.seen()[0].header("x-client-secret"), None);
    }
}

#[test]
fn the_origin_s_age_counts_even_as_a_list() {
    let rig = rig(
        true,
        |s: &Seen| {
            let age = if s.path == "/old" { "7200, 0" } else { "100" };
            Reply::ok("x")
                .header("cache-control", "max-age=3600")
                .header("age", age)
        },
        None,
        "",
    );
    // Item 14: older than its max-age on arrival: stale, and with no validator not stored.
    for _ in 0..2 {
        let r = once(&rig, &get("/old", "h"));
        assert_eq!(r.h("x-cache"), Some("PASS"), "{:?}", r.headers);
    }
    assert_eq!(rig.origin.count("/old"), 2);
    once(&rig, &get("/aged", "h"));
    let hit = once(&rig, &get("/aged", "h"));
    assert_eq!(hit.h("x-cache"), Some("HIT"));
    let age: u64 = hit.h("age").and_then(|a| a.parse().ok()).unwrap_or(0);
    assert!((100..110).contains(&age), "age {age}");
    let ttl: u64 = hit
        .h("cache-status")
        .and_then(|c| c.split("ttl=").nth(1))
        .and_then(|t| t.split(';').next())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    assert!((3490..=3500).contains(&ttl), "ttl {ttl}");
}

#[test]
fn a_targeted_field_that_is_not_a_valid_dictionary_is_ignored() {
    let rig = rig(
        true,
        |s: &Seen| {
            let cdn = match s.path.as_str() {
                "/junk" => "max-age=10000, &&&&&",
                "/string" => "max-age=\"10000\"",
                _ => "max-age=10000",
            };
            Reply::ok("x")
                .header("cache-control", "max-age=5")
                .header("cdn-cache-control", cdn)
        },
        None,
        "",
    );
    let ttl = |path: &str| -> u64 {
        once(&rig, &get(path, "h"));
        let hit = once(&rig, &get(path, "h"));
        assert_eq!(hit.h("x-cache"), Some("HIT"));
        hit.h("cache-status")
            .and_then(|c| c.split("ttl=").nth(1))
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    // Item 15: an invalid dictionary, or a String where an Integer belongs, is ignored whole, so
    // Cache-Control governs.
    assert!(ttl("/junk") <= 5);
    assert!(ttl("/string") <= 5);
    assert!(ttl("/valid") > 9_000);
}

#[test]
fn a_failed_origin_is_covered_by_a_grace_of_ten_seconds() {
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    let rig = rig(
        true,
        move |s: &Seen| {
            if f.load(Ordering::Relaxed) {
                return Reply::reset();
            }
            let cc = if s.path == "/strict" {
                "max-age=1, must-revalidate"
            } else {
                "max-age=1"
            };
            Reply::ok(format!("{} v1", s.path)).header("cache-control", cc)
        },
        None,
        "",
    );
    let stored = std::time::Instant::now();
    for p in ["/g", "/strict"] {
        assert_eq!(once(&rig, &get(p, "h")).h("x-cache"), Some("MISS"));
    }
    // Both expire after a second; from then on the origin drops every connection.
    assert!(eddy_testkit::wait_until(Duration::from_secs(5), || stored
        .elapsed()
        > Duration::from_millis(1500)));
    failing.store(true, Ordering::Relaxed);
    // Item 16: the stale copy is served within the default grace.
    let stale = once(&rig, &get("/g", "h"));
    assert_eq!(stale.h("x-cache"), Some("STALE"), "{:?}", stale.headers);
    assert_eq!((stale.status, stale.text()), (200, "/g v1".to_string()));
    // ... unless the response forbids it.
    let strict = once(&rig, &get("/strict", "h"));
    assert_eq!(strict.status, 502, "{:?}", strict.headers);
}

#[test]
fn equivalent_accept_lists_share_one_variant() {
    for fast in [true, false] {
        let rig = rig(
            fast,
            |s: &Seen| {
                Reply::ok(format!(
                    "{}|{}",
                    s.header("accept-encoding").unwrap_or(""),
                    s.header("accept-language").unwrap_or("")
                ))
                .header("cache-control", "max-age=60")
                .header("vary", "Accept-Encoding, Accept-Language")
            },
            None,
            "",
        );
        let ask = |ae: &str, al: &str| {
            once(
                &rig,
                format!(
                    "GET /v HTTP/1.1\r\nHost: h\r\nAccept-Encoding: {ae}\r\nAccept-Language: {al}\r\n\r\n"
                )
                .as_bytes(),
            )
        };
        // Item 17: case, whitespace and order of the list do not make another variant.
        assert_eq!(
            ask("gzip, br", "en-US, fr;q=0.5").h("x-cache"),
            Some("MISS")
        );
        assert_eq!(ask("BR,gzip", "fr;q=0.50,en-us").h("x-cache"), Some("HIT"));
        assert_eq!(
            ask("br , GZIP;q=1", "en-us ,FR; q=0.5").h("x-cache"),
            Some("HIT")
        );
        // A different preference is a different variant.
        assert_eq!(
            ask("gzip;q=0.5, br", "en-US, fr;q=0.5").h("x-cache"),
            Some("MISS")
        );
        assert_eq!(rig.origin.total(), 2);
    }
}

#[test]
fn expires_is_read_in_every_date_form() {
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    let imf = httpdate::fmt_http_date(in_an_hour);
    let lower = imf.to_ascii_lowercase();
    let rig = rig(
        true,
        move |s: &Seen| {
            let e = if s.path == "/lower" {
                lower.clone()
            } else {
                imf.clone()
            };
            Reply::ok("x").header("expires", e)
        },
        None,
        "",
    );
    // Item 17: `sun, 06 nov ...` in lower case is a valid Expires (RFC 9110 §5.6.7).
    for p in ["/imf", "/lower"] {
        assert_eq!(once(&rig, &get(p, "h")).h("x-cache"), Some("MISS"));
        assert_eq!(once(&rig, &get(p, "h")).h("x-cache"), Some("HIT"), "{p}");
    }
}

/// A structured-mode CloudEvent of `ty` with `data`.
fn event(ty: &str, data: serde_json::Value) -> String {
    serde_json::json!({
        "specversion": "1.0", "id": format!("{ty}-{}", data), "source": "/test",
        "type": ty, "data": data,
    })
    .to_string()
}

#[test]
fn events_that_would_wipe_the_cache_are_refused_and_counted() {
    let rig = rig(true, counting("max-age=60"), None, "");
    once(&rig, &get("/keep", "h"));
    let post_event = |body: &str| {
        rig.send(
            rig.client
                .post(rig.admin_url("/events"))
                .header("content-type", "application/cloudevents+json")
                .body(body.to_string()),
        )
    };
    // Item 6: an empty prefix, key or URL from any door is refused, never applied.
    for (ty, data) in [
        (
            "dev.eddy.purge.requested.v1",
            serde_json::json!({"target": {"prefix": ""}}),
        ),
        (
            "dev.eddy.purge.requested.v1",
            serde_json::json!({"target": {"key": " "}}),
        ),
        (
            "dev.eddy.purge.requested.v1",
            serde_json::json!({"target": {"url": ""}}),
        ),
        (
            "dev.eddy.content.updated.v1",
            serde_json::json!({"prefixes": [""]}),
        ),
        (
            "dev.eddy.content.updated.v1",
            serde_json::json!({"urls": ["h/a"], "keys": ["a b"]}),
        ),
    ] {
        let r = post_event(&event(ty, data.clone()));
        assert_eq!(r.status, 422, "{data}: {}", r.text());
    }
    assert_eq!(rig.metric("eddy_events_refused_total"), 5);
    for body in [r#"{"prefix": ""}"#, r#"{"key": ""}"#, r#"{"url": " "}"#] {
        assert_eq!(rig.admin_post("/purge", body, &[]).status, 400, "{body}");
    }
    // Purging everything is its own command, and it needs a token.
    let all = rig.admin_post("/purge", r#"{"all": true}"#, &[]);
    assert_eq!(all.status, 403, "{}", all.text());
    let all_event = event(
        "dev.eddy.purge.requested.v1",
        serde_json::json!({"target": "all"}),
    );
    assert_eq!(post_event(&all_event).status, 403);
    assert_eq!(
        once(&rig, &get("/keep", "h")).h("x-cache"),
        Some("HIT"),
        "nothing was purged"
    );

    let guarded = start_with(
        counting("max-age=60"),
        |_| {},
        "[edge]\nadmin_token = \"s3cret\"\n",
    );
    once(&guarded, &get("/k", "h"));
    assert_eq!(once(&guarded, &get("/k", "h")).h("x-cache"), Some("HIT"));
    let auth = [("authorization", "Bearer s3cret")];
    let r = guarded.admin_post("/purge", r#"{"all": true}"#, &auth);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(once(&guarded, &get("/k", "h")).h("x-cache"), Some("MISS"));
}

#[test]
fn a_purge_event_with_a_bad_target_on_the_bus_is_dead_lettered_never_applied() {
    let bus_dir = tempfile::tempdir().unwrap();
    let bus = common::embedded_bus(bus_dir.path());
    let mut rig = start_with(counting("max-age=60"), |_| {}, "");
    let o = eddy_config::Overrides {
        listen: Some(rig.listen.to_string()),
        admin: Some(rig.admin.to_string()),
        origins: vec![rig.origin.url()],
        memory_size: Some("64 MiB".into()),
        ..Default::default()
    };
    rig.stop_edge();
    rig.start_edge_with_bus(&o, "", Some(bus.clone()));
    once(&rig, &get("/keep", "h"));
    assert_eq!(once(&rig, &get("/keep", "h")).h("x-cache"), Some("HIT"));
    // Item 6, the bus door: a producer that skips the constructors publishes an empty prefix.
    let publish = |data: serde_json::Value| {
        let body = event("dev.eddy.purge.requested.v1", data);
        rig.rt
            .block_on(bus.publish(
                eddy_control::PURGE_REQUESTED_TOPIC,
                "k",
                bytes::Bytes::from(body),
            ))
            .unwrap();
    };
    publish(serde_json::json!({"target": {"prefix": ""}}));
    assert_eq!(
        rig.metric_becomes("eddy_purge_events_dead_lettered_total", 1),
        1
    );
    assert_eq!(
        once(&rig, &get("/keep", "h")).h("x-cache"),
        Some("HIT"),
        "never applied"
    );
    // The follower goes on: a good purge after it is applied.
    publish(serde_json::json!({"target": {"url": "http://H/./keep"}}));
    assert!(eddy_testkit::wait_until(Duration::from_secs(5), || {
        once(&rig, &get("/keep", "h")).h("x-cache") == Some("MISS")
    }));
}
