//! Player telemetry (CMCD): QoE samples on the bus, and next-object prefetch.
//!
//! Every request that carries CMCD, in the query (`CMCD=`) or in the four `CMCD-*` fields, is a
//! QoE sample, up to `[streaming] telemetry_rate` a second (default 20,000): past it the serving
//! path leaves the telemetry unread and counts it (`shed`), so reading telemetry never takes more
//! than a bounded share of the edge's CPU under load. The serving path does as little as it
//! can: the gate marks such a request while it judges it (`Request::telemetry`), and
//! [`Qoe::offer`] copies the raw telemetry into a bounded queue ([`Inbox`]) under a short lock,
//! never waiting, and wakes the reader only when the queue was empty; a full queue drops the
//! sample and counts it. One task ([`run`]) takes the queue at
//! most once per [`DRAIN`] under load, reads CMCD (strictly, through `eddy_streaming::cmcd`) and:
//! - with a bus, gathers a window's samples and publishes them as one
//!   `dev.eddy.qoe.samples.v1` event per second at most, on [`eddy_control::QOE_TOPIC`], keyed
//!   by the edge;
//! - with prefetch on, offers the objects the player names next (`nor`) to
//!   [`crate::prefetch::Prefetch`].
//!
//! - with the quality guard on, feeds [`crate::guard::Steering`] every sample and applies its
//!   decisions once a window, publishing each as `dev.eddy.qoe.guard.v1`.
//!
//! Players in CMCD v2 event mode `POST` reports instead; [`crate::reports`] reads them on the
//! serving path and queues each, read already, beside the requests' telemetry (reports never
//! drive prefetch).
//!
//! Malformed CMCD never changes what the player receives: it is counted and logged at most once
//! a second.
//!
//! `eddy_qoe_samples_total{what}` counts: `sampled` (published), `dropped` (queue or window
//! full, or the bus refused the batch), `shed` (over the rate) and `malformed`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use eddy_events::{Event, QoeSample, QoeSamples};
use eddy_streaming::cmcd::{Cmcd, StreamType};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::guard::Networks;
use crate::metrics::Metrics;

/// Samples waiting to be read, at most.
pub const QUEUE: usize = 8192;
/// Samples in one event, at most; more in one window are dropped and counted.
pub const MAX_BATCH: usize = 4096;
/// One event per window.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Least time between two takes of the queue under load. The serving path wakes the reader
/// only when it queues into an empty queue; after a take of [`BUSY`] samples or more the reader
/// waits this long before the next, so under load it is woken at most 1/DRAIN times a second (a
/// wake per request, an eventfd write and a context switch, cost more than reading the sample).
/// Below that it takes the queue as soon as it is woken: a lone player's request is read at once
/// (prefetch races the player's next request).
pub const DRAIN: Duration = Duration::from_millis(5);
/// A take this large means load: the next waits [`DRAIN`].
pub const BUSY: usize = 16;

/// A request's raw telemetry, as the serving path copies it.
#[derive(Debug)]
pub struct Raw {
    /// The canonical URL without its query (`host/path`).
    pub url: String,
    /// The request's query, when it carries `CMCD=`.
    pub query: Option<String>,
    /// The `CMCD-*` fields, name and value.
    pub fields: Vec<(String, Vec<u8>)>,
    /// When it was seen.
    pub at: Instant,
    /// The client's address (its network goes in the sample, never the address).
    pub peer: Option<std::net::IpAddr>,
    /// A CMCD v2 event report, read already ([`crate::reports`]); `query` and `fields` are
    /// empty then.
    pub report: Option<Box<Cmcd>>,
}

/// Telemetry queued by the serving path for the reader, at most [`QUEUE`].
#[derive(Debug, Default)]
pub struct Inbox(Mutex<Vec<Raw>>, tokio::sync::Notify);

impl Inbox {
    /// Everything queued so far, oldest first, leaving the queue empty.
    pub fn take(&self) -> Vec<Raw> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// How many requests' telemetry is read per second, spread over the second: from 100 a second
/// on, a hundredth of it per 10 ms (rounded down), so players asking on a steady beat are not
/// always read, or never, by where in the second they fall; below 100, per whole second. Shared
/// by the serving threads without a lock.
struct Budget {
    /// Reads per window.
    per_window: u64,
    /// Window length, ms.
    window_ms: u64,
    /// When the clock began (windows count from it).
    epoch: Instant,
    /// The window in force (windows since `epoch`) and what it used, packed: window << 24 | used.
    window: AtomicU64,
}

/// Bits of [`Budget::window`] that count reads.
const USED_BITS: u32 = 24;

impl Budget {
    fn new(per_second: u32, epoch: Instant) -> Budget {
        let (per_window, window_ms) = if per_second >= 100 {
            (u64::from(per_second / 100), 10)
        } else {
            (u64::from(per_second), 1000)
        };
        Budget {
            per_window: per_window.min((1 << USED_BITS) - 1),
            window_ms,
            epoch,
            window: AtomicU64::new(0),
        }
    }

