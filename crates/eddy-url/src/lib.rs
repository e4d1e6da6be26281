//! # eddy-url: one canonical form for a content URL
//!
//! An edge names content by one string, `host[:port]/path?query`. It is the cache key, what a
//! purge by URL or prefix matches, and (split back into `Host` and target) what the origin is
//! asked for. Two spellings an origin treats alike must give the same string, or a purge misses
//! one of them and one request can park an object under a name nobody purges. This crate is the
//! only place that string is made:
//!
//! - [`push_host`]: a `Host` (or the authority of an absolute URL) must be a valid `host[:port]`:
//!   an RFC 3986 §3.2.2 reg-name, an IPv4 address or a bracketed IPv6 address, and a port of
//!   1-65535. It is lower-cased, a trailing dot and the default port are dropped, and IPv6 is
//!   written in its RFC 5952 form.
//! - [`push_path`]: an origin-form `path[?query]`, normalised by RFC 3986 §6.2.2. Percent-encoding
//!   goes to upper case, percent-encoded unreserved characters are decoded, and dot segments are
//!   removed. `%2F` stays encoded. Characters outside the URI grammar are percent-encoded. `//`
//!   is merged only for a site that asks ([`PathOptions::merge_slashes`]).
//! - [`target`]: the request-target forms of RFC 9112 §3.2 (origin, absolute, asterisk).
//! - [`content_url`] and [`content_prefix`]: what operators and events name in purges, through
//!   the same normaliser.
//!
//! Every function refuses what it cannot read with a [`UrlError`] that shows the value (cut short
//! and escaped: the value may be hostile) and says what is allowed. Controls and spaces are
//! refused raw or percent-encoded (`%00`-`%1F`, `%7F`; `%20` is an encoded space and is fine).
//!
//! Must not touch: I/O, HTTP framing (the edge reads request lines and fields), caches.

use std::fmt;
use std::net::Ipv6Addr;

/// Longest part of a bad value an error shows.
const SHOWN: usize = 120;

/// A hostile value, shortened and escaped for an error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown(String);

impl Shown {
    /// Show `b` in an error message.
    pub fn of(b: &[u8]) -> Shown {
        let cut = &b[..b.len().min(SHOWN)];
        let mut s = format!("{:?}", String::from_utf8_lossy(cut));
        if b.len() > SHOWN {
            s.push('…');
        }
        Shown(s)
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a URL, host or target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No host at all.
    #[error(
        "no host: name the site as host[:port] (the Host header, or the authority of an absolute URL)"
    )]
    NoHost,
    /// A host that is not `host[:port]`.
    #[error(
        "host {0} is not a valid host[:port]: use a DNS name, an IPv4 address or a bracketed IPv6 address (RFC 3986 §3.2.2), with an optional port 1-65535"
    )]
    Host(Shown),
    /// A request target of no accepted form.
    #[error(
        "request target {0} is not /path, http://host/path, or * (OPTIONS only) (RFC 9112 §3.2)"
    )]
    Target(Shown),
    /// A `%` without two hex digits.
    #[error("{0} has a % that is not followed by two hex digits")]
    Percent(Shown),
    /// A control character or space.
    #[error("{0} has a control character or a space, raw or percent-encoded")]
    Control(Shown),
    /// A `#`: fragments are never sent.
    #[error("{0} has a fragment (#), which a request never carries")]
    Fragment(Shown),
    /// A URL or prefix for a purge that names no path.
    #[error("{0} is not a URL: give host[:port]/path, or http://host[:port]/path")]
    Url(Shown),
}

/// How a site wants its paths normalised beyond RFC 3986.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathOptions<'a> {
    /// Merge runs of `/` into one (nginx's `merge_slashes`): for an origin that treats `/a//b`
    /// as `/a/b`. Off by default: to RFC 3986 they are different resources.
    pub merge_slashes: bool,
    /// Query parameters that never name content on this site (session ids, tokens), dropped
    /// from the canonical URL beside [`ALWAYS_DROPPED`]. Names are matched after normalisation,
    /// exactly (case matters, as it does to an origin).
    pub drop_params: &'a [String],
}

