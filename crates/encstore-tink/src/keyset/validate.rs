//! Tink's rules (and encstore's stricter ones) for a decoded keyset.

use std::collections::HashSet;

use tink_proto::key_data::KeyMaterialType;
use zeroize::Zeroizing;

use super::key::{Key, KeyPrimitive, build_key, check_envelope_prefix};
use super::{KeyStatus, Keyset, OutputPrefix, PrimitiveKind, WipeOnDrop};
use crate::envelope;
use crate::error::KeysetError;
use crate::provider::CryptoProvider;

impl Keyset {
    // -------------------------------------------------------- validation

    /// Validates a decoded proto keyset with Tink's rules (and encstore's
    /// stricter ones, see the crate docs) and builds every live key's
    /// primitive. The proto's key bytes are wiped whatever the outcome.
    pub(crate) fn from_proto(
        proto: WipeOnDrop,
        provider: &'static CryptoProvider,
    ) -> Result<Keyset, KeysetError> {
        let proto = &proto.0;
        if proto.key.is_empty() {
            return Err(KeysetError::NoKeys);
        }
        // Structural checks first: they are cheap.
        let mut seen = HashSet::with_capacity(proto.key.len());
        let mut shapes = Vec::with_capacity(proto.key.len());
        for k in &proto.key {
            let key_id = k.key_id;
            let status =
                KeyStatus::from_proto(k.status).ok_or(KeysetError::UnknownStatus { key_id })?;
            let prefix = OutputPrefix::from_proto(k.output_prefix_type)
                .ok_or(KeysetError::UnknownOutputPrefix { key_id })?;
            if !seen.insert(key_id) {
                return Err(KeysetError::DuplicateKeyId { key_id });
            }
            if status != KeyStatus::Destroyed {
                let data = k
                    .key_data
                    .as_ref()
                    .ok_or(KeysetError::MissingKeyData { key_id })?;
                // Tink writes REMOTE for envelope keys (and Tink Java's old
                // KeyManager.newKeyData wrote SYMMETRIC).
                let remote_ok = envelope::is_envelope(&data.type_url)
                    && data.key_material_type == KeyMaterialType::Remote as i32;
                if data.key_material_type != KeyMaterialType::Symmetric as i32 && !remote_ok {
                    return Err(KeysetError::WrongKeyMaterialType {
                        key_id,
                        found: material_name(data.key_material_type),
                    });
                }
            }
            shapes.push((status, prefix));
        }
        let primary_key_id = proto.primary_key_id;
        match proto
            .key
            .iter()
            .zip(&shapes)
            .find(|(k, _)| k.key_id == primary_key_id)
        {
            None if primary_key_id == 0 => return Err(KeysetError::NoPrimary),
            None => return Err(KeysetError::PrimaryMissing { primary_key_id }),
            Some((_, (status, _))) if *status != KeyStatus::Enabled => {
                return Err(KeysetError::PrimaryNotEnabled {
                    key_id: primary_key_id,
                    status: *status,
                });
            }
            Some(_) => {}
        }
        // Key data: type URL, version, size, parameters; build primitives.
        let mut keys = Vec::with_capacity(proto.key.len());
        for (k, (status, prefix)) in proto.key.iter().zip(shapes) {
            let key_id = k.key_id;
            if status == KeyStatus::Destroyed {
                // Destroyed keys carry no usable material: any bytes found
                // are dropped (the proto is wiped on return).
                let (type_url, material_type, has_key_data) = match &k.key_data {
                    Some(d) => (d.type_url.clone(), d.key_material_type, true),
                    None => (String::new(), 0, false),
                };
                keys.push(Key {
                    id: key_id,
                    status,
                    prefix,
                    type_url,
                    material_type,
                    value: Zeroizing::new(Vec::new()),
                    has_key_data,
                    params: None,
                    primitive: None,
                });
                continue;
            }
            let data = k
                .key_data
                .as_ref()
                .ok_or(KeysetError::MissingKeyData { key_id })?;
            let (params, primitive) = build_key(provider, &data.type_url, &data.value)
                .map_err(|source| KeysetError::Key { key_id, source })?;
            if matches!(primitive, KeyPrimitive::Envelope(_)) {
                check_envelope_prefix(prefix)
                    .map_err(|source| KeysetError::Key { key_id, source })?;
            }
            keys.push(Key {
                id: key_id,
                status,
                prefix,
                type_url: data.type_url.clone(),
                material_type: data.key_material_type,
                value: Zeroizing::new(data.value.clone()),
                has_key_data: true,
                params: Some(params),
                primitive: Some(primitive),
            });
        }
        check_one_primitive(&keys)?;
        Ok(Keyset {
            primary_key_id,
            keys,
            provider,
        })
    }
}

/// Refuses keys of both primitives among the keys that are not destroyed
/// (Tink checks only ENABLED keys; a DISABLED key can be enabled again).
fn check_one_primitive(keys: &[Key]) -> Result<(), KeysetError> {
    let first_of = |kind| {
        keys.iter()
            .find(|k| k.primitive.as_ref().map(KeyPrimitive::kind) == Some(kind))
            .map(|k| k.id)
    };
    if let (Some(aead_key_id), Some(streaming_key_id)) = (
        first_of(PrimitiveKind::Aead),
        first_of(PrimitiveKind::StreamingAead),
    ) {
        return Err(KeysetError::MixedPrimitives {
            aead_key_id,
            streaming_key_id,
        });
    }
    Ok(())
}

/// Tink's name for a key material type, or its number if unknown.
fn material_name(v: i32) -> String {
    match KeyMaterialType::try_from(v) {
        Ok(t) => t.as_str_name().to_owned(),
        Err(_) => v.to_string(),
    }
}
