//! One key inside a [`Keyset`](super::Keyset): its bytes, parameters and
//! primitive, built when the key is read or created.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use tink_proto::key_data::KeyMaterialType;
use zeroize::Zeroizing;

use super::{KeyInfo, KeyStatus, OutputPrefix, PrimitiveKind};
use crate::envelope::{self, EnvelopeKey};
use crate::error::{KeyError, KeysetError};
use crate::primitives::{self, KeyParams, RawAead};
use crate::provider::CryptoProvider;
use crate::streaming::{StreamingKey, params as streaming_params};
use crate::templates::KeyTemplate;

/// A live key's primitive, built once when the key is read or created.
#[derive(Clone)]
pub(crate) enum KeyPrimitive {
    /// A raw AEAD.
    Aead(Arc<dyn RawAead>),
    /// A streaming AEAD key.
    Streaming(Arc<StreamingKey>),
    /// A KMS envelope key: an AEAD whose every operation calls a KMS
    /// (see [`crate::envelope`]).
    Envelope(Arc<EnvelopeKey>),
}

impl KeyPrimitive {
    pub(super) fn kind(&self) -> PrimitiveKind {
        match self {
            KeyPrimitive::Aead(_) | KeyPrimitive::Envelope(_) => PrimitiveKind::Aead,
            KeyPrimitive::Streaming(_) => PrimitiveKind::StreamingAead,
        }
    }
}

/// Parses a key's data of type `type_url`, checks it with Tink's rules and
/// with `provider`'s (under `fips`: approved key types and parameters
/// only), and builds its primitive from `provider`: a streaming key, an
/// envelope key (whose DEKs `provider` makes) or an AEAD.
pub(super) fn build_key(
    provider: &'static CryptoProvider,
    type_url: &str,
    value: &[u8],
) -> Result<(KeyParams, KeyPrimitive), KeyError> {
    if envelope::is_envelope(type_url) {
        let (params, key) = envelope::parse_key(provider, value)?;
        return Ok((params, KeyPrimitive::Envelope(Arc::new(key))));
    }
    if let Some(key_type) = streaming_params::streaming_type(type_url) {
        provider.check_key_type(type_url)?;
        let (params, key) = streaming_params::parse_key(key_type, value)?;
        let described = params.key_params();
        provider.check_key_params(&described)?;
        return Ok((
            described,
            KeyPrimitive::Streaming(Arc::new(StreamingKey::new(provider, params, key))),
        ));
    }
    let (params, primitive) = primitives::primitive_from_key_data(provider, type_url, value)?;
    Ok((params, KeyPrimitive::Aead(Arc::from(primitive))))
}

/// A fresh key's data (`KeyData.value`) from a template's type URL and key
/// format, for either primitive, with key material from `provider`.
fn new_key_value(
    provider: &'static CryptoProvider,
    type_url: &str,
    key_format: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if envelope::is_envelope(type_url) {
        return envelope::new_key(provider, key_format);
    }
    provider.check_key_type(type_url)?;
    match streaming_params::streaming_type(type_url) {
        Some(key_type) => streaming_params::new_key(provider, key_type, key_format),
        None => primitives::new_key_data_value(provider, type_url, key_format),
    }
}

/// One key inside a [`Keyset`]. The key bytes are the serialized key proto
/// (`KeyData.value`), zeroized on drop.
#[derive(Clone)]
pub(crate) struct Key {
    /// The key ID, unique within the keyset.
    pub(crate) id: u32,
    /// ENABLED, DISABLED or DESTROYED.
    pub(crate) status: KeyStatus,
    /// How this key prefixes its ciphertexts.
    pub(crate) prefix: OutputPrefix,
    /// `KeyData.type_url`; kept for destroyed keys if the file had one.
    pub(crate) type_url: String,
    /// `KeyData.key_material_type`, written back as read (SYMMETRIC for
    /// every live key but KMS envelope keys, which are REMOTE or
    /// SYMMETRIC).
    pub(crate) material_type: i32,
    /// `KeyData.value`: the serialized key proto. Empty for destroyed keys.
    pub(crate) value: Zeroizing<Vec<u8>>,
    /// Whether the key had a `KeyData` at all (destroyed keys may not).
    pub(crate) has_key_data: bool,
    /// Parameters, for listings; `None` for destroyed keys.
    pub(crate) params: Option<KeyParams>,
    /// The key's primitive, built once when the key was read or created;
    /// `None` for destroyed keys.
    pub(crate) primitive: Option<KeyPrimitive>,
}

