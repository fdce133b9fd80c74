//! A loaded keyset, as [`EncryptedStorage`](crate::EncryptedStorage) uses it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use encstore_core::{Aead, AeadError, PolicyRefusal};
use encstore_tink::{
    CiphertextKey, KeyStatus, Keyset, KeysetAead, KeysetError, KeysetInfo, OutputPrefix,
};
use zeroize::Zeroizing;

use crate::policy::{Policy, describe};

/// What the first five bytes of a stored object say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadClass {
    /// A Tink prefix naming a key of this keyset.
    Known {
        /// The key ID in the prefix.
        key_id: u32,
        /// That key's status in the keyset.
        status: KeyStatus,
    },
    /// A Tink prefix (`0x01` or `0x00` and four bytes) naming a key ID this
    /// keyset does not have.
    UnknownId {
        /// The key ID in the prefix.
        key_id: u32,
    },
    /// No Tink prefix: a plaintext object, or a RAW-key ciphertext.
    NoPrefix,
}

impl HeadClass {
    /// True when the object has no Tink prefix. Whether migration mode may
    /// take such an object for plaintext also depends on the keyset: see
    /// [`KeysetSnapshot::may_be_plaintext`].
    pub fn may_be_plaintext(&self) -> bool {
        matches!(self, HeadClass::NoPrefix)
    }
}

/// Which key a whole stored object is under, as the census and the store
/// check of key retirement see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectClass {
    /// Under key `key_id` of this keyset: named by the object's Tink
    /// prefix, or (for a RAW key) the key that decrypts it.
    Key {
        /// The key ID.
        key_id: u32,
        /// That key's status in the keyset.
        status: KeyStatus,
        /// True when a RAW key was found by trial decryption.
        raw: bool,
    },
    /// The object's first five bytes look like a Tink prefix naming a key
    /// ID this keyset does not have, and no RAW key decrypts it.
    UnknownKeyId {
        /// The key ID in the prefix.
        key_id: u32,
    },
    /// No Tink prefix, and the keyset holds a RAW key (in any status), but
    /// no RAW key that still has key material decrypts it: it may be a
    /// ciphertext under a RAW key that was destroyed or deleted, so it is
    /// never taken for plaintext.
    PrefixLessUnattributed,
    /// No Tink prefix and the keyset holds no RAW key: plaintext written
    /// before encryption was turned on (or data from elsewhere).
    Plaintext,
}

/// A RAW key that still has key material (ENABLED or DISABLED), with an
/// AEAD that tries that key alone: RAW ciphertexts carry no key ID, so
/// finding their key takes a trial decryption.
struct RawKey {
    key_id: u32,
    status: KeyStatus,
    aead: KeysetAead,
}

/// An immutable, validated keyset with its AEAD, ready for concurrent use.
/// [`ReloadableKeyset`](crate::ReloadableKeyset) swaps whole snapshots, so an
/// operation that took one finishes with it even if a reload happens.
pub struct KeysetSnapshot {
    info: KeysetInfo,
    aead: KeysetAead,
    /// For a RAW primary, an AEAD of the primary alone, to tell whether an
    /// object is already under it (a prefix cannot).
    primary_only: Option<KeysetAead>,
    /// The primary's output prefix; empty for a RAW primary.
    primary_prefix: Vec<u8>,
    /// Whether the keyset has an ENABLED RAW key.
    has_raw_keys: bool,
    /// Whether the keyset holds a RAW key in any status (destroyed
    /// included): then no prefix-less object is ever taken for plaintext.
    holds_raw_keys: bool,
    /// Every RAW key with key material, in keyset order.
    raw_keys: Vec<RawKey>,
    generation: u64,
    /// Set once the RAW-primary warning was logged for this keyset.
    raw_primary_warned: AtomicBool,
}

impl fmt::Debug for KeysetSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeysetSnapshot")
            .field("generation", &self.generation)
            .field("primary_key_id", &self.info.primary_key_id)
            .field("keys", &self.info.keys.len())
            .finish()
    }
}

