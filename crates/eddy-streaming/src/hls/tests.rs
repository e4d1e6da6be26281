#![allow(clippy::unwrap_used)]

use super::directives::{DirectiveError, Directives, Skip};
use super::media::{MediaPlaylist, Part};
use super::*;
use proptest::prelude::*;

/// An LL-HLS playlist in the shape of Apple's examples and MediaMTX's output: 2 s segments of
/// four 0.5 s parts, two complete segments still listing parts, two parts of segment 12 made.
const LL: &str = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12,PART-HOLD-BACK=1.5
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-MEDIA-SEQUENCE:9
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T00:00:00.000Z
#EXTINF:2.000,
seg9.m4s
#EXTINF:2.000,
seg10.m4s
#EXT-X-PART:DURATION=0.5,URI=\"seg11.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI=\"seg11.1.m4s\"
#EXT-X-PART:DURATION=0.5,URI=\"seg11.2.m4s\"
#EXT-X-PART:DURATION=0.5,URI=\"seg11.3.m4s\"
#EXTINF:2.000,
seg11.m4s
#EXT-X-PART:DURATION=0.5,URI=\"seg12.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI=\"seg12.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg12.2.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"../480p/live.m3u8\",LAST-MSN=12,LAST-PART=1
";

#[test]
fn an_ll_hls_playlist_reads_whole() {
    let p = MediaPlaylist::parse(LL.as_bytes()).unwrap();
    assert_eq!(p.version, Some(9));
    assert_eq!(p.target_duration, 2);
    assert_eq!(p.media_sequence, 9);
    assert_eq!(p.part_target, Some(0.5));
    assert!(p.server_control.can_block_reload);
    assert_eq!(p.server_control.can_skip_until, Some(12.0));
    assert_eq!(p.server_control.part_hold_back, Some(1.5));
    assert_eq!(p.segments.len(), 3);
    assert_eq!(p.segments[0].map.as_deref(), Some("init.mp4"));
    assert_eq!(p.segments[1].map, None);
    assert_eq!(p.segments[2].msn, 11);
    assert_eq!(p.segments[2].parts.len(), 4);
    assert!(p.segments[2].parts[0].independent);
    assert_eq!(p.next_msn(), 12);
    assert_eq!(p.parts_in_progress.len(), 2);
    assert_eq!(p.last_part(), Some((12, 1)));
    assert_eq!(p.preload_hints[0].uri, "seg12.2.m4s");
    assert!(p.preload_hints[0].part);
    assert_eq!(p.rendition_reports[0].last_msn, Some(12));
    assert!(!p.ended);
    // What a blocking reload waits for.
    assert!(p.has(11, None));
    assert!(!p.has(12, None));
    assert!(p.has(12, Some(1)));
    assert!(!p.has(12, Some(2)));
    assert!(p.has(11, Some(3)));
    assert_eq!(kind(LL.as_bytes()), Some(PlaylistKind::LowLatency));
}

#[test]
fn written_playlists_read_back_the_same() {
    let p = MediaPlaylist::parse(LL.as_bytes()).unwrap();
    let again = MediaPlaylist::parse(p.write().as_bytes()).unwrap();
    assert_eq!(again, p);
    // Delta update: the skipped segments still count in the numbering.
    let delta = MediaPlaylist {
        skipped_segments: 2,
        segments: p.segments[2..].to_vec(),
        ..p.clone()
    };
    let read = MediaPlaylist::parse(delta.write().as_bytes()).unwrap();
    assert_eq!(read.segments[0].msn, 11);
    assert_eq!(read.next_msn(), 12);
}

#[test]
fn a_discontinuity_or_map_before_the_segment_being_made_is_kept() {
    let body = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:2,\na.m4s\n#EXT-X-MAP:URI=\"j.mp4\"\n#EXT-X-DISCONTINUITY\n#EXT-X-PART:DURATION=0.5,URI=\"b.0.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"b.1.m4s\"\n";
    let p = MediaPlaylist::parse(body.as_bytes()).unwrap();
    assert!(p.in_progress_discontinuity);
    assert_eq!(p.in_progress_map.as_deref(), Some("j.mp4"));
    assert_eq!(MediaPlaylist::parse(p.write().as_bytes()).unwrap(), p);
    // Sequence numbers stay in range.
    let huge = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:9999999999999999999\n";
    assert!(MediaPlaylist::parse(huge.as_bytes()).is_err());
    let sum = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{m}\n#EXT-X-SKIP:SKIPPED-SEGMENTS={m}\n",
        m = media::MAX_SEQUENCE
    );
    assert!(MediaPlaylist::parse(sum.as_bytes()).is_err());
}

