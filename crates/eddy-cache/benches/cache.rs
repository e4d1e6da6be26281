//! Micro-benchmarks of the cache core's hot paths: a memory hit, an insert with eviction.
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use eddy_cache::{Cache, CacheOptions, Object, ObjectKey, Tags};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    for policy in ["s3fifo", "lru"] {
        let opts = CacheOptions {
            memory_bytes: 64 << 20,
            policy: policy.into(),
            ..CacheOptions::default()
        };
        let Ok(cache) = Cache::open(&opts) else {
            return;
        };
        let body = Bytes::from(vec![7u8; 1024]);
        for i in 0..10_000u64 {
            cache.insert(
                ObjectKey::from_u64(i),
                Object::new(
                    Bytes::from_static(b"meta"),
                    body.clone(),
                    Tags::new("h/x", ObjectKey::from_u64(i), [] as [&str; 0]),
                    0,
                ),
            );
        }
        let mut i = 0u64;
        c.bench_function(&format!("{policy}/memory_hit_1k"), |b| {
            b.iter(|| {
                i = (i + 1) % 10_000;
                black_box(cache.get_memory(&ObjectKey::from_u64(i)))
            })
        });
        let mut j = 1_000_000u64;
        c.bench_function(&format!("{policy}/insert_evicting_1k"), |b| {
            b.iter(|| {
                j += 1;
                cache.insert(
                    ObjectKey::from_u64(j),
                    Object::new(
                        Bytes::from_static(b"meta"),
                        body.clone(),
                        Tags::new("h/y", ObjectKey::from_u64(j), [] as [&str; 0]),
                        0,
                    ),
                )
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
