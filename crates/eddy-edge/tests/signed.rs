//! Issue 13, signed URLs: a `[[signed_urls]]` route serves only requests with a valid token (in
//! the query or a cookie), refuses every other with 403 and the reason, never puts the token in
//! a cache key or an origin request, and gives the same answer on the hit fast path, the full
//! proxy and HTTP/2.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Rig, counting, start_with};
use eddy_auth::Key;
use eddy_auth::token::{self, Claims, Scope};

const K1: &str = "00112233445566778899aabbccddeeff";
const K2: &str = "ffeeddccbbaa99887766554433221100";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn rig() -> Rig {
    start_with(
        counting("max-age=600"),
        |_| {},
        &format!(
            "[[signed_urls]]\nhost = \"v.test\"\nprefix = \"/video/\"\nkeys = [\"{K1}\", \"{K2}\"]\n"
        ),
    )
}

fn sign(key: &str, acl: &str, expires: u64, ip: Option<&str>) -> String {
    let c = Claims {
        start: None,
        expires,
        scope: Scope::Acl(vec![acl.into()]),
        ip: ip.map(|i| i.parse().unwrap()),
    };
    token::sign(&c, &Key::from_hex(key).unwrap()).unwrap()
}

#[test]
fn tokens_grant_their_paths_and_everything_else_gets_403_with_its_reason() {
    let rig = rig();
    let host = [("host", "v.test")];
    let t1 = sign(K1, "/video/show-1/*", now() + 60, None);
    let path = "/video/show-1/seg-1.m4s";
    // Granted: the origin sees the path without the token.
    let r = rig.get_h(&format!("{path}?__token__={t1}"), &host);
    assert_eq!((r.status, r.x_cache()), (200, "MISS"), "{}", r.text());
    assert_eq!(
        rig.origin.count(path),
        1,
        "the token never reaches the origin"
    );
    // Another token (the second key in rotation), then a cookie: the same cached object, on
    // the hit fast path.
    let fast = rig.metric("eddy_fast_hits_total");
    let t2 = sign(K2, "/video/*", now() + 60, None);
    let r = rig.get_h(&format!("{path}?__token__={t2}"), &host);
    assert_eq!((r.status, r.x_cache()), (200, "HIT"));
    let cookie = format!("a=1; __token__={t1}");
    let r = rig.get_h(path, &[("host", "v.test"), ("cookie", &cookie)]);
    assert_eq!((r.status, r.x_cache()), (200, "HIT"));
    assert_eq!(rig.metric("eddy_fast_hits_total"), fast + 2);
    // Refusals, each with its reason, none reaching the origin.
    let other = Key::from_hex("0102030405060708090a0b0c0d0e0f10").unwrap();
    let foreign = token::sign(
        &Claims {
            start: None,
            expires: now() + 60,
            scope: Scope::Acl(vec!["/video/*".into()]),
            ip: None,
        },
        &other,
    )
    .unwrap();
    let cases = [
        (String::new(), "missing"),
        ("?__token__=exp=1".into(), "malformed"),
        (format!("?__token__={foreign}"), "bad_signature"),
        (
            format!("?__token__={}", t1.replace("show-1", "show-2")),
            "bad_signature",
        ),
        (
            format!("?__token__={}", sign(K1, "/video/*", now() - 1, None)),
            "expired",
        ),
        (
            format!(
                "?__token__={}",
                sign(K1, "/video/show-2/*", now() + 60, None)
            ),
            "wrong_path",
        ),
        (
            format!(
                "?__token__={}",
                sign(K1, "/video/*", now() + 60, Some("203.0.113.7"))
            ),
            "wrong_address",
        ),
        (format!("?__token__={t1}&__token__={t1}"), "malformed"),
    ];
    for (query, reason) in &cases {
        let r = rig.get_h(&format!("{path}{query}"), &host);
        assert_eq!(r.status, 403, "{query}: {}", r.text());
        assert_eq!(r.h("eddy-token-error"), *reason, "{query}");
        assert!(r.text().contains(reason), "{}", r.text());
        let n = rig.metric(&format!("eddy_signed_urls_total{{what=\"{reason}\"}}"));
        assert!(n >= 1, "{reason}");
    }
    // Dot segments cannot step out of the grant: the canonical path is what is checked.
    let r = rig.get_h(
        &format!("/video/show-1/../show-2/seg-1.m4s?__token__={t1}"),
        &host,
    );
    assert_eq!((r.status, r.h("eddy-token-error")), (403, "wrong_path"));
    // A bound token for this client's address is granted.
    let bound = sign(K1, "/video/*", now() + 60, Some("127.0.0.1"));
    let r = rig.get_h(&format!("{path}?__token__={bound}"), &host);
    assert_eq!(r.status, 200);
    // Outside the route: no token needed. PURGE is not a viewer request.
    assert_eq!(rig.get_h("/other", &host).status, 200);
    assert_eq!(rig.get_h(path, &[("host", "w.test")]).status, 200);
    assert_eq!(rig.req("PURGE", path, &host).status, 200);
    assert_eq!(rig.origin.count(path), 2, "v.test once, w.test once");
    assert_eq!(rig.metric("eddy_signed_urls_total{what=\"granted\"}"), 4);
}

#[test]
fn http2_requests_are_judged_the_same_way() {
    let rig = rig();
    let t = sign(K1, "/video/*", now() + 60, None);
    let (missing, granted, via_cookie) = rig.rt.block_on(async {
        // The site in `:authority`, as an HTTP/2 client names it.
        let c = reqwest::Client::builder()
            .http2_prior_knowledge()
            .resolve("v.test", rig.listen)
            .build()
            .unwrap();
        let port = rig.listen.port();
        let get = |q: String, cookie: Option<String>| {
            let mut b = c.get(format!("http://v.test:{port}/video/a.m4s{q}"));
            if let Some(k) = cookie {
                b = b.header("cookie", k);
            }
            b.send()
        };
        let m = get(String::new(), None).await.unwrap();
        let m = (
            m.status().as_u16(),
            m.headers()["eddy-token-error"]
                .to_str()
                .unwrap()
                .to_string(),
        );
        let g = get(format!("?__token__={t}"), None).await.unwrap();
        assert_eq!(g.version(), reqwest::Version::HTTP_2);
        let c = get(String::new(), Some(format!("__token__={t}")))
            .await
            .unwrap();
        (m, g.status().as_u16(), c.status().as_u16())
    });
    assert_eq!(missing, (403, "missing".to_string()));
    assert_eq!((granted, via_cookie), (200, 200));
    assert_eq!(rig.origin.count("/video/a.m4s"), 1);
}
