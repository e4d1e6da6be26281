//! `[[signed_urls]]`: routes whose content needs a signed URL. Owns [`SignedUrlsFile`] (the keys
//! an operator writes) and [`SignedRoute`]: a host (or every host) and a path prefix, the HMAC
//! keys in rotation, and the name the token travels under (query parameter and cookie).
//!
//! ```toml
//! [[signed_urls]]
//! host = "video.example"            # optional: every host
//! prefix = "/video/"
//! keys = ["<64 hex digits>", "<the next key, during a rotation>"]
//! ```
//!
//! A token's parameter is never part of a cache key, on any host: [`crate::Config::path_options`]
//! drops every route's token name as it drops `CMCD`. Keys are secrets: they print as
//! `<secret>` and no error repeats them.

use std::path::Path;

use eddy_auth::Key;
use serde::Deserialize;

use crate::{ConfigError, invalid};

/// One `[[signed_urls]]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedUrlsFile {
    /// The host this route covers, as viewers send it without the port (default: every host).
    pub host: Option<String>,
    /// The path prefix it covers, such as `"/video/"`.
    pub prefix: String,
    /// HMAC-SHA256 keys in hex (at least 16 bytes each); a token signed with any of them is
    /// accepted, so a new key is added before the old one is removed.
    pub keys: Vec<String>,
    /// The query parameter and cookie a token travels in (default `__token__`).
    pub name: Option<String>,
}

/// A validated route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRoute {
    /// The canonical host without a port, or `None` for every host.
    pub host: Option<String>,
    /// The canonical path prefix.
    pub prefix: String,
    /// Keys in rotation.
    pub keys: Vec<Key>,
    /// The token's query parameter and cookie name, as canonical URLs spell it.
    pub name: String,
}

impl SignedRoute {
    /// Whether the route covers a request for canonical `host` (with or without a port) and
    /// canonical `path`.
    pub fn covers(&self, host: &str, path: &str) -> bool {
        self.host
            .as_deref()
            .is_none_or(|h| h == eddy_url::without_port(host))
            && path.starts_with(&self.prefix)
    }
}

/// Validate `[[signed_urls]]`.
pub(crate) fn signed_routes(
    name: &Path,
    files: Vec<SignedUrlsFile>,
) -> Result<Vec<SignedRoute>, ConfigError> {
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let host = match f.host {
            None => None,
            Some(h) => {
                let canonical = eddy_url::host(h.as_bytes(), eddy_url::HTTP_PORT)
                    .ok()
                    .filter(|c| !c.contains(':') || c.starts_with('['))
                    .ok_or_else(|| {
                        invalid(
                            name,
                            "signed_urls.host",
                            &h,
                            "a host name without a port, such as \"video.example\"",
                        )
                    })?;
                Some(canonical)
            }
        };
        let prefix = eddy_url::path(f.prefix.as_bytes(), eddy_url::PathOptions::default())
            .ok()
            .filter(|p| p.starts_with('/'))
            .ok_or_else(|| {
                invalid(
                    name,
                    "signed_urls.prefix",
                    &f.prefix,
                    "a path prefix starting with /, such as \"/video/\"",
                )
            })?;
        if f.keys.is_empty() {
            return Err(invalid(
                name,
                "signed_urls.keys",
                "[]",
                "at least one HMAC key in hex (openssl rand -hex 32)",
            ));
        }
        let mut keys = Vec::with_capacity(f.keys.len());
        for (i, k) in f.keys.iter().enumerate() {
            // The value is a secret: the error names its position, never its text.
            let key = Key::from_hex(k).map_err(|e| {
                invalid(
                    name,
                    "signed_urls.keys",
                    &format!("<key {} of {}>", i + 1, f.keys.len()),
                    &e.to_string(),
                )
            })?;
            keys.push(key);
        }
        let token = f
            .name
            .unwrap_or_else(|| eddy_auth::token::DEFAULT_NAME.to_string());
        let token = crate::site::param_name(&token)
            .map_err(|allowed| invalid(name, "signed_urls.name", &token, &allowed))?;
        out.push(SignedRoute {
            host,
            prefix,
            keys,
            name: token,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::each_fails_naming_its_key;

    const KEY: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn routes_read_and_never_print_their_keys() -> Result<(), ConfigError> {
        let f = crate::parse(
            &format!(
                "[[signed_urls]]\nhost = \"Video.Example\"\nprefix = \"/video/./\"\nkeys = [\"{KEY}\"]\n[[signed_urls]]\nprefix = \"/live/\"\nkeys = [\"{KEY}\", \"{KEY}ff\"]\nname = \"hdnts\"\n"
            ),
            Path::new("t.toml"),
        )?;
        let r = signed_routes(Path::new("t.toml"), f.signed_urls)?;
        assert_eq!(r[0].host.as_deref(), Some("video.example"));
        assert_eq!(r[0].prefix, "/video/");
        assert_eq!(r[0].name, "__token__");
        assert_eq!((r[1].host.as_deref(), r[1].keys.len()), (None, 2));
        assert_eq!(r[1].name, "hdnts");
        assert!(!format!("{r:?}").contains(KEY));
        assert!(r[0].covers("video.example:8443", "/video/a.m4s"));
        assert!(!r[0].covers("other.example", "/video/a.m4s"));
        assert!(!r[0].covers("video.example", "/videos"));
        assert!(r[1].covers("any.example", "/live/x"));
        Ok(())
    }

    #[test]
    fn bad_routes_fail_naming_their_key_and_never_the_secret() {
        let route =
            |body: &str| format!("[edge]\norigins = [\"http://a:1\"]\n[[signed_urls]]\n{body}\n");
        let cases = [
            (
                route(&format!("prefix = \"video\"\nkeys = [\"{KEY}\"]")),
                "signed_urls.prefix",
            ),
            (route("prefix = \"/v/\"\nkeys = []"), "signed_urls.keys"),
            (
                route("prefix = \"/v/\"\nkeys = [\"0011\"]"),
                "signed_urls.keys",
            ),
            (
                route("prefix = \"/v/\"\nkeys = [\"not hex at all, not at all\"]"),
                "signed_urls.keys",
            ),
            (
                route(&format!(
                    "host = \"a.test:8080\"\nprefix = \"/v/\"\nkeys = [\"{KEY}\"]"
                )),
                "signed_urls.host",
            ),
            (
                route(&format!(
                    "prefix = \"/v/\"\nkeys = [\"{KEY}\"]\nname = \"a=b\""
                )),
                "signed_urls.name",
            ),
        ];
        let cases: Vec<(&str, &str)> = cases.iter().map(|(t, k)| (t.as_str(), *k)).collect();
        each_fails_naming_its_key(&cases);
        let secret = "abcdefabcdefabcdefabcdefabcdefzz";
        let text = route(&format!("prefix = \"/v/\"\nkeys = [\"{secret}\"]"));
        let e = crate::parse(&text, Path::new("t.toml"))
            .and_then(|f| signed_routes(Path::new("t.toml"), f.signed_urls));
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("<key 1 of 1>") && !msg.contains(secret),
            "{msg}"
        );
    }
}
