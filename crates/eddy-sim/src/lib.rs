//! # eddy-sim: the trace-driven cache simulator (issue 14)
//!
//! Built in steps. So far:
//! - [`trace`]: request traces as the simulator reads them, from libCacheSim's `oracleGeneral`
//!   binary format and from the `timestamp,object_id,size` CSV of `../shared/traces`, strictly:
//!   a truncated or corrupt trace is an error naming the file and the record.
//! - [`run`]: a trace through one of `eddy-cache`'s eviction policies, driven as the edge's
//!   memory tier drives it, counted as libCacheSim counts (request and byte miss ratios).
//!
//! Must not touch: tokio, pingora, the network. The policies it runs are `eddy-cache`'s own.

pub mod belady;
pub mod run;
pub mod trace;