#[test]
fn kinds_are_told_from_the_body() {
    let vod = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n";
    assert_eq!(kind(vod.as_bytes()), Some(PlaylistKind::Vod));
    let live = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n";
    assert_eq!(kind(live.as_bytes()), Some(PlaylistKind::Live));
    assert_eq!(kind(MULTI.as_bytes()), Some(PlaylistKind::Multivariant));
    assert_eq!(kind(b"<MPD/>"), None);
    assert_eq!(kind(b"\xff\xfe"), None);
}

#[test]
fn bad_playlists_are_refused_naming_the_line() {
    for (body, line) in [
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2\nseg.ts\n", 3),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:x\n", 2),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:NaN,\na\n", 3),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:-1,\na\n", 3),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:URI=\"a\"\n",
            3,
        ),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=1,URI=\"a\n",
            3,
        ),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:duration=1,URI=\"a\"\n",
            3,
        ),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PRELOAD-HINT:URI=\"a\"\n",
            3,
        ),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-STREAM-INF:BANDWIDTH=1\na\n",
            3,
        ),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na\n#EXT-X-MEDIA-SEQUENCE:4\n",
            5,
        ),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:HOLD-BACK=x\n",
            3,
        ),
    ] {
        match MediaPlaylist::parse(body.as_bytes()) {
            Err(PlaylistError::Line { line: l, .. }) => assert_eq!(l, line, "{body:?}"),
            other => panic!("{body:?}: {other:?}"),
        }
    }
    assert_eq!(
        MediaPlaylist::parse(b"#EXTM3U\n#EXTINF:2,\na\n"),
        Err(PlaylistError::Missing("#EXT-X-TARGETDURATION"))
    );
    assert_eq!(
        MediaPlaylist::parse(b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n"),
        Err(PlaylistError::Missing("a URI after the last #EXTINF"))
    );
    assert_eq!(MediaPlaylist::parse(b"hello"), Err(PlaylistError::NotM3u));
    assert_eq!(
        MediaPlaylist::parse(b"#EXTM3U\n\xff"),
        Err(PlaylistError::Encoding)
    );
    // Unknown tags and comments are passed over.
    let p = MediaPlaylist::parse(
        b"#EXTM3U\r\n#EXT-X-TARGETDURATION:2\r\n# a comment\r\n#EXT-X-DATERANGE:ID=\"x\"\r\n#EXTINF:2,title\r\na.ts\r\n",
    )
    .unwrap();
    assert_eq!((p.other_tags, p.segments.len()), (1, 1));
}

#[test]
fn directives_are_read_and_checked_as_the_spec_asks() {
    let d = Directives::from_query("_HLS_msn=12&_HLS_part=2&CMCD=x").unwrap();
    assert_eq!((d.msn, d.part, d.skip), (Some(12), Some(2), None));
    assert!(d.blocking());
    assert_eq!(
        Directives::from_query("_HLS_skip=v2").unwrap().skip,
        Some(Skip::V2)
    );
    assert!(!Directives::from_query("a=1").unwrap().blocking());
    for (q, e) in [
        ("_HLS_part=1", DirectiveError::PartWithoutMsn),
        ("_HLS_msn=-1", DirectiveError::NotANumber("_HLS_msn")),
        (
            "_HLS_msn=1&_HLS_part=x",
            DirectiveError::NotANumber("_HLS_part"),
        ),
        ("_HLS_msn=", DirectiveError::NotANumber("_HLS_msn")),
        ("_HLS_skip=yes", DirectiveError::Skip),
        ("_HLS_msn=1&_HLS_msn=2", DirectiveError::Twice("_HLS_msn")),
    ] {
        assert_eq!(Directives::from_query(q), Err(e), "{q}");
    }
    let p = MediaPlaylist::parse(LL.as_bytes()).unwrap();
    // The last complete segment is 11: up to 13 may be asked for.
    assert!(
        Directives::from_query("_HLS_msn=13")
            .unwrap()
            .check(&p)
            .is_ok()
    );
    assert_eq!(
        Directives::from_query("_HLS_msn=14").unwrap().check(&p),
        Err(DirectiveError::MsnTooFar {
            asked: 14,
            last: 11
        })
    );
    // The newest part is 12.1. Three parts ahead is 12.4 at most, or 13.2 if segment 12 ended
    // at once (segments may end short of TARGETDURATION / PART-TARGET parts): a lower bound on
    // the distance never refuses a valid request.
    let check = |q: &str| Directives::from_query(q).unwrap().check(&p);
    assert!(check("_HLS_msn=12&_HLS_part=4").is_ok());
    assert_eq!(
        check("_HLS_msn=12&_HLS_part=5"),
        Err(DirectiveError::PartTooFar { msn: 12, part: 5 })
    );
    assert!(check("_HLS_msn=13&_HLS_part=2").is_ok());
    assert_eq!(
        check("_HLS_msn=13&_HLS_part=3"),
        Err(DirectiveError::PartTooFar { msn: 13, part: 3 })
    );
    // Held requests share one key whatever else they carry.
    assert_eq!(
        Directives::from_query("x=1&_HLS_part=2&_HLS_msn=12")
            .unwrap()
            .key_query()
            .as_deref(),
        Some("_HLS_msn=12&_HLS_part=2")
    );
}

