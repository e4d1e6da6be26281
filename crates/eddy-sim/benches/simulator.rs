//! Simulator speed: requests per second through each policy on the adaptsize trace at 1 % and
//! 10 % of its working set (one core). The yardstick is libCacheSim's S3-FIFO, at least
//! 10 M requests/s. Needs `../shared/traces` (or `EDDY_TRACES`); without it, a synthetic `web`
//! trace of the same length stands in, and says so.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eddy_sim::sweep::{no_hints, simulate, working_set};
use eddy_sim::trace::{Request, read_oracle};

fn trace() -> (String, Vec<Request>) {
    let dir = std::env::var_os("EDDY_TRACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces")
        });
    match read_oracle(&dir.join("adaptsize_request_67k.oracleGeneral.bin")) {
        Ok(t) => ("adaptsize".into(), t),
        Err(e) => {
            eprintln!("adaptsize trace not available ({e}); using a synthetic web trace");
            let mut w = eddy_sim::synth::Workload::web(1);
            w.requests = 66_987;
            ("web".into(), w.generate().requests)
        }
    }
}

fn bench(c: &mut Criterion) {
    let (name, t) = trace();
    let (objects, bytes) = working_set(&t);
    let mut g = c.benchmark_group(format!("simulate_{name}"));
    g.throughput(Throughput::Elements(t.len() as u64));
    g.sample_size(20);
    for pct in [1u64, 10] {
        let cap = bytes * pct / 100;
        for policy in [
            "s3fifo", "lru", "sieve", "arc", "wtinylfu", "learned", "belady",
        ] {
            g.bench_function(format!("{policy}/{pct}%"), |b| {
                b.iter(|| black_box(simulate(policy, cap, &t, objects, &no_hints)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
