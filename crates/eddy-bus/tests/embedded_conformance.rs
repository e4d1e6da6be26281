//! The embedded log passes the bus conformance suite, plus its own crash-recovery checks.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use bytes::Bytes;
use eddy_bus::conformance::Harness;
use eddy_bus::embedded::{EmbeddedBus, EmbeddedOptions, FsyncPolicy};
use eddy_bus::{Bus, BusError, StartFrom};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

struct Embedded {
    dir: tempfile::TempDir,
}

impl Embedded {
    fn new() -> Self {
        Embedded {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn opts(&self) -> EmbeddedOptions {
        EmbeddedOptions::new(self.dir.path())
    }
}

#[async_trait]
impl Harness for Embedded {
    async fn connect(&self) -> Result<Arc<dyn Bus>, BusError> {
        Ok(Arc::new(EmbeddedBus::open(self.opts())?))
    }
    async fn restart(&self) -> Result<(), BusError> {
        // The "broker" is the process: reopening the directory is its restart.
        Ok(())
    }
    async fn connect_unreachable(&self) -> Result<Arc<dyn Bus>, BusError> {
        let file = self.dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        Ok(Arc::new(EmbeddedBus::open(EmbeddedOptions::new(
            file.join("bus"),
        ))?))
    }
}

eddy_bus::conformance_tests!(Embedded::new());

#[tokio::test]
async fn torn_tail_is_truncated_and_never_delivered() {
    let h = Embedded::new();
    {
        let bus = EmbeddedBus::open(h.opts()).unwrap();
        for i in 0..10 {
            bus.publish("t", "k", Bytes::from(format!("r{i}")))
                .await
                .unwrap();
        }
    }
    // A crash in the middle of the next write: half a record at the end of the segment.
    let seg = h.dir.path().join("t").join(format!("{:020}.log", 0));
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 9, 9]).unwrap();
    drop(f);
    let bus = EmbeddedBus::open(h.opts()).unwrap();
    let mut sub = bus.subscribe("t", "c", StartFrom::Earliest).await.unwrap();
    for i in 0..10 {
        let d = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.payload, Bytes::from(format!("r{i}")));
    }
    assert_eq!(sub.backlog().await.unwrap(), 0, "the torn record is gone");
    // Appends continue at the right offset after the truncation.
    assert_eq!(
        bus.publish("t", "k", Bytes::from_static(b"r10"))
            .await
            .unwrap(),
        10
    );
    let d = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.offset, &d.payload[..]), (10, &b"r10"[..]));
}

#[tokio::test]
async fn corrupt_record_truncates_at_last_good_one() {
    let h = Embedded::new();
    {
        let bus = EmbeddedBus::open(h.opts()).unwrap();
        for i in 0..5 {
            bus.publish("t", "k", Bytes::from(format!("r{i}")))
                .await
                .unwrap();
        }
    }
    let seg = h.dir.path().join("t").join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff; // flip a bit in the last record's payload
    std::fs::write(&seg, &bytes).unwrap();
    let bus = EmbeddedBus::open(h.opts()).unwrap();
    assert_eq!(
        bus.end("t").unwrap(),
        4,
        "records 0..4 survive, the corrupt 5th is dropped"
    );
}

#[tokio::test]
async fn segments_roll_and_retention_removes_the_oldest() {
    let h = Embedded::new();
    let opts = EmbeddedOptions {
        segment_bytes: 1000,
        retention_bytes: Some(3000),
        fsync: FsyncPolicy::Never,
        tail_bytes: 0,
        ..h.opts()
    };
    let bus = EmbeddedBus::open(opts).unwrap();
    for i in 0..200 {
        bus.publish("t", "k", Bytes::from(vec![i as u8; 40]))
            .await
            .unwrap();
    }
    let segs = std::fs::read_dir(h.dir.path().join("t"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .count();
    assert!((3..=5).contains(&segs), "{segs} segments kept");
    // A consumer from the start is moved to the oldest retained record and reads from files.
    let mut sub = bus.subscribe("t", "c", StartFrom::Earliest).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert!(d.offset > 0, "oldest records were removed");
    let mut last = d.offset;
    while sub.backlog().await.unwrap() > 0 {
        let d = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.offset, last + 1, "contiguous replay from files");
        last = d.offset;
    }
    assert_eq!(last, 199);
}

#[tokio::test]
async fn invalid_names_are_refused() {
    let h = Embedded::new();
    let bus = EmbeddedBus::open(h.opts()).unwrap();
    assert!(matches!(
        bus.publish("../etc", "k", Bytes::new()).await,
        Err(BusError::InvalidName { .. })
    ));
    assert!(matches!(
        bus.subscribe("t", "a/b", StartFrom::Latest).await,
        Err(BusError::InvalidName { .. })
    ));
}

/// Issue 11 item 18: the end offset only moves forward. Several threads released together each
/// append once per round; after every round the end must equal the records appended, and a
/// subscriber reading from the start must receive the round's last record with no further
/// publish to wake it. Before the fix, appenders could send their end values in the opposite
/// order to the one they appended in, leaving the watch one behind and the subscriber asleep.
#[test]
fn end_offset_never_goes_backwards_under_racing_appenders() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 20_000;
    let h = Embedded::new();
    let mut opts = h.opts();
    opts.fsync = FsyncPolicy::Never;
    let bus = Arc::new(EmbeddedBus::open(opts).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut sub = rt
        .block_on(bus.subscribe("race", "reader", StartFrom::Earliest))
        .unwrap();
    let start = Arc::new(std::sync::Barrier::new(THREADS + 1));
    let done = Arc::new(std::sync::Barrier::new(THREADS + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (bus, start, done) = (bus.clone(), start.clone(), done.clone());
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    start.wait();
                    bus.publish_batch("race", &[("k", Bytes::from(format!("{r}-{t}")))])
                        .unwrap();
                    done.wait();
                }
            })
        })
        .collect();
    let mut next = 0u64;
    for round in 0..ROUNDS {
        start.wait();
        done.wait();
        let total = ((round + 1) * THREADS) as u64;
        assert_eq!(
            bus.end("race").unwrap(),
            total,
            "round {round}: end went backwards"
        );
        rt.block_on(async {
            while next < total {
                let d = tokio::time::timeout(Duration::from_secs(5), sub.next())
                    .await
                    .unwrap_or_else(|_| panic!("round {round}: stuck at {next} of {total}"))
                    .unwrap();
                assert_eq!(d.offset, next);
                next += 1;
            }
        });
    }
    for w in workers {
        w.join().unwrap();
    }
}