    /// Whether one more request's telemetry fits its window's budget (`now` its arrival).
    fn take(&self, now: Instant) -> bool {
        let ms = now.saturating_duration_since(self.epoch).as_millis();
        let at = u64::try_from(ms).unwrap_or(u64::MAX) / self.window_ms;
        let mut cur = self.window.load(Ordering::Relaxed);
        loop {
            let (window, used) = (cur >> USED_BITS, cur & ((1 << USED_BITS) - 1));
            let next = if window == at {
                if used >= self.per_window {
                    return false;
                }
                cur + 1
            } else if window < at {
                // A new window: this request is its first.
                (at << USED_BITS) | 1
            } else {
                // Another thread already moved to a later window than this one's clock read.
                return false;
            };
            match self
                .window
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => cur = seen,
            }
        }
    }
}

/// The serving side: offer samples without waiting.
pub struct Qoe {
    inbox: Arc<Inbox>,
    metrics: Arc<Metrics>,
    /// When the serving path last logged malformed telemetry.
    logged: Mutex<Instant>,
    /// `None`: every request's telemetry is read.
    budget: Option<Budget>,
    /// Requests whose telemetry the budget left unread.
    shed: prometheus_client::metrics::counter::Counter,
}

impl Qoe {
    /// A queue and its reader's end; at most `per_second` requests' telemetry read a second
    /// (`None`: all).
    pub fn new(metrics: Arc<Metrics>, per_second: Option<u32>) -> (Qoe, Arc<Inbox>) {
        let inbox = Arc::new(Inbox::default());
        let shed = metrics.qoe("shed");
        (
            Qoe {
                inbox: inbox.clone(),
                metrics,
                logged: Mutex::new(long_ago()),
                budget: per_second.map(|n| Budget::new(n, Instant::now())),
                shed,
            },
            inbox,
        )
    }

    /// Offer one sample; a full queue drops it (counted).
    pub fn offer(&self, raw: Raw) {
        let mut q = self.inbox.0.lock();
        if q.len() >= QUEUE {
            drop(q);
            self.metrics.qoe("dropped").inc();
            return;
        }
        q.push(raw);
        let first = q.len() == 1;
        drop(q);
        if first {
            self.inbox.1.notify_one();
        }
    }

    /// Offer the telemetry of a request with canonical URL `url`, raw query `query` and header
    /// fields `fields` from client `peer`, when it carries any (the gate for HTTP/1, the proxy
    /// for HTTP/2).
    pub fn offer_parts<'a>(
        &self,
        url: &str,
        query: Option<&str>,
        fields: impl Iterator<Item = (&'a str, &'a [u8])>,
        peer: Option<std::net::IpAddr>,
    ) {
        let at = Instant::now();
        if let Some(b) = &self.budget
            && !b.take(at)
        {
            self.shed.inc();
            return;
        }
        let query = query.filter(|q| q.contains("CMCD=")).map(str::to_string);
        let fields: Vec<_> = fields
            .filter(|(n, _)| eddy_streaming::cmcd::is_cmcd_header(n))
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect();
        if query.is_none() && fields.is_empty() {
            return;
        }
        self.offer(Raw {
            url: without_query(url).to_string(),
            query,
            fields,
            at,
            peer,
            report: None,
        });
    }

    /// Count telemetry of `url` that the serving path refused (`why`), logging it at most once
    /// a second.
    pub fn malformed(&self, url: &str, why: &str) {
        malformed(&self.metrics, &mut self.logged.lock(), url, why);
    }
}

/// A moment over a second ago: logging is due at once.
fn long_ago() -> Instant {
    Instant::now() - Duration::from_secs(2)
}

/// Count malformed telemetry of `url` (`why`), and log it when the last log (`last_log`) is a
/// second old or more.
fn malformed(metrics: &Metrics, last_log: &mut Instant, url: &str, why: &str) {
    metrics.qoe("malformed").inc();
    if last_log.elapsed() >= Duration::from_secs(1) {
        *last_log = Instant::now();
        tracing::info!(%url, reason = %why, "ignored malformed CMCD");
    }
}

/// `host/path` of a canonical `host/path?query`.
pub fn without_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(u, _)| u)
}

