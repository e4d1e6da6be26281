//! What a streaming object is, for the edge's TTL classes (STREAMING.md, "Manifest TTLs").
//!
//! An edge gives each kind of streaming object its own freshness: a multivariant playlist changes
//! rarely, a live media playlist every segment, an LL-HLS playlist every part (its freshness
//! comes from blocking reload), a VOD playlist, an init segment, a segment or a complete part
//! never. Two steps, because the edge must decide something when the response head arrives and
//! learns the rest only from the body:
//!
//! 1. [`by_head`]: from the request path, whether it carries blocking-reload directives, and the
//!    response's `Content-Type`. Media objects are known here for good; a playlist or an MPD gets
//!    a provisional class (the short one) until its body is read.
//! 2. [`by_body`]: a playlist's or an MPD's body settles its class, and for a live playlist or a
//!    dynamic MPD also a bound on its TTL (half the target duration; `minimumUpdatePeriod`).
//!
//! Names decide where the media type does not: `.m3u8` and `.mpd` are manifests whatever the
//! origin labels them; a media file whose name starts with `init` is an init segment, one whose
//! name starts with `part` an LL-HLS part (the convention of ffmpeg, the demo packager and most
//! packagers; a part named otherwise is a segment, which has the same default TTL).

use std::time::Duration;

use crate::dash::Mpd;
use crate::hls::media::MediaPlaylist;
use crate::hls::{self, PlaylistKind};

/// The class of a streaming object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// An HLS multivariant playlist.
    Multivariant,
    /// A live HLS media playlist without parts.
    LivePlaylist,
    /// A live LL-HLS media playlist asked for without blocking directives.
    LowLatencyPlaylist,
    /// A media playlist asked for with `_HLS_msn` (blocking reload): the answer to that
    /// question, which stays true once it is given.
    BlockingReload,
    /// A media playlist that will not change (`EXT-X-ENDLIST` or `PLAYLIST-TYPE:VOD`).
    VodPlaylist,
    /// A DASH MPD with `type="dynamic"`.
    DynamicMpd,
    /// A DASH MPD with `type="static"` (or none).
    StaticMpd,
    /// An initialisation segment.
    Init,
    /// A media segment.
    Segment,
    /// An LL-HLS part.
    Part,
}

impl Class {
    /// Every class, in a fixed order (for configuration and metrics).
    pub const ALL: [Class; 10] = [
        Class::Multivariant,
        Class::LivePlaylist,
        Class::LowLatencyPlaylist,
        Class::BlockingReload,
        Class::VodPlaylist,
        Class::DynamicMpd,
        Class::StaticMpd,
        Class::Init,
        Class::Segment,
        Class::Part,
    ];

    /// The configuration key and metric label of the class.
    pub fn name(self) -> &'static str {
        match self {
            Class::Multivariant => "multivariant",
            Class::LivePlaylist => "live_playlist",
            Class::LowLatencyPlaylist => "ll_playlist",
            Class::BlockingReload => "blocking_reload",
            Class::VodPlaylist => "vod_playlist",
            Class::DynamicMpd => "dynamic_mpd",
            Class::StaticMpd => "static_mpd",
            Class::Init => "init",
            Class::Segment => "segment",
            Class::Part => "part",
        }
    }

    /// The class named `name` (the inverse of [`Class::name`]).
    pub fn from_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// What the head of a response says of its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Not a streaming object: the origin's headers alone decide.
    Other,
    /// Known for good.
    Known(Class),
    /// An HLS playlist or a DASH MPD whose body settles the class; `provisional` is what it
    /// gets until then.
    Manifest {
        /// The class until the body is read.
        provisional: Class,
    },
}

const HLS_TYPES: [&str; 3] = [
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "audio/mpegurl",
];
const MEDIA_EXTENSIONS: [&str; 12] = [
    "m4s", "mp4", "m4v", "m4a", "ts", "aac", "cmfv", "cmfa", "cmft", "vtt", "webm", "mp4a",
];

/// The media type of a `Content-Type` value, lower-cased, without parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The class the head of a response gives its object: `path` is the request's canonical path
/// (without the query), `blocking` whether the request carried `_HLS_msn`, `content_type` the
/// response's `Content-Type`.
pub fn by_head(path: &str, blocking: bool, content_type: Option<&str>) -> Head {
    let name = path.rsplit('/').next().unwrap_or("");
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let mt = content_type.map(media_type).unwrap_or_default();
    if ext == "m3u8" || HLS_TYPES.contains(&mt.as_str()) {
        return if blocking {
            Head::Known(Class::BlockingReload)
        } else {
            Head::Manifest {
                provisional: Class::LowLatencyPlaylist,
            }
        };
    }
    if ext == "mpd" || mt == "application/dash+xml" {
        return Head::Manifest {
            provisional: Class::DynamicMpd,
        };
    }
    let media = MEDIA_EXTENSIONS.contains(&ext.as_str())
        || mt.starts_with("video/")
        || mt.starts_with("audio/")
        || mt == "application/mp4";
    if !media {
        return Head::Other;
    }
    let lower = name.to_ascii_lowercase();
    Head::Known(if lower.starts_with("init") {
        Class::Init
    } else if lower.starts_with("part") {
        Class::Part
    } else {
        Class::Segment
    })
}

