//! RFC 9111 rules for a shared cache, with RFC 5861 (stale-while-revalidate, stale-if-error) and
//! RFC 9213 targeted fields (`CDN-Cache-Control`, and Eddy's own `Eddy-CDN-Cache-Control`).
//!
//! Pure functions over header values: the edge gathers the facts from a request/response pair,
//! this module says whether the response may be stored and for how long it is fresh.
//!
//! Targeted fields (RFC 9213 §2.2): the most specific valid field wins and the others, including
//! `Cache-Control` and `Expires`, are ignored for caching decisions:
//! `Eddy-CDN-Cache-Control` > `CDN-Cache-Control` > `Cache-Control` (+ `Expires`).
//!
//! Parsing:
//! - `Cache-Control` is not a structured field. It is parsed leniently by hand: unrecognised or
//!   malformed directives are skipped and the rest still count (RFC 9111 §5.2).
//! - Targeted fields are RFC 8941 Dictionaries (RFC 9213 §2.1), parsed with the `sfv` crate. "If a
//!   targeted field in a given response is empty, or a parsing error is encountered, that field
//!   MUST be ignored by the cache", so `max-age=10000, &&&&&` or `Max-Age=1` (keys are lower-case
//!   by the grammar) fall back to the next field. Unknown keys and parameters on members are
//!   ignored. Value types: `max-age`, `s-maxage`, `stale-while-revalidate` and `stale-if-error`
//!   take a non-negative Integer (capped at 2^31 like delta-seconds); `no-store`, `public`,
//!   `must-revalidate`, `proxy-revalidate` and `immutable` a Boolean (a bare key is true, `?0` is
//!   false); `no-cache` and `private` a Boolean or a String (the field-name list, treated as the
//!   unqualified directive).
//! - A known directive whose value has another type (`max-age="10000"`, `max-age=10.5`,
//!   `max-age=-1`, `no-store=1`) makes the whole field invalid, like a parse error. RFC 9213 §2.1
//!   only says "Implementations SHOULD NOT consume values that violate these inferred
//!   constraints" and leaves the rest of the field open. Dropping just that directive would still
//!   apply the rest of a field the origin got wrong (`public, max-age="10000"` would get heuristic
//!   freshness nobody asked for). Ignoring the field sends the decision to the next field, which is
//!   what caches that do not implement the targeted field do anyway.
//! - `Age` (RFC 9111 §5.1) is read leniently: a list (`7200, 0`, from a sloppy origin or two
//!   proxies) counts its first value; a non-numeric value is ignored; huge values are capped at
//!   2^31 like delta-seconds.
//! - `Expires`, `Date` and `Last-Modified` accept the three HTTP-date forms of RFC 9110 §5.6.7
//!   (IMF-fixdate, RFC 850, asctime) with names in any case and surrounding whitespace. An `Expires`
//!   that still does not parse means "already expired" (RFC 9111 §5.3).
//!
//! Age (§4.2.3): a response whose current age is past its freshness lifetime is stale on arrival
//! (`fresh_for` zero), and its stale windows (RFC 5861 counts them from the moment it became
//! stale) are shortened by how long it has already been stale.
//!
//! Serving stale: `must-revalidate`, `proxy-revalidate` and `no-cache` forbid it (§4.2.4); an
//! explicit `stale-while-revalidate` / `stale-if-error` grants it for its window, also alongside
//! `s-maxage` (the explicit grant is the "explicit permission" §4.2.4 asks for). The deployment's
//! default grace ([`Limits::stale_on_error`]) applies only where neither those directives nor
//! `s-maxage` forbid it and the origin sent no `stale-if-error` of its own.

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

/// Delta-seconds larger than this are treated as this (RFC 9111 §1.2.2).
const DELTA_SECONDS_CAP: u64 = 1 << 31;

/// Strict delta-seconds (`1*DIGIT`), capped at 2^31.
fn delta_seconds(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits: the parse only fails on overflow, which the cap covers.
    Some(
        v.parse::<u64>()
            .map_or(DELTA_SECONDS_CAP, |n| n.min(DELTA_SECONDS_CAP)),
    )
}

/// A `Cache-Control` argument in seconds, also in the quoted form.
fn parse_seconds(v: &str) -> Option<u64> {
    delta_seconds(v.trim().trim_matches('"'))
}

