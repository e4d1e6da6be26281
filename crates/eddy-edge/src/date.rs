//! The response's own `Date` on HTTP/1 answers of the full proxy.
//!
//! RFC 9110 §6.6.1: `Date` is when the origin generated the response, and a cache serving a
//! stored response sends it unchanged (its age travels in `Age`). pingora 0.9.1 stamps the
//! current time over every response's `Date` as it writes the head, with no way to turn that off
//! from the proxy. The hit fast path writes the stored head itself and keeps `Date`; without this
//! module the full proxy would answer the same hit with another `Date`.
//!
//! [`KeepDate`] wraps a viewer connection while pingora serves one request on it (the gate in
//! [`crate::h2c`] hands every HTTP/1 request over this way). The proxy's response filter tells it
//! the response's `Date` ([`keep`]); when pingora writes the head, the wrapper puts that value
//! back in place of the stamped one. Both are IMF-fixdates of 29 bytes (the proxy converts other
//! forms), so the head keeps its length and nothing else in it moves.
//!
//! The wrapper also carries what the gate alone knew of the request: whether it carried player
//! telemetry ([`telemetry`]) before its canonical target dropped the `CMCD` parameter, and the
//! quality guard's cap for it ([`cap`]).
//!
//! HTTP/2 heads are HPACK-encoded inside pingora and cannot be corrected this way: an HTTP/2
//! response carries pingora's `Date`.

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Length of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub const DATE_LEN: usize = 29;

/// A viewer connection that keeps the response's own `Date` in the head pingora writes.
#[derive(Debug)]
pub struct KeepDate {
    /// The connection: plain TCP or TLS ([`crate::tls::TlsConn`]).
    inner: Stream,
    /// The `Date` to put in the next response head.
    date: Mutex<Option<[u8; DATE_LEN]>>,
    /// A rewritten head accepted from pingora and not yet all passed on.
    pending: Vec<u8>,
    sent: usize,
    /// The gate saw player telemetry (CMCD) in the request as the client sent it, before the
    /// canonical target dropped the `CMCD` parameter.
    telemetry: bool,
    /// The quality guard's cap for the request (crate::guard), judged from its telemetry.
    cap: Option<u32>,
    /// The request's query as the client sent it (set only where the proxy needs it: a
    /// `[tls] redirect` keeps the query the canonical target dropped parts of).
    query: Option<String>,
    /// The gate's verdict on the request's signed-URL token (`crate::access`), when routes are
    /// configured.
    access: Option<crate::access::Access>,
}

impl KeepDate {
    /// Wrap a connection for one request.
    pub fn new(inner: Stream) -> KeepDate {
        KeepDate {
            inner,
            date: Mutex::new(None),
            pending: Vec::new(),
            sent: 0,
            telemetry: false,
            cap: None,
            query: None,
            access: None,
        }
    }

    /// Carry the gate's signed-URL verdict (see [`access`]).
    pub fn with_access(mut self, access: Option<crate::access::Access>) -> KeepDate {
        self.access = access;
        self
    }

    /// Keep the request's query as the client sent it (see [`raw_query`]).
    pub fn with_query(mut self, query: Option<String>) -> KeepDate {
        self.query = query;
        self
    }

    /// Mark the request as carrying player telemetry (see [`telemetry`]), and the quality
    /// guard's cap for it.
    pub fn with_telemetry(mut self, telemetry: bool, cap: Option<u32>) -> KeepDate {
        self.telemetry = telemetry;
        self.cap = cap;
        self
    }

    /// The connection, after the request.
    pub fn into_inner(self) -> Stream {
        self.inner
    }

