//! Measures the RAM each cached object costs in the cache core's indexes, with 1,000,000
//! objects and a counting allocator:
//!
//!     cargo run --release -p eddy-cache --example metadata_size [objects]
//!
//! Reported per object: the disk tier index (what a large disk cache keeps in RAM), the purge
//! index (Vary variants + surrogate keys), and the memory tier's bookkeeping around an empty body.
use eddy_cache::disk::DiskIndex;
use eddy_cache::index::PurgeIndex;
use eddy_cache::memory::MemoryTier;
use eddy_cache::policy::S3Fifo;
use eddy_cache::{Object, ObjectKey, Tags};
use std::sync::Arc;

#[global_allocator]
static A: eddy_testkit::alloc::Counting = eddy_testkit::alloc::Counting;

fn url(i: u64) -> String {
    format!("cdn.example.com/videos/show-{}/seg-{i:07}.ts", i % 997)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    println!("objects: {n}");

    let before = eddy_testkit::alloc::live();
    let mut disk = DiskIndex::new(Box::new(S3Fifo::new(u64::MAX / 4)));
    for i in 0..n {
        disk.insert(ObjectKey::from_u64(i), 1000 + i % 100_000);
    }
    let disk_bytes = eddy_testkit::alloc::live() - before;
    println!(
        "disk tier index:   {:>6.1} bytes/object",
        disk_bytes as f64 / n as f64
    );

    let before = eddy_testkit::alloc::live();
    let idx = PurgeIndex::default();
    for i in 0..n {
        let keys: Vec<String> = if i % 10 == 0 {
            vec![format!("show-{}", i % 997)]
        } else {
            vec![]
        };
        // 5 % are Vary variants of another URL's primary key.
        let key = ObjectKey::from_u64(i);
        let primary = if i % 20 == 0 {
            ObjectKey::from_u64(i + 1)
        } else {
            key
        };
        idx.add(key, &Tags::new(&url(i), primary, keys));
    }
    let idx_bytes = eddy_testkit::alloc::live() - before;
    println!(
        "purge index:       {:>6.1} bytes/object (10 % with a surrogate key, 5 % Vary variants; URLs stay on disk)",
        idx_bytes as f64 / n as f64,
    );
    println!(
        "disk-resident object total: {:>6.1} bytes/object",
        (disk_bytes + idx_bytes) as f64 / n as f64
    );

    let before = eddy_testkit::alloc::live();
    let mem = MemoryTier::new(
        u64::MAX / 4,
        u64::MAX / 4,
        Box::new(S3Fifo::new(u64::MAX / 4)),
    );
    let tags = Tags::new("x", ObjectKey::default(), [] as [&str; 0]);
    for i in 0..n {
        mem.insert(
            ObjectKey::from_u64(i),
            Arc::new(Object::new(
                Default::default(),
                Default::default(),
                tags.clone(),
                0,
            )),
        );
    }
    let mem_bytes = eddy_testkit::alloc::live() - before;
    println!(
        "memory tier entry: {:>6.1} bytes/object (empty body and head)",
        mem_bytes as f64 / n as f64
    );
    drop((disk, idx, mem));
}
