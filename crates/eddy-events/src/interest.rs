//! What viewers are interested in, and what the fleet should fetch before they ask:
//! `dev.eddy.interaction.v1` (a viewer played, finished, liked or skipped an item) and
//! `dev.eddy.prewarm.v1` (objects likely to get hot; edges fetch them ahead of demand).
//!
//! Both come from outside or end in origin fetches, so both are checked when they are decoded
//! (serde `try_from`): an event that fails is undecodable, counted and dropped by whoever reads
//! it, never half-applied. Identifiers are bounded and free of control characters; URLs are in
//! the canonical form cache keys have ([`eddy_url::content_url`]); regions are short lower-case
//! tokens; a hint names at most [`MAX_PREWARM_URLS`] objects.

use serde::{Deserialize, Serialize};

/// Longest viewer id, in bytes.
pub const MAX_VIEWER_BYTES: usize = 128;
/// Longest item id, in bytes.
pub const MAX_ITEM_BYTES: usize = 256;
/// Longest region, in bytes.
pub const MAX_REGION_BYTES: usize = 32;
/// Most objects one pre-warm hint names.
pub const MAX_PREWARM_URLS: usize = 64;

/// What a viewer did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Started playing.
    Play,
    /// Played to the end.
    Complete,
    /// Liked.
    Like,
    /// Skipped (a negative signal).
    Skip,
}

impl Action {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Play => "play",
            Action::Complete => "complete",
            Action::Like => "like",
            Action::Skip => "skip",
        }
    }
}

/// `dev.eddy.interaction.v1`: a viewer's interaction with an item, posted by a player or a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawInteraction")]
pub struct Interaction {
    /// The viewer (an opaque id: a hashed account or device id, never a name).
    pub viewer: String,
    /// The item (a title, an episode, an article).
    pub item: String,
    /// What the viewer did.
    pub action: Action,
    /// The viewer's region (`eu-west`), for trending per region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The item's entry object (`host/path`, canonical): what a pre-warm of the item fetches,
    /// such as its master playlist or first segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInteraction {
    #[serde(alias = "user")]
    viewer: String,
    item: String,
    action: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// Why an interaction or a pre-warm hint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterestError {
    /// An id that is empty, too long, or has control characters.
    #[error("{field} must be 1-{max} bytes without control characters (got {shown:?})")]
    Id {
        /// Which field.
        field: &'static str,
        /// Its limit.
        max: usize,
        /// The start of what came.
        shown: String,
    },
    /// An action outside the four.
    #[error("action must be play, complete, like or skip (got {0:?})")]
    Action(String),
    /// A region that is not a short lower-case token.
    #[error("region must be 1-{MAX_REGION_BYTES} characters of a-z, 0-9 and '-' (got {0:?})")]
    Region(String),
    /// A URL that does not normalise.
    #[error("url: {0}")]
    Url(eddy_url::UrlError),
    /// A hint naming no objects, or too many.
    #[error("a pre-warm hint names 1-{MAX_PREWARM_URLS} urls (got {0})")]
    Count(usize),
    /// A forecast that is not a finite, non-negative rate.
    #[error("forecast must be a finite number of requests per second, 0 or more")]
    Forecast,
}

fn shown(s: &str) -> String {
    s.chars().take(40).collect()
}

fn id(field: &'static str, s: String, max: usize) -> Result<String, InterestError> {
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return Err(InterestError::Id {
            field,
            max,
            shown: shown(&s),
        });
    }
    Ok(s)
}

/// A region in its one form: trimmed and lower-cased, `[a-z0-9-]{1,32}`.
pub fn region(s: &str) -> Result<String, InterestError> {
    let r = s.trim().to_ascii_lowercase();
    if r.is_empty()
        || r.len() > MAX_REGION_BYTES
        || !r
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(InterestError::Region(shown(s)));
    }
    Ok(r)
}

/// An object URL in the cache's canonical form.
pub fn object_url(s: &str) -> Result<String, InterestError> {
    eddy_url::content_url(s, |_| Default::default()).map_err(InterestError::Url)
}

impl TryFrom<RawInteraction> for Interaction {
    type Error = InterestError;
    fn try_from(raw: RawInteraction) -> Result<Self, InterestError> {
        let action = match raw.action.as_str() {
            "play" => Action::Play,
            "complete" => Action::Complete,
            "like" => Action::Like,
            "skip" => Action::Skip,
            other => return Err(InterestError::Action(shown(other))),
        };
        Ok(Interaction {
            viewer: id("viewer", raw.viewer, MAX_VIEWER_BYTES)?,
            item: id("item", raw.item, MAX_ITEM_BYTES)?,
            action,
            region: raw.region.as_deref().map(region).transpose()?,
            url: raw.url.as_deref().map(object_url).transpose()?,
        })
    }
}