/// The `Age` value in seconds, leniently: the first member of a list, whitespace around it
/// allowed; `None` if that is not delta-seconds.
fn age_seconds(v: &str) -> Option<u64> {
    v.split(',')
        .next()
        .and_then(|first| delta_seconds(first.trim()))
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

    /// Strict parse for a targeted field: the value must be a non-empty RFC 8941 Dictionary
    /// (RFC 9213 §2.1) whose known directives have values of the expected type (see the module
    /// documentation). Unknown keys and member parameters are ignored. On `Err` the caller ignores
    /// the whole field.
    pub fn parse_strict(value: &str) -> Result<Directives, ParseError> {
        // HTTP strips OWS around a field value; RFC 8941 parsing itself only skips SP.
        let value = value.trim_matches([' ', '\t']);
        if value.is_empty() {
            return Err(ParseError("empty targeted field"));
        }
        let members = sfv::Parser::new(value)
            .with_version(sfv::Version::Rfc8941)
            .parse_dictionary_with_visitor(Members::default())
            .map_err(|_| ParseError("not a valid RFC 8941 Dictionary"))?;
        let mut d = Directives::default();
        for (key, value) in &members {
            d.apply_member(key, value.as_ref())?;
        }
        Ok(d)
    }

    /// One targeted-field Dictionary member; `value` is `None` for an Inner List.
    fn apply_member(&mut self, key: &str, value: Option<&Bare>) -> Result<(), ParseError> {
        let seconds = |err: &'static str| match value {
            Some(Bare::Integer(n)) => u64::try_from(*n)
                .map(|n| n.min(DELTA_SECONDS_CAP))
                .map_err(|_| ParseError(err)),
            _ => Err(ParseError(err)),
        };
        let flag = |err: &'static str| match value {
            Some(Bare::Boolean(b)) => Ok(*b),
            _ => Err(ParseError(err)),
        };
        let flag_or_fields = |err: &'static str| match value {
            Some(Bare::Boolean(b)) => Ok(*b),
            Some(Bare::String) => Ok(true),
            _ => Err(ParseError(err)),
        };
        match key {
            "max-age" => self.max_age = Some(seconds("max-age must be a non-negative Integer")?),
            "s-maxage" => self.s_maxage = Some(seconds("s-maxage must be a non-negative Integer")?),
            "stale-while-revalidate" => {
                self.stale_while_revalidate = Some(seconds(
                    "stale-while-revalidate must be a non-negative Integer",
                )?)
            }
            "stale-if-error" => {
                self.stale_if_error =
                    Some(seconds("stale-if-error must be a non-negative Integer")?)
            }
            "no-store" => self.no_store = flag("no-store must be a Boolean")?,
            "public" => self.public = flag("public must be a Boolean")?,
            "must-revalidate" => self.must_revalidate = flag("must-revalidate must be a Boolean")?,
            "proxy-revalidate" => {
                self.proxy_revalidate = flag("proxy-revalidate must be a Boolean")?
            }
            "immutable" => self.immutable = flag("immutable must be a Boolean")?,
            "no-cache" => self.no_cache = flag_or_fields("no-cache must be a Boolean or a String")?,
            "private" => self.private = flag_or_fields("private must be a Boolean or a String")?,
            _ => {}
        }
        Ok(())
    }

    /// One `Cache-Control` directive (lenient syntax).
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
    /// `Age` (a list counts its first value).
    pub age: Option<&'a str>,
    /// Has `ETag`.
    pub has_etag: bool,
    /// `Vary` contains `*`.
    pub vary_star: bool,
    /// The request carried `Authorization`.
    pub request_authorized: bool,
    /// The request carried `Cache-Control: no-store`.
    pub request_no_store: bool,
    /// A TTL the deployment sets for this kind of object (a streaming TTL class): it replaces
    /// the freshness lifetime the response's fields give (`max-age`, `Expires`, the heuristic,
    /// and `no-cache`), as a CDN's TTL rule does. What forbids storing (`no-store`, `private`,
    /// `Vary: *`, `Authorization`) still wins, and so do `must-revalidate`/`proxy-revalidate`
    /// for serving stale.
    pub class_ttl: Option<Duration>,
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
    /// `proxy-revalidate` or `s-maxage` forbid it). Like the origin's windows, it counts from
    /// expiry, so a response that arrives already stale gets what is left of it. Zero: only what
    /// the origin allows (the value of `Limits::default()`; the edge sets it from its configuration).
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

