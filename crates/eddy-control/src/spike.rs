//! Traffic-spike detection: per-key request rates against a slow baseline, in bounded memory.
//!
//! An edge calls [`SpikeDetector::record`] for every request, once with the object's key and once
//! with its host. Requests are counted per tick ([`SpikeConfig::tick`], 100 ms by default):
//!
//! - every key goes into a count-min sketch (conservative update, fixed size), so cold keys cost
//!   no memory of their own;
//! - a key whose sketch count in the current tick reaches the rate floor
//!   ([`SpikeConfig::min_rate`]) is tracked by name, in a table of at most
//!   [`SpikeConfig::tracked`] keys;
//! - when a tick closes, each tracked key's rate is compared with its baseline, an EWMA with time
//!   constant [`SpikeConfig::baseline_window`]. A rate at least [`SpikeConfig::factor`] times the
//!   baseline (and at least the floor) is a [`Spike`]; a key reports again only after
//!   [`SpikeConfig::cooldown`].
//!
//! A key that goes from nothing to 5,000 requests/s is reported when the first tick after its
//! start closes: within one tick plus the time to the next request.
//!
//! Pure: no clock of its own (callers pass `now`), no I/O, no locks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Detector settings.
#[derive(Debug, Clone)]
pub struct SpikeConfig {
    /// Counting interval.
    pub tick: Duration,
    /// A rate this many times the baseline is a spike.
    pub factor: f64,
    /// Rates below this (requests/s) are never spikes, and keys below it are not tracked.
    pub min_rate: f64,
    /// Time constant of the baseline EWMA.
    pub baseline_window: Duration,
    /// Most keys tracked by name.
    pub tracked: usize,
    /// Count-min sketch columns per row (4 rows).
    pub sketch_width: usize,
    /// Least time between two reports for one key.
    pub cooldown: Duration,
}

