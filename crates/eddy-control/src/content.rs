//! `content.updated` → purge requests.

use eddy_events::{ContentUpdated, PurgeRequested, PurgeTarget, TargetError};

/// The purges a content update asks for: one per URL, surrogate key and prefix, each checked by
/// [`PurgeTarget`]'s constructors. One bad entry refuses the whole update: nothing of it is
/// applied (an empty prefix must never become "purge everything").
pub fn purges_for(c: &ContentUpdated) -> Result<Vec<PurgeRequested>, TargetError> {
    let urls = c.urls.iter().map(|u| PurgeTarget::url(u));
    let keys = c.keys.iter().map(|k| PurgeTarget::key(k));
    let prefixes = c.prefixes.iter().map(|p| PurgeTarget::prefix(p));
    urls.chain(keys)
        .chain(prefixes)
        .map(|t| {
            t.map(|target| PurgeRequested {
                target,
                soft: c.soft,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_field() -> Result<(), TargetError> {
        let c = ContentUpdated {
            urls: vec!["http://Example.com:80/a/./b".into()],
            keys: vec!["show-1".into()],
            prefixes: vec!["example.com/v/".into()],
            soft: true,
            rewarm: false,
        };
        let p = purges_for(&c)?;
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].target, PurgeTarget::Url("example.com/a/b".into()));
        assert_eq!(p[1].target, PurgeTarget::Key("show-1".into()));
        assert_eq!(p[2].target, PurgeTarget::Prefix("example.com/v/".into()));
        assert!(p.iter().all(|x| x.soft));
        Ok(())
    }

    /// Issue 11 item 6: `prefixes: [""]` emptied the whole cache.
    #[test]
    fn one_bad_entry_refuses_the_update() {
        for c in [
            ContentUpdated {
                prefixes: vec!["".into()],
                ..Default::default()
            },
            ContentUpdated {
                urls: vec!["h/a".into(), " ".into()],
                ..Default::default()
            },
            ContentUpdated {
                keys: vec!["a b".into()],
                ..Default::default()
            },
        ] {
            assert!(purges_for(&c).is_err(), "{c:?}");
        }
    }
}
