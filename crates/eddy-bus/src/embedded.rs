//! The embedded durable log: Eddy's default bus, in-process, no broker.
//!
//! Layout under the bus directory:
//!
//! ```text
//! <topic>/<base offset, 20 digits>.log     segments, append-only
//! <topic>/consumers/<consumer>.offset      committed position (next offset to read), decimal
//! ```
//!
//! Record: `len u32 | crc32 u32 | offset u64 | key_len u16 | key | payload`, little-endian; `len`
//! counts the bytes after the CRC and the CRC covers them. On open every segment is scanned; the
//! first record that is short, fails its CRC or breaks offset order is where the segment is
//! truncated (with an error log), so a write torn by a crash is dropped, never delivered.
//!
//! Writes go straight to the OS (a process crash loses nothing `publish` returned for); the
//! [`FsyncPolicy`] decides when they reach the disk. Subscribers in the same process are woken by
//! a watch channel and read recent records from an in-memory tail; older ones from the files.

use crate::{Bus, BusError, Delivery, StartFrom, Subscription, check_name};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

const BACKEND: &str = "embedded";
const HEADER: usize = 8; // len + crc
const MAX_RECORD: usize = 16 << 20;

/// When appended records are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before `publish` returns (slowest, survives power loss record by record).
    Always,
    /// Every interval, by a background thread (a power loss can cost the last interval).
    Interval(Duration),
    /// Never explicitly (the OS decides; a process crash still loses nothing).
    Never,
}

/// How the embedded log is opened.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Directory holding every topic.
    pub dir: PathBuf,
    /// fsync policy.
    pub fsync: FsyncPolicy,
    /// Roll to a new segment past this many bytes.
    pub segment_bytes: u64,
    /// Delete the oldest segments while a topic holds more than this.
    pub retention_bytes: Option<u64>,
    /// Delete segments whose newest record is older than this.
    pub retention_age: Option<Duration>,
    /// Bytes of recent records kept in memory per topic for in-process subscribers.
    pub tail_bytes: usize,
}

impl EmbeddedOptions {
    /// Defaults for `dir`: fsync every 10 ms, 64 MiB segments, keep 1 GiB or 7 days, 8 MiB tail.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EmbeddedOptions {
            dir: dir.into(),
            fsync: FsyncPolicy::Interval(Duration::from_millis(10)),
            segment_bytes: 64 << 20,
            retention_bytes: Some(1 << 30),
            retention_age: Some(Duration::from_secs(7 * 86_400)),
            tail_bytes: 8 << 20,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BusError + '_ {
    move |source| BusError::Io {
        backend: BACKEND,
        path: path.to_path_buf(),
        source,
    }
}

struct Segment {
    path: PathBuf,
    len: u64,
}

struct TailRecord {
    offset: u64,
    key: Arc<str>,
    payload: Bytes,
}

struct TopicState {
    segments: BTreeMap<u64, Segment>,
    active: File,
    active_base: u64,
    next: u64,
    dirty: bool,
    tail: VecDeque<TailRecord>,
    tail_bytes: usize,
}

