//! What an edge accepts of a request, judged once for both the hit fast path and the full proxy.
//!
//! Every HTTP/1 request head is parsed here strictly (`httparse` with its default, strict
//! settings: one space between the parts of the request line, no obsolete line folding, tokens
//! for method and field names) before either path sees it, so the two can never disagree about
//! what is acceptable. pingora is lenient where a cache must not be: it percent-encodes what it
//! cannot parse in a request line (`GET  /x` reaches the origin as `%20/x`), forwards
//! `Content-Length: 3, 3` as it came, and forwards a request without `Host`.
//!
//! [`judge`] answers with a [`Request`] (the canonical URL from [`eddy_url`], how the body is
//! framed, whether the connection persists, whether the fast path may answer it) or a
//! [`Rejection`] with its status:
//!
//! - 400: a malformed request line or field; a target that is not origin-form, absolute-form (its
//!   authority must agree with `Host`, RFC 9112 §3.2.2) or `*` for `OPTIONS` (§3.2.4); a missing,
//!   repeated or invalid `Host` (§3.2: an edge serves by `Host`, so an HTTP/1.0 request without
//!   one is refused too); a path with a malformed `%`, a control character or a fragment;
//!   `Content-Length` values that differ or are not numbers (RFC 9110 §8.6); both
//!   `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.1, smuggling); `Transfer-Encoding` on
//!   HTTP/1.0 or not ending in `chunked`.
//! - 431: a head larger than `edge.max_header_bytes`, or more than [`MAX_FIELDS`] fields.
//!
//! [`judge_parts`] applies the same rules to a request pingora already parsed (HTTP/2, or any
//! request that reached the proxy another way), minus what only raw bytes show.

use eddy_url::{Canonical, PathOptions, Target, UrlError};
use pingora_http::RequestHeader;

/// Most header fields a request may carry (pingora's own limit).
pub const MAX_FIELDS: usize = 256;

/// Why a request is refused, and with which status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 400 or 431.
    pub status: u16,
    /// What was wrong, for the response body and the log.
    pub reason: String,
}

impl Rejection {
    fn bad(reason: impl Into<String>) -> Rejection {
        Rejection {
            status: 400,
            reason: reason.into(),
        }
    }

    /// The response head and JSON body for this rejection, closing the connection.
    pub fn response(&self) -> Vec<u8> {
        let body = serde_json::json!({ "error": self.reason }).to_string() + "\n";
        let status = match self.status {
            431 => "431 Request Header Fields Too Large",
            408 => "408 Request Timeout",
            _ => "400 Bad Request",
        };
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

impl From<UrlError> for Rejection {
    fn from(e: UrlError) -> Rejection {
        Rejection::bad(e.to_string())
    }
}

/// How a request's body is framed (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The rest of the connection (an `Upgrade` or `CONNECT`): not framed here.
    Unframed,
}

/// An accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Bytes of the head.
    pub head_len: usize,
    /// `GET`, `HEAD` or another method.
    pub method: Method,
    /// HTTP/1.1 (true) or HTTP/1.0.
    pub http11: bool,
    /// The canonical URL (`None` for `OPTIONS *`).
    pub url: Option<Canonical>,
    /// How the body is framed.
    pub body: Body,
    /// No field that changes what a cache must do (`Range`, conditionals, `Authorization`,
    /// request `Cache-Control` / `Pragma`, `Expect`, `Upgrade`, a `Connection` other than
    /// `keep-alive`): the fast path may answer it.
    pub plain: bool,
    /// `Content-Length` came as a list of one repeated value (`3, 3`): forward it as one.
    pub length_list: bool,
    /// It carries player telemetry: a `CMCD=` query parameter or a `CMCD-*` field
    /// (`crate::qoe` reads it; the cache key never has it).
    pub telemetry: bool,
    /// Of it, a `CMCD-*` field: the fields must be read too, not only the target.
    pub cmcd_fields: bool,
}

/// The methods the edge tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `OPTIONS`.
    Options,
    /// `CONNECT`.
    Connect,
    /// Anything else.
    Other,
}

