//! The disk tier: one file per object under `<dir>/objects/<2 hex>/<32 hex>`, bounded in bytes.
//!
//! File layout (little-endian):
//!
//! ```text
//! 0   magic   "EDDYOBJ1"
//! 8   flags   u8 (bit 0: soft-purged), 3 bytes zero
//! 12  meta_len u32 | 16 tags_len u32 | 20 ban epoch u32 | 24 body_len u64
//! 32  payload_crc u32 (CRC-32C of meta ++ tags ++ body)
//! 36  header_crc  u32 (CRC-32 of bytes 12..36)
//! 40  meta | tags | body
//! ```
//!
//! Crash safety: a file is written under `<dir>/tmp/`, optionally fsynced, then renamed into
//! place, so a reader never sees a half-written object at its final name; a file torn by a
//! machine crash fails its checksum on read and is deleted, never served. On start the tier
//! scans `objects/`, checks every header and deletes leftovers from `tmp/`.

use crate::CacheError;
use crate::key::{KeyMap, ObjectKey};
use crate::policy::{Policy, Resident, Residents};
use crate::store::{Object, Tags};
use bytes::Bytes;
use parking_lot::Mutex;
use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &[u8; 8] = b"EDDYOBJ1";
const HEADER: usize = 40;
const FLAG_STALE: u8 = 1;

/// How a disk tier is opened.
#[derive(Debug, Clone)]
pub struct DiskOptions {
    /// Directory that holds the tier (created if missing).
    pub dir: PathBuf,
    /// Byte budget for object files.
    pub capacity: u64,
    /// fsync each object file before it becomes visible (survives power loss, costs latency).
    pub fsync: bool,
}

/// One indexed object: 12 bytes beside its 16-byte key. Sizes are kept in bytes up to 4 GiB
/// (the disk tier refuses larger objects).
struct Slot {
    size: u32,
    word: Cell<u32>,
    access: Cell<u8>,
}

/// The in-memory index of a disk tier: what is on disk, how big, and the eviction order. This is
/// the per-object RAM cost of the disk tier (see `examples/metadata_size.rs`).
pub struct DiskIndex {
    slots: KeyMap<Slot>,
    policy: Box<dyn Policy>,
    used: u64,
}

impl DiskIndex {
    /// An empty index evicting with `policy`.
    pub fn new(policy: Box<dyn Policy>) -> Self {
        DiskIndex {
            slots: KeyMap::default(),
            policy,
            used: 0,
        }
    }

    /// Record an object of `size` bytes, replacing any previous entry for `key`.
    pub fn insert(&mut self, key: ObjectKey, size: u64) {
        self.remove(&key);
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        self.slots.insert(
            key,
            Slot {
                size,
                word: Cell::new(0),
                access: Cell::new(0),
            },
        );
        self.used += u64::from(size);
        self.policy.insert(key, u64::from(size), &View(&self.slots));
    }

    /// Forget an object; returns its size if it was indexed.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<u64> {
        let old = self.slots.remove(key)?;
        let size = u64::from(old.size);
        self.used -= size;
        self.policy.remove(key, size, old.word.get());
        Some(size)
    }

    /// Record an access; returns whether the object is indexed.
    pub fn touch(&self, key: &ObjectKey) -> bool {
        match self.slots.get(key) {
            Some(s) => {
                s.access.set((s.access.get() + 1).min(3));
                true
            }
            None => false,
        }
    }

    /// One eviction step by policy: the objects it evicted and their sizes (usually one; a few
    /// for W-TinyLFU's duel, or none when it only moved an object between its queues); `None`
    /// when the policy tracks nothing.
    pub fn evict_step(&mut self) -> Option<Vec<(ObjectKey, u64)>> {
        let mut victims = Vec::new();
        if !self.policy.evict(&View(&self.slots), &mut victims) {
            return None;
        }
        Some(
            victims
                .into_iter()
                .filter_map(|victim| {
                    let s = self.slots.remove(&victim)?;
                    let size = u64::from(s.size);
                    self.used -= size;
                    Some((victim, size))
                })
                .collect(),
        )
    }

    /// Whether `key` is indexed.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        self.slots.contains_key(key)
    }

    /// Every indexed key.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.slots.keys().copied().collect()
    }

    /// Bytes indexed.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Objects indexed.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

