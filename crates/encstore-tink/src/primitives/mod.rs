//! Raw AEAD primitives, one per Tink key type, without Tink's output prefix.
//!
//! This module is the contract between the primitives and the keyset layer:
//! the keyset layer only calls `primitive_from_key_data`,
//! `new_key_data_value` and the `RawAead` trait (all crate-private).
//!
//! One file per key type. Each parses its key proto, applies the same
//! validation rules as Google's Tink 1.16 key managers (C++ core, which is
//! what Python Tink runs), and builds a primitive whose raw ciphertext layout
//! is byte-for-byte Tink's:
//!
//! Every primitive comes from the key's [`CryptoProvider`]
//! (`crate::provider`), which is fixed when the key is read or created:
//!
//! | key type | `ring` | `aws-lc-rs` | `fips` | raw ciphertext |
//! | --- | --- | --- | --- | --- |
//! | `AesGcmKey` | ring | AWS-LC | FIPS module (IV made in the module) | `iv(12) ‖ ct ‖ tag(16)` |
//! | `AesGcmSivKey` | RustCrypto `aes-gcm-siv` | AWS-LC | refused | `nonce(12) ‖ ct ‖ tag(16)` |
//! | `AesEaxKey` | EAX composed from RustCrypto `aes`, `cmac`, `ctr` | the same | refused | `iv(12 or 16) ‖ ct ‖ tag(16)` |
//! | `AesCtrHmacAeadKey` | RustCrypto `aes`, `hmac`, `sha1`/`sha2` | AWS-LC AES-CTR and HMAC | FIPS module (no SHA-1) | `iv ‖ ct ‖ tag` |
//! | `ChaCha20Poly1305Key` | ring | AWS-LC | refused | `nonce(12) ‖ ct ‖ tag(16)` |
//! | `XChaCha20Poly1305Key` | HChaCha20 (RustCrypto `chacha20`) + ring | HChaCha20 + AWS-LC | refused | `nonce(24) ‖ ct ‖ tag(16)` |
//! | `XAesGcmKey` | RustCrypto `cmac` (key derivation) + ring | RustCrypto `cmac` + AWS-LC | refused | `salt ‖ iv(12) ‖ ct ‖ tag(16)` |
//!
//! Every nonce, IV and salt is fresh on each message. Under `ring` and
//! `aws-lc-rs` it comes from the kernel CSPRNG ([`nonce_source`]): through
//! the kernel's vDSO generator where the kernel has one (Linux 6.11+, about
//! 50 ns), else one `getrandom` system call. A forked child never repeats
//! its parent's nonces either way; the `nonce` module says why encstore
//! keeps no random pool of its own. Under `fips` it comes from the FIPS
//! module's DRBG (AES-GCM's IV is drawn inside the module).
//!
//! Key bytes live in `Zeroizing` buffers and are wiped when dropped, as
//! are the RustCrypto key schedules and MAC states (their `zeroize`
//! features) and aws-lc-rs's keys. ring's key schedules are not wiped by
//! ring. No type here has a `Debug` that shows key bytes.

use encstore_core::AeadError;
use zeroize::{Zeroize, Zeroizing};

use crate::error::KeyError;
use crate::provider::CryptoProvider;

mod aes_ctr_hmac;
mod aes_eax;
mod aes_gcm;
mod aes_gcm_siv;
mod aes_util;
mod chacha20_poly1305;
mod hash;
mod nonce;
mod nonce_aead;
mod x_aes_gcm;
mod xchacha20_poly1305;

#[cfg(test)]
mod test_util;

pub use hash::{HashType, UnknownHashName};
pub use nonce::{NonceSource, nonce_source};

/// Type URL prefix shared by every Tink key type.
pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/google.crypto.tink.";

