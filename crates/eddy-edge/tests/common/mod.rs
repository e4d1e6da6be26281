//! Shared rig for the edge's integration tests: a real origin (eddy-testkit) and a real edge on
//! 127.0.0.1 ephemeral ports, and an HTTP client on its own runtime.
#![allow(dead_code, clippy::unwrap_used)]

pub mod raw;

use eddy_config::Overrides;
use eddy_edge::Edge;
use eddy_testkit::origin::{Origin, Reply, Seen};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn h(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
    pub fn x_cache(&self) -> &str {
        self.h("x-cache")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct Rig {
    pub origin: Origin,
    pub edge: Option<Edge>,
    pub rt: tokio::runtime::Runtime,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
}

pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Rig {
    start_with(handler, |_| {}, "")
}

/// Start an origin and an edge; `tweak` adjusts the command-line overrides and `toml` is an
/// extra config file body (may be empty).
pub fn start_with(
    handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    tweak: impl FnOnce(&mut Overrides),
    toml: &str,
) -> Rig {
    let origin = Origin::start(handler).expect("origin starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = Overrides {
        listen: Some(eddy_testkit::free_port().unwrap().to_string()),
        admin: Some(eddy_testkit::free_port().unwrap().to_string()),
        origins: vec![origin.url()],
        memory_size: Some("64 MiB".into()),
        ..Default::default()
    };
    tweak(&mut o);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut rig = Rig {
        origin,
        edge: None,
        rt,
        client,
        dir,
        listen: "127.0.0.1:1".parse().unwrap(),
        admin: "127.0.0.1:1".parse().unwrap(),
    };
    rig.start_edge(&o, toml);
    rig
}

/// Whether a connection to `addr` that sends nothing is accepted and then closed by the edge
/// (it reads the end of the stream and lets go): proof that the edge has handled the probe.
fn probe_closed(addr: std::net::SocketAddr) -> bool {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    if s.shutdown(std::net::Shutdown::Write).is_err()
        || s.set_read_timeout(Some(Duration::from_secs(5))).is_err()
    {
        return false;
    }
    let mut chunk = [0u8; 256];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

impl Rig {
    pub fn start_edge(&mut self, o: &Overrides, toml: &str) {
        self.start_edge_with_bus(o, toml, None);
    }

    pub fn start_edge_with_bus(
        &mut self,
        o: &Overrides,
        toml: &str,
        bus: Option<std::sync::Arc<dyn eddy_bus::Bus>>,
    ) {
        // Active origin probes would add requests to the origins' counts that tests assert on:
        // off unless a test turns them on.
        let toml = if toml.contains("origin_probe_interval_ms") {
            toml.to_string()
        } else if toml.contains("[edge]\n") {
            toml.replacen("[edge]\n", "[edge]\norigin_probe_interval_ms = 0\n", 1)
        } else {
            format!("[edge]\norigin_probe_interval_ms = 0\n{toml}")
        };
        let path = self.dir.path().join("edge.toml");
        std::fs::write(&path, toml).unwrap();
        let cfg = eddy_config::load(Some(&path), o).expect("config");
        let edge = Edge::start_with_bus(cfg, bus).expect("edge starts");
        self.listen = edge.listen_addr();
        self.admin = edge.admin_addr();
        assert!(
            eddy_testkit::wait_until(Duration::from_secs(10), || probe_closed(self.listen)),
            "edge did not listen"
        );
        // The probe held a place under the connection caps until the edge let go of it; a test
        // that counts connections starts once it has.
        assert_eq!(self.metric_becomes("eddy_connections_open", 0), 0);
        self.edge = Some(edge);
    }

    pub fn stop_edge(&mut self) {
        if let Some(e) = self.edge.take() {
            e.stop();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.listen, path)
    }

    /// The edge's Prometheus text from `/metrics`.
    pub fn metrics_text(&self) -> String {
        self.rt.block_on(async {
            reqwest::get(self.admin_url("/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    }

    /// One series from `/metrics`, named with its labels as Prometheus prints them (0 when
    /// absent).
    pub fn metric(&self, series: &str) -> u64 {
        self.metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{series} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Wait, with a deadline, until a series reads `want`, and return what it read last. The
    /// edge counts a request after its last byte is written, so a client can see the answer a
    /// moment before `/metrics` counts it.
    pub fn metric_becomes(&self, series: &str, want: u64) -> u64 {
        let mut last = 0;
        eddy_testkit::wait_until(Duration::from_secs(5), || {
            last = self.metric(series);
            last == want
        });
        last
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn req(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut b = self.client.request(m, self.url(path));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b)
    }

    pub fn send(&self, b: reqwest::RequestBuilder) -> Resp {
        self.rt.block_on(async {
            let r = tokio::time::timeout(Duration::from_secs(20), b.send())
                .await
                .expect("request timed out")
                .expect("request failed");
            let status = r.status().as_u16();
            let headers = r
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let body = r.bytes().await.expect("body").to_vec();
            Resp {
                status,
                headers,
                body,
            }
        })
    }

    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path, &[])
    }

    pub fn get_h(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.req("GET", path, headers)
    }

    /// POST JSON to the admin API.
    pub fn admin_post(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
        let mut b = self
            .client
            .post(self.admin_url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b)
    }

    /// Send raw bytes to the edge and return the status of the first response line (0 if the
    /// connection closed without one).
    pub fn raw(&self, bytes: &[u8]) -> u16 {
        let mut s = std::net::TcpStream::connect(self.listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(bytes).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(2).any(|w| w == b"\r\n") {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let line = String::from_utf8_lossy(&buf);
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop_edge();
    }
}

/// An origin handler answering every path with `cc` as Cache-Control and a body naming the
/// request count.
pub fn counting(cc: &'static str) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    let n = std::sync::atomic::AtomicUsize::new(0);
    move |_req: &Seen| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let r = Reply::ok(format!("response {i}"));
        if cc.is_empty() {
            r
        } else {
            r.header("cache-control", cc)
        }
    }
}

/// Overrides for an edge on fresh loopback ports in front of `origins`, optionally named `id`.
#[allow(dead_code)] // not every test binary uses every helper
pub fn node_overrides(origins: Vec<String>, id: Option<&str>) -> Overrides {
    Overrides {
        listen: Some(eddy_testkit::free_port().unwrap().to_string()),
        admin: Some(eddy_testkit::free_port().unwrap().to_string()),
        origins,
        id: id.map(str::to_string),
        ..Default::default()
    }
}

/// An embedded bus in `dir`.
#[allow(dead_code)]
pub fn embedded_bus(dir: &std::path::Path) -> std::sync::Arc<dyn eddy_bus::Bus> {
    std::sync::Arc::new(
        eddy_bus::embedded::EmbeddedBus::open(eddy_bus::embedded::EmbeddedOptions::new(dir))
            .unwrap(),
    )
}

/// The first `n` events published on `topic` of `bus` (from its start), each within 5 s: the
/// envelope's type and the decoded event.
#[allow(dead_code)]
pub fn events_on(
    rig: &Rig,
    bus: &std::sync::Arc<dyn eddy_bus::Bus>,
    topic: &str,
    n: usize,
) -> Vec<(String, eddy_events::Event)> {
    rig.rt.block_on(async {
        let mut sub = bus
            .subscribe(topic, "events-on", eddy_bus::StartFrom::Earliest)
            .await
            .unwrap();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let rec = tokio::time::timeout(Duration::from_secs(5), sub.next())
                .await
                .unwrap_or_else(|_| panic!("{n} events on {topic} within 5 s; got {}", out.len()))
                .unwrap();
            let (cloud, ev) = eddy_events::Event::decode(&rec.payload).unwrap();
            out.push((cloud.ty, ev));
        }
        out
    })
}
