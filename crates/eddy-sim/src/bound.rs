//! How far an online policy can get where popularity holds still: A0.
//!
//! Under the independent reference model (each request picks object `i` with a fixed
//! probability `p_i`), the online policy with the fewest misses in the long run keeps the
//! objects with the largest `p_i` (A0: Aho, Denning and Ullman, "Principles of optimal page
//! replacement", JACM 1971). No online policy, learned or not, does better in expectation: a
//! perfect popularity forecast is worth exactly A0. [`a0`] runs it over a trace with the true
//! probabilities (the synthetic workload's `-irm` presets know them), beside Belady, which also
//! knows *when* each request comes.
//!
//! A0 knows the probabilities; an online policy has to learn them from the requests it has
//! seen. Where every object exists from the start, the count of its past requests is all the
//! trace says about it, so [`perfect_lfu`] (exact counts of every object ever seen, unbounded
//! memory, keep the highest) is what the best popularity learner reaches: the bound for a
//! learned policy on a finite trace, between the heuristics and A0.
//!
//! - Every object's first request misses (a cache starts empty, as in Belady's count).
//! - Objects are ranked by `probability / size^β`: β = 1 fills the capacity by probability per
//!   byte (the fractional knapsack's order, for the request miss ratio), β = 0 by probability
//!   (each stored byte then saves the most requested bytes, for the byte miss ratio); between,
//!   a trade of one for the other. Objects are taken in that order, skipping one that no longer
//!   fits; with unit sizes every β is the same and exact.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::run::Outcome;
use crate::trace::Request;

fn worth(weight: f64, size: u64, size_weight: f64) -> f64 {
    if size_weight == 0.0 {
        weight
    } else {
        weight / (size.max(1) as f64).powf(size_weight)
    }
}

/// A0 over `trace` with a cache of `capacity` bytes: the objects with the largest
/// `probability(id) / size^size_weight` (any positive weight proportional to the probability)
/// are kept from their first request on.
pub fn a0(
    trace: &[Request],
    capacity: u64,
    size_weight: f64,
    probability: &dyn Fn(u64) -> f64,
) -> Outcome {
    let mut sizes: HashMap<u64, u64> = HashMap::new();
    for r in trace {
        sizes.insert(r.id, u64::from(r.size).max(1));
    }
    let mut order: Vec<(f64, u64, u64)> = sizes
        .iter()
        .map(|(&id, &size)| (worth(probability(id), size, size_weight), id, size))
        .collect();
    order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut kept = HashSet::new();
    let mut used = 0u64;
    for (_, id, size) in order {
        if used + size <= capacity {
            used += size;
            kept.insert(id);
        }
    }
    let mut seen = HashSet::new();
    let mut out = Outcome::default();
    for r in trace {
        let size = u64::from(r.size);
        out.requests += 1;
        out.bytes += size;
        let first = seen.insert(r.id);
        if first || !kept.contains(&r.id) {
            out.misses += 1;
            out.missed_bytes += size;
        }
    }
    out
}

