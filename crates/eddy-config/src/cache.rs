//! `[cache]`: the cache of an edge or shield. Owns [`CacheFile`] (the keys an operator writes)
//! and [`CacheConfig`] with its [`DiskConfig`]: the sizes of the memory and disk tiers, eviction
//! and admission policies, and the freshness defaults the edge applies where a response says
//! nothing (heuristic freshness cap, stale-on-error window, range slicing).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::{ConfigError, Overrides, invalid, size};

/// `[cache]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    /// Memory tier size, e.g. `"256 MiB"` (default 256 MiB; at least 1 MiB).
    pub memory_size: Option<String>,
    /// Largest object kept in memory, e.g. `"16 MiB"` (default 16 MiB, or a quarter of
    /// `memory_size` if that is smaller; at most `memory_size`).
    pub memory_max_object: Option<String>,
    /// Disk tier directory; no disk tier when absent.
    pub dir: Option<PathBuf>,
    /// Disk tier size, e.g. `"10 GiB"` (default 1 GiB when `dir` is set).
    pub disk_size: Option<String>,
    /// fsync every object file before it becomes visible (default false).
    pub fsync: Option<bool>,
    /// Eviction policy: `"s3fifo"` (default), `"lru"`, `"fifo"`, `"sieve"`, `"arc"` or
    /// `"wtinylfu"` (`eddy-cache::policy`; `eddy sim` compares them on a trace), or `"learned"`
    /// (`eddy-predict`: a learned admission and eviction policy that falls back to S3-FIFO if it
    /// fails, counted in `eddy_cache_policy_fallbacks_total`).
    pub policy: Option<String>,
    /// Admission policy: `"always"` (default) or `"second-hit"`.
    pub admission: Option<String>,
    /// Upper bound for heuristic freshness in seconds (default 86400).
    pub max_heuristic_ttl_s: Option<u64>,
    /// Seconds past freshness a stored response may be served when the origin drops the
    /// connection, times out or is unreachable, unless the response forbids it
    /// (`must-revalidate`, `proxy-revalidate`, `no-cache`, `s-maxage`) or carries its own
    /// `stale-if-error` (default 10, as Varnish's default grace; 0 to 31536000). The response
    /// says so: `X-Cache: STALE`.
    pub stale_on_error_s: Option<u64>,
    /// Range requests are fetched and cached as blocks of this size, so a range of a large file
    /// never pulls the whole file from the origin (default "4 MiB"; "0" turns slicing off).
    pub slice_size: Option<String>,
}

/// Validated `[cache]`.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Memory bytes.
    pub memory_bytes: u64,
    /// Largest in-memory object (at most `memory_bytes`).
    pub memory_max_object: u64,
    /// Disk tier.
    pub disk: Option<DiskConfig>,
    /// Eviction policy.
    pub policy: String,
    /// Admission policy.
    pub admission: String,
    /// Heuristic freshness cap.
    pub max_heuristic_ttl: Duration,
    /// Stale-on-error window for responses without their own.
    pub stale_on_error: Duration,
    /// Block size for range requests; 0 = off.
    pub slice_size: u64,
}

/// Validated disk tier settings.
#[derive(Debug, Clone)]
pub struct DiskConfig {
    /// Directory.
    pub dir: PathBuf,
    /// Bytes.
    pub bytes: u64,
    /// fsync before publish.
    pub fsync: bool,
}

