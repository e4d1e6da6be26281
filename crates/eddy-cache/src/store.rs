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
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What purge needs to know about an object: its URL (host + path + query) and its surrogate
/// keys (from the origin's `Surrogate-Key` header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tags(Arc<TagsInner>);

#[derive(Debug, PartialEq, Eq)]
struct TagsInner {
    url: Arc<str>,
    keys: Box<[Box<str>]>,
}

impl Tags {
    /// Tags for `url` with surrogate `keys`.
    pub fn new<I, S>(url: &str, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Tags(Arc::new(TagsInner {
            url: Arc::from(url),
            keys: keys.into_iter().map(|k| Box::from(k.as_ref())).collect(),
        }))
    }
    /// The URL.
    pub fn url(&self) -> &str {
        &self.0.url
    }
    pub(crate) fn url_arc(&self) -> Arc<str> {
        self.0.url.clone()
    }
    /// The surrogate keys.
    pub fn surrogate_keys(&self) -> &[Box<str>] {
        &self.0.keys
    }
    /// Encoding used in disk files: URL, newline, space-separated keys.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.url.len() + 16);
        out.extend_from_slice(self.0.url.as_bytes());
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
        let (url, keys) = s.split_once('\n')?;
        Some(Tags::new(url, keys.split(' ').filter(|k| !k.is_empty())))
    }
}

/// One stored response: an opaque metadata blob (the edge keeps the HTTP response head and
/// freshness there), the body, and the purge tags.
#[derive(Debug)]
pub struct Object {
    /// Opaque metadata (response head, freshness), owned by the caller's format.
    pub meta: Bytes,
    /// The body.
    pub body: Bytes,
    /// Purge tags.
    pub tags: Tags,
}

impl Object {
    /// A new object.
    pub fn new(meta: Bytes, body: Bytes, tags: Tags) -> Self {
        Object { meta, body, tags }
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
    /// Every variant of one URL (host + path + query).
    Url(String),
    /// Every object whose URL starts with this.
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
    /// Eviction policy name: `s3fifo` or `lru`.
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

/// Counters the edge exports as metrics.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Objects served from memory.
    pub memory_hits: AtomicU64,
    /// Objects served from disk.
    pub disk_hits: AtomicU64,
    /// Lookups that found nothing.
    pub misses: AtomicU64,
    /// Disk writes or reads that failed.
    pub disk_errors: AtomicU64,
    /// Objects refused by admission.
    pub rejected: AtomicU64,
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
    /// Counters for metrics.
    pub counters: CacheCounters,
}

impl Cache {
    /// Build the cache, recovering the disk tier if one is configured.
    pub fn open(opts: &CacheOptions) -> Result<Cache, CacheError> {
        let memory = MemoryTier::new(
            opts.memory_bytes,
            opts.memory_max_object,
            policy::by_name(&opts.policy, opts.memory_bytes)?,
        );
        let index = PurgeIndex::default();
        let disk = match &opts.disk {
            Some(d) => {
                let (tier, recovered) =
                    DiskTier::open(d, policy::by_name(&opts.policy, d.capacity)?)?;
                for (key, tags) in &recovered {
                    index.add(*key, tags);
                }
                tracing::info!(dir = %d.dir.display(), objects = recovered.len(), bytes = tier.used(), "disk tier recovered");
                Some(tier)
            }
            None => None,
        };
        Ok(Cache {
            memory,
            disk,
            index,
            admission: admission::by_name(&opts.admission)?,
            disk_down_until: parking_lot::Mutex::new(None),
            counters: CacheCounters::default(),
        })
    }

    /// Memory-only lookup: never blocks on I/O. Use on the hit fast path.
    #[inline]
    pub fn get_memory(&self, key: &ObjectKey) -> Option<Lookup> {
        let (object, stale) = self.memory.get(key)?;
        self.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
        Some(Lookup {
            object,
            stale,
            tier: Tier::Memory,
        })
    }