/// The raw query of the request line of an HTTP/1 head the gate judged (its bytes as the client
/// sent them): all a request with CMCD in its query and none in its fields needs read, without
/// parsing its fields a second time. `None` without a query.
pub fn request_query(head: &[u8]) -> Option<&str> {
    let line = head.split(|&b| b == b'\n').next()?;
    let target = line.split(|&b| b == b' ').nth(1)?;
    let at = target.iter().position(|&b| b == b'?')?;
    std::str::from_utf8(&target[at + 1..]).ok()
}

/// Hand `f` the raw query and the fields of an HTTP/1 head the gate judged (its bytes as the
/// client sent them); `None` when the head does not parse.
pub fn with_head<R>(
    head: &[u8],
    f: impl FnOnce(Option<&str>, &[httparse::Header<'_>]) -> R,
) -> Option<R> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut fields);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let query = req.path.and_then(|p| p.split_once('?')).map(|(_, q)| q);
    Some(f(query, req.headers))
}

/// The CMCD of a request's telemetry; `None` without any.
pub fn read(raw: &Raw) -> Result<Option<Cmcd>, String> {
    if let Some(c) = &raw.report {
        return Ok(Some((**c).clone()));
    }
    let from_query = match &raw.query {
        Some(q) => Cmcd::from_query(q).map_err(|e| e.to_string())?,
        None => None,
    };
    let from_fields = Cmcd::from_headers(raw.fields.iter().map(|(n, v)| (n.as_str(), &v[..])))
        .map_err(|e| e.to_string())?;
    Ok(from_query.or(from_fields))
}

/// Client addresses whose network label was written, at most; past it the memo starts over.
const LABELS: usize = 4096;

/// The network label of each client address, written once while it keeps asking (a player
/// asks every segment): formatting an address costs more than looking one up.
struct NetLabels {
    networks: Networks,
    known: std::collections::HashMap<std::net::IpAddr, Option<String>>,
}

impl NetLabels {
    fn new(networks: Networks) -> NetLabels {
        NetLabels {
            networks,
            known: std::collections::HashMap::new(),
        }
    }

    /// The label of `peer`'s network; `None` without a peer or for an ungrouped family.
    fn of(&mut self, peer: Option<std::net::IpAddr>) -> Option<String> {
        let ip = peer?;
        if let Some(label) = self.known.get(&ip) {
            return label.clone();
        }
        if self.known.len() >= LABELS {
            self.known.clear();
        }
        let label = self.networks.label(ip);
        self.known.insert(ip, label.clone());
        label
    }
}

/// The sample a request's telemetry makes, its client grouped into `networks`; `None` without
/// CMCD.
pub fn sample(raw: &Raw, since: Instant, networks: Networks) -> Result<Option<QoeSample>, String> {
    let net = NetLabels::new(networks).of(raw.peer);
    Ok(read(raw)?.map(|c| sample_of(raw, c, since, net)))
}

/// The sample of a request `raw` whose CMCD is `c`.
fn sample_of(raw: &Raw, c: Cmcd, since: Instant, net: Option<String>) -> QoeSample {
    QoeSample {
        url: raw.url.clone(),
        at_ms: u32::try_from(raw.at.saturating_duration_since(since).as_millis())
            .unwrap_or(u32::MAX),
        sid: c.sid,
        cid: c.cid,
        ot: c.ot.map(|o| o.token().to_string()),
        br: c.br,
        tb: c.tb,
        mtp: c.mtp,
        bl: c.bl,
        d: c.d,
        bs: c.bs,
        su: c.su,
        live: matches!(c.st, Some(StreamType::Live | StreamType::LowLatency)),
        e: c.e.as_ref().map(|e| e.token().to_string()),
        sta: c.sta.map(|s| s.token().to_string()),
        net,
    }
}