/// Validate `[cache]` plus the command line's overrides.
pub(crate) fn cache_config(
    name: &Path,
    c: CacheFile,
    o: &Overrides,
) -> Result<CacheConfig, ConfigError> {
    let memory_bytes = size(
        name,
        "cache.memory_size",
        o.memory_size
            .as_deref()
            .or(c.memory_size.as_deref())
            .unwrap_or("256 MiB"),
    )?;
    if memory_bytes < 1 << 20 {
        return Err(invalid(
            name,
            "cache.memory_size",
            &memory_bytes.to_string(),
            "at least 1 MiB",
        ));
    }
    let memory_max_object = match c.memory_max_object.as_deref() {
        Some(v) => size(name, "cache.memory_max_object", v)?,
        None => (16 << 20).min(memory_bytes / 4),
    };
    if memory_max_object > memory_bytes {
        return Err(invalid(
            name,
            "cache.memory_max_object",
            &memory_max_object.to_string(),
            &format!(
                "at most cache.memory_size ({memory_bytes} bytes): a larger object could never be kept in memory"
            ),
        ));
    }
    let dir = o.cache_dir.clone().or(c.dir);
    let disk = match dir {
        Some(dir) => {
            let bytes = size(
                name,
                "cache.disk_size",
                o.disk_size
                    .as_deref()
                    .or(c.disk_size.as_deref())
                    .unwrap_or("1 GiB"),
            )?;
            if bytes < 1 << 20 {
                return Err(invalid(
                    name,
                    "cache.disk_size",
                    &bytes.to_string(),
                    "at least 1 MiB",
                ));
            }
            Some(DiskConfig {
                dir,
                bytes,
                fsync: c.fsync.unwrap_or(false),
            })
        }
        None => None,
    };
    const POLICIES: [&str; 7] = [
        "s3fifo", "lru", "fifo", "sieve", "arc", "wtinylfu", "learned",
    ];
    let policy = c.policy.unwrap_or_else(|| "s3fifo".into());
    if !POLICIES.contains(&policy.as_str()) {
        return Err(invalid(
            name,
            "cache.policy",
            &policy,
            "one of \"s3fifo\", \"lru\", \"fifo\", \"sieve\", \"arc\", \"wtinylfu\", \"learned\"",
        ));
    }
    let admission = c.admission.unwrap_or_else(|| "always".into());
    if !matches!(admission.as_str(), "always" | "second-hit") {
        return Err(invalid(
            name,
            "cache.admission",
            &admission,
            "\"always\" or \"second-hit\"",
        ));
    }
    Ok(CacheConfig {
        memory_bytes,
        memory_max_object,
        disk,
        policy,
        admission,
        max_heuristic_ttl: Duration::from_secs(c.max_heuristic_ttl_s.unwrap_or(86_400)),
        stale_on_error: match c.stale_on_error_s.unwrap_or(10) {
            s @ 0..=31_536_000 => Duration::from_secs(s),
            s => {
                return Err(invalid(
                    name,
                    "cache.stale_on_error_s",
                    &s.to_string(),
                    "0 to 31536000 seconds",
                ));
            }
        },
        slice_size: match size(
            name,
            "cache.slice_size",
            c.slice_size.as_deref().unwrap_or("4 MiB"),
        )? {
            0 => 0,
            n if (64 << 10..=1 << 30).contains(&n) => n,
            n => {
                return Err(invalid(
                    name,
                    "cache.slice_size",
                    &n.to_string(),
                    "0 (off) or 64 KiB to 1 GiB",
                ));
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use crate::tests::{each_fails_naming_its_key, from_text};
    use crate::{ConfigError, Overrides};
    use std::time::Duration;

    const ORIGIN: &str = "[edge]\norigins=[\"http://a:1\"]\n";

    #[test]
    fn every_eviction_policy_the_edge_runs_is_accepted() {
        for p in [
            "s3fifo", "lru", "fifo", "sieve", "arc", "wtinylfu", "learned",
        ] {
            let c = from_text(
                &format!("{ORIGIN}[cache]\npolicy=\"{p}\"\n"),
                &Overrides::default(),
            )
            .unwrap_or_else(|e| panic!("{p}: {e}"));
            assert_eq!(c.cache.policy, p);
        }
    }

    #[test]
    fn bad_cache_values_name_the_key_and_what_is_allowed() {
        let cases = [
            ("[cache]\nmemory_size=\"lots\"", "cache.memory_size"),
            ("[cache]\nmemory_size=\"512 KiB\"", "cache.memory_size"),
            ("[cache]\npolicy=\"clock\"", "cache.policy"),
            ("[cache]\npolicy=\"Learned\"", "cache.policy"),
            ("[cache]\nadmission=\"never\"", "cache.admission"),
            (
                "[cache]\nmemory_size=\"64 MiB\"\nmemory_max_object=\"65 MiB\"",
                "cache.memory_max_object",
            ),
            (
                "[cache]\nmemory_max_object=\"1 GiB\"",
                "cache.memory_max_object",
            ),
            (
                "[cache]\ndir=\"/x\"\ndisk_size=\"1 KiB\"",
                "cache.disk_size",
            ),
            (
                "[cache]\nstale_on_error_s=31536001",
                "cache.stale_on_error_s",
            ),
            ("[cache]\nslice_size=\"1 KiB\"", "cache.slice_size"),
        ];
        let texts: Vec<String> = cases.iter().map(|(t, _)| format!("{ORIGIN}{t}")).collect();
        let cases: Vec<(&str, &str)> = texts
            .iter()
            .zip(cases)
            .map(|(t, (_, k))| (t.as_str(), k))
            .collect();
        each_fails_naming_its_key(&cases);
    }

    #[test]
    fn defaults_and_limits() -> Result<(), ConfigError> {
        let c = from_text(ORIGIN, &Overrides::default())?.cache;
        assert_eq!(c.memory_bytes, 256 << 20);
        assert_eq!(c.memory_max_object, 16 << 20);
        assert_eq!(c.stale_on_error, Duration::from_secs(10));
        assert_eq!(c.slice_size, 4 << 20);
        // A small memory tier keeps a quarter of itself as the default largest object; the
        // largest object may be the whole tier, not more.
        let small = from_text(
            &format!("{ORIGIN}[cache]\nmemory_size=\"8 MiB\""),
            &Overrides::default(),
        )?;
        assert_eq!(small.cache.memory_max_object, 2 << 20);
        let whole = from_text(
            &format!("{ORIGIN}[cache]\nmemory_size=\"8 MiB\"\nmemory_max_object=\"8 MiB\""),
            &Overrides::default(),
        )?;
        assert_eq!(whole.cache.memory_max_object, 8 << 20);
        let off = from_text(
            &format!("{ORIGIN}[cache]\nstale_on_error_s=0"),
            &Overrides::default(),
        )?;
        assert_eq!(off.cache.stale_on_error, Duration::ZERO);
        Ok(())
    }
}
