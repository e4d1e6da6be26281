#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

const PLAIN: PathOptions = PathOptions {
    merge_slashes: false,
    drop_params: &[],
};
const MERGE: PathOptions = PathOptions {
    merge_slashes: true,
    drop_params: &[],
};

fn p(raw: &str) -> Result<String, UrlError> {
    path(raw.as_bytes(), PLAIN)
}

fn h(raw: &str) -> Result<String, UrlError> {
    host(raw.as_bytes(), HTTP_PORT)
}

#[test]
fn equivalent_spellings_of_a_path_are_one() {
    for raw in [
        "/b",
        "/a/../b",
        "/%2e%2e/b",
        "/%2E%2E/b",
        "/./b",
        "/%62",
        "/x/y/../../b",
        "/../b",
        "/.%2e/b",
    ] {
        assert_eq!(p(raw).as_deref(), Ok("/b"), "{raw}");
    }
    assert_eq!(p("/a/.").as_deref(), Ok("/a/"));
    assert_eq!(p("/a/..").as_deref(), Ok("/"));
    assert_eq!(p("/").as_deref(), Ok("/"));
    assert_eq!(p("/a/").as_deref(), Ok("/a/"));
    assert_eq!(p("/a//../b").as_deref(), Ok("/a/b"));
    // Dots that are not whole segments stay.
    assert_eq!(p("/a.b/..c/.d").as_deref(), Ok("/a.b/..c/.d"));
}

#[test]
fn percent_encoding_is_upper_case_and_reserved_characters_stay_encoded() {
    assert_eq!(p("/a%2fb").as_deref(), Ok("/a%2Fb"));
    assert_eq!(p("/a%2Fb/..").as_deref(), Ok("/"));
    assert_eq!(p("/%7e%41%5F").as_deref(), Ok("/~A_"));
    assert_eq!(p("/caf%c3%a9").as_deref(), Ok("/caf%C3%A9"));
    assert_eq!(p("/a%20b").as_deref(), Ok("/a%20b"));
    // Outside the URI grammar: encoded, so the raw and the encoded spelling are one key.
    assert_eq!(p("/a\"b").as_deref(), Ok("/a%22b"));
    assert_eq!(p("/a%22b").as_deref(), Ok("/a%22b"));
    assert_eq!(p("/a\\b|{}").as_deref(), Ok("/a%5Cb%7C%7B%7D"));
    assert_eq!(
        path("/é".as_bytes(), PLAIN).as_deref(),
        Ok("/%C3%A9"),
        "UTF-8 is encoded byte by byte"
    );
}

#[test]
fn the_query_keeps_its_shape_but_not_its_spelling() {
    assert_eq!(p("/a?x=%41&y=/..").as_deref(), Ok("/a?x=A&y=/.."));
    assert_eq!(p("/a/../b?q=%2f").as_deref(), Ok("/b?q=%2F"));
    assert_eq!(p("/a?").as_deref(), Ok("/a?"));
    assert_eq!(p("/a?b?c").as_deref(), Ok("/a?b?c"));
    assert_eq!(p("/a?x=1+2").as_deref(), Ok("/a?x=1+2"));
}

#[test]
fn cmcd_and_the_site_s_dropped_parameters_never_name_content() {
    // What hls.js sends: every segment URL carries a different CMCD value.
    let seg = "/v/seg_1.m4s?CMCD=bl%3D0%2Cbr%3D2306%2Csid%3D%22abc%22";
    assert_eq!(p(seg).as_deref(), Ok("/v/seg_1.m4s"));
    assert_eq!(
        p("/v/seg_1.m4s?a=1&CMCD=x&b=2").as_deref(),
        Ok("/v/seg_1.m4s?a=1&b=2")
    );
    assert_eq!(
        p("/v/seg_1.m4s?CMCD=x&a=1").as_deref(),
        Ok("/v/seg_1.m4s?a=1")
    );
    assert_eq!(
        p("/v/seg_1.m4s?a=1&CMCD=x").as_deref(),
        Ok("/v/seg_1.m4s?a=1")
    );
    assert_eq!(p("/v/seg_1.m4s?CMCD").as_deref(), Ok("/v/seg_1.m4s"));
    // Spelled with percent-encoding, it is still CMCD once normalised.
    assert_eq!(p("/v/seg_1.m4s?%43MCD=x").as_deref(), Ok("/v/seg_1.m4s"));
    // Other spellings are other parameters, to an origin too.
    assert_eq!(p("/s?cmcd=x&xCMCD=y").as_deref(), Ok("/s?cmcd=x&xCMCD=y"));
    let names = [String::from("sid"), String::from("token")];
    let site = PathOptions {
        merge_slashes: false,
        drop_params: &names,
    };
    assert_eq!(
        path(b"/v/a.m3u8?token=abc&q=1&sid=9&CMCD=x", site).as_deref(),
        Ok("/v/a.m3u8?q=1")
    );
    assert_eq!(path(b"/v/a.m3u8?%73id=9", site).as_deref(), Ok("/v/a.m3u8"));
    // The same for a request target that is only a query, and for purge URLs.
    let c = Canonical::new(b"h", b"?CMCD=1&k=2", HTTP_PORT, |_| PathOptions::default()).unwrap();
    assert_eq!(c.as_str(), "h/?k=2");
    assert_eq!(
        content_url("http://h/v/a.m3u8?sid=1&k=2", |_| site).as_deref(),
        Ok("h/v/a.m3u8?k=2")
    );
}

