//! Eviction policies.
//!
//! A [`Policy`] decides which resident object leaves a tier when the tier is over its byte
//! budget. The tier owns the objects, their sizes and their byte accounting; the policy owns its
//! ordering state. To keep per-object memory small, a policy keeps no map of its own: each
//! resident entry in the tier carries
//!
//! - an access counter ([`AccessCounter`]) that the hit path bumps without any lock, and
//! - one 32-bit word the policy owns (S3-FIFO: queue and generation; LRU: list node index),
//!
//! and the policy reads and writes them through [`Residents`] while it holds the tier's policy
//! lock. Policies that need an ordered update on every hit (LRU) say so with
//! [`Policy::touch_on_hit`], and the tier then calls [`Policy::touch`] under that lock.

mod arc;
mod list;
mod lru;
mod s3fifo;
mod sieve;
mod wtinylfu;

pub use arc::Arc;
pub use lru::Lru;
pub use s3fifo::S3Fifo;
pub use sieve::Sieve;
pub use wtinylfu::WTinyLfu;

use crate::CacheError;
use crate::key::ObjectKey;
use std::sync::atomic::{AtomicU8, Ordering};

/// What kind of content an object is, as far as a policy is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ContentKind {
    /// Not known.
    #[default]
    Unknown,
    /// A media segment (video or audio).
    Segment,
    /// A manifest or playlist.
    Manifest,
    /// An image.
    Image,
    /// A page, script, style sheet or API response.
    Page,
    /// A large download.
    Download,
}

impl ContentKind {
    /// Number of kinds (for feature tables).
    pub const COUNT: usize = 6;

    /// A small index, 0 for [`ContentKind::Unknown`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kind a `Content-Type` and a body size suggest.
    pub fn from_content_type(content_type: &str, size: u64) -> ContentKind {
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if ct.contains("mpegurl") || ct == "application/dash+xml" {
            ContentKind::Manifest
        } else if ct.starts_with("video/") || ct.starts_with("audio/") || ct == "application/mp4" {
            ContentKind::Segment
        } else if ct.starts_with("image/") {
            ContentKind::Image
        } else if size >= 8 << 20 {
            ContentKind::Download
        } else if ct.starts_with("text/")
            || ct.ends_with("json")
            || ct.ends_with("javascript")
            || ct.ends_with("xml")
        {
            ContentKind::Page
        } else {
            ContentKind::Unknown
        }
    }
}

/// What the tier knows about an object it stores (see [`Policy::hint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hint {
    /// Its kind.
    pub kind: ContentKind,
    /// Seconds since it was published (its `Last-Modified`), if known.
    pub age: Option<u32>,
}

/// The per-object access counter the hit path bumps. Saturates at 3 (two bits, as in S3-FIFO).
#[derive(Debug, Default)]
pub struct AccessCounter(AtomicU8);

impl AccessCounter {
    /// Record one access; lock-free and wait-free.
    #[inline]
    pub fn bump(&self) {
        let v = self.0.load(Ordering::Relaxed);
        if v < 3 {
            self.0.store(v + 1, Ordering::Relaxed);
        }
    }
    /// Current value.
    pub fn get(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }
    /// Overwrite the value (policies decrement or reset it when they move an object).
    pub fn set(&self, v: u8) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// What a policy sees of one resident object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resident {
    /// Bytes charged against the tier.
    pub size: u64,
    /// Access counter (0..=3).
    pub access: u8,
    /// The policy's own word.
    pub word: u32,
}

/// How a policy reads and writes the state of resident objects.
pub trait Residents {
    /// The state of a resident object, or `None` if the tier does not hold it.
    fn get(&self, key: &ObjectKey) -> Option<Resident>;
    /// Overwrite the access counter of a resident object (no-op if it is gone).
    fn set_access(&self, key: &ObjectKey, value: u8);
    /// Overwrite the policy word of a resident object (no-op if it is gone).
    fn set_word(&self, key: &ObjectKey, word: u32);
}

/// An eviction policy for one tier. All methods run under the tier's policy lock; only the
/// access counter is touched on the hit path.
pub trait Policy: Send {
    /// Short name for logs and metrics (`"s3fifo"`, `"lru"`).
    fn name(&self) -> &'static str;

