//! SIEVE (Zhang et al., NSDI 2024): one FIFO list and a hand. A hit only marks the object
//! visited (the tier's access counter, lock-free); eviction moves the hand from the oldest end
//! towards the newest, clearing marks, and evicts the first unvisited object; the hand stays
//! where it stopped and wraps to the oldest end. New objects enter at the newest end.
//!
//! Steps as libCacheSim's `Sieve.c`, so `eddy-sim` reproduces its miss ratios. The policy word
//! is the list node index + 1.

use super::list::Lists;
use super::{Policy, Residents};
use crate::key::ObjectKey;

/// SIEVE eviction.
#[derive(Default)]
pub struct Sieve {
    list: Lists<1>,
    /// Where the next eviction starts looking; `None`: at the oldest end.
    hand: Option<u32>,
}

impl Sieve {
    /// An empty SIEVE.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Policy for Sieve {
    fn name(&self) -> &'static str {
        "sieve"
    }

    fn insert(&mut self, key: ObjectKey, size: u64, residents: &dyn Residents) {
        let i = self.list.push(0, key, size);
        residents.set_word(&key, i + 1);
    }

    fn remove(&mut self, key: &ObjectKey, _size: u64, word: u32) {
        if let Some(i) = self.list.node_of(key, word) {
            if self.hand == Some(i) {
                self.hand = self.list.newer(i);
            }
            self.list.pop_node(i);
        }
    }

    fn evict(&mut self, residents: &dyn Residents, victims: &mut Vec<ObjectKey>) -> bool {
        let Some(mut i) = self.hand.or_else(|| self.list.back(0)) else {
            return false;
        };
        // Every step clears a mark, so this ends within two passes.
        while let Some(r) = residents.get(&self.list.key(i))
            && r.access > 0
        {
            residents.set_access(&self.list.key(i), 0);
            match self.list.newer(i).or_else(|| self.list.back(0)) {
                Some(n) => i = n,
                None => return false,
            }
        }
        self.hand = self.list.newer(i);
        victims.push(self.list.pop_node(i).0);
        true
    }

    fn len(&self) -> usize {
        self.list.len(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::{evict_one, fill};

    #[test]
    fn the_hand_skips_visited_objects_and_stays_put() {
        let mut s = Sieve::new();
        let k = ObjectKey::from_u64;
        let mut map = fill(&mut s, 4);
        // Oldest first: 0 1 2 3. Visit 0 and 2.
        map.0[&k(0)].1.set(1);
        map.0[&k(2)].1.set(1);
        assert_eq!(evict_one(&mut s, &map), Some(k(1)), "0 is visited: skipped");
        assert_eq!(map.0[&k(0)].1.get(), 0, "and its mark cleared");
        map.0.remove(&k(1));
        // The hand is at 2 (visited): it clears 2 and evicts 3.
        assert_eq!(evict_one(&mut s, &map), Some(k(3)));
        map.0.remove(&k(3));
        // The hand wraps to the oldest end: 0 (cleared) goes.
        assert_eq!(evict_one(&mut s, &map), Some(k(0)));
        map.0.remove(&k(0));
        assert_eq!(evict_one(&mut s, &map), Some(k(2)));
        map.0.remove(&k(2));
        assert_eq!(evict_one(&mut s, &map), None);
    }
}
