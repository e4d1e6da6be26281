//! A learned admission and eviction policy: it predicts, for each object, whether it will be
//! requested again soon ([`crate::model`]), evicts the object least likely to be, and turns
//! away a new object less likely to be than what it would evict.
//!
//! It starts from the relaxed-Belady idea (Song et al., "Learning Relaxed Belady for CDN
//! caching", NSDI 2020): evict an object whose next request is far, estimated from features
//! that are known online. What it learns differs, by measurement (issue 14):
//!
//! - **Features**: recency, the last gap between requests, a time-decayed request count, a
//!   long-memory popularity count (a count-min sketch, [`crate::sketch`]), size, kind and age
//!   since publication (from [`Hint`]), request count. (Finer popularity bins, exact up to 16
//!   and four per doubling above, measured the same on the workloads and worse while the model
//!   is young: a bin it has not yet seen a label for says nothing.)
//! - **Labels**: the policy snapshots objects' features (a quarter of the snapshots of the
//!   requested object, the rest of a random resident), at a rate that lets 65,536 pending
//!   snapshots span the window. The object's next request within the window labels a snapshot
//!   "reused"; a snapshot still waiting when the window closes is labelled "not reused".
//! - **The window is short**: an eighth of the eviction age (the mean time since their last
//!   request of the objects evicted), not LRB's Belady boundary. For a steady request rate λ,
//!   P(reused within w) = 1 − e^(−λw): over a window as long as the cache's reach it is near 1
//!   for everything worth keeping, and the ranking among residents drowns; over a short one its
//!   log-odds are about ln λw, an estimate of the rate. Measured on the synthetic workloads at
//!   10 % of the working set: two eviction ages, 0.2589 request miss ratio on `vod`; an eighth,
//!   0.2434. Predicting log2 of the distance to the next request instead (LRB's regression)
//!   was worse everywhere (0.2863).
//! - **Eviction**: sample 32 residents, evict the one with the lowest
//!   `ln P(reused) − β · ln(size)`, β = 0.1: a slight lean against large objects, which wins
//!   requests for few bytes. β = 0 keeps the byte miss ratio lowest; larger β trade bytes for
//!   requests (on `web` at 1 %: β 0.1, 0.4823 / 0.5942; β 0.25, 0.4307 / 0.6013).
//! - **Admission**: once the model has learned from 20,000 samples, a missed object is stored
//!   only if its score is at least that of the victim it would evict (the same sampled
//!   victim is then evicted).
//!
//! Bounded whatever the traffic: per-object state only for residents and a history of
//! recently seen objects (as many as residents, at least 4,096), the sketch (2 MiB of
//! counters by default), at most 65,536 pending snapshots; constant work per request plus 32
//! predictions per miss and per eviction.

use std::collections::{HashMap, VecDeque};

use eddy_cache::key::ObjectKey;
use eddy_cache::policy::{Hint, Policy, Residents};

use std::f32::consts::LN_2;

use crate::model::{BINS, Features, Model, ln_sigmoid, log_bin};
use crate::sketch::Sketch;

/// The learned policy's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Residents sampled per eviction.
    pub sample: usize,
    /// β: the weight of ln(size) in the eviction score (0.1).
    pub size_weight: f32,
    /// Pending snapshots kept at most. Snapshots are taken at a rate that lets them wait
    /// `horizon` eviction ages for their label.
    pub pending: usize,
    /// How many eviction ages a snapshot may wait for the object's next request (an eighth:
    /// see the module's documentation).
    pub horizon: f64,
    /// Share of snapshots taken of the requested object (the rest: a random resident).
    pub request_snapshots: f64,
    /// Half-life of the request count, in requests.
    pub half_life: f64,
    /// Labelled samples before admission control starts.
    pub warmup: u64,
    /// Whether to turn objects away at all.
    pub admission: bool,
    /// SGD step.
    pub rate: f32,
    /// Seed for sampling.
    pub seed: u64,
    /// Counters per row of the popularity sketch.
    pub sketch_width: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            sample: 32,
            size_weight: 0.1,
            pending: 65_536,
            horizon: 0.125,
            request_snapshots: 0.25,
            half_life: 100_000.0,
            warmup: 20_000,
            admission: true,
            rate: 0.01,
            seed: 0x5EED,
            sketch_width: 1 << 18,
        }
    }
}

