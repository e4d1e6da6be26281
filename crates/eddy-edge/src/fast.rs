//! The hit fast path: fresh in-memory hits of plain HTTP/1.1 `GET` and `HEAD` requests,
//! answered on the connection before pingora's session machinery sees them.
//!
//! Why: on a hit, pingora's HTTP/1 session builds a request header map, a boxed per-request
//! future of about 10 KB, a `CacheMeta` and a response header map, and serialises the head
//! again, for every request. A CDN edge spends most of its time on exactly those hits. Here a hit
//! costs one parse of the request head (`httparse`, no allocation), one cache key hash, one
//! sharded lookup, and the stored head copied into a per-connection buffer.
//!
//! What qualifies, decided by [`eligible`] and then by the stored object:
//! - a request the gate accepted ([`crate::request::judge`]: strict parse, valid `Host`,
//!   canonical URL), HTTP/1.1 `GET` or `HEAD`, no body framing, and none of the fields that change
//!   what a cache must do: `Range`, conditionals (`If-*`), `Authorization`, request
//!   `Cache-Control` / `Pragma`, `Connection` other than `keep-alive`, `Upgrade`, `Expect`;
//! - a complete object in the memory tier, not soft-purged, fresh now, without `Vary`, with a
//!   `Content-Length` equal to its body, no in-flight fill of the same key.
//!
//! Anything else (and any doubt) goes to the full proxy with the bytes put back, which answers
//! it exactly as before: misses, revalidation, ranges, conditionals, stale, errors, h2c, `PURGE`.
//! A fast hit answers what the full proxy's hit answers — the stored head, `Age` (RFC 9111 §4),
//! `X-Cache: HIT` and `Cache-Status` (RFC 9211) — and counts in the same metrics, spike detector
//! and cache counters. `edge.fast_hits = false` turns it off.

use crate::metrics::Outcome;
use crate::proxy::EdgeState;
use crate::request::{Body, Head, Method, Request};
use crate::storage::{HeadView, micros, primary_of};
use bytes::Buf;
use pingora_core::protocols::Stream;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncWriteExt, Interest};

/// Bodies up to this size are copied behind the head and sent in one write; larger ones are
/// sent from the cached buffer with a vectored write.
const COPY_BODY: usize = 16 * 1024;

/// Whether the fast path may answer an accepted request: HTTP/1.1 `GET` or `HEAD` without a body
/// and without any field a cache must judge. Returns its cache key URL and whether it is `HEAD`.
pub fn eligible(req: &Request) -> Option<(&str, bool)> {
    let head = match req.method {
        Method::Get => false,
        Method::Head => true,
        _ => return None,
    };
    if !req.http11 || !req.plain || req.body != Body::None {
        return None;
    }
    Some((req.url.as_ref()?.as_str(), head))
}

/// The fast path's view of the request at the start of `buf`: its key URL and whether it is
/// `HEAD`, or `None` when it is incomplete, refused, or not for the fast path.
pub fn plan(buf: &[u8], max_header_bytes: usize) -> Option<(String, bool)> {
    match crate::request::judge(buf, max_header_bytes, |_| Default::default()) {
        Head::Complete(r) => eligible(&r).map(|(u, h)| (u.to_string(), h)),
        _ => None,
    }
}

/// Response fields the fast path never serves from a stored head: hop-by-hop framing it cannot
/// vouch for (the object goes the full way), or fields it writes itself.
enum Stored {
    Refuse,
    Skip,
    Keep,
}

fn stored_field(name: &[u8]) -> Stored {
    match name {
        b"connection" | b"transfer-encoding" | b"keep-alive" | b"upgrade" => Stored::Refuse,
        b"age" | b"accept-ranges" | b"eddy-cdn-cache-control" | b"x-cache" | b"cache-status" => {
            Stored::Skip
        }
        n if n == crate::slice::TOTAL_HEADER.as_bytes() => Stored::Skip,
        _ => Stored::Keep,
    }
}

/// Write a stored (lower-case) field name as the full proxy writes it: `content-type` →
/// `Content-Type`.
fn title_case(name: &[u8], out: &mut Vec<u8>) {
    let mut up = true;
    for &b in name {
        out.push(if up { b.to_ascii_uppercase() } else { b });
        up = b == b'-';
    }
}