/// One key's raw AEAD: encrypts to `nonce || ciphertext || tag` (the layout
/// of the Tink primitive for that key type, without the output prefix).
pub(crate) trait RawAead: Send + Sync {
    /// Appends the raw ciphertext of `plaintext` to `out` (which may already
    /// hold an output prefix). Uses a fresh nonce from the kernel CSPRNG.
    fn seal_append(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), AeadError>;

    /// Decrypts the raw ciphertext `buf[start..]` in place. On success `buf`
    /// holds exactly the plaintext (from index 0). On failure the contents
    /// of `buf` are unspecified and the error is
    /// [`AeadError::Authentication`] (no detail).
    fn open_in_place(
        &self,
        buf: &mut Vec<u8>,
        start: usize,
        associated_data: &[u8],
    ) -> Result<(), AeadError>;

    /// Decrypts a borrowed raw ciphertext. The default copies it and calls
    /// [`RawAead::open_in_place`].
    fn open(&self, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, AeadError> {
        let mut buf = ciphertext.to_vec();
        self.open_in_place(&mut buf, 0, associated_data)?;
        Ok(buf)
    }

    /// Bytes a raw ciphertext adds to the plaintext (nonce/IV/salt + tag).
    fn overhead(&self) -> usize;

    /// Bytes the raw ciphertext puts before the encrypted payload (nonce,
    /// IV or salt). The tag takes the rest of [`RawAead::overhead`].
    fn header_len(&self) -> usize;

    /// Encrypts in place: `buf[start + header_len()..]` holds the plaintext.
    /// On success `buf[start..]` holds the raw ciphertext (header, payload,
    /// tag). The default copies the plaintext out and calls
    /// [`RawAead::seal_append`]; primitives that can encrypt in place
    /// override it and copy nothing.
    fn seal_in_place(
        &self,
        buf: &mut Vec<u8>,
        start: usize,
        associated_data: &[u8],
    ) -> Result<(), AeadError> {
        let from = start
            .checked_add(self.header_len())
            .ok_or(AeadError::TooLarge)?;
        let plaintext = Zeroizing::new(buf.get(from..).ok_or(AeadError::TooLarge)?.to_vec());
        buf.truncate(start);
        self.seal_append(&plaintext, associated_data, buf)
    }
}

/// What a key is, for listings, policies and logs. Never holds key bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyParams {
    /// `AesGcmKey`.
    AesGcm {
        /// Key size in bytes (16 or 32).
        key_size: usize,
    },
    /// `AesGcmSivKey`.
    AesGcmSiv {
        /// Key size in bytes (16 or 32).
        key_size: usize,
    },
    /// `AesEaxKey`.
    AesEax {
        /// Key size in bytes (16 or 32).
        key_size: usize,
        /// IV size in bytes (12 or 16).
        iv_size: usize,
    },
    /// `AesCtrHmacAeadKey`.
    AesCtrHmac {
        /// AES key size in bytes (16 or 32).
        aes_key_size: usize,
        /// IV size in bytes (12 to 16).
        iv_size: usize,
        /// HMAC key size in bytes.
        hmac_key_size: usize,
        /// HMAC hash: SHA1, SHA224, SHA256, SHA384 or SHA512.
        hash: HashType,
        /// Tag size in bytes.
        tag_size: usize,
    },
    /// `ChaCha20Poly1305Key`.
    ChaCha20Poly1305,
    /// `XChaCha20Poly1305Key`.
    XChaCha20Poly1305,
    /// `XAesGcmKey`.
    XAesGcm {
        /// Salt size in bytes (8 to 12).
        salt_size: usize,
    },
    /// `AesGcmHkdfStreamingKey` (streaming AEAD, see [`crate::streaming`]).
    AesGcmHkdfStreaming {
        /// Key size in bytes (the HKDF input; at least the derived size).
        key_size: usize,
        /// Derived AES-GCM key size in bytes (16 or 32).
        derived_key_size: usize,
        /// HKDF hash: SHA1, SHA256 or SHA512.
        hkdf_hash: HashType,
        /// Ciphertext segment size in bytes.
        ciphertext_segment_size: usize,
    },
    /// `KmsEnvelopeAeadKey` (see [`crate::envelope`]): no key material, a
    /// master key in a KMS and a template for the data-encryption keys.
    KmsEnvelope {
        /// The master key's URI (`KmsEnvelopeAeadKeyFormat.kek_uri`; the
        /// value of a PKCS#11 `pin-value`, if any, shown as `REDACTED`).
        kek_uri: String,
        /// What the DEKs are.
        dek: Box<KeyParams>,
    },
    /// `AesCtrHmacStreamingKey` (streaming AEAD, see [`crate::streaming`]).
    AesCtrHmacStreaming {
        /// Key size in bytes (the HKDF input; at least the derived size).
        key_size: usize,
        /// Derived AES-CTR key size in bytes (16 or 32).
        derived_key_size: usize,
        /// HKDF hash: SHA1, SHA256 or SHA512.
        hkdf_hash: HashType,
        /// Segment HMAC hash: SHA1, SHA256 or SHA512.
        hmac_hash: HashType,
        /// Tag size in bytes.
        tag_size: usize,
        /// Ciphertext segment size in bytes.
        ciphertext_segment_size: usize,
    },
}

