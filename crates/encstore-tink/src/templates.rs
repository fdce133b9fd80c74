//! Key templates under Tinkey's names.
//!
//! A template is what Tink's `KeyTemplate` proto holds: a key type URL, a
//! serialized key format proto, and an output prefix type. The names and
//! parameters are those of tink-java's key managers (`namedParameters()`
//! in `AesGcmKeyManager`, `AesGcmSivKeyManager`, `AesEaxKeyManager`,
//! `AesCtrHmacAeadKeyManager`, `ChaCha20Poly1305KeyManager`,
//! `XChaCha20Poly1305KeyManager`, `XAesGcmKeyManager`) and
//! `PredefinedAeadParameters`, which Tinkey's `list-key-templates` lists.
//!
//! | name | type | parameters | prefix |
//! | --- | --- | --- | --- |
//! | `AES128_GCM`, `AES128_GCM_RAW` | AesGcmKey | 16-byte key, 12-byte IV, 16-byte tag | TINK, RAW |
//! | `AES256_GCM`, `AES256_GCM_RAW` | AesGcmKey | 32-byte key, 12-byte IV, 16-byte tag | TINK, RAW |
//! | `AES128_GCM_SIV`, `AES128_GCM_SIV_RAW` | AesGcmSivKey | 16-byte key | TINK, RAW |
//! | `AES256_GCM_SIV`, `AES256_GCM_SIV_RAW` | AesGcmSivKey | 32-byte key | TINK, RAW |
//! | `AES128_EAX`, `AES128_EAX_RAW` | AesEaxKey | 16-byte key, 16-byte IV | TINK, RAW |
//! | `AES256_EAX`, `AES256_EAX_RAW` | AesEaxKey | 32-byte key, 16-byte IV | TINK, RAW |
//! | `AES128_CTR_HMAC_SHA256`, `_RAW` | AesCtrHmacAeadKey | 16-byte AES key, 16-byte IV, 32-byte HMAC-SHA256 key, 16-byte tag | TINK, RAW |
//! | `AES256_CTR_HMAC_SHA256`, `_RAW` | AesCtrHmacAeadKey | 32-byte AES key, 16-byte IV, 32-byte HMAC-SHA256 key, 32-byte tag | TINK, RAW |
//! | `CHACHA20_POLY1305`, `_RAW` | ChaCha20Poly1305Key | | TINK, RAW |
//! | `XCHACHA20_POLY1305`, `_RAW` | XChaCha20Poly1305Key | | TINK, RAW |
//! | `XAES_256_GCM_192_BIT_NONCE` | XAesGcmKey | 12-byte salt | TINK |
//! | `XAES_256_GCM_192_BIT_NONCE_NO_PREFIX` | XAesGcmKey | 12-byte salt | RAW |
//! | `XAES_256_GCM_160_BIT_NONCE_NO_PREFIX` | XAesGcmKey | 8-byte salt | RAW |
//! | `X_AES_GCM_8_BYTE_SALT_NO_PREFIX` | XAesGcmKey | 8-byte salt (same as above) | RAW |
//!
//! Streaming AEAD templates ([`STREAMING_NAMES`]; Tink's
//! `AesGcmHkdfStreamingKeyManager`, `AesCtrHmacStreamingKeyManager` and
//! `PredefinedStreamingAeadParameters`): the key (HKDF input) is as long as
//! the derived key, HKDF uses SHA-256, every key is RAW (streaming
//! ciphertexts carry no prefix).
//!
//! | name | type | parameters |
//! | --- | --- | --- |
//! | `AES128_GCM_HKDF_4KB`, `AES128_GCM_HKDF_1MB` | AesGcmHkdfStreamingKey | 16-byte key and derived key, 4096- or 1048576-byte segments |
//! | `AES256_GCM_HKDF_4KB`, `AES256_GCM_HKDF_1MB` | AesGcmHkdfStreamingKey | 32-byte key and derived key, 4096- or 1048576-byte segments |
//! | `AES128_CTR_HMAC_SHA256_4KB`, `_1MB` | AesCtrHmacStreamingKey | 16-byte key and derived key, HMAC-SHA256 32-byte tag, 4096- or 1048576-byte segments |
//! | `AES256_CTR_HMAC_SHA256_4KB`, `_1MB` | AesCtrHmacStreamingKey | 32-byte key and derived key, HMAC-SHA256 32-byte tag, 4096- or 1048576-byte segments |

