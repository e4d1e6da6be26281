//! Every reference policy against libCacheSim's table in `../shared/traces/README.md`
//! (libcachesim 0.3.5, default parameters), to 4 decimals: request and byte miss ratios at byte
//! capacities, and unit-size Belady (exact MIN) and LRU at object-count capacities. The policies
//! are `eddy-cache`'s own, the ones the edge runs (S3-FIFO and W-TinyLFU with libCacheSim's rule
//! that refuses objects larger than their first queue, which the edge does not apply). Traces that are not beside the repository are
//! skipped, and the test says so (set `EDDY_TRACES` to their directory). Beside them, the
//! learned policy against the best of them on the adaptsize trace.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::PathBuf;

use eddy_sim::belady::belady;
use eddy_sim::run::{Outcome, policy, run, unit_sizes};
use eddy_sim::trace::{Request, read_oracle};

const POLICIES: [&str; 7] = [
    "lru",
    "fifo",
    "s3fifo-libcachesim",
    "sieve",
    "wtinylfu-libcachesim",
    "arc",
    "belady",
];

/// (trace, capacity in bytes, request miss ratios, byte miss ratios) in `POLICIES` order.
type Row = (&'static str, u64, [f64; 7], Option<[f64; 7]>);

const TABLE: [Row; 5] = [
    (
        "adaptsize_request_67k",
        3_042_135,
        [0.7907, 0.8020, 0.7546, 0.7729, 0.7571, 0.7758, 0.6858],
        Some([0.7550, 0.7673, 0.7522, 0.7420, 0.8995, 0.7496, 0.6817]),
    ),
    (
        "adaptsize_request_67k",
        30_421_357,
        [0.7017, 0.7159, 0.6688, 0.6655, 0.6654, 0.6651, 0.6007],
        Some([0.6922, 0.7025, 0.6749, 0.6705, 0.7059, 0.6709, 0.6267]),
    ),
    (
        "tencent_photo_sample10k",
        30_553_720,
        [0.9904, 0.9910, 0.9903, 0.9883, 0.9863, 0.9883, 0.9704],
        None,
    ),
    (
        "cloudphysics_io_114k",
        20_297_697,
        [0.8339, 0.8368, 0.8235, 0.8231, 0.8262, 0.8222, 0.8005],
        None,
    ),
    (
        "cloudphysics_io_114k",
        202_976_972,
        [0.8097, 0.8075, 0.7542, 0.7903, 0.7649, 0.7688, 0.6513],
        Some([0.9518, 0.9509, 0.8770, 0.9296, 0.8907, 0.9026, 0.7320]),
    ),
];

/// `EDDY_TRACES`, else `../shared/traces` beside the repository.
fn traces() -> PathBuf {
    std::env::var_os("EDDY_TRACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces"))
}

fn load(name: &str) -> Option<Vec<Request>> {
    let path = traces().join(format!("{name}.oracleGeneral.bin"));
    if !path.exists() {
        eprintln!("skipped {name}: not in {}", traces().display());
        return None;
    }
    Some(read_oracle(&path).unwrap())
}

fn objects(t: &[Request]) -> usize {
    t.iter().map(|r| r.id).collect::<HashSet<_>>().len()
}

fn four(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn outcome(name: &str, capacity: u64, t: &[Request], objects: usize) -> Outcome {
    if name == "belady" {
        return belady(t, capacity);
    }
    let mut p = policy(name, capacity, objects).unwrap();
    run(p.as_mut(), capacity, t)
}

#[test]
fn every_policy_reproduces_libcachesim_to_four_decimals() {
    let mut wrong = Vec::new();
    for (trace, capacity, requests, bytes) in TABLE {
        let Some(t) = load(trace) else { continue };
        let n = objects(&t);
        for (i, name) in POLICIES.iter().enumerate() {
            let o = outcome(name, capacity, &t, n);
            let (got, got_bytes) = (four(o.miss_ratio()), four(o.byte_miss_ratio()));
            println!("{trace} {capacity} {name}: {got:.4} / {got_bytes:.4}");
            if got != requests[i] {
                wrong.push(format!(
                    "{trace} {capacity} {name}: {got} (libCacheSim {})",
                    requests[i]
                ));
            }
            if let Some(b) = bytes
                && got_bytes != b[i]
            {
                wrong.push(format!(
                    "{trace} {capacity} {name} bytes: {got_bytes} (libCacheSim {})",
                    b[i]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn unit_size_belady_and_lru_reproduce_libcachesim_by_object_count() {
    // (trace, MIN at 1 % and 10 % of distinct objects, LRU at the same, when the table has it)
    type CountRow = (&'static str, [f64; 2], Option<[f64; 2]>);
    let table: [CountRow; 3] = [
        (
            "adaptsize_request_67k",
            [0.6886, 0.6007],
            Some([0.7937, 0.7033]),
        ),
        ("tencent_photo_sample10k", [0.9720, 0.9704], None),
        ("cloudphysics_io_114k", [0.7927, 0.6290], None),
    ];
    for (trace, min, lru) in table {
        let Some(t) = load(trace) else { continue };
        let n = objects(&t) as u64;
        let u = unit_sizes(&t);
        for (i, pct) in [1u64, 10].into_iter().enumerate() {
            let cap = n * pct / 100;
            assert_eq!(
                four(belady(&u, cap).miss_ratio()),
                min[i],
                "{trace} MIN at {pct} %"
            );
            if let Some(lru) = lru {
                let mut p = policy("lru", cap, n as usize).unwrap();
                assert_eq!(
                    four(run(p.as_mut(), cap, &u).miss_ratio()),
                    lru[i],
                    "{trace} LRU at {pct} %"
                );
            }
        }
    }
}

/// The learned policy's goal where a real trace is at hand: on the adaptsize trace at 1 % and
/// 10 % of the working set, no worse than the best of S3-FIFO, SIEVE, W-TinyLFU and ARC (either
/// variant) on the request and on the byte miss ratio (measured: 0.7280 / 0.7259 against
/// 0.7546 / 0.7358, and 0.6485 / 0.6649 against 0.6651 / 0.6705).
#[test]
fn the_learned_policy_is_no_worse_than_the_best_heuristic_on_adaptsize() {
    let Some(t) = load("adaptsize_request_67k") else {
        return;
    };
    let n = objects(&t);
    let (_, bytes) = eddy_sim::sweep::working_set(&t);
    for pct in [1u64, 10] {
        let cap = bytes * pct / 100;
        let learned = outcome("learned", cap, &t, n);
        for h in eddy_sim::run::BASELINES {
            let o = outcome(h, cap, &t, n);
            assert!(
                learned.miss_ratio() <= o.miss_ratio()
                    && learned.byte_miss_ratio() <= o.byte_miss_ratio(),
                "at {pct} %: learned {:.4} / {:.4}, {h} {:.4} / {:.4}",
                learned.miss_ratio(),
                learned.byte_miss_ratio(),
                o.miss_ratio(),
                o.byte_miss_ratio()
            );
        }
    }
}
