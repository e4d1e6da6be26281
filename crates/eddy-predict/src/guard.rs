//! The learned policy as the edge runs it: if it fails, the tier falls back to S3-FIFO.
//!
//! Failing means a panic inside the learned policy, or a model whose weights are no longer
//! finite (checked every 65,536 requests). On failure the guard counts it (the edge exports
//! the count as `eddy_cache_policy_fallbacks_total`), logs why, and hands every resident object
//! to a fresh S3-FIFO at the next insert or eviction; until then hits are not recorded, and
//! nothing is lost. It never goes back to the learned policy: a restart does.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use eddy_cache::key::ObjectKey;
use eddy_cache::policy::{Hint, Policy, Residents, S3Fifo};

use crate::learned::Learned;

const CHECK_EVERY: u64 = 1 << 16;

enum State {
    Learned(Box<Learned>),
    /// Failed; residents (key, size) wait to be handed over.
    Failed(Vec<(ObjectKey, u64)>),
    Fallback(S3Fifo),
}

/// The learned policy with a fallback to S3-FIFO.
pub struct Guarded {
    state: State,
    capacity: u64,
    fallbacks: Arc<AtomicU64>,
    calls: u64,
}

impl Guarded {
    /// The learned policy for a tier of `capacity` bytes; failures are counted in `fallbacks`.
    pub fn new(capacity: u64, fallbacks: Arc<AtomicU64>) -> Guarded {
        Guarded::with(Learned::new(), capacity, fallbacks)
    }

    /// Guard an existing learned policy (tests inject failures this way).
    pub fn with(learned: Learned, capacity: u64, fallbacks: Arc<AtomicU64>) -> Guarded {
        Guarded {
            state: State::Learned(Box::new(learned)),
            capacity,
            fallbacks,
            calls: 0,
        }
    }

    /// Whether the guard has fallen back to S3-FIFO.
    pub fn fell_back(&self) -> bool {
        !matches!(self.state, State::Learned(_))
    }

    /// Run `f` on the learned policy; on a panic or (now and then) an unsound model, fail over.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Learned) -> T) -> Option<T> {
        let State::Learned(l) = &mut self.state else {
            return None;
        };
        self.calls += 1;
        match catch_unwind(AssertUnwindSafe(|| f(l))) {
            Ok(v) => {
                if self.calls.is_multiple_of(CHECK_EVERY) && !l.is_sound() {
                    self.fail("its model's weights are no longer finite");
                    return None;
                }
                Some(v)
            }
            Err(_) => {
                self.fail("it panicked");
                None
            }
        }
    }

    fn fail(&mut self, why: &str) {
        let residents = match &self.state {
            State::Learned(l) => l.resident_sizes(),
            _ => return,
        };
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            why,
            objects = residents.len(),
            "the learned cache policy failed; this tier now evicts with S3-FIFO until restart"
        );
        self.state = State::Failed(residents);
    }

    /// Hand the residents over to S3-FIFO if the learned policy failed.
    fn take_over(&mut self, residents: &dyn Residents) {
        if let State::Failed(list) = &mut self.state {
            let list = std::mem::take(list);
            let mut s3 = S3Fifo::new(self.capacity);
            for (key, size) in list {
                if residents.get(&key).is_some() {
                    s3.insert(key, size, residents);
                }
            }
            self.state = State::Fallback(s3);
        }
    }
}

