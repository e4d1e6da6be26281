//! Run a trace through an eviction policy: `eddy-cache`'s own [`Policy`] objects, driven the way
//! the edge's memory tier drives them (one implementation, not a copy), over a cache of a byte
//! capacity.
//!
//! The accounting is libCacheSim's, so results compare with `../shared/traces/README.md`: every
//! request counts; the cache is `eddy-cache`'s [`Replay`] (a tier's resident set and steps: a
//! hit bumps the access counter, a miss inserts the object unless it is larger than the cache,
//! then the policy evicts until the cache is within its capacity). The byte miss ratio is missed
//! bytes over requested bytes. For an object-count cache, give every request size 1
//! ([`unit_sizes`]).

use eddy_cache::policy::{Hint, Policy, Replay, WTinyLfu};

use crate::SimError;

use crate::trace::Request;

/// What a run counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Requests.
    pub requests: u64,
    /// Requests that missed.
    pub misses: u64,
    /// Bytes requested.
    pub bytes: u64,
    /// Bytes of the requests that missed.
    pub missed_bytes: u64,
}

impl Outcome {
    /// Misses over requests (0 for an empty trace).
    pub fn miss_ratio(&self) -> f64 {
        ratio(self.misses, self.requests)
    }

    /// Missed bytes over requested bytes (0 for an empty trace).
    pub fn byte_miss_ratio(&self) -> f64 {
        ratio(self.missed_bytes, self.bytes)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The policies a trace can run through: `eddy-cache`'s, by the names the edge's config takes.
pub const POLICIES: [&str; 7] = [
    "lru", "fifo", "s3fifo", "sieve", "wtinylfu", "arc", "learned",
];

/// The heuristics the learned policy is measured against (issue 14): S3-FIFO, SIEVE, W-TinyLFU
/// and ARC, with libCacheSim's variants of S3-FIFO and W-TinyLFU. The best of them is taken per
/// ratio.
pub const BASELINES: [&str; 6] = [
    "s3fifo",
    "s3fifo-libcachesim",
    "sieve",
    "wtinylfu",
    "wtinylfu-libcachesim",
    "arc",
];

/// `eddy-cache`'s policy `name` for a cache of `capacity` bytes over a trace of `objects`
/// distinct objects (W-TinyLFU sizes its frequency sketch from it). `s3fifo` and `wtinylfu`
/// are the edge's; `s3fifo-libcachesim` and `wtinylfu-libcachesim` are libCacheSim's exactly
/// (they refuse objects larger than their first queue; the edge admits them).
pub fn policy(name: &str, capacity: u64, objects: usize) -> Result<Box<dyn Policy>, SimError> {
    match name {
        "wtinylfu" | "w-tinylfu" => Ok(Box::new(WTinyLfu::with_sketch(capacity, objects))),
        "wtinylfu-libcachesim" => Ok(Box::new(WTinyLfu::reference(capacity, objects))),
        "s3fifo-libcachesim" => Ok(Box::new(eddy_cache::policy::S3Fifo::reference(capacity))),
        "learned" => Ok(Box::new(eddy_predict::learned::Learned::new())),
        other => eddy_cache::policy::by_name(other, capacity)
            .map_err(|_| SimError::UnknownPolicy(other.to_string())),
    }
}

/// Run `trace` through `policy` over a cache of `capacity` bytes.
pub fn run(policy: &mut dyn Policy, capacity: u64, trace: &[Request]) -> Outcome {
    run_hinted(policy, capacity, trace, &|_| None)
}

/// [`run`], telling the policy on each miss what `hint` knows about the object (its kind and
/// age, as the edge learns them from response headers).
pub fn run_hinted(
    policy: &mut dyn Policy,
    capacity: u64,
    trace: &[Request],
    hint: &dyn Fn(&Request) -> Option<Hint>,
) -> Outcome {
    let mut cache = Replay::new(capacity);
    let mut out = Outcome::default();
    for r in trace {
        let size = u64::from(r.size);
        out.requests += 1;
        out.bytes += size;
        if !cache.request_hinted(policy, r.id, size, hint(r)) {
            out.misses += 1;
            out.missed_bytes += size;
        }
    }
    out
}

/// `trace` with every size 1: an object-count cache.
pub fn unit_sizes(trace: &[Request]) -> Vec<Request> {
    trace.iter().map(|r| Request { size: 1, ..*r }).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn trace(ids: &[u64], size: u32) -> Vec<Request> {
        let pairs: Vec<(u64, u32)> = ids.iter().map(|&id| (id, size)).collect();
        crate::trace::from_pairs(&pairs)
    }

    #[test]
    fn lru_by_hand() {
        // Capacity for two objects of 10 bytes: 1 2 1 3 (evicts 2) 2 (miss, evicts 1) 1 (miss).
        let t = trace(&[1, 2, 1, 3, 2, 1], 10);
        let mut p = eddy_cache::policy::by_name("lru", 20).unwrap();
        let o = run(p.as_mut(), 20, &t);
        assert_eq!((o.requests, o.misses), (6, 5));
        assert_eq!((o.bytes, o.missed_bytes), (60, 50));
        // An object larger than the cache always misses and evicts nothing.
        let mut p = eddy_cache::policy::by_name("lru", 5).unwrap();
        assert_eq!(run(p.as_mut(), 5, &trace(&[1, 1, 1], 10)).misses, 3);
    }
}
