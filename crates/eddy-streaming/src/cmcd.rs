//! CMCD (CTA-5004 v1, CTA-5004-B v2) as players send it.
//!
//! Three transmissions carry the same keys (../shared/design/STREAMING.md, "Transmission modes"):
//! - query: one `CMCD=` parameter, its value a percent-encoded dictionary ([`Cmcd::from_query`]);
//! - headers: `CMCD-Object`, `CMCD-Request`, `CMCD-Session`, `CMCD-Status`, each a dictionary
//!   holding its shard of the keys ([`Cmcd::from_headers`]);
//! - v2 event mode: a `POST` body of `application/cmcd`, one dictionary per line
//!   ([`reports`]).
//!
//! v1 and v2 are both RFC 8941 dictionaries; they differ in value shapes. v1 sends a bitrate as an
//! Integer (`br=2306`), v2 as an Inner List with object-type parameters (`br=(2000;v 96;a)`), and
//! hls.js sends decimals (`lb=(655.6)`). Whatever the shape, a rate or duration is read as one
//! non-negative whole number of the key's unit: an Inner List folds by the key's meaning (the sum
//! of per-type bitrates, the shortest per-type buffer), and a Decimal rounds.
//!
//! Strictness: a known key with the wrong type (`br="x"`, `su=5`, `ot=zz`) refuses the whole
//! report, since a player that gets one key wrong cannot be trusted on the others. Keys this crate
//! does not model (custom `com.example-x` keys, keys of later versions) are counted in
//! [`Cmcd::skipped`] and otherwise ignored, as CTA-5004 asks of receivers.

use sfv::{BareItemFromInput as BareItem, GenericBareItem as B, Parser};

mod members;
use members::{Entry, Members};
use thiserror::Error;

/// Longest CMCD data read from one request (query value or the four headers together). hls.js
/// sends about 300 bytes; v2 with every key stays under 1 KiB.
pub const MAX_BYTES: usize = 4096;
/// Longest event-report body read from one `POST`.
pub const MAX_REPORT_BODY: usize = 64 * 1024;
/// Most reports read from one event-report body.
pub const MAX_REPORTS: usize = 256;
/// Most `nor` entries kept from one request.
pub const MAX_NEXT: usize = 4;
/// Content id limit (CTA-5004 §3.3: "maximum length is 128 characters").
pub const MAX_CID: usize = 128;
/// Session id limit (CTA-5004 §3.3: "maximum length is 64 characters").
pub const MAX_SID: usize = 64;
/// Longest URL-like string kept (`nor`, `url`).
pub const MAX_URL: usize = 2048;

/// Why CMCD data was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CmcdError {
    #[error("CMCD data is {len} bytes; an edge reads at most {max}")]
    TooLong { len: usize, max: usize },
    #[error(
        "the CMCD query value is not percent-encoded UTF-8; encode it as hls.js does (encodeURIComponent)"
    )]
    Encoding,
    #[error(
        "CMCD data is not an RFC 8941 dictionary ({0}); send key=value pairs separated by commas"
    )]
    Syntax(String),
    #[error("CMCD key `{key}` must be {expected}")]
    Value {
        key: &'static str,
        expected: &'static str,
    },
    #[error("CMCD key `{key}` is longer than its limit of {max} characters")]
    ValueTooLong { key: &'static str, max: usize },
    #[error("CMCD version {0} is not one this edge reads (1 and 2 are)")]
    Version(i64),
    #[error("CMCD event report {line}: {error}")]
    Report { line: usize, error: Box<CmcdError> },
    #[error("a CMCD event body holds more than {0} reports; send them in smaller batches")]
    TooManyReports(usize),
}

/// `ot`: what kind of object the request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// `m`: a manifest or playlist.
    Manifest,
    /// `a`: audio only.
    Audio,
    /// `v`: video only.
    Video,
    /// `av`: muxed audio and video.
    Muxed,
    /// `i`: an init segment.
    Init,
    /// `c`: captions or subtitles.
    Caption,
    /// `tt`: ISOBMFF timed text.
    TimedText,
    /// `k`: a content key or licence.
    Key,
    /// `o`: anything else.
    Other,
}

