//! `[streaming]`: what the edge does with video. Owns [`StreamingFile`] (the keys an operator
//! writes) and [`StreamingSettings`]: the TTL class of each kind of streaming object
//! (`eddy_streaming::class`) and how long a blocking LL-HLS playlist request may be held.
//!
//! A class's TTL replaces the freshness the origin's headers give (a CDN's TTL rule), except
//! where the origin says `no-store` or `private`: those are never stored, whatever the class.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use eddy_streaming::class::Class;
use serde::Deserialize;

use crate::{ConfigError, invalid};

/// `[streaming]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamingFile {
    /// Give streaming objects their class's TTL (default true). False: the origin's headers
    /// alone decide, as for any other object.
    pub ttl_classes: Option<bool>,
    /// `[streaming.ttl]`: the TTL of a class, by name, such as `segment = "1h"` or
    /// `ll_playlist = "0s"`. Classes: multivariant (default 30s), live_playlist (1s, and never
    /// more than half the playlist's target duration), ll_playlist (0s: freshness comes from
    /// blocking reload), blocking_reload (6s: the answer to one `_HLS_msn`/`_HLS_part`),
    /// vod_playlist (1h), dynamic_mpd (1s, never more than its minimumUpdatePeriod), static_mpd
    /// (1h), init (24h), segment (1h), part (1h).
    pub ttl: Option<BTreeMap<String, String>>,
    /// How long the edge holds an LL-HLS playlist request for a part that does not exist yet
    /// before it answers 503 with `Retry-After`, such as "6s" (default 6 s, three 2 s target
    /// durations; 100ms to 60s).
    pub hold: Option<String>,
    /// Fetch the object a player says it asks for next (CMCD `nor`/`nrr`) into the cache before
    /// it asks (default true).
    pub prefetch: Option<bool>,
    /// Prefetches this edge starts per second, at most (default 50; 1 to 10000). Offers beyond
    /// it are refused and counted.
    pub prefetch_rate: Option<u32>,
    /// Prefetches in flight at once, at most (default 8; 1 to 1024).
    pub prefetch_inflight: Option<u32>,
    /// How many objects ahead of a player's request to prefetch (default 2; 1 to 8): those it
    /// names (CMCD `nor`), then the ones after it in its VOD media playlist. Two keeps one ahead
    /// of a player that asks for its next segment the moment the last one arrived. A player
    /// starting up or rebuffering (CMCD `su`, `bs`) pulls faster: its requests look twice as far
    /// ahead (at most 8).
    pub prefetch_depth: Option<u32>,
    /// The adaptive-quality guard (default true): when players' QoE degrades, cap the bitrate
    /// they are steered to (CMSD-Dynamic `mb`), and lift it step by step when it recovers.
    pub guard: Option<bool>,
    /// The guard's client networks: players whose IPv4 addresses share this many leading bits
    /// share a last mile, and are capped together when a share of them is in trouble (default
    /// 24; 1 to 32; 0 judges no IPv4 networks).
    pub guard_network_v4: Option<u8>,
    /// The same for IPv6 (default 56, a home's delegation; 1 to 128; 0 judges none).
    pub guard_network_v6: Option<u8>,
    /// Requests whose CMCD this edge reads per second, at most (default 20000; 0 reads every
    /// one), spread over the second (a hundredth per 10 ms). Past it a request's telemetry is
    /// not read (counted as `shed`): reading costs about 1 µs a request off the serving path,
    /// and telemetry must not take serving capacity under load. 20,000 a second is some 40,000
    /// players at one segment every 2 s.
    pub telemetry_rate: Option<u32>,
    /// The path on every site where the edge takes CMCD v2 event reports (`POST`,
    /// `Content-Type: application/cmcd`; players' `eventTargets`), default "/_eddy/cmcd"; ""
    /// passes that path to the origin like any other.
    pub cmcd_events: Option<String>,
}

/// Requests whose telemetry an edge reads per second unless configured.
pub const DEFAULT_TELEMETRY_RATE: u32 = 20_000;

/// Validated `[streaming]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamingSettings {
    /// TTL classes on.
    pub ttl_classes: bool,
    /// The TTL of every class.
    pub ttl: BTreeMap<Class, Duration>,
    /// The LL-HLS hold bound.
    pub hold: Duration,
    /// Next-object prefetch and its budget; `None` when off.
    pub prefetch: Option<PrefetchBudget>,
    /// The adaptive-quality guard on.
    pub guard: bool,
    /// Prefix lengths of the guard's client networks (IPv4, IPv6); 0: that family unjudged.
    pub guard_network: (u8, u8),
    /// Requests whose telemetry is read per second, at most; `None`: every one.
    pub telemetry_rate: Option<u32>,
    /// Where CMCD v2 event reports are taken; `None` when off.
    pub cmcd_events: Option<String>,
}