/// Query parameters dropped from every canonical URL. `CMCD` (CTA-5004) is one player's
/// telemetry about one request: every hls.js segment URL carries a different value, and the
/// object is the same without it.
pub const ALWAYS_DROPPED: &[&str] = &["CMCD"];

/// The default port of plain HTTP, dropped from keys.
pub const HTTP_PORT: u16 = 80;
/// The default port of HTTPS, dropped from keys of `https://` URLs.
pub const HTTPS_PORT: u16 = 443;

/// RFC 3986 §2.3 unreserved characters.
pub fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters a path keeps as they are: pchar and `/` (RFC 3986 §3.3).
fn path_char(b: u8) -> bool {
    PATH_KEEP[usize::from(b)]
}

/// Characters a query keeps as they are: pchar, `/` and `?` (RFC 3986 §3.4).
fn query_char(b: u8) -> bool {
    QUERY_KEEP[usize::from(b)]
}

/// A byte class as a table, built at compile time: one load per byte on the hot path. Unreserved
/// characters (RFC 3986 §2.3), sub-delims (§2.2), `:`, `@` and `/` (§3.3), and `?` for a query
/// (§3.4).
const fn table(query: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
            )
            || (query && c == b'?');
        b += 1;
    }
    t
}

const PATH_KEEP: [bool; 256] = table(false);
/// Characters of a reg-name other than `.`: unreserved and sub-delims (RFC 3986 §3.2.2).
const HOST_KEEP: [bool; 256] = {
    let mut t = table(false);
    t[b':' as usize] = false;
    t[b'@' as usize] = false;
    t[b'/' as usize] = false;
    t[b'.' as usize] = false;
    t
};
const QUERY_KEEP: [bool; 256] = table(true);