struct Topic {
    name: String,
    dir: PathBuf,
    state: Mutex<TopicState>,
    /// The next offset, sent after every append while the topic lock is held: it only moves
    /// forward.
    end: watch::Sender<u64>,
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// Encode one record.
fn encode(offset: u64, key: &str, payload: &[u8]) -> Vec<u8> {
    let key = &key.as_bytes()[..key.len().min(u16::MAX as usize)];
    let body_len = 8 + 2 + key.len() + payload.len();
    let mut out = Vec::with_capacity(HEADER + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[HEADER..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Read one record; `Ok(None)` at a clean end, `Err(reason)` for a torn or corrupt record.
fn read_record(r: &mut impl Read) -> Result<Option<(u64, String, Bytes, usize)>, &'static str> {
    let mut h = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match r.read(&mut h[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err("truncated record header"),
            Ok(n) => got += n,
            Err(_) => return Err("unreadable record header"),
        }
    }
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if !(10..=MAX_RECORD).contains(&len) {
        return Err("record length out of range");
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .map_err(|_| "truncated record body")?;
    if crc32fast::hash(&body) != crc {
        return Err("record checksum mismatch");
    }
    let mut o = [0u8; 8];
    o.copy_from_slice(&body[..8]);
    let offset = u64::from_le_bytes(o);
    let key_len = u16::from_le_bytes([body[8], body[9]]) as usize;
    if 10 + key_len > len {
        return Err("record key length out of range");
    }
    let key = std::str::from_utf8(&body[10..10 + key_len])
        .map_err(|_| "record key is not UTF-8")?
        .to_string();
    let body = Bytes::from(body);
    let payload = body.slice(10 + key_len..);
    Ok(Some((offset, key, payload, HEADER + len)))
}

/// Scan a segment, truncating it after the last good record. Returns (length, last offset).
fn recover_segment(
    path: &Path,
    base: u64,
    expect_from: u64,
) -> Result<(u64, Option<u64>), BusError> {
    let file = File::open(path).map_err(io_err(path))?;
    let mut r = BufReader::new(file);
    let mut good = 0u64;
    let mut last = None;
    let mut want = expect_from.max(base);
    loop {
        match read_record(&mut r) {
            Ok(None) => break,
            Ok(Some((offset, _, _, size))) if offset >= want => {
                good += size as u64;
                last = Some(offset);
                want = offset + 1;
            }
            Ok(Some(_)) => {
                tracing::error!(segment = %path.display(), position = good, "log record out of offset order; truncating the segment here");
                break;
            }
            Err(why) => {
                tracing::error!(segment = %path.display(), position = good, why, "corrupt or torn log record; truncating the segment at the last good record");
                break;
            }
        }
    }
    let len = fs::metadata(path).map_err(io_err(path))?.len();
    if len != good {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        f.set_len(good).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
    }
    Ok((good, last))
}

impl Topic {
    fn open(dir: PathBuf, name: &str) -> Result<Topic, BusError> {
        fs::create_dir_all(dir.join("consumers")).map_err(io_err(&dir))?;
        let mut bases: Vec<u64> = fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                n.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        bases.sort_unstable();
        let mut segments = BTreeMap::new();
        let mut next = 0u64;
        for base in bases {
            let path = segment_path(&dir, base);
            let (len, last) = recover_segment(&path, base, next)?;
            if let Some(l) = last {
                next = l + 1;
            } else {
                next = next.max(base);
            }
            segments.insert(base, Segment { path, len });
        }
        let active_base = match segments.keys().next_back() {
            Some(b) => *b,
            None => {
                let path = segment_path(&dir, 0);
                segments.insert(0, Segment { path, len: 0 });
                0
            }
        };
        let active_path = segment_path(&dir, active_base);
        let active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&active_path)
            .map_err(io_err(&active_path))?;
        let (end, _) = watch::channel(next);
        Ok(Topic {
            name: name.to_string(),
            dir,
            state: Mutex::new(TopicState {
                segments,
                active,
                active_base,
                next,
                dirty: false,
                tail: VecDeque::new(),
                tail_bytes: 0,
            }),
            end,
        })
    }

    fn earliest(&self) -> u64 {
        let st = self.state.lock();
        st.segments
            .keys()
            .next()
            .copied()
            .unwrap_or(st.next)
            .min(st.next)
    }

    fn end(&self) -> u64 {
        *self.end.borrow()
    }

    /// Append records; returns the offset of the first.
    fn append(&self, opts: &EmbeddedOptions, records: &[(&str, Bytes)]) -> Result<u64, BusError> {
        let mut st = self.state.lock();
        if st
            .segments
            .get(&st.active_base)
            .is_some_and(|s| s.len >= opts.segment_bytes)
        {
            self.roll(&mut st, opts)?;
        }
        let first = st.next;
        let mut buf = Vec::new();
        for (i, (key, payload)) in records.iter().enumerate() {
            if payload.len() + key.len() + 10 > MAX_RECORD {
                return Err(BusError::Backend {
                    backend: BACKEND,
                    detail: format!(
                        "record of {} bytes exceeds the {MAX_RECORD}-byte limit",
                        payload.len()
                    ),
                });
            }
            buf.extend_from_slice(&encode(first + i as u64, key, payload));
        }
        let path = segment_path(&self.dir, st.active_base);
        st.active.write_all(&buf).map_err(io_err(&path))?;
        if opts.fsync == FsyncPolicy::Always {
            st.active.sync_data().map_err(io_err(&path))?;
        } else {
            st.dirty = true;
        }
        let base = st.active_base;
        if let Some(s) = st.segments.get_mut(&base) {
            s.len += buf.len() as u64;
        }
        for (i, (key, payload)) in records.iter().enumerate() {
            st.tail_bytes += payload.len() + key.len() + 32;
            st.tail.push_back(TailRecord {
                offset: first + i as u64,
                key: Arc::from(*key),
                payload: payload.clone(),
            });
        }
        while st.tail_bytes > opts.tail_bytes {
            match st.tail.pop_front() {
                Some(r) => st.tail_bytes -= r.payload.len() + r.key.len() + 32,
                None => break,
            }
        }
        st.next = first + records.len() as u64;
        // Sent under the topic lock, so ends are sent in the order records were appended and
        // `end` only moves forward. Sent after the lock was dropped, two appenders could send in
        // the opposite order, leaving `end` behind the log and a subscriber asleep on a record
        // already written (issue 11 item 18).
        self.end.send_replace(st.next);
        drop(st);
        Ok(first)
    }

    fn roll(&self, st: &mut TopicState, opts: &EmbeddedOptions) -> Result<(), BusError> {
        let old = segment_path(&self.dir, st.active_base);
        st.active.sync_data().map_err(io_err(&old))?;
        let base = st.next;
        let path = segment_path(&self.dir, base);
        st.active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        st.active_base = base;
        st.segments.insert(base, Segment { path, len: 0 });
        self.retain(st, opts);
        Ok(())
    }

    /// Delete the oldest closed segments past the size or age limit.
    fn retain(&self, st: &mut TopicState, opts: &EmbeddedOptions) {
        loop {
            let total: u64 = st.segments.values().map(|s| s.len).sum();
            let Some((&base, seg)) = st.segments.iter().next() else {
                return;
            };
            if base == st.active_base {
                return;
            }
            let too_big = opts.retention_bytes.is_some_and(|max| total > max);
            let too_old = opts.retention_age.is_some_and(|age| {
                fs::metadata(&seg.path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|d| d > age)
            });
            if !(too_big || too_old) {
                return;
            }
            let _ = fs::remove_file(&seg.path);
            tracing::info!(topic = %self.name, segment = base, too_big, too_old, "log segment removed by retention");
            st.segments.remove(&base);
        }
    }

    fn tail_record(&self, offset: u64) -> Option<Delivery> {
        let st = self.state.lock();
        let front = st.tail.front()?.offset;
        if offset < front {
            return None;
        }
        let r = st.tail.get((offset - front) as usize)?;
        Some(Delivery {
            topic: self.name.clone(),
            offset: r.offset,
            key: r.key.to_string(),
            payload: r.payload.clone(),
        })
    }

    fn segment_for(&self, offset: u64) -> Option<(u64, PathBuf)> {
        let st = self.state.lock();
        st.segments
            .range(..=offset)
            .next_back()
            .map(|(b, s)| (*b, s.path.clone()))
            .or_else(|| st.segments.iter().next().map(|(b, s)| (*b, s.path.clone())))
    }

    fn flush(&self) {
        let mut st = self.state.lock();
        if st.dirty {
            if let Err(e) = st.active.sync_data() {
                tracing::error!(topic = %self.name, error = %e, "log fsync failed");
            }
            st.dirty = false;
        }
    }
}

struct Inner {
    opts: EmbeddedOptions,
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    stop: AtomicBool,
}

impl Inner {
    fn topic(&self, name: &str) -> Result<Arc<Topic>, BusError> {
        check_name("topic", name)?;
        let mut g = self.topics.lock();
        if let Some(t) = g.get(name) {
            return Ok(t.clone());
        }
        let t = Arc::new(Topic::open(self.opts.dir.join(name), name)?);
        g.insert(name.to_string(), t.clone());
        Ok(t)
    }
}

/// The embedded durable log.
pub struct EmbeddedBus {
    inner: Arc<Inner>,
    flusher: Option<std::thread::JoinHandle<()>>,
    /// Holds an exclusive lock on `<dir>/LOCK` while open: the log is one process's.
    _lock: fs::File,
}

impl EmbeddedBus {
    /// Open (or create) the log in `opts.dir`. Topics are recovered when first used.
    pub fn open(opts: EmbeddedOptions) -> Result<EmbeddedBus, BusError> {
        fs::create_dir_all(&opts.dir).map_err(|e| BusError::Unreachable {
            backend: BACKEND,
            target: opts.dir.display().to_string(),
            detail: e.to_string(),
        })?;
        // Two processes appending to one log would interleave records: refuse the second.
        let lock_path = opts.dir.join("LOCK");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        if let Err(e) = lock.try_lock() {
            return Err(BusError::Backend {
                backend: BACKEND,
                detail: format!(
                    "the log in {} is in use by another process or bus ({e}); the embedded bus serves one process: run every role in one process (`eddy up`) or give each process its own [bus] dir, or use a broker (kind = \"nats\", \"kafka\" or \"rabbitmq\") across processes",
                    opts.dir.display()
                ),
            });
        }
        let inner = Arc::new(Inner {
            opts,
            topics: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
        });
        let flusher = match inner.opts.fsync {
            FsyncPolicy::Interval(every) => {
                let weak = Arc::downgrade(&inner);
                Some(
                    std::thread::Builder::new()
                        .name("eddy-bus-fsync".into())
                        .spawn(move || {
                            while let Some(inner) = weak.upgrade() {
                                if inner.stop.load(Ordering::Relaxed) {
                                    break;
                                }
                                let topics: Vec<Arc<Topic>> =
                                    inner.topics.lock().values().cloned().collect();
                                drop(inner);
                                for t in topics {
                                    t.flush();
                                }
                                std::thread::sleep(every);
                            }
                        })
                        .map_err(|e| BusError::Backend {
                            backend: BACKEND,
                            detail: format!("cannot start the fsync thread: {e}"),
                        })?,
                )
            }
            _ => None,
        };
        Ok(EmbeddedBus {
            inner,
            flusher,
            _lock: lock,
        })
    }

    /// Append many records under one write (higher throughput); returns the first offset.
    pub fn publish_batch(&self, topic: &str, records: &[(&str, Bytes)]) -> Result<u64, BusError> {
        self.inner.topic(topic)?.append(&self.inner.opts, records)
    }

    /// The next offset of `topic` (its end).
    pub fn end(&self, topic: &str) -> Result<u64, BusError> {
        Ok(self.inner.topic(topic)?.end())
    }

    /// fsync every topic now.
    pub fn flush(&self) {
        let topics: Vec<Arc<Topic>> = self.inner.topics.lock().values().cloned().collect();
        for t in topics {
            t.flush();
        }
    }
}

impl Drop for EmbeddedBus {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        self.flush();
        if let Some(t) = self.flusher.take() {
            let _ = t.join();
        }
    }
}

#[async_trait]
impl Bus for EmbeddedBus {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn publish(&self, topic: &str, key: &str, payload: Bytes) -> Result<u64, BusError> {
        self.publish_batch(topic, &[(key, payload)])
    }

    async fn subscribe(
        &self,
        topic: &str,
        consumer: &str,
        from: StartFrom,
    ) -> Result<Box<dyn Subscription>, BusError> {
        check_name("consumer", consumer)?;
        let t = self.inner.topic(topic)?;
        let offsets = t.dir.join("consumers").join(format!("{consumer}.offset"));
        let earliest = t.earliest();
        let end = t.end();
        let committed = match fs::read_to_string(&offsets) {
            Ok(s) => s.trim().parse::<u64>().ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&offsets)(e)),
        };
        let next = match from {
            StartFrom::Committed => committed.unwrap_or(earliest),
            StartFrom::Earliest => earliest,
            StartFrom::Latest => end,
            StartFrom::Offset(o) => o,
        }
        .clamp(earliest, end);
        let end_rx = t.end.subscribe();
        Ok(Box::new(EmbeddedSubscription {
            topic: t,
            next,
            committed: committed.unwrap_or(0),
            reader: None,
            end_rx,
            offsets,
            fsync: self.inner.opts.fsync,
        }))
    }
}

