//! The transit engine's wire format: its JSON replies, what it says about
//! a key ([`KeyInfo`]) and its `vault:vN:BASE64` ciphertexts.

use serde::Deserialize;

use crate::client::Client;
use crate::error::VaultError;
#[cfg(doc)]
use crate::kek::VaultKek;

/// The transit key type [`VaultKek::create_master_key`] creates.
pub const MASTER_KEY_TYPE: &str = "aes256-gcm96";

/// Transit key types that are AEADs: the server binds `associated_data`.
const AEAD_KEY_TYPES: &[&str] = &[
    "aes128-gcm96",
    "aes256-gcm96",
    "chacha20-poly1305",
    "xchacha20-poly1305",
];

/// What transit says about a key (`GET MOUNT/keys/NAME`), without any key
/// material.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The key type, e.g. `aes256-gcm96`.
    pub key_type: String,
    /// The newest version: what encryption and rewrap use.
    pub latest_version: u32,
    /// Ciphertexts of older versions are refused.
    pub min_decryption_version: u32,
    /// Encryption with older versions is refused (0: any).
    pub min_encryption_version: u32,
    /// Whether the key derives per-context keys (Tink and encstore need
    /// `false`).
    pub derived: bool,
    /// Whether the key may be exported.
    pub exportable: bool,
    /// Whether the type can encrypt.
    pub supports_encryption: bool,
    /// Whether the type can decrypt.
    pub supports_decryption: bool,
}

impl KeyInfo {
    /// Whether the server binds associated data for this key type.
    pub fn binds_associated_data(&self) -> bool {
        AEAD_KEY_TYPES.contains(&self.key_type.as_str())
    }
}

#[derive(Deserialize)]
pub(crate) struct Reply<T> {
    pub(crate) data: Option<T>,
    #[serde(default)]
    pub(crate) warnings: Option<Vec<String>>,
}

#[derive(Deserialize)]
pub(crate) struct KeyData {
    #[serde(rename = "type")]
    pub(crate) key_type: String,
    #[serde(default)]
    pub(crate) derived: bool,
    #[serde(default)]
    pub(crate) exportable: bool,
    #[serde(default)]
    pub(crate) supports_encryption: bool,
    #[serde(default)]
    pub(crate) supports_decryption: bool,
    pub(crate) latest_version: u32,
    #[serde(default)]
    pub(crate) min_decryption_version: u32,
    #[serde(default)]
    pub(crate) min_encryption_version: u32,
}

#[derive(Deserialize)]
pub(crate) struct CiphertextData {
    pub(crate) ciphertext: String,
}

#[derive(Deserialize)]
pub(crate) struct PlaintextData {
    pub(crate) plaintext: String,
}

/// The key version a transit ciphertext names: `vault:vN:…` → `N`.
///
/// The census by master-key version uses it: a wrapped keyset whose version
/// is below [`KeyInfo::latest_version`] is due for
/// [`VaultKek::rewrap_ciphertext`].
///
/// # Errors
/// [`VaultError::NotTransitCiphertext`] when `ciphertext` is not
/// `vault:vN:BASE64` (N a decimal from 1).
pub fn ciphertext_key_version(ciphertext: &[u8]) -> Result<u32, VaultError> {
    let s = std::str::from_utf8(ciphertext).map_err(|_| VaultError::NotTransitCiphertext)?;
    let rest = s
        .strip_prefix("vault:v")
        .ok_or(VaultError::NotTransitCiphertext)?;
    let (num, body) = rest
        .split_once(':')
        .ok_or(VaultError::NotTransitCiphertext)?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || num.starts_with('0') {
        return Err(VaultError::NotTransitCiphertext);
    }
    let version: u32 = num.parse().map_err(|_| VaultError::NotTransitCiphertext)?;
    let base64ish = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
    if body.is_empty() || !body.bytes().all(base64ish) {
        return Err(VaultError::NotTransitCiphertext);
    }
    Ok(version)
}

pub(crate) fn parse_reply<T: for<'de> Deserialize<'de>>(
    client: &Client,
    operation: &str,
    body: &[u8],
) -> Result<(T, Vec<String>), VaultError> {
    let protocol = |reason: String| VaultError::Protocol {
        address: client.address.clone(),
        operation: operation.to_owned(),
        reason,
    };
    // serde_json's messages quote no input values for these shapes beyond
    // field names, but keep them out anyway: the body may hold a plaintext.
    let reply: Reply<T> = serde_json::from_slice(body)
        .map_err(|e| protocol(format!("not a transit JSON reply ({})", e.classify_name())))?;
    let data = reply
        .data
        .ok_or_else(|| protocol("the reply has no data".to_owned()))?;
    Ok((data, reply.warnings.unwrap_or_default()))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "malformed JSON",
            serde_json::error::Category::Data => "missing or mistyped field",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

/// Whether the server said it ignored the `associated_data` parameter.
pub(crate) fn ignored_associated_data(warnings: &[String]) -> bool {
    warnings
        .iter()
        .any(|w| w.contains("associated_data") && w.to_ascii_lowercase().contains("ignored"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_version_of_ciphertexts() {
        assert_eq!(ciphertext_key_version(b"vault:v1:AAAA").ok(), Some(1));
        assert_eq!(ciphertext_key_version(b"vault:v42:ab+/cd==").ok(), Some(42));
        assert_eq!(
            ciphertext_key_version(b"vault:v4294967295:AA").ok(),
            Some(u32::MAX)
        );
        for bad in [
            &b""[..],
            b"vault:v1:",
            b"vault:v:AA",
            b"vault:v0:AA",
            b"vault:v01:AA",
            b"vault:v+1:AA",
            b"vault:v4294967296:AA",
            b"vault:1:AA",
            b"Vault:v1:AA",
            b"vault:v1AA",
            b"vault:v1:A A",
            b"vault:v1:AA\n",
            b"\x01\x02\x03",
            b"vault:v1:\xff",
        ] {
            assert!(
                matches!(
                    ciphertext_key_version(bad),
                    Err(VaultError::NotTransitCiphertext)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ignored_parameter_warnings() {
        assert!(ignored_associated_data(&[
            "Endpoint ignored these unrecognized parameters: [associated_data]".to_owned()
        ]));
        assert!(!ignored_associated_data(&[
            "Endpoint ignored these unrecognized parameters: [bogus]".to_owned()
        ]));
        assert!(!ignored_associated_data(&[]));
    }

    #[test]
    fn aead_key_types() {
        let info = |t: &str| KeyInfo {
            key_type: t.to_owned(),
            latest_version: 1,
            min_decryption_version: 1,
            min_encryption_version: 0,
            derived: false,
            exportable: false,
            supports_encryption: true,
            supports_decryption: true,
        };
        assert!(info("aes256-gcm96").binds_associated_data());
        assert!(info("chacha20-poly1305").binds_associated_data());
        assert!(!info("rsa-2048").binds_associated_data());
    }
}
