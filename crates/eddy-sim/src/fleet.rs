//! A fleet of edges with pre-warm: what fetching ahead of demand gains, per byte fetched.
//!
//! The question: do forecast-driven pre-warm hints gain more hits per byte than
//! pre-warming nothing, or pre-warming what other edges saw spike? The model:
//!
//! - [`FleetConfig::edges`] edges (4), each its own cache of [`FleetConfig::capacity`] bytes
//!   under one of `eddy-cache`'s policies (S3-FIFO, the edge's default), driven as
//!   [`crate::run`] drives it. Each request goes to one edge, chosen by a seeded hash of its
//!   position (viewers spread over edges).
//! - **Titles.** A synthetic workload's release (a new episode: consecutive objects published at
//!   one moment) is one title; any other object is a title of its own. Interactions name titles,
//!   requests name objects.
//! - **`spikes`**: what the edges do today. Each edge counts requests per object in tumbling
//!   windows of [`SpikeRule::window`] seconds against a baseline (an exponentially weighted mean
//!   of past windows, time constant [`SpikeRule::baseline`]); an object whose window count is at
//!   least [`SpikeRule::min_count`] and [`SpikeRule::factor`] times its baseline spikes, and
//!   every other edge fetches it at the end of the window.
//! - **`forecast`**: the control plane's forecast ([`eddy_predict::forecast`], the code `eddy
//!   control` runs) sees every request's title fleet-wide, as it sees plays. Every
//!   [`FleetConfig::interval`] seconds each rising title is hinted: the objects of it requested
//!   most recently anywhere in the fleet (up to [`FleetConfig::hint_objects`]; a lone object is
//!   its own title), and every edge fetches those it lacks.
//! - **`both`**: the two together.
//!
//! Every strategy fetches within the same budget: [`FleetConfig::budget`] bytes per edge per
//! interval (the edge's `prewarm_budget`, scaled to the trace's rate). A fetch is a request
//! through the edge's cache (it is one on the edge: a prefetch goes through the proxy), so it
//! inserts the object under the policy's rules; an object held already costs nothing. Fetched
//! bytes are origin traffic; what they buy is hits later.
//!
//! The figure: hits gained over `none` per GiB fetched, and byte hits gained per byte fetched.

use eddy_cache::policy::Replay;
use eddy_predict::forecast::{Forecast, ForecastConfig};

use crate::SimError;
use crate::synth::Synthetic;
use crate::trace::Request;

/// What pre-warms the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Nothing.
    None,
    /// Other edges' spikes.
    Spikes,
    /// The forecast's hints.
    Forecast,
    /// Spikes and hints.
    Both,
}

impl Strategy {
    /// Every strategy, `none` first.
    pub const ALL: [Strategy; 4] = [
        Strategy::None,
        Strategy::Spikes,
        Strategy::Forecast,
        Strategy::Both,
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::None => "none",
            Strategy::Spikes => "spikes",
            Strategy::Forecast => "forecast",
            Strategy::Both => "both",
        }
    }

    fn spikes(self) -> bool {
        matches!(self, Strategy::Spikes | Strategy::Both)
    }

    fn forecast(self) -> bool {
        matches!(self, Strategy::Forecast | Strategy::Both)
    }
}

/// When an object spikes at an edge (the edge's rule, `[spike]`, scaled to a trace's rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeRule {
    /// Seconds per counting window.
    pub window: f64,
    /// Time constant of the baseline, seconds.
    pub baseline: f64,
    /// A window count this many times the baseline spikes.
    pub factor: f64,
    /// Window counts below this never spike.
    pub min_count: u32,
}

impl Default for SpikeRule {
    /// 10 s windows against a 60 s baseline, 10 times, at least 5 requests (the edge's 200
    /// requests/s floor is for production rates; the synthetic workloads run at 20-25 a second
    /// for the whole fleet).
    fn default() -> Self {
        SpikeRule {
            window: 10.0,
            baseline: 60.0,
            factor: 10.0,
            min_count: 5,
        }
    }
}

