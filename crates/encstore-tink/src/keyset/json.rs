//! Tink's JSON keyset format, read leniently (every form a Tink
//! implementation writes) and written exactly as Tink Java writes it.
//!
//! Readers, in Tink:
//! - Java `JsonKeysetReader`: key IDs are JSON numbers in
//!   `[-2^31, 2^32-1]`, negatives being the signed form old Java wrote;
//!   enum names; standard base64.
//! - C++ `JsonKeysetReader` and Python: protobuf JSON (`JsonToBinaryString`,
//!   `json_format.Parse`): missing fields take defaults, integers may be
//!   strings, enums may be numbers, field names may be the proto names,
//!   base64 may be URL-safe, `null` means default.
//!
//! Writer: Java `JsonKeysetWriter` (what Tinkey uses): compact Gson
//! output, fields in the order `primaryKeyId`, `key[]` {`keyData`
//! {`typeUrl`, `value`, `keyMaterialType`}, `status`, `keyId`,
//! `outputPrefixType`}, unsigned key IDs, standard padded base64, and a
//! trailing line separator (`\n`).
//!
//! Errors never echo the input: serde_json messages can quote values, so
//! only a fixed description and the line and column are reported.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny};
use tink_proto::key_data::KeyMaterialType;
use zeroize::{Zeroize, Zeroizing};

use super::{Keyset, KeysetInfo, WipeOnDrop};
use crate::error::KeysetError;

/// The serde visitors of the lenient reader (the `de_*` functions).
mod visitors;

use visitors::{de_bytes, de_key_id, de_material, de_prefix, de_status, de_string};

// ------------------------------------------------------------------ errors

const P_KEY_ID: &str = "a key ID is not an integer in the unsigned (or signed) 32-bit range";
const P_STATUS: &str = "\"status\" is not a Tink key status name or number";
const P_PREFIX: &str = "\"outputPrefixType\" is not a Tink output prefix type name or number";
const P_MATERIAL: &str = "\"keyMaterialType\" is not a Tink key material type name or number";
const P_BASE64: &str = "a base64 field is not valid base64";
const P_STRING: &str = "a field that must be a string is not one";
const P_NOT_OBJECT: &str = "the keyset is not a JSON object";
const P_MISSING_ENCRYPTED: &str = "\"encryptedKeyset\" is missing";
const P_DUPLICATE: &str = "a field appears twice";
const P_SYNTAX: &str = "invalid JSON syntax";
const P_EOF: &str = "unexpected end of input";
const P_STRUCTURE: &str = "a field has the wrong JSON type";

/// The fixed descriptions custom visitors raise; matched back out of the
/// serde_json error, so no serde_json text ever reaches the user.
const PROBLEMS: &[&str] = &[P_KEY_ID, P_STATUS, P_PREFIX, P_MATERIAL, P_BASE64, P_STRING];

fn json_error(e: &serde_json::Error) -> KeysetError {
    use serde_json::error::Category;
    let problem = match e.classify() {
        Category::Syntax => P_SYNTAX,
        Category::Eof => P_EOF,
        Category::Io => P_SYNTAX,
        Category::Data => {
            let mut msg = e.to_string();
            let found = PROBLEMS
                .iter()
                .copied()
                .find(|p| msg.starts_with(p))
                .unwrap_or(if msg.starts_with("duplicate field") {
                    P_DUPLICATE
                } else {
                    P_STRUCTURE
                });
            msg.zeroize();
            found
        }
    };
    KeysetError::MalformedJson {
        problem,
        line: e.line(),
        column: e.column(),
    }
}

fn malformed(problem: &'static str) -> KeysetError {
    KeysetError::MalformedJson {
        problem,
        line: 0,
        column: 0,
    }
}

fn starts_with_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

// ------------------------------------------------------------- JSON shapes

#[derive(Deserialize)]
struct JsonKeyset {
    #[serde(
        rename = "primaryKeyId",
        alias = "primary_key_id",
        default,
        deserialize_with = "de_key_id"
    )]
    primary_key_id: u32,
    #[serde(default)]
    key: Option<Vec<JsonKey>>,
    /// Present only in an encrypted keyset: refused with a clear error.
    #[serde(rename = "encryptedKeyset", alias = "encrypted_keyset", default)]
    encrypted_keyset: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct JsonKey {
    #[serde(rename = "keyData", alias = "key_data", default)]
    key_data: Option<JsonKeyData>,
    #[serde(default, deserialize_with = "de_status")]
    status: i32,
    #[serde(
        rename = "keyId",
        alias = "key_id",
        default,
        deserialize_with = "de_key_id"
    )]
    key_id: u32,
    #[serde(
        rename = "outputPrefixType",
        alias = "output_prefix_type",
        default,
        deserialize_with = "de_prefix"
    )]
    output_prefix_type: i32,
}