    /// Pass on what is left of a rewritten head.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut *self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

/// Ask the connection under a pingora session, if it is a [`KeepDate`], to send `date` (an
/// HTTP-date in any of RFC 9110's forms) as the next response's `Date`. Returns whether it will.
pub fn keep(stream: Option<&Stream>, date: &str) -> bool {
    let Some(kd) = stream.and_then(|s| s.as_any().downcast_ref::<KeepDate>()) else {
        return false;
    };
    let Some(fixed) = imf_fixdate(date) else {
        return false;
    };
    *kd.date.lock() = Some(fixed);
    true
}

/// Whether the gate saw player telemetry in the request on `stream` (HTTP/1 only; `false` for
/// any other stream).
pub fn telemetry(stream: Option<&Stream>) -> bool {
    stream
        .and_then(|s| s.as_any().downcast_ref::<KeepDate>())
        .is_some_and(|kd| kd.telemetry)
}

/// The quality guard's cap the gate found for the request on `stream` (HTTP/1 only).
pub fn cap(stream: Option<&Stream>) -> Option<u32> {
    stream
        .and_then(|s| s.as_any().downcast_ref::<KeepDate>())
        .and_then(|kd| kd.cap)
}

/// The gate's signed-URL verdict on the request on `stream` (HTTP/1 only; `None` when the
/// gate did not judge it).
pub fn access(stream: Option<&Stream>) -> Option<crate::access::Access> {
    stream
        .and_then(|s| s.as_any().downcast_ref::<KeepDate>())
        .and_then(|kd| kd.access.clone())
}

/// The query the client sent with the request on `stream`, when the gate kept it (HTTP/1 only).
pub fn raw_query(stream: Option<&Stream>) -> Option<&str> {
    stream
        .and_then(|s| s.as_any().downcast_ref::<KeepDate>())
        .and_then(|kd| kd.query.as_deref())
}

/// An HTTP-date in IMF-fixdate form, from any form RFC 9110 §5.6.7 allows.
pub fn imf_fixdate(date: &str) -> Option<[u8; DATE_LEN]> {
    let t: SystemTime = httpdate::parse_http_date(date.trim()).ok()?;
    let text = httpdate::fmt_http_date(t);
    text.as_bytes().try_into().ok()
}

/// Where the value of the `Date` field of the response head at the start of `buf` is, when the
/// whole head is there and the value is an IMF-fixdate's length.
fn date_value(buf: &[u8]) -> Option<usize> {
    if !buf.starts_with(b"HTTP/1.") {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &buf[..end + 2];
    let mut at = 0;
    while let Some(i) = head[at..].windows(2).position(|w| w == b"\r\n") {
        let line_start = at + i + 2;
        let line = &head[line_start..];
        let line_end = line.windows(2).position(|w| w == b"\r\n")?;
        let line = &line[..line_end];
        if line.len() > 5 && line[..5].eq_ignore_ascii_case(b"date:") {
            let value = &line[5..];
            let lead = value.iter().take_while(|b| **b == b' ').count();
            if value.len() - lead == DATE_LEN {
                return Some(line_start + 5 + lead);
            }
            return None;
        }
        at = line_start;
    }
    None
}

impl AsyncRead for KeepDate {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KeepDate {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        ready!(this.drain(cx))?;
        let date = *this.date.get_mut();
        if let Some(date) = date
            && let Some(at) = date_value(buf)
        {
            *this.date.get_mut() = None;
            this.pending.extend_from_slice(buf);
            this.pending[at..at + DATE_LEN].copy_from_slice(&date);
            // Accepted whole; what the socket does not take now goes on the next write or flush.
            if let Poll::Ready(Err(e)) = this.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut *this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for KeepDate {
    async fn shutdown(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for KeepDate {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for KeepDate {
    fn get_ssl_digest(&self) -> Option<Arc<pingora_core::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<pingora_core::protocols::tls::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for KeepDate {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for KeepDate {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for KeepDate {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for KeepDate {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_date_value_in_a_whole_head_only() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\ndate: Mon, 01 Dec 2026 00:00:00 GMT\r\nConnection: keep-alive\r\n\r\nabc";
        let at = date_value(head).unwrap_or(0);
        assert_eq!(&head[at..at + DATE_LEN], b"Mon, 01 Dec 2026 00:00:00 GMT");
        assert_eq!(date_value(&head[..40]), None, "incomplete head");
        assert_eq!(date_value(b"abc\r\n\r\n"), None, "not a head");
        assert_eq!(
            date_value(b"HTTP/1.1 200 OK\r\nX: 1\r\n\r\nDate: Mon, 01 Dec 2026 00:00:00 GMT\r\n"),
            None,
            "a Date in the body is not the head's"
        );
    }

    #[test]
    fn every_date_form_becomes_an_imf_fixdate() {
        let want = b"Sun, 06 Nov 1994 08:49:37 GMT";
        for d in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(imf_fixdate(d).as_ref(), Some(want), "{d}");
        }
        assert_eq!(imf_fixdate("yesterday"), None);
    }
}