use std::fmt;

use prost::Message;

use crate::error::KeysetError;
use crate::keyset::{OutputPrefix, PrimitiveKind};
use crate::primitives::TYPE_URL_PREFIX;
use crate::provider::CryptoProvider;

/// A recipe for new keys: type URL, serialized key format, output prefix
/// type (Tink's `KeyTemplate`). Holds no key material.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    /// The key type URL, such as
    /// `type.googleapis.com/google.crypto.tink.AesGcmKey`.
    type_url: String,
    /// The serialized key format proto (`AesGcmKeyFormat`, ...).
    key_format: Vec<u8>,
    /// The output prefix type new keys get.
    output_prefix: OutputPrefix,
}

impl fmt::Debug for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyTemplate")
            .field("type_url", &self.type_url)
            .field("key_format_len", &self.key_format.len())
            .field("output_prefix", &self.output_prefix)
            .finish()
    }
}

impl KeyTemplate {
    /// A template from its parts. The key format is checked only when a
    /// key is generated from it.
    pub fn new(
        type_url: impl Into<String>,
        key_format: impl Into<Vec<u8>>,
        output_prefix: OutputPrefix,
    ) -> KeyTemplate {
        KeyTemplate {
            type_url: type_url.into(),
            key_format: key_format.into(),
            output_prefix,
        }
    }

    /// The key type URL.
    pub fn type_url(&self) -> &str {
        &self.type_url
    }

    /// The serialized key format proto.
    pub fn key_format(&self) -> &[u8] {
        &self.key_format
    }

    /// The output prefix type of keys made from this template.
    pub fn output_prefix(&self) -> OutputPrefix {
        self.output_prefix
    }

    /// The primitive of the keys this template makes (by its type URL).
    pub fn primitive(&self) -> PrimitiveKind {
        if crate::streaming::params::streaming_type(&self.type_url).is_some() {
            PrimitiveKind::StreamingAead
        } else {
            PrimitiveKind::Aead
        }
    }

    /// The same template with another output prefix type.
    pub fn with_output_prefix(mut self, output_prefix: OutputPrefix) -> KeyTemplate {
        self.output_prefix = output_prefix;
        self
    }
}

