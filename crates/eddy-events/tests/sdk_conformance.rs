//! Our JSON is CloudEvents JSON: the `cloudevents-sdk` crate reads what we write and we read what
//! it writes, attributes and extensions intact.
#![allow(clippy::unwrap_used)]

use cloudevents::{AttributesReader, EventBuilder, EventBuilderV10};
use eddy_events::{CloudEvent, Event, PurgeRequested, PurgeTarget};

#[test]
fn sdk_reads_our_events() {
    let ours = Event::PurgeRequested(PurgeRequested {
        target: PurgeTarget::Key("show-1".into()),
        soft: true,
    })
    .to_cloud("abc-1", "/eddy/control");
    let mut ours = ours;
    ours.extensions
        .insert("partitionkey".into(), serde_json::json!("key:show-1"));
    let theirs: cloudevents::Event = serde_json::from_slice(&ours.encode()).unwrap();
    assert_eq!(theirs.id(), "abc-1");
    assert_eq!(theirs.source().to_string(), "/eddy/control");
    assert_eq!(theirs.ty(), "dev.eddy.purge.requested.v1");
    assert_eq!(theirs.subject(), Some("key:show-1"));
    assert!(theirs.time().is_some());
    assert_eq!(
        theirs.extension("partitionkey").map(|v| v.to_string()),
        Some("key:show-1".into())
    );
    // And back: the SDK's serialisation decodes to the same envelope.
    let back = CloudEvent::decode(&serde_json::to_vec(&theirs).unwrap()).unwrap();
    assert_eq!(back.id, ours.id);
    assert_eq!(back.data, ours.data);
    assert_eq!(
        back.extensions.get("partitionkey"),
        ours.extensions.get("partitionkey")
    );
    assert_eq!(
        Event::from_cloud(&back).unwrap(),
        Event::from_cloud(&ours).unwrap()
    );
}

#[test]
fn we_read_sdk_events() {
    let theirs = EventBuilderV10::new()
        .id("sdk-7")
        .source("http://cms.example/hooks")
        .ty("dev.eddy.content.updated.v1")
        .subject("h/a")
        .extension("tenant", "acme")
        .data(
            "application/json",
            serde_json::json!({"urls": ["h/a"], "soft": true}),
        )
        .build()
        .unwrap();
    let bytes = serde_json::to_vec(&theirs).unwrap();
    let (ce, ev) = Event::decode(&bytes).unwrap();
    assert_eq!(ce.id, "sdk-7");
    assert_eq!(
        ce.extensions.get("tenant"),
        Some(&serde_json::json!("acme"))
    );
    match ev {
        Event::ContentUpdated(c) => {
            assert_eq!(c.urls, vec!["h/a".to_string()]);
            assert!(c.soft);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn sdk_rejects_what_we_reject() {
    let missing_source = br#"{"specversion":"1.0","id":"1","type":"t"}"#;
    assert!(serde_json::from_slice::<cloudevents::Event>(missing_source).is_err());
    assert!(CloudEvent::decode(missing_source).is_err());
}
