//! Concurrent lookups: `eddy-cache`'s memory tier against moka and quick_cache, the same keys
//! and values, on 1 and 2 threads. Every lookup hits (100,000 objects of 1 KiB, keys drawn
//! from a skewed distribution as CDN traffic is). Each iteration is 100,000 lookups per thread;
//! throughput is lookups per second over all threads.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eddy_cache::{Cache, CacheOptions, Object, ObjectKey, Tags};

const OBJECTS: u64 = 100_000;
const LOOKUPS: u64 = 100_000;

/// A fixed sequence of skewed keys (80 % of lookups on 20 % of the keys), one per thread.
fn keys(thread: u64) -> Vec<ObjectKey> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (thread + 1);
    (0..LOOKUPS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = if x % 10 < 8 {
                x % (OBJECTS / 5)
            } else {
                x % OBJECTS
            };
            ObjectKey::from_u64(id)
        })
        .collect()
}

fn object(i: u64, body: &Bytes) -> Object {
    Object::new(
        Bytes::from_static(b"meta"),
        body.clone(),
        Tags::new("h/x", ObjectKey::from_u64(i), [] as [&str; 0]),
        0,
    )
}

/// Run `lookup` over each thread's keys on `threads` threads; the time for `iters` rounds.
fn run(threads: u64, iters: u64, lookup: &(dyn Fn(&ObjectKey) -> bool + Sync)) -> Duration {
    let per_thread: Vec<Vec<ObjectKey>> = (0..threads).map(keys).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for ks in &per_thread {
            s.spawn(move || {
                for _ in 0..iters {
                    for k in ks {
                        black_box(lookup(k));
                    }
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let body = Bytes::from(vec![7u8; 1024]);
    let eddy = match Cache::open(&CacheOptions {
        memory_bytes: 1 << 30,
        ..CacheOptions::default()
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cache: {e}");
            return;
        }
    };
    let moka: moka::sync::Cache<ObjectKey, Arc<Object>> = moka::sync::Cache::new(OBJECTS * 2);
    let quick: quick_cache::sync::Cache<ObjectKey, Arc<Object>> =
        quick_cache::sync::Cache::new(OBJECTS as usize * 2);
    for i in 0..OBJECTS {
        let k = ObjectKey::from_u64(i);
        eddy.insert(k, object(i, &body));
        moka.insert(k, Arc::new(object(i, &body)));
        quick.insert(k, Arc::new(object(i, &body)));
    }
    moka.run_pending_tasks();
    for threads in [1u64, 2] {
        let mut g = c.benchmark_group(format!("concurrent_lookups/{threads}_threads"));
        g.throughput(Throughput::Elements(LOOKUPS * threads));
        g.sample_size(20);
        g.bench_function("eddy_cache", |b| {
            b.iter_custom(|iters| run(threads, iters, &|k| eddy.get_memory(k).is_some()))
        });
        g.bench_function("moka", |b| {
            b.iter_custom(|iters| run(threads, iters, &|k| moka.get(k).is_some()))
        });
        g.bench_function("quick_cache", |b| {
            b.iter_custom(|iters| run(threads, iters, &|k| quick.get(k).is_some()))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