/// `sf`: the streaming format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamingFormat {
    /// `d`: MPEG-DASH.
    Dash,
    /// `h`: HLS.
    Hls,
    /// `s`: Smooth Streaming.
    Smooth,
    /// `o`: other.
    Other,
}

/// `st`: the stream type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// `v`: video on demand.
    Vod,
    /// `l`: live.
    Live,
    /// `ll`: low-latency live (v2).
    LowLatency,
}

/// `sta` (v2): the player's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayerState {
    /// `s`
    Starting,
    /// `p`
    Playing,
    /// `k`
    Seeking,
    /// `r`
    Rebuffering,
    /// `a`
    Paused,
    /// `e`
    Ended,
    /// `f`
    Fatal,
    /// `q`
    Quit,
    /// `d`
    Preloading,
}

/// `e` (v2): why an event report was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `bc`: bitrate change.
    BitrateChange,
    /// `ps`: play state change.
    PlayState,
    /// `pr`: playback rate change.
    PlaybackRate,
    /// `e`: error.
    Error,
    /// `t`: time interval.
    Interval,
    /// `rr`: response received.
    ResponseReceived,
    /// Another event (ad, mute, skip, custom): its token, kept for counting.
    Other(String),
}

/// A byte range `first-last`, `last` open (`None`) when the range runs to the end.
pub type ByteRange = (u64, Option<u64>);

/// One object the player will ask for next (`nor`, with `nrr` or v2's `r` parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextObject {
    /// Relative to the request URL, as the player sent it.
    pub url: String,
    /// Its byte range, when it is a range of the object.
    pub range: Option<ByteRange>,
}

/// What one request, or one event report, said. Rates are kbps, durations and times ms, as
/// CTA-5004 defines them; `None`/`false` when the key was absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cmcd {
    /// `v`: 1 when absent.
    pub version: u8,
    // CMCD-Object
    /// `br`: encoded bitrate of this object.
    pub br: Option<u32>,
    /// `d`: playback duration of this object.
    pub d: Option<u32>,
    /// `ot`: object type.
    pub ot: Option<ObjectType>,
    /// `tb`: top bitrate the player may pick.
    pub tb: Option<u32>,
    /// `lb` (v2): lowest bitrate.
    pub lb: Option<u32>,
    // CMCD-Request
    /// `bl`: buffer length.
    pub bl: Option<u32>,
    /// `dl`: deadline, how soon the player needs this object.
    pub dl: Option<u32>,
    /// `mtp`: throughput the player measured.
    pub mtp: Option<u32>,
    /// `nor` (with `nrr` in v1): the next objects.
    pub next: Vec<NextObject>,
    /// `su`: startup or urgent.
    pub su: bool,
    /// `sn` (v2): report sequence number.
    pub sn: Option<u64>,
    /// `sta` (v2): player state.
    pub sta: Option<PlayerState>,
    /// `pb` (v2): bitrate at the playhead.
    pub pb: Option<u32>,
    /// `ltc` (v2): live latency.
    pub ltc: Option<u32>,
    /// `tbl` (v2): target buffer length.
    pub tbl: Option<u32>,
    // CMCD-Session
    /// `cid`: content id.
    pub cid: Option<String>,
    /// `sid`: session id.
    pub sid: Option<String>,
    /// `sf`: streaming format.
    pub sf: Option<StreamingFormat>,
    /// `st`: stream type.
    pub st: Option<StreamType>,
    /// `msd` (v2): media start delay, sent once.
    pub msd: Option<u32>,
    // CMCD-Status
    /// `bs`: the buffer ran dry since the last request.
    pub bs: bool,
    /// `rtp`: throughput the player asks the server to deliver at.
    pub rtp: Option<u32>,
    /// `pr`: playback rate, 1.0 when absent.
    pub pr: Option<f64>,
    /// `bsa` (v2): starvation count (or duration) since the last report, folded to one number.
    pub bsa: Option<u32>,
    /// `bsd` (v2): starvation duration.
    pub bsd: Option<u32>,
    /// `pt` (v2): playhead time.
    pub pt: Option<u64>,
    // v2 event and response reports
    /// `e`: the event.
    pub e: Option<EventKind>,
    /// `ts`: when the report was made, epoch ms.
    pub ts: Option<u64>,
    /// `rc`: response status (0: none).
    pub rc: Option<u16>,
    /// `ttfb`: time to first byte.
    pub ttfb: Option<u32>,
    /// `ttlb`: time to last byte.
    pub ttlb: Option<u32>,
    /// `url`: the request URL before redirects.
    pub url: Option<String>,
    /// Keys read but not modelled here (custom and later-version keys).
    pub skipped: u16,
}