impl Method {
    fn of(m: &str) -> Method {
        match m {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            "CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }
}

/// Where the head at the start of a buffer stands.
#[derive(Debug)]
pub enum Head {
    /// Not complete yet: read more (within the limits).
    Partial,
    /// Complete and accepted.
    Complete(Request),
    /// Refused: answer and close.
    Rejected(Rejection),
}

fn too_large(limit: usize) -> Rejection {
    Rejection {
        status: 431,
        reason: format!(
            "request header is larger than the limit of {limit} bytes (edge.max_header_bytes)"
        ),
    }
}

/// Judge the request head at the start of `buf`: parse it strictly, then apply the edge's rules.
/// `sites` gives a host's path options. A request on a cleartext connection (default port 80).
pub fn judge<'s>(
    buf: &[u8],
    max_header_bytes: usize,
    sites: impl FnOnce(&str) -> PathOptions<'s>,
) -> Head {
    judge_on(buf, max_header_bytes, eddy_url::HTTP_PORT, sites)
}

/// [`judge`] for a connection whose scheme's default port is `default_port` (443 on HTTPS): a
/// `Host` naming that port names the same site as one without it.
pub fn judge_on<'s>(
    buf: &[u8],
    max_header_bytes: usize,
    default_port: u16,
    sites: impl FnOnce(&str) -> PathOptions<'s>,
) -> Head {
    // Uninitialised slots: httparse writes the ones it uses, so a request pays for its own
    // fields, not for all MAX_FIELDS.
    let mut fields = [std::mem::MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_FIELDS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_header_bytes => {
            return Head::Rejected(too_large(max_header_bytes));
        }
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Head::Rejected(Rejection {
                status: 431,
                reason: format!("more than {MAX_FIELDS} header fields"),
            });
        }
        Err(e) => {
            return Head::Rejected(Rejection::bad(format!(
                "malformed request head ({e}): one request line `METHOD /path HTTP/1.1` with single spaces, then `Name: value` fields"
            )));
        }
    };
    if len > max_header_bytes {
        return Head::Rejected(too_large(max_header_bytes));
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Head::Rejected(Rejection::bad("incomplete request line"));
    };
    let fields = req.headers.iter().map(|f| (f.name.as_bytes(), f.value));
    match judge_parts(
        method,
        target.as_bytes(),
        version == 1,
        fields,
        default_port,
        sites,
    ) {
        Ok(mut r) => {
            r.head_len = len;
            Head::Complete(r)
        }
        Err(e) => Head::Rejected(e),
    }
}

/// What one pass over the header fields found.
#[derive(Default)]
struct Fields<'a> {
    host: Option<&'a [u8]>,
    hosts: usize,
    length: Option<u64>,
    lengths: usize,
    transfer_encoding: Option<&'a [u8]>,
    upgrade: bool,
    plain: bool,
    cmcd_fields: bool,
}

/// A list of `Content-Length` values (one field line, or the comma-separated values of several):
/// one number, however often repeated (RFC 9110 §8.6).
fn content_length(
    value: &[u8],
    seen: &mut Option<u64>,
    count: &mut usize,
) -> Result<(), Rejection> {
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        let n = (!part.is_empty() && part.len() <= 19 && part.iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(part).ok()?.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| {
                Rejection::bad(format!(
                    "Content-Length {:?} is not a number of bytes",
                    String::from_utf8_lossy(&value[..value.len().min(40)])
                ))
            })?;
        match *seen {
            Some(m) if m != n => {
                return Err(Rejection::bad(format!(
                    "Content-Length has different values ({m} and {n})"
                )));
            }
            _ => *seen = Some(n),
        }
        *count += 1;
    }
    Ok(())
}

