//! S3-FIFO (Yang et al., SOSP 2023): a small probationary FIFO, a main FIFO with reinsertion, and
//! a ghost FIFO of recently evicted keys. One-hit wonders leave through the small queue without
//! disturbing the main queue; hits only bump a counter, so the hit path is lock-free.
//!
//! The parameters and steps are libCacheSim's (`S3FIFO.c`, defaults `fifo-size-ratio=0.10,
//! ghost-size-ratio=0.90, move-to-main-threshold=2`), so `eddy-sim` reproduces its miss ratios:
//!
//! - the small queue gets 10 % of the bytes, main the rest; libCacheSim does not admit an
//!   object larger than the small queue ([`S3Fifo::reference`]); the edge does
//!   ([`S3Fifo::new`]: a video segment larger than a tenth of a small memory tier is still worth
//!   keeping, and leaves through the small queue like any other unless it is hit twice);
//! - a miss whose key is in the ghost goes straight to main, others to the small queue; until
//!   the first eviction (a cold cache filling up), objects that find the small queue full go to
//!   main, so a cache that is not yet full keeps them as long as it can;
//! - eviction takes from main when main is over its share or the small queue is empty, else
//!   from the small queue; an object leaving the small queue with two or more hits moves to
//!   main (counter reset), others are evicted and remembered in the ghost;
//! - an object leaving main with hits goes back to main's tail with one hit fewer (at most 2);
//! - the ghost is a FIFO of 64-bit fingerprints sized in bytes (90 % of the cache), so it
//!   remembers as many objects as a cache of that size would hold.
//!
//! Memory per object: one queue entry (key + generation, 20 bytes) plus the policy word in the
//! tier's entry; the ghost keeps 24 bytes per remembered key. No map for residents.

use super::{Policy, Residents};
use crate::key::ObjectKey;
use std::collections::{HashMap, VecDeque};

/// Word layout: bit 31 = in main queue, bits 0..31 = generation (never 0 for a tracked object).
const MAIN: u32 = 1 << 31;
const GEN_MASK: u32 = MAIN - 1;

/// Hits an object needs in the small queue to move to main.
const MOVE_TO_MAIN: u8 = 2;

/// S3-FIFO eviction.
pub struct S3Fifo {
    small: VecDeque<(ObjectKey, u32)>,
    main: VecDeque<(ObjectKey, u32)>,
    small_bytes: u64,
    main_bytes: u64,
    small_capacity: u64,
    main_capacity: u64,
    tracked: usize,
    ghost: Ghost,
    /// The last admitted key was in the ghost: insert it into main.
    to_main: bool,
    /// Whether anything was evicted yet (before that, a full small queue spills into main).
    has_evicted: bool,
    /// Refuse objects larger than the small queue (libCacheSim's rule).
    refuse_large: bool,
    next_generation: u32,
}

/// A FIFO of fingerprints of evicted keys, bounded by the bytes the keys' objects held.
struct Ghost {
    queue: VecDeque<(u64, u64)>,    // fingerprint, stamp
    live: HashMap<u64, (u64, u64)>, // fingerprint -> (stamp, size) of its live entry
    bytes: u64,
    capacity: u64,
    stamp: u64,
}

impl Ghost {
    fn remember(&mut self, fp: u64, size: u64) {
        if size > self.capacity {
            return;
        }
        while self.bytes + size > self.capacity {
            let Some((old, stamp)) = self.queue.pop_front() else {
                break;
            };
            if let Some(&(live, old_size)) = self.live.get(&old)
                && live == stamp
            {
                self.live.remove(&old);
                self.bytes -= old_size;
            }
        }
        self.stamp += 1;
        if let Some((_, old_size)) = self.live.insert(fp, (self.stamp, size)) {
            // Already remembered (a fingerprint collision): the older entry is dead now.
            self.bytes -= old_size;
        }
        self.queue.push_back((fp, self.stamp));
        self.bytes += size;
    }

