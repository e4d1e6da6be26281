//! The adapter between pingora's cache `Storage` seam and [`eddy_cache::Cache`].
//!
//! It adds what pingora needs and the cache core must not know about: serialising pingora's
//! `CacheMeta` into the object's opaque metadata, and in-flight fills that waiters can read while
//! the origin is still sending (streaming partial writes), so a coalesced request gets bytes as
//! the first request gets them.

use async_trait::async_trait;
use bytes::Bytes;
use eddy_cache::{Cache, Object, ObjectKey, Tags};
use eddy_config::StreamingSettings;
use eddy_streaming::class::{Class, Head};
use parking_lot::{Mutex, RwLock};
use pingora_cache::key::{CacheHashKey, CompactCacheKey};
use pingora_cache::storage::streaming_write::U64WriteId;
use pingora_cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget,
    PurgeType, Storage,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheKey, CacheMeta};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use tokio::sync::watch;

/// The key of a pingora cache key (primary + variance).
pub fn object_key(key: &CacheKey) -> ObjectKey {
    ObjectKey(key.combined_bin())
}

fn compact_key(key: &CompactCacheKey) -> ObjectKey {
    ObjectKey(key.combined_bin())
}

/// Eddy's own encoding of pingora's `CacheMeta`, built for the hit path: no compression, and
/// header values decode as zero-copy slices of the stored bytes. (pingora's own serialisation
/// zstd-compresses the head, which cost ~5 % of a 1 KiB hit.)
///
/// ```text
/// "EM1" | fresh_until µs u64 | updated µs u64 | epoch_override µs u64 (0 = none) | swr u32 | sie u32
/// | has_variance u8 | variance [16] | status u16 | n u16 | n × (name_len u16 name value_len u32 value)
/// ```
const META_MAGIC: &[u8; 3] = b"EM1";

pub(crate) fn micros(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().min(u128::from(u64::MAX)) as u64)
}

fn from_micros(m: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(m)
}

fn encode_meta(meta: &CacheMeta) -> Result<Bytes> {
    let h = meta.response_header();
    let mut out = Vec::with_capacity(64 + h.headers.len() * 48);
    out.extend_from_slice(META_MAGIC);
    out.extend_from_slice(&micros(meta.fresh_until()).to_le_bytes());
    out.extend_from_slice(&micros(meta.updated()).to_le_bytes());
    out.extend_from_slice(&meta.epoch_override().map_or(0, micros).to_le_bytes());
    out.extend_from_slice(&meta.stale_while_revalidate_sec().to_le_bytes());
    out.extend_from_slice(&meta.stale_if_error_sec().to_le_bytes());
    match meta.variance() {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v);
        }
        None => {
            out.push(0);
            out.extend_from_slice(&[0u8; 16]);
        }
    }
    out.extend_from_slice(&h.status.as_u16().to_le_bytes());
    let n = u16::try_from(h.headers.len()).or_else(|_| {
        Error::e_explain(
            ErrorType::InternalError,
            "too many response headers to store",
        )
    })?;
    out.extend_from_slice(&n.to_le_bytes());
    for (name, value) in h.headers.iter() {
        let name = name.as_str().as_bytes();
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    Ok(Bytes::from(out))
}

struct Reader<'a> {
    b: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        match end {
            Some(end) => {
                let r = self.at..end;
                self.at = end;
                Ok(r)
            }
            None => Error::e_explain(ErrorType::InternalError, "stored meta truncated"),
        }
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let r = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[r]);
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// A stored head read in place, without allocating: what the hit fast path needs to answer
/// from the cache (see [`crate::fast`]).
#[derive(Debug, Clone, Copy)]
pub struct HeadView<'a> {
    /// Fresh until, µs since the epoch.
    pub fresh_until: u64,
    /// Age reference (the epoch override when set, else the last update), µs since the epoch.
    pub age_from: u64,
    /// The response varies (`Vary`): its key needs the request's headers.
    pub has_variance: bool,
    /// Status code.
    pub status: u16,
    n: usize,
    headers: &'a [u8],
}

