//! Helpers shared by the `keyset_*` integration tests: hand-built Tink JSON
//! keysets with known key bytes, so tests do not depend on the code under
//! test to make their inputs.
#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use encstore_tink::{KeyTemplate, templates};
use prost::Message as _;

pub const AES_GCM_URL: &str = "type.googleapis.com/google.crypto.tink.AesGcmKey";
pub const HMAC_URL: &str = "type.googleapis.com/google.crypto.tink.HmacKey";

/// A template by name, panicking with the name if unknown.
pub fn tpl(name: &str) -> KeyTemplate {
    templates::by_name(name).expect(name)
}

/// A 32-byte AES key whose bytes are all `b`.
pub fn key_bytes(b: u8) -> [u8; 32] {
    [b; 32]
}

/// Serialized `AesGcmKey { version, key_value }`.
pub fn aes_gcm_value_v(version: u32, key: &[u8]) -> Vec<u8> {
    tink_proto::AesGcmKey {
        version,
        key_value: key.to_vec(),
    }
    .encode_to_vec()
}

/// Serialized `AesGcmKey { version: 0, key_value }`.
pub fn aes_gcm_value(key: &[u8]) -> Vec<u8> {
    aes_gcm_value_v(0, key)
}

/// One key of a JSON keyset, written as Tink Java writes it.
pub fn key_json(id: u32, status: &str, prefix: &str, type_url: &str, value: &[u8]) -> String {
    key_json_material(id, status, prefix, type_url, value, "SYMMETRIC")
}

/// Like [`key_json`] with an explicit `keyMaterialType`.
pub fn key_json_material(
    id: u32,
    status: &str,
    prefix: &str,
    type_url: &str,
    value: &[u8],
    material: &str,
) -> String {
    format!(
        r#"{{"keyData":{{"typeUrl":"{type_url}","value":"{}","keyMaterialType":"{material}"}},"status":"{status}","keyId":{id},"outputPrefixType":"{prefix}"}}"#,
        STANDARD.encode(value)
    )
}

/// An AES-256-GCM key of a JSON keyset, key bytes all `b`.
pub fn aes_key(id: u32, status: &str, prefix: &str, b: u8) -> String {
    key_json(
        id,
        status,
        prefix,
        AES_GCM_URL,
        &aes_gcm_value(&key_bytes(b)),
    )
}

/// A JSON keyset as Tink Java writes it (compact, trailing newline).
pub fn keyset_json(primary: u32, keys: &[String]) -> String {
    format!(r#"{{"primaryKeyId":{primary},"key":[{}]}}"#, keys.join(",")) + "\n"
}

/// Raw AES-256-GCM ciphertext in Tink's layout `iv(12) || ct || tag(16)`,
/// made with ring directly (independent of encstore's primitives).
pub fn ring_aes256_gcm(key: &[u8], iv: [u8; 12], pt: &[u8], ad: &[u8]) -> Vec<u8> {
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("key"));
    let mut buf = pt.to_vec();
    k.seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::from(ad), &mut buf)
        .expect("seal");
    let mut out = iv.to_vec();
    out.extend_from_slice(&buf);
    out
}

/// A tiny deterministic PRNG (xorshift64*) for robustness tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
