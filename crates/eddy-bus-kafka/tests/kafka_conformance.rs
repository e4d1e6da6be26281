//! The Kafka backend passes the bus conformance suite against a real Kafka-protocol broker:
//! tansu 0.6.0 with sqlite storage, a private one per test on an ephemeral port.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use eddy_bus::conformance::Harness;
use eddy_bus::{Bus, BusError};
use eddy_bus_kafka::KafkaBus;
use eddy_testkit::brokers::TansuServer;
use std::sync::{Arc, Mutex};

struct Tansu {
    server: Mutex<TansuServer>,
    _dir: tempfile::TempDir,
}

impl Tansu {
    fn new() -> Tansu {
        let dir = tempfile::tempdir().unwrap();
        let server = TansuServer::start(dir.path())
            .expect("tansu starts (scripts/test-prep.sh installs it)");
        Tansu {
            server: Mutex::new(server),
            _dir: dir,
        }
    }
}

#[async_trait]
impl Harness for Tansu {
    async fn connect(&self) -> Result<Arc<dyn Bus>, BusError> {
        let bootstrap = self.server.lock().unwrap().bootstrap();
        Ok(Arc::new(KafkaBus::connect(&bootstrap).await?))
    }
    async fn restart(&self) -> Result<(), BusError> {
        self.server
            .lock()
            .unwrap()
            .restart()
            .map_err(|e| BusError::Backend {
                backend: "kafka",
                detail: e.to_string(),
            })
    }
    async fn connect_unreachable(&self) -> Result<Arc<dyn Bus>, BusError> {
        let closed = eddy_testkit::free_port().unwrap();
        Ok(Arc::new(KafkaBus::connect(&closed.to_string()).await?))
    }
}

eddy_bus::conformance_tests!(Tansu::new());
