//! Checks across the nodes of one deployment, as `eddy check --config a.toml --config b.toml`
//! runs them: [`check_topology`] (unique ids, no port clashes, every listed shield is a shield)
//! and [`file_role`] (which role a file configures, so each file is loaded by its own loader).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::{Config, ConfigError, Origin, Role, parse_origin};

/// Check the cache nodes of one deployment together, as `eddy check --config a.toml --config
/// b.toml ...` does: node ids are unique; no two nodes on one host share a port; every shield an
/// edge lists is a node whose role is `shield`, found by its listen address or public URL.
pub fn check_topology(nodes: &[(PathBuf, Config)]) -> Result<(), ConfigError> {
    let topo = |file: &PathBuf, detail: String| ConfigError::Topology {
        file: file.clone(),
        detail,
    };
    let mut ids: std::collections::HashMap<&str, &PathBuf> = std::collections::HashMap::new();
    let mut ports: std::collections::HashMap<SocketAddr, (&PathBuf, &'static str)> =
        std::collections::HashMap::new();
    for (file, c) in nodes {
        if let Some(other) = ids.insert(&c.edge.id, file) {
            return Err(topo(
                file,
                format!(
                    "edge.id {:?} is also the id of {}; every node needs its own id (purge catch-up and routing key on it)",
                    c.edge.id,
                    other.display()
                ),
            ));
        }
        for (addr, what) in [(c.edge.listen, "edge.listen"), (c.edge.admin, "edge.admin")] {
            // Wildcard and specific addresses on one port clash too.
            let clash = ports.iter().find(|(a, _)| {
                a.port() == addr.port()
                    && (*a == &addr || a.ip().is_unspecified() || addr.ip().is_unspecified())
            });
            if let Some((a, (other, key))) = clash {
                return Err(topo(
                    file,
                    format!(
                        "{what} {addr} clashes with {key} {a} of {}; give each node its own ports",
                        other.display()
                    ),
                ));
            }
            ports.insert(addr, (file, what));
        }
    }
    let find = |o: &Origin| {
        nodes.iter().find(|(_, c)| {
            let by_listen = o.port == c.edge.listen.port()
                && o.host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip == c.edge.listen.ip());
            let by_url = parse_origin(&c.edge.public_url)
                .is_some_and(|p| p.host.eq_ignore_ascii_case(&o.host) && p.port == o.port);
            by_listen || by_url
        })
    };
    for (file, c) in nodes {
        for s in &c.edge.shields {
            match find(s) {
                None => {
                    return Err(topo(
                        file,
                        format!(
                            "edge.shields lists {} but no node in this topology listens there; add the shield's file to the check or fix the address",
                            s.url
                        ),
                    ));
                }
                Some((other, sc)) if sc.edge.role != Role::Shield => {
                    return Err(topo(
                        file,
                        format!(
                            "edge.shields lists {}, which is {} ({}), an edge, not a shield; set role = \"shield\" there or list a shield",
                            s.url,
                            sc.edge.id,
                            other.display()
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// What a config file configures: `"router"`, `"dashboard"` or `"control"` when it has that section and no
/// `[edge]`, else `"node"` (an edge or shield).
pub fn file_role(path: &Path) -> Result<&'static str, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        file: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    Ok(if table.contains_key("edge") {
        "node"
    } else if table.contains_key("router") {
        "router"
    } else if table.contains_key("dashboard") {
        "dashboard"
    } else if table.contains_key("control") {
        "control"
    } else {
        "node"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{ov, tempdir};
    use crate::{Overrides, load};

    #[test]
    fn a_topology_names_duplicate_ids_port_clashes_and_unknown_shields() -> Result<(), ConfigError>
    {
        let node = |id: &str, listen: &str, admin: &str, role: Option<Role>, shields: &[&str]| {
            let mut c = load(
                None,
                &Overrides {
                    id: Some(id.into()),
                    listen: Some(listen.into()),
                    admin: Some(admin.into()),
                    role,
                    ..ov("http://10.0.0.9:80")
                },
            )?;
            c.edge.shields = shields.iter().filter_map(|s| parse_origin(s)).collect();
            Ok::<_, ConfigError>((PathBuf::from(format!("{id}.toml")), c))
        };
        let shield = node(
            "shield-1",
            "127.0.0.1:8090",
            "127.0.0.1:9090",
            Some(Role::Shield),
            &[],
        )?;
        let e1 = node(
            "edge-1",
            "127.0.0.1:8080",
            "127.0.0.1:9080",
            None,
            &["http://127.0.0.1:8090"],
        )?;
        let e2 = node(
            "edge-2",
            "127.0.0.1:8081",
            "127.0.0.1:9081",
            None,
            &["http://127.0.0.1:8090"],
        )?;
        check_topology(&[shield.clone(), e1.clone(), e2.clone()])?;

        let msg = |nodes: &[(PathBuf, Config)]| {
            check_topology(nodes)
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string())
        };
        let mut dup = e2.clone();
        dup.1.edge.id = "edge-1".into();
        let m = msg(&[shield.clone(), e1.clone(), dup]);
        assert!(m.contains("\"edge-1\"") && m.contains("edge-1.toml"), "{m}");

        let (p3, mut c3) = node("edge-3", "127.0.0.1:8083", "127.0.0.1:9083", None, &[])?;
        c3.edge.listen = SocketAddr::from(([0, 0, 0, 0], 8081));
        let clash = (p3, c3);
        let m = msg(&[e2.clone(), clash]);
        assert!(m.contains("8081") && m.contains("edge-2.toml"), "{m}");

        let m = msg(&[e1.clone(), e2.clone()]);
        assert!(m.contains("127.0.0.1:8090") && m.contains("no node"), "{m}");

        let pointed_at_edge = node(
            "edge-4",
            "127.0.0.1:8084",
            "127.0.0.1:9084",
            None,
            &["http://127.0.0.1:8081"],
        )?;
        let mut plain = e2;
        plain.1.edge.shields.clear();
        let m = msg(&[plain, pointed_at_edge]);
        assert!(
            m.contains("an edge, not a shield") && m.contains("edge-2"),
            "{m}"
        );
        Ok(())
    }

    #[test]
    fn a_file_is_loaded_by_the_role_it_configures() -> Result<(), ConfigError> {
        let dir = tempdir()?;
        for (text, role) in [
            ("[edge]\nid = \"a\"\n[router]\n", "node"),
            ("[router]\n[bus]\n", "router"),
            ("[dashboard]\n", "dashboard"),
            ("[control]\n", "control"),
            ("[cache]\n", "node"),
        ] {
            let p = dir.path().join("role.toml");
            std::fs::write(&p, text).ok();
            assert_eq!(file_role(&p)?, role, "{text}");
        }
        Ok(())
    }
}
