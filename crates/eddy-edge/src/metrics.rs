//! Prometheus metrics of one edge, in an injected registry (no globals).

use eddy_cache::Cache;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

/// The outcome of one request, as sent in `X-Cache` (plus the edge's own answers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Fresh hit.
    Hit,
    /// Fetched from the origin (stored or not).
    Miss,
    /// Stale copy served (while revalidating, or because the origin failed).
    Stale,
    /// Revalidated with the origin (304), served from cache.
    Revalidated,
    /// Not cacheable: passed through.
    Pass,
    /// Failed (origin unreachable, invalid, timed out).
    Error,
    /// A PURGE request.
    Purge,
    /// Rejected as malformed.
    Rejected,
}

impl Outcome {
    /// Every outcome, in index order.
    pub const ALL: [Outcome; 8] = [
        Outcome::Hit,
        Outcome::Miss,
        Outcome::Stale,
        Outcome::Revalidated,
        Outcome::Pass,
        Outcome::Error,
        Outcome::Purge,
        Outcome::Rejected,
    ];

    /// The `X-Cache` / label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Miss => "MISS",
            Outcome::Stale => "STALE",
            Outcome::Revalidated => "REVALIDATED",
            Outcome::Pass => "PASS",
            Outcome::Error => "ERROR",
            Outcome::Purge => "PURGE",
            Outcome::Rejected => "REJECTED",
        }
    }
}

/// Label: the `X-Cache` outcome of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// HIT, MISS, STALE, REVALIDATED, PASS, ERROR.
    pub cache: &'static str,
}

/// Label: a cache tier.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabel {
    /// memory or disk.
    pub tier: &'static str,
}

/// Label: a purge kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PurgeLabel {
    /// url, prefix, key.
    pub scope: &'static str,
    /// hard or soft.
    pub mode: &'static str,
}

/// Label: what happened, for the LL-HLS, QoE and prefetch counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LlhlsLabel {
    /// LL-HLS: announced, announcement_ignored, held, hint_held, woken, fallback, refused,
    /// timeout, hint_learned, playlist_ignored. TLS handshakes: full, resumed, failed, timeout.
    /// QoE:
    /// sampled, dropped, malformed. Prefetch: fetched, failed, cached, inflight, purged, refused.
    pub what: &'static str,
}

/// Label: why the edge closed a viewer connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabel {
    /// head_timeout, idle_timeout, max_connections, max_client_connections.
    pub reason: &'static str,
}

/// Label: the status of a refused request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabel {
    /// 400, 408, 431.
    pub status: u16,
}

/// Label of per-origin series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginLabel {
    /// The origin's URL.
    pub origin: String,
}

/// Label of per-shield series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShieldLabel {
    /// The shield's URL.
    pub shield: String,
}

