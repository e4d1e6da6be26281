//! Media playlists, LL-HLS included: read from an origin, written by the demo packager.
//!
//! Media Sequence Numbers are kept per segment, counted from `EXT-X-MEDIA-SEQUENCE` plus the
//! segments a delta update skipped (`EXT-X-SKIP`). Parts after the last complete segment belong to
//! the segment being made, whose number is [`MediaPlaylist::next_msn`].

use std::fmt::Write as _;

use super::{PlaylistError, Value, attr, attributes, cut, lines};

/// `EXT-X-PLAYLIST-TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistType {
    Vod,
    Event,
}

/// `EXT-X-SERVER-CONTROL`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerControl {
    pub can_block_reload: bool,
    /// Seconds; delta updates may skip segments older than this.
    pub can_skip_until: Option<f64>,
    pub can_skip_dateranges: bool,
    pub hold_back: Option<f64>,
    pub part_hold_back: Option<f64>,
}

/// `EXT-X-PART`.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    /// Seconds.
    pub duration: f64,
    pub independent: bool,
    pub gap: bool,
}

/// One media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media Sequence Number.
    pub msn: u64,
    pub uri: String,
    /// Seconds (`EXTINF`).
    pub duration: f64,
    /// Its parts, as the playlist still lists them (old segments lose theirs).
    pub parts: Vec<Part>,
    pub discontinuity: bool,
    pub program_date_time: Option<String>,
    /// The `EXT-X-MAP` URI in force when it appears (written again only when it changes).
    pub map: Option<String>,
}

/// `EXT-X-PRELOAD-HINT`.
#[derive(Debug, Clone, PartialEq)]
pub struct PreloadHint {
    /// `TYPE=PART` (true) or `TYPE=MAP`.
    pub part: bool,
    pub uri: String,
    pub byterange_start: Option<u64>,
    pub byterange_length: Option<u64>,
}

/// `EXT-X-RENDITION-REPORT`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionReport {
    pub uri: String,
    pub last_msn: Option<u64>,
    pub last_part: Option<u64>,
}

/// A media playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaPlaylist {
    pub version: Option<u32>,
    /// Seconds (`EXT-X-TARGETDURATION`).
    pub target_duration: u64,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub playlist_type: Option<PlaylistType>,
    pub independent_segments: bool,
    /// Seconds (`EXT-X-PART-INF:PART-TARGET`): set on LL-HLS playlists.
    pub part_target: Option<f64>,
    pub server_control: ServerControl,
    /// `EXT-X-SKIP:SKIPPED-SEGMENTS` of a delta update.
    pub skipped_segments: u64,
    pub segments: Vec<Segment>,
    /// Parts of the segment being made ([`MediaPlaylist::next_msn`]).
    pub parts_in_progress: Vec<Part>,
    /// An `EXT-X-DISCONTINUITY` before the segment being made (its parts and hints).
    pub in_progress_discontinuity: bool,
    /// An `EXT-X-MAP` before the segment being made (a playlist with no complete segment yet).
    pub in_progress_map: Option<String>,
    pub preload_hints: Vec<PreloadHint>,
    pub rendition_reports: Vec<RenditionReport>,
    /// `EXT-X-ENDLIST`.
    pub ended: bool,
    /// Tags read but not modelled (counted, not kept).
    pub other_tags: usize,
}

/// Largest media sequence number read (2^53: exact in every player's arithmetic), so sums of
/// sequence numbers and counts never overflow.
pub const MAX_SEQUENCE: u64 = 1 << 53;

fn line_err(line: usize, what: impl Into<String>) -> PlaylistError {
    PlaylistError::Line {
        line,
        what: what.into(),
    }
}

/// A duration in seconds: a finite, non-negative decimal.
fn seconds(s: &str) -> Option<f64> {
    let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    ok.then(|| s.parse::<f64>().ok())
        .flatten()
        .filter(|f| f.is_finite())
}

fn yes(v: Option<Value<'_>>) -> bool {
    matches!(v, Some(Value::Plain("YES")))
}

