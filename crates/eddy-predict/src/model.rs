//! The reuse model: an online additive logistic model over binned features, with a few
//! pairwise interaction tables, fitted by stochastic gradient descent to say whether an object
//! will be requested again within a window (the cache's reach).
//!
//! Why this shape: the time to the next request depends on recency, frequency and size in ways
//! that are far from linear (a recently requested object with a long history behaves nothing like
//! one requested once), but a table per feature and per important pair captures that with a few
//! thousand weights, predicts in a dozen additions, learns from every labelled sample in a dozen
//! more, and cannot diverge: every input lands in a bin, and weights are clamped.

/// Bins per continuous feature.
pub const BINS: usize = 32;
/// Bins per feature in an interaction table.
const PAIR: usize = 16;
/// Content kinds (`eddy_cache::policy::ContentKind::COUNT`).
pub const KINDS: usize = eddy_cache::policy::ContentKind::COUNT;

/// One object's features at one moment, already binned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// log2(1 + requests since its last request); `BINS - 1` if never requested before.
    pub recency: u8,
    /// log2 of the gap between its last two requests; 0 if it has only one.
    pub gap: u8,
    /// 2 × log2(1 + time-decayed request count).
    pub frequency: u8,
    /// log2(size in bytes).
    pub size: u8,
    /// 1 + log2(1 + seconds since publication); 0 if unknown.
    pub age: u8,
    /// Content kind (`ContentKind::index`).
    pub kind: u8,
    /// Requests seen, capped.
    pub count: u8,
    /// log2(1 + the object's count in the long-memory popularity sketch).
    pub popularity: u8,
}

/// The logistic function.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// ln(sigmoid(z)), without overflow.
pub fn ln_sigmoid(z: f32) -> f32 {
    if z > 0.0 {
        -(-z).exp().ln_1p()
    } else {
        z - z.exp().ln_1p()
    }
}

/// log2(1 + x) as a bin.
pub fn log_bin(x: u64) -> u8 {
    (64 - (x.saturating_add(1)).leading_zeros() - 1).min(BINS as u32 - 1) as u8
}

/// The model.
#[derive(Debug, Clone)]
pub struct Model {
    bias: f32,
    recency: [f32; BINS],
    gap: [f32; BINS],
    frequency: [f32; BINS],
    size: [f32; BINS],
    age: [f32; BINS],
    kind: [f32; KINDS],
    count: [f32; BINS],
    popularity: [f32; BINS],
    recency_frequency: [[f32; PAIR]; PAIR],
    recency_popularity: [[f32; PAIR]; PAIR],
    /// recency × gap × popularity, the three that say most about a next request together.
    triple: Vec<f32>,
    recency_gap: [[f32; PAIR]; PAIR],
    age_kind: [[f32; KINDS]; PAIR],
    rate: f32,
    trained: u64,
}

const LIMIT: f32 = 64.0;

fn half(x: u8) -> usize {
    usize::from(x / 2).min(PAIR - 1)
}

fn triple(f: &Features) -> usize {
    (usize::from(f.recency).min(BINS - 1) * PAIR + half(f.gap)) * PAIR + half(f.popularity)
}

impl Model {
    /// An untrained model whose log-odds are `prior` for everything.
    pub fn new(prior: f32, rate: f32) -> Model {
        Model {
            bias: prior,
            recency: [0.0; BINS],
            gap: [0.0; BINS],
            frequency: [0.0; BINS],
            size: [0.0; BINS],
            age: [0.0; BINS],
            kind: [0.0; KINDS],
            count: [0.0; BINS],
            popularity: [0.0; BINS],
            recency_frequency: [[0.0; PAIR]; PAIR],
            recency_popularity: [[0.0; PAIR]; PAIR],
            triple: vec![0.0; BINS * PAIR * PAIR],
            recency_gap: [[0.0; PAIR]; PAIR],
            age_kind: [[0.0; KINDS]; PAIR],
            rate,
            trained: 0,
        }
    }