/// How an Inner List of per-media-type numbers folds to one.
#[derive(Clone, Copy)]
enum Fold {
    /// Bitrates: the object's (or the player's) rate is the sum over its media types.
    Sum,
    /// Buffers: playback stops when the shortest runs out.
    Min,
    /// Everything else: the largest.
    Max,
}

impl Cmcd {
    /// Read the `CMCD` parameter of a raw query string (`a=1&CMCD=bl%3D0...`). `Ok(None)` when the
    /// query has none. The name is matched exactly, as players send it.
    pub fn from_query(query: &str) -> Result<Option<Cmcd>, CmcdError> {
        let Some(raw) = query_value(query) else {
            return Ok(None);
        };
        if raw.len() > MAX_BYTES * 3 {
            return Err(CmcdError::TooLong {
                len: raw.len(),
                max: MAX_BYTES,
            });
        }
        // A query is form-encoded: `+` is a space (dash.js's URLSearchParams writes the space
        // between an inner list's members so: `br=(600;v+64;a)`); a literal `+` is `%2B`.
        let spaced;
        let raw = if raw.contains('+') {
            spaced = raw.replace('+', " ");
            spaced.as_str()
        } else {
            raw
        };
        // Decoded into one buffer of the right size (the crate's own grows it byte by byte).
        let mut decoded = Vec::with_capacity(raw.len());
        decoded.extend(percent_encoding::percent_decode_str(raw));
        if std::str::from_utf8(&decoded).is_err() {
            return Err(CmcdError::Encoding);
        }
        Cmcd::parse(&decoded).map(Some)
    }

    /// Read the four `CMCD-*` request headers from `(name, value)` pairs (other fields are passed
    /// over; names match in any case). `Ok(None)` when none is present. Together they form one
    /// dictionary; a key sent twice keeps its last value, as RFC 8941 §4.2.2 says.
    pub fn from_headers<'a>(
        fields: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Option<Cmcd>, CmcdError> {
        let mut joined: Vec<u8> = Vec::new();
        for (name, value) in fields {
            if !is_cmcd_header(name) {
                continue;
            }
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(value);
            if joined.len() > MAX_BYTES {
                return Err(CmcdError::TooLong {
                    len: joined.len(),
                    max: MAX_BYTES,
                });
            }
        }
        if joined.is_empty() {
            return Ok(None);
        }
        Cmcd::parse(&joined).map(Some)
    }

    /// Read one dictionary of CMCD keys, of either version.
    pub fn parse(data: &[u8]) -> Result<Cmcd, CmcdError> {
        if data.len() > MAX_BYTES {
            return Err(CmcdError::TooLong {
                len: data.len(),
                max: MAX_BYTES,
            });
        }
        let dict = Parser::new(data)
            .with_version(sfv::Version::Rfc8941)
            .parse_dictionary_with_visitor(Members::default())
            .map_err(|e| CmcdError::Syntax(e.to_string()))?;
        let mut c = Cmcd {
            version: 1,
            ..Cmcd::default()
        };
        let mut nrr = None;
        for (key, entry) in dict.iter() {
            c.apply(key, entry, &mut nrr)?;
        }
        // v1's `nrr` is the range of the (single) next object.
        if let Some(range) = nrr
            && let Some(first) = c.next.first_mut()
            && first.range.is_none()
        {
            first.range = Some(range);
        }
        Ok(c)
    }

