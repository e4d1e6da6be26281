//! Item-to-item recommendations from co-occurrence, in bounded memory.
//!
//! Each viewer's last `history` positive interactions are kept. A new positive interaction with
//! item `i` strengthens the link between `i` and each of them, both ways. Each item keeps at most
//! `neighbours` links (Space-Saving: a new link replaces the weakest and inherits its weight).
//! At most `items` items and `viewers` viewers are kept; beyond that the least recently seen goes
//! (found in O(log n): each table keeps its entries in order of last use beside it).
//! A recommendation sums the links of a viewer's recent items (more recent ones weigh more),
//! leaves out what the viewer already had, and fills up from the most popular items.
//!
//! Interactions weigh: play 1, complete 2, like 3; a skip weighs −1 and only lowers the item's
//! popularity (it links nothing).

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::bounded::space_saving_add;

pub use eddy_events::Action;

/// How much an action says about interest: play 1, complete 2, like 3, skip −1.
pub fn weight(a: Action) -> f64 {
    match a {
        Action::Play => 1.0,
        Action::Complete => 2.0,
        Action::Like => 3.0,
        Action::Skip => -1.0,
    }
}

/// Bounds on what the recommender keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Recent items kept per viewer.
    pub history: usize,
    /// Links kept per item.
    pub neighbours: usize,
    /// Items kept.
    pub items: usize,
    /// Viewers kept.
    pub viewers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            history: 20,
            neighbours: 64,
            items: 100_000,
            viewers: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Item {
    popularity: f64,
    links: HashMap<u32, f64>,
    last_seen: u64,
}

#[derive(Debug, Clone, Default)]
struct Viewer {
    recent: VecDeque<u32>,
    last_seen: u64,
}

/// The recommender.
#[derive(Debug, Clone)]
pub struct Recommender {
    limits: Limits,
    ids: HashMap<String, u32>,
    names: HashMap<u32, String>,
    next_id: u32,
    items: HashMap<u32, Item>,
    viewers: HashMap<String, Viewer>,
    /// Items and viewers by when they were last seen (each `record` is one tick, so a tick
    /// names at most one of each): the least recent is the first.
    item_order: BTreeMap<u64, u32>,
    viewer_order: BTreeMap<u64, String>,
    clock: u64,
    /// The [`POPULAR_KEPT`] most popular items, most popular first, as of `popular_at`.
    popular_cache: Vec<u32>,
    popular_at: u64,
}

/// Most popular items kept ready; asking for more sorts the catalog.
pub const POPULAR_KEPT: usize = 256;

impl Recommender {
    /// An empty recommender within `limits`.
    pub fn new(limits: Limits) -> Recommender {
        Recommender {
            limits,
            ids: HashMap::new(),
            names: HashMap::new(),
            next_id: 0,
            items: HashMap::new(),
            viewers: HashMap::new(),
            item_order: BTreeMap::new(),
            viewer_order: BTreeMap::new(),
            clock: 0,
            popular_cache: Vec::new(),
            popular_at: 0,
        }
    }

    fn item_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        if self.items.len() >= self.limits.items {
            // Forget the item seen longest ago (and its name); links to it die with it lazily.
            if let Some((_, old)) = self.item_order.pop_first() {
                self.items.remove(&old);
                if let Some(n) = self.names.remove(&old) {
                    self.ids.remove(&n);
                }
            }
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.ids.insert(name.to_string(), id);
        self.names.insert(id, name.to_string());
        self.items.insert(id, Item::default());
        id
    }

    /// Record that `viewer` did `action` with `item`.
    pub fn record(&mut self, viewer: &str, item: &str, action: Action) {
        self.clock += 1;
        // The most popular items, refreshed once every items/64 interactions (at most 1,000):
        // a pass over the catalog each time, about 64 steps an interaction amortised.
        let every = (self.items.len() as u64 / 64).clamp(1, 1000);
        if self.clock - self.popular_at >= every {
            self.popular_cache = self.popular_sorted(POPULAR_KEPT);
            self.popular_at = self.clock;
        }
        let id = self.item_id(item);
        let clock = self.clock;
        let w = weight(action);
        if let Some(it) = self.items.get_mut(&id) {
            it.popularity = (it.popularity + w).max(0.0);
            if self.item_order.get(&it.last_seen) == Some(&id) {
                self.item_order.remove(&it.last_seen);
            }
            it.last_seen = clock;
            self.item_order.insert(clock, id);
        }
        if w <= 0.0 {
            return;
        }
        if !self.viewers.contains_key(viewer)
            && self.viewers.len() >= self.limits.viewers
            && let Some((_, old)) = self.viewer_order.pop_first()
        {
            self.viewers.remove(&old);
        }
        let v = self.viewers.entry(viewer.to_string()).or_default();
        if self.viewer_order.get(&v.last_seen).map(String::as_str) == Some(viewer) {
            self.viewer_order.remove(&v.last_seen);
        }
        v.last_seen = clock;
        self.viewer_order.insert(clock, viewer.to_string());
        let recent: Vec<u32> = v.recent.iter().copied().filter(|&j| j != id).collect();
        v.recent.retain(|&j| j != id);
        v.recent.push_back(id);
        while v.recent.len() > self.limits.history {
            v.recent.pop_front();
        }
        for j in recent {
            self.link(id, j, w);
            self.link(j, id, w);
        }
    }

