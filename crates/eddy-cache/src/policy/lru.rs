//! Least-recently-used and first-in-first-out eviction, for comparison and as reference
//! policies. LRU reorders on every hit, so a tier using it takes the policy lock on every hit;
//! FIFO never reorders. The object's policy word is its list node index + 1, so neither keeps a
//! map of its own.

use super::list::Lists;
use super::{Policy, Residents};
use crate::key::ObjectKey;

/// LRU (or FIFO) over an index-linked list: O(1) touch, insert, remove and evict.
pub struct Lru {
    list: Lists<1>,
    reorder_on_hit: bool,
}

impl Default for Lru {
    fn default() -> Self {
        Self::new()
    }
}

impl Lru {
    /// An empty LRU: a hit moves the object to the front.
    pub fn new() -> Self {
        Lru {
            list: Lists::default(),
            reorder_on_hit: true,
        }
    }

    /// An empty FIFO: objects leave in the order they came in, whatever their hits.
    pub fn fifo() -> Self {
        Lru {
            list: Lists::default(),
            reorder_on_hit: false,
        }
    }
}

impl Policy for Lru {
    fn name(&self) -> &'static str {
        if self.reorder_on_hit { "lru" } else { "fifo" }
    }

    fn touch_on_hit(&self) -> bool {
        self.reorder_on_hit
    }

    fn touch(&mut self, key: &ObjectKey, word: u32, _victims: &mut Vec<ObjectKey>) {
        if self.reorder_on_hit
            && let Some(i) = self.list.node_of(key, word)
        {
            self.list.move_front(i, 0);
        }
    }

    fn insert(&mut self, key: ObjectKey, size: u64, residents: &dyn Residents) {
        let i = self.list.push(0, key, size);
        residents.set_word(&key, i + 1);
    }

    fn remove(&mut self, key: &ObjectKey, _size: u64, word: u32) {
        if let Some(i) = self.list.node_of(key, word) {
            self.list.pop_node(i);
        }
    }

    fn evict(&mut self, _residents: &dyn Residents, victims: &mut Vec<ObjectKey>) -> bool {
        let Some(i) = self.list.back(0) else {
            return false;
        };
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
    fn evicts_least_recently_used() {
        let mut lru = Lru::new();
        let map = fill(&mut lru, 3);
        let w0 = map.0[&ObjectKey::from_u64(0)].2.get();
        lru.touch(&ObjectKey::from_u64(0), w0, &mut Vec::new());
        assert_eq!(evict_one(&mut lru, &map), Some(ObjectKey::from_u64(1)));
        assert_eq!(evict_one(&mut lru, &map), Some(ObjectKey::from_u64(2)));
        lru.remove(&ObjectKey::from_u64(0), 1, w0);
        assert_eq!(evict_one(&mut lru, &map), None);
    }

    #[test]
    fn fifo_ignores_hits() {
        let mut fifo = Lru::fifo();
        assert!(!fifo.touch_on_hit());
        let map = fill(&mut fifo, 3);
        fifo.touch(
            &ObjectKey::from_u64(0),
            map.0[&ObjectKey::from_u64(0)].2.get(),
            &mut Vec::new(),
        );
        assert_eq!(evict_one(&mut fifo, &map), Some(ObjectKey::from_u64(0)));
        assert_eq!(fifo.name(), "fifo");
    }
}
