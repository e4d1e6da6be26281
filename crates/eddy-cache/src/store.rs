//! [`Cache`]: the memory tier in front of the disk tier, the purge index beside them.
//!
//! Writes go through to both tiers (the disk tier is what survives restart); reads try memory,
//! then disk, promoting disk hits to memory. A disk that fails to write (full, read-only) is
//! logged and bypassed for a back-off period: the cache degrades to memory-only, never fails.

use crate::CacheError;
use crate::admission::{self, Admission};
use crate::disk::{DiskOptions, DiskTier};
use crate::index::PurgeIndex;
use crate::key::ObjectKey;
use crate::memory::MemoryTier;
use crate::policy;
use crate::sealed::{SEAL_MIN, SealBudget, SealedBody};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What purge needs to know about an object: its URL (host + path + query), the primary key of
/// that URL (equal to the object's key unless it is a `Vary` variant) and its surrogate keys
/// (from the origin's `Surrogate-Key` header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tags(Arc<TagsInner>);

#[derive(Debug, PartialEq, Eq)]
struct TagsInner {
    url: Box<str>,
    primary: ObjectKey,
    keys: Box<[Box<str>]>,
}

impl Tags {
    /// Tags for `url` whose primary key is `primary`, with surrogate `keys`.
    pub fn new<I, S>(url: &str, primary: ObjectKey, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Tags(Arc::new(TagsInner {
            url: Box::from(url),
            primary,
            keys: keys.into_iter().map(|k| Box::from(k.as_ref())).collect(),
        }))
    }
    /// The URL.
    pub fn url(&self) -> &str {
        &self.0.url
    }
    /// The primary key of the URL.
    pub fn primary(&self) -> ObjectKey {
        self.0.primary
    }
    /// The surrogate keys.
    pub fn surrogate_keys(&self) -> &[Box<str>] {
        &self.0.keys
    }
    /// Encoding used in disk files: URL, newline, primary key hex, newline, space-separated keys.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.url.len() + 48);
        out.extend_from_slice(self.0.url.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(self.0.primary.to_hex().as_bytes());
        out.push(b'\n');
        for (i, k) in self.0.keys.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(k.as_bytes());
        }
        out
    }
    pub(crate) fn decode(b: &[u8]) -> Option<Tags> {
        let s = std::str::from_utf8(b).ok()?;
        let mut parts = s.splitn(3, '\n');
        let url = parts.next()?;
        let primary = ObjectKey::from_hex(parts.next()?)?;
        let keys = parts.next()?;
        Some(Tags::new(
            url,
            primary,
            keys.split(' ').filter(|k| !k.is_empty()),
        ))
    }
}

/// One stored response: an opaque metadata blob (the edge keeps the HTTP response head and
/// freshness there), the body, the purge tags, and the ban epoch its fill started under.
#[derive(Debug)]
pub struct Object {
    /// Opaque metadata (response head, freshness), owned by the caller's format.
    pub meta: Bytes,
    /// The body.
    pub body: Bytes,
    /// Purge tags.
    pub tags: Tags,
    /// [`Cache::epoch`] when the fill started: prefix bans issued later apply to it.
    pub epoch: u32,
    /// The body's sealed memory file, for `sendfile`, once it is in the memory tier (bodies of
    /// [`SEAL_MIN`] bytes or more; see [`crate::sealed`]).
    pub sealed: Option<Arc<SealedBody>>,
    /// What the response said about the object's kind and age, for learning policies.
    pub hint: crate::policy::Hint,
}

impl Object {
    /// A new object filled under ban epoch `epoch`.
    pub fn new(meta: Bytes, body: Bytes, tags: Tags, epoch: u32) -> Self {
        Object {
            meta,
            body,
            tags,
            epoch,
            sealed: None,
            hint: crate::policy::Hint::default(),
        }
    }

    /// The object with `hint` (its kind and age) for the eviction policy.
    pub fn with_hint(mut self, hint: crate::policy::Hint) -> Self {
        self.hint = hint;
        self
    }
    /// Bytes this object is charged against a memory budget.
    pub fn weight(&self) -> u64 {
        (self.meta.len() + self.body.len() + self.tags.url().len() + 96) as u64
    }
}

/// Which tier answered a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The memory tier.
    Memory,
    /// The disk tier.
    Disk,
}

