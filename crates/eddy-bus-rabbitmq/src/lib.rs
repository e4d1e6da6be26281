//! # eddy-bus-rabbitmq: the RabbitMQ backend of Eddy's [`Bus`]
//!
//! RabbitMQ's classic queues forget a message once it is acknowledged, but a bus consumer must be
//! able to replay and to start from an offset. So:
//!
//! - **A topic is a stream queue** named after the topic (`x-queue-type = stream`, durable,
//!   `x-max-age` 7 days), published to through the default exchange with publisher confirms and
//!   persistent delivery mode. The ordering key travels in the `eddy-key` header. A stream keeps
//!   total order, so records with one key arrive in publish order.
//! - **A consumer reads the stream over AMQP** with `basic.qos` and `x-stream-offset` (`first`,
//!   `next` or a number). Every delivery carries its `x-stream-offset`: that is
//!   [`Delivery::offset`].
//! - **A committed position lives in a last-value queue** per topic and consumer
//!   (`eddy.offset.<topic>.<consumer>`: durable classic queue, `x-max-length = 1`, `drop-head`),
//!   holding the offset as a persistent message. Resuming reads it without consuming it.
//! - **Backlog is exact, by barrier.** AMQP cannot tell the tail offset of a stream (its
//!   `queue.declare-ok` message count is 0), so [`Subscription::backlog`] publishes a barrier
//!   record (header `eddy-barrier`) and reads ahead until its own barrier arrives: everything
//!   acknowledged before it is then known and buffered (up to [`READ_AHEAD`] records; past that,
//!   the backlog is "at least" that many). Every consumer skips barrier records.
//! - **Connections.** [`RabbitBus::connect`] fails fast with [`BusError::Unreachable`] naming the
//!   URL. After that, a publish or a subscription that loses its connection reconnects with
//!   back-off (50 ms doubling to 5 s) and a subscription resumes after the last record it
//!   delivered: at-least-once, never a gap.
//! - [`Bus::publish`] returns 0: a publisher confirm carries no stream offset.
//!
//! Must not touch: anything but the AMQP connection.

use async_trait::async_trait;
use bytes::Bytes;
use eddy_bus::{Bus, BusError, Delivery, StartFrom, Subscription, check_name};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

const BACKEND: &str = "rabbitmq";
const KEY_HEADER: &str = "eddy-key";
const BARRIER_HEADER: &str = "eddy-barrier";
const OFFSET_HEADER: &str = "x-stream-offset";
/// How many records [`Subscription::backlog`] buffers while looking for its barrier.
pub const READ_AHEAD: usize = 10_000;
/// Unacknowledged deliveries the broker may push ahead of the consumer (stream queues require a
/// prefetch).
const PREFETCH: u16 = 1_000;
/// Deliveries acknowledged together (must stay well below [`PREFETCH`]).
const ACK_EVERY: u32 = 100;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a stream may take to come back after a broker restart.
const RECOVERY_WAIT: Duration = Duration::from_secs(30);

fn err(detail: impl std::fmt::Display) -> BusError {
    BusError::Backend {
        backend: BACKEND,
        detail: detail.to_string(),
    }
}

/// The queue holding `consumer`'s committed offset on `topic`.
fn offset_queue(topic: &str, consumer: &str) -> String {
    format!("eddy.offset.{topic}.{consumer}")
}

/// Declare the last-value queue holding one consumer's committed offset (idempotent).
async fn declare_offset_queue(ch: &Channel, queue: &str) -> Result<(), BusError> {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        last_value_args(),
    )
    .await
    .map(|_| ())
    .map_err(|e| err(format!("declare offset queue {queue}: {e}")))
}

fn stream_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("stream".into()),
    );
    args.insert("x-max-age".into(), AMQPValue::LongString("7D".into()));
    args
}

fn last_value_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("drop-head".into()),
    );
    args
}

fn header<'a>(props: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(&ShortString::from(name.to_string())))
}