/// A one-line description of the parameters, as `encstore list-keyset`
/// shows them (for example `AES-256-GCM`, or `streaming AES-256-GCM,
/// HKDF-SHA256 (32-byte key), 1048576-byte segments`). No key material.
impl std::fmt::Display for KeyParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyParams::AesGcm { key_size } => write!(f, "AES-{}-GCM", key_size * 8),
            KeyParams::AesGcmSiv { key_size } => write!(f, "AES-{}-GCM-SIV", key_size * 8),
            KeyParams::AesEax { key_size, iv_size } => {
                write!(f, "AES-{}-EAX, {iv_size}-byte IV", key_size * 8)
            }
            KeyParams::AesCtrHmac {
                aes_key_size,
                iv_size,
                hmac_key_size,
                hash,
                tag_size,
            } => write!(
                f,
                "AES-{}-CTR ({iv_size}-byte IV) + HMAC-{hash} ({hmac_key_size}-byte key, {tag_size}-byte tag)",
                aes_key_size * 8
            ),
            KeyParams::ChaCha20Poly1305 => f.write_str("ChaCha20-Poly1305"),
            KeyParams::XChaCha20Poly1305 => f.write_str("XChaCha20-Poly1305"),
            KeyParams::XAesGcm { salt_size } => write!(f, "XAES-256-GCM, {salt_size}-byte salt"),
            KeyParams::AesGcmHkdfStreaming {
                key_size,
                derived_key_size,
                hkdf_hash,
                ciphertext_segment_size,
            } => write!(
                f,
                "streaming AES-{}-GCM, HKDF-{hkdf_hash} ({key_size}-byte key), {ciphertext_segment_size}-byte segments",
                derived_key_size * 8
            ),
            KeyParams::AesCtrHmacStreaming {
                key_size,
                derived_key_size,
                hkdf_hash,
                hmac_hash,
                tag_size,
                ciphertext_segment_size,
            } => write!(
                f,
                "streaming AES-{}-CTR + HMAC-{hmac_hash} ({tag_size}-byte tag), HKDF-{hkdf_hash} ({key_size}-byte key), {ciphertext_segment_size}-byte segments",
                derived_key_size * 8
            ),
            KeyParams::KmsEnvelope { kek_uri, dek } => {
                write!(f, "KMS envelope, master key {kek_uri}, DEKs {dek}")
            }
        }
    }
}

impl KeyParams {
    /// Whether these are the parameters of a streaming AEAD key.
    pub fn is_streaming(&self) -> bool {
        matches!(
            self,
            KeyParams::AesGcmHkdfStreaming { .. } | KeyParams::AesCtrHmacStreaming { .. }
        )
    }
}

