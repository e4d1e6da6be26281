//! `[spike]`: traffic-spike detection. Owns [`SpikeFile`] (the keys an operator writes) and
//! [`SpikeSettings`]: when an object's or a host's request rate counts as a spike against its
//! slow baseline, and how often one key may be reported.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::{ConfigError, invalid};

/// `[spike]`: per-object and per-host request rates against a slow baseline.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeFile {
    /// Detect spikes (default true).
    pub enabled: Option<bool>,
    /// A rate this many times its baseline is a spike (default 10).
    pub factor: Option<f64>,
    /// Rates below this many requests/s are never spikes (default 200).
    pub min_rate: Option<f64>,
    /// Time constant of the baseline, such as "60s" (default 60 s).
    pub baseline_window: Option<String>,
    /// Least time between two reports for one key, such as "30s" (default 30 s).
    pub cooldown: Option<String>,
}

/// Validated `[spike]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeSettings {
    /// Whether edges detect spikes.
    pub enabled: bool,
    /// Rate / baseline ratio that is a spike.
    pub factor: f64,
    /// Floor in requests/s.
    pub min_rate: f64,
    /// Baseline EWMA time constant.
    pub baseline_window: Duration,
    /// Least time between reports for one key.
    pub cooldown: Duration,
}

/// Validate `[spike]`.
pub(crate) fn spike_settings(name: &Path, f: SpikeFile) -> Result<SpikeSettings, ConfigError> {
    let factor = f.factor.unwrap_or(10.0);
    if !(factor.is_finite() && (1.5..=1000.0).contains(&factor)) {
        return Err(invalid(
            name,
            "spike.factor",
            &factor.to_string(),
            "a ratio of 1.5 to 1000",
        ));
    }
    let min_rate = f.min_rate.unwrap_or(200.0);
    if !(min_rate.is_finite() && (1.0..=10_000_000.0).contains(&min_rate)) {
        return Err(invalid(
            name,
            "spike.min_rate",
            &min_rate.to_string(),
            "1 to 10000000 requests/s",
        ));
    }
    let dur = |key: &'static str,
               v: Option<String>,
               default: u64|
     -> Result<Duration, ConfigError> {
        match v {
            None => Ok(Duration::from_secs(default)),
            Some(text) => match humantime::parse_duration(&text) {
                Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(86_400) => Ok(d),
                _ => Err(invalid(
                    name,
                    key,
                    &text,
                    "a duration of 1s to 24h, such as \"60s\"",
                )),
            },
        }
    };
    Ok(SpikeSettings {
        enabled: f.enabled.unwrap_or(true),
        factor,
        min_rate,
        baseline_window: dur("spike.baseline_window", f.baseline_window, 60)?,
        cooldown: dur("spike.cooldown", f.cooldown, 30)?,
    })
}

#[cfg(test)]
mod tests {
    use crate::tests::each_fails_naming_its_key;

    #[test]
    fn bad_spike_settings_name_the_key() {
        each_fails_naming_its_key(&[
            (
                "[edge]\norigins=[\"http://a:1\"]\n[spike]\nfactor = 1.0",
                "spike.factor",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[spike]\nmin_rate = 0.5",
                "spike.min_rate",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[spike]\nbaseline_window = \"soon\"",
                "spike.baseline_window",
            ),
            (
                "[edge]\norigins=[\"http://a:1\"]\n[spike]\ncooldown = \"2d\"",
                "spike.cooldown",
            ),
        ]);
    }
}
