//! Live QoE, folded from the edges' `dev.eddy.qoe.samples.v1` batches (player telemetry, CMCD).
//! Pure: no I/O, times passed in; bounded ([`MAX_SESSIONS`], [`MAX_GROUPS`]).
//!
//! Each playback session (`sid`; a sample without one is its own anonymous session and only
//! counts in rates) keeps its newest state: title (`cid`, else the object's directory), edge,
//! last bitrate (`br`), buffer (`bl`), measured throughput (`mtp`), its stalls (`bs`: the buffer
//! ran dry since the player's previous request; or a CMCD v2 play-state report, `e=ps`, of
//! `sta=r`, rebuffering: counted once, with the session's next media request, which may say
//! `bs` of the same stall) and its startup time (from its first request to
//! its first without `su`, the startup flag). A session is live while heard within
//! [`SESSION_IDLE`]. Per title and per edge, over live sessions:
//! - `sessions`; `startup_ms`, the mean startup time of those that have one;
//! - `rebuffers`, stalls in the window ([`WINDOW`]); `rebuffer_ratio`, media requests that
//!   followed a stall over media requests in the window;
//! - `bitrate_kbps` (mean of the sessions' last `br`) and `top_bitrate_kbps` (largest);
//! - `throughput_kbps` and `buffer_ms`, means of the sessions' last `mtp` and `bl`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use eddy_events::{QoeSample, QoeSamples};
use serde::{Deserialize, Serialize};

/// Sessions remembered; past it the longest silent one is forgotten.
pub const MAX_SESSIONS: usize = 20_000;
/// Titles and edges shown, each.
pub const MAX_GROUPS: usize = 200;
/// A session not heard for this long is over.
pub const SESSION_IDLE: Duration = Duration::from_secs(30);
/// Stalls and media requests count over this window.
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct Session {
    title: String,
    edge: String,
    first: SystemTime,
    heard: SystemTime,
    /// Its first request had `su`: the startup can be timed.
    starting: bool,
    startup_ms: Option<f64>,
    br: Option<u32>,
    bl: Option<u32>,
    mtp: Option<u32>,
    /// (when, stalled) of each media request in the window.
    media: VecDeque<(SystemTime, bool)>,
    /// A play-state report said the player is rebuffering since its last media request.
    stall_reported: bool,
}

/// QoE of one title or one edge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QoeGroup {
    /// The title (`cid`) or the edge id.
    pub name: String,
    /// Live sessions.
    pub sessions: u64,
    /// Mean startup time, ms.
    pub startup_ms: Option<f64>,
    /// Stalls in the window.
    pub rebuffers: u64,
    /// Media requests after a stall over media requests, in the window.
    pub rebuffer_ratio: Option<f64>,
    /// Mean of the sessions' last encoded bitrate, kbit/s.
    pub bitrate_kbps: Option<f64>,
    /// The largest of them.
    pub top_bitrate_kbps: Option<u32>,
    /// Mean of the sessions' last measured throughput, kbit/s.
    pub throughput_kbps: Option<f64>,
    /// Mean of the sessions' last buffer length, ms.
    pub buffer_ms: Option<f64>,
}

/// QoE as the dashboard shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QoeView {
    /// Per title, most sessions first.
    pub titles: Vec<QoeGroup>,
    /// Per edge, by id.
    pub edges: Vec<QoeGroup>,
    /// Samples folded in.
    pub samples: u64,
    /// Samples the edges reported dropping.
    pub dropped: u64,
}

/// The fold.
#[derive(Debug, Default)]
pub struct QoeBoard {
    sessions: HashMap<String, Session>,
    samples: u64,
    dropped: u64,
    anonymous: u64,
    batches: u64,
}

/// The title of a sample: its `cid`, else the directory of the object.
fn title_of(s: &QoeSample) -> String {
    match &s.cid {
        Some(c) if !c.is_empty() => c.chars().take(128).collect(),
        _ => s
            .url
            .rsplit_once('/')
            .map_or(s.url.as_str(), |(d, _)| d)
            .chars()
            .take(128)
            .collect(),
    }
}