/// Parse an HTTP-date leniently (RFC 9110 §5.6.7 encourages robust recipients): the IMF-fixdate,
/// RFC 850 and asctime forms that `httpdate` reads, with day names, month names and `GMT` in any
/// case, and surrounding whitespace.
fn http_date(v: Option<&str>) -> Option<SystemTime> {
    let v = v?.trim();
    if let Ok(t) = httpdate::parse_http_date(v) {
        return Some(t);
    }
    // `httpdate` wants `Sun`/`Sunday`, `Nov` and `GMT`: re-case each word and retry. The longest
    // valid form (RFC 850 with `Wednesday`) is 33 bytes.
    if v.len() > 40 || !v.is_ascii() {
        return None;
    }
    let mut norm = String::with_capacity(v.len());
    let mut word_start = true;
    for c in v.chars() {
        if c.is_ascii_alphabetic() {
            norm.push(if word_start {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
            word_start = false;
        } else {
            norm.push(c);
            word_start = true;
        }
    }
    if let Some(head) = norm.strip_suffix(" Gmt") {
        norm = format!("{head} GMT");
    }
    httpdate::parse_http_date(&norm).ok()
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
        .and_then(age_seconds)
        .map(Duration::from_secs)
        .unwrap_or_default();
    let current_age = apparent.max(age_value);

    let explicit = f.class_ttl.or_else(|| {
        d.s_maxage
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
    let no_cache = d.no_cache && f.class_ttl.is_none();
    if no_cache {
        fresh_for = Duration::ZERO;
    }
    // Stale on arrival: the stale windows count from expiry, which was this long ago.
    let stale_since = current_age.saturating_sub(lifetime);
    let no_stale = no_cache || d.must_revalidate || d.proxy_revalidate;
    let window = |v: Option<u64>| {
        if no_stale {
            Duration::ZERO
        } else {
            v.map(Duration::from_secs)
                .unwrap_or_default()
                .saturating_sub(stale_since)
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
        freshness.stale_if_error = limits.stale_on_error.saturating_sub(stale_since);
    }
    Decision::Store(freshness)
}

/// A targeted-field member's value as the directives read it: an Item's bare value (its
/// parameters are ignored); an Inner List is `None` in [`Members`].
#[derive(Debug, Clone, Copy)]
enum Bare {
    Integer(i64),
    Boolean(bool),
    String,
    Other,
}

/// Most members a targeted field may have; more refuse the field.
const MAX_MEMBERS: usize = 64;

/// Past [`MAX_MEMBERS`].
#[derive(Debug)]
struct TooManyMembers;

impl std::fmt::Display for TooManyMembers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "more than {MAX_MEMBERS} members")
    }
}

impl std::error::Error for TooManyMembers {}

/// Dictionary members in order, read without building a map; a key sent twice keeps its last
/// value (RFC 8941 §4.2.2).
#[derive(Default)]
struct Members<'de>(Vec<(&'de str, Option<Bare>)>);

impl<'de> sfv::visitor::DictionaryVisitor<'de> for Members<'de> {
    type Out = Vec<(&'de str, Option<Bare>)>;
    type Error = TooManyMembers;

    fn entry(
        &mut self,
        key: &'de sfv::KeyRef,
    ) -> Result<impl sfv::visitor::EntryVisitor<'de>, Self::Error> {
        let key = key.as_str();
        self.0.retain(|(k, _)| *k != key);
        if self.0.len() >= MAX_MEMBERS {
            return Err(TooManyMembers);
        }
        self.0.push((key, None));
        Ok(self.0.last_mut().map(|(_, v)| Member(v)))
    }

    fn finish(self) -> Result<Self::Out, Self::Error> {
        Ok(self.0)
    }
}

/// Where one member's value goes.
struct Member<'a>(&'a mut Option<Bare>);

impl<'de> sfv::visitor::EntryVisitor<'de> for Member<'_> {
    type Error = std::convert::Infallible;

    fn item(self) -> Result<impl sfv::visitor::ItemVisitor<'de>, Self::Error> {
        Ok(self)
    }

    fn inner_list(self) -> Result<impl sfv::visitor::InnerListVisitor<'de>, Self::Error> {
        *self.0 = None;
        Ok(sfv::visitor::Ignored)
    }
}

