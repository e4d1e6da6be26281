//! S3-FIFO (Yang et al., SOSP 2023): a small probationary FIFO, a main FIFO with reinsertion, and
//! a ghost FIFO of recently evicted keys. One-hit wonders leave through the small queue without
//! disturbing the main queue; hits only bump a counter, so the hit path is lock-free.
//!
//! Memory per object: one queue entry (key + generation, 20 bytes) plus the policy word in the
//! tier's entry; the ghost keeps 4-byte fingerprints. No map of its own.

use super::{Policy, Residents};
use crate::key::ObjectKey;
use std::collections::{HashMap, VecDeque};

/// Word layout: bit 31 = in main queue, bits 0..31 = generation (never 0 for a tracked object).
const MAIN: u32 = 1 << 31;
const GEN_MASK: u32 = MAIN - 1;

/// S3-FIFO eviction. Small queue target: 10 % of the tier's bytes; ghost: as many fingerprints as
/// the main queue holds objects.
pub struct S3Fifo {
    small: VecDeque<(ObjectKey, u32)>,
    main: VecDeque<(ObjectKey, u32)>,
    small_bytes: u64,
    main_bytes: u64,
    small_target: u64,
    tracked: usize,
    main_count: usize,
    ghost: VecDeque<u32>,
    ghost_set: HashMap<u32, u16>,
    next_generation: u32,
}

fn fingerprint(key: &ObjectKey) -> u32 {
    u32::from_le_bytes([key.0[12], key.0[13], key.0[14], key.0[15]])
}

impl S3Fifo {
    /// A policy for a tier of `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        S3Fifo {
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_bytes: 0,
            main_bytes: 0,
            small_target: (capacity / 10).max(1),
            tracked: 0,
            main_count: 0,
            ghost: VecDeque::new(),
            ghost_set: HashMap::default(),
            next_generation: 0,
        }
    }

    fn remember_ghost(&mut self, key: &ObjectKey) {
        let fp = fingerprint(key);
        *self.ghost_set.entry(fp).or_insert(0) += 1;
        self.ghost.push_back(fp);
        let limit = self.main_count.max(64);
        while self.ghost.len() > limit {
            if let Some(old) = self.ghost.pop_front()
                && let Some(n) = self.ghost_set.get_mut(&old)
            {
                *n -= 1;
                if *n == 0 {
                    self.ghost_set.remove(&old);
                }
            }
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
                residents.set_access(&key, r.access - 1);
                self.main.push_back((key, generation));
            } else {
                self.main_bytes -= r.size;
                self.main_count -= 1;
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
            if r.access > 0 {
                // Accessed while on probation: promote to main.
                residents.set_access(&key, 0);
                residents.set_word(&key, MAIN | generation);
                self.main_bytes += r.size;
                self.main_count += 1;
                self.main.push_back((key, generation));
            } else {
                self.tracked -= 1;
                self.remember_ghost(&key);
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

    fn insert(&mut self, key: ObjectKey, size: u64, residents: &dyn Residents) {
        let generation = self.generation();
        let to_main = self.ghost_set.contains_key(&fingerprint(&key));
        self.tracked += 1;
        if to_main {
            residents.set_word(&key, MAIN | generation);
            self.main_bytes += size;
            self.main_count += 1;
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
            self.main_count -= 1;
        } else {
            self.small_bytes -= size;
        }
        // Its queue entry is dropped lazily when it reaches the head (the word no longer matches).
    }

    fn evict(&mut self, residents: &dyn Residents) -> Option<ObjectKey> {
        loop {
            if self.tracked == 0 {
                self.small.clear();
                self.main.clear();
                return None;
            }
            let from_small = self.small_bytes >= self.small_target || self.main_bytes == 0;
            let victim = if from_small {
                self.evict_small(residents)
            } else {
                self.evict_main(residents)
            };
            if victim.is_some() {
                return victim;
            }
            if self.small.is_empty() && self.main.is_empty() {
                // Accounting says objects are tracked but no queue entry is live: reset.
                self.tracked = 0;
                self.small_bytes = 0;
                self.main_bytes = 0;
                self.main_count = 0;
                return None;
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
    fn accounting_stays_within_capacity() {
        let reqs: Vec<(u64, u64)> = (0..10_000u64)
            .map(|i| ((i * 7919) % 997, 1 + i % 13))
            .collect();
        let mut p = S3Fifo::new(500);
        simulate(&mut p, 500, &reqs);
        assert!(p.small_bytes + p.main_bytes <= 500);
    }
}
