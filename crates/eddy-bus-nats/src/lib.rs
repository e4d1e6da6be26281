//! # eddy-bus-nats: the NATS JetStream backend of Eddy's [`Bus`]
//!
//! - A topic is a JetStream stream (`EDDY_<topic>`, file storage, 7-day `max_age`) whose one
//!   subject is the topic name.
//! - A consumer name is a durable pull consumer with `AckPolicy::All`: committing a delivery
//!   acknowledges it and everything before it, so the consumer's ack floor is its committed
//!   position.
//! - Resuming ([`StartFrom::Committed`]) recreates the consumer at ack floor + 1, so records that
//!   were delivered but never committed come again at once instead of after `ack_wait`.
//! - The ordering key travels in the `Eddy-Key` header; the offset is the stream sequence.
//! - The client reconnects with back-off by itself after the first connection; a server that is
//!   down at start is an [`BusError::Unreachable`] naming the URL.
//!
//! Must not touch: anything but the NATS connection.

use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use bytes::Bytes;
use eddy_bus::{Bus, BusError, Delivery, StartFrom, Subscription, check_name};
use futures::StreamExt;
use std::collections::VecDeque;
use std::time::Duration;

const BACKEND: &str = "nats";
const KEY_HEADER: &str = "Eddy-Key";

fn err(detail: impl std::fmt::Display) -> BusError {
    BusError::Backend {
        backend: BACKEND,
        detail: detail.to_string(),
    }
}

fn stream_name(topic: &str) -> String {
    let clean: String = topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("EDDY_{clean}")
}

/// A JetStream-backed bus.
pub struct NatsBus {
    js: jetstream::Context,
    url: String,
}

impl NatsBus {
    /// Connect to `url` (`nats://127.0.0.1:4222`). Fails fast with [`BusError::Unreachable`] when
    /// no server answers; once connected, the client reconnects by itself.
    pub async fn connect(url: &str) -> Result<NatsBus, BusError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(3))
            .name("eddy")
            .connect(url)
            .await
            .map_err(|e| BusError::Unreachable {
                backend: BACKEND,
                target: eddy_bus::redact_url(url),
                detail: e.to_string(),
            })?;
        Ok(NatsBus {
            js: jetstream::new(client),
            url: eddy_bus::redact_url(url),
        })
    }

    async fn stream(&self, topic: &str) -> Result<stream::Stream, BusError> {
        check_name("topic", topic)?;
        self.js
            .get_or_create_stream(stream::Config {
                name: stream_name(topic),
                subjects: vec![topic.to_string()],
                storage: stream::StorageType::File,
                max_age: Duration::from_secs(7 * 86_400),
                ..Default::default()
            })
            .await
            .map_err(|e| err(format!("stream for topic {topic} at {}: {e}", self.url)))
    }
}

#[async_trait]
impl Bus for NatsBus {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn publish(&self, topic: &str, key: &str, payload: Bytes) -> Result<u64, BusError> {
        self.stream(topic).await?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(KEY_HEADER, key);
        let ack = self
            .js
            .publish_with_headers(topic.to_string(), headers, payload)
            .await
            .map_err(|e| err(format!("publish to {topic}: {e}")))?
            .await
            .map_err(|e| err(format!("publish to {topic} not acknowledged: {e}")))?;
        Ok(ack.sequence)
    }

    async fn subscribe(
        &self,
        topic: &str,
        consumer_name: &str,
        from: StartFrom,
    ) -> Result<Box<dyn Subscription>, BusError> {
        check_name("consumer", consumer_name)?;
        let durable: String = consumer_name.replace('.', "_");
        let stream = self.stream(topic).await?;
        let existing: Option<consumer::PullConsumer> = stream.get_consumer(&durable).await.ok();
        let deliver = match (from, existing) {
            (StartFrom::Committed, Some(mut c)) => {
                let floor = c
                    .info()
                    .await
                    .map_err(|e| err(format!("consumer {durable}: {e}")))?
                    .ack_floor
                    .stream_sequence;
                consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: floor + 1,
                }
            }
            (StartFrom::Committed | StartFrom::Earliest, _) => consumer::DeliverPolicy::All,
            (StartFrom::Latest, _) => consumer::DeliverPolicy::New,
            (StartFrom::Offset(o), _) => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: o.max(1),
            },
        };
        // Recreate so the start position is exactly what was asked for (a durable consumer's
        // deliver policy cannot be changed in place).
        let _ = stream.delete_consumer(&durable).await;
        let consumer: consumer::PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(durable.clone()),
                deliver_policy: deliver,
                ack_policy: consumer::AckPolicy::All,
                ack_wait: Duration::from_secs(30),
                // Deliveries beyond this many uncommitted ones wait: keep it well above a batch.
                max_ack_pending: 20_000,
                filter_subject: topic.to_string(),
                ..Default::default()
            })
            .await
            .map_err(|e| err(format!("create consumer {durable} on {topic}: {e}")))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| err(format!("consume {topic} as {durable}: {e}")))?;
        Ok(Box::new(NatsSubscription {
            topic: topic.to_string(),
            consumer,
            messages,
            returned: VecDeque::new(),
        }))
    }
}

struct NatsSubscription {
    topic: String,
    consumer: consumer::PullConsumer,
    messages: consumer::pull::Stream,
    /// Delivered to the application, not yet committed.
    returned: VecDeque<(u64, jetstream::Message)>,
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let msg = match self.messages.next().await {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(topic = %self.topic, error = %e, "NATS consumer error; continuing");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                None => return Err(BusError::Closed),
            };
            let seq = msg
                .info()
                .map_err(|e| err(format!("message metadata: {e}")))?
                .stream_sequence;
            let key = msg
                .headers
                .as_ref()
                .and_then(|h| h.get(KEY_HEADER))
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            let d = Delivery {
                topic: self.topic.clone(),
                offset: seq,
                key,
                payload: msg.payload.clone(),
            };
            self.returned.push_back((seq, msg));
            return Ok(d);
        }
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let mut last = None;
        while self
            .returned
            .front()
            .is_some_and(|(s, _)| *s <= delivery.offset)
        {
            last = self.returned.pop_front();
        }
        if let Some((_, msg)) = last {
            // AckPolicy::All: this acknowledges every earlier delivery too.
            msg.double_ack()
                .await
                .map_err(|e| err(format!("commit on {}: {e}", self.topic)))?;
        }
        Ok(())
    }

    async fn backlog(&mut self) -> Result<u64, BusError> {
        let info = self
            .consumer
            .get_info()
            .await
            .map_err(|e| err(format!("consumer info on {}: {e}", self.topic)))?;
        let outstanding = info.num_pending + info.num_ack_pending as u64;
        Ok(outstanding.saturating_sub(self.returned.len() as u64))
    }
}