/// A control character or space, never allowed raw.
fn control(b: u8) -> bool {
    b <= 0x20 || b == 0x7f
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_encoded(out: &mut String, b: u8) {
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

/// Append `raw` (a host, or `host:port`, as in `Host`) to `out` in canonical form: lower case,
/// no trailing dot, no `default_port`, IPv6 in RFC 5952 form. Nothing is appended on error.
pub fn push_host(raw: &[u8], default_port: u16, out: &mut String) -> Result<(), UrlError> {
    let bad = || UrlError::Host(Shown::of(raw));
    if raw.is_empty() {
        return Err(UrlError::NoHost);
    }
    let (v6, name, port) = if raw[0] == b'[' {
        let end = raw.iter().position(|&b| b == b']').ok_or_else(bad)?;
        let inside = std::str::from_utf8(&raw[1..end]).map_err(|_| bad())?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| bad())?;
        let port = match &raw[end + 1..] {
            [] => None,
            [b':', p @ ..] => Some(p),
            _ => return Err(bad()),
        };
        (Some(ip), &raw[..0], port)
    } else {
        let (name, port) = match raw.iter().position(|&b| b == b':') {
            Some(i) => (&raw[..i], Some(&raw[i + 1..])),
            None => (raw, None),
        };
        let name = name.strip_suffix(b".").unwrap_or(name);
        // RFC 3986 reg-name characters, in dot-separated labels none of which is empty (as DNS
        // names are: `.a`, `a..b` and `a..` name nothing). One pass.
        let mut after_dot = true;
        for &b in name {
            if b == b'.' {
                if after_dot {
                    return Err(bad());
                }
                after_dot = true;
            } else if HOST_KEEP[usize::from(b)] {
                after_dot = false;
            } else {
                return Err(bad());
            }
        }
        if after_dot {
            return Err(bad());
        }
        (None, name, port)
    };
    // The port's digits without leading zeros, when it is not the default.
    let port: Option<&[u8]> = match port {
        None | Some([]) => None,
        Some(p) if p.len() <= 5 && p.iter().all(u8::is_ascii_digit) => {
            let n = p.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            match u16::try_from(n) {
                Ok(0) | Err(_) => return Err(bad()),
                Ok(n) if n == default_port => None,
                Ok(_) => Some(&p[p.iter().take_while(|d| **d == b'0').count()..]),
            }
        }
        Some(_) => return Err(bad()),
    };
    let start = out.len();
    match v6 {
        Some(ip) => {
            out.push('[');
            out.push_str(&ip.to_string());
            out.push(']');
        }
        None => {
            // Checked above: reg-name characters only, all ASCII.
            out.push_str(std::str::from_utf8(name).map_err(|_| bad())?);
            if name.iter().any(u8::is_ascii_uppercase) {
                out[start..].make_ascii_lowercase();
            }
        }
    }
    if let Some(p) = port {
        out.push(':');
        out.push_str(std::str::from_utf8(p).map_err(|_| bad())?);
    }
    Ok(())
}

/// [`push_host`] into a new string.
pub fn host(raw: &[u8], default_port: u16) -> Result<String, UrlError> {
    let mut out = String::with_capacity(raw.len());
    push_host(raw, default_port, &mut out)?;
    Ok(out)
}

/// The name of a canonical host (as [`host`] makes it), without its port: `a.test:8080` →
/// `a.test`, `[::1]:8080` → `[::1]`.
pub fn without_port(host: &str) -> &str {
    match host.find(']') {
        Some(end) if host.starts_with('[') => &host[..=end],
        _ => host.split(':').next().unwrap_or(host),
    }
}

/// Append one component to `out` with RFC 3986 §6.2.2.1-2 applied: `%xx` of an unreserved
/// character decoded, every other `%xx` in upper case, characters `keep` does not accept
/// percent-encoded. Refuses controls and spaces (raw or encoded), a bad `%` and a `#`.
fn push_component(
    raw: &[u8],
    keep: fn(u8) -> bool,
    whole: &[u8],
    out: &mut String,
) -> Result<(), UrlError> {
    // Text once, so runs are copied as str slices (a run of kept characters is ASCII and starts
    // at a character boundary); bytes that are not UTF-8 go the slow way, per run.
    let text = std::str::from_utf8(raw).ok();
    let mut i = 0;
    while i < raw.len() {
        // The usual case: a run of characters kept as they are, copied at once.
        let run = raw[i..].iter().take_while(|&&b| keep(b)).count();
        if run > 0 {
            let piece = match text.and_then(|t| t.get(i..i + run)) {
                Some(p) => p,
                None => std::str::from_utf8(&raw[i..i + run])
                    .map_err(|_| UrlError::Control(Shown::of(whole)))?,
            };
            out.push_str(piece);
            i += run;
            continue;
        }
        let b = raw[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(UrlError::Percent(Shown::of(whole)));
            };
            let v = (h << 4) | l;
            if v < 0x20 || v == 0x7f {
                return Err(UrlError::Control(Shown::of(whole)));
            }
            if unreserved(v) {
                out.push(v as char);
            } else {
                push_encoded(out, v);
            }
            i += 3;
            continue;
        }
        if control(b) {
            return Err(UrlError::Control(Shown::of(whole)));
        }
        if b == b'#' {
            return Err(UrlError::Fragment(Shown::of(whole)));
        }
        push_encoded(out, b);
        i += 1;
    }
    Ok(())
}

/// Whether a normalised path (starting with `/`) has a `.` or `..` segment, or (when merging)
/// a `//`.
fn needs_segments_work(path: &str, merge_slashes: bool) -> bool {
    (merge_slashes && path.contains("//")) || path.split('/').any(|s| s == "." || s == "..")
}

