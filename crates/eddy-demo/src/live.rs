//! A live LL-HLS stream made from the demo video on a clock: parts of 0.5 s, segments of 2 s,
//! the three video renditions looped (a discontinuity at each loop), `EXT-X-PART`,
//! `EXT-X-PRELOAD-HINT`, `EXT-X-SERVER-CONTROL` with `CAN-BLOCK-RELOAD` and `CAN-SKIP-UNTIL`,
//! delta updates and rendition reports.
//!
//! Nothing is encoded live: a part is one fragment of a committed segment (each 2 s segment is
//! four 0.5 s fragments, `sidx`+`moof`+`mdat`), so what exists at a moment follows from the clock
//! alone. A playlist request with `_HLS_msn`/`_HLS_part` is answered when that part exists, as an
//! LL-HLS origin must (a bounded wait: the directives are checked first, 400 when too far ahead),
//! and so is a request for the part a preload hint names.
//!
//! Paths, under `/live/`: `master.m3u8`; `<r>/live.m3u8` (r = 0, 1, 2: 720p, 480p, 360p);
//! `<r>/init.m4s`; `<r>/seg-<msn>.m4s`; `<r>/part-<msn>-<i>.m4s`.

use std::fmt::Write as _;
use std::ops::Range;
use std::time::{Duration, Instant};

use eddy_streaming::hls::directives::Directives;
use eddy_streaming::hls::media::{
    MediaPlaylist, Part, PreloadHint, RenditionReport, Segment, ServerControl,
};

use crate::server::Reply;

/// Part duration.
pub const PART: Duration = Duration::from_millis(500);
/// Parts per segment (2 s segments).
pub const PARTS: u64 = 4;
/// Segments of the committed video, looped.
const LOOP: u64 = 6;
/// Segments a playlist lists.
const WINDOW: u64 = 10;
/// Segments at the live edge that still list their parts.
const WITH_PARTS: u64 = 2;
/// `CAN-SKIP-UNTIL`, seconds (six target durations, the spec's minimum).
const SKIP_UNTIL: f64 = 12.0;

/// The renditions: (bandwidth, codecs, resolution), as `scripts/make-demo-media.sh` makes them.
const RENDITIONS: [(u64, &str, &str); 3] = [
    (1_200_000, "avc1.4d401f", "1280x720"),
    (600_000, "avc1.4d401f", "854x480"),
    (300_000, "avc1.4d401e", "640x360"),
];

/// The live stream: its start and where each part lies in the committed segments.
pub struct Live {
    start: Instant,
    /// `parts[r][k]`: byte ranges of the parts of VOD segment k+1 of rendition r.
    parts: Vec<Vec<Vec<Range<usize>>>>,
}

/// The files of VOD segment `k` (0-based) of rendition `r`.
fn vod_segment(r: usize, k: u64) -> Option<&'static [u8]> {
    crate::media::vod(&format!("seg-{r}-{:03}.m4s", k + 1))
}

/// Split an fMP4 segment into its fragments: a new part starts at each `sidx` after the first
/// (or at each `moof` when there is no `sidx`); the first part keeps the `styp`.
pub fn fragments(seg: &[u8]) -> Vec<Range<usize>> {
    let marker = if boxes(seg).any(|(t, _)| t == *b"sidx") {
        *b"sidx"
    } else {
        *b"moof"
    };
    let starts: Vec<usize> = boxes(seg)
        .filter(|(t, _)| *t == marker)
        .map(|(_, at)| at)
        .skip(1)
        .collect();
    let mut out = Vec::new();
    let mut from = 0;
    for s in starts {
        out.push(from..s);
        from = s;
    }
    out.push(from..seg.len());
    out
}

/// Top-level ISO BMFF boxes: (type, offset). Stops at the first box that does not fit.
fn boxes(b: &[u8]) -> impl Iterator<Item = ([u8; 4], usize)> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let head = b.get(at..at + 8)?;
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let t = [head[4], head[5], head[6], head[7]];
        if size < 8 || at + size > b.len() {
            return None;
        }
        let here = at;
        at += size;
        Some((t, here))
    })
}

impl Live {
    /// A stream starting now. `None` if the committed video is not what this expects (four
    /// fragments in every segment).
    pub fn new() -> Option<Live> {
        let mut parts = Vec::new();
        for r in 0..RENDITIONS.len() {
            let mut per = Vec::new();
            for k in 0..LOOP {
                let f = fragments(vod_segment(r, k)?);
                if f.len() as u64 != PARTS {
                    return None;
                }
                per.push(f);
            }
            parts.push(per);
        }
        Some(Live {
            start: Instant::now(),
            parts,
        })
    }