impl MediaPlaylist {
    /// Read a media playlist. Unknown tags are passed over (counted in `other_tags`); a known tag
    /// with a bad value, a URI without `EXTINF`, or a multivariant playlist is an error naming
    /// the line.
    pub fn parse(body: &[u8]) -> Result<MediaPlaylist, PlaylistError> {
        let mut p = MediaPlaylist::default();
        let mut target = None;
        let mut pending: Option<f64> = None;
        let mut parts: Vec<Part> = Vec::new();
        let mut discontinuity = false;
        let mut pdt: Option<String> = None;
        let mut map: Option<String> = None;
        let mut map_changed = false;
        for (n, line) in lines(body)? {
            if line.is_empty() {
                continue;
            }
            if !line.starts_with('#') {
                if line.chars().any(char::is_control) {
                    return Err(line_err(n, "a control character in a URI"));
                }
                let duration = pending
                    .take()
                    .ok_or_else(|| line_err(n, format!("URI {:?} without #EXTINF", cut(line))))?;
                let msn = p.media_sequence + p.skipped_segments + p.segments.len() as u64;
                p.segments.push(Segment {
                    msn,
                    uri: line.to_owned(),
                    duration,
                    parts: std::mem::take(&mut parts),
                    discontinuity: std::mem::take(&mut discontinuity),
                    program_date_time: pdt.take(),
                    map: if std::mem::take(&mut map_changed) {
                        map.clone()
                    } else {
                        None
                    },
                });
                continue;
            }
            let Some(tag) = line.strip_prefix("#EXT") else {
                continue; // a comment
            };
            let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
            let bad = |what: &str| line_err(n, format!("#EXT{name}: {what}"));
            match name {
                "INF" => {
                    let d = value.split(',').next().unwrap_or("");
                    pending = Some(seconds(d).ok_or_else(|| bad("a duration in seconds"))?);
                }
                "-X-TARGETDURATION" => {
                    target = Some(crate::decimal_u64(value).ok_or_else(|| bad("whole seconds"))?);
                }
                "-X-MEDIA-SEQUENCE" | "-X-DISCONTINUITY-SEQUENCE" | "-X-VERSION" => {
                    let v = crate::decimal_u64(value)
                        .filter(|v| *v <= MAX_SEQUENCE)
                        .ok_or_else(|| bad("an integer up to 2^53"))?;
                    if !p.segments.is_empty() && name != "-X-VERSION" {
                        return Err(bad("must come before the first segment"));
                    }
                    match name {
                        "-X-MEDIA-SEQUENCE" => p.media_sequence = v,
                        "-X-DISCONTINUITY-SEQUENCE" => p.discontinuity_sequence = v,
                        _ => p.version = Some(u32::try_from(v).map_err(|_| bad("a version"))?),
                    }
                }
                "-X-PLAYLIST-TYPE" => {
                    p.playlist_type = Some(match value {
                        "VOD" => PlaylistType::Vod,
                        "EVENT" => PlaylistType::Event,
                        _ => return Err(bad("VOD or EVENT")),
                    });
                }
                "-X-ENDLIST" => p.ended = true,
                "-X-INDEPENDENT-SEGMENTS" => p.independent_segments = true,
                "-X-DISCONTINUITY" => discontinuity = true,
                "-X-PROGRAM-DATE-TIME" => pdt = Some(value.to_owned()),
                "-X-MAP" => {
                    let a = attributes(value).map_err(|e| bad(&e))?;
                    let uri = attr(&a, "URI").ok_or_else(|| bad("URI is required"))?;
                    map = Some(uri.as_str().to_owned());
                    map_changed = true;
                }
                "-X-PART-INF" => {
                    let a = attributes(value).map_err(|e| bad(&e))?;
                    let t = attr(&a, "PART-TARGET")
                        .and_then(|v| seconds(v.as_str()))
                        .ok_or_else(|| bad("PART-TARGET in seconds is required"))?;
                    p.part_target = Some(t);
                }
                "-X-SERVER-CONTROL" => {
                    let a = attributes(value).map_err(|e| bad(&e))?;
                    let secs = |k: &str| -> Result<Option<f64>, PlaylistError> {
                        attr(&a, k)
                            .map(|v| {
                                seconds(v.as_str()).ok_or_else(|| bad(&format!("{k} in seconds")))
                            })
                            .transpose()
                    };
                    p.server_control = ServerControl {
                        can_block_reload: yes(attr(&a, "CAN-BLOCK-RELOAD")),
                        can_skip_until: secs("CAN-SKIP-UNTIL")?,
                        can_skip_dateranges: yes(attr(&a, "CAN-SKIP-DATERANGES")),
                        hold_back: secs("HOLD-BACK")?,
                        part_hold_back: secs("PART-HOLD-BACK")?,
                    };
                }
                "-X-SKIP" => {
                    let a = attributes(value).map_err(|e| bad(&e))?;
                    if !p.segments.is_empty() {
                        return Err(bad("must come before the first segment"));
                    }
                    p.skipped_segments = attr(&a, "SKIPPED-SEGMENTS")
                        .and_then(|v| crate::decimal_u64(v.as_str()))
                        .filter(|v| *v <= MAX_SEQUENCE)
                        .ok_or_else(|| bad("SKIPPED-SEGMENTS is required"))?;
                }
                "-X-PART" => {
                    let a = attributes(value).map_err(|e| bad(&e))?;
                    parts.push(Part {
                        uri: attr(&a, "URI")
                            .ok_or_else(|| bad("URI is required"))?
                            .as_str()
                            .to_owned(),
                        duration: attr(&a, "DURATION")
                            .and_then(|v| seconds(v.as_str()))
                            .ok_or_else(|| bad("DURATION in seconds is required"))?,
                        independent: yes(attr(&a, "INDEPENDENT")),
                        gap: yes(attr(&a, "GAP")),
                    });
                }
                "-X-PRELOAD-HINT" => {
                    let a = attributes(value).map_err(|e| bad(&e))?;
                    let part = match attr(&a, "TYPE").map(|v| v.as_str()) {
                        Some("PART") => true,
                        Some("MAP") => false,
                        _ => return Err(bad("TYPE=PART or TYPE=MAP is required")),
                    };
                    let int = |k: &str| -> Result<Option<u64>, PlaylistError> {
                        attr(&a, k)
                            .map(|v| {
                                crate::decimal_u64(v.as_str())
                                    .ok_or_else(|| bad(&format!("{k} an integer")))
                            })
                            .transpose()
                    };
                    p.preload_hints.push(PreloadHint {
                        part,
                        uri: attr(&a, "URI")
                            .ok_or_else(|| bad("URI is required"))?
                            .as_str()
                            .to_owned(),
                        byterange_start: int("BYTERANGE-START")?,
                        byterange_length: int("BYTERANGE-LENGTH")?,
                    });
                }
                "-X-RENDITION-REPORT" => {
                    let a = attributes(value).map_err(|e| bad(&e))?;
                    let int = |k: &str| attr(&a, k).and_then(|v| crate::decimal_u64(v.as_str()));
                    p.rendition_reports.push(RenditionReport {
                        uri: attr(&a, "URI")
                            .ok_or_else(|| bad("URI is required"))?
                            .as_str()
                            .to_owned(),
                        last_msn: int("LAST-MSN"),
                        last_part: int("LAST-PART"),
                    });
                }
                "-X-STREAM-INF" | "-X-I-FRAME-STREAM-INF" | "-X-MEDIA" => {
                    return Err(bad("a multivariant playlist tag in a media playlist"));
                }
                _ => p.other_tags += 1,
            }
        }
        if pending.is_some() {
            return Err(PlaylistError::Missing("a URI after the last #EXTINF"));
        }
        p.target_duration = target.ok_or(PlaylistError::Missing("#EXT-X-TARGETDURATION"))?;
        p.parts_in_progress = parts;
        p.in_progress_discontinuity = discontinuity;
        p.in_progress_map = if map_changed { map } else { None };
        if p.next_msn() > MAX_SEQUENCE {
            return Err(PlaylistError::Line {
                line: 0,
                what: format!("media sequence numbers past {MAX_SEQUENCE}"),
            });
        }
        Ok(p)
    }

