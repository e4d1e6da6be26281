//! Miss-ratio curves: many (policy, capacity) runs over one trace, in parallel, written as CSV.
//!
//! Capacities are given as a spec ([`capacities`]): byte counts (`3042135`, `64MiB`), shares of
//! the trace's working set (`1%`, `10%`), or a log-spaced range (`0.1%..50%:12`). Policies are
//! `eddy-cache`'s by name, plus `belady` and `belady-size` (the offline optimum; see
//! [`crate::belady`]).

use std::collections::HashSet;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use eddy_cache::policy::Hint;

use crate::SimError;
use crate::belady::{belady, belady_size};
use crate::run::{Outcome, policy, run_hinted};
use crate::trace::Request;

/// Distinct objects and distinct bytes (each object counted once, at its first size).
pub fn working_set(trace: &[Request]) -> (usize, u64) {
    let mut seen = HashSet::new();
    let mut bytes = 0u64;
    for r in trace {
        if seen.insert(r.id) {
            bytes += u64::from(r.size);
        }
    }
    (seen.len(), bytes)
}

/// Parse a capacity spec against a working set of `working_set` bytes (or objects): a comma
/// list of byte counts (`3042135`, `64MiB`, `2GB`), percentages of the working set (`1%`), or
/// `A..B:N` for N log-spaced points from A to B (each a percentage or a byte count).
pub fn capacities(spec: &str, working_set: u64) -> Result<Vec<u64>, SimError> {
    let bad = |what: &str| SimError::Capacity {
        spec: spec.to_string(),
        why: what.to_string(),
    };
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((range, n)) = part.split_once(':') {
            let (a, b) = range
                .split_once("..")
                .ok_or_else(|| bad("a range is A..B:N"))?;
            let n: usize = n
                .trim()
                .parse()
                .map_err(|_| bad("the point count after ':' is not a number"))?;
            if !(2..=200).contains(&n) {
                return Err(bad("a range has 2 to 200 points"));
            }
            let (a, b) = (one(a, working_set, &bad)?, one(b, working_set, &bad)?);
            if a >= b {
                return Err(bad("a range must go from smaller to larger"));
            }
            let (la, lb) = ((a as f64).ln(), (b as f64).ln());
            for i in 0..n {
                let x = la + (lb - la) * i as f64 / (n - 1) as f64;
                out.push(x.exp().round() as u64);
            }
        } else {
            out.push(one(part, working_set, &bad)?);
        }
    }
    if out.is_empty() {
        return Err(bad("no capacity given"));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn one(s: &str, working_set: u64, bad: &dyn Fn(&str) -> SimError) -> Result<u64, SimError> {
    let s = s.trim();
    let v = if let Some(pct) = s.strip_suffix('%') {
        let p: f64 = pct
            .trim()
            .parse()
            .map_err(|_| bad("a percentage is a number followed by %"))?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(bad("a percentage is above 0 and at most 100"));
        }
        (working_set as f64 * p / 100.0) as u64
    } else {
        s.parse::<bytesize::ByteSize>()
            .map_err(|_| bad("a capacity is bytes (3042135, 64MiB) or a share (1%)"))?
            .as_u64()
    };
    if v == 0 {
        return Err(bad("a capacity rounds to 0 bytes"));
    }
    Ok(v)
}

/// Policy names `simulate` takes besides `eddy-cache`'s.
pub const ORACLES: [&str; 2] = ["belady", "belady-size"];

/// What a policy may be told about each request's object (see [`crate::run::run_hinted`]).
pub type Hints<'a> = &'a (dyn Fn(&Request) -> Option<Hint> + Sync);

/// No hints (a trace that carries no object metadata).
pub fn no_hints(_: &Request) -> Option<Hint> {
    None
}

/// One run: `name` over `trace` at `capacity`. `objects` is the trace's distinct object count.
pub fn simulate(
    name: &str,
    capacity: u64,
    trace: &[Request],
    objects: usize,
    hints: Hints<'_>,
) -> Result<Outcome, SimError> {
    match name {
        "belady" => Ok(belady(trace, capacity)),
        "belady-size" => Ok(belady_size(trace, capacity)),
        other => {
            let mut p = policy(other, capacity, objects)?;
            Ok(run_hinted(p.as_mut(), capacity, trace, hints))
        }
    }
}

/// One point of a miss-ratio curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Policy name.
    pub policy: String,
    /// Cache capacity (bytes, or objects for a unit-size trace).
    pub capacity: u64,
    /// What it counted.
    pub outcome: Outcome,
}