impl Default for SpikeConfig {
    fn default() -> Self {
        SpikeConfig {
            tick: Duration::from_millis(100),
            factor: 10.0,
            min_rate: 200.0,
            baseline_window: Duration::from_secs(60),
            tracked: 256,
            sketch_width: 4096,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// A detected spike.
#[derive(Debug, Clone, PartialEq)]
pub struct Spike {
    /// The object or host.
    pub key: String,
    /// Requests/s in the tick that closed.
    pub rate: f64,
    /// Baseline requests/s before it.
    pub baseline: f64,
}

const ROWS: usize = 4;

#[derive(Debug)]
struct Tracked {
    key: String,
    count: u32,
    /// `None` until the key's first tick closes.
    baseline: Option<f64>,
    last_report: Option<Instant>,
}

/// Per-key rate tracking. One per edge (callers serialise access).
#[derive(Debug)]
pub struct SpikeDetector {
    cfg: SpikeConfig,
    sketch: Vec<u32>,
    tracked: HashMap<u64, Tracked>,
    tick_start: Instant,
    /// Sketch count that makes a key tracked: the floor rate over one tick.
    track_at: u32,
}

fn hash(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

impl SpikeDetector {
    /// A detector whose first tick starts at `now`.
    pub fn new(cfg: SpikeConfig, now: Instant) -> SpikeDetector {
        let width = cfg.sketch_width.max(64);
        let track_at = (cfg.min_rate * cfg.tick.as_secs_f64()).ceil().max(1.0) as u32;
        SpikeDetector {
            sketch: vec![0; ROWS * width],
            tracked: HashMap::with_capacity(cfg.tracked),
            tick_start: now,
            track_at,
            cfg: SpikeConfig {
                sketch_width: width,
                ..cfg
            },
        }
    }

    /// Bytes this detector holds, bounded by its configuration.
    pub fn memory_bound(&self) -> usize {
        self.sketch.len() * 4
            + self.cfg.tracked * (std::mem::size_of::<(u64, Tracked)>() + 256)
            + std::mem::size_of::<Self>()
    }

    /// Keys tracked by name now.
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Count one request for `key` at `now`. Closes the ticks that ended before `now` first, and
    /// returns the spikes they revealed.
    pub fn record(&mut self, key: &str, now: Instant) -> Vec<Spike> {
        let spikes = self.advance(now);
        let h = hash(key);
        if let Some(t) = self.tracked.get_mut(&h) {
            t.count = t.count.saturating_add(1);
            return spikes;
        }
        let est = self.sketch_add(h);
        if est >= self.track_at {
            self.track(h, key, est);
        }
        spikes
    }

    /// Close every tick that ended at or before `now`; returns the spikes found. Call it
    /// periodically too, so a quiet edge's baselines keep decaying.
    pub fn advance(&mut self, now: Instant) -> Vec<Spike> {
        let mut spikes = Vec::new();
        let elapsed = now.saturating_duration_since(self.tick_start);
        if elapsed < self.cfg.tick {
            return spikes;
        }
        let secs = elapsed.as_secs_f64();
        let alpha = (secs / self.cfg.baseline_window.as_secs_f64()).min(1.0);
        let floor = self.cfg.min_rate;
        self.tracked.retain(|_, t| {
            let rate = f64::from(t.count) / secs;
            let base = t.baseline.unwrap_or(0.0);
            let cooled = t
                .last_report
                .is_none_or(|at| now.saturating_duration_since(at) >= self.cfg.cooldown);
            if rate >= floor && rate >= self.cfg.factor * base && cooled {
                spikes.push(Spike {
                    key: t.key.clone(),
                    rate,
                    baseline: base,
                });
                t.last_report = Some(now);
            }
            let next = match t.baseline {
                None => rate * alpha,
                Some(b) => b + alpha * (rate - b),
            };
            t.baseline = Some(next);
            t.count = 0;
            // Forget keys that went quiet: their baseline no longer protects anything.
            next >= floor / self.cfg.factor || rate > 0.0
        });
        self.sketch.iter_mut().for_each(|c| *c = 0);
        self.tick_start = now;
        spikes
    }

    fn sketch_add(&mut self, h: u64) -> u32 {
        let width = self.cfg.sketch_width;
        let idx = |row: usize| {
            let x =
                h.rotate_left(16 * row as u32) ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            row * width + (xxhash_rust::xxh3::xxh3_64(&x.to_le_bytes()) as usize % width)
        };
        let cells: [usize; ROWS] = [idx(0), idx(1), idx(2), idx(3)];
        let min = cells.iter().map(|&i| self.sketch[i]).min().unwrap_or(0);
        // Conservative update: raise only the cells at the minimum.
        for &i in &cells {
            if self.sketch[i] == min {
                self.sketch[i] = min.saturating_add(1);
            }
        }
        min + 1
    }

    fn track(&mut self, h: u64, key: &str, count: u32) {
        if self.tracked.len() >= self.cfg.tracked {
            // Make room by dropping the coldest key, if it is colder than this one.
            let coldest = self
                .tracked
                .iter()
                .map(|(k, t)| (*k, t.count, t.baseline.unwrap_or(0.0)))
                .min_by(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)));
            match coldest {
                Some((k, c, _)) if c < count => {
                    self.tracked.remove(&k);
                }
                _ => return,
            }
        }
        self.tracked.insert(
            h,
            Tracked {
                key: key.to_string(),
                count,
                baseline: None,
                last_report: None,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive(
        d: &mut SpikeDetector,
        key: &str,
        rate: u32,
        from: Instant,
        secs: f64,
    ) -> Vec<(f64, Spike)> {
        let n = (f64::from(rate) * secs) as u32;
        let step = Duration::from_secs_f64(1.0 / f64::from(rate));
        let mut out = Vec::new();
        for i in 0..n {
            let now = from + step * i;
            for s in d.record(key, now) {
                out.push(((now - from).as_secs_f64(), s));
            }
        }
        out
    }

    #[test]
    fn zero_to_5000_per_second_is_reported_within_one_tick() {
        let t0 = Instant::now();
        let mut d = SpikeDetector::new(SpikeConfig::default(), t0);
        let spikes = drive(&mut d, "h/hot", 5000, t0, 1.0);
        let (at, s) = spikes.first().expect("a spike");
        assert!(*at <= 0.25, "reported after {at} s");
        assert_eq!(s.key, "h/hot");
        assert!(s.rate > 2000.0, "{s:?}");
        // Cooldown: one report for the whole second.
        assert_eq!(spikes.len(), 1);
    }

    #[test]
    fn steady_traffic_is_not_a_spike_and_a_tenfold_jump_is() {
        let t0 = Instant::now();
        let mut d = SpikeDetector::new(SpikeConfig::default(), t0);
        // Warm the baseline: 300 req/s for 5 minutes is reported once, on arrival.
        let warm = drive(&mut d, "h/steady", 300, t0, 300.0);
        assert!(warm.len() <= 1, "{warm:?}");
        assert!(warm.iter().all(|(at, _)| *at < 1.0), "{warm:?}");
        let later = t0 + Duration::from_secs(300);
        let calm = drive(&mut d, "h/steady", 500, later, 5.0);
        assert!(calm.is_empty(), "1.7x is not a spike: {calm:?}");
        let surge = drive(
            &mut d,
            "h/steady",
            6000,
            later + Duration::from_secs(5),
            1.0,
        );
        assert_eq!(surge.len(), 1, "{surge:?}");
        assert!(surge[0].1.baseline > 250.0, "{surge:?}");
    }

    #[test]
    fn cold_keys_are_never_tracked_and_memory_stays_bounded() {
        let t0 = Instant::now();
        let cfg = SpikeConfig {
            tracked: 64,
            ..SpikeConfig::default()
        };
        let mut d = SpikeDetector::new(cfg, t0);
        let bound = d.memory_bound();
        // 200,000 distinct keys once each over 10 s: a long tail, none hot.
        let mut spikes = 0;
        for i in 0..200_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 50);
            spikes += d.record(&format!("h/tail/{i}"), now).len();
        }
        assert_eq!(spikes, 0);
        assert!(d.tracked() <= 64, "tracked {}", d.tracked());
        assert_eq!(d.memory_bound(), bound);
    }

    #[test]
    fn quiet_keys_are_forgotten() {
        let t0 = Instant::now();
        let mut d = SpikeDetector::new(SpikeConfig::default(), t0);
        drive(&mut d, "h/once", 3000, t0, 0.5);
        assert_eq!(d.tracked(), 1);
        let mut now = t0 + Duration::from_secs(1);
        for _ in 0..600 {
            d.advance(now);
            now += Duration::from_secs(1);
        }
        assert_eq!(d.tracked(), 0);
    }

    proptest::proptest! {
        /// Whatever the traffic, the table never exceeds its bound and no spike is below the floor.
        #[test]
        fn bounded_and_floored(keys in proptest::collection::vec((0u16..2000, 0u32..2000), 1..3000)) {
            let t0 = Instant::now();
            let cfg = SpikeConfig { tracked: 16, ..SpikeConfig::default() };
            let floor = cfg.min_rate;
            let mut d = SpikeDetector::new(cfg, t0);
            let mut at = t0;
            for (k, gap_us) in keys {
                at += Duration::from_micros(u64::from(gap_us));
                for s in d.record(&format!("k{k}"), at) {
                    proptest::prop_assert!(s.rate >= floor);
                }
                proptest::prop_assert!(d.tracked() <= 16);
            }
        }
    }
}
