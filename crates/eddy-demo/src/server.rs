//! A scriptable origin server.
//!
//! ```ignore
//! let origin = Origin::start(|req: &Seen| Reply::ok("hello").header("cache-control", "max-age=60"))?;
//! // ... point an edge at origin.addr() ...
//! assert_eq!(origin.count("/path"), 1);
//! ```

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A request the origin received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Headers.
    pub headers: HeaderMap,
}

impl Seen {
    /// A request header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the origin answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body chunks, each sent after its delay.
    pub chunks: Vec<(Duration, Bytes)>,
    /// Delay before the response head.
    pub head_delay: Duration,
    /// Drop the connection instead of answering.
    pub reset: bool,
}

impl Reply {
    /// `200` with a body.
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply::status(200).body(body)
    }
    /// A status with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            chunks: Vec::new(),
            head_delay: Duration::ZERO,
            reset: false,
        }
    }
    /// Close the connection without a response.
    pub fn reset() -> Reply {
        Reply {
            reset: true,
            ..Reply::status(500)
        }
    }
    /// Add a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    /// Replace the body with one chunk.
    pub fn body(mut self, body: impl Into<Bytes>) -> Reply {
        self.chunks = vec![(Duration::ZERO, body.into())];
        self
    }
    /// Send the body as `n` chunks spread evenly over `total`.
    pub fn slow(mut self, body: impl Into<Bytes>, n: usize, total: Duration) -> Reply {
        let body: Bytes = body.into();
        let n = n.max(1);
        let step = body.len().div_ceil(n).max(1);
        let delay = total / n as u32;
        self.chunks = body
            .chunks(step)
            .map(|c| (delay, Bytes::copy_from_slice(c)))
            .collect();
        // First chunk goes out immediately so the head and first bytes are prompt.
        if let Some(first) = self.chunks.first_mut() {
            first.0 = Duration::ZERO;
        }
        self
    }
    /// Wait before sending the head.
    pub fn delay(mut self, d: Duration) -> Reply {
        self.head_delay = d;
        self
    }
    /// The body length.
    pub fn body_len(&self) -> usize {
        self.chunks.iter().map(|(_, c)| c.len()).sum()
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A running origin; stops when dropped.
pub struct Origin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Origin {
    /// Start on 127.0.0.1 with an ephemeral port.
    pub fn start(
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Origin> {
        Origin::start_on(
            "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
            handler,
        )
    }

    /// Start on a given address (port 0 for ephemeral).
    pub fn start_on(
        addr: SocketAddr,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Origin> {
        let handler: Handler = Arc::new(handler);
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let seen2 = seen.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("origin-{}", addr.port()))
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else { return };
                    loop {
                        tokio::select! {
                            _ = &mut stop_rx => break,
                            acc = listener.accept() => {
                                let Ok((stream, _)) = acc else { continue };
                                let _ = stream.set_nodelay(true);
                                let handler = handler.clone();
                                let seen = seen2.clone();
                                tokio::spawn(async move {
                                    let svc = service_fn(move |req| serve(req, handler.clone(), seen.clone()));
                                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                        .serve_connection(TokioIo::new(stream), svc)
                                        .await;
                                });
                            }
                        }
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(Origin {
            addr,
            seen,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    /// How many requests had this path (and query).
    pub fn count(&self, path: &str) -> usize {
        self.seen.lock().iter().filter(|s| s.path == path).count()
    }

    /// Total requests.
    pub fn total(&self) -> usize {
        self.seen.lock().len()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn serve(
    req: http::Request<hyper::body::Incoming>,
    handler: Handler,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<http::Response<Body>, std::io::Error> {
    let info = Seen {
        method: req.method().clone(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
        headers: req.headers().clone(),
    };
    // Drain the request body.
    let _ = req.into_body().collect().await;
    seen.lock().push(info.clone());
    let reply = handler(&info);
    if !reply.head_delay.is_zero() {
        tokio::time::sleep(reply.head_delay).await;
    }
    if reply.reset {
        return Err(std::io::Error::other("scripted reset"));
    }
    let mut b = http::Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let has_len = reply
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    for (n, v) in &reply.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            b = b.header(n, v);
        }
    }
    let head_only = info.method == Method::HEAD || reply.status == 304 || reply.status == 204;
    if !has_len && !head_only && reply.chunks.len() <= 1 {
        b = b.header(http::header::CONTENT_LENGTH, reply.body_len());
    }
    if !has_len && head_only && info.method == Method::HEAD {
        b = b.header(http::header::CONTENT_LENGTH, reply.body_len());
    }
    let chunks = if head_only { Vec::new() } else { reply.chunks };
    let body: Body = BodyExt::boxed(channel_body(chunks));
    b.body(body).map_err(std::io::Error::other)
}

fn channel_body(
    chunks: Vec<(Duration, Bytes)>,
) -> impl hyper::body::Body<Data = Bytes, Error = Infallible> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        for (delay, c) in chunks {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(c).await.is_err() {
                return;
            }
        }
    });
    ChannelBody { rx }
}

struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}
