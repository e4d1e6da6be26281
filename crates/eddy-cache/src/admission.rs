//! Admission: whether a new object may enter a tier at all, decided before eviction runs.
//!
//! Eviction ([`crate::Policy`]) chooses what leaves; admission chooses what comes in. Keeping
//! them apart lets a tier refuse one-hit wonders (which would only push useful objects out)
//! without changing its eviction order.

use crate::CacheError;
use crate::key::ObjectKey;
use std::sync::atomic::{AtomicU64, Ordering};

/// Decides whether an object may be stored in a tier.
pub trait Admission: Send + Sync {
    /// Short name for logs and metrics.
    fn name(&self) -> &'static str;
    /// Called once per candidate write; `true` admits it. Must be cheap and never block.
    fn admit(&self, key: &ObjectKey, size: u64) -> bool;
}

/// Admit everything.
#[derive(Debug, Default)]
pub struct Always;

impl Admission for Always {
    fn name(&self) -> &'static str {
        "always"
    }
    fn admit(&self, _key: &ObjectKey, _size: u64) -> bool {
        true
    }
}

/// Admit an object the second time it is offered within a window (a "doorkeeper" Bloom filter,
/// as in TinyLFU). The filter is cleared after `window` offers so it never saturates.
pub struct SecondHit {
    bits: Box<[AtomicU64]>,
    offers: AtomicU64,
    window: u64,
}

impl SecondHit {
    /// A doorkeeper with `bits` bits (rounded up to 64) reset every `window` offers.
    pub fn new(bits: usize, window: u64) -> Self {
        let words = bits.div_ceil(64).max(1);
        SecondHit {
            bits: (0..words).map(|_| AtomicU64::new(0)).collect(),
            offers: AtomicU64::new(0),
            window: window.max(1),
        }
    }

    fn positions(&self, key: &ObjectKey) -> [(usize, u64); 2] {
        let n = self.bits.len() * 64;
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&key.0[..8]);
        b.copy_from_slice(&key.0[8..]);
        let h1 = (u64::from_le_bytes(a) as usize) % n;
        let h2 = (u64::from_le_bytes(b) as usize) % n;
        [(h1 / 64, 1u64 << (h1 % 64)), (h2 / 64, 1u64 << (h2 % 64))]
    }
}

impl Default for SecondHit {
    fn default() -> Self {
        SecondHit::new(1 << 22, 1 << 20)
    }
}

impl Admission for SecondHit {
    fn name(&self) -> &'static str {
        "second-hit"
    }

    fn admit(&self, key: &ObjectKey, _size: u64) -> bool {
        let n = self.offers.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(self.window) {
            for w in self.bits.iter() {
                w.store(0, Ordering::Relaxed);
            }
        }
        let mut seen = true;
        for (word, mask) in self.positions(key) {
            let old = self.bits[word].fetch_or(mask, Ordering::Relaxed);
            seen &= old & mask != 0;
        }
        seen
    }
}

/// Build an admission policy by name.
pub fn by_name(name: &str) -> Result<Box<dyn Admission>, CacheError> {
    match name {
        "always" => Ok(Box::new(Always)),
        "second-hit" => Ok(Box::new(SecondHit::default())),
        other => Err(CacheError::UnknownAdmission(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_hit_admits_on_second_offer() {
        let d = SecondHit::new(1 << 16, 1 << 30);
        let k = ObjectKey::from_u64(42);
        assert!(!d.admit(&k, 1));
        assert!(d.admit(&k, 1));
        assert!(!d.admit(&ObjectKey::from_u64(43), 1));
    }

    #[test]
    fn second_hit_forgets_after_window() {
        let d = SecondHit::new(1 << 16, 4);
        let k = ObjectKey::from_u64(7);
        assert!(!d.admit(&k, 1));
        for i in 100..102 {
            d.admit(&ObjectKey::from_u64(i), 1);
        }
        // 4th offer clears the filter before recording.
        assert!(!d.admit(&k, 1));
    }
}
