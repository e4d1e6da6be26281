//! The adaptive-quality guard at the edge: the caps it holds, and how responses carry them.
//!
//! The decisions are [`eddy_control::guard::Guard`]'s, made in the telemetry task
//! ([`crate::qoe::run`]) from every CMCD sample this edge reads, at most once a second. Each is
//! applied here ([`Caps::apply`]), counted (`eddy_qoe_guard_total{what}`, `eddy_qoe_guard_caps`),
//! logged, and published as `dev.eddy.qoe.guard.v1` on [`eddy_control::QOE_GUARD_TOPIC`] for the
//! dashboard. The guard runs on the edge, beside the samples, so a cap reaches the players within
//! a second of the telemetry that called for it, with or without a bus.
//!
//! A response to a CMCD-carrying request whose title (its `cid`, else its directory) is capped,
//! whose client network (its address cut to `[streaming] guard_network_v4`/`_v6` bits,
//! [`Networks`]) is capped, or on a capped edge, carries the lowest of those caps as `mb` in
//! this hop's `CMSD-Dynamic` member: dash.js (with `cmsd.abr.applyMb`) switches down at once.
//! hls.js reads no CMSD, and reads the
//! multivariant playlist only when a session starts: a capped CMCD-carrying `GET` of a
//! multivariant playlist is answered without the variants above the cap ([`Rewrite`]; the
//! lowest always stays, the cached object stays the origin's, and the rewritten answer is
//! `no-store` so no cache downstream keeps it). The HTTP/1 gate judges a request's cap once
//! ([`Caps::for_request`]); the hit fast path writes it as the full proxy does, and hands a
//! capped multivariant playlist to the full proxy, which rewrites it: both give the same answer.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use eddy_control::guard::{Decision, Guard, GuardConfig, Scope};
use eddy_events::{Event, QoeGuard, QoeSample};
use eddy_streaming::cmcd::Cmcd;
use parking_lot::RwLock;

/// How the guard groups clients into networks: addresses cut to a prefix length per family
/// (0: that family is not grouped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Networks {
    /// IPv4 prefix length, 0 to 32.
    pub v4: u8,
    /// IPv6 prefix length, 0 to 128.
    pub v6: u8,
}

impl Default for Networks {
    fn default() -> Self {
        Networks { v4: 24, v6: 56 }
    }
}

impl Networks {
    /// The network of `ip`: its address with the bits past the prefix cleared, and the prefix
    /// length; `None` when its family is not grouped. An IPv4-mapped IPv6 address is IPv4.
    pub fn of(&self, ip: IpAddr) -> Option<(IpAddr, u8)> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(a) if self.v4 > 0 => {
                let bits = u32::from(a) & (u32::MAX << (32 - u32::from(self.v4.min(32))));
                Some((IpAddr::V4(Ipv4Addr::from(bits)), self.v4.min(32)))
            }
            IpAddr::V6(a) if self.v6 > 0 => {
                let bits = u128::from(a) & (u128::MAX << (128 - u32::from(self.v6.min(128))));
                Some((IpAddr::V6(Ipv6Addr::from(bits)), self.v6.min(128)))
            }
            _ => None,
        }
    }

    /// The network of `ip` as samples and events name it (`203.0.113.0/24`).
    pub fn label(&self, ip: IpAddr) -> Option<String> {
        self.of(ip).map(|(net, len)| format!("{net}/{len}"))
    }
}

/// The caps in force on this edge.
#[derive(Debug, Default)]
pub struct Caps {
    /// Any cap held: the one thing the hot path reads.
    active: AtomicBool,
    networks: Networks,
    held: RwLock<Held>,
}

#[derive(Debug, Default)]
struct Held {
    titles: HashMap<String, u32>,
    /// Client networks by their first address (the prefix length is this edge's).
    networks: HashMap<IpAddr, u32>,
    edge: Option<u32>,
}

impl Caps {
    /// No cap held, clients grouped into `networks`.
    pub fn new(networks: Networks) -> Caps {
        Caps {
            networks,
            ..Caps::default()
        }
    }