/// All metrics of an edge.
pub struct Metrics {
    registry: Registry,
    /// Requests by cache outcome.
    pub requests: Family<StatusLabel, Counter>,
    /// Requests sent to an origin.
    pub origin_fetches: Counter,
    /// Requests sent to a shield edge.
    pub shield_fetches: Counter,
    /// Origin fetches that failed (connect, timeout, invalid response).
    pub origin_errors: Counter,
    /// TLS handshakes with `https://` origins or shields that failed.
    pub upstream_tls_failures: Counter,
    /// Response body bytes sent to clients.
    pub bytes_sent: Counter,
    /// Request latency in seconds by outcome.
    pub latency: Family<StatusLabel, Histogram>,
    /// Purges applied.
    pub purges: Family<PurgeLabel, Counter>,
    /// Objects affected by purges.
    pub purged_objects: Counter,
    /// Traffic spikes detected.
    pub spikes: Counter,
    /// Spikes not published because the publish queue was full.
    pub spikes_dropped: Counter,
    /// Requests refused (429) by the per-client limit.
    pub client_limited: Counter,
    /// Hits answered on the hit fast path (also counted as hits in `requests`).
    pub fast_hits: Counter,
    /// Fast hits whose body went by `sendfile` from a sealed memory file.
    pub fast_sendfile: Counter,
    /// Origin fetches not started because of the origin fetch limit.
    pub origin_limited: Counter,
    /// Client addresses the per-client limiter holds state for.
    pub client_limiter_keys: Gauge,
    /// Viewer connections the edge closed on its own, by reason.
    pub closed_connections: Family<ClosedLabel, Counter>,
    /// LL-HLS announcements followed and blocking requests held, by what happened.
    pub llhls: Family<LlhlsLabel, Counter>,
    /// QoE samples from player telemetry, by what became of them.
    pub qoe: Family<LlhlsLabel, Counter>,
    /// Next objects players named (CMCD `nor`), by what became of them.
    pub prefetch: Family<LlhlsLabel, Counter>,
    /// Quality guard decisions, by reason.
    pub guard: Family<LlhlsLabel, Counter>,
    /// TLS handshakes on the HTTPS port, by how they ended.
    pub tls_handshakes: Family<LlhlsLabel, Counter>,
    /// Requests a signed-URL route covers, granted or refused (by reason).
    pub signed_urls: Family<LlhlsLabel, Counter>,
    /// Operations on the admin API recorded in the audit trail, by outcome (and dropped).
    pub audit: Family<LlhlsLabel, Counter>,
    /// Bitrate caps the quality guard holds now (titles, and the edge).
    pub guard_caps: Gauge,
    /// Prefetches in flight now.
    pub prefetch_inflight: Gauge,
    /// Viewer connections open now (set when rendered).
    pub open_connections: Gauge,
    /// Requests refused by the gate before either path, by status.
    pub refused: Family<RefusedLabel, Counter>,
    /// Origin requests retried once on a fresh connection after a reused one failed.
    pub origin_retries: Counter,
    /// Events refused at the `/events` ingest (undecodable, or a purge target that fails its
    /// checks): counted and dropped, never applied.
    pub events_refused: Counter,
    /// Viewer interactions at the ingest, by what became of them (`accepted`, `refused`).
    pub interactions: Family<LlhlsLabel, Counter>,
    /// Pre-warm hints' objects, by what became of them.
    pub prewarm: Family<LlhlsLabel, Counter>,
    /// Bytes fetched ahead of demand on pre-warm hints.
    pub prewarm_bytes: Counter,
    origin_up: Family<OriginLabel, Gauge>,
    shield_up: Family<ShieldLabel, Gauge>,
    tier_bytes: Family<TierLabel, Gauge>,
    tier_capacity: Family<TierLabel, Gauge>,
    tier_objects: Family<TierLabel, Gauge>,
    tier_evictions: Family<TierLabel, Counter>,
    tier_hits: Family<TierLabel, Counter>,
    disk_errors: Counter,
    /// Purge events dead-lettered by this edge's follower (undecodable, or a target that fails its
    /// checks): never applied.
    purge_dead_letters: Counter,
    last_purge_dead_letters: AtomicU64,
    purge_consumer: parking_lot::Mutex<Option<std::sync::Arc<eddy_bus::consumer::ConsumerStats>>>,
    seal_errors: Counter,
    last_seal_errors: AtomicU64,
    policy_fallbacks: Counter,
    last_policy_fallbacks: AtomicU64,
    sealed_bodies: Gauge,
    last_evictions: [AtomicU64; 2],
    last_hits: [AtomicU64; 2],
    last_disk_errors: AtomicU64,
    by_outcome: Vec<(Counter, Histogram)>,
    /// Purges applied (every scope and mode), for heartbeats; Prometheus has them by label.
    pub purges_applied: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Record whether `shield` is up.
    pub fn set_shield_up(&self, shield: &str, up: bool) {
        self.shield_up
            .get_or_create(&ShieldLabel {
                shield: shield.to_string(),
            })
            .set(i64::from(up));
    }

    /// Record whether `origin` is up.
    pub fn set_origin_up(&self, origin: &str, up: bool) {
        self.origin_up
            .get_or_create(&OriginLabel {
                origin: origin.to_string(),
            })
            .set(i64::from(up));
    }
}

