//! The RabbitMQ backend passes the bus conformance suite against a real RabbitMQ: the machine's
//! broker on 127.0.0.1:5672 for the checks that only publish and consume (each on queues of its
//! own), and a private node started by the test for the check that restarts the broker.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use eddy_bus::conformance::Harness;
use eddy_bus::{Bus, BusError};
use eddy_bus_rabbitmq::RabbitBus;
use eddy_testkit::brokers::{RabbitServer, SYSTEM_RABBITMQ_URL};
use std::sync::{Arc, Mutex};

enum Broker {
    System,
    /// The node is dropped (stopped) before its directory.
    Private {
        node: Mutex<RabbitServer>,
        _dir: tempfile::TempDir,
    },
}

struct Rabbit(Broker);

impl Rabbit {
    fn system() -> Rabbit {
        Rabbit(Broker::System)
    }
    fn private() -> Rabbit {
        let dir = tempfile::tempdir().unwrap();
        let node = RabbitServer::start(dir.path())
            .expect("a private RabbitMQ node starts (scripts/test-prep.sh installs RabbitMQ)");
        Rabbit(Broker::Private {
            node: Mutex::new(node),
            _dir: dir,
        })
    }
    fn url(&self) -> String {
        match &self.0 {
            Broker::System => SYSTEM_RABBITMQ_URL.to_string(),
            Broker::Private { node: n, .. } => n.lock().unwrap().url(),
        }
    }
}

#[async_trait]
impl Harness for Rabbit {
    async fn connect(&self) -> Result<Arc<dyn Bus>, BusError> {
        Ok(Arc::new(RabbitBus::connect(&self.url()).await?))
    }
    async fn restart(&self) -> Result<(), BusError> {
        let Broker::Private { node, .. } = &self.0 else {
            return Err(BusError::Backend {
                backend: "rabbitmq",
                detail: "the shared broker is never restarted by tests".into(),
            });
        };
        // Blocks this test's runtime for the ~10 s a node takes to come back: nothing else runs.
        node.lock()
            .unwrap()
            .restart()
            .map_err(|e| BusError::Backend {
                backend: "rabbitmq",
                detail: e.to_string(),
            })
    }
    async fn connect_unreachable(&self) -> Result<Arc<dyn Bus>, BusError> {
        let closed = eddy_testkit::free_port().unwrap();
        Ok(Arc::new(
            RabbitBus::connect(&format!("amqp://guest:guest@{closed}/%2f")).await?,
        ))
    }
}

eddy_bus::conformance_tests!(Rabbit::system(), restart: Rabbit::private());
