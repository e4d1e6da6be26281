//! # eddy-auth: who may read what, and who may do what
//!
//! - [`token`]: signed URLs. A token in the widely used Auth Token 2.0 layout
//!   (`st=…~exp=…~acl=/video/show-1/*~hmac=…`, HMAC-SHA256 over the fields before `hmac`, with a
//!   hex key) grants a path, or every path an ACL pattern matches, until it expires, optionally
//!   to one client address. [`token::sign`] makes one; [`token::verify`] checks one against a
//!   request with every key in rotation and says why it refuses ([`token::Refusal`]).
//! - [`api`]: scoped API tokens. Named bearer tokens kept as SHA-256 hashes, each with scopes
//!   (`purge`, `events`, `read`, `admin`); [`api::ApiTokens::check`] says who asked and whether
//!   the scope is theirs.
//!
//! Pure: no I/O and no clock of its own (the caller passes the time), so every rule is tested
//! here, and a secret never leaves through a `Debug`, an error or a log line: [`Key`] prints as
//! `<secret>`.

pub mod api;
pub mod token;

/// An HMAC key. Its bytes never print.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// Why a key does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not an even number of hex digits.
    #[error(
        "a key must be an even number of hex digits (as Auth Token 2.0 keys are), such as the output of `openssl rand -hex 32`"
    )]
    NotHex,
    /// Shorter than 16 bytes.
    #[error("a key must be at least 16 bytes (32 hex digits); {0} bytes is too easy to guess")]
    TooShort(usize),
}

impl Key {
    /// A key from its hex form (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<Key, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| KeyError::NotHex)?;
        if bytes.len() < 16 {
            return Err(KeyError::TooShort(bytes.len()));
        }
        Ok(Key(bytes))
    }

    fn hmac(&self) -> ring::hmac::Key {
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hex_long_enough_and_never_print() {
        assert_eq!(Key::from_hex("zz"), Err(KeyError::NotHex));
        assert_eq!(Key::from_hex("abc"), Err(KeyError::NotHex));
        assert_eq!(Key::from_hex("00ff"), Err(KeyError::TooShort(2)));
        let k = Key::from_hex(" 000102030405060708090a0b0c0d0e0f\n");
        assert!(k.is_ok());
        assert_eq!(format!("{k:?}"), "Ok(<secret>)");
    }
}