    /// Forget `fp`; whether it was remembered. Its queue entry stays until it reaches the
    /// front; its bytes go now.
    fn take(&mut self, fp: u64) -> bool {
        match self.live.remove(&fp) {
            Some((_, size)) => {
                self.bytes -= size;
                if self.queue.len() > 2 * self.live.len() + 64 {
                    // Mostly dead entries: drop them so the queue stays bounded.
                    let live = &self.live;
                    self.queue
                        .retain(|(fp, stamp)| live.get(fp).is_some_and(|e| e.0 == *stamp));
                }
                true
            }
            None => false,
        }
    }
}

fn fingerprint(key: &ObjectKey) -> u64 {
    u64::from_le_bytes([
        key.0[8], key.0[9], key.0[10], key.0[11], key.0[12], key.0[13], key.0[14], key.0[15],
    ])
}

impl S3Fifo {
    /// The edge's S3-FIFO for a tier of `capacity` bytes: libCacheSim's parameters, and objects
    /// larger than the small queue are admitted.
    pub fn new(capacity: u64) -> Self {
        S3Fifo {
            refuse_large: false,
            ..S3Fifo::reference(capacity)
        }
    }

    /// libCacheSim's S3-FIFO exactly, for a tier of `capacity` bytes (objects larger than the
    /// small queue are refused).
    pub fn reference(capacity: u64) -> Self {
        // libCacheSim computes the shares in floating point and truncates.
        let small_capacity = (capacity as f64 * 0.10) as u64;
        S3Fifo {
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_bytes: 0,
            main_bytes: 0,
            small_capacity,
            main_capacity: capacity - small_capacity,
            tracked: 0,
            ghost: Ghost {
                queue: VecDeque::new(),
                live: HashMap::new(),
                bytes: 0,
                capacity: (capacity as f64 * 0.90) as u64,
                stamp: 0,
            },
            to_main: false,
            has_evicted: false,
            refuse_large: true,
            next_generation: 0,
        }
    }

    fn generation(&mut self) -> u32 {
        self.next_generation = (self.next_generation % GEN_MASK) + 1;
        self.next_generation
    }

    fn evict_main(&mut self, residents: &dyn Residents) -> Option<ObjectKey> {
        // Each pass over the main queue decrements counters, so this terminates.
        while let Some((key, generation)) = self.main.pop_front() {
            let Some(r) = residents.get(&key) else {
                continue;
            };
            if r.word != MAIN | generation {
                continue; // replaced or moved since this entry was queued
            }
            if r.access > 0 {
                residents.set_access(&key, r.access.min(3) - 1);
                self.main.push_back((key, generation));
            } else {
                self.main_bytes -= r.size;
                self.tracked -= 1;
                return Some(key);
            }
        }
        None
    }

    fn evict_small(&mut self, residents: &dyn Residents) -> Option<ObjectKey> {
        while let Some((key, generation)) = self.small.pop_front() {
            let Some(r) = residents.get(&key) else {
                continue;
            };
            if r.word != generation {
                continue;
            }
            self.small_bytes -= r.size;
            if r.access >= MOVE_TO_MAIN {
                // Hit enough while on probation: move to main.
                residents.set_access(&key, 0);
                residents.set_word(&key, MAIN | generation);
                self.main_bytes += r.size;
                self.main.push_back((key, generation));
            } else {
                self.tracked -= 1;
                self.ghost.remember(fingerprint(&key), r.size);
                return Some(key);
            }
        }
        None
    }
}