impl<'a> HeadView<'a> {
    /// Read a stored head; `None` when it is not one [`encode_meta`] wrote or is truncated.
    pub fn parse(b: &'a [u8]) -> Option<HeadView<'a>> {
        let rest = b.strip_prefix(META_MAGIC.as_slice())?;
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(rest.get(at..at + 8)?.try_into().ok()?))
        };
        let fresh_until = u64_at(0)?;
        let updated = u64_at(8)?;
        let epoch = u64_at(16)?;
        // swr u32 and sie u32 at 24 and 28, variance flag at 32, variance 33..49.
        let has_variance = *rest.get(32)? == 1;
        let status = u16::from_le_bytes(rest.get(49..51)?.try_into().ok()?);
        let n = usize::from(u16::from_le_bytes(rest.get(51..53)?.try_into().ok()?));
        let view = HeadView {
            fresh_until,
            age_from: if epoch != 0 { epoch } else { updated },
            has_variance,
            status,
            n,
            headers: rest.get(53..)?,
        };
        // Walk once so that iterating cannot meet a truncated field.
        let mut seen = 0;
        let mut at = 0;
        while seen < n {
            at = next_header(view.headers, at)?.2;
            seen += 1;
        }
        Some(view)
    }

    /// Stored header fields in order, names lower-case.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + use<'a> {
        let headers = self.headers;
        let mut at = 0;
        (0..self.n).map_while(move |_| {
            let (name, value, next) = next_header(headers, at)?;
            at = next;
            Some((name, value))
        })
    }
}

/// The header field at `at`: (name, value, offset of the next).
fn next_header(b: &[u8], at: usize) -> Option<(&[u8], &[u8], usize)> {
    let nl = usize::from(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?));
    let name = b.get(at + 2..at + 2 + nl)?;
    let at = at + 2 + nl;
    let vl = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize;
    let value = b.get(at + 4..at + 4 + vl)?;
    Some((name, value, at + 4 + vl))
}

/// Decode a stored head (exposed for the fuzz target).
pub fn decode_meta(b: &Bytes) -> Result<CacheMeta> {
    let mut r = Reader { b, at: 0 };
    if r.array::<3>()? != *META_MAGIC {
        return Error::e_explain(
            ErrorType::InternalError,
            "stored meta has an unknown format",
        );
    }
    let fresh_until = from_micros(r.u64()?);
    let updated = from_micros(r.u64()?);
    let epoch = r.u64()?;
    let swr = r.u32()?;
    let sie = r.u32()?;
    let has_variance = r.array::<1>()?[0] == 1;
    let variance: [u8; 16] = r.array()?;
    let status = r.u16()?;
    let n = r.u16()? as usize;
    let mut header = ResponseHeader::build(status, Some(n))?;
    for _ in 0..n {
        let nl = r.u16()? as usize;
        let name = r.take(nl)?;
        let vl = r.u32()? as usize;
        let value = r.take(vl)?;
        let name = http::HeaderName::from_bytes(&b[name]).or_else(|_| {
            Error::e_explain(ErrorType::InternalError, "stored header name invalid")
        })?;
        let value = http::HeaderValue::from_maybe_shared(b.slice(value)).or_else(|_| {
            Error::e_explain(ErrorType::InternalError, "stored header value invalid")
        })?;
        header.append_header(name, value)?;
    }
    // `created` restarts at the last validation: pingora only uses it for bookkeeping, while
    // `updated` (the Age reference) and the epoch override are what must survive.
    let mut meta = CacheMeta::new(fresh_until, updated, swr, sie, header);
    if epoch != 0 {
        meta.set_epoch_override(from_micros(epoch));
    }
    if has_variance {
        meta.set_variance(variance);
    }
    Ok(meta)
}

