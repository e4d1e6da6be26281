//! Errors of the cache core.

use std::path::PathBuf;

/// Everything that can go wrong in the cache core. Storage errors name the path and the fix.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The disk tier directory could not be created or read.
    #[error(
        "cache directory {path}: {source}; check that it exists, is writable and is on a local disk"
    )]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing or reading one object file failed.
    #[error("cache file {path}: {source}")]
    Io {
        /// The object file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An object file failed its checksum or has a bad header; it was removed.
    #[error("cache file {path} is corrupt ({what}); it was removed and will be refetched")]
    Corrupt {
        /// The object file.
        path: PathBuf,
        /// What check failed.
        what: &'static str,
    },
    /// An object is larger than the tier can ever hold.
    #[error("object of {size} bytes exceeds the largest object a tier accepts ({limit} bytes)")]
    TooLarge {
        /// Object size in bytes.
        size: u64,
        /// Limit in bytes.
        limit: u64,
    },
    /// The named policy does not exist.
    #[error(
        "unknown eviction policy {0:?}; use one of \"s3fifo\", \"lru\", \"fifo\", \"sieve\", \"arc\", \"wtinylfu\""
    )]
    UnknownPolicy(String),
    /// The named admission policy does not exist.
    #[error("unknown admission policy {0:?}; use \"always\" or \"second-hit\"")]
    UnknownAdmission(String),
}