    fn apply(
        &mut self,
        key: &str,
        entry: Entry<'_, '_>,
        nrr: &mut Option<(u64, Option<u64>)>,
    ) -> Result<(), CmcdError> {
        match key {
            "v" => {
                let v = int(entry, "v")?;
                self.version = match v {
                    1 => 1,
                    2 => 2,
                    other => return Err(CmcdError::Version(other)),
                };
            }
            "br" => self.br = Some(number(entry, "br", Fold::Sum)?),
            "d" => self.d = Some(number(entry, "d", Fold::Max)?),
            "ot" => {
                self.ot = Some(choice(
                    entry,
                    "ot",
                    "one of the tokens m, a, v, av, i, c, tt, k, o",
                    OBJECT_TYPES,
                )?)
            }
            "tb" => self.tb = Some(number(entry, "tb", Fold::Sum)?),
            "lb" => self.lb = Some(number(entry, "lb", Fold::Sum)?),
            "bl" => self.bl = Some(number(entry, "bl", Fold::Min)?),
            "dl" => self.dl = Some(number(entry, "dl", Fold::Min)?),
            "mtp" => self.mtp = Some(number(entry, "mtp", Fold::Max)?),
            "nor" => self.next = next_objects(entry)?,
            "nrr" => *nrr = Some(range(string(entry, "nrr", 64)?, "nrr")?),
            "su" => self.su = flag(entry, "su")?,
            "sn" => self.sn = Some(whole(entry, "sn")?),
            "sta" => {
                self.sta = Some(choice(
                    entry,
                    "sta",
                    "one of the tokens s, p, k, r, a, e, f, q, d",
                    PLAYER_STATES,
                )?)
            }
            "pb" => self.pb = Some(number(entry, "pb", Fold::Sum)?),
            "ltc" => self.ltc = Some(number(entry, "ltc", Fold::Max)?),
            "tbl" => self.tbl = Some(number(entry, "tbl", Fold::Min)?),
            "cid" => self.cid = Some(string(entry, "cid", MAX_CID)?.to_owned()),
            "sid" => self.sid = Some(string(entry, "sid", MAX_SID)?.to_owned()),
            "sf" => {
                self.sf = Some(choice(
                    entry,
                    "sf",
                    "one of the tokens d, h, s, o",
                    STREAMING_FORMATS,
                )?)
            }
            "st" => {
                self.st = Some(choice(
                    entry,
                    "st",
                    "one of the tokens v, l, ll",
                    STREAM_TYPES,
                )?)
            }
            "msd" => self.msd = Some(number(entry, "msd", Fold::Max)?),
            "bs" => self.bs = flag(entry, "bs")?,
            "rtp" => self.rtp = Some(number(entry, "rtp", Fold::Sum)?),
            "pr" => self.pr = Some(rate(entry)?),
            "bsa" => self.bsa = Some(number(entry, "bsa", Fold::Max)?),
            "bsd" => self.bsd = Some(number(entry, "bsd", Fold::Max)?),
            "pt" => self.pt = Some(whole(entry, "pt")?),
            "e" => self.e = Some(event_kind(entry)?),
            "ts" => self.ts = Some(whole(entry, "ts")?),
            "rc" => {
                let rc = whole(entry, "rc")?;
                self.rc = Some(u16::try_from(rc).ok().filter(|s| *s < 1000).ok_or(
                    CmcdError::Value {
                        key: "rc",
                        expected: "an HTTP status (0-999)",
                    },
                )?);
            }
            "ttfb" => self.ttfb = Some(number(entry, "ttfb", Fold::Max)?),
            "ttlb" => self.ttlb = Some(number(entry, "ttlb", Fold::Max)?),
            "url" => self.url = Some(string(entry, "url", MAX_URL)?.to_owned()),
            _ => self.skipped = self.skipped.saturating_add(1),
        }
        Ok(())
    }