/// RFC 3986 §5.2.4 remove_dot_segments on an absolute path, after merging empty segments when
/// asked. A `..` above the root stays at the root.
fn resolve_segments(path: &str, merge_slashes: bool) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut ends_in_dir = false;
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, s) in segments.into_iter().enumerate() {
        match s {
            "." => ends_in_dir = true,
            ".." => {
                kept.pop();
                ends_in_dir = true;
            }
            "" if merge_slashes && i != last => {}
            "" if merge_slashes => ends_in_dir = true,
            s => {
                kept.push(s);
                ends_in_dir = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if ends_in_dir || kept.is_empty() {
        out.push('/');
    }
    out
}

/// Append an origin-form `path[?query]` (it must start with `/`) to `out` in canonical form.
/// Nothing is appended on error.
pub fn push_path(raw: &[u8], opts: PathOptions, out: &mut String) -> Result<(), UrlError> {
    if raw.first() != Some(&b'/') {
        return Err(UrlError::Target(Shown::of(raw)));
    }
    let start = out.len();
    let (path, query) = match raw.iter().position(|&b| b == b'?') {
        Some(i) => (&raw[..i], Some(&raw[i + 1..])),
        None => (raw, None),
    };
    let done = push_component(path, path_char, raw, out).and_then(|()| {
        if needs_segments_work(&out[start..], opts.merge_slashes) {
            let resolved = resolve_segments(&out[start..], opts.merge_slashes);
            out.truncate(start);
            out.push_str(&resolved);
        }
        match query {
            Some(q) => push_query(q, raw, opts, out),
            None => Ok(()),
        }
    });
    if done.is_err() {
        out.truncate(start);
    }
    done
}

/// Append `?query` in canonical form, without the parameters `opts` drops (and without the `?`
/// when none is left). The query keeps its order and its shape otherwise: to an origin, `a=1&b=2`
/// and `b=2&a=1` may differ. A dropped parameter's value is never read: a CMCD value is a few
/// hundred bytes of percent-encoding on every segment request.
fn push_query(q: &[u8], whole: &[u8], opts: PathOptions, out: &mut String) -> Result<(), UrlError> {
    let mark = out.len();
    out.push('?');
    let mut kept = 0usize;
    let mut from = 0;
    while from <= q.len() {
        // memchr: a dropped value is skipped at memory speed, never looked at byte by byte.
        let end = memchr::memchr(b'&', &q[from..]).map_or(q.len(), |i| from + i);
        let pair = &q[from..end];
        from = end + 1;
        let pair_start = out.len();
        if kept > 0 {
            out.push('&');
        }
        let name_start = out.len();
        let (name, rest) = match memchr::memchr(b'=', pair) {
            Some(i) => pair.split_at(i),
            None => (pair, &[][..]),
        };
        push_component(name, query_char, whole, out)?;
        let n = &out[name_start..];
        if ALWAYS_DROPPED.contains(&n) || opts.drop_params.iter().any(|d| d == n) {
            out.truncate(pair_start);
            continue;
        }
        push_component(rest, query_char, whole, out)?;
        kept += 1;
    }
    if kept == 0 && out.len() == mark + 1 && !q.is_empty() {
        // Every parameter was dropped: no query at all.
        out.truncate(mark);
    }
    Ok(())
}

/// One query component (a parameter name, say) in canonical form, exactly as [`push_path`]
/// writes it inside a query, so a configured name matches what a canonical URL carries.
pub fn query_component(raw: &[u8]) -> Result<String, UrlError> {
    let mut out = String::with_capacity(raw.len());
    push_component(raw, query_char, raw, &mut out)?;
    Ok(out)
}

/// [`push_path`] into a new string.
pub fn path(raw: &[u8], opts: PathOptions) -> Result<String, UrlError> {
    let mut out = String::with_capacity(raw.len());
    push_path(raw, opts, &mut out)?;
    Ok(out)
}

/// The forms of a request target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `/path?query`.
    Origin(&'a [u8]),
    /// `http://authority/path?query` (or `https://`); `path` starts with `/` or is empty.
    Absolute {
        /// The authority, `host[:port]`.
        authority: &'a [u8],
        /// The path and query after it (empty for `http://host`).
        path: &'a [u8],
        /// `https://`.
        https: bool,
    },
    /// `*` (`OPTIONS *`).
    Asterisk,
}

/// Tell which form a request target has. Anything else (`evil.html`, `host/p`, ` /x`) is
/// refused; so is an authority with user information.
pub fn target(raw: &[u8]) -> Result<Target<'_>, UrlError> {
    let bad = || UrlError::Target(Shown::of(raw));
    match raw.first() {
        Some(b'/') => return Ok(Target::Origin(raw)),
        Some(b'*') if raw.len() == 1 => return Ok(Target::Asterisk),
        _ => {}
    }
    let (rest, https) = if raw.len() > 7 && raw[..7].eq_ignore_ascii_case(b"http://") {
        (&raw[7..], false)
    } else if raw.len() > 8 && raw[..8].eq_ignore_ascii_case(b"https://") {
        (&raw[8..], true)
    } else {
        return Err(bad());
    };
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() {
        return Err(UrlError::NoHost);
    }
    if authority.contains(&b'@') {
        return Err(bad());
    }
    Ok(Target::Absolute {
        authority,
        path: &rest[end..],
        https,
    })
}

/// A canonical content URL, `host[:port]/path?query`, with the host's length so both halves can
/// be read back (one allocation for all three).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Canonical {
    url: String,
    host_len: usize,
}

