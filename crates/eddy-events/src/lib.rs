//! # eddy-events: the events Eddy's components exchange
//!
//! Every event travels as a CloudEvents 1.0 envelope in JSON structured mode ([`CloudEvent`]):
//! our own serde types, with unknown extension attributes kept, not dropped. Inside it, `data`
//! is one of the typed payloads of the catalog ([`Event`]), named by a reverse-DNS, versioned
//! `type` (`dev.eddy.purge.requested.v1`): past tense for facts, imperative for commands.
//!
//! Decoding is two steps, so a consumer never stops on an event it does not know:
//! [`CloudEvent::decode`] checks the envelope (JSON, `specversion` 1.0, required attributes) and
//! fails with [`EventError`] for anything that must be dead-lettered; [`Event::from_cloud`] turns
//! a known type into its payload and an unknown type into [`Event::Unknown`].
//!
//! Must not touch: I/O of any kind (brokers live in `eddy-bus`).

mod catalog;
mod envelope;
mod interest;

pub use catalog::*;
pub use envelope::{CloudEvent, EventError, SPEC_VERSION};
pub use interest::{
    Action, Interaction, InterestError, MAX_ITEM_BYTES, MAX_PREWARM_URLS, MAX_REGION_BYTES,
    MAX_VIEWER_BYTES, Prewarm, PrewarmReason, object_url, region,
};
