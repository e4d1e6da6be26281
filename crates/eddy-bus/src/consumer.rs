//! The loop every event consumer runs on top of a [`Subscription`]: decode the CloudEvent,
//! skip a redelivered duplicate (same `id`), dead-letter what cannot be decoded, and count it all.
//!
//! Dead letters go to `<topic>.dead-letter` with the original payload, and are logged with their
//! topic and offset. A dead-lettered record is committed like any other: it never blocks the
//! consumer.

use crate::{Bus, BusError, Delivery, Subscription};
use eddy_events::{CloudEvent, Event};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters a consumer keeps (exported as metrics by its owner).
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Records delivered by the subscription.
    pub delivered: AtomicU64,
    /// Events handed to the application.
    pub events: AtomicU64,
    /// Redeliveries skipped because their id was seen.
    pub duplicates: AtomicU64,
    /// Records moved to the dead-letter topic.
    pub dead_lettered: AtomicU64,
}

/// How many recent event ids are remembered for duplicate detection.
const DEDUP_WINDOW: usize = 100_000;

/// A subscription that yields decoded, de-duplicated events.
pub struct EventConsumer {
    sub: Box<dyn Subscription>,
    bus: Arc<dyn Bus>,
    seen: HashSet<String>,
    order: VecDeque<String>,
    /// Counters.
    pub stats: Arc<ConsumerStats>,
}

/// An event ready to apply.
#[derive(Debug, Clone)]
pub struct Received {
    /// Where it came from (commit this after applying).
    pub delivery: Delivery,
    /// The envelope.
    pub cloud: CloudEvent,
    /// The typed payload.
    pub event: Event,
}

impl EventConsumer {
    /// Wrap a subscription; dead letters are published on `bus`.
    pub fn new(sub: Box<dyn Subscription>, bus: Arc<dyn Bus>) -> Self {
        EventConsumer {
            sub,
            bus,
            seen: HashSet::new(),
            order: VecDeque::new(),
            stats: Arc::new(ConsumerStats::default()),
        }
    }

    fn remember(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        self.seen.insert(id.to_string());
        self.order.push_back(id.to_string());
        if self.order.len() > DEDUP_WINDOW
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    /// The next event to apply. Malformed records are dead-lettered and committed, duplicates
    /// committed and skipped, both without returning.
    pub async fn next(&mut self) -> Result<Received, BusError> {
        loop {
            let d = self.sub.next().await?;
            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            match Event::decode(&d.payload) {
                Ok((cloud, event)) => {
                    let key = format!("{}\u{0}{}", cloud.source, cloud.id);
                    if !self.remember(&key) {
                        self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        self.sub.commit(&d).await?;
                        continue;
                    }
                    self.stats.events.fetch_add(1, Ordering::Relaxed);
                    return Ok(Received {
                        delivery: d,
                        cloud,
                        event,
                    });
                }
                Err(e) => {
                    tracing::error!(topic = %d.topic, offset = d.offset, error = %e, "undecodable event moved to the dead-letter topic");
                    let dlq = format!("{}.dead-letter", d.topic);
                    self.bus.publish(&dlq, &d.key, d.payload.clone()).await?;
                    self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    self.sub.commit(&d).await?;
                }
            }
        }
    }

    /// Commit an applied event.
    pub async fn commit(&mut self, r: &Received) -> Result<(), BusError> {
        self.sub.commit(&r.delivery).await
    }

    /// Records not yet delivered.
    pub async fn backlog(&mut self) -> Result<u64, BusError> {
        self.sub.backlog().await
    }
}
