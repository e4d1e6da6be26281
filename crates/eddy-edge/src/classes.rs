//! TTL classes of streaming objects at the edge (`[streaming]`, `eddy_streaming::class`).
//!
//! A response's head gives most objects their class: the proxy sets that class's TTL when it
//! decides to store (`response_cache_filter`). A playlist or an MPD is stored with the longest
//! manifest TTL until its body is read, and the cache fill ([`crate::storage`]) then settles it
//! from the body with [`refined_fresh_until`] before the object becomes a complete hit. Only
//! `200` responses get a class: an error for a segment keeps what its own headers say.

use std::time::{Duration, SystemTime};

use eddy_config::StreamingSettings;
use eddy_streaming::class::{self, Class, Head};

/// The classes a manifest may turn out to be.
const MANIFESTS: [Class; 6] = [
    Class::Multivariant,
    Class::LivePlaylist,
    Class::LowLatencyPlaylist,
    Class::VodPlaylist,
    Class::DynamicMpd,
    Class::StaticMpd,
];

/// Host of a canonical URL key (`host/path?query`).
pub(crate) fn host_of(url: &str) -> &str {
    url.find('/').map_or(url, |i| &url[..i])
}

/// Path and query of a canonical URL key (`host/path?query`).
pub(crate) fn path_and_query(url: &str) -> (&str, &str) {
    let path = url.find('/').map_or("", |i| &url[i..]);
    path.split_once('?').unwrap_or((path, ""))
}

/// Whether a query carries the blocking-reload directive `_HLS_msn` (read as `crate::llhls`
/// reads it; a request whose directives do not read was refused before it got here).
fn blocking(query: &str) -> bool {
    query.contains("_HLS_msn")
        && eddy_streaming::hls::directives::Directives::from_query(query)
            .is_ok_and(|d| d.blocking())
}

/// What the head of a `status` response to the canonical `url` says of its class.
pub(crate) fn head(
    settings: &StreamingSettings,
    url: &str,
    status: u16,
    content_type: Option<&str>,
) -> Head {
    if !settings.ttl_classes || status != 200 {
        return Head::Other;
    }
    let (path, query) = path_and_query(url);
    class::by_head(path, blocking(query), content_type)
}

/// The TTL the proxy stores a response with when its head is `head`: its class's, or for a
/// manifest the longest a manifest may have (the fill settles it from the body).
pub(crate) fn ttl_at_head(settings: &StreamingSettings, head: Head) -> Option<Duration> {
    match head {
        Head::Other => None,
        Head::Known(c) => Some(settings.ttl_of(c)),
        Head::Manifest { .. } => MANIFESTS.iter().map(|c| settings.ttl_of(*c)).max(),
    }
}

/// When a manifest's freshness ends, from its body: its class's TTL (bounded by half a live
/// playlist's target duration or a dynamic MPD's `minimumUpdatePeriod`), or the provisional
/// class's when the body is neither, counted from `epoch` (when the response's age was zero).
pub(crate) fn refined_fresh_until(
    settings: &StreamingSettings,
    provisional: Class,
    body: &[u8],
    epoch: SystemTime,
) -> (Class, SystemTime) {
    let (class, bound) = class::by_body(body).unwrap_or((provisional, None));
    let mut ttl = settings.ttl_of(class);
    if let Some(b) = bound {
        ttl = ttl.min(b);
    }
    (class, epoch + ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_give_classes_only_to_200s_of_streaming_objects() {
        let s = StreamingSettings::default();
        let h = |url, status, ct| head(&s, url, status, ct);
        assert_eq!(
            h("v.test/a/seg_1.m4s?x=1", 200, None),
            Head::Known(Class::Segment)
        );
        assert_eq!(h("v.test/a/seg_1.m4s", 404, None), Head::Other);
        assert_eq!(
            h("v.test/live/r/live.m3u8?_HLS_msn=4&_HLS_part=1", 200, None),
            Head::Known(Class::BlockingReload)
        );
        assert_eq!(
            h("v.test/live/r/live.m3u8?_HLS_msnx=4", 200, None),
            Head::Manifest {
                provisional: Class::LowLatencyPlaylist
            }
        );
        assert_eq!(h("v.test/", 200, Some("text/html")), Head::Other);
        let off = StreamingSettings {
            ttl_classes: false,
            ..StreamingSettings::default()
        };
        assert_eq!(head(&off, "v.test/a/seg_1.m4s", 200, None), Head::Other);
        assert_eq!(
            ttl_at_head(&s, h("v.test/m.m3u8", 200, None)),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn bodies_settle_manifest_freshness() {
        let s = StreamingSettings::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mv = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n";
        assert_eq!(
            refined_fresh_until(&s, Class::LowLatencyPlaylist, mv, t0),
            (Class::Multivariant, t0 + Duration::from_secs(30))
        );
        let live = b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\na.ts\n";
        assert_eq!(
            refined_fresh_until(&s, Class::LowLatencyPlaylist, live, t0),
            (Class::LivePlaylist, t0 + Duration::from_millis(500))
        );
        assert_eq!(
            refined_fresh_until(&s, Class::LowLatencyPlaylist, b"junk", t0),
            (Class::LowLatencyPlaylist, t0)
        );
    }
}
