//! Binary (protobuf) keysets, `EncryptedKeyset` wrapping, and format
//! detection.

use prost::Message;
use zeroize::Zeroizing;

use super::{Keyset, KeysetInfo, WipeOnDrop, merge_or_wipe, wipe_key_proto};
use crate::error::KeysetError;

/// The four forms a keyset file can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeysetFormat {
    /// Cleartext Tink JSON `Keyset`.
    Json,
    /// Cleartext binary protobuf `Keyset`.
    Binary,
    /// Tink JSON `EncryptedKeyset`.
    EncryptedJson,
    /// Binary protobuf `EncryptedKeyset`.
    EncryptedBinary,
}

impl KeysetFormat {
    /// Whether this form is an `EncryptedKeyset`.
    pub fn is_encrypted(self) -> bool {
        matches!(
            self,
            KeysetFormat::EncryptedJson | KeysetFormat::EncryptedBinary
        )
    }

    /// Whether this form is JSON.
    pub fn is_json(self) -> bool {
        matches!(self, KeysetFormat::Json | KeysetFormat::EncryptedJson)
    }
}

/// Tells which of the four forms `bytes` is, cheaply and without
/// validating it (the reader for that form reports any problem).
///
/// - JSON: the first non-whitespace byte is `{` (a binary keyset never
///   starts with it: field 15 does not exist). It is encrypted if it has an
///   `"encryptedKeyset"` member at the top level.
/// - Binary: an `EncryptedKeyset` has field 3 (`keyset_info`, which Tink
///   always writes) or field 2 that is not a valid `Keyset.Key`; a `Keyset`
///   has field 1 or field 2 holding keys.
pub fn detect_format(bytes: &[u8]) -> KeysetFormat {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        return if super::json::has_top_level_field(bytes, "encryptedKeyset") {
            KeysetFormat::EncryptedJson
        } else {
            KeysetFormat::Json
        };
    }
    if looks_encrypted_binary(bytes) {
        KeysetFormat::EncryptedBinary
    } else {
        KeysetFormat::Binary
    }
}

/// Walks the top-level protobuf fields: field 3 present means
/// EncryptedKeyset; field 1 (varint) means Keyset; otherwise a field 2
/// that decodes as a `Keyset.Key` with key data means Keyset.
fn looks_encrypted_binary(bytes: &[u8]) -> bool {
    let mut buf = bytes;
    let mut saw_key = false;
    while !buf.is_empty() {
        let Ok(tag) = prost::encoding::decode_varint(&mut buf) else {
            return false;
        };
        let field = tag >> 3;
        let wire = tag & 7;
        match (field, wire) {
            (1, 0) => return false,
            (3, 2) => return true,
            (_, 0) => {
                if prost::encoding::decode_varint(&mut buf).is_err() {
                    return false;
                }
            }
            (_, 2) => {
                let Ok(len) = prost::encoding::decode_varint(&mut buf) else {
                    return false;
                };
                let Ok(len) = usize::try_from(len) else {
                    return false;
                };
                if len > buf.len() {
                    return false;
                }
                if field == 2 {
                    // Decoded key bytes are wiped whether or not the
                    // decode succeeds.
                    let mut k = tink_proto::keyset::Key::default();
                    let decoded = merge_or_wipe(&mut k, &buf[..len], wipe_key_proto);
                    let has_data = k.key_data.is_some();
                    wipe_key_proto(&mut k);
                    match decoded {
                        Ok(()) if has_data || k.key_id != 0 || k.status != 0 => saw_key = true,
                        Ok(()) => {}
                        Err(_) => return true,
                    }
                }
                buf = &buf[len..];
            }
            (_, 1) if buf.len() >= 8 => buf = &buf[8..],
            (_, 5) if buf.len() >= 4 => buf = &buf[4..],
            _ => return false,
        }
    }
    !saw_key && !bytes.is_empty()
}

/// Decodes a binary `Keyset`. The message is wiping from the start: when
/// the decode fails part-way, the key bytes decoded so far are wiped too.
pub(crate) fn parse_keyset(bytes: &[u8]) -> Result<WipeOnDrop, KeysetError> {
    let mut proto = WipeOnDrop(tink_proto::Keyset::default());
    proto
        .0
        .merge(bytes)
        .map_err(|_| KeysetError::MalformedProtobuf { message: "Keyset" })?;
    Ok(proto)
}

/// Decodes a binary `EncryptedKeyset`, returning the ciphertext. Refuses a
/// cleartext keyset with [`KeysetError::UnexpectedCleartext`].
pub(crate) fn parse_encrypted(bytes: &[u8]) -> Result<Vec<u8>, KeysetError> {
    if detect_format(bytes) == KeysetFormat::Binary && !bytes.is_empty() {
        return Err(KeysetError::UnexpectedCleartext);
    }
    let ek =
        tink_proto::EncryptedKeyset::decode(bytes).map_err(|_| KeysetError::MalformedProtobuf {
            message: "EncryptedKeyset",
        })?;
    Ok(ek.encrypted_keyset)
}