/// Perfect LFU over `trace` with a cache of `capacity` bytes: every object's exact request
/// count so far (never forgotten); a missed object is stored if, to make room, only objects
/// worth less than it are evicted, lowest worth first (ties: least recently requested). Worth is
/// `count / size^size_weight`, as in [`a0`].
pub fn perfect_lfu(trace: &[Request], capacity: u64, size_weight: f64) -> Outcome {
    // Object -> (count, size, last request, resident).
    let mut seen: HashMap<u64, (u64, u64, u64, bool)> = HashMap::new();
    // Residents by (worth, last request, id); worth as the bits of a non-negative f64, which
    // order as the values do.
    let mut order: BTreeSet<(u64, u64, u64)> = BTreeSet::new();
    let worth = |count: u64, size: u64| -> u64 { worth(count as f64, size, size_weight).to_bits() };
    let mut used = 0u64;
    let mut out = Outcome::default();
    let mut victims = Vec::new();
    for (t, r) in trace.iter().enumerate() {
        let t = t as u64;
        let size = u64::from(r.size);
        out.requests += 1;
        out.bytes += size;
        let e = seen.entry(r.id).or_insert((0, size, 0, false));
        if e.3 {
            order.remove(&(worth(e.0, e.1), e.2, r.id));
            e.0 += 1;
            e.2 = t;
            order.insert((worth(e.0, e.1), e.2, r.id));
            continue;
        }
        out.misses += 1;
        out.missed_bytes += size;
        e.0 += 1;
        e.1 = size;
        e.2 = t;
        let (count, last) = (e.0, e.2);
        if size > capacity {
            continue;
        }
        let mine = worth(count, size);
        // Who would make room, and whether all of them are worth less.
        victims.clear();
        let mut room = capacity - used;
        let mut admit = true;
        for &(w, l, id) in &order {
            if room >= size {
                break;
            }
            if w >= mine {
                admit = false;
                break;
            }
            victims.push((w, l, id));
            room += seen.get(&id).map_or(0, |v| v.1);
        }
        if !admit || room < size {
            continue;
        }
        for v in &victims {
            order.remove(v);
            if let Some(o) = seen.get_mut(&v.2) {
                o.3 = false;
                used -= o.1;
            }
        }
        order.insert((mine, last, r.id));
        used += size;
        if let Some(e) = seen.get_mut(&r.id) {
            e.3 = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::trace::from_pairs;

    #[test]
    fn keeps_the_likeliest_per_byte_or_per_object() {
        // Probabilities: a 0.4 (10 bytes), b 0.3 (1), c 0.2 (1), d 0.1 (5).
        let pairs = [
            (1, 10),
            (2, 1),
            (1, 10),
            (3, 1),
            (2, 1),
            (1, 10),
            (4, 5),
            (3, 1),
            (2, 1),
            (1, 10),
        ];
        let t = from_pairs(&pairs);
        let p = |id: u64| [0.0, 0.4, 0.3, 0.2, 0.1][id as usize];
        // 11 bytes: per byte b, c, then d (a no longer fits); per object a and b (c no longer
        // fits).
        let o = a0(&t, 11, 1.0, &p);
        assert_eq!((o.requests, o.misses), (10, 7));
        let o = a0(&t, 11, 0.0, &p);
        assert_eq!((o.misses, o.missed_bytes), (5, 10 + 1 + 1 + 5 + 1));
        // Room for everything: only first requests miss.
        assert_eq!(a0(&t, 100, 1.0, &p).misses, 4);
    }

    #[test]
    fn perfect_lfu_keeps_the_most_requested_so_far() {
        // Two slots. 1 and 2 are requested twice; 3, requested once, is not stored (it would
        // evict an object worth more); the second time it still is not (1 and 2 have 3 each).
        let t = from_pairs(&[
            (1, 1),
            (2, 1),
            (1, 1),
            (2, 1),
            (3, 1),
            (1, 1),
            (2, 1),
            (3, 1),
        ]);
        let o = perfect_lfu(&t, 2, 0.0);
        assert_eq!((o.requests, o.misses), (8, 4));
        // 1 2 (misses) 1 (hit) 3 (miss; as much as 2, not stored) 3 (miss; more than 2, which it
        // evicts) 3 3 (hits) 2 (miss; as much as 1, not stored).
        let t = from_pairs(&[
            (1, 1),
            (2, 1),
            (1, 1),
            (3, 1),
            (3, 1),
            (3, 1),
            (3, 1),
            (2, 1),
        ]);
        assert_eq!(perfect_lfu(&t, 2, 0.0).misses, 5);
    }

    #[test]
    fn on_a_still_workload_a0_and_perfect_lfu_sit_between_lru_and_belady() {
        use crate::synth::Workload;
        let mut w = Workload::vod(3).stationary();
        w.requests = 200_000;
        w.catalog = 20_000;
        assert!(Workload::vod(3).probability().is_none());
        let p = w.probability().unwrap();
        let t = crate::run::unit_sizes(&w.generate().requests);
        assert!(
            t.iter().all(|r| r.id < 20_000),
            "a still workload adds no objects"
        );
        for cap in [200, 2_000] {
            let min = crate::belady::belady(&t, cap).misses;
            let mut lru = eddy_cache::policy::by_name("lru", cap).unwrap();
            let lru = crate::run::run(lru.as_mut(), cap, &t).misses;
            // With unit sizes every β ranks alike.
            let a = a0(&t, cap, 0.0, &p).misses;
            assert_eq!(a, a0(&t, cap, 1.0, &p).misses);
            let lfu = perfect_lfu(&t, cap, 0.0).misses;
            assert!(
                min <= a && min <= lfu,
                "{cap}: MIN {min}, A0 {a}, perfect LFU {lfu}"
            );
            assert!(
                a < lru && lfu < lru,
                "{cap}: LRU {lru}, A0 {a}, perfect LFU {lfu}"
            );
        }
    }
}
