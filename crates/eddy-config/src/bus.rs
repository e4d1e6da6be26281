//! `[bus]`: the event bus every role shares (purges, heartbeats, origin health, spikes). Owns
//! [`BusFile`] (the keys an operator writes) and [`BusConfig`] (which bus, and its settings):
//! the embedded durable log with its [`Fsync`] policy, NATS JetStream, RabbitMQ streams or
//! Kafka. A key that belongs to another kind of bus is an error, not silently ignored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::{ConfigError, invalid};

/// `[bus]`: which event bus, and its settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusFile {
    /// `"embedded"` (default), `"kafka"`, `"rabbitmq"` or `"nats"`.
    pub kind: Option<String>,
    /// Broker URL for `nats` (`nats://127.0.0.1:4222`) and `rabbitmq`
    /// (`amqp://guest:guest@127.0.0.1:5672/%2f`).
    pub url: Option<String>,
    /// Bootstrap servers for `kafka` (`127.0.0.1:9092`, comma-separated).
    pub brokers: Option<String>,
    /// Replication factor of the topics Eddy creates on `kafka` (default 1).
    pub replication: Option<i32>,
    /// `kafka`: how long the broker may hold an empty fetch, in ms (default 10). Raise it to
    /// 100-500 on Apache Kafka (which answers as soon as a record arrives) to cut idle fetches.
    pub fetch_wait_ms: Option<u64>,
    /// Directory of the embedded log (default `./eddy-bus`).
    pub dir: Option<PathBuf>,
    /// When the embedded log fsyncs: `"always"`, `"never"` or an interval such as `"10ms"`.
    pub fsync: Option<String>,
}

/// When the embedded log fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Every record.
    Always,
    /// Never explicitly.
    Never,
    /// Every interval.
    Every(Duration),
}

/// Validated `[bus]`.
#[derive(Debug, Clone)]
pub enum BusConfig {
    /// The embedded durable log.
    Embedded {
        /// Log directory.
        dir: PathBuf,
        /// fsync policy.
        fsync: Fsync,
    },
    /// NATS JetStream.
    Nats {
        /// Server URL.
        url: String,
    },
    /// RabbitMQ (stream queues over AMQP 0-9-1).
    Rabbitmq {
        /// `amqp://` URL with credentials and vhost.
        url: String,
    },
    /// Kafka.
    Kafka {
        /// Bootstrap servers, `host:port[,host:port]`.
        brokers: String,
        /// Replication factor of created topics.
        replication: i32,
        /// Longest wait of an empty fetch.
        fetch_wait: Duration,
    },
}

/// The embedded log in `dir` with the default fsync policy (what `--bus-dir` alone means).
pub(crate) fn embedded_in(dir: &Path) -> BusConfig {
    BusConfig::Embedded {
        dir: dir.to_path_buf(),
        fsync: Fsync::Every(Duration::from_millis(10)),
    }
}

/// The bus a role that only consumes events needs: without one it would see nothing.
pub(crate) fn role_bus(
    name: &Path,
    role: &str,
    bus: Option<BusFile>,
    bus_dir: Option<&PathBuf>,
) -> Result<BusConfig, ConfigError> {
    match (bus, bus_dir) {
        (Some(b), dir) => bus_config(name, b, dir),
        (None, Some(dir)) => Ok(embedded_in(dir)),
        (None, None) => Err(invalid(
            name,
            "bus",
            "(missing)",
            &format!(
                "a [bus] section: {role} learns about edges from their events (kind = \"nats\", \"kafka\" or \"rabbitmq\" across machines)"
            ),
        )),
    }
}