impl Policy for Guarded {
    fn name(&self) -> &'static str {
        match self.state {
            State::Learned(_) => "learned",
            _ => "s3fifo",
        }
    }

    fn touch_on_hit(&self) -> bool {
        // Decided once by the tier: the learned policy records hits.
        true
    }

    fn touch(&mut self, key: &ObjectKey, word: u32, victims: &mut Vec<ObjectKey>) {
        if let State::Fallback(s) = &mut self.state {
            return s.touch(key, word, victims);
        }
        self.guarded(|l| l.touch(key, word, victims));
    }

    fn hint(&mut self, key: &ObjectKey, hint: Hint) {
        self.guarded(|l| l.hint(key, hint));
    }

    fn admit(&mut self, key: &ObjectKey, size: u64) -> bool {
        match &mut self.state {
            State::Fallback(s) => s.admit(key, size),
            State::Failed(_) => true,
            State::Learned(_) => self.guarded(|l| l.admit(key, size)).unwrap_or(true),
        }
    }

    fn insert(&mut self, key: ObjectKey, size: u64, residents: &dyn Residents) {
        if let State::Fallback(s) = &mut self.state {
            return s.insert(key, size, residents);
        }
        if matches!(self.state, State::Learned(_))
            && self.guarded(|l| l.insert(key, size, residents)).is_some()
        {
            return;
        }
        if let State::Failed(list) = &mut self.state {
            // The learned policy failed on or before this insert: S3-FIFO takes this one too.
            list.retain(|(k, _)| *k != key);
            list.push((key, size));
        }
        self.take_over(residents);
    }

    fn remove(&mut self, key: &ObjectKey, size: u64, word: u32) {
        match &mut self.state {
            State::Learned(_) => {
                self.guarded(|l| l.remove(key, size, word));
            }
            State::Failed(list) => list.retain(|(k, _)| k != key),
            State::Fallback(s) => s.remove(key, size, word),
        }
    }

    fn evict(&mut self, residents: &dyn Residents, victims: &mut Vec<ObjectKey>) -> bool {
        if let State::Learned(_) = self.state
            && let Some(done) = self.guarded(|l| l.evict(residents, victims))
        {
            return done;
        }
        self.take_over(residents);
        match &mut self.state {
            State::Fallback(s) => s.evict(residents, victims),
            _ => false,
        }
    }

    fn len(&self) -> usize {
        match &self.state {
            State::Learned(l) => l.len(),
            State::Failed(list) => list.len(),
            State::Fallback(s) => s.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learned::Params;
    use eddy_cache::policy::Replay;

    fn traffic(p: &mut dyn Policy, r: &mut Replay, n: u64) -> u64 {
        let mut x = 99u64;
        let mut hits = 0;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = if x.is_multiple_of(2) {
                x % 300
            } else {
                x % 100_000
            };
            hits += u64::from(r.request(p, id, 100));
        }
        hits
    }

    #[test]
    fn a_broken_model_falls_back_to_s3fifo_and_keeps_serving() {
        let fallbacks = Arc::new(AtomicU64::new(0));
        // A NaN learning rate poisons the weights: the periodic check catches it.
        let broken = Learned::with_params(Params {
            rate: f32::NAN,
            ..Params::default()
        });
        let mut g = Guarded::with(broken, 20_000, fallbacks.clone());
        let mut r = Replay::new(20_000);
        traffic(&mut g, &mut r, 200_000);
        assert!(g.fell_back());
        assert_eq!(fallbacks.load(Ordering::Relaxed), 1);
        assert_eq!(g.name(), "s3fifo");
        // Every resident was handed over: S3-FIFO tracks exactly what the tier holds.
        assert_eq!(g.len(), r.len());
        assert!(r.used() <= 20_000);
        // And it still caches: the hot 300 objects hit.
        let hits = traffic(&mut g, &mut r, 50_000);
        assert!(hits > 15_000, "{hits}");
    }

    #[test]
    fn a_sound_model_stays_learned() {
        let fallbacks = Arc::new(AtomicU64::new(0));
        let mut g = Guarded::new(20_000, fallbacks.clone());
        let mut r = Replay::new(20_000);
        traffic(&mut g, &mut r, 200_000);
        assert!(!g.fell_back());
        assert_eq!(fallbacks.load(Ordering::Relaxed), 0);
        assert_eq!(g.len(), r.len());
    }
}