/// A lookup result.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The object.
    pub object: Arc<Object>,
    /// Soft-purged: must be revalidated before it is served as fresh.
    pub stale: bool,
    /// Where it came from.
    pub tier: Tier,
}

/// What a purge targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeScope {
    /// Every variant of one URL, named by the URL's primary key.
    Primary(ObjectKey),
    /// Every object whose URL (host + path + query) starts with this.
    Prefix(String),
    /// Every object tagged with this surrogate key.
    SurrogateKey(String),
}

/// How to build a [`Cache`].
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Memory tier budget in bytes.
    pub memory_bytes: u64,
    /// Largest object kept in memory.
    pub memory_max_object: u64,
    /// Disk tier, if any.
    pub disk: Option<DiskOptions>,
    /// Eviction policy name (`policy::by_name`): `s3fifo`, `lru`, `fifo`, `sieve`, `arc`, `wtinylfu`.
    pub policy: String,
    /// Admission policy name: `always` or `second-hit`.
    pub admission: String,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            memory_bytes: 256 << 20,
            memory_max_object: 16 << 20,
            disk: None,
            policy: "s3fifo".into(),
            admission: "always".into(),
        }
    }
}

/// A counter bumped on every memory hit from every worker thread, striped over cache lines so
/// that threads hitting different keys do not contend on one line. Reads sum the stripes.
#[derive(Debug, Default)]
pub struct StripedCounter([PaddedCount; STRIPES]);

const STRIPES: usize = 16;

#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedCount(AtomicU64);

impl StripedCounter {
    /// Count one event for `key` (its stripe).
    #[inline]
    pub fn add(&self, key: &ObjectKey) {
        self.0[usize::from(key.0[0]) % STRIPES]
            .0
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The total.
    pub fn get(&self) -> u64 {
        self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// Counters the edge exports as metrics.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Objects served from memory.
    pub memory_hits: StripedCounter,
    /// Objects served from disk.
    pub disk_hits: AtomicU64,
    /// Lookups that found nothing.
    pub misses: AtomicU64,
    /// Disk writes or reads that failed.
    pub disk_errors: AtomicU64,
    /// Objects refused by admission.
    pub rejected: AtomicU64,
    /// Large bodies that could not be moved into a sealed memory file (kept on the heap instead;
    /// usually the process is out of file descriptors).
    pub seal_errors: AtomicU64,
    /// Times a tier's policy failed and fell back to S3-FIFO (shared with the policies, which
    /// count it; see [`PolicyFactory`]).
    pub policy_fallbacks: Arc<AtomicU64>,
}

/// Builds a tier's eviction policy from its configured name and capacity. The counter is
/// [`CacheCounters::policy_fallbacks`], for policies that can fall back. [`policy::by_name`]
/// serves the built-in names; the edge adds `learned` (from `eddy-predict`).
pub type PolicyFactory<'a> =
    &'a dyn Fn(&str, u64, &Arc<AtomicU64>) -> Result<Box<dyn policy::Policy>, CacheError>;

/// The built-in policies, by name.
pub fn builtin_policy(
    name: &str,
    capacity: u64,
    _fallbacks: &Arc<AtomicU64>,
) -> Result<Box<dyn policy::Policy>, CacheError> {
    policy::by_name(name, capacity)
}

/// Snapshot of tier usage.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Memory bytes used.
    pub memory_used: u64,
    /// Memory objects.
    pub memory_objects: u64,
    /// Memory evictions so far.
    pub memory_evictions: u64,
    /// Disk bytes used.
    pub disk_used: u64,
    /// Disk objects.
    pub disk_objects: u64,
    /// Disk evictions so far.
    pub disk_evictions: u64,
}

const DISK_BACKOFF: Duration = Duration::from_secs(30);

/// Memory tier + disk tier + purge index.
pub struct Cache {
    memory: MemoryTier,
    disk: Option<DiskTier>,
    index: PurgeIndex,
    admission: Box<dyn Admission>,
    disk_down_until: parking_lot::Mutex<Option<Instant>>,
    seal_budget: Arc<SealBudget>,
    /// Counters for metrics.
    pub counters: CacheCounters,
}

/// Keep at most this many prefix bans before sweeping the disk tier and forgetting them.
const MAX_BANS: usize = 256;

impl Cache {
    /// Build the cache, recovering the disk tier if one is configured.
    pub fn open(opts: &CacheOptions) -> Result<Cache, CacheError> {
        Cache::open_with(opts, &builtin_policy)
    }

