//! `[control]`: the `eddy control` role, the front door for purge commands that reports when each
//! is done everywhere. Owns [`ControlFile`] (the keys an operator writes), [`ControlConfig`] and
//! [`load_control`]. Its API takes commands, so beyond loopback it needs a token (or the
//! operator's explicit `--insecure-admin`): one of `[[api_tokens]]` (the same tables as an
//! edge's, by hash with scopes), or the older `control.token`, which joins them as
//! `control_token` with every scope.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bus::{BusConfig, role_bus};
use crate::{ConfigError, addr, admin_exposure, node_id, read_file};

/// `[control]`: `eddy control` takes purge commands and reports when each is done everywhere.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlFile {
    /// Control plane id, unique in a deployment: its bus consumers are `control-<id>.*`
    /// (default `1`).
    pub id: Option<String>,
    /// Address of its API (default `127.0.0.1:8070`). A non-loopback address needs `token`, or
    /// the `--insecure-admin` flag to accept an unauthenticated API on the network.
    pub listen: Option<String>,
    /// If set, `POST /purge` requires `Authorization: Bearer <token>` (a token with every
    /// scope, named `control_token`; `[[api_tokens]]` keep only hashes and scope each token).
    pub token: Option<String>,
}

/// Validated `[control]` plus the bus it uses.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Control plane id.
    pub id: String,
    /// API address.
    pub listen: SocketAddr,
    /// Who may do what: `[[api_tokens]]` and `control.token` (as `control_token`). Empty: the
    /// API is open (loopback, or `--insecure-admin`).
    pub api_tokens: eddy_auth::api::ApiTokens,
    /// The API listens beyond loopback without a token because the operator opted in
    /// (`insecure_admin` of [`load_control`]); the control plane should warn.
    pub insecure_admin: bool,
    /// The bus.
    pub bus: BusConfig,
}

/// Load the `eddy control` role: `[control]` and `[bus]` (`listen` and `bus_dir` override).
/// `insecure_admin` (`--insecure-admin`) accepts a non-loopback `listen` without a token.
pub fn load_control(
    path: Option<&Path>,
    listen: Option<&str>,
    bus_dir: Option<&PathBuf>,
    insecure_admin: bool,
) -> Result<ControlConfig, ConfigError> {
    let (mut file, name) = read_file(path)?;
    let api_token_files = std::mem::take(&mut file.api_tokens);
    let c = file.control;
    let listen = addr(
        &name,
        "control.listen",
        listen.or(c.listen.as_deref()).unwrap_or("127.0.0.1:8070"),
    )?;
    let token = c.token.filter(|t| !t.is_empty());
    let api_tokens =
        crate::api::api_tokens(&name, api_token_files, ("control_token", token.as_deref()))?;
    let insecure_admin = admin_exposure(
        &name,
        "control.listen",
        listen,
        !api_tokens.is_empty(),
        "control.token (or [[api_tokens]])",
        insecure_admin,
    )?;
    Ok(ControlConfig {
        id: node_id(&name, "control.id", c.id)?,
        listen,
        api_tokens,
        insecure_admin,
        bus: role_bus(&name, "the control plane", file.bus, bus_dir)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::tempdir;

    #[test]
    fn a_control_plane_beyond_loopback_needs_a_token_or_the_opt_in() -> Result<(), ConfigError> {
        let dir = tempdir()?;
        let write = |name: &str, text: &str| -> PathBuf {
            let p = dir.path().join(name);
            std::fs::write(&p, text).ok();
            p
        };
        let bus = dir.path().join("bus");
        let open = write("open.toml", "[control]\nlisten = \"0.0.0.0:8070\"\n");
        let msg = load_control(Some(&open), None, Some(&bus), false)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            msg.contains("`control.listen`")
                && msg.contains("open.toml")
                && msg.contains("0.0.0.0:8070")
                && msg.contains("control.token")
                && msg.contains("--insecure-admin"),
            "{msg}"
        );
        // The command line's address is held to the same rule.
        let msg = load_control(None, Some("[::]:8070"), Some(&bus), false)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(msg.contains("`control.listen`"), "{msg}");

        let opted_in = load_control(Some(&open), None, Some(&bus), true)?;
        assert!(opted_in.insecure_admin);

        let with_token = write(
            "token.toml",
            "[control]\nlisten = \"0.0.0.0:8070\"\ntoken = \"s3cret\"\n",
        );
        let c = load_control(Some(&with_token), None, Some(&bus), true)?;
        assert!(!c.insecure_admin);
        assert_eq!(
            c.api_tokens
                .check(Some("Bearer s3cret"), eddy_auth::api::Scope::Purge),
            eddy_auth::api::Verdict::Allowed("control_token".into())
        );
        // Scoped tokens by hash are enough to leave loopback.
        let scoped = write(
            "scoped.toml",
            &format!(
                "[control]\nlisten = \"0.0.0.0:8070\"\n[[api_tokens]]\nname = \"cms\"\nsha256 = \"{}\"\nscopes = [\"purge\"]\n",
                eddy_auth::api::hash("cms-secret")
            ),
        );
        let c = load_control(Some(&scoped), None, Some(&bus), false)?;
        assert!(!c.insecure_admin);
        assert_eq!(
            c.api_tokens
                .check(Some("Bearer cms-secret"), eddy_auth::api::Scope::Read),
            eddy_auth::api::Verdict::Forbidden("cms".into())
        );

        // An empty token is no token.
        let empty = write(
            "empty.toml",
            "[control]\nlisten = \"0.0.0.0:8070\"\ntoken = \"\"\n",
        );
        assert!(load_control(Some(&empty), None, Some(&bus), false).is_err());

        let local = load_control(None, None, Some(&bus), true)?;
        assert!(!local.insecure_admin);
        assert_eq!(local.listen.port(), 8070);
        Ok(())
    }

    #[test]
    fn bad_control_values_name_the_key() -> Result<(), ConfigError> {
        let dir = tempdir()?;
        let bus = dir.path().join("bus");
        let msg = load_control(None, Some("nope"), Some(&bus), false)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(msg.contains("`control.listen`"), "{msg}");
        let p = dir.path().join("id.toml");
        std::fs::write(&p, "[control]\nid = \"a b\"\n").ok();
        let msg = load_control(Some(&p), None, Some(&bus), false)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(msg.contains("`control.id`"), "{msg}");
        let msg = load_control(None, None, None, false)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(msg.contains("[bus]"), "{msg}");
        Ok(())
    }
}
