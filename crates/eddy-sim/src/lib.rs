//! # eddy-sim: the trace-driven cache simulator (issue 14)
//!
//! - [`trace`]: request traces as the simulator reads them, from libCacheSim's `oracleGeneral`
//!   binary format and from the `timestamp,object_id,size` CSV of `../shared/traces`, strictly:
//!   a truncated or corrupt trace is an error naming the file and the record.
//! - [`synth`]: a seeded synthetic CDN workload (Zipf with churn, releases, flash crowds, scans,
//!   a diurnal rate, heavy-tailed sizes by kind).
//! - [`run`]: a trace through one of `eddy-cache`'s eviction policies, driven as the edge's
//!   memory tier drives it, counted as libCacheSim counts (request and byte miss ratios).
//! - [`belady`]: the offline optimum (unit-size MIN, and a size-aware variant).
//! - [`bound`]: A0, the online optimum where popularity holds still (what a perfect
//!   popularity forecast is worth).
//! - [`sweep`]: miss-ratio curves over many capacities, in parallel, as CSV.
//! - [`fleet`]: several edges with pre-warm (nothing, other edges' spikes, the forecast's
//!   hints): hits gained per byte fetched ahead of demand.
//!
//! Must not touch: tokio, pingora, the network. The policies it runs are `eddy-cache`'s own.

pub mod belady;
pub mod bound;
pub mod fleet;
pub mod plot;
pub mod run;
pub mod sweep;
pub mod synth;
pub mod trace;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A trace could not be read.
    #[error(transparent)]
    Trace(#[from] trace::TraceError),
    /// No such policy.
    #[error(
        "unknown policy {0:?}; use one of lru, fifo, s3fifo, sieve, wtinylfu, arc, learned, belady, belady-size, s3fifo-libcachesim, wtinylfu-libcachesim"
    )]
    UnknownPolicy(String),
    /// A capacity spec did not parse.
    #[error("capacity {spec:?}: {why}")]
    Capacity {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    /// No such synthetic workload.
    #[error("unknown workload {0:?}; use \"vod\" or \"web\"")]
    UnknownWorkload(String),
    /// Writing results failed.
    #[error("writing results: {0}")]
    Output(String),
}