    /// Whether every hit must call [`Policy::touch`] (true for LRU). When false, a hit only bumps
    /// the object's [`AccessCounter`] and takes no lock.
    fn touch_on_hit(&self) -> bool {
        false
    }

    /// Record a hit in the policy's own ordering (only called when `touch_on_hit` is true).
    /// `word` is the object's policy word. A policy may evict on a hit (W-TinyLFU, when a
    /// promotion overfills its probation segment); it pushes those objects to `victims` and the
    /// tier removes them.
    fn touch(&mut self, _key: &ObjectKey, _word: u32, _victims: &mut Vec<ObjectKey>) {}

    /// What the tier knows about an object it is about to store (its kind and age), for
    /// policies that learn from it. Called before [`Policy::admit`]; most policies ignore it.
    fn hint(&mut self, _key: &ObjectKey, _hint: Hint) {}

    /// A request missed on `key` and the tier is about to store it with `size` bytes. Called
    /// before the tier evicts to make room (as libCacheSim does), so a policy can look the key
    /// up in its ghost lists and plan the eviction around the incoming object. Returns whether
    /// the policy admits an object of this size at all (S3-FIFO and W-TinyLFU refuse objects
    /// larger than their first queue); a refused object is not stored and nothing is evicted.
    fn admit(&mut self, _key: &ObjectKey, _size: u64) -> bool {
        true
    }

    /// A new object of `size` bytes became resident. Its entry already exists in the tier (with
    /// word 0 and access 0); the policy sets the word through `residents`.
    fn insert(&mut self, key: ObjectKey, size: u64, residents: &dyn Residents);

    /// An object left the tier for a reason other than eviction (purge, replacement,
    /// corruption). `size` and `word` are what its entry held.
    fn remove(&mut self, key: &ObjectKey, size: u64, word: u32);

    /// Run one eviction step: choose one or more objects to evict, forget them and push them to
    /// `victims`; the tier then removes their entries. One step may evict more than one object
    /// (S3-FIFO's small queue moving objects to main first), or none (W-TinyLFU moving its
    /// window's oldest object into a main cache with room). Returns false, having done nothing,
    /// when the policy tracks nothing. The tier repeats steps until the incoming object fits.
    fn evict(&mut self, residents: &dyn Residents, victims: &mut Vec<ObjectKey>) -> bool;

    /// Number of objects tracked.
    fn len(&self) -> usize;

    /// Whether the policy tracks nothing.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Build a policy by name for a tier of `capacity` bytes.
pub fn by_name(name: &str, capacity: u64) -> Result<Box<dyn Policy>, CacheError> {
    match name {
        "s3fifo" | "s3-fifo" => Ok(Box::new(S3Fifo::new(capacity))),
        "lru" => Ok(Box::new(Lru::new())),
        "fifo" => Ok(Box::new(Lru::fifo())),
        "sieve" => Ok(Box::new(Sieve::new())),
        "arc" => Ok(Box::new(Arc::new(capacity))),
        "wtinylfu" | "w-tinylfu" => Ok(Box::new(WTinyLfu::new(capacity))),
        other => Err(CacheError::UnknownPolicy(other.to_string())),
    }
}

/// A policy driven over a request sequence outside any tier: the resident set (size, access
/// counter, policy word per object) and the byte accounting a tier keeps, with a tier's hit and
/// miss steps. The simulator (`eddy-sim`) and the policy tests replay traces through it, so they
/// run the policies exactly as the memory tier does.
pub struct Replay {
    held: Held,
    used: u64,
    capacity: u64,
}

/// A resident set outside any tier: size, access counter and policy word per object.
#[derive(Default)]
pub(crate) struct Held(
    pub(crate) crate::key::KeyMap<(u64, std::cell::Cell<u8>, std::cell::Cell<u32>)>,
);

impl Residents for Held {
    fn get(&self, key: &ObjectKey) -> Option<Resident> {
        self.0.get(key).map(|(size, a, w)| Resident {
            size: *size,
            access: a.get(),
            word: w.get(),
        })
    }
    fn set_access(&self, key: &ObjectKey, value: u8) {
        if let Some((_, a, _)) = self.0.get(key) {
            a.set(value);
        }
    }
    fn set_word(&self, key: &ObjectKey, word: u32) {
        if let Some((_, _, w)) = self.0.get(key) {
            w.set(word);
        }
    }
}

impl Replay {
    /// An empty cache of `capacity` bytes.
    pub fn new(capacity: u64) -> Replay {
        Replay {
            held: Held::default(),
            used: 0,
            capacity,
        }
    }