const MULTI: &str = "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",DEFAULT=YES,AUTOSELECT=YES,URI=\"audio/a.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,AUDIO=\"aud\"
360p/v.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2500000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,AUDIO=\"aud\"
720p/v.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=5000000,CODECS=\"avc1.640028,mp4a.40.2\",RESOLUTION=1920x1080,AUDIO=\"aud\"
1080p/v.m3u8
";

#[test]
fn a_cap_removes_the_variants_above_it_and_never_the_last() {
    let v = multivariant::variants(MULTI.as_bytes()).unwrap();
    assert_eq!(
        v.iter().map(|v| v.bandwidth).collect::<Vec<_>>(),
        [800_000, 2_500_000, 5_000_000]
    );
    let capped = multivariant::cap(MULTI.as_bytes(), 3_000_000)
        .unwrap()
        .unwrap();
    let left = multivariant::variants(&capped).unwrap();
    assert_eq!(
        left.iter().map(|v| v.uri.as_str()).collect::<Vec<_>>(),
        ["360p/v.m3u8", "720p/v.m3u8"]
    );
    let text = String::from_utf8(capped).unwrap();
    assert!(
        text.contains("GROUP-ID=\"aud\"") && text.contains("RESOLUTION=1280x720"),
        "{text}"
    );
    // A cap under every variant keeps the lowest; a cap over all of them changes nothing.
    let lowest = multivariant::cap(MULTI.as_bytes(), 1).unwrap().unwrap();
    assert_eq!(multivariant::variants(&lowest).unwrap().len(), 1);
    assert_eq!(
        multivariant::cap(MULTI.as_bytes(), 10_000_000).unwrap(),
        None
    );
    assert!(multivariant::cap(LL.as_bytes(), 1).is_err());
    assert!(multivariant::cap(b"garbage", 1).is_err());
}

fn part(i: u64) -> Part {
    Part {
        uri: format!("p{i}.m4s"),
        duration: 0.5,
        independent: i.is_multiple_of(4),
        gap: false,
    }
}

proptest! {
    #[test]
    fn parsing_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = MediaPlaylist::parse(&body);
        let _ = kind(&body);
        let _ = multivariant::variants(&body);
        let _ = multivariant::cap(&body, 1000);
        if let Ok(s) = std::str::from_utf8(&body) {
            let _ = Directives::from_query(s);
        }
    }

    #[test]
    fn mutated_playlists_never_panic(i in 0usize..900, b: u8) {
        let mut body = LL.as_bytes().to_vec();
        let i = i % body.len();
        body[i] = b;
        if let Ok(p) = MediaPlaylist::parse(&body) {
            let again = MediaPlaylist::parse(p.write().as_bytes());
            prop_assert!(again.is_ok());
        }
    }

    #[test]
    fn a_live_playlist_holds_what_it_has_made(seq in 0u64..1000, segs in 0usize..6, parts in 0u64..4) {
        let p = MediaPlaylist {
            target_duration: 2,
            media_sequence: seq,
            part_target: Some(0.5),
            segments: (0..segs as u64).map(|i| media::Segment {
                msn: seq + i,
                uri: format!("s{i}.m4s"),
                duration: 2.0,
                parts: (0..4).map(part).collect(),
                discontinuity: false,
                program_date_time: None,
                map: None,
            }).collect(),
            parts_in_progress: (0..parts).map(part).collect(),
            ..MediaPlaylist::default()
        };
        let read = MediaPlaylist::parse(p.write().as_bytes()).unwrap();
        prop_assert_eq!(&read, &p);
        let next = p.next_msn();
        prop_assert!(!p.has(next, None));
        prop_assert_eq!(p.has(next, Some(parts)), false);
        if parts > 0 {
            prop_assert!(p.has(next, Some(parts - 1)));
        }
        if segs > 0 {
            prop_assert!(p.has(next - 1, None));
        }
    }
}
