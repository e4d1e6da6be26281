//! Object identity.

use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// The identity of one stored object: a 128-bit hash of its cache key and variance.
///
/// The edge derives it from the request (pingora's combined cache key hash); the simulator
/// derives it from a trace id. It is already uniformly distributed, so maps keyed by it use
/// [`KeyHasher`], which takes 8 of its bytes instead of hashing again. Alignment is 1, so it
/// packs tightly in queues.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ObjectKey(pub [u8; 16]);

impl ObjectKey {
    /// A key from a 64-bit id (trace ids, tests); the id is spread over both halves.
    pub fn from_u64(id: u64) -> Self {
        let a = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let b = (id ^ 0xD6E8_FEB8_6659_FD93).wrapping_mul(0xA076_1D64_78BD_642F);
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&a.to_le_bytes());
        out[8..].copy_from_slice(&b.to_le_bytes());
        ObjectKey(out)
    }

    /// Lower-case hex, used for file names.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(32);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }

    /// Parse 32 hex digits (file names in the disk tier).
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_val(pair[0])?;
            let lo = hex_val(pair[1])?;
            out[i] = (hi << 4) | lo;
        }
        Some(ObjectKey(out))
    }

    /// Shard selector.
    pub fn shard(&self, shards: usize) -> usize {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[8..]);
        (u64::from_le_bytes(b) as usize) % shards
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectKey({})", self.to_hex())
    }
}

/// A hasher for maps keyed by [`ObjectKey`]: the key is already a hash, so take its first 8 bytes.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // ObjectKey hashes as its 16 bytes (array Hash writes them in one call); fold anything else.
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
    }
    fn write_usize(&mut self, _: usize) {
        // length prefix of the array: constant, ignore
    }
}

/// `BuildHasher` for [`KeyHasher`].
pub type KeyBuildHasher = BuildHasherDefault<KeyHasher>;

/// A `HashMap` keyed by [`ObjectKey`].
pub type KeyMap<V> = std::collections::HashMap<ObjectKey, V, KeyBuildHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trips(bytes in proptest::array::uniform16(any::<u8>())) {
            let k = ObjectKey(bytes);
            prop_assert_eq!(ObjectKey::from_hex(&k.to_hex()), Some(k));
        }

        #[test]
        fn from_hex_never_panics(s in ".{0,40}") {
            let _ = ObjectKey::from_hex(&s);
        }
    }

    #[test]
    fn distinct_ids_give_distinct_keys() {
        let a = ObjectKey::from_u64(1);
        let b = ObjectKey::from_u64(2);
        assert_ne!(a, b);
    }
}