fn header_str(props: &BasicProperties, name: &str) -> Option<String> {
    match header(props, name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

fn header_u64(props: &BasicProperties, name: &str) -> Option<u64> {
    match header(props, name)? {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        _ => None,
    }
}

/// One AMQP connection and a confirming publish channel, replaced when it breaks.
struct Link {
    conn: Connection,
    publish: Channel,
}

struct Shared {
    /// The URL to connect to, with credentials.
    connect_url: String,
    /// The URL for logs and errors: the password replaced by `***`.
    url: String,
    link: Mutex<Option<Arc<Link>>>,
    /// Stream queues this client has declared (declaring is idempotent but costs a round trip).
    declared: Mutex<HashSet<String>>,
    barriers: AtomicU64,
}

impl Shared {
    async fn open(&self) -> Result<Arc<Link>, BusError> {
        let unreachable = |detail: String| BusError::Unreachable {
            backend: BACKEND,
            target: self.url.clone(),
            detail,
        };
        let props = ConnectionProperties::default().with_connection_name("eddy".into());
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&self.connect_url, props),
        )
        .await
        .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| unreachable(format!("{e}; check the URL, credentials and vhost")))?;
        let publish = conn
            .create_channel()
            .await
            .map_err(|e| err(format!("open a channel on {}: {e}", self.url)))?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| err(format!("enable publisher confirms on {}: {e}", self.url)))?;
        Ok(Arc::new(Link { conn, publish }))
    }

    /// A live connection: the current one, or a new one if it broke.
    async fn link(&self) -> Result<Arc<Link>, BusError> {
        let mut slot = self.link.lock().await;
        if let Some(l) = slot.as_ref()
            && l.conn.status().connected()
            && l.publish.status().connected()
        {
            return Ok(l.clone());
        }
        if slot.take().is_some() {
            // Declarations made on the lost connection may be gone with a restarted broker.
            self.declared.lock().await.clear();
        }
        let l = self.open().await?;
        *slot = Some(l.clone());
        Ok(l)
    }

    /// Declare the stream queue for `topic` (idempotent). Right after a broker restart a stream
    /// can be declared before its replica is back ("home node ... is down or inaccessible"); that
    /// is retried with back-off for up to [`RECOVERY_WAIT`].
    async fn declare_stream(&self, topic: &str) -> Result<Arc<Link>, BusError> {
        let deadline = tokio::time::Instant::now() + RECOVERY_WAIT;
        let mut backoff = Duration::from_millis(50);
        loop {
            let link = self.link().await?;
            if self.declared.lock().await.contains(topic) {
                return Ok(link);
            }
            let r = link
                .publish
                .queue_declare(
                    topic.into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    stream_args(),
                )
                .await;
            match r {
                Ok(_) => {
                    self.declared.lock().await.insert(topic.to_string());
                    return Ok(link);
                }
                Err(e)
                    if e.to_string().contains("down or inaccessible")
                        && tokio::time::Instant::now() < deadline =>
                {
                    tracing::info!(topic, error = %e, "stream queue is still recovering; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    return Err(err(format!(
                        "declare stream queue {topic} at {}: {e}",
                        self.url
                    )));
                }
            }
        }
    }

    /// Publish to the stream `topic` and wait for the broker's confirm.
    async fn publish_once(
        &self,
        topic: &str,
        payload: &[u8],
        headers: FieldTable,
    ) -> Result<(), BusError> {
        let link = self.declare_stream(topic).await?;
        let confirm = link
            .publish
            .basic_publish(
                "".into(),
                topic.into(),
                BasicPublishOptions::default(),
                payload,
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_headers(headers),
            )
            .await
            .map_err(|e| err(format!("publish to {topic}: {e}")))?
            .await
            .map_err(|e| err(format!("publish to {topic} not confirmed: {e}")))?;
        if confirm.is_nack() {
            return Err(err(format!(
                "the broker refused (nack) a publish to {topic}"
            )));
        }
        Ok(())
    }

    /// Publish, reconnecting once if the connection had broken since it was last used.
    async fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        headers: FieldTable,
    ) -> Result<(), BusError> {
        match self.publish_once(topic, payload, headers.clone()).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let live =
                    self.link.lock().await.as_ref().is_some_and(|l| {
                        l.conn.status().connected() && l.publish.status().connected()
                    });
                if live {
                    Err(e)
                } else {
                    self.publish_once(topic, payload, headers).await
                }
            }
        }
    }
}

/// A RabbitMQ-backed bus (stream queues over AMQP 0-9-1).
pub struct RabbitBus {
    shared: Arc<Shared>,
}

impl RabbitBus {
    /// Connect to `url` (`amqp://guest:guest@127.0.0.1:5672/%2f`). Fails fast with
    /// [`BusError::Unreachable`] naming the URL when the broker does not answer or refuses the
    /// credentials.
    pub async fn connect(url: &str) -> Result<RabbitBus, BusError> {
        let shared = Arc::new(Shared {
            connect_url: url.to_string(),
            url: eddy_bus::redact_url(url),
            link: Mutex::new(None),
            declared: Mutex::new(HashSet::new()),
            barriers: AtomicU64::new(0),
        });
        shared.link().await?;
        Ok(RabbitBus { shared })
    }