/// Why the forecast thinks objects will get hot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrewarmReason {
    /// An item whose interest is rising fast.
    Rising,
    /// An item new to the fleet that is already drawing viewers (a new episode).
    New,
    /// An item many viewers are being recommended.
    Recommended,
}

impl PrewarmReason {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PrewarmReason::Rising => "rising",
            PrewarmReason::New => "new",
            PrewarmReason::Recommended => "recommended",
        }
    }
}

/// `dev.eddy.prewarm.v1`: objects likely to get hot; edges fetch those they lack, within their
/// byte budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPrewarm")]
pub struct Prewarm {
    /// The objects, canonical `host/path`, 1 to [`MAX_PREWARM_URLS`].
    pub urls: Vec<String>,
    /// Why.
    pub reason: PrewarmReason,
    /// The item they belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// Only edges of this region (none: every edge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// What made the hint: for `rising` and `new`, the forecast interest in interactions per
    /// second; for `recommended`, how many recently active viewers were recommended the item.
    #[serde(default)]
    pub forecast: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrewarm {
    urls: Vec<String>,
    reason: PrewarmReason,
    #[serde(default)]
    item: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    forecast: f64,
}

impl TryFrom<RawPrewarm> for Prewarm {
    type Error = InterestError;
    fn try_from(raw: RawPrewarm) -> Result<Self, InterestError> {
        if raw.urls.is_empty() || raw.urls.len() > MAX_PREWARM_URLS {
            return Err(InterestError::Count(raw.urls.len()));
        }
        if !(raw.forecast.is_finite() && raw.forecast >= 0.0) {
            return Err(InterestError::Forecast);
        }
        Ok(Prewarm {
            urls: raw
                .urls
                .iter()
                .map(|u| object_url(u))
                .collect::<Result<_, _>>()?,
            reason: raw.reason,
            item: raw
                .item
                .map(|i| id("item", i, MAX_ITEM_BYTES))
                .transpose()?,
            region: raw.region.as_deref().map(region).transpose()?,
            forecast: raw.forecast,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn interaction(v: serde_json::Value) -> Result<Interaction, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn interactions_are_checked_and_normalised() {
        let ok = interaction(json!({"viewer": "v1", "item": "show-1", "action": "like",
            "region": " EU-West ", "url": "http://V.test:80/a/../show-1/master.m3u8"}));
        assert_eq!(
            ok,
            Ok(Interaction {
                viewer: "v1".into(),
                item: "show-1".into(),
                action: Action::Like,
                region: Some("eu-west".into()),
                url: Some("v.test/show-1/master.m3u8".into()),
            })
        );
        // The old field name still reads.
        assert!(interaction(json!({"user": "u", "item": "i", "action": "play"})).is_ok());
        for (bad, says) in [
            (
                json!({"viewer": "", "item": "i", "action": "play"}),
                "viewer",
            ),
            (
                json!({"viewer": "v".repeat(129), "item": "i", "action": "play"}),
                "viewer",
            ),
            (
                json!({"viewer": "v", "item": "a\nb", "action": "play"}),
                "item",
            ),
            (
                json!({"viewer": "v", "item": "i", "action": "seek"}),
                "action",
            ),
            (
                json!({"viewer": "v", "item": "i", "action": "play", "region": "eu west"}),
                "region",
            ),
            (
                json!({"viewer": "v", "item": "i", "action": "play", "url": "h/a b"}),
                "url",
            ),
            (
                json!({"viewer": "v", "item": "i", "action": "play", "extra": 1}),
                "extra",
            ),
            (json!({"viewer": "v", "action": "play"}), "item"),
            (json!([1, 2]), "invalid type"),
        ] {
            let e = interaction(bad.clone()).err().unwrap_or_default();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn prewarm_hints_are_bounded_and_canonical() {
        let hint = |urls: Vec<String>, forecast: f64| {
            serde_json::from_value::<Prewarm>(
                json!({"urls": urls, "reason": "rising", "forecast": forecast}),
            )
            .map_err(|e| e.to_string())
        };
        let ok = hint(vec!["http://H/x/../a.m4s".into()], 2.5);
        assert_eq!(ok.map(|p| p.urls), Ok(vec!["h/a.m4s".to_string()]));
        assert!(hint(vec![], 1.0).is_err_and(|e| e.contains("1-64")));
        assert!(hint(vec!["h/a".into(); 65], 1.0).is_err_and(|e| e.contains("got 65")));
        assert!(hint(vec!["h/a".into()], -1.0).is_err());
        assert!(hint(vec!["".into()], 1.0).is_err());
        let bad_reason = serde_json::from_value::<Prewarm>(json!({"urls": ["h/a"], "reason": "x"}));
        assert!(bad_reason.is_err());
    }
}