/// The fleet and its pre-warm budget.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// Edges.
    pub edges: usize,
    /// Bytes each edge caches.
    pub capacity: u64,
    /// The edges' policy (a name [`crate::run::policy`] takes).
    pub policy: String,
    /// Seconds between hint rounds (and budget refills).
    pub interval: f64,
    /// Bytes each edge may fetch per interval.
    pub budget: u64,
    /// Objects hinted per rising title, at most.
    pub hint_objects: usize,
    /// Rising titles hinted per round, at most.
    pub hint_titles: usize,
    /// The spike rule.
    pub spike: SpikeRule,
    /// The forecast's parameters.
    pub forecast: ForecastConfig,
    /// Seed of the request-to-edge spread.
    pub seed: u64,
}

impl FleetConfig {
    /// Four edges of `capacity` bytes under S3-FIFO; hints every 10 s, 16 titles of up to 20
    /// objects, 64 MiB per edge per interval; the edge's spike rule scaled down, and the
    /// forecast's defaults with its rate floor scaled to the trace (a title with a request every
    /// 20 s is rising if it just started).
    pub fn new(capacity: u64) -> FleetConfig {
        FleetConfig {
            edges: 4,
            capacity,
            policy: "s3fifo".into(),
            interval: 10.0,
            budget: 64 << 20,
            hint_objects: 20,
            hint_titles: 16,
            spike: SpikeRule::default(),
            forecast: ForecastConfig {
                min_rate: 0.05,
                ..ForecastConfig::default()
            },
            seed: 1,
        }
    }
}

/// What one run counted, over every edge.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FleetOutcome {
    /// Viewer requests.
    pub requests: u64,
    /// Of them, misses.
    pub misses: u64,
    /// Bytes requested.
    pub bytes: u64,
    /// Bytes of the misses.
    pub missed_bytes: u64,
    /// Objects fetched ahead of demand.
    pub prefetches: u64,
    /// Bytes fetched ahead of demand.
    pub prefetched_bytes: u64,
    /// Most bytes one edge fetched in one interval.
    pub max_interval_bytes: u64,
}

impl FleetOutcome {
    /// Misses over requests.
    pub fn miss_ratio(&self) -> f64 {
        ratio(self.misses, self.requests)
    }

    /// Missed bytes over requested bytes.
    pub fn byte_miss_ratio(&self) -> f64 {
        ratio(self.missed_bytes, self.bytes)
    }

    /// Hits gained over `base` per GiB fetched ahead (0 when nothing was fetched).
    pub fn hits_per_gib(&self, base: &FleetOutcome) -> f64 {
        let gained = base.misses as f64 - self.misses as f64;
        if self.prefetched_bytes == 0 {
            0.0
        } else {
            gained / (self.prefetched_bytes as f64 / f64::from(1u32 << 30))
        }
    }

