//! A seeded synthetic CDN workload: what a delivery tier sees in a day or two of traffic, with
//! the features that make caching hard and prediction worthwhile.
//!
//! - **Popularity**: Zipf over a catalog, with **churn** (ranks drift: a share of the catalog
//!   swaps places every simulated hour).
//! - **New content**: releases (new episodes) arrive on a schedule; each takes a share of the
//!   traffic that starts high and halves every `release_half_life`, then its objects join the
//!   catalog's long tail.
//! - **Flash crowds**: now and then one object takes a large share of the traffic for a while.
//! - **Scans**: crawlers walk runs of cold objects once each.
//! - **A diurnal rate**: requests per second follow a daily sine.
//! - **Heavy-tailed sizes** by kind: video segments (log-normal, ~1 MB), images (~40 KB), pages
//!   (~8 KB), downloads (Pareto from 2 MB, capped at 256 MB).
//!
//! The same seed gives the same trace, byte for byte ([`Workload::generate`]). Object ids are
//! dense (0, 1, 2, … in order of creation) and [`Synthetic::meta`] says, per id, what kind of
//! object it is and when it was published: what a learned policy may use as features.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal, Pareto, Zipf};

use crate::trace::{Request, with_next};

/// What kind of object an id is (a feature for learned policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A video segment.
    Segment,
    /// An image.
    Image,
    /// A page, script or API response.
    Page,
    /// A large download.
    Download,
}

impl Kind {
    /// The edge's content kind for this kind.
    pub fn content_kind(self) -> eddy_cache::policy::ContentKind {
        use eddy_cache::policy::ContentKind;
        match self {
            Kind::Segment => ContentKind::Segment,
            Kind::Image => ContentKind::Image,
            Kind::Page => ContentKind::Page,
            Kind::Download => ContentKind::Download,
        }
    }

    /// Every kind, in a fixed order (an index for feature vectors).
    pub const ALL: [Kind; 4] = [Kind::Segment, Kind::Image, Kind::Page, Kind::Download];

    /// Position in [`Kind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the generator knows about one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its kind.
    pub kind: Kind,
    /// Its size in bytes.
    pub size: u32,
    /// When it was published (trace seconds; 0 for the initial catalog).
    pub published: u32,
}

/// A generated trace and what it is made of.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// The requests, with [`Request::next`] filled in.
    pub requests: Vec<Request>,
    /// Per object id.
    pub meta: Vec<ObjectMeta>,
}

impl Synthetic {
    /// What the edge would know about the object of `r` from its response headers: kind and
    /// age since publication.
    pub fn hint(&self, r: &Request) -> Option<eddy_cache::policy::Hint> {
        let m = self.meta.get(r.id as usize)?;
        Some(eddy_cache::policy::Hint {
            kind: m.kind.content_kind(),
            age: Some(r.time.saturating_sub(m.published)),
        })
    }
}

/// The knobs of a synthetic workload. Start from a preset ([`Workload::vod`],
/// [`Workload::web`]) and change what the experiment is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Seed for every random choice.
    pub seed: u64,
    /// Requests to generate.
    pub requests: usize,
    /// Objects in the catalog at the start.
    pub catalog: usize,
    /// Zipf exponent of catalog popularity.
    pub zipf: f64,
    /// Share of catalog ranks that swap places every simulated hour.
    pub churn: f64,
    /// Mix of object kinds (weights for [`Kind::ALL`]).
    pub kinds: [f64; 4],
    /// Mean requests per second (over a day).
    pub rate: f64,
    /// Amplitude of the daily rate swing (0: flat; 0.6: peak 1.6× the mean, trough 0.4×).
    pub diurnal: f64,
    /// New releases per simulated day.
    pub releases_per_day: f64,
    /// Objects per release (an episode's segments, a gallery's images).
    pub release_objects: usize,
    /// Share of traffic a release takes when it is new.
    pub release_share: f64,
    /// Seconds for a release's share to halve.
    pub release_half_life: f64,
    /// Flash crowds per simulated day.
    pub flashes_per_day: f64,
    /// Share of traffic a flash crowd takes.
    pub flash_share: f64,
    /// Seconds a flash crowd lasts.
    pub flash_seconds: f64,
    /// Crawler scans per simulated day.
    pub scans_per_day: f64,
    /// Cold objects a scan walks.
    pub scan_objects: usize,
}