    /// The number of renditions.
    pub const RENDITIONS: usize = RENDITIONS.len();

    /// Parts made by `now`.
    pub fn made(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_millis() / PART.as_millis()) as u64
    }

    /// When the `n`th part (counting from 1) is made.
    pub fn when(&self, n: u64) -> Instant {
        self.start + PART * u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Rendition `r`'s media playlist once `made` parts exist.
    pub fn playlist(&self, r: usize, made: u64, skip: bool) -> MediaPlaylist {
        let complete = made / PARTS;
        let first = complete.saturating_sub(WINDOW);
        let part = |msn: u64, i: u64| Part {
            uri: format!("part-{msn}-{i}.m4s"),
            duration: PART.as_secs_f64(),
            independent: i == 0,
            gap: false,
        };
        let mut segments: Vec<Segment> = (first..complete)
            .map(|msn| Segment {
                msn,
                uri: format!("seg-{msn}.m4s"),
                duration: 2.0,
                parts: if msn + WITH_PARTS >= complete {
                    (0..PARTS).map(|i| part(msn, i)).collect()
                } else {
                    Vec::new()
                },
                discontinuity: msn > first && msn % LOOP == 0,
                program_date_time: None,
                map: (msn == first).then(|| "init.m4s".to_owned()),
            })
            .collect();
        let skipped = if skip {
            (segments.len() as u64).saturating_sub((SKIP_UNTIL / 2.0) as u64)
        } else {
            0
        };
        segments.drain(..skipped as usize);
        if skipped > 0
            && let Some(s) = segments.first_mut()
        {
            // The map a skipped segment carried must still be known.
            s.map = Some("init.m4s".to_owned());
        }
        let in_progress = made % PARTS;
        MediaPlaylist {
            version: Some(9),
            target_duration: 2,
            media_sequence: first,
            discontinuity_sequence: first / LOOP,
            part_target: Some(PART.as_secs_f64()),
            server_control: ServerControl {
                can_block_reload: true,
                can_skip_until: Some(SKIP_UNTIL),
                can_skip_dateranges: false,
                hold_back: Some(6.0),
                part_hold_back: Some(1.5),
            },
            skipped_segments: skipped,
            independent_segments: true,
            segments,
            parts_in_progress: (0..in_progress).map(|i| part(complete, i)).collect(),
            // The segment being made starts a new loop: its parts and hint are discontinuous
            // with the segment before, as the complete segment will be.
            in_progress_discontinuity: complete > first && complete.is_multiple_of(LOOP),
            // Before the first segment completes, its parts still need their init segment.
            in_progress_map: (complete == 0).then(|| "init.m4s".to_owned()),
            preload_hints: vec![PreloadHint {
                part: true,
                uri: format!("part-{complete}-{in_progress}.m4s"),
                byterange_start: None,
                byterange_length: None,
            }],
            // Reports name the newest part of each other rendition: none before the first.
            rendition_reports: (0..RENDITIONS.len())
                .filter(|o| *o != r && made > 0)
                .map(|o| RenditionReport {
                    uri: format!("../{o}/live.m3u8"),
                    last_msn: Some(if in_progress > 0 {
                        complete
                    } else {
                        complete.saturating_sub(1)
                    }),
                    last_part: Some(if in_progress > 0 {
                        in_progress - 1
                    } else {
                        PARTS - 1
                    }),
                })
                .collect(),
            ..MediaPlaylist::default()
        }
    }

    /// The multivariant playlist.
    pub fn master() -> String {
        let mut o = String::from("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n");
        for (r, (bw, codecs, res)) in RENDITIONS.iter().enumerate() {
            let _ = writeln!(
                o,
                "#EXT-X-STREAM-INF:BANDWIDTH={bw},CODECS=\"{codecs}\",RESOLUTION={res}\n{r}/live.m3u8"
            );
        }
        o
    }

    /// Answer a request for `rest` (the path under `/live/`) with query `query`, at `now`.
    pub fn answer(&self, rest: &str, query: &str, now: Instant) -> Reply {
        let made = self.made(now);
        if rest == "master.m3u8" {
            return Reply::ok(Live::master())
                .header("content-type", "application/vnd.apple.mpegurl")
                .header("cache-control", "public, max-age=30");
        }
        let Some((r, file)) = rest.split_once('/') else {
            return not_found();
        };
        let Some(r) = r.parse::<usize>().ok().filter(|r| *r < RENDITIONS.len()) else {
            return not_found();
        };
        if file == "live.m3u8" {
            return self.answer_playlist(r, query, made, now);
        }
        if file == "init.m4s" {
            return media(crate::media::vod(&format!("init-{r}.m4s")).unwrap_or_default());
        }
        if let Some(msn) = file
            .strip_prefix("seg-")
            .and_then(|f| f.strip_suffix(".m4s"))
        {
            let Some(msn) = number(msn) else {
                return not_found();
            };
            // Complete once its last part is made; the segment being made is answered then.
            let Some(needed) = msn.checked_add(1).and_then(|n| n.checked_mul(PARTS)) else {
                return not_found();
            };
            return self.when_made(needed, made, now, || {
                media(vod_segment(r, msn % LOOP).unwrap_or_default())
            });
        }
        if let Some(p) = file
            .strip_prefix("part-")
            .and_then(|f| f.strip_suffix(".m4s"))
        {
            let Some((msn, i)) = p.split_once('-') else {
                return not_found();
            };
            let (Some(msn), Some(i)) = (number(msn), number(i)) else {
                return not_found();
            };
            if i >= PARTS {
                return not_found();
            }
            let Some(needed) = msn.checked_mul(PARTS).and_then(|n| n.checked_add(i + 1)) else {
                return not_found();
            };
            return self.when_made(needed, made, now, || {
                let seg = vod_segment(r, msn % LOOP).unwrap_or_default();
                let range = self.parts[r][(msn % LOOP) as usize][i as usize].clone();
                media(seg.get(range).unwrap_or_default())
            });
        }
        not_found()
    }

    /// `reply()` once `needed` parts are made: now, after a wait of at most one segment (a
    /// preload hint or the segment being made), or 404 for what is further ahead.
    fn when_made(
        &self,
        needed: u64,
        made: u64,
        now: Instant,
        reply: impl FnOnce() -> Reply,
    ) -> Reply {
        if needed <= made {
            return reply();
        }
        if needed > made + PARTS {
            return not_found();
        }
        reply().delay(self.when(needed).saturating_duration_since(now))
    }

    fn answer_playlist(&self, r: usize, query: &str, made: u64, now: Instant) -> Reply {
        let d = match Directives::from_query(query) {
            Ok(d) => d,
            Err(e) => return Reply::status(400).body(format!("{e}\n")),
        };
        let skip = d.skip.is_some();
        let current = self.playlist(r, made, false);
        if let Err(e) = d.check(&current) {
            return Reply::status(400).body(format!("{e}\n"));
        }
        let (at, wait) = match d.msn {
            Some(msn) if !current.has(msn, d.part) => {
                // `check` bounds msn to two segments ahead; a part index past the segment's
                // last waits only until the segment is complete (then `has` holds).
                let whole = (msn + 1) * PARTS;
                let needed = match d.part {
                    Some(p) => (msn * PARTS + p + 1).min(whole),
                    None => whole,
                };
                (needed, self.when(needed).saturating_duration_since(now))
            }
            _ => (made, Duration::ZERO),
        };
        Reply::ok(self.playlist(r, at, skip).write())
            .header("content-type", "application/vnd.apple.mpegurl")
            .header("cache-control", "no-cache")
            .delay(wait)
    }
}

