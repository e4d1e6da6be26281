//! The request path of an edge: pingora `ProxyHttp` phases over the Eddy cache.
//!
//! Phase by phase:
//! - `request_filter`: answers `PURGE` (allowed networks only, 405 otherwise).
//! - `request_cache_filter`: enables the cache for GET and HEAD, with the coalescing lock.
//! - `cache_key_callback`: the key is `host + path?query` (host lower-cased, default port dropped),
//!   which is also the URL that purge by URL and prefix match.
//! - `response_cache_filter`: RFC 9111 storability and freshness from [`eddy_cache::rfc9111`].
//! - `cache_vary_filter`: secondary keys from `Vary`.
//! - `upstream_peer` / `fail_to_connect`: origins in order, the next one on connect failure.
//! - `response_filter`: `X-Cache`, RFC 9211 `Cache-Status`, and §4.4 invalidation after unsafe
//!   methods.
//! - `logging`: metrics.

use crate::fields::{header_str, joined, merge_not_modified, strip_response_hops};
use crate::metrics::{Metrics, Outcome, PurgeLabel};
use crate::request;
use crate::slice::{self, Slice};
use crate::storage::{EddyStorage, hit_from_disk, primary_of};
use async_trait::async_trait;
use bytes::Bytes;
use eddy_cache::PurgeScope;
use eddy_cache::rfc9111::{self, Decision, Limits, ResponseFacts};
use eddy_config::Config;
use http::{Method, header};
use ipnet::IpNet;
use pingora_cache::key::HashBinary;
use pingora_cache::lock::CacheKeyLockImpl;
use pingora_cache::{
    CacheKey, CacheMeta, CacheOptionOverrides, CachePhase, ForcedFreshness, HitHandler,
    NoCacheReason, RespCacheable, VarianceBuilder,
};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Shared state of one edge, built once at start-up.
pub struct EdgeState {
    /// Validated configuration.
    pub config: Config,
    /// Cache storage (pingora adapter over the cache core).
    pub storage: &'static EddyStorage,
    /// Coalescing lock.
    pub lock: &'static CacheKeyLockImpl,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// RFC 9111 limits.
    pub limits: Limits,
    /// The event bus, when the edge is part of a deployment.
    pub bus: Option<Arc<dyn eddy_bus::Bus>>,
    /// Traffic-spike detection, unless disabled.
    pub spikes: Option<crate::spike::SpikeWatch>,
    /// Per-client request limit (`edge.client_rate`), keyed by client address.
    pub client_limiter: Option<ClientLimiter>,
    /// Origin fetch limit (`edge.origin_rate`).
    pub origin_limiter: Option<OriginLimiter>,
    /// Which origins are up.
    pub health: crate::health::OriginHealth,
    /// Which shields are up (passive errors plus their heartbeats on the bus).
    pub shield_health: crate::health::OriginHealth,
    /// Live streams as their `segment.published` announcements tell (LL-HLS holds).
    pub streams: Arc<crate::llhls::Streams>,
    /// Player telemetry into QoE samples, when there is a bus to publish them on.
    pub qoe: Option<crate::qoe::Qoe>,
    /// Open viewer connections and their caps.
    pub conns: Arc<crate::conn::ConnLimits>,
    /// The HTTPS port's TLS, when `[tls]` configures one.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// The audit trail of admin operations.
    pub audit: eddy_control::audit::Auditor,
    /// This edge's CMSD-Dynamic member, for responses to requests that carried CMCD.
    pub cmsd: Option<crate::cmsd::Hop>,
    /// The quality guard's bitrate caps in force.
    pub caps: crate::guard::Caps,
    /// Hard purges of the last moments: their objects are not prefetched.
    pub recent_purges: crate::prefetch::RecentPurges,
    /// Prefetches started and not yet answered: a viewer's request for one waits for its
    /// answer to begin instead of racing it to the origin.
    pub prefetching: crate::prefetch::Starting,
    /// Where the origins and shields are (names resolved off the request path).
    pub upstreams: crate::upstream::Upstreams,
}

/// One token bucket for all origin fetches of this edge.
pub type OriginLimiter = governor::DefaultDirectRateLimiter;

/// An origin limiter for (fetches/s, burst).
pub fn origin_limiter(rate: u32, burst: u32) -> Option<OriginLimiter> {
    let rate = std::num::NonZeroU32::new(rate)?;
    let burst = std::num::NonZeroU32::new(burst)?;
    Some(governor::RateLimiter::direct(
        governor::Quota::per_second(rate).allow_burst(burst),
    ))
}

/// Token buckets per client address (governor's GCRA, in a sharded map pruned by the admin
/// runtime every few seconds).
pub type ClientLimiter = governor::DefaultKeyedRateLimiter<std::net::IpAddr>;

/// A limiter for (requests/s, burst).
pub fn client_limiter(rate: u32, burst: u32) -> Option<ClientLimiter> {
    let rate = std::num::NonZeroU32::new(rate)?;
    let burst = std::num::NonZeroU32::new(burst)?;
    Some(governor::RateLimiter::dashmap(
        governor::Quota::per_second(rate).allow_burst(burst),
    ))
}

/// What an operator (or, later, the event bus) asks an edge to purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// Every variant of one URL, as `host/path?query` (canonical, see [`eddy_url`]).
    Url(String),
    /// Every object whose URL starts with this.
    Prefix(String),
    /// Every object tagged with this surrogate key.
    Key(String),
    /// Everything (an explicit command; an empty prefix is refused before it gets here).
    All,
}

impl Purge {
    fn label(&self) -> &'static str {
        match self {
            Purge::Url(_) => "url",
            Purge::Prefix(_) => "prefix",
            Purge::Key(_) => "key",
            Purge::All => "all",
        }
    }

    /// The cache core's scope for this purge.
    pub fn scope(&self) -> PurgeScope {
        match self {
            Purge::Url(u) => PurgeScope::Primary(primary_of(u)),
            Purge::Prefix(p) => PurgeScope::Prefix(p.clone()),
            Purge::Key(k) => PurgeScope::SurrogateKey(k.clone()),
            // Every URL starts with the empty prefix: a ban on all of it, disk included.
            Purge::All => PurgeScope::Prefix(String::new()),
        }
    }
}

