//! Which items are about to get hot: a popularity forecast for pre-warm hints, in bounded memory.
//!
//! Each item keeps two time-decayed counts of its observations (plays, requests): a short one
//! (half-life [`ForecastConfig::short_half_life`], a minute by default) and a long one (half an
//! hour). Both use forward decay against one landmark shared by every item: an observation of
//! weight `w` at time `t` adds `w · 2^((t − landmark) / half_life)`, so a count is never
//! rewritten as time passes, and counts of different items compare as they stand. The landmark
//! moves forward (and every count is rescaled once) when an exponent would pass 2^60.
//!
//! A count divided by its half-life over ln 2 is a rate. An item is **rising** when its short
//! rate is at least [`ForecastConfig::min_rate`] and at least [`ForecastConfig::rise`] times its
//! long rate (interest that is new, not merely large: a steadily popular item is not rising);
//! it is **new** when the forecast first saw it less than [`ForecastConfig::new_age`] ago (a new
//! episode). Its forecast is the short rate plus the rise of the short rate over the long one:
//! a linear extrapolation one short half-life ahead. [`Forecast::rising`] returns the hottest
//! rising items and holds each back for [`ForecastConfig::cooldown`] after it was returned.
//!
//! At most [`ForecastConfig::items`] items are kept. A new item in a full table replaces the
//! one with the smallest long count, found in O(log n) (an ordered index beside the table; with
//! forward decay the order of counts does not change as time passes). It does not inherit the
//! count (as Space-Saving would): an inherited count would make every newcomer look established,
//! and so never rising.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// Rescale when an exponent would exceed 2^this.
const RESCALE_AT: f64 = 60.0;

/// The forecast's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastConfig {
    /// Half-life of the short count, seconds.
    pub short_half_life: f64,
    /// Half-life of the long count, seconds.
    pub long_half_life: f64,
    /// Items kept at most.
    pub items: usize,
    /// Short rate (observations per second) below which an item is never rising.
    pub min_rate: f64,
    /// Short rate over long rate at which an item counts as rising.
    pub rise: f64,
    /// Seconds before an item returned by [`Forecast::rising`] may be returned again.
    pub cooldown: f64,
    /// Seconds after the forecast first saw an item during which it counts as new.
    pub new_age: f64,
}