struct View<'a>(&'a KeyMap<Slot>);

impl Residents for View<'_> {
    fn get(&self, key: &ObjectKey) -> Option<Resident> {
        self.0.get(key).map(|s| Resident {
            size: u64::from(s.size),
            access: s.access.get(),
            word: s.word.get(),
        })
    }
    fn set_word(&self, key: &ObjectKey, word: u32) {
        if let Some(s) = self.0.get(key) {
            s.word.set(word);
        }
    }
    fn set_access(&self, key: &ObjectKey, value: u8) {
        if let Some(s) = self.0.get(key) {
            s.access.set(value);
        }
    }
}

/// A persistent, byte-bounded tier of object files.
pub struct DiskTier {
    objects: PathBuf,
    tmp: PathBuf,
    capacity: u64,
    fsync: bool,
    state: Mutex<DiskIndex>,
    seq: AtomicU64,
    evictions: AtomicU64,
}

/// One object recovered by [`DiskTier::open`]: its key and purge tags.
pub type Recovered = (ObjectKey, Tags);

impl DiskTier {
    /// Open (or create) a tier, recovering the objects already on disk. Returns the tier and the
    /// recovered objects' tags so the purge index can be rebuilt.
    pub fn open(
        opts: &DiskOptions,
        policy: Box<dyn Policy>,
    ) -> Result<(DiskTier, Vec<Recovered>), CacheError> {
        let objects = opts.dir.join("objects");
        let tmp = opts.dir.join("tmp");
        for d in [&objects, &tmp] {
            fs::create_dir_all(d).map_err(|source| CacheError::Dir {
                path: d.clone(),
                source,
            })?;
        }
        // Leftovers from writes that never completed.
        if let Ok(rd) = fs::read_dir(&tmp) {
            for e in rd.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
        let mut state = DiskIndex::new(policy);
        let mut recovered = Vec::new();
        let mut found: Vec<(std::time::SystemTime, ObjectKey, u64, Tags)> = Vec::new();
        let rd = fs::read_dir(&objects).map_err(|source| CacheError::Dir {
            path: objects.clone(),
            source,
        })?;
        for sub in rd.flatten() {
            let Ok(files) = fs::read_dir(sub.path()) else {
                continue;
            };
            for f in files.flatten() {
                let path = f.path();
                let Some(key) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(ObjectKey::from_hex)
                else {
                    continue;
                };
                match read_header_and_tags(&path) {
                    Ok(info) => found.push((info.mtime, key, info.size, info.tags)),
                    Err(e) => {
                        tracing::warn!(error = %e, "dropping unreadable cache file at start-up");
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        // Oldest first, so the policy's queues resemble the order objects arrived in.
        found.sort_by_key(|(t, ..)| *t);
        for (_, key, size, tags) in found {
            state.insert(key, size);
            recovered.push((key, tags));
        }
        let tier = DiskTier {
            objects,
            tmp,
            capacity: opts.capacity,
            fsync: opts.fsync,
            state: Mutex::new(state),
            seq: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        };
        // The budget may have shrunk since the last run.
        let mut dropped = Vec::new();
        {
            let mut st = tier.state.lock();
            tier.evict_over_budget(&mut st, &mut dropped);
        }
        let dropped: std::collections::HashSet<ObjectKey> = dropped.into_iter().collect();
        recovered.retain(|(k, _)| !dropped.contains(k));
        Ok((tier, recovered))
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        let hex = key.to_hex();
        self.objects.join(&hex[..2]).join(hex)
    }

    fn evict_over_budget(&self, st: &mut DiskIndex, evicted: &mut Vec<ObjectKey>) {
        while st.used() > self.capacity {
            let Some(step) = st.evict_step() else {
                break;
            };
            for (victim, _) in step {
                let _ = fs::remove_file(self.path_of(&victim));
                evicted.push(victim);
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether the tier holds `key`.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        self.state.lock().contains(key)
    }

    /// Write an object (blocking I/O). Returns the keys evicted to make room.
    pub fn put(&self, key: ObjectKey, object: &Object) -> Result<Vec<ObjectKey>, CacheError> {
        let tags = object.tags.encode();
        let size = (HEADER + object.meta.len() + tags.len() + object.body.len()) as u64;
        let limit = self.capacity.min(u64::from(u32::MAX));
        if size > limit {
            return Err(CacheError::TooLarge { size, limit });
        }
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(MAGIC);
        header[12..16].copy_from_slice(&(object.meta.len() as u32).to_le_bytes());
        header[16..20].copy_from_slice(&(tags.len() as u32).to_le_bytes());
        header[20..24].copy_from_slice(&object.epoch.to_le_bytes());
        header[24..32].copy_from_slice(&(object.body.len() as u64).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&object.meta);
        crc.update(&tags);
        crc.update(&object.body);
        header[32..36].copy_from_slice(&crc.finalize().to_le_bytes());
        let hcrc = crc32fast::hash(&header[12..36]);
        header[36..40].copy_from_slice(&hcrc.to_le_bytes());

        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{}.{seq}", key.to_hex()));
        let io = |path: &Path| {
            let p = path.to_path_buf();
            move |source| CacheError::Io { path: p, source }
        };
        let write = || -> Result<(), CacheError> {
            let mut f = File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&header).map_err(io(&tmp))?;
            f.write_all(&object.meta).map_err(io(&tmp))?;
            f.write_all(&tags).map_err(io(&tmp))?;
            f.write_all(&object.body).map_err(io(&tmp))?;
            if self.fsync {
                f.sync_all().map_err(io(&tmp))?;
            }
            let dest = self.path_of(&key);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(io(parent))?;
            }
            fs::rename(&tmp, &dest).map_err(io(&dest))?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let mut evicted = Vec::new();
        let mut st = self.state.lock();
        st.insert(key, size);
        self.evict_over_budget(&mut st, &mut evicted);
        Ok(evicted)
    }

    /// Read an object (blocking I/O), verifying its checksums. `Ok(None)` if absent; a corrupt
    /// file is deleted and reported as [`CacheError::Corrupt`].
    pub fn get(&self, key: &ObjectKey) -> Result<Option<(Object, bool)>, CacheError> {
        if !self.state.lock().touch(key) {
            return Ok(None);
        }
        let path = self.path_of(key);
        let mut buf = Vec::new();
        match File::open(&path) {
            Ok(mut f) => f.read_to_end(&mut buf).map_err(|source| CacheError::Io {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.forget(key);
                return Ok(None);
            }
            Err(source) => return Err(CacheError::Io { path, source }),
        };
        match decode_file(Bytes::from(buf)) {
            Ok(found) => Ok(Some(found)),
            Err(what) => {
                self.remove(key);
                Err(CacheError::Corrupt { path, what })
            }
        }
    }

    fn forget(&self, key: &ObjectKey) {
        self.state.lock().remove(key);
    }

    /// Delete an object. Returns whether it was present.
    pub fn remove(&self, key: &ObjectKey) -> bool {
        let present = self.state.lock().remove(key).is_some();
        if present {
            let _ = fs::remove_file(self.path_of(key));
        }
        present
    }

    /// Mark an object soft-purged in its file so the mark survives restart.
    pub fn mark_stale(&self, key: &ObjectKey) -> Result<bool, CacheError> {
        if !self.contains(key) {
            return Ok(false);
        }
        let path = self.path_of(key);
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|source| CacheError::Io {
                path: path.clone(),
                source,
            })?;
        f.write_all_at(&[FLAG_STALE], 8)
            .map_err(|source| CacheError::Io { path, source })?;
        Ok(true)
    }

    /// Bytes in use (file sizes).
    pub fn used(&self) -> u64 {
        self.state.lock().used()
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.state.lock().len()
    }

    /// Whether the tier is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Evictions so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Read the tags and ban epoch of every indexed object (blocking I/O; for ban sweeps).
    /// Unreadable files are dropped from the tier.
    pub fn scan(&self) -> Vec<Scanned> {
        let keys: Vec<ObjectKey> = self.state.lock().keys();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match read_header_and_tags(&self.path_of(&key)) {
                Ok(info) => out.push((key, info.tags, info.epoch)),
                Err(e) => {
                    tracing::warn!(error = %e, "dropping unreadable cache file during a sweep");
                    self.remove(&key);
                }
            }
        }
        out
    }
}

struct Header {
    flags: u8,
    epoch: u32,
    meta_len: usize,
    tags_len: usize,
    body_len: usize,
    payload_crc: u32,
}

fn parse_header(h: &[u8]) -> Result<Header, &'static str> {
    if h.len() < HEADER {
        return Err("truncated header");
    }
    if &h[..8] != MAGIC {
        return Err("bad magic");
    }
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    if crc32fast::hash(&h[12..36]) != u32_at(36) {
        return Err("header checksum mismatch");
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[24..32]);
    let body_len = usize::try_from(u64::from_le_bytes(b)).map_err(|_| "body length overflow")?;
    Ok(Header {
        flags: h[8],
        epoch: u32_at(20),
        meta_len: u32_at(12) as usize,
        tags_len: u32_at(16) as usize,
        body_len,
        payload_crc: u32_at(32),
    })
}

/// Decode and verify one object file (exposed for the fuzz target): the object and its
/// soft-purge mark, or what check failed.
pub fn decode_file(buf: Bytes) -> Result<(Object, bool), &'static str> {
    let h = parse_header(&buf)?;
    let total = HEADER
        .checked_add(h.meta_len)
        .and_then(|n| n.checked_add(h.tags_len))
        .and_then(|n| n.checked_add(h.body_len))
        .ok_or("length overflow")?;
    if buf.len() != total {
        return Err("length mismatch (torn write)");
    }
    if crc32fast::hash(&buf[HEADER..]) != h.payload_crc {
        return Err("payload checksum mismatch");
    }
    let meta = buf.slice(HEADER..HEADER + h.meta_len);
    let tags_end = HEADER + h.meta_len + h.tags_len;
    let tags = Tags::decode(&buf[HEADER + h.meta_len..tags_end]).ok_or("bad tags")?;
    let body = buf.slice(tags_end..);
    Ok((
        Object::new(meta, body, tags, h.epoch),
        h.flags & FLAG_STALE != 0,
    ))
}

/// What a scan of the disk tier reports per object: key, tags, ban epoch.
pub type Scanned = (ObjectKey, Tags, u32);

struct FileInfo {
    size: u64,
    tags: Tags,
    epoch: u32,
    mtime: std::time::SystemTime,
}

fn read_header_and_tags(path: &Path) -> Result<FileInfo, CacheError> {
    let corrupt = |what| CacheError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let io = |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let md = f.metadata().map_err(io)?;
    let mut h = [0u8; HEADER];
    f.read_exact(&mut h)
        .map_err(|_| corrupt("truncated header"))?;
    let header = parse_header(&h).map_err(corrupt)?;
    let expect = (HEADER + header.meta_len + header.tags_len + header.body_len) as u64;
    if md.len() != expect {
        return Err(corrupt("length mismatch (torn write)"));
    }
    let mut skip = vec![0u8; header.meta_len];
    f.read_exact(&mut skip).map_err(io)?;
    let mut tags = vec![0u8; header.tags_len];
    f.read_exact(&mut tags).map_err(io)?;
    let tags = Tags::decode(&tags).ok_or_else(|| corrupt("bad tags"))?;
    Ok(FileInfo {
        size: md.len(),
        tags,
        epoch: header.epoch,
        mtime: md.modified().unwrap_or(std::time::UNIX_EPOCH),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::S3Fifo;

    fn open(dir: &Path, cap: u64) -> (DiskTier, Vec<Recovered>) {
        let opts = DiskOptions {
            dir: dir.to_path_buf(),
            capacity: cap,
            fsync: false,
        };
        match DiskTier::open(&opts, Box::new(S3Fifo::new(cap))) {
            Ok(t) => t,
            Err(e) => panic!("open: {e}"),
        }
    }

    fn object(body: &str) -> Object {
        Object::new(
            Bytes::from_static(b"meta"),
            Bytes::from(body.to_string()),
            Tags::new("example.com/a", ObjectKey::from_u64(0), ["k1", "k2"]),
            7,
        )
    }

    #[test]
    fn survives_reopen() -> Result<(), CacheError> {
        let dir = tempfile::tempdir().map_err(|source| CacheError::Dir {
            path: "tmp".into(),
            source,
        })?;
        let k = ObjectKey::from_u64(9);
        {
            let (t, _) = open(dir.path(), 1 << 20);
            t.put(k, &object("hello"))?;
        }
        let (t, rec) = open(dir.path(), 1 << 20);
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].1.url(), "example.com/a");
        assert_eq!(rec[0].1.primary(), ObjectKey::from_u64(0));
        let (o, stale) = t
            .get(&k)?
            .ok_or(CacheError::UnknownPolicy("missing".into()))?;
        assert_eq!(&o.body[..], b"hello");
        assert!(!stale);
        assert!(t.mark_stale(&k)?);
        let (_, stale) = t
            .get(&k)?
            .ok_or(CacheError::UnknownPolicy("missing".into()))?;
        assert!(stale);
        Ok(())
    }

    #[test]
    fn corrupt_body_is_never_served() -> Result<(), CacheError> {
        let dir = tempfile::tempdir().map_err(|source| CacheError::Dir {
            path: "tmp".into(),
            source,
        })?;
        let (t, _) = open(dir.path(), 1 << 20);
        let k = ObjectKey::from_u64(3);
        t.put(k, &object("important bytes"))?;
        let path = t.path_of(&k);
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|source| CacheError::Io {
                path: path.clone(),
                source,
            })?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        f.write_all_at(b"X", len - 2)
            .map_err(|source| CacheError::Io {
                path: path.clone(),
                source,
            })?;
        assert!(matches!(t.get(&k), Err(CacheError::Corrupt { .. })));
        assert!(!path.exists());
        assert!(matches!(t.get(&k), Ok(None)));
        Ok(())
    }

    #[test]
    fn truncated_file_is_dropped_at_start() -> Result<(), CacheError> {
        let dir = tempfile::tempdir().map_err(|source| CacheError::Dir {
            path: "tmp".into(),
            source,
        })?;
        let k = ObjectKey::from_u64(4);
        let path;
        {
            let (t, _) = open(dir.path(), 1 << 20);
            t.put(k, &object("0123456789"))?;
            path = t.path_of(&k);
        }
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|source| CacheError::Io {
                path: path.clone(),
                source,
            })?;
        f.set_len(45).map_err(|source| CacheError::Io {
            path: path.clone(),
            source,
        })?;
        let (t, rec) = open(dir.path(), 1 << 20);
        assert!(rec.is_empty());
        assert!(matches!(t.get(&k), Ok(None)));
        Ok(())
    }

    #[test]
    fn stays_within_budget() -> Result<(), CacheError> {
        let dir = tempfile::tempdir().map_err(|source| CacheError::Dir {
            path: "tmp".into(),
            source,
        })?;
        let (t, _) = open(dir.path(), 2_000);
        for i in 0..100 {
            t.put(ObjectKey::from_u64(i), &object(&"x".repeat(100)))?;
            assert!(t.used() <= 2_000);
        }
        assert!(t.evictions() > 0);
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = decode_file(Bytes::from(data));
        }
    }
}