    /// Full lookup: memory, then disk (blocking file I/O). A disk hit is promoted to memory.
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
            Ok(Some((object, stale))) => {
                self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
                let object = Arc::new(object);
                let evicted = self.memory.insert(*key, object.clone());
                if stale {
                    self.memory.mark_stale(key);
                }
                self.forget_if_gone(&evicted);
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
                if !disk.contains(key) && !self.memory.contains(key) {
                    self.index.remove(key);
                }
                None
            }
        }
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
    /// a soft-purge mark.
    pub fn insert(&self, key: ObjectKey, object: Object) {
        let object = Arc::new(object);
        self.index.add(key, &object.tags);
        let mut evicted = self.memory.insert(key, object.clone());
        if let Some(disk) = &self.disk {
            if self.disk_usable() {
                match disk.put(key, &object) {
                    Ok(mut ev) => evicted.append(&mut ev),
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
        self.forget_if_gone(&evicted);
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

    fn forget_if_gone(&self, evicted: &[ObjectKey]) {
        for k in evicted {
            let on_disk = self.disk.as_ref().is_some_and(|d| d.contains(k));
            if !on_disk && !self.memory.contains(k) {
                self.index.remove(k);
            }
        }
    }

    /// Remove one object from both tiers. Returns whether anything was removed.
    pub fn remove(&self, key: &ObjectKey) -> bool {
        let m = self.memory.remove(key);
        let d = self.disk.as_ref().is_some_and(|d| d.remove(key));
        self.index.remove(key);
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

    /// The keys a purge scope covers.
    pub fn keys_for(&self, scope: &PurgeScope) -> Vec<ObjectKey> {
        match scope {
            PurgeScope::Url(u) => self.index.by_url(u),
            PurgeScope::Prefix(p) => self.index.by_prefix(p),
            PurgeScope::SurrogateKey(k) => self.index.by_surrogate(k),
        }
    }

    /// Purge a scope: `soft` marks objects stale (they revalidate), otherwise they are removed.
    /// Returns how many objects were affected.
    pub fn purge(&self, scope: &PurgeScope, soft: bool) -> usize {
        self.keys_for(scope)
            .iter()
            .filter(|k| {
                if soft {
                    self.mark_stale(k)
                } else {
                    self.remove(k)
                }
            })
            .count()
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

    /// Number of objects in the purge index.
    pub fn indexed(&self) -> usize {
        self.index.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(url: &str, keys: &[&str], body: &str) -> Object {
        Object::new(
            Bytes::from_static(b"m"),
            Bytes::from(body.to_string()),
            Tags::new(url, keys),
        )
    }

    #[test]
    fn purge_by_scope_hard_and_soft() -> Result<(), CacheError> {
        let c = Cache::open(&CacheOptions::default())?;
        let a = ObjectKey::from_u64(1);
        let b = ObjectKey::from_u64(2);
        c.insert(a, obj("h/a/1", &["red"], "1"));
        c.insert(b, obj("h/a/2", &["blue"], "2"));
        assert_eq!(c.purge(&PurgeScope::SurrogateKey("red".into()), true), 1);
        assert!(c.get(&a).is_some_and(|l| l.stale));
        assert_eq!(c.purge(&PurgeScope::Prefix("h/a/".into()), false), 2);
        assert!(c.get(&a).is_none() && c.get(&b).is_none());
        Ok(())
    }

    #[test]
    fn restart_keeps_objects_and_soft_marks() -> Result<(), CacheError> {
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
        let a = ObjectKey::from_u64(1);
        let b = ObjectKey::from_u64(2);
        {
            let c = Cache::open(&opts)?;
            c.insert(a, obj("h/a", &["k"], "alpha"));
            c.insert(b, obj("h/b", &[], "beta"));
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
        assert_eq!(c.purge(&PurgeScope::SurrogateKey("k".into()), false), 1);
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
        c.insert(a, obj("h/a", &[], "alpha"));
        assert!(c.counters.disk_errors.load(Ordering::Relaxed) >= 1);
        assert_eq!(c.get(&a).map(|l| l.tier), Some(Tier::Memory));
        Ok(())
    }
}