/// Tink key types that are not AEADs (MAC, PRF, deterministic AEAD,
/// streaming AEAD, signatures, hybrid encryption, JWT, key derivation).
const NON_AEAD_KEY_TYPES: &[&str] = &[
    "AesCmacKey",
    "AesCmacPrfKey",
    "AesCtrHmacStreamingKey",
    "AesCtrKey",
    "AesGcmHkdfStreamingKey",
    "AesSivKey",
    "EcdsaPrivateKey",
    "EcdsaPublicKey",
    "EciesAeadHkdfPrivateKey",
    "EciesAeadHkdfPublicKey",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "HkdfPrfKey",
    "HmacKey",
    "HmacPrfKey",
    "HpkePrivateKey",
    "HpkePublicKey",
    "JwtEcdsaPrivateKey",
    "JwtEcdsaPublicKey",
    "CompositeMlDsaPrivateKey",
    "CompositeMlDsaPublicKey",
    "JwtHmacKey",
    "JwtMlDsaPrivateKey",
    "JwtMlDsaPublicKey",
    "JwtRsaSsaPkcs1PrivateKey",
    "JwtRsaSsaPkcs1PublicKey",
    "JwtRsaSsaPssPrivateKey",
    "JwtRsaSsaPssPublicKey",
    "MlDsaPrivateKey",
    "MlDsaPublicKey",
    "PrfBasedDeriverKey",
    "RsaSsaPkcs1PrivateKey",
    "RsaSsaPkcs1PublicKey",
    "RsaSsaPssPrivateKey",
    "RsaSsaPssPublicKey",
    "SlhDsaPrivateKey",
    "SlhDsaPublicKey",
];

/// Tink AEAD key types whose key material lives in a KMS, not in the keyset.
const KMS_AEAD_KEY_TYPES: &[&str] = &["KmsAeadKey", "KmsEnvelopeAeadKey", "LegacyKmsAeadKey"];

/// The AEAD key types this module implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AeadKeyType {
    AesGcm,
    AesGcmSiv,
    AesEax,
    AesCtrHmac,
    ChaCha20Poly1305,
    XChaCha20Poly1305,
    XAesGcm,
}

/// Maps a type URL to the AEAD key type, or the right refusal.
fn classify(type_url: &str) -> Result<AeadKeyType, KeyError> {
    let unknown = || KeyError::UnknownTypeUrl {
        type_url: type_url.to_owned(),
    };
    let name = type_url.strip_prefix(TYPE_URL_PREFIX).ok_or_else(unknown)?;
    Ok(match name {
        "AesGcmKey" => AeadKeyType::AesGcm,
        "AesGcmSivKey" => AeadKeyType::AesGcmSiv,
        "AesEaxKey" => AeadKeyType::AesEax,
        "AesCtrHmacAeadKey" => AeadKeyType::AesCtrHmac,
        "ChaCha20Poly1305Key" => AeadKeyType::ChaCha20Poly1305,
        "XChaCha20Poly1305Key" => AeadKeyType::XChaCha20Poly1305,
        "XAesGcmKey" => AeadKeyType::XAesGcm,
        _ if NON_AEAD_KEY_TYPES.contains(&name) => {
            return Err(KeyError::NotAead {
                type_url: type_url.to_owned(),
            });
        }
        _ if KMS_AEAD_KEY_TYPES.contains(&name) => {
            return Err(KeyError::UnsupportedAead {
                type_url: type_url.to_owned(),
            });
        }
        _ => return Err(unknown()),
    })
}

