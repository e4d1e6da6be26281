//! Eviction policies.
//!
//! A [`Policy`] decides which resident object leaves a tier when the tier is over its byte
//! budget. The tier owns the objects and their byte accounting; the policy owns only ordering
//! state. Each resident object carries a small access counter ([`AccessCounter`]) that the hit path
//! bumps without any lock; CLOCK-family policies such as S3-FIFO read it only when they evict.
//! Policies that need an ordered update on every hit (LRU) say so with [`Policy::touch_on_hit`],
//! and the tier then calls [`Policy::touch`] under the policy lock.

mod lru;
mod s3fifo;

pub use lru::Lru;
pub use s3fifo::S3Fifo;

use crate::CacheError;
use crate::key::ObjectKey;
use std::sync::atomic::{AtomicU8, Ordering};

/// The per-object access counter the hit path bumps. Saturates at 3 (two bits of information, as
/// in S3-FIFO).
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

/// How a policy reads and writes the access counters of resident objects while it evicts.
pub trait Residents {
    /// The access count of a resident object, or `None` if the tier no longer holds it.
    fn access(&self, key: &ObjectKey) -> Option<u8>;
    /// Overwrite the access count of a resident object (no-op if it is gone).
    fn set_access(&self, key: &ObjectKey, value: u8);
}

/// An eviction policy for one tier. All methods except [`Policy::touch`] run on the insert /
/// remove path under the tier's policy lock, never on the hit path.
pub trait Policy: Send {
    /// Short name for logs and metrics (`"s3fifo"`, `"lru"`).
    fn name(&self) -> &'static str;

    /// Whether every hit must call [`Policy::touch`] (true for LRU). When false, a hit only bumps
    /// the object's [`AccessCounter`] and takes no lock.
    fn touch_on_hit(&self) -> bool {
        false
    }

    /// Record a hit in the policy's own ordering (only called when `touch_on_hit` is true).
    fn touch(&mut self, _key: &ObjectKey) {}

    /// A new object of `size` bytes became resident. The key is not resident before this call.
    fn insert(&mut self, key: ObjectKey, size: u64, residents: &dyn Residents);

    /// An object left the tier for a reason other than eviction (purge, replacement, corruption).
    fn remove(&mut self, key: &ObjectKey);

    /// Choose the next object to evict and forget it. `None` when the policy tracks nothing.
    /// The tier calls this until it is back under budget.
    fn evict(&mut self, residents: &dyn Residents) -> Option<ObjectKey>;

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
        other => Err(CacheError::UnknownPolicy(other.to_string())),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::key::KeyMap;

    /// A resident set for driving policies in unit tests and simulations.
    #[derive(Default)]
    pub struct Map(pub KeyMap<(u64, AccessCounter)>);

    impl Residents for Map {
        fn access(&self, key: &ObjectKey) -> Option<u8> {
            self.0.get(key).map(|(_, c)| c.get())
        }
        fn set_access(&self, key: &ObjectKey, value: u8) {
            if let Some((_, c)) = self.0.get(key) {
                c.set(value);
            }
        }
    }

    /// Run a request sequence of (id, size) through `policy` with a byte budget; return misses.
    pub fn simulate(policy: &mut dyn Policy, capacity: u64, reqs: &[(u64, u64)]) -> usize {
        let mut map = Map::default();
        let mut used = 0u64;
        let mut misses = 0;
        for &(id, size) in reqs {
            let key = ObjectKey::from_u64(id);
            if let Some((_, c)) = map.0.get(&key) {
                c.bump();
                if policy.touch_on_hit() {
                    policy.touch(&key);
                }
                continue;
            }
            misses += 1;
            if size > capacity {
                continue;
            }
            map.0.insert(key, (size, AccessCounter::default()));
            used += size;
            policy.insert(key, size, &map);
            while used > capacity {
                let Some(victim) = policy.evict(&map) else {
                    break;
                };
                if let Some((s, _)) = map.0.remove(&victim) {
                    used -= s;
                }
            }
        }
        misses
    }
}