impl Workload {
    /// Video on demand: mostly segments, a new episode (300 segments) several times a day that
    /// is hot on release and cools over hours, mild churn, a strong daily cycle.
    pub fn vod(seed: u64) -> Workload {
        Workload {
            seed,
            requests: 2_000_000,
            catalog: 200_000,
            zipf: 0.9,
            churn: 0.002,
            kinds: [0.85, 0.10, 0.05, 0.0],
            rate: 20.0,
            diurnal: 0.6,
            releases_per_day: 6.0,
            release_objects: 300,
            release_share: 0.25,
            release_half_life: 3.0 * 3600.0,
            flashes_per_day: 1.0,
            flash_share: 0.05,
            flash_seconds: 1800.0,
            scans_per_day: 2.0,
            scan_objects: 5_000,
        }
    }

    /// A web and image CDN: small objects with a few large downloads, frequent small releases
    /// (new articles and their images), flash crowds, crawler scans.
    pub fn web(seed: u64) -> Workload {
        Workload {
            seed,
            requests: 2_000_000,
            catalog: 300_000,
            zipf: 0.8,
            churn: 0.005,
            kinds: [0.0, 0.55, 0.42, 0.03],
            rate: 25.0,
            diurnal: 0.5,
            releases_per_day: 48.0,
            release_objects: 40,
            release_share: 0.15,
            release_half_life: 1800.0,
            flashes_per_day: 4.0,
            flash_share: 0.10,
            flash_seconds: 900.0,
            scans_per_day: 6.0,
            scan_objects: 10_000,
        }
    }

    /// A preset by name: `vod`, `web`, or either with `-irm` (popularity that holds still: the
    /// same catalog, sizes and daily rate without churn, releases, flash crowds or scans, so
    /// every request is an independent draw from one Zipf law; see [`crate::bound`]).
    pub fn preset(name: &str, seed: u64) -> Option<Workload> {
        match name {
            "vod" => Some(Workload::vod(seed)),
            "web" => Some(Workload::web(seed)),
            "vod-irm" => Some(Workload::vod(seed).stationary()),
            "web-irm" => Some(Workload::web(seed).stationary()),
            _ => None,
        }
    }

    /// This workload with popularity that holds still: no churn, releases, flash crowds or
    /// scans.
    pub fn stationary(self) -> Workload {
        Workload {
            churn: 0.0,
            releases_per_day: 0.0,
            flashes_per_day: 0.0,
            scans_per_day: 0.0,
            ..self
        }
    }

    /// Each object's request probability, up to a constant factor, if popularity holds still
    /// ([`Workload::stationary`]): catalog object `id` has Zipf rank `id + 1`. `None` for a
    /// workload whose popularity moves.
    pub fn probability(&self) -> Option<impl Fn(u64) -> f64 + use<>> {
        let still = self.churn == 0.0
            && self.releases_per_day == 0.0
            && self.flashes_per_day == 0.0
            && self.scans_per_day == 0.0;
        let (catalog, zipf) = (self.catalog as u64, self.zipf);
        still.then_some(move |id: u64| {
            if id < catalog {
                ((id + 1) as f64).powf(-zipf)
            } else {
                0.0
            }
        })
    }

    /// Generate the trace.
    pub fn generate(&self) -> Synthetic {
        Generator::new(self).run()
    }
}

const DAY: f64 = 86_400.0;

/// A release: its first object id, how many, when.
struct Release {
    first: u64,
    objects: usize,
    at: f64,
}

struct Generator<'a> {
    w: &'a Workload,
    rng: StdRng,
    meta: Vec<ObjectMeta>,
    /// Catalog rank -> object id.
    ranks: Vec<u64>,
    releases: Vec<Release>,
    flash: Option<(u64, f64)>,
    scan: Option<(u64, usize)>,
    sizes: [SizeModel; 4],
}

enum SizeModel {
    LogNormal(LogNormal<f64>),
    Pareto(Pareto<f64>, f64),
    Fixed(f64),
}

impl SizeModel {
    fn sample(&self, rng: &mut StdRng) -> u32 {
        let v = match self {
            SizeModel::LogNormal(d) => d.sample(rng),
            SizeModel::Pareto(d, cap) => d.sample(rng).min(*cap),
            SizeModel::Fixed(v) => *v,
        };
        v.clamp(64.0, f64::from(u32::MAX)) as u32
    }
}