impl Default for ForecastConfig {
    /// A minute against half an hour; 12 plays a minute at least, three times the long rate;
    /// hinted again after 10 minutes; new for half an hour; 10,000 items.
    fn default() -> Self {
        ForecastConfig {
            short_half_life: 60.0,
            long_half_life: 1800.0,
            items: 10_000,
            min_rate: 0.2,
            rise: 3.0,
            cooldown: 600.0,
            new_age: 1800.0,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    short: f64,
    long: f64,
    first_seen: f64,
    last_returned: f64,
}

/// The forecast over items of type `K`.
#[derive(Debug, Clone)]
pub struct Forecast<K> {
    cfg: ForecastConfig,
    landmark: Option<f64>,
    entries: HashMap<K, Entry>,
    /// (long count's bits, id): the smallest long count first. Counts are positive, so their
    /// bits order as they do.
    order: BTreeSet<(u64, u64)>,
    keys: HashMap<u64, K>,
    next_id: u64,
}

fn sane(x: f64, min: f64) -> f64 {
    if x.is_finite() && x >= min { x } else { min }
}

impl<K: Hash + Eq + Clone> Forecast<K> {
    /// An empty forecast; parameters out of range are raised to sane minimums.
    pub fn new(cfg: ForecastConfig) -> Forecast<K> {
        let short = sane(cfg.short_half_life, 1.0);
        let cfg = ForecastConfig {
            short_half_life: short,
            long_half_life: sane(cfg.long_half_life, short),
            items: cfg.items.max(1),
            min_rate: sane(cfg.min_rate, 0.0),
            rise: sane(cfg.rise, 1.0),
            cooldown: sane(cfg.cooldown, 0.0),
            new_age: sane(cfg.new_age, 0.0),
        };
        Forecast {
            cfg,
            landmark: None,
            entries: HashMap::new(),
            order: BTreeSet::new(),
            keys: HashMap::new(),
            next_id: 0,
        }
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no item is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The landmark for an observation at `now`, moved forward (and every count rescaled) when
    /// the short exponent would pass [`RESCALE_AT`]. A time before the landmark counts as the
    /// landmark (a clock that stepped back is not a reason to lose an observation).
    fn landmark_for(&mut self, now: f64) -> f64 {
        let l = *self.landmark.get_or_insert(now);
        if (now - l) / self.cfg.short_half_life <= RESCALE_AT {
            return l;
        }
        let (fs, fl) = (
            (-(now - l) / self.cfg.short_half_life).exp2(),
            (-(now - l) / self.cfg.long_half_life).exp2(),
        );
        self.order.clear();
        for e in self.entries.values_mut() {
            e.short *= fs;
            e.long *= fl;
            self.order.insert((e.long.to_bits(), e.id));
        }
        self.landmark = Some(now);
        now
    }

    /// One observation of `item` with `weight` at `now` (seconds). A weight that is not a
    /// positive finite number, or a time that is not finite, is ignored.
    pub fn record(&mut self, item: &K, weight: f64, now: f64) {
        if !(weight > 0.0 && weight.is_finite() && now.is_finite()) {
            return;
        }
        let l = self.landmark_for(now);
        let t = (now - l).max(0.0);
        let (ws, wl) = (
            weight * (t / self.cfg.short_half_life).exp2(),
            weight * (t / self.cfg.long_half_life).exp2(),
        );
        if let Some(e) = self.entries.get_mut(item) {
            self.order.remove(&(e.long.to_bits(), e.id));
            e.short += ws;
            e.long += wl;
            self.order.insert((e.long.to_bits(), e.id));
            return;
        }
        if self.entries.len() >= self.cfg.items
            && let Some((_, id)) = self.order.pop_first()
            && let Some(k) = self.keys.remove(&id)
        {
            self.entries.remove(&k);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(
            item.clone(),
            Entry {
                id,
                short: ws,
                long: wl,
                first_seen: now,
                last_returned: f64::NEG_INFINITY,
            },
        );
        self.keys.insert(id, item.clone());
        self.order.insert((wl.to_bits(), id));
    }

    /// (short rate, long rate) of an entry at `now`, observations per second.
    fn rates(&self, e: &Entry, now: f64) -> (f64, f64) {
        let l = self.landmark.unwrap_or(now);
        let t = (now - l).max(0.0);
        let ln2 = std::f64::consts::LN_2;
        let (hs, hl) = (self.cfg.short_half_life, self.cfg.long_half_life);
        (
            e.short * (-t / hs).exp2() * ln2 / hs,
            e.long * (-t / hl).exp2() * ln2 / hl,
        )
    }

    fn forecast_of(&self, e: &Entry, now: f64) -> Option<f64> {
        let (short, long) = self.rates(e, now);
        (short >= self.cfg.min_rate && short >= self.cfg.rise * long)
            .then(|| short + (short - long).max(0.0))
    }

    /// The forecast rate of `item` at `now` (observations per second over the next short
    /// half-life), whether or not it is rising; 0 for an item not held.
    pub fn rate(&self, item: &K, now: f64) -> f64 {
        self.entries.get(item).map_or(0.0, |e| {
            let (short, long) = self.rates(e, now);
            short + (short - long).max(0.0)
        })
    }

    /// Whether the forecast first saw `item` less than [`ForecastConfig::new_age`] before `now`.
    pub fn is_new(&self, item: &K, now: f64) -> bool {
        self.entries
            .get(item)
            .is_some_and(|e| now - e.first_seen < self.cfg.new_age)
    }

    /// Up to `n` rising items at `now`, hottest first, with their forecast rates. An item
    /// returned is not returned again within [`ForecastConfig::cooldown`]. Costs one pass over
    /// the items held.
    pub fn rising(&mut self, now: f64, n: usize) -> Vec<(K, f64)> {
        if !now.is_finite() || n == 0 {
            return Vec::new();
        }
        let mut hot: Vec<(f64, u64, K)> = self
            .entries
            .iter()
            .filter(|(_, e)| now - e.last_returned >= self.cfg.cooldown)
            .filter_map(|(k, e)| Some((self.forecast_of(e, now)?, e.id, k.clone())))
            .collect();
        hot.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        hot.truncate(n);
        for (_, _, k) in &hot {
            if let Some(e) = self.entries.get_mut(k) {
                e.last_returned = now;
            }
        }
        hot.into_iter().map(|(f, _, k)| (k, f)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rising_item_is_found_before_it_peaks_and_a_steady_favourite_is_not() {
        let mut f: Forecast<&str> = Forecast::new(ForecastConfig::default());
        // An hour of a steady favourite (1 a second) and a quiet tail.
        for s in 0..3600 {
            let t = f64::from(s);
            f.record(&"favourite", 1.0, t);
            f.record(&"tail", 0.1, t);
        }
        assert!(f.rising(3600.0, 10).is_empty());
        // A premiere ramps up: 0.1, 0.2, ... a second, each second for two minutes.
        let mut found = None;
        for s in 0..120 {
            let t = 3600.0 + f64::from(s);
            for _ in 0..(s / 10 + 1) {
                f.record(&"premiere", 1.0, t);
            }
            f.record(&"favourite", 1.0, t);
            if found.is_none() && f.rising(t, 5).iter().any(|(k, _)| *k == "premiere") {
                found = Some(s);
            }
        }
        let at = found.unwrap_or(u32::MAX);
        assert!(at < 30, "the premiere was found after {at} s");
        assert!(f.is_new(&"premiere", 3720.0) && !f.is_new(&"favourite", 3720.0));
        assert!(f.rate(&"premiere", 3720.0) > f.rate(&"tail", 3720.0));
        assert_eq!(f.rate(&"nothing", 3720.0), 0.0);
    }

    #[test]
    fn an_item_returned_is_held_back_for_the_cooldown() {
        let cfg = ForecastConfig {
            cooldown: 100.0,
            ..ForecastConfig::default()
        };
        let mut f: Forecast<u32> = Forecast::new(cfg);
        for k in 0..200 {
            f.record(&7, 1.0, f64::from(k) * 0.1);
        }
        assert_eq!(f.rising(20.0, 3).first().map(|r| r.0), Some(7));
        assert!(f.rising(21.0, 3).is_empty());
        for k in 0..600 {
            f.record(&7, 1.0, 100.0 + f64::from(k) * 0.05);
        }
        assert_eq!(f.rising(130.0, 3).first().map(|r| r.0), Some(7));
    }

    #[test]
    fn garbage_is_ignored_and_time_may_step_back_or_run_for_days() {
        let mut f: Forecast<u8> = Forecast::new(ForecastConfig::default());
        for (w, t) in [
            (f64::NAN, 1.0),
            (-1.0, 1.0),
            (0.0, 1.0),
            (f64::INFINITY, 1.0),
            (1.0, f64::NAN),
            (1.0, f64::INFINITY),
        ] {
            f.record(&1, w, t);
        }
        assert!(f.is_empty());
        // Days of observations: the landmark moves, counts stay finite and comparable.
        for k in 0..200_000u32 {
            let t = f64::from(k) * 2.0;
            f.record(&((k % 3) as u8), 1.0, t);
            if k % 1000 == 0 {
                // A clock that stepped back a little.
                f.record(&9, 1.0, t - 5.0);
            }
        }
        assert!(
            f.entries
                .values()
                .all(|e| e.short.is_finite() && e.long.is_finite())
        );
        let r = f.rate(&0, 400_000.0);
        assert!((0.1..0.3).contains(&r), "{r}");
        assert!(f.rising(f64::NAN, 3).is_empty());
    }

    #[test]
    fn memory_is_bounded_and_the_least_counted_item_goes_first() {
        let cfg = ForecastConfig {
            items: 1000,
            ..ForecastConfig::default()
        };
        let mut f: Forecast<u64> = Forecast::new(cfg);
        for k in 0..200_000u64 {
            let t = k as f64 * 0.005;
            f.record(&k, 1.0, t);
            f.record(&u64::MAX, 1.0, t);
        }
        assert_eq!(f.len(), 1000);
        assert_eq!(f.order.len(), 1000);
        assert_eq!(f.keys.len(), 1000);
        // The heavy item was never evicted; the newest singletons are the ones kept.
        assert!(f.entries.contains_key(&u64::MAX));
        assert!(f.entries.contains_key(&199_999) && !f.entries.contains_key(&0));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_table_never_exceeds_its_bound(
            items in 1usize..50,
            obs in proptest::collection::vec((0u16..200, -1.0f64..5.0, 0.0f64..10_000.0), 0..500),
        ) {
            let cfg = ForecastConfig { items, ..ForecastConfig::default() };
            let mut f: Forecast<u16> = Forecast::new(cfg);
            for (k, w, t) in obs {
                f.record(&k, w, t);
                prop_assert!(f.len() <= items);
                prop_assert_eq!(f.order.len(), f.len());
                prop_assert_eq!(f.keys.len(), f.len());
            }
            for (_, r) in f.rising(10_000.0, 10) {
                prop_assert!(r.is_finite() && r >= 0.0);
            }
        }
    }
}
