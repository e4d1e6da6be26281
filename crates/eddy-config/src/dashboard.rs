//! `[dashboard]`: the `eddy admin` role, which serves the live dashboard and the status API from
//! the events on the bus. Owns [`DashboardFile`] (the keys an operator writes),
//! [`DashboardConfig`] and [`load_dashboard`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bus::{BusConfig, role_bus};
use crate::{ConfigError, addr, node_id, read_file};

/// `[dashboard]`: `eddy admin` serves the live dashboard and the status API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardFile {
    /// Dashboard id, unique in a deployment: its bus consumers are `dashboard-<id>.*` (default
    /// `1`).
    pub id: Option<String>,
    /// Address of the dashboard (default `127.0.0.1:8888`).
    pub listen: Option<String>,
}

/// Validated `[dashboard]` plus the bus it listens on.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Dashboard id.
    pub id: String,
    /// Dashboard address.
    pub listen: SocketAddr,
    /// The bus it reads.
    pub bus: BusConfig,
}

/// Load the `eddy admin` role: `[dashboard]` and `[bus]` (`listen` and `bus_dir` override).
pub fn load_dashboard(
    path: Option<&Path>,
    listen: Option<&str>,
    bus_dir: Option<&PathBuf>,
) -> Result<DashboardConfig, ConfigError> {
    let (file, name) = read_file(path)?;
    let listen = addr(
        &name,
        "dashboard.listen",
        listen
            .or(file.dashboard.listen.as_deref())
            .unwrap_or("127.0.0.1:8888"),
    )?;
    Ok(DashboardConfig {
        id: node_id(&name, "dashboard.id", file.dashboard.id)?,
        listen,
        bus: role_bus(&name, "the dashboard", file.bus, bus_dir)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::tempdir;

    #[test]
    fn the_dashboard_takes_its_address_and_bus_from_the_command_line() -> Result<(), ConfigError> {
        let dir = tempdir()?;
        let d = load_dashboard(None, Some("127.0.0.1:8899"), Some(&dir.path().join("bus")))?;
        assert_eq!(d.listen.port(), 8899);
        assert_eq!(d.id, "1");
        assert!(matches!(d.bus, BusConfig::Embedded { .. }));
        let msg = load_dashboard(None, Some("localhost"), Some(&dir.path().join("bus")))
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(msg.contains("dashboard.listen"), "{msg}");
        Ok(())
    }
}
