use super::*;
use proptest::prelude::*;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const ST: u64 = 1_767_225_600;
const EXP: u64 = 1_767_229_200;

fn key() -> Key {
    Key::from_hex(KEY).expect("key")
}

fn acl(patterns: &[&str]) -> Claims {
    Claims {
        start: Some(ST),
        expires: EXP,
        scope: Scope::Acl(patterns.iter().map(|p| p.to_string()).collect()),
        ip: None,
    }
}

fn signed(c: &Claims) -> String {
    match sign(c, &key()) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

/// Known answers, computed outside Rust (Python's hmac over the same fields): the layout and
/// the signature are the ones other Auth Token 2.0 implementations make and check.
#[test]
fn tokens_match_known_answers() {
    assert_eq!(
        signed(&acl(&["/video/show-1/*"])),
        "st=1767225600~exp=1767229200~acl=/video/show-1/*~hmac=204a093c88a1131b4803af1a191f61c87ae7ae6d601ae08d09bb1cce74a2780b"
    );
    let url = Claims {
        start: None,
        expires: EXP,
        scope: Scope::Url("/video/show-1/master.m3u8".into()),
        ip: None,
    };
    assert_eq!(
        signed(&url),
        "exp=1767229200~hmac=e620a00ca0ca654d455e09964e5375d1edda1606548c12b46a1183ec73936eb4"
    );
}

#[test]
fn an_acl_token_covers_its_stream_until_it_expires() {
    let t = signed(&acl(&["/video/show-1/*"]));
    let keys = [key()];
    let now = ST + 10;
    for p in ["/video/show-1/master.m3u8", "/video/show-1/720p/seg-1.m4s"] {
        assert_eq!(verify(&t, p, None, now, &keys), Ok(()), "{p}");
    }
    assert_eq!(
        verify(&t, "/video/show-2/master.m3u8", None, now, &keys),
        Err(Refusal::WrongPath)
    );
    assert_eq!(
        verify(&t, "/video/show-1/x", None, EXP, &keys),
        Err(Refusal::Expired(EXP))
    );
    assert_eq!(
        verify(&t, "/video/show-1/x", None, ST - 1, &keys),
        Err(Refusal::NotYetValid(ST))
    );
}

#[test]
fn a_url_token_covers_exactly_its_path() {
    let t = signed(&Claims {
        start: None,
        expires: EXP,
        scope: Scope::Url("/a/b.m4s".into()),
        ip: None,
    });
    let keys = [key()];
    assert_eq!(verify(&t, "/a/b.m4s", None, ST, &keys), Ok(()));
    assert_eq!(
        verify(&t, "/a/c.m4s", None, ST, &keys),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn tampering_or_another_key_breaks_the_signature_and_rotation_accepts_both_keys() {
    let t = signed(&acl(&["/video/show-1/*"]));
    let keys = [key()];
    for forged in [
        t.replace("exp=1767229200", "exp=1767999999"),
        t.replace("show-1", "show-2"),
        t.replace("acl=/video/show-1/*", "acl=/*"),
        format!("ip=10.0.0.1~{t}"),
    ] {
        assert_eq!(
            verify(&forged, "/video/show-2/x", None, ST + 1, &keys),
            Err(Refusal::BadSignature),
            "{forged}"
        );
    }
    let other = Key::from_hex("ff112233445566778899aabbccddeeff").expect("key");
    assert_eq!(
        verify(
            &t,
            "/video/show-1/x",
            None,
            ST + 1,
            std::slice::from_ref(&other)
        ),
        Err(Refusal::BadSignature)
    );
    // Rotation: the old key and the new one are both valid while both are configured.
    let by_other = match sign(&acl(&["/video/show-1/*"]), &other) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let both = [key(), other];
    assert_eq!(verify(&t, "/video/show-1/x", None, ST + 1, &both), Ok(()));
    assert_eq!(
        verify(&by_other, "/video/show-1/x", None, ST + 1, &both),
        Ok(())
    );
}

#[test]
fn a_bound_token_is_for_its_address_only() {
    let mut c = acl(&["/v/*"]);
    c.ip = Some("203.0.113.7".parse().expect("ip"));
    let t = signed(&c);
    assert!(t.starts_with("ip=203.0.113.7~st="), "{t}");
    let keys = [key()];
    let at = |ip: &str| verify(&t, "/v/x", Some(ip.parse().expect("ip")), ST + 1, &keys);
    assert_eq!(at("203.0.113.7"), Ok(()));
    assert_eq!(at("::ffff:203.0.113.7"), Ok(()));
    assert_eq!(at("203.0.113.8"), Err(Refusal::WrongAddress));
    assert_eq!(
        verify(&t, "/v/x", None, ST + 1, &keys),
        Err(Refusal::WrongAddress)
    );
}

#[test]
fn malformed_tokens_say_why() {
    let keys = [key()];
    let good = signed(&acl(&["/v/*"]));
    let mac = good.rsplit_once("~hmac=").map(|(_, m)| m).unwrap_or("");
    for (bad, why) in [
        ("", "no hmac"),
        ("exp=1", "no hmac"),
        ("exp=1~hmac=zz", "64 hex"),
        (&format!("acl=/v/*~hmac={mac}") as &str, "no exp"),
        (&format!("exp=x~hmac={mac}"), "Unix time"),
        (&format!("exp=1~exp=2~hmac={mac}"), "twice"),
        (&format!("exp=1~foo=2~hmac={mac}"), "unknown field"),
        (&format!("exp=1~acl=~hmac={mac}"), "acl is empty"),
        (&format!("exp=1~ip=nope~hmac={mac}"), "not an address"),
        (&format!("exp=1~hmac={mac}~hmac={mac}"), "last field"),
        (&format!("exp=1 ~hmac={mac}"), "printable"),
        (&format!("exp=1~junk~hmac={mac}"), "name=value"),
    ] {
        match verify(bad, "/v/x", None, ST, &keys) {
            Err(Refusal::Malformed(m)) => assert!(m.contains(why), "{bad}: {m}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let long = "a".repeat(MAX_LEN + 1);
    assert!(matches!(
        verify(&long, "/v/x", None, ST, &keys),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn claims_that_cannot_be_signed_are_refused() {
    let k = key();
    assert!(matches!(sign(&acl(&[]), &k), Err(SignError::EmptyAcl)));
    assert!(matches!(
        sign(&acl(&["v/*"]), &k),
        Err(SignError::BadPath(_))
    ));
    assert!(matches!(
        sign(&acl(&["/a~b"]), &k),
        Err(SignError::BadPath(_))
    ));
    assert!(matches!(
        sign(&acl(&["/a!b"]), &k),
        Err(SignError::BadPath(_))
    ));
    let mut c = acl(&["/v/*"]);
    c.start = Some(EXP);
    assert!(matches!(sign(&c, &k), Err(SignError::NeverValid(..))));
}

#[test]
fn patterns_match_whole_paths() {
    assert!(matches("/v/*", "/v/a/b.m4s"));
    assert!(matches("/v/*", "/v/"));
    assert!(!matches("/v/*", "/v"));
    assert!(matches("*", "/anything"));
    assert!(matches("/v/*/seg-*.m4s", "/v/720p/seg-1.m4s"));
    assert!(!matches("/v/*/seg-*.m4s", "/v/720p/seg-1.ts"));
    assert!(matches("/a/b", "/a/b"));
    assert!(!matches("/a/b", "/a/bc"));
    assert!(matches("/a**b", "/ab"));
}

#[test]
fn tokens_are_found_in_the_query_and_the_cookie() {
    assert_eq!(
        from_query("a=1&__token__=exp%3D1~acl%3D/v/*&b", "__token__")
            .ok()
            .flatten()
            .as_deref(),
        Some("exp=1~acl=/v/*")
    );
    assert_eq!(from_query("a=1", "__token__"), Ok(None));
    assert!(from_query("__token__=a&__token__=b", "__token__").is_err());
    assert_eq!(
        from_cookie("x=1; __token__=exp=1~hmac=ab ; y", "__token__"),
        Some("exp=1~hmac=ab")
    );
    assert_eq!(from_cookie("x=1", "__token__"), None);
}

proptest! {
    /// Whatever the bytes, reading a token never panics, and a signed token verifies for
    /// every path its one literal-prefix pattern covers.
    #[test]
    fn any_input_is_judged_without_panicking(s in "\\PC{0,300}", path in "/[a-z0-9/._-]{0,40}") {
        let _ = verify(&s, &path, None, ST, &[key()]);
        let t = signed(&acl(&["/v/*"]));
        let want = if path.starts_with("/v/") { Ok(()) } else { Err(Refusal::WrongPath) };
        prop_assert_eq!(verify(&t, &path, None, ST + 1, &[key()]), want);
    }

    /// The matcher agrees with a plain recursive definition.
    #[test]
    fn the_matcher_agrees_with_its_definition(p in "[ab*/]{0,8}", s in "[ab/]{0,10}") {
        fn reference(p: &[u8], s: &[u8]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some((b'*', rest)) => (0..=s.len()).any(|k| reference(rest, &s[k..])),
                Some((c, rest)) => s.first() == Some(c) && reference(rest, &s[1..]),
            }
        }
        prop_assert_eq!(matches(&p, &s), reference(p.as_bytes(), s.as_bytes()));
    }
}
