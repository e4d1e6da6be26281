//! # eddy-bus: the one seam every event travels through
//!
//! - [`Bus`] / [`Subscription`]: publish with a key; subscribe as a named consumer from its
//!   committed position, the earliest or latest record, or an offset; commit; replay. Each
//!   consumer name is its own position, so every edge (its own consumer) sees every event.
//! - [`embedded`]: the default backend, a segmented append-only log on disk (length + CRC per
//!   record, an fsync policy, recovery that truncates a torn tail, retention by size and age)
//!   with an in-process fast path. One machine needs no broker.
//! - [`consumer`]: the loop every event consumer runs: decode CloudEvents, skip duplicates by
//!   id, dead-letter what cannot be decoded (counted, logged with its position), commit.
//! - [`conformance`]: the behaviour every backend must show, as functions a backend's tests call.
//!
//! Kafka, RabbitMQ and NATS JetStream backends live in their own crates and pass the same suite.
//! Must not touch: caches, HTTP, configuration files.

pub mod conformance;
pub mod consumer;
pub mod embedded;

use async_trait::async_trait;
use bytes::Bytes;

/// Where a new subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The consumer's committed position (earliest if it never committed).
    Committed,
    /// The first retained record.
    Earliest,
    /// Only records published after subscribing.
    Latest,
    /// A specific offset (clamped to what is retained).
    Offset(u64),
}

/// One delivered record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Topic.
    pub topic: String,
    /// Position in the topic (monotonic per topic).
    pub offset: u64,
    /// Ordering key.
    pub key: String,
    /// Payload (a CloudEvent, for Eddy's topics).
    pub payload: Bytes,
}

/// Why a bus operation failed. Each names the backend and what to check.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The backend could not be reached (broker down, directory missing).
    #[error(
        "{backend} at {target} is unreachable: {detail}; check that it runs and the address is right"
    )]
    Unreachable {
        /// Backend name.
        backend: &'static str,
        /// URL or path.
        target: String,
        /// The underlying error.
        detail: String,
    },
    /// Storage I/O failed.
    #[error("{backend}: I/O on {path}: {source}")]
    Io {
        /// Backend name.
        backend: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A name (topic, consumer) is not acceptable.
    #[error("invalid {what} name {name:?}: use 1-100 letters, digits, '.', '-' or '_'")]
    InvalidName {
        /// "topic" or "consumer".
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The subscription or bus was closed.
    #[error("the subscription is closed")]
    Closed,
    /// A backend-specific failure.
    #[error("{backend}: {detail}")]
    Backend {
        /// Backend name.
        backend: &'static str,
        /// What happened.
        detail: String,
    },
}

/// Check a topic or consumer name.
pub fn check_name(what: &'static str, name: &str) -> Result<(), BusError> {
    let ok = (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(BusError::InvalidName {
            what,
            name: name.to_string(),
        })
    }
}

/// `url` with the password (between `user:` and `@` in the authority) replaced by `***`, for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The event bus.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Backend name for logs and metrics (`embedded`, `kafka`, `rabbitmq`, `nats`).
    fn name(&self) -> &'static str;

    /// Append `payload` to `topic` under ordering `key`. Returns once the backend has
    /// acknowledged it (the embedded log: written, and fsynced per its policy); returns the offset
    /// when the backend has one. Records with the same key are delivered in publish order.
    async fn publish(&self, topic: &str, key: &str, payload: Bytes) -> Result<u64, BusError>;

    /// Subscribe to `topic` as consumer `consumer`, starting at `from`. Each consumer name has its
    /// own position; two subscriptions with different names each receive every record.
    async fn subscribe(
        &self,
        topic: &str,
        consumer: &str,
        from: StartFrom,
    ) -> Result<Box<dyn Subscription>, BusError>;
}

/// A consumer's stream of deliveries.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery, waiting for one. At-least-once: after a restart, deliveries after the
    /// last commit come again.
    async fn next(&mut self) -> Result<Delivery, BusError>;

    /// Commit `delivery` and everything delivered before it: a restart resumes after it.
    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError>;

    /// Records published but not yet delivered to this subscription, as far as the backend
    /// knows now. Zero means caught up.
    async fn backlog(&mut self) -> Result<u64, BusError>;
}

#[cfg(test)]
mod tests {
    use super::redact_url as redact;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("amqp://eddy:s3cret@10.0.0.5:5672/%2f"),
            "amqp://eddy:***@10.0.0.5:5672/%2f"
        );
        assert_eq!(redact("amqp://10.0.0.5:5672"), "amqp://10.0.0.5:5672");
        assert_eq!(redact("amqp://user@host/v"), "amqp://user@host/v");
        assert_eq!(redact("not a url"), "not a url");
    }
}