/// Parses a key's serialized proto (`KeyData.value`) of type `type_url`,
/// checks it with Tink's rules (version, key size, parameters) and with
/// `provider`'s (under `fips`: approved key types and parameters only),
/// and builds its primitive from `provider`. Key bytes are copied into
/// zeroizing storage and the decoded proto's copy is wiped.
pub(crate) fn primitive_from_key_data(
    provider: &'static CryptoProvider,
    type_url: &str,
    value: &[u8],
) -> Result<(KeyParams, Box<dyn RawAead>), KeyError> {
    let kind = classify(type_url)?;
    provider.check_key_type(type_url)?;
    let (params, primitive) = match kind {
        AeadKeyType::AesGcm => aes_gcm::from_key(provider, value),
        AeadKeyType::AesGcmSiv => aes_gcm_siv::from_key(provider, value),
        AeadKeyType::AesEax => aes_eax::from_key(provider, value),
        AeadKeyType::AesCtrHmac => aes_ctr_hmac::from_key(provider, value),
        AeadKeyType::ChaCha20Poly1305 => chacha20_poly1305::from_key(provider, value),
        AeadKeyType::XChaCha20Poly1305 => xchacha20_poly1305::from_key(provider, value),
        AeadKeyType::XAesGcm => x_aes_gcm::from_key(provider, value),
    }?;
    provider.check_key_params(&params)?;
    Ok((params, primitive))
}

/// Generates a fresh key of type `type_url` from a serialized key format
/// (`KeyTemplate.value`), with key material from the OS CSPRNG, and returns
/// the serialized key proto for `KeyData.value`.
pub(crate) fn new_key_data_value(
    provider: &'static CryptoProvider,
    type_url: &str,
    key_format: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let kind = classify(type_url)?;
    provider.check_key_type(type_url)?;
    match kind {
        AeadKeyType::AesGcm => aes_gcm::new_key(provider, key_format),
        AeadKeyType::AesGcmSiv => aes_gcm_siv::new_key(provider, key_format),
        AeadKeyType::AesEax => aes_eax::new_key(provider, key_format),
        AeadKeyType::AesCtrHmac => aes_ctr_hmac::new_key(provider, key_format),
        AeadKeyType::ChaCha20Poly1305 => chacha20_poly1305::new_key(provider, key_format),
        AeadKeyType::XChaCha20Poly1305 => xchacha20_poly1305::new_key(provider, key_format),
        AeadKeyType::XAesGcm => x_aes_gcm::new_key(provider, key_format),
    }
}

// ---------------------------------------------------------------------------
// Helpers shared by the key types.

/// The only key (and key format) version Tink 1.16 accepts.
const CURRENT_VERSION: u32 = 0;

/// AES-GCM / ChaCha20-Poly1305 tag size.
const TAG_SIZE: usize = 16;

/// Decodes a key or key-format proto; a parse failure names the key type.
fn decode<M: prost::Message + Default>(
    key_type: &'static str,
    bytes: &[u8],
) -> Result<M, KeyError> {
    M::decode(bytes).map_err(|_| KeyError::MalformedKey { key_type })
}

/// Refuses any version but 0, as every Tink key manager does.
fn check_version(key_type: &'static str, version: u32) -> Result<(), KeyError> {
    if version > CURRENT_VERSION {
        return Err(KeyError::UnsupportedVersion { key_type, version });
    }
    Ok(())
}

/// Moves key bytes out of a decoded proto into zeroizing storage, leaving an
/// empty vector behind (so no copy of the key outlives this call).
fn take_key(bytes: &mut Vec<u8>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(std::mem::take(bytes))
}

/// A key proto with Tink's `version` and `key_value` fields.
trait KeyProto: prost::Message + Default {
    /// The key's version.
    fn version(&self) -> u32;
    /// The key bytes.
    fn key_value_mut(&mut self) -> &mut Vec<u8>;
}

macro_rules! impl_key_proto {
    ($($proto:ty),* $(,)?) => {$(
        impl KeyProto for $proto {
            fn version(&self) -> u32 {
                self.version
            }

            fn key_value_mut(&mut self) -> &mut Vec<u8> {
                &mut self.key_value
            }
        }
    )*};
}

