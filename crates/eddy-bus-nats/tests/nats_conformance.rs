//! The NATS JetStream backend passes the bus conformance suite against a real nats-server
//! (a private one per test, on an ephemeral port, restarted by the test).
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use eddy_bus::conformance::Harness;
use eddy_bus::{Bus, BusError};
use eddy_bus_nats::NatsBus;
use eddy_testkit::brokers::NatsServer;
use std::sync::{Arc, Mutex};

struct Nats {
    server: Mutex<NatsServer>,
    _dir: tempfile::TempDir,
}

impl Nats {
    fn new() -> Nats {
        let dir = tempfile::tempdir().unwrap();
        let server = NatsServer::start(dir.path())
            .expect("nats-server starts (scripts/test-prep.sh installs it)");
        Nats {
            server: Mutex::new(server),
            _dir: dir,
        }
    }
}

#[async_trait]
impl Harness for Nats {
    async fn connect(&self) -> Result<Arc<dyn Bus>, BusError> {
        let url = self.server.lock().unwrap().url();
        Ok(Arc::new(NatsBus::connect(&url).await?))
    }
    async fn restart(&self) -> Result<(), BusError> {
        let mut s = self.server.lock().unwrap();
        s.restart().map_err(|e| BusError::Backend {
            backend: "nats",
            detail: e.to_string(),
        })
    }
    async fn connect_unreachable(&self) -> Result<Arc<dyn Bus>, BusError> {
        let closed = eddy_testkit::free_port().unwrap();
        Ok(Arc::new(
            NatsBus::connect(&format!("nats://{closed}")).await?,
        ))
    }
}

eddy_bus::conformance_tests!(Nats::new());
