//! A byte-scripted origin and a raw client, for what hyper and reqwest will not send or will
//! tidy up: interim responses in one write with the final one, hop-by-hop fields, connections
//! closed without an answer, pipelined requests.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// What the raw origin does with one request, given its path and the number of requests this
/// connection has carried before it.
pub enum Script {
    /// Write these bytes as the whole response.
    Bytes(Vec<u8>),
    /// Close the connection without answering.
    Close,
}

/// One request the raw origin read.
#[derive(Debug, Clone)]
pub struct RawSeen {
    pub head: String,
    pub path: String,
    pub body: Vec<u8>,
    /// Requests this connection carried before this one.
    pub nth_on_conn: usize,
}

impl RawSeen {
    /// A request field's value (first line), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

type Handler = Arc<dyn Fn(&RawSeen) -> Script + Send + Sync>;

/// An HTTP/1.1 origin on 127.0.0.1 that answers each request with scripted bytes, keeping
/// connections alive. Stops when dropped.
pub struct RawOrigin {
    pub addr: SocketAddr,
    seen: Arc<parking_lot::Mutex<Vec<RawSeen>>>,
    stop: Arc<AtomicBool>,
    pub connections: Arc<AtomicUsize>,
}

fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Some((head, body))
}

impl RawOrigin {
    pub fn start(handler: impl Fn(&RawSeen) -> Script + Send + Sync + 'static) -> RawOrigin {
        let handler: Handler = Arc::new(handler);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (seen2, stop2, conns2) = (seen.clone(), stop.clone(), connections.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                conns2.fetch_add(1, Ordering::Relaxed);
                let (handler, seen, stop) = (handler.clone(), seen2.clone(), stop2.clone());
                std::thread::spawn(move || {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let mut buf = Vec::new();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let Some((head, body)) = read_request(&mut s, &mut buf) else {
                            return;
                        };
                        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                        let r = RawSeen {
                            head,
                            path,
                            body,
                            nth_on_conn: n,
                        };
                        n += 1;
                        seen.lock().push(r.clone());
                        match handler(&r) {
                            Script::Bytes(b) => {
                                if s.write_all(&b).is_err() {
                                    return;
                                }
                            }
                            Script::Close => return,
                        }
                    }
                });
            }
        });
        RawOrigin {
            addr,
            seen,
            stop,
            connections,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<RawSeen> {
        self.seen.lock().clone()
    }

    pub fn count(&self, path: &str) -> usize {
        self.seen.lock().iter().filter(|s| s.path == path).count()
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A response as the raw client read it.
#[derive(Debug, Clone)]
pub struct RawResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResp {
    /// A field's value (first), by case-insensitive name.
    pub fn h(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that writes raw bytes and reads responses one at a time, interim ones
/// included.
pub struct RawConn {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub fn open(addr: SocketAddr) -> RawConn {
        RawConn::wrap(TcpStream::connect(addr).unwrap())
    }

    /// A connection made elsewhere.
    pub fn wrap(s: TcpStream) -> RawConn {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        RawConn { s, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        match self.s.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next response (1xx included), or `None` when the connection closes first. `head`:
    /// the request was HEAD (no body follows).
    pub fn read(&mut self, head: bool) -> Option<RawResp> {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill() {
                return None;
            }
        };
        let text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let mut lines = text.split("\r\n");
        let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        self.buf.drain(..end);
        let mut resp = RawResp {
            status,
            headers,
            body: Vec::new(),
        };
        if head || (100..200).contains(&status) || status == 204 || status == 304 {
            return Some(resp);
        }
        let len: usize = resp.h("content-length").and_then(|v| v.parse().ok())?;
        while self.buf.len() < len {
            if !self.fill() {
                return None;
            }
        }
        resp.body = self.buf.drain(..len).collect();
        Some(resp)
    }

    /// Whether the edge closed the connection (a read sees its end) within `within`.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        self.s.set_read_timeout(Some(within)).unwrap();
        let mut chunk = [0u8; 4096];
        loop {
            match self.s.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// A `GET` for `path` at `host`.
pub fn get(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// A whole HTTP/1.1 response with these fields and body (Content-Length added).
pub fn response(status: &str, fields: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (n, v) in fields {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

/// Count a field's appearances across responses, by name.
pub fn field_counts(resps: &[RawResp]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in resps {
        for (n, _) in &r.headers {
            *m.entry(n.to_ascii_lowercase()).or_default() += 1;
        }
    }
    m
}