impl EdgeState {
    /// Apply a purge to this edge's cache and count it. Returns the objects affected now (a
    /// prefix purge reaches disk-only objects when they are next read; they are not counted).
    pub fn purge(&self, purge: &Purge, soft: bool) -> Result<usize, eddy_cache::CacheError> {
        if !soft {
            self.recent_purges.record(purge);
        }
        let n = self.storage.cache().purge(&purge.scope(), soft)?;
        let label = PurgeLabel {
            scope: purge.label(),
            mode: if soft { "soft" } else { "hard" },
        };
        self.metrics.purges.get_or_create(&label).inc();
        self.metrics
            .purges_applied
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.metrics.purged_objects.inc_by(n as u64);
        tracing::info!(?purge, soft, objects = n, "purge applied");
        Ok(n)
    }
}

/// Per-request context.
pub struct Ctx {
    start: Instant,
    disk_hit: bool,
    no_store_reason: Option<&'static str>,
    unsafe_method: bool,
    outcome: Outcome,
    body_bytes: u64,
    not_modified: Option<http::HeaderMap>,
    /// The block a range request was mapped to, and the client's original `Range`.
    slice: Option<(Slice, http::HeaderValue)>,
    /// The origin did not answer the block request with the block: pass through.
    slice_passthrough: bool,
    /// The origin fetch limit refused this request's fetch.
    origin_limited: bool,
    /// Index of the origin this request's current attempt went to.
    origin: usize,
    /// Origins this request has tried, in order.
    tried: Vec<usize>,
    /// The request's URL key (`host/path?query`), for GET and HEAD.
    url: Option<String>,
    /// The request came from another Eddy edge (`eddy-via`): fetch from origins, not shields.
    from_edge: bool,
    /// Shields in this object's rendezvous order (computed on the first fetch).
    shield_order: Vec<usize>,
    /// Shields tried so far.
    shield_tries: usize,
    /// The current attempt goes to a shield.
    via_shield: bool,
    /// Index of the shield the current attempt went to.
    shield: usize,
    /// Retries after a reused origin connection failed (at most one).
    retries: u8,
    /// The next attempt must use a new connection, not a pooled one.
    fresh_conn: bool,
    /// An LL-HLS blocking request must be answered by then (`streaming.hold`): the origin's
    /// answer is bounded by it, and a request still unanswered gets 503.
    hold_until: Option<Instant>,
    /// The query as the client sent it, kept for a request pingora parsed (HTTP/2) when a
    /// signed-URL check or an HTTPS redirect needs it (the canonical target has lost parts).
    raw_query: Option<String>,
    /// The body of a live playlist being filled, read for its preload hint when complete
    /// (`crate::llhls::Streams::read_filled`).
    playlist: Option<Vec<u8>>,
    /// The request carried player telemetry (CMCD): the response gets this hop's CMSD.
    telemetry: bool,
    /// The quality guard's cap for this request (CMSD-Dynamic `mb`).
    mb: Option<u32>,
    /// A multivariant playlist answer being rewritten under the guard's cap.
    rewrite: Option<crate::guard::Rewrite>,
}

/// The edge proxy.
pub struct EdgeProxy {
    state: Arc<EdgeState>,
}

impl EdgeProxy {
    /// A proxy over shared state.
    pub fn new(state: Arc<EdgeState>) -> Self {
        EdgeProxy { state }
    }
}

/// Sent by an edge to its shield, naming itself; a request carrying it is fetched from the
/// origins, never passed to another shield.
pub const VIA_HEADER: &str = "eddy-via";

/// Shield indices in rendezvous (highest random weight) order for the object at `url`: each
/// object has one owner, and removing a shield moves only the objects it owned.
pub fn shield_order(shields: &[eddy_config::Origin], url: &str) -> Vec<usize> {
    let mut scored: Vec<(u64, usize)> = shields
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(s.host.as_bytes());
            h.update(&s.port.to_le_bytes());
            h.update(url.as_bytes());
            (h.digest(), i)
        })
        .collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.into_iter().map(|(_, i)| i).collect()
}

fn allowed(nets: &[IpNet], session: &Session) -> bool {
    let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) else {
        return false;
    };
    nets.iter().any(|n| n.contains(&addr.ip()))
}

async fn respond(
    session: &mut Session,
    status: u16,
    body: String,
    content_type: &str,
) -> Result<()> {
    respond_with(session, status, body, content_type, &[]).await
}

