//! A small HTTP/1.1 GET used by the edge itself: prefetching through its own proxy port and
//! probing origins (over TLS for `https://` ones). One connection per call, the body drained,
//! all within a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::http1::SendRequest;

/// TLS for a [`get`]: the client configuration (roots) and the name to verify and send as SNI.
pub type Tls<'a> = (&'a Arc<rustls::ClientConfig>, &'a str);

/// An HTTP/1.1 client connection on `io`, its connection task spawned.
async fn handshake<S>(io: S) -> Result<SendRequest<http_body_util::Empty<bytes::Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

/// `GET path` on `addr` (over TLS when `tls` is given) with `Host: host_header`; returns the
/// status and the body's length once the whole body has arrived (drained, never held). `head`,
/// if given, turns true the moment the answer's head arrived.
pub async fn get(
    addr: SocketAddr,
    tls: Option<Tls<'_>>,
    host_header: &str,
    path: &str,
    headers: &[(&'static str, &str)],
    deadline: Duration,
    head: Option<tokio::sync::watch::Sender<bool>>,
) -> Result<(http::StatusCode, u64), String> {
    let fetch = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let mut sender = match tls {
            None => handshake(stream).await?,
            Some((config, name)) => {
                let server = rustls::pki_types::ServerName::try_from(name.to_string())
                    .map_err(|e| format!("{name} is not a TLS server name: {e}"))?;
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(server, stream)
                    .await
                    .map_err(|e| format!("TLS with {name} ({addr}): {e}"))?;
                handshake(stream).await?
            }
        };
        let mut req = http::Request::get(path).header(http::header::HOST, host_header);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| format!("bad request for {path}: {e}"))?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if let Some(h) = &head {
            h.send_replace(true);
        }
        let mut body = resp.into_body();
        let mut len = 0u64;
        while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
            if let Some(data) = frame.map_err(|e| e.to_string())?.data_ref() {
                len += data.len() as u64;
            }
        }
        Ok((status, len))
    };
    match tokio::time::timeout(deadline, fetch).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {deadline:?}")),
    }
}
