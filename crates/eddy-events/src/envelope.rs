//! The CloudEvents 1.0 envelope, JSON structured mode.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The only spec version this crate reads and writes.
pub const SPEC_VERSION: &str = "1.0";

/// Largest encoded event accepted by [`CloudEvent::decode`] (1 MiB).
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Why an event could not be used. Each names what is wrong; the event goes to dead letters.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    /// Not JSON, or not an object.
    #[error("event is not a CloudEvents JSON object: {0}")]
    NotJson(String),
    /// Larger than [`MAX_EVENT_BYTES`].
    #[error("event of {0} bytes exceeds the {MAX_EVENT_BYTES}-byte limit")]
    TooLarge(usize),
    /// `specversion` is not 1.0.
    #[error("event specversion {0:?} is not supported; only \"1.0\"")]
    SpecVersion(String),
    /// A required attribute is missing or empty.
    #[error("event attribute {0:?} is required and must be a non-empty string")]
    Missing(&'static str),
    /// An extension attribute name breaks the spec's naming rule.
    #[error("extension attribute name {0:?} must be 1-20 lower-case letters or digits")]
    BadExtension(String),
    /// A known type whose `data` does not match its schema.
    #[error("event {ty} has invalid data: {reason}")]
    BadData {
        /// The event type.
        ty: String,
        /// What serde said.
        reason: String,
    },
}

/// A CloudEvents 1.0 event in structured JSON mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// Always "1.0".
    pub specversion: String,
    /// Unique per source; consumers deduplicate on it.
    pub id: String,
    /// Who produced it (`/eddy/edge/edge-1`).
    pub source: String,
    /// Reverse-DNS, versioned type (`dev.eddy.purge.requested.v1`).
    #[serde(rename = "type")]
    pub ty: String,
    /// When it happened, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// What it is about (a URL, an edge id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Media type of `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// Schema of `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataschema: Option<String>,
    /// JSON payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Binary payload, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    /// Extension attributes, kept as they came.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, Value>,
}

fn valid_extension_name(n: &str) -> bool {
    (1..=20).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl CloudEvent {
    /// A new event with the required attributes, `time` now and JSON `data`.
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        ty: impl Into<String>,
        data: Value,
    ) -> Self {
        CloudEvent {
            specversion: SPEC_VERSION.to_string(),
            id: id.into(),
            source: source.into(),
            ty: ty.into(),
            time: Some(humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()),
            subject: None,
            datacontenttype: Some("application/json".to_string()),
            dataschema: None,
            data: Some(data),
            data_base64: None,
            extensions: BTreeMap::new(),
        }
    }

    /// Check the envelope and decode it from JSON bytes.
    pub fn decode(bytes: &[u8]) -> Result<CloudEvent, EventError> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge(bytes.len()));
        }
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| EventError::NotJson(e.to_string()))?;
        let Value::Object(map) = &v else {
            return Err(EventError::NotJson("top level is not an object".into()));
        };
        match map.get("specversion") {
            Some(Value::String(s)) if s == SPEC_VERSION => {}
            Some(Value::String(s)) => return Err(EventError::SpecVersion(s.clone())),
            Some(other) => return Err(EventError::SpecVersion(other.to_string())),
            None => return Err(EventError::Missing("specversion")),
        }
        for attr in ["id", "source", "type"] {
            match map.get(attr) {
                Some(Value::String(s)) if !s.is_empty() => {}
                _ => return Err(EventError::Missing(attr)),
            }
        }
        let ev: CloudEvent =
            serde_json::from_value(v).map_err(|e| EventError::NotJson(e.to_string()))?;
        if let Some(bad) = ev.extensions.keys().find(|k| !valid_extension_name(k)) {
            return Err(EventError::BadExtension(bad.clone()));
        }
        Ok(ev)
    }

    /// When the producer sent it: `time` as RFC 3339, or `None` when missing or unreadable.
    pub fn sent_at(&self) -> Option<std::time::SystemTime> {
        humantime::parse_rfc3339(self.time.as_deref()?).ok()
    }

    /// Encode as JSON (structured mode).
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of strings and JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The schema version in the type's `.vN` suffix (1 when absent).
    pub fn schema_version(&self) -> u32 {
        self.ty
            .rsplit_once(".v")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_keeps_extensions() -> Result<(), EventError> {
        let raw = br#"{"specversion":"1.0","id":"1","source":"/s","type":"x.y.v2","partitionkey":"k","traceparent":"00-ab","data":{"a":1}}"#;
        let ev = CloudEvent::decode(raw)?;
        assert_eq!(
            ev.extensions.get("partitionkey"),
            Some(&Value::String("k".into()))
        );
        assert_eq!(ev.schema_version(), 2);
        let again = CloudEvent::decode(&ev.encode())?;
        assert_eq!(again, ev);
        Ok(())
    }

    #[test]
    fn envelope_errors_name_the_problem() {
        assert!(matches!(
            CloudEvent::decode(b"nope"),
            Err(EventError::NotJson(_))
        ));
        assert!(matches!(
            CloudEvent::decode(b"[1]"),
            Err(EventError::NotJson(_))
        ));
        assert_eq!(
            CloudEvent::decode(br#"{"specversion":"0.3","id":"1","source":"/s","type":"t"}"#),
            Err(EventError::SpecVersion("0.3".into()))
        );
        assert_eq!(
            CloudEvent::decode(br#"{"specversion":"1.0","id":"","source":"/s","type":"t"}"#),
            Err(EventError::Missing("id"))
        );
        assert_eq!(
            CloudEvent::decode(br#"{"specversion":"1.0","id":"1","type":"t"}"#),
            Err(EventError::Missing("source"))
        );
        assert!(matches!(
            CloudEvent::decode(
                br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","Bad_Name":1}"#
            ),
            Err(EventError::BadExtension(_))
        ));
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(matches!(
            CloudEvent::decode(&big),
            Err(EventError::TooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = CloudEvent::decode(&data);
        }
    }
}
