//! RFC 9111 / 5861 / 9213 conformance of the edge as a shared cache: each test is one rule, run
//! against a real origin behind a real edge on 127.0.0.1.
//!
//! | rule (section)                                              | test                                   |
//! |-------------------------------------------------------------|----------------------------------------|
//! | max-age gives freshness; Age sent on hits (§4.2.1, §5.1)    | max_age_fresh_hit_with_age             |
//! | s-maxage overrides max-age for shared caches (§5.2.2.10)    | s_maxage_overrides_max_age             |
//! | Expires relative to Date; invalid Expires = stale (§5.3)    | expires_and_invalid_expires            |
//! | Age from upstream reduces freshness (§4.2.3)                | upstream_age_is_subtracted             |
//! | Age includes the upstream Age (§5.1)                         | age_includes_upstream_age              |
//! | heuristic freshness only for default-cacheable (§4.2.2)     | heuristic_freshness_rules              |
//! | explicit freshness makes other statuses cacheable (§3)      | explicit_freshness_caches_302          |
//! | no-store (§5.2.2.5)                                         | no_store_is_never_stored               |
//! | private (§5.2.2.7)                                          | private_is_not_stored                  |
//! | no-cache: store, always revalidate (§5.2.2.4)               | no_cache_revalidates_every_time        |
//! | 304 merges stored headers (§4.3.4)                          | not_modified_merges_headers            |
//! | Last-Modified validator (§4.3.1)                            | last_modified_conditional_revalidation |
//! | Vary secondary keys (§4.1)                                  | vary_selects_variants                  |
//! | Vary: * never matches (§4.1)                                | vary_star_is_not_stored                |
//! | Authorization (§3.5)                                        | authorization_rules                    |
//! | must-revalidate forbids stale on error (§5.2.2.2)           | must_revalidate_never_serves_stale     |
//! | stale-if-error (RFC 5861 §4)                                | stale_if_error_serves_stale            |
//! | stale-while-revalidate (RFC 5861 §3)                        | stale_while_revalidate_background      |
//! | CDN-Cache-Control precedence (RFC 9213)                     | cdn_cache_control_targeted_field       |
//! | Eddy-CDN-Cache-Control wins, is not forwarded               | eddy_targeted_field_wins               |
//! | invalidation after unsafe methods (§4.4)                    | unsafe_method_invalidates              |
//! | HEAD answered from a stored GET (§4, RFC 9110 §9.3.2)       | head_from_cache                        |
//! | 404 cacheable by default (RFC 9110 §15.1)                   | not_found_cacheable_by_default         |
//! | Set-Cookie responses are not stored (Eddy policy)           | set_cookie_not_stored                  |

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;
use eddy_testkit::origin::{Reply, Seen};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

fn date_ago(secs: u64) -> String {
    httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(secs))
}

#[test]
fn max_age_fresh_hit_with_age() {
    let rig = start(counting("max-age=60"));
    let a = rig.get("/a");
    assert_eq!((a.status, a.x_cache()), (200, "MISS"));
    assert!(
        a.h("cache-status").contains("stored"),
        "{}",
        a.h("cache-status")
    );
    let b = rig.get("/a");
    assert_eq!(b.x_cache(), "HIT");
    assert_eq!(b.text(), "response 1");
    assert!(b.headers.contains_key("age"), "a hit carries Age");
    assert!(b.h("cache-status").starts_with("Eddy; hit"));
    assert_eq!(rig.origin.count("/a"), 1);
}

#[test]
fn s_maxage_overrides_max_age() {
    let rig = start(counting("max-age=0, s-maxage=60"));
    rig.get("/s");
    assert_eq!(rig.get("/s").x_cache(), "HIT");
    assert_eq!(rig.origin.count("/s"), 1);
}

#[test]
fn expires_and_invalid_expires() {
    let rig = start(|req: &Seen| {
        let now = SystemTime::now();
        let r = Reply::ok("x").header("date", httpdate::fmt_http_date(now));
        if req.path == "/future" {
            r.header(
                "expires",
                httpdate::fmt_http_date(now + Duration::from_secs(120)),
            )
        } else {
            r.header("expires", "0").header("etag", "\"e\"")
        }
    });
    rig.get("/future");
    assert_eq!(rig.get("/future").x_cache(), "HIT");
    rig.get("/invalid");
    let r = rig.get("/invalid");
    assert_ne!(r.x_cache(), "HIT", "invalid Expires means already stale");
    assert_eq!(rig.origin.count("/invalid"), 2);
}

