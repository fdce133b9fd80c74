//! The keyset AEAD: Tink's AEAD wrapper over a whole keyset.
//!
//! Encryption uses the primary key and writes `prefix || raw ciphertext`
//! (prefix: `0x01 || key ID` for TINK, `0x00 || key ID` for LEGACY and
//! CRUNCHY, nothing for RAW), like Tink's `AeadWrapper`.
//!
//! Decryption finds the candidate key for the 5-byte prefix in one hash
//! lookup (key IDs are unique, so there is at most one), tries it, then
//! tries the RAW keys in keyset order. Only ENABLED keys decrypt. Errors
//! say nothing about which key failed, with one exception that callers
//! need: [`AeadError::UnknownKeyId`] when the prefix names a key ID that
//! is not an enabled key of this keyset and no RAW key decrypts (the data
//! was written under a keyset this one does not have).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use encstore_core::{Aead, AeadError};

use crate::error::KeysetError;
use crate::keyset::{KeyStatus, Keyset, KeysetInfo, OutputPrefix};
use crate::primitives::RawAead;

/// Length of a Tink output prefix (TINK, LEGACY, CRUNCHY).
pub const PREFIX_LEN: usize = 5;

/// What the first bytes of a ciphertext (or a stored object) say about its
/// key: the one classification of prefixes in encstore (the `encstore`
/// crate's `KeysetSnapshot::classify` also answers with it, for the AEAD
/// keyset and the large-object prefix of the streaming keyset alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CiphertextKey {
    /// The ciphertext starts with a Tink prefix naming `key_id`.
    Prefixed {
        /// The key ID in the prefix.
        key_id: u32,
        /// The prefix kind: [`OutputPrefix::Tink`] for `0x01`, or
        /// [`OutputPrefix::Legacy`] for `0x00` (LEGACY and CRUNCHY share it).
        prefix: OutputPrefix,
        /// The status of the keyset's key with this ID and prefix kind;
        /// `None` if the keyset has no such key. Only `Some(Enabled)`
        /// decrypts.
        status: Option<KeyStatus>,
    },
    /// Too short for a prefix, or a first byte that is neither `0x00` nor
    /// `0x01`: only a RAW key can have written it.
    Unprefixed,
}

/// A fast multiplicative hasher for the prefix map: keys are 5-byte
/// prefixes holding random key IDs, chosen by the keyset's owner, so no
/// flooding resistance is needed and SipHash would cost more than the
/// lookup.
#[derive(Default)]
pub(crate) struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 29;
    }
}

pub(crate) type PrefixMap<V> = HashMap<u64, V, BuildHasherDefault<PrefixHasher>>;

/// The prefix bytes packed into a u64 map key.
pub(crate) fn prefix_key(first: u8, key_id: u32) -> u64 {
    (u64::from(first) << 32) | u64::from(key_id)
}

/// One key of the map: its status (for [`KeysetAead::classify`]) and, if
/// ENABLED, its primitive.
struct Slot {
    status: KeyStatus,
    primitive: Option<Arc<dyn RawAead>>,
}

/// The AEAD of a keyset: encrypts with the primary key, decrypts with any
/// ENABLED key, byte-compatible with Tink's AEAD.
///
/// Built once from a validated [`Keyset`] with [`Keyset::aead`]; it is
/// `Send + Sync` and immutable, so wrap it in an `Arc` and share it
/// (`Arc<dyn encstore_core::Aead>`). `Debug` shows key IDs, never keys.
pub struct KeysetAead {
    /// The primary's prefix bytes (`prefix[..prefix_len]`).
    primary_prefix: [u8; PREFIX_LEN],
    /// 5 or 0 (RAW).
    primary_prefix_len: usize,
    /// The primary key's primitive.
    primary: Arc<dyn RawAead>,
    /// The primary key ID, for [`KeysetAead::primary_key_id`].
    primary_key_id: u32,
    /// Every non-RAW, non-destroyed or destroyed key, by prefix: decrypt
    /// looks up the candidate here in O(1).
    prefixed: PrefixMap<Slot>,
    /// ENABLED RAW keys, tried in keyset order after the prefixed
    /// candidate.
    raw: Vec<Arc<dyn RawAead>>,
    /// The keyset's description, for listings.
    info: KeysetInfo,
}

impl fmt::Debug for KeysetAead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enabled: Vec<u32> = self
            .info
            .keys
            .iter()
            .filter(|k| k.status == KeyStatus::Enabled)
            .map(|k| k.key_id)
            .collect();
        f.debug_struct("KeysetAead")
            .field("primary_key_id", &self.primary_key_id)
            .field("enabled_key_ids", &enabled)
            .finish()
    }
}

