//! The disk tier's RAM cost per object stays within 128 bytes (index + purge index), measured
//! with a counting allocator. `examples/metadata_size.rs` reports the same at 1,000,000 objects.

use eddy_cache::disk::DiskIndex;
use eddy_cache::index::PurgeIndex;
use eddy_cache::policy::S3Fifo;
use eddy_cache::{ObjectKey, Tags};

#[global_allocator]
static A: eddy_testkit::alloc::Counting = eddy_testkit::alloc::Counting;

#[test]
fn disk_resident_object_costs_at_most_128_bytes() {
    // Just past a power-of-two growth of the maps: the worst point of the sawtooth.
    let n: u64 = 300_000;
    let before = eddy_testkit::alloc::live();
    let mut disk = DiskIndex::new(Box::new(S3Fifo::new(u64::MAX / 4)));
    let idx = PurgeIndex::default();
    for i in 0..n {
        let key = ObjectKey::from_u64(i);
        disk.insert(key, 10_000 + i % 50_000);
        let keys: Vec<String> = if i % 10 == 0 {
            vec![format!("show-{}", i % 97)]
        } else {
            vec![]
        };
        let primary = if i % 20 == 0 {
            ObjectKey::from_u64(i + 1)
        } else {
            key
        };
        idx.add(
            key,
            &Tags::new(&format!("cdn.example.com/v/{i}.ts"), primary, keys),
        );
    }
    let per_object = (eddy_testkit::alloc::live() - before) as f64 / n as f64;
    eprintln!("disk-resident object: {per_object:.1} bytes of RAM");
    assert!(
        per_object > 16.0,
        "nothing counted: is the counting allocator installed?"
    );
    assert!(per_object <= 128.0, "{per_object:.1} bytes per object");
    drop((disk, idx));
}