impl Canonical {
    /// Build from a raw authority and a raw path (empty or starting with `?` means `/`), with the
    /// options of the site `opts` picks by the normalised host.
    pub fn new<'a>(
        authority: &[u8],
        path_and_query: &[u8],
        default_port: u16,
        opts: impl FnOnce(&str) -> PathOptions<'a>,
    ) -> Result<Canonical, UrlError> {
        let mut url = String::with_capacity(authority.len() + path_and_query.len() + 1);
        push_host(authority, default_port, &mut url)?;
        let host_len = url.len();
        let o = opts(&url);
        match path_and_query.first() {
            Some(b'/') => push_path(path_and_query, o, &mut url)?,
            None => url.push('/'),
            Some(b'?') => {
                url.push('/');
                push_query(&path_and_query[1..], path_and_query, o, &mut url)?;
            }
            Some(_) => return Err(UrlError::Target(Shown::of(path_and_query))),
        }
        Ok(Canonical { url, host_len })
    }

    /// `host[:port]/path?query`: the cache key and purge form.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The host, `host[:port]` (for `Host` toward the origin).
    pub fn host(&self) -> &str {
        &self.url[..self.host_len]
    }

    /// The path and query, starting with `/` (the origin-form target toward the origin).
    pub fn path(&self) -> &str {
        &self.url[self.host_len..]
    }

    /// The URL string.
    pub fn into_string(self) -> String {
        self.url
    }
}

impl fmt::Display for Canonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// Split what an operator or event names (`http://host/p`, `https://host/p`, `host/p`, `host`)
/// into (authority, path, default port).
fn split_named(s: &str) -> (&[u8], &[u8], u16) {
    let b = s.as_bytes();
    let (rest, port) = if b.len() >= 7 && b[..7].eq_ignore_ascii_case(b"http://") {
        (&b[7..], HTTP_PORT)
    } else if b.len() >= 8 && b[..8].eq_ignore_ascii_case(b"https://") {
        (&b[8..], HTTPS_PORT)
    } else {
        (b, HTTP_PORT)
    };
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?'))
        .unwrap_or(rest.len());
    (&rest[..end], &rest[end..], port)
}

/// A URL as a purge names it (`http://Host:80/a/../b`, `host/b`, or a bare `host` for its root),
/// in the form keys have (`host/b`), with the site's options.
pub fn content_url<'a>(
    s: &str,
    opts: impl FnOnce(&str) -> PathOptions<'a>,
) -> Result<String, UrlError> {
    if s.is_empty() || s.bytes().any(control) {
        return Err(UrlError::Url(Shown::of(s.as_bytes())));
    }
    let (authority, path, port) = split_named(s);
    Ok(Canonical::new(authority, path, port, opts)?.into_string())
}

/// A URL prefix as a purge names it (`host/videos/`, `http://host/videos/`, or a bare `host` for
/// all of it), in the form keys have, with the site's options. Its path is normalised like any
/// path (a prefix `host/a/../b/` is `host/b/`); a bare host gets its root, `host/`, so a prefix
/// never reaches past its own host.
pub fn content_prefix<'a>(
    s: &str,
    opts: impl FnOnce(&str) -> PathOptions<'a>,
) -> Result<String, UrlError> {
    content_url(s, opts)
}

#[cfg(test)]
mod tests;
