//! `eddy sim`: run the edge's own eviction policies (and the offline optimum) over a request
//! trace or a synthetic CDN workload, and print, write and plot their miss ratios.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use eddy_sim::sweep::{self, Point};
use eddy_sim::synth::{Synthetic, Workload};
use eddy_sim::trace::{self, Request};

/// `eddy sim` flags.
#[derive(Args)]
pub struct SimArgs {
    /// A request trace: libCacheSim `oracleGeneral` (`.bin`) or CSV with the header
    /// `timestamp,object_id,size`.
    #[arg(
        long,
        conflicts_with = "workload",
        required_unless_present = "workload"
    )]
    trace: Option<PathBuf>,
    /// A synthetic CDN workload instead of a trace: `vod` or `web`, or `vod-irm` / `web-irm`
    /// (the same without churn, releases, flash crowds or scans).
    #[arg(long)]
    workload: Option<String>,
    /// Seed of the synthetic workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Requests in the synthetic workload (default: the preset's, 2,000,000).
    #[arg(long)]
    requests: Option<usize>,
    /// Policies, comma-separated: lru, fifo, s3fifo, sieve, wtinylfu, arc, learned, belady,
    /// belady-size.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lru,fifo,s3fifo,sieve,wtinylfu,arc,learned,belady"
    )]
    policies: Vec<String>,
    /// Cache sizes: bytes (`64MiB`), shares of the working set (`1%`), or a log-spaced range
    /// (`0.1%..50%:12`), comma-separated.
    #[arg(long, default_value = "1%,10%")]
    capacity: String,
    /// Count objects instead of bytes (every object has size 1; capacities are object counts).
    #[arg(long)]
    objects: bool,
    /// Write every point as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Plot the miss-ratio curves (request and byte) as SVG to this file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Write the trace (a synthetic workload's, say) to this file in libCacheSim's
    /// `oracleGeneral` format, to run it through libCacheSim's policies too.
    #[arg(long)]
    write_trace: Option<PathBuf>,
    /// Threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Run `eddy sim`.
pub fn run(a: SimArgs) -> anyhow::Result<()> {
    let (name, mut requests, synthetic) = load(&a)?;
    if a.objects {
        requests = eddy_sim::run::unit_sizes(&requests);
    }
    if let Some(path) = &a.write_trace {
        std::fs::write(path, eddy_sim::trace::oracle_bytes(&requests))
            .with_context(|| format!("--write-trace: writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    let (objects, bytes) = sweep::working_set(&requests);
    let working_set = if a.objects { objects as u64 } else { bytes };
    let caps = sweep::capacities(&a.capacity, working_set).context("--capacity")?;
    eprintln!(
        "{name}: {} requests, {objects} objects, working set {}",
        requests.len(),
        if a.objects {
            format!("{objects} objects")
        } else {
            bytesize::ByteSize(bytes).to_string()
        }
    );
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let bar = indicatif::ProgressBar::new((a.policies.len() * caps.len()) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let hints = |r: &Request| synthetic.as_ref().and_then(|s| s.hint(r));
    let points = sweep::sweep(
        &requests,
        &hints,
        &a.policies,
        &caps,
        threads,
        &|p: &Point| {
            bar.set_message(format!("{} at {}", p.policy, p.capacity));
            bar.inc(1);
        },
    )
    .context("--policies")?;
    bar.finish_and_clear();
    print_table(&points, &caps, working_set);
    if let Some(path) = &a.csv {
        let f = std::fs::File::create(path)
            .with_context(|| format!("--csv: creating {}", path.display()))?;
        sweep::write_csv(f, &name, working_set, &points)
            .with_context(|| format!("--csv: writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &a.plot {
        eddy_sim::plot::svg(path, &name, working_set, &points)
            .with_context(|| format!("--plot: writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The trace, its name, and for a synthetic workload its object metadata (kind and age hints).
fn load(a: &SimArgs) -> anyhow::Result<(String, Vec<Request>, Option<Synthetic>)> {
    if let Some(path) = &a.trace {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let requests = if path.extension().is_some_and(|e| e == "csv") {
            trace::read_csv(path)?
        } else {
            trace::read_oracle(path)?
        };
        return Ok((name, requests, None));
    }
    let Some(w) = &a.workload else {
        bail!("give --trace FILE or --workload vod|web");
    };
    let mut workload = Workload::preset(w, a.seed)
        .with_context(|| format!("--workload: {w:?} is not one of vod, web, vod-irm, web-irm"))?;
    if let Some(n) = a.requests {
        workload.requests = n;
    }
    let mut s = workload.generate();
    let requests = std::mem::take(&mut s.requests);
    Ok((format!("{w} (seed {})", a.seed), requests, Some(s)))
}

fn print_table(points: &[Point], caps: &[u64], working_set: u64) {
    let mut header = format!("{:<20}", "policy");
    for c in caps {
        let share = 100.0 * *c as f64 / working_set.max(1) as f64;
        header += &format!(" {:>17}", format!("{share:.3}% req/byte"));
    }
    println!("{header}");
    for chunk in points.chunk_by(|a, b| a.policy == b.policy) {
        let mut line = format!("{:<20}", chunk[0].policy);
        for p in chunk {
            line += &format!(
                " {:>17}",
                format!(
                    "{:.4} {:.4}",
                    p.outcome.miss_ratio(),
                    p.outcome.byte_miss_ratio()
                )
            );
        }
        println!("{line}");
    }
}