/// What the policy keeps about one object (resident or in the history).
#[derive(Debug, Clone, Copy)]
struct Meta {
    size: u64,
    /// Clock of its last request.
    last: u64,
    /// Gap between its last two requests (0: one request so far).
    gap: u64,
    /// Time-decayed request count as of `last`.
    freq: f32,
    count: u8,
    kind: u8,
    /// Seconds since publication at its last hint (u32::MAX: unknown).
    age: u32,
    /// Index in `residents`, or `NOT_RESIDENT`.
    slot: u32,
}

const NOT_RESIDENT: u32 = u32::MAX;

/// The learned policy.
pub struct Learned {
    p: Params,
    model: Model,
    popularity: Sketch,
    clock: u64,
    meta: HashMap<ObjectKey, Meta>,
    residents: Vec<ObjectKey>,
    /// Non-residents, oldest first, with the clock they left at.
    history: VecDeque<(ObjectKey, u64)>,
    non_residents: usize,
    pending: HashMap<ObjectKey, (Features, u64)>,
    pending_order: VecDeque<(ObjectKey, u64)>,
    /// The victim admission chose (evicted first if eviction follows).
    planned: Option<ObjectKey>,
    /// Running mean of evicted objects' recency (requests since their last request).
    eviction_age: f64,
    hint: Option<(ObjectKey, Hint)>,
    rng: u64,
    refused: u64,
}

impl Learned {
    /// A learned policy with default parameters.
    pub fn new() -> Learned {
        Learned::with_params(Params::default())
    }

    /// A learned policy with `params`.
    pub fn with_params(p: Params) -> Learned {
        let rng = p.seed | 1;
        Learned {
            model: Model::new(0.0, p.rate),
            popularity: Sketch::new(p.sketch_width),
            p,
            clock: 0,
            meta: HashMap::new(),
            residents: Vec::new(),
            history: VecDeque::new(),
            non_residents: 0,
            pending: HashMap::new(),
            pending_order: VecDeque::new(),
            planned: None,
            eviction_age: 1.0,
            hint: None,
            rng,
            refused: 0,
        }
    }

    /// Objects turned away so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Labelled samples the model learned from.
    pub fn trained(&self) -> u64 {
        self.model.trained()
    }

    /// Every resident object and its size (what a fallback policy takes over).
    pub fn resident_sizes(&self) -> Vec<(ObjectKey, u64)> {
        self.residents
            .iter()
            .map(|k| (*k, self.meta.get(k).map_or(0, |m| m.size)))
            .collect()
    }

