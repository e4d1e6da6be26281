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
//! An HTTP/1 connection then stays with the HTTP/1 app for its keep-alive requests, so later
//! requests on it are not inspected again.

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::Stream;
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

/// Sends each connection to the HTTP/1 or the HTTP/2 app by its first bytes.
pub struct H2cGate<A> {
    /// The app with h2c off.
    pub h1: Arc<A>,
    /// The app with h2c on.
    pub h2: Arc<A>,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for H2cGate<A> {
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
        let mut first = [0u8; PREFACE.len()];
        let mut n = 0;
        let mut stop = shutdown.clone();
        let judged = async {
            loop {
                match stream.read(&mut first[n..]).await {
                    Ok(0) | Err(_) => return None,
                    Ok(k) => n += k,
                }
                match verdict(&first[..n]) {
                    Verdict::Undecided => continue,
                    v => return Some(v),
                }
            }
        };
        let v = tokio::select! {
            v = tokio::time::timeout(FIRST_BYTES, judged) => v.ok().flatten()?,
            _ = stop.wait_for(|s| *s) => return None,
        };
        let mut l4 = stream.into_any().downcast::<L4Stream>().ok()?;
        l4.rewind(&first[..n]);
        let mut stream: Stream = l4;
        if v == Verdict::H2 {
            return self.h2.process_new(stream, shutdown).await;
        }
        // HTTP/1: keep-alive requests of this connection stay here.
        loop {
            stream = self.h1.process_new(stream, shutdown).await?;
            if *shutdown.borrow() {
                return None;
            }
        }
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