/// How much an edge may prefetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefetchBudget {
    /// Prefetches started per second, at most.
    pub per_second: u32,
    /// Prefetches in flight at once, at most.
    pub inflight: u32,
    /// Objects prefetched ahead of a request, at most.
    pub depth: u32,
}

impl Default for PrefetchBudget {
    fn default() -> Self {
        PrefetchBudget {
            per_second: 50,
            inflight: 8,
            depth: 2,
        }
    }
}

impl Default for StreamingSettings {
    fn default() -> Self {
        StreamingSettings {
            ttl_classes: true,
            ttl: Class::ALL
                .into_iter()
                .map(|c| (c, default_ttl(c)))
                .collect(),
            hold: Duration::from_secs(6),
            prefetch: Some(PrefetchBudget::default()),
            guard: true,
            guard_network: (24, 56),
            telemetry_rate: Some(DEFAULT_TELEMETRY_RATE),
            cmcd_events: Some(DEFAULT_CMCD_EVENTS.to_string()),
        }
    }
}

impl StreamingSettings {
    /// The TTL of `class`.
    pub fn ttl_of(&self, class: Class) -> Duration {
        self.ttl
            .get(&class)
            .copied()
            .unwrap_or_else(|| default_ttl(class))
    }
}

/// The TTL a class has unless configured (STREAMING.md, "Manifest TTLs").
fn default_ttl(c: Class) -> Duration {
    Duration::from_secs(match c {
        Class::Multivariant => 30,
        Class::LivePlaylist | Class::DynamicMpd => 1,
        Class::LowLatencyPlaylist => 0,
        Class::BlockingReload => 6,
        Class::VodPlaylist | Class::StaticMpd | Class::Segment | Class::Part => 3600,
        Class::Init => 86_400,
    })
}

/// Where CMCD v2 event reports are taken unless configured.
pub const DEFAULT_CMCD_EVENTS: &str = "/_eddy/cmcd";

/// Longest TTL a class may be given.
const MAX_TTL: Duration = Duration::from_secs(365 * 86_400);

