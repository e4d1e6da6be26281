//! A count-min sketch with periodic halving: long-memory, bounded popularity counts.
//!
//! Four rows of 16-bit saturating counters; a key's count is the minimum over its four
//! counters. After `10 × width` additions every counter halves, so counts are exponentially
//! time-decayed (TinyLFU's reset) and the sketch never saturates for long.

use eddy_cache::key::ObjectKey;

const ROWS: usize = 4;

/// The sketch.
#[derive(Debug, Clone)]
pub struct Sketch {
    counters: Vec<u16>,
    mask: u64,
    additions: u64,
    period: u64,
}

impl Sketch {
    /// A sketch of `width` counters per row (rounded up to a power of two, at least 1,024).
    pub fn new(width: usize) -> Sketch {
        let width = width.clamp(1 << 10, 1 << 24).next_power_of_two();
        Sketch {
            counters: vec![0; width * ROWS],
            mask: width as u64 - 1,
            additions: 0,
            period: 10 * width as u64,
        }
    }

    fn slots(&self, key: &ObjectKey) -> [usize; ROWS] {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&key.0[..8]);
        b.copy_from_slice(&key.0[8..]);
        let (a, b) = (u64::from_le_bytes(a), u64::from_le_bytes(b) | 1);
        let width = self.mask as usize + 1;
        std::array::from_fn(|r| {
            r * width
                + (a.wrapping_add((r as u64).wrapping_mul(b)).rotate_right(17) & self.mask) as usize
        })
    }

    /// Count one request for `key`.
    pub fn add(&mut self, key: &ObjectKey) {
        for s in self.slots(key) {
            self.counters[s] = self.counters[s].saturating_add(1);
        }
        self.additions += 1;
        if self.additions >= self.period {
            self.additions = 0;
            for c in &mut self.counters {
                *c >>= 1;
            }
        }
    }

    /// `key`'s count.
    pub fn estimate(&self, key: &ObjectKey) -> u16 {
        self.slots(key)
            .iter()
            .map(|&s| self.counters[s])
            .min()
            .unwrap_or(0)
    }

    /// Bytes of counters.
    pub fn bytes(&self) -> usize {
        self.counters.len() * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_decays() {
        let mut s = Sketch::new(1024);
        let hot = ObjectKey::from_u64(1);
        for _ in 0..100 {
            s.add(&hot);
        }
        assert_eq!(s.estimate(&hot), 100);
        assert_eq!(s.estimate(&ObjectKey::from_u64(2)), 0);
        // 10 × width additions halve everything.
        for i in 0..10 * 1024 - 100 {
            s.add(&ObjectKey::from_u64(1_000_000 + i));
        }
        // Halved; count-min only ever overestimates (10,000 keys share these counters).
        let e = s.estimate(&hot);
        assert!((50..=56).contains(&e), "{e}");
        assert_eq!(s.bytes(), 4 * 1024 * 2);
    }
}
