//! The pre-warm figure of issue 14: four edges under S3-FIFO on the synthetic VOD and web
//! workloads at 1 % and 10 % of the working set per edge, with nothing, other edges' spikes,
//! the forecast's hints, or both fetching ahead within one budget. Prints a markdown table.
//!
//! `cargo run --release -p eddy-sim --example fleet_prewarm [seed]`

use eddy_sim::fleet::{FleetConfig, Strategy, simulate};
use eddy_sim::synth::Workload;

fn main() -> Result<(), eddy_sim::SimError> {
    let seed: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    println!(
        "| workload | cache per edge | pre-warm | miss ratio | byte miss ratio | fetched ahead | hits gained per GiB | byte hits per byte fetched |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for name in ["vod", "web"] {
        let Some(w) = Workload::preset(name, seed) else {
            continue;
        };
        let syn = w.generate();
        let (_, bytes) = eddy_sim::sweep::working_set(&syn.requests);
        for pct in [1.0, 10.0] {
            let cfg = FleetConfig::new((bytes as f64 * pct / 100.0) as u64);
            let none = simulate(&syn, &cfg, Strategy::None)?;
            for s in Strategy::ALL {
                let o = if s == Strategy::None {
                    none
                } else {
                    simulate(&syn, &cfg, s)?
                };
                println!(
                    "| {name} | {pct} % | {} | {:.4} | {:.4} | {:.1} MiB | {:.0} | {:.3} |",
                    s.as_str(),
                    o.miss_ratio(),
                    o.byte_miss_ratio(),
                    o.prefetched_bytes as f64 / f64::from(1u32 << 20),
                    o.hits_per_gib(&none),
                    o.byte_hits_per_byte(&none),
                );
            }
        }
    }
    Ok(())
}
