//! Keysets described without key material ([`KeysetInfo`], [`KeyInfo`]),
//! and the `keysetInfo` an `EncryptedKeyset` carries in the clear.

use std::fmt;

use super::{KeyStatus, OutputPrefix, binary, detect_format, json};
use crate::error::KeysetError;
use crate::primitives::KeyParams;

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

/// One key of a keyset, described without its key material.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The key ID.
    pub key_id: u32,
    /// The key's type URL, such as
    /// `type.googleapis.com/google.crypto.tink.AesGcmKey`. Empty for a key
    /// destroyed by Tink or encstore.
    pub type_url: String,
    /// The key's status.
    pub status: KeyStatus,
    /// The key's output prefix type.
    pub output_prefix: OutputPrefix,
    /// Whether this is the primary key.
    pub primary: bool,
    /// The key's type and parameters; `None` for a destroyed key.
    pub params: Option<KeyParams>,
}

/// A keyset described without key material: what `list-keyset` shows and
/// what an `EncryptedKeyset` carries in the clear as `keysetInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeysetInfo {
    /// The primary key's ID.
    pub primary_key_id: u32,
    /// Every key, in keyset order.
    pub keys: Vec<KeyInfo>,
}

/// Prints the keyset info as Tinkey's `list-keyset` does: the
/// `KeysetInfo` proto in protobuf text format (as Java's `toString()`
/// prints it; key IDs unsigned).
impl fmt::Display for KeysetInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "primary_key_id: {}", self.primary_key_id)?;
        for k in &self.keys {
            writeln!(f, "key_info {{")?;
            writeln!(f, "  type_url: {:?}", k.type_url)?;
            writeln!(f, "  status: {}", k.status)?;
            writeln!(f, "  key_id: {}", k.key_id)?;
            writeln!(f, "  output_prefix_type: {}", k.output_prefix)?;
            writeln!(f, "}}")?;
        }
        Ok(())
    }
}