    /// Whether the model is sound (finite weights).
    pub fn is_sound(&self) -> bool {
        self.model.is_sound()
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn decayed(&self, m: &Meta) -> f32 {
        let dt = (self.clock - m.last) as f64;
        (f64::from(m.freq) * (-dt * std::f64::consts::LN_2 / self.p.half_life).exp()) as f32
    }

    fn features(
        &self,
        key: &ObjectKey,
        m: Option<&Meta>,
        size: u64,
        hint: Option<Hint>,
    ) -> Features {
        let popularity = log_bin(u64::from(self.popularity.estimate(key)));
        match m {
            Some(m) => Features {
                recency: log_bin(self.clock - m.last),
                gap: if m.gap == 0 { 0 } else { log_bin(m.gap) },
                frequency: ((2.0 * (1.0 + self.decayed(m)).log2()) as u8).min(BINS as u8 - 1),
                size: log_bin(m.size),
                age: if m.age == u32::MAX {
                    0
                } else {
                    (1 + log_bin(u64::from(m.age))).min(BINS as u8 - 1)
                },
                kind: m.kind,
                count: m.count.min(BINS as u8 - 1),
                popularity,
            },
            None => Features {
                recency: BINS as u8 - 1,
                gap: 0,
                frequency: 0,
                size: log_bin(size),
                age: hint
                    .and_then(|h| h.age)
                    .map_or(0, |a| (1 + log_bin(u64::from(a))).min(BINS as u8 - 1)),
                kind: hint.map_or(0, |h| h.kind.index() as u8),
                count: 0,
                popularity,
            },
        }
    }

    /// The window a snapshot waits in for its label: `horizon` eviction ages.
    fn window(&self) -> u64 {
        (self.p.horizon * self.eviction_age).max(1024.0) as u64
    }

    /// How much keeping the object is worth: ln P(requested within the window) − β ln(size).
    /// Eviction takes the lowest; admission refuses what scores below what is evicted.
    fn score(&self, f: &Features) -> f32 {
        ln_sigmoid(self.model.predict(f)) - self.p.size_weight * f32::from(f.size) * LN_2
    }

    /// A request for `key` arrived: label its pending snapshot, update its state, maybe
    /// snapshot it, and now and then snapshot a random resident.
    fn observe(&mut self, key: &ObjectKey, size: u64) {
        self.clock += 1;
        self.popularity.add(key);
        if let Some((f, at)) = self.pending.remove(key) {
            let window = self.window();
            self.model.learn(&f, self.clock - at <= window);
        }
        let hint = self.hint.take().filter(|(k, _)| k == key).map(|(_, h)| h);
        let clock = self.clock;
        match self.meta.get(key).copied() {
            Some(mut m) => {
                let freq = self.decayed(&m);
                m.gap = clock - m.last;
                m.freq = freq + 1.0;
                m.last = clock;
                m.count = m.count.saturating_add(1);
                m.size = size;
                if let Some(h) = hint {
                    m.kind = h.kind.index() as u8;
                    m.age = h.age.unwrap_or(u32::MAX);
                }
                self.meta.insert(*key, m);
            }
            None => {
                self.meta.insert(
                    *key,
                    Meta {
                        size,
                        last: clock,
                        gap: 0,
                        freq: 1.0,
                        count: 1,
                        kind: hint.map_or(0, |h| h.kind.index() as u8),
                        age: hint.and_then(|h| h.age).unwrap_or(u32::MAX),
                        slot: NOT_RESIDENT,
                    },
                );
                self.non_residents += 1;
                self.history.push_back((*key, clock));
            }
        }
        // One snapshot per `gap` requests on average, so the pending set spans the window: a
        // share of them of the requested object (what admission asks about), the rest of a
        // random resident (what eviction asks about).
        let gap = (self.window() as f64 / (0.8 * self.p.pending as f64)).max(1.0);
        let rate = u64::MAX as f64 / gap;
        if (self.random() as f64) < rate * self.p.request_snapshots {
            let f = self.features(key, self.meta.get(key), size, None);
            self.snapshot(*key, f);
        }
        if (self.random() as f64) < rate * (1.0 - self.p.request_snapshots)
            && !self.residents.is_empty()
        {
            let i = (self.random() % self.residents.len() as u64) as usize;
            let k = self.residents[i];
            if !self.pending.contains_key(&k) {
                let f = self.features(&k, self.meta.get(&k), 0, None);
                self.snapshot(k, f);
            }
        }
        self.trim();
    }

    fn snapshot(&mut self, key: ObjectKey, f: Features) {
        self.pending.insert(key, (f, self.clock));
        self.pending_order.push_back((key, self.clock));
    }

    /// Keep the history and the pending snapshots within their bounds.
    fn trim(&mut self) {
        let limit = self.residents.len().max(4096);
        while self.non_residents > limit {
            let Some((key, at)) = self.history.pop_front() else {
                break;
            };
            if let Some(m) = self.meta.get(&key)
                && m.slot == NOT_RESIDENT
                && m.last <= at
            {
                self.meta.remove(&key);
                self.non_residents -= 1;
            }
        }
        if self.history.len() > 4 * limit {
            // Entries for objects that came back or were stored since: drop them in one pass.
            let meta = &self.meta;
            self.history.retain(|(k, at)| {
                meta.get(k)
                    .is_some_and(|m| m.slot == NOT_RESIDENT && m.last <= *at)
            });
        }
        // Snapshots whose window passed: not requested again within it.
        let window = self.window();
        while let Some(&(key, at)) = self.pending_order.front() {
            let expired = self.clock - at > window;
            if !expired && self.pending_order.len() <= self.p.pending {
                break;
            }
            self.pending_order.pop_front();
            if let Some(&(f, t)) = self.pending.get(&key)
                && t == at
            {
                self.pending.remove(&key);
                if expired {
                    self.model.learn(&f, false);
                }
                // (Dropped unlabelled when the pending set is full: rare, as the snapshot
                // rate follows the window.)
            }
        }
    }

    /// The lowest-scoring of `sample` random residents.
    fn pick_victim(&mut self) -> Option<(f32, ObjectKey)> {
        let n = self.residents.len();
        let mut best: Option<(f32, ObjectKey)> = None;
        for _ in 0..self.p.sample.min(n) {
            let i = (self.random() % n as u64) as usize;
            let k = self.residents[i];
            let s = self.score(&self.features(&k, self.meta.get(&k), 0, None));
            if best.is_none_or(|(b, _)| s < b) {
                best = Some((s, k));
            }
        }
        best
    }

    fn make_resident(&mut self, key: ObjectKey) {
        let slot = self.residents.len() as u32;
        if let Some(m) = self.meta.get_mut(&key) {
            if m.slot == NOT_RESIDENT {
                self.non_residents -= 1;
            } else {
                return;
            }
            m.slot = slot;
            self.residents.push(key);
        }
    }

    fn make_non_resident(&mut self, key: &ObjectKey) {
        let Some(slot) = self.meta.get(key).map(|m| m.slot) else {
            return;
        };
        if slot == NOT_RESIDENT {
            return;
        }
        let slot = slot as usize;
        self.residents.swap_remove(slot);
        if let Some(moved) = self.residents.get(slot).copied()
            && let Some(m) = self.meta.get_mut(&moved)
        {
            m.slot = slot as u32;
        }
        if let Some(m) = self.meta.get_mut(key) {
            m.slot = NOT_RESIDENT;
        }
        self.non_residents += 1;
        self.history.push_back((*key, self.clock));
    }
}

impl Default for Learned {
    fn default() -> Self {
        Learned::new()
    }
}

impl Policy for Learned {
    fn name(&self) -> &'static str {
        "learned"
    }