#[test]
fn slashes_merge_only_when_the_site_asks() {
    assert_eq!(p("//a//b").as_deref(), Ok("//a//b"));
    assert_eq!(path(b"//a//b", MERGE).as_deref(), Ok("/a/b"));
    assert_eq!(path(b"/a//", MERGE).as_deref(), Ok("/a/"));
    assert_eq!(path(b"/a//../b", MERGE).as_deref(), Ok("/b"));
    assert_eq!(path(b"/a?x=//", MERGE).as_deref(), Ok("/a?x=//"));
}

#[test]
fn bad_paths_are_refused() {
    for raw in ["/a%", "/a%4", "/a%zz", "/%g0"] {
        assert!(matches!(p(raw), Err(UrlError::Percent(_))), "{raw}");
    }
    for raw in [
        "/a%00", "/a%0a", "/a%1F", "/a%7f", "/a b", "/a\tb", "/a\u{7f}", "/?q=%0d",
    ] {
        assert!(matches!(p(raw), Err(UrlError::Control(_))), "{raw}");
    }
    assert!(matches!(p("/a#frag"), Err(UrlError::Fragment(_))));
    assert!(matches!(p("a"), Err(UrlError::Target(_))));
    assert!(matches!(p(""), Err(UrlError::Target(_))));
    let mut out = String::from("keep");
    assert!(push_path(b"/ok/../%zz", PLAIN, &mut out).is_err());
    assert_eq!(out, "keep", "nothing appended on error");
}

#[test]
fn hosts_are_validated_and_normalised() {
    assert_eq!(h("Example.COM").as_deref(), Ok("example.com"));
    assert_eq!(h("example.com:80").as_deref(), Ok("example.com"));
    assert_eq!(h("example.com:").as_deref(), Ok("example.com"));
    assert_eq!(h("example.com.").as_deref(), Ok("example.com"));
    assert_eq!(h("example.com:080").as_deref(), Ok("example.com"));
    assert_eq!(h("example.com:8080").as_deref(), Ok("example.com:8080"));
    assert_eq!(h("127.0.0.1:9000").as_deref(), Ok("127.0.0.1:9000"));
    assert_eq!(h("[::1]:8080").as_deref(), Ok("[::1]:8080"));
    assert_eq!(h("[0:0::0001]").as_deref(), Ok("[::1]"));
    assert_eq!(h("[2001:DB8::A]:80").as_deref(), Ok("[2001:db8::a]"));
    assert_eq!(
        host(b"example.com:443", HTTPS_PORT).as_deref(),
        Ok("example.com")
    );
    assert_eq!(h(""), Err(UrlError::NoHost));
    for raw in [
        "shop.test/static",
        "shop.test:80/x",
        "a b",
        "a@b",
        "a%41",
        "[::1",
        "[::1]x",
        "[fe80::1%25eth0]",
        "[v1.x]",
        "::1",
        "h:0",
        "h:65536",
        "h:123456",
        "h:8o",
        "h:-1",
        ".",
        "..",
        ".a",
        "a..b",
        "a..",
        ":80",
        "a\"b",
        "a\\b",
        "a?b",
        "a#b",
        "é.test",
    ] {
        assert!(
            matches!(h(raw), Err(UrlError::Host(_))),
            "{raw}: {:?}",
            h(raw)
        );
    }
}

#[test]
fn request_targets_have_one_of_three_forms() {
    assert_eq!(target(b"/a?b"), Ok(Target::Origin(b"/a?b")));
    assert_eq!(target(b"*"), Ok(Target::Asterisk));
    assert_eq!(
        target(b"HTTP://Shop.test:80/a?b"),
        Ok(Target::Absolute {
            authority: b"Shop.test:80",
            path: b"/a?b",
            https: false
        })
    );
    assert_eq!(
        target(b"https://h"),
        Ok(Target::Absolute {
            authority: b"h",
            path: b"",
            https: true
        })
    );
    assert_eq!(
        target(b"http://h?x"),
        Ok(Target::Absolute {
            authority: b"h",
            path: b"?x",
            https: false
        })
    );
    for raw in [
        "evil.html",
        "victim.test/p",
        " /x",
        "**",
        "",
        "ftp://h/",
        "http:/h",
        "http://u@h/",
    ] {
        assert!(
            matches!(target(raw.as_bytes()), Err(UrlError::Target(_))),
            "{raw}"
        );
    }
    assert_eq!(target(b"http:///p"), Err(UrlError::NoHost));
}