impl Key {
    /// The key's AEAD, if it is a live AEAD key.
    pub(crate) fn aead(&self) -> Option<&Arc<dyn RawAead>> {
        match &self.primitive {
            Some(KeyPrimitive::Aead(p)) => Some(p),
            _ => None,
        }
    }

    /// The key's streaming key, if it is a live streaming key.
    pub(crate) fn streaming(&self) -> Option<&Arc<StreamingKey>> {
        match &self.primitive {
            Some(KeyPrimitive::Streaming(p)) => Some(p),
            _ => None,
        }
    }

    /// The key's envelope parameters, if it is a live KMS envelope key.
    pub(crate) fn envelope(&self) -> Option<&Arc<EnvelopeKey>> {
        match &self.primitive {
            Some(KeyPrimitive::Envelope(p)) => Some(p),
            _ => None,
        }
    }

    pub(super) fn info(&self, primary_key_id: u32) -> KeyInfo {
        KeyInfo {
            key_id: self.id,
            type_url: self.type_url.clone(),
            status: self.status,
            output_prefix: self.prefix,
            primary: self.id == primary_key_id,
            params: self.params.clone(),
        }
    }

    /// Short type name for Debug: the type URL after the last `.`.
    fn short_type(&self) -> &str {
        self.type_url.rsplit('.').next().unwrap_or("")
    }
}

/// Debug helper: lists keys by ID, type, status and prefix, never their
/// material.
pub(crate) struct DebugKeys<'a>(pub(crate) &'a [Key]);

impl fmt::Debug for DebugKeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(DebugKey)).finish()
    }
}

/// Debug helper for one key.
struct DebugKey<'a>(&'a Key);

impl fmt::Debug for DebugKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.0;
        f.debug_struct("Key")
            .field("id", &k.id)
            .field("type", &k.short_type())
            .field("status", &k.status)
            .field("prefix", &k.prefix)
            .finish()
    }
}

/// Tink Java and C++ parse KMS envelope keys with a TINK or RAW output
/// prefix only (`LegacyKmsEnvelopeAeadProtoSerialization`).
pub(super) fn check_envelope_prefix(prefix: OutputPrefix) -> Result<(), KeyError> {
    match prefix {
        OutputPrefix::Tink | OutputPrefix::Raw => Ok(()),
        OutputPrefix::Legacy | OutputPrefix::Crunchy => Err(KeyError::InvalidParameter {
            key_type: "KmsEnvelopeAeadKey",
            what: format!(
                "output prefix type {prefix}; Tink allows TINK or RAW for KMS envelope keys"
            ),
        }),
    }
}

/// A random key ID from the OS CSPRNG: non-zero and not in `taken`.
/// Tink Java (`internal/Util.randKeyId`, `KeysetManager.newKeyId`) draws
/// all 32 bits, refuses 0, and redraws while the ID is in use.
pub(crate) fn new_key_id(
    provider: &CryptoProvider,
    taken: &HashSet<u32>,
) -> Result<u32, KeysetError> {
    loop {
        let id = provider
            .random_u32()
            .map_err(|()| KeysetError::Randomness)?;
        if id != 0 && !taken.contains(&id) {
            return Ok(id);
        }
    }
}

/// Generates a new ENABLED key from a template.
pub(super) fn new_key(
    provider: &'static CryptoProvider,
    template: &KeyTemplate,
    taken: &HashSet<u32>,
) -> Result<Key, KeysetError> {
    let value = new_key_value(provider, template.type_url(), template.key_format()).map_err(
        |e| match e {
            KeyError::Randomness => KeysetError::Randomness,
            e => KeysetError::Template(e),
        },
    )?;
    let (params, primitive) =
        build_key(provider, template.type_url(), &value).map_err(KeysetError::Template)?;
    let material_type = if let KeyPrimitive::Envelope(_) = primitive {
        check_envelope_prefix(template.output_prefix()).map_err(KeysetError::Template)?;
        // What Tink writes for an envelope key: its key lives in a KMS.
        KeyMaterialType::Remote
    } else {
        KeyMaterialType::Symmetric
    };
    let id = new_key_id(provider, taken)?;
    Ok(Key {
        id,
        status: KeyStatus::Enabled,
        prefix: template.output_prefix(),
        type_url: template.type_url().to_owned(),
        material_type: material_type as i32,
        value,
        has_key_data: true,
        params: Some(params),
        primitive: Some(primitive),
    })
}