impl KeysetAead {
    pub(crate) fn new(keyset: &Keyset) -> Result<KeysetAead, KeysetError> {
        let mut prefixed: PrefixMap<Slot> = PrefixMap::default();
        prefixed.reserve(keyset.keys().len());
        let mut raw = Vec::new();
        let mut primary = None;
        let primary_key_id = keyset.primary_key_id();
        for k in keyset.keys() {
            let usable = match (k.aead(), k.status) {
                (Some(p), KeyStatus::Enabled) => Some(Arc::clone(p)),
                _ => None,
            };
            if k.id == primary_key_id {
                primary = usable.clone().map(|p| (p, k.prefix));
            }
            let (bytes, len) = k.prefix.prefix_array(k.id);
            if len == 0 {
                raw.extend(usable);
            } else {
                prefixed.insert(
                    prefix_key(bytes[0], k.id),
                    Slot {
                        status: k.status,
                        primitive: usable,
                    },
                );
            }
        }
        // A validated keyset always has an enabled primary.
        let (primary, prefix) = primary.ok_or(KeysetError::PrimaryMissing { primary_key_id })?;
        let (primary_prefix, primary_prefix_len) = prefix.prefix_array(primary_key_id);
        Ok(KeysetAead {
            primary_prefix,
            primary_prefix_len,
            primary,
            primary_key_id,
            prefixed,
            raw,
            info: keyset.info(),
        })
    }

    /// How many bytes [`KeysetAead::encrypt_in_place`] needs reserved
    /// before the plaintext: the primary's output prefix and nonce (or IV,
    /// or salt).
    pub fn encrypt_headroom(&self) -> usize {
        self.primary_prefix_len + self.primary.header_len()
    }

    /// Encrypts with the primary key without copying the plaintext, for
    /// callers that own their buffer. `buf` holds
    /// [`encrypt_headroom`](KeysetAead::encrypt_headroom) bytes of any
    /// value, then the plaintext; on success it holds exactly the Tink
    /// ciphertext that [`encrypt`](encstore_core::Aead::encrypt) would
    /// produce (prefix, nonce, ciphertext, tag). The primitives that can
    /// (AES-GCM, ChaCha20-Poly1305) encrypt in place; the others copy once.
    ///
    /// ```
    /// # use encstore_core::Aead;
    /// # let keyset = encstore_tink::Keyset::generate(&encstore_tink::templates::by_name("AES256_GCM").unwrap()).unwrap();
    /// let aead = keyset.aead().unwrap();
    /// let mut buf = vec![0u8; aead.encrypt_headroom()];
    /// buf.extend_from_slice(b"plaintext");
    /// aead.encrypt_in_place(&mut buf, b"ad").unwrap();
    /// assert_eq!(aead.decrypt(&buf, b"ad").unwrap(), b"plaintext");
    /// ```
    ///
    /// # Errors
    /// [`AeadError::NoHeadroom`] when `buf` is shorter than the headroom;
    /// the errors of [`encrypt`](encstore_core::Aead::encrypt) otherwise.
    pub fn encrypt_in_place(
        &self,
        buf: &mut Vec<u8>,
        associated_data: &[u8],
    ) -> Result<(), AeadError> {
        let needed = self.encrypt_headroom();
        if buf.len() < needed {
            return Err(AeadError::NoHeadroom { needed });
        }
        let len = self.primary_prefix_len;
        buf[..len].copy_from_slice(&self.primary_prefix[..len]);
        buf.reserve(self.primary.overhead() - self.primary.header_len());
        self.primary.seal_in_place(buf, len, associated_data)
    }

    /// The primary key's ID (the key new ciphertexts name).
    pub fn primary_key_id(&self) -> u32 {
        self.primary_key_id
    }

    /// The keyset this AEAD was built from, without key material.
    pub fn info(&self) -> &KeysetInfo {
        &self.info
    }

    /// Tells from the first 5 bytes of a ciphertext which key ID it names,
    /// if any, and the status of that key in this keyset. Cheap (one hash
    /// lookup, no decryption); for censuses of stored data.
    pub fn classify(&self, ciphertext_head: &[u8]) -> CiphertextKey {
        let Some((first, key_id)) = split_prefix(ciphertext_head) else {
            return CiphertextKey::Unprefixed;
        };
        let prefix = if first == 0x01 {
            OutputPrefix::Tink
        } else {
            OutputPrefix::Legacy
        };
        CiphertextKey::Prefixed {
            key_id,
            prefix,
            status: self
                .prefixed
                .get(&prefix_key(first, key_id))
                .map(|s| s.status),
        }
    }

    /// The candidate key for a prefixed ciphertext: `Ok(Some)` if an
    /// enabled key has the prefix, `Ok(None)` if there is no prefix, and
    /// `Err(key_id)` if the prefix names no enabled key.
    #[inline]
    fn candidate(&self, ciphertext: &[u8]) -> Result<Option<&Arc<dyn RawAead>>, u32> {
        match split_prefix(ciphertext) {
            None => Ok(None),
            Some((first, key_id)) => match self.prefixed.get(&prefix_key(first, key_id)) {
                Some(Slot {
                    primitive: Some(p), ..
                }) => Ok(Some(p)),
                _ => Err(key_id),
            },
        }
    }

