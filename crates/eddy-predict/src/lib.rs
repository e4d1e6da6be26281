//! # eddy-predict: prediction for the delivery tier (issue 14)
//!
//! - [`model`]: an online additive model of the time until an object's next request, from
//!   binned recency, gap, frequency, size, age and kind, with a few interaction tables.
//! - [`learned`]: an `eddy-cache` eviction and admission [`eddy_cache::Policy`] driven by that
//!   model (relaxed Belady: evict what is predicted to come back last).
//! - [`guard`]: the learned policy as the edge runs it, falling back to S3-FIFO if it fails.
//! - [`sketch`]: a count-min sketch with periodic halving (long-memory popularity).
//! - [`trending`]: trending items per region with time decay (bounded Space-Saving tables).
//! - [`recommend`]: item-to-item co-occurrence recommendations per viewer, bounded.
//! - [`forecast`]: which items are about to get hot (rising or new), for pre-warm hints.
//!
//! Must not touch: tokio, pingora, the network. Everything here is bounded in memory and in
//! work per request whatever the traffic.

mod bounded;
pub mod forecast;
pub mod guard;
pub mod learned;
pub mod model;
pub mod recommend;
pub mod sketch;
pub mod trending;