#[derive(Deserialize)]
struct JsonKeyData {
    #[serde(
        rename = "typeUrl",
        alias = "type_url",
        default,
        deserialize_with = "de_string"
    )]
    type_url: String,
    #[serde(default, deserialize_with = "de_bytes")]
    value: Zeroizing<Vec<u8>>,
    #[serde(
        rename = "keyMaterialType",
        alias = "key_material_type",
        default,
        deserialize_with = "de_material"
    )]
    key_material_type: i32,
}

#[derive(Deserialize)]
struct JsonEncryptedKeyset {
    #[serde(rename = "encryptedKeyset", alias = "encrypted_keyset", default)]
    encrypted_keyset: Option<JsonBytes>,
    /// Not used: the real keyset inside is authoritative. Tink does not
    /// check it either.
    #[serde(rename = "keysetInfo", alias = "keyset_info", default)]
    _keyset_info: Option<IgnoredAny>,
    /// Present only in a cleartext keyset: refused with a clear error.
    #[serde(default)]
    key: Option<IgnoredAny>,
}

struct JsonBytes(Zeroizing<Vec<u8>>);

impl<'de> Deserialize<'de> for JsonBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_bytes(d).map(JsonBytes)
    }
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "encryptedKeyset", alias = "encrypted_keyset", default)]
    encrypted_keyset: Option<IgnoredAny>,
}

/// Whether a JSON object has an `encryptedKeyset` member (for format
/// detection; false if it does not parse).
pub(crate) fn has_top_level_field(bytes: &[u8], _name: &str) -> bool {
    matches!(
        serde_json::from_slice::<Probe>(bytes),
        Ok(Probe {
            encrypted_keyset: Some(_)
        })
    )
}

// ------------------------------------------------------------------ parse

/// Parses a cleartext JSON keyset into a proto (wiped on drop).
pub(crate) fn parse_keyset(bytes: &[u8]) -> Result<WipeOnDrop, KeysetError> {
    if !starts_with_object(bytes) {
        return Err(malformed(P_NOT_OBJECT));
    }
    let parsed: JsonKeyset = serde_json::from_slice(bytes).map_err(|e| json_error(&e))?;
    if parsed.encrypted_keyset.is_some() {
        return Err(KeysetError::UnexpectedEncrypted);
    }
    let keys = parsed.key.unwrap_or_default();
    let mut proto = WipeOnDrop(tink_proto::Keyset {
        primary_key_id: parsed.primary_key_id,
        key: Vec::with_capacity(keys.len()),
    });
    for k in keys {
        proto.0.key.push(tink_proto::keyset::Key {
            key_data: k.key_data.map(|mut d| tink_proto::KeyData {
                type_url: d.type_url,
                // Move the bytes out; the emptied Zeroizing drops nothing.
                value: std::mem::take(&mut *d.value),
                key_material_type: d.key_material_type,
            }),
            status: k.status,
            key_id: k.key_id,
            output_prefix_type: k.output_prefix_type,
        });
    }
    Ok(proto)
}

/// Parses a JSON `EncryptedKeyset`, returning its ciphertext.
pub(crate) fn parse_encrypted(bytes: &[u8]) -> Result<Vec<u8>, KeysetError> {
    if !starts_with_object(bytes) {
        return Err(malformed(P_NOT_OBJECT));
    }
    let parsed: JsonEncryptedKeyset = serde_json::from_slice(bytes).map_err(|e| json_error(&e))?;
    match parsed.encrypted_keyset {
        Some(JsonBytes(mut b)) => Ok(std::mem::take(&mut *b)),
        None if parsed.key.is_some() => Err(KeysetError::UnexpectedCleartext),
        None => Err(malformed(P_MISSING_ENCRYPTED)),
    }
}

// ------------------------------------------------------------------ write

/// Appends `s` as a JSON string, escaped as Gson does (its `toString`,
/// not HTML-safe).
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn material_name(v: i32) -> &'static str {
    KeyMaterialType::try_from(v)
        .unwrap_or(KeyMaterialType::UnknownKeymaterial)
        .as_str_name()
}