impl Policy for S3Fifo {
    fn name(&self) -> &'static str {
        "s3fifo"
    }

    fn admit(&mut self, key: &ObjectKey, size: u64) -> bool {
        if self.refuse_large && size > self.small_capacity {
            return false;
        }
        self.to_main = self.ghost.take(fingerprint(key));
        true
    }

    fn insert(&mut self, key: ObjectKey, size: u64, residents: &dyn Residents) {
        let generation = self.generation();
        self.tracked += 1;
        let to_main = std::mem::take(&mut self.to_main)
            || (!self.has_evicted && self.small_bytes >= self.small_capacity);
        if to_main {
            residents.set_word(&key, MAIN | generation);
            self.main_bytes += size;
            self.main.push_back((key, generation));
        } else {
            residents.set_word(&key, generation);
            self.small_bytes += size;
            self.small.push_back((key, generation));
        }
    }

    fn remove(&mut self, _key: &ObjectKey, size: u64, word: u32) {
        if word == 0 {
            return;
        }
        self.tracked -= 1;
        if word & MAIN != 0 {
            self.main_bytes -= size;
        } else {
            self.small_bytes -= size;
        }
        // Its queue entry is dropped lazily when it reaches the head (the word no longer matches).
    }

    fn evict(&mut self, residents: &dyn Residents, victims: &mut Vec<ObjectKey>) -> bool {
        self.has_evicted = true;
        loop {
            if self.tracked == 0 {
                self.small.clear();
                self.main.clear();
                return false;
            }
            let from_main = self.main_bytes > self.main_capacity || self.small_bytes == 0;
            let victim = if from_main {
                self.evict_main(residents)
            } else {
                self.evict_small(residents)
            };
            if let Some(v) = victim {
                victims.push(v);
                return true;
            }
            if self.small.is_empty() && self.main.is_empty() {
                // Accounting says objects are tracked but no queue entry is live: reset.
                self.tracked = 0;
                self.small_bytes = 0;
                self.main_bytes = 0;
                return false;
            }
        }
    }

    fn len(&self) -> usize {
        self.tracked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Lru;
    use crate::policy::testing::simulate;

    #[test]
    fn one_hit_wonders_do_not_flush_the_hot_set() {
        // 50 hot objects requested over and over, interleaved with a scan of 10,000 one-hit
        // wonders. LRU loses the hot set to the scan; S3-FIFO keeps it in main.
        let mut reqs = Vec::new();
        let mut cold = 1_000u64;
        for _round in 0..200 {
            for hot in 0..50u64 {
                reqs.push((hot, 1));
            }
            for _ in 0..50 {
                reqs.push((cold, 1));
                cold += 1;
            }
        }
        let s3 = simulate(&mut S3Fifo::new(80), 80, &reqs);
        let lru = simulate(&mut Lru::new(), 80, &reqs);
        // Compulsory misses: 10,000 cold + 50 hot. S3-FIFO stays close to that; LRU misses everything.
        assert!(s3 <= 10_200, "s3fifo misses {s3}");
        assert!(lru > 3 * s3 / 2, "s3fifo misses {s3}, lru misses {lru}");
    }

    #[test]
    fn the_edge_admits_objects_larger_than_the_small_queue_and_libcachesim_does_not() {
        let k = ObjectKey::from_u64(1);
        assert!(S3Fifo::new(1000).admit(&k, 500));
        assert!(!S3Fifo::reference(1000).admit(&k, 500));
        assert!(S3Fifo::reference(1000).admit(&k, 100));
        // Admitted, the large object leaves through the small queue unless it is hit twice.
        let reqs = [(1, 500), (2, 100), (3, 100), (4, 400), (5, 100)];
        let misses = simulate(&mut S3Fifo::new(1000), 1000, &reqs);
        assert_eq!(misses, 5);
    }

    #[test]
    fn accounting_stays_within_capacity() {
        let reqs: Vec<(u64, u64)> = (0..10_000u64)
            .map(|i| ((i * 7919) % 997, 1 + i % 13))
            .collect();
        let mut p = S3Fifo::new(500);
        simulate(&mut p, 500, &reqs);
        assert!(p.small_bytes + p.main_bytes <= 500);
    }
}