/// Whether a sample is for media (not a manifest, init segment or key): stalls count on these.
/// A media request: not a manifest, init segment or key, and not a CMCD v2 event report (`e`):
/// a report tells of a request already sampled (`e=rr`) or of the player, so it updates the
/// session's state without counting as a request.
fn is_media(s: &QoeSample) -> bool {
    !matches!(s.ot.as_deref(), Some("m" | "i" | "k")) && s.e.is_none()
}

impl QoeBoard {
    /// Fold in one edge's batch, sent at `sent`.
    pub fn apply(&mut self, batch: &QoeSamples, sent: SystemTime) {
        self.dropped = self.dropped.saturating_add(batch.dropped);
        let since = SystemTime::UNIX_EPOCH + Duration::from_millis(batch.since_ms);
        // A producer clock far off ours: take the event's time.
        let base = if since > sent + Duration::from_secs(5)
            || sent.duration_since(since).unwrap_or_default() > Duration::from_secs(60)
        {
            sent
        } else {
            since
        };
        self.batches += 1;
        if self.batches.is_multiple_of(64) {
            self.sessions.retain(|_, s| {
                sent.duration_since(s.heard).unwrap_or_default() < SESSION_IDLE + WINDOW
            });
        }
        for s in &batch.samples {
            self.samples += 1;
            let at = base + Duration::from_millis(u64::from(s.at_ms.min(60_000)));
            match &s.sid {
                Some(sid) if !sid.is_empty() => self.session(sid, s, &batch.edge, at),
                _ => self.anonymous += 1,
            }
        }
    }