impl<'de> sfv::visitor::ItemVisitor<'de> for Member<'_> {
    type Out = ();
    type Error = std::convert::Infallible;

    fn bare_item(
        self,
        b: sfv::BareItemFromInput<'de>,
    ) -> Result<impl sfv::visitor::ParameterVisitor<'de, Out = ()>, Self::Error> {
        *self.0 = Some(match b {
            sfv::GenericBareItem::Integer(n) => Bare::Integer(n.into()),
            sfv::GenericBareItem::Boolean(b) => Bare::Boolean(b),
            sfv::GenericBareItem::String(_) => Bare::String,
            _ => Bare::Other,
        });
        Ok(sfv::visitor::Ignored)
    }
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

    fn decide_with(f: &ResponseFacts<'_>, limits: &Limits) -> Freshness {
        match decide(f, limits, now()) {
            Decision::Store(fr) => fr,
            Decision::DoNotStore(r) => panic!("expected store, got {r}"),
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    // ---- Item 14: Age ----

    #[test]
    fn age_is_read_leniently() {
        assert_eq!(age_seconds("7200, 0"), Some(7200));
        assert_eq!(age_seconds("7200,0"), Some(7200));
        assert_eq!(age_seconds(" 42 "), Some(42));
        assert_eq!(age_seconds("\t42\t, 1"), Some(42));
        assert_eq!(age_seconds("0"), Some(0));
        assert_eq!(age_seconds("99999999999999999999999"), Some(1 << 31));
        assert_eq!(age_seconds("4294967296"), Some(1 << 31));
        for bad in ["", " ", "soon", "-5", "1e3", "1.5", "\"30\"", ", 30", "30s"] {
            assert_eq!(age_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn age_list_counts_first_value_and_stale_on_arrival_needs_a_validator() {
        // Two hours old with a one-hour max-age: stale on arrival, nothing to revalidate with.
        let f = ResponseFacts {
            age: Some("7200, 0"),
            ..ok("max-age=3600")
        };
        assert_eq!(not_stored(&f), "no freshness and no validator");
        // The configured grace does not make it storable either.
        let limits = Limits {
            stale_on_error: secs(10),
            ..Limits::default()
        };
        assert!(matches!(
            decide(&f, &limits, now()),
            Decision::DoNotStore("no freshness and no validator")
        ));
        // With a validator it is stored, stale, to be revalidated.
        let f = ResponseFacts {
            has_etag: true,
            ..f
        };
        let fr = store(&f);
        assert_eq!(fr.fresh_for, Duration::ZERO);
        assert_eq!(fr.initial_age, secs(7200));
        assert!(!fr.heuristic);
    }

    #[test]
    fn a_class_ttl_replaces_freshness_but_not_what_forbids_storing() {
        let class = |cc: &'static str, ttl: u64| ResponseFacts {
            class_ttl: Some(secs(ttl)),
            ..ok(cc)
        };
        // It replaces max-age, no-cache and the lack of any freshness.
        assert_eq!(store(&class("max-age=1", 3600)).fresh_for, secs(3600));
        assert_eq!(store(&class("no-cache", 6)).fresh_for, secs(6));
        assert_eq!(store(&class("", 30)).fresh_for, secs(30));
        // It counts from the response's age, like any lifetime.
        let aged = ResponseFacts {
            age: Some("10"),
            ..class("max-age=600", 30)
        };
        assert_eq!(store(&aged).fresh_for, secs(20));
        // no-store and private still win.
        assert_eq!(not_stored(&class("no-store", 3600)), "no-store");
        assert_eq!(not_stored(&class("private, max-age=60", 3600)), "private");
        // Zero with no validator is not stored.
        assert_eq!(
            not_stored(&class("max-age=60", 0)),
            "no freshness and no validator"
        );
        // must-revalidate still forbids serving stale.
        let fr = store(&class("must-revalidate, stale-if-error=60", 6));
        assert_eq!(fr.stale_if_error, Duration::ZERO);
    }

    #[test]
    fn stale_on_arrival_shortens_stale_windows() {
        // Expired 3600 s ago: a 600 s stale-if-error window is already over...
        let f = ResponseFacts {
            age: Some("7200, 0"),
            ..ok("max-age=3600, stale-if-error=600")
        };
        assert_eq!(not_stored(&f), "no freshness and no validator");
        // ... a one-day window has 23 h left.
        let f = ResponseFacts {
            age: Some("7200, 0"),
            ..ok("max-age=3600, stale-if-error=86400, stale-while-revalidate=3700")
        };
        let fr = store(&f);
        assert_eq!(fr.fresh_for, Duration::ZERO);
        assert_eq!(fr.stale_if_error, secs(86_400 - 3600));
        assert_eq!(fr.stale_while_revalidate, secs(100));
        // The configured grace counts from expiry too.
        let limits = Limits {
            stale_on_error: secs(5000),
            ..Limits::default()
        };
        let f = ResponseFacts {
            age: Some("7200"),
            has_etag: true,
            ..ok("max-age=3600")
        };
        assert_eq!(decide_with(&f, &limits).stale_if_error, secs(1400));
    }

    #[test]
    fn age_within_lifetime_is_subtracted() {
        let f = ResponseFacts {
            age: Some("100"),
            ..ok("max-age=3600")
        };
        let fr = store(&f);
        assert_eq!(fr.fresh_for, secs(3500));
        assert_eq!(fr.initial_age, secs(100));
    }

    #[test]
    fn unusable_age_is_ignored_and_huge_age_is_capped() {
        for age in ["soon", "-5", ""] {
            let f = ResponseFacts {
                age: Some(age),
                ..ok("max-age=60")
            };
            let fr = store(&f);
            assert_eq!(fr.fresh_for, secs(60), "{age:?}");
            assert_eq!(fr.initial_age, Duration::ZERO, "{age:?}");
        }
        let f = ResponseFacts {
            age: Some("99999999999999999999999"),
            has_etag: true,
            ..ok("max-age=60")
        };
        let fr = store(&f);
        assert_eq!(fr.fresh_for, Duration::ZERO);
        assert_eq!(fr.initial_age, secs(1 << 31));
    }

    #[test]
    fn current_age_is_the_larger_of_age_and_apparent_age() {
        let date = httpdate::fmt_http_date(now() - secs(50));
        let f = ResponseFacts {
            date: Some(&date),
            age: Some("10"),
            ..ok("max-age=100")
        };
        assert_eq!(store(&f).initial_age, secs(50));
        let f = ResponseFacts {
            age: Some("80, 0"),
            ..f
        };
        assert_eq!(store(&f).initial_age, secs(80));
        assert_eq!(store(&f).fresh_for, secs(20));
    }

    // ---- Item 15: targeted fields are RFC 8941 Dictionaries ----

    #[test]
    fn targeted_field_members_and_types() {
        let d = Directives::parse_strict(
            "max-age=60, s-maxage=120, stale-while-revalidate=5, stale-if-error=30, \
             must-revalidate, proxy-revalidate, public, immutable",
        )
        .expect("valid");
        assert_eq!(
            d,
            Directives {
                max_age: Some(60),
                s_maxage: Some(120),
                stale_while_revalidate: Some(5),
                stale_if_error: Some(30),
                must_revalidate: true,
                proxy_revalidate: true,
                public: true,
                immutable: true,
                ..Directives::default()
            }
        );
        let strict = |v: &str| Directives::parse_strict(v).expect(v);
        // Boolean directives: a bare key is true, `?0` false, `?1` true.
        assert!(strict("no-store").no_store);
        assert!(strict("no-store=?1").no_store);
        assert!(!strict("no-store=?0").no_store);
        assert!(!strict("private=?0, no-cache=?0").private);
        // no-cache / private may carry a String (field names): still the directive.
        let d = strict(r#"no-cache="set-cookie, x-foo", private="authorization""#);
        assert!(d.no_cache && d.private);
        // Parameters are ignored, and so are unknown keys whatever their value.
        assert_eq!(strict("max-age=60;foo=bar;baz").max_age, Some(60));
        assert!(strict("no-store;x=1").no_store);
        let d = strict(r#"x-foo=(a b), x-bar="s", x-baz=1.5, x-q=:AAE=:, max-age=5, none"#);
        assert_eq!(
            d,
            Directives {
                max_age: Some(5),
                ..Directives::default()
            }
        );
        // Large integers are capped like delta-seconds.
        assert_eq!(strict("max-age=999999999999999").max_age, Some(1 << 31));
        // Whitespace around members and the field.
        assert_eq!(strict("  max-age=7 ,   public  ").max_age, Some(7));
        // A repeated key: RFC 8941 keeps the last value.
        assert_eq!(strict("max-age=1, max-age=2").max_age, Some(2));
    }

    #[test]
    fn targeted_field_that_is_not_a_dictionary_is_invalid() {
        for bad in [
            "max-age=10000, &&&&&",
            "Max-Age=1",
            "max-age=1,",
            "max-age=\"1",
            "max-age = 1",
            "max-age=1;",
            "must-revalidate=?",
            "no-store private",
            "max-age=1\u{e9}",
            "",
            "  ",
        ] {
            assert!(Directives::parse_strict(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn targeted_directive_of_the_wrong_type_invalidates_the_field() {
        for bad in [
            r#"max-age="10000""#,
            "max-age=10.5",
            "max-age=-1",
            "max-age=?1",
            "max-age=(1 2)",
            "max-age=ten",
            "s-maxage=\"60\"",
            "stale-while-revalidate=1.0",
            "stale-if-error=-30",
            "no-store=1",
            "no-store=\"yes\"",
            "public=(a)",
            "no-cache=set-cookie",
            "private=1",
            "public, max-age=\"10000\"",
        ] {
            assert!(Directives::parse_strict(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn invalid_targeted_fields_fall_back_to_the_next_field() {
        for bad in [
            "max-age=10000, &&&&&",
            r#"max-age="10000""#,
            "max-age=10.5",
            "max-age=-1",
            "Max-Age=1",
            "",
        ] {
            let f = ResponseFacts {
                cdn_cache_control: Some(bad),
                ..ok("max-age=60")
            };
            let fr = store(&f);
            assert_eq!(fr.source, Source::CacheControl, "{bad:?}");
            assert_eq!(fr.fresh_for, secs(60), "{bad:?}");
        }
        // An invalid Eddy field falls back to a valid CDN field.
        let f = ResponseFacts {
            eddy_cdn_cache_control: Some("max-age=10.5"),
            cdn_cache_control: Some("max-age=300"),
            ..ok("max-age=60")
        };
        let fr = store(&f);
        assert_eq!(fr.source, Source::CdnTargeted);
        assert_eq!(fr.fresh_for, secs(300));
    }

    #[test]
    fn targeted_booleans_in_decide() {
        // `no-store=?0` is no no-store at all.
        let f = ResponseFacts {
            cdn_cache_control: Some("no-store=?0, max-age=30"),
            ..ok("no-store")
        };
        assert_eq!(store(&f).fresh_for, secs(30));
        // RFC 9213 §3.1's example: a field with no known directive still governs.
        let lm = httpdate::fmt_http_date(now() - secs(1000));
        let f = ResponseFacts {
            cdn_cache_control: Some("none"),
            last_modified: Some(&lm),
            ..ok("no-store")
        };
        let fr = store(&f);
        assert_eq!(fr.source, Source::CdnTargeted);
        assert!(fr.heuristic);
    }

    #[test]
    fn cache_control_stays_lenient() {
        let d = Directives::parse_lenient(r#"MAX-AGE="60", &&&&&, Public, s-maxage=abc"#);
        assert_eq!(d.max_age, Some(60));
        assert!(d.public);
        assert_eq!(d.s_maxage, None);
        assert_eq!(store(&ok("max-age=10000, &&&&&")).fresh_for, secs(10000));
    }

    // ---- Item 17b: lenient HTTP dates ----

    #[test]
    fn http_dates_in_every_rfc9110_form_and_case() {
        let t = SystemTime::UNIX_EPOCH + secs(784_111_777);
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "sun, 06 nov 1994 08:49:37 gmt",
            "SUN, 06 NOV 1994 08:49:37 GMT",
            "sunday, 06-nov-94 08:49:37 gmt",
            "SUNDAY, 06-NOV-94 08:49:37 Gmt",
            "sun nov  6 08:49:37 1994",
            "SUN NOV  6 08:49:37 1994",
            "  Sun, 06 Nov 1994 08:49:37 GMT\t",
            "\tsun nov  6 08:49:37 1994 ",
        ] {
            assert_eq!(http_date(Some(form)), Some(t), "{form:?}");
        }
        for bad in [
            "",
            "0",
            "-1",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 GMT GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sün, 06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(http_date(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(http_date(None), None);
    }

    #[test]
    fn expires_and_date_in_legacy_forms() {
        // now() is Tue, 14 Nov 2023 22:13:20 GMT.
        assert_eq!(
            httpdate::fmt_http_date(now()),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        for (date, expires) in [
            (
                "Tuesday, 14-Nov-23 22:13:20 GMT",
                "Tue Nov 14 22:14:20 2023",
            ),
            (
                "tue, 14 nov 2023 22:13:20 gmt",
                "tuesday, 14-nov-23 22:14:20 gmt",
            ),
            (
                " Tue Nov 14 22:13:20 2023 ",
                " TUE, 14 NOV 2023 22:14:20 GMT ",
            ),
        ] {
            let f = ResponseFacts {
                status: 200,
                date: Some(date),
                expires: Some(expires),
                ..Default::default()
            };
            let fr = store(&f);
            assert_eq!(fr.fresh_for, secs(60), "{date:?} {expires:?}");
            assert!(!fr.heuristic);
        }
        // Date counts in the apparent age even when only lower-case.
        let f = ResponseFacts {
            date: Some("tue, 14 nov 2023 22:12:50 gmt"),
            ..ok("max-age=100")
        };
        assert_eq!(store(&f).fresh_for, secs(70));
        // An Expires that still does not parse is already expired.
        let f = ResponseFacts {
            status: 200,
            date: Some("Tue, 14 Nov 2023 22:13:20 GMT"),
            expires: Some("Tue, 14 Nov 2023 22:14:20 CET"),
            has_etag: true,
            ..Default::default()
        };
        let fr = store(&f);
        assert_eq!(fr.fresh_for, Duration::ZERO);
        assert!(!fr.heuristic);
    }

    #[test]
    fn last_modified_in_legacy_forms_feeds_the_heuristic() {
        // 1000 s before now(): Tue, 14 Nov 2023 21:56:40 GMT.
        for lm in [
            "tue, 14 nov 2023 21:56:40 gmt",
            "Tuesday, 14-Nov-23 21:56:40 GMT",
            "Tue Nov 14 21:56:40 2023",
        ] {
            let f = ResponseFacts {
                status: 200,
                date: Some("Tue, 14 Nov 2023 22:13:20 GMT"),
                last_modified: Some(lm),
                ..Default::default()
            };
            let fr = store(&f);
            assert!(fr.heuristic, "{lm:?}");
            assert_eq!(fr.fresh_for, secs(100), "{lm:?}");
        }
    }

    // ---- Item 16: the configured stale-on-error grace ----

    fn grace() -> Limits {
        Limits {
            stale_on_error: secs(10),
            ..Limits::default()
        }
    }

    /// A stored response (it has a validator) under `cc`, decided with a 10 s grace.
    fn with_grace(cc: &str) -> Freshness {
        let f = ResponseFacts {
            has_etag: true,
            ..ok(cc)
        };
        decide_with(&f, &grace())
    }

    #[test]
    fn stale_on_error_default_is_zero_and_granted_when_allowed() {
        assert_eq!(Limits::default().stale_on_error, Duration::ZERO);
        assert_eq!(store(&ok("max-age=60")).stale_if_error, Duration::ZERO);
        assert_eq!(with_grace("max-age=60").stale_if_error, secs(10));
        assert_eq!(with_grace("public, max-age=60").stale_if_error, secs(10));
    }

    #[test]
    fn stale_on_error_not_granted_with_must_revalidate() {
        let fr = with_grace("max-age=60, must-revalidate");
        assert_eq!(fr.fresh_for, secs(60));
        assert_eq!(fr.stale_if_error, Duration::ZERO);
    }

    #[test]
    fn stale_on_error_not_granted_with_proxy_revalidate() {
        let fr = with_grace("max-age=60, proxy-revalidate");
        assert_eq!(fr.fresh_for, secs(60));
        assert_eq!(fr.stale_if_error, Duration::ZERO);
    }

    #[test]
    fn stale_on_error_not_granted_with_no_cache() {
        let fr = with_grace("max-age=60, no-cache");
        assert_eq!(fr.fresh_for, Duration::ZERO);
        assert_eq!(fr.stale_if_error, Duration::ZERO);
        // Qualified no-cache too.
        let fr = with_grace("max-age=60, no-cache=\"set-cookie\"");
        assert_eq!(fr.stale_if_error, Duration::ZERO);
    }

    #[test]
    fn stale_on_error_not_granted_with_s_maxage() {
        let fr = with_grace("s-maxage=60");
        assert_eq!(fr.fresh_for, secs(60));
        assert_eq!(fr.stale_if_error, Duration::ZERO);
        assert_eq!(
            with_grace("max-age=600, s-maxage=60").stale_if_error,
            Duration::ZERO
        );
        // The same rules in a targeted field.
        let f = ResponseFacts {
            cdn_cache_control: Some("s-maxage=60"),
            ..ok("max-age=60")
        };
        assert_eq!(decide_with(&f, &grace()).stale_if_error, Duration::ZERO);
        let f = ResponseFacts {
            cdn_cache_control: Some("max-age=60"),
            ..ok("max-age=60, must-revalidate")
        };
        assert_eq!(decide_with(&f, &grace()).stale_if_error, secs(10));
    }

    #[test]
    fn explicit_stale_if_error_wins_over_the_grace() {
        assert_eq!(
            with_grace("max-age=60, stale-if-error=5").stale_if_error,
            secs(5)
        );
        assert_eq!(
            with_grace("max-age=60, stale-if-error=600").stale_if_error,
            secs(600)
        );
        assert_eq!(
            with_grace("max-age=60, stale-if-error=0").stale_if_error,
            Duration::ZERO,
            "an explicit zero is the origin's choice"
        );
        // The explicit grant also stands alongside s-maxage.
        assert_eq!(
            with_grace("s-maxage=60, stale-if-error=30").stale_if_error,
            secs(30)
        );
        // But not past must-revalidate / no-cache.
        assert_eq!(
            with_grace("max-age=60, must-revalidate, stale-if-error=30").stale_if_error,
            Duration::ZERO
        );
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

        #[test]
        fn parse_strict_never_panics(s in any::<String>()) {
            let _ = Directives::parse_strict(&s);
        }

        #[test]
        fn parse_strict_never_panics_on_near_dictionaries(
            s in r#"[a-z0-9*=,;?:"().\- A-Z&]{0,60}"#,
        ) {
            let _ = Directives::parse_strict(&s);
        }

        #[test]
        fn strict_and_lenient_agree_on_well_formed_fields(
            max_age in proptest::option::of(0u64..1 << 40),
            swr in proptest::option::of(0u64..100_000),
            flags in proptest::collection::vec(
                proptest::sample::select(vec![
                    "no-store", "no-cache", "private", "public",
                    "must-revalidate", "proxy-revalidate", "immutable", "x-ext",
                ]),
                0..4,
            ),
        ) {
            let mut members: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
            if let Some(n) = max_age {
                members.push(format!("max-age={n}"));
            }
            if let Some(n) = swr {
                members.push(format!("stale-while-revalidate={n}"));
            }
            let field = members.join(", ");
            if field.is_empty() {
                prop_assert!(Directives::parse_strict(&field).is_err());
            } else {
                let strict = Directives::parse_strict(&field);
                prop_assert_eq!(strict, Ok(Directives::parse_lenient(&field)));
            }
        }

        #[test]
        fn age_lists_count_the_first_value(a in 0u64..u64::MAX, b in 0u64..u64::MAX, sp in " {0,3}") {
            prop_assert_eq!(
                age_seconds(&format!("{sp}{a}{sp},{sp}{b}")),
                Some(a.min(1 << 31))
            );
        }

        #[test]
        fn dates_parse_in_any_case(t in 0u64..253_402_300_799, form in 0usize..3, upper in any::<bool>()) {
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(t);
            let imf = httpdate::fmt_http_date(time);
            // Built from the IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT".
            let (wday, day, mon, year, hms) = (&imf[0..3], &imf[5..7], &imf[8..11], &imf[12..16], &imf[17..25]);
            let long_wday = match wday {
                "Mon" => "Monday", "Tue" => "Tuesday", "Wed" => "Wednesday", "Thu" => "Thursday",
                "Fri" => "Friday", "Sat" => "Saturday", _ => "Sunday",
            };
            let text = match form {
                // asctime: "Sun Nov  6 08:49:37 1994".
                1 => format!("{wday} {mon} {:>2} {hms} {year}", day.trim_start_matches('0')),
                // RFC 850, whose two-digit years httpdate reads as 1970..=2069:
                // "Sunday, 06-Nov-94 08:49:37 GMT".
                2 if ("1970".."2070").contains(&year) => {
                    format!("{long_wday}, {day}-{mon}-{} {hms} GMT", &year[2..])
                }
                _ => imf.clone(),
            };
            let text = if upper { text.to_ascii_uppercase() } else { text.to_ascii_lowercase() };
            prop_assert_eq!(http_date(Some(&text)), Some(time), "{}", text);
        }
    }
}
