//! Adaptive-quality guard: when players' QoE degrades, steer them down to a bitrate their
//! throughput carries, and lift the cap step by step once QoE recovers.
//!
//! An edge feeds its guard every CMCD sample it reads ([`Guard::observe`]) and asks it for
//! decisions once a second or so ([`Guard::decide`]). The guard judges three scopes: each title
//! (`cid`) on this edge, each client network (the sample's `net`: players behind one network
//! share its last mile, whatever they watch), and the edge as a whole.
//!
//! A media request (CMCD object type `v`, `av`, or none with a bitrate) is a sign of trouble when
//! - the buffer ran dry since the player's previous request (`bs`), once it held a second of
//!   media and left startup (`su`): **starvation** (before that, a dry buffer is the start);
//! - a VOD player outside startup (`su`) whose buffer fell below [`GuardConfig::low_buffer_ms`]
//!   (`bl`) after it once held twice that: **low buffer** (a buffer still filling after the
//!   start is not trouble; live players run short buffers by design, so only starvation and
//!   throughput judge them);
//! - the throughput the player measured (`mtp`) is below the bitrate it pulls (`br`):
//!   **throughput**.
//!
//! A title is degraded when at least [`GuardConfig::degraded_share`] of its sessions heard within
//! [`GuardConfig::window`] showed a sign within it. Then the guard caps the title at the highest
//! rung of its ladder that the slowest troubled session's throughput carries with
//! [`GuardConfig::headroom`] (one rung below what they pull when no throughput is known), never
//! below the lowest rung and only ever down. Once no sign was seen for [`GuardConfig::recover`],
//! the cap rises one rung, when the sessions' throughput carries that rung (a cap with no
//! session heard stays: no news is not recovery; once nobody was heard for eight windows there
//! is nobody left to steer and it is lifted); the top rung lifts the cap altogether. A scope
//! changes at most once per [`GuardConfig::hold`], so players steered by it switch at most that
//! often.
//!
//! A client network is degraded when at least [`GuardConfig::network_share`] of its sessions
//! showed a sign, a lower share than a title's: behind one shared link the players take turns
//! at trouble (one measures the link while the others idle), so one troubled player in three
//! is the link, not the player. It is capped like a title, on the rungs of the titles its
//! players watch; the cap binds every player in it.
//!
//! A cap that rose (or was lifted) and met trouble again within [`GuardConfig::recover`] rose
//! too soon: the scope then waits twice as long before its next rise (up to
//! 2^[`GuardConfig::backoff`] times), and a rise that holds for `recover` halves the wait again.
//! Players sharing a link each measure it while the others idle, so their throughput says a
//! rung fits when it does not; the wait keeps the guard from probing it every few seconds.
//!
//! The ladder of a title is what its players report of its media objects: the bitrates they
//! pull (`br`) and their top bitrate (`tb`); an audio track's bitrates are not rungs. A cap is
//! always one of those rungs, so a decision never raises a cap above what the origin offers.
//!
//! The edge is degraded when at least [`GuardConfig::edge_sessions`] sessions over two titles or
//! more are in trouble and they are at least the degraded share of its sessions: the trouble is
//! the edge, not one title. Its cap is half the bitrate the troubled sessions pull, and rises by
//! half again per step until it passes every title's top.
//!
//! Pure: no clock of its own (callers pass `now`), no I/O. Bounded: [`GuardConfig::sessions`]
//! sessions, [`GuardConfig::titles`] titles, [`LADDER`] rungs per title.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use eddy_events::QoeSample;

/// Rungs kept per title.
pub const LADDER: usize = 16;
/// Throughput readings kept per session.
const READINGS: usize = 8;
/// A session has started once it reported this much buffer (ms).
const STARTED_MS: u32 = 1_000;

