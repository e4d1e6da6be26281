//! LL-HLS delivery directives on a playlist request (draft-pantos-hls-rfc8216bis §6.2.5):
//! `_HLS_msn=<M>` and `_HLS_part=<P>` ask the server to hold the request until the playlist holds
//! segment M (part P of it); `_HLS_skip=YES|v2` asks for a delta update.

use thiserror::Error;

use super::media::MediaPlaylist;

/// How far ahead of the newest part a request may ask (the spec's Advance Part Limit).
pub const ADVANCE_PART_LIMIT: u64 = 3;
/// How far ahead of the last segment `_HLS_msn` may be (the spec: "plus two").
pub const ADVANCE_MSN_LIMIT: u64 = 2;

/// `_HLS_skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// `YES`: skip old segments.
    Yes,
    /// `v2`: skip old segments and old date ranges.
    V2,
}

/// A playlist request's directives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    pub msn: Option<u64>,
    pub part: Option<u64>,
    pub skip: Option<Skip>,
}

/// A directive the server must refuse with 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DirectiveError {
    #[error("{0} must be a non-negative integer")]
    NotANumber(&'static str),
    #[error("_HLS_part without _HLS_msn")]
    PartWithoutMsn,
    #[error("_HLS_skip must be YES or v2")]
    Skip,
    #[error("{0} appears twice")]
    Twice(&'static str),
    #[error("_HLS_msn={asked} is more than {ADVANCE_MSN_LIMIT} past the last segment ({last})")]
    MsnTooFar { asked: u64, last: u64 },
    #[error(
        "_HLS_part={part} of segment {msn} is more than {ADVANCE_PART_LIMIT} parts past the newest part"
    )]
    PartTooFar { msn: u64, part: u64 },
}

impl Directives {
    /// Read the directives from a raw query string (other parameters are passed over).
    pub fn from_query(query: &str) -> Result<Directives, DirectiveError> {
        let mut d = Directives::default();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let int = |key: &'static str| {
                crate::decimal_u64(value).ok_or(DirectiveError::NotANumber(key))
            };
            match name {
                "_HLS_msn" if d.msn.is_some() => return Err(DirectiveError::Twice("_HLS_msn")),
                "_HLS_msn" => d.msn = Some(int("_HLS_msn")?),
                "_HLS_part" if d.part.is_some() => {
                    return Err(DirectiveError::Twice("_HLS_part"));
                }
                "_HLS_part" => d.part = Some(int("_HLS_part")?),
                "_HLS_skip" => {
                    let s = match value {
                        "YES" => Skip::Yes,
                        "v2" => Skip::V2,
                        _ => return Err(DirectiveError::Skip),
                    };
                    if d.skip.replace(s).is_some() {
                        return Err(DirectiveError::Twice("_HLS_skip"));
                    }
                }
                _ => {}
            }
        }
        if d.part.is_some() && d.msn.is_none() {
            return Err(DirectiveError::PartWithoutMsn);
        }
        Ok(d)
    }

    /// Whether the request asks to be held.
    pub fn blocking(&self) -> bool {
        self.msn.is_some()
    }

    /// Check a blocking request against the playlist the edge has now: too far ahead is a 400
    /// (the spec's "SHOULD immediately return Bad Request"), so a client cannot park a request
    /// for a segment that will not exist for minutes.
    pub fn check(&self, playlist: &MediaPlaylist) -> Result<(), DirectiveError> {
        let Some(msn) = self.msn else { return Ok(()) };
        let next = playlist.next_msn();
        let last = next.saturating_sub(1);
        if msn > last + ADVANCE_MSN_LIMIT {
            return Err(DirectiveError::MsnTooFar { asked: msn, last });
        }
        let Some(part) = self.part else { return Ok(()) };
        if playlist.has(msn, Some(part)) {
            return Ok(());
        }
        // How many parts ahead of the newest the request is, at the least: segments can end
        // with fewer parts than TARGETDURATION / PART-TARGET, so a segment between the newest
        // part and the one asked for counts one part (a lower bound never refuses a valid ask).
        let Some((newest_msn, newest_part)) = playlist.last_part() else {
            return Ok(());
        };
        let ahead = if msn == newest_msn {
            part.saturating_sub(newest_part)
        } else if msn > newest_msn {
            (msn - newest_msn - 1)
                .saturating_add(part)
                .saturating_add(1)
        } else {
            0
        };
        if ahead > ADVANCE_PART_LIMIT {
            return Err(DirectiveError::PartTooFar { msn, part });
        }
        Ok(())
    }

    /// The query a held request's playlist is keyed by: only the directives, in one order, so
    /// every spelling of one blocking request shares one cache entry and one origin fetch.
    pub fn key_query(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(m) = self.msn {
            parts.push(format!("_HLS_msn={m}"));
        }
        if let Some(p) = self.part {
            parts.push(format!("_HLS_part={p}"));
        }
        match self.skip {
            Some(Skip::Yes) => parts.push("_HLS_skip=YES".into()),
            Some(Skip::V2) => parts.push("_HLS_skip=v2".into()),
            None => {}
        }
        (!parts.is_empty()).then(|| parts.join("&"))
    }
}
