//! HTTP/1.1 and h2c (HTTP/2 with prior knowledge) on one port, told apart without waiting for
//! bytes that may never come.
//!
//! pingora 0.9.1's own h2c detection reads exactly 24 bytes (the length of the HTTP/2 preface)
//! before deciding, with no deadline. An HTTP/1 request shorter than that (`GET / HTTP/1.0` plus
//! the blank line is 18 bytes), or garbage such as `GARBAGE\r\n\r\n`, then hangs the connection
//! forever: a client gets no answer and a slowloris gets a free socket. [`H2cGate`] reads only
//! until the bytes stop matching the preface (one byte, for any HTTP/1 method), puts them back,
//! and hands the connection to one of two otherwise identical pingora apps: one with h2c off
//! (HTTP/1) or one with h2c on. A connection that has sent neither a mismatch nor the whole
//! preface within `edge.head_timeout_ms` of its accept is closed.
//!
//! An HTTP/1 connection then stays here for its keep-alive requests, and this is where the edge
//! bounds what a client may hold (see [`crate::conn`] and [`crate::request`]):
//! - a connection over `edge.max_connections`, or over `edge.max_client_connections` from its
//!   address, is closed at accept;
//! - each request head must be complete within `edge.head_timeout_ms` of the connection's accept
//!   (first request) or of its first byte (later ones), else 408 and close: a slowloris holds a
//!   socket for that long at most, never 60 s per byte;
//! - an idle connection between requests is closed after `edge.keepalive_timeout_ms`;
//! - every head is judged strictly once ([`crate::request::judge`]), so the hit fast path and the
//!   full proxy refuse the same bytes with the same status.
//!
//! Each accepted request is offered to the hit fast path ([`crate::fast`]) first. What it
//! declines goes to the HTTP/1 app as a one-request session with exactly that request's bytes
//! put back; bytes after it (pipelined requests) stay here for the next turn, because pingora
//! drops a connection whose buffer holds more than one request. The connection returns here
//! after each request the app answers with keep-alive.

use crate::conn::Refused;
use crate::date::KeepDate;
use crate::fast::{FastHits, Served};
use crate::proxy::EdgeState;
use crate::request::{self, Head, Rejection};
use crate::tls::TlsConn;
use async_trait::async_trait;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora_core::protocols::Stream;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::tls::ALPN;
use pingora_core::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Where the first bytes of a connection point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The bytes so far are a prefix of the preface: read more.
    Undecided,
    /// The whole preface: HTTP/2.
    H2,
    /// A byte that is not the preface's: HTTP/1 (or garbage, for its parser to refuse).
    H1,
}

/// Judge the first bytes of a connection.
pub fn verdict(first: &[u8]) -> Verdict {
    let n = first.len().min(PREFACE.len());
    if first[..n] != PREFACE[..n] {
        Verdict::H1
    } else if n == PREFACE.len() {
        Verdict::H2
    } else {
        Verdict::Undecided
    }
}

/// A connection's read buffer starts this large: a usual request head fits, and a connection that
/// trickles bytes (or idles) costs no more. It doubles when nearly full, up to what the head
/// limit allows.
const FIRST_READ: usize = 2 * 1024;

/// Longest time spent writing a refusal (400, 408, 431) to a client before closing anyway.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// Sends each connection to the HTTP/1 or the HTTP/2 app by its first bytes; HTTP/1 requests are
/// judged here and go to the hit fast path first, when there is one.
pub struct H2cGate<A> {
    /// The app with h2c off.
    pub h1: Arc<A>,
    /// The app with h2c on.
    pub h2: Arc<A>,
    /// The hit fast path for HTTP/1 requests (see [`crate::fast`]), unless turned off.
    pub fast: Option<Arc<FastHits>>,
    /// The edge's state: config, metrics, connection caps.
    pub state: Arc<EdgeState>,
}