/// Read telemetry from `inbox` until `shutdown`: publish its samples on the edge's bus a window
/// at a time, offer its next objects to `prefetch`, and feed the `guard`.
pub async fn run(
    inbox: Arc<Inbox>,
    state: Arc<crate::proxy::EdgeState>,
    prefetch: Option<crate::prefetch::Prefetch>,
    mut guard: Option<crate::guard::Steering>,
    mut shutdown: watch::Receiver<bool>,
) {
    let bus = state.bus.clone();
    let metrics = state.metrics.clone();
    let edge = state.config.edge.id.clone();
    let mut labels = NetLabels::new(state.caps.networks());
    let mut batch: Vec<QoeSample> = Vec::new();
    let mut dropped = 0u64;
    let mut since = Instant::now();
    let mut since_wall = SystemTime::now();
    let mut tick = tokio::time::interval(WINDOW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_log = long_ago();
    let mut busy = false;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = inbox.1.notified() => {
                if busy {
                    tokio::time::sleep(DRAIN).await;
                }
                let raws = inbox.take();
                busy = raws.len() >= BUSY;
                for raw in raws {
                    match read(&raw) {
                        Ok(Some(c)) => {
                            if let (Some(p), None) = (&prefetch, &raw.report) {
                                p.offer(&raw.url, &c);
                            }
                            if bus.is_none() && guard.is_none() {
                                continue;
                            }
                            let s = sample_of(&raw, c, since, labels.of(raw.peer));
                            // The guard reads requests: a report repeats one (`e=rr`) or
                            // tells of the player between them.
                            if let (Some(g), None) = (&mut guard, &raw.report) {
                                g.observe(&s);
                            }
                            match (&bus, batch.len() < MAX_BATCH) {
                                (None, _) => {}
                                (Some(_), true) => batch.push(s),
                                (Some(_), false) => {
                                    dropped += 1;
                                    metrics.qoe("dropped").inc();
                                }
                            }
                        }
                        Ok(None) => {}
                        Err(why) => malformed(&metrics, &mut last_log, &raw.url, &why),
                    }
                }
            }
            _ = tick.tick() => {
                let decisions = guard.as_mut().map(|g| g.decide()).unwrap_or_default();
                let Some(bus) = &bus else { continue };
                for d in decisions {
                    publish_guard(bus.as_ref(), &edge, d).await;
                }
                if batch.is_empty() && dropped == 0 {
                    continue;
                }
                let samples = std::mem::take(&mut batch);
                let n = samples.len() as u64;
                let event = Event::QoeSamples(QoeSamples {
                    edge: edge.clone(),
                    since_ms: since_wall
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                    samples,
                    dropped,
                });
                dropped = 0;
                since = Instant::now();
                since_wall = SystemTime::now();
                let cloud = event.to_cloud(eddy_control::event_id(), format!("/eddy/edge/{edge}"));
                let publish = bus.publish(
                    eddy_control::QOE_TOPIC,
                    &edge,
                    bytes::Bytes::from(cloud.encode()),
                );
                match tokio::time::timeout(WINDOW, publish).await {
                    Ok(Ok(_)) => {
                        metrics.qoe("sampled").inc_by(n);
                    }
                    failed => {
                        metrics.qoe("dropped").inc_by(n);
                        if last_log.elapsed() >= Duration::from_secs(1) {
                            last_log = Instant::now();
                            let why = match failed {
                                Ok(Err(e)) => e.to_string(),
                                _ => format!("no answer within {WINDOW:?}"),
                            };
                            tracing::warn!(%why, samples = n, "could not publish QoE samples; dropped them");
                        }
                    }
                }
            }
        }
    }
    tracing::info!("telemetry reading (QoE samples, prefetch) stopped: the edge is shutting down");
}

