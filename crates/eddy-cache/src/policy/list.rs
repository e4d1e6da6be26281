//! Index-linked lists in one slab, shared by the list-based policies (LRU, FIFO, SIEVE, ARC,
//! W-TinyLFU). A node lives in exactly one of `N` lists at a time; moving it between lists is
//! O(1) and allocates nothing. The policy word of a resident object is its node index + 1 (0
//! means untracked), so a policy finds its node without a map of its own; the node keeps its key
//! so a stale word (the object was replaced) is detected rather than followed.
//!
//! The front of a list is its newest end (libCacheSim's "head"), the back its oldest ("tail").

use crate::key::ObjectKey;

/// "No node".
pub(crate) const NIL: u32 = u32::MAX;

struct Node {
    key: ObjectKey,
    size: u64,
    prev: u32,
    next: u32,
    list: u8,
}

#[derive(Clone, Copy)]
struct Ends {
    front: u32,
    back: u32,
    len: usize,
    bytes: u64,
}

const EMPTY: Ends = Ends {
    front: NIL,
    back: NIL,
    len: 0,
    bytes: 0,
};

/// `N` doubly linked lists over one slab of nodes.
pub(crate) struct Lists<const N: usize> {
    nodes: Vec<Node>,
    free: Vec<u32>,
    ends: [Ends; N],
}

impl<const N: usize> Default for Lists<N> {
    fn default() -> Self {
        Lists {
            nodes: Vec::new(),
            free: Vec::new(),
            ends: [EMPTY; N],
        }
    }
}

impl<const N: usize> Lists<N> {
    /// A new node for `key` at the front of `list`; returns its index.
    pub(crate) fn push(&mut self, list: usize, key: ObjectKey, size: u64) -> u32 {
        let node = Node {
            key,
            size,
            prev: NIL,
            next: NIL,
            list: list as u8,
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
        self.link_front(list, i);
        i
    }

    /// Unlink node `i` and free it; returns its key and size.
    pub(crate) fn pop_node(&mut self, i: u32) -> (ObjectKey, u64) {
        self.unlink(i);
        self.free.push(i);
        let n = &self.nodes[i as usize];
        (n.key, n.size)
    }

    /// Move node `i` to the front of `list` (its own list or another).
    pub(crate) fn move_front(&mut self, i: u32, list: usize) {
        self.unlink(i);
        self.link_front(list, i);
    }

    /// The node a policy word names, if it still belongs to `key`.
    pub(crate) fn node_of(&self, key: &ObjectKey, word: u32) -> Option<u32> {
        let i = word.checked_sub(1)?;
        let n = self.nodes.get(i as usize)?;
        (n.key == *key && n.list != FREED).then_some(i)
    }

    /// Oldest node of `list`.
    pub(crate) fn back(&self, list: usize) -> Option<u32> {
        some(self.ends[list].back)
    }

    /// The next newer node after `i` in its list.
    pub(crate) fn newer(&self, i: u32) -> Option<u32> {
        some(self.nodes[i as usize].prev)
    }

    /// Key of node `i`.
    pub(crate) fn key(&self, i: u32) -> ObjectKey {
        self.nodes[i as usize].key
    }

    /// Size of node `i`.
    pub(crate) fn size(&self, i: u32) -> u64 {
        self.nodes[i as usize].size
    }

    /// Which list node `i` is in.
    pub(crate) fn list_of(&self, i: u32) -> usize {
        usize::from(self.nodes[i as usize].list)
    }

    /// Nodes in `list`.
    pub(crate) fn len(&self, list: usize) -> usize {
        self.ends[list].len
    }

    /// Bytes in `list`.
    pub(crate) fn bytes(&self, list: usize) -> u64 {
        self.ends[list].bytes
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next, list, size) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next, usize::from(n.list), n.size)
        };
        let ends = &mut self.ends[list];
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            ends.front = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        } else {
            ends.back = prev;
        }
        ends.len -= 1;
        ends.bytes -= size;
        let n = &mut self.nodes[i as usize];
        n.prev = NIL;
        n.next = NIL;
        n.list = FREED;
    }

    fn link_front(&mut self, list: usize, i: u32) {
        let ends = &mut self.ends[list];
        let old = ends.front;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = NIL;
            n.next = old;
            n.list = list as u8;
            ends.len += 1;
            ends.bytes += n.size;
        }
        if old != NIL {
            self.nodes[old as usize].prev = i;
        } else {
            ends.back = i;
        }
        ends.front = i;
    }
}

/// The list tag of a node that is in no list (freed, or between unlink and link).
const FREED: u8 = u8::MAX;

fn some(i: u32) -> Option<u32> {
    (i != NIL).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_move_between_lists_and_keep_the_byte_counts() {
        let mut l: Lists<2> = Lists::default();
        let k = ObjectKey::from_u64;
        let a = l.push(0, k(1), 10);
        let b = l.push(0, k(2), 20);
        let c = l.push(0, k(3), 30);
        assert_eq!((l.len(0), l.bytes(0)), (3, 60));
        assert_eq!(l.back(0), Some(a));
        assert_eq!(l.newer(a), Some(b));
        l.move_front(a, 1);
        assert_eq!((l.len(0), l.bytes(0), l.len(1), l.bytes(1)), (2, 50, 1, 10));
        assert_eq!(l.back(0), Some(b));
        assert_eq!(l.list_of(a), 1);
        assert_eq!(l.pop_node(b), (k(2), 20));
        assert_eq!(l.node_of(&k(2), b + 1), None, "a freed node is no one's");
        assert_eq!(l.node_of(&k(3), c + 1), Some(c));
        assert_eq!(l.node_of(&k(4), c + 1), None, "another key's word");
        let d = l.push(1, k(5), 5);
        assert_eq!(d, b, "the slab reuses freed nodes");
        assert_eq!(l.back(1), Some(a));
        assert_eq!(l.newer(a), Some(d));
        assert_eq!(l.newer(d), None);
    }
}
