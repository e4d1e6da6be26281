//! # eddy-streaming: what an edge knows of streaming, with no I/O
//!
//! Players tell the delivery tier what they are doing with CMCD (CTA-5004, Common Media Client
//! Data) and a CDN answers with CMSD (CTA-5006, Common Media Server Data). This crate reads the
//! one and writes the other; the edge decides what to do with them.
//!
//! - [`cmcd`]: CMCD v1 and v2 from the `CMCD=` query parameter, from the four `CMCD-*` headers and
//!   from v2 event reports (`POST`, `application/cmcd`, a report per line), into one typed
//!   [`cmcd::Cmcd`]. Both versions are RFC 8941 dictionaries, parsed with `sfv`. Every input is
//!   bounded (bytes, strings, lines) and every refusal names the key and what it must be.
//!   [`cmcd::Cmcd::next_paths`] resolves `nor` against the request path through `eddy-url`, so a
//!   prefetch asks for the canonical name of the next object.
//! - [`cmsd`]: `CMSD-Static` and `CMSD-Dynamic` field values, the latter appended to what the
//!   hops before us wrote.
//! - [`hls`]: media playlists with the LL-HLS tags (ours: `m3u8-rs` has none of them), the
//!   multivariant rewrite that caps hls.js sessions (`m3u8-rs`), delivery directives, and the
//!   kind of a playlist for TTL classes.
//! - [`class`]: what a streaming object is (multivariant, live, LL-HLS or VOD playlist, MPD,
//!   init, segment, part), from its response head and then its body, for the edge's TTL classes.
//! - [`dash`]: MPDs through `dash-mpd-core`: static or dynamic, `minimumUpdatePeriod`, the
//!   video bitrates, and the capped copy.
//!
//! Must not touch: sockets, clocks, caches, tokio or pingora. Everything here is a pure function
//! of its input, so it is fuzzed (`fuzz/fuzz_targets/cmcd.rs`) and property-tested.

pub mod class;
pub mod cmcd;
pub mod cmsd;
pub mod dash;
pub mod hls;

/// A non-negative decimal integer written in ASCII digits only (no sign, no spaces), as
/// playlists, delivery directives and byte ranges spell them.
pub(crate) fn decimal_u64(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}
