//! ARC (Megiddo and Modha, FAST 2003), sized in bytes: T1 holds objects seen once recently, T2
//! objects seen at least twice; B1 and B2 remember keys recently evicted from each. A miss that
//! finds its key in B1 grows T1's target `p`, one in B2 shrinks it, and REPLACE evicts from T1
//! or T2 according to `p`. Every hit reorders, so a tier using ARC takes the policy lock on
//! every hit.
//!
//! Steps as libCacheSim's `ARC.c` (byte sizes, the ghost check before eviction, case IV's ghost
//! trimming), so `eddy-sim` reproduces its miss ratios. The policy word of a resident object is
//! its node index + 1; ghost keys are found through a map of their own.

use super::list::Lists;
use super::{Policy, Residents};
use crate::key::{KeyMap, ObjectKey};

const T1: usize = 0;
const T2: usize = 1;
const B1: usize = 2;
const B2: usize = 3;

/// ARC eviction.
pub struct Arc {
    lists: Lists<4>,
    ghosts: KeyMap<u32>,
    capacity: u64,
    /// Target bytes for T1.
    p: f64,
    /// The object being admitted was found in this ghost list.
    ghost_hit: Option<usize>,
    /// Size of the object being admitted.
    incoming: u64,
}

impl Arc {
    /// A policy for a tier of `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        Arc {
            lists: Lists::default(),
            ghosts: KeyMap::default(),
            capacity,
            p: 0.0,
            ghost_hit: None,
            incoming: 0,
        }
    }

    /// Move the oldest object of `from` (T1 or T2) to the front of its ghost list.
    fn demote(&mut self, from: usize, victims: &mut Vec<ObjectKey>) {
        if let Some(i) = self.lists.back(from) {
            let key = self.lists.key(i);
            self.lists.move_front(i, from + 2);
            self.ghosts.insert(key, i);
            victims.push(key);
        }
    }

    fn forget_oldest_ghost(&mut self, list: usize) {
        if let Some(i) = self.lists.back(list) {
            let (key, _) = self.lists.pop_node(i);
            self.ghosts.remove(&key);
        }
    }

    /// REPLACE from the paper, with libCacheSim's tie rule.
    fn replace(&mut self, victims: &mut Vec<ObjectKey>) {
        let t1 = self.lists.bytes(T1) as f64;
        let from_t1 = (t1 > 0.0 && (t1 > self.p || (t1 == self.p && self.ghost_hit == Some(B2))))
            || self.lists.bytes(T2) == 0;
        self.demote(if from_t1 { T1 } else { T2 }, victims);
    }
}

impl Policy for Arc {
    fn name(&self) -> &'static str {
        "arc"
    }

    fn touch_on_hit(&self) -> bool {
        true
    }

    fn touch(&mut self, key: &ObjectKey, word: u32, _victims: &mut Vec<ObjectKey>) {
        if let Some(i) = self.lists.node_of(key, word)
            && self.lists.list_of(i) <= T2
        {
            self.lists.move_front(i, T2);
        }
    }

    fn admit(&mut self, key: &ObjectKey, size: u64) -> bool {
        self.incoming = size;
        self.ghost_hit = None;
        if let Some(i) = self.ghosts.remove(key) {
            let (b1, b2) = (self.lists.bytes(B1) as f64, self.lists.bytes(B2) as f64);
            let list = self.lists.list_of(i);
            if list == B1 {
                self.p = (self.p + (b2 / b1).max(1.0)).min(self.capacity as f64);
            } else {
                self.p = (self.p - (b1 / b2).max(1.0)).max(0.0);
            }
            self.lists.pop_node(i);
            self.ghost_hit = Some(list);
        }
        true
    }

    fn insert(&mut self, key: ObjectKey, size: u64, residents: &dyn Residents) {
        if let Some(i) = self.ghosts.remove(&key) {
            self.lists.pop_node(i); // stored without admit (a disk index rebuild)
        }
        let list = if self.ghost_hit.take().is_some() {
            T2
        } else {
            T1
        };
        self.incoming = 0;
        let i = self.lists.push(list, key, size);
        residents.set_word(&key, i + 1);
    }

    fn remove(&mut self, key: &ObjectKey, _size: u64, word: u32) {
        if let Some(i) = self.lists.node_of(key, word)
            && self.lists.list_of(i) <= T2
        {
            self.lists.pop_node(i);
        }
    }

    fn evict(&mut self, _residents: &dyn Residents, victims: &mut Vec<ObjectKey>) -> bool {
        let before = victims.len();
        if self.ghost_hit.is_some() {
            self.replace(victims);
        } else {
            // Case IV: a miss in all four lists.
            let (t1, b1) = (self.lists.bytes(T1), self.lists.bytes(B1));
            if t1 + b1 + self.incoming > self.capacity {
                if b1 > 0 {
                    self.forget_oldest_ghost(B1);
                    self.replace(victims);
                } else if let Some(i) = self.lists.back(T1) {
                    victims.push(self.lists.pop_node(i).0);
                } else {
                    self.replace(victims);
                }
            } else {
                let all = t1 + b1 + self.lists.bytes(T2) + self.lists.bytes(B2);
                if all >= 2 * self.capacity && self.lists.bytes(B2) > 0 {
                    self.forget_oldest_ghost(B2);
                }
                self.replace(victims);
            }
        }
        victims.len() > before
    }

    fn len(&self) -> usize {
        self.lists.len(T1) + self.lists.len(T2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::simulate;

    #[test]
    fn a_scan_does_not_flush_objects_seen_twice() {
        // 20 objects requested twice, then a long scan of one-time objects, then the 20 again:
        // they sit in T2 and survive the scan, which LRU would not.
        let mut reqs: Vec<(u64, u64)> = (0..20).chain(0..20).map(|i| (i, 1)).collect();
        reqs.extend((1000..3000).map(|i| (i, 1)));
        reqs.extend((0..20).map(|i| (i, 1)));
        let arc = simulate(&mut Arc::new(40), 40, &reqs);
        let lru = simulate(&mut crate::policy::Lru::new(), 40, &reqs);
        assert_eq!(arc, 20 + 2000, "only compulsory misses");
        assert_eq!(lru, 20 + 2000 + 20);
    }

    #[test]
    fn ghost_hits_move_the_target() {
        let mut a = Arc::new(4);
        let mut r = super::super::Replay::new(4);
        // 0 twice (into T2), then 1, 2, 3 (T1): full. A miss on 4 (case IV with room for
        // the ghosts) demotes T1's oldest, 1, to B1.
        for (id, hit) in [
            (0, false),
            (0, true),
            (1, false),
            (2, false),
            (3, false),
            (4, false),
        ] {
            assert_eq!(r.request(&mut a, id, 1), hit, "object {id}");
        }
        assert_eq!((a.p, a.lists.len(B1)), (0.0, 1));
        // A miss on 1 finds it in B1: p grows by max(|B2| / |B1|, 1), REPLACE demotes 2, and
        // 1 enters T2.
        assert!(!r.request(&mut a, 1, 1));
        assert_eq!(a.p, 1.0);
        assert_eq!(
            (a.lists.len(T1), a.lists.len(T2), a.lists.len(B1)),
            (2, 2, 1)
        );
        // A hit in T1 moves the object to T2.
        assert!(r.request(&mut a, 4, 1));
        assert_eq!(a.lists.len(T2), 3);
    }
}