    fn touch_on_hit(&self) -> bool {
        true
    }

    fn touch(&mut self, key: &ObjectKey, _word: u32, _victims: &mut Vec<ObjectKey>) {
        let size = self.meta.get(key).map_or(0, |m| m.size);
        self.observe(key, size);
    }

    fn hint(&mut self, key: &ObjectKey, hint: Hint) {
        self.hint = Some((*key, hint));
    }

    fn admit(&mut self, key: &ObjectKey, size: u64) -> bool {
        self.observe(key, size);
        self.planned = None;
        if !self.p.admission || self.model.trained() < self.p.warmup {
            return true;
        }
        // The duel: store the object only if it is worth more than what it would evict.
        let f = self.features(key, self.meta.get(key), size, None);
        let mine = self.score(&f);
        let Some((theirs, victim)) = self.pick_victim() else {
            return true;
        };
        self.planned = Some(victim);
        let admit = mine >= theirs;
        if !admit {
            self.refused += 1;
        }
        admit
    }

    fn insert(&mut self, key: ObjectKey, size: u64, residents: &dyn Residents) {
        if !self.meta.contains_key(&key) {
            // Stored without a request through `admit` (a disk index rebuilt at start-up).
            self.observe(&key, size);
        }
        if let Some(m) = self.meta.get_mut(&key) {
            m.size = size;
        }
        self.make_resident(key);
        residents.set_word(&key, 1);
    }

    fn remove(&mut self, key: &ObjectKey, _size: u64, _word: u32) {
        self.make_non_resident(key);
    }

    fn evict(&mut self, _residents: &dyn Residents, victims: &mut Vec<ObjectKey>) -> bool {
        let planned = self
            .planned
            .take()
            .filter(|k| self.meta.get(k).is_some_and(|m| m.slot != NOT_RESIDENT));
        let Some(victim) = planned.or_else(|| self.pick_victim().map(|(_, k)| k)) else {
            return false;
        };
        if let Some(m) = self.meta.get(&victim) {
            let age = (self.clock - m.last) as f64;
            self.eviction_age = 0.999 * self.eviction_age + 0.001 * age;
        }
        self.make_non_resident(&victim);
        victims.push(victim);
        true
    }

    fn len(&self) -> usize {
        self.residents.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_cache::policy::Replay;

    #[test]
    fn accounting_holds_and_state_stays_bounded() {
        let mut p = Learned::with_params(Params {
            warmup: 1000,
            ..Params::default()
        });
        let mut r = Replay::new(50_000);
        let mut x = 7u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // A hot set of 200 and a long tail of one-time objects.
            let id = if x.is_multiple_of(3) {
                x % 200
            } else {
                1_000 + x % 1_000_000
            };
            r.request(&mut p, id, 100 + id % 400);
        }
        assert!(r.used() <= 50_000);
        assert_eq!(p.len(), p.residents.len());
        for (i, k) in p.residents.iter().enumerate() {
            assert_eq!(p.meta[k].slot as usize, i);
        }
        assert!(p.meta.len() <= p.residents.len() + p.residents.len().max(4096) + 1);
        assert!(p.pending.len() <= p.p.pending + 1);
        assert!(p.history.len() <= 4 * p.residents.len().max(4096) + 1);
        assert!(p.is_sound() && p.trained() > 10_000);
    }
}