#[test]
fn upstream_age_is_subtracted() {
    // max-age=100 with Age: 100 is stale on arrival: the next request must go to the origin.
    let rig = start(|_req: &Seen| {
        Reply::ok("aged")
            .header("cache-control", "max-age=100")
            .header("age", "100")
            .header("etag", "\"a\"")
    });
    rig.get("/aged");
    rig.get("/aged");
    assert_eq!(rig.origin.count("/aged"), 2);
}

#[test]
fn heuristic_freshness_rules() {
    let rig = start(|req: &Seen| {
        let status = if req.path == "/moved" { 302 } else { 200 };
        Reply::status(status)
            .body("h")
            .header("last-modified", date_ago(100_000))
            .header("date", date_ago(0))
            .header("location", "/elsewhere")
    });
    rig.get("/lm");
    assert_eq!(
        rig.get("/lm").x_cache(),
        "HIT",
        "200 with Last-Modified gets heuristic freshness"
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let a = rig.send(client.get(rig.url("/moved")));
    let b = rig.send(client.get(rig.url("/moved")));
    assert_eq!((a.status, b.status), (302, 302));
    assert_eq!(
        rig.origin.count("/moved"),
        2,
        "302 is not heuristically cacheable"
    );
}

#[test]
fn explicit_freshness_caches_302() {
    let rig = start(|_req: &Seen| {
        Reply::status(302)
            .header("location", "/x")
            .header("cache-control", "max-age=60")
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    rig.send(client.get(rig.url("/r")));
    let b = rig.send(client.get(rig.url("/r")));
    assert_eq!((b.status, b.x_cache()), (302, "HIT"));
}

#[test]
fn no_store_is_never_stored() {
    let rig = start(counting("no-store, max-age=60"));
    rig.get("/ns");
    let b = rig.get("/ns");
    assert_eq!(b.text(), "response 2");
    assert_ne!(b.x_cache(), "HIT");
    assert!(
        b.h("cache-status").contains("no-store"),
        "{}",
        b.h("cache-status")
    );
}

#[test]
fn private_is_not_stored() {
    let rig = start(counting("private, max-age=60"));
    rig.get("/p");
    assert_eq!(rig.get("/p").text(), "response 2");
}

#[test]
fn no_cache_revalidates_every_time() {
    let rig = start(|req: &Seen| {
        if req.header("if-none-match") == Some("\"v1\"") {
            Reply::status(304)
                .header("etag", "\"v1\"")
                .header("cache-control", "no-cache")
        } else {
            Reply::ok("body v1")
                .header("etag", "\"v1\"")
                .header("cache-control", "no-cache, max-age=600")
        }
    });
    rig.get("/nc");
    let b = rig.get("/nc");
    assert_eq!(b.x_cache(), "REVALIDATED");
    assert_eq!(b.text(), "body v1");
    let seen = rig.origin.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].header("if-none-match"),
        Some("\"v1\""),
        "revalidation is conditional"
    );
}

#[test]
fn not_modified_merges_headers() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let rig = start(move |req: &Seen| {
        let i = n2.fetch_add(1, Ordering::SeqCst);
        if req.header("if-none-match").is_some() {
            Reply::status(304)
                .header("etag", "\"e\"")
                .header("cache-control", "max-age=60")
                .header("x-version", format!("{i}"))
        } else {
            Reply::ok("stored body")
                .header("etag", "\"e\"")
                .header("cache-control", "max-age=0")
                .header("x-version", "0")
                .header("x-kept", "yes")
        }
    });
    rig.get("/m");
    let b = rig.get("/m");
    assert_eq!(b.x_cache(), "REVALIDATED");
    assert_eq!(b.h("x-version"), "1", "304 headers replace stored ones");
    assert_eq!(
        b.h("x-kept"),
        "yes",
        "stored headers not in the 304 are kept"
    );
    assert_eq!(b.text(), "stored body");
    // The 304 carried max-age=60: now fresh.
    let c = rig.get("/m");
    assert_eq!(c.x_cache(), "HIT");
    assert_eq!(c.h("x-version"), "1");
}

