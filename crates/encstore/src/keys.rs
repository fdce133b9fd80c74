//! A loaded keyset, as [`EncryptedStorage`](crate::EncryptedStorage) uses it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use encstore_core::{Aead, AeadError, PolicyRefusal};
use encstore_tink::envelope::{EnvelopeError, EnvelopeInfo, KeysetAsyncAead};
use encstore_tink::primitives::KeyParams;
use encstore_tink::{
    CiphertextKey, KeyStatus, Keyset, KeysetAead, KeysetError, KeysetInfo, KeysetStreamingAead,
    OutputPrefix, SegmentLayout,
};
use zeroize::Zeroizing;

use crate::masters::MasterKeys;
use crate::policy::{Policy, describe};

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

/// The AEAD keyset of a snapshot, validated, with its AEAD.
pub(crate) struct AeadKeys {
    info: KeysetInfo,
    /// The synchronous AEAD, when the keyset has no ENABLED KMS envelope
    /// key.
    aead: Option<KeysetAead>,
    /// The async AEAD, when it has one (its calls reach a KMS).
    envelope: Option<Arc<KeysetAsyncAead>>,
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
}

/// One key of the streaming keyset.
pub(crate) struct StreamingKeyEntry {
    /// Its status in the streaming keyset.
    pub(crate) status: KeyStatus,
    /// For an ENABLED key, a streaming AEAD of that key alone: the object's
    /// prefix names the key, so decryption never tries another one.
    pub(crate) aead: Option<Arc<KeysetStreamingAead>>,
}

/// The streaming keyset of a snapshot (large objects, see
/// `docs/format.md`, "Large stored objects"), validated.
pub(crate) struct StreamingKeys {
    info: KeysetInfo,
    /// The whole keyset's streaming AEAD: its primary encrypts.
    primary: KeysetStreamingAead,
    /// `0x01 ‖ BE32(primary key ID)`: the prefix of new large objects.
    primary_prefix: [u8; 5],
    /// Every key of the keyset (any status), by ID.
    keys: HashMap<u32, StreamingKeyEntry>,
}

impl StreamingKeys {
    /// Validates a streaming keyset against `policy` and builds its
    /// streaming AEADs.
    ///
    /// # Errors
    /// [`LoadError::Keyset`] for an AEAD keyset
    /// ([`KeysetError::WrongPrimitive`]), [`LoadError::Policy`].
    pub(crate) fn new(keyset: &Keyset, policy: &Policy) -> Result<Self, LoadError> {
        let info = keyset.info();
        check_policy(&info, policy).map_err(|refusal| LoadError::Policy {
            policy: policy.name.clone(),
            refusal,
        })?;
        let primary = keyset.streaming_aead()?;
        let mut keys = HashMap::with_capacity(info.keys.len());
        for k in &info.keys {
            let aead = if k.status == KeyStatus::Enabled {
                Some(Arc::new(single_key(keyset, k.key_id)?.streaming_aead()?))
            } else {
                None
            };
            keys.insert(
                k.key_id,
                StreamingKeyEntry {
                    status: k.status,
                    aead,
                },
            );
        }
        Ok(StreamingKeys {
            primary_prefix: large_prefix(info.primary_key_id),
            info,
            primary,
            keys,
        })
    }
}

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

