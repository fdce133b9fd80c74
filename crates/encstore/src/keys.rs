//! A loaded keyset, as [`EncryptedStorage`](crate::EncryptedStorage) uses it.

mod classify;
mod validated;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use encstore_core::{Aead, AeadError, PolicyRefusal};
use encstore_tink::envelope::{EnvelopeError, KeysetAsyncAead};
use encstore_tink::primitives::KeyParams;
use encstore_tink::{
    CiphertextKey, KeyStatus, Keyset, KeysetAead, KeysetError, KeysetInfo, KeysetStreamingAead,
    OutputPrefix, SegmentLayout,
};

use crate::policy::Policy;

pub use classify::ObjectClass;
pub(crate) use validated::{AeadKeys, StreamingKeyEntry, StreamingKeys, check_policy};

/// The 5-byte prefix of a large object under streaming key `key_id`:
/// `0x01 ‖ BE32(key_id)` (`docs/format.md`, "Large stored objects").
pub(crate) fn large_prefix(key_id: u32) -> [u8; 5] {
    let id = key_id.to_be_bytes();
    [0x01, id[0], id[1], id[2], id[3]]
}

/// An immutable, validated keyset with its AEAD, ready for concurrent use:
/// the store's AEAD keyset and, when it has one, its streaming keyset
/// (large objects). [`ReloadableKeyset`](crate::ReloadableKeyset) swaps
/// whole snapshots, so an operation that took one finishes with it even if
/// a reload happens.
///
/// Key IDs are unique across the two keysets (checked when a snapshot is
/// built), so the key ID in an object's prefix names one key of one of
/// them. [`classify`](KeysetSnapshot::classify) and the census see the keys
/// of both.
pub struct KeysetSnapshot {
    aead: Arc<AeadKeys>,
    streaming: Option<Arc<StreamingKeys>>,
    generation: u64,
    /// Set once the RAW-primary warning was logged for this keyset.
    raw_primary_warned: AtomicBool,
}

impl fmt::Debug for KeysetSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeysetSnapshot")
            .field("generation", &self.generation)
            .field("primary_key_id", &self.aead.info.primary_key_id)
            .field("keys", &self.aead.info.keys.len())
            .field(
                "streaming_primary_key_id",
                &self.streaming.as_ref().map(|s| s.info.primary_key_id),
            )
            .field(
                "streaming_keys",
                &self.streaming.as_ref().map(|s| s.info.keys.len()),
            )
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
    /// The keyset has an ENABLED KMS envelope key, but was given without a
    /// way to open master keys (the synchronous constructors): use
    /// [`ReloadableKeyset::open`](crate::ReloadableKeyset::open) or
    /// [`ReloadableKeyset::new_with_master_keys`](crate::ReloadableKeyset::new_with_master_keys).
    #[error(
        "{0}: load it with ReloadableKeyset::open or new_with_master_keys, which open the master keys of its KMS envelope keys"
    )]
    NoMasterKeys(KeysetError),
    /// `reload` was called on a keyset that has no file to reload from.
    #[error("this keyset was not loaded from a file, so it cannot be reloaded")]
    NoSource,
    /// The streaming keyset was refused (the error says why).
    #[error("streaming keyset: {0}")]
    Streaming(Box<LoadError>),
    /// The keyset's KMS envelope keys cannot be used: a master key could
    /// not be opened, or the keyset was given without a way to open them
    /// (see [`ReloadableKeyset::new_with_master_keys`](crate::ReloadableKeyset::new_with_master_keys)).
    #[error("KMS envelope keys: {0}")]
    Envelope(#[from] EnvelopeError),
    /// A key ID is in both the AEAD keyset and the streaming keyset. The
    /// key ID in an object's prefix says which keyset decrypts it, so IDs
    /// must be unique across the two.
    #[error(
        "key ID {key_id} is in both the AEAD keyset and the streaming keyset; key IDs must be unique across a store's keysets (an object's prefix names its key by ID): replace one of the two keys"
    )]
    KeyIdCollision {
        /// The key ID in both keysets.
        key_id: u32,
    },
}

impl LoadError {
    /// The policy refusal behind this error, if it is one (of either
    /// keyset).
    pub fn policy_refusal(&self) -> Option<(&str, &PolicyRefusal)> {
        match self {
            LoadError::Policy { policy, refusal } => Some((policy, refusal)),
            LoadError::Streaming(inner) => inner.policy_refusal(),
            _ => None,
        }
    }
}

impl KeysetSnapshot {
    /// Validates `keyset` (an AEAD keyset) against `policy` and builds its
    /// AEAD. The snapshot has no streaming keyset.
    ///
    /// # Errors
    /// [`LoadError::Policy`] naming the first key the policy refuses.
    pub fn new(keyset: &Keyset, policy: &Policy, generation: u64) -> Result<Self, LoadError> {
        Self::with_streaming(keyset, None, policy, generation)
    }