    fn link(&mut self, from: u32, to: u32, w: f64) {
        let cap = self.limits.neighbours;
        if let Some(it) = self.items.get_mut(&from) {
            space_saving_add(&mut it.links, cap, to, w);
        }
    }

    /// Up to `n` items for `viewer`, best first: linked to what they had recently, not had yet;
    /// the most popular items fill the rest.
    pub fn recommend(&self, viewer: &str, n: usize) -> Vec<String> {
        self.ranked(viewer, n, true)
    }

    /// Up to `n` items linked to what `viewer` had recently, not had yet, best first; nothing
    /// fills the rest (so the cost is the viewer's links only, not the catalog's).
    pub fn linked(&self, viewer: &str, n: usize) -> Vec<String> {
        self.ranked(viewer, n, false)
    }

    fn ranked(&self, viewer: &str, n: usize, fill: bool) -> Vec<String> {
        let recent: Vec<u32> = self
            .viewers
            .get(viewer)
            .map(|v| v.recent.iter().copied().collect())
            .unwrap_or_default();
        let mut score: HashMap<u32, f64> = HashMap::new();
        let len = recent.len();
        for (age, id) in recent.iter().rev().enumerate() {
            let recency = 1.0 / (1.0 + age as f64 / len.max(1) as f64);
            if let Some(it) = self.items.get(id) {
                for (j, w) in &it.links {
                    *score.entry(*j).or_default() += w * recency;
                }
            }
        }
        let mut ranked: Vec<(u32, f64)> = score
            .into_iter()
            .filter(|(j, _)| !recent.contains(j) && self.items.contains_key(j))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut out: Vec<u32> = ranked.into_iter().map(|(j, _)| j).take(n).collect();
        if fill && out.len() < n {
            for j in self.popular(n + recent.len() + out.len()) {
                if out.len() >= n {
                    break;
                }
                if !recent.contains(&j) && !out.contains(&j) {
                    out.push(j);
                }
            }
        }
        out.into_iter()
            .filter_map(|j| self.names.get(&j).cloned())
            .collect()
    }

    /// The `n` most popular items' ids: from the list kept ready (as of at most 1,000
    /// interactions ago) when it is long enough, else from a pass over the catalog.
    fn popular(&self, n: usize) -> Vec<u32> {
        if n <= self.popular_cache.len() || self.popular_cache.len() >= self.items.len() {
            let ready: Vec<u32> = self
                .popular_cache
                .iter()
                .copied()
                .filter(|id| self.items.contains_key(id))
                .take(n)
                .collect();
            // Items forgotten since the list was made leave it short: then from the catalog.
            if ready.len() >= n.min(self.items.len()) {
                return ready;
            }
        }
        self.popular_sorted(n)
    }

