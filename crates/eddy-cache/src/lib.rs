//! # eddy-cache: the cache core of an Eddy edge
//!
//! This crate owns *what* is stored and *what* gets evicted; it knows nothing about sockets,
//! pingora or tokio, so the edge (`eddy-edge`) wraps it in a thin adapter and the trace simulator
//! can drive it directly.
//!
//! Layout:
//! - [`key`]: [`ObjectKey`], the 128-bit identity of one stored variant.
//! - [`policy`]: the [`Policy`] trait (eviction) with [`policy::S3Fifo`] (default) and
//!   [`policy::Lru`] (for comparison).
//! - [`admission`]: the [`Admission`] trait, a separate step that decides whether a new object
//!   may enter a tier at all.
//! - [`memory`]: the memory tier, bounded in bytes, sharded so a hit never takes a global lock.
//! - [`disk`]: the disk tier, bounded in bytes, one checksummed file per object, rebuilt from the
//!   directory on start so it survives restart; a torn or corrupt file is never served.
//! - [`sealed`]: large bodies in sealed memory files, so the edge can `sendfile` them.
//! - [`index`]: URL / prefix / surrogate-key index used by purge.
//! - [`store`]: [`Cache`], the two tiers plus the index: lookup, insert, hard and soft purge.
//! - [`rfc9111`]: pure RFC 9111 / RFC 5861 / RFC 9213 rules: directive parsing, storability and
//!   freshness lifetime for a shared cache.
//!
//! Must not touch: HTTP connections, the event bus, configuration files.

pub mod admission;
pub mod disk;
pub mod error;
pub mod index;
pub mod key;
pub mod memory;
pub mod policy;
pub mod rfc9111;
pub mod sealed;
pub mod store;

pub use admission::Admission;
pub use error::CacheError;
pub use key::ObjectKey;
pub use policy::Policy;
pub use store::{Cache, CacheOptions, Lookup, Object, PurgeScope, Tags};