    /// One request for object `id` of `size` bytes through `policy`; `true` on a hit. A hit
    /// bumps the access counter (and calls [`Policy::touch`] when the policy asks); a miss asks
    /// the policy to [`Policy::admit`] the object (never one larger than the cache), evicts
    /// until it fits, then inserts it.
    pub fn request(&mut self, policy: &mut dyn Policy, id: u64, size: u64) -> bool {
        self.request_hinted(policy, id, size, None)
    }

    /// [`Replay::request`], giving the policy `hint` about the object on a miss.
    pub fn request_hinted(
        &mut self,
        policy: &mut dyn Policy,
        id: u64,
        size: u64,
        hint: Option<Hint>,
    ) -> bool {
        let key = ObjectKey::from_u64(id);
        if let Some((_, a, w)) = self.held.0.get(&key) {
            a.set((a.get() + 1).min(3));
            if policy.touch_on_hit() {
                let mut victims = Vec::new();
                policy.touch(&key, w.get(), &mut victims);
                self.forget(&victims);
            }
            return true;
        }
        if let Some(h) = hint {
            policy.hint(&key, h);
        }
        if size > self.capacity || !policy.admit(&key, size) {
            return false;
        }
        let mut victims = Vec::new();
        while self.used + size > self.capacity {
            victims.clear();
            if !policy.evict(&self.held, &mut victims) {
                break;
            }
            self.forget(&victims);
        }
        self.held.0.insert(
            key,
            (size, std::cell::Cell::new(0), std::cell::Cell::new(0)),
        );
        self.used += size;
        policy.insert(key, size, &self.held);
        false
    }

    fn forget(&mut self, victims: &[ObjectKey]) {
        for victim in victims {
            if let Some((s, _, _)) = self.held.0.remove(victim) {
                self.used -= s;
            }
        }
    }

    /// Whether object `id` is resident.
    pub fn contains(&self, id: u64) -> bool {
        self.held.0.contains_key(&ObjectKey::from_u64(id))
    }

    /// Objects held.
    pub fn len(&self) -> usize {
        self.held.0.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.0.is_empty()
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.used
    }
}

#[cfg(test)]
pub(crate) mod testing {
    pub(crate) use super::Held as Map;
    use super::*;

    /// Run a request sequence of (id, size) through `policy` with a byte budget; return misses.
    pub fn simulate(policy: &mut dyn Policy, capacity: u64, reqs: &[(u64, u64)]) -> usize {
        let mut r = Replay::new(capacity);
        reqs.iter()
            .filter(|&&(id, size)| !r.request(policy, id, size))
            .count()
    }

    /// Objects 0..n of size 1 made resident under `policy`, in that order.
    pub fn fill(policy: &mut dyn Policy, n: u64) -> Map {
        let mut map = Map::default();
        for i in 0..n {
            let k = ObjectKey::from_u64(i);
            map.0
                .insert(k, (1, std::cell::Cell::new(0), std::cell::Cell::new(0)));
            policy.insert(k, 1, &map);
        }
        map
    }

    /// One eviction step that must evict exactly one object (or none); for unit tests.
    pub fn evict_one(policy: &mut dyn Policy, residents: &dyn Residents) -> Option<ObjectKey> {
        let mut v = Vec::new();
        let stepped = policy.evict(residents, &mut v);
        assert_eq!(
            stepped,
            !v.is_empty(),
            "a step evicts one object or reports none"
        );
        assert!(v.len() <= 1, "one step evicted {v:?}");
        v.pop()
    }
}