    /// [`Cache::open`], building each tier's policy with `make_policy`.
    pub fn open_with(
        opts: &CacheOptions,
        make_policy: PolicyFactory<'_>,
    ) -> Result<Cache, CacheError> {
        let counters = CacheCounters::default();
        let fallbacks = &counters.policy_fallbacks;
        let memory = MemoryTier::new(
            opts.memory_bytes,
            opts.memory_max_object,
            make_policy(&opts.policy, opts.memory_bytes, fallbacks)?,
        );
        let (disk, index) = match &opts.disk {
            Some(d) => {
                let (tier, recovered) =
                    DiskTier::open(d, make_policy(&opts.policy, d.capacity, fallbacks)?)?;
                let log = d.dir.join("bans.log");
                let index = PurgeIndex::with_ban_log(log.clone())
                    .map_err(|source| CacheError::Io { path: log, source })?;
                for (key, tags) in &recovered {
                    index.add(*key, tags);
                }
                tracing::info!(dir = %d.dir.display(), objects = recovered.len(), bytes = tier.used(), bans = index.bans(), "disk tier recovered");
                (Some(tier), index)
            }
            None => (None, PurgeIndex::default()),
        };
        Ok(Cache {
            memory,
            disk,
            index,
            admission: admission::by_name(&opts.admission)?,
            disk_down_until: parking_lot::Mutex::new(None),
            seal_budget: SealBudget::from_open_file_limit(),
            counters,
        })
    }

    /// Bodies held in sealed memory files now (see [`crate::sealed`]).
    pub fn sealed_bodies(&self) -> usize {
        self.seal_budget.live()
    }

    /// The current ban epoch. Record it when a fill starts and pass it in the [`Object`], so a
    /// prefix purge issued during the fill applies to the result.
    pub fn epoch(&self) -> u32 {
        self.index.epoch()
    }

    /// Memory-only lookup: never blocks on I/O. Use on the hit fast path.
    #[inline]
    pub fn get_memory(&self, key: &ObjectKey) -> Option<Lookup> {
        let found = self.peek_memory(key)?;
        self.count_memory_hit(key);
        Some(found)
    }

    /// [`Cache::get_memory`] that counts nothing: for a caller that may still decline to serve
    /// the object (and then looks it up the full way). Call [`Cache::count_memory_hit`] when it
    /// does serve it.
    #[inline]
    pub fn peek_memory(&self, key: &ObjectKey) -> Option<Lookup> {
        let (object, stale) = self.memory.get(key)?;
        Some(Lookup {
            object,
            stale,
            tier: Tier::Memory,
        })
    }

    /// Count a memory hit on `key` served after [`Cache::peek_memory`].
    #[inline]
    pub fn count_memory_hit(&self, key: &ObjectKey) {
        self.counters.memory_hits.add(key);
    }