    /// The committed offset of `consumer` on `topic`, read without consuming it.
    async fn committed(&self, topic: &str, consumer: &str) -> Result<Option<u64>, BusError> {
        let link = self.shared.link().await?;
        let ch = link
            .conn
            .create_channel()
            .await
            .map_err(|e| err(format!("open a channel: {e}")))?;
        let queue = offset_queue(topic, consumer);
        declare_offset_queue(&ch, &queue).await?;
        let got = ch
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .map_err(|e| err(format!("read offset queue {queue}: {e}")))?;
        let offset = match got {
            None => None,
            Some(m) => {
                let text = String::from_utf8_lossy(&m.delivery.data).to_string();
                m.delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| err(format!("return offset to {queue}: {e}")))?;
                Some(text.trim().parse::<u64>().map_err(|_| {
                    err(format!(
                        "offset queue {queue} holds {text:?}, not an offset; delete the queue to restart that consumer from the earliest record"
                    ))
                })?)
            }
        };
        let _ = ch.close(200, "done".into()).await;
        Ok(offset)
    }
}

#[async_trait]
impl Bus for RabbitBus {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn publish(&self, topic: &str, key: &str, payload: Bytes) -> Result<u64, BusError> {
        check_name("topic", topic)?;
        let mut headers = FieldTable::default();
        headers.insert(
            KEY_HEADER.into(),
            AMQPValue::LongString(LongString::from(key.as_bytes().to_vec())),
        );
        self.shared.publish(topic, &payload, headers).await?;
        Ok(0)
    }

    async fn subscribe(
        &self,
        topic: &str,
        consumer: &str,
        from: StartFrom,
    ) -> Result<Box<dyn Subscription>, BusError> {
        check_name("topic", topic)?;
        check_name("consumer", consumer)?;
        let start = match from {
            StartFrom::Earliest => Start::First,
            StartFrom::Latest => Start::Next,
            StartFrom::Offset(o) => Start::At(o),
            StartFrom::Committed => match self.committed(topic, consumer).await? {
                Some(o) => Start::At(o + 1),
                None => Start::First,
            },
        };
        let mut sub = RabbitSubscription {
            shared: self.shared.clone(),
            topic: topic.to_string(),
            consumer: consumer.to_string(),
            reader: None,
            resume: start,
            ahead: VecDeque::new(),
            barrier: None,
            commit_channel: None,
            unacked: 0,
        };
        sub.open_reader().await?;
        Ok(Box::new(sub))
    }
}

#[derive(Debug, Clone, Copy)]
enum Start {
    First,
    Next,
    At(u64),
}

impl Start {
    fn arg(self) -> AMQPValue {
        match self {
            Start::First => AMQPValue::LongString("first".into()),
            Start::Next => AMQPValue::LongString("next".into()),
            Start::At(o) => AMQPValue::LongLongInt(i64::try_from(o).unwrap_or(i64::MAX)),
        }
    }
}

struct Reader {
    channel: Channel,
    deliveries: lapin::Consumer,
}

struct RabbitSubscription {
    shared: Arc<Shared>,
    topic: String,
    consumer: String,
    reader: Option<Reader>,
    /// Where the reader starts when (re)opened: after the last record handed out.
    resume: Start,
    /// Records read while looking for a barrier, not yet handed out.
    ahead: VecDeque<Delivery>,
    /// This subscription's outstanding barrier id.
    barrier: Option<String>,
    commit_channel: Option<Channel>,
    /// Deliveries on the current reader not yet acknowledged.
    unacked: u32,
}

/// What one read from the stream produced.
enum Read {
    Record(Delivery),
    Barrier(String),
}

