//! Signed URL tokens in the Auth Token 2.0 layout that Akamai and other CDNs accept.
//!
//! A token is `~`-separated `name=value` fields, in this order, the last one the signature:
//!
//! ```text
//! ip=203.0.113.7~st=1767225600~exp=1767229200~acl=/video/show-1/*~hmac=5f0c…(64 hex digits)
//! ```
//!
//! - `ip` (optional): the one client address the token is for;
//! - `st` (optional): not valid before this Unix time;
//! - `exp`: not valid from this Unix time on;
//! - `acl`: the paths it grants, `!`-separated patterns where `*` stands for any run of
//!   characters (`/video/show-1/*` covers a whole stream: playlists, segments, renditions). A
//!   token without `acl` is a URL token: it grants exactly the path it was signed for, which is
//!   part of what the HMAC covers (`url=<path>`) but not written in the token;
//! - `id`, `data` (optional): a session id and a payload, signed, not checked here;
//! - `hmac`: HMAC-SHA256, in lower-case hex, over everything before `~hmac=` (plus `~url=<path>`
//!   for a URL token), keyed with the bytes of a hex key.
//!
//! Viewers carry it in a query parameter or a cookie (default name [`DEFAULT_NAME`]). The edge
//! checks it against the request's canonical path (so `/video/show-1/../secret` is `/secret`)
//! with every key in rotation ([`verify`]); what it refuses, it refuses for one reason
//! ([`Refusal`]): the signature is checked before anything the token says is believed.

use std::net::IpAddr;

use crate::Key;

/// The query parameter and cookie name a token travels in unless configured otherwise.
pub const DEFAULT_NAME: &str = "__token__";

/// Longest token read; a longer one is malformed.
pub const MAX_LEN: usize = 4096;

/// Why a request's token does not grant it. Each has a label for metrics and the response
/// header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token in the query or the cookie.
    #[error("no token: this path needs a signed URL (a token in the query or a cookie)")]
    Missing,
    /// The token does not read.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// No key in rotation signed it (wrong key, tampered fields, or a URL token for another
    /// path).
    #[error(
        "the token's signature does not match: it was altered, signed with a key this edge does not hold, or signed for another path"
    )]
    BadSignature,
    /// `exp` has passed.
    #[error("the token expired at {0} (Unix time)")]
    Expired(u64),
    /// `st` is still ahead.
    #[error("the token is not valid before {0} (Unix time)")]
    NotYetValid(u64),
    /// The ACL does not cover the path.
    #[error("the token's acl does not cover this path")]
    WrongPath,
    /// The token is bound to another client address.
    #[error("the token is bound to another client address")]
    WrongAddress,
}

impl Refusal {
    /// A short label: `missing`, `malformed`, `bad_signature`, `expired`, `not_yet_valid`,
    /// `wrong_path`, `wrong_address`.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed(_) => "malformed",
            Refusal::BadSignature => "bad_signature",
            Refusal::Expired(_) => "expired",
            Refusal::NotYetValid(_) => "not_yet_valid",
            Refusal::WrongPath => "wrong_path",
            Refusal::WrongAddress => "wrong_address",
        }
    }
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every path one of these patterns matches (`*`: any run of characters).
    Acl(Vec<String>),
    /// Exactly this path.
    Url(String),
}

/// What to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Not valid before (Unix seconds).
    pub start: Option<u64>,
    /// Not valid from (Unix seconds).
    pub expires: u64,
    /// The paths granted.
    pub scope: Scope,
    /// The one client address it is for.
    pub ip: Option<IpAddr>,
}

/// Why claims cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A path or pattern with a character the layout uses (`~`, `!` in a URL), or not a path.
    #[error(
        "{0:?} cannot be signed: give a path starting with / and without ~ (or ! in a URL token)"
    )]
    BadPath(String),
    /// No pattern.
    #[error("an acl needs at least one pattern")]
    EmptyAcl,
    /// `start` is not before `expires`.
    #[error("the token would never be valid: st {0} is not before exp {1}")]
    NeverValid(u64, u64),
}

fn signable(p: &str, in_acl: bool) -> bool {
    p.starts_with('/')
        && p.len() <= MAX_LEN / 2
        && !p.contains('~')
        && !(in_acl && p.contains('!'))
        && p.bytes().all(|b| b.is_ascii_graphic())
}

/// The token for `claims`, signed with `key`.
pub fn sign(claims: &Claims, key: &Key) -> Result<String, SignError> {
    let mut fields = Vec::with_capacity(5);
    if let Some(ip) = claims.ip {
        fields.push(format!("ip={}", ip.to_canonical()));
    }
    if let Some(st) = claims.start {
        if st >= claims.expires {
            return Err(SignError::NeverValid(st, claims.expires));
        }
        fields.push(format!("st={st}"));
    }
    fields.push(format!("exp={}", claims.expires));
    let mut signed = match &claims.scope {
        Scope::Acl(patterns) => {
            if patterns.is_empty() {
                return Err(SignError::EmptyAcl);
            }
            if let Some(bad) = patterns.iter().find(|p| !signable(p, true)) {
                return Err(SignError::BadPath(bad.clone()));
            }
            fields.push(format!("acl={}", patterns.join("!")));
            fields.join("~")
        }
        Scope::Url(path) => {
            if !signable(path, false) {
                return Err(SignError::BadPath(path.clone()));
            }
            fields.join("~")
        }
    };
    let mac = match &claims.scope {
        Scope::Url(path) => {
            ring::hmac::sign(&key.hmac(), format!("{signed}~url={path}").as_bytes())
        }
        Scope::Acl(_) => ring::hmac::sign(&key.hmac(), signed.as_bytes()),
    };
    signed.push_str("~hmac=");
    signed.push_str(&hex::encode(mac.as_ref()));
    Ok(signed)
}

