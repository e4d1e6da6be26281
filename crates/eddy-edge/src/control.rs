//! The edge's side of the control seam: [`EdgeControl`] over this edge's cache, and the purge
//! follower wiring (catch-up before serving, then follow).

use crate::proxy::{EdgeState, Purge};
use async_trait::async_trait;
use eddy_control::{ControlError, EdgeControl};
use eddy_events::PurgeTarget;
use std::sync::Arc;

/// [`EdgeControl`] for one edge.
pub struct EdgeHandle(pub Arc<EdgeState>);

impl From<&PurgeTarget> for Purge {
    fn from(t: &PurgeTarget) -> Purge {
        match t {
            PurgeTarget::Url(u) => Purge::Url(crate::proxy::normalise_url(u)),
            PurgeTarget::Prefix(p) => Purge::Prefix(eddy_control::content::normalise_prefix(p)),
            PurgeTarget::Key(k) => Purge::Key(k.clone()),
        }
    }
}

#[async_trait]
impl EdgeControl for EdgeHandle {
    fn edge_id(&self) -> &str {
        &self.0.config.edge.id
    }

    async fn purge(&self, target: &PurgeTarget, soft: bool) -> Result<u64, ControlError> {
        let state = self.0.clone();
        let purge = Purge::from(target);
        let id = self.0.config.edge.id.clone();
        let edge_err = move |detail: String| ControlError::Edge { edge: id, detail };
        match tokio::task::spawn_blocking(move || state.purge(&purge, soft)).await {
            Ok(Ok(n)) => Ok(n as u64),
            Ok(Err(e)) => Err(edge_err(e.to_string())),
            Err(e) => Err(edge_err(format!("purge task: {e}"))),
        }
    }

    async fn prefetch(&self, url: &str) -> Result<bool, ControlError> {
        let edge_err = |detail: String| ControlError::Edge {
            edge: self.0.config.edge.id.clone(),
            detail: format!("prefetch of {url}: {detail}"),
        };
        let (host, path) = match url.find('/') {
            Some(i) => (&url[..i], &url[i..]),
            None => (url, "/"),
        };
        // Through this edge's own proxy port, so the object is cached by the normal rules.
        let mut addr = self.0.config.edge.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let fetch = async {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect to {addr}: {e}"))?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let req = http::Request::get(path)
                .header(http::header::HOST, host)
                .header("eddy-prefetch", "1")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .map_err(|e| format!("bad URL: {e}"))?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let ok = resp.status().is_success();
            // Read the whole body: the edge stores the object as it streams.
            http_body_util::BodyExt::collect(resp.into_body())
                .await
                .map_err(|e| e.to_string())?;
            Ok::<bool, String>(ok)
        };
        match tokio::time::timeout(PREFETCH_TIMEOUT, fetch).await {
            Ok(Ok(ok)) => Ok(ok),
            Ok(Err(e)) => Err(edge_err(e)),
            Err(_) => Err(edge_err(format!("no answer within {PREFETCH_TIMEOUT:?}"))),
        }
    }
}

/// Longest a prefetch may take before it is abandoned.
const PREFETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