    /// How clients are grouped into networks.
    pub fn networks(&self) -> Networks {
        self.networks
    }

    /// Whether any cap is held.
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Hold what a decision says; the number of caps held after it.
    pub fn apply(&self, d: &Decision) -> usize {
        let mut held = self.held.write();
        match (&d.scope, d.cap_kbps) {
            (Scope::Title(t), Some(c)) => {
                held.titles.insert(t.clone(), c);
            }
            (Scope::Title(t), None) => {
                held.titles.remove(t);
            }
            (Scope::Network(n), c) => {
                // A network as this edge's guard named it; anything else names no client.
                let first = n
                    .split_once('/')
                    .and_then(|(a, _)| a.parse::<IpAddr>().ok());
                match (first, c) {
                    (Some(a), Some(c)) => {
                        held.networks.insert(a, c);
                    }
                    (Some(a), None) => {
                        held.networks.remove(&a);
                    }
                    (None, _) => {
                        tracing::warn!(network = %n, "guard decision for a network that does not read as one; ignored")
                    }
                }
            }
            (Scope::Edge, c) => held.edge = c,
        }
        let n = held.titles.len() + held.networks.len() + usize::from(held.edge.is_some());
        self.active.store(n > 0, Ordering::Relaxed);
        n
    }

    /// The cap for a request for `url` (`host/path?query`) with this query and these fields
    /// from client `peer`, judged as the guard judges samples: by the CMCD `cid`, else the
    /// object's directory, and by the client's network. Malformed CMCD is nobody's title: only
    /// the edge's and the network's caps apply to it.
    pub fn for_request<'a>(
        &self,
        url: &str,
        query: Option<&str>,
        fields: impl Iterator<Item = (&'a str, &'a [u8])>,
        peer: Option<IpAddr>,
    ) -> Option<u32> {
        if !self.active() {
            return None;
        }
        let from_query = query.and_then(|q| Cmcd::from_query(q).ok().flatten());
        let cmcd = from_query.or_else(|| Cmcd::from_headers(fields).ok().flatten());
        let url = crate::qoe::without_query(url);
        let title = eddy_control::guard::title(cmcd.as_ref().and_then(|c| c.cid.as_deref()), url);
        let net = peer.and_then(|ip| self.networks.of(ip)).map(|(net, _)| net);
        let held = self.held.read();
        let by_title = eddy_control::guard::lower(held.titles.get(&title).copied(), held.edge);
        let by_net = net.and_then(|n| held.networks.get(&n).copied());
        eddy_control::guard::lower(by_title, by_net)
    }
}

/// Multivariant playlists larger than this are served as the origin sent them.
pub const REWRITE_MAX: usize = 1 << 20;

/// A multivariant playlist answer being rewritten under a cap: the body is held until its end,
/// then the variants above the cap are removed (`eddy_streaming::hls::multivariant::cap`). A
/// body that does not read as a multivariant playlist, carries tags a rewrite would move, or
/// passes [`REWRITE_MAX`] goes out as it came.
#[derive(Debug)]
pub struct Rewrite {
    cap_bps: u64,
    held: Vec<u8>,
    given_up: bool,
}

impl Rewrite {
    /// A rewrite for a response to `method` of `path` with `status`, when the request's cap
    /// calls for one: a `GET` (not a range) of a `.m3u8` answered `200`.
    pub fn begin(
        cap_kbps: Option<u32>,
        method: &http::Method,
        path: &str,
        ranged: bool,
        status: u16,
    ) -> Option<Rewrite> {
        let kbps = cap_kbps?;
        let path = path.split('?').next().unwrap_or(path);
        if *method != http::Method::GET || ranged || status != 200 || !path.ends_with(".m3u8") {
            return None;
        }
        // CMCD `br` is kbit/s rounded: a variant of 655,600 bit/s reports 656, so a cap of
        // 656 keeps it.
        Some(Rewrite {
            cap_bps: (u64::from(kbps) + 1) * 1000 - 1,
            held: Vec::new(),
            given_up: false,
        })
    }

