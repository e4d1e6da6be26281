//! CMSD (CTA-5006): what a server tells the player about an object and about itself.
//!
//! - `CMSD-Static` describes the object and travels with it (an edge passes the origin's on, and
//!   may write its own when the origin sent none): [`Static`].
//! - `CMSD-Dynamic` describes one hop at the time of the response. Each hop appends one List
//!   member, `"<server id>";key=value...` ([`Dynamic`], [`Dynamic::append_to`]). The edge's lever
//!   is `mb`, the maximum bitrate it suggests (a player that honours it switches down at once,
//!   dash.js with `cmsd.abr.applyMb`), with `du` (under duress) and `etp` (estimated throughput)
//!   beside it.
//!
//! Both are RFC 8941 structures written with `sfv`'s serialisers, so a value that is not valid
//! there (a server id with a control character) is refused, never written half-escaped.

use sfv::{DictSerializer, Integer, KeyRef, ListSerializer, Parser, StringRef, TokenRef, key_ref};
use thiserror::Error;

use crate::cmcd::{
    OBJECT_TYPES, ObjectType, STREAM_TYPES, STREAMING_FORMATS, StreamType, StreamingFormat,
    token_of,
};

/// Why a CMSD value could not be written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CmsdError {
    #[error("CMSD {key} cannot be written as an RFC 8941 string ({reason}); use printable ASCII")]
    Invalid {
        key: &'static str,
        reason: &'static str,
    },
}

/// `CMSD-Static` keys an edge writes. `None`/`false`/empty: not sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Static {
    /// `at`: availability time of the object, epoch ms.
    pub at: Option<u64>,
    /// `br`: encoded bitrate, kbps.
    pub br: Option<u32>,
    /// `d`: duration, ms.
    pub d: Option<u32>,
    /// `ht`: how long the response was held (LL-HLS blocking reload), ms.
    pub ht: Option<u32>,
    /// `n`: the intermediary's id.
    pub n: Option<String>,
    /// `nor`: the next objects, relative URLs.
    pub nor: Vec<String>,
    /// `ot`: object type.
    pub ot: Option<ObjectType>,
    /// `sf`: streaming format.
    pub sf: Option<StreamingFormat>,
    /// `st`: stream type.
    pub st: Option<StreamType>,
    /// `su`: the object is at the start of a session or urgent.
    pub su: bool,
}

/// One hop's `CMSD-Dynamic` member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dynamic {
    /// The hop's id (the member's String).
    pub server: String,
    /// `du`: under duress; the player should move elsewhere if it can.
    pub du: bool,
    /// `etp`: estimated throughput to this client, kbps.
    pub etp: Option<u32>,
    /// `mb`: the maximum bitrate the player should pick, kbps.
    pub mb: Option<u32>,
    /// `rd`: response delay, ms.
    pub rd: Option<u32>,
    /// `rtt`: round-trip time to the client, ms.
    pub rtt: Option<u32>,
}

/// An Integer as RFC 8941 allows it (at most 15 digits).
fn int(n: u64) -> Integer {
    Integer::try_from(n.min(999_999_999_999_999)).unwrap_or(sfv::integer(0))
}

/// `s` as an RFC 8941 String for `key`.
fn string<'a>(key: &'static str, s: &'a str) -> Result<&'a StringRef, CmsdError> {
    StringRef::from_str(s).map_err(|_| CmsdError::Invalid {
        key,
        reason: "a character a String cannot hold",
    })
}