/// Validate `[streaming]`.
pub(crate) fn streaming_settings(
    name: &Path,
    f: StreamingFile,
) -> Result<StreamingSettings, ConfigError> {
    let mut s = StreamingSettings {
        ttl_classes: f.ttl_classes.unwrap_or(true),
        ..StreamingSettings::default()
    };
    for (key, text) in f.ttl.unwrap_or_default() {
        let Some(class) = Class::from_name(&key) else {
            let names: Vec<_> = Class::ALL.iter().map(|c| c.name()).collect();
            return Err(invalid(
                name,
                "streaming.ttl",
                &key,
                &format!("one of the classes {}", names.join(", ")),
            ));
        };
        match humantime::parse_duration(&text) {
            Ok(d) if d <= MAX_TTL => {
                s.ttl.insert(class, d);
            }
            _ => {
                return Err(invalid(
                    name,
                    "streaming.ttl",
                    &format!("{key} = {text:?}"),
                    "a duration of 0s to 365d, such as \"30s\" or \"1h\"",
                ));
            }
        }
    }
    if let Some(text) = f.hold {
        s.hold = match humantime::parse_duration(&text) {
            Ok(d) if (Duration::from_millis(100)..=Duration::from_secs(60)).contains(&d) => d,
            _ => {
                return Err(invalid(
                    name,
                    "streaming.hold",
                    &text,
                    "a duration of 100ms to 60s, such as \"6s\"",
                ));
            }
        };
    }
    let mut budget = PrefetchBudget::default();
    for (key, value, range, slot) in [
        (
            "streaming.prefetch_rate",
            f.prefetch_rate,
            1..=10_000,
            &mut budget.per_second,
        ),
        (
            "streaming.prefetch_inflight",
            f.prefetch_inflight,
            1..=1024,
            &mut budget.inflight,
        ),
        (
            "streaming.prefetch_depth",
            f.prefetch_depth,
            1..=8,
            &mut budget.depth,
        ),
    ] {
        if let Some(v) = value {
            if !range.contains(&v) {
                return Err(invalid(
                    name,
                    key,
                    &v.to_string(),
                    &format!("a number from {} to {}", range.start(), range.end()),
                ));
            }
            *slot = v;
        }
    }
    s.prefetch = f.prefetch.unwrap_or(true).then_some(budget);
    s.guard = f.guard.unwrap_or(true);
    match f.telemetry_rate {
        Some(0) => s.telemetry_rate = None,
        Some(n) if n <= 10_000_000 => s.telemetry_rate = Some(n),
        Some(n) => {
            return Err(invalid(
                name,
                "streaming.telemetry_rate",
                &n.to_string(),
                "requests a second from 1 to 10000000, or 0 to read every one",
            ));
        }
        None => {}
    }
    for (key, value, max, slot) in [
        (
            "streaming.guard_network_v4",
            f.guard_network_v4,
            32,
            &mut s.guard_network.0,
        ),
        (
            "streaming.guard_network_v6",
            f.guard_network_v6,
            128,
            &mut s.guard_network.1,
        ),
    ] {
        match value {
            Some(v) if v > max => {
                return Err(invalid(
                    name,
                    key,
                    &v.to_string(),
                    &format!("a prefix length from 1 to {max}, or 0 to judge no such networks"),
                ));
            }
            Some(v) => *slot = v,
            None => {}
        }
    }
    if let Some(path) = f.cmcd_events {
        s.cmcd_events = match path.as_str() {
            "" => None,
            p if p.len() <= 256
                && p.starts_with('/')
                && !p.contains('?')
                && eddy_url::path(p.as_bytes(), eddy_url::PathOptions::default())
                    .is_ok_and(|n| n == p) =>
            {
                Some(path)
            }
            _ => {
                return Err(invalid(
                    name,
                    "streaming.cmcd_events",
                    &path,
                    "an absolute path in canonical form without a query, such as \"/_eddy/cmcd\" (at most 256 bytes), or \"\" for none",
                ));
            }
        };
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::each_fails_naming_its_key;

    #[test]
    fn classes_default_and_override() -> Result<(), ConfigError> {
        let file: crate::File = crate::parse(
            "[edge]\norigins=[\"http://a:1\"]\n[streaming]\nhold = \"2s\"\n[streaming.ttl]\nsegment = \"10m\"\nll_playlist = \"0s\"\n",
            Path::new("t.toml"),
        )?;
        let s = streaming_settings(Path::new("t.toml"), file.streaming)?;
        assert_eq!(s.ttl_of(Class::Segment), Duration::from_secs(600));
        assert_eq!(s.ttl_of(Class::Multivariant), Duration::from_secs(30));
        assert_eq!(s.ttl_of(Class::LowLatencyPlaylist), Duration::ZERO);
        assert_eq!(s.hold, Duration::from_secs(2));
        assert!(s.ttl_classes);
        assert_eq!(s.prefetch, Some(PrefetchBudget::default()));
        let file: crate::File = crate::parse(
            "[edge]\norigins=[\"http://a:1\"]\n[streaming]\nprefetch_rate = 5\nprefetch_inflight = 2\nprefetch_depth = 3\n",
            Path::new("t.toml"),
        )?;
        let s = streaming_settings(Path::new("t.toml"), file.streaming)?;
        assert_eq!(
            s.prefetch,
            Some(PrefetchBudget {
                per_second: 5,
                inflight: 2,
                depth: 3
            })
        );
        let file: crate::File = crate::parse(
            "[edge]\norigins=[\"http://a:1\"]\n[streaming]\nprefetch = false\n",
            Path::new("t.toml"),
        )?;
        assert_eq!(
            streaming_settings(Path::new("t.toml"), file.streaming)?.prefetch,
            None
        );
        let file: crate::File = crate::parse(
            "[edge]\norigins=[\"http://a:1\"]\n[streaming]\nguard = false\n",
            Path::new("t.toml"),
        )?;
        assert!(!streaming_settings(Path::new("t.toml"), file.streaming)?.guard);
        let file: crate::File = crate::parse(
            "[edge]\norigins=[\"http://a:1\"]\n[streaming]\nguard_network_v4 = 32\nguard_network_v6 = 0\n",
            Path::new("t.toml"),
        )?;
        let s = streaming_settings(Path::new("t.toml"), file.streaming)?;
        assert_eq!((s.guard_network, s.telemetry_rate), ((32, 0), Some(20_000)));
        let file: crate::File = crate::parse(
            "[edge]\norigins=[\"http://a:1\"]\n[streaming]\ntelemetry_rate = 0\n",
            Path::new("t.toml"),
        )?;
        assert_eq!(
            streaming_settings(Path::new("t.toml"), file.streaming)?.telemetry_rate,
            None
        );
        Ok(())
    }

    #[test]
    fn bad_streaming_settings_name_the_key() {
        each_fails_naming_its_key(&[
            (
                "[edge]\norigins=[\"http://a:1\"]\n[streaming]\ntelemetry_rate = 10000001",
                "streaming.telemetry_rate",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[streaming]\nguard_network_v4 = 33",
                "streaming.guard_network_v4",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[streaming]\nguard_network_v6 = 129",
                "streaming.guard_network_v6",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[streaming.ttl]\nsegments = \"1h\"",
                "streaming.ttl",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[streaming.ttl]\nsegment = \"forever\"",
                "streaming.ttl",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[streaming]\nhold = \"5m\"",
                "streaming.hold",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[streaming]\nprefetch_rate = 0",
                "streaming.prefetch_rate",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[streaming]\nprefetch_inflight = 5000",
                "streaming.prefetch_inflight",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[streaming]\nprefetch_depth = 9",
                "streaming.prefetch_depth",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[streaming]\ncmcd_events = \"/a/../cmcd?x\"",
                "streaming.cmcd_events",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[streaming]\ncmcd_events = \"cmcd\"",
                "streaming.cmcd_events",
            ),
        ]);
    }
}