    /// Log-odds that an object with features `f` is requested again within the window.
    pub fn predict(&self, f: &Features) -> f32 {
        let k = usize::from(f.kind).min(KINDS - 1);
        self.bias
            + self.recency[usize::from(f.recency)]
            + self.gap[usize::from(f.gap)]
            + self.frequency[usize::from(f.frequency)]
            + self.size[usize::from(f.size)]
            + self.age[usize::from(f.age)]
            + self.kind[k]
            + self.count[usize::from(f.count)]
            + self.popularity[usize::from(f.popularity)]
            + self.recency_frequency[half(f.recency)][half(f.frequency)]
            + self.recency_popularity[half(f.recency)][half(f.popularity)]
            + self.triple[triple(f)]
            + self.recency_gap[half(f.recency)][half(f.gap)]
            + self.age_kind[half(f.age)][k]
    }

    /// Learn from one labelled sample: an object with features `f` was (`reused`) or was not
    /// requested again within the window.
    pub fn learn(&mut self, f: &Features, reused: bool) {
        let p = sigmoid(self.predict(f));
        let err = (p - if reused { 1.0 } else { 0.0 }).clamp(-LIMIT, LIMIT);
        let step = self.rate * err;
        let k = usize::from(f.kind).min(KINDS - 1);
        let t = triple(f);
        let slots: [&mut f32; 14] = [
            &mut self.bias,
            &mut self.recency[usize::from(f.recency)],
            &mut self.gap[usize::from(f.gap)],
            &mut self.frequency[usize::from(f.frequency)],
            &mut self.size[usize::from(f.size)],
            &mut self.age[usize::from(f.age)],
            &mut self.kind[k],
            &mut self.count[usize::from(f.count)],
            &mut self.popularity[usize::from(f.popularity)],
            &mut self.recency_frequency[half(f.recency)][half(f.frequency)],
            &mut self.recency_popularity[half(f.recency)][half(f.popularity)],
            &mut self.triple[t],
            &mut self.recency_gap[half(f.recency)][half(f.gap)],
            &mut self.age_kind[half(f.age)][k],
        ];
        for w in slots {
            *w = (*w - step).clamp(-LIMIT, LIMIT);
        }
        self.trained += 1;
    }

    /// Labelled samples learned from.
    pub fn trained(&self) -> u64 {
        self.trained
    }

    /// Whether every weight is finite (a broken model is a reason to fall back).
    pub fn is_sound(&self) -> bool {
        [self.bias]
            .iter()
            .chain(&self.recency)
            .chain(&self.gap)
            .chain(&self.frequency)
            .chain(&self.size)
            .chain(&self.age)
            .chain(&self.kind)
            .chain(&self.count)
            .chain(&self.popularity)
            .chain(self.recency_frequency.iter().flatten())
            .chain(self.recency_popularity.iter().flatten())
            .chain(&self.triple)
            .chain(self.recency_gap.iter().flatten())
            .chain(self.age_kind.iter().flatten())
            .all(|w| w.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins() {
        assert_eq!(log_bin(0), 0);
        assert_eq!(log_bin(1), 1);
        assert_eq!(log_bin(2), 1);
        assert_eq!(log_bin(3), 2);
        assert_eq!(log_bin(u64::MAX), BINS as u8 - 1);
    }

    #[test]
    fn learns_a_pattern_it_can_represent() {
        // Objects of kind 1 come back within the window 90 % of the time, kind 2 10 %; size is
        // noise.
        let mut m = Model::new(0.0, 0.02);
        let mut x = 1u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let kind = 1 + (x % 2) as u8;
            let f = Features {
                kind,
                size: (x >> 8) as u8 % 20,
                ..Features::default()
            };
            let reused = (x >> 20) % 10 < if kind == 1 { 9 } else { 1 };
            m.learn(&f, reused);
        }
        let a = m.predict(&Features {
            kind: 1,
            size: 3,
            ..Features::default()
        });
        let b = m.predict(&Features {
            kind: 2,
            size: 3,
            ..Features::default()
        });
        let (a, b) = (sigmoid(a), sigmoid(b));
        assert!((a - 0.9).abs() < 0.05 && (b - 0.1).abs() < 0.05, "{a} {b}");
        assert!(m.is_sound());
        assert!((ln_sigmoid(-100.0) + 100.0).abs() < 1e-3 && ln_sigmoid(100.0).abs() < 1e-6);
    }
}
