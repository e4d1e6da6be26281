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
    /// `word` is the object's policy word.
    fn touch(&mut self, _key: &ObjectKey, _word: u32) {}

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
    /// (W-TinyLFU's admission duel can evict from main and then from the window). Pushes
    /// nothing when the policy tracks nothing. The tier repeats steps until the incoming object
    /// fits.
    fn evict(&mut self, residents: &dyn Residents, victims: &mut Vec<ObjectKey>);

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
        let key = ObjectKey::from_u64(id);
        if let Some((_, a, w)) = self.held.0.get(&key) {
            a.set((a.get() + 1).min(3));
            if policy.touch_on_hit() {
                policy.touch(&key, w.get());
            }
            return true;
        }
        if size > self.capacity || !policy.admit(&key, size) {
            return false;
        }
        let mut victims = Vec::new();
        while self.used + size > self.capacity {
            victims.clear();
            policy.evict(&self.held, &mut victims);
            if victims.is_empty() {
                break;
            }
            for victim in &victims {
                if let Some((s, _, _)) = self.held.0.remove(victim) {
                    self.used -= s;
                }
            }
        }
        self.held.0.insert(
            key,
            (size, std::cell::Cell::new(0), std::cell::Cell::new(0)),
        );
        self.used += size;
        policy.insert(key, size, &self.held);
        false
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

    /// One eviction step that must evict exactly one object (or none); for unit tests.
    pub fn evict_one(policy: &mut dyn Policy, residents: &dyn Residents) -> Option<ObjectKey> {
        let mut v = Vec::new();
        policy.evict(residents, &mut v);
        assert!(v.len() <= 1, "one step evicted {v:?}");
        v.pop()
    }
}