    /// The `n` most popular items' ids, exactly: a selection over the catalog, then a sort of
    /// the `n`.
    fn popular_sorted(&self, n: usize) -> Vec<u32> {
        let mut all: Vec<(u32, f64)> = self
            .items
            .iter()
            .map(|(id, it)| (*id, it.popularity))
            .collect();
        let order =
            |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0));
        if n < all.len() {
            all.select_nth_unstable_by(n, order);
            all.truncate(n);
        }
        all.sort_by(order);
        all.into_iter().map(|(id, _)| id).collect()
    }

    /// The `n` most popular items, for a viewer the recommender knows nothing about.
    pub fn most_popular(&self, n: usize) -> Vec<String> {
        self.popular(n)
            .into_iter()
            .filter_map(|j| self.names.get(&j).cloned())
            .collect()
    }

    /// Items and viewers held (for bounds checks and metrics).
    pub fn size(&self) -> (usize, usize) {
        (self.items.len(), self.viewers.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded interaction stream with planted preferences: viewers belong to one of
    /// `clusters` tastes; 80 % of a viewer's plays are items of their taste (each taste has 30
    /// items, popularity within it Zipf-like), 20 % follow global popularity.
    fn stream(seed: u64, viewers: u64, per_viewer: usize) -> Vec<(String, String)> {
        let clusters = 20u64;
        let mut x = seed | 1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = Vec::new();
        for _ in 0..per_viewer {
            for v in 0..viewers {
                let taste = v % clusters;
                let r = rnd();
                let item = if r % 10 < 8 {
                    // Within the taste: lower ranks more often.
                    let k = (rnd() % 30).min(rnd() % 30);
                    format!("t{taste}-{k}")
                } else {
                    format!("g{}", (rnd() % 200).min(rnd() % 200))
                };
                out.push((format!("v{v}"), item));
            }
        }
        out
    }

    #[test]
    fn co_occurrence_beats_most_popular_on_planted_preferences() {
        let (viewers, per_viewer) = (2_000u64, 12usize);
        let s = stream(42, viewers, per_viewer);
        // Hold out each viewer's last interaction.
        let cut = s.len() - viewers as usize;
        let mut r = Recommender::new(Limits::default());
        for (v, i) in &s[..cut] {
            r.record(v, i, Action::Play);
        }
        let (mut hits, mut popular_hits) = (0, 0);
        let popular = r.most_popular(10);
        for (v, i) in &s[cut..] {
            let recs = r.recommend(v, 10);
            // The linked items come first; the most popular fill the rest.
            let linked = r.linked(v, 10);
            assert!(!linked.is_empty() && recs.starts_with(&linked), "{v}");
            if recs.contains(i) {
                hits += 1;
            }
            if popular.contains(i) {
                popular_hits += 1;
            }
        }
        let (hr, base) = (
            f64::from(hits) / viewers as f64,
            f64::from(popular_hits) / viewers as f64,
        );
        println!("hit rate @10: co-occurrence {hr:.3}, most popular {base:.3}");
        assert!(
            hr > 2.0 * base && hr > 0.25,
            "co-occurrence {hr}, most popular {base}"
        );
    }

    #[test]
    fn state_stays_bounded_whatever_the_stream() {
        let limits = Limits {
            history: 5,
            neighbours: 8,
            items: 500,
            viewers: 300,
        };
        let mut r = Recommender::new(limits);
        for i in 0..50_000u64 {
            let action =
                [Action::Play, Action::Complete, Action::Like, Action::Skip][(i % 4) as usize];
            r.record(
                &format!("v{}", i % 1_000),
                &format!("i{}", (i * 7919) % 5_000),
                action,
            );
        }
        let (items, viewers) = r.size();
        assert!(items <= 500 && viewers <= 300, "{items} {viewers}");
        assert!(r.items.values().all(|it| it.links.len() <= 8));
        assert!(r.viewers.values().all(|v| v.recent.len() <= 5));
        assert_eq!(r.ids.len(), r.items.len());
        // The order indexes hold exactly the entries, and the least recent went first.
        assert_eq!(r.item_order.len(), r.items.len());
        assert_eq!(r.viewer_order.len(), r.viewers.len());
        assert!(r.viewers.contains_key("v998") && !r.viewers.contains_key("v0"));
        assert!(
            r.viewer_order
                .iter()
                .all(|(t, v)| r.viewers.get(v).is_some_and(|x| x.last_seen == *t))
        );
        assert!(r.linked("v998", 10).len() <= 10);
        // The list kept ready, and a longer one from the catalog, agree on what they share.
        let (ready, long) = (r.popular(POPULAR_KEPT), r.popular(400));
        assert_eq!((ready.len(), long.len()), (POPULAR_KEPT, 400));
        assert_eq!(r.popular_sorted(POPULAR_KEPT), long[..POPULAR_KEPT]);
        let stale = ready.iter().zip(&long).filter(|(a, b)| a != b).count();
        assert!(stale < POPULAR_KEPT / 4, "{stale} places differ");
        // Nothing fills a stranger's linked items.
        assert!(r.linked("nobody", 10).is_empty());
        assert_eq!(r.recommend("v999", 10).len(), 10);
        assert_eq!(r.recommend("nobody", 3).len(), 3);
        assert!(weight(Action::Skip) < 0.0 && weight(Action::Like) > weight(Action::Play));
    }
}
