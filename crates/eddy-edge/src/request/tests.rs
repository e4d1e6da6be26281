use super::*;
use proptest::prelude::*;

fn j(req: &str) -> Head {
    judge(req.as_bytes(), 65_536, |_| PathOptions::default())
}

fn url(req: &str) -> Result<Option<String>, Rejection> {
    match j(req) {
        Head::Complete(r) => Ok(r.url.map(|u| u.into_string())),
        Head::Rejected(e) => Err(e),
        Head::Partial => panic!("partial: {req:?}"),
    }
}

fn status(req: &str) -> u16 {
    match j(req) {
        Head::Complete(_) => 200,
        Head::Rejected(e) => e.status,
        Head::Partial => 0,
    }
}

#[test]
fn a_host_with_a_path_in_it_is_refused() {
    // Issue 11 item 1: `Host: shop.test/static` + `/app.js` must not become
    // `shop.test/static/app.js`.
    assert_eq!(
        status("GET /app.js HTTP/1.1\r\nHost: shop.test/static\r\n\r\n"),
        400
    );
    for host in [
        "a b",
        "shop.test:99999",
        "shop.test:0",
        "",
        "[::1",
        "x@y",
        "a..b",
    ] {
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n")),
            400,
            "{host:?}"
        );
    }
    assert_eq!(
        url("GET /App.js HTTP/1.1\r\nHost: Shop.Test:80\r\n\r\n"),
        Ok(Some("shop.test/App.js".into()))
    );
}

#[test]
fn only_origin_absolute_and_asterisk_forms_are_accepted() {
    // Issue 11 item 2: each of these overwrote the site's `/` entry.
    for bad in [
        "GET evil.html HTTP/1.1\r\nHost: victim.test\r\n\r\n",
        "GET victim.test/p HTTP/1.1\r\nHost: victim.test\r\n\r\n",
        "GET  /x HTTP/1.1\r\nHost: victim.test\r\n\r\n",
        "GET /x  HTTP/1.1\r\nHost: victim.test\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: victim.test\r\n\r\n",
        "GET http://other.test/p HTTP/1.1\r\nHost: victim.test\r\n\r\n",
        "GET http://u:p@victim.test/p HTTP/1.1\r\nHost: victim.test\r\n\r\n",
        "GET /x HTTP/1.1 extra\r\nHost: victim.test\r\n\r\n",
        "GET /x\r\nHost: victim.test\r\n\r\n",
    ] {
        assert_eq!(status(bad), 400, "{bad:?}");
    }
    assert_eq!(
        url("GET http://Victim.test:80/p?q HTTP/1.1\r\nHost: victim.test\r\n\r\n"),
        Ok(Some("victim.test/p?q".into()))
    );
    assert_eq!(
        url("GET http://victim.test HTTP/1.1\r\nHost: victim.test\r\n\r\n"),
        Ok(Some("victim.test/".into()))
    );
    assert_eq!(
        url("OPTIONS * HTTP/1.1\r\nHost: victim.test\r\n\r\n"),
        Ok(None)
    );
}

#[test]
fn host_is_required_once() {
    // Issue 11 item 3.
    assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.0\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.0\r\nHost: a\r\n\r\n"), 200);
}

#[test]
fn equivalent_paths_share_one_key() {
    // Issue 11 item 4.
    for p in ["/b", "/a/../b", "/%2e%2e/b", "/./b", "/%62", "/%2E%2E/b"] {
        assert_eq!(
            url(&format!("GET {p} HTTP/1.1\r\nHost: h\r\n\r\n")),
            Ok(Some("h/b".into())),
            "{p}"
        );
    }
    assert_eq!(
        url("GET /a%2fb HTTP/1.1\r\nHost: h\r\n\r\n"),
        Ok(Some("h/a%2Fb".into()))
    );
    let merged = judge(b"GET //a//b HTTP/1.1\r\nHost: h\r\n\r\n", 65_536, |h| {
        PathOptions {
            merge_slashes: h == "h",
            drop_params: &[],
        }
    });
    assert!(
        matches!(merged, Head::Complete(r) if r.url.as_ref().map(Canonical::as_str) == Some("h/a/b"))
    );
}

