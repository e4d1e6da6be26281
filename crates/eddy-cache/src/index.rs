//! The purge index: which stored objects belong to a URL, a URL prefix or a surrogate key.
//!
//! One URL can have several stored variants (`Vary`), so a URL maps to a small set of keys.
//! URLs sit in an ordered map so a prefix purge is a range scan.

use crate::key::{KeyMap, ObjectKey};
use crate::store::Tags;
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

#[derive(Default)]
struct Inner {
    urls: BTreeMap<Arc<str>, Vec<ObjectKey>>,
    surrogates: HashMap<Box<str>, HashSet<ObjectKey>>,
    tags: KeyMap<Tags>,
}

/// URL, prefix and surrogate-key lookups over the stored objects.
#[derive(Default)]
pub struct PurgeIndex {
    inner: RwLock<Inner>,
}

impl PurgeIndex {
    /// Record that `key` is stored with `tags` (replacing its previous tags).
    pub fn add(&self, key: ObjectKey, tags: &Tags) {
        let mut g = self.inner.write();
        Self::remove_locked(&mut g, &key);
        let url = tags.url_arc();
        let variants = g.urls.entry(url).or_default();
        if !variants.contains(&key) {
            variants.push(key);
        }
        for s in tags.surrogate_keys() {
            g.surrogates.entry(s.clone()).or_default().insert(key);
        }
        g.tags.insert(key, tags.clone());
    }

    fn remove_locked(g: &mut Inner, key: &ObjectKey) {
        let Some(tags) = g.tags.remove(key) else {
            return;
        };
        if let Some(v) = g.urls.get_mut(tags.url()) {
            v.retain(|k| k != key);
            if v.is_empty() {
                g.urls.remove(tags.url());
            }
        }
        for s in tags.surrogate_keys() {
            if let Some(set) = g.surrogates.get_mut(s) {
                set.remove(key);
                if set.is_empty() {
                    g.surrogates.remove(s);
                }
            }
        }
    }

    /// Forget `key`.
    pub fn remove(&self, key: &ObjectKey) {
        Self::remove_locked(&mut self.inner.write(), key);
    }

    /// All variants stored for exactly `url`.
    pub fn by_url(&self, url: &str) -> Vec<ObjectKey> {
        self.inner.read().urls.get(url).cloned().unwrap_or_default()
    }

    /// All objects whose URL starts with `prefix`.
    pub fn by_prefix(&self, prefix: &str) -> Vec<ObjectKey> {
        let g = self.inner.read();
        let mut out = Vec::new();
        for (url, keys) in g.urls.range::<str, _>((
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
        )) {
            if !url.starts_with(prefix) {
                break;
            }
            out.extend_from_slice(keys);
        }
        out
    }

    /// All objects tagged with surrogate key `key`.
    pub fn by_surrogate(&self, key: &str) -> Vec<ObjectKey> {
        self.inner
            .read()
            .surrogates
            .get(key)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Number of indexed objects.
    pub fn len(&self) -> usize {
        self.inner.read().tags.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_surrogate_lookups() {
        let idx = PurgeIndex::default();
        let a = ObjectKey::from_u64(1);
        let b = ObjectKey::from_u64(2);
        let c = ObjectKey::from_u64(3);
        idx.add(a, &Tags::new("h/videos/1.ts", ["show-1"]));
        idx.add(b, &Tags::new("h/videos/2.ts", ["show-1", "season-2"]));
        idx.add(c, &Tags::new("h/videosx", [] as [&str; 0]));
        let mut p = idx.by_prefix("h/videos/");
        p.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(p, want);
        assert_eq!(idx.by_surrogate("season-2"), vec![b]);
        idx.remove(&b);
        assert!(idx.by_surrogate("season-2").is_empty());
        assert_eq!(idx.by_url("h/videos/1.ts"), vec![a]);
    }
}
