//! Least-recently-used eviction, for comparison. Every hit reorders the list, so a tier using it
//! takes the policy lock on every hit. The object's policy word is its list node index + 1, so
//! LRU keeps no map of its own.

use super::{Policy, Residents};
use crate::key::ObjectKey;

const NIL: u32 = u32::MAX;

struct Node {
    key: ObjectKey,
    prev: u32,
    next: u32,
}

/// LRU over an index-linked list in a slab: O(1) touch, insert, remove and evict.
pub struct Lru {
    nodes: Vec<Node>,
    free: Vec<u32>,
    len: usize,
    head: u32, // most recent
    tail: u32, // least recent
}

impl Default for Lru {
    fn default() -> Self {
        Self::new()
    }
}

impl Lru {
    /// An empty LRU.
    pub fn new() -> Self {
        Lru {
            nodes: Vec::new(),
            free: Vec::new(),
            len: 0,
            head: NIL,
            tail: NIL,
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        self.nodes[i as usize].prev = NIL;
        self.nodes[i as usize].next = self.head;
        if self.head != NIL {
            self.nodes[self.head as usize].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    fn node_of(&self, key: &ObjectKey, word: u32) -> Option<u32> {
        let i = word.checked_sub(1)?;
        (self.nodes.get(i as usize)?.key == *key).then_some(i)
    }
}

impl Policy for Lru {
    fn name(&self) -> &'static str {
        "lru"
    }

    fn touch_on_hit(&self) -> bool {
        true
    }

    fn touch(&mut self, key: &ObjectKey, word: u32) {
        if let Some(i) = self.node_of(key, word) {
            self.unlink(i);
            self.push_front(i);
        }
    }

    fn insert(&mut self, key: ObjectKey, _size: u64, residents: &dyn Residents) {
        let node = Node {
            key,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.len += 1;
        self.push_front(i);
        residents.set_word(&key, i + 1);
    }

    fn remove(&mut self, key: &ObjectKey, _size: u64, word: u32) {
        if let Some(i) = self.node_of(key, word) {
            self.unlink(i);
            self.free.push(i);
            self.len -= 1;
        }
    }

    fn evict(&mut self, _residents: &dyn Residents) -> Option<ObjectKey> {
        if self.tail == NIL {
            return None;
        }
        let i = self.tail;
        let key = self.nodes[i as usize].key;
        self.unlink(i);
        self.free.push(i);
        self.len -= 1;
        Some(key)
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::Map;
    use std::cell::Cell;

    #[test]
    fn evicts_least_recently_used() {
        let mut map = Map::default();
        let mut lru = Lru::new();
        for i in 0..3 {
            map.0
                .insert(ObjectKey::from_u64(i), (1, Cell::new(0), Cell::new(0)));
            lru.insert(ObjectKey::from_u64(i), 1, &map);
        }
        let w0 = map.0[&ObjectKey::from_u64(0)].2.get();
        lru.touch(&ObjectKey::from_u64(0), w0);
        assert_eq!(lru.evict(&map), Some(ObjectKey::from_u64(1)));
        assert_eq!(lru.evict(&map), Some(ObjectKey::from_u64(2)));
        lru.remove(&ObjectKey::from_u64(0), 1, w0);
        assert_eq!(lru.evict(&map), None);
    }
}