/// The fast path of one edge.
pub struct FastHits {
    state: Arc<EdgeState>,
}

/// What [`FastHits::serve`] did with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    /// Answered.
    Hit,
    /// Not for the fast path: hand the bytes to the full proxy.
    Pass,
}

impl FastHits {
    /// The fast path over an edge's state.
    pub fn new(state: Arc<EdgeState>) -> Self {
        FastHits { state }
    }

    /// Answer an accepted request from the memory tier if it qualifies, writing to `out`.
    /// `scratch` is the connection's reusable head buffer; `peer` the client's address; `cap`
    /// the quality guard's cap for the request, as the gate judged it (`crate::guard`).
    pub async fn serve(
        &self,
        req: &Request,
        peer: Option<std::net::IpAddr>,
        cap: Option<u32>,
        out: &mut Stream,
        scratch: &mut Vec<u8>,
        socket: &mut Socket,
    ) -> std::io::Result<Served> {
        let start = Instant::now();
        let st = &self.state;
        let Some((url, head)) = eligible(req) else {
            return Ok(Served::Pass);
        };
        // Under a quality guard cap a multivariant playlist is rewritten, which the full proxy
        // does (crate::guard::Rewrite); any other answer carries the cap as `mb` here too.
        if req.telemetry
            && cap.is_some()
            && url.split('?').next().is_some_and(|p| p.ends_with(".m3u8"))
        {
            return Ok(Served::Pass);
        }
        let key = primary_of(url);
        if st.storage.filling(&key) {
            return Ok(Served::Pass);
        }
        let cache = st.storage.cache();
        let Some(found) = cache.peek_memory(&key) else {
            return Ok(Served::Pass);
        };
        if found.stale {
            return Ok(Served::Pass);
        }
        let Some(view) = HeadView::parse(&found.object.meta) else {
            return Ok(Served::Pass);
        };
        let now = micros(SystemTime::now());
        if view.fresh_until < now || view.has_variance {
            return Ok(Served::Pass);
        }
        let Some(reason) = http::StatusCode::from_u16(view.status)
            .ok()
            .filter(|s| !s.is_informational() && !matches!(s.as_u16(), 204 | 304))
            .and_then(|s| s.canonical_reason())
        else {
            return Ok(Served::Pass);
        };
        let body = &found.object.body;
        scratch.clear();
        scratch.extend_from_slice(b"HTTP/1.1 ");
        scratch.extend_from_slice(itoa::Buffer::new().format(view.status).as_bytes());
        scratch.push(b' ');
        scratch.extend_from_slice(reason.as_bytes());
        scratch.extend_from_slice(b"\r\n");
        let mut length_ok = false;
        // On HTTPS, `[tls] hsts` replaces whatever Strict-Transport-Security the origin sent.
        let hsts = st
            .config
            .tls
            .as_ref()
            .and_then(|t| t.hsts.as_deref())
            .filter(|_| out.get_ssl_digest().is_some());
        for (name, value) in view.headers() {
            match stored_field(name) {
                Stored::Refuse => return Ok(Served::Pass),
                Stored::Skip => continue,
                Stored::Keep => {}
            }
            if hsts.is_some() && name == b"strict-transport-security" {
                continue;
            }
            if name == b"content-length" {
                if length_ok || value != itoa::Buffer::new().format(body.len()).as_bytes() {
                    return Ok(Served::Pass);
                }
                length_ok = true;
            }
            title_case(name, scratch);
            scratch.extend_from_slice(b": ");
            scratch.extend_from_slice(value);
            scratch.extend_from_slice(b"\r\n");
        }
        if !length_ok {
            return Ok(Served::Pass);
        }
        // A client over its request limit goes the full way, which answers 429.
        if let (Some(limiter), Some(ip)) = (&st.client_limiter, peer)
            && limiter.check_key(&ip).is_err()
        {
            return Ok(Served::Pass);
        }
        cache.count_memory_hit(&key);
        // As the full proxy writes them: Age (RFC 9111 §4), Accept-Ranges on a 200 (pingora's
        // range filter), then X-Cache and Cache-Status (RFC 9211).
        let age = now.saturating_sub(view.age_from) / 1_000_000;
        let ttl = (view.fresh_until - now) / 1_000_000;
        scratch.extend_from_slice(b"Age: ");
        scratch.extend_from_slice(itoa::Buffer::new().format(age).as_bytes());
        if view.status == 200 {
            scratch.extend_from_slice(b"\r\nAccept-Ranges: bytes");
        }
        scratch.extend_from_slice(b"\r\nx-cache: HIT\r\ncache-status: Eddy; hit; ttl=");
        scratch.extend_from_slice(itoa::Buffer::new().format(ttl).as_bytes());
        scratch.extend_from_slice(b"\r\n");
        if let (true, Some(hop)) = (req.telemetry, &st.cmsd) {
            hop.write_line(cap, scratch);
        }
        if let Some(v) = hsts {
            scratch.extend_from_slice(b"Strict-Transport-Security: ");
            scratch.extend_from_slice(v.as_bytes());
            scratch.extend_from_slice(b"\r\n");
        }
        scratch.extend_from_slice(b"Connection: keep-alive\r\n\r\n");
        if let Some(w) = &st.spikes {
            w.observe(url, &st.metrics);
        }
        // Counted when the answer is committed, before its bytes can reach the client.
        st.metrics.fast_hits.inc();
        let sent = if head {
            out.write_all(scratch).await?;
            out.flush().await?;
            0
        } else if body.len() <= COPY_BODY {
            scratch.extend_from_slice(body);
            out.write_all(scratch).await?;
            out.flush().await?;
            body.len()
        } else if let (Some(sealed), Some(sock)) = (&found.object.sealed, socket.get(out)) {
            // The head with MSG_MORE, then the body by sendfile from the page cache: one copy
            // fewer, and head and body leave in full segments. The stream's own write buffer is
            // empty here: every answer before this one was flushed.
            st.metrics.fast_sendfile.inc();
            send_head(sock, scratch).await?;
            send_file(sock, sealed.file(), sealed.len()).await?;
            sealed.len()
        } else {
            out.write_all_buf(&mut scratch.as_slice().chain(body.as_ref()))
                .await?;
            out.flush().await?;
            body.len()
        };
        st.metrics
            .record(Outcome::Hit, start.elapsed().as_secs_f64(), sent as u64);
        tracing::debug!(
            method = if head { "HEAD" } else { "GET" },
            url,
            cache = "HIT",
            fast = true,
            "request"
        );
        Ok(Served::Hit)
    }
}