#[test]
fn canonical_urls_split_back_into_host_and_path() {
    let c = Canonical::new(b"Shop.Test:80", b"/a/../b?x=%41", HTTP_PORT, |_| PLAIN).unwrap();
    assert_eq!(c.as_str(), "shop.test/b?x=A");
    assert_eq!(c.host(), "shop.test");
    assert_eq!(c.path(), "/b?x=A");
    let c = Canonical::new(b"h", b"", HTTP_PORT, |_| PLAIN).unwrap();
    assert_eq!(c.as_str(), "h/");
    let c = Canonical::new(b"h", b"?q", HTTP_PORT, |_| PLAIN).unwrap();
    assert_eq!(c.as_str(), "h/?q");
    let mut seen = String::new();
    let c = Canonical::new(b"M.test", b"//a", HTTP_PORT, |h| {
        seen = h.to_string();
        MERGE
    })
    .unwrap();
    assert_eq!((seen.as_str(), c.as_str()), ("m.test", "m.test/a"));
}

#[test]
fn purge_targets_go_through_the_same_normaliser() {
    let u = |s: &str| content_url(s, |_| PLAIN);
    assert_eq!(
        u("http://Example.com:80/a/../b").as_deref(),
        Ok("example.com/b")
    );
    assert_eq!(
        u("https://Example.com:443/%62").as_deref(),
        Ok("example.com/b")
    );
    assert_eq!(u("example.com/./b").as_deref(), Ok("example.com/b"));
    assert_eq!(u("example.com").as_deref(), Ok("example.com/"));
    assert_eq!(u("127.0.0.1:9000/x").as_deref(), Ok("127.0.0.1:9000/x"));
    for bad in [
        "",
        " ",
        "/b",
        "host /b",
        "ex ample.com/b",
        "h/a\nb",
        "http://",
        "h/%zz",
    ] {
        assert!(u(bad).is_err(), "{bad:?}");
    }
    let pre = |s: &str| content_prefix(s, |_| PLAIN);
    assert_eq!(
        pre("Example.com/videos/").as_deref(),
        Ok("example.com/videos/")
    );
    assert_eq!(pre("example.com/a/../v").as_deref(), Ok("example.com/v"));
    assert_eq!(pre("example.com").as_deref(), Ok("example.com/"));
    assert!(pre("").is_err());
    assert!(pre("/obj/1").is_err(), "a prefix names its host");
}

#[test]
fn errors_show_a_short_escaped_value() {
    let long = format!("/{}%zz", "a".repeat(500));
    let msg = p(&long).unwrap_err().to_string();
    assert!(msg.len() < 300, "{msg}");
    assert!(msg.contains('…'));
    let msg = h("a\u{1b}[31m").unwrap_err().to_string();
    assert!(!msg.contains('\u{1b}'), "{msg}");
}

#[test]
fn a_host_without_its_port() {
    assert_eq!(without_port("a.test:8080"), "a.test");
    assert_eq!(without_port("a.test"), "a.test");
    assert_eq!(without_port("[::1]:8080"), "[::1]");
    assert_eq!(without_port("[::1]"), "[::1]");
    assert_eq!(without_port("127.0.0.1:80"), "127.0.0.1");
}

proptest! {
    #[test]
    fn normalising_twice_changes_nothing(raw in proptest::collection::vec(any::<u8>(), 0..80), merge in any::<bool>()) {
        let mut bytes = vec![b'/'];
        bytes.extend(raw);
        let opts = PathOptions {
            merge_slashes: merge,
            drop_params: &[],
        };
        if let Ok(once) = path(&bytes, opts) {
            prop_assert_eq!(path(once.as_bytes(), opts), Ok(once.clone()));
            prop_assert!(once.is_ascii());
            prop_assert!(once.starts_with('/'));
            prop_assert!(!once.bytes().any(|b| b <= 0x20 || b == 0x7f));
        }
    }

    #[test]
    fn a_normalised_path_has_no_dot_segments(segs in proptest::collection::vec(prop_oneof!["\\.", "\\.\\.", "%2[eE]", "%2[eE]%2[eE]", "[a-z]{1,3}", ""], 0..8)) {
        let raw = format!("/{}", segs.join("/"));
        let out = p(&raw).unwrap();
        let path_part = out.split('?').next().unwrap_or("");
        prop_assert!(!path_part.split('/').any(|s| s == "." || s == ".."), "{} -> {}", raw, out);
    }

    #[test]
    fn hosts_normalise_once(raw in "[a-zA-Z0-9.-]{1,20}(:[0-9]{1,5})?") {
        if let Ok(once) = h(&raw) {
            prop_assert_eq!(h(&once), Ok(once.clone()));
            prop_assert!(!once.bytes().any(|b| b.is_ascii_uppercase()));
        }
    }

    #[test]
    fn never_panics_on_anything(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let _ = path(&bytes, PLAIN);
        let _ = host(&bytes, HTTP_PORT);
        let _ = target(&bytes);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = content_url(s, |_| MERGE);
        }
    }
}