#[test]
fn last_modified_conditional_revalidation() {
    let lm = date_ago(5000);
    let lm2 = lm.clone();
    let rig = start(move |req: &Seen| {
        if req.header("if-modified-since") == Some(lm2.as_str()) {
            Reply::status(304).header("last-modified", lm2.clone())
        } else {
            Reply::ok("lm body")
                .header("last-modified", lm2.clone())
                .header("cache-control", "max-age=0")
        }
    });
    rig.get("/lmv");
    let b = rig.get("/lmv");
    assert_eq!((b.x_cache(), b.text().as_str()), ("REVALIDATED", "lm body"));
    assert_eq!(
        rig.origin.seen()[1].header("if-modified-since"),
        Some(lm.as_str())
    );
}

#[test]
fn vary_selects_variants() {
    let rig = start(|req: &Seen| {
        let lang = req.header("accept-language").unwrap_or("none").to_string();
        Reply::ok(format!("hello {lang}"))
            .header("vary", "Accept-Language")
            .header("cache-control", "max-age=60")
    });
    assert_eq!(
        rig.get_h("/v", &[("accept-language", "en")]).text(),
        "hello en"
    );
    assert_eq!(
        rig.get_h("/v", &[("accept-language", "fr")]).text(),
        "hello fr"
    );
    let en = rig.get_h("/v", &[("accept-language", "en")]);
    assert_eq!((en.x_cache(), en.text().as_str()), ("HIT", "hello en"));
    let fr = rig.get_h("/v", &[("accept-language", "fr")]);
    assert_eq!((fr.x_cache(), fr.text().as_str()), ("HIT", "hello fr"));
    assert_eq!(rig.origin.count("/v"), 2);
    // A purge of the URL removes every variant.
    let p = rig.req("PURGE", "/v", &[]);
    assert!(p.text().contains("\"purged\":2"), "{}", p.text());
}

#[test]
fn vary_star_is_not_stored() {
    let rig = start(|_req: &Seen| {
        Reply::ok("*")
            .header("vary", "*")
            .header("cache-control", "max-age=60")
    });
    rig.get("/vs");
    rig.get("/vs");
    assert_eq!(rig.origin.count("/vs"), 2);
}

#[test]
fn authorization_rules() {
    let rig = start(|req: &Seen| {
        let cc = if req.path == "/pub" {
            "public, max-age=60"
        } else {
            "max-age=60"
        };
        Reply::ok("secret").header("cache-control", cc)
    });
    let auth = [("authorization", "Bearer abc")];
    rig.get_h("/plain", &auth);
    rig.get_h("/plain", &auth);
    assert_eq!(
        rig.origin.count("/plain"),
        2,
        "max-age alone does not allow storing authorized responses"
    );
    rig.get_h("/pub", &auth);
    assert_eq!(
        rig.get_h("/pub", &auth).x_cache(),
        "HIT",
        "public allows it"
    );
}

#[test]
fn must_revalidate_never_serves_stale() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let rig = start(move |_req: &Seen| {
        if n2.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::ok("old")
                .header(
                    "cache-control",
                    "max-age=10, must-revalidate, stale-if-error=600",
                )
                .header("age", "10")
                .header("etag", "\"x\"")
        } else {
            Reply::status(500).body("boom")
        }
    });
    rig.get("/mr");
    let b = rig.get("/mr");
    assert_ne!(
        b.text(),
        "old",
        "must-revalidate: no stale copy when the origin fails"
    );
    assert!(b.status >= 500);
}

#[test]
fn stale_if_error_serves_stale() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let rig = start(move |_req: &Seen| {
        if n2.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::ok("old")
                .header("cache-control", "max-age=10, stale-if-error=600")
                .header("age", "10")
        } else {
            Reply::status(503).body("down")
        }
    });
    rig.get("/sie");
    let b = rig.get("/sie");
    assert_eq!(
        (b.status, b.text().as_str(), b.x_cache()),
        (200, "old", "STALE")
    );
}

#[test]
fn stale_while_revalidate_background() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let rig = start(move |_req: &Seen| {
        let i = n2.fetch_add(1, Ordering::SeqCst);
        let r = Reply::ok(format!("v{i}"))
            .header("cache-control", "max-age=10, stale-while-revalidate=600");
        if i == 0 { r.header("age", "10") } else { r }
    });
    rig.get("/swr");
    let b = rig.get("/swr");
    assert_eq!(
        (b.text().as_str(), b.x_cache()),
        ("v0", "STALE"),
        "served stale at once"
    );
    assert!(
        eddy_testkit::wait_until(Duration::from_secs(5), || rig.origin.count("/swr") == 2),
        "background revalidation reached the origin"
    );
    assert!(
        eddy_testkit::wait_until(Duration::from_secs(5), || {
            let r = rig.get("/swr");
            r.text() == "v1" && r.x_cache() == "HIT"
        }),
        "the refreshed copy is served"
    );
}

