//! The demo video: 12 s, three H.264 renditions and one AAC track in 2 s CMAF segments of four
//! 0.5 s fragments, described by an HLS multivariant playlist (`master.m3u8`) and a DASH MPD
//! (`manifest.mpd`) over the same files. Made by `scripts/make-demo-media.sh`.

use include_dir::{Dir, include_dir};

static VOD: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/media/vod");

/// A file of the VOD, by its name (`master.m3u8`, `seg-0-001.m4s`).
pub fn vod(name: &str) -> Option<&'static [u8]> {
    VOD.get_file(name).map(|f| f.contents())
}

/// Every file of the VOD, by name.
pub fn vod_files() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    VOD.files()
        .filter_map(|f| Some((f.path().to_str()?, f.contents())))
}

/// Content type and `Cache-Control` for a VOD file, following the manifest TTL table in
/// ../shared/design/STREAMING.md: the multivariant playlist 30 s, VOD media playlists and the
/// static MPD an hour, segments a day and immutable.
pub fn headers_for(name: &str) -> (&'static str, &'static str) {
    if name == "master.m3u8" {
        ("application/vnd.apple.mpegurl", "public, max-age=30")
    } else if name.ends_with(".m3u8") {
        ("application/vnd.apple.mpegurl", "public, max-age=3600")
    } else if name.ends_with(".mpd") {
        ("application/dash+xml", "public, max-age=3600")
    } else {
        ("video/mp4", "public, max-age=86400, immutable")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use eddy_streaming::dash::Mpd;
    use eddy_streaming::hls::{self, PlaylistKind, media::MediaPlaylist, multivariant};

    #[test]
    fn the_committed_video_reads_as_hls_and_dash_and_names_only_files_it_has() {
        let master = vod("master.m3u8").unwrap();
        assert_eq!(hls::kind(master), Some(PlaylistKind::Multivariant));
        let variants = multivariant::variants(master).unwrap();
        assert_eq!(variants.len(), 3);
        for v in &variants {
            let p = MediaPlaylist::parse(vod(&v.uri).unwrap()).unwrap();
            assert!(p.ended, "{}", v.uri);
            assert_eq!(p.segments.len(), 6);
            for s in &p.segments {
                assert!(vod(&s.uri).is_some(), "{}", s.uri);
                assert!((s.duration - 2.0).abs() < 0.01);
            }
            let init = p.segments[0].map.as_deref().unwrap();
            assert!(vod(init).is_some());
        }
        let mpd = Mpd::parse(vod("manifest.mpd").unwrap()).unwrap();
        assert!(!mpd.dynamic());
        assert_eq!(mpd.video_bandwidths(), [1_200_000, 600_000, 300_000]);
        let total: usize = vod_files().map(|(_, b)| b.len()).sum();
        assert!(total < 5 << 20, "{total} bytes");
    }
}
