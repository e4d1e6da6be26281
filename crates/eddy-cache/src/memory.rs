//! The memory tier: a byte-bounded map of objects, sharded so that a hit takes one shard's read
//! lock and no global lock. Inserts and evictions serialize on the policy lock.

use crate::key::{KeyMap, ObjectKey};
use crate::policy::{AccessCounter, Policy, Resident, Residents};
use crate::store::Object;
use parking_lot::{Mutex, RwLock};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

const SHARDS: usize = 64;

struct Entry {
    object: Arc<Object>,
    access: AccessCounter,
    stale: AtomicBool,
    word: AtomicU32,
}

struct PolicyState {
    policy: Box<dyn Policy>,
    used: u64,
}

/// A memory tier bounded in bytes (body + metadata of each object).
pub struct MemoryTier {
    shards: Box<[RwLock<KeyMap<Entry>>]>,
    state: Mutex<PolicyState>,
    capacity: u64,
    max_object: u64,
    touch_on_hit: bool,
    used: AtomicU64,
    evictions: AtomicU64,
}

struct View<'a>(&'a [RwLock<KeyMap<Entry>>]);

impl Residents for View<'_> {
    fn get(&self, key: &ObjectKey) -> Option<Resident> {
        self.0[key.shard(SHARDS)].read().get(key).map(|e| Resident {
            size: e.object.weight(),
            access: e.access.get(),
            word: e.word.load(Ordering::Relaxed),
        })
    }
    fn set_word(&self, key: &ObjectKey, word: u32) {
        if let Some(e) = self.0[key.shard(SHARDS)].read().get(key) {
            e.word.store(word, Ordering::Relaxed);
        }
    }
    fn set_access(&self, key: &ObjectKey, value: u8) {
        if let Some(e) = self.0[key.shard(SHARDS)].read().get(key) {
            e.access.set(value);
        }
    }
}

impl MemoryTier {
    /// A tier of `capacity` bytes evicting with `policy`; objects above `max_object` bytes are
    /// not kept in memory.
    pub fn new(capacity: u64, max_object: u64, policy: Box<dyn Policy>) -> Self {
        let touch_on_hit = policy.touch_on_hit();
        MemoryTier {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(KeyMap::default()))
                .collect(),
            state: Mutex::new(PolicyState { policy, used: 0 }),
            capacity,
            max_object: max_object.min(capacity),
            touch_on_hit,
            used: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// Look an object up. Returns the object and whether it was soft-purged.
    #[inline]
    pub fn get(&self, key: &ObjectKey) -> Option<(Arc<Object>, bool)> {
        let (object, stale, word) = {
            let shard = self.shards[key.shard(SHARDS)].read();
            let e = shard.get(key)?;
            e.access.bump();
            (
                e.object.clone(),
                e.stale.load(Ordering::Relaxed),
                e.word.load(Ordering::Relaxed),
            )
        };
        if self.touch_on_hit {
            let mut st = self.state.lock();
            let mut victims = Vec::new();
            st.policy.touch(key, word, &mut victims);
            if !victims.is_empty() {
                let mut evicted = Vec::new();
                self.drop_victims(&mut st, &mut victims, &mut evicted);
                self.evictions
                    .fetch_add(evicted.len() as u64, Ordering::Relaxed);
                self.used.store(st.used, Ordering::Relaxed);
            }
        }
        Some((object, stale))
    }

    /// Whether the tier holds `key`.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        self.shards[key.shard(SHARDS)].read().contains_key(key)
    }

    /// Store an object, replacing any previous one under `key`. Returns the keys evicted to make
    /// room. An object too large for this tier is not stored (and any old copy is removed).
    pub fn insert(&self, key: ObjectKey, object: Arc<Object>) -> Vec<ObjectKey> {
        let size = object.weight();
        let mut evicted = Vec::new();
        let mut st = self.state.lock();
        let old = self.shards[key.shard(SHARDS)].write().remove(&key);
        if let Some(old) = old {
            let size = old.object.weight();
            st.used -= size;
            st.policy
                .remove(&key, size, old.word.load(Ordering::Relaxed));
        }
        st.policy.hint(&key, object.hint);
        if size > self.max_object || !st.policy.admit(&key, size) {
            self.used.store(st.used, Ordering::Relaxed);
            return evicted;
        }
        // Evict before inserting, as libCacheSim does, so the policy sees the cache as it was
        // when the request missed.
        let view = View(&self.shards);
        let mut victims = Vec::new();
        while st.used + size > self.capacity {
            if !st.policy.evict(&view, &mut victims) {
                break;
            }
            self.drop_victims(&mut st, &mut victims, &mut evicted);
        }
        self.shards[key.shard(SHARDS)].write().insert(
            key,
            Entry {
                object,
                access: AccessCounter::default(),
                stale: AtomicBool::new(false),
                word: AtomicU32::new(0),
            },
        );
        st.used += size;
        st.policy.insert(key, size, &view);
        self.evictions
            .fetch_add(evicted.len() as u64, Ordering::Relaxed);
        self.used.store(st.used, Ordering::Relaxed);
        evicted
    }