    /// Bytes served from cache gained over `base` per byte fetched ahead.
    pub fn byte_hits_per_byte(&self, base: &FleetOutcome) -> f64 {
        let gained = base.missed_bytes as f64 - self.missed_bytes as f64;
        if self.prefetched_bytes == 0 {
            0.0
        } else {
            gained / self.prefetched_bytes as f64
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Each object's title: the first object of its release, or itself.
pub fn titles(syn: &Synthetic) -> Vec<u64> {
    let mut out = Vec::with_capacity(syn.meta.len());
    for (id, m) in syn.meta.iter().enumerate() {
        let id = id as u64;
        let title = match (id.checked_sub(1), out.last()) {
            (Some(prev), Some(&t)) if m.published > 0 => {
                let p = &syn.meta[prev as usize];
                if p.published == m.published { t } else { id }
            }
            _ => id,
        };
        out.push(title);
    }
    out
}

/// One edge: its cache and what it spent of its budget this interval.
struct Edge {
    cache: Replay,
    policy: Box<dyn eddy_cache::policy::Policy>,
    spent: u64,
    /// Requests per object in the current window, and each object's baseline.
    window: std::collections::HashMap<u64, u32>,
    baseline: std::collections::HashMap<u64, f64>,
}

impl Edge {
    /// Fetch `id` of `size` ahead of demand unless held or over `budget`; whether it did.
    fn prefetch(&mut self, id: u64, size: u64, budget: u64, out: &mut FleetOutcome) -> bool {
        if self.cache.contains(id) || self.spent >= budget {
            return false;
        }
        self.cache.request(self.policy.as_mut(), id, size);
        self.spent += size;
        out.prefetches += 1;
        out.prefetched_bytes += size;
        true
    }

    /// End a spike window: the objects that spiked here.
    fn spiked(&mut self, rule: &SpikeRule) -> Vec<u64> {
        let alpha = 1.0 - (-rule.window / rule.baseline.max(rule.window)).exp();
        let mut out = Vec::new();
        for (id, n) in self.window.drain() {
            let base = self.baseline.entry(id).or_insert(0.0);
            let n = f64::from(n);
            if n >= f64::from(rule.min_count) && n >= rule.factor * *base {
                out.push(id);
            }
            *base += alpha * (n - *base);
        }
        // Objects idle this window decay toward 0; forget those that are nearly 0.
        self.baseline.retain(|_, b| {
            *b *= 1.0 - alpha;
            *b > 0.01
        });
        out.sort_unstable();
        out
    }
}

/// Run `syn` over the fleet with `strategy`.
pub fn simulate(
    syn: &Synthetic,
    cfg: &FleetConfig,
    strategy: Strategy,
) -> Result<FleetOutcome, SimError> {
    let objects = syn.meta.len();
    let mut edges = (0..cfg.edges.max(1))
        .map(|_| {
            Ok(Edge {
                cache: Replay::new(cfg.capacity),
                policy: crate::run::policy(&cfg.policy, cfg.capacity, objects)?,
                spent: 0,
                window: Default::default(),
                baseline: Default::default(),
            })
        })
        .collect::<Result<Vec<Edge>, SimError>>()?;
    let titles = titles(syn);
    // A title's objects: a release's run of ids (first..first + n).
    let mut release_len: std::collections::HashMap<u64, u64> = Default::default();
    for &t in &titles {
        *release_len.entry(t).or_default() += 1;
    }
    let size_of = |id: u64| syn.meta.get(id as usize).map_or(0, |m| u64::from(m.size));
    let mut forecast: Forecast<u64> = Forecast::new(cfg.forecast);
    // Per title of several objects, the ones requested lately, newest last, each once.
    let mut recent: std::collections::HashMap<u64, std::collections::VecDeque<u64>> =
        Default::default();
    let mut out = FleetOutcome::default();
    let interval = cfg.interval.max(1.0);
    let spike_window = cfg.spike.window.max(1.0);
    let mut next_round = interval;
    let mut next_window = spike_window;
    let start = syn.requests.first().map_or(0.0, |r| f64::from(r.time));
    for (i, r) in syn.requests.iter().enumerate() {
        let t = f64::from(r.time) - start;
        // Spike windows end: every other edge fetches what spiked at one.
        while t >= next_window {
            if strategy.spikes() {
                let spiked: Vec<(usize, Vec<u64>)> = edges
                    .iter_mut()
                    .enumerate()
                    .map(|(e, edge)| (e, edge.spiked(&cfg.spike)))
                    .collect();
                for (from, ids) in spiked {
                    for id in ids {
                        for (e, edge) in edges.iter_mut().enumerate() {
                            if e != from {
                                edge.prefetch(id, size_of(id), cfg.budget, &mut out);
                            }
                        }
                    }
                }
            }
            next_window += spike_window;
        }
        // Hint rounds: the forecast's rising titles; budgets refill.
        while t >= next_round {
            if strategy.forecast() {
                for (title, _) in forecast.rising(t, cfg.hint_titles) {
                    let hinted: Vec<u64> = match recent.get(&title) {
                        Some(r) => r.iter().rev().copied().collect(),
                        None => vec![title],
                    };
                    for id in hinted {
                        for edge in edges.iter_mut() {
                            edge.prefetch(id, size_of(id), cfg.budget, &mut out);
                        }
                    }
                }
            }
            for edge in edges.iter_mut() {
                out.max_interval_bytes = out.max_interval_bytes.max(edge.spent);
                edge.spent = 0;
            }
            next_round += interval;
        }
        let e = edge_of(i as u64, cfg.seed, edges.len());
        let edge = &mut edges[e];
        serve(edge, r, &mut out);
        if strategy.spikes() {
            *edge.window.entry(r.id).or_default() += 1;
        }
        if strategy.forecast()
            && let Some(&title) = titles.get(r.id as usize)
        {
            forecast.record(&title, 1.0, t);
            if release_len.get(&title).is_some_and(|&n| n > 1) {
                let r_ids = recent.entry(title).or_default();
                if let Some(at) = r_ids.iter().position(|&x| x == r.id) {
                    r_ids.remove(at);
                }
                if r_ids.len() >= cfg.hint_objects.max(1) {
                    r_ids.pop_front();
                }
                r_ids.push_back(r.id);
            }
        }
    }
    for edge in &edges {
        out.max_interval_bytes = out.max_interval_bytes.max(edge.spent);
    }
    Ok(out)
}

fn serve(edge: &mut Edge, r: &Request, out: &mut FleetOutcome) {
    let size = u64::from(r.size);
    out.requests += 1;
    out.bytes += size;
    if !edge.cache.request(edge.policy.as_mut(), r.id, size) {
        out.misses += 1;
        out.missed_bytes += size;
    }
}

/// The edge request `i` goes to: a seeded hash (splitmix64) over `edges`.
fn edge_of(i: u64, seed: u64, edges: usize) -> usize {
    let mut z = i.wrapping_add(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % edges.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Workload;

    fn small() -> Synthetic {
        Workload {
            requests: 60_000,
            catalog: 5_000,
            rate: 5.0,
            releases_per_day: 48.0,
            release_objects: 30,
            release_share: 0.3,
            release_half_life: 1800.0,
            ..Workload::vod(3)
        }
        .generate()
    }

    #[test]
    fn titles_group_a_release_and_leave_the_catalog_alone() {
        let syn = small();
        let t = titles(&syn);
        assert_eq!(t.len(), syn.meta.len());
        assert_eq!(t[0], 0);
        // Every release object's title is the first of its run, published at the same moment.
        for (id, &title) in t.iter().enumerate() {
            assert!(title <= id as u64);
            assert_eq!(syn.meta[id].published, syn.meta[title as usize].published);
        }
        assert!(t.iter().enumerate().any(|(id, &title)| title != id as u64));
    }

    #[test]
    fn prewarm_gains_hits_within_its_budget_and_none_fetches_nothing() -> Result<(), SimError> {
        let syn = small();
        let (_, bytes) = crate::sweep::working_set(&syn.requests);
        let mut cfg = FleetConfig::new(bytes / 50);
        cfg.budget = 8 << 20;
        let runs: Vec<FleetOutcome> = Strategy::ALL
            .iter()
            .map(|s| simulate(&syn, &cfg, *s))
            .collect::<Result<_, _>>()?;
        let none = runs[0];
        assert_eq!((none.prefetches, none.prefetched_bytes), (0, 0));
        assert_eq!(none.requests, syn.requests.len() as u64);
        // Same seed, same numbers.
        assert_eq!(simulate(&syn, &cfg, Strategy::Forecast)?, runs[2]);
        // The forecast fetched something and gained hits for it.
        let forecast = runs[2];
        assert!(forecast.prefetched_bytes > 0);
        assert!(forecast.misses < none.misses, "{forecast:?} {none:?}");
        assert!(forecast.hits_per_gib(&none) > 0.0);
        // No edge fetched more than its budget in an interval, plus the one object that
        // crossed it.
        let largest = syn
            .meta
            .iter()
            .map(|m| u64::from(m.size))
            .max()
            .unwrap_or(0);
        for r in &runs {
            assert!(r.max_interval_bytes <= cfg.budget + largest, "{r:?}");
        }
        Ok(())
    }

    #[test]
    fn requests_spread_over_every_edge() {
        let mut seen = [0u32; 4];
        for i in 0..4000 {
            seen[edge_of(i, 7, 4)] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
    }
}