/// Serializes the keyset to a binary `Keyset`, into a buffer of exact
/// capacity (no reallocation leaves copies behind); wipes the proto.
pub(crate) fn write_keyset(keyset: &Keyset) -> Zeroizing<Vec<u8>> {
    let proto = WipeOnDrop(to_proto(keyset));
    let mut out = Zeroizing::new(Vec::with_capacity(proto.0.encoded_len()));
    // Encoding into a Vec with enough capacity cannot fail.
    let _ = proto.0.encode(&mut *out);
    out
}

pub(crate) fn to_proto(keyset: &Keyset) -> tink_proto::Keyset {
    tink_proto::Keyset {
        primary_key_id: keyset.primary_key_id(),
        key: keyset
            .keys()
            .iter()
            .map(|k| tink_proto::keyset::Key {
                key_data: k.has_key_data.then(|| tink_proto::KeyData {
                    type_url: k.type_url.clone(),
                    value: k.value.to_vec(),
                    key_material_type: k.material_type,
                }),
                status: k.status.to_proto(),
                key_id: k.id,
                output_prefix_type: k.prefix.to_proto(),
            })
            .collect(),
    }
}

/// `keysetInfo` as a proto.
pub(crate) fn info_to_proto(info: &KeysetInfo) -> tink_proto::KeysetInfo {
    tink_proto::KeysetInfo {
        primary_key_id: info.primary_key_id,
        key_info: info
            .keys
            .iter()
            .map(|k| tink_proto::keyset_info::KeyInfo {
                type_url: k.type_url.clone(),
                status: k.status.to_proto(),
                key_id: k.key_id,
                output_prefix_type: k.output_prefix.to_proto(),
            })
            .collect(),
    }
}

/// Writes a binary `EncryptedKeyset`.
pub(crate) fn write_encrypted(ciphertext: Vec<u8>, info: &KeysetInfo) -> Vec<u8> {
    tink_proto::EncryptedKeyset {
        encrypted_keyset: ciphertext,
        keyset_info: Some(info_to_proto(info)),
    }
    .encode_to_vec()
}

/// Encrypts the serialized keyset with the key-encryption key, as Tink
/// does (`kek.encrypt(keyset.toByteArray(), associatedData)`), then checks
/// that it decrypts back to the same bytes (Tink Java's
/// `KeysetHandle.encrypt` does the same check).
///
/// Kept small and separate so an async KEK (HSM) can reuse the shape.
pub(crate) fn wrap_keyset(
    kek: &dyn encstore_core::Aead,
    keyset: &Keyset,
    associated_data: &[u8],
) -> Result<Vec<u8>, KeysetError> {
    let plain = write_keyset(keyset);
    wrap(kek, &plain, associated_data)
}

/// Encrypts `plain` (a serialized `Keyset`) under `kek`, and verifies the
/// round trip.
pub(crate) fn wrap(
    kek: &dyn encstore_core::Aead,
    plain: &[u8],
    associated_data: &[u8],
) -> Result<Vec<u8>, KeysetError> {
    let ciphertext = kek
        .encrypt(plain, associated_data)
        .map_err(|_| KeysetError::Encryption)?;
    let check = Zeroizing::new(
        kek.decrypt(&ciphertext, associated_data)
            .map_err(|_| KeysetError::Encryption)?,
    );
    if check.as_slice() != plain {
        return Err(KeysetError::Encryption);
    }
    Ok(ciphertext)
}

/// Decrypts an `EncryptedKeyset`'s ciphertext with `kek`, giving the
/// serialized `Keyset` (zeroized on drop).
pub(crate) fn unwrap_keyset(
    kek: &dyn encstore_core::Aead,
    ciphertext: &[u8],
    associated_data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeysetError> {
    kek.decrypt(ciphertext, associated_data)
        .map(Zeroizing::new)
        .map_err(|_| KeysetError::Decryption)
}

/// The `keysetInfo` of a binary `EncryptedKeyset` (`None` when it has
/// none). Refuses a cleartext keyset.
pub(crate) fn parse_encrypted_info(
    bytes: &[u8],
) -> Result<Option<tink_proto::KeysetInfo>, KeysetError> {
    if detect_format(bytes) == KeysetFormat::Binary {
        return Err(KeysetError::UnexpectedCleartext);
    }
    let ek =
        tink_proto::EncryptedKeyset::decode(bytes).map_err(|_| KeysetError::MalformedProtobuf {
            message: "EncryptedKeyset",
        })?;
    Ok(ek.keyset_info)
}
