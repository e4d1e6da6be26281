//! `long.mpd`: the 12 s demo clip [`TIMES`] times over as one two-minute presentation, long
//! enough for a bandwidth change mid-stream and the quality guard's answer.
//!
//! One Period, one timeline: segment `n` of a representation (`long/seg-R-NNN.m4s`, 1 to
//! [`TIMES`] × 6) is the clip's segment `(n - 1) % 6 + 1`, its media times moved on by the
//! clip's length once per earlier time round: every `tfdt` (each fragment's decode time) and
//! every `sidx` earliest presentation time. A player sees one continuous stream. (The first
//! version repeated the clip as ten Periods over the same files; dash.js 5.2.1 on a slow link
//! failed appends and threw at Period boundaries, which a measuring run must not depend on.)
//!
//! The boxes are walked strictly: a segment whose structure does not read is not served.

use crate::media::vod;

/// Times the clip repeats.
pub const TIMES: u32 = 10;
/// Length of the clip, seconds.
const CLIP_SECONDS: u64 = 12;
/// Segments of the clip per representation (2 s each).
const CLIP_SEGMENTS: u32 = 6;

/// The MPD: the clip's own, its duration [`TIMES`] as long and its segments under `long/`.
/// `None` if the committed MPD is not the single-Period one this expects.
pub fn mpd() -> Option<String> {
    let mpd = std::str::from_utf8(vod("manifest.mpd")?).ok()?;
    if mpd.matches("<Period ").count() != 1 {
        return None;
    }
    let whole = format!("mediaPresentationDuration=\"PT{CLIP_SECONDS}.0S\"");
    let long = format!(
        "mediaPresentationDuration=\"PT{}.0S\"",
        CLIP_SECONDS * u64::from(TIMES)
    );
    if !mpd.contains(&whole) || !mpd.contains("media=\"seg-") {
        return None;
    }
    Some(
        mpd.replacen(&whole, &long, 1)
            .replace("media=\"seg-", "media=\"long/seg-"),
    )
}

/// Segment `name` (`seg-R-NNN.m4s`) of the long presentation; `None` for any other name.
pub fn segment(name: &str) -> Option<Vec<u8>> {
    let rest = name.strip_prefix("seg-")?.strip_suffix(".m4s")?;
    let (rep, number) = rest.split_once('-')?;
    if rep.is_empty() || !rep.bytes().all(|b| b.is_ascii_digit()) || number.len() != 3 {
        return None;
    }
    let n: u32 = number.parse().ok()?;
    if !(1..=TIMES * CLIP_SEGMENTS).contains(&n) {
        return None;
    }
    let (round, clip) = ((n - 1) / CLIP_SEGMENTS, (n - 1) % CLIP_SEGMENTS + 1);
    let timescale = media_timescale(vod(&format!("init-{rep}.m4s"))?)?;
    let mut seg = vod(&format!("seg-{rep}-{clip:03}.m4s"))?.to_vec();
    let seconds = u64::from(round) * CLIP_SECONDS;
    shift(&mut seg, seconds, u64::from(timescale))?;
    Some(seg)
}

/// One box: its type, where its payload starts and where it ends.
struct Box4 {
    kind: [u8; 4],
    payload: usize,
    end: usize,
}

/// The boxes in `b[from..to]`, strictly: `None` if one does not fit.
fn boxes(b: &[u8], from: usize, to: usize) -> Option<Vec<Box4>> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let head = b.get(at..at + 8)?;
        let size32 = u32::from_be_bytes(head[..4].try_into().ok()?);
        let kind: [u8; 4] = head[4..8].try_into().ok()?;
        let (size, header) = match size32 {
            0 => (to - at, 8),
            1 => {
                let large = b.get(at + 8..at + 16)?;
                (
                    usize::try_from(u64::from_be_bytes(large.try_into().ok()?)).ok()?,
                    16,
                )
            }
            s => (usize::try_from(s).ok()?, 8),
        };
        let end = at.checked_add(size)?;
        if size < header || end > to {
            return None;
        }
        out.push(Box4 {
            kind,
            payload: at + header,
            end,
        });
        at = end;
    }
    Some(out)
}

/// The first box of `kind` in `b[from..to]`.
fn find(b: &[u8], from: usize, to: usize, kind: &[u8; 4]) -> Option<Box4> {
    boxes(b, from, to)?.into_iter().find(|x| &x.kind == kind)
}

/// The media timescale of an init segment (`moov/trak/mdia/mdhd`).
fn media_timescale(init: &[u8]) -> Option<u32> {
    let moov = find(init, 0, init.len(), b"moov")?;
    let trak = find(init, moov.payload, moov.end, b"trak")?;
    let mdia = find(init, trak.payload, trak.end, b"mdia")?;
    let mdhd = find(init, mdia.payload, mdia.end, b"mdhd")?;
    // Full box: version, flags; then creation and modification times (4 or 8 bytes each).
    let version = *init.get(mdhd.payload)?;
    let at = mdhd.payload + 4 + if version == 1 { 16 } else { 8 };
    let ts = u32::from_be_bytes(init.get(at..at + 4)?.try_into().ok()?);
    (ts > 0).then_some(ts)
}

