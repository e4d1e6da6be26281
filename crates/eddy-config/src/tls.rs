//! `[tls]`: HTTPS on the viewer side. Owns [`TlsFile`] (the keys an operator writes) and
//! [`TlsConfig`]: the HTTPS port, the certificates (PEM files, chosen by SNI), ALPN, session
//! tickets, `Strict-Transport-Security` and the cleartext port's redirect to HTTPS.
//!
//! Only paths and names are checked here; the edge reads the files at start-up and on reload
//! (`eddy_edge::tls`), and a file that does not read stops start-up with its name.
//!
//! ```toml
//! [tls]
//! listen = "0.0.0.0:443"
//! certificates = [
//!   { cert = "/etc/eddy/video.example.pem", key = "/etc/eddy/video.example.key" },
//!   { cert = "/etc/eddy/wild.pem", key = "/etc/eddy/wild.key", names = ["*.cdn.example"] },
//! ]
//! hsts = "max-age=31536000"
//! redirect = true
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{ConfigError, addr, invalid};

/// `[tls]`: the HTTPS viewer port.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// Address of the HTTPS port, such as `"0.0.0.0:443"`. Without it the edge speaks only
    /// cleartext and the rest of `[tls]` must be empty.
    pub listen: Option<String>,
    /// The certificates, each a PEM chain (`cert`, leaf first) and its PEM private key (`key`),
    /// and optionally the names it answers for (`names`, `*.example.com` for one label of
    /// wildcard); without `names`, the DNS names the certificate itself lists. A handshake whose
    /// SNI matches no name gets the first certificate.
    #[serde(default)]
    pub certificates: Vec<CertificateFile>,
    /// Offer HTTP/2 by ALPN (default true); false offers only HTTP/1.1.
    pub h2: Option<bool>,
    /// Issue TLS session tickets, so a returning viewer resumes without a full handshake
    /// (default true). The ticket key rotates every 6 hours; the previous one is still accepted.
    pub tickets: Option<bool>,
    /// The `Strict-Transport-Security` value sent on HTTPS responses, such as
    /// `"max-age=31536000; includeSubDomains"` (default none).
    pub hsts: Option<String>,
    /// Answer every cleartext request on `edge.listen` with `308` to the same URL over HTTPS
    /// (default false). Purges and the admin API are not affected.
    pub redirect: Option<bool>,
}

/// One certificate of `[tls] certificates`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Names this certificate answers for; default: the DNS names it lists.
    #[serde(default)]
    pub names: Vec<String>,
}

/// Validated `[tls]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// The HTTPS port.
    pub listen: SocketAddr,
    /// The certificates, in the file's order (the first is the default).
    pub certificates: Vec<Certificate>,
    /// Offer h2 by ALPN.
    pub h2: bool,
    /// Issue session tickets.
    pub tickets: bool,
    /// `Strict-Transport-Security` on HTTPS responses.
    pub hsts: Option<String>,
    /// Redirect cleartext requests to HTTPS.
    pub redirect: bool,
}

/// A certificate to load.
#[derive(Debug, Clone, PartialEq)]
pub struct Certificate {
    /// The chain's PEM file.
    pub cert: PathBuf,
    /// The key's PEM file.
    pub key: PathBuf,
    /// The names given in config, lower-case (empty: the certificate's own).
    pub names: Vec<String>,
}