/// Run every policy at every capacity on `threads` threads, calling `done` after each run.
/// Points come back ordered by policy (as given), then capacity. Unknown policies are refused
/// before anything runs.
pub fn sweep(
    trace: &[Request],
    hints: Hints<'_>,
    policies: &[String],
    caps: &[u64],
    threads: usize,
    done: &(dyn Fn(&Point) + Sync),
) -> Result<Vec<Point>, SimError> {
    let (objects, _) = working_set(trace);
    for p in policies {
        if !ORACLES.contains(&p.as_str()) {
            policy(p, 1, 1)?;
        }
    }
    let jobs: Vec<(usize, u64)> = (0..policies.len())
        .flat_map(|p| caps.iter().map(move |&c| (p, c)))
        .collect();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(jobs.len()));
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, jobs.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(p, capacity)) = jobs.get(i) else {
                        return;
                    };
                    match simulate(&policies[p], capacity, trace, objects, hints) {
                        Ok(outcome) => {
                            let point = Point {
                                policy: policies[p].clone(),
                                capacity,
                                outcome,
                            };
                            done(&point);
                            results
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((i, point));
                        }
                        Err(e) => {
                            first_error
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, p)| p).collect())
}

/// Write points as CSV: `trace,policy,capacity,capacity_share,requests,misses,miss_ratio,bytes,
/// missed_bytes,byte_miss_ratio`. `working_set` is what `capacity_share` is a share of.
pub fn write_csv(
    out: impl Write,
    trace: &str,
    working_set: u64,
    points: &[Point],
) -> Result<(), SimError> {
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| SimError::Output(e.to_string());
    w.write_record([
        "trace",
        "policy",
        "capacity",
        "capacity_share",
        "requests",
        "misses",
        "miss_ratio",
        "bytes",
        "missed_bytes",
        "byte_miss_ratio",
    ])
    .map_err(io)?;
    for p in points {
        let o = &p.outcome;
        w.write_record([
            trace.to_string(),
            p.policy.clone(),
            p.capacity.to_string(),
            format!("{:.6}", p.capacity as f64 / working_set.max(1) as f64),
            o.requests.to_string(),
            o.misses.to_string(),
            format!("{:.6}", o.miss_ratio()),
            o.bytes.to_string(),
            o.missed_bytes.to_string(),
            format!("{:.6}", o.byte_miss_ratio()),
        ])
        .map_err(io)?;
    }
    w.flush().map_err(|e| SimError::Output(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn capacity_specs() {
        assert_eq!(capacities("1%,10%", 1000).unwrap(), vec![10, 100]);
        assert_eq!(
            capacities("3042135, 64KiB", 1).unwrap(),
            vec![65536, 3042135]
        );
        let r = capacities("1%..100%:3", 10_000).unwrap();
        assert_eq!(r, vec![100, 1000, 10_000]);
        for bad in [
            "",
            "0%",
            "101%",
            "x",
            "1%..",
            "10%..1%:4",
            "1%..10%:1",
            "1%..10%:x",
            "0",
        ] {
            let e = capacities(bad, 1000).unwrap_err().to_string();
            assert!(e.contains(bad.trim()), "{bad}: {e}");
        }
    }

    proptest::proptest! {
        /// Any spec against any working set: sorted, distinct, non-zero capacities, or an error
        /// that quotes the spec; never a panic.
        #[test]
        fn capacity_specs_never_panic(spec in "[0-9%.,:a-zA-Z ]{0,24}", ws in proptest::num::u64::ANY) {
            match capacities(&spec, ws) {
                Ok(c) => {
                    proptest::prop_assert!(!c.is_empty() && c.iter().all(|&v| v > 0));
                    proptest::prop_assert!(c.windows(2).all(|w| w[0] < w[1]));
                }
                Err(e) => {
                    let quoted = format!("{:?}", spec);
                    proptest::prop_assert!(e.to_string().contains(&quoted), "{}", e);
                }
            }
        }
    }

    #[test]
    fn a_sweep_is_ordered_complete_and_monotone_for_lru() {
        let t = crate::synth::Workload {
            requests: 30_000,
            catalog: 3_000,
            ..crate::synth::Workload::web(5)
        }
        .generate()
        .requests;
        // Object counts, where LRU is a stack algorithm (with byte sizes it is not quite).
        let t = crate::run::unit_sizes(&t);
        let (_, bytes) = working_set(&t);
        let caps = capacities("1%..30%:5", bytes).unwrap();
        let policies: Vec<String> = ["lru", "s3fifo", "belady"].map(String::from).to_vec();
        let calls = AtomicUsize::new(0);
        let points = sweep(&t, &no_hints, &policies, &caps, 2, &|_| {
            calls.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(points.len(), 15);
        assert_eq!(calls.load(Ordering::Relaxed), 15);
        assert!(points[..5].iter().all(|p| p.policy == "lru"));
        // LRU has the inclusion property: more room never misses more.
        assert!(
            points[..5]
                .windows(2)
                .all(|w| w[1].outcome.misses <= w[0].outcome.misses)
        );
        // Belady beats LRU at every size.
        for i in 0..5 {
            assert!(points[10 + i].outcome.misses <= points[i].outcome.misses);
        }
        let mut csv = Vec::new();
        write_csv(&mut csv, "web", bytes, &points).unwrap();
        let text = String::from_utf8(csv).unwrap();
        assert_eq!(text.lines().count(), 16);
        assert!(text.starts_with("trace,policy,capacity,"));
        assert!(sweep(&t, &no_hints, &["nope".to_string()], &caps, 1, &|_| {}).is_err());
    }
}
