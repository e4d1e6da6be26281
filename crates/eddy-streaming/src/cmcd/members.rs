//! A CMCD dictionary read with `sfv`'s visitor: the members in order, borrowed from the input,
//! without building a map or owning a key (a CMCD-carrying request is read on every hit, so the
//! map `sfv::Dictionary` builds cost more than the rest of the reading).
//!
//! Only what CMCD reads is kept: each member's bare item or inner-list items, and each item's
//! `r` parameter (a v2 `nor` range). A key sent twice keeps its last value and position-free
//! semantics (RFC 8941 §4.2.2): the earlier member is forgotten before anything is read of it.

use sfv::BareItemFromInput;
use sfv::visitor::{
    DictionaryVisitor, EntryVisitor, Ignored, InnerListVisitor, ItemVisitor, ParameterVisitor,
};

/// Most members one dictionary may have; more refuse it.
pub const MAX_MEMBERS: usize = 128;
/// Most items (members' and inner lists' together) one dictionary may have.
pub const MAX_ITEMS: usize = 512;

/// Past [`MAX_MEMBERS`] or [`MAX_ITEMS`].
#[derive(Debug)]
pub struct TooMany;

impl std::fmt::Display for TooMany {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "more than {MAX_MEMBERS} keys or {MAX_ITEMS} values in one dictionary"
        )
    }
}

impl std::error::Error for TooMany {}

/// One item: its bare value and its `r` parameter.
#[derive(Debug)]
pub struct Bare<'de> {
    pub value: BareItemFromInput<'de>,
    pub r: Option<BareItemFromInput<'de>>,
}

/// One member's value.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a, 'de> {
    Item(&'a Bare<'de>),
    InnerList(&'a [Bare<'de>]),
}

#[derive(Debug)]
struct Member<'de> {
    key: &'de str,
    inner_list: bool,
    items: std::ops::Range<usize>,
}

/// The members of one dictionary, in order.
#[derive(Debug, Default)]
pub struct Members<'de> {
    members: Vec<Member<'de>>,
    items: Vec<Bare<'de>>,
}

impl<'de> Members<'de> {
    /// Each member's key and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'de str, Entry<'_, 'de>)> {
        self.members.iter().filter_map(|m| {
            let items = self.items.get(m.items.clone())?;
            Some((
                m.key,
                if m.inner_list {
                    Entry::InnerList(items)
                } else {
                    Entry::Item(items.first()?)
                },
            ))
        })
    }
}

impl<'de> DictionaryVisitor<'de> for Members<'de> {
    type Out = Self;
    type Error = TooMany;

    fn entry(&mut self, key: &'de sfv::KeyRef) -> Result<impl EntryVisitor<'de>, TooMany> {
        let key = key.as_str();
        if let Some(i) = self.members.iter().position(|m| m.key == key) {
            let earlier = self.members.remove(i);
            // The last member's items are the last items: taken back (a key repeated in a row
            // costs nothing); an earlier member's stay, unread, within MAX_ITEMS.
            if i == self.members.len() {
                self.items.truncate(earlier.items.start);
            }
        }
        if self.members.len() >= MAX_MEMBERS {
            return Err(TooMany);
        }
        let at = self.items.len();
        self.members.push(Member {
            key,
            inner_list: false,
            items: at..at,
        });
        Ok(Slot(self))
    }

    fn finish(self) -> Result<Self, TooMany> {
        Ok(self)
    }
}

/// The value of the member just opened.
struct Slot<'a, 'de>(&'a mut Members<'de>);

impl<'de> EntryVisitor<'de> for Slot<'_, 'de> {
    type Error = TooMany;

    fn item(self) -> Result<impl ItemVisitor<'de>, TooMany> {
        Ok(ItemTo(self.0))
    }

    fn inner_list(self) -> Result<impl InnerListVisitor<'de>, TooMany> {
        if let Some(m) = self.0.members.last_mut() {
            m.inner_list = true;
        }
        Ok(Slot(self.0))
    }
}

impl<'de> InnerListVisitor<'de> for Slot<'_, 'de> {
    type Error = TooMany;

    fn item(&mut self) -> Result<impl ItemVisitor<'de>, TooMany> {
        Ok(ItemTo(&mut *self.0))
    }

    fn finish(self) -> Result<impl ParameterVisitor<'de>, TooMany> {
        // An inner list's own parameters (v2 type parameters go on its items) are not read.
        Ok(Ignored)
    }
}

/// An item of the member just opened.
struct ItemTo<'a, 'de>(&'a mut Members<'de>);

impl<'de, 'a> ItemVisitor<'de> for ItemTo<'a, 'de> {
    type Out = ();
    type Error = TooMany;

    fn bare_item(
        self,
        value: BareItemFromInput<'de>,
    ) -> Result<impl ParameterVisitor<'de, Out = ()>, TooMany> {
        Ok(Params {
            to: self.0,
            bare: Bare { value, r: None },
        })
    }
}

/// An item's parameters, then the item goes to its member.
struct Params<'a, 'de> {
    to: &'a mut Members<'de>,
    bare: Bare<'de>,
}

impl<'de> ParameterVisitor<'de> for Params<'_, 'de> {
    type Out = ();
    type Error = TooMany;

    fn parameter(
        &mut self,
        key: &'de sfv::KeyRef,
        value: BareItemFromInput<'de>,
    ) -> Result<(), TooMany> {
        if key.as_str() == "r" {
            self.bare.r = Some(value);
        }
        Ok(())
    }

    fn finish(self) -> Result<(), TooMany> {
        if self.to.items.len() >= MAX_ITEMS {
            return Err(TooMany);
        }
        self.to.items.push(self.bare);
        let end = self.to.items.len();
        if let Some(m) = self.to.members.last_mut() {
            m.items.end = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn read(s: &str) -> Vec<(String, String)> {
        let m = sfv::Parser::new(s)
            .parse_dictionary_with_visitor(Members::default())
            .unwrap();
        m.iter()
            .map(|(k, e)| {
                let v = match e {
                    Entry::Item(b) => format!("{:?}/{:?}", b.value, b.r),
                    Entry::InnerList(l) => format!("{}", l.len()),
                };
                (k.to_string(), v)
            })
            .collect()
    }

    #[test]
    fn members_in_order_and_a_repeated_key_keeps_its_last_value() {
        let m = read("a=1, b=(1;v 2;a), a=?0;r=\"0-1\", c");
        assert_eq!(
            m.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["b", "a", "c"]
        );
        assert_eq!(m[0].1, "2");
        assert!(m[1].1.starts_with("Boolean(false)/Some(String("), "{m:?}");
        // An earlier member of the wrong shape is forgotten with its items.
        let m = read("nor=(\"a\" \"b\"), nor=\"c\"");
        assert_eq!(m.len(), 1);
        assert!(m[0].1.starts_with("String(StringRef(\"c\"))"), "{m:?}");
    }

    #[test]
    fn too_many_members_or_items_refuse_the_dictionary() {
        let many: Vec<String> = (0..=MAX_MEMBERS).map(|i| format!("k{i}")).collect();
        let many = many.join(",");
        let p = sfv::Parser::new(many.as_str()).parse_dictionary_with_visitor(Members::default());
        assert!(p.is_err());
        let items = vec!["1"; MAX_ITEMS + 1].join(" ");
        let s = format!("a=({items})");
        let p = sfv::Parser::new(s.as_str()).parse_dictionary_with_visitor(Members::default());
        assert!(p.is_err());
        // The same keys again and again are one member each.
        let same = vec!["a=1"; 1000].join(",");
        assert_eq!(read(&same).len(), 1);
    }
}
