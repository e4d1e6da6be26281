//! The offline optimum, for the bottom row of every miss-ratio table: Belady's MIN, which knows
//! each request's next access ([`Request::next`]).
//!
//! - [`belady`]: on a miss, store the object (unless it is larger than the cache), evicting the
//!   objects whose next access is furthest away (never comes first). With every size 1 this is
//!   exact MIN, the fewest misses any cache of that many objects can have; it reproduces
//!   libCacheSim's `Belady`. With byte sizes it is libCacheSim's heuristic (not optimal when sizes
//!   differ); among objects never requested again it evicts the largest first.
//! - [`belady_size`]: size-aware: an object never requested again is not stored, a hit that is
//!   the object's last request drops it, and eviction takes the object with the largest
//!   `size × distance to its next access` (libCacheSim's `BeladySize` scored exactly; above
//!   4,096 residents the score is taken over a fixed-seed sample of 256, as libCacheSim samples).

use std::collections::{BinaryHeap, HashMap};

use crate::run::Outcome;
use crate::trace::Request;

const NEVER: u64 = u64::MAX;

/// Belady's MIN over a cache of `capacity` bytes (or objects, for a trace of unit sizes).
pub fn belady(trace: &[Request], capacity: u64) -> Outcome {
    // Resident object -> (its next access, size). The heap holds (next access, size, id) with
    // lazy deletion: an entry is live while it matches the object's current next access.
    let mut resident: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut heap: BinaryHeap<(u64, u64, u64)> = BinaryHeap::new();
    let mut used = 0u64;
    let mut out = Outcome::default();
    for r in trace {
        let size = u64::from(r.size);
        let next = r.next.unwrap_or(NEVER);
        out.requests += 1;
        out.bytes += size;
        if let Some(e) = resident.get_mut(&r.id) {
            e.0 = next;
            heap.push((next, e.1, r.id));
            continue;
        }
        out.misses += 1;
        out.missed_bytes += size;
        if size > capacity {
            continue;
        }
        while used + size > capacity {
            let Some((n, _, id)) = heap.pop() else { break };
            if resident.get(&id).is_some_and(|e| e.0 == n)
                && let Some((_, s)) = resident.remove(&id)
            {
                used -= s;
            }
        }
        resident.insert(r.id, (next, size));
        heap.push((next, size, r.id));
        used += size;
        // Keep the heap from filling with dead entries on hit-heavy traces.
        if heap.len() > 4 * resident.len() + 1024 {
            heap = resident.iter().map(|(&id, &(n, s))| (n, s, id)).collect();
        }
    }
    out
}

/// Size-aware Belady over a cache of `capacity` bytes.
pub fn belady_size(trace: &[Request], capacity: u64) -> Outcome {
    // Residents in a vector for scoring; object -> index in it.
    let mut slots: Vec<(u64, u64, u64)> = Vec::new(); // id, next, size
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut used = 0u64;
    let mut out = Outcome::default();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for (now, r) in trace.iter().enumerate() {
        let now = now as u64;
        let size = u64::from(r.size);
        out.requests += 1;
        out.bytes += size;
        if let Some(&i) = index.get(&r.id) {
            match r.next {
                Some(n) => slots[i].1 = n,
                None => {
                    used -= slots[i].2;
                    remove_slot(&mut slots, &mut index, i);
                }
            }
            continue;
        }
        out.misses += 1;
        out.missed_bytes += size;
        let Some(next) = r.next else { continue };
        if size > capacity {
            continue;
        }
        while used + size > capacity && !slots.is_empty() {
            let score = |s: &(u64, u64, u64)| s.2 as u128 * u128::from(s.1.saturating_sub(now));
            let victim = if slots.len() <= 4096 {
                (0..slots.len()).max_by_key(|&i| score(&slots[i]))
            } else {
                (0..256)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        (rng % slots.len() as u64) as usize
                    })
                    .max_by_key(|&i| score(&slots[i]))
            };
            let Some(v) = victim else { break };
            used -= slots[v].2;
            remove_slot(&mut slots, &mut index, v);
        }
        index.insert(r.id, slots.len());
        slots.push((r.id, next, size));
        used += size;
    }
    out
}

fn remove_slot(slots: &mut Vec<(u64, u64, u64)>, index: &mut HashMap<u64, usize>, i: usize) {
    let (id, _, _) = slots.swap_remove(i);
    index.remove(&id);
    if let Some(moved) = slots.get(i) {
        index.insert(moved.0, i);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::run::unit_sizes;

    use crate::trace::from_pairs as trace;

    #[test]
    fn min_by_hand() {
        // Two slots, 1 2 3 1 2 3: 3 evicts 2 (next use furthest), 1 hits, 2 evicts 1 (never
        // used again), 3 hits: 4 misses.
        let t = unit_sizes(&trace(&[(1, 1), (2, 1), (3, 1), (1, 1), (2, 1), (3, 1)]));
        let o = belady(&t, 2);
        assert_eq!(o.misses, 4);
        // The size-aware variant does not even store objects that never come back.
        assert_eq!(belady_size(&t, 2).misses, 4);
    }

    #[test]
    fn min_is_never_worse_than_lru_on_random_traces() {
        let mut x = 12345u64;
        let mut reqs = Vec::new();
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            reqs.push((x % 300, 1 + (x >> 32) as u32 % 50));
        }
        let t = trace(&reqs);
        for cap in [1u64, 10, 50, 200] {
            let u = unit_sizes(&t);
            let lru = crate::run::run(&mut eddy_cache::policy::Lru::new(), cap, &u);
            let min = belady(&u, cap);
            assert!(
                min.misses <= lru.misses,
                "cap {cap}: MIN {min:?} LRU {lru:?}"
            );
            let bytes = cap * 25;
            let lru = crate::run::run(&mut eddy_cache::policy::Lru::new(), bytes, &t);
            let sized = belady_size(&t, bytes);
            assert!(sized.missed_bytes <= lru.missed_bytes, "bytes {bytes}");
        }
    }
}