/// Judge a request from its parts: method, raw target, HTTP/1.1 or not, its fields (name,
/// value), and the default port of the connection's scheme. The head length of the result is 0
/// (unknown here).
pub fn judge_parts<'a, 's>(
    method: &str,
    target: &[u8],
    http11: bool,
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    default_port: u16,
    sites: impl FnOnce(&str) -> PathOptions<'s>,
) -> Result<Request, Rejection> {
    let m = Method::of(method);
    let mut f = Fields {
        plain: true,
        ..Default::default()
    };
    for (name, value) in fields {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("host") {
            f.hosts += 1;
            f.host = Some(value);
        } else if is("content-length") {
            content_length(value, &mut f.length, &mut f.lengths)?;
            f.plain = false;
        } else if is("transfer-encoding") {
            // The last coding decides (several field lines are one list).
            f.transfer_encoding = Some(value);
            f.plain = false;
        } else if is("connection") {
            if !value
                .split(|&b| b == b',')
                .all(|t| t.trim_ascii().eq_ignore_ascii_case(b"keep-alive"))
            {
                f.plain = false;
            }
        } else if is("upgrade") {
            f.upgrade = true;
            f.plain = false;
        } else if is("range")
            || is("if-range")
            || is("if-match")
            || is("if-none-match")
            || is("if-modified-since")
            || is("if-unmodified-since")
            || is("authorization")
            || is("cache-control")
            || is("pragma")
            || is("expect")
        {
            f.plain = false;
        } else if name.len() > 5 && name[..5].eq_ignore_ascii_case(b"cmcd-") {
            f.cmcd_fields = true;
        }
    }
    if f.hosts > 1 {
        return Err(Rejection::bad(
            "more than one Host field (RFC 9112 §3.2): send exactly one",
        ));
    }
    let host = f.host.ok_or_else(|| {
        Rejection::bad(
            "no Host field: an edge serves by Host, so every request must name one (RFC 9112 §3.2)",
        )
    })?;
    let url = match eddy_url::target(target)? {
        Target::Origin(path) => Some(Canonical::new(host, path, default_port, sites)?),
        Target::Absolute {
            authority, path, ..
        } => {
            let from_target = eddy_url::host(authority, default_port)?;
            let from_host = eddy_url::host(host, default_port)?;
            if from_target != from_host {
                return Err(Rejection::bad(format!(
                    "the absolute-form target names {from_target} but Host says {from_host}: they must agree (RFC 9112 §3.2.2)"
                )));
            }
            // The target's authority wins (§3.2.2); it is the same host.
            Some(Canonical::new(authority, path, default_port, sites)?)
        }
        Target::Asterisk if m == Method::Options => {
            // Host must still be valid (§3.2), though `*` names no resource.
            eddy_url::host(host, default_port)?;
            None
        }
        Target::Asterisk => {
            return Err(Rejection::bad(
                "the target * is for OPTIONS only (RFC 9112 §3.2.4)",
            ));
        }
    };
    let body = match (f.transfer_encoding, f.length) {
        (Some(_), Some(_)) => {
            return Err(Rejection::bad(
                "both Content-Length and Transfer-Encoding (request smuggling, RFC 9112 §6.1)",
            ));
        }
        (Some(_), None) if !http11 => {
            return Err(Rejection::bad(
                "Transfer-Encoding on an HTTP/1.0 request (RFC 9112 §6.1)",
            ));
        }
        (Some(te), None) => {
            let last = te.rsplit(|&b| b == b',').next().unwrap_or(b"").trim_ascii();
            if !last.eq_ignore_ascii_case(b"chunked") {
                return Err(Rejection::bad(
                    "Transfer-Encoding must end in chunked (RFC 9112 §6.3)",
                ));
            }
            Body::Chunked
        }
        _ if f.upgrade || m == Method::Connect => Body::Unframed,
        (None, Some(0) | None) => Body::None,
        (None, Some(n)) => Body::Length(n),
    };
    Ok(Request {
        head_len: 0,
        method: m,
        http11,
        url,
        body,
        plain: f.plain,
        length_list: f.lengths > 1,
        cmcd_fields: f.cmcd_fields,
        telemetry: f.cmcd_fields
            || target
                .windows(6)
                .any(|w| matches!(w[0], b'?' | b'&') && &w[1..] == b"CMCD="),
    })
}

/// The head at the start of `buf` with its request target in canonical origin form, when it
/// was not already (`None`: it was, or the target is `*`). What goes on to pingora then has one
/// spelling, and no absolute-form authority for pingora to compare byte for byte with `Host`
/// (it would refuse `http://Example.test/` with `Host: example.test`, which the gate accepts:
/// the two would disagree).
pub fn canonical_head(req: &Request, buf: &[u8]) -> Option<Vec<u8>> {
    let url = req.url.as_ref()?;
    let head = buf.get(..req.head_len)?;
    let method = head.split(|&b| b == b' ').next()?;
    let after_method = head.get(method.len() + 1..)?;
    let target = after_method.split(|&b| b == b' ').next()?;
    if target == url.path().as_bytes() {
        return None;
    }
    let rest = after_method.get(target.len()..)?;
    let mut out = Vec::with_capacity(head.len() + url.path().len());
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(url.path().as_bytes());
    out.extend_from_slice(rest);
    Some(out)
}

