//! Write batching for HTTP/2 connections: one `send` for the responses of many streams.
//!
//! The `h2` crate flushes its connection between frames whenever a DATA frame's payload is
//! chained rather than copied (any payload of 256 bytes or more): a flush per response. On
//! loopback, profiled under h2load with 10 streams per connection, those flushes were 41 % of
//! the edge's CPU (`sendto` and the TLS record each one closes), with about 1.5 sends per
//! 1 KiB response.
//!
//! [`Batcher`] sits between the connection and its socket. Writes are copied into its buffer
//! (at most [`LIMIT`] bytes, then it drains first). The first flush of a batch does not reach
//! the socket: it wakes the connection's task and returns, so the streams that are ready run
//! and queue their frames. When the connection is polled again it reads first (`h2` reads until
//! the socket has nothing, then writes), and the flush after that read sends the whole batch.
//! So every batch is sent in the task's next turn, after the tasks that were already waiting:
//! never later, and never waiting on a timer or on more input. Shutting down sends what is
//! left first.
//!
//! [`Batched`] is a viewer connection with a [`Batcher`]: the gate hands pingora's HTTP/2
//! server one, over TLS (ALPN `h2`) and cleartext (h2c) alike. HTTP/1 connections are never
//! batched: their fast path writes whole answers already.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{ALPN, SslDigest};
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes held before a write drains the batch to the socket first.
pub const LIMIT: usize = 64 * 1024;

/// Capacity kept between batches; a larger buffer is given back after it is sent.
const KEEP: usize = 16 * 1024;

/// Batching state of one connection; see the module doc.
#[derive(Debug, Default)]
pub struct Batcher {
    buf: Vec<u8>,
    /// Sent so far of `buf`.
    at: usize,
    /// A flush was answered without sending; the task was woken to send it.
    deferred: bool,
    /// A read happened since the deferral: this is the task's next turn.
    turned: bool,
}

impl Batcher {
    /// The connection read (or tried to): a deferred batch may go with the next flush.
    pub fn saw_read(&mut self) {
        if self.deferred {
            self.turned = true;
        }
    }

    /// Take `data` into the batch (draining a full batch to `io` first).
    pub fn poll_write<W: AsyncWrite + ?Sized>(
        &mut self,
        mut io: Pin<&mut W>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.buf.len() - self.at + data.len() > LIMIT && self.buf.len() > self.at {
            std::task::ready!(self.drain(io.as_mut(), cx))?;
        }
        let n = data.len().min(LIMIT.max(1));
        self.buf.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    /// Flush: the first flush of a batch defers (see the module doc); the first after the
    /// task's next read sends everything and flushes `io`.
    pub fn poll_flush<W: AsyncWrite + ?Sized>(
        &mut self,
        mut io: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.buf.len() && !self.turned {
            self.deferred = true;
            // Woken every time, so a turn that does not read still comes back here.
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(self.drain(io.as_mut(), cx))?;
        io.poll_flush(cx)
    }

    /// Send what is left, then shut `io` down.
    pub fn poll_shutdown<W: AsyncWrite + ?Sized>(
        &mut self,
        mut io: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(io.as_mut(), cx))?;
        io.poll_shutdown(cx)
    }

    /// Write the whole batch to `io` (not flushing it).
    fn drain<W: AsyncWrite + ?Sized>(
        &mut self,
        mut io: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.at < self.buf.len() {
            let n = std::task::ready!(io.as_mut().poll_write(cx, &self.buf[self.at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.at += n;
        }
        self.buf.clear();
        if self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        }
        self.at = 0;
        self.deferred = false;
        self.turned = false;
        Poll::Ready(Ok(()))
    }
}

/// A connection whose writes are batched; everything else is the inner connection's.
#[derive(Debug)]
pub struct Batched {
    inner: Stream,
    batch: Batcher,
}

impl Batched {
    /// Batch the writes of `inner`.
    pub fn new(inner: Stream) -> Batched {
        Batched {
            inner,
            batch: Batcher::default(),
        }
    }
}

impl AsyncRead for Batched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.batch.saw_read();
        Pin::new(&mut *self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Batched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.batch.poll_write(Pin::new(&mut *this.inner), cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // Into the batch, slice by slice, until one is taken only in part.
        let mut total = 0;
        for s in bufs {
            match this.batch.poll_write(Pin::new(&mut *this.inner), cx, s) {
                Poll::Ready(Ok(n)) => {
                    total += n;
                    if n < s.len() {
                        break;
                    }
                }
                Poll::Ready(Err(e)) if total == 0 => return Poll::Ready(Err(e)),
                Poll::Pending if total == 0 => return Poll::Pending,
                _ => break,
            }
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.batch.poll_flush(Pin::new(&mut *this.inner), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.batch.poll_shutdown(Pin::new(&mut *this.inner), cx)
    }
}

#[async_trait]
impl Shutdown for Batched {
    async fn shutdown(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for Batched {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Batched {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Batched {
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

impl GetProxyDigest for Batched {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Batched {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Batched {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// Counts writes and flushes; takes at most `max` bytes per write.
    #[derive(Default)]
    struct Sink {
        got: Vec<u8>,
        writes: usize,
        flushes: usize,
        max: usize,
    }

    impl AsyncWrite for Sink {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = b
                .len()
                .min(if self.max == 0 { usize::MAX } else { self.max });
            self.got.extend_from_slice(&b[..n]);
            self.writes += 1;
            Poll::Ready(Ok(n))
        }
        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn frames_of_one_turn_and_the_next_go_out_in_one_write_after_a_read() {
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut sink = Sink::default();
        let mut b = Batcher::default();
        // Turn 1: two responses, each written then flushed (as h2 does between chained frames).
        for part in [&b"response one"[..], b"response two"] {
            assert!(matches!(
                b.poll_write(Pin::new(&mut sink), &mut cx, part),
                Poll::Ready(Ok(12))
            ));
            assert!(matches!(
                b.poll_flush(Pin::new(&mut sink), &mut cx),
                Poll::Ready(Ok(()))
            ));
        }
        assert_eq!(sink.writes, 0, "nothing sent within the turn");
        assert!(wakes.0.load(Ordering::Relaxed) >= 1, "the task was woken");
        // Turn 2: the connection reads first, queues one more, flushes: one write of all three.
        b.saw_read();
        let _ = b.poll_write(Pin::new(&mut sink), &mut cx, b"response 3");
        assert!(matches!(
            b.poll_flush(Pin::new(&mut sink), &mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(sink.writes, 1);
        assert_eq!(sink.flushes, 1);
        assert_eq!(sink.got, b"response oneresponse tworesponse 3");
        // Empty: a flush goes straight through.
        assert!(matches!(
            b.poll_flush(Pin::new(&mut sink), &mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!((sink.writes, sink.flushes), (1, 2));
    }

    #[test]
    fn a_full_batch_drains_before_taking_more_and_shutdown_sends_the_rest() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut sink = Sink {
            max: 10_000,
            ..Default::default()
        };
        let mut b = Batcher::default();
        let big = vec![7u8; LIMIT - 10];
        let _ = b.poll_write(Pin::new(&mut sink), &mut cx, &big);
        assert_eq!(sink.writes, 0);
        let _ = b.poll_write(Pin::new(&mut sink), &mut cx, &[8u8; 100]);
        assert_eq!(sink.got.len(), LIMIT - 10, "the full batch went first");
        assert!(matches!(
            b.poll_shutdown(Pin::new(&mut sink), &mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(sink.got.len(), LIMIT + 90);
    }
}