/// Guard settings.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Signs of trouble, and sessions, count over this window.
    pub window: Duration,
    /// Least time between two decisions of one scope.
    pub hold: Duration,
    /// Time without a sign of trouble before a cap rises a rung.
    pub recover: Duration,
    /// A VOD player holding less than this (ms) is short of buffer.
    pub low_buffer_ms: u32,
    /// A cap fits within throughput × headroom.
    pub headroom: f64,
    /// Share of a scope's sessions in trouble that degrades it.
    pub degraded_share: f64,
    /// Sessions in trouble, over two titles or more, that degrade the edge.
    pub edge_sessions: usize,
    /// Sessions kept; past it the longest silent one is forgotten.
    pub sessions: usize,
    /// Titles kept; past it the longest silent one is forgotten.
    pub titles: usize,
    /// Share of a client network's sessions in trouble that degrades it.
    pub network_share: f64,
    /// Client networks kept; past it the longest silent one without a cap is forgotten.
    pub networks: usize,
    /// A scope whose cap rose too soon waits up to 2^this × `recover` before it rises again.
    pub backoff: u32,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            window: Duration::from_secs(4),
            hold: Duration::from_secs(4),
            recover: Duration::from_secs(8),
            low_buffer_ms: 3_000,
            headroom: 0.8,
            degraded_share: 0.5,
            edge_sessions: 4,
            sessions: 10_000,
            titles: 1_024,
            network_share: 0.25,
            networks: 10_000,
            backoff: 3,
        }
    }
}

/// What a decision is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One title (`cid`) on this edge.
    Title(String),
    /// One client network (`203.0.113.0/24`): every player in it.
    Network(String),
    /// This edge, every title.
    Edge,
}

/// Why the guard decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// Players' buffers ran dry.
    Starvation,
    /// VOD players ran short of buffer (the shortest, ms).
    LowBuffer(u32),
    /// Players measured less throughput than the bitrate they pull (kbit/s).
    Throughput {
        /// The slowest troubled session's throughput.
        measured_kbps: u32,
        /// What it pulled.
        bitrate_kbps: u32,
    },
    /// No sign of trouble for the recovery time.
    Recovered,
}

impl Reason {
    /// The reason's token, as events and metrics carry it.
    pub fn token(&self) -> &'static str {
        match self {
            Reason::Starvation => "starvation",
            Reason::LowBuffer(_) => "low_buffer",
            Reason::Throughput { .. } => "throughput",
            Reason::Recovered => "recovered",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Starvation => f.write_str("players' buffers ran dry"),
            Reason::LowBuffer(ms) => write!(f, "a VOD player's buffer fell to {ms} ms"),
            Reason::Throughput {
                measured_kbps,
                bitrate_kbps,
            } => write!(
                f,
                "players measured {measured_kbps} kbit/s while pulling {bitrate_kbps} kbit/s"
            ),
            Reason::Recovered => f.write_str("QoE recovered"),
        }
    }
}

/// One decision: the scope's cap from now on.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Which players it steers.
    pub scope: Scope,
    /// The cap, kbit/s; `None`: lifted.
    pub cap_kbps: Option<u32>,
    /// The cap before.
    pub previous_kbps: Option<u32>,
    /// Why.
    pub reason: Reason,
    /// Sessions in the scope, heard within the window.
    pub sessions: u32,
    /// Of them, in trouble.
    pub troubled: u32,
}

#[derive(Debug, Clone)]
struct Session {
    title: String,
    heard: Instant,
    /// When it last showed a sign of trouble, and which.
    trouble: Option<(Instant, Reason)>,
    /// The client network it plays from.
    net: Option<String>,
    /// Last bitrate pulled.
    br: Option<u32>,
    /// The most buffer (ms) it reported holding.
    peak_bl: u32,
    /// Recent throughput readings.
    mtp: Vec<(Instant, u32)>,
}

#[derive(Debug, Clone, Default)]
struct Cap {
    cap: Option<u32>,
    changed: Option<Instant>,
    /// When it last rose, while that rise is still on trial.
    rose: Option<Instant>,
    /// Rises that met trouble within `recover`: the next waits 2^this × `recover`.
    backoff: u32,
}

#[derive(Debug, Clone)]
struct Network {
    heard: Instant,
    cap: Cap,
}

#[derive(Debug, Clone)]
struct Title {
    heard: Instant,
    ladder: BTreeSet<u32>,
    cap: Cap,
}