/// [`respond`] with extra response headers.
async fn respond_with(
    session: &mut Session,
    status: u16,
    body: String,
    content_type: &str,
    extra: &[(&'static str, String)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(3 + extra.len()))?;
    for (k, v) in extra {
        resp.insert_header(*k, v.as_str())?;
    }
    resp.insert_header(header::CONTENT_TYPE, content_type)?;
    resp.insert_header(header::CONTENT_LENGTH, body.len())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await
}

/// Whether the viewer's connection is HTTPS (`crate::tls`).
fn over_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// `503` with `Retry-After: 1` and `why` as a JSON error, for `fail_to_proxy`.
async fn retry_shortly(session: &mut Session, why: &str, reuse: bool) -> FailToProxy {
    let body = serde_json::json!({ "error": why }).to_string() + "\n";
    let _ = respond_with(
        session,
        503,
        body,
        "application/json",
        &[("retry-after", "1".into())],
    )
    .await;
    FailToProxy {
        error_code: 503,
        can_reuse_downstream: reuse,
    }
}

/// Rewrite a block-relative `Content-Range` to absolute offsets in the whole object.
fn slice_content_range(resp: &mut ResponseHeader, s: &Slice, total: u64) -> Result<()> {
    match resp.status.as_u16() {
        206 => {
            let cr = resp
                .headers
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(slice::parse_content_range);
            if let Some((x, y, _)) = cr {
                resp.insert_header(
                    header::CONTENT_RANGE,
                    format!("bytes {}-{}/{total}", s.block_start + x, s.block_start + y),
                )?;
            }
        }
        416 => resp.insert_header(header::CONTENT_RANGE, format!("bytes */{total}"))?,
        _ => {}
    }
    Ok(())
}

impl EdgeProxy {
    /// Map a single-range GET to a block when slicing is on and the object is not cached whole.
    fn plan_slice(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        let size = self.state.config.cache.slice_size;
        if size == 0 || session.req_header().headers.contains_key(header::IF_RANGE) {
            return Ok(());
        }
        let Some(range) = session.req_header().headers.get(header::RANGE).cloned() else {
            return Ok(());
        };
        let Some(parsed) = range.to_str().ok().and_then(slice::parse_single_range) else {
            return Ok(());
        };
        let Some(url) = ctx.url.as_deref() else {
            return Ok(());
        };
        if self.state.storage.cache().contains(&primary_of(url)) {
            return Ok(()); // cached whole: serve the range from it
        }
        if let Some((s, relative)) = slice::plan(parsed, size) {
            session
                .req_header_mut()
                .insert_header(header::RANGE, relative)?;
            ctx.slice = Some((s, range));
        }
        Ok(())
    }

    /// LL-HLS blocking reload (`crate::llhls`): refuse a directive the spec refuses, hold a
    /// request for a part not yet announced (a playlist that must list it, or the preload-hinted
    /// part itself) until its announcement, at most half the hold bound, and bound what follows
    /// by the hold. True when the request was answered here.
    async fn hold_playlist(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let Some(url) = ctx.url.as_deref() else {
            return Ok(false);
        };
        let (path, query) = crate::classes::path_and_query(url);
        let bound = self.state.config.streaming.hold;
        let metrics = &self.state.metrics;
        match self.state.streams.judge(path, query) {
            crate::llhls::Verdict::Ordinary => return Ok(false),
            crate::llhls::Verdict::Go => {}
            crate::llhls::Verdict::Refuse(why) => {
                ctx.outcome = Outcome::Rejected;
                metrics.llhls("refused").inc();
                let body = serde_json::json!({ "error": why }).to_string() + "\n";
                respond(session, 400, body, "application/json").await?;
                return Ok(true);
            }
            crate::llhls::Verdict::Hold {
                rx,
                msn,
                part,
                hinted,
            } => {
                metrics
                    .llhls(if hinted { "hint_held" } else { "held" })
                    .inc();
                match crate::llhls::hold(rx, msn, part, bound / 2).await {
                    crate::llhls::Held::Woken => metrics.llhls("woken").inc(),
                    crate::llhls::Held::TimedOut => metrics.llhls("fallback").inc(),
                };
            }
        }
        ctx.hold_until = Some(ctx.start + bound);
        Ok(false)
    }

    /// Turn the origin's answer to a block request into a cacheable block, or give up slicing
    /// for this request when the origin did not send the block.
    fn block_response(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
        s: Slice,
        original: http::HeaderValue,
    ) -> Result<()> {
        let size = self.state.config.cache.slice_size;
        let content_range = resp
            .headers
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(slice::parse_content_range);
        let content_length = resp
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match (resp.status.as_u16(), content_range) {
            (206, Some((x, y, total))) if x == s.block_start && y <= s.block_end => {
                resp.set_status(200)?;
                resp.remove_header(&header::CONTENT_RANGE);
                resp.insert_header(header::CONTENT_LENGTH, y - x + 1)?;
                resp.insert_header(slice::TOTAL_HEADER, total)?;
            }
            // An origin that ignores Range on a small object sent block 0: the whole object.
            (200, _) if s.index == 0 && content_length.is_some_and(|l| l <= size) => {
                let total = content_length.unwrap_or(0);
                resp.insert_header(slice::TOTAL_HEADER, total)?;
            }
            (304, _) => {}
            _ => {
                // Not a block: serve it as the origin sent it, against the client's own Range.
                ctx.slice_passthrough = true;
                session
                    .req_header_mut()
                    .insert_header(header::RANGE, original)?;
            }
        }
        Ok(())
    }
}

fn ttl_secs(meta: &CacheMeta) -> i64 {
    let now = SystemTime::now();
    match meta.fresh_until().duration_since(now) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            disk_hit: false,
            no_store_reason: None,
            unsafe_method: false,
            outcome: Outcome::Pass,
            body_bytes: 0,
            not_modified: None,
            slice: None,
            slice_passthrough: false,
            origin_limited: false,
            origin: 0,
            tried: Vec::new(),
            url: None,
            from_edge: false,
            shield_order: Vec::new(),
            shield_tries: 0,
            via_shield: false,
            shield: 0,
            retries: 0,
            fresh_conn: false,
            hold_until: None,
            raw_query: None,
            playlist: None,
            telemetry: false,
            mb: None,
            rewrite: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let header_bytes = match session.as_downstream() {
            pingora_core::protocols::http::ServerSession::H1(h1) => {
                let raw = h1.get_headers_raw_bytes();
                if let Some(why) = request::framing_violation(&raw) {
                    Err(why)
                } else {
                    Ok(raw.len())
                }
            }
            _ => Ok(session
                .req_header()
                .headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 4)
                .sum()),
        };
        if let Ok(n) = header_bytes
            && n > self.state.config.edge.max_header_bytes
        {
            ctx.outcome = Outcome::Rejected;
            session.set_keepalive(None);
            let body = serde_json::json!({
                "error": format!("request header of {n} bytes exceeds the limit of {} bytes", self.state.config.edge.max_header_bytes)
            })
            .to_string()
                + "\n";
            respond(session, 431, body, "application/json").await?;
            return Ok(true);
        }
        if let Err(why) = header_bytes {
            ctx.outcome = Outcome::Rejected;
            tracing::info!(reason = why, client = ?session.client_addr().map(|a| a.to_string()), "rejected malformed request");
            session.set_keepalive(None);
            let body = serde_json::json!({ "error": why }).to_string() + "\n";
            respond(session, 400, body, "application/json").await?;
            return Ok(true);
        }
        // One canonical URL for the key, purge and the origin request (see crate::request).
        let default_port = if over_tls(session) {
            eddy_url::HTTPS_PORT
        } else {
            eddy_url::HTTP_PORT
        };
        let judged = match request::judge_header(
            session.req_header(),
            &self.state.config,
            default_port,
        ) {
            Ok(r) => r,
            Err(rejection) => {
                ctx.outcome = Outcome::Rejected;
                tracing::info!(status = rejection.status, reason = %rejection.reason, client = ?session.client_addr().map(|a| a.to_string()), "refused a request");
                session.set_keepalive(None);
                let body = serde_json::json!({ "error": rejection.reason }).to_string() + "\n";
                respond(session, rejection.status, body, "application/json").await?;
                return Ok(true);
            }
        };
        if let Some(url) = &judged.url {
            let req = session.req_header_mut();
            let config = &self.state.config;
            if !config.signed_urls.is_empty() || config.tls.as_ref().is_some_and(|t| t.redirect) {
                // The query as the client sent it (the canonical one drops tokens and CMCD),
                // for a signed-URL check or a redirect of a request the gate did not see.
                ctx.raw_query = req.uri.query().map(str::to_owned);
            }
            let uri = http::Uri::try_from(url.path()).map_err(|e| {
                Error::because(ErrorType::InternalError, "canonical path is not a URI", e)
            })?;
            req.set_uri(uri);
            req.insert_header(header::HOST, url.host())?;
        }
        if let (true, request::Body::Length(n)) = (judged.length_list, judged.body) {
            // RFC 9110 §8.6: a list of one repeated length goes on as that length.
            session
                .req_header_mut()
                .insert_header(header::CONTENT_LENGTH, n)?;
        }
        ctx.url = judged.url.map(eddy_url::Canonical::into_string);
        if let Some(limiter) = &self.state.client_limiter
            && let Some(ip) = session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip())
            && let Err(not_until) = limiter.check_key(&ip)
        {
            ctx.outcome = Outcome::Rejected;
            self.state.metrics.client_limited.inc();
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            let retry = wait.as_secs() + 1;
            let body = serde_json::json!({
                "error": format!("too many requests from {ip}; retry in {retry} s")
            })
            .to_string()
                + "\n";
            respond_with(
                session,
                429,
                body,
                "application/json",
                &[("retry-after", retry.to_string())],
            )
            .await?;
            return Ok(true);
        }
        ctx.from_edge = session.req_header().headers.contains_key(VIA_HEADER);
        // HTTP/1 telemetry was seen and taken by the gate, from the head as the player sent it.
        if session.as_downstream().is_http2() {
            let peer = session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip());
            let req = session.req_header();
            ctx.telemetry = crate::cmsd::carries_cmcd(req.uri.query(), req.headers.keys());
            if let (true, Some(q), Some(url)) = (ctx.telemetry, &self.state.qoe, &ctx.url) {
                q.offer_parts(
                    url,
                    req.uri.query(),
                    req.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
                    peer,
                );
            }
            if let (true, Some(url)) = (ctx.telemetry, &ctx.url) {
                ctx.mb = self.state.caps.for_request(
                    url,
                    req.uri.query(),
                    req.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
                    peer,
                );
            }
        } else {
            // HTTP/1: the gate judged the cap from the head as the player sent it.
            let stream = session.as_downstream().stream();
            ctx.telemetry = crate::date::telemetry(stream);
            ctx.mb = crate::date::cap(stream);
        }
        if let (Some(q), Some(path), Some(url)) = (
            &self.state.qoe,
            &self.state.config.streaming.cmcd_events,
            &ctx.url,
        ) && crate::reports::is_target(url, path)
        {
            // CMCD v2 event reports: taken here, never sent to the origin.
            ctx.outcome = Outcome::Pass;
            let url = url.clone();
            crate::reports::serve(session, q, &self.state.config, &url).await?;
            return Ok(true);
        }
        let method = session.req_header().method.clone();
        if method.as_str() == "PURGE" {
            ctx.outcome = Outcome::Purge;
            if !allowed(&self.state.config.edge.purge_allow, session) {
                respond(
                    session,
                    405,
                    "{\"error\":\"PURGE is not allowed from this address\"}\n".into(),
                    "application/json",
                )
                .await?;
                return Ok(true);
            }
            let url = ctx.url.clone().unwrap_or_default();
            let soft = ["fastly-soft-purge", "eddy-soft-purge"].iter().any(|h| {
                session
                    .req_header()
                    .headers
                    .get(*h)
                    .and_then(|v| v.to_str().ok())
                    == Some("1")
            });
            let (status, body) = match self.state.purge(&Purge::Url(url.clone()), soft) {
                Ok(n) => (
                    200,
                    serde_json::json!({"purged": n, "url": url, "soft": soft}),
                ),
                Err(e) => (500, serde_json::json!({"error": e.to_string()})),
            };
            respond(session, status, body.to_string() + "\n", "application/json").await?;
            return Ok(true);
        }
        if let (Some(t), Some(url)) = (&self.state.config.tls, &ctx.url)
            && t.redirect
            && !over_tls(session)
        {
            // `[tls] redirect`: every cleartext request (purges aside) to the same URL on HTTPS.
            ctx.outcome = Outcome::Pass;
            // The canonical path, and the query as the client sent it (HTTP/1: the gate kept
            // it; the target pingora has lost the `CMCD` parameter).
            let (path, _) = crate::classes::path_and_query(url);
            let query = match crate::date::raw_query(session.as_downstream().stream()) {
                Some(q) => Some(q.to_owned()),
                None => ctx.raw_query.clone(),
            };
            let target = match query {
                Some(q) => format!("{path}?{q}"),
                None => path.to_owned(),
            };
            let location = crate::tls::https_location(url, &target, t.listen.port());
            respond_with(
                session,
                308,
                String::new(),
                "text/plain",
                &[("location", location)],
            )
            .await?;
            return Ok(true);
        }
        if let (false, Some(url)) = (self.state.config.signed_urls.is_empty(), &ctx.url) {
            // Signed URLs (`crate::access`): HTTP/1 was judged by the gate; judge the rest here.
            let access = match crate::date::access(session.as_downstream().stream()) {
                Some(a) => a,
                None => {
                    let req = session.req_header();
                    let client = session
                        .client_addr()
                        .and_then(|a| a.as_inet())
                        .map(|a| a.ip());
                    let a = crate::access::judge_parts(
                        &self.state.config,
                        url,
                        ctx.raw_query.as_deref(),
                        req.headers
                            .get_all(header::COOKIE)
                            .iter()
                            .map(|v| v.as_bytes()),
                        client,
                    );
                    if a != crate::access::Access::Open {
                        self.state.metrics.signed(a.label());
                    }
                    a
                }
            };
            if let crate::access::Access::Refused(r) = access {
                ctx.outcome = Outcome::Rejected;
                let (body, fields) = crate::access::refusal(&r);
                respond_with(session, 403, body, "application/json", &fields).await?;
                return Ok(true);
            }
        }
        ctx.unsafe_method = !matches!(
            method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        if matches!(method, Method::GET | Method::HEAD)
            && let (Some(w), Some(url)) = (&self.state.spikes, &ctx.url)
        {
            w.observe(url, &self.state.metrics);
        }
        if matches!(method, Method::GET | Method::HEAD) && self.hold_playlist(session, ctx).await? {
            return Ok(true);
        }
        if method == Method::GET
            && let Some(url) = &ctx.url
            && !session
                .req_header()
                .headers
                .contains_key(crate::prefetch::HEADER)
            && self
                .state
                .prefetching
                .join(url, self.state.config.edge.coalesce_timeout)
                .await
        {
            self.state.metrics.prefetch("joined").inc();
        }
        if method == Method::GET {
            self.plan_slice(session, ctx)?;
        }
        Ok(false)
    }

    fn request_cache_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        let m = &session.req_header().method;
        if m == Method::GET || m == Method::HEAD {
            let edge = &self.state.config.edge;
            session.cache.enable(
                self.state.storage,
                None,
                None,
                Some(self.state.lock),
                Some({
                    let mut o = CacheOptionOverrides::default();
                    o.wait_timeout = Some(edge.coalesce_timeout);
                    o.max_lock_retries = Some(3);
                    o
                }),
            );
        }
        Ok(())
    }

    fn cache_key_callback(&self, _session: &Session, ctx: &mut Ctx) -> Result<CacheKey> {
        let url = ctx.url.clone().unwrap_or_default();
        Ok(match &ctx.slice {
            Some((s, _)) => CacheKey::new(url + &slice::key_suffix(s.index), ""),
            None => CacheKey::new(url, ""),
        })
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // RFC 9110 §7.6.1: what the client's Connection names is for this hop only. An upgrade
        // (WebSocket) keeps its Connection and Upgrade: pingora relays the 101.
        if !upstream.headers.contains_key(header::UPGRADE) {
            let mut names = crate::fields::connection_listed(&upstream.headers);
            names.extend(["keep-alive", "proxy-connection", "trailer"].map(String::from));
            for n in names {
                upstream.remove_header(n.as_str());
            }
        }
        if let Some((s, _)) = &ctx.slice {
            upstream.insert_header(
                header::RANGE,
                format!("bytes={}-{}", s.block_start, s.block_end),
            )?;
        }
        if ctx.via_shield {
            upstream.insert_header(VIA_HEADER, self.state.config.edge.id.as_str())?;
        }
        Ok(())
    }

    async fn cache_hit_filter(
        &self,
        _session: &mut Session,
        _meta: &CacheMeta,
        hit_handler: &mut HitHandler,
        _is_fresh: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<ForcedFreshness>> {
        ctx.disk_hit = hit_from_disk(hit_handler);
        Ok(None)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let status = resp.status.as_u16();
        if (100..200).contains(&status) && status != 101 {
            // An interim response is forwarded as it is, never stored, never stamped. pingora
            // 0.9.1 drops a 1xx that arrives in one read with a storable final response (the
            // cache's miss handler then serves the client and the batch is discarded), so it is
            // written here and pingora's own copy ignored. A 100 is left to pingora: it answers
            // `Expect: 100-continue` itself.
            if status != 100 {
                strip_response_hops(resp);
                resp.remove_header("eddy-cdn-cache-control");
                let info = Box::new(resp.clone());
                let downstream = session.as_downstream_mut();
                downstream.set_ignore_info_resp(false);
                let written = session.write_response_header(info, false).await;
                session.as_downstream_mut().set_ignore_info_resp(true);
                written?;
            }
            return Ok(());
        }
        if status != 101 {
            // RFC 9110 §7.6.1: never stored, never forwarded.
            strip_response_hops(resp);
        }
        if ctx.via_shield {
            self.state
                .shield_health
                .success(ctx.shield, "answered a request");
        } else {
            self.state.health.success(ctx.origin, "answered a request");
        }
        if resp.status == http::StatusCode::NOT_MODIFIED
            && session.cache.maybe_cache_meta().is_some()
        {
            // pingora merges only a few fields of a 304 into the stored head; keep them all so
            // response_cache_filter can apply RFC 9111 §3.2 in full.
            ctx.not_modified = Some(resp.headers.clone());
        }
        if let Some((s, original)) = ctx.slice.clone() {
            self.block_response(session, resp, ctx, s, original)?;
        }
        if resp.status == http::StatusCode::OK
            && resp.headers.get(header::CONTENT_ENCODING).is_none()
            && let Some(url) = ctx.url.as_deref()
        {
            let (path, _) = crate::classes::path_and_query(url);
            if path.ends_with(".m3u8") && self.state.streams.follows(path) {
                ctx.playlist = Some(Vec::new());
            }
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if let Some(buf) = &mut ctx.playlist {
            if let Some(b) = body {
                if buf.len() + b.len() > crate::llhls::PLAYLIST_MAX {
                    ctx.playlist = None;
                    return Ok(None);
                }
                buf.extend_from_slice(b);
            }
            if end_of_stream
                && let (Some(buf), Some(url)) = (ctx.playlist.take(), ctx.url.as_deref())
            {
                let (path, _) = crate::classes::path_and_query(url);
                let host = crate::classes::host_of(url);
                let config = &self.state.config;
                self.state.streams.read_filled(
                    path,
                    &buf,
                    config.path_options(host),
                    &self.state.metrics,
                );
            }
        }
        Ok(None)
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<RespCacheable> {
        if ctx.slice_passthrough {
            let reason = "origin did not send the range block";
            ctx.no_store_reason = Some(reason);
            return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(reason)));
        }
        if !resp.status.is_success()
            && session
                .req_header()
                .headers
                .contains_key(crate::prefetch::HEADER)
        {
            // A live segment asked for a moment before it exists must not be stored as a 404.
            let reason = "a prefetch got no object";
            ctx.no_store_reason = Some(reason);
            return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(reason)));
        }
        let merged;
        let resp = match ctx.not_modified.take() {
            Some(fresh) => {
                merged = merge_not_modified(resp, &fresh)?;
                &merged
            }
            None => resp,
        };
        let req = session.req_header();
        let cc = joined(resp, header::CACHE_CONTROL);
        // RFC 8941 §4.2: a structured field's lines are parsed as one.
        let cdn_cc = joined(resp, header::HeaderName::from_static("cdn-cache-control"));
        let eddy_cc = joined(
            resp,
            header::HeaderName::from_static("eddy-cdn-cache-control"),
        );
        let vary_star = resp
            .headers
            .get_all(header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|p| p.trim() == "*"));
        let req_cc = req
            .headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let facts = ResponseFacts {
            status: resp.status.as_u16(),
            cache_control: cc.as_deref(),
            cdn_cache_control: cdn_cc.as_deref(),
            eddy_cdn_cache_control: eddy_cc.as_deref(),
            expires: header_str(resp, "expires"),
            date: header_str(resp, "date"),
            last_modified: header_str(resp, "last-modified"),
            age: header_str(resp, "age"),
            has_etag: resp.headers.contains_key(header::ETAG),
            vary_star,
            request_authorized: req.headers.contains_key(header::AUTHORIZATION),
            request_no_store: rfc9111::Directives::parse_lenient(req_cc).no_store,
            class_ttl: ctx.url.as_deref().and_then(|url| {
                let streaming = &self.state.config.streaming;
                let head = crate::classes::head(
                    streaming,
                    url,
                    resp.status.as_u16(),
                    header_str(resp, "content-type"),
                );
                crate::classes::ttl_at_head(streaming, head)
            }),
        };
        if resp.headers.contains_key(header::SET_COOKIE) {
            ctx.no_store_reason = Some("set-cookie");
            return Ok(RespCacheable::Uncacheable(NoCacheReason::OriginNotCache));
        }
        let now = SystemTime::now();
        match rfc9111::decide(&facts, &self.state.limits, now) {
            Decision::Store(f) => {
                let mut meta = CacheMeta::new(
                    now + f.fresh_for,
                    now,
                    f.stale_while_revalidate.as_secs().min(u64::from(u32::MAX)) as u32,
                    f.stale_if_error.as_secs().min(u64::from(u32::MAX)) as u32,
                    resp.clone(),
                );
                // Age (RFC 9111 §5.1) counts from the response's corrected initial age.
                if !f.initial_age.is_zero() {
                    meta.set_epoch_override(now - f.initial_age);
                }
                Ok(RespCacheable::Cacheable(meta))
            }
            Decision::DoNotStore(reason) => {
                ctx.no_store_reason = Some(reason);
                Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(reason)))
            }
        }
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Ctx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        let mut names: Vec<String> = meta
            .headers()
            .get_all(header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| {
                v.split(',')
                    .map(|n| n.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return None;
        }
        names.sort();
        names.dedup();
        let mut vb = VarianceBuilder::new();
        for n in names {
            let lines = req.headers.get_all(n.as_str()).into_iter();
            let value = crate::fields::vary_value(&n, lines.map(http::HeaderValue::as_bytes));
            vb.add_owned_name_value(n, value);
        }
        vb.finalize()
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        use crate::upstream::Tier;
        let edge = &self.state.config.edge;
        let fresh = ctx.fresh_conn;
        let hold_until = ctx.hold_until;
        let peer_for = |o: &eddy_config::Origin, addr: std::net::SocketAddr| {
            // SNI and verification name: the host as configured (an IP address sends no SNI and
            // is verified against the certificate's IP addresses). Never empty: pingora skips
            // verification for an empty SNI.
            let mut peer = HttpPeer::new(addr, o.tls, o.host.clone());
            peer.options.connection_timeout = Some(edge.origin_connect_timeout);
            peer.options.total_connection_timeout = Some(edge.origin_connect_timeout);
            peer.options.read_timeout = Some(match hold_until {
                // A blocking playlist request: the origin holds it too, within what is left.
                Some(t) => t
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
                None => edge.origin_read_timeout,
            });
            if fresh {
                // The pool is keyed by the peer's hash, group key included: no pooled connection
                // matches this one, so the retry dials, and it is not pooled afterwards.
                peer.group_key = u64::MAX;
                peer.options.idle_timeout = Some(Duration::ZERO);
            }
            Box::new(peer)
        };
        let upstreams = &self.state.upstreams;
        // Shield tier first: the owner of this object, then the other shields (a request that
        // already came through an edge goes to the origins, so a misconfigured ring can't loop).
        if !edge.shields.is_empty() && !ctx.from_edge {
            if ctx.shield_order.is_empty() {
                ctx.shield_order = shield_order(&edge.shields, ctx.url.as_deref().unwrap_or(""));
            }
            // Shields known to be down are skipped: no connect timeout per request.
            while let Some(&i) = ctx.shield_order.get(ctx.shield_tries) {
                if self.state.shield_health.is_healthy(i) {
                    match upstreams
                        .addr(Tier::Shield, i, edge.origin_connect_timeout)
                        .await
                    {
                        Ok(addr) => {
                            ctx.via_shield = true;
                            ctx.shield = i;
                            self.state.metrics.shield_fetches.inc();
                            return Ok(peer_for(&edge.shields[i], addr));
                        }
                        Err(e) => {
                            tracing::warn!(shield = %edge.shields[i].url, error = %e, "shield address unknown; trying the next");
                            self.state.shield_health.failure(i, &e);
                        }
                    }
                }
                ctx.shield_tries += 1;
            }
        }
        ctx.via_shield = false;
        if let Some(l) = &self.state.origin_limiter
            && l.check().is_err()
        {
            // Never queue: a stale copy where allowed (should_serve_stale sees a 503), else 503.
            ctx.origin_limited = true;
            self.state.metrics.origin_limited.inc();
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "origin fetch limit (edge.origin_rate) reached",
            ));
        }
        // An origin whose name does not resolve counts as a failure, and the next is tried.
        loop {
            ctx.origin = self.state.health.pick(&ctx.tried).unwrap_or(0);
            let first_try = !ctx.tried.contains(&ctx.origin);
            ctx.tried.push(ctx.origin);
            match upstreams
                .addr(Tier::Origin, ctx.origin, edge.origin_connect_timeout)
                .await
            {
                Ok(addr) => {
                    self.state.metrics.origin_fetches.inc();
                    return Ok(peer_for(&edge.origins[ctx.origin], addr));
                }
                Err(e) => {
                    let url = &edge.origins[ctx.origin].url;
                    tracing::warn!(origin = %url, error = %e, "origin address unknown");
                    self.state.metrics.origin_errors.inc();
                    self.state.health.failure(ctx.origin, &e);
                    if !first_try || self.state.health.pick(&ctx.tried).is_none() {
                        return Err(Error::explain(
                            ErrorType::ConnectNoRoute,
                            format!("origin {url}: {e}"),
                        ));
                    }
                }
            }
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let tls_failed = matches!(
            e.etype(),
            ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::HandshakeError
        );
        if tls_failed {
            // Say which upstream, and what fixes the usual cause.
            self.state.metrics.upstream_tls_failures.inc();
            let edge = &self.state.config.edge;
            let url = if ctx.via_shield {
                edge.shields.get(ctx.shield).map(|o| o.url.as_str())
            } else {
                edge.origins.get(ctx.origin).map(|o| o.url.as_str())
            };
            tracing::error!(
                upstream = url.unwrap_or(""),
                error = %e,
                "TLS to this upstream failed: its certificate must be valid for the host in its URL and chain to a root of edge.upstream_ca_file (or of the system when that is unset)"
            );
        }
        if ctx.via_shield {
            // The next shield in this object's order, then the origins.
            tracing::warn!(shield = %peer, error = %e, "shield connect failed; trying the next");
            self.state
                .shield_health
                .failure(ctx.shield, &format!("connect failed: {e}"));
            ctx.shield_tries += 1;
            e.set_retry(true);
            return e;
        }
        self.state.metrics.origin_errors.inc();
        tracing::warn!(origin = %peer, error = %e, "origin connect failed");
        self.state.health.failure(ctx.origin, &e.to_string());
        if self.state.health.pick(&ctx.tried).is_some() {
            e.set_retry(true);
        }
        e
    }

    /// An error after the origin connection was made (or reused). A pooled connection the
    /// origin closed before answering (the keep-alive race) is retried once, on a new
    /// connection, for an idempotent request whose body pingora still holds and of which nothing
    /// reached the client; nothing else is retried (pingora's default allows up to
    /// `max_retries` attempts on one pooled connection after another).
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let candidate = match e.retry {
            pingora_error::RetryType::ReusedOnly => client_reused,
            pingora_error::RetryType::Decided(b) => b && client_reused,
        };
        let retry = candidate
            && ctx.retries == 0
            && e.esource() == &ErrorSource::Upstream
            && session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && session.response_written().is_none();
        if retry {
            ctx.retries += 1;
            ctx.fresh_conn = true;
            self.state.metrics.origin_retries.inc();
            tracing::info!(origin = %peer, error = %e, "a reused origin connection failed before answering; retrying once on a new connection");
        }
        e.set_retry(retry);
        e
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // RFC 9213: the Eddy-targeted field is for us only.
        resp.remove_header("eddy-cdn-cache-control");
        if resp.status.is_informational() {
            // No X-Cache or Cache-Status on an interim response; it decides nothing.
            return Ok(());
        }
        if let Some(hsts) = self
            .state
            .config
            .tls
            .as_ref()
            .and_then(|t| t.hsts.as_deref())
            && over_tls(session)
        {
            // On HTTPS, `[tls] hsts` replaces whatever the origin sent (RFC 6797 §6.1).
            resp.insert_header(header::STRICT_TRANSPORT_SECURITY, hsts)?;
        }
        let total = resp
            .remove_header(slice::TOTAL_HEADER)
            .and_then(|v| v.to_str().ok().and_then(|t| t.parse::<u64>().ok()));
        if let (Some((s, _)), Some(total), false) = (&ctx.slice, total, ctx.slice_passthrough) {
            slice_content_range(resp, s, total)?;
        }
        let phase = session.cache.phase();
        let ttl = session.cache.maybe_cache_meta().map_or(0, ttl_secs);
        let status = resp.status.as_u16();
        let (outcome, cache_status) = match phase {
            CachePhase::Hit if ctx.disk_hit => {
                (Outcome::Hit, format!("Eddy; hit; ttl={ttl}; detail=disk"))
            }
            CachePhase::Hit => (Outcome::Hit, format!("Eddy; hit; ttl={ttl}")),
            CachePhase::Stale | CachePhase::StaleUpdating => (
                Outcome::Stale,
                format!("Eddy; hit; ttl={ttl}; detail=stale"),
            ),
            CachePhase::Revalidated => (
                Outcome::Revalidated,
                format!("Eddy; fwd=stale; fwd-status=304; ttl={ttl}"),
            ),
            CachePhase::RevalidatedNoCache(_) => (
                Outcome::Revalidated,
                "Eddy; fwd=stale; fwd-status=304".to_string(),
            ),
            CachePhase::Miss | CachePhase::Expired => {
                let fwd = if matches!(phase, CachePhase::Expired) {
                    "stale"
                } else {
                    "uri-miss"
                };
                match ctx.no_store_reason {
                    Some(r) => (
                        Outcome::Miss,
                        format!("Eddy; fwd={fwd}; fwd-status={status}; detail=\"{r}\""),
                    ),
                    None => (
                        Outcome::Miss,
                        format!("Eddy; fwd={fwd}; fwd-status={status}; stored"),
                    ),
                }
            }
            CachePhase::Disabled(NoCacheReason::OriginNotCache)
            | CachePhase::Disabled(NoCacheReason::Custom(_)) => {
                let r = ctx.no_store_reason.unwrap_or("uncacheable");
                (
                    Outcome::Pass,
                    format!("Eddy; fwd=uri-miss; fwd-status={status}; detail=\"{r}\""),
                )
            }
            _ => (
                Outcome::Pass,
                format!("Eddy; fwd=bypass; fwd-status={status}"),
            ),
        };
        ctx.outcome = outcome;
        // RFC 9110 §6.6.1: the response keeps its own Date, stored or fresh from the origin
        // (pingora would stamp the current time over it; see crate::date).
        if let Some(d) = header_str(resp, "date") {
            crate::date::keep(session.as_downstream().stream(), d);
        }
        resp.insert_header("x-cache", outcome.as_str())?;
        resp.insert_header("cache-status", cache_status)?;
        if let (true, Some(hop)) = (ctx.telemetry, &self.state.cmsd) {
            resp.append_header("cmsd-dynamic", hop.value_with_cap(ctx.mb))?;
        }
        // hls.js reads no CMSD: under a cap, the multivariant playlist loses what is above it.
        if let Some(url) = &ctx.url {
            let req = session.req_header();
            ctx.rewrite = crate::guard::Rewrite::begin(
                ctx.mb,
                &req.method,
                url,
                req.headers.contains_key(header::RANGE),
                status,
            );
        }
        if ctx.rewrite.is_some() {
            resp.remove_header(&header::CONTENT_LENGTH);
            resp.remove_header(&header::ETAG);
            resp.insert_header(header::CACHE_CONTROL, "private, no-store")?;
            if !session.as_downstream().is_http2() {
                resp.insert_header(header::TRANSFER_ENCODING, "chunked")?;
            }
        }

        // RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI and
        // same-host Location / Content-Location.
        if ctx.unsafe_method
            && (200..400).contains(&status)
            && let Some(target) = ctx.url.clone()
        {
            let config = &self.state.config;
            let host = target.split('/').next().unwrap_or("").to_string();
            let mut urls = vec![target];
            for h in [header::LOCATION, header::CONTENT_LOCATION] {
                let Some(v) = resp.headers.get(&h).map(http::HeaderValue::as_bytes) else {
                    continue;
                };
                // A path on this host, or an absolute URL that names this host; both in the
                // canonical form the cache keys by.
                let same_host = if v.starts_with(b"/") && !v.starts_with(b"//") {
                    eddy_url::Canonical::new(host.as_bytes(), v, eddy_url::HTTP_PORT, |h| {
                        config.path_options(h)
                    })
                    .ok()
                    .map(eddy_url::Canonical::into_string)
                } else {
                    std::str::from_utf8(v)
                        .ok()
                        .filter(|v| {
                            v.get(..7)
                                .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
                                || v.get(..8)
                                    .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
                        })
                        .and_then(|v| eddy_url::content_url(v, |h| config.path_options(h)).ok())
                        .filter(|n| n.split('/').next() == Some(host.as_str()))
                };
                urls.extend(same_host);
            }
            for u in urls {
                match self
                    .state
                    .storage
                    .cache()
                    .purge(&Purge::Url(u.clone()).scope(), false)
                {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::debug!(url = %u, objects = n, "invalidated after unsafe method")
                    }
                    Err(e) => {
                        tracing::error!(url = %u, error = %e, "invalidation after unsafe method failed")
                    }
                }
            }
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if let Some(r) = &mut ctx.rewrite {
            r.body(body, end_of_stream);
        }
        if let Some(b) = body {
            ctx.body_bytes += b.len() as u64;
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        ctx.outcome = Outcome::Error;
        if ctx.origin_limited {
            return retry_shortly(
                session,
                "the origin is protected by a fetch limit; retry shortly",
                true,
            )
            .await;
        }
        if ctx.hold_until.is_some()
            && matches!(e.etype(), ErrorType::ReadTimedout)
            && e.esource() == &ErrorSource::Upstream
        {
            // LL-HLS: the part did not come within the hold bound.
            self.state.metrics.llhls("timeout").inc();
            return retry_shortly(
                session,
                "the part asked for did not appear within the hold bound (streaming.hold); retry",
                false,
            )
            .await;
        }
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if e.esource() == &ErrorSource::Upstream =>
            {
                504
            }
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if e.esource() == &ErrorSource::Upstream {
            self.state.metrics.origin_errors.inc();
            tracing::warn!(error = %e, status = code, "origin request failed");
        }
        if code > 0 {
            let _ = session.respond_error(code).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut Ctx,
        error: Option<&Error>,
    ) -> bool {
        // RFC 5861: within the stored windows (checked by the cache), serve stale while
        // revalidating, or when the origin failed (connection errors and 5xx).
        match error {
            None => true,
            Some(e) => {
                e.esource() == &ErrorSource::Upstream
                    || matches!(e.etype(), ErrorType::HTTPStatus(s) if *s >= 500)
            }
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        self.state.metrics.record(
            ctx.outcome,
            ctx.start.elapsed().as_secs_f64(),
            ctx.body_bytes,
        );
        tracing::debug!(
            method = %session.req_header().method,
            uri = %session.req_header().uri,
            status = session.response_written().map_or(0, |r| r.status.as_u16()),
            cache = ctx.outcome.as_str(),
            ms = ctx.start.elapsed().as_millis() as u64,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::shield_order;

    fn shields(n: u16) -> Vec<eddy_config::Origin> {
        (0..n)
            .map(|i| eddy_config::Origin {
                url: format!("http://10.0.0.{i}:8080"),
                host: format!("10.0.0.{i}"),
                port: 8080,
                tls: false,
            })
            .collect()
    }

    #[test]
    fn every_object_has_one_owner_and_the_load_is_even() {
        let s = shields(3);
        let mut owned = [0usize; 3];
        for i in 0..30_000 {
            let url = format!("cdn.example/v/{i}.ts");
            let order = shield_order(&s, &url);
            assert_eq!(order, shield_order(&s, &url), "stable");
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2], "a permutation");
            owned[order[0]] += 1;
        }
        for n in owned {
            assert!((9_000..11_000).contains(&n), "{owned:?}");
        }
    }

    #[test]
    fn removing_a_shield_moves_only_its_objects() {
        let all = shields(4);
        let fewer: Vec<_> = all[..3].to_vec();
        for i in 0..5_000 {
            let url = format!("cdn.example/{i}");
            let before = shield_order(&all, &url)[0];
            let after = shield_order(&fewer, &url)[0];
            if before != 3 {
                assert_eq!(before, after, "{url} moved without its shield leaving");
            }
        }
    }
}