    /// The Media Sequence Number of the segment after the last complete one: the one being made
    /// when parts are in progress.
    pub fn next_msn(&self) -> u64 {
        self.media_sequence + self.skipped_segments + self.segments.len() as u64
    }

    /// The newest part: `(msn, part index)`, if the playlist has parts.
    pub fn last_part(&self) -> Option<(u64, u64)> {
        if let Some(i) = self.parts_in_progress.len().checked_sub(1) {
            return Some((self.next_msn(), i as u64));
        }
        let last = self.segments.last()?;
        let i = last.parts.len().checked_sub(1)?;
        Some((last.msn, i as u64))
    }

    /// Whether the playlist holds segment `msn` complete (`part` `None`), or part `part` of it or
    /// anything later; an ended playlist holds everything it ever will. What a blocking reload
    /// waits for.
    pub fn has(&self, msn: u64, part: Option<u64>) -> bool {
        if self.ended {
            return true;
        }
        let next = self.next_msn();
        match part {
            None => msn < next,
            Some(p) => msn < next || (msn == next && (self.parts_in_progress.len() as u64) > p),
        }
    }

    /// The playlist in canonical text.
    pub fn write(&self) -> String {
        let mut o = String::with_capacity(64 + self.segments.len() * 64);
        o.push_str("#EXTM3U\n");
        if let Some(v) = self.version {
            let _ = writeln!(o, "#EXT-X-VERSION:{v}");
        }
        let _ = writeln!(o, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        let sc = &self.server_control;
        if *sc != ServerControl::default() {
            let mut a = Vec::new();
            if sc.can_block_reload {
                a.push("CAN-BLOCK-RELOAD=YES".to_owned());
            }
            if let Some(s) = sc.can_skip_until {
                a.push(format!("CAN-SKIP-UNTIL={}", num(s)));
            }
            if sc.can_skip_dateranges {
                a.push("CAN-SKIP-DATERANGES=YES".to_owned());
            }
            if let Some(s) = sc.hold_back {
                a.push(format!("HOLD-BACK={}", num(s)));
            }
            if let Some(s) = sc.part_hold_back {
                a.push(format!("PART-HOLD-BACK={}", num(s)));
            }
            let _ = writeln!(o, "#EXT-X-SERVER-CONTROL:{}", a.join(","));
        }
        if let Some(t) = self.part_target {
            let _ = writeln!(o, "#EXT-X-PART-INF:PART-TARGET={}", num(t));
        }
        let _ = writeln!(o, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence != 0 {
            let _ = writeln!(
                o,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        match self.playlist_type {
            Some(PlaylistType::Vod) => o.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
            Some(PlaylistType::Event) => o.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            None => {}
        }
        if self.independent_segments {
            o.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        if self.skipped_segments > 0 {
            let _ = writeln!(o, "#EXT-X-SKIP:SKIPPED-SEGMENTS={}", self.skipped_segments);
        }
        for s in &self.segments {
            if let Some(m) = &s.map {
                let _ = writeln!(o, "#EXT-X-MAP:URI=\"{m}\"");
            }
            if s.discontinuity {
                o.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(d) = &s.program_date_time {
                let _ = writeln!(o, "#EXT-X-PROGRAM-DATE-TIME:{d}");
            }
            write_parts(&mut o, &s.parts);
            let _ = writeln!(o, "#EXTINF:{},\n{}", num(s.duration), s.uri);
        }
        if let Some(m) = &self.in_progress_map {
            let _ = writeln!(o, "#EXT-X-MAP:URI=\"{m}\"");
        }
        if self.in_progress_discontinuity {
            o.push_str("#EXT-X-DISCONTINUITY\n");
        }
        write_parts(&mut o, &self.parts_in_progress);
        for h in &self.preload_hints {
            let _ = write!(
                o,
                "#EXT-X-PRELOAD-HINT:TYPE={},URI=\"{}\"",
                if h.part { "PART" } else { "MAP" },
                h.uri
            );
            if let Some(s) = h.byterange_start {
                let _ = write!(o, ",BYTERANGE-START={s}");
            }
            if let Some(l) = h.byterange_length {
                let _ = write!(o, ",BYTERANGE-LENGTH={l}");
            }
            o.push('\n');
        }
        for r in &self.rendition_reports {
            let _ = write!(o, "#EXT-X-RENDITION-REPORT:URI=\"{}\"", r.uri);
            if let Some(m) = r.last_msn {
                let _ = write!(o, ",LAST-MSN={m}");
            }
            if let Some(p) = r.last_part {
                let _ = write!(o, ",LAST-PART={p}");
            }
            o.push('\n');
        }
        if self.ended {
            o.push_str("#EXT-X-ENDLIST\n");
        }
        o
    }
}

fn write_parts(o: &mut String, parts: &[Part]) {
    for p in parts {
        let _ = write!(
            o,
            "#EXT-X-PART:DURATION={},URI=\"{}\"",
            num(p.duration),
            p.uri
        );
        if p.independent {
            o.push_str(",INDEPENDENT=YES");
        }
        if p.gap {
            o.push_str(",GAP=YES");
        }
        o.push('\n');
    }
}

/// A decimal with at most three places, no trailing zeros (`2`, `0.5`, `1.001`).
fn num(f: f64) -> String {
    let s = format!("{f:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".into()
    } else {
        s.to_owned()
    }
}
