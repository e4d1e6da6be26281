//! `eddy sign`: print a URL with a signed token (`eddy_auth::token`, the Auth Token 2.0 layout
//! the edge's `[[signed_urls]]` routes check).

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use eddy_auth::Key;
use eddy_auth::token::{self, Claims, Scope};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// What a query value must not carry raw (the token's own `=~!*/` stay readable).
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^');

/// `eddy sign` flags.
#[derive(Args)]
pub struct SignArgs {
    /// The URL to sign: `https://host/path`, `host/path` or `/path`.
    url: String,
    /// The HMAC key in hex, one of the route's `keys` (or EDDY_SIGNING_KEY, which keeps it out
    /// of the shell's history).
    #[arg(long, env = "EDDY_SIGNING_KEY", hide_env_values = true)]
    key: String,
    /// Paths the token grants, `*` for any run of characters (repeatable), such as
    /// `/video/show-1/*` for a whole stream. Without it the token grants the URL's path only.
    #[arg(long)]
    acl: Vec<String>,
    /// Seconds the token is valid for.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// Not valid before this Unix time (default: no start).
    #[arg(long)]
    start: Option<u64>,
    /// The one client address the token is for.
    #[arg(long)]
    ip: Option<IpAddr>,
    /// The query parameter the token travels in (the route's `name`).
    #[arg(long, default_value = token::DEFAULT_NAME)]
    name: String,
}

/// The path of `url` (`scheme://host/path?q`, `host/path` or `/path`), without its query.
fn path_of(url: &str) -> Option<&str> {
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => url,
    };
    let at = if rest.starts_with('/') {
        0
    } else {
        rest.find('/')?
    };
    let path = &rest[at..];
    Some(path.split(['?', '#']).next().unwrap_or(path))
}

/// Print the signed URL.
pub fn run(a: SignArgs) -> anyhow::Result<()> {
    let key = Key::from_hex(&a.key).context("--key (or EDDY_SIGNING_KEY)")?;
    let Some(path) = path_of(&a.url) else {
        bail!("{:?} has no path: give https://host/path or /path", a.url);
    };
    if a.ttl == 0 {
        bail!("--ttl must be at least 1 second");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let claims = Claims {
        start: a.start,
        expires: a.start.unwrap_or(now).max(now) + a.ttl,
        scope: if a.acl.is_empty() {
            Scope::Url(path.to_string())
        } else {
            Scope::Acl(a.acl)
        },
        ip: a.ip,
    };
    let t = token::sign(&claims, &key)?;
    let sep = if a.url.contains('?') { '&' } else { '?' };
    let fragment_free = a.url.split('#').next().unwrap_or(&a.url);
    println!(
        "{fragment_free}{sep}{}={}",
        a.name,
        utf8_percent_encode(&t, QUERY_VALUE)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_come_from_every_url_form() {
        assert_eq!(
            path_of("https://v.test/video/a.m3u8?x=1"),
            Some("/video/a.m3u8")
        );
        assert_eq!(path_of("v.test/video/a.m3u8"), Some("/video/a.m3u8"));
        assert_eq!(path_of("/video/a.m3u8#t"), Some("/video/a.m3u8"));
        assert_eq!(path_of("https://v.test"), None);
    }
}
