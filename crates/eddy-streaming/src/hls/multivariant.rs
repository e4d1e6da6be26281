//! Multivariant playlists, read and written with `m3u8-rs`.
//!
//! The quality guard caps what hls.js sessions may pick by serving the multivariant playlist
//! without the variants above the cap ([`cap`]); hls.js has no CMSD handling, so this rewrite is
//! its only lever. The cap never removes every variant: the lowest always stays, so a cap can
//! never leave a player with nothing to play, and never adds one.

use m3u8_rs::{MasterPlaylist, Playlist, VariantStream};

use super::PlaylistError;

/// One variant, as the guard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub uri: String,
    /// Bits per second (`BANDWIDTH`).
    pub bandwidth: u64,
    /// An `EXT-X-I-FRAME-STREAM-INF` (trick play) rather than a playable variant.
    pub i_frame: bool,
}

fn read(body: &[u8]) -> Result<MasterPlaylist, PlaylistError> {
    if body.len() > super::MAX_PLAYLIST {
        return Err(PlaylistError::TooLarge {
            len: body.len(),
            max: super::MAX_PLAYLIST,
        });
    }
    match m3u8_rs::parse_playlist_res(body) {
        Ok(Playlist::MasterPlaylist(m)) => Ok(m),
        Ok(Playlist::MediaPlaylist(_)) => {
            Err(PlaylistError::Multivariant("it is a media playlist".into()))
        }
        Err(e) => Err(PlaylistError::Multivariant(super::cut(&format!("{e:?}")))),
    }
}

/// The variants of a multivariant playlist.
pub fn variants(body: &[u8]) -> Result<Vec<Variant>, PlaylistError> {
    Ok(read(body)?
        .variants
        .iter()
        .map(|v: &VariantStream| Variant {
            uri: v.uri.clone(),
            bandwidth: v.bandwidth,
            i_frame: v.is_i_frame,
        })
        .collect())
}

/// The playlist without the playable variants whose `BANDWIDTH` is above `max_bps` (the lowest
/// playable variant always stays; I-frame variants above the cap go too). `None` when nothing
/// would be removed, so the origin's bytes are served as they are.
pub fn cap(body: &[u8], max_bps: u64) -> Result<Option<Vec<u8>>, PlaylistError> {
    let mut m = read(body)?;
    if !m.unknown_tags.is_empty() {
        // m3u8-rs writes tags it does not model last, which would move an EXT-X-DEFINE after
        // the URIs that use it: serve the origin's bytes instead.
        return Err(PlaylistError::Multivariant(
            "it carries tags a rewrite would move (EXT-X-DEFINE and others); serve the origin's"
                .into(),
        ));
    }
    let lowest = m
        .variants
        .iter()
        .filter(|v| !v.is_i_frame)
        .map(|v| v.bandwidth)
        .min();
    if lowest.is_none() {
        // Only trick-play variants: nothing a cap applies to.
        return Ok(None);
    }
    let before = m.variants.len();
    m.variants
        .retain(|v| v.bandwidth <= max_bps || (!v.is_i_frame && Some(v.bandwidth) == lowest));
    if m.variants.len() == before {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(body.len());
    m.write_to(&mut out)
        .map_err(|e| PlaylistError::Multivariant(e.to_string()))?;
    // m3u8-rs reads some broken playlists leniently and then writes what it cannot read back.
    // A player must never get that: the rewrite stands only if it reads as what we meant.
    match variants(&out) {
        Ok(v) if v.len() == m.variants.len() => Ok(Some(out)),
        _ => Err(PlaylistError::Multivariant(
            "the capped playlist does not read back; serve the origin's".into(),
        )),
    }
}