/// The cap in force where a title's own cap and the edge's meet: the lower, or whichever is set.
pub fn lower(title: Option<u32>, edge: Option<u32>) -> Option<u32> {
    match (title, edge) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Cap {
    /// Hold `to` from `now` on, and say so.
    fn set(
        &mut self,
        scope: Scope,
        to: Option<u32>,
        reason: Reason,
        sessions: usize,
        troubled: usize,
        now: Instant,
    ) -> Decision {
        let previous = self.cap;
        self.cap = to;
        self.changed = Some(now);
        // A rise, or a lift: on trial until `recover` passes without trouble.
        self.rose = match (to, previous) {
            (Some(t), Some(p)) if t > p => Some(now),
            (None, Some(_)) => Some(now),
            _ => None,
        };
        Decision {
            scope,
            cap_kbps: to,
            previous_kbps: previous,
            reason,
            sessions: count(sessions),
            troubled: count(troubled),
        }
    }
}

/// One edge's guard.
#[derive(Debug)]
pub struct Guard {
    config: GuardConfig,
    sessions: HashMap<String, Session>,
    titles: HashMap<String, Title>,
    networks: HashMap<String, Network>,
    edge: Cap,
    /// The largest top bitrate any title reported: an edge cap at or past it is lifted.
    edge_top: u32,
}

/// Whether a sample is of a media object: video, muxed, or unknown type with a bitrate.
fn is_media(s: &QoeSample) -> bool {
    match s.ot.as_deref() {
        Some("v" | "av") => true,
        None => s.br.is_some(),
        Some(_) => false,
    }
}

/// The title of a request for `url` (`host/path`, no query) whose CMCD carries content id
/// `cid`: the `cid`, else the object's directory (`/vod` for `host/vod/seg-1.m4s`).
pub fn title(cid: Option<&str>, url: &str) -> String {
    title_in(cid, url).to_string()
}

/// [`title`], borrowed from what it is made of.
fn title_in<'a>(cid: Option<&'a str>, url: &'a str) -> &'a str {
    if let Some(cid) = cid {
        return cid;
    }
    let path = url.find('/').map_or("", |i| &url[i..]);
    path.rsplit_once('/').map_or(path, |(dir, _)| dir)
}

impl Guard {
    /// A guard with these settings.
    pub fn new(config: GuardConfig) -> Guard {
        Guard {
            config,
            sessions: HashMap::new(),
            titles: HashMap::new(),
            networks: HashMap::new(),
            edge: Cap::default(),
            edge_top: 0,
        }
    }

    /// The cap now in force for a title: the lower of its own and the edge's.
    pub fn cap(&self, title: &str) -> Option<u32> {
        lower(
            self.titles.get(title).and_then(|t| t.cap.cap),
            self.edge.cap,
        )
    }

    /// The cap a client network holds of its own.
    pub fn network_cap(&self, net: &str) -> Option<u32> {
        self.networks.get(net).and_then(|n| n.cap.cap)
    }

    /// Take one sample read at `now`.
    pub fn observe(&mut self, s: &QoeSample, now: Instant) {
        let Some(sid) = &s.sid else { return };
        // Read for every CMCD request: nothing is allocated for a known title and session.
        let title = title_in(s.cid.as_deref(), &s.url);
        remember(&mut self.titles, title, now, self.config.titles);
        if let Some(t) = self.titles.get_mut(title) {
            let rates = [s.br, s.tb].into_iter().filter(|_| is_media(s));
            for rate in rates.flatten() {
                if rate > 0 && t.ladder.len() < LADDER {
                    t.ladder.insert(rate);
                }
                self.edge_top = self.edge_top.max(rate);
            }
        }
        if let Some(net) = &s.net {
            remember(&mut self.networks, net, now, self.config.networks);
        }
        if !self.sessions.contains_key(sid.as_str()) {
            if self.sessions.len() >= self.config.sessions {
                let oldest = self.sessions.iter().min_by_key(|(_, v)| v.heard);
                if let Some(k) = oldest.map(|(k, _)| k.clone()) {
                    self.sessions.remove(&k);
                }
            }
            self.sessions.insert(
                sid.clone(),
                Session {
                    title: title.to_string(),
                    heard: now,
                    trouble: None,
                    net: None,
                    br: None,
                    peak_bl: 0,
                    mtp: Vec::new(),
                },
            );
        }
        let Some(session) = self.sessions.get_mut(sid.as_str()) else {
            return;
        };
        session.heard = now;
        if session.title != title {
            session.title = title.to_string();
        }
        if session.net != s.net {
            session.net.clone_from(&s.net);
        }
        // A stall shows on whatever the player asks for next; rates only on media objects.
        let media = is_media(s);
        if media {
            if let Some(br) = s.br {
                session.br = Some(br);
            }
            if let Some(mtp) = s.mtp {
                if session.mtp.len() >= READINGS {
                    session.mtp.remove(0);
                }
                session.mtp.push((now, mtp));
            }
        }
        let throughput = match (s.mtp, s.br) {
            (Some(mtp), Some(br)) if media && mtp < br => Some(Reason::Throughput {
                measured_kbps: mtp,
                bitrate_kbps: br,
            }),
            _ => None,
        };
        // Low only once it fell: a buffer still filling after the start is not trouble.
        let fell = session.peak_bl >= self.config.low_buffer_ms.saturating_mul(2);
        let low_buffer = match s.bl {
            Some(bl) if media && !s.live && !s.su && bl < self.config.low_buffer_ms && fell => {
                Some(Reason::LowBuffer(bl))
            }
            _ => None,
        };
        // A player that never held a second of media has not started: a `bs` then is the
        // start itself (dash.js flags the first requests after its initial `waiting`).
        let started = session.peak_bl >= STARTED_MS && !s.su;
        if media && let Some(bl) = s.bl {
            session.peak_bl = session.peak_bl.max(bl);
        }
        let starved = s.bs && started;
        let sign = starved
            .then_some(Reason::Starvation)
            .or(throughput)
            .or(low_buffer);
        if let Some(why) = sign {
            session.trouble = Some((now, why));
        }
    }

    /// The decisions due at `now`, titles first, then client networks, then the edge.
    pub fn decide(&mut self, now: Instant) -> Vec<Decision> {
        let cfg = self.config.clone();
        let heard = |s: &Session| now.saturating_duration_since(s.heard) <= cfg.window;
        let troubled = |s: &Session| {
            s.trouble
                .is_some_and(|(at, _)| now.saturating_duration_since(at) <= cfg.window)
        };
        // One pass over the sessions per grouping: per title (and per client network), those
        // heard in the window and the last time any of them (heard lately or not) was in trouble.
        let by_title = group(self.sessions.values(), |s| Some(s.title.as_str()), heard);
        let mut out = Vec::new();
        for (name, title) in self.titles.iter_mut() {
            let held = Held {
                cap: &mut title.cap,
                ladder: &title.ladder,
                heard: title.heard,
                share: cfg.degraded_share,
            };
            let scope = || Scope::Title(name.clone());
            out.extend(review(
                &cfg,
                held,
                by_title.get(name.as_str()),
                troubled,
                scope,
                now,
            ));
        }
        // Client networks: the same judgement at a lower share, on the rungs of what their
        // players watch.
        let by_net = group(self.sessions.values(), |s| s.net.as_deref(), heard);
        for (name, net) in self.networks.iter_mut() {
            let members = by_net.get(name.as_str());
            let mut ladder = BTreeSet::new();
            for s in members.map_or(&[][..], |(v, _)| &v[..]) {
                if let Some(t) = self.titles.get(&s.title) {
                    ladder.extend(t.ladder.iter().copied());
                }
            }
            if ladder.is_empty() && net.cap.cap.is_none() {
                continue;
            }
            if let Some(c) = net.cap.cap {
                // The rung it holds stays a rung while its players are gone.
                ladder.insert(c);
            }
            let held = Held {
                cap: &mut net.cap,
                ladder: &ladder,
                heard: net.heard,
                share: cfg.network_share,
            };
            let scope = || Scope::Network(name.clone());
            out.extend(review(&cfg, held, members, troubled, scope, now));
        }
        // The edge: trouble over two titles or more, and a share of all its sessions.
        let all: Vec<&Session> = self.sessions.values().filter(|s| heard(s)).collect();
        let bad: Vec<&Session> = all.iter().copied().filter(|s| troubled(s)).collect();
        let bad_titles: BTreeSet<&str> = bad.iter().map(|s| s.title.as_str()).collect();
        let degraded = bad.len() >= cfg.edge_sessions
            && bad_titles.len() >= 2
            && bad.len() as f64 >= cfg.degraded_share * all.len() as f64;
        let last_trouble = by_title.values().filter_map(|(_, t)| *t).max();
        self.edge.trial(&cfg, last_trouble, now);
        let wait = self.edge.wait(&cfg);
        let calm = last_trouble.is_none_or(|at| now.saturating_duration_since(at) >= wait);
        let may_change = self
            .edge
            .changed
            .is_none_or(|at| now.saturating_duration_since(at) >= cfg.hold);
        let previous = self.edge.cap;
        let next = match (may_change, degraded, previous) {
            (false, _, _) => None,
            (true, true, _) => {
                let pulled = bad.iter().filter_map(|s| s.br).max().unwrap_or(0);
                let cap = (pulled / 2).max(1);
                let why = bad.iter().find_map(|s| s.trouble.map(|(_, r)| r));
                match why {
                    Some(why) if pulled > 0 && previous.is_none_or(|c| cap < c) => {
                        Some((Some(cap), why))
                    }
                    _ => None,
                }
            }
            (true, false, Some(c)) if calm => {
                let up = c.saturating_add(c / 2).max(c.saturating_add(1));
                Some(((up < self.edge_top).then_some(up), Reason::Recovered))
            }
            (true, false, _) => None,
        };
        if let Some((cap, reason)) = next {
            out.push(
                self.edge
                    .set(Scope::Edge, cap, reason, all.len(), bad.len(), now),
            );
        }
        // Forget sessions long silent, and networks without a cap nobody was heard from.
        let keep = cfg.window * 8;
        self.sessions
            .retain(|_, s| now.saturating_duration_since(s.heard) <= keep);
        self.networks
            .retain(|_, n| n.cap.cap.is_some() || now.saturating_duration_since(n.heard) <= keep);
        out
    }
}

/// What the guard keeps of a title or a client network: when it was heard, and its cap.
trait Kept {
    fn new(now: Instant) -> Self;
    fn heard(&self) -> Instant;
    fn hear(&mut self, now: Instant);
    fn cap(&self) -> &Cap;
}

impl Kept for Title {
    fn new(now: Instant) -> Title {
        Title {
            heard: now,
            ladder: BTreeSet::new(),
            cap: Cap::default(),
        }
    }
    fn heard(&self) -> Instant {
        self.heard
    }
    fn hear(&mut self, now: Instant) {
        self.heard = now;
    }
    fn cap(&self) -> &Cap {
        &self.cap
    }
}

impl Kept for Network {
    fn new(now: Instant) -> Network {
        Network {
            heard: now,
            cap: Cap::default(),
        }
    }
    fn heard(&self) -> Instant {
        self.heard
    }
    fn hear(&mut self, now: Instant) {
        self.heard = now;
    }
    fn cap(&self) -> &Cap {
        &self.cap
    }
}

/// Note `key` heard at `now`, keeping at most `limit`: past it the longest silent one without a
/// cap is forgotten (a capped one is kept until lifted); when every one is capped, the new one
/// is not kept.
fn remember<T: Kept>(map: &mut HashMap<String, T>, key: &str, now: Instant, limit: usize) {
    if let Some(t) = map.get_mut(key) {
        t.hear(now);
        return;
    }
    if map.len() >= limit {
        let oldest = map
            .iter()
            .filter(|(_, t)| t.cap().cap.is_none())
            .min_by_key(|(_, t)| t.heard());
        match oldest.map(|(k, _)| k.clone()) {
            Some(k) => {
                map.remove(&k);
            }
            None => return,
        }
    }
    map.insert(key.to_string(), T::new(now));
}

/// A title or a client network as [`judge`] sees it.
struct Held<'a> {
    cap: &'a mut Cap,
    /// The rungs its cap may take.
    ladder: &'a BTreeSet<u32>,
    /// When any of its players was last heard.
    heard: Instant,
    /// Share of its sessions in trouble that degrades it.
    share: f64,
}

