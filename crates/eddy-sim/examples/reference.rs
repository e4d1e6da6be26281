//! Print every policy's miss ratios on the shared traces beside libCacheSim's (scratch).
fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces");
    for (name, caps) in [
        ("adaptsize_request_67k", vec![3_042_135u64, 30_421_357]),
        ("tencent_photo_sample10k", vec![30_553_720]),
        ("cloudphysics_io_114k", vec![20_297_697, 202_976_972]),
    ] {
        let t = eddy_sim::trace::read_oracle(&dir.join(format!("{name}.oracleGeneral.bin"))).unwrap();
        let objects = t.iter().map(|r| r.id).collect::<std::collections::HashSet<_>>().len();
        for cap in caps {
            let mut line = format!("{name} {cap}:");
            for p in eddy_sim::run::POLICIES {
                let mut pol = eddy_sim::run::policy(p, cap, objects).unwrap();
                let o = eddy_sim::run::run(pol.as_mut(), cap, &t);
                line += &format!(" {p} {:.4}/{:.4}", o.miss_ratio(), o.byte_miss_ratio());
            }
            let o = eddy_sim::belady::belady(&t, cap);
            line += &format!(" belady {:.4}/{:.4}", o.miss_ratio(), o.byte_miss_ratio());
            let o = eddy_sim::belady::belady_size(&t, cap);
            line += &format!(" belady-size {:.4}/{:.4}", o.miss_ratio(), o.byte_miss_ratio());
            println!("{line}");
        }
        let u = eddy_sim::run::unit_sizes(&t);
        for pct in [1u64, 10] {
            let cap = objects as u64 * pct / 100;
            let o = eddy_sim::belady::belady(&u, cap);
            let mut l = eddy_cache::policy::Lru::new();
            let lru = eddy_sim::run::run(&mut l, cap, &u);
            println!("{name} {pct}% objects ({cap}): MIN {:.4} LRU {:.4}", o.miss_ratio(), lru.miss_ratio());
        }
    }
}
