//! serde visitors for the forms Tink implementations write: key IDs as
//! unsigned or signed numbers or strings, enums as names or numbers,
//! strings, and standard or URL-safe base64, padded or not.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde::de::{self, Deserializer, Visitor};
use zeroize::Zeroizing;

use super::{P_BASE64, P_KEY_ID, P_MATERIAL, P_PREFIX, P_STATUS, P_STRING};

struct KeyIdVisitor;

impl<'de> Visitor<'de> for KeyIdVisitor {
    type Value = u32;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(P_KEY_ID)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::custom(P_KEY_ID))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
        if v >= 0 {
            return self.visit_u64(v as u64);
        }
        // Old Tink Java wrote IDs >= 2^31 as negative int32.
        i32::try_from(v)
            .map(|s| s as u32)
            .map_err(|_| E::custom(P_KEY_ID))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u32, E> {
        // Protobuf JSON accepts integral floats such as 1.0 or 1e3.
        if v.fract() == 0.0 && v >= i32::MIN as f64 && v <= u32::MAX as f64 {
            return self.visit_i64(v as i64);
        }
        Err(E::custom(P_KEY_ID))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
        // Protobuf JSON writes and reads 32-bit integers also as strings.
        if let Ok(u) = v.parse::<u32>() {
            return Ok(u);
        }
        match v.parse::<i32>() {
            Ok(s) if s < 0 => Ok(s as u32),
            _ => Err(E::custom(P_KEY_ID)),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<u32, E> {
        Ok(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<u32, E> {
        Ok(0)
    }
}

pub(super) fn de_key_id<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    d.deserialize_any(KeyIdVisitor)
}

/// An enum field: a name from `names` (index = value) or a number.
struct EnumVisitor {
    names: &'static [&'static str],
    problem: &'static str,
}

impl<'de> Visitor<'de> for EnumVisitor {
    type Value = i32;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.problem)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
        self.names
            .iter()
            .position(|n| *n == v)
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| E::custom(self.problem))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::custom(self.problem))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::custom(self.problem))
    }
    fn visit_unit<E: de::Error>(self) -> Result<i32, E> {
        Ok(0)
    }
}

const STATUS_NAMES: &[&str] = &["UNKNOWN_STATUS", "ENABLED", "DISABLED", "DESTROYED"];
const PREFIX_NAMES: &[&str] = &["UNKNOWN_PREFIX", "TINK", "LEGACY", "RAW", "CRUNCHY"];
const MATERIAL_NAMES: &[&str] = &[
    "UNKNOWN_KEYMATERIAL",
    "SYMMETRIC",
    "ASYMMETRIC_PRIVATE",
    "ASYMMETRIC_PUBLIC",
    "REMOTE",
];

pub(super) fn de_status<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    d.deserialize_any(EnumVisitor {
        names: STATUS_NAMES,
        problem: P_STATUS,
    })
}

pub(super) fn de_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    d.deserialize_any(EnumVisitor {
        names: PREFIX_NAMES,
        problem: P_PREFIX,
    })
}

pub(super) fn de_material<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    d.deserialize_any(EnumVisitor {
        names: MATERIAL_NAMES,
        problem: P_MATERIAL,
    })
}

struct StringVisitor;

impl<'de> Visitor<'de> for StringVisitor {
    type Value = String;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(P_STRING)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
        Err(E::custom(P_STRING))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
        Err(E::custom(P_STRING))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(E::custom(P_STRING))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
        Err(E::custom(P_STRING))
    }
}

pub(super) fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(StringVisitor)
}

/// Base64 decoding as lenient as Tink's readers: padding optional.
const B64_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);
const B64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    if s.bytes().any(|b| b == b'-' || b == b'_') {
        B64_URL_SAFE.decode(s).ok()
    } else {
        B64_STANDARD.decode(s).ok()
    }
}

/// Base64 bytes, decoded straight into zeroizing storage.
struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Zeroizing<Vec<u8>>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(P_BASE64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        decode_base64(v)
            .map(Zeroizing::new)
            .ok_or_else(|| E::custom(P_BASE64))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Zeroizing::new(Vec::new()))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(E::custom(P_BASE64))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(E::custom(P_BASE64))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(E::custom(P_BASE64))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::custom(P_BASE64))
    }
}

pub(super) fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<Vec<u8>>, D::Error> {
    d.deserialize_any(BytesVisitor)
}