#[test]
fn content_length_lists_must_agree() {
    // Issue 11 item 5.
    let ok = j("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc");
    assert!(matches!(
        ok,
        Head::Complete(Request {
            body: Body::Length(3),
            length_list: true,
            ..
        })
    ));
    let two_lines =
        j("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n");
    assert!(matches!(
        two_lines,
        Head::Complete(Request {
            body: Body::Length(3),
            length_list: true,
            ..
        })
    ));
    let one = j("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n");
    assert!(matches!(
        one,
        Head::Complete(Request {
            length_list: false,
            ..
        })
    ));
    for bad in ["3, 4", "3,", "x", "-1", "3 3", "99999999999999999999"] {
        assert_eq!(
            status(&format!(
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {bad}\r\n\r\n"
            )),
            400,
            "{bad}"
        );
    }
    assert_eq!(
        status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
        400
    );
}

#[test]
fn framing_rules() {
    assert_eq!(
        status(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        400
    );
    assert_eq!(
        status("POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400
    );
    assert_eq!(
        status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
        400
    );
    assert!(matches!(
        j("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        Head::Complete(Request {
            body: Body::Chunked,
            ..
        })
    ));
    assert!(matches!(
        j("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"),
        Head::Complete(Request {
            body: Body::Unframed,
            plain: false,
            ..
        })
    ));
}

#[test]
fn plain_requests_are_the_ones_the_fast_path_may_take() {
    let plain = |req: &str| matches!(j(req), Head::Complete(Request { plain: true, .. }));
    assert!(plain("GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"));
    assert!(plain(
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"
    ));
    for f in [
        "Range: bytes=0-1",
        "If-None-Match: \"x\"",
        "If-Modified-Since: x",
        "Authorization: x",
        "Cache-Control: no-cache",
        "Pragma: no-cache",
        "Connection: close",
        "Connection: keep-alive, x-hop",
        "Expect: 100-continue",
        "Content-Length: 0",
    ] {
        assert!(
            !plain(&format!("GET / HTTP/1.1\r\nHost: h\r\n{f}\r\n\r\n")),
            "{f}"
        );
    }
}

#[test]
fn sizes_and_partial_heads() {
    assert!(matches!(j("GET / HTTP/1.1\r\nHost: h\r\n"), Head::Partial));
    let big = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
        "a".repeat(2000)
    );
    assert!(matches!(
        judge(big.as_bytes(), 1024, |_| PathOptions::default()),
        Head::Rejected(Rejection { status: 431, .. })
    ));
    assert!(matches!(
        judge(&big.as_bytes()[..1500], 1024, |_| PathOptions::default()),
        Head::Rejected(Rejection { status: 431, .. })
    ));
    let many: String = (0..300).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(
        status(&format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n")),
        431
    );
    assert_eq!(status("GARBAGE\r\n\r\n"), 400);
    assert_eq!(status("GET /a%00 HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status("GET /a#f HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n"), 400);
}

#[test]
fn rejections_are_complete_responses() {
    let r = Rejection::bad("no \"Host\"").response();
    let text = String::from_utf8(r).unwrap_or_default();
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(
        text.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{text}"
    );
    assert!(text.contains("Connection: close\r\n"));
}

#[test]
fn requests_end_where_their_framing_says() {
    let buf = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n";
    let Head::Complete(r) = judge(buf, 65_536, |_| PathOptions::default()) else {
        panic!("complete")
    };
    assert_eq!(request_end(&r, buf), Some(r.head_len + 3));
    // Body still arriving: what is here goes, the rest comes from the socket.
    assert_eq!(
        request_end(&r, &buf[..r.head_len + 1]),
        Some(r.head_len + 1)
    );

    let chunked = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET /";
    let Head::Complete(r) = judge(chunked, 65_536, |_| PathOptions::default()) else {
        panic!("complete")
    };
    assert_eq!(request_end(&r, chunked), Some(chunked.len() - 5));
    assert_eq!(request_end(&r, &chunked[..chunked.len() - 9]), None);
    assert_eq!(chunked_end(b"0\r\n\r\n"), Some(5));
    assert_eq!(chunked_end(b"a;ext=1\r\n0123456789\r\n0\r\n\r\n"), Some(26));
    assert_eq!(chunked_end(b"3\r\nabcX"), None);
}

proptest! {
    #[test]
    fn never_panics_and_never_reads_past_the_head(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Head::Complete(r) = judge(&bytes, 65_536, |_| PathOptions::default()) {
            prop_assert!(r.head_len <= bytes.len());
            if let Some(end) = request_end(&r, &bytes) {
                prop_assert!(end <= bytes.len() && end >= r.head_len);
            }
        }
        let _ = chunked_end(&bytes);
    }

    #[test]
    fn spellings_of_one_path_key_alike(segs in proptest::collection::vec("[a-z]{1,4}", 1..5), dots in 0usize..3) {
        let plain = format!("/{}", segs.join("/"));
        let mut noisy = String::new();
        for s in &segs {
            noisy.push('/');
            for _ in 0..dots { noisy.push_str("./"); }
            noisy.push_str(&s.chars().map(|c| format!("%{:02x}", c as u8)).collect::<String>());
        }
        let a = url(&format!("GET {plain} HTTP/1.1\r\nHost: H\r\n\r\n"));
        let b = url(&format!("GET {noisy} HTTP/1.1\r\nHost: h:80\r\n\r\n"));
        prop_assert_eq!(a, b);
    }
}

#[test]
fn heads_go_on_with_the_canonical_target() {
    let head = |raw: &[u8]| match judge(raw, 65_536, |_| PathOptions::default()) {
        Head::Complete(r) => {
            canonical_head(&r, raw).map(|h| String::from_utf8_lossy(&h).into_owned())
        }
        _ => panic!("complete"),
    };
    assert_eq!(
        head(b"GET http://Victim.test:80/a/../p?q HTTP/1.1\r\nHost: victim.test\r\n\r\nBODY")
            .as_deref(),
        Some("GET /p?q HTTP/1.1\r\nHost: victim.test\r\n\r\n")
    );
    assert_eq!(
        head(b"POST /%62 HTTP/1.0\r\nHost: h\r\nContent-Length: 0\r\n\r\n").as_deref(),
        Some("POST /b HTTP/1.0\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
    );
    assert_eq!(head(b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"), None);
    assert_eq!(head(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), None);
}

#[test]
fn the_default_port_is_the_schemes() {
    let on = |port: u16, req: &str| match judge_on(req.as_bytes(), 65_536, port, |_| {
        PathOptions::default()
    }) {
        Head::Complete(r) => r.url.map(|u| u.into_string()),
        other => panic!("{other:?}"),
    };
    let get = |host: &str| format!("GET /v/a.m4s HTTP/1.1\r\nHost: {host}\r\n\r\n");
    // HTTPS: `:443` names the same site as no port; `:80` is another port.
    assert_eq!(
        on(443, &get("a.test:443")).as_deref(),
        Some("a.test/v/a.m4s")
    );
    assert_eq!(on(443, &get("a.test")).as_deref(), Some("a.test/v/a.m4s"));
    assert_eq!(
        on(443, &get("a.test:80")).as_deref(),
        Some("a.test:80/v/a.m4s")
    );
    // Cleartext, as before.
    assert_eq!(on(80, &get("a.test:80")).as_deref(), Some("a.test/v/a.m4s"));
    assert_eq!(
        on(80, &get("a.test:443")).as_deref(),
        Some("a.test:443/v/a.m4s")
    );
    assert_eq!(url(&get("a.test:80")), Ok(Some("a.test/v/a.m4s".into())));
}
