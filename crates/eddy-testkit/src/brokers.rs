//! Brokers started by tests: a private server per test on an ephemeral loopback port with its
//! own data directory, stopped by the PID the test started (never a shared system service).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// SIGTERM to a child this test started, then wait up to 10 s for it to exit (SIGKILL after).
fn terminate(child: Option<Child>) {
    let Some(mut c) = child else { return };
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
        let addr = crate::free_fixed_port()?;
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
        terminate(self.child.take());
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The machine's RabbitMQ on 127.0.0.1:5672 (guest/guest), vhost `eddy-test`, which
/// `scripts/test-prep.sh` starts when it is down and empties at every run. Tests that only publish
/// and consume share it, each on queues of its own.
pub const SYSTEM_RABBITMQ_URL: &str = "amqp://guest:guest@127.0.0.1:5672/eddy-test";

/// A private RabbitMQ node owned by a test, for tests that restart the broker: its own node
/// name, AMQP and distribution ports, data directory and no plugins. Started from RabbitMQ's own
/// `rabbitmq-server` script as a child of the test and stopped by that PID.
pub struct RabbitServer {
    child: Option<Child>,
    port: u16,
    dist_port: u16,
    dir: PathBuf,
}

fn rabbit_binary() -> Option<PathBuf> {
    ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl RabbitServer {
    /// Whether RabbitMQ is installed.
    pub fn available() -> bool {
        rabbit_binary().is_some()
    }

    /// Start a node storing under `dir`; waits until it accepts AMQP connections (about 10 s).
    pub fn start(dir: &Path) -> std::io::Result<RabbitServer> {
        let port = crate::free_fixed_port()?.port();
        let dist_port = crate::free_fixed_port()?.port();
        std::fs::write(dir.join("enabled_plugins"), "[].\n")?;
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users.guest = true\n"),
        )?;
        let mut s = RabbitServer {
            child: None,
            port,
            dist_port,
            dir: dir.to_path_buf(),
        };
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let bin = rabbit_binary().ok_or_else(|| {
            std::io::Error::other("rabbitmq-server is not installed; run scripts/test-prep.sh")
        })?;
        let d = self.dir.clone();
        let log = std::fs::File::create(d.join("node.out"))?;
        let child = Command::new(bin)
            .env(
                "RABBITMQ_NODENAME",
                format!("eddytest{}@localhost", self.port),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_PID_FILE", d.join("node.pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        if !crate::wait_for_listener(addr, Duration::from_secs(60)) {
            self.stop();
            return Err(std::io::Error::other(format!(
                "rabbitmq-server did not listen on {addr}; see {}",
                d.join("node.out").display()
            )));
        }
        Ok(())
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Stop the node and start it again on the same ports and data.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.spawn()
    }

    /// Stop the node (SIGTERM to the script we started, which stops the Erlang VM) and wait
    /// until it and the VM have exited.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let pid = c.id();
        let vm: Vec<String> = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let alive = |p: &String| Path::new(&format!("/proc/{p}")).exists();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut exited = false;
        while std::time::Instant::now() < deadline {
            if !exited && matches!(c.try_wait(), Ok(Some(_))) {
                exited = true;
            }
            if exited && !vm.iter().any(alive) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in vm.iter().filter(|p| alive(p)) {
            let _ = Command::new("kill").args(["-KILL", p]).status();
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for RabbitServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A tansu broker (the Kafka protocol, sqlite storage) owned by a test.
pub struct TansuServer {
    child: Option<Child>,
    addr: SocketAddr,
    dir: PathBuf,
}

fn tansu_binary() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(h) = home {
        candidates.push(h.join(".cargo/bin/tansu"));
    }
    candidates.push(PathBuf::from("/usr/local/bin/tansu"));
    candidates.into_iter().find(|p| p.exists())
}

impl TansuServer {
    /// Whether tansu is installed (`scripts/test-prep.sh` installs it).
    pub fn available() -> bool {
        tansu_binary().is_some()
    }

    /// Start on a free loopback port, storing in `dir/tansu.db`.
    pub fn start(dir: &Path) -> std::io::Result<TansuServer> {
        let mut s = TansuServer {
            child: None,
            addr: crate::free_fixed_port()?,
            dir: dir.to_path_buf(),
        };
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let bin = tansu_binary().ok_or_else(|| {
            std::io::Error::other("tansu is not installed; run scripts/test-prep.sh")
        })?;
        let url = format!("tcp://{}", self.addr);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.out"))?;
        let child = Command::new(bin)
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args([
                "--storage-engine",
                "sqlite://tansu.db",
                "--cluster-id",
                "eddy-test",
            ])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        if !crate::wait_for_listener(self.addr, Duration::from_secs(10)) {
            self.stop();
            return Err(std::io::Error::other(format!(
                "tansu did not listen on {}; see {}",
                self.addr,
                self.dir.join("tansu.out").display()
            )));
        }
        Ok(())
    }

    /// `127.0.0.1:PORT`, the bootstrap servers.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Stop and start again on the same port and storage.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.spawn()
    }

    /// SIGTERM to our child; wait for it to exit (a new broker on the port before the old one
    /// exits would fail to bind).
    pub fn stop(&mut self) {
        terminate(self.child.take());
    }
}

impl Drop for TansuServer {
    fn drop(&mut self) {
        self.stop();
    }
}