/// Whether `name` is a host name a certificate may answer for: labels of letters, digits and
/// hyphens, optionally `*.` for one label of wildcard.
pub fn valid_name(name: &str) -> bool {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    !rest.is_empty()
        && rest.len() <= 253
        && rest.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Validate `[tls]`; `None` when there is no HTTPS port.
pub(crate) fn tls_config(name: &Path, f: TlsFile) -> Result<Option<TlsConfig>, ConfigError> {
    let Some(listen) = f.listen else {
        if !f.certificates.is_empty() || f.hsts.is_some() || f.redirect == Some(true) {
            return Err(invalid(
                name,
                "tls.listen",
                "",
                "an address for the HTTPS port, such as \"0.0.0.0:443\", when [tls] has certificates, hsts or redirect",
            ));
        }
        return Ok(None);
    };
    let listen = addr(name, "tls.listen", &listen)?;
    if listen.port() == 0 {
        // The gate knows an HTTPS connection by the port it came to.
        return Err(invalid(
            name,
            "tls.listen",
            &listen.to_string(),
            "an address with a port of its own, such as \"0.0.0.0:443\" (not port 0)",
        ));
    }
    if f.certificates.is_empty() {
        return Err(invalid(
            name,
            "tls.certificates",
            "[]",
            "at least one { cert = \"chain.pem\", key = \"key.pem\" } for the HTTPS port",
        ));
    }
    let mut certificates = Vec::with_capacity(f.certificates.len());
    for c in f.certificates {
        for (key, p) in [
            ("tls.certificates.cert", &c.cert),
            ("tls.certificates.key", &c.key),
        ] {
            if p.as_os_str().is_empty() {
                return Err(invalid(name, key, "", "the path of a PEM file"));
            }
        }
        let mut names = Vec::with_capacity(c.names.len());
        for n in c.names {
            let lower = n.trim_end_matches('.').to_ascii_lowercase();
            if !valid_name(&lower) {
                return Err(invalid(
                    name,
                    "tls.certificates.names",
                    &n,
                    "host names such as \"video.example.com\" or \"*.example.com\" (one label of wildcard)",
                ));
            }
            names.push(lower);
        }
        certificates.push(Certificate {
            cert: c.cert,
            key: c.key,
            names,
        });
    }
    let hsts = match f.hsts {
        Some(v) if v.trim().is_empty() => None,
        Some(v) => {
            let ok = v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
                && v.split(';')
                    .any(|d| d.trim().to_ascii_lowercase().starts_with("max-age="));
            if !ok {
                return Err(invalid(
                    name,
                    "tls.hsts",
                    &v,
                    "a Strict-Transport-Security value with max-age, such as \"max-age=31536000\"",
                ));
            }
            Some(v.trim().to_string())
        }
        None => None,
    };
    Ok(Some(TlsConfig {
        listen,
        certificates,
        h2: f.h2.unwrap_or(true),
        tickets: f.tickets.unwrap_or(true),
        hsts,
        redirect: f.redirect.unwrap_or(false),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::each_fails_naming_its_key;

    const ONE: &str = "certificates = [{ cert = \"a.pem\", key = \"a.key\" }]\n";

    fn parse(text: &str) -> Result<Option<TlsConfig>, ConfigError> {
        let f = crate::parse(text, Path::new("t.toml"))?;
        tls_config(Path::new("t.toml"), f.tls)
    }

    #[test]
    fn an_https_port_gets_defaults() -> Result<(), ConfigError> {
        assert_eq!(parse("")?, None);
        let c = parse(
            "[tls]\nlisten = \"127.0.0.1:8443\"\ncertificates = [{ cert = \"a.pem\", key = \"a.key\", names = [\"*.Cdn.Example.\"] }]\n",
        )?;
        let Some(c) = c else {
            panic!("an HTTPS port");
        };
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 8443)));
        assert_eq!(c.certificates[0].names, vec!["*.cdn.example".to_string()]);
        assert!(c.h2 && c.tickets && !c.redirect);
        assert_eq!(c.hsts, None);
        let c = parse(&format!(
            "[tls]\nlisten = \"127.0.0.1:8443\"\n{ONE}hsts = \"max-age=600; includeSubDomains\"\nh2 = false\n"
        ))?;
        let Some(c) = c else {
            panic!("an HTTPS port");
        };
        assert_eq!(c.hsts.as_deref(), Some("max-age=600; includeSubDomains"));
        assert!(!c.h2);
        Ok(())
    }

    #[test]
    fn bad_values_fail_naming_their_key() {
        let port = "[edge]\norigins = [\"http://a:1\"]\n[tls]\nlisten = \"127.0.0.1:8443\"\n";
        let names = |n: &str| {
            format!(
                "{port}certificates = [{{ cert = \"a.pem\", key = \"a.key\", names = [\"{n}\"] }}]\n"
            )
        };
        let cases: Vec<(String, &str)> = vec![
            (port.to_string(), "tls.certificates"),
            (
                "[edge]\norigins = [\"http://a:1\"]\n[tls]\nredirect = true\n".into(),
                "tls.listen",
            ),
            (
                format!("[edge]\norigins = [\"http://a:1\"]\n[tls]\nlisten = \"x\"\n{ONE}"),
                "tls.listen",
            ),
            (
                "[edge]\norigins = [\"http://a:1\"]\n[tls]\nlisten = \"127.0.0.1:0\"\n".to_string()
                    + ONE,
                "tls.listen",
            ),
            (
                "[edge]\norigins = [\"http://a:1\"]\nlisten = \"127.0.0.1:8443\"\n[tls]\nlisten = \"0.0.0.0:8443\"\n".to_string()
                    + ONE,
                "tls.listen",
            ),
            (
                format!("{port}{ONE}hsts = \"includeSubDomains\"\n"),
                "tls.hsts",
            ),
            (
                format!("{port}certificates = [{{ cert = \"\", key = \"a.key\" }}]\n"),
                "tls.certificates.cert",
            ),
            (names("a.*.example"), "tls.certificates.names"),
            (names("*"), "tls.certificates.names"),
            (names("-a.example"), "tls.certificates.names"),
            (names("a..example"), "tls.certificates.names"),
            (names("a b"), "tls.certificates.names"),
            (names("**.x"), "tls.certificates.names"),
        ];
        let cases: Vec<(&str, &str)> = cases.iter().map(|(t, k)| (t.as_str(), *k)).collect();
        each_fails_naming_its_key(&cases);
    }
}
