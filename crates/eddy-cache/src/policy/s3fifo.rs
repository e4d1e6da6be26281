//! S3-FIFO (Yang et al., SOSP 2023): a small probationary FIFO, a main FIFO with reinsertion, and
//! a ghost FIFO of recently evicted keys. One-hit wonders leave through the small queue without
//! disturbing the main queue; hits only bump a counter, so the hit path is lock-free.

use super::{Policy, Residents};
use crate::key::{KeyMap, ObjectKey};
use std::collections::VecDeque;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

#[derive(Clone, Copy)]
struct Slot {
    size: u64,
    queue: Queue,
    generation: u32,
}

/// S3-FIFO eviction. Small queue target: 10 % of the tier's bytes.
pub struct S3Fifo {
    slots: KeyMap<Slot>,
    small: VecDeque<(ObjectKey, u32)>,
    main: VecDeque<(ObjectKey, u32)>,
    small_bytes: u64,
    main_bytes: u64,
    small_target: u64,
    ghost: VecDeque<ObjectKey>,
    ghost_set: KeyMap<u32>,
    next_generation: u32,
}

impl S3Fifo {
    /// A policy for a tier of `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        S3Fifo {
            slots: KeyMap::default(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_bytes: 0,
            main_bytes: 0,
            small_target: (capacity / 10).max(1),
            ghost: VecDeque::new(),
            ghost_set: KeyMap::default(),
            next_generation: 0,
        }
    }

    fn remember_ghost(&mut self, key: ObjectKey) {
        *self.ghost_set.entry(key).or_insert(0) += 1;
        self.ghost.push_back(key);
        // The ghost queue remembers about as many keys as the main queue holds objects.
        let limit = self.slots.len().max(64);
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

    fn live(&self, key: &ObjectKey, generation: u32, queue: Queue) -> Option<Slot> {
        self.slots
            .get(key)
            .copied()
            .filter(|s| s.generation == generation && s.queue == queue)
    }

    fn evict_main(&mut self, residents: &dyn Residents) -> Option<ObjectKey> {
        // Each pass over the main queue decrements counters, so this terminates.
        while let Some((key, generation)) = self.main.pop_front() {
            let Some(slot) = self.live(&key, generation, Queue::Main) else {
                continue;
            };
            match residents.access(&key) {
                Some(c) if c > 0 => {
                    residents.set_access(&key, c - 1);
                    self.main.push_back((key, generation));
                }
                _ => {
                    self.slots.remove(&key);
                    self.main_bytes -= slot.size;
                    return Some(key);
                }
            }
        }
        None
    }

    fn evict_small(&mut self, residents: &dyn Residents) -> Option<ObjectKey> {
        while let Some((key, generation)) = self.small.pop_front() {
            let Some(slot) = self.live(&key, generation, Queue::Small) else {
                continue;
            };
            self.small_bytes -= slot.size;
            match residents.access(&key) {
                Some(c) if c > 0 => {
                    // Accessed while on probation: promote to main.
                    residents.set_access(&key, 0);
                    if let Some(s) = self.slots.get_mut(&key) {
                        s.queue = Queue::Main;
                    }
                    self.main_bytes += slot.size;
                    self.main.push_back((key, generation));
                }
                _ => {
                    self.slots.remove(&key);
                    self.remember_ghost(key);
                    return Some(key);
                }
            }
        }
        None
    }
}

impl Policy for S3Fifo {
    fn name(&self) -> &'static str {
        "s3fifo"
    }

    fn insert(&mut self, key: ObjectKey, size: u64, _residents: &dyn Residents) {
        if let Some(old) = self.slots.remove(&key) {
            match old.queue {
                Queue::Small => self.small_bytes -= old.size,
                Queue::Main => self.main_bytes -= old.size,
            }
        }
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let queue = if self.ghost_set.contains_key(&key) {
            Queue::Main
        } else {
            Queue::Small
        };
        self.slots.insert(
            key,
            Slot {
                size,
                queue,
                generation,
            },
        );
        match queue {
            Queue::Small => {
                self.small_bytes += size;
                self.small.push_back((key, generation));
            }
            Queue::Main => {
                self.main_bytes += size;
                self.main.push_back((key, generation));
            }
        }
    }

    fn remove(&mut self, key: &ObjectKey) {
        if let Some(old) = self.slots.remove(key) {
            match old.queue {
                Queue::Small => self.small_bytes -= old.size,
                Queue::Main => self.main_bytes -= old.size,
            }
        }
        // Queue entries are dropped lazily when they reach the head.
    }

    fn evict(&mut self, residents: &dyn Residents) -> Option<ObjectKey> {
        loop {
            if self.slots.is_empty() {
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
            // The chosen queue only held promotions or dead entries; try again (the other queue
            // now has bytes, or the map is empty).
        }
    }

    fn len(&self) -> usize {
        self.slots.len()
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