/// What a bounded read got.
enum Read {
    /// Some bytes.
    Data,
    /// The time was up.
    TimedOut,
    /// The peer closed or failed, or the server is stopping.
    Closed,
}

/// Read more bytes into `buf` until `deadline`, not past shutdown.
async fn read_until(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    shutdown: &ShutdownWatch,
) -> Read {
    // Room for one more read: double when nearly full, never for a byte at a time.
    if buf.capacity() - buf.len() < FIRST_READ / 4 {
        buf.reserve(buf.len().max(FIRST_READ));
    }
    let mut stop = shutdown.clone();
    tokio::select! {
        r = tokio::time::timeout_at(deadline, stream.read_buf(buf)) => match r {
            Ok(Ok(n)) if n > 0 => Read::Data,
            Ok(_) => Read::Closed,
            Err(_) => Read::TimedOut,
        },
        _ = stop.wait_for(|s| *s) => Read::Closed,
    }
}

/// Hand a request's telemetry (canonical `url`, raw `query`, CMCD `fields`, client `peer`) to
/// the QoE queue; the guard's cap for it.
fn telemetry<'a, I: Iterator<Item = (&'a str, &'a [u8])>>(
    st: &EdgeState,
    url: &str,
    query: Option<&str>,
    fields: impl Fn() -> I,
    peer: Option<std::net::IpAddr>,
) -> Option<u32> {
    if let Some(q) = &st.qoe {
        q.offer_parts(url, query, fields(), peer);
    }
    st.caps.for_request(url, query, fields(), peer)
}

/// Put `bytes` back into a viewer connection (plain TCP or TLS), to be read again first. `None`
/// for a stream of another kind (none reaches the HTTP/1 loop).
fn put_back(stream: Stream, bytes: &[u8]) -> Option<Stream> {
    match stream.into_any().downcast::<L4Stream>() {
        Ok(mut l4) => {
            l4.rewind(bytes);
            Some(l4)
        }
        Err(any) => {
            let mut tls = any.downcast::<TlsConn>().ok()?;
            tls.rewind(bytes);
            Some(tls)
        }
    }
}

/// Answer a refused request and close: the refusal is written within [`REFUSAL_WRITE`].
async fn refuse(stream: &mut Stream, rejection: &Rejection) {
    let _ = tokio::time::timeout(REFUSAL_WRITE, async {
        stream.write_all(&rejection.response()).await?;
        stream.flush().await?;
        stream.shutdown().await
    })
    .await;
}