/// Writes the keyset as Tink Java does. The buffer is sized up front so
/// it never reallocates (a reallocation would leave an unwiped copy of
/// the key material behind).
pub(crate) fn write_keyset(keyset: &Keyset) -> Zeroizing<Vec<u8>> {
    let capacity = 64
        + keyset
            .keys()
            .iter()
            .map(|k| 200 + 6 * k.type_url.len() + 4 * k.value.len().div_ceil(3))
            .sum::<usize>();
    let mut out = Zeroizing::new(String::with_capacity(capacity));
    let _ = write!(
        out,
        "{{\"primaryKeyId\":{},\"key\":[",
        keyset.primary_key_id()
    );
    for (i, k) in keyset.keys().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"keyData\":{\"typeUrl\":");
        push_json_string(&mut out, &k.type_url);
        out.push_str(",\"value\":\"");
        STANDARD.encode_string(k.value.as_slice(), &mut out);
        out.push_str("\",\"keyMaterialType\":\"");
        out.push_str(material_name(k.material_type));
        let _ = write!(
            out,
            "\"}},\"status\":\"{}\",\"keyId\":{},\"outputPrefixType\":\"{}\"}}",
            k.status, k.id, k.prefix
        );
    }
    out.push_str("]}\n");
    debug_assert!(out.len() <= capacity);
    let s = std::mem::take(&mut *out);
    Zeroizing::new(s.into_bytes())
}

/// Writes an `EncryptedKeyset` as Tink Java does.
pub(crate) fn write_encrypted(ciphertext: &[u8], info: &KeysetInfo) -> Vec<u8> {
    let mut out = String::with_capacity(96 + ciphertext.len() * 4 / 3 + info.keys.len() * 160);
    out.push_str("{\"encryptedKeyset\":\"");
    STANDARD.encode_string(ciphertext, &mut out);
    let _ = write!(
        out,
        "\",\"keysetInfo\":{{\"primaryKeyId\":{},\"keyInfo\":[",
        info.primary_key_id
    );
    for (i, k) in info.keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"typeUrl\":");
        push_json_string(&mut out, &k.type_url);
        let _ = write!(
            out,
            ",\"status\":\"{}\",\"keyId\":{},\"outputPrefixType\":\"{}\"}}",
            k.status, k.key_id, k.output_prefix
        );
    }
    out.push_str("]}}\n");
    out.into_bytes()
}

// ------------------------------------------------- unauthenticated keysetInfo

#[derive(Deserialize)]
struct JsonInfoHolder {
    #[serde(rename = "keysetInfo", alias = "keyset_info", default)]
    keyset_info: Option<JsonKeysetInfo>,
    #[serde(rename = "encryptedKeyset", alias = "encrypted_keyset", default)]
    encrypted_keyset: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct JsonKeysetInfo {
    #[serde(
        rename = "primaryKeyId",
        alias = "primary_key_id",
        default,
        deserialize_with = "de_key_id"
    )]
    primary_key_id: u32,
    #[serde(rename = "keyInfo", alias = "key_info", default)]
    key_info: Vec<JsonKeyInfo>,
}

#[derive(Deserialize)]
struct JsonKeyInfo {
    #[serde(
        rename = "typeUrl",
        alias = "type_url",
        default,
        deserialize_with = "de_string"
    )]
    type_url: String,
    #[serde(default, deserialize_with = "de_status")]
    status: i32,
    #[serde(
        rename = "keyId",
        alias = "key_id",
        default,
        deserialize_with = "de_key_id"
    )]
    key_id: u32,
    #[serde(
        rename = "outputPrefixType",
        alias = "output_prefix_type",
        default,
        deserialize_with = "de_prefix"
    )]
    output_prefix_type: i32,
}

/// The `keysetInfo` of a JSON `EncryptedKeyset` as a proto (`None` when
/// the file has none).
pub(crate) fn parse_encrypted_info(
    bytes: &[u8],
) -> Result<Option<tink_proto::KeysetInfo>, KeysetError> {
    if !starts_with_object(bytes) {
        return Err(malformed(P_NOT_OBJECT));
    }
    let parsed: JsonInfoHolder = serde_json::from_slice(bytes).map_err(|e| json_error(&e))?;
    if parsed.encrypted_keyset.is_none() {
        return Err(KeysetError::UnexpectedCleartext);
    }
    Ok(parsed.keyset_info.map(|i| tink_proto::KeysetInfo {
        primary_key_id: i.primary_key_id,
        key_info: i
            .key_info
            .into_iter()
            .map(|k| tink_proto::keyset_info::KeyInfo {
                type_url: k.type_url,
                status: k.status,
                key_id: k.key_id,
                output_prefix_type: k.output_prefix_type,
            })
            .collect(),
    }))
}