/// Validate `[bus]`; `dir_override` is `--bus-dir` (meaningful for the embedded log only).
pub(crate) fn bus_config(
    name: &Path,
    b: BusFile,
    dir_override: Option<&PathBuf>,
) -> Result<BusConfig, ConfigError> {
    let kind = b.kind.clone().unwrap_or_else(|| "embedded".into());
    // A key that belongs to another kind is a mistake worth stopping for.
    let only = |key: &'static str, set: bool, kinds: &[&str]| -> Result<(), ConfigError> {
        if set && !kinds.contains(&kind.as_str()) {
            return Err(invalid(
                name,
                key,
                &format!("set with bus.kind = {kind:?}"),
                &format!("{key} only with bus.kind = {}", kinds.join(" or ")),
            ));
        }
        Ok(())
    };
    only("bus.dir", b.dir.is_some(), &["embedded"])?;
    only("bus.fsync", b.fsync.is_some(), &["embedded"])?;
    only("bus.url", b.url.is_some(), &["nats", "rabbitmq"])?;
    only("bus.brokers", b.brokers.is_some(), &["kafka"])?;
    only("bus.replication", b.replication.is_some(), &["kafka"])?;
    only("bus.fetch_wait_ms", b.fetch_wait_ms.is_some(), &["kafka"])?;
    let url_with = |default: &str, schemes: &[&str], example: &str| {
        let url = b.url.clone().unwrap_or_else(|| default.to_string());
        if schemes.iter().any(|s| url.starts_with(s)) {
            Ok(url)
        } else {
            Err(invalid(name, "bus.url", &url, example))
        }
    };
    match kind.as_str() {
        "nats" => Ok(BusConfig::Nats {
            url: url_with(
                "nats://127.0.0.1:4222",
                &["nats://"],
                "a nats:// URL such as nats://127.0.0.1:4222",
            )?,
        }),
        "rabbitmq" => Ok(BusConfig::Rabbitmq {
            url: url_with(
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                &["amqp://", "amqps://"],
                "an amqp:// URL such as amqp://guest:guest@127.0.0.1:5672/%2f",
            )?,
        }),
        "kafka" => {
            let brokers = b.brokers.unwrap_or_else(|| "127.0.0.1:9092".into());
            let ok = !brokers.is_empty()
                && brokers.split(',').all(|hp| {
                    hp.trim()
                        .rsplit_once(':')
                        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                });
            if !ok {
                return Err(invalid(
                    name,
                    "bus.brokers",
                    &brokers,
                    "host:port, comma-separated, such as 127.0.0.1:9092",
                ));
            }
            let replication = b.replication.unwrap_or(1);
            if !(1..=7).contains(&replication) {
                return Err(invalid(
                    name,
                    "bus.replication",
                    &replication.to_string(),
                    "a replication factor of 1 to 7 for the topics Eddy creates",
                ));
            }
            let fetch_wait_ms = b.fetch_wait_ms.unwrap_or(10);
            if !(1..=5_000).contains(&fetch_wait_ms) {
                return Err(invalid(
                    name,
                    "bus.fetch_wait_ms",
                    &fetch_wait_ms.to_string(),
                    "1 to 5000 (milliseconds)",
                ));
            }
            Ok(BusConfig::Kafka {
                brokers,
                replication,
                fetch_wait: Duration::from_millis(fetch_wait_ms),
            })
        }
        "embedded" => {
            let fsync_text = b.fsync.unwrap_or_else(|| "10ms".into());
            let fsync = match fsync_text.as_str() {
                "always" => Fsync::Always,
                "never" => Fsync::Never,
                other => match other.strip_suffix("ms").and_then(|n| n.parse::<u64>().ok()) {
                    Some(ms) if (1..=60_000).contains(&ms) => {
                        Fsync::Every(Duration::from_millis(ms))
                    }
                    _ => {
                        return Err(invalid(
                            name,
                            "bus.fsync",
                            other,
                            "\"always\", \"never\" or an interval of 1 to 60000 ms such as \"10ms\"",
                        ));
                    }
                },
            };
            Ok(BusConfig::Embedded {
                dir: dir_override
                    .cloned()
                    .or(b.dir)
                    .unwrap_or_else(|| PathBuf::from("eddy-bus")),
                fsync,
            })
        }
        _ => Err(invalid(
            name,
            "bus.kind",
            &kind,
            "\"embedded\", \"kafka\", \"rabbitmq\" or \"nats\"",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Overrides;
    use crate::tests::from_text;

    fn bus_of(text: &str) -> Result<Option<BusConfig>, ConfigError> {
        let text = format!("[edge]\norigins=[\"http://a:1\"]\n[bus]\n{text}");
        from_text(&text, &Overrides::default()).map(|c| c.bus)
    }

    #[test]
    fn every_bus_kind_validates() -> Result<(), ConfigError> {
        assert!(matches!(
            bus_of("kind = \"kafka\"\nbrokers = \"10.0.0.1:9092,10.0.0.2:9092\"\nreplication = 3")?,
            Some(BusConfig::Kafka { replication: 3, .. })
        ));
        assert!(matches!(
            bus_of("kind = \"rabbitmq\"")?,
            Some(BusConfig::Rabbitmq { url }) if url.starts_with("amqp://")
        ));
        assert!(matches!(
            bus_of("kind = \"nats\"\nurl = \"nats://10.0.0.1:4222\"")?,
            Some(BusConfig::Nats { .. })
        ));
        assert!(matches!(
            bus_of("dir = \"/tmp/x\"\nfsync = \"always\"")?,
            Some(BusConfig::Embedded {
                fsync: Fsync::Always,
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn bad_bus_settings_name_the_key() {
        let cases = [
            ("kind = \"pulsar\"", "bus.kind"),
            ("kind = \"kafka\"\nbrokers = \"nohost\"", "bus.brokers"),
            ("kind = \"kafka\"\nreplication = 0", "bus.replication"),
            ("kind = \"kafka\"\nfetch_wait_ms = 0", "bus.fetch_wait_ms"),
            ("kind = \"kafka\"\nurl = \"nats://x:1\"", "bus.url"),
            ("kind = \"rabbitmq\"\nurl = \"http://x\"", "bus.url"),
            ("kind = \"nats\"\nfsync = \"always\"", "bus.fsync"),
            ("kind = \"embedded\"\nbrokers = \"a:1\"", "bus.brokers"),
            ("fsync = \"0ms\"", "bus.fsync"),
        ];
        for (text, key) in cases {
            match bus_of(text) {
                Ok(_) => panic!("{text} should fail"),
                Err(e) => {
                    let m = e.to_string();
                    assert!(m.contains(key) && m.contains("e.toml"), "{text}: {m}");
                }
            }
        }
    }
}
