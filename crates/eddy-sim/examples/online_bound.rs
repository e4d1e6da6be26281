//! How much of the gap between the best heuristic and Belady any online policy can close where
//! popularity holds still: A0 (keep the likeliest objects, with their true probabilities) on the
//! synthetic workloads without churn, releases, flash crowds or scans.
//!
//! `cargo run --release -p eddy-sim --example online_bound [requests] [seed]`
#![allow(clippy::unwrap_used, clippy::print_stdout)]
use eddy_sim::bound::{a0, perfect_lfu};
use eddy_sim::run::BASELINES;
use eddy_sim::sweep::{simulate, working_set};
use eddy_sim::synth::Workload;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(2_000_000, |s| s.parse().unwrap());
    let seed: u64 = args.get(2).map_or(1, |s| s.parse().unwrap());
    println!(
        "| case | policy | request / byte miss ratio | share of the gap from the best heuristic to Belady closed (request / byte) |"
    );
    println!("|---|---|---|---|");
    for name in ["vod-irm", "web-irm"] {
        let mut w = Workload::preset(name, seed).unwrap();
        w.requests = n;
        let probability = w.probability().unwrap();
        let s = w.generate();
        let (objects, bytes) = working_set(&s.requests);
        let hints = |r: &eddy_sim::trace::Request| s.hint(r);
        for pct in [1u64, 10] {
            let cap = bytes * pct / 100;
            let run = |p: &str| simulate(p, cap, &s.requests, objects, &hints).unwrap();
            let heuristics: Vec<_> = BASELINES.iter().map(|p| run(p)).collect();
            let learned = run("learned");
            let belady = run("belady");
            let lfu_count = perfect_lfu(&s.requests, cap, 0.0);
            let lfu_per_byte = perfect_lfu(&s.requests, cap, 1.0);
            let best_req = heuristics
                .iter()
                .map(|o| o.miss_ratio())
                .fold(1.0, f64::min);
            let best_byte = heuristics
                .iter()
                .map(|o| o.byte_miss_ratio())
                .fold(1.0, f64::min);
            let (br, bb) = (belady.miss_ratio(), belady.byte_miss_ratio());
            // Belady with byte sizes is not an optimum: where it is not below the best heuristic
            // there is no "way to Belady" to measure.
            let share = |best: f64, x: f64, opt: f64| {
                (best > opt).then(|| 100.0 * (best - x) / (best - opt))
            };
            let shown = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1} %"));
            let row = |policy: &str, o: &eddy_sim::run::Outcome| {
                let (r, b) = (o.miss_ratio(), o.byte_miss_ratio());
                println!(
                    "| | {policy} | {r:.4} / {b:.4} | {} / {} |",
                    shown(share(best_req, r, br)),
                    shown(share(best_byte, b, bb))
                );
            };
            println!(
                "| {name} {pct} % | best heuristic (each ratio) | {best_req:.4} / {best_byte:.4} | |"
            );
            row("learned", &learned);
            row("perfect LFU, by count", &lfu_count);
            row("perfect LFU, by count per byte", &lfu_per_byte);
            // A0 from ranking by probability (β = 0) to probability per byte (β = 1): the
            // online optimum's trade between the two ratios.
            let mut both: Option<(f64, f64)> = None;
            for step in 0..=20 {
                let beta = f64::from(step) / 20.0;
                let o = a0(&s.requests, cap, beta, &probability);
                if step % 10 == 0 {
                    row(&format!("A0, β = {beta}"), &o);
                }
                let (r, b) = (
                    share(best_req, o.miss_ratio(), br),
                    share(best_byte, o.byte_miss_ratio(), bb),
                );
                if let (Some(r), Some(b)) = (r, b)
                    && both.is_none_or(|(m, _)| r.min(b) > m)
                {
                    both = Some((r.min(b), beta));
                }
            }
            if let Some((m, beta)) = both {
                println!(
                    "| | A0, the β with the most on both ratios: {beta} | | {m:.1} % on both |"
                );
            }
            row("Belady", &belady);
        }
    }
}