impl AeadKeys {
    /// Validates an AEAD keyset against `policy` and builds its AEAD: the
    /// async one over the master keys in `masters` when the keyset has an
    /// ENABLED KMS envelope key, else the synchronous one.
    pub(crate) fn new(
        keyset: &Keyset,
        policy: &Policy,
        masters: Option<&MasterKeys>,
    ) -> Result<Self, LoadError> {
        let info = keyset.info();
        check_policy(&info, policy).map_err(|refusal| LoadError::Policy {
            policy: policy.name.clone(),
            refusal,
        })?;
        let envelope = match masters {
            Some(m) => m.build(keyset)?.map(Arc::new),
            None => None,
        };
        let aead = match (&envelope, keyset.aead()) {
            (Some(_), _) => None,
            (None, Ok(a)) => Some(a),
            (None, Err(e @ KeysetError::NeedsAsyncAead { .. })) => {
                return Err(LoadError::NoMasterKeys(e));
            }
            (None, Err(e)) => return Err(e.into()),
        };
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
            // RAW envelope keys are attributed by their encrypted DEK
            // (KeysetAsyncAead::envelope_info), never by a trial decryption
            // (a KMS call per try).
            if k.output_prefix == OutputPrefix::Raw
                && k.params.is_some()
                && !matches!(k.params, Some(KeyParams::KmsEnvelope { .. }))
            {
                raw_keys.push(RawKey {
                    key_id: k.key_id,
                    status: k.status,
                    aead: single_key(keyset, k.key_id)?.aead()?,
                });
            }
        }
        let primary_is_envelope = envelope.as_ref().is_some_and(|e| e.primary_is_envelope());
        let primary_only = if primary_prefix.is_empty() && !primary_is_envelope {
            Some(single_key(keyset, info.primary_key_id)?.aead()?)
        } else {
            None
        };
        Ok(AeadKeys {
            info,
            aead,
            envelope,
            primary_only,
            primary_prefix,
            has_raw_keys,
            holds_raw_keys,
            raw_keys,
        })
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