/// A token's fields, as read (nothing believed before the signature is checked).
#[derive(Debug, Default, PartialEq, Eq)]
struct Fields<'a> {
    ip: Option<IpAddr>,
    start: Option<u64>,
    expires: Option<u64>,
    acl: Option<&'a str>,
    /// What the signature covers (everything before `~hmac=`).
    signed: &'a str,
    mac: Vec<u8>,
}

fn malformed(why: impl Into<String>) -> Refusal {
    Refusal::Malformed(why.into())
}

fn seconds(name: &str, v: &str) -> Result<u64, Refusal> {
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(format!("{name} must be a Unix time in seconds")));
    }
    v.parse()
        .map_err(|_| malformed(format!("{name} must be a Unix time in seconds")))
}

fn read(token: &str) -> Result<Fields<'_>, Refusal> {
    if token.len() > MAX_LEN {
        return Err(malformed(format!("longer than {MAX_LEN} bytes")));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(malformed("only printable ASCII without spaces"));
    }
    let Some(at) = token.rfind("~hmac=") else {
        return Err(malformed(
            "no hmac field (it comes last: …~hmac=<64 hex digits>)",
        ));
    };
    let (signed, hmac) = (&token[..at], &token[at + "~hmac=".len()..]);
    if hmac.len() != 64 || !hmac.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("hmac must be 64 hex digits (HMAC-SHA256)"));
    }
    let mut f = Fields {
        signed,
        mac: hex::decode(hmac).map_err(|_| malformed("hmac is not hex"))?,
        ..Fields::default()
    };
    let (mut id, mut data) = (false, false);
    for field in signed.split('~') {
        let Some((name, value)) = field.split_once('=') else {
            return Err(malformed(format!(
                "field {:?} is not name=value",
                clip(field)
            )));
        };
        let dup = || malformed(format!("{name} appears twice"));
        match name {
            "ip" if f.ip.is_none() => {
                f.ip = Some(
                    value
                        .parse::<IpAddr>()
                        .map_err(|_| malformed("ip is not an address"))?,
                )
            }
            "st" if f.start.is_none() => f.start = Some(seconds("st", value)?),
            "exp" if f.expires.is_none() => f.expires = Some(seconds("exp", value)?),
            "acl" if f.acl.is_none() => {
                if value.is_empty() {
                    return Err(malformed("acl is empty"));
                }
                f.acl = Some(value)
            }
            "id" if !id => id = true,
            "data" if !data => data = true,
            "ip" | "st" | "exp" | "acl" | "id" | "data" => return Err(dup()),
            "hmac" => return Err(malformed("hmac must be the last field, once")),
            _ => return Err(malformed(format!("unknown field {:?}", clip(name)))),
        }
    }
    if f.expires.is_none() {
        return Err(malformed("no exp field"));
    }
    Ok(f)
}

fn clip(s: &str) -> String {
    s.chars().take(24).collect()
}

/// Whether `pattern` (`*`: any run of characters, including `/`) matches all of `path`.
pub fn matches(pattern: &str, path: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), path.as_bytes());
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was, and the path position it is trying to cover up to.
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == s[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            // Let the last `*` cover one more character and try again after it.
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&b| b == b'*')
}

/// Check `token` for a request of the canonical `path` from `client` at Unix time `now`,
/// against every key in `keys` (rotation: any of them may have signed it). The signature is
/// checked first; then the time, the path and the address.
pub fn verify(
    token: &str,
    path: &str,
    client: Option<IpAddr>,
    now: u64,
    keys: &[Key],
) -> Result<(), Refusal> {
    let f = read(token)?;
    let url_signed;
    let covered = match f.acl {
        Some(_) => f.signed.as_bytes(),
        None => {
            url_signed = format!("{}~url={path}", f.signed);
            url_signed.as_bytes()
        }
    };
    if !keys
        .iter()
        .any(|k| ring::hmac::verify(&k.hmac(), covered, &f.mac).is_ok())
    {
        return Err(Refusal::BadSignature);
    }
    let expires = f.expires.unwrap_or(0);
    if now >= expires {
        return Err(Refusal::Expired(expires));
    }
    if let Some(st) = f.start
        && now < st
    {
        return Err(Refusal::NotYetValid(st));
    }
    if let Some(acl) = f.acl
        && !acl.split('!').any(|p| matches(p, path))
    {
        return Err(Refusal::WrongPath);
    }
    if let Some(ip) = f.ip
        && client.map(|c| c.to_canonical()) != Some(ip.to_canonical())
    {
        return Err(Refusal::WrongAddress);
    }
    Ok(())
}

/// The token in a raw query string (`a=1&__token__=…`), percent-decoded once; an error when
/// the name appears twice (which one would count?) or does not decode.
pub fn from_query<'q>(
    query: &'q str,
    name: &str,
) -> Result<Option<std::borrow::Cow<'q, str>>, Refusal> {
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            if found.is_some() {
                return Err(malformed(format!("{name} appears twice in the query")));
            }
            found = Some(
                percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .map_err(|_| malformed("the token does not decode as UTF-8"))?,
            );
        }
    }
    Ok(found)
}

/// The token in a `Cookie` field value (`a=1; __token__=…`), as sent.
pub fn from_cookie<'c>(cookie: &'c str, name: &str) -> Option<&'c str> {
    cookie
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

#[cfg(test)]
mod tests;
