//! Signed URLs at the edge: a request a `[[signed_urls]]` route covers is served only with a
//! valid token (`eddy_auth::token`), from its query or its cookie.
//!
//! One judgement, two places, one answer. The gate ([`crate::h2c`]) judges every HTTP/1 request
//! from the head as the client sent it ([`judge_head`]): the canonical target the proxy sees has
//! lost the token parameter (it is never part of a cache key). A refused request skips the hit
//! fast path, and the gate hands the verdict to the proxy with the request
//! ([`crate::date::KeepDate`]); a request pingora parsed itself (HTTP/2) is judged in the proxy
//! ([`judge_parts`]). Either way the proxy answers a refusal ([`refuse`]): `403` with the reason
//! in `Eddy-Token-Error` and as JSON, counted in `eddy_signed_urls_total{what}`. The token is
//! checked against the canonical path, so dot segments and percent-encoding cannot step outside
//! the granted ACL.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use eddy_auth::token::{self, Refusal};
use eddy_config::Config;

/// The field that names why a token was refused.
pub const ERROR_HEADER: &str = "eddy-token-error";

/// What a request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No route covers it.
    Open,
    /// A route covers it and its token grants it.
    Granted,
    /// A route covers it and it is refused.
    Refused(Refusal),
}

impl Access {
    /// The metric label: `granted`, or the refusal's.
    pub fn label(&self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::Granted => "granted",
            Access::Refused(r) => r.label(),
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Judge a request for the canonical `url` (`host/path?query`) with its raw `query` and its
/// `Cookie` field values, from `client`.
pub fn judge_parts<'a>(
    config: &Config,
    url: &str,
    query: Option<&str>,
    cookies: impl Iterator<Item = &'a [u8]>,
    client: Option<IpAddr>,
) -> Access {
    if config.signed_urls.is_empty() {
        return Access::Open;
    }
    let host = crate::classes::host_of(url);
    let (path, _) = crate::classes::path_and_query(url);
    let Some(route) = config.signed_urls.iter().find(|r| r.covers(host, path)) else {
        return Access::Open;
    };
    let from_query = match query.map(|q| token::from_query(q, &route.name)) {
        Some(Err(r)) => return Access::Refused(r),
        Some(Ok(t)) => t,
        None => None,
    };
    let from_cookie = || {
        cookies
            .filter_map(|c| std::str::from_utf8(c).ok())
            .find_map(|c| token::from_cookie(c, &route.name))
            .map(std::borrow::Cow::Borrowed)
    };
    let Some(t) = from_query.or_else(from_cookie) else {
        return Access::Refused(Refusal::Missing);
    };
    match token::verify(&t, path, client, now(), &route.keys) {
        Ok(()) => Access::Granted,
        Err(r) => Access::Refused(r),
    }
}

/// Judge an HTTP/1 request from its head as the client sent it (see [`judge_parts`]).
pub fn judge_head(config: &Config, url: &str, head: &[u8], client: Option<IpAddr>) -> Access {
    if config.signed_urls.is_empty() {
        return Access::Open;
    }
    crate::qoe::with_head(head, |query, fields| {
        let cookies = fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case("cookie"))
            .map(|f| f.value);
        judge_parts(config, url, query, cookies, client)
    })
    .unwrap_or(Access::Refused(Refusal::Malformed(
        "the request head does not parse".into(),
    )))
}

/// The `403` body and fields for a refusal.
pub fn refusal(r: &Refusal) -> (String, [(&'static str, String); 1]) {
    let body =
        serde_json::json!({ "error": r.to_string(), "reason": r.label() }).to_string() + "\n";
    (body, [(ERROR_HEADER, r.label().to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_auth::Key;
    use eddy_auth::token::{Claims, Scope};

    const KEY: &str = "00112233445566778899aabbccddeeff";

    fn config() -> Config {
        let toml = format!(
            "[edge]\norigins = [\"http://a:1\"]\n[[signed_urls]]\nhost = \"v.test\"\nprefix = \"/video/\"\nkeys = [\"{KEY}\"]\n"
        );
        match eddy_config::parse(&toml, std::path::Path::new("t.toml")).and_then(|f| {
            eddy_config::validate(f, &Default::default(), std::path::Path::new("t.toml"))
        }) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn token(acl: &str) -> String {
        let c = Claims {
            start: None,
            expires: now() + 60,
            scope: Scope::Acl(vec![acl.into()]),
            ip: None,
        };
        match Key::from_hex(KEY).map(|k| token::sign(&c, &k)) {
            Ok(Ok(t)) => t,
            _ => panic!("sign"),
        }
    }

    #[test]
    fn covered_requests_need_a_token_in_the_query_or_a_cookie() {
        let c = config();
        let t = token("/video/show-1/*");
        let j = |url: &str, query: Option<&str>, cookie: Option<&str>| {
            judge_parts(&c, url, query, cookie.map(str::as_bytes).into_iter(), None)
        };
        assert_eq!(j("v.test/other/x", None, None), Access::Open);
        assert_eq!(j("w.test/video/show-1/x", None, None), Access::Open);
        assert_eq!(
            j("v.test/video/show-1/x", None, None),
            Access::Refused(Refusal::Missing)
        );
        let q = format!("a=1&__token__={t}");
        assert_eq!(j("v.test/video/show-1/x", Some(&q), None), Access::Granted);
        let cookie = format!("x=1; __token__={t}");
        assert_eq!(
            j("v.test:8443/video/show-1/x", None, Some(&cookie)),
            Access::Granted
        );
        assert_eq!(
            j("v.test/video/show-2/x", Some(&q), None),
            Access::Refused(Refusal::WrongPath)
        );
        let head = format!("GET /video/show-1/x?{q} HTTP/1.1\r\nHost: v.test\r\n\r\n");
        assert_eq!(
            judge_head(&c, "v.test/video/show-1/x", head.as_bytes(), None),
            Access::Granted
        );
        let (body, fields) = refusal(&Refusal::Missing);
        assert!(body.contains("\"reason\":\"missing\""), "{body}");
        assert_eq!(fields[0], (ERROR_HEADER, "missing".to_string()));
    }
}
