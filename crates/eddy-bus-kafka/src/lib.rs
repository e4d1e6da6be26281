//! # eddy-bus-kafka: the Kafka backend of Eddy's [`Bus`]
//!
//! - **A topic is a Kafka topic with one partition**, created on first use (replication factor
//!   from [`KafkaOptions`]). One partition gives total order, which purge and content events need
//!   more than parallel throughput: every edge reads every event anyway.
//! - **A consumer name is a consumer group** (`group.id`), so each edge has its own committed
//!   position and gets every event. The partition is assigned directly (no group membership, so
//!   no rebalance pause); commits go to the broker's group coordinator.
//! - **Positions are explicit.** A subscription resolves its start (committed offset, log start,
//!   high watermark or a given offset clamped to what is retained) before assigning, and counts
//!   what it hands out, so [`Subscription::backlog`] is `high watermark - next offset`, exact.
//! - Publishing waits for `acks=all`; the ordering key is the Kafka message key; the offset is
//!   the Kafka offset.
//! - [`KafkaBus::connect`] fetches cluster metadata with a deadline and fails with
//!   [`BusError::Unreachable`] naming the bootstrap servers; librdkafka reconnects by itself
//!   afterwards.
//!
//! librdkafka's blocking calls (metadata, watermarks, committed offsets, synchronous commits) run
//! on tokio's blocking pool, never on a runtime thread.
//!
//! Must not touch: anything but the Kafka client.

use async_trait::async_trait;
use bytes::Bytes;
use eddy_bus::{Bus, BusError, Delivery, StartFrom, Subscription, check_name};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

const BACKEND: &str = "kafka";
const PARTITION: i32 = 0;
/// Deadline for one metadata, watermark or offset request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn err(detail: impl std::fmt::Display) -> BusError {
    BusError::Backend {
        backend: BACKEND,
        detail: detail.to_string(),
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// `host:port[,host:port...]`.
    pub bootstrap: String,
    /// Replication factor of topics Eddy creates (1 for a single broker; 3 on a real cluster).
    pub replication: i32,
    /// How long the broker may hold a fetch that finds no new records (`fetch.wait.max.ms`).
    /// Apache Kafka answers a waiting fetch as soon as a record arrives, so there this only
    /// bounds idle polling; tansu answers at the deadline, so there it is added to every hop.
    /// Default 10 ms.
    pub fetch_wait: Duration,
    /// Extra librdkafka settings (security, tuning), applied to every client.
    pub extra: Vec<(String, String)>,
}

impl KafkaOptions {
    /// Settings for `bootstrap` with replication factor 1.
    pub fn new(bootstrap: &str) -> KafkaOptions {
        KafkaOptions {
            bootstrap: bootstrap.to_string(),
            replication: 1,
            fetch_wait: Duration::from_millis(10),
            extra: Vec::new(),
        }
    }

    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "eddy")
            .set("socket.keepalive.enable", "true")
            .set("reconnect.backoff.ms", "50")
            .set("reconnect.backoff.max.ms", "5000");
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }
}

/// A Kafka-backed bus.
pub struct KafkaBus {
    opts: KafkaOptions,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    created: Mutex<HashSet<String>>,
}

/// Run a blocking librdkafka call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BusError> + Send + 'static,
) -> Result<T, BusError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| err(format!("blocking Kafka call failed: {e}")))?
}

impl KafkaBus {
    /// Connect to the brokers at `bootstrap` (`127.0.0.1:9092`).
    pub async fn connect(bootstrap: &str) -> Result<KafkaBus, BusError> {
        KafkaBus::connect_with(KafkaOptions::new(bootstrap)).await
    }

    /// Connect with full settings. Fails with [`BusError::Unreachable`] when no broker answers a
    /// metadata request within a few seconds.
    pub async fn connect_with(opts: KafkaOptions) -> Result<KafkaBus, BusError> {
        let unreachable = |detail: String| BusError::Unreachable {
            backend: BACKEND,
            target: opts.bootstrap.clone(),
            detail,
        };
        let producer: FutureProducer = opts
            .client()
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(|e| unreachable(format!("producer: {e}")))?;
        let admin: AdminClient<DefaultClientContext> = opts
            .client()
            .create()
            .map_err(|e| unreachable(format!("admin client: {e}")))?;
        let probe = producer.clone();
        blocking(move || {
            probe
                .client()
                .fetch_metadata(None, Duration::from_secs(3))
                .map(|_| ())
                .map_err(|e| err(e.to_string()))
        })
        .await
        .map_err(|e| {
            unreachable(format!(
                "no metadata within 3 s ({e}); check the bootstrap servers and the listener the broker advertises"
            ))
        })?;
        Ok(KafkaBus {
            opts,
            producer,
            admin,
            created: Mutex::new(HashSet::new()),
        })
    }

    /// Create `topic` (one partition) unless this client already did or it exists.
    async fn ensure_topic(&self, topic: &str) -> Result<(), BusError> {
        check_name("topic", topic)?;
        if self.created.lock().await.contains(topic) {
            return Ok(());
        }
        let new = NewTopic::new(topic, 1, TopicReplication::Fixed(self.opts.replication));
        let results = self
            .admin
            .create_topics(
                [&new],
                &AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT)),
            )
            .await
            .map_err(|e| {
                err(format!(
                    "create topic {topic} on {}: {e}",
                    self.opts.bootstrap
                ))
            })?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => {
                    return Err(err(format!(
                        "create topic {t} on {}: {code}",
                        self.opts.bootstrap
                    )));
                }
            }
        }
        self.created.lock().await.insert(topic.to_string());
        Ok(())
    }
}

