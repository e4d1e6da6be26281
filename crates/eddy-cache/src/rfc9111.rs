//! RFC 9111 rules for a shared cache, with RFC 5861 (stale-while-revalidate, stale-if-error) and
//! RFC 9213 targeted fields (`CDN-Cache-Control`, and Eddy's own `Eddy-CDN-Cache-Control`).
//!
//! Pure functions over header values: the edge gathers the facts from a request/response pair,
//! this module says whether the response may be stored and for how long it is fresh.
//!
//! Targeted fields (RFC 9213 §2.2): the most specific valid field wins and the others, including
//! `Cache-Control` and `Expires`, are ignored for caching decisions:
//! `Eddy-CDN-Cache-Control` > `CDN-Cache-Control` > `Cache-Control` (+ `Expires`). A targeted field
//! that does not parse as a dictionary of directives is ignored (§2.1).
//!
//! Serving stale: `must-revalidate`, `proxy-revalidate` and `no-cache` forbid it (§4.2.4); an
//! explicit `stale-while-revalidate` / `stale-if-error` grants it for its window, also alongside
//! `s-maxage` (the explicit grant is the "explicit permission" §4.2.4 asks for).

use std::time::{Duration, SystemTime};

/// Parsed cache directives of one field (`Cache-Control` or a targeted field).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `max-age=N`.
    pub max_age: Option<u64>,
    /// `s-maxage=N`.
    pub s_maxage: Option<u64>,
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (qualified or not: both force revalidation here).
    pub no_cache: bool,
    /// `private` (qualified or not: a shared cache does not store either).
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `stale-while-revalidate=N`.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N`.
    pub stale_if_error: Option<u64>,
    /// `immutable`.
    pub immutable: bool,
}

/// Why a field failed to parse (only matters for targeted fields, which are then ignored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cache directive list: {0}")]
pub struct ParseError(&'static str);

fn parse_seconds(v: &str) -> Option<u64> {
    let v = v.trim().trim_matches('"');
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // RFC 9111 §1.2.2: a delta-seconds too large is treated as 2^31.
    Some(v.parse::<u64>().unwrap_or(1 << 31).min(1 << 31))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Split a directive list on commas outside quoted strings.
fn split_list(value: &str) -> Result<Vec<&str>, ParseError> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == ',' {
            out.push(&value[start..i]);
            start = i + 1;
        }
    }
    if in_quotes {
        return Err(ParseError("unterminated quoted string"));
    }
    out.push(&value[start..]);
    Ok(out)
}

impl Directives {
    /// Lenient parse for `Cache-Control`: unknown or malformed directives are skipped, as RFC 9111
    /// §5.2 asks ("ignore unrecognized directives").
    pub fn parse_lenient(value: &str) -> Directives {
        let mut d = Directives::default();
        let Ok(items) = split_list(value) else {
            return d;
        };
        for item in items {
            let _ = d.apply(item);
        }
        d
    }

    /// Strict parse for a targeted field (RFC 9213 §2.1 requires a valid Dictionary). Returns an
    /// error if any member is not `token` or `token=value`.
    pub fn parse_strict(value: &str) -> Result<Directives, ParseError> {
        let mut d = Directives::default();
        for item in split_list(value)? {
            if item.trim().is_empty() {
                continue;
            }
            d.apply(item)?;
        }
        Ok(d)
    }

    fn apply(&mut self, item: &str) -> Result<(), ParseError> {
        let item = item.trim();
        if item.is_empty() {
            return Ok(());
        }
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (item, None),
        };
        if !is_token(name) {
            return Err(ParseError("directive name is not a token"));
        }
        let name = name.to_ascii_lowercase();
        let secs = || value.and_then(parse_seconds);
        match name.as_str() {
            "max-age" => self.max_age = Some(secs().ok_or(ParseError("max-age needs seconds"))?),
            "s-maxage" => self.s_maxage = Some(secs().ok_or(ParseError("s-maxage needs seconds"))?),
            "stale-while-revalidate" => {
                self.stale_while_revalidate =
                    Some(secs().ok_or(ParseError("stale-while-revalidate needs seconds"))?)
            }
            "stale-if-error" => {
                self.stale_if_error =
                    Some(secs().ok_or(ParseError("stale-if-error needs seconds"))?)
            }
            "no-store" => self.no_store = true,
            "no-cache" => self.no_cache = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "immutable" => self.immutable = true,
            _ => {}
        }
        Ok(())
    }
}

/// Which field's directives decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `Eddy-CDN-Cache-Control`.
    EddyTargeted,
    /// `CDN-Cache-Control`.
    CdnTargeted,
    /// `Cache-Control` and `Expires`.
    CacheControl,
}

/// The facts about a response (and its request) that decide caching.
#[derive(Debug, Clone, Default)]
pub struct ResponseFacts<'a> {
    /// Response status.
    pub status: u16,
    /// `Cache-Control` values, joined with commas.
    pub cache_control: Option<&'a str>,
    /// `CDN-Cache-Control`.
    pub cdn_cache_control: Option<&'a str>,
    /// `Eddy-CDN-Cache-Control`.
    pub eddy_cdn_cache_control: Option<&'a str>,
    /// `Expires`.
    pub expires: Option<&'a str>,
    /// `Date`.
    pub date: Option<&'a str>,
    /// `Last-Modified`.
    pub last_modified: Option<&'a str>,
    /// `Age`.
    pub age: Option<&'a str>,
    /// Has `ETag`.
    pub has_etag: bool,
    /// `Vary` contains `*`.
    pub vary_star: bool,
    /// The request carried `Authorization`.
    pub request_authorized: bool,
    /// The request carried `Cache-Control: no-store`.
    pub request_no_store: bool,
}

/// Settings a deployment chooses.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Upper bound on heuristic freshness.
    pub max_heuristic: Duration,
    /// Fraction of (Date − Last-Modified) used as heuristic freshness (RFC 9111 §4.2.2 suggests 10 %).
    pub heuristic_fraction: f64,
    /// How long past freshness a stored response may be served when every origin fails, for
    /// responses that carry no `stale-if-error` of their own (RFC 9111 §4.2.4 allows serving
    /// stale when the origin cannot be reached, unless `no-cache`, `must-revalidate`,
    /// `proxy-revalidate` or `s-maxage` forbid it). Zero: only what the origin allows.
    pub stale_on_error: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_heuristic: Duration::from_secs(86_400),
            heuristic_fraction: 0.1,
            stale_on_error: Duration::ZERO,
        }
    }
}

/// How long a stored response is fresh, and its stale windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Freshness lifetime minus the response's current age (zero: stale on arrival).
    pub fresh_for: Duration,
    /// Window after expiry in which it may be served while revalidating in the background.
    pub stale_while_revalidate: Duration,
    /// Window after expiry in which it may be served if the origin fails.
    pub stale_if_error: Duration,
    /// Which field decided.
    pub source: Source,
    /// Freshness came from the heuristic (RFC 9111 §4.2.2), not from the origin.
    pub heuristic: bool,
    /// The response's corrected initial age (§4.2.3), the base of the `Age` it is served with.
    pub initial_age: Duration,
}

/// The decision for one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Store it.
    Store(Freshness),
    /// Do not store it; the reason is for `Cache-Status` and logs.
    DoNotStore(&'static str),
}

/// Status codes cacheable by default (RFC 9110 §15.1) that allow heuristic freshness.
pub fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

fn http_date(v: Option<&str>) -> Option<SystemTime> {
    v.and_then(|s| httpdate::parse_http_date(s.trim()).ok())
}

/// Decide storability and freshness of a response for a shared cache, at time `now`.
pub fn decide(f: &ResponseFacts<'_>, limits: &Limits, now: SystemTime) -> Decision {
    if f.status < 200 {
        return Decision::DoNotStore("interim response");
    }
    if f.status == 206 {
        return Decision::DoNotStore("partial content from origin");
    }
    // Pick the field that governs: the most specific valid targeted field, else Cache-Control.
    let targeted = f
        .eddy_cdn_cache_control
        .and_then(|v| {
            Directives::parse_strict(v)
                .ok()
                .map(|d| (d, Source::EddyTargeted))
        })
        .or_else(|| {
            f.cdn_cache_control.and_then(|v| {
                Directives::parse_strict(v)
                    .ok()
                    .map(|d| (d, Source::CdnTargeted))
            })
        });
    let (d, source) = match targeted {
        Some(t) => t,
        None => (
            Directives::parse_lenient(f.cache_control.unwrap_or("")),
            Source::CacheControl,
        ),
    };
    if d.no_store || f.request_no_store {
        return Decision::DoNotStore("no-store");
    }
    if d.private {
        return Decision::DoNotStore("private");
    }
    if f.vary_star {
        return Decision::DoNotStore("vary: *");
    }
    if f.request_authorized && !(d.public || d.must_revalidate || d.s_maxage.is_some()) {
        // RFC 9111 §3.5.
        return Decision::DoNotStore("authorization without public, s-maxage or must-revalidate");
    }

    let date = http_date(f.date).unwrap_or(now);
    // Current age (§4.2.3), with response_time ≈ now and no request delay known.
    let apparent = now.duration_since(date).unwrap_or_default();
    let age_value = f
        .age
        .and_then(parse_seconds)
        .map(Duration::from_secs)
        .unwrap_or_default();
    let current_age = apparent.max(age_value);

    let explicit = d
        .s_maxage
        .or(d.max_age)
        .map(Duration::from_secs)
        .or_else(|| {
            if source != Source::CacheControl {
                return None;
            }
            // Expires only counts with Cache-Control; an invalid Expires means "already expired".
            f.expires.map(|e| match http_date(Some(e)) {
                Some(exp) => exp.duration_since(date).unwrap_or_default(),
                None => Duration::ZERO,
            })
        });
    let mut heuristic = false;
    let lifetime = match explicit {
        Some(l) => l,
        None => {
            if !(heuristically_cacheable(f.status) || d.public) {
                return Decision::DoNotStore(
                    "status not cacheable by default and no explicit freshness",
                );
            }
            heuristic = true;
            match http_date(f.last_modified) {
                Some(lm) => {
                    let since = date.duration_since(lm).unwrap_or_default();
                    since
                        .mul_f64(limits.heuristic_fraction)
                        .min(limits.max_heuristic)
                }
                None => Duration::ZERO,
            }
        }
    };
    let mut fresh_for = lifetime.saturating_sub(current_age);
    if d.no_cache {
        fresh_for = Duration::ZERO;
    }
    let no_stale = d.no_cache || d.must_revalidate || d.proxy_revalidate;
    let window = |v: Option<u64>| {
        if no_stale {
            Duration::ZERO
        } else {
            v.map(Duration::from_secs).unwrap_or_default()
        }
    };
    let freshness = Freshness {
        fresh_for,
        stale_while_revalidate: window(d.stale_while_revalidate),
        stale_if_error: window(d.stale_if_error),
        source,
        heuristic,
        initial_age: current_age,
    };
    let validator = f.has_etag || f.last_modified.is_some();
    if fresh_for.is_zero()
        && !validator
        && freshness.stale_while_revalidate.is_zero()
        && freshness.stale_if_error.is_zero()
    {
        return Decision::DoNotStore("no freshness and no validator");
    }
    let mut freshness = freshness;
    if d.stale_if_error.is_none() && !no_stale && d.s_maxage.is_none() {
        freshness.stale_if_error = limits.stale_on_error;
    }
    Decision::Store(freshness)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn store(f: &ResponseFacts<'_>) -> Freshness {
        match decide(f, &Limits::default(), now()) {
            Decision::Store(fr) => fr,
            Decision::DoNotStore(r) => panic!("expected store, got {r}"),
        }
    }

    fn not_stored(f: &ResponseFacts<'_>) -> &'static str {
        match decide(f, &Limits::default(), now()) {
            Decision::Store(fr) => panic!("expected not stored, got {fr:?}"),
            Decision::DoNotStore(r) => r,
        }
    }

    fn ok(cc: &str) -> ResponseFacts<'_> {
        ResponseFacts {
            status: 200,
            cache_control: Some(cc),
            ..Default::default()
        }
    }

    #[test]
    fn configured_stale_on_error_applies_only_where_stale_is_not_forbidden() {
        let limits = Limits {
            stale_on_error: Duration::from_secs(300),
            ..Limits::default()
        };
        let window = |cc: &str| match decide(&ok(cc), &limits, now()) {
            Decision::Store(f) => f.stale_if_error.as_secs(),
            Decision::DoNotStore(_) => 0,
        };
        assert_eq!(window("max-age=60"), 300);
        assert_eq!(
            window("max-age=60, stale-if-error=10"),
            10,
            "the origin's own wins"
        );
        assert_eq!(window("max-age=60, must-revalidate"), 0);
        assert_eq!(window("max-age=60, proxy-revalidate"), 0);
        assert_eq!(
            window("s-maxage=60"),
            0,
            "s-maxage implies proxy-revalidate"
        );
        assert_eq!(window("max-age=60, no-cache"), 0);
    }

    #[test]
    fn s_maxage_beats_max_age() {
        assert_eq!(
            store(&ok("max-age=10, s-maxage=100")).fresh_for,
            Duration::from_secs(100)
        );
    }

    #[test]
    fn age_is_subtracted() {
        let f = ResponseFacts {
            age: Some("30"),
            ..ok("max-age=100")
        };
        assert_eq!(store(&f).fresh_for, Duration::from_secs(70));
    }

    #[test]
    fn expires_relative_to_date_and_invalid_expires_is_expired() {
        let date = httpdate::fmt_http_date(now());
        let exp = httpdate::fmt_http_date(now() + Duration::from_secs(60));
        let f = ResponseFacts {
            status: 200,
            date: Some(&date),
            expires: Some(&exp),
            ..Default::default()
        };
        assert_eq!(store(&f).fresh_for, Duration::from_secs(60));
        let f = ResponseFacts {
            expires: Some("0"),
            has_etag: true,
            ..f
        };
        assert_eq!(store(&f).fresh_for, Duration::ZERO);
    }

    #[test]
    fn heuristic_only_for_default_cacheable_statuses() {
        let date = httpdate::fmt_http_date(now());
        let lm = httpdate::fmt_http_date(now() - Duration::from_secs(1000));
        let f = ResponseFacts {
            status: 200,
            date: Some(&date),
            last_modified: Some(&lm),
            ..Default::default()
        };
        let fr = store(&f);
        assert_eq!(fr.fresh_for, Duration::from_secs(100));
        assert!(fr.heuristic);
        let f = ResponseFacts { status: 302, ..f };
        not_stored(&f);
    }

    #[test]
    fn private_no_store_and_authorization() {
        not_stored(&ok("private, max-age=60"));
        not_stored(&ok("no-store"));
        let f = ResponseFacts {
            request_authorized: true,
            ..ok("max-age=60")
        };
        not_stored(&f);
        let f = ResponseFacts {
            request_authorized: true,
            ..ok("public, max-age=60")
        };
        store(&f);
        let f = ResponseFacts {
            request_authorized: true,
            ..ok("s-maxage=60")
        };
        store(&f);
    }

    #[test]
    fn no_cache_stores_but_revalidates_and_never_serves_stale() {
        let f = ResponseFacts {
            has_etag: true,
            ..ok("no-cache, max-age=60, stale-if-error=100")
        };
        let fr = store(&f);
        assert_eq!(fr.fresh_for, Duration::ZERO);
        assert_eq!(fr.stale_if_error, Duration::ZERO);
    }

    #[test]
    fn must_revalidate_disables_stale_windows() {
        let fr = store(&ok("max-age=5, must-revalidate, stale-while-revalidate=30"));
        assert_eq!(fr.stale_while_revalidate, Duration::ZERO);
        let fr = store(&ok(
            "max-age=5, stale-while-revalidate=30, stale-if-error=60",
        ));
        assert_eq!(fr.stale_while_revalidate, Duration::from_secs(30));
        assert_eq!(fr.stale_if_error, Duration::from_secs(60));
    }

    #[test]
    fn targeted_fields_take_precedence_rfc9213() {
        let f = ResponseFacts {
            cdn_cache_control: Some("max-age=300"),
            ..ok("no-store")
        };
        let fr = store(&f);
        assert_eq!(fr.fresh_for, Duration::from_secs(300));
        assert_eq!(fr.source, Source::CdnTargeted);
        let f = ResponseFacts {
            eddy_cdn_cache_control: Some("max-age=5"),
            cdn_cache_control: Some("max-age=300"),
            ..ok("max-age=1")
        };
        assert_eq!(store(&f).fresh_for, Duration::from_secs(5));
        // A targeted no-store wins over a permissive Cache-Control.
        let f = ResponseFacts {
            cdn_cache_control: Some("no-store"),
            ..ok("max-age=60")
        };
        not_stored(&f);
        // An invalid targeted field is ignored.
        let f = ResponseFacts {
            cdn_cache_control: Some("max-age=\"1"),
            ..ok("max-age=60")
        };
        assert_eq!(store(&f).source, Source::CacheControl);
        // Expires is ignored when a targeted field governs.
        let f = ResponseFacts {
            cdn_cache_control: Some("public"),
            expires: Some("0"),
            has_etag: true,
            ..ok("max-age=60")
        };
        assert!(store(&f).heuristic);
    }

    #[test]
    fn vary_star_is_not_stored() {
        let f = ResponseFacts {
            vary_star: true,
            ..ok("max-age=60")
        };
        not_stored(&f);
    }

    #[test]
    fn quoted_commas_do_not_split() {
        let d = Directives::parse_lenient("no-cache=\"set-cookie, foo\", max-age=5");
        assert!(d.no_cache);
        assert_eq!(d.max_age, Some(5));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,80}") {
            let _ = Directives::parse_lenient(&s);
            let _ = Directives::parse_strict(&s);
        }

        #[test]
        fn decide_never_panics(cc in "[a-z=,\" 0-9-]{0,40}", status in 100u16..600, age in "[0-9]{0,12}") {
            let f = ResponseFacts { status, cache_control: Some(&cc), age: Some(&age), ..Default::default() };
            let _ = decide(&f, &Limits::default(), now());
        }

        #[test]
        fn max_age_round_trips(n in 0u64..1_000_000) {
            prop_assert_eq!(Directives::parse_lenient(&format!("max-age={n}")).max_age, Some(n));
        }
    }
}
