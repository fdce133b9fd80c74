//! The two keysets of a snapshot, validated against the policy, with
//! their primitives: [`AeadKeys`] (the AEAD keyset, its RAW keys and
//! envelope AEAD) and [`StreamingKeys`] (the streaming keyset, by key ID).

use std::collections::HashMap;
use std::sync::Arc;

use encstore_core::PolicyRefusal;
use encstore_tink::envelope::KeysetAsyncAead;
use encstore_tink::primitives::KeyParams;
use encstore_tink::{
    KeyStatus, Keyset, KeysetAead, KeysetError, KeysetInfo, KeysetStreamingAead, OutputPrefix,
};

use crate::masters::MasterKeys;
use crate::policy::{Policy, describe};

use super::{LoadError, large_prefix};

/// A RAW key that still has key material (ENABLED or DISABLED), with an
/// AEAD that tries that key alone: RAW ciphertexts carry no key ID, so
/// finding their key takes a trial decryption.
pub(super) struct RawKey {
    pub(super) key_id: u32,
    pub(super) status: KeyStatus,
    pub(super) aead: KeysetAead,
}

/// The AEAD keyset of a snapshot, validated, with its AEAD.
pub(crate) struct AeadKeys {
    pub(super) info: KeysetInfo,
    /// The synchronous AEAD, when the keyset has no ENABLED KMS envelope
    /// key.
    pub(super) aead: Option<KeysetAead>,
    /// The async AEAD, when it has one (its calls reach a KMS).
    pub(super) envelope: Option<Arc<KeysetAsyncAead>>,
    /// For a RAW primary, an AEAD of the primary alone, to tell whether an
    /// object is already under it (a prefix cannot).
    pub(super) primary_only: Option<KeysetAead>,
    /// The primary's output prefix; empty for a RAW primary.
    pub(super) primary_prefix: Vec<u8>,
    /// Whether the keyset has an ENABLED RAW key.
    pub(super) has_raw_keys: bool,
    /// Whether the keyset holds a RAW key in any status (destroyed
    /// included): then no prefix-less object is ever taken for plaintext.
    pub(super) holds_raw_keys: bool,
    /// Every RAW key with key material, in keyset order.
    pub(super) raw_keys: Vec<RawKey>,
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
    pub(super) info: KeysetInfo,
    /// The whole keyset's streaming AEAD: its primary encrypts.
    pub(super) primary: KeysetStreamingAead,
    /// `0x01 ‖ BE32(primary key ID)`: the prefix of new large objects.
    pub(super) primary_prefix: [u8; 5],
    /// Every key of the keyset (any status), by ID.
    pub(super) keys: HashMap<u32, StreamingKeyEntry>,
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