fn log_normal(median: f64, sigma: f64) -> SizeModel {
    // The parameters are constants, so this does not fail; a point mass if it ever did.
    LogNormal::new(median.ln(), sigma).map_or(SizeModel::Fixed(median), SizeModel::LogNormal)
}

impl<'a> Generator<'a> {
    fn new(w: &'a Workload) -> Self {
        let pareto = Pareto::new(2.0 * 1024.0 * 1024.0, 1.1)
            .map_or(SizeModel::Fixed(4.0 * 1024.0 * 1024.0), |d| {
                SizeModel::Pareto(d, 256.0 * 1024.0 * 1024.0)
            });
        let mut g = Generator {
            w,
            rng: StdRng::seed_from_u64(w.seed),
            meta: Vec::new(),
            ranks: Vec::new(),
            releases: Vec::new(),
            flash: None,
            scan: None,
            sizes: [
                log_normal(1_000_000.0, 0.35),
                log_normal(40_000.0, 0.9),
                log_normal(8_000.0, 1.0),
                pareto,
            ],
        };
        for _ in 0..w.catalog {
            let id = g.new_object(0.0);
            g.ranks.push(id);
        }
        g
    }

    fn new_object(&mut self, now: f64) -> u64 {
        let total: f64 = self.w.kinds.iter().sum();
        let mut x = self.rng.random::<f64>() * total.max(f64::MIN_POSITIVE);
        let mut kind = Kind::Page;
        for k in Kind::ALL {
            if x < self.w.kinds[k.index()] {
                kind = k;
                break;
            }
            x -= self.w.kinds[k.index()];
        }
        let size = self.sizes[kind.index()].sample(&mut self.rng);
        self.meta.push(ObjectMeta {
            kind,
            size,
            published: now as u32,
        });
        (self.meta.len() - 1) as u64
    }

    /// Whether an event with `per_day` expected occurrences happens in `dt` seconds.
    fn happens(&mut self, per_day: f64, dt: f64) -> bool {
        per_day > 0.0 && self.rng.random::<f64>() < per_day * dt / DAY
    }

    fn run(mut self) -> Synthetic {
        let w = self.w;
        let zipf = Zipf::new(w.catalog.max(1) as f64, w.zipf.max(0.0)).ok();
        let release_zipf = Zipf::new(w.release_objects.max(1) as f64, 1.0).ok();
        let mut out = Vec::with_capacity(w.requests);
        let mut now = 0.0f64;
        let mut next_hour = 3600.0;
        while out.len() < w.requests {
            // Diurnal arrivals: exponential gaps at the current rate.
            let rate = (w.rate
                * (1.0 + w.diurnal * (2.0 * std::f64::consts::PI * now / DAY).sin()))
            .max(w.rate * 0.05);
            let dt = Exp::new(rate).map_or(1.0 / rate, |e| e.sample(&mut self.rng));
            now += dt;
            if now >= next_hour {
                next_hour += 3600.0;
                self.churn();
            }
            self.events(now, dt);
            let id = self.pick(now, zipf.as_ref(), release_zipf.as_ref());
            out.push(Request {
                time: now as u32,
                id,
                size: self.meta[id as usize].size,
                next: None,
            });
        }
        Synthetic {
            requests: with_next(out),
            meta: self.meta,
        }
    }

    fn churn(&mut self) {
        let n = self.ranks.len();
        if n < 2 {
            return;
        }
        let swaps = (self.w.churn * n as f64) as usize;
        for _ in 0..swaps {
            let a = self.rng.random_range(0..n);
            let b = self.rng.random_range(0..n);
            self.ranks.swap(a, b);
        }
    }

    fn events(&mut self, now: f64, dt: f64) {
        let w = self.w;
        if self.happens(w.releases_per_day, dt) && w.release_objects > 0 {
            let first = self.meta.len() as u64;
            for _ in 0..w.release_objects {
                self.new_object(now);
            }
            self.releases.push(Release {
                first,
                objects: w.release_objects,
                at: now,
            });
        }
        // Releases older than 8 half-lives take no noticeable traffic: they join the catalog.
        let horizon = 8.0 * w.release_half_life;
        while self.releases.first().is_some_and(|r| now - r.at > horizon) {
            let r = self.releases.remove(0);
            for id in r.first..r.first + r.objects as u64 {
                let at = self.rng.random_range(0..=self.ranks.len());
                self.ranks.insert(at, id);
            }
        }
        if self.flash.is_some_and(|(_, until)| now > until) {
            self.flash = None;
        }
        if self.flash.is_none() && self.happens(w.flashes_per_day, dt) && !self.ranks.is_empty() {
            // A tail object suddenly hot (a news story, a shared link).
            let n = self.ranks.len();
            let rank = self.rng.random_range(n / 2..n);
            self.flash = Some((self.ranks[rank], now + w.flash_seconds));
        }
        if self.scan.is_none() && self.happens(w.scans_per_day, dt) && !self.ranks.is_empty() {
            let start = self.rng.random_range(0..self.ranks.len()) as u64;
            self.scan = Some((start, w.scan_objects));
        }
    }