    /// The paths (with their query) of the next objects, resolved against the path of the request
    /// that carried them (`/v/720p/seg_3.m4s` and `nor="seg_4.m4s"` give `/v/720p/seg_4.m4s`) and
    /// normalised by `eddy-url`, so they name what the cache names. A `nor` that is an absolute
    /// URL or a network path (`//host/...`) is dropped: a player does not get to point an edge at
    /// another site. So is one that does not normalise.
    pub fn next_paths(&self, request_path: &str, opts: eddy_url::PathOptions) -> Vec<String> {
        self.next_objects(request_path, opts)
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    /// [`Cmcd::next_paths`] with each object's byte range (`nrr`, or v2's `r`), when it has one.
    pub fn next_objects(
        &self,
        request_path: &str,
        opts: eddy_url::PathOptions,
    ) -> Vec<(String, Option<ByteRange>)> {
        self.next
            .iter()
            .filter_map(|n| Some((resolve(request_path, &n.url, opts)?, n.range)))
            .collect()
    }
}

/// Whether a field name is one of the four CMCD request headers.
pub fn is_cmcd_header(name: &str) -> bool {
    ["cmcd-object", "cmcd-request", "cmcd-session", "cmcd-status"]
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// The raw (still percent-encoded) value of the first `CMCD` parameter of a query.
pub fn query_value(query: &str) -> Option<&str> {
    query.split('&').find_map(|pair| pair.strip_prefix("CMCD="))
}

/// Read a v2 event-report body (`application/cmcd`): one dictionary per line, blank lines passed
/// over. A line that does not read refuses the body (naming the line), so a player learns of it.
pub fn reports(body: &[u8]) -> Result<Vec<Cmcd>, CmcdError> {
    if body.len() > MAX_REPORT_BODY {
        return Err(CmcdError::TooLong {
            len: body.len(),
            max: MAX_REPORT_BODY,
        });
    }
    let mut out = Vec::new();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        if out.len() == MAX_REPORTS {
            return Err(CmcdError::TooManyReports(MAX_REPORTS));
        }
        let report = Cmcd::parse(line).map_err(|e| CmcdError::Report {
            line: i + 1,
            error: Box::new(e),
        })?;
        out.push(report);
    }
    Ok(out)
}

fn item<'a, 'de>(
    entry: Entry<'a, 'de>,
    key: &'static str,
    expected: &'static str,
) -> Result<&'a BareItem<'de>, CmcdError> {
    match entry {
        Entry::Item(i) => Ok(&i.value),
        Entry::InnerList(_) => Err(CmcdError::Value { key, expected }),
    }
}

/// An Integer or a Decimal as a float; `None` for any other type.
fn as_f64(b: &BareItem) -> Option<f64> {
    match b {
        B::Integer(n) => Some(i64::from(*n) as f64),
        B::Decimal(d) => Some(f64::from(*d)),
        _ => None,
    }
}

/// A non-negative number from an Integer or a Decimal, rounded, capped at `u32::MAX`.
fn one_number(b: &BareItem) -> Option<u32> {
    let f = as_f64(b)?;
    (f >= 0.0).then(|| f.round().min(u32::MAX as f64) as u32)
}

fn number(entry: Entry, key: &'static str, fold: Fold) -> Result<u32, CmcdError> {
    const EXPECTED: &str = "a non-negative number, or an inner list of them";
    let bad = || CmcdError::Value {
        key,
        expected: EXPECTED,
    };
    match entry {
        Entry::Item(i) => one_number(&i.value).ok_or_else(bad),
        Entry::InnerList(l) => {
            let mut acc: Option<u32> = None;
            for i in l {
                let n = one_number(&i.value).ok_or_else(bad)?;
                acc = Some(match (acc, fold) {
                    (None, _) => n,
                    (Some(a), Fold::Sum) => a.saturating_add(n),
                    (Some(a), Fold::Min) => a.min(n),
                    (Some(a), Fold::Max) => a.max(n),
                });
            }
            acc.ok_or_else(bad)
        }
    }
}

fn int(entry: Entry, key: &'static str) -> Result<i64, CmcdError> {
    match item(entry, key, "an integer")? {
        B::Integer(n) => Ok(i64::from(*n)),
        _ => Err(CmcdError::Value {
            key,
            expected: "an integer",
        }),
    }
}

fn whole(entry: Entry, key: &'static str) -> Result<u64, CmcdError> {
    u64::try_from(int(entry, key)?).map_err(|_| CmcdError::Value {
        key,
        expected: "a non-negative integer",
    })
}

fn flag(entry: Entry, key: &'static str) -> Result<bool, CmcdError> {
    match item(entry, key, "a bare key (true) or ?0")? {
        B::Boolean(b) => Ok(*b),
        _ => Err(CmcdError::Value {
            key,
            expected: "a bare key (true) or ?0",
        }),
    }
}

fn string<'a>(entry: Entry<'a, '_>, key: &'static str, max: usize) -> Result<&'a str, CmcdError> {
    match item(entry, key, "a quoted string")? {
        B::String(s) if s.as_str().len() <= max => Ok(s.as_str()),
        B::String(_) => Err(CmcdError::ValueTooLong { key, max }),
        _ => Err(CmcdError::Value {
            key,
            expected: "a quoted string",
        }),
    }
}

