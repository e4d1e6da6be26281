//! The edge's side of the control seam: [`EdgeControl`] over this edge's cache, and the purge
//! follower wiring (catch-up before serving, then follow).

use crate::proxy::{EdgeState, Purge};
use async_trait::async_trait;
use eddy_control::{ControlError, EdgeControl};
use eddy_events::PurgeTarget;
use std::sync::Arc;

/// [`EdgeControl`] for one edge.
pub struct EdgeHandle(pub Arc<EdgeState>);

impl Purge {
    /// The purge a (checked, canonical) target asks of this edge, with its sites' path options
    /// applied (a site that merges `//` purges the merged form, as its keys have it).
    pub fn of(t: &PurgeTarget, config: &eddy_config::Config) -> Purge {
        let site = |u: &str| {
            eddy_url::content_url(u, |h| config.path_options(h)).unwrap_or_else(|_| u.to_string())
        };
        match t {
            PurgeTarget::Url(u) => Purge::Url(site(u)),
            PurgeTarget::Prefix(p) => Purge::Prefix(site(p)),
            PurgeTarget::Key(k) => Purge::Key(k.clone()),
            PurgeTarget::All => Purge::All,
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
        let purge = Purge::of(target, &self.0.config);
        let id = self.0.config.edge.id.clone();
        let edge_err = move |detail: String| ControlError::Edge { edge: id, detail };
        match tokio::task::spawn_blocking(move || state.purge(&purge, soft)).await {
            Ok(Ok(n)) => Ok(n as u64),
            Ok(Err(e)) => Err(edge_err(e.to_string())),
            Err(e) => Err(edge_err(format!("purge task: {e}"))),
        }
    }

    async fn prefetch(&self, url: &str) -> Result<Option<u64>, ControlError> {
        let edge_err = |detail: String| ControlError::Edge {
            edge: self.0.config.edge.id.clone(),
            detail: format!("prefetch of {url}: {detail}"),
        };
        match crate::prefetch::self_get(&self.0, url, &[(crate::prefetch::HEADER, "1")]).await {
            Ok((status, len)) => Ok(status.is_success().then_some(len)),
            Err(e) => Err(edge_err(e)),
        }
    }

    fn holds(&self, url: &str) -> bool {
        let config = &self.0.config;
        eddy_url::content_url(url, |h| config.path_options(h)).is_ok_and(|u| {
            self.0
                .storage
                .cache()
                .contains(&crate::storage::primary_of(&u))
        })
    }

    fn region(&self) -> Option<&str> {
        self.0.config.edge.region.as_deref()
    }
}