/// Add `by` to the big-endian number of `width` bytes at `at`; `None` if it overflows.
fn add_at(b: &mut [u8], at: usize, width: usize, by: u64) -> Option<()> {
    let field = b.get_mut(at..at + width)?;
    match width {
        4 => {
            let v = u32::from_be_bytes(field.try_into().ok()?);
            let v = u32::try_from(u64::from(v).checked_add(by)?).ok()?;
            field.copy_from_slice(&v.to_be_bytes());
        }
        _ => {
            let v = u64::from_be_bytes(field.try_into().ok()?);
            field.copy_from_slice(&v.checked_add(by)?.to_be_bytes());
        }
    }
    Some(())
}

/// Move a media segment's times on by `seconds`: every `moof/traf/tfdt` (in the track's
/// `timescale`) and every top-level `sidx` (in its own).
fn shift(seg: &mut [u8], seconds: u64, timescale: u64) -> Option<()> {
    let top = boxes(seg, 0, seg.len())?;
    for b in &top {
        match &b.kind {
            b"moof" => {
                for traf in boxes(seg, b.payload, b.end)?
                    .into_iter()
                    .filter(|x| &x.kind == b"traf")
                {
                    let tfdt = find(seg, traf.payload, traf.end, b"tfdt")?;
                    let version = *seg.get(tfdt.payload)?;
                    let width = if version == 1 { 8 } else { 4 };
                    add_at(
                        seg,
                        tfdt.payload + 4,
                        width,
                        seconds.checked_mul(timescale)?,
                    )?;
                }
            }
            b"sidx" => {
                // version+flags, reference_ID, timescale, then earliest_presentation_time.
                let version = *seg.get(b.payload)?;
                let at = b.payload + 8;
                let ts = u32::from_be_bytes(seg.get(at..at + 4)?.try_into().ok()?);
                let width = if version == 1 { 8 } else { 4 };
                add_at(seg, at + 4, width, seconds.checked_mul(u64::from(ts))?)?;
            }
            _ => {}
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use eddy_streaming::dash::Mpd;

    /// Every `tfdt` of a segment, in order.
    fn decode_times(seg: &[u8]) -> Vec<u64> {
        let mut out = Vec::new();
        for moof in boxes(seg, 0, seg.len()).unwrap() {
            if &moof.kind != b"moof" {
                continue;
            }
            for traf in boxes(seg, moof.payload, moof.end).unwrap() {
                if &traf.kind == b"traf" {
                    let t = find(seg, traf.payload, traf.end, b"tfdt").unwrap();
                    let v = seg[t.payload];
                    let at = t.payload + 4;
                    out.push(if v == 1 {
                        u64::from_be_bytes(seg[at..at + 8].try_into().unwrap())
                    } else {
                        u64::from(u32::from_be_bytes(seg[at..at + 4].try_into().unwrap()))
                    });
                }
            }
        }
        out
    }

    #[test]
    fn one_period_of_two_minutes_over_the_clips_segments() {
        let text = mpd().unwrap();
        let parsed = Mpd::parse(text.as_bytes()).unwrap();
        assert!(!parsed.dynamic());
        assert_eq!(text.matches("<Period ").count(), 1);
        assert!(text.contains("mediaPresentationDuration=\"PT120.0S\""));
        assert_eq!(parsed.video_bandwidths(), [1_200_000, 600_000, 300_000]);
        assert!(text.contains("media=\"long/seg-$RepresentationID$-$Number%03d$.m4s\""));
        assert!(text.contains("initialization=\"init-$RepresentationID$.m4s\""));
    }

    #[test]
    fn each_time_round_moves_the_media_times_on_by_the_clip() {
        for rep in 0..4 {
            let ts = u64::from(media_timescale(vod(&format!("init-{rep}.m4s")).unwrap()).unwrap());
            for n in 1..=TIMES * CLIP_SEGMENTS {
                let seg = segment(&format!("seg-{rep}-{n:03}.m4s")).unwrap();
                let clip = vod(&format!("seg-{rep}-{:03}.m4s", (n - 1) % 6 + 1)).unwrap();
                let round = u64::from((n - 1) / 6);
                assert_eq!(seg.len(), clip.len());
                let (got, was) = (decode_times(&seg), decode_times(clip));
                assert!(!got.is_empty());
                let want: Vec<u64> = was.iter().map(|t| t + round * 12 * ts).collect();
                assert_eq!(got, want, "rep {rep} segment {n}");
            }
        }
        // The times keep moving forward across a round's end.
        let end = decode_times(&segment("seg-0-006.m4s").unwrap());
        let next = decode_times(&segment("seg-0-007.m4s").unwrap());
        assert!(next[0] > *end.last().unwrap());
    }

    #[test]
    fn only_its_own_names_are_segments() {
        for bad in [
            "seg-0-000.m4s",
            "seg-0-061.m4s",
            "seg-0-1.m4s",
            "seg-9-001.m4s",
            "seg--001.m4s",
            "seg-0-001.mp4",
            "init-0.m4s",
            "seg-0-0x1.m4s",
            "seg-+0-001.m4s",
        ] {
            assert!(segment(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn malformed_boxes_are_refused_not_served() {
        let clip = vod("seg-0-001.m4s").unwrap();
        // Cut short, or a box claiming more than there is.
        assert!(shift(&mut clip[..clip.len() - 3].to_vec(), 12, 15360).is_none());
        let mut lying = clip.to_vec();
        lying[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(shift(&mut lying, 12, 15360).is_none());
        let mut tiny = clip.to_vec();
        tiny[..4].copy_from_slice(&3u32.to_be_bytes());
        assert!(shift(&mut tiny, 12, 15360).is_none());
        assert!(media_timescale(b"junk").is_none());
    }
}
