//! The purge index: which stored objects a purge by URL, prefix or surrogate key reaches, kept
//! small enough that a disk cache of millions of objects does not hold their URLs in RAM.
//!
//! - **URL**: the caller names a URL by its primary key (the hash of the URL the edge builds the
//!   cache key from). An object stored without variance *is* its primary key, so it needs no
//!   entry here; only `Vary` variants are listed under their primary key.
//! - **Surrogate key**: the hash of each key lists the objects tagged with it. Only tagged objects
//!   pay.
//! - **Prefix**: a ban (as in Varnish): `(epoch, prefix, soft)`. The memory tier is swept at once;
//!   an object on disk is checked against newer bans when it is next read (its file records the
//!   ban epoch it was filled under). Bans are appended to `bans.log` in the disk tier so a restart
//!   never forgets one.
//!
//! Entries for objects that left the cache are dropped lazily: the lists are compacted against
//! the set of resident objects when they grow past twice the live count.

use crate::key::{KeyMap, ObjectKey};
use crate::store::Tags;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;

fn key_hash(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// A prefix ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// Objects filled under an earlier epoch are subject to it.
    pub epoch: u32,
    /// URL prefix (host + path).
    pub prefix: String,
    /// Mark stale instead of removing.
    pub soft: bool,
}

#[derive(Default)]
struct Inner {
    variants: KeyMap<Vec<ObjectKey>>,
    surrogates: HashMap<u64, Vec<ObjectKey>>,
    entries: usize,
    bans: Vec<Ban>,
    epoch: u32,
}

/// URL-variant, surrogate-key and prefix-ban lookups.
#[derive(Default)]
pub struct PurgeIndex {
    inner: RwLock<Inner>,
    ban_log: Option<PathBuf>,
}