/// Typed constructors for Tinkey's templates, so code need not spell a
/// name (`by_name` stays for the CLI and configuration files). Each is the
/// template of the same name with the TINK output prefix (the streaming
/// templates have none); `.with_output_prefix(OutputPrefix::Raw)` gives
/// the `_RAW` variant of an AEAD template.
impl KeyTemplate {
    /// `AES128_GCM`.
    pub fn aes128_gcm() -> KeyTemplate {
        aes_gcm(16, OutputPrefix::Tink)
    }
    /// `AES256_GCM`.
    pub fn aes256_gcm() -> KeyTemplate {
        aes_gcm(32, OutputPrefix::Tink)
    }
    /// `AES128_GCM_SIV`.
    pub fn aes128_gcm_siv() -> KeyTemplate {
        aes_gcm_siv(16, OutputPrefix::Tink)
    }
    /// `AES256_GCM_SIV`.
    pub fn aes256_gcm_siv() -> KeyTemplate {
        aes_gcm_siv(32, OutputPrefix::Tink)
    }
    /// `AES128_EAX`.
    pub fn aes128_eax() -> KeyTemplate {
        aes_eax(16, 16, OutputPrefix::Tink)
    }
    /// `AES256_EAX`.
    pub fn aes256_eax() -> KeyTemplate {
        aes_eax(32, 16, OutputPrefix::Tink)
    }
    /// `AES128_CTR_HMAC_SHA256`.
    pub fn aes128_ctr_hmac_sha256() -> KeyTemplate {
        aes_ctr_hmac(16, 16, OutputPrefix::Tink)
    }
    /// `AES256_CTR_HMAC_SHA256`.
    pub fn aes256_ctr_hmac_sha256() -> KeyTemplate {
        aes_ctr_hmac(32, 32, OutputPrefix::Tink)
    }
    /// `CHACHA20_POLY1305`.
    pub fn chacha20_poly1305() -> KeyTemplate {
        chacha(OutputPrefix::Tink)
    }
    /// `XCHACHA20_POLY1305`.
    pub fn xchacha20_poly1305() -> KeyTemplate {
        xchacha(OutputPrefix::Tink)
    }
    /// `XAES_256_GCM_192_BIT_NONCE`.
    pub fn xaes_256_gcm_192_bit_nonce() -> KeyTemplate {
        xaes(12, OutputPrefix::Tink)
    }
    /// `AES128_GCM_HKDF_4KB`.
    pub fn aes128_gcm_hkdf_4kb() -> KeyTemplate {
        aes_gcm_hkdf(16, 4096)
    }
    /// `AES128_GCM_HKDF_1MB`.
    pub fn aes128_gcm_hkdf_1mb() -> KeyTemplate {
        aes_gcm_hkdf(16, MB)
    }
    /// `AES256_GCM_HKDF_4KB`.
    pub fn aes256_gcm_hkdf_4kb() -> KeyTemplate {
        aes_gcm_hkdf(32, 4096)
    }
    /// `AES256_GCM_HKDF_1MB`.
    pub fn aes256_gcm_hkdf_1mb() -> KeyTemplate {
        aes_gcm_hkdf(32, MB)
    }
    /// `AES128_CTR_HMAC_SHA256_4KB`.
    pub fn aes128_ctr_hmac_sha256_4kb() -> KeyTemplate {
        aes_ctr_hmac_streaming(16, 4096)
    }
    /// `AES128_CTR_HMAC_SHA256_1MB`.
    pub fn aes128_ctr_hmac_sha256_1mb() -> KeyTemplate {
        aes_ctr_hmac_streaming(16, MB)
    }
    /// `AES256_CTR_HMAC_SHA256_4KB`.
    pub fn aes256_ctr_hmac_sha256_4kb() -> KeyTemplate {
        aes_ctr_hmac_streaming(32, 4096)
    }
    /// `AES256_CTR_HMAC_SHA256_1MB`.
    pub fn aes256_ctr_hmac_sha256_1mb() -> KeyTemplate {
        aes_ctr_hmac_streaming(32, MB)
    }
}

/// Every AEAD template name, in the order `list-key-templates` prints them
/// (before [`STREAMING_NAMES`]; [`all_names`] lists both).
pub const NAMES: &[&str] = &[
    "AES128_GCM",
    "AES128_GCM_RAW",
    "AES256_GCM",
    "AES256_GCM_RAW",
    "AES128_GCM_SIV",
    "AES128_GCM_SIV_RAW",
    "AES256_GCM_SIV",
    "AES256_GCM_SIV_RAW",
    "AES128_EAX",
    "AES128_EAX_RAW",
    "AES256_EAX",
    "AES256_EAX_RAW",
    "AES128_CTR_HMAC_SHA256",
    "AES128_CTR_HMAC_SHA256_RAW",
    "AES256_CTR_HMAC_SHA256",
    "AES256_CTR_HMAC_SHA256_RAW",
    "CHACHA20_POLY1305",
    "CHACHA20_POLY1305_RAW",
    "XCHACHA20_POLY1305",
    "XCHACHA20_POLY1305_RAW",
    "XAES_256_GCM_192_BIT_NONCE",
    "XAES_256_GCM_192_BIT_NONCE_NO_PREFIX",
    "XAES_256_GCM_160_BIT_NONCE_NO_PREFIX",
    "X_AES_GCM_8_BYTE_SALT_NO_PREFIX",
];

/// Every streaming AEAD template name (Tinkey's names), in the order
/// `list-key-templates` prints them, after [`NAMES`].
pub const STREAMING_NAMES: &[&str] = &[
    "AES128_GCM_HKDF_4KB",
    "AES128_GCM_HKDF_1MB",
    "AES256_GCM_HKDF_4KB",
    "AES256_GCM_HKDF_1MB",
    "AES128_CTR_HMAC_SHA256_4KB",
    "AES128_CTR_HMAC_SHA256_1MB",
    "AES256_CTR_HMAC_SHA256_4KB",
    "AES256_CTR_HMAC_SHA256_1MB",
];

