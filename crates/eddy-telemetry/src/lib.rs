//! # eddy-telemetry: logging setup for every Eddy process
//!
//! One call, [`init`], installs a `tracing` subscriber (text or JSON, filtered by `RUST_LOG` or the
//! given default) and bridges `log` records (pingora logs through `log`) into it.
//! Must not touch: metrics registries (each component owns its own, injected).

use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Failure to install the subscriber (usually: one is already installed).
#[derive(Debug, thiserror::Error)]
#[error("could not install the log subscriber: {0}")]
pub struct TelemetryError(String);

/// Install the global subscriber. `default_filter` applies when `RUST_LOG` is unset.
pub fn init(format: Format, default_filter: &str) -> Result<(), TelemetryError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let res = match format {
        Format::Text => builder.try_init(),
        Format::Json => builder.json().try_init(),
    };
    res.map_err(|e| TelemetryError(e.to_string()))
}