/// Why a keyset was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The keyset file could not be read.
    #[error("cannot read keyset {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The keyset is invalid, or could not be unwrapped.
    #[error("invalid keyset: {0}")]
    Keyset(#[from] KeysetError),
    /// The master key could not unwrap the keyset.
    #[error("{0}")]
    Kek(#[from] encstore_core::KekError),
    /// A key is outside the active policy.
    #[error("keyset refused by policy {policy:?}: {refusal}")]
    Policy {
        /// The policy's name.
        policy: String,
        /// The refused key.
        refusal: PolicyRefusal,
    },
    /// `reload` was called on a keyset that has no file to reload from.
    #[error("this keyset was not loaded from a file, so it cannot be reloaded")]
    NoSource,
}

/// Checks every key that still has key material against `policy`.
pub(crate) fn check_policy(info: &KeysetInfo, policy: &Policy) -> Result<(), PolicyRefusal> {
    for k in &info.keys {
        if let Some(params) = &k.params
            && !policy.allows(params)
        {
            return Err(PolicyRefusal {
                key_id: k.key_id,
                key_type: describe(params),
            });
        }
    }
    Ok(())
}

impl KeysetSnapshot {
    /// Validates `keyset` against `policy` and builds its AEAD.
    ///
    /// # Errors
    /// [`LoadError::Policy`] naming the first key the policy refuses.
    pub fn new(keyset: &Keyset, policy: &Policy, generation: u64) -> Result<Self, LoadError> {
        let info = keyset.info();
        check_policy(&info, policy).map_err(|refusal| LoadError::Policy {
            policy: policy.name.clone(),
            refusal,
        })?;
        let aead = keyset.aead()?;
        let primary_prefix = info
            .keys
            .iter()
            .find(|k| k.primary)
            .map(|k| k.output_prefix.prefix_bytes(k.key_id))
            .unwrap_or_default();
        let has_raw_keys = info
            .keys
            .iter()
            .any(|k| k.output_prefix == OutputPrefix::Raw && k.status == KeyStatus::Enabled);
        let holds_raw_keys = info
            .keys
            .iter()
            .any(|k| k.output_prefix == OutputPrefix::Raw);
        let mut raw_keys = Vec::new();
        for k in &info.keys {
            if k.output_prefix == OutputPrefix::Raw && k.params.is_some() {
                raw_keys.push(RawKey {
                    key_id: k.key_id,
                    status: k.status,
                    aead: single_key_aead(keyset, k.key_id)?,
                });
            }
        }
        let primary_only = if primary_prefix.is_empty() {
            Some(single_key_aead(keyset, info.primary_key_id)?)
        } else {
            None
        };
        Ok(KeysetSnapshot {
            info,
            aead,
            primary_only,
            primary_prefix,
            has_raw_keys,
            holds_raw_keys,
            raw_keys,
            generation,
            raw_primary_warned: AtomicBool::new(false),
        })
    }

    /// The keyset, described without key material.
    pub fn info(&self) -> &KeysetInfo {
        &self.info
    }

    /// The primary key's ID.
    pub fn primary_key_id(&self) -> u32 {
        self.info.primary_key_id
    }

    /// Counts reloads: 1 for the first keyset, then one more per swap.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the primary key is RAW: the objects it writes carry no key
    /// ID.
    pub fn primary_is_raw(&self) -> bool {
        self.primary_prefix.is_empty()
    }

    /// Logs, once per loaded keyset, that the primary is RAW and what that
    /// means; called on the first write with it.
    pub(crate) fn warn_raw_primary_once(&self) {
        if self.primary_is_raw() && !self.raw_primary_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                key_id = self.info.primary_key_id,
                "the primary key {} is RAW: the objects stored with it do not name their key (no Tink prefix), so only trial decryption can tell which key they need, and they cannot be told from plaintext without this keyset; prefer a TINK key as the primary (docs/rotation.md, RAW keys)",
                self.info.primary_key_id
            );
        }
    }

    /// Whether an enabled RAW key may have written prefix-less objects.
    pub fn has_raw_keys(&self) -> bool {
        self.has_raw_keys
    }

    /// Whether the keyset holds a RAW key in any status (ENABLED, DISABLED
    /// or DESTROYED). While it does, a prefix-less object may be a RAW
    /// ciphertext, so migration mode never takes one for plaintext.
    pub fn holds_raw_keys(&self) -> bool {
        self.holds_raw_keys
    }

    /// The IDs of the keyset's RAW keys, in any status, in keyset order.
    pub fn raw_key_ids(&self) -> Vec<u32> {
        self.info
            .keys
            .iter()
            .filter(|k| k.output_prefix == OutputPrefix::Raw)
            .map(|k| k.key_id)
            .collect()
    }

    /// Whether trial decryption can attribute prefix-less objects: the
    /// keyset has a RAW key with key material (ENABLED or DISABLED).
    pub fn can_attribute_raw(&self) -> bool {
        !self.raw_keys.is_empty()
    }

    /// The RAW key (ENABLED or DISABLED, in keyset order) that decrypts
    /// `ciphertext` with `associated_data`, with its status. The trial
    /// plaintext is wiped.
    pub fn raw_key_for(
        &self,
        ciphertext: &[u8],
        associated_data: &[u8],
    ) -> Option<(u32, KeyStatus)> {
        self.raw_keys.iter().find_map(|k| {
            k.aead
                .decrypt(ciphertext, associated_data)
                .map(Zeroizing::new)
                .ok()
                .map(|_| (k.key_id, k.status))
        })
    }

    /// Whether migration mode may take an object with this head for
    /// plaintext (when it does not decrypt): only when the keyset holds no
    /// RAW key, and the object has no prefix or a prefix naming a key ID
    /// the keyset does not have (a plaintext value may start with 0x00 or
    /// 0x01; a prefix of a key the keyset has is taken as ciphertext).
    pub fn may_be_plaintext(&self, head: HeadClass) -> bool {
        !self.holds_raw_keys && matches!(head, HeadClass::NoPrefix | HeadClass::UnknownId { .. })
    }

    /// Whether the class of an object with this head depends on more than
    /// its first five bytes: prefix-less objects, and objects naming an
    /// unknown key ID (a RAW ciphertext's random nonce starts with 0x00 or
    /// 0x01 one time in 128), when a RAW key can be tried.
    pub fn needs_whole_object(&self, head: HeadClass) -> bool {
        self.can_attribute_raw()
            && matches!(head, HeadClass::NoPrefix | HeadClass::UnknownId { .. })
    }

    /// The class of an object from its head alone: exact when
    /// [`needs_whole_object`](KeysetSnapshot::needs_whole_object) is false
    /// for that head.
    pub fn class_from_head(&self, head: HeadClass) -> ObjectClass {
        match head {
            HeadClass::Known { key_id, status } => ObjectClass::Key {
                key_id,
                status,
                raw: false,
            },
            HeadClass::UnknownId { key_id } => ObjectClass::UnknownKeyId { key_id },
            HeadClass::NoPrefix if self.holds_raw_keys => ObjectClass::PrefixLessUnattributed,
            HeadClass::NoPrefix => ObjectClass::Plaintext,
        }
    }

    /// Classifies a whole stored object (with the associated data of its
    /// key name): by its prefix when it names a key of the keyset,
    /// otherwise by trial decryption with each RAW key that has key
    /// material.
    pub fn classify_object(&self, object: &[u8], associated_data: &[u8]) -> ObjectClass {
        let head = self.classify(object);
        if self.needs_whole_object(head)
            && let Some((key_id, status)) = self.raw_key_for(object, associated_data)
        {
            return ObjectClass::Key {
                key_id,
                status,
                raw: true,
            };
        }
        self.class_from_head(head)
    }

    /// The keyset AEAD.
    pub fn aead(&self) -> &KeysetAead {
        &self.aead
    }

    /// Classifies a stored object by its first five bytes (the keyset
    /// AEAD's own prefix lookup).
    pub fn classify(&self, head: &[u8]) -> HeadClass {
        match self.aead.classify(head) {
            CiphertextKey::Prefixed {
                key_id,
                status: Some(status),
                ..
            } => HeadClass::Known { key_id, status },
            CiphertextKey::Prefixed { key_id, .. } => HeadClass::UnknownId { key_id },
            _ => HeadClass::NoPrefix,
        }
    }

    /// True when the object certainly is under the primary key: its prefix
    /// is the primary's (for a RAW primary, always false: see
    /// [`KeysetSnapshot::decrypts_with_primary`]).
    pub fn is_under_primary(&self, ciphertext: &[u8]) -> bool {
        !self.primary_prefix.is_empty() && ciphertext.starts_with(&self.primary_prefix)
    }

    /// For a RAW primary: whether the primary alone decrypts `ciphertext`
    /// (the trial plaintext is wiped).
    pub fn decrypts_with_primary(&self, ciphertext: &[u8], associated_data: &[u8]) -> bool {
        match &self.primary_only {
            Some(a) => a
                .decrypt(ciphertext, associated_data)
                .map(Zeroizing::new)
                .is_ok(),
            None => self.is_under_primary(ciphertext),
        }
    }

    /// Whether the keyset decrypts `ciphertext` with `associated_data` (the
    /// trial plaintext is wiped).
    pub fn aead_decrypts(&self, ciphertext: &[u8], associated_data: &[u8]) -> bool {
        self.aead
            .decrypt(ciphertext, associated_data)
            .map(Zeroizing::new)
            .is_ok()
    }

    /// Encrypts with the primary key; returns the ciphertext and the
    /// primary key's ID.
    pub(crate) fn encrypt(&self, plaintext: &[u8], ad: &[u8]) -> Result<(Vec<u8>, u32), AeadError> {
        let ct = self.aead.encrypt(plaintext, ad)?;
        Ok((ct, self.info.primary_key_id))
    }

    /// Decrypts an owned ciphertext whose head was classified as `class`;
    /// returns the plaintext and, when the prefix names it, the key ID that
    /// decrypted it.
    pub(crate) fn decrypt_owned(
        &self,
        ciphertext: Vec<u8>,
        ad: &[u8],
        class: HeadClass,
    ) -> Result<(Vec<u8>, Option<u32>), AeadError> {
        let key_id = match class {
            HeadClass::Known { key_id, .. } => Some(key_id),
            _ => None,
        };
        let pt = self.aead.decrypt_owned(ciphertext, ad)?;
        Ok((pt, key_id))
    }
}

/// An AEAD of key `key_id` of `keyset` alone (enabled and primary in a
/// copy of the keyset): it decrypts what that key wrote and nothing else.
/// The copy shares the keys' primitives; no key material is duplicated
/// beyond the keyset's own clone.
fn single_key_aead(keyset: &Keyset, key_id: u32) -> Result<KeysetAead, KeysetError> {
    let mut one = keyset.clone();
    one.enable(key_id)?;
    one.promote(key_id)?;
    let others: Vec<u32> = one
        .info()
        .keys
        .iter()
        .map(|k| k.key_id)
        .filter(|id| *id != key_id)
        .collect();
    for id in others {
        one.delete(id)?;
    }
    one.aead()
}
