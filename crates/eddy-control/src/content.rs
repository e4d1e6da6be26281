//! `content.updated` → purge requests.

use eddy_events::{ContentUpdated, PurgeRequested, PurgeTarget};

/// The purges a content update asks for: one per URL, surrogate key and prefix.
pub fn purges_for(c: &ContentUpdated) -> Vec<PurgeRequested> {
    let url = |u: &String| PurgeTarget::Url(normalise(u));
    c.urls
        .iter()
        .map(url)
        .chain(c.keys.iter().map(|k| PurgeTarget::Key(k.clone())))
        .chain(
            c.prefixes
                .iter()
                .map(|p| PurgeTarget::Prefix(normalise_prefix(p))),
        )
        .map(|target| PurgeRequested {
            target,
            soft: c.soft,
        })
        .collect()
}

/// `http://Host:80/p` → `host/p`, the form edges key objects by.
pub fn normalise(u: &str) -> String {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .unwrap_or(u);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix(":80").unwrap_or(&host);
    format!("{host}{path}")
}

/// Like [`normalise`], for a prefix: no `/` is added, so `host` or `host:` prefixes keep working.
pub fn normalise_prefix(p: &str) -> String {
    let rest = p
        .strip_prefix("http://")
        .or_else(|| p.strip_prefix("https://"))
        .unwrap_or(p);
    match rest.find('/') {
        Some(i) => {
            let host = rest[..i].to_ascii_lowercase();
            let host = host.strip_suffix(":80").unwrap_or(&host);
            format!("{host}{}", &rest[i..])
        }
        None => rest.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_field() {
        let c = ContentUpdated {
            urls: vec!["http://Example.com:80/a".into()],
            keys: vec!["show-1".into()],
            prefixes: vec!["example.com/v/".into()],
            soft: true,
            rewarm: false,
        };
        let p = purges_for(&c);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].target, PurgeTarget::Url("example.com/a".into()));
        assert_eq!(p[1].target, PurgeTarget::Key("show-1".into()));
        assert_eq!(p[2].target, PurgeTarget::Prefix("example.com/v/".into()));
        assert!(p.iter().all(|x| x.soft));
        assert_eq!(
            normalise_prefix("http://CDN.example.com"),
            "cdn.example.com"
        );
        assert_eq!(normalise_prefix("127.0.0.1:"), "127.0.0.1:");
        assert_eq!(normalise_prefix("Host:80/a/"), "host/a/");
    }
}