/// Publish one quality guard decision; a bus that fails is logged (the cap holds regardless).
async fn publish_guard(bus: &dyn eddy_bus::Bus, edge: &str, d: Event) {
    let key = d.key();
    let cloud = d.to_cloud(eddy_control::event_id(), format!("/eddy/edge/{edge}"));
    let publish = bus.publish(
        eddy_control::QOE_GUARD_TOPIC,
        &key,
        bytes::Bytes::from(cloud.encode()),
    );
    match tokio::time::timeout(WINDOW, publish).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not publish a quality guard decision"),
        Err(_) => tracing::warn!("could not publish a quality guard decision within {WINDOW:?}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn budget(per_second: u32) -> Budget {
        Budget::new(per_second, Instant::now())
    }

    #[test]
    fn the_budget_reads_so_many_a_second_and_starts_again_each_second() {
        let b = budget(10);
        let t0 = b.epoch;
        let taken = (0..30).filter(|_| b.take(t0)).count();
        assert_eq!(taken, 10);
        let t1 = t0 + Duration::from_millis(1500);
        assert_eq!((0..30).filter(|_| b.take(t1)).count(), 10);
        // A clock read from the second before, arriving late, takes nothing.
        assert!(!b.take(t0));
        assert_eq!(
            (0..5)
                .filter(|_| b.take(t0 + Duration::from_secs(9)))
                .count(),
            5
        );
    }

    #[test]
    fn from_a_hundred_a_second_the_budget_is_spread_over_the_second() {
        let b = budget(20_000);
        let t0 = b.epoch;
        // One 10 ms window takes a hundredth of the second's budget ...
        assert_eq!((0..1000).filter(|_| b.take(t0)).count(), 200);
        // ... and a whole second of them the budget.
        let mut taken = 200;
        for w in 1..100 {
            let t = t0 + Duration::from_millis(10 * w + 5);
            taken += (0..1000).filter(|_| b.take(t)).count();
        }
        assert_eq!(taken, 20_000);
    }

    #[test]
    fn racing_threads_never_take_more_than_the_budget_and_the_window_only_moves_on() {
        for round in 0..200 {
            let b = Arc::new(budget(99));
            let t0 = b.epoch;
            let threads: Vec<_> = (0..8)
                .map(|k| {
                    let b = b.clone();
                    std::thread::spawn(move || {
                        let mut taken = [0u32; 3];
                        for i in 0..300u64 {
                            // Each thread's clock moves on at its own pace across three seconds.
                            let s = (i * (k + 1) / 300).min(2);
                            if b.take(t0 + Duration::from_secs(s) + Duration::from_millis(k)) {
                                taken[s as usize] += 1;
                            }
                            let w = b.window.load(Ordering::Relaxed) >> USED_BITS;
                            assert!(w <= 2, "round {round}: window {w}");
                        }
                        taken
                    })
                })
                .collect();
            let mut per_second = [0u32; 3];
            for t in threads {
                for (s, n) in t.join().unwrap().iter().enumerate() {
                    per_second[s] += n;
                }
            }
            assert!(
                per_second.iter().all(|&n| n <= 100),
                "round {round}: {per_second:?}"
            );
            assert!(per_second[0] > 0, "round {round}: {per_second:?}");
        }
    }

    #[test]
    fn the_request_line_gives_the_query_the_full_head_reading_gives() {
        for head in [
            "GET /v/seg_1.m4s?CMCD=br%3D3200%2Csid%3D%226e2f%22 HTTP/1.1\r\nHost: v.test\r\n\r\n",
            "GET /v/seg_1.m4s?a=1&CMCD=bl%3D2000&b HTTP/1.1\r\nHost: v.test\r\nX: y\r\n\r\n",
            "GET /v/seg_1.m4s?&CMCD= HTTP/1.0\r\nHost: v.test\r\n\r\n",
            "GET /v/seg_1.m4s HTTP/1.1\r\nHost: v.test\r\nCMCD-Object: br=3200\r\n\r\n",
            "GET http://v.test/v/seg_1.m4s?CMCD=ot%3Dv HTTP/1.1\r\nHost: v.test\r\n\r\n",
            "GET /? HTTP/1.1\nHost: v.test\n\n",
        ] {
            let full = with_head(head.as_bytes(), |q, _| q.map(str::to_string)).unwrap();
            assert_eq!(
                request_query(head.as_bytes()).map(str::to_string),
                full,
                "{head:?}"
            );
        }
    }

    fn raw(query: Option<&str>, fields: &[(&str, &str)]) -> Raw {
        Raw {
            url: "v.test/v/seg_1.m4s".into(),
            query: query.map(str::to_string),
            fields: fields
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            at: Instant::now(),
            peer: Some(std::net::IpAddr::from([203, 0, 113, 77])),
            report: None,
        }
    }

    #[test]
    fn queries_and_fields_make_samples() {
        let t0 = Instant::now();
        let s = sample(
            &raw(
                Some("CMCD=bl%3D600%2Cbr%3D2306%2Cbs%2Ccid%3D%22show%22%2Cmtp%3D4500%2Cot%3Dav%2Csid%3D%226e2f%22%2Cst%3Dl%2Csu"),
                &[],
            ),
            t0,
            Networks::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.sid.as_deref(), Some("6e2f"));
        assert_eq!(s.cid.as_deref(), Some("show"));
        assert_eq!((s.bl, s.br, s.mtp), (Some(600), Some(2306), Some(4500)));
        assert!(s.bs && s.su && s.live);
        assert_eq!(s.ot.as_deref(), Some("av"));
        // The client's network, never its address.
        assert_eq!(s.net.as_deref(), Some("203.0.113.0/24"));
        let h = sample(
            &raw(
                None,
                &[
                    ("CMCD-Request", "bl=(6000),mtp=(43200),sn=5,sta=p"),
                    ("cmcd-object", "br=(2306),d=2000,ot=av"),
                ],
            ),
            t0,
            Networks::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.bl, h.br, h.d), (Some(6000), Some(2306), Some(2000)));
        assert_eq!(h.sta.as_deref(), Some("p"));
        assert_eq!(sample(&raw(None, &[]), t0, Networks::default()), Ok(None));
        assert!(sample(&raw(Some("CMCD=bl%3D-1"), &[]), t0, Networks::default()).is_err());
    }
}