/// A number in a path, in its one canonical spelling (no sign, no leading zeros), so one part
/// has one URL.
fn number(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

fn media(body: &'static [u8]) -> Reply {
    Reply::ok(bytes::Bytes::from_static(body))
        .header("content-type", "video/mp4")
        .header("cache-control", "public, max-age=3600, immutable")
}

fn not_found() -> Reply {
    Reply::status(404)
        .body("no such part of the live stream\n")
        .header("cache-control", "max-age=1")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_committed_segment_is_four_parts_that_make_it_whole() {
        let live = Live::new().expect("the committed video has four fragments a segment");
        for r in 0..3 {
            for k in 0..LOOP {
                let seg = vod_segment(r, k).unwrap();
                let parts = &live.parts[r][k as usize];
                assert_eq!(parts.first().unwrap().start, 0);
                assert_eq!(parts.last().unwrap().end, seg.len());
                assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
            }
        }
    }

    #[test]
    fn the_playlist_follows_the_clock_and_reads_back() {
        let live = Live::new().unwrap();
        // 53 parts: 13 complete segments and one part of segment 13.
        let p = live.playlist(1, 53, false);
        let read = MediaPlaylist::parse(p.write().as_bytes()).unwrap();
        assert_eq!(read, p);
        assert_eq!(read.next_msn(), 13);
        assert_eq!(read.media_sequence, 3);
        assert_eq!(read.segments.len() as u64, WINDOW);
        assert_eq!(read.last_part(), Some((13, 0)));
        assert_eq!(read.preload_hints[0].uri, "part-13-1.m4s");
        assert!(read.has(13, Some(0)) && !read.has(13, Some(1)));
        // A loop boundary inside the window is a discontinuity.
        assert!(read.segments.iter().any(|s| s.msn == 6 && s.discontinuity));
        assert_eq!(read.discontinuity_sequence, 0);
        assert!(!read.in_progress_discontinuity);
        // While segment 12 (a loop's first) is made, its parts are marked discontinuous.
        let looping = MediaPlaylist::parse(live.playlist(1, 49, false).write().as_bytes()).unwrap();
        assert_eq!(looping.next_msn(), 12);
        assert!(looping.in_progress_discontinuity);
        // Before the first segment completes, the parts still have their init segment.
        let start = MediaPlaylist::parse(live.playlist(0, 2, false).write().as_bytes()).unwrap();
        assert_eq!(start.in_progress_map.as_deref(), Some("init.m4s"));
        assert_eq!(start.parts_in_progress.len(), 2);
        assert!(live.playlist(0, 0, false).rendition_reports.is_empty());
        // A delta update skips what is older than CAN-SKIP-UNTIL and numbers the rest the same.
        let delta = MediaPlaylist::parse(live.playlist(1, 53, true).write().as_bytes()).unwrap();
        assert_eq!(delta.skipped_segments, 4);
        assert_eq!(delta.segments[0].msn, 7);
        assert_eq!(delta.next_msn(), 13);
    }

    #[test]
    fn blocking_requests_wait_for_their_part_and_far_ones_are_refused() {
        let live = Live::new().unwrap();
        let now = live.start + PART * 53 + Duration::from_millis(100);
        // The part that exists: at once.
        let r = live.answer("0/live.m3u8", "_HLS_msn=13&_HLS_part=0", now);
        assert_eq!((r.status, r.head_delay), (200, Duration::ZERO));
        // The next part: held until it is made, and then it is in the playlist.
        let r = live.answer("0/live.m3u8", "_HLS_msn=13&_HLS_part=1", now);
        assert_eq!(r.status, 200);
        assert_eq!(r.head_delay, Duration::from_millis(400));
        let body: Vec<u8> = r.chunks.iter().flat_map(|(_, c)| c.to_vec()).collect();
        assert!(MediaPlaylist::parse(&body).unwrap().has(13, Some(1)));
        // Too far ahead, or a part without its segment: 400.
        assert_eq!(live.answer("0/live.m3u8", "_HLS_msn=20", now).status, 400);
        assert_eq!(live.answer("0/live.m3u8", "_HLS_part=1", now).status, 400);
        // The preload-hinted part is held; a part far ahead is not found; a made one is served.
        let hinted = live.answer("2/part-13-1.m4s", "", now);
        assert_eq!(
            (hinted.status, hinted.head_delay),
            (200, Duration::from_millis(400))
        );
        assert_eq!(live.answer("2/part-15-0.m4s", "", now).status, 404);
        let made = live.answer("2/part-12-3.m4s", "", now);
        assert_eq!((made.status, made.head_delay), (200, Duration::ZERO));
        assert!(made.body_len() > 1000);
        assert_eq!(live.answer("3/live.m3u8", "", now).status, 404);
        // One spelling per part; numbers that would overflow are not found.
        assert_eq!(live.answer("2/part-+12-3.m4s", "", now).status, 404);
        assert_eq!(live.answer("2/part-012-3.m4s", "", now).status, 404);
        assert_eq!(
            live.answer("2/seg-18446744073709551615.m4s", "", now)
                .status,
            404
        );
        assert_eq!(
            live.answer("2/part-18446744073709551615-0.m4s", "", now)
                .status,
            404
        );
        // A part index past the segment's last waits only until the segment is complete:
        // newest part 13.1, and 13.4 (within the Advance Part Limit) is segment 13's end.
        let later = live.start + PART * 54 + Duration::from_millis(100);
        let past = live.answer("0/live.m3u8", "_HLS_msn=13&_HLS_part=4", later);
        assert_eq!(
            (past.status, past.head_delay),
            (200, Duration::from_millis(900))
        );
        assert_eq!(live.answer("0/part-1-4.m4s", "", now).status, 404);
        assert!(Live::master().contains("2/live.m3u8"));
    }
}