impl_key_proto!(
    tink_proto::AesEaxKey,
    tink_proto::AesGcmKey,
    tink_proto::AesGcmSivKey,
    tink_proto::ChaCha20Poly1305Key,
    tink_proto::XChaCha20Poly1305Key,
    x_aes_gcm::XAesGcmKey,
);

/// The common start of `from_key`: decodes the key proto, moves its key
/// bytes into zeroizing storage ([`take_key`]), then refuses any version
/// but 0 and checks the key size with the key type's `check_size`, in that
/// order. Returns the proto (key bytes taken) and the key bytes.
fn decode_key<M: KeyProto>(
    key_type: &'static str,
    value: &[u8],
    check_size: fn(&'static str, usize) -> Result<(), KeyError>,
) -> Result<(M, Zeroizing<Vec<u8>>), KeyError> {
    let mut proto = M::default();
    crate::keyset::merge_or_wipe(&mut proto, value, |m| m.key_value_mut().zeroize())
        .map_err(|_| KeyError::MalformedKey { key_type })?;
    let key = take_key(proto.key_value_mut());
    check_version(key_type, proto.version())?;
    check_size(key_type, key.len())?;
    Ok((proto, key))
}

/// The common end of `new_key`: `len` fresh random key bytes, put in the
/// proto `make` builds from them, serialized into zeroizing storage; the
/// proto's copy of the key is wiped.
fn encode_new_key<M: KeyProto>(
    provider: &CryptoProvider,
    len: usize,
    make: impl FnOnce(Vec<u8>) -> M,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let key_value = random_key(provider, len)?;
    let mut proto = make(key_value.to_vec());
    let encoded = encode_key(&proto);
    proto.key_value_mut().zeroize();
    Ok(encoded)
}

/// Checks that an AES key size is 16 or 32 bytes (Tink's C++
/// `ValidateAesKeySize`, which refuses 24).
fn check_aes_key_size(key_type: &'static str, size: usize) -> Result<(), KeyError> {
    if size != 16 && size != 32 {
        return Err(KeyError::WrongKeySize {
            key_type,
            size,
            allowed: "16 or 32 bytes",
        });
    }
    Ok(())
}

/// Checks that a key is 32 bytes (ChaCha20-Poly1305, XChaCha20-Poly1305,
/// XAES-256-GCM).
fn check_32_byte_key_size(key_type: &'static str, size: usize) -> Result<(), KeyError> {
    if size != 32 {
        return Err(KeyError::WrongKeySize {
            key_type,
            size,
            allowed: "32 bytes",
        });
    }
    Ok(())
}

/// Fresh key material from the provider's source (`getrandom`, or the
/// FIPS module's DRBG).
pub(crate) fn random_key(
    provider: &CryptoProvider,
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let mut key = Zeroizing::new(vec![0u8; len]);
    provider
        .fill_secret(&mut key)
        .map_err(|_| KeyError::Randomness)?;
    Ok(key)
}

/// Fills a nonce, IV or salt with fresh bytes from the kernel CSPRNG
/// (vDSO or system call; see the `nonce` module): the source of the
/// `ring` and `aws-lc-rs` providers. Key material does not come from here
/// but from [`random_key`].
pub(crate) fn fill_kernel_nonce(buf: &mut [u8]) -> Result<(), AeadError> {
    nonce::fill_nonce(buf)
}

/// Serializes a freshly made key proto into zeroizing storage.
///
/// `encode_to_vec` allocates the exact encoded length up front, so the
/// serialized key is never reallocated (and left behind) while encoding.
fn encode_key<M: prost::Message>(key: &M) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(key.encode_to_vec())
}

/// A `u32` proto size field as `usize`.
fn size(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

// ---------------------------------------------------------------------------
// Test hook.

/// Test and benchmark access to the raw primitives. Not part of the API.
///
/// Integration tests (Wycheproof) and the benchmark build keys through the
/// real path, `primitive_from_key_data`, from hand-encoded key protos.
#[doc(hidden)]
pub mod testing;

#[cfg(test)]
mod tests;