/// Every template name, AEAD ([`NAMES`]) then streaming AEAD
/// ([`STREAMING_NAMES`]): what `list-key-templates` prints.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    NAMES.iter().chain(STREAMING_NAMES).copied()
}

/// The names of the templates that `provider` can make keys from, in
/// [`all_names`] order: all of them, except under `fips`, which leaves out
/// the templates of key types (and parameters) that are not FIPS-approved,
/// since a keyset made from one would be refused. Each name is checked the
/// way `Keyset::generate_with_provider` checks it (a key is generated and
/// dropped, its material wiped).
pub fn names_for(provider: &'static CryptoProvider) -> Vec<&'static str> {
    all_names()
        .filter(|name| {
            by_name(name)
                .and_then(|t| crate::Keyset::generate_with_provider(&t, provider))
                .is_ok()
        })
        .collect()
}

/// `XAesGcmParams` (tink `proto/x_aes_gcm.proto`; not in tink-proto 0.3).
#[derive(Clone, PartialEq, Message)]
struct XAesGcmParams {
    #[prost(uint32, tag = "1")]
    salt_size: u32,
}

/// `XAesGcmKeyFormat` (tink `proto/x_aes_gcm.proto`).
#[derive(Clone, PartialEq, Message)]
struct XAesGcmKeyFormat {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(message, optional, tag = "3")]
    params: Option<XAesGcmParams>,
}

fn url(name: &str) -> String {
    format!("{TYPE_URL_PREFIX}{name}")
}

fn aes_gcm(key_size: u32, prefix: OutputPrefix) -> KeyTemplate {
    let format = tink_proto::AesGcmKeyFormat {
        key_size,
        version: 0,
    };
    KeyTemplate::new(url("AesGcmKey"), format.encode_to_vec(), prefix)
}

fn aes_gcm_siv(key_size: u32, prefix: OutputPrefix) -> KeyTemplate {
    let format = tink_proto::AesGcmSivKeyFormat {
        key_size,
        version: 0,
    };
    KeyTemplate::new(url("AesGcmSivKey"), format.encode_to_vec(), prefix)
}

fn aes_eax(key_size: u32, iv_size: u32, prefix: OutputPrefix) -> KeyTemplate {
    let format = tink_proto::AesEaxKeyFormat {
        params: Some(tink_proto::AesEaxParams { iv_size }),
        key_size,
    };
    KeyTemplate::new(url("AesEaxKey"), format.encode_to_vec(), prefix)
}

fn aes_ctr_hmac(aes_key_size: u32, tag_size: u32, prefix: OutputPrefix) -> KeyTemplate {
    let format = tink_proto::AesCtrHmacAeadKeyFormat {
        aes_ctr_key_format: Some(tink_proto::AesCtrKeyFormat {
            params: Some(tink_proto::AesCtrParams { iv_size: 16 }),
            key_size: aes_key_size,
        }),
        hmac_key_format: Some(tink_proto::HmacKeyFormat {
            params: Some(tink_proto::HmacParams {
                hash: tink_proto::HashType::Sha256 as i32,
                tag_size,
            }),
            key_size: 32,
            version: 0,
        }),
    };
    KeyTemplate::new(url("AesCtrHmacAeadKey"), format.encode_to_vec(), prefix)
}

const MB: u32 = 1 << 20;

fn aes_gcm_hkdf(key_size: u32, segment: u32) -> KeyTemplate {
    let format = tink_proto::AesGcmHkdfStreamingKeyFormat {
        version: 0,
        params: Some(tink_proto::AesGcmHkdfStreamingParams {
            ciphertext_segment_size: segment,
            derived_key_size: key_size,
            hkdf_hash_type: tink_proto::HashType::Sha256 as i32,
        }),
        key_size,
    };
    KeyTemplate::new(
        url("AesGcmHkdfStreamingKey"),
        format.encode_to_vec(),
        OutputPrefix::Raw,
    )
}