#[async_trait]
impl Bus for KafkaBus {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn publish(&self, topic: &str, key: &str, payload: Bytes) -> Result<u64, BusError> {
        self.ensure_topic(topic).await?;
        let record = FutureRecord::to(topic)
            .partition(PARTITION)
            .key(key)
            .payload(payload.as_ref());
        let delivered = self
            .producer
            .send(record, REQUEST_TIMEOUT)
            .await
            .map_err(|(e, _)| {
                err(format!(
                    "publish to {topic} on {}: {e}",
                    self.opts.bootstrap
                ))
            })?;
        u64::try_from(delivered.offset).map_err(|_| {
            err(format!(
                "publish to {topic}: no offset in the acknowledgement"
            ))
        })
    }

    async fn subscribe(
        &self,
        topic: &str,
        consumer: &str,
        from: StartFrom,
    ) -> Result<Box<dyn Subscription>, BusError> {
        check_name("consumer", consumer)?;
        self.ensure_topic(topic).await?;
        let stream: StreamConsumer = self
            .opts
            .client()
            .set("group.id", consumer)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set(
                "fetch.wait.max.ms",
                self.opts.fetch_wait.as_millis().to_string(),
            )
            .create()
            .map_err(|e| err(format!("consumer {consumer}: {e}")))?;
        let stream = Arc::new(stream);
        let (t, probe) = (topic.to_string(), stream.clone());
        let start = blocking(move || {
            let (low, high) = probe
                .fetch_watermarks(&t, PARTITION, REQUEST_TIMEOUT)
                .map_err(|e| err(format!("watermarks of {t}: {e}")))?;
            let committed = if from == StartFrom::Committed {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&t, PARTITION);
                let got = probe
                    .committed_offsets(tpl, REQUEST_TIMEOUT)
                    .map_err(|e| err(format!("committed offset of {t}: {e}")))?;
                got.find_partition(&t, PARTITION)
                    .and_then(|p| match p.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
            } else {
                None
            };
            Ok(match from {
                StartFrom::Earliest => low,
                StartFrom::Latest => high,
                StartFrom::Offset(o) => i64::try_from(o).unwrap_or(i64::MAX).clamp(low, high),
                // A committed offset below the log start was deleted by retention: resume at
                // the start (the edge should resync; logged).
                StartFrom::Committed => match committed {
                    Some(c) if c < low => {
                        tracing::warn!(topic = %t, committed = c, log_start = low, "committed offset was deleted by retention; resuming at the log start");
                        low
                    }
                    Some(c) => c.min(high),
                    None => low,
                },
            })
        })
        .await?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, PARTITION, Offset::Offset(start))
            .map_err(|e| err(format!("assign {topic}: {e}")))?;
        stream
            .assign(&tpl)
            .map_err(|e| err(format!("assign {topic} to {consumer}: {e}")))?;
        Ok(Box::new(KafkaSubscription {
            topic: topic.to_string(),
            consumer: consumer.to_string(),
            stream,
            next: start,
        }))
    }
}

struct KafkaSubscription {
    topic: String,
    consumer: String,
    stream: Arc<StreamConsumer>,
    /// The offset of the next record this subscription hands out.
    next: i64,
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.stream.recv().await {
                Ok(m) => {
                    let offset = m.offset();
                    self.next = offset + 1;
                    return Ok(Delivery {
                        topic: self.topic.clone(),
                        offset: u64::try_from(offset).unwrap_or(0),
                        key: m
                            .key()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .unwrap_or_default(),
                        payload: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
                    });
                }
                // Transport errors are retried by librdkafka; report and wait.
                Err(e) => {
                    tracing::warn!(topic = %self.topic, consumer = %self.consumer, error = %e, retry_in = ?backoff, "Kafka consumer error; continuing");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let mut tpl = TopicPartitionList::new();
        let next = i64::try_from(delivery.offset).unwrap_or(i64::MAX - 1) + 1;
        tpl.add_partition_offset(&self.topic, PARTITION, Offset::Offset(next))
            .map_err(|e| err(format!("commit on {}: {e}", self.topic)))?;
        let (stream, topic) = (self.stream.clone(), self.topic.clone());
        blocking(move || {
            stream
                .commit(&tpl, CommitMode::Sync)
                .map_err(|e: KafkaError| err(format!("commit on {topic}: {e}")))
        })
        .await
    }

    async fn backlog(&mut self) -> Result<u64, BusError> {
        let (stream, topic) = (self.stream.clone(), self.topic.clone());
        let (_, high) = blocking(move || {
            stream
                .fetch_watermarks(&topic, PARTITION, REQUEST_TIMEOUT)
                .map_err(|e| err(format!("watermarks of {topic}: {e}")))
        })
        .await?;
        Ok(u64::try_from(high - self.next).unwrap_or(0))
    }
}