/// A token of one of the enumeration tables (always valid).
fn token(t: &'static str) -> &'static TokenRef {
    TokenRef::constant(t)
}

const fn key(k: &str) -> &KeyRef {
    key_ref(k)
}

impl Static {
    /// The `CMSD-Static` field value; `None` when there is nothing to send.
    pub fn header_value(&self) -> Result<Option<String>, CmsdError> {
        // Strings first: a value that cannot be written refuses the whole field.
        let n = self
            .n
            .as_deref()
            .map(|n| string("CMSD-Static n", n))
            .transpose()?;
        let nor = self
            .nor
            .iter()
            .map(|u| string("CMSD-Static nor", u))
            .collect::<Result<Vec<_>, _>>()?;
        let mut d = DictSerializer::new();
        for (k, v) in [("at", self.at), ("br", self.br.map(u64::from))] {
            if let Some(v) = v {
                d.bare_item(key(k), int(v));
            }
        }
        for (k, v) in [("d", self.d), ("ht", self.ht)] {
            if let Some(v) = v {
                d.bare_item(key(k), int(v.into()));
            }
        }
        if let Some(n) = n {
            d.bare_item(key("n"), n);
        }
        if !nor.is_empty() {
            let mut l = d.inner_list(key("nor"));
            for u in nor {
                l.bare_item(u);
            }
        }
        if let Some(ot) = self.ot {
            d.bare_item(key("ot"), token(token_of(OBJECT_TYPES, ot)));
        }
        if let Some(sf) = self.sf {
            d.bare_item(key("sf"), token(token_of(STREAMING_FORMATS, sf)));
        }
        if let Some(st) = self.st {
            d.bare_item(key("st"), token(token_of(STREAM_TYPES, st)));
        }
        if self.su {
            d.bare_item(key("su"), true);
        }
        Ok(d.finish())
    }
}

impl Dynamic {
    /// This hop's member alone, as a `CMSD-Dynamic` field value.
    pub fn header_value(&self) -> Result<String, CmsdError> {
        let mut out = String::new();
        self.write(&mut out)?;
        Ok(out)
    }

    /// The `CMSD-Dynamic` value to send on: the upstream hops' members (from `upstream`, the
    /// value the origin or shield sent) followed by ours. An upstream value that is not a valid
    /// List is dropped rather than passed on broken; a player reads the last member as the hop
    /// nearest to it.
    pub fn append_to(&self, upstream: Option<&[u8]>) -> Result<String, CmsdError> {
        let mut out = upstream
            .filter(|u| {
                Parser::new(u)
                    .parse_list_with_visitor(sfv::visitor::Ignored)
                    .is_ok()
            })
            .and_then(|u| std::str::from_utf8(u).ok())
            .map(|u| u.trim_matches([' ', '\t']).to_string())
            .unwrap_or_default();
        if !out.is_empty() {
            out.push_str(", ");
        }
        self.write(&mut out)?;
        Ok(out)
    }

    fn write(&self, out: &mut String) -> Result<(), CmsdError> {
        let server = string("CMSD-Dynamic server id", &self.server)?;
        let mut l = ListSerializer::with_buffer(out);
        let mut p = l.bare_item(server);
        if self.du {
            p = p.parameter(key("du"), true);
        }
        for (k, v) in [
            ("etp", self.etp),
            ("mb", self.mb),
            ("rd", self.rd),
            ("rtt", self.rtt),
        ] {
            if let Some(v) = v {
                p = p.parameter(key(k), int(v.into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn static_writes_only_what_is_set() {
        assert_eq!(Static::default().header_value().unwrap(), None);
        let s = Static {
            at: Some(1_733_011_200_000),
            br: Some(2306),
            d: Some(2000),
            ht: Some(480),
            n: Some("edge-1".into()),
            nor: vec!["seg_5.m4s".into()],
            ot: Some(ObjectType::Video),
            sf: Some(StreamingFormat::Hls),
            st: Some(StreamType::LowLatency),
            su: true,
        };
        assert_eq!(
            s.header_value().unwrap().unwrap(),
            "at=1733011200000, br=2306, d=2000, ht=480, n=\"edge-1\", nor=(\"seg_5.m4s\"), ot=v, sf=h, st=ll, su"
        );
        let bad = Static {
            n: Some("a\u{7}b".into()),
            ..Static::default()
        };
        assert!(bad.header_value().is_err());
    }

    #[test]
    fn dynamic_appends_to_upstream_hops() {
        let me = Dynamic {
            server: "edge-1".into(),
            du: true,
            etp: Some(5000),
            mb: Some(1200),
            rd: Some(3),
            rtt: Some(20),
        };
        assert_eq!(
            me.header_value().unwrap(),
            "\"edge-1\";du;etp=5000;mb=1200;rd=3;rtt=20"
        );
        assert_eq!(
            me.append_to(Some(b"\"origin\";rd=12")).unwrap(),
            "\"origin\";rd=12, \"edge-1\";du;etp=5000;mb=1200;rd=3;rtt=20"
        );
        // A broken upstream value is not passed on.
        assert_eq!(
            me.append_to(Some(b"\"origin;rd=12")).unwrap(),
            me.header_value().unwrap()
        );
        assert_eq!(me.append_to(Some(b"")).unwrap(), me.header_value().unwrap());
        let bad = Dynamic {
            server: "x\ny".into(),
            ..Dynamic::default()
        };
        assert!(bad.header_value().is_err());
    }

    proptest! {
        #[test]
        fn what_is_written_parses_back(server in "[ -~]{0,40}", mb in proptest::option::of(0u32..100_000), upstream in proptest::collection::vec(any::<u8>(), 0..80)) {
            let d = Dynamic { server: server.clone(), mb, ..Dynamic::default() };
            let v = d.append_to(Some(&upstream)).unwrap();
            let list: sfv::List = Parser::new(v.as_str()).parse().unwrap();
            let Some(sfv::ListEntry::Item(last)) = list.last() else { panic!("{v}") };
            prop_assert_eq!(last.bare_item.as_string().map(|s| s.as_str()), Some(server.as_str()));
            prop_assert_eq!(
                last.params.get(key("mb")).and_then(|b| b.as_integer()).map(i64::from),
                mb.map(i64::from)
            );
        }
    }
}