impl Metrics {
    /// Register every metric in a fresh registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("eddy");
        let requests = Family::<StatusLabel, Counter>::default();
        registry.register(
            "requests",
            "Client requests by cache outcome (X-Cache)",
            requests.clone(),
        );
        let origin_fetches = Counter::default();
        registry.register(
            "origin_fetches",
            "Requests sent to an origin",
            origin_fetches.clone(),
        );
        let shield_fetches = Counter::default();
        registry.register(
            "shield_fetches",
            "Requests sent to a shield edge",
            shield_fetches.clone(),
        );
        let origin_errors = Counter::default();
        registry.register(
            "origin_errors",
            "Origin requests that failed",
            origin_errors.clone(),
        );
        let upstream_tls_failures = Counter::default();
        registry.register(
            "upstream_tls_failures",
            "TLS handshakes with https:// origins or shields that failed (certificate not verified, or no TLS there)",
            upstream_tls_failures.clone(),
        );
        let bytes_sent = Counter::default();
        registry.register(
            "response_body_bytes",
            "Response body bytes sent to clients",
            bytes_sent.clone(),
        );
        let latency = Family::<StatusLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "request_duration_seconds",
            "Time from request head to last response byte",
            latency.clone(),
        );
        let purges = Family::<PurgeLabel, Counter>::default();
        registry.register("purges", "Purge requests applied", purges.clone());
        let purged_objects = Counter::default();
        registry.register(
            "purged_objects",
            "Objects removed or marked stale by purges",
            purged_objects.clone(),
        );
        let spikes = Counter::default();
        registry.register(
            "traffic_spikes",
            "Traffic spikes detected (object or host over its baseline)",
            spikes.clone(),
        );
        let spikes_dropped = Counter::default();
        registry.register(
            "traffic_spikes_dropped",
            "Spikes not published because the publish queue was full",
            spikes_dropped.clone(),
        );
        let fast_hits = Counter::default();
        registry.register(
            "fast_hits",
            "Hits answered on the hit fast path, before the full proxy (also counted in requests)",
            fast_hits.clone(),
        );
        let fast_sendfile = Counter::default();
        registry.register(
            "fast_hits_sendfile",
            "Fast hits whose body went by sendfile from a sealed memory file",
            fast_sendfile.clone(),
        );
        let client_limited = Counter::default();
        registry.register(
            "client_rate_limited",
            "Requests refused with 429 by the per-client limit",
            client_limited.clone(),
        );
        let origin_limited = Counter::default();
        registry.register(
            "origin_fetches_limited",
            "Origin fetches not started because of the origin fetch limit (stale or 503 instead)",
            origin_limited.clone(),
        );
        let origin_up = Family::<OriginLabel, Gauge>::default();
        registry.register(
            "origin_up",
            "1 while an origin is considered up (probes and passive errors), else 0",
            origin_up.clone(),
        );
        let shield_up = Family::<ShieldLabel, Gauge>::default();
        registry.register(
            "shield_up",
            "1 while a shield is considered up (passive errors and its heartbeats), else 0",
            shield_up.clone(),
        );
        let client_limiter_keys = Gauge::default();
        registry.register(
            "client_limiter_keys",
            "Client addresses held by the per-client limiter",
            client_limiter_keys.clone(),
        );
        let closed_connections = Family::<ClosedLabel, Counter>::default();
        registry.register(
            "connections_closed",
            "Viewer connections the edge closed itself: head_timeout (edge.head_timeout_ms), idle_timeout (edge.keepalive_timeout_ms), max_connections and max_client_connections (refused at accept)",
            closed_connections.clone(),
        );
        let llhls = Family::<LlhlsLabel, Counter>::default();
        registry.register(
            "llhls",
            "LL-HLS at the edge: segment announcements followed (announced) or ignored as malformed (announcement_ignored); blocking playlist requests held (held) and requests for a preload-hinted part held (hint_held), woken by an announcement (woken), sent to the origin when none came (fallback), refused with 400 (refused), or answered 503 at the hold bound (timeout); preload hints learned from filled playlists (hint_learned) or playlists that did not read (playlist_ignored)",
            llhls.clone(),
        );
        let qoe = Family::<LlhlsLabel, Counter>::default();
        registry.register(
            "qoe_samples",
            "QoE samples from CMCD-carrying requests: published on the bus (sampled), dropped because the queue, the window or the bus could not take them (dropped), or ignored as malformed CMCD (malformed)",
            qoe.clone(),
        );
        let prefetch = Family::<LlhlsLabel, Counter>::default();
        registry.register(
            "prefetch",
            "Next objects players named (CMCD nor/nrr): fetched into the cache (fetched), prefetch answered without the object or not at all (failed), not fetched because fresh in memory (cached), already being filled (inflight), hard-purged a moment ago (purged), or over the budget, streaming.prefetch_rate and prefetch_inflight (refused); and viewer requests that came while the prefetch of their object was starting and waited for its answer instead of fetching it again (joined)",
            prefetch.clone(),
        );
        let guard = Family::<LlhlsLabel, Counter>::default();
        registry.register(
            "qoe_guard",
            "Quality guard decisions: a bitrate cap set or lowered because players' buffers ran dry (starvation), a VOD buffer ran low (low_buffer) or throughput fell below the bitrate pulled (throughput); raised a rung or lifted (recovered)",
            guard.clone(),
        );
        let tls_handshakes = Family::<LlhlsLabel, Counter>::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes on the HTTPS port (tls.listen): full, resumed from a session ticket or cache (resumed), failed (failed: no common protocol, bad record, a client that gave up), or not done within edge.head_timeout_ms (timeout)",
            tls_handshakes.clone(),
        );
        let signed_urls = Family::<LlhlsLabel, Counter>::default();
        registry.register(
            "signed_urls",
            "Requests a [[signed_urls]] route covers: granted, or refused with 403 because the token was missing, malformed, signed with no key in rotation or altered (bad_signature), expired, not yet valid (not_yet_valid), for other paths (wrong_path) or another client address (wrong_address)",
            signed_urls.clone(),
        );
        let audit = Family::<LlhlsLabel, Counter>::default();
        registry.register(
            "audit",
            "Operations on the admin API recorded in the audit trail (eddy_control::audit): ok, refused (not allowed or not valid), failed; dropped when the queue to the bus was full (still logged)",
            audit.clone(),
        );
        let guard_caps = Gauge::default();
        registry.register(
            "qoe_guard_caps",
            "Bitrate caps the quality guard holds now (one per capped title, one for the whole edge)",
            guard_caps.clone(),
        );
        let prefetch_inflight = Gauge::default();
        registry.register(
            "prefetch_inflight",
            "Prefetches in flight now (at most streaming.prefetch_inflight)",
            prefetch_inflight.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "connections_open",
            "Viewer connections open now",
            open_connections.clone(),
        );
        let refused = Family::<RefusedLabel, Counter>::default();
        registry.register(
            "requests_refused",
            "HTTP/1 requests refused by the gate before the fast path or the proxy saw them (malformed, bad Host or target, framing, too large)",
            refused.clone(),
        );
        let origin_retries = Counter::default();
        registry.register(
            "origin_retries",
            "Idempotent origin requests retried once on a fresh connection after a reused connection closed without answering",
            origin_retries.clone(),
        );
        let purge_dead_letters = Counter::default();
        registry.register(
            "purge_events_dead_lettered",
            "Purge events from the bus that did not decode or named a target that fails its checks: moved to the dead-letter topic, never applied",
            purge_dead_letters.clone(),
        );
        let events_refused = Counter::default();
        registry.register(
            "events_refused",
            "Events refused at the /events ingest (undecodable, or a purge target that fails its checks): never applied",
            events_refused.clone(),
        );
        let interactions = Family::<LlhlsLabel, Counter>::default();
        registry.register(
            "interactions",
            "Viewer interactions (dev.eddy.interaction.v1) at the ingest: published on the bus (accepted), or malformed and dropped (refused)",
            interactions.clone(),
        );
        let prewarm = Family::<LlhlsLabel, Counter>::default();
        registry.register(
            "prewarm",
            "Objects named by pre-warm hints (dev.eddy.prewarm.v1): fetched, already cached, skipped as another region's (region), over the byte budget (budget), or failed",
            prewarm.clone(),
        );
        let prewarm_bytes = Counter::default();
        registry.register(
            "prewarm_fetched_bytes",
            "Bytes fetched ahead of demand on pre-warm hints",
            prewarm_bytes.clone(),
        );
        let tier_bytes = Family::<TierLabel, Gauge>::default();
        registry.register(
            "cache_used_bytes",
            "Bytes stored per cache tier",
            tier_bytes.clone(),
        );
        let tier_capacity = Family::<TierLabel, Gauge>::default();
        registry.register(
            "cache_capacity_bytes",
            "Byte budget per cache tier",
            tier_capacity.clone(),
        );
        let tier_objects = Family::<TierLabel, Gauge>::default();
        registry.register(
            "cache_objects",
            "Objects stored per cache tier",
            tier_objects.clone(),
        );
        let tier_evictions = Family::<TierLabel, Counter>::default();
        registry.register(
            "cache_evictions",
            "Objects evicted per cache tier",
            tier_evictions.clone(),
        );
        let tier_hits = Family::<TierLabel, Counter>::default();
        registry.register(
            "cache_tier_hits",
            "Lookups answered per cache tier",
            tier_hits.clone(),
        );
        let disk_errors = Counter::default();
        registry.register(
            "cache_disk_errors",
            "Disk tier reads or writes that failed",
            disk_errors.clone(),
        );
        let seal_errors = Counter::default();
        registry.register(
            "cache_seal_errors",
            "Large bodies kept on the heap because no sealed memory file could be made for sendfile",
            seal_errors.clone(),
        );
        let policy_fallbacks = Counter::default();
        registry.register(
            "cache_policy_fallbacks",
            "Times a tier's learned eviction policy failed and the tier fell back to S3-FIFO",
            policy_fallbacks.clone(),
        );
        let sealed_bodies = Gauge::default();
        registry.register(
            "cache_sealed_bodies",
            "Cached bodies held in sealed memory files (one open file each), sent with sendfile",
            sealed_bodies.clone(),
        );
        // Resolve the per-outcome series once, so the request path never hashes a label set.
        let by_outcome = Outcome::ALL
            .iter()
            .map(|o| {
                let l = StatusLabel { cache: o.as_str() };
                (
                    requests.get_or_create(&l).clone(),
                    latency.get_or_create(&l).clone(),
                )
            })
            .collect();
        Metrics {
            by_outcome,
            purges_applied: AtomicU64::new(0),
            registry,
            requests,
            origin_fetches,
            shield_fetches,
            origin_errors,
            upstream_tls_failures,
            bytes_sent,
            latency,
            purges,
            purged_objects,
            spikes,
            spikes_dropped,
            client_limited,
            fast_hits,
            fast_sendfile,
            origin_limited,
            client_limiter_keys,
            closed_connections,
            llhls,
            tls_handshakes,
            signed_urls,
            audit,
            qoe,
            prefetch,
            prefetch_inflight,
            guard,
            guard_caps,
            open_connections,
            refused,
            origin_retries,
            events_refused,
            interactions,
            prewarm,
            prewarm_bytes,
            origin_up,
            shield_up,
            tier_bytes,
            tier_capacity,
            tier_objects,
            tier_evictions,
            tier_hits,
            disk_errors,
            seal_errors,
            last_seal_errors: AtomicU64::new(0),
            policy_fallbacks,
            last_policy_fallbacks: AtomicU64::new(0),
            sealed_bodies,
            last_evictions: [AtomicU64::new(0), AtomicU64::new(0)],
            last_hits: [AtomicU64::new(0), AtomicU64::new(0)],
            last_disk_errors: AtomicU64::new(0),
            purge_dead_letters,
            last_purge_dead_letters: AtomicU64::new(0),
            purge_consumer: parking_lot::Mutex::new(None),
        }
    }

    /// Count one finished request.
    #[inline]
    pub fn record(&self, outcome: Outcome, seconds: f64, body_bytes: u64) {
        if let Some((c, h)) = self.by_outcome.get(outcome as usize) {
            c.inc();
            h.observe(seconds);
        }
        self.bytes_sent.inc_by(body_bytes);
    }

    /// Report the purge follower's counters on `/metrics` from now on.
    pub fn watch_purge_consumer(&self, stats: std::sync::Arc<eddy_bus::consumer::ConsumerStats>) {
        *self.purge_consumer.lock() = Some(stats);
    }

    /// The LL-HLS counter for `what`.
    pub fn llhls(&self, what: &'static str) -> Counter {
        self.llhls.get_or_create(&LlhlsLabel { what }).clone()
    }

    /// The QoE sample counter for `what`.
    pub fn qoe(&self, what: &'static str) -> Counter {
        self.qoe.get_or_create(&LlhlsLabel { what }).clone()
    }

    /// The interaction ingest counter for `what` (`accepted`, `refused`).
    pub fn interactions_counted(&self, what: &'static str) -> Counter {
        self.interactions
            .get_or_create(&LlhlsLabel { what })
            .clone()
    }

    /// The pre-warm hint counter for `what`.
    pub fn prewarm_counted(&self, what: &'static str) -> Counter {
        self.prewarm.get_or_create(&LlhlsLabel { what }).clone()
    }

    /// The prefetch counter for `what`.
    pub fn prefetch(&self, what: &'static str) -> Counter {
        self.prefetch.get_or_create(&LlhlsLabel { what }).clone()
    }

    /// The quality guard counter for `reason`.
    pub fn guard(&self, reason: &'static str) -> Counter {
        self.guard
            .get_or_create(&LlhlsLabel { what: reason })
            .clone()
    }

    /// Count a TLS handshake that ended as `what` (full, resumed, failed, timeout).
    pub fn tls(&self, what: &'static str) {
        self.tls_handshakes
            .get_or_create(&LlhlsLabel { what })
            .inc();
    }

    /// Count a request a signed-URL route covers, as `what` (granted or the refusal's label).
    pub fn signed(&self, what: &'static str) {
        self.signed_urls.get_or_create(&LlhlsLabel { what }).inc();
    }

    /// Count an audit record, as `what` (its outcome, or dropped).
    pub fn audit(&self, what: &'static str) {
        self.audit.get_or_create(&LlhlsLabel { what }).inc();
    }

    /// Count a viewer connection the edge closed itself, and why.
    pub fn closed(&self, reason: &'static str) {
        self.closed_connections
            .get_or_create(&ClosedLabel { reason })
            .inc();
    }

    /// Count a request the gate refused (it also counts as a `REJECTED` request).
    pub fn rejected(&self, rejection: &crate::request::Rejection, seconds: f64) {
        self.refused
            .get_or_create(&RefusedLabel {
                status: rejection.status,
            })
            .inc();
        self.record(Outcome::Rejected, seconds, 0);
    }

    /// The counters a heartbeat carries, read now.
    pub fn snapshot(&self) -> eddy_events::EdgeStats {
        let count = |o: Outcome| self.by_outcome.get(o as usize).map_or(0, |(c, _)| c.get());
        let hits = count(Outcome::Hit) + count(Outcome::Stale) + count(Outcome::Revalidated);
        let requests = Outcome::ALL
            .iter()
            .filter(|o| **o != Outcome::Purge)
            .map(|o| count(*o))
            .sum();
        eddy_events::EdgeStats {
            requests,
            hits,
            origin_fetches: self.origin_fetches.get(),
            shield_fetches: self.shield_fetches.get(),
            errors: count(Outcome::Error),
            bytes_sent: self.bytes_sent.get(),
            purges: self.purges_applied.load(Ordering::Relaxed),
            spikes: self.spikes.get(),
        }
    }

    fn sync_counter(c: &Counter, last: &AtomicU64, now: u64) {
        let prev = last.swap(now, Ordering::Relaxed);
        if now > prev {
            c.inc_by(now - prev);
        }
    }

    /// Render the text exposition, refreshing tier gauges from the cache first.
    pub fn render(&self, cache: &Cache, memory_capacity: u64, disk_capacity: u64) -> String {
        let u = cache.usage();
        let tiers = [
            (
                "memory",
                u.memory_used,
                memory_capacity,
                u.memory_objects,
                u.memory_evictions,
            ),
            (
                "disk",
                u.disk_used,
                disk_capacity,
                u.disk_objects,
                u.disk_evictions,
            ),
        ];
        let hits = [
            cache.counters.memory_hits.get(),
            cache.counters.disk_hits.load(Ordering::Relaxed),
        ];
        for (i, (tier, used, cap, objects, evictions)) in tiers.into_iter().enumerate() {
            let l = TierLabel { tier };
            self.tier_bytes.get_or_create(&l).set(used as i64);
            self.tier_capacity.get_or_create(&l).set(cap as i64);
            self.tier_objects.get_or_create(&l).set(objects as i64);
            Self::sync_counter(
                &self.tier_evictions.get_or_create(&l),
                &self.last_evictions[i],
                evictions,
            );
            Self::sync_counter(
                &self.tier_hits.get_or_create(&l),
                &self.last_hits[i],
                hits[i],
            );
        }
        Self::sync_counter(
            &self.disk_errors,
            &self.last_disk_errors,
            cache.counters.disk_errors.load(Ordering::Relaxed),
        );
        Self::sync_counter(
            &self.seal_errors,
            &self.last_seal_errors,
            cache.counters.seal_errors.load(Ordering::Relaxed),
        );
        Self::sync_counter(
            &self.policy_fallbacks,
            &self.last_policy_fallbacks,
            cache.counters.policy_fallbacks.load(Ordering::Relaxed),
        );
        self.sealed_bodies.set(cache.sealed_bodies() as i64);
        if let Some(c) = self.purge_consumer.lock().as_ref() {
            Self::sync_counter(
                &self.purge_dead_letters,
                &self.last_purge_dead_letters,
                c.dead_lettered.load(Ordering::Relaxed),
            );
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