fn token<'a>(
    entry: Entry<'a, '_>,
    key: &'static str,
    expected: &'static str,
) -> Result<&'a str, CmcdError> {
    match item(entry, key, expected)? {
        B::Token(t) => Ok(t.as_str()),
        _ => Err(CmcdError::Value { key, expected }),
    }
}

/// Tokens of the enumerated keys, as CTA-5004 spells them. CMSD writes through the same tables.
pub(crate) const OBJECT_TYPES: &[(&str, ObjectType)] = &[
    ("m", ObjectType::Manifest),
    ("a", ObjectType::Audio),
    ("v", ObjectType::Video),
    ("av", ObjectType::Muxed),
    ("i", ObjectType::Init),
    ("c", ObjectType::Caption),
    ("tt", ObjectType::TimedText),
    ("k", ObjectType::Key),
    ("o", ObjectType::Other),
];
pub(crate) const STREAMING_FORMATS: &[(&str, StreamingFormat)] = &[
    ("d", StreamingFormat::Dash),
    ("h", StreamingFormat::Hls),
    ("s", StreamingFormat::Smooth),
    ("o", StreamingFormat::Other),
];
pub(crate) const STREAM_TYPES: &[(&str, StreamType)] = &[
    ("v", StreamType::Vod),
    ("l", StreamType::Live),
    ("ll", StreamType::LowLatency),
];
const PLAYER_STATES: &[(&str, PlayerState)] = &[
    ("s", PlayerState::Starting),
    ("p", PlayerState::Playing),
    ("k", PlayerState::Seeking),
    ("r", PlayerState::Rebuffering),
    ("a", PlayerState::Paused),
    ("e", PlayerState::Ended),
    ("f", PlayerState::Fatal),
    ("q", PlayerState::Quit),
    ("d", PlayerState::Preloading),
];

/// The value of an enumerated key: one of `table`'s tokens.
fn choice<T: Copy>(
    entry: Entry,
    key: &'static str,
    expected: &'static str,
    table: &[(&str, T)],
) -> Result<T, CmcdError> {
    let t = token(entry, key, expected)?;
    table
        .iter()
        .find(|(name, _)| *name == t)
        .map(|(_, v)| *v)
        .ok_or(CmcdError::Value { key, expected })
}

impl ObjectType {
    /// The token CTA-5004 spells it with (`av`, `i`, ...).
    pub fn token(self) -> &'static str {
        token_of(OBJECT_TYPES, self)
    }
}

impl PlayerState {
    /// The token CTA-5004 spells it with (`p`, `r`, ...).
    pub fn token(self) -> &'static str {
        token_of(PLAYER_STATES, self)
    }
}

impl EventKind {
    /// The token CTA-5004 spells it with (`bc`, `ps`, ...).
    pub fn token(&self) -> &str {
        match self {
            EventKind::BitrateChange => "bc",
            EventKind::PlayState => "ps",
            EventKind::PlaybackRate => "pr",
            EventKind::Error => "e",
            EventKind::Interval => "t",
            EventKind::ResponseReceived => "rr",
            EventKind::Other(t) => t,
        }
    }
}

