//! Tests of `[edge]`: the table of bad values, strict origin ports, the admin API rule,
//! connection limits and roles.

use super::*;
use crate::load;
use crate::tests::{each_fails_naming_its_key, from_text, ov, tempdir};
use std::path::PathBuf;

#[test]
fn bad_values_name_the_key_and_what_is_allowed() {
    each_fails_naming_its_key(&[
        ("[edge]\norigins=[\"ftp://x\"]", "edge.origins"),
        (
            "[edge]\norigins=[\"http://a:1\"]\nlisten=\"nope\"",
            "edge.listen",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\npurge_allow=[\"10.0.0.0/99\"]",
            "edge.purge_allow",
        ),
        ("[edge]\n", "edge.origins"),
        (
            "[edge]\norigins=[\"http://a:1\"]\nregion=\"eu west\"",
            "edge.region",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nprewarm_budget=\"lots\"",
            "edge.prewarm_budget",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nclient_burst=5",
            "edge.client_burst",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\norigin_rate=20000000",
            "edge.origin_rate",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nlisten=\"127.0.0.1:8080\"\nshields=[\"http://127.0.0.1:8080\"]",
            "edge.shields",
        ),
        (
            "[edge]\norigins=[\"http://localhost:8080\"]\nlisten=\"127.0.0.1:8080\"",
            "edge.origins",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nshields=[\"http://s:1\", \"http://s:1\"]",
            "edge.shields",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nrole=\"mid\"",
            "edge.role",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nrole=\"shield\"\nshields=[\"http://s:1\"]",
            "edge.shields",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nlisten=\"0.0.0.0:8080\"",
            "edge.public_url",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\npublic_url=\"http://e:1/x\"",
            "edge.public_url",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nheartbeat_interval_ms=5",
            "edge.heartbeat_interval_ms",
        ),
        // Ports outside 1-65535 are refused, not read as "no port" (80).
        (
            "[edge]\norigins=[\"http://127.0.0.1:65536\"]",
            "edge.origins",
        ),
        ("[edge]\norigins=[\"http://127.0.0.1:0\"]", "edge.origins"),
        ("[edge]\norigins=[\"http://a:99999999999\"]", "edge.origins"),
        ("[edge]\norigins=[\"http://a:8x\"]", "edge.origins"),
        ("[edge]\norigins=[\"http://[::1]:65536\"]", "edge.origins"),
        (
            "[edge]\norigins=[\"http://a:1\"]\nshields=[\"http://s:65536\"]",
            "edge.shields",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nshields=[\"http://s:0\"]",
            "edge.shields",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\npublic_url=\"http://e:65536\"",
            "edge.public_url",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\npublic_url=\"http://e:0\"",
            "edge.public_url",
        ),
        // An admin API on the network without a token.
        (
            "[edge]\norigins=[\"http://a:1\"]\nadmin=\"0.0.0.0:9080\"",
            "edge.admin",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nadmin=\"10.1.2.3:9080\"\nadmin_token=\"\"",
            "edge.admin",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nadmin=\"[::]:9080\"",
            "edge.admin",
        ),
        // Connection limits and timeouts.
        (
            "[edge]\norigins=[\"http://a:1\"]\nhead_timeout_ms=99",
            "edge.head_timeout_ms",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nhead_timeout_ms=600001",
            "edge.head_timeout_ms",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nkeepalive_timeout_ms=0",
            "edge.keepalive_timeout_ms",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nkeepalive_timeout_ms=3600001",
            "edge.keepalive_timeout_ms",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nmax_connections=0",
            "edge.max_connections",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nmax_connections=10000001",
            "edge.max_connections",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nmax_client_connections=0",
            "edge.max_client_connections",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nmax_connections=100\nmax_client_connections=101",
            "edge.max_client_connections",
        ),
        (
            "[edge]\norigins=[\"http://a:1\"]\nmax_client_connections=65537",
            "edge.max_client_connections",
        ),
    ]);
}

#[test]
fn origin_ports_are_read_strictly() {
    let port = |u: &str| parse_origin(u).map(|o| o.port);
    assert_eq!(port("http://a"), Some(80));
    assert_eq!(port("http://a/"), Some(80));
    assert_eq!(port("http://a:"), Some(80));
    assert_eq!(port("http://a:1"), Some(1));
    assert_eq!(port("http://a:65535"), Some(65535));
    assert_eq!(port("http://a:0080"), Some(80));
    assert_eq!(port("http://[::1]"), Some(80));
    assert_eq!(port("http://[::1]:8080"), Some(8080));
    assert_eq!(port("http://u:p@a:9000"), Some(9000));
    assert_eq!(port("http://a:0"), None);
    assert_eq!(port("http://a:65536"), None);
    assert_eq!(port("http://a:4294967376"), None);
    assert_eq!(port("http://[::1]:0"), None);
    assert_eq!(port("http://a:-1"), None);
    assert_eq!(port("http://a:+80"), None);
    assert_eq!(
        parse_origin("http://[::1]:8080").map(|o| o.host),
        Some("::1".to_string())
    );
    assert_eq!(port("https://a"), Some(443));
    assert_eq!(port("https://a:"), Some(443));
    assert_eq!(port("https://a:8443"), Some(8443));
    assert_eq!(port("https://a:0"), None);
    assert_eq!(port("ftp://a"), None);
    assert_eq!(port("https://a/x"), None);
    let tls = |u: &str| parse_origin(u).map(|o| o.tls);
    assert_eq!(tls("https://a"), Some(true));
    assert_eq!(tls("http://a:443"), Some(false));
}

#[test]
fn the_port_error_says_what_is_allowed() {
    let msg = from_text(
        "[edge]\norigins=[\"http://127.0.0.1:65536\"]",
        &Overrides::default(),
    )
    .map(|_| String::new())
    .unwrap_or_else(|e| e.to_string());
    assert!(
        msg.contains("http://127.0.0.1:65536") && msg.contains("1 to 65535"),
        "{msg}"
    );
}

#[test]
fn an_admin_api_on_the_network_needs_a_token_or_the_opt_in() -> Result<(), ConfigError> {
    let open = "[edge]\norigins=[\"http://a:1\"]\nadmin=\"0.0.0.0:9080\"";
    let msg = from_text(open, &Overrides::default())
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string());
    assert!(
        msg.contains("0.0.0.0:9080")
            && msg.contains("bind it to loopback, set edge.admin_token (or [[api_tokens]]), or start with --insecure-admin to accept an unauthenticated admin API on the network"),
        "{msg}"
    );
    let opt_in = Overrides {
        insecure_admin: true,
        ..Default::default()
    };
    assert!(from_text(open, &opt_in)?.edge.insecure_admin);
    // The command line's address is held to the same rule.
    let flag = Overrides {
        admin: Some("10.0.0.1:9080".into()),
        ..ov("http://a:1")
    };
    assert!(load(None, &flag).is_err());

    let with_token = format!("{open}\nadmin_token=\"s3cret\"");
    for o in [Overrides::default(), opt_in.clone()] {
        let e = from_text(&with_token, &o)?.edge;
        assert!(!e.insecure_admin);
        assert_eq!(e.admin_token.as_deref(), Some("s3cret"));
    }
    // Loopback, in any spelling, needs neither; port 0 (an ephemeral port) stays allowed.
    for admin in [
        "127.0.0.1:0",
        "127.9.9.9:9080",
        "[::1]:9080",
        "[::ffff:127.0.0.1]:9080",
    ] {
        let text =
            format!("[edge]\norigins=[\"http://a:1\"]\nadmin=\"{admin}\"\nlisten=\"127.0.0.1:1\"");
        let e = from_text(&text, &opt_in)?.edge;
        assert!(!e.insecure_admin, "{admin}");
    }
    Ok(())
}

#[test]
fn connection_limits_and_timeouts() -> Result<(), ConfigError> {
    let d = from_text("[edge]\norigins=[\"http://a:1\"]", &Overrides::default())?.edge;
    assert_eq!(d.head_timeout, Duration::from_secs(10));
    assert_eq!(d.keepalive_timeout, Duration::from_secs(30));
    assert_eq!(d.max_connections, 65_536);
    assert_eq!(d.max_client_connections, 1024);
    let e = from_text(
        "[edge]\norigins=[\"http://a:1\"]\nhead_timeout_ms=100\nkeepalive_timeout_ms=3600000\nmax_connections=10000000\nmax_client_connections=10000000",
        &Overrides::default(),
    )?
    .edge;
    assert_eq!(e.head_timeout, Duration::from_millis(100));
    assert_eq!(e.keepalive_timeout, Duration::from_secs(3600));
    assert_eq!(e.max_client_connections, 10_000_000);
    // A small edge's per-client default shrinks to what the edge holds.
    let small = from_text(
        "[edge]\norigins=[\"http://a:1\"]\nmax_connections=100",
        &Overrides::default(),
    )?;
    assert_eq!(small.edge.max_client_connections, 100);
    Ok(())
}

#[test]
fn a_shield_file_run_as_an_edge_names_the_role() -> Result<(), ConfigError> {
    let dir = tempdir()?;
    let shield: PathBuf = dir.path().join("shield.toml");
    std::fs::write(
        &shield,
        "[edge]\nrole=\"shield\"\norigins=[\"http://a:1\"]\n",
    )
    .ok();
    let as_edge = Overrides {
        role: Some(Role::Edge),
        ..Default::default()
    };
    let msg = load(Some(&shield), &as_edge)
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string());
    assert!(
        msg.contains("edge.role") && msg.contains("eddy edge"),
        "{msg}"
    );
    let c = load(Some(&shield), &Overrides::default())?;
    assert_eq!(c.edge.role, Role::Shield);
    assert_eq!(c.edge.public_url, "http://127.0.0.1:8080");
    assert_eq!(c.edge.heartbeat_interval, Duration::from_millis(250));
    Ok(())
}
