//! A small HTTP/1.1 GET used by the edge itself: prefetching through its own proxy port and
//! probing origins. One connection per call, the body drained, all within a deadline.

use std::time::Duration;

/// `GET path` on `host:port` with `Host: host_header`; returns the status once the whole body
/// has arrived.
pub async fn get(
    host: &str,
    port: u16,
    host_header: &str,
    path: &str,
    headers: &[(&'static str, &str)],
    deadline: Duration,
) -> Result<http::StatusCode, String> {
    let fetch = async {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = http::Request::get(path).header(http::header::HOST, host_header);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| format!("bad request for {path}: {e}"))?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map_err(|e| e.to_string())?;
        Ok(status)
    };
    match tokio::time::timeout(deadline, fetch).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {deadline:?}")),
    }
}