fn aes_ctr_hmac_streaming(key_size: u32, segment: u32) -> KeyTemplate {
    let format = tink_proto::AesCtrHmacStreamingKeyFormat {
        version: 0,
        params: Some(tink_proto::AesCtrHmacStreamingParams {
            ciphertext_segment_size: segment,
            derived_key_size: key_size,
            hkdf_hash_type: tink_proto::HashType::Sha256 as i32,
            hmac_params: Some(tink_proto::HmacParams {
                hash: tink_proto::HashType::Sha256 as i32,
                tag_size: 32,
            }),
        }),
        key_size,
    };
    KeyTemplate::new(
        url("AesCtrHmacStreamingKey"),
        format.encode_to_vec(),
        OutputPrefix::Raw,
    )
}

fn chacha(prefix: OutputPrefix) -> KeyTemplate {
    let format = tink_proto::ChaCha20Poly1305KeyFormat {};
    KeyTemplate::new(url("ChaCha20Poly1305Key"), format.encode_to_vec(), prefix)
}

fn xchacha(prefix: OutputPrefix) -> KeyTemplate {
    let format = tink_proto::XChaCha20Poly1305KeyFormat { version: 0 };
    KeyTemplate::new(url("XChaCha20Poly1305Key"), format.encode_to_vec(), prefix)
}

fn xaes(salt_size: u32, prefix: OutputPrefix) -> KeyTemplate {
    let format = XAesGcmKeyFormat {
        version: 0,
        params: Some(XAesGcmParams { salt_size }),
    };
    KeyTemplate::new(url("XAesGcmKey"), format.encode_to_vec(), prefix)
}

/// A template for a KMS envelope key (`KmsEnvelopeAeadKey`, see
/// [`crate::envelope`]) whose master key is `kek_uri` and whose DEKs come
/// from `dek` (its output prefix is ignored and written as RAW, as Tink
/// Java's `KmsEnvelopeAeadKeyManager.createKeyTemplate` does).
///
/// Tink's own envelope templates (Java `createKeyTemplate`, Python
/// `create_kms_envelope_aead_key_template`) use the RAW prefix; TINK is
/// allowed too and is what encstore recommends: it lets decryption and
/// censuses find the key by its ID instead of trying each RAW key (a KMS
/// call each).
///
/// # Errors
/// [`KeysetError::Template`] with [`KeyError::UnsupportedDek`] for a DEK
/// type Tink does not allow in envelopes, [`KeyError::InvalidDekTemplate`]
/// for a DEK key format its type refuses, or [`KeyError::InvalidParameter`]
/// for a LEGACY or CRUNCHY `output_prefix` (Tink refuses them for envelope
/// keys).
///
/// [`KeyError::UnsupportedDek`]: crate::KeyError::UnsupportedDek
/// [`KeyError::InvalidDekTemplate`]: crate::KeyError::InvalidDekTemplate
/// [`KeyError::InvalidParameter`]: crate::KeyError::InvalidParameter
pub fn kms_envelope(
    kek_uri: &str,
    dek: &KeyTemplate,
    output_prefix: OutputPrefix,
) -> Result<KeyTemplate, KeysetError> {
    if matches!(output_prefix, OutputPrefix::Legacy | OutputPrefix::Crunchy) {
        return Err(KeysetError::Template(crate::KeyError::InvalidParameter {
            key_type: "KmsEnvelopeAeadKey",
            what: format!(
                "output prefix type {output_prefix}; Tink allows TINK or RAW for KMS envelope keys"
            ),
        }));
    }
    let dek = crate::envelope::DekTemplate::new(dek).map_err(|e| match e {
        crate::KeyError::Randomness => KeysetError::Randomness,
        e => KeysetError::Template(e),
    })?;
    Ok(KeyTemplate::new(
        crate::envelope::TYPE_URL,
        crate::envelope::key_format(kek_uri, &dek),
        output_prefix,
    ))
}