impl RabbitSubscription {
    async fn open_reader(&mut self) -> Result<(), BusError> {
        let link = self.shared.declare_stream(&self.topic).await?;
        let channel = link
            .conn
            .create_channel()
            .await
            .map_err(|e| err(format!("open a channel for {}: {e}", self.topic)))?;
        channel
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await
            .map_err(|e| err(format!("set prefetch on {}: {e}", self.topic)))?;
        let mut args = FieldTable::default();
        args.insert(OFFSET_HEADER.into(), self.resume.arg());
        let deliveries = channel
            .basic_consume(
                self.topic.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await
            .map_err(|e| {
                err(format!(
                    "consume stream {} as {}: {e}",
                    self.topic, self.consumer
                ))
            })?;
        self.reader = Some(Reader {
            channel,
            deliveries,
        });
        self.unacked = 0;
        Ok(())
    }

    /// One record or barrier from the stream, reconnecting with back-off when the connection
    /// breaks.
    async fn read(&mut self) -> Result<Read, BusError> {
        let mut backoff = Duration::from_millis(50);
        loop {
            if self.reader.is_none()
                && let Err(e) = self.open_reader().await
            {
                tracing::warn!(topic = %self.topic, consumer = %self.consumer, error = %e, retry_in = ?backoff, "RabbitMQ consumer cannot resume; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            let Some(reader) = self.reader.as_mut() else {
                continue;
            };
            let d = match reader.deliveries.next().await {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    tracing::warn!(topic = %self.topic, consumer = %self.consumer, error = %e, "RabbitMQ consumer lost its connection; reconnecting");
                    self.reader = None;
                    continue;
                }
                None => {
                    tracing::warn!(topic = %self.topic, consumer = %self.consumer, "RabbitMQ consumer was cancelled; resubscribing");
                    self.reader = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            // Stream queues use acknowledgements only for flow control (the position is ours):
            // acknowledge in groups, well inside the prefetch window.
            self.unacked += 1;
            if self.unacked >= ACK_EVERY {
                self.unacked = 0;
                let _ = d.ack(BasicAckOptions { multiple: true }).await;
            }
            let Some(offset) = header_u64(&d.properties, OFFSET_HEADER) else {
                return Err(err(format!(
                    "a delivery on {} carries no {OFFSET_HEADER}; is {} a stream queue?",
                    self.topic, self.topic
                )));
            };
            self.resume = Start::At(offset + 1);
            if let Some(id) = header_str(&d.properties, BARRIER_HEADER) {
                return Ok(Read::Barrier(id));
            }
            return Ok(Read::Record(Delivery {
                topic: self.topic.clone(),
                offset,
                key: header_str(&d.properties, KEY_HEADER).unwrap_or_default(),
                payload: Bytes::from(d.data),
            }));
        }
    }

    async fn commit_channel(&mut self) -> Result<&Channel, BusError> {
        let live = self
            .commit_channel
            .as_ref()
            .is_some_and(|c| c.status().connected());
        if !live {
            let link = self.shared.link().await?;
            let ch = link
                .conn
                .create_channel()
                .await
                .map_err(|e| err(format!("open a commit channel: {e}")))?;
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| err(format!("enable confirms for commits: {e}")))?;
            declare_offset_queue(&ch, &offset_queue(&self.topic, &self.consumer)).await?;
            self.commit_channel = Some(ch);
        }
        self.commit_channel
            .as_ref()
            .ok_or_else(|| err("commit channel vanished"))
    }
}

#[async_trait]
impl Subscription for RabbitSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        if let Some(d) = self.ahead.pop_front() {
            return Ok(d);
        }
        loop {
            match self.read().await? {
                Read::Record(d) => return Ok(d),
                Read::Barrier(id) => {
                    if self.barrier.as_deref() == Some(id.as_str()) {
                        self.barrier = None;
                    }
                }
            }
        }
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let queue = offset_queue(&self.topic, &self.consumer);
        let payload = delivery.offset.to_string();
        for attempt in 0..2 {
            let ch = self.commit_channel().await?;
            let r = async {
                ch.basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    payload.as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?
                .await
            }
            .await;
            match r {
                Ok(c) if c.is_ack() => return Ok(()),
                Ok(_) => return Err(err(format!("the broker refused the commit to {queue}"))),
                Err(e) if attempt == 0 => {
                    tracing::warn!(queue = %queue, error = %e, "commit failed; retrying on a new channel");
                    self.commit_channel = None;
                }
                Err(e) => return Err(err(format!("commit to {queue}: {e}"))),
            }
        }
        Err(err(format!("commit to {queue} failed twice")))
    }

    async fn backlog(&mut self) -> Result<u64, BusError> {
        if self.barrier.is_none() {
            let n = self.shared.barriers.fetch_add(1, Ordering::Relaxed);
            let id = format!("{}.{}.{}", self.consumer, std::process::id(), n);
            let mut headers = FieldTable::default();
            headers.insert(
                BARRIER_HEADER.into(),
                AMQPValue::LongString(LongString::from(id.as_bytes().to_vec())),
            );
            self.shared.publish(&self.topic, b"", headers).await?;
            self.barrier = Some(id);
        }
        while self.ahead.len() < READ_AHEAD {
            match self.read().await? {
                Read::Record(d) => self.ahead.push_back(d),
                Read::Barrier(id) => {
                    if self.barrier.as_deref() == Some(id.as_str()) {
                        self.barrier = None;
                        break;
                    }
                }
            }
        }
        Ok(self.ahead.len() as u64)
    }
}

impl Drop for RabbitSubscription {
    fn drop(&mut self) {
        // Closing the channels cancels the stream consumer on the broker; without a runtime the
        // connection's end closes them.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let channels: Vec<Channel> = self
            .reader
            .take()
            .map(|r| r.channel)
            .into_iter()
            .chain(self.commit_channel.take())
            .collect();
        rt.spawn(async move {
            for c in channels {
                let _ = c.close(200, "subscription dropped".into()).await;
            }
        });
    }
}