impl Cap {
    /// Judge the rise on trial, if any: trouble within `recover` of it doubles the wait before
    /// the next rise; none halves it.
    fn trial(&mut self, cfg: &GuardConfig, last_trouble: Option<Instant>, now: Instant) {
        let Some(rose) = self.rose else { return };
        if last_trouble.is_some_and(|at| at > rose) {
            self.backoff = (self.backoff + 1).min(cfg.backoff);
            self.rose = None;
        } else if now.saturating_duration_since(rose) >= cfg.recover {
            self.backoff = self.backoff.saturating_sub(1);
            self.rose = None;
        }
    }

    /// How long the scope must be calm before its cap rises.
    fn wait(&self, cfg: &GuardConfig) -> Duration {
        cfg.recover * (1u32 << self.backoff.min(cfg.backoff).min(16))
    }
}

/// Sessions grouped by `key` (those without one in none): per group, those `heard` lately and
/// the last time any of them was in trouble.
fn group<'a>(
    sessions: impl Iterator<Item = &'a Session>,
    key: impl Fn(&'a Session) -> Option<&'a str>,
    heard: impl Fn(&Session) -> bool,
) -> HashMap<&'a str, (Vec<&'a Session>, Option<Instant>)> {
    let mut groups: HashMap<&str, (Vec<&Session>, Option<Instant>)> = HashMap::new();
    for s in sessions {
        let Some(k) = key(s) else { continue };
        let entry = groups.entry(k).or_default();
        if heard(s) {
            entry.0.push(s);
        }
        entry.1 = entry.1.max(s.trouble.map(|(at, _)| at));
    }
    groups
}

