//! Purge fan-out and catch-up over the embedded bus, with fake edges.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use eddy_bus::embedded::{EmbeddedBus, EmbeddedOptions};
use eddy_bus::{Bus, StartFrom};
use eddy_control::purge::{PurgeFollower, request};
use eddy_control::{ControlError, EdgeControl, PURGE_APPLIED_TOPIC};
use eddy_events::{Event, PurgeTarget};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct FakeEdge {
    id: String,
    applied: Mutex<Vec<(PurgeTarget, bool)>>,
}

#[async_trait]
impl EdgeControl for FakeEdge {
    fn edge_id(&self) -> &str {
        &self.id
    }
    async fn purge(&self, target: &PurgeTarget, soft: bool) -> Result<u64, ControlError> {
        self.applied.lock().unwrap().push((target.clone(), soft));
        Ok(1)
    }
    async fn prefetch(&self, _url: &str) -> Result<Option<u64>, ControlError> {
        Ok(None)
    }
    fn holds(&self, _url: &str) -> bool {
        false
    }
}

fn edge(id: &str) -> Arc<FakeEdge> {
    Arc::new(FakeEdge {
        id: id.into(),
        ..Default::default()
    })
}

async fn wait_for(cond: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test]
async fn every_edge_applies_every_purge_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(EmbeddedOptions::new(dir.path())).unwrap());
    let mut applied_sub = bus
        .subscribe(PURGE_APPLIED_TOPIC, "watch", StartFrom::Latest)
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let edges: Vec<Arc<FakeEdge>> = ["a", "b", "c"].iter().map(|i| edge(i)).collect();
    for e in &edges {
        let f = PurgeFollower::start(bus.clone(), e.clone()).await.unwrap();
        tokio::spawn(f.run(stop_rx.clone()));
    }
    let id = request(
        bus.as_ref(),
        "/test",
        PurgeTarget::Key("show-1".into()),
        true,
    )
    .await
    .unwrap();
    assert!(wait_for(|| edges.iter().all(|e| e.applied.lock().unwrap().len() == 1)).await);
    let mut reporters = Vec::new();
    for _ in 0..3 {
        let d = tokio::time::timeout(Duration::from_secs(5), applied_sub.next())
            .await
            .unwrap()
            .unwrap();
        match Event::decode(&d.payload).unwrap().1 {
            Event::PurgeApplied(a) => {
                assert_eq!(a.request_id, id);
                reporters.push(a.edge);
            }
            other => panic!("{other:?}"),
        }
    }
    reporters.sort();
    assert_eq!(reporters, ["a", "b", "c"]);
    stop_tx.send(true).unwrap();
}

#[tokio::test]
async fn an_edge_that_was_down_catches_up_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(EmbeddedOptions::new(dir.path())).unwrap());
    let e = edge("down");
    // The edge ran once and committed its position.
    let mut f = PurgeFollower::start(bus.clone(), e.clone()).await.unwrap();
    request(
        bus.as_ref(),
        "/test",
        PurgeTarget::Url("h/old".into()),
        false,
    )
    .await
    .unwrap();
    assert_eq!(f.catch_up().await.unwrap(), 1);
    drop(f);
    // While it is down, three purges are published.
    for i in 0..3 {
        request(
            bus.as_ref(),
            "/test",
            PurgeTarget::Url(format!("h/{i}")),
            false,
        )
        .await
        .unwrap();
    }
    // On restart it applies exactly those before anything else.
    let mut f = PurgeFollower::start(bus.clone(), e.clone()).await.unwrap();
    assert_eq!(f.catch_up().await.unwrap(), 3);
    let applied = e.applied.lock().unwrap().clone();
    assert_eq!(applied.len(), 4);
    assert_eq!(applied[3].0, PurgeTarget::Url("h/2".into()));
    // Nothing left.
    assert_eq!(f.catch_up().await.unwrap(), 0);
}