impl PurgeIndex {
    /// An index whose bans persist in `ban_log` (loaded now if it exists).
    pub fn with_ban_log(path: PathBuf) -> std::io::Result<Self> {
        let mut inner = Inner::default();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    if let Some(e) = line.strip_prefix("epoch ") {
                        if let Ok(e) = e.trim().parse::<u32>() {
                            inner.epoch = inner.epoch.max(e);
                        }
                        continue;
                    }
                    let mut parts = line.splitn(3, ' ');
                    let (Some(e), Some(s), Some(p)) = (parts.next(), parts.next(), parts.next())
                    else {
                        continue; // a torn last line
                    };
                    let (Ok(epoch), soft) = (e.parse::<u32>(), s == "soft") else {
                        continue;
                    };
                    if p.is_empty() {
                        continue;
                    }
                    inner.epoch = inner.epoch.max(epoch);
                    inner.bans.push(Ban {
                        epoch,
                        prefix: p.to_string(),
                        soft,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(PurgeIndex {
            inner: RwLock::new(inner),
            ban_log: Some(path),
        })
    }

    /// Record that `key` is stored with `tags`.
    pub fn add(&self, key: ObjectKey, tags: &Tags) {
        let primary = tags.primary();
        if primary == key && tags.surrogate_keys().is_empty() {
            return;
        }
        let mut g = self.inner.write();
        if primary != key {
            let v = g.variants.entry(primary).or_default();
            if !v.contains(&key) {
                v.push(key);
                g.entries += 1;
            }
        }
        for s in tags.surrogate_keys() {
            let v = g.surrogates.entry(key_hash(s)).or_default();
            if !v.contains(&key) {
                v.push(key);
                g.entries += 1;
            }
        }
    }

    /// Whether the lists hold more than twice `live` entries (time to [`PurgeIndex::compact`]).
    pub fn needs_compaction(&self, live: usize) -> bool {
        self.inner.read().entries > 2 * live + 1024
    }

    /// Drop entries for objects `resident` says are gone.
    pub fn compact(&self, resident: impl Fn(&ObjectKey) -> bool) {
        let mut g = self.inner.write();
        let mut entries = 0;
        g.variants.retain(|_, v| {
            v.retain(|k| resident(k));
            entries += v.len();
            !v.is_empty()
        });
        g.surrogates.retain(|_, v| {
            v.retain(|k| resident(k));
            entries += v.len();
            !v.is_empty()
        });
        g.entries = entries;
    }

    /// Every stored variant of the URL whose primary key is `primary` (including the plain one).
    pub fn by_primary(&self, primary: &ObjectKey) -> Vec<ObjectKey> {
        let mut out = vec![*primary];
        if let Some(v) = self.inner.read().variants.get(primary) {
            out.extend_from_slice(v);
        }
        out
    }

    /// Objects tagged with surrogate key `key`.
    pub fn by_surrogate(&self, key: &str) -> Vec<ObjectKey> {
        self.inner
            .read()
            .surrogates
            .get(&key_hash(key))
            .cloned()
            .unwrap_or_default()
    }

    /// The current ban epoch: record it when a fill starts.
    pub fn epoch(&self) -> u32 {
        self.inner.read().epoch
    }

    /// Add a prefix ban; returns it. Persisted before it returns when a ban log is configured.
    pub fn ban(&self, prefix: &str, soft: bool) -> std::io::Result<Ban> {
        let mut g = self.inner.write();
        let ban = Ban {
            epoch: g.epoch + 1,
            prefix: prefix.to_string(),
            soft,
        };
        if let Some(path) = &self.ban_log {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            writeln!(
                f,
                "{} {} {}",
                ban.epoch,
                if soft { "soft" } else { "hard" },
                prefix
            )?;
            f.sync_data()?;
        }
        g.epoch = ban.epoch;
        g.bans.push(ban.clone());
        Ok(ban)
    }

    /// Whether an object with `url`, filled under `epoch`, is banned: `Some(soft)` if so.
    /// A hard ban wins over a soft one.
    pub fn banned(&self, url: &str, epoch: u32) -> Option<bool> {
        let g = self.inner.read();
        if g.bans.is_empty() || epoch >= g.epoch {
            return None;
        }
        let mut hit = None;
        for b in g
            .bans
            .iter()
            .filter(|b| b.epoch > epoch && url.starts_with(&b.prefix))
        {
            if !b.soft {
                return Some(false);
            }
            hit = Some(true);
        }
        hit
    }

    /// Number of bans held.
    pub fn bans(&self) -> usize {
        self.inner.read().bans.len()
    }

    /// Forget every ban (after a full sweep applied them) and truncate the ban log. The epoch
    /// keeps counting up.
    pub fn clear_bans(&self) -> std::io::Result<()> {
        let mut g = self.inner.write();
        if let Some(path) = &self.ban_log {
            // Keep the epoch across restarts with a no-op ban line.
            std::fs::write(path, format!("epoch {}\n", g.epoch))?;
        }
        g.bans.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_and_surrogates() {
        let idx = PurgeIndex::default();
        let p = ObjectKey::from_u64(1);
        let v1 = ObjectKey::from_u64(2);
        idx.add(p, &Tags::new("h/a", p, ["show"]));
        idx.add(v1, &Tags::new("h/a", p, ["show", "s2"]));
        assert_eq!(idx.by_primary(&p), vec![p, v1]);
        assert_eq!(idx.by_surrogate("s2"), vec![v1]);
        assert_eq!(idx.by_surrogate("show").len(), 2);
        idx.compact(|k| *k != v1);
        assert_eq!(idx.by_primary(&p), vec![p]);
        assert!(idx.by_surrogate("s2").is_empty());
    }

    #[test]
    fn bans_apply_to_older_fills_and_persist() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("bans.log");
        let idx = PurgeIndex::with_ban_log(log.clone())?;
        let before = idx.epoch();
        idx.ban("h/videos/", false)?;
        idx.ban("h/news/", true)?;
        assert_eq!(idx.banned("h/videos/1.ts", before), Some(false));
        assert_eq!(idx.banned("h/news/today", before), Some(true));
        assert_eq!(idx.banned("h/other", before), None);
        assert_eq!(
            idx.banned("h/videos/1.ts", idx.epoch()),
            None,
            "filled after the ban"
        );
        let again = PurgeIndex::with_ban_log(log)?;
        assert_eq!(
            again.banned("h/videos/1.ts", before),
            Some(false),
            "bans survive restart"
        );
        again.clear_bans()?;
        assert_eq!(again.banned("h/videos/1.ts", before), None);
        assert_eq!(again.epoch(), 2);
        Ok(())
    }
}