struct Reader {
    base: u64,
    file: BufReader<File>,
    /// Offset of the next record this reader returns.
    at: u64,
}

struct EmbeddedSubscription {
    topic: Arc<Topic>,
    next: u64,
    committed: u64,
    reader: Option<Reader>,
    end_rx: watch::Receiver<u64>,
    offsets: PathBuf,
    fsync: FsyncPolicy,
}

impl EmbeddedSubscription {
    /// Read the record at `self.next` from the segment files.
    fn read_from_files(&mut self) -> Result<Option<Delivery>, BusError> {
        loop {
            // A reader only moves forward; reading on from behind `next` skips to it.
            let needs_reader = match &self.reader {
                Some(r) => r.at > self.next,
                None => true,
            };
            if needs_reader {
                let Some((base, path)) = self.topic.segment_for(self.next) else {
                    return Ok(None);
                };
                let file = File::open(&path).map_err(io_err(&path))?;
                self.reader = Some(Reader {
                    base,
                    file: BufReader::with_capacity(64 << 10, file),
                    at: base,
                });
            }
            let Some(r) = self.reader.as_mut() else {
                return Ok(None);
            };
            match read_record(&mut r.file) {
                Ok(Some((offset, key, payload, _))) => {
                    r.at = offset + 1;
                    if offset < self.next {
                        continue; // skipping to the wanted offset
                    }
                    // offset > next: records lost to retention or truncation; move on.
                    self.next = offset;
                    return Ok(Some(Delivery {
                        topic: self.topic.name.clone(),
                        offset,
                        key,
                        payload,
                    }));
                }
                Ok(None) | Err(_) => {
                    // End of this segment (or a record still being written): try the next one.
                    let base = r.base;
                    let next_base = {
                        let st = self.topic.state.lock();
                        st.segments.range(base + 1..).next().map(|(b, _)| *b)
                    };
                    self.reader = None;
                    match next_base {
                        // Whatever this segment lacks below the next one is gone (truncated).
                        Some(nb) => self.next = self.next.max(nb),
                        None => return Ok(None),
                    }
                }
            }
        }
    }
}

