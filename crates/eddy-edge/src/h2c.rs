//! HTTP/1.1 and h2c (HTTP/2 with prior knowledge) on one port, told apart without waiting for
//! bytes that may never come.
//!
//! pingora 0.9.1's own h2c detection reads exactly 24 bytes (the length of the HTTP/2 preface)
//! before deciding, with no deadline. An HTTP/1 request shorter than that (`GET / HTTP/1.0` plus
//! the blank line is 18 bytes), or garbage such as `GARBAGE\r\n\r\n`, then hangs the connection
//! forever: a client gets no answer and a slowloris gets a free socket. [`H2cGate`] reads only
//! until the bytes stop matching the preface (one byte, for any HTTP/1 method), puts them back,
//! and hands the connection to one of two otherwise identical pingora apps: one with h2c off
//! (HTTP/1, whose parser answers malformed requests with 400) or one with h2c on. A connection
//! that has sent neither a mismatch nor the whole preface within [`FIRST_BYTES`] is closed.
//!
//! An HTTP/1 connection then stays here for its keep-alive requests: each request is offered to
//! the hit fast path ([`crate::fast`]) first, and what it declines goes to the HTTP/1 app as a
//! one-request session with its bytes put back; the connection returns here after it.

use crate::fast::{FastHits, Served};
use async_trait::async_trait;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora_core::protocols::Stream;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a new connection may take to show whether it speaks HTTP/1 or HTTP/2.
pub const FIRST_BYTES: Duration = Duration::from_secs(60);

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

/// Idle keep-alive time of an HTTP/1 connection handed to the app, in seconds (pingora's).
const KEEPALIVE_SECS: u64 = 60;

/// Bytes read at once from a viewer connection: a request head of this size or less is judged in
/// one read.
const READ_CHUNK: usize = 8 * 1024;

/// Sends each connection to the HTTP/1 or the HTTP/2 app by its first bytes; HTTP/1 requests go
/// to the hit fast path first, when there is one.
pub struct H2cGate<A> {
    /// The app with h2c off.
    pub h1: Arc<A>,
    /// The app with h2c on.
    pub h2: Arc<A>,
    /// The hit fast path for HTTP/1 requests (see [`crate::fast`]), unless turned off.
    pub fast: Option<Arc<FastHits>>,
}

/// Read more bytes into `buf`, waiting at most `limit` and not past shutdown. `None` when the
/// peer closed, failed, was too slow, or the server is stopping.
async fn read_more(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    limit: Duration,
    shutdown: &ShutdownWatch,
) -> Option<usize> {
    buf.reserve(READ_CHUNK);
    let mut stop = shutdown.clone();
    tokio::select! {
        r = tokio::time::timeout(limit, stream.read_buf(buf)) => match r {
            Ok(Ok(n)) if n > 0 => Some(n),
            _ => None,
        },
        _ = stop.wait_for(|s| *s) => None,
    }
}

impl<A: HttpServerApp + Send + Sync + 'static> H2cGate<A> {
    /// Serve an HTTP/1 connection whose first bytes are in `buf`, one request at a time: each
    /// goes to the fast path first, and what it declines to the HTTP/1 app as a one-request
    /// session with its bytes put back. The connection comes back here after every request the
    /// app answers with keep-alive (pingora's own loop would keep it to the end).
    async fn http1(
        &self,
        mut stream: Stream,
        mut buf: Vec<u8>,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let mut scratch = Vec::with_capacity(1024);
        let mut socket = crate::fast::Socket::default();
        let mut settings: Option<HttpPersistentSettings> = None;
        loop {
            if buf.is_empty() {
                // Between keep-alive requests.
                read_more(&mut stream, &mut buf, FIRST_BYTES, shutdown).await?;
            }
            if let Some(fast) = &self.fast {
                match fast
                    .serve(&buf, peer, &mut stream, &mut scratch, &mut socket)
                    .await
                {
                    Ok(Served::Hit(n)) => {
                        buf.drain(..n);
                        continue;
                    }
                    Ok(Served::Pass) => {}
                    Err(_) => return None,
                }
            }
            let mut l4 = stream.into_any().downcast::<L4Stream>().ok()?;
            l4.rewind(&buf);
            buf.clear();
            let mut session = ServerSession::new_http1(l4);
            match settings.take() {
                Some(s) => s.apply_to_session(&mut session),
                // As pingora sets up a new HTTP/1 connection.
                None if *shutdown.borrow() => session.set_keepalive(None),
                None => session.set_keepalive(Some(KEEPALIVE_SECS)),
            }
            let (s, next) = self.h1.process_new_http(session, shutdown).await?.consume();
            stream = s;
            settings = next;
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
        // Only a plain TCP stream can take bytes back; anything else keeps pingora's detection.
        if !stream.as_any().is::<L4Stream>() {
            return self.h2.process_new(stream, shutdown).await;
        }
        let mut stream = stream;
        let mut buf = Vec::with_capacity(READ_CHUNK);
        let v = tokio::time::timeout(FIRST_BYTES, async {
            loop {
                read_more(&mut stream, &mut buf, FIRST_BYTES, shutdown).await?;
                match verdict(&buf) {
                    Verdict::Undecided => continue,
                    v => return Some(v),
                }
            }
        })
        .await
        .ok()
        .flatten()?;
        if v == Verdict::H2 {
            let mut l4 = stream.into_any().downcast::<L4Stream>().ok()?;
            l4.rewind(&buf);
            return self.h2.process_new(l4, shutdown).await;
        }
        self.http1(stream, buf, shutdown).await
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