    /// Pass one piece of the body through: held until the end, then the rewritten whole.
    pub fn body(&mut self, body: &mut Option<bytes::Bytes>, end_of_stream: bool) {
        if self.given_up {
            return;
        }
        if let Some(b) = body.take() {
            self.held.extend_from_slice(&b);
        }
        if self.held.len() > REWRITE_MAX {
            self.given_up = true;
            *body = Some(std::mem::take(&mut self.held).into());
            return;
        }
        if end_of_stream {
            let held = std::mem::take(&mut self.held);
            let out = match eddy_streaming::hls::multivariant::cap(&held, self.cap_bps) {
                Ok(Some(capped)) => capped,
                Ok(None) => held,
                Err(e) => {
                    tracing::debug!(error = %e, "multivariant playlist served without the cap");
                    held
                }
            };
            *body = Some(out.into());
        }
    }
}

/// The guard as the telemetry task runs it: decisions made, held in [`Caps`], counted, logged.
pub struct Steering {
    guard: Guard,
    state: Arc<crate::proxy::EdgeState>,
}

impl Steering {
    /// A guard with the default settings over this edge.
    pub fn new(state: Arc<crate::proxy::EdgeState>) -> Steering {
        Steering {
            guard: Guard::new(GuardConfig::default()),
            state,
        }
    }

    /// Take one sample.
    pub fn observe(&mut self, s: &QoeSample) {
        self.guard.observe(s, Instant::now());
    }