    fn session(&mut self, sid: &str, s: &QoeSample, edge: &str, at: SystemTime) {
        let key: String = sid.chars().take(128).collect();
        if !self.sessions.contains_key(&key) && self.sessions.len() >= MAX_SESSIONS {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, v)| v.heard)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.sessions.remove(&k);
            }
        }
        let e = self.sessions.entry(key).or_insert_with(|| Session {
            title: title_of(s),
            edge: edge.chars().take(128).collect(),
            first: at,
            heard: at,
            starting: s.su,
            startup_ms: None,
            br: None,
            bl: None,
            mtp: None,
            media: VecDeque::new(),
            stall_reported: false,
        });
        e.heard = e.heard.max(at);
        e.edge = edge.chars().take(128).collect();
        if s.cid.is_some() {
            e.title = title_of(s);
        }
        if e.starting && e.startup_ms.is_none() && !s.su && is_media(s) {
            e.startup_ms = Some(at.duration_since(e.first).unwrap_or_default().as_secs_f64() * 1e3);
        }
        // The rendition is the picture's: an audio (or text) track's bitrate is not the session's.
        if !matches!(s.ot.as_deref(), Some("a" | "c" | "tt")) {
            e.br = s.br.or(e.br);
        }
        e.bl = s.bl.or(e.bl);
        e.mtp = s.mtp.or(e.mtp);
        if s.e.as_deref() == Some("ps") && s.sta.as_deref() == Some("r") {
            e.stall_reported = true;
        }
        if is_media(s) {
            let reported = std::mem::take(&mut e.stall_reported);
            let stalled = s.bs || reported;
            e.media.push_back((at, stalled));
            while e.media.len() > 1024 {
                e.media.pop_front();
            }
        }
    }

    /// The view at `now`.
    pub fn snapshot(&self, now: SystemTime) -> QoeView {
        let gone = |heard: SystemTime| now.duration_since(heard).unwrap_or_default();
        let mut titles: BTreeMap<&str, Vec<&Session>> = BTreeMap::new();
        let mut edges: BTreeMap<&str, Vec<&Session>> = BTreeMap::new();
        for s in self.sessions.values() {
            if gone(s.heard) < SESSION_IDLE {
                titles.entry(&s.title).or_default().push(s);
                edges.entry(&s.edge).or_default().push(s);
            }
        }
        let fold = |name: &str, ss: &[&Session]| {
            let mean = |f: &dyn Fn(&Session) -> Option<f64>| {
                let v: Vec<f64> = ss.iter().filter_map(|s| f(s)).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            };
            let recent = |s: &Session| {
                s.media
                    .iter()
                    .filter(|(t, _)| gone(*t) <= WINDOW)
                    .map(|(_, b)| *b)
                    .collect::<Vec<bool>>()
            };
            let (mut media, mut stalls) = (0u64, 0u64);
            for s in ss {
                let r = recent(s);
                media += r.len() as u64;
                stalls += r.iter().filter(|b| **b).count() as u64;
            }
            QoeGroup {
                name: name.to_string(),
                sessions: ss.len() as u64,
                startup_ms: mean(&|s| s.startup_ms),
                rebuffers: stalls,
                rebuffer_ratio: (media > 0).then(|| stalls as f64 / media as f64),
                bitrate_kbps: mean(&|s| s.br.map(f64::from)),
                top_bitrate_kbps: ss.iter().filter_map(|s| s.br).max(),
                throughput_kbps: mean(&|s| s.mtp.map(f64::from)),
                buffer_ms: mean(&|s| s.bl.map(f64::from)),
            }
        };
        let mut titles: Vec<QoeGroup> = titles.iter().map(|(n, ss)| fold(n, ss)).collect();
        titles.sort_by(|a, b| b.sessions.cmp(&a.sessions).then(a.name.cmp(&b.name)));
        titles.truncate(MAX_GROUPS);
        let mut edges: Vec<QoeGroup> = edges.iter().map(|(n, ss)| fold(n, ss)).collect();
        edges.truncate(MAX_GROUPS);
        QoeView {
            titles,
            edges,
            samples: self.samples,
            dropped: self.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(sid: &str, at_ms: u32, br: u32, bl: u32, bs: bool, su: bool) -> QoeSample {
        QoeSample {
            url: "v.test/vod/v0/seg.m4s".into(),
            at_ms,
            sid: Some(sid.into()),
            cid: Some("show".into()),
            ot: Some("av".into()),
            br: Some(br),
            bl: Some(bl),
            mtp: Some(4000),
            bs,
            su,
            ..Default::default()
        }
    }

    #[test]
    fn sessions_fold_into_titles_and_edges() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ms = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64
        };
        let mut b = QoeBoard::default();
        b.apply(
            &QoeSamples {
                edge: "e1".into(),
                since_ms: ms(t0),
                samples: vec![
                    sample("a", 0, 1200, 0, false, true),
                    sample("a", 400, 1200, 2000, false, false),
                    sample("a", 800, 600, 1000, true, false),
                    sample("b", 100, 2300, 6000, false, false),
                    // An event report (v2 event mode) is no media request of its own.
                    QoeSample {
                        e: Some("rr".into()),
                        ..sample("b", 200, 2300, 6000, true, false)
                    },
                    // An audio request's bitrate is not the session's rendition.
                    QoeSample {
                        ot: Some("a".into()),
                        ..sample("b", 300, 64, 6000, false, false)
                    },
                    // A play-state report of rebuffering is a stall, counted with the next
                    // media request (once, though that request says `bs` of it too) ...
                    QoeSample {
                        e: Some("ps".into()),
                        sta: Some("r".into()),
                        ..sample("c", 100, 600, 0, false, false)
                    },
                    sample("c", 500, 600, 0, true, false),
                    sample("c", 900, 600, 4000, false, false),
                    // ... and another state is not.
                    QoeSample {
                        e: Some("ps".into()),
                        sta: Some("p".into()),
                        ..sample("c", 1000, 600, 4000, false, false)
                    },
                    sample("c", 1100, 600, 4000, false, false),
                    // A player that reports the stall but flags no `bs`: still a stall.
                    QoeSample {
                        e: Some("ps".into()),
                        sta: Some("r".into()),
                        ..sample("d", 100, 600, 0, false, false)
                    },
                    sample("d", 700, 600, 2000, false, false),
                ],
                dropped: 2,
            },
            t0 + Duration::from_secs(1),
        );
        b.apply(
            &QoeSamples {
                edge: "e2".into(),
                since_ms: ms(t0),
                samples: vec![QoeSample {
                    sid: None,
                    ..sample("", 0, 1, 1, false, false)
                }],
                dropped: 0,
            },
            t0 + Duration::from_secs(1),
        );
        let v = b.snapshot(t0 + Duration::from_secs(2));
        assert_eq!((v.samples, v.dropped), (14, 2));
        assert_eq!(v.titles.len(), 1);
        let t = &v.titles[0];
        assert_eq!((t.name.as_str(), t.sessions, t.rebuffers), ("show", 4, 3));
        assert_eq!(t.rebuffer_ratio, Some(3.0 / 9.0));
        // a: 400 ms to its first request without su; b's first request was not startup.
        assert_eq!(t.startup_ms, Some(400.0));
        assert_eq!(t.bitrate_kbps, Some((600.0 + 2300.0 + 600.0 + 600.0) / 4.0));
        assert_eq!(t.top_bitrate_kbps, Some(2300));
        assert_eq!(t.buffer_ms, Some((1000.0 + 6000.0 + 4000.0 + 2000.0) / 4.0));
        assert_eq!(v.edges.len(), 1);
        // Quiet sessions end.
        let later = b.snapshot(t0 + SESSION_IDLE + Duration::from_secs(5));
        assert!(later.titles.is_empty());
    }

    #[test]
    fn sessions_are_bounded() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut b = QoeBoard::default();
        let samples: Vec<_> = (0..MAX_SESSIONS + 50)
            .map(|i| sample(&format!("s{i}"), 0, 1, 1, false, false))
            .collect();
        b.apply(
            &QoeSamples {
                edge: "e".into(),
                since_ms: 1_000_000_000,
                samples,
                dropped: 0,
            },
            t0,
        );
        assert_eq!(b.sessions.len(), MAX_SESSIONS);
    }
}