/// The viewer socket for `sendfile`: a duplicate of the connection's descriptor registered with
/// the runtime for write readiness, made on the connection's first sealed hit and closed with
/// the connection.
#[derive(Default)]
pub struct Socket {
    fd: Option<AsyncFd<OwnedFd>>,
    unavailable: bool,
}

impl Socket {
    fn get(&mut self, stream: &Stream) -> Option<&AsyncFd<OwnedFd>> {
        if self.fd.is_none() && !self.unavailable {
            self.fd = registered_dup(stream);
            self.unavailable = self.fd.is_none();
        }
        self.fd.as_ref()
    }
}

/// A second descriptor for a plain TCP connection's socket, registered with the runtime for
/// write readiness (`None` for anything else, or when the process is out of descriptors).
#[allow(unsafe_code)]
fn registered_dup(stream: &Stream) -> Option<AsyncFd<OwnedFd>> {
    let l4 = stream.as_any().downcast_ref::<L4Stream>()?;
    let raw = l4.as_raw_fd();
    // SAFETY: `raw` is the open socket of `l4`, which stays borrowed (and so open) for this whole
    // call; the borrow ends before the function returns.
    let fd = unsafe { BorrowedFd::borrow_raw(raw) }
        .try_clone_to_owned()
        .ok()?;
    // SAFETY: the `OwnedFd` is a valid open descriptor that the `AsyncFd` owns from here on; it
    // is closed only when the `AsyncFd` is dropped, and its `as_raw_fd` never changes.
    unsafe { AsyncFd::register_with_interest(fd, Interest::WRITABLE) }.ok()
}

