//! `[sites."<host>"]`: options of one site, keyed by the host viewers send in `Host`. Owns
//! [`SiteFile`] (the keys an operator writes) and [`SiteConfig`]. Keys are normalised with
//! `eddy_url::host`, the same function that makes cache keys, so a site table applies to exactly
//! the requests whose keys carry its host; two spellings of one host are an error.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::{ConfigError, invalid};

/// `[sites."<host>"]`: options of the site `<host>` (`host` or `host:port`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    /// Merge runs of `/` in paths for this site's cache keys, purges and origin requests, for an
    /// origin that treats `/a//b` as `/a/b` (nginx's `merge_slashes`). Off by default (false)
    /// because RFC 3986 treats them as different resources.
    pub merge_slashes: Option<bool>,
    /// Query parameters that never name this site's content (session ids, tokens a player
    /// adds): dropped from cache keys, purges and origin requests, as `CMCD` always is. Names
    /// match exactly, after the same percent-encoding normalisation as URLs.
    pub ignore_query: Option<Vec<String>>,
}

/// Validated options of one site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteConfig {
    /// Merge runs of `/` in paths (cache keys, purges, origin requests).
    pub merge_slashes: bool,
    /// Query parameter names dropped from canonical URLs, normalised.
    pub ignore_query: Vec<String>,
}

/// Longest query parameter name `ignore_query` takes.
const MAX_PARAM_NAME: usize = 128;

/// A parameter name as canonical URLs spell it, or why it cannot be one.
pub(crate) fn param_name(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw.len() > MAX_PARAM_NAME || raw.contains(['&', '=', '#', '?']) {
        return Err(format!(
            "a query parameter name of 1 to {MAX_PARAM_NAME} characters without &, =, ? or #, as in ignore_query = [\"sid\", \"token\"]"
        ));
    }
    eddy_url::query_component(raw.as_bytes()).map_err(|e| format!("a query parameter name: {e}"))
}