/// Where the chunked body that starts at `buf[0]` ends (after its last chunk and trailer
/// section), if all of it is in `buf`.
pub fn chunked_end(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let (n, size) = match httparse::parse_chunk_size(&buf[at..]) {
            Ok(httparse::Status::Complete(c)) => c,
            _ => return None,
        };
        at += n;
        if size == 0 {
            // Trailer fields, then the blank line.
            loop {
                let rest = &buf[at..];
                let line = rest.iter().position(|&b| b == b'\n')?;
                at += line + 1;
                if rest[..line]
                    .strip_suffix(b"\r")
                    .unwrap_or(&rest[..line])
                    .is_empty()
                {
                    return Some(at);
                }
            }
        }
        let size = usize::try_from(size).ok()?;
        at = at.checked_add(size)?;
        match buf.get(at..at + 2) {
            Some(b"\r\n") => at += 2,
            Some([b'\n', _]) => at += 1,
            _ => return None,
        }
    }
}

/// How many bytes at the start of `buf` belong to `req` (head and as much of its body as is
/// there), so that only they go to the proxy and what follows stays for the next request.
/// `None`: the request's end is not known from what is buffered (a chunked body not all here, or
/// a connection taken over by `Upgrade` / `CONNECT`); give the proxy everything.
pub fn request_end(req: &Request, buf: &[u8]) -> Option<usize> {
    let head = req.head_len;
    match req.body {
        Body::None => Some(head),
        Body::Length(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            Some(head.saturating_add(n).min(buf.len()))
        }
        Body::Chunked => chunked_end(buf.get(head..)?).map(|e| head + e),
        Body::Unframed => None,
    }
}

/// Judge a request pingora parsed (HTTP/1 after the gate, HTTP/2, or anything else) by the
/// same rules as the gate ([`judge_parts`]), and give its canonical URL. An HTTP/2
/// request names its site in `:authority` (its URI's authority), which a `Host` field must
/// agree with when both are present.
pub fn judge_header(
    req: &RequestHeader,
    config: &eddy_config::Config,
    default_port: u16,
) -> Result<Request, Rejection> {
    let fields = req
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
    let authority = req.uri.authority().map(|a| a.as_str().as_bytes());
    let implied_host = authority.filter(|_| !req.headers.contains_key(http::header::HOST));
    let fields = fields.chain(implied_host.map(|a| (&b"host"[..], a)));
    let http11 = req.version != http::Version::HTTP_10 && req.version != http::Version::HTTP_09;
    let target = match (authority, req.uri.path_and_query()) {
        (Some(_), _) => req.uri.to_string(),
        (None, Some(pq)) => pq.as_str().to_string(),
        (None, None) => "/".to_string(),
    };
    judge_parts(
        req.method.as_str(),
        target.as_bytes(),
        http11,
        fields,
        default_port,
        |h| config.path_options(h),
    )
}

/// Checks pingora's parser is lenient about (it repairs them) but a CDN must refuse: both
/// `Content-Length` and `Transfer-Encoding` (request smuggling, RFC 9112 §6.1), and control
/// characters in the request target, raw or percent-encoded.
pub fn framing_violation(raw: &[u8]) -> Option<&'static str> {
    let mut lines = raw.split(|b| *b == b'\n');
    let request_line = lines.next()?;
    let request_line = request_line.strip_suffix(b"\r").unwrap_or(request_line);
    if request_line.iter().any(|b| *b < 0x20 || *b == 0x7f) {
        return Some("control character in the request line");
    }
    // pingora percent-encodes raw control characters in the target before we see it (it
    // "repairs" the request, which RFC 9112 §3.2 advises against), so they arrive as %00-%1F or
    // %7F. A content URL never needs one: refuse them encoded too.
    if encoded_control(request_line) {
        return Some("control character (raw or percent-encoded) in the request target");
    }
    let (mut cl, mut te) = (false, false);
    for line in lines {
        let name = line.split(|b| *b == b':').next().unwrap_or(b"");
        if name.eq_ignore_ascii_case(b"content-length") {
            cl = true;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
        }
    }
    (cl && te).then_some("both Content-Length and Transfer-Encoding (request smuggling)")
}

/// A percent-encoded control character (`%00`-`%1F` or `%7F`) anywhere in `bytes`.
pub fn encoded_control(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| {
        w[0] == b'%'
            && std::str::from_utf8(&w[1..])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .is_some_and(|b| b < 0x20 || b == 0x7f)
    })
}

#[cfg(test)]
mod tests;