#[async_trait]
impl Subscription for EmbeddedSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let end = *self.end_rx.borrow_and_update();
            if self.next < end {
                let d = match self.topic.tail_record(self.next) {
                    Some(d) => Some(d),
                    None => {
                        let earliest = self.topic.earliest();
                        if self.next < earliest {
                            self.next = earliest;
                            self.reader = None;
                        }
                        self.read_from_files()?
                    }
                };
                if let Some(d) = d {
                    self.next = d.offset + 1;
                    return Ok(d);
                }
            }
            if self.end_rx.changed().await.is_err() {
                return Err(BusError::Closed);
            }
        }
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let pos = delivery.offset + 1;
        if pos <= self.committed {
            return Ok(());
        }
        let tmp = self.offsets.with_extension("offset.tmp");
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(pos.to_string().as_bytes())
            .map_err(io_err(&tmp))?;
        if self.fsync != FsyncPolicy::Never {
            f.sync_data().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &self.offsets).map_err(io_err(&self.offsets))?;
        self.committed = pos;
        Ok(())
    }

    async fn backlog(&mut self) -> Result<u64, BusError> {
        Ok(self.topic.end().saturating_sub(self.next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_second_bus_on_one_dir_is_refused_until_the_first_closes() -> Result<(), BusError> {
        let dir = tempfile::tempdir().map_err(|e| BusError::Backend {
            backend: BACKEND,
            detail: e.to_string(),
        })?;
        let first = EmbeddedBus::open(EmbeddedOptions::new(dir.path()))?;
        let msg = EmbeddedBus::open(EmbeddedOptions::new(dir.path()))
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            msg.contains("in use") && msg.contains("one process"),
            "{msg}"
        );
        drop(first);
        EmbeddedBus::open(EmbeddedOptions::new(dir.path()))?;
        Ok(())
    }

    proptest! {
        #[test]
        fn records_round_trip(offset in any::<u64>(), key in "[a-z0-9:/]{0,40}", payload in proptest::collection::vec(any::<u8>(), 0..500)) {
            let bytes = encode(offset, &key, &payload);
            let mut r = &bytes[..];
            let got = read_record(&mut r);
            prop_assert!(matches!(got, Ok(Some(_))));
            if let Ok(Some((o, k, p, size))) = got {
                prop_assert_eq!(o, offset);
                prop_assert_eq!(k, key);
                prop_assert_eq!(&p[..], &payload[..]);
                prop_assert_eq!(size, bytes.len());
            }
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut r = &data[..];
            let _ = read_record(&mut r);
        }
    }
}