    /// The RAW key (ENABLED or DISABLED, in keyset order) that decrypts
    /// `ciphertext` with `associated_data`, with its status. The trial
    /// plaintext is wiped.
    pub fn raw_key_for(
        &self,
        ciphertext: &[u8],
        associated_data: &[u8],
    ) -> Option<(u32, KeyStatus)> {
        self.aead.raw_keys.iter().find_map(|k| {
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
    pub fn may_be_plaintext(&self, head: CiphertextKey) -> bool {
        !self.aead.holds_raw_keys
            && matches!(
                head,
                CiphertextKey::Unprefixed | CiphertextKey::Prefixed { status: None, .. }
            )
    }

    /// Whether the class of an object with this head depends on more than
    /// its first five bytes: prefix-less objects, and objects naming an
    /// unknown key ID (a RAW ciphertext's random nonce starts with 0x00 or
    /// 0x01 one time in 128), when a RAW key can be tried.
    pub fn needs_whole_object(&self, head: CiphertextKey) -> bool {
        self.can_attribute_raw()
            && matches!(
                head,
                CiphertextKey::Unprefixed | CiphertextKey::Prefixed { status: None, .. }
            )
    }

    /// The class of an object from its head alone: exact when
    /// [`needs_whole_object`](KeysetSnapshot::needs_whole_object) is false
    /// for that head.
    pub fn class_from_head(&self, head: CiphertextKey) -> ObjectClass {
        match head {
            CiphertextKey::Prefixed {
                key_id,
                status: Some(status),
                ..
            } => ObjectClass::Key {
                key_id,
                status,
                raw: false,
            },
            CiphertextKey::Prefixed {
                key_id,
                status: None,
                ..
            } => ObjectClass::UnknownKeyId { key_id },
            CiphertextKey::Unprefixed if self.aead.holds_raw_keys => {
                ObjectClass::PrefixLessUnattributed
            }
            CiphertextKey::Unprefixed => ObjectClass::Plaintext,
        }
    }

    /// Classifies a whole stored object (with the associated data of its
    /// key name): by its prefix when it names a key of either keyset,
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

    /// Which envelope key wrote a small object, and which master key and
    /// version wrapped its DEK, from its first
    /// [`MAX_HEAD_LEN`](encstore_tink::envelope::MAX_HEAD_LEN) bytes (no
    /// I/O); `None` for an object not under an envelope key of the keyset
    /// (or when the keyset has no ENABLED envelope key).
    pub fn envelope_info(&self, head: &[u8]) -> Option<EnvelopeInfo> {
        if self.streaming_key_of(head).is_some() {
            return None;
        }
        self.aead.envelope.as_ref()?.envelope_info(head).ok()
    }

    /// Classifies a stored object by its first five bytes: a key of the
    /// streaming keyset (the large-object prefix `0x01 ‖ BE32(id)`), else
    /// the AEAD keyset's own prefix lookup.
    pub fn classify(&self, head: &[u8]) -> CiphertextKey {
        if let Some((key_id, status)) = self.streaming_key_of(head) {
            return CiphertextKey::Prefixed {
                key_id,
                prefix: OutputPrefix::Tink,
                status: Some(status),
            };
        }
        match (&self.aead.aead, &self.aead.envelope) {
            (Some(a), _) => a.classify(head),
            (None, Some(e)) => e.classify(head),
            (None, None) => CiphertextKey::Unprefixed,
        }
    }

    /// True when the object certainly is under the primary key of its
    /// kind: its prefix is the AEAD primary's (never for a RAW primary:
    /// see [`KeysetSnapshot::decrypts_with_primary`]) or, for a large
    /// object, the streaming primary's.
    pub fn is_under_primary(&self, ciphertext: &[u8]) -> bool {
        (!self.aead.primary_prefix.is_empty() && ciphertext.starts_with(&self.aead.primary_prefix))
            || self
                .streaming
                .as_ref()
                .is_some_and(|s| ciphertext.starts_with(&s.primary_prefix))
    }

    /// Whether the object is under the primary key of its kind: for a RAW
    /// AEAD primary, whether the primary alone decrypts `ciphertext` (the
    /// trial plaintext is wiped); otherwise by prefix (see
    /// [`KeysetSnapshot::is_under_primary`]).
    pub fn decrypts_with_primary(&self, ciphertext: &[u8], associated_data: &[u8]) -> bool {
        if self
            .streaming
            .as_ref()
            .is_some_and(|s| ciphertext.starts_with(&s.primary_prefix))
        {
            return true;
        }
        match &self.aead.primary_only {
            Some(a) => a
                .decrypt(ciphertext, associated_data)
                .map(Zeroizing::new)
                .is_ok(),
            // A RAW envelope primary: the envelope key its encrypted DEK
            // is attributed to (no KMS call).
            None if self.primary_is_raw() => self
                .envelope_info(ciphertext)
                .is_some_and(|i| i.key_id == self.primary_key_id()),
            None => self.is_under_primary(ciphertext),
        }
    }

    /// Whether the keysets decrypt `ciphertext` (a whole stored object,
    /// small or large) with `associated_data`. The trial plaintext is
    /// wiped. A large object is decrypted in memory: for constant memory,
    /// use [`EncryptedStorage::verify_one`](crate::EncryptedStorage::verify_one).
    pub fn aead_decrypts(&self, ciphertext: &[u8], associated_data: &[u8]) -> bool {
        if let Some((key_id, _)) = self.streaming_key_of(ciphertext) {
            return self
                .streaming_entry(key_id)
                .and_then(|e| e.aead.as_ref())
                .is_some_and(|a| {
                    a.decrypt(&ciphertext[5..], associated_data)
                        .map(Zeroizing::new)
                        .is_ok()
                });
        }
        self.aead.aead.as_ref().is_some_and(|a| {
            a.decrypt(ciphertext, associated_data)
                .map(Zeroizing::new)
                .is_ok()
        })
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

/// A copy of `keyset` holding only key `key_id` (enabled and primary): its
/// primitive decrypts what that key wrote and nothing else. The copy shares
/// the keys' primitives; no key material is duplicated beyond the keyset's
/// own clone.
fn single_key(keyset: &Keyset, key_id: u32) -> Result<Keyset, KeysetError> {
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
    Ok(one)
}