/// Label of a QoE gauge: `scope` is `title` or `edge`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct GroupLabel {
    /// `title` or `edge`.
    pub scope: &'static str,
    /// The title or the edge id.
    pub name: String,
}

type FloatGauges = prometheus_client::metrics::family::Family<
    GroupLabel,
    prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
>;

/// The QoE view as Prometheus gauges, per title and per edge (set from each snapshot; a group
/// that ends disappears).
#[derive(Default)]
pub struct QoeMetrics {
    gauges: Vec<(&'static str, FloatGauges)>,
}

/// Name, help, and the value of a group.
type Series = (&'static str, &'static str, fn(&QoeGroup) -> Option<f64>);

const SERIES: [Series; 8] = [
    ("qoe_sessions", "Live playback sessions", |g| {
        Some(g.sessions as f64)
    }),
    (
        "qoe_startup_seconds",
        "Mean startup time of live sessions",
        |g| g.startup_ms.map(|m| m / 1e3),
    ),
    ("qoe_rebuffers", "Stalls in the last 60 s", |g| {
        Some(g.rebuffers as f64)
    }),
    (
        "qoe_rebuffer_ratio",
        "Media requests after a stall over media requests, last 60 s",
        |g| g.rebuffer_ratio,
    ),
    (
        "qoe_bitrate_kbps",
        "Mean of the sessions' current encoded bitrate",
        |g| g.bitrate_kbps,
    ),
    (
        "qoe_top_bitrate_kbps",
        "Largest current encoded bitrate of a session",
        |g| g.top_bitrate_kbps.map(f64::from),
    ),
    (
        "qoe_throughput_kbps",
        "Mean throughput the players measured",
        |g| g.throughput_kbps,
    ),
    (
        "qoe_buffer_seconds",
        "Mean buffer length of the players",
        |g| g.buffer_ms.map(|m| m / 1e3),
    ),
];

impl QoeMetrics {
    /// Register the gauges in `registry`.
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> QoeMetrics {
        let mut gauges = Vec::new();
        for (name, help, _) in SERIES {
            let family = FloatGauges::default();
            registry.register(name, help, family.clone());
            gauges.push((name, family));
        }
        QoeMetrics { gauges }
    }

    /// Show `view`.
    pub fn set(&self, view: &QoeView) {
        for ((_, family), (_, _, value)) in self.gauges.iter().zip(SERIES) {
            family.clear();
            for (scope, groups) in [("title", &view.titles), ("edge", &view.edges)] {
                for g in groups {
                    if let Some(v) = value(g) {
                        family
                            .get_or_create(&GroupLabel {
                                scope,
                                name: g.name.clone(),
                            })
                            .set(v);
                    }
                }
            }
        }
    }
}
