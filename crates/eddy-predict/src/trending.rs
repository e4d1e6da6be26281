//! Trending items per region, with time decay, in bounded memory.
//!
//! Each region keeps at most `items` items with a decayed score (an interaction of weight `w` at
//! time `t` adds `w · 2^((t − t0) / half_life)`: forward decay, so old scores never need
//! rewriting; the landmark `t0` moves forward and scores are rescaled when the exponent grows).
//! When a region is full, a new item replaces the lowest-scored one and inherits its score
//! (Space-Saving: a heavy item is never lost, a light one may be over-counted by at most the
//! minimum). At most `regions` regions are kept; a new region beyond that replaces the one idle
//! longest. So memory is bounded by `regions × items` whatever the stream.

use std::collections::HashMap;

use crate::bounded::{remove_min_by, space_saving_add};

/// Trending items by region.
#[derive(Debug, Clone)]
pub struct Trending {
    half_life: f64,
    items: usize,
    regions: usize,
    by_region: HashMap<String, Region>,
}

#[derive(Debug, Clone)]
struct Region {
    landmark: f64,
    last_seen: f64,
    scores: HashMap<String, f64>,
}

/// Rescale when a weight would exceed 2^this.
const RESCALE_AT: f64 = 60.0;

impl Trending {
    /// Scores halve every `half_life_secs`; at most `items` items per region and `regions`
    /// regions.
    pub fn new(half_life_secs: f64, items: usize, regions: usize) -> Trending {
        Trending {
            half_life: half_life_secs.max(1.0),
            items: items.max(1),
            regions: regions.max(1),
            by_region: HashMap::new(),
        }
    }

    /// An interaction with `item` in `region` at `now` (seconds) with `weight` (≤ 0: ignored).
    pub fn record(&mut self, region: &str, item: &str, weight: f64, now: f64) {
        if !(weight > 0.0 && weight.is_finite() && now.is_finite()) {
            return;
        }
        if !self.by_region.contains_key(region) && self.by_region.len() >= self.regions {
            remove_min_by(&mut self.by_region, |r| r.last_seen);
        }
        let half_life = self.half_life;
        let r = self
            .by_region
            .entry(region.to_string())
            .or_insert_with(|| Region {
                landmark: now,
                last_seen: now,
                scores: HashMap::new(),
            });
        r.last_seen = r.last_seen.max(now);
        let mut exponent = (now - r.landmark) / half_life;
        if exponent > RESCALE_AT {
            let scale = (-exponent).exp2();
            for s in r.scores.values_mut() {
                *s *= scale;
            }
            r.scores.retain(|_, s| *s > f64::MIN_POSITIVE);
            r.landmark = now;
            exponent = 0.0;
        }
        let add = weight * exponent.exp2();
        space_saving_add(&mut r.scores, self.items, item.to_string(), add);
    }

    /// The `n` items trending in `region` at `now`, highest first, with their decayed scores
    /// (in interactions-weight units as of `now`).
    pub fn top(&self, region: &str, n: usize, now: f64) -> Vec<(String, f64)> {
        let Some(r) = self.by_region.get(region) else {
            return Vec::new();
        };
        let scale = ((r.landmark - now) / self.half_life).exp2();
        let mut all: Vec<(String, f64)> = r
            .scores
            .iter()
            .map(|(k, v)| (k.clone(), v * scale))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// Regions held.
    pub fn regions(&self) -> usize {
        self.by_region.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_interest_outranks_old_interest() {
        let mut t = Trending::new(3600.0, 100, 10);
        // "old" was popular a day ago, "new" is moderately popular now.
        for _ in 0..100 {
            t.record("eu", "old", 1.0, 0.0);
        }
        for _ in 0..10 {
            t.record("eu", "new", 1.0, 86_400.0);
        }
        let top = t.top("eu", 2, 86_400.0);
        assert_eq!(top[0].0, "new");
        assert!((top[0].1 - 10.0).abs() < 1e-6);
        // A day is 24 half-lives: 100 / 2^24.
        assert!((top[1].1 - 100.0 / f64::from(1 << 24)).abs() < 1e-9);
        assert!(t.top("us", 5, 0.0).is_empty());
    }

    #[test]
    fn memory_is_bounded_and_heavy_items_survive() {
        let mut t = Trending::new(1e9, 10, 3);
        for i in 0..10_000 {
            t.record("eu", "hot", 1.0, f64::from(i));
            t.record("eu", &format!("cold{i}"), 1.0, f64::from(i));
            t.record(&format!("region{}", i % 7), "x", 1.0, f64::from(i));
        }
        assert!(t.regions() <= 3);
        assert!(t.by_region.values().all(|r| r.scores.len() <= 10));
        // One region, 10 slots, 10,000 one-time items going by: the heavy one stays on top.
        let mut t = Trending::new(1e9, 10, 3);
        for i in 0..10_000 {
            t.record("eu", "hot", 1.0, f64::from(i));
            t.record("eu", &format!("cold{i}"), 1.0, f64::from(i));
        }
        assert_eq!(t.top("eu", 1, 10_000.0)[0].0, "hot");
    }

    #[test]
    fn long_streams_rescale_without_overflow() {
        let mut t = Trending::new(1.0, 5, 1);
        for i in 0..100_000 {
            t.record("eu", if i % 2 == 0 { "a" } else { "b" }, 1.0, f64::from(i));
        }
        let top = t.top("eu", 2, 100_000.0);
        assert!(top.iter().all(|(_, s)| s.is_finite() && *s > 0.0));
        // Ignored: bad weights and times.
        t.record("eu", "c", f64::NAN, 1.0);
        t.record("eu", "c", -1.0, 1.0);
        t.record("eu", "c", 1.0, f64::INFINITY);
        assert!(t.top("eu", 5, 100_000.0).iter().all(|(k, _)| k != "c"));
    }
}