/// What a manifest's body says of it: its class, and for a live playlist or a dynamic MPD the
/// longest TTL it may have (half the target duration; `minimumUpdatePeriod`). `None` when the
/// body is neither a playlist nor an MPD (the provisional class stays).
pub fn by_body(body: &[u8]) -> Option<(Class, Option<Duration>)> {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let rest = body.get(start..).unwrap_or_default();
    let rest = rest.strip_prefix("\u{feff}".as_bytes()).unwrap_or(rest);
    if rest.starts_with(b"#EXTM3U") {
        return Some(match hls::kind(body)? {
            PlaylistKind::Multivariant => (Class::Multivariant, None),
            PlaylistKind::Vod => (Class::VodPlaylist, None),
            PlaylistKind::LowLatency => (Class::LowLatencyPlaylist, None),
            PlaylistKind::Live => {
                let half = MediaPlaylist::parse(body)
                    .ok()
                    .map(|p| Duration::from_millis(p.target_duration.saturating_mul(500)));
                (Class::LivePlaylist, half)
            }
        });
    }
    if rest.starts_with(b"<") {
        let mpd = Mpd::parse(body).ok()?;
        return Some(if mpd.dynamic() {
            (Class::DynamicMpd, mpd.minimum_update_period())
        } else {
            (Class::StaticMpd, None)
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_sort_media_by_name_and_type() {
        let k = |p, b, t| by_head(p, b, t);
        assert_eq!(
            k("/v/index.m3u8", false, None),
            Head::Manifest {
                provisional: Class::LowLatencyPlaylist
            }
        );
        assert_eq!(
            k("/v/index.m3u8", true, Some("text/plain")),
            Head::Known(Class::BlockingReload)
        );
        assert_eq!(
            k(
                "/live",
                false,
                Some("Application/VND.Apple.MpegURL; charset=utf-8")
            ),
            Head::Manifest {
                provisional: Class::LowLatencyPlaylist
            }
        );
        assert_eq!(
            k("/a/manifest.mpd", false, None),
            Head::Manifest {
                provisional: Class::DynamicMpd
            }
        );
        assert_eq!(k("/v/init_0.mp4", false, None), Head::Known(Class::Init));
        assert_eq!(
            k("/live/r1/part-12-3.m4s", false, None),
            Head::Known(Class::Part)
        );
        assert_eq!(
            k("/v/seg_001.m4s", false, Some("video/iso.segment")),
            Head::Known(Class::Segment)
        );
        assert_eq!(
            k("/x", false, Some("audio/aac")),
            Head::Known(Class::Segment)
        );
        assert_eq!(k("/index.html", false, Some("text/html")), Head::Other);
        assert_eq!(k("/", false, None), Head::Other);
    }

    #[test]
    fn bodies_settle_manifests() {
        let mv = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n";
        assert_eq!(by_body(mv), Some((Class::Multivariant, None)));
        let vod = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.m4s\n#EXT-X-ENDLIST\n";
        assert_eq!(by_body(vod), Some((Class::VodPlaylist, None)));
        let live =
            b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:4,\na.m4s\n";
        assert_eq!(
            by_body(live),
            Some((Class::LivePlaylist, Some(Duration::from_secs(2))))
        );
        let ll = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.5\n#EXTINF:2,\na.m4s\n";
        assert_eq!(by_body(ll), Some((Class::LowLatencyPlaylist, None)));
        let mpd = br#"<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" minimumUpdatePeriod="PT2S" profiles="urn:mpeg:dash:profile:isoff-live:2011"><Period id="1"></Period></MPD>"#;
        assert_eq!(
            by_body(mpd),
            Some((Class::DynamicMpd, Some(Duration::from_secs(2))))
        );
        let smpd = br#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" profiles="urn:mpeg:dash:profile:isoff-live:2011" mediaPresentationDuration="PT12S"><Period id="1"></Period></MPD>"#;
        assert_eq!(by_body(smpd), Some((Class::StaticMpd, None)));
        for junk in [&b""[..], b"hello", b"<html>", b"#EXTM3", b"\xff\xfe"] {
            assert_eq!(by_body(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for c in Class::ALL {
            assert_eq!(Class::from_name(c.name()), Some(c));
        }
        assert_eq!(Class::from_name("segments"), None);
    }
}