    /// Make the decisions due, hold them, and return them as events to publish. Each title's
    /// and the edge's decision is one event; client networks moved alike within one call (same
    /// cap, same reason) make one event between them, so a thousand troubled homes are not a
    /// thousand events a second.
    pub fn decide(&mut self) -> Vec<Event> {
        let edge = &self.state.config.edge.id;
        let mut out = Vec::new();
        let mut networks: Vec<QoeGuard> = Vec::new();
        for d in self.guard.decide(Instant::now()) {
            let held = self.state.caps.apply(&d);
            let metrics = &self.state.metrics;
            metrics.guard(d.reason.token()).inc();
            metrics
                .guard_caps
                .set(i64::try_from(held).unwrap_or(i64::MAX));
            let (title, network) = match &d.scope {
                Scope::Title(t) => (Some(t.clone()), None),
                Scope::Network(n) => (None, Some(n.clone())),
                Scope::Edge => (None, None),
            };
            let who = match (&title, &network) {
                (Some(t), _) => format!("title {t}"),
                (None, Some(n)) => format!("network {n}"),
                (None, None) => "every title".to_string(),
            };
            tracing::info!(
                scope = %who,
                cap_kbps = ?d.cap_kbps,
                previous_kbps = ?d.previous_kbps,
                reason = %d.reason,
                sessions = d.sessions,
                troubled = d.troubled,
                "quality guard"
            );
            let event = QoeGuard {
                edge: edge.clone(),
                title,
                networks: u32::from(network.is_some()),
                network,
                cap_kbps: d.cap_kbps,
                previous_kbps: d.previous_kbps,
                reason: d.reason.token().to_string(),
                detail: d.reason.to_string(),
                sessions: d.sessions,
                troubled: d.troubled,
            };
            if event.network.is_none() {
                out.push(Event::QoeGuard(event));
                continue;
            }
            let alike = networks
                .iter_mut()
                .find(|e| e.cap_kbps == event.cap_kbps && e.reason == event.reason);
            match alike {
                Some(e) => {
                    e.networks = e.networks.saturating_add(1);
                    e.sessions = e.sessions.saturating_add(event.sessions);
                    e.troubled = e.troubled.saturating_add(event.troubled);
                }
                None => networks.push(event),
            }
        }
        for mut e in networks {
            if e.networks > 1 {
                e.detail = format!("{} (the first of {} networks)", e.detail, e.networks);
            }
            out.push(Event::QoeGuard(e));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use eddy_control::guard::Reason;

    fn decision(scope: Scope, cap: Option<u32>) -> Decision {
        Decision {
            scope,
            cap_kbps: cap,
            previous_kbps: None,
            reason: Reason::Starvation,
            sessions: 1,
            troubled: 1,
        }
    }

    const MASTER: &str = "#EXTM3U\n#EXT-X-VERSION:6\n\
        #EXT-X-STREAM-INF:BANDWIDTH=1273600,CODECS=\"avc1.4d401f,mp4a.40.2\"\nmedia_0.m3u8\n\
        #EXT-X-STREAM-INF:BANDWIDTH=655600,CODECS=\"avc1.4d401f,mp4a.40.2\"\nmedia_1.m3u8\n\
        #EXT-X-STREAM-INF:BANDWIDTH=373600,CODECS=\"avc1.4d401e,mp4a.40.2\"\nmedia_2.m3u8\n";

    fn rewrite(cap: u32, pieces: &[&str]) -> String {
        let mut r =
            Rewrite::begin(Some(cap), &http::Method::GET, "/v/master.m3u8", false, 200).unwrap();
        let mut out = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            let mut b = Some(bytes::Bytes::copy_from_slice(p.as_bytes()));
            r.body(&mut b, i + 1 == pieces.len());
            if let Some(b) = b {
                out.extend_from_slice(&b);
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_capped_multivariant_playlist_loses_the_variants_above_the_cap() {
        let (a, b) = MASTER.split_at(100);
        // 656 kbit/s (how hls.js reports the 655,600 bit/s variant) keeps it.
        let out = rewrite(656, &[a, b]);
        assert!(!out.contains("media_0") && out.contains("media_1") && out.contains("media_2"));
        // Below the lowest: the lowest stays.
        let out = rewrite(100, &[MASTER]);
        assert!(!out.contains("media_0") && !out.contains("media_1") && out.contains("media_2"));
        // Nothing to remove, or not a playlist: the bytes as they came.
        assert_eq!(rewrite(5000, &[MASTER]), MASTER);
        assert_eq!(rewrite(300, &["not a playlist"]), "not a playlist");
        // Only a plain GET of a whole .m3u8 answered 200, and only under a cap.
        let get = http::Method::GET;
        assert!(Rewrite::begin(None, &get, "/m.m3u8", false, 200).is_none());
        assert!(Rewrite::begin(Some(1), &http::Method::HEAD, "/m.m3u8", false, 200).is_none());
        assert!(Rewrite::begin(Some(1), &get, "/m.m3u8", true, 200).is_none());
        assert!(Rewrite::begin(Some(1), &get, "/m.m3u8", false, 304).is_none());
        assert!(Rewrite::begin(Some(1), &get, "/s.m4s", false, 200).is_none());
        assert!(Rewrite::begin(Some(1), &get, "/m.m3u8?x=1", false, 200).is_some());
        // Too big to hold: out as it came.
        let big = "#".repeat(REWRITE_MAX + 10);
        assert_eq!(rewrite(300, &[&big[..10], &big[10..], ""]).len(), big.len());
    }

    #[test]
    fn caps_apply_by_title_or_directory_and_the_edge_cap_bounds_them_all() {
        let caps = Caps::default();
        assert!(!caps.active());
        let q = |cid: &str| format!("CMCD=br%3D1200%2Ccid%3D%22{cid}%22%2Cot%3Dv");
        let none = || std::iter::empty::<(&str, &[u8])>();
        assert_eq!(
            caps.for_request("h/film/s.m4s", Some(&q("film")), none(), None),
            None
        );
        assert_eq!(
            caps.apply(&decision(Scope::Title("film".into()), Some(600))),
            1
        );
        assert!(caps.active());
        assert_eq!(
            caps.for_request("h/x/s.m4s", Some(&q("film")), none(), None),
            Some(600)
        );
        assert_eq!(
            caps.for_request("h/x/s.m4s", Some(&q("other")), none(), None),
            None
        );
        // Without a cid, the directory is the title; CMCD in fields counts as in the query.
        caps.apply(&decision(Scope::Title("/vod".into()), Some(300)));
        assert_eq!(
            caps.for_request("h/vod/s.m4s?CMCD=br%3D1", None, none(), None),
            Some(300)
        );
        let fields = [("cmcd-session", &b"cid=\"film\""[..])];
        assert_eq!(
            caps.for_request("h/vod/s.m4s", None, fields.iter().copied(), None),
            Some(600)
        );
        // The edge's cap bounds every title, and malformed CMCD too.
        caps.apply(&decision(Scope::Edge, Some(400)));
        assert_eq!(
            caps.for_request("h/a/s.m4s", Some("CMCD=%%%"), none(), None),
            Some(400)
        );
        assert_eq!(
            caps.for_request("h/x/s.m4s", Some(&q("film")), none(), None),
            Some(400)
        );
        assert_eq!(
            caps.for_request("h/vod/s.m4s", None, none(), None),
            Some(300)
        );
        // Lifted one by one: inactive again.
        caps.apply(&decision(Scope::Edge, None));
        caps.apply(&decision(Scope::Title("film".into()), None));
        assert_eq!(caps.apply(&decision(Scope::Title("/vod".into()), None)), 0);
        assert!(!caps.active());
    }

    #[test]
    fn networks_cut_addresses_to_their_prefix() {
        let n = Networks::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            n.label(ip("203.0.113.77")).as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            n.label(ip("::ffff:203.0.113.77")).as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            n.label(ip("2001:db8:aa:bbcc::1")).as_deref(),
            Some("2001:db8:aa:bb00::/56")
        );
        let whole = Networks { v4: 32, v6: 128 };
        assert_eq!(whole.label(ip("10.1.2.3")).as_deref(), Some("10.1.2.3/32"));
        assert_eq!(whole.label(ip("::1")).as_deref(), Some("::1/128"));
        let off = Networks { v4: 0, v6: 0 };
        assert_eq!(off.label(ip("10.1.2.3")), None);
        assert_eq!(
            Networks { v4: 1, v6: 1 }.label(ip("200.1.2.3")).as_deref(),
            Some("128.0.0.0/1")
        );
    }

    #[test]
    fn a_network_cap_binds_every_client_in_it_whatever_they_watch() {
        let caps = Caps::new(Networks::default());
        let none = || std::iter::empty::<(&str, &[u8])>();
        let q = "CMCD=br%3D1200%2Ccid%3D%22film%22%2Cot%3Dv";
        let home = Some(IpAddr::from([10, 77, 0, 2]));
        let neighbour = Some(IpAddr::from([10, 77, 0, 200]));
        let far = Some(IpAddr::from([10, 78, 0, 2]));
        caps.apply(&decision(Scope::Network("10.77.0.0/24".into()), Some(300)));
        assert!(caps.active());
        assert_eq!(
            caps.for_request("h/film/s.m4s", Some(q), none(), home),
            Some(300)
        );
        assert_eq!(
            caps.for_request("h/other/s.m4s", None, none(), neighbour),
            Some(300)
        );
        assert_eq!(caps.for_request("h/film/s.m4s", Some(q), none(), far), None);
        assert_eq!(
            caps.for_request("h/film/s.m4s", Some(q), none(), None),
            None
        );
        // The lower of the title's and the network's.
        caps.apply(&decision(Scope::Title("film".into()), Some(600)));
        assert_eq!(
            caps.for_request("h/film/s.m4s", Some(q), none(), far),
            Some(600)
        );
        assert_eq!(
            caps.for_request("h/film/s.m4s", Some(q), none(), home),
            Some(300)
        );
        // A name that is no network holds nothing.
        assert_eq!(
            caps.apply(&decision(Scope::Network("nonsense".into()), Some(1))),
            2
        );
        caps.apply(&decision(Scope::Title("film".into()), None));
        assert_eq!(
            caps.apply(&decision(Scope::Network("10.77.0.0/24".into()), None)),
            0
        );
        assert!(!caps.active());
    }
}