    /// Validates an AEAD keyset and, when given, a streaming keyset against
    /// `policy`, and builds their primitives.
    ///
    /// # Errors
    /// [`LoadError::Policy`] naming the first key the policy refuses;
    /// [`LoadError::Streaming`] wrapping what is wrong with the streaming
    /// keyset (such as an AEAD keyset given as the streaming keyset);
    /// [`LoadError::KeyIdCollision`] when a key ID is in both keysets.
    pub fn with_streaming(
        keyset: &Keyset,
        streaming: Option<&Keyset>,
        policy: &Policy,
        generation: u64,
    ) -> Result<Self, LoadError> {
        let aead = Arc::new(AeadKeys::new(keyset, policy, None)?);
        let streaming = streaming
            .map(|s| StreamingKeys::new(s, policy).map(Arc::new))
            .transpose()
            .map_err(|e| LoadError::Streaming(Box::new(e)))?;
        Self::from_parts(aead, streaming, generation)
    }

    /// A snapshot of two validated parts, refusing key IDs in both.
    pub(crate) fn from_parts(
        aead: Arc<AeadKeys>,
        streaming: Option<Arc<StreamingKeys>>,
        generation: u64,
    ) -> Result<Self, LoadError> {
        if let Some(s) = &streaming
            && let Some(k) = aead
                .info
                .keys
                .iter()
                .find(|k| s.keys.contains_key(&k.key_id))
        {
            return Err(LoadError::KeyIdCollision { key_id: k.key_id });
        }
        Ok(KeysetSnapshot {
            aead,
            streaming,
            generation,
            raw_primary_warned: AtomicBool::new(false),
        })
    }

    /// The AEAD part, to combine with another streaming part.
    pub(crate) fn aead_part(&self) -> &Arc<AeadKeys> {
        &self.aead
    }

    /// The streaming part, to combine with another AEAD part.
    pub(crate) fn streaming_part(&self) -> Option<&Arc<StreamingKeys>> {
        self.streaming.as_ref()
    }

    /// The AEAD keyset, described without key material.
    pub fn info(&self) -> &KeysetInfo {
        &self.aead.info
    }

    /// The AEAD keyset's primary key ID (small objects are written with it).
    pub fn primary_key_id(&self) -> u32 {
        self.aead.info.primary_key_id
    }

    /// The streaming keyset, described without key material; `None` when
    /// the store has none.
    pub fn streaming_info(&self) -> Option<&KeysetInfo> {
        self.streaming.as_ref().map(|s| &s.info)
    }

    /// The streaming keyset's primary key ID (large objects are written
    /// with it); `None` when the store has no streaming keyset.
    pub fn streaming_primary_key_id(&self) -> Option<u32> {
        self.streaming.as_ref().map(|s| s.info.primary_key_id)
    }

    /// Whether the snapshot has a streaming keyset (large objects can be
    /// written).
    pub fn has_streaming(&self) -> bool {
        self.streaming.is_some()
    }

    /// The streaming keyset's AEAD (its primary encrypts new large
    /// objects).
    pub fn streaming_aead(&self) -> Option<&KeysetStreamingAead> {
        self.streaming.as_ref().map(|s| &s.primary)
    }

    /// Whether `key_id` is a key of the streaming keyset (in any status).
    pub fn is_streaming_key(&self, key_id: u32) -> bool {
        self.streaming
            .as_ref()
            .is_some_and(|s| s.keys.contains_key(&key_id))
    }

    /// The streaming key a stored object's first five bytes name: its key
    /// ID and status, when the object starts with `0x01` and the ID of a
    /// key of the streaming keyset (the large-object layout); `None`
    /// otherwise (a small object, or an unknown key).
    pub fn streaming_key_of(&self, head: &[u8]) -> Option<(u32, KeyStatus)> {
        let s = self.streaming.as_ref()?;
        let id = large_key_id(head)?;
        s.keys.get(&id).map(|k| (id, k.status))
    }

    /// The entry of streaming key `key_id`.
    pub(crate) fn streaming_entry(&self, key_id: u32) -> Option<&StreamingKeyEntry> {
        self.streaming.as_ref()?.keys.get(&key_id)
    }

    /// The streaming AEAD of streaming key `key_id` alone, when it is
    /// ENABLED: what decrypts a large object whose prefix names that key
    /// (no trial of the other keys).
    pub fn streaming_key_aead(&self, key_id: u32) -> Option<Arc<KeysetStreamingAead>> {
        self.streaming_entry(key_id)?.aead.clone()
    }

    /// The segment layout of streaming key `key_id`, when it is ENABLED.
    pub fn streaming_layout(&self, key_id: u32) -> Option<SegmentLayout> {
        self.streaming_entry(key_id)?
            .aead
            .as_ref()
            .map(|a| a.layout())
    }