    /// The error when nothing decrypted.
    fn failure(unknown: Option<u32>) -> AeadError {
        match unknown {
            Some(key_id) => AeadError::UnknownKeyId { key_id },
            None => AeadError::Authentication,
        }
    }
}

/// The kind and key ID of the Tink output prefix `ct` starts with, if it
/// has one: `0x01 ‖ BE32(id)` ([`OutputPrefix::Tink`]) or `0x00 ‖ BE32(id)`
/// ([`OutputPrefix::Legacy`], which CRUNCHY shares). A RAW ciphertext or a
/// plaintext may start with those bytes by chance: the prefix says which
/// key to try, never that the bytes are a ciphertext.
pub fn parse_prefix(ct: &[u8]) -> Option<(OutputPrefix, u32)> {
    split_prefix(ct).map(|(first, key_id)| {
        let kind = if first == 0x01 {
            OutputPrefix::Tink
        } else {
            OutputPrefix::Legacy
        };
        (kind, key_id)
    })
}

/// The first byte and key ID of a Tink prefix, if `ct` has one.
#[inline]
pub(crate) fn split_prefix(ct: &[u8]) -> Option<(u8, u32)> {
    match ct {
        [first @ (0x00 | 0x01), a, b, c, d, ..] => {
            Some((*first, u32::from_be_bytes([*a, *b, *c, *d])))
        }
        _ => None,
    }
}

impl Aead for KeysetAead {
    fn encrypt(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, AeadError> {
        let len = self.primary_prefix_len;
        let capacity = len
            .checked_add(plaintext.len())
            .and_then(|n| n.checked_add(self.primary.overhead()))
            .ok_or(AeadError::TooLarge)?;
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(&self.primary_prefix[..len]);
        self.primary
            .seal_append(plaintext, associated_data, &mut out)?;
        Ok(out)
    }

    fn decrypt(&self, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, AeadError> {
        let unknown = match self.candidate(ciphertext) {
            Ok(Some(p)) => {
                if let Ok(pt) = p.open(&ciphertext[PREFIX_LEN..], associated_data) {
                    return Ok(pt);
                }
                None
            }
            Ok(None) => None,
            Err(key_id) => Some(key_id),
        };
        for p in &self.raw {
            if let Ok(pt) = p.open(ciphertext, associated_data) {
                return Ok(pt);
            }
        }
        Err(Self::failure(unknown))
    }

    /// Decrypts in the ciphertext's own buffer when only one key can
    /// decrypt it (the common case); copies only when more than one key
    /// has to be tried, and never for the last one tried.
    fn decrypt_owned(
        &self,
        mut ciphertext: Vec<u8>,
        associated_data: &[u8],
    ) -> Result<Vec<u8>, AeadError> {
        let (prefixed, unknown) = match self.candidate(&ciphertext) {
            Ok(Some(p)) => (Some(Arc::clone(p)), None),
            Ok(None) => (None, None),
            Err(key_id) => (None, Some(key_id)),
        };
        let raw_count = self.raw.len();
        if let Some(p) = prefixed {
            if raw_count == 0 {
                p.open_in_place(&mut ciphertext, PREFIX_LEN, associated_data)?;
                return Ok(ciphertext);
            }
            if let Ok(pt) = p.open(&ciphertext[PREFIX_LEN..], associated_data) {
                return Ok(pt);
            }
        }
        let Some((last, rest)) = self.raw.split_last() else {
            return Err(Self::failure(unknown));
        };
        for p in rest {
            if let Ok(pt) = p.open(&ciphertext, associated_data) {
                return Ok(pt);
            }
        }
        match last.open_in_place(&mut ciphertext, 0, associated_data) {
            Ok(()) => Ok(ciphertext),
            Err(_) => Err(Self::failure(unknown)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<KeysetAead>();
        assert_send_sync::<Arc<dyn Aead>>();
    }

    #[test]
    fn split_prefix_kinds() {
        assert_eq!(split_prefix(&[1, 0, 0, 0, 42]), Some((1, 42)));
        assert_eq!(
            split_prefix(&[0, 0xff, 0xff, 0xff, 0xff, 9]),
            Some((0, u32::MAX))
        );
        assert_eq!(split_prefix(&[2, 0, 0, 0, 42]), None);
        assert_eq!(split_prefix(&[1, 0, 0, 0]), None);
        assert_eq!(split_prefix(&[]), None);
    }

    #[test]
    fn parse_prefix_names_the_kind() {
        assert_eq!(
            parse_prefix(&[1, 0, 0, 1, 0, 9]),
            Some((OutputPrefix::Tink, 256))
        );
        assert_eq!(
            parse_prefix(&[0, 0xff, 0xff, 0xff, 0xff]),
            Some((OutputPrefix::Legacy, u32::MAX))
        );
        assert_eq!(parse_prefix(b"hello"), None);
        assert_eq!(parse_prefix(&[1, 2, 3]), None);
    }
}