    /// Full lookup: memory, then disk (blocking file I/O). A disk hit is checked against prefix
    /// bans issued since its fill, then promoted to memory.
    pub fn get(&self, key: &ObjectKey) -> Option<Lookup> {
        if let Some(l) = self.get_memory(key) {
            return Some(l);
        }
        let found = self.get_disk(key);
        if found.is_none() {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    fn get_disk(&self, key: &ObjectKey) -> Option<Lookup> {
        let disk = self.disk.as_ref()?;
        match disk.get(key) {
            Ok(Some((object, mut stale))) => {
                match self.index.banned(object.tags.url(), object.epoch) {
                    Some(false) => {
                        disk.remove(key);
                        return None;
                    }
                    Some(true) if !stale => {
                        stale = true;
                        let _ = disk.mark_stale(key);
                    }
                    _ => {}
                }
                self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
                let object = Arc::new(self.sealed(object));
                let evicted = self.memory.insert(*key, object.clone());
                if stale {
                    self.memory.mark_stale(key);
                }
                self.after_evictions(evicted.len());
                Some(Lookup {
                    object,
                    stale,
                    tier: Tier::Disk,
                })
            }
            Ok(None) => None,
            Err(e) => {
                self.counters.disk_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "disk tier read failed; treating as a miss");
                None
            }
        }
    }

    /// The object as the memory tier keeps it: a large body moves into a sealed memory file (see
    /// [`crate::sealed`]); when that fails the body stays on the heap, counted and logged.
    fn sealed(&self, mut object: Object) -> Object {
        if object.body.len() < SEAL_MIN || object.sealed.is_some() {
            return object;
        }
        match SealedBody::new(&object.body, &self.seal_budget) {
            Ok(sealed) => {
                object.body = sealed.bytes();
                object.sealed = Some(sealed);
            }
            Err(e) => {
                let n = self.counters.seal_errors.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() || n == 0 {
                    tracing::warn!(error = %e, failures = n + 1, "a large body stays on the heap: no sealed memory file (raise the open-file limit?)");
                }
            }
        }
        object
    }

    /// Whether an object may be stored (admission). Call once per candidate fill.
    pub fn admit(&self, key: &ObjectKey, size: u64) -> bool {
        let ok = self.admission.admit(key, size);
        if !ok {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Store an object in memory and (blocking) on disk. Replaces any previous version and clears
    /// a soft-purge mark. An object a prefix ban issued during its fill covers is dropped (hard)
    /// or stored stale (soft).
    pub fn insert(&self, key: ObjectKey, object: Object) {
        let banned = self.index.banned(object.tags.url(), object.epoch);
        if banned == Some(false) {
            self.remove(&key);
            return;
        }
        let object = Arc::new(self.sealed(object));
        self.index.add(key, &object.tags);
        let mut evicted = self.memory.insert(key, object.clone()).len();
        if let Some(disk) = &self.disk {
            if self.disk_usable() {
                match disk.put(key, &object) {
                    Ok(ev) => evicted += ev.len(),
                    Err(CacheError::TooLarge { .. }) => {}
                    Err(e) => {
                        self.counters.disk_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, backoff_s = DISK_BACKOFF.as_secs(), "disk tier write failed; serving from memory only until the back-off ends");
                        *self.disk_down_until.lock() = Some(Instant::now() + DISK_BACKOFF);
                        // An older version on disk must not outlive this one.
                        disk.remove(&key);
                    }
                }
            } else {
                disk.remove(&key);
            }
        }
        if banned == Some(true) {
            self.mark_stale(&key);
        }
        self.after_evictions(evicted);
    }

    fn disk_usable(&self) -> bool {
        let mut g = self.disk_down_until.lock();
        match *g {
            Some(t) if Instant::now() < t => false,
            Some(_) => {
                *g = None;
                true
            }
            None => true,
        }
    }

    /// Whether either tier holds `k` (index lookups only, no I/O).
    pub fn contains(&self, k: &ObjectKey) -> bool {
        self.memory.contains(k) || self.disk.as_ref().is_some_and(|d| d.contains(k))
    }

    fn after_evictions(&self, evicted: usize) {
        if evicted == 0 {
            return;
        }
        let live = self.memory.len() + self.disk.as_ref().map_or(0, |d| d.len());
        if self.index.needs_compaction(live) {
            self.index.compact(|k| self.contains(k));
        }
    }

    /// Remove one object from both tiers. Returns whether anything was removed.
    pub fn remove(&self, key: &ObjectKey) -> bool {
        let m = self.memory.remove(key);
        let d = self.disk.as_ref().is_some_and(|d| d.remove(key));
        m || d
    }

    /// Mark one object stale in both tiers (soft purge). Returns whether it was present.
    pub fn mark_stale(&self, key: &ObjectKey) -> bool {
        let m = self.memory.mark_stale(key);
        let d = match &self.disk {
            Some(disk) => disk.mark_stale(key).unwrap_or_else(|e| {
                tracing::error!(error = %e, "could not persist soft purge mark; removing the object instead");
                disk.remove(key)
            }),
            None => false,
        };
        m || d
    }

    /// Purge a scope: `soft` marks objects stale (they revalidate), otherwise they are removed.
    /// Returns how many objects were affected now. A prefix purge also bans the prefix, so
    /// objects on disk only are caught when next read; they are not in the count.
    pub fn purge(&self, scope: &PurgeScope, soft: bool) -> Result<usize, CacheError> {
        let apply = |k: &ObjectKey| {
            if soft {
                self.mark_stale(k)
            } else {
                self.remove(k)
            }
        };
        Ok(match scope {
            PurgeScope::Primary(p) => self.index.by_primary(p).iter().filter(|k| apply(k)).count(),
            PurgeScope::SurrogateKey(s) => self
                .index
                .by_surrogate(s)
                .iter()
                .filter(|k| apply(k))
                .count(),
            PurgeScope::Prefix(prefix) => {
                if self.disk.is_some() {
                    self.index
                        .ban(prefix, soft)
                        .map_err(|source| CacheError::Io {
                            path: "bans.log".into(),
                            source,
                        })?;
                }
                let n = self
                    .memory
                    .matching(|o| o.tags.url().starts_with(prefix.as_str()))
                    .iter()
                    .filter(|k| apply(k))
                    .count();
                if self.index.bans() > MAX_BANS {
                    self.sweep_bans()?;
                }
                n
            }
        })
    }

    /// Apply every prefix ban to the disk tier now (reading each file's tags), then forget them.
    pub fn sweep_bans(&self) -> Result<usize, CacheError> {
        let Some(disk) = &self.disk else {
            self.index.clear_bans().map_err(|source| CacheError::Io {
                path: "bans.log".into(),
                source,
            })?;
            return Ok(0);
        };
        let mut n = 0;
        for (key, tags, epoch) in disk.scan() {
            match self.index.banned(tags.url(), epoch) {
                Some(false) => n += usize::from(self.remove(&key)),
                Some(true) => n += usize::from(self.mark_stale(&key)),
                None => {}
            }
        }
        self.index.clear_bans().map_err(|source| CacheError::Io {
            path: "bans.log".into(),
            source,
        })?;
        tracing::info!(objects = n, "prefix bans swept through the disk tier");
        Ok(n)
    }

    /// Tier usage for metrics.
    pub fn usage(&self) -> Usage {
        Usage {
            memory_used: self.memory.used(),
            memory_objects: self.memory.len() as u64,
            memory_evictions: self.memory.evictions(),
            disk_used: self.disk.as_ref().map_or(0, |d| d.used()),
            disk_objects: self.disk.as_ref().map_or(0, |d| d.len() as u64),
            disk_evictions: self.disk.as_ref().map_or(0, |d| d.evictions()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(c: &Cache, key: ObjectKey, url: &str, keys: &[&str], body: &str) -> Object {
        Object::new(
            Bytes::from_static(b"m"),
            Bytes::from(body.to_string()),
            Tags::new(url, key, keys),
            c.epoch(),
        )
    }

    fn tmp() -> Result<tempfile::TempDir, CacheError> {
        tempfile::tempdir().map_err(|source| CacheError::Dir {
            path: "tmp".into(),
            source,
        })
    }

    fn disk_opts(dir: &std::path::Path, memory_max_object: u64) -> CacheOptions {
        CacheOptions {
            memory_max_object,
            disk: Some(DiskOptions {
                dir: dir.into(),
                capacity: 1 << 20,
                fsync: false,
            }),
            ..CacheOptions::default()
        }
    }

    #[test]
    fn purge_by_scope_hard_and_soft() -> Result<(), CacheError> {
        let c = Cache::open(&CacheOptions::default())?;
        let a = ObjectKey::from_u64(1);
        let b = ObjectKey::from_u64(2);
        c.insert(a, obj(&c, a, "h/a/1", &["red"], "1"));
        c.insert(b, obj(&c, b, "h/a/2", &["blue"], "2"));
        assert_eq!(c.purge(&PurgeScope::SurrogateKey("red".into()), true)?, 1);
        assert!(c.get(&a).is_some_and(|l| l.stale));
        assert_eq!(c.purge(&PurgeScope::Prefix("h/a/".into()), false)?, 2);
        assert!(c.get(&a).is_none() && c.get(&b).is_none());
        Ok(())
    }

    #[test]
    fn purge_by_primary_reaches_every_variant() -> Result<(), CacheError> {
        let c = Cache::open(&CacheOptions::default())?;
        let primary = ObjectKey::from_u64(10);
        let (v1, v2) = (ObjectKey::from_u64(11), ObjectKey::from_u64(12));
        for v in [v1, v2] {
            c.insert(
                v,
                Object::new(
                    Bytes::new(),
                    Bytes::from_static(b"x"),
                    Tags::new("h/v", primary, [] as [&str; 0]),
                    c.epoch(),
                ),
            );
        }
        assert_eq!(c.purge(&PurgeScope::Primary(primary), false)?, 2);
        Ok(())
    }

    #[test]
    fn restart_keeps_objects_and_soft_marks() -> Result<(), CacheError> {
        let dir = tmp()?;
        let opts = disk_opts(dir.path(), 1 << 20);
        let a = ObjectKey::from_u64(1);
        let b = ObjectKey::from_u64(2);
        {
            let c = Cache::open(&opts)?;
            c.insert(a, obj(&c, a, "h/a", &["k"], "alpha"));
            c.insert(b, obj(&c, b, "h/b", &[], "beta"));
            c.mark_stale(&b);
        }
        let c = Cache::open(&opts)?;
        let la = c
            .get(&a)
            .ok_or(CacheError::UnknownPolicy("a missing".into()))?;
        assert_eq!(&la.object.body[..], b"alpha");
        assert_eq!(la.tier, Tier::Disk);
        assert!(!la.stale);
        assert!(c.get(&b).is_some_and(|l| l.stale));
        assert_eq!(c.purge(&PurgeScope::SurrogateKey("k".into()), false)?, 1);
        Ok(())
    }

    #[test]
    fn prefix_ban_reaches_disk_only_objects_across_restart() -> Result<(), CacheError> {
        let dir = tmp()?;
        // Objects too big for memory live on disk only.
        let opts = disk_opts(dir.path(), 1);
        let (a, b, c_key) = (
            ObjectKey::from_u64(1),
            ObjectKey::from_u64(2),
            ObjectKey::from_u64(3),
        );
        {
            let c = Cache::open(&opts)?;
            c.insert(a, obj(&c, a, "h/videos/1", &[], "one"));
            c.insert(b, obj(&c, b, "h/news/1", &[], "two"));
            c.insert(c_key, obj(&c, c_key, "h/other", &[], "three"));
            assert_eq!(
                c.purge(&PurgeScope::Prefix("h/videos/".into()), false)?,
                0,
                "nothing in memory"
            );
            assert_eq!(c.purge(&PurgeScope::Prefix("h/news/".into()), true)?, 0);
        }
        let c = Cache::open(&opts)?;
        assert!(c.get(&a).is_none(), "hard ban applied after restart");
        assert!(c.get(&b).is_some_and(|l| l.stale), "soft ban marks stale");
        assert!(c.get(&c_key).is_some_and(|l| !l.stale));
        // A fill that started before a ban and finishes after it is not stored.
        let d = ObjectKey::from_u64(4);
        let late = obj(&c, d, "h/videos/2", &[], "late");
        c.purge(&PurgeScope::Prefix("h/videos/".into()), false)?;
        c.insert(d, late);
        assert!(c.get(&d).is_none());
        // A fill that starts after the ban is stored.
        c.insert(d, obj(&c, d, "h/videos/2", &[], "fresh"));
        assert!(c.get(&d).is_some());
        Ok(())
    }

    #[test]
    fn many_bans_are_swept_and_forgotten() -> Result<(), CacheError> {
        let dir = tmp()?;
        let c = Cache::open(&disk_opts(dir.path(), 1))?;
        let a = ObjectKey::from_u64(1);
        c.insert(a, obj(&c, a, "h/p0/x", &[], "x"));
        for i in 0..=MAX_BANS {
            c.purge(&PurgeScope::Prefix(format!("h/p{i}/")), false)?;
        }
        assert_eq!(c.index.bans(), 0, "swept");
        assert!(
            !c.contains(&a),
            "the sweep removed the banned object from disk"
        );
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn unwritable_disk_degrades_to_memory() -> Result<(), CacheError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().map_err(|source| CacheError::Dir {
            path: "tmp".into(),
            source,
        })?;
        let opts = CacheOptions {
            disk: Some(DiskOptions {
                dir: dir.path().into(),
                capacity: 1 << 20,
                fsync: false,
            }),
            ..CacheOptions::default()
        };
        let c = Cache::open(&opts)?;
        // Replace the tmp dir by a file so writes fail even as root.
        let tmp = dir.path().join("tmp");
        std::fs::remove_dir_all(&tmp).map_err(|source| CacheError::Dir {
            path: tmp.clone(),
            source,
        })?;
        std::fs::write(&tmp, b"not a dir").map_err(|source| CacheError::Dir {
            path: tmp.clone(),
            source,
        })?;
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444));
        let a = ObjectKey::from_u64(1);
        c.insert(a, obj(&c, a, "h/a", &[], "alpha"));
        assert!(c.counters.disk_errors.load(Ordering::Relaxed) >= 1);
        assert_eq!(c.get(&a).map(|l| l.tier), Some(Tier::Memory));
        Ok(())
    }
}