/// Run a non-blocking socket call until it completes, waiting for write readiness in between.
async fn when_writable(
    sock: &AsyncFd<OwnedFd>,
    mut call: impl FnMut(&OwnedFd) -> std::io::Result<usize>,
) -> std::io::Result<usize> {
    loop {
        let mut ready = sock.writable().await?;
        match ready.try_io(|fd| call(fd.get_ref())) {
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

/// Send the response head with `MSG_MORE`, so it leaves with the first body bytes.
async fn send_head(sock: &AsyncFd<OwnedFd>, mut head: &[u8]) -> std::io::Result<()> {
    use rustix::net::SendFlags;
    while !head.is_empty() {
        let n = when_writable(sock, |fd| {
            Ok(rustix::net::send(
                fd,
                head,
                SendFlags::MORE | SendFlags::NOSIGNAL,
            )?)
        })
        .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        head = &head[n..];
    }
    Ok(())
}

/// Send `len` bytes of `file` from offset 0 with `sendfile(2)`.
async fn send_file(
    sock: &AsyncFd<OwnedFd>,
    file: &std::fs::File,
    len: usize,
) -> std::io::Result<()> {
    let mut offset: u64 = 0;
    while (offset as usize) < len {
        let left = len - offset as usize;
        let n = when_writable(sock, |fd| {
            Ok(rustix::fs::sendfile(fd, file, Some(&mut offset), left)?)
        })
        .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn url(req: &str) -> Option<String> {
        plan(req.as_bytes(), 65_536).map(|p| p.0)
    }

    #[test]
    fn plain_gets_and_heads_qualify_with_the_proxy_s_key() {
        assert_eq!(
            plan(
                b"GET /a/b?x=1 HTTP/1.1\r\nHost: Example.COM:80\r\n\r\nGET",
                65_536,
            ),
            Some(("example.com/a/b?x=1".into(), false))
        );
        assert_eq!(
            plan(b"HEAD / HTTP/1.1\r\nhost: h:8080\r\n\r\n", 65_536),
            Some(("h:8080/".into(), true))
        );
        assert!(url("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n").is_some());
        assert!(url("GET /%20x HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n").is_some());
        // Spellings of one path take the fast path under one key.
        assert_eq!(
            url("GET /a/../%62 HTTP/1.1\r\nHost: h\r\n\r\n").as_deref(),
            Some("h/b")
        );
        assert_eq!(
            url("GET /a\"b HTTP/1.1\r\nHost: h\r\n\r\n").as_deref(),
            Some("h/a%22b")
        );
        // Absolute form: the same key as origin form.
        assert_eq!(
            url("GET http://h/b HTTP/1.1\r\nHost: h\r\n\r\n").as_deref(),
            Some("h/b")
        );
    }

    #[test]
    fn names_are_title_cased() {
        let mut out = Vec::new();
        title_case(b"content-type", &mut out);
        title_case(b"x-a--b", &mut out);
        assert_eq!(out, b"Content-TypeX-A--B");
    }

    #[test]
    fn anything_a_cache_must_judge_goes_the_full_way() {
        for req in [
            "GET / HTTP/1.1\r\nHost: h\r\n",                         // incomplete
            "GET / HTTP/1.0\r\nHost: h\r\n\r\n",                     // HTTP/1.0
            "POST / HTTP/1.1\r\nHost: h\r\n\r\n",                    // unsafe method
            "PURGE / HTTP/1.1\r\nHost: h\r\n\r\n",                   // purge
            "GET / HTTP/1.1\r\n\r\n",                                // no host (refused)
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",          // two hosts (refused)
            "GET /a%00 HTTP/1.1\r\nHost: h\r\n\r\n",                 // encoded control (refused)
            "GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n\r\n", // range
            "GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"x\"\r\n\r\n", // conditional
            "GET / HTTP/1.1\r\nHost: h\r\nCache-Control: no-cache\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic eA==\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GARBAGE\r\n\r\n",
        ] {
            assert_eq!(url(req), None, "{req:?}");
        }
        // Over the header limit: refused with 431.
        assert_eq!(plan(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 10), None);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = plan(&bytes, 65_536);
        }

        #[test]
        fn any_plain_path_keys_like_the_proxy(path in "/[a-zA-Z0-9_~-]{1,10}(/[a-zA-Z0-9_~-]{1,10}){0,3}(\\?[a-z0-9=&]{0,20})?", host in "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){0,2}") {
            let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
            prop_assert_eq!(url(&req), Some(format!("{host}{path}")));
        }
    }
}
