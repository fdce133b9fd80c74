//! A loaded keyset, as [`EncryptedStorage`](crate::EncryptedStorage) uses it.

use std::fmt;

use encstore_core::{Aead, AeadError, PolicyRefusal};
use encstore_tink::{
    CiphertextKey, KeyStatus, Keyset, KeysetAead, KeysetError, KeysetInfo, OutputPrefix,
};

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
    /// True when the object may be a plaintext one (migration mode).
    pub fn may_be_plaintext(&self) -> bool {
        matches!(self, HeadClass::NoPrefix)
    }
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
    has_raw_keys: bool,
    generation: u64,
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
        let primary_only = if primary_prefix.is_empty() {
            let mut only = keyset.clone();
            let others: Vec<u32> = info
                .keys
                .iter()
                .filter(|k| !k.primary)
                .map(|k| k.key_id)
                .collect();
            for id in others {
                only.delete(id)?;
            }
            Some(only.aead()?)
        } else {
            None
        };
        Ok(KeysetSnapshot {
            info,
            aead,
            primary_only,
            primary_prefix,
            has_raw_keys,
            generation,
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

    /// Whether an enabled RAW key may have written prefix-less objects.
    pub fn has_raw_keys(&self) -> bool {
        self.has_raw_keys
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

    /// For a RAW primary: whether the primary alone decrypts `ciphertext`.
    pub fn decrypts_with_primary(&self, ciphertext: &[u8], associated_data: &[u8]) -> bool {
        match &self.primary_only {
            Some(a) => a.decrypt(ciphertext, associated_data).is_ok(),
            None => self.is_under_primary(ciphertext),
        }
    }

    /// Whether the keyset decrypts `ciphertext` with `associated_data`.
    pub fn aead_decrypts(&self, ciphertext: &[u8], associated_data: &[u8]) -> bool {
        self.aead.decrypt(ciphertext, associated_data).is_ok()
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