/// Validate `[sites]`: every key a valid `host[:port]`, each host once, keyed by its canonical
/// form.
pub(crate) fn sites(
    name: &Path,
    files: BTreeMap<String, SiteFile>,
) -> Result<BTreeMap<String, SiteConfig>, ConfigError> {
    let mut out: BTreeMap<String, SiteConfig> = BTreeMap::new();
    // The key as written of each canonical host, to name both spellings of a duplicate.
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    for (key, f) in files {
        let host = eddy_url::host(key.as_bytes(), eddy_url::HTTP_PORT).map_err(|e| {
            invalid(
                name,
                "sites",
                &key,
                &format!(
                    "a site is named by the host viewers send, host or host:port, as in [sites.\"www.example.com\"]: {e}"
                ),
            )
        })?;
        if let Some(first) = written.get(&host) {
            return Err(invalid(
                name,
                "sites",
                &key,
                &format!(
                    "each site once: [sites.{first:?}] and [sites.{key:?}] both name the site {host:?} (case, a trailing dot and port 80 do not matter)"
                ),
            ));
        }
        let mut ignore_query = Vec::new();
        for raw in f.ignore_query.unwrap_or_default() {
            let name = param_name(&raw).map_err(|why| {
                invalid(
                    name,
                    "sites.ignore_query",
                    &format!("{raw:?} in [sites.{key:?}]"),
                    &why,
                )
            })?;
            if !ignore_query.contains(&name) {
                ignore_query.push(name);
            }
        }
        written.insert(host.clone(), key);
        out.insert(
            host,
            SiteConfig {
                merge_slashes: f.merge_slashes.unwrap_or(false),
                ignore_query,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::tests::{each_fails_naming_its_key, from_text};
    use crate::{ConfigError, Overrides};

    const ORIGIN: &str = "[edge]\norigins=[\"http://a:1\"]\n";

    #[test]
    fn sites_are_keyed_by_canonical_host() -> Result<(), ConfigError> {
        let c = from_text(
            &format!(
                "{ORIGIN}[sites.\"WWW.Example.com.:80\"]\nmerge_slashes = true\n[sites.\"img.example.com:8080\"]\n[sites.\"[::1]\"]\nmerge_slashes = true\n"
            ),
            &Overrides::default(),
        )?;
        assert_eq!(
            c.sites.keys().map(String::as_str).collect::<Vec<_>>(),
            ["[::1]", "img.example.com:8080", "www.example.com"]
        );
        assert!(c.path_options("www.example.com").merge_slashes);
        assert!(c.path_options("[::1]").merge_slashes);
        assert!(!c.path_options("img.example.com:8080").merge_slashes);
        assert_eq!(
            c.path_options("other.example.com"),
            eddy_url::PathOptions::default()
        );
        // What the cache key is made with picks the site's options.
        let key = eddy_url::content_url("http://WWW.example.com//a//b", |h| c.path_options(h))
            .map_err(|e| ConfigError::Parse {
                file: "url".into(),
                message: e.to_string(),
            })?;
        assert_eq!(key, "www.example.com/a/b");
        Ok(())
    }

    #[test]
    fn bad_site_keys_name_sites_and_the_value() {
        let cases = [
            format!("{ORIGIN}[sites.\"bad host\"]\n"),
            format!("{ORIGIN}[sites.\"\"]\n"),
            format!("{ORIGIN}[sites.\"a.example:0\"]\n"),
            format!("{ORIGIN}[sites.\"a.example:65536\"]\n"),
            format!("{ORIGIN}[sites.\"http://a.example\"]\n"),
            format!("{ORIGIN}[sites.\"a.example/path\"]\n"),
            format!("{ORIGIN}[sites.\"A.example\"]\n[sites.\"a.example:80\"]\n"),
        ];
        let cases: Vec<(&str, &str)> = cases.iter().map(|t| (t.as_str(), "sites")).collect();
        each_fails_naming_its_key(&cases);
        let dup = from_text(
            &format!("{ORIGIN}[sites.\"A.example\"]\n[sites.\"a.example.\"]\n"),
            &Overrides::default(),
        )
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string());
        assert!(
            dup.contains("A.example") && dup.contains("a.example.") && dup.contains("once"),
            "{dup}"
        );
    }

    #[test]
    fn a_site_names_query_parameters_its_keys_ignore() -> Result<(), ConfigError> {
        let c = from_text(
            &format!(
                "{ORIGIN}[sites.\"v.example\"]\nignore_query = [\"sid\", \"%74oken\", \"sid\", \"CMCD\"]\n"
            ),
            &Overrides::default(),
        )?;
        // Normalised like a URL's query (CMCD, always dropped anyway, stays a name).
        assert_eq!(c.sites["v.example"].ignore_query, ["sid", "token", "CMCD"]);
        let key = eddy_url::content_url("v.example/a.m3u8?token=1&sid=2&CMCD=3&q=4", |h| {
            c.path_options(h)
        })
        .map_err(|e| ConfigError::Parse {
            file: "url".into(),
            message: e.to_string(),
        })?;
        assert_eq!(key, "v.example/a.m3u8?q=4");
        let cases = [
            format!("{ORIGIN}[sites.\"v.example\"]\nignore_query = [\"\"]\n"),
            format!("{ORIGIN}[sites.\"v.example\"]\nignore_query = [\"a=b\"]\n"),
            format!("{ORIGIN}[sites.\"v.example\"]\nignore_query = [\"a&b\"]\n"),
            format!("{ORIGIN}[sites.\"v.example\"]\nignore_query = [\"a b\"]\n"),
            format!("{ORIGIN}[sites.\"v.example\"]\nignore_query = [\"%zz\"]\n"),
        ];
        let cases: Vec<(&str, &str)> = cases
            .iter()
            .map(|t| (t.as_str(), "sites.ignore_query"))
            .collect();
        each_fails_naming_its_key(&cases);
        Ok(())
    }

    #[test]
    fn an_unknown_site_option_is_a_parse_error() {
        let msg = from_text(
            &format!("{ORIGIN}[sites.\"a.example\"]\nmerge_slash = true\n"),
            &Overrides::default(),
        )
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string());
        assert!(msg.contains("merge_slash"), "{msg}");
    }
}