/// The token of an enumerated value, from its table.
pub(crate) fn token_of<T: Copy + PartialEq>(table: &[(&'static str, T)], v: T) -> &'static str {
    table
        .iter()
        .find(|(_, x)| *x == v)
        .map_or("o", |(name, _)| name)
}

fn event_kind(entry: Entry) -> Result<EventKind, CmcdError> {
    Ok(match token(entry, "e", "a token")? {
        "bc" => EventKind::BitrateChange,
        "ps" => EventKind::PlayState,
        "pr" => EventKind::PlaybackRate,
        "e" => EventKind::Error,
        "t" => EventKind::Interval,
        "rr" => EventKind::ResponseReceived,
        // A token is at most a header's length; keep it short, it is only counted.
        other => EventKind::Other(other.chars().take(32).collect()),
    })
}

fn rate(entry: Entry) -> Result<f64, CmcdError> {
    const E: &str = "a positive number";
    as_f64(item(entry, "pr", E)?)
        .filter(|f| *f > 0.0)
        .ok_or(CmcdError::Value {
            key: "pr",
            expected: E,
        })
}

/// `first-last` or `first-`.
fn range(s: &str, key: &'static str) -> Result<(u64, Option<u64>), CmcdError> {
    let bad = || CmcdError::Value {
        key,
        expected: "a byte range first-last or first- (first <= last)",
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let first = crate::decimal_u64(a).ok_or_else(bad)?;
    let last = if b.is_empty() {
        None
    } else {
        Some(crate::decimal_u64(b).ok_or_else(bad)?)
    };
    if last.is_some_and(|l| l < first) {
        return Err(bad());
    }
    Ok((first, last))
}

/// `nor`: a String in v1, an Inner List of Strings each with an optional `r` range in v2.
fn next_objects(entry: Entry) -> Result<Vec<NextObject>, CmcdError> {
    const E: &str =
        "a quoted relative URL, or an inner list of them with an optional r=\"first-last\"";
    let bad = || CmcdError::Value {
        key: "nor",
        expected: E,
    };
    let one = |b: &members::Bare| -> Result<NextObject, CmcdError> {
        let B::String(url) = &b.value else {
            return Err(bad());
        };
        let url = url.as_str();
        if url.len() > MAX_URL {
            return Err(CmcdError::ValueTooLong {
                key: "nor",
                max: MAX_URL,
            });
        }
        let range = match &b.r {
            None => None,
            Some(B::String(r)) => Some(range(r.as_str(), "nor")?),
            Some(_) => return Err(bad()),
        };
        Ok(NextObject {
            url: url.to_owned(),
            range,
        })
    };
    match entry {
        Entry::Item(i) => Ok(vec![one(i)?]),
        Entry::InnerList(l) => l.iter().take(MAX_NEXT).map(one).collect(),
    }
}

/// Resolve `rel` (percent-encoded, as `nor` or a playlist URI carries it) against the path
/// `base` (RFC 3986 §5.2.2, for a reference without authority), normalised as cache keys are;
/// `None` for a reference that leaves the site (a scheme, `//`) or does not read.
pub fn resolve(base: &str, rel: &str, opts: eddy_url::PathOptions) -> Option<String> {
    // CTA-5004: `nor` is URL-encoded (hls.js applies encodeURIComponent), so `../480p/x.m4s`
    // arrives as `..%2F480p%2Fx.m4s`. Decode once, then judge the path it names.
    let decoded = percent_encoding::percent_decode_str(rel)
        .decode_utf8()
        .ok()?;
    let rel = decoded.as_ref();
    if rel.is_empty() || rel.starts_with("//") || has_scheme(rel) || rel.contains('#') {
        return None;
    }
    let base_path = base.split(['?', '#']).next().unwrap_or("");
    let joined = if rel.starts_with('/') {
        rel.to_owned()
    } else if rel.starts_with('?') {
        format!("{base_path}{rel}")
    } else {
        let dir = base_path.rfind('/').map_or("/", |i| &base_path[..=i]);
        let dir = if dir.starts_with('/') { dir } else { "/" };
        format!("{dir}{rel}")
    };
    eddy_url::path(joined.as_bytes(), opts).ok()
}

/// Whether `s` starts with an RFC 3986 scheme and a colon (`https:`, `data:`).
fn has_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut b = scheme.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        && !scheme.contains('/')
}

#[cfg(test)]
mod tests;
