//! The `keysetInfo` an `EncryptedKeyset` carries in the clear.

use super::{KeyInfo, KeyStatus, KeysetInfo, OutputPrefix, binary, detect_format, json};
use crate::error::KeysetError;

/// The `keysetInfo` that an `EncryptedKeyset` (JSON or binary) carries in
/// the clear, read without its key-encryption key: `Ok(None)` when the
/// file has none (Tink always writes it).
///
/// **It is not authenticated.** Anyone who can write the file can change
/// it without the master key noticing (Tink does not check it when it
/// decrypts the keyset either); show it as a hint, never act on it. Keys
/// have no parameters (`params` is `None`): those are inside the
/// encrypted part.
///
/// # Errors
/// [`KeysetError::UnexpectedCleartext`] for a cleartext keyset, and the
/// malformed-JSON or malformed-protobuf errors (including an unknown
/// status or output prefix type in the info).
pub fn encrypted_keyset_info(bytes: &[u8]) -> Result<Option<KeysetInfo>, KeysetError> {
    let proto = if detect_format(bytes).is_json() {
        json::parse_encrypted_info(bytes)?
    } else {
        binary::parse_encrypted_info(bytes)?
    };
    let Some(proto) = proto else {
        return Ok(None);
    };
    let bad = |what: &'static str| KeysetError::MalformedProtobuf { message: what };
    let keys = proto
        .key_info
        .into_iter()
        .map(|k| {
            Ok(KeyInfo {
                key_id: k.key_id,
                type_url: k.type_url,
                status: KeyStatus::from_proto(k.status)
                    .ok_or_else(|| bad("KeysetInfo (a key status is unknown)"))?,
                output_prefix: OutputPrefix::from_proto(k.output_prefix_type)
                    .ok_or_else(|| bad("KeysetInfo (an output prefix type is unknown)"))?,
                primary: k.key_id == proto.primary_key_id,
                params: None,
            })
        })
        .collect::<Result<Vec<_>, KeysetError>>()?;
    Ok(Some(KeysetInfo {
        primary_key_id: proto.primary_key_id,
        keys,
    }))
}

/// The wrapped keyset of an `EncryptedKeyset` (JSON or binary): the
/// `encryptedKeyset` bytes exactly as the master key made them, for
/// [`Kek::describe_wrapped`](encstore_core::Kek::describe_wrapped) (which
/// master key and version wrapped this keyset file). Reads no key.
///
/// # Errors
/// [`KeysetError::UnexpectedCleartext`] for a cleartext keyset, and the
/// malformed-JSON or malformed-protobuf errors.
pub fn encrypted_keyset_ciphertext(bytes: &[u8]) -> Result<Vec<u8>, KeysetError> {
    if detect_format(bytes).is_json() {
        json::parse_encrypted(bytes)
    } else {
        binary::parse_encrypted(bytes)
    }
}