    /// Remove the entries of objects the policy evicted (draining `victims`) and note them in
    /// `evicted`.
    fn drop_victims(
        &self,
        st: &mut PolicyState,
        victims: &mut Vec<ObjectKey>,
        evicted: &mut Vec<ObjectKey>,
    ) {
        for victim in victims.drain(..) {
            if let Some(e) = self.shards[victim.shard(SHARDS)].write().remove(&victim) {
                st.used -= e.object.weight();
                evicted.push(victim);
            }
        }
    }

    /// Remove an object. Returns whether it was present.
    pub fn remove(&self, key: &ObjectKey) -> bool {
        let mut st = self.state.lock();
        let old = self.shards[key.shard(SHARDS)].write().remove(key);
        match old {
            Some(e) => {
                let size = e.object.weight();
                st.used -= size;
                st.policy.remove(key, size, e.word.load(Ordering::Relaxed));
                self.used.store(st.used, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Mark an object stale (soft purge). Returns whether it was present.
    pub fn mark_stale(&self, key: &ObjectKey) -> bool {
        match self.shards[key.shard(SHARDS)].read().get(key) {
            Some(e) => {
                e.stale.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Keys of the objects for which `pred` holds (a scan of every shard, for prefix purges).
    pub fn matching(&self, pred: impl Fn(&Object) -> bool) -> Vec<ObjectKey> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(
                shard
                    .read()
                    .iter()
                    .filter(|(_, e)| pred(&e.object))
                    .map(|(k, _)| *k),
            );
        }
        out
    }

    /// Bytes in use.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    /// Whether the tier is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Evictions so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Lru, S3Fifo};
    use crate::store::Tags;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn obj(n: usize) -> Arc<Object> {
        Arc::new(Object::new(
            Bytes::new(),
            Bytes::from(vec![0u8; n]),
            Tags::new("/x", ObjectKey::default(), [] as [&str; 0]),
            0,
        ))
    }

    proptest! {
        /// Whatever the sequence of inserts and removes, the tier never holds more bytes than its
        /// capacity and its byte count matches what it holds.
        #[test]
        fn never_exceeds_capacity(ops in proptest::collection::vec((0u64..64, 0usize..300, any::<bool>()), 1..400),
                                  which in 0usize..6) {
            let name = ["s3fifo", "lru", "fifo", "sieve", "arc", "wtinylfu"][which];
            let tier = MemoryTier::new(2000, 2000, crate::policy::by_name(name, 2000).unwrap_or_else(|_| Box::new(Lru::new())));
            for (id, size, remove) in ops {
                let k = ObjectKey::from_u64(id);
                if remove { tier.remove(&k); } else { tier.insert(k, obj(size)); }
                let _ = tier.get(&ObjectKey::from_u64(id / 2));
                prop_assert!(tier.used() <= tier.capacity());
                let sum: u64 = tier.shards.iter().flat_map(|s| s.read().values().map(|e| e.object.weight()).collect::<Vec<_>>()).sum();
                prop_assert_eq!(sum, tier.used());
                // The policy tracks exactly the objects the tier holds.
                let held: usize = tier.shards.iter().map(|s| s.read().len()).sum();
                prop_assert_eq!(tier.state.lock().policy.len(), held, "{}", name);
            }
        }
    }

    #[test]
    fn soft_purge_marks_stale() {
        let tier = MemoryTier::new(1 << 20, 1 << 20, Box::new(S3Fifo::new(1 << 20)));
        let k = ObjectKey::from_u64(1);
        tier.insert(k, obj(10));
        assert!(!tier.get(&k).map(|(_, s)| s).unwrap_or(true));
        assert!(tier.mark_stale(&k));
        assert!(tier.get(&k).map(|(_, s)| s).unwrap_or(false));
        // A new version replaces the stale one.
        tier.insert(k, obj(10));
        assert!(!tier.get(&k).map(|(_, s)| s).unwrap_or(true));
    }
}