    /// Counts reloads: 1 for the first keyset, then one more per swap
    /// (of either keyset).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the primary key is RAW: the objects it writes carry no key
    /// ID.
    pub fn primary_is_raw(&self) -> bool {
        self.aead.primary_prefix.is_empty()
    }

    /// Logs, once per loaded keyset, that the primary is RAW and what that
    /// means; called on the first write with it.
    pub(crate) fn warn_raw_primary_once(&self) {
        if self.primary_is_raw() && !self.raw_primary_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                key_id = self.aead.info.primary_key_id,
                "the primary key {} is RAW: the objects stored with it do not name their key (no Tink prefix), so only trial decryption can tell which key they need, and they cannot be told from plaintext without this keyset; prefer a TINK key as the primary (docs/rotation.md, RAW keys)",
                self.aead.info.primary_key_id
            );
        }
    }

    /// Whether an enabled RAW key may have written prefix-less objects.
    pub fn has_raw_keys(&self) -> bool {
        self.aead.has_raw_keys
    }

    /// Whether the keyset holds a RAW key in any status (ENABLED, DISABLED
    /// or DESTROYED). While it does, a prefix-less object may be a RAW
    /// ciphertext, so migration mode never takes one for plaintext.
    pub fn holds_raw_keys(&self) -> bool {
        self.aead.holds_raw_keys
    }

    /// The IDs of the keyset's RAW keys, in any status, in keyset order.
    pub fn raw_key_ids(&self) -> Vec<u32> {
        self.aead
            .info
            .keys
            .iter()
            .filter(|k| k.output_prefix == OutputPrefix::Raw)
            .map(|k| k.key_id)
            .collect()
    }

    /// Whether the keyset has an ENABLED RAW KMS envelope key (Tink's
    /// own envelope templates are RAW): a prefix-less object, or one whose
    /// first bytes look like a prefix of an unknown key (a RAW envelope
    /// ciphertext starts with `0x00 0x00`), may be under it.
    pub fn has_raw_envelope_keys(&self) -> bool {
        self.aead.envelope.is_some()
            && self.aead.info.keys.iter().any(|k| {
                k.output_prefix == OutputPrefix::Raw
                    && k.status == KeyStatus::Enabled
                    && matches!(k.params, Some(KeyParams::KmsEnvelope { .. }))
            })
    }

    /// Whether trial decryption can attribute prefix-less objects: the
    /// keyset has a RAW key with key material (ENABLED or DISABLED).
    pub fn can_attribute_raw(&self) -> bool {
        !self.aead.raw_keys.is_empty()
    }

    /// The AEAD keyset's synchronous AEAD; `None` when the keyset has an
    /// ENABLED KMS envelope key (then [`KeysetSnapshot::envelope_aead`]
    /// encrypts and decrypts).
    pub fn aead(&self) -> Option<&KeysetAead> {
        self.aead.aead.as_ref()
    }

    /// The AEAD keyset's async AEAD, when it has an ENABLED KMS envelope
    /// key: every encryption with an envelope primary and every decryption
    /// of an envelope ciphertext is a KMS call.
    pub fn envelope_aead(&self) -> Option<&Arc<KeysetAsyncAead>> {
        self.aead.envelope.as_ref()
    }

    /// Encrypts with the primary key; returns the ciphertext and the
    /// primary key's ID.
    pub(crate) fn encrypt(&self, plaintext: &[u8], ad: &[u8]) -> Result<(Vec<u8>, u32), AeadError> {
        // EncryptedStorage takes the async path when there is an envelope
        // AEAD; without a synchronous AEAD there is nothing to encrypt with.
        let ct = self
            .aead
            .aead
            .as_ref()
            .ok_or(AeadError::NoPrimary)?
            .encrypt(plaintext, ad)?;
        Ok((ct, self.aead.info.primary_key_id))
    }

    /// Decrypts an owned ciphertext whose head was classified as `class`;
    /// returns the plaintext and, when the prefix names it, the key ID that
    /// decrypted it.
    pub(crate) fn decrypt_owned(
        &self,
        ciphertext: Vec<u8>,
        ad: &[u8],
        class: CiphertextKey,
    ) -> Result<(Vec<u8>, Option<u32>), AeadError> {
        let key_id = match class {
            CiphertextKey::Prefixed {
                key_id,
                status: Some(_),
                ..
            } => Some(key_id),
            _ => None,
        };
        let pt = self
            .aead
            .aead
            .as_ref()
            .ok_or(AeadError::Authentication)?
            .decrypt_owned(ciphertext, ad)?;
        Ok((pt, key_id))
    }
}

/// The key ID of a large-object prefix (`0x01 ‖ BE32(id)`), if `head`
/// starts with one.
pub(crate) fn large_key_id(head: &[u8]) -> Option<u32> {
    match head {
        [0x01, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}
