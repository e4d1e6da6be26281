//! Brokers started by tests: a private server per test on an ephemeral loopback port with its
//! own data directory, stopped by the PID the test started (never a shared system service).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `nats-server -js` owned by a test.
pub struct NatsServer {
    child: Option<Child>,
    addr: SocketAddr,
    store: PathBuf,
}

fn binary() -> Option<PathBuf> {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

impl NatsServer {
    /// Whether a `nats-server` binary is installed (scripts/test-prep.sh installs it).
    pub fn available() -> bool {
        binary().is_some()
    }

    /// Start JetStream on a free loopback port, storing under `store`.
    pub fn start(store: &Path) -> std::io::Result<NatsServer> {
        let addr = crate::free_port()?;
        let mut s = NatsServer {
            child: None,
            addr,
            store: store.to_path_buf(),
        };
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let bin = binary().ok_or_else(|| {
            std::io::Error::other("nats-server is not installed; run scripts/test-prep.sh")
        })?;
        let child = Command::new(bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.addr.port().to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        if !crate::wait_for_listener(self.addr, Duration::from_secs(10)) {
            return Err(std::io::Error::other(format!(
                "nats-server did not listen on {}",
                self.addr
            )));
        }
        Ok(())
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Stop (SIGTERM to our child, wait for it) and start again on the same port and store.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.spawn()
    }

    /// Stop the server and wait until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