/// The template with Tinkey's name `name` (see [`NAMES`]), or
/// [`KeysetError::UnknownTemplate`].
pub fn by_name(name: &str) -> Result<KeyTemplate, KeysetError> {
    use OutputPrefix::{Raw, Tink};
    Ok(match name {
        "AES128_GCM" => aes_gcm(16, Tink),
        "AES128_GCM_RAW" => aes_gcm(16, Raw),
        "AES256_GCM" => aes_gcm(32, Tink),
        "AES256_GCM_RAW" => aes_gcm(32, Raw),
        "AES128_GCM_SIV" => aes_gcm_siv(16, Tink),
        "AES128_GCM_SIV_RAW" => aes_gcm_siv(16, Raw),
        "AES256_GCM_SIV" => aes_gcm_siv(32, Tink),
        "AES256_GCM_SIV_RAW" => aes_gcm_siv(32, Raw),
        "AES128_EAX" => aes_eax(16, 16, Tink),
        "AES128_EAX_RAW" => aes_eax(16, 16, Raw),
        "AES256_EAX" => aes_eax(32, 16, Tink),
        "AES256_EAX_RAW" => aes_eax(32, 16, Raw),
        "AES128_CTR_HMAC_SHA256" => aes_ctr_hmac(16, 16, Tink),
        "AES128_CTR_HMAC_SHA256_RAW" => aes_ctr_hmac(16, 16, Raw),
        "AES256_CTR_HMAC_SHA256" => aes_ctr_hmac(32, 32, Tink),
        "AES256_CTR_HMAC_SHA256_RAW" => aes_ctr_hmac(32, 32, Raw),
        "CHACHA20_POLY1305" => chacha(Tink),
        "CHACHA20_POLY1305_RAW" => chacha(Raw),
        "XCHACHA20_POLY1305" => xchacha(Tink),
        "XCHACHA20_POLY1305_RAW" => xchacha(Raw),
        "XAES_256_GCM_192_BIT_NONCE" => xaes(12, Tink),
        "XAES_256_GCM_192_BIT_NONCE_NO_PREFIX" => xaes(12, Raw),
        "XAES_256_GCM_160_BIT_NONCE_NO_PREFIX" | "X_AES_GCM_8_BYTE_SALT_NO_PREFIX" => xaes(8, Raw),
        "AES128_GCM_HKDF_4KB" => aes_gcm_hkdf(16, 4096),
        "AES128_GCM_HKDF_1MB" => aes_gcm_hkdf(16, MB),
        "AES256_GCM_HKDF_4KB" => aes_gcm_hkdf(32, 4096),
        "AES256_GCM_HKDF_1MB" => aes_gcm_hkdf(32, MB),
        "AES128_CTR_HMAC_SHA256_4KB" => aes_ctr_hmac_streaming(16, 4096),
        "AES128_CTR_HMAC_SHA256_1MB" => aes_ctr_hmac_streaming(16, MB),
        "AES256_CTR_HMAC_SHA256_4KB" => aes_ctr_hmac_streaming(32, 4096),
        "AES256_CTR_HMAC_SHA256_1MB" => aes_ctr_hmac_streaming(32, MB),
        _ => {
            return Err(KeysetError::UnknownTemplate {
                name: name.to_owned(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_constructors_are_the_named_templates() {
        type Make = fn() -> KeyTemplate;
        let typed: [(Make, &str); 19] = [
            (KeyTemplate::aes128_gcm, "AES128_GCM"),
            (KeyTemplate::aes256_gcm, "AES256_GCM"),
            (KeyTemplate::aes128_gcm_siv, "AES128_GCM_SIV"),
            (KeyTemplate::aes256_gcm_siv, "AES256_GCM_SIV"),
            (KeyTemplate::aes128_eax, "AES128_EAX"),
            (KeyTemplate::aes256_eax, "AES256_EAX"),
            (
                KeyTemplate::aes128_ctr_hmac_sha256,
                "AES128_CTR_HMAC_SHA256",
            ),
            (
                KeyTemplate::aes256_ctr_hmac_sha256,
                "AES256_CTR_HMAC_SHA256",
            ),
            (KeyTemplate::chacha20_poly1305, "CHACHA20_POLY1305"),
            (KeyTemplate::xchacha20_poly1305, "XCHACHA20_POLY1305"),
            (
                KeyTemplate::xaes_256_gcm_192_bit_nonce,
                "XAES_256_GCM_192_BIT_NONCE",
            ),
            (KeyTemplate::aes128_gcm_hkdf_4kb, "AES128_GCM_HKDF_4KB"),
            (KeyTemplate::aes128_gcm_hkdf_1mb, "AES128_GCM_HKDF_1MB"),
            (KeyTemplate::aes256_gcm_hkdf_4kb, "AES256_GCM_HKDF_4KB"),
            (KeyTemplate::aes256_gcm_hkdf_1mb, "AES256_GCM_HKDF_1MB"),
            (
                KeyTemplate::aes128_ctr_hmac_sha256_4kb,
                "AES128_CTR_HMAC_SHA256_4KB",
            ),
            (
                KeyTemplate::aes128_ctr_hmac_sha256_1mb,
                "AES128_CTR_HMAC_SHA256_1MB",
            ),
            (
                KeyTemplate::aes256_ctr_hmac_sha256_4kb,
                "AES256_CTR_HMAC_SHA256_4KB",
            ),
            (
                KeyTemplate::aes256_ctr_hmac_sha256_1mb,
                "AES256_CTR_HMAC_SHA256_1MB",
            ),
        ];
        for (make, name) in typed {
            assert_eq!(make(), by_name(name).unwrap(), "{name}");
        }
    }

    #[test]
    fn every_name_resolves() {
        for name in STREAMING_NAMES {
            let t = by_name(name).expect(name);
            assert_eq!(t.primitive(), PrimitiveKind::StreamingAead, "{name}");
            assert_eq!(t.output_prefix(), OutputPrefix::Raw, "{name}");
        }
        assert_eq!(all_names().count(), NAMES.len() + STREAMING_NAMES.len());
        for name in NAMES {
            assert_eq!(by_name(name).expect(name).primitive(), PrimitiveKind::Aead);
            let t = by_name(name).expect(name);
            assert!(t.type_url().starts_with(TYPE_URL_PREFIX), "{name}");
            let raw = name.ends_with("_RAW") || name.ends_with("_NO_PREFIX");
            assert_eq!(t.output_prefix() == OutputPrefix::Raw, raw, "{name}");
        }
        assert!(matches!(
            by_name("AES512_GCM"),
            Err(KeysetError::UnknownTemplate { name }) if name == "AES512_GCM"
        ));
    }

    fn t(name: &str) -> KeyTemplate {
        by_name(name).expect(name)
    }

    #[test]
    fn formats_are_tinks() {
        // AesGcmKeyFormat{key_size: 32}: field 2 varint 32.
        assert_eq!(t("AES256_GCM").key_format(), &[0x10, 32]);
        // AesGcmSivKeyFormat{key_size: 16}: field 2 varint 16.
        assert_eq!(t("AES128_GCM_SIV_RAW").key_format(), &[0x10, 16]);
        // AesEaxKeyFormat{params{iv_size 16}, key_size 32}.
        assert_eq!(t("AES256_EAX").key_format(), &[0x0a, 2, 0x08, 16, 0x10, 32]);
        // XAesGcmKeyFormat{params{salt_size 8}}: field 3, message.
        assert_eq!(
            t("X_AES_GCM_8_BYTE_SALT_NO_PREFIX").key_format(),
            &[0x1a, 2, 0x08, 8]
        );
        assert_eq!(t("CHACHA20_POLY1305").key_format(), &[] as &[u8]);
        // Tink's AES256_CTR_HMAC_SHA256_1MB (Python Tink 1.16.1 prints this
        // serialized AesCtrHmacStreamingKeyFormat): params{segment 1 MiB,
        // derived 32, HKDF SHA256, hmac{SHA256, 32}}, key_size 32.
        assert_eq!(
            t("AES256_CTR_HMAC_SHA256_1MB").key_format(),
            b"\n\x0e\x08\x80\x80@\x10 \x18\x03\"\x04\x08\x03\x10 \x10 "
        );
        assert_eq!(
            t("AES128_GCM_HKDF_4KB").type_url(),
            "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey"
        );
        assert_eq!(
            t("AES128_CTR_HMAC_SHA256").type_url(),
            "type.googleapis.com/google.crypto.tink.AesCtrHmacAeadKey"
        );
    }
}