impl<A: HttpServerApp + Send + Sync + 'static> H2cGate<A> {
    /// Serve an HTTP/1 connection whose first bytes are in `buf`, one request at a time (see the
    /// module doc). `first_deadline` is when the first request head must be complete.
    async fn http1(
        &self,
        mut stream: Stream,
        mut buf: Vec<u8>,
        first_deadline: Instant,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // When the head being read must be complete: from the accept for the first request, else
        // set when a head turns out to need a second read (its first bytes came just before). A
        // head that arrives whole never reads the clock for it.
        let mut deadline = Some(first_deadline);
        let st = &self.state;
        let edge = &st.config.edge;
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let tls = stream.get_ssl_digest().is_some();
        let redirect = st.config.tls.as_ref().is_some_and(|t| t.redirect) && !tls;
        let default_port = if tls {
            eddy_url::HTTPS_PORT
        } else {
            eddy_url::HTTP_PORT
        };
        let mut scratch = Vec::with_capacity(1024);
        let mut socket = crate::fast::Socket::default();
        let mut settings: Option<HttpPersistentSettings> = None;
        loop {
            if buf.is_empty() {
                // Between keep-alive requests.
                let idle_until = Instant::now() + edge.keepalive_timeout;
                match read_until(&mut stream, &mut buf, idle_until, shutdown).await {
                    Read::Data => {}
                    Read::TimedOut => {
                        st.metrics.closed("idle_timeout");
                        return None;
                    }
                    Read::Closed => return None,
                }
            }
            let mut cap = None;
            let req = loop {
                match request::judge_on(&buf, edge.max_header_bytes, default_port, |h| {
                    st.config.path_options(h)
                }) {
                    Head::Complete(r) => {
                        if r.telemetry
                            && let Some(url) = &r.url
                            && (st.qoe.is_some() || st.caps.active())
                        {
                            // One reading of the head as the player sent it (the canonical
                            // target drops `CMCD`), for the QoE queue and the guard's cap: its
                            // request line alone when no field carries CMCD.
                            let (url, head) = (url.as_str(), &buf[..r.head_len]);
                            cap = if r.cmcd_fields {
                                crate::qoe::with_head(head, |query, fields| {
                                    telemetry(
                                        st,
                                        url,
                                        query,
                                        || fields.iter().map(|h| (h.name, h.value)),
                                        peer,
                                    )
                                })
                                .flatten()
                            } else {
                                let query = crate::qoe::request_query(head);
                                telemetry(st, url, query, std::iter::empty, peer)
                            };
                        }
                        break r;
                    }
                    Head::Rejected(rejection) => {
                        let took = deadline.map_or(0.0, |d| {
                            (edge
                                .head_timeout
                                .saturating_sub(d.saturating_duration_since(Instant::now())))
                            .as_secs_f64()
                        });
                        st.metrics.rejected(&rejection, took);
                        tracing::info!(status = rejection.status, reason = %rejection.reason, client = ?peer, "refused a request");
                        refuse(&mut stream, &rejection).await;
                        return None;
                    }
                    Head::Partial => {}
                }
                let until = *deadline.get_or_insert_with(|| Instant::now() + edge.head_timeout);
                match read_until(&mut stream, &mut buf, until, shutdown).await {
                    Read::Data => {}
                    Read::TimedOut => {
                        st.metrics.closed("head_timeout");
                        let rejection = Rejection {
                            status: 408,
                            reason: format!(
                                "the request head did not arrive within {} ms (edge.head_timeout_ms)",
                                edge.head_timeout.as_millis()
                            ),
                        };
                        refuse(&mut stream, &rejection).await;
                        return None;
                    }
                    Read::Closed => return None,
                }
            };
            // Signed URLs: judged here, from the head as sent (the canonical target has lost
            // the token); the full proxy answers a refusal.
            let access = (!st.config.signed_urls.is_empty()).then(|| match &req.url {
                Some(u) => {
                    crate::access::judge_head(&st.config, u.as_str(), &buf[..req.head_len], peer)
                }
                None => crate::access::Access::Open,
            });
            if let Some(a) = access
                .as_ref()
                .filter(|a| **a != crate::access::Access::Open)
            {
                st.metrics.signed(a.label());
            }
            let refused = matches!(access, Some(crate::access::Access::Refused(_)));
            // A cleartext connection under `[tls] redirect` is answered by the full proxy (308).
            if let (Some(fast), false, false) = (&self.fast, redirect, refused) {
                match fast
                    .serve(&req, peer, cap, &mut stream, &mut scratch, &mut socket)
                    .await
                {
                    Ok(Served::Hit) => {
                        buf.drain(..req.head_len);
                        deadline = None;
                        continue;
                    }
                    Ok(Served::Pass) => {}
                    Err(_) => return None,
                }
            }
            // Only this request's bytes go to the app, its target in canonical form; what follows
            // is the next request's.
            let query = redirect
                .then(|| crate::qoe::request_query(&buf[..req.head_len]).map(str::to_owned))
                .flatten();
            let end = request::request_end(&req, &buf).unwrap_or(buf.len());
            let conn = match request::canonical_head(&req, &buf) {
                Some(mut head) => {
                    head.extend_from_slice(&buf[req.head_len..end]);
                    put_back(stream, &head)?
                }
                None => put_back(stream, &buf[..end])?,
            };
            buf.drain(..end);
            let mut session = ServerSession::new_http1(Box::new(
                KeepDate::new(conn)
                    .with_telemetry(req.telemetry, cap)
                    .with_query(query)
                    .with_access(access),
            ));
            match settings.take() {
                Some(s) => s.apply_to_session(&mut session),
                None if *shutdown.borrow() => session.set_keepalive(None),
                None => session.set_keepalive(Some(edge.keepalive_timeout.as_secs().max(1))),
            }
            let (s, next) = self.h1.process_new_http(session, shutdown).await?.consume();
            stream = s.into_any().downcast::<KeepDate>().ok()?.into_inner();
            settings = next;
            deadline = None;
            if *shutdown.borrow() {
                return None;
            }
        }
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for H2cGate<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let accepted = Instant::now();
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let _permit = match self.state.conns.admit(peer) {
            Ok(p) => p,
            Err(refused) => {
                self.state.metrics.closed(match refused {
                    Refused::Total => "max_connections",
                    Refused::Client => "max_client_connections",
                });
                return None;
            }
        };
        // Only a plain TCP stream can take bytes back; anything else keeps pingora's detection.
        if !stream.as_any().is::<L4Stream>() {
            return self.h2.process_new(stream, shutdown).await;
        }
        let deadline = accepted + self.state.config.edge.head_timeout;
        if let Some(tls) = &self.state.tls {
            let port = stream
                .get_socket_digest()
                .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).map(|a| a.port()));
            if port == Some(tls.config().listen.port()) {
                // The HTTPS port: the handshake and the first request head share the deadline.
                let l4 = stream.into_any().downcast::<L4Stream>().ok()?;
                let within = deadline.saturating_duration_since(Instant::now());
                let mut stop = shutdown.clone();
                let conn = tokio::select! {
                    c = tls.accept(*l4, within, &self.state.metrics) => c?,
                    _ = stop.wait_for(|s| *s) => return None,
                };
                if matches!(conn.alpn(), Some(ALPN::H2)) {
                    let conn = crate::batch::Batched::new(Box::new(conn));
                    return self.h2.process_new(Box::new(conn), shutdown).await;
                }
                return self
                    .http1(Box::new(conn), Vec::new(), deadline, shutdown)
                    .await;
            }
        }
        let mut stream = stream;
        let mut buf = Vec::with_capacity(FIRST_READ);
        let v = loop {
            match read_until(&mut stream, &mut buf, deadline, shutdown).await {
                Read::Data => {}
                Read::TimedOut => {
                    self.state.metrics.closed("head_timeout");
                    return None;
                }
                Read::Closed => return None,
            }
            match verdict(&buf) {
                Verdict::Undecided => continue,
                v => break v,
            }
        };
        if v == Verdict::H2 {
            let mut l4 = stream.into_any().downcast::<L4Stream>().ok()?;
            l4.rewind(&buf);
            let conn = crate::batch::Batched::new(l4);
            return self.h2.process_new(Box::new(conn), shutdown).await;
        }
        self.http1(stream, buf, deadline, shutdown).await
    }

    async fn cleanup(&self) {
        self.h1.cleanup().await;
        self.h2.cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_tells_http1_and_the_whole_preface_http2() {
        assert_eq!(verdict(b"G"), Verdict::H1);
        assert_eq!(verdict(b"GARBAGE\r\n\r\n"), Verdict::H1);
        assert_eq!(verdict(b"P"), Verdict::Undecided);
        assert_eq!(verdict(b"PRI * HTTP/2.0\r\n"), Verdict::Undecided);
        assert_eq!(verdict(b"POST / HTTP/1.1"), Verdict::H1);
        assert_eq!(verdict(PREFACE), Verdict::H2);
        assert_eq!(verdict(b""), Verdict::Undecided);
    }
}