/// Judge a title or network whose sessions (heard lately, and when any was last in trouble)
/// are `members`: its rise on trial first, then its next cap, held and returned as the
/// decision of `scope`.
fn review(
    cfg: &GuardConfig,
    held: Held<'_>,
    members: Option<&(Vec<&Session>, Option<Instant>)>,
    troubled: impl Fn(&Session) -> bool,
    scope: impl FnOnce() -> Scope,
    now: Instant,
) -> Option<Decision> {
    let (sessions, last_trouble) = members.map_or((&[][..], None), |(v, t)| (&v[..], *t));
    let bad: Vec<&Session> = sessions.iter().copied().filter(|s| troubled(s)).collect();
    held.cap.trial(cfg, last_trouble, now);
    let (to, reason) = judge(cfg, &held, sessions, &bad, last_trouble, now)?;
    Some(
        held.cap
            .set(scope(), to, reason, sessions.len(), bad.len(), now),
    )
}

/// One title's or network's next cap and why, if a change is due: down when degraded, a rung
/// up when recovered.
fn judge(
    cfg: &GuardConfig,
    held: &Held<'_>,
    sessions: &[&Session],
    bad: &[&Session],
    last_trouble: Option<Instant>,
    now: Instant,
) -> Option<(Option<u32>, Reason)> {
    let (cap, ladder) = (&*held.cap, held.ladder);
    let lowest = *ladder.first()?;
    let may_change = cap
        .changed
        .is_none_or(|at| now.saturating_duration_since(at) >= cfg.hold);
    if !may_change {
        return None;
    }
    let previous = cap.cap;
    let recent_mtp = |s: &Session| {
        s.mtp
            .iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) <= cfg.window)
            .map(|(_, v)| *v)
            .min()
    };
    let degraded = !bad.is_empty() && bad.len() as f64 >= held.share * sessions.len() as f64;
    if degraded {
        let pulled = bad.iter().filter_map(|s| s.br).max();
        let slowest = bad.iter().filter_map(|s| recent_mtp(s)).min();
        let fits = |kbps: f64| ladder.range(..=kbps.max(0.0) as u32).next_back().copied();
        // A throughput that carries no rung steers to the lowest.
        let by_throughput = slowest.map(|m| fits(m as f64 * cfg.headroom).unwrap_or(lowest));
        let below_pulled = pulled.and_then(|p| ladder.range(..p).next_back().copied());
        let mut want = match (by_throughput, below_pulled) {
            // Throughput carries what they pull: one rung down still eases the trouble.
            (Some(t), Some(b)) if pulled.is_some_and(|p| t >= p) => b,
            (Some(t), _) => t,
            (None, Some(b)) => b,
            (None, None) => lowest,
        };
        want = want.max(lowest);
        // Only ever down: below the cap in force, or below what they pull when there is none.
        let steers = match previous {
            Some(c) => want < c,
            None => pulled.is_some_and(|p| want < p),
        };
        if !steers {
            return None;
        }
        let why = bad
            .iter()
            .filter_map(|s| s.trouble.map(|(_, r)| r))
            .min_by_key(|r| match r {
                Reason::Throughput { measured_kbps, .. } => *measured_kbps,
                _ => u32::MAX,
            })
            .unwrap_or(Reason::Starvation);
        Some((Some(want), why))
    } else {
        let c = previous?;
        if sessions.is_empty() {
            // No news is not recovery: held until nobody is left to steer.
            let gone = now.saturating_duration_since(held.heard) >= cfg.window * 8;
            return gone.then_some((None, Reason::Recovered));
        }
        let wait = cap.wait(cfg);
        let calm = last_trouble.is_none_or(|at| now.saturating_duration_since(at) >= wait);
        if !calm {
            return None;
        }
        let up = ladder.range(c + 1..).next().copied();
        let carried = sessions
            .iter()
            .filter_map(|s| recent_mtp(s))
            .min()
            .is_none_or(|m| up.is_none_or(|u| m as f64 * cfg.headroom >= u as f64));
        if !carried {
            return None;
        }
        let top = ladder.last().copied();
        let to = match up {
            Some(u) if Some(u) != top => Some(u),
            _ => None,
        };
        Some((to, Reason::Recovered))
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
