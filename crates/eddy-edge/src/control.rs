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
}