    fn pick(
        &mut self,
        now: f64,
        zipf: Option<&Zipf<f64>>,
        release_zipf: Option<&Zipf<f64>>,
    ) -> u64 {
        let w = self.w;
        if let Some((at, left)) = self.scan {
            // A crawler interleaves with viewers: every other request while it runs.
            if self.rng.random::<bool>() {
                self.scan = (left > 1).then_some((at + 1, left - 1));
                let rank = (at % self.ranks.len() as u64) as usize;
                // Walk from the cold end of the catalog.
                return self.ranks[self.ranks.len() - 1 - rank];
            }
        }
        let mut x = self.rng.random::<f64>();
        if let Some((id, _)) = self.flash {
            if x < w.flash_share {
                return id;
            }
            x -= w.flash_share;
        }
        for r in self.releases.iter().rev() {
            let share = w.release_share * 0.5f64.powf((now - r.at) / w.release_half_life);
            if x < share {
                let k = release_zipf.map_or(1.0, |z| z.sample(&mut self.rng)) as u64;
                return r.first + (k.max(1) - 1).min(r.objects as u64 - 1);
            }
            x -= share;
        }
        let rank = zipf.map_or(1.0, |z| z.sample(&mut self.rng)) as usize;
        self.ranks[(rank.max(1) - 1).min(self.ranks.len() - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> Workload {
        Workload {
            requests: 50_000,
            catalog: 5_000,
            ..Workload::vod(seed)
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_trace() {
        let a = small(7).generate();
        let b = small(7).generate();
        assert_eq!(a.requests, b.requests);
        assert_eq!(a.meta, b.meta);
        let c = small(8).generate();
        assert_ne!(a.requests, c.requests);
    }

    #[test]
    fn the_trace_has_what_it_says() {
        let s = Workload {
            requests: 200_000,
            catalog: 20_000,
            releases_per_day: 24.0,
            ..Workload::web(1)
        }
        .generate();
        let r = &s.requests;
        assert_eq!(r.len(), 200_000);
        // Times never go back, ids are dense and sizes match the catalog.
        assert!(r.windows(2).all(|p| p[0].time <= p[1].time));
        assert!(r.iter().all(|q| (q.id as usize) < s.meta.len()));
        assert!(r.iter().all(|q| q.size == s.meta[q.id as usize].size));
        // Releases happened: objects published after the start were requested.
        assert!(r.iter().any(|q| s.meta[q.id as usize].published > 0));
        // Skewed: the most requested 1 % of objects take far more than 1 % of requests.
        let mut counts = std::collections::HashMap::<u64, u64>::new();
        for q in r {
            *counts.entry(q.id).or_default() += 1;
        }
        let mut c: Vec<u64> = counts.values().copied().collect();
        c.sort_unstable_by(|a, b| b.cmp(a));
        let top: u64 = c[..c.len() / 100].iter().sum();
        assert!(top as f64 > 0.2 * r.len() as f64, "top 1 % took {top}");
        // Heavy tail: the largest object is orders of magnitude above the median.
        let mut sizes: Vec<u32> = s.meta.iter().map(|m| m.size).collect();
        sizes.sort_unstable();
        assert!(sizes[sizes.len() - 1] > 100 * sizes[sizes.len() / 2]);
    }

    #[test]
    fn the_rate_follows_the_day() {
        let s = Workload {
            requests: 400_000,
            rate: 4.0,
            ..small(3)
        }
        .generate();
        // Requests per hour of day: the peak quarter (around 06:00) beats the trough (18:00).
        let mut hours = [0u64; 24];
        for q in &s.requests {
            hours[(q.time as usize / 3600) % 24] += 1;
        }
        assert!(
            hours[5] + hours[6] > 2 * (hours[17] + hours[18]),
            "{hours:?}"
        );
    }
}
