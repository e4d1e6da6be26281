//! HLS playlists as an edge needs them (RFC 8216, and draft-pantos-hls-rfc8216bis for LL-HLS).
//!
//! - [`media`]: media playlists with the LL-HLS tags (`EXT-X-PART`, `EXT-X-PART-INF`,
//!   `EXT-X-PRELOAD-HINT`, `EXT-X-SERVER-CONTROL`, `EXT-X-SKIP`, `EXT-X-RENDITION-REPORT`), read
//!   and written by us: `m3u8-rs` 6.0.1, the maintained crate, has none of these tags (its pull
//!   request for them, #75, is open), and LL-HLS blocking reload is decided by exactly them.
//! - [`multivariant`]: multivariant playlists through `m3u8-rs`, which reads and writes them
//!   whole (variants, renditions, session data), for the quality guard's rewrite.
//! - [`directives`]: the `_HLS_msn`, `_HLS_part` and `_HLS_skip` delivery directives of a
//!   playlist request, checked against the playlist as the spec asks (400 when out of range).
//!
//! Attribute lists (RFC 8216 §4.2) are read strictly: `NAME=value` with upper-case names, quoted
//! strings without line breaks, and a bounded number of attributes, so a hostile playlist costs
//! what its size costs and no more.

pub mod directives;
pub mod media;
pub mod multivariant;

use thiserror::Error;

/// Largest playlist read (an LL-HLS playlist with a few minutes of parts is about 100 KiB).
pub const MAX_PLAYLIST: usize = 4 * 1024 * 1024;
/// Most attributes on one tag.
const MAX_ATTRIBUTES: usize = 64;

/// Why a playlist could not be read.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PlaylistError {
    #[error("the playlist is {len} bytes; an edge reads at most {max}")]
    TooLarge { len: usize, max: usize },
    #[error("the playlist does not start with #EXTM3U")]
    NotM3u,
    #[error("the playlist is not UTF-8")]
    Encoding,
    #[error("playlist line {line}: {what}")]
    Line { line: usize, what: String },
    #[error("the playlist lacks {0}, which it must carry")]
    Missing(&'static str),
    #[error("the multivariant playlist does not read: {0}")]
    Multivariant(String),
}

/// An attribute list, in order.
pub(crate) type Attributes<'a> = Vec<(&'a str, Value<'a>)>;

/// An attribute value: quoted (the quotes removed) or not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Quoted(&'a str),
    Plain(&'a str),
}

impl<'a> Value<'a> {
    pub(crate) fn as_str(&self) -> &'a str {
        match self {
            Value::Quoted(s) | Value::Plain(s) => s,
        }
    }
}

/// Read an attribute list (RFC 8216 §4.2).
pub(crate) fn attributes(s: &str) -> Result<Attributes<'_>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        if out.len() == MAX_ATTRIBUTES {
            return Err(format!("more than {MAX_ATTRIBUTES} attributes"));
        }
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("attribute {:?} has no value", cut(rest)))?;
        let name = &rest[..eq];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "attribute name {:?} is not A-Z, 0-9 and -",
                cut(name)
            ));
        }
        rest = &rest[eq + 1..];
        let value = if let Some(q) = rest.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or_else(|| format!("attribute {name} has an unterminated quoted string"))?;
            let v = &q[..end];
            rest = &q[end + 1..];
            if v.chars().any(char::is_control) {
                return Err(format!("attribute {name} has a control character"));
            }
            Value::Quoted(v)
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let v = &rest[..end];
            rest = &rest[end..];
            if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c.is_control() || c == '"')
            {
                return Err(format!(
                    "attribute {name} has an empty value, or spaces, controls or quotes outside quotes"
                ));
            }
            Value::Plain(v)
        };
        out.push((name, value));
        match rest.strip_prefix(',') {
            Some(r) if !r.is_empty() => rest = r,
            Some(_) => return Err("a trailing comma in an attribute list".into()),
            None if rest.is_empty() => {}
            None => return Err(format!("junk {:?} after attribute {name}", cut(rest))),
        }
    }
    Ok(out)
}

/// The attribute `name`, if present.
pub(crate) fn attr<'a>(attrs: &Attributes<'a>, name: &str) -> Option<Value<'a>> {
    attrs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// A short, printable piece of a hostile value for an error message.
pub(crate) fn cut(s: &str) -> String {
    s.chars().take(60).flat_map(char::escape_default).collect()
}

/// Check size and encoding, and split into lines (CRLF or LF), first line `#EXTM3U`.
pub(crate) fn lines(body: &[u8]) -> Result<impl Iterator<Item = (usize, &str)>, PlaylistError> {
    if body.len() > MAX_PLAYLIST {
        return Err(PlaylistError::TooLarge {
            len: body.len(),
            max: MAX_PLAYLIST,
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| PlaylistError::Encoding)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut it = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).trim_end())
        .enumerate()
        .map(|(i, l)| (i + 1, l));
    match it.next() {
        Some((_, "#EXTM3U")) => Ok(it),
        _ => Err(PlaylistError::NotM3u),
    }
}

/// What kind of HLS object a playlist body is, for the edge's TTL classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistKind {
    /// A multivariant (master) playlist.
    Multivariant,
    /// A media playlist that will not change (`EXT-X-ENDLIST` or `PLAYLIST-TYPE:VOD`).
    Vod,
    /// A live media playlist.
    Live,
    /// A live media playlist with parts (LL-HLS): its freshness comes from blocking reload.
    LowLatency,
}

/// Tell a playlist's kind from its body without reading it whole: the tags that decide it are
/// near the top, or (`EXT-X-ENDLIST`) at the end. `None` when it is not a playlist.
pub fn kind(body: &[u8]) -> Option<PlaylistKind> {
    let text = std::str::from_utf8(body.get(..body.len().min(MAX_PLAYLIST))?).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if !text.starts_with("#EXTM3U") {
        return None;
    }
    let mut ll = false;
    for line in text.lines() {
        let line = line.trim_end();
        if line.starts_with("#EXT-X-STREAM-INF") || line.starts_with("#EXT-X-I-FRAME-STREAM-INF") {
            return Some(PlaylistKind::Multivariant);
        }
        if line == "#EXT-X-ENDLIST" || line == "#EXT-X-PLAYLIST-TYPE:VOD" {
            return Some(PlaylistKind::Vod);
        }
        ll |= line.starts_with("#EXT-X-PART-INF");
    }
    Some(if ll {
        PlaylistKind::LowLatency
    } else {
        PlaylistKind::Live
    })
}

#[cfg(test)]
mod tests;