#[test]
fn cdn_cache_control_targeted_field() {
    let rig = start(|req: &Seen| match req.path.as_str() {
        "/t1" => Reply::ok("t1")
            .header("cache-control", "no-store")
            .header("cdn-cache-control", "max-age=60"),
        "/t2" => Reply::ok("t2")
            .header("cache-control", "max-age=60")
            .header("cdn-cache-control", "no-store"),
        _ => Reply::ok("t3")
            .header("cache-control", "max-age=60")
            .header("cdn-cache-control", "max-age=\"bad"),
    });
    rig.get("/t1");
    let b = rig.get("/t1");
    assert_eq!(
        b.x_cache(),
        "HIT",
        "CDN-Cache-Control overrides Cache-Control"
    );
    assert_eq!(
        b.h("cache-control"),
        "no-store",
        "Cache-Control is passed on for browsers"
    );
    rig.get("/t2");
    rig.get("/t2");
    assert_eq!(rig.origin.count("/t2"), 2, "a targeted no-store wins");
    rig.get("/t3");
    assert_eq!(
        rig.get("/t3").x_cache(),
        "HIT",
        "an invalid targeted field is ignored"
    );
}

#[test]
fn eddy_targeted_field_wins() {
    let rig = start(|_req: &Seen| {
        Reply::ok("e")
            .header("cache-control", "no-store")
            .header("cdn-cache-control", "no-store")
            .header("eddy-cdn-cache-control", "max-age=60")
    });
    let a = rig.get("/e");
    assert!(
        !a.headers.contains_key("eddy-cdn-cache-control"),
        "Eddy's own field is not forwarded"
    );
    assert_eq!(
        a.h("cdn-cache-control"),
        "no-store",
        "other CDNs' field is forwarded"
    );
    assert_eq!(rig.get("/e").x_cache(), "HIT");
}

#[test]
fn unsafe_method_invalidates() {
    let rig = start(|req: &Seen| {
        if req.method == http::Method::POST {
            Reply::status(201).header("location", "/other")
        } else {
            Reply::ok(format!("get {}", req.path)).header("cache-control", "max-age=60")
        }
    });
    rig.get("/doc");
    rig.get("/other");
    assert_eq!(rig.get("/doc").x_cache(), "HIT");
    let p = rig.req("POST", "/doc", &[]);
    assert_eq!(p.status, 201);
    assert_eq!(rig.get("/doc").x_cache(), "MISS", "target URI invalidated");
    assert_eq!(rig.get("/other").x_cache(), "MISS", "Location invalidated");
}

#[test]
fn head_from_cache() {
    let rig = start(counting("max-age=60"));
    rig.get("/hd");
    let h = rig.req("HEAD", "/hd", &[]);
    assert_eq!((h.status, h.x_cache()), (200, "HIT"));
    assert!(h.body.is_empty());
    // A HEAD miss fetches with GET upstream and stores the full response.
    let h2 = rig.req("HEAD", "/hd2", &[]);
    assert_eq!(h2.status, 200);
    assert_eq!(
        rig.origin.seen().last().map(|s| s.method.clone()),
        Some(http::Method::GET)
    );
    let g = rig.get("/hd2");
    assert_eq!((g.x_cache(), g.text().as_str()), ("HIT", "response 2"));
}

#[test]
fn not_found_cacheable_by_default() {
    let rig = start(|_req: &Seen| {
        Reply::status(404)
            .body("nope")
            .header("cache-control", "max-age=30")
    });
    rig.get("/missing");
    let b = rig.get("/missing");
    assert_eq!((b.status, b.x_cache()), (404, "HIT"));
}

#[test]
fn set_cookie_not_stored() {
    let rig = start(|_req: &Seen| {
        Reply::ok("c")
            .header("cache-control", "max-age=60")
            .header("set-cookie", "a=b")
    });
    rig.get("/ck");
    rig.get("/ck");
    assert_eq!(rig.origin.count("/ck"), 2);
}

#[test]
fn age_includes_upstream_age() {
    let rig = start(|_req: &Seen| {
        Reply::ok("a")
            .header("cache-control", "max-age=600")
            .header("age", "100")
    });
    rig.get("/age");
    let b = rig.get("/age");
    let age: u64 = b.h("age").parse().unwrap_or(0);
    assert!(
        (100..110).contains(&age),
        "Age {age} counts from the origin's Age"
    );
}
