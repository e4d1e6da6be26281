//! Scratch: the learned policy's parameters against the best heuristics.
#![allow(clippy::unwrap_used)]
use eddy_predict::learned::{Learned, Params};
use eddy_sim::run::run_hinted;
use eddy_sim::synth::Workload;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let beta: f32 = args.get(1).map_or(0.0, |s| s.parse().unwrap());
    let admission: bool = args.get(2).is_none_or(|s| s == "1");
    let n: usize = args.get(3).map_or(1_000_000, |s| s.parse().unwrap());
    let workloads = std::env::var("WORKLOADS").unwrap_or_else(|_| "vod,web".into());
    for w in workloads.split(',') {
        let s = if w.ends_with(".bin") {
            let requests = eddy_sim::trace::read_oracle(std::path::Path::new(w)).unwrap();
            eddy_sim::synth::Synthetic {
                requests,
                meta: Vec::new(),
            }
        } else {
            let mut wl = Workload::preset(w, 1).unwrap();
            wl.requests = n;
            wl.generate()
        };
        let (_, bytes) = eddy_sim::sweep::working_set(&s.requests);
        'case: for pct in [1u64, 10] {
            let cap = bytes * pct / 100;
            let mut params = Params {
                size_weight: beta,
                admission,
                ..Params::default()
            };
            for kv in args.iter().skip(4) {
                let (k, v) = kv.split_once('=').unwrap();
                match k {
                    "sample" => params.sample = v.parse().unwrap(),
                    "rate" => params.rate = v.parse().unwrap(),
                    "half_life" => params.half_life = v.parse().unwrap(),
                    "horizon" => params.horizon = v.parse().unwrap(),
                    "pending" => params.pending = v.parse().unwrap(),
                    "request_snapshots" => params.request_snapshots = v.parse().unwrap(),
                    "warmup" => params.warmup = v.parse().unwrap(),
                    "only" => {
                        if !v.split(',').any(|c| c == format!("{w}{pct}")) {
                            continue 'case;
                        }
                    }
                    _ => panic!("{k}"),
                }
            }
            let mut p = Learned::with_params(params);
            let o = run_hinted(&mut p, cap, &s.requests, &|r| s.hint(r));
            println!(
                "{w} {pct}%: learned beta {beta} adm {admission}: {:.4} {:.4} refused {} trained {}",
                o.miss_ratio(),
                o.byte_miss_ratio(),
                p.refused(),
                p.trained()
            );
        }
    }
}