/// Purge tags from the response: URL is the cache key's primary string; surrogate keys come from
/// the origin's `Surrogate-Key` header (space-separated).
fn tags_for(key: &CacheKey, meta: &CacheMeta) -> Tags {
    // A range block is tagged with its object's URL, so purging the URL reaches its blocks.
    let url = crate::slice::strip_suffix(key.primary_key_str().unwrap_or(""));
    let keys: Vec<String> = meta
        .headers()
        .get_all("surrogate-key")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| {
            v.split_ascii_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    Tags::new(url, primary_of(url), keys)
}

/// What the response says about the object for a learning eviction policy: its kind (from
/// `Content-Type` and `Content-Length`) and its age since publication (`Date` minus
/// `Last-Modified`, when both parse).
fn hint_for(meta: &CacheMeta) -> eddy_cache::policy::Hint {
    let h = meta.headers();
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let size = text("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let kind = eddy_cache::policy::ContentKind::from_content_type(
        text("content-type").unwrap_or(""),
        size,
    );
    let date = |name: &str| text(name).and_then(|v| httpdate::parse_http_date(v).ok());
    let age = match (date("date"), date("last-modified")) {
        (Some(now), Some(published)) => now
            .duration_since(published)
            .ok()
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
        _ => None,
    };
    eddy_cache::policy::Hint { kind, age }
}

/// The primary key of a URL as the edge builds cache keys (`host/path?query`): purge by URL
/// reaches this key and every `Vary` variant recorded under it.
pub fn primary_of(url: &str) -> ObjectKey {
    // `CacheKey::new(url, "")` hashes exactly these bytes; hashing them here spares the hit
    // path a `CacheKey` (two copies of the URL) per request.
    ObjectKey(pingora_cache::key::hash_key(url))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Progress {
    Writing(usize),
    Done(usize),
    Failed,
}

struct Fill {
    meta: Bytes,
    chunks: RwLock<Vec<Bytes>>,
    progress: watch::Sender<Progress>,
}

/// One shard of in-flight fills: every fill of a key (a newer one can start while an older one
/// still streams to its waiters), with its id.
type FillShard = Mutex<HashMap<ObjectKey, Vec<(u64, Arc<Fill>)>>>;

/// In-flight fills by key, sharded so that the hit path's "is this being filled?" never takes a
/// lock every request shares.
struct Fills {
    shards: Vec<FillShard>,
}

impl Fills {
    const SHARDS: usize = 64;

    fn new() -> Fills {
        Fills {
            shards: (0..Self::SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn of(&self, k: &ObjectKey) -> &FillShard {
        &self.shards[k.shard(Self::SHARDS)]
    }
}

/// pingora `Storage` over the Eddy cache.
pub struct EddyStorage {
    cache: Arc<Cache>,
    fills: Arc<Fills>,
    next_fill: AtomicU64,
    has_disk: bool,
    /// TTL classes: a manifest's fill settles its freshness from its body.
    streaming: Arc<StreamingSettings>,
}

impl EddyStorage {
    /// Wrap a cache; `streaming` holds the TTL classes manifests are settled with.
    pub fn new(cache: Arc<Cache>, has_disk: bool, streaming: StreamingSettings) -> Self {
        EddyStorage {
            cache,
            fills: Arc::new(Fills::new()),
            next_fill: AtomicU64::new(1),
            has_disk,
            streaming: Arc::new(streaming),
        }
    }

    /// The cache core.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// Whether an origin fill of `key` is in flight (its waiters stream it; a stored copy is
    /// being replaced).
    pub fn filling(&self, key: &ObjectKey) -> bool {
        self.fills.of(key).lock().contains_key(key)
    }

    async fn lookup_complete(&self, key: ObjectKey) -> Result<Option<eddy_cache::Lookup>> {
        if let Some(l) = self.cache.get_memory(&key) {
            return Ok(Some(l));
        }
        if !self.has_disk {
            self.cache.counters.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || cache.get(&key))
            .await
            .map_err(|e| Error::explain(ErrorType::InternalError, format!("disk lookup task: {e}")))
    }
}

fn partial_hit(fill: &Arc<Fill>) -> Result<Option<(CacheMeta, HitHandler)>> {
    let meta = decode_meta(&fill.meta)?;
    let hit = PartialHit {
        fill: fill.clone(),
        progress: fill.progress.subscribe(),
        next: 0,
        pos: 0,
        start: 0,
        end: None,
    };
    Ok(Some((meta, Box::new(hit))))
}

#[async_trait]
impl Storage for EddyStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let k = object_key(key);
        // An in-flight fill wins over a stored (possibly stale) copy, so waiters stream the new one.
        let fill = self
            .fills
            .of(&k)
            .lock()
            .get(&k)
            .and_then(|v| v.last().map(|(_, f)| f.clone()));
        if let Some(fill) = fill {
            return partial_hit(&fill);
        }
        let Some(found) = self.lookup_complete(k).await? else {
            return Ok(None);
        };
        let mut meta = match decode_meta(&found.object.meta) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "stored metadata unreadable; dropping object");
                self.cache.remove(&k);
                return Ok(None);
            }
        };
        if found.stale {
            // Soft-purged: never fresh again; stale windows still apply while it revalidates.
            meta.expire_at(SystemTime::UNIX_EPOCH.max(meta.created()));
        }
        let len = found.object.body.len();
        let hit = CompleteHit {
            body: found.object.body.clone(),
            start: 0,
            end: len,
            done: false,
            disk: found.tier == eddy_cache::store::Tier::Disk,
        };
        Ok(Some((meta, Box::new(hit))))
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(tag) = tag.and_then(|t| U64WriteId::try_from(t).ok()) else {
            return self.lookup(key, trace).await;
        };
        let id: u64 = tag.into();
        let k = object_key(key);
        let fill = self
            .fills
            .of(&k)
            .lock()
            .get(&k)
            .and_then(|v| v.iter().find(|(i, _)| *i == id).map(|(_, f)| f.clone()));
        match fill {
            Some(f) => partial_hit(&f),
            None => Ok(None),
        }
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let k = object_key(key);
        let id = self.next_fill.fetch_add(1, Ordering::Relaxed);
        let head = crate::classes::head(
            &self.streaming,
            crate::slice::strip_suffix(key.primary_key_str().unwrap_or("")),
            meta.response_header().status.as_u16(),
            meta.headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
        let settle = match head {
            Head::Manifest { provisional } => Some((self.streaming.clone(), provisional)),
            _ => None,
        };
        let (tx, _rx) = watch::channel(Progress::Writing(0));
        let fill = Arc::new(Fill {
            meta: encode_meta(meta)?,
            chunks: RwLock::new(Vec::new()),
            progress: tx,
        });
        self.fills
            .of(&k)
            .lock()
            .entry(k)
            .or_default()
            .push((id, fill.clone()));
        Ok(Box::new(EddyMiss {
            key: k,
            id,
            write_id: U64WriteId::from(id),
            tags: tags_for(key, meta),
            hint: hint_for(meta),
            fill,
            written: 0,
            cache: self.cache.clone(),
            fills: self.fills.clone(),
            finished: false,
            epoch: self.cache.epoch(),
            settle,
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let k = compact_key(target.key());
        if self.cache.remove(&k) {
            Ok(PurgeOutcome::Purged(None))
        } else {
            Ok(PurgeOutcome::NotFound)
        }
    }

    async fn expire(
        &'static self,
        target: PurgeTarget<'_>,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let k = compact_key(target.key());
        if self.cache.mark_stale(&k) {
            Ok(PurgeOutcome::Expired)
        } else {
            Ok(PurgeOutcome::NotFound)
        }
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let k = object_key(key);
        let Some(found) = self.lookup_complete(k).await? else {
            return Ok(false);
        };
        // The epoch of the fill that produced the body: a ban since then still applies.
        let object = Object::new(
            encode_meta(meta)?,
            found.object.body.clone(),
            tags_for(key, meta),
            found.object.epoch,
        )
        .with_hint(hint_for(meta));
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || cache.insert(k, object))
            .await
            .map_err(|e| {
                Error::explain(ErrorType::InternalError, format!("cache update task: {e}"))
            })?;
        Ok(true)
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// A hit on a complete object: zero-copy slices of its body, seekable for ranges.
struct CompleteHit {
    body: Bytes,
    start: usize,
    end: usize,
    done: bool,
    disk: bool,
}

/// Whether a hit handler was served from the disk tier (for `X-Cache` / metrics).
pub fn hit_from_disk(h: &HitHandler) -> bool {
    h.as_any()
        .downcast_ref::<CompleteHit>()
        .is_some_and(|c| c.disk)
}

#[async_trait]
impl HandleHit for CompleteHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        Ok(Some(self.body.slice(self.start..self.end)))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        if start >= self.body.len() {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek start {start} beyond body of {}", self.body.len()),
            );
        }
        self.start = start;
        self.end = end.map_or(self.body.len(), |e| e.min(self.body.len()));
        self.done = false;
        Ok(())
    }

    fn get_eviction_weight(&self) -> usize {
        self.body.len()
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// A hit on an in-flight fill: streams chunks as the origin delivers them. Seekable: a range
/// request that coalesced onto a fill gets its range as the bytes arrive.
struct PartialHit {
    fill: Arc<Fill>,
    progress: watch::Receiver<Progress>,
    /// Next chunk to read, and the body offset it starts at.
    next: usize,
    pos: usize,
    /// The byte window to return: `start..end` (`end` exclusive, `None` = to the end).
    start: usize,
    end: Option<usize>,
}

#[async_trait]
impl HandleHit for PartialHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        loop {
            let p = *self.progress.borrow_and_update();
            let available = match p {
                Progress::Writing(n) | Progress::Done(n) => n,
                Progress::Failed => {
                    return Error::e_explain(
                        ErrorType::InternalError,
                        "the fill this request was streaming from failed",
                    );
                }
            };
            if self.next < available {
                let chunk = self.fill.chunks.read()[self.next].clone();
                let chunk_start = self.pos;
                self.pos += chunk.len();
                self.next += 1;
                if self.end.is_some_and(|e| chunk_start >= e) {
                    return Ok(None);
                }
                let lo = self.start.saturating_sub(chunk_start).min(chunk.len());
                let hi = self
                    .end
                    .map_or(chunk.len(), |e| (e - chunk_start).min(chunk.len()));
                if lo >= hi {
                    continue;
                }
                return Ok(Some(chunk.slice(lo..hi)));
            }
            if matches!(p, Progress::Done(_)) {
                return Ok(None);
            }
            if self.progress.changed().await.is_err() {
                // Writer dropped without finishing.
                return Error::e_explain(
                    ErrorType::InternalError,
                    "the fill this request was streaming from was abandoned",
                );
            }
        }
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn should_count_access(&self) -> bool {
        false
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        // Chunks stay in the fill, so a seek (also backwards, for multipart) re-reads from the
        // first chunk and skips to `start`.
        self.next = 0;
        self.pos = 0;
        self.start = start;
        self.end = end;
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// The stored head of a manifest with the freshness its body gives it (`crate::classes`).
fn settled_meta(
    blob: &Bytes,
    settings: &StreamingSettings,
    provisional: Class,
    body: &[u8],
) -> Result<Bytes> {
    let meta = decode_meta(blob)?;
    let epoch = meta.epoch_override().unwrap_or_else(|| meta.created());
    let (_, fresh_until) = crate::classes::refined_fresh_until(settings, provisional, body, epoch);
    let mut settled = CacheMeta::new(
        fresh_until,
        meta.created(),
        meta.stale_while_revalidate_sec(),
        meta.stale_if_error_sec(),
        meta.response_header_copy(),
    );
    if let Some(v) = meta.variance() {
        settled.set_variance(v);
    }
    if let Some(e) = meta.epoch_override() {
        settled.set_epoch_override(e);
    }
    encode_meta(&settled)
}

struct EddyMiss {
    key: ObjectKey,
    id: u64,
    write_id: U64WriteId,
    tags: Tags,
    hint: eddy_cache::policy::Hint,
    fill: Arc<Fill>,
    written: usize,
    cache: Arc<Cache>,
    fills: Arc<Fills>,
    finished: bool,
    epoch: u32,
    /// A manifest whose freshness its body settles, and its class until then.
    settle: Option<(Arc<StreamingSettings>, Class)>,
}

impl EddyMiss {
    fn unregister(&self) {
        let mut g = self.fills.of(&self.key).lock();
        if let Some(v) = g.get_mut(&self.key) {
            v.retain(|(i, _)| *i != self.id);
            if v.is_empty() {
                g.remove(&self.key);
            }
        }
    }
}

#[async_trait]
impl HandleMiss for EddyMiss {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        let n = {
            let mut c = self.fill.chunks.write();
            if !data.is_empty() {
                c.push(data);
            }
            c.len()
        };
        self.written = n;
        self.fill.progress.send_replace(if eof {
            Progress::Done(n)
        } else {
            Progress::Writing(n)
        });
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        let chunks = self.fill.chunks.read().clone();
        let total: usize = chunks.iter().map(Bytes::len).sum();
        let body = if chunks.len() == 1 {
            chunks[0].clone()
        } else {
            let mut b = Vec::with_capacity(total);
            for c in &chunks {
                b.extend_from_slice(c);
            }
            Bytes::from(b)
        };
        self.fill
            .progress
            .send_replace(Progress::Done(chunks.len()));
        let meta = match &self.settle {
            Some((settings, provisional)) => {
                settled_meta(&self.fill.meta, settings, *provisional, &body)?
            }
            None => self.fill.meta.clone(),
        };
        let object = Object::new(meta, body, self.tags.clone(), self.epoch).with_hint(self.hint);
        let cache = self.cache.clone();
        let key = self.key;
        let res = tokio::task::spawn_blocking(move || cache.insert(key, object)).await;
        self.finished = true;
        self.unregister();
        res.map_err(|e| {
            Error::explain(ErrorType::InternalError, format!("cache insert task: {e}"))
        })?;
        Ok(MissFinishType::Created(total))
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(self.write_id.as_bytes())
    }
}

impl Drop for EddyMiss {
    fn drop(&mut self) {
        if !self.finished {
            self.fill.progress.send_replace(Progress::Failed);
            self.unregister();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn primary_keys_are_pingora_s() {
        for url in ["example.com/a?b=1", "h:8080/", ""] {
            let key = CacheKey::new(url, "");
            assert_eq!(primary_of(url), ObjectKey(key.primary_bin()));
            assert_eq!(primary_of(url), object_key(&key));
        }
    }

    #[test]
    fn meta_round_trips() -> Result<()> {
        let mut h = ResponseHeader::build(203, None)?;
        h.append_header("cache-control", "max-age=60")?;
        h.append_header("x-multi", "a")?;
        h.append_header("x-multi", "b")?;
        let now = SystemTime::now();
        let mut meta = CacheMeta::new(now + Duration::from_secs(60), now, 7, 9, h);
        meta.set_variance([3u8; 16]);
        meta.set_epoch_override(now - Duration::from_secs(5));
        let blob = encode_meta(&meta)?;
        let back = decode_meta(&blob)?;
        assert_eq!(micros(back.fresh_until()), micros(meta.fresh_until()));
        assert_eq!(back.stale_while_revalidate_sec(), 7);
        assert_eq!(back.stale_if_error_sec(), 9);
        assert_eq!(back.variance(), Some([3u8; 16]));
        assert_eq!(
            back.epoch_override().map(micros),
            meta.epoch_override().map(micros)
        );
        assert_eq!(back.response_header().status.as_u16(), 203);
        let multi: Vec<_> = back.headers().get_all("x-multi").iter().collect();
        assert_eq!(multi.len(), 2);
        // Every truncation is an error, never a panic.
        for cut in 0..blob.len() {
            assert!(decode_meta(&blob.slice(..cut)).is_err());
            assert!(HeadView::parse(&blob[..cut]).is_none());
        }
        // The in-place view reads what the decoder reads.
        let view = HeadView::parse(&blob).ok_or_else(|| Error::new_str("view"))?;
        assert_eq!(view.status, 203);
        assert!(view.has_variance);
        assert_eq!(view.fresh_until, micros(meta.fresh_until()));
        assert_eq!(Some(view.age_from), meta.epoch_override().map(micros));
        let fields: Vec<_> = view.headers().collect();
        assert_eq!(
            fields,
            vec![
                (&b"cache-control"[..], &b"max-age=60"[..]),
                (&b"x-multi"[..], &b"a"[..]),
                (&b"x-multi"[..], &b"b"[..]),
            ]
        );
        Ok(())
    }
}
