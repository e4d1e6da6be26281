//! DASH MPDs, read and written with `dash-mpd-core` (the parsing half of the maintained
//! `dash-mpd` crate, without its downloader).
//!
//! What the edge needs of an MPD: whether it is `static` (cacheable long) or `dynamic` (cacheable
//! for at most its `minimumUpdatePeriod`), the bitrates it offers, and a copy without the video
//! Representations above a cap for the quality guard (dash.js can also be capped by CMSD `mb`;
//! the rewrite covers players that ignore CMSD). The lowest video Representation of each
//! AdaptationSet always stays.

use std::time::Duration;

use thiserror::Error;

/// Largest MPD read.
pub const MAX_MPD: usize = 4 * 1024 * 1024;

/// Why an MPD could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MpdError {
    #[error("the MPD is {len} bytes; an edge reads at most {max}")]
    TooLarge { len: usize, max: usize },
    #[error("the MPD is not UTF-8")]
    Encoding,
    #[error("the MPD does not read: {0}")]
    Parse(String),
    #[error("the MPD could not be written back")]
    Write,
}

/// A parsed MPD.
#[derive(Debug, Clone)]
pub struct Mpd(dash_mpd_core::MPD);

impl Mpd {
    /// Read an MPD.
    pub fn parse(body: &[u8]) -> Result<Mpd, MpdError> {
        if body.len() > MAX_MPD {
            return Err(MpdError::TooLarge {
                len: body.len(),
                max: MAX_MPD,
            });
        }
        let text = std::str::from_utf8(body).map_err(|_| MpdError::Encoding)?;
        dash_mpd_core::parse(text)
            .map(Mpd)
            .map_err(|e| MpdError::Parse(e.to_string().chars().take(200).collect()))
    }

    /// `type="dynamic"` (live).
    pub fn dynamic(&self) -> bool {
        self.0.mpdtype.as_deref() == Some("dynamic")
    }

    /// `minimumUpdatePeriod`, for a dynamic MPD's TTL.
    pub fn minimum_update_period(&self) -> Option<Duration> {
        self.0.minimumUpdatePeriod
    }

    /// The `bandwidth` of every video Representation, in bits per second.
    pub fn video_bandwidths(&self) -> Vec<u64> {
        self.0
            .periods
            .iter()
            .flat_map(|p| &p.adaptations)
            .filter(|a| is_video(a))
            .flat_map(|a| &a.representations)
            .filter_map(|r| r.bandwidth)
            .collect()
    }

    /// The MPD without the video Representations above `max_bps` (the lowest of each
    /// AdaptationSet stays). `None` when nothing would be removed.
    pub fn cap(&self, max_bps: u64) -> Result<Option<String>, MpdError> {
        let mut m = self.0.clone();
        let mut removed = false;
        for a in m.periods.iter_mut().flat_map(|p| &mut p.adaptations) {
            if !is_video(a) {
                continue;
            }
            let lowest = a.representations.iter().filter_map(|r| r.bandwidth).min();
            let before = a.representations.len();
            a.representations.retain(|r| match r.bandwidth {
                Some(b) => b <= max_bps || Some(b) == lowest,
                None => true,
            });
            removed |= a.representations.len() != before;
        }
        if !removed {
            return Ok(None);
        }
        Ok(Some(write(&m)?))
    }

    /// The MPD as XML.
    pub fn write(&self) -> Result<String, MpdError> {
        write(&self.0)
    }
}

fn write(m: &dash_mpd_core::MPD) -> Result<String, MpdError> {
    use std::fmt::Write as _;
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    write!(s, "{m}").map_err(|_| MpdError::Write)?;
    Ok(s)
}

fn is_video(a: &dash_mpd_core::AdaptationSet) -> bool {
    dash_mpd_core::is_video_adaptation(&a)
        || a.representations.iter().any(|r| {
            r.mimeType
                .as_deref()
                .is_some_and(|m| m.starts_with("video/"))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A dynamic MPD in the shape ffmpeg's dash muxer writes (STREAMING.md's recipe).
    const LIVE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="dynamic" minimumUpdatePeriod="PT2S" availabilityStartTime="2026-12-01T00:00:00Z" minBufferTime="PT4S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true">
      <SegmentTemplate timescale="90000" initialization="init-$RepresentationID$.m4s" media="chunk-$RepresentationID$-$Number%05d$.m4s" startNumber="1" duration="180000"/>
      <Representation id="0" codecs="avc1.64001e" bandwidth="800000" width="640" height="360"/>
      <Representation id="1" codecs="avc1.64001f" bandwidth="2500000" width="1280" height="720"/>
      <Representation id="2" codecs="avc1.640028" bandwidth="5000000" width="1920" height="1080"/>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4">
      <Representation id="3" codecs="mp4a.40.2" bandwidth="128000" audioSamplingRate="48000"/>
    </AdaptationSet>
  </Period>
</MPD>"#;

    #[test]
    fn a_live_mpd_reads_and_caps() {
        let m = Mpd::parse(LIVE.as_bytes()).unwrap();
        assert!(m.dynamic());
        assert_eq!(m.minimum_update_period(), Some(Duration::from_secs(2)));
        assert_eq!(m.video_bandwidths(), [800_000, 2_500_000, 5_000_000]);
        let capped = m.cap(3_000_000).unwrap().unwrap();
        let again = Mpd::parse(capped.as_bytes()).unwrap();
        assert_eq!(again.video_bandwidths(), [800_000, 2_500_000]);
        assert!(again.dynamic());
        // The audio and the segment template survive the rewrite.
        assert!(
            capped.contains("mp4a.40.2") && capped.contains("chunk-$RepresentationID$"),
            "{capped}"
        );
        assert_eq!(
            Mpd::parse(m.cap(1).unwrap().unwrap().as_bytes())
                .unwrap()
                .video_bandwidths(),
            [800_000]
        );
        assert!(m.cap(9_000_000).unwrap().is_none());
    }

    proptest::proptest! {
        #[test]
        fn reading_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            if let Ok(m) = Mpd::parse(&body) {
                let _ = m.cap(1_000_000);
            }
        }

        #[test]
        fn mutated_mpds_never_panic(i in 0usize..2000, b in proptest::prelude::any::<u8>()) {
            let mut body = LIVE.as_bytes().to_vec();
            let i = i % body.len();
            body[i] = b;
            if let Ok(m) = Mpd::parse(&body)
                && let Ok(Some(c)) = m.cap(1_000_000)
            {
                proptest::prop_assert!(Mpd::parse(c.as_bytes()).is_ok(), "{}", c);
            }
        }
    }

    #[test]
    fn bad_mpds_are_errors() {
        assert!(matches!(Mpd::parse(b"<MPD"), Err(MpdError::Parse(_))));
        assert!(matches!(Mpd::parse(b"#EXTM3U\n"), Err(MpdError::Parse(_))));
        assert_eq!(Mpd::parse(b"\xff").unwrap_err(), MpdError::Encoding);
        assert!(matches!(
            Mpd::parse(&vec![b' '; MAX_MPD + 1]),
            Err(MpdError::TooLarge { .. })
        ));
    }
}
