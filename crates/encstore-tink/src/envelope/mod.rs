//! Tink's KMS envelope AEAD: the `KmsEnvelopeAeadKey` key type.
//!
//! An envelope key holds no key material. It names a key-encryption key
//! in a KMS (`kek_uri`: `hcvault://…`, `aws-kms://…`, …) and a template
//! for data-encryption keys (DEKs). Every encryption makes a fresh DEK,
//! encrypts the data with it, and has the KMS wrap the DEK (one
//! [`Kek::wrap`] call, with **empty** associated data, as every Tink
//! does); decryption has the KMS unwrap the DEK (one [`Kek::unwrap`] call)
//! and decrypts the data with it. The ciphertext, byte for byte Tink's:
//!
//! ```text
//! [output prefix: 0x01 ‖ key ID (TINK) | nothing (RAW)]
//! BE32(len(encrypted DEK)) ‖ encrypted DEK ‖ DEK ciphertext
//! ```
//!
//! The encrypted DEK is the KMS's wrapping of the DEK's serialized key
//! proto (Tink's `KeyData.value`, e.g. an `AesGcmKey`); the DEK ciphertext
//! is the DEK's raw AEAD ciphertext of the plaintext with the caller's
//! associated data.
//!
//! Rules, as Tink's (Java `KmsEnvelopeAead`,
//! `LegacyKmsEnvelopeAeadProtoSerialization`; Go `kms_envelope_aead.go`;
//! C++ and Python `kms_envelope_aead`):
//! - DEK types ([`DEK_TYPES`]): AES-GCM, AES-GCM-SIV, AES-CTR-HMAC,
//!   AES-EAX, ChaCha20-Poly1305, XChaCha20-Poly1305 (Tink Java's list; Tink
//!   Go has no AES-EAX DEKs, Tink C++ and Python no ChaCha20-Poly1305
//!   DEKs). X-AES-GCM and every other type are refused.
//! - Output prefix TINK or RAW (Tink Java and C++ refuse LEGACY and
//!   CRUNCHY envelope keys). Tink's own templates are RAW; a TINK prefix
//!   lets decryption and censuses find the key without trying each RAW
//!   key (each try of a RAW envelope key can be a KMS call).
//! - Key version 0; the key format must name a DEK template.
//! - The encrypted DEK is 1 to 4096 bytes (Java and Go refuse 0; every
//!   Tink refuses more than 4096 and a length past the end).
//!
//! The API:
//! - [`EnvelopeAead`]: one envelope key's AEAD over an async
//!   [`Kek`]: `async fn encrypt`, `async fn decrypt`, plus
//!   [`EnvelopeAead::rewrap`] and [`EnvelopeAead::describe`].
//! - [`KeysetAsyncAead`]: the AEAD of a whole keyset that may mix envelope
//!   keys and ordinary AEAD keys, built with a [`KekResolver`] that opens
//!   each `kek_uri`; ordinary keys take the same fast path as
//!   [`KeysetAead`](crate::KeysetAead), with no I/O.
//! - [`rewrap_envelope`], [`encrypted_dek`], [`split`]: the master-key
//!   level of one ciphertext (which master key and version wrapped its
//!   DEK; re-wrap the DEK under the newest version, leaving the DEK
//!   ciphertext bytes unchanged).
//!
//! ```
//! use std::{collections::HashMap, sync::Arc};
//! use encstore_core::{AeadKek, Kek};
//! use encstore_tink::envelope::KeysetAsyncAead;
//! use encstore_tink::{templates, Keyset, OutputPrefix};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! // Any KEK: here a master keyset; in production Vault, AWS KMS, an HSM.
//! let master = Keyset::generate(&templates::by_name("AES256_GCM")?)?;
//! let kek: Arc<dyn Kek> = Arc::new(AeadKek(Arc::new(master.aead()?)));
//! let uri = "hcvault://vault.internal:8200/transit/keys/kek";
//! let dek = templates::by_name("AES256_GCM")?;
//! let keyset = Keyset::generate(&templates::kms_envelope(uri, &dek, OutputPrefix::Tink)?)?;
//! let resolver: HashMap<String, Arc<dyn Kek>> = [(uri.to_owned(), kek)].into();
//! let aead = KeysetAsyncAead::new(&keyset, &resolver).await?;
//! let ct = aead.encrypt(b"data", b"name").await?; // one KMS wrap
//! assert_eq!(aead.decrypt(&ct, b"name").await?, b"data"); // one KMS unwrap
//! let info = aead.envelope_info(&ct)?; // no KMS call
//! assert_eq!(info.kek_uri, uri);
//! # Ok::<(), Box<dyn std::error::Error>>(()) })?;
//! # Ok(()) }
//! ```
//!
//! KMS calls are bounded ([`EnvelopeOptions`]): at most
//! `max_concurrent_kms_calls` at once per AEAD, each within
//! `kms_call_timeout`. Nothing here caches DEKs.
//!
//! [`Kek`]: encstore_core::Kek
//! [`Kek::wrap`]: encstore_core::Kek::wrap
//! [`Kek::unwrap`]: encstore_core::Kek::unwrap

mod aead;
mod dek;
mod keyset_aead;

use std::time::Duration;

pub use aead::{EnvelopeAead, rewrap_envelope};
pub use dek::DekTemplate;
pub use dek::key_format;
pub(crate) use dek::{EnvelopeKey, is_envelope, new_key, parse_key};
pub use keyset_aead::{EnvelopeInfo, KekResolver, KeysetAsyncAead, Rewrapped};

use encstore_core::{AeadError, KekError};

use crate::aead::PREFIX_LEN;
use crate::error::{KeyError, KeysetError};

/// Tink's type URL of the envelope key type.
pub const TYPE_URL: &str = "type.googleapis.com/google.crypto.tink.KmsEnvelopeAeadKey";

/// The DEK types an envelope key may name (Tink Java's list).
pub const DEK_TYPES: &[&str] = &[
    "type.googleapis.com/google.crypto.tink.AesGcmKey",
    "type.googleapis.com/google.crypto.tink.AesGcmSivKey",
    "type.googleapis.com/google.crypto.tink.AesCtrHmacAeadKey",
    "type.googleapis.com/google.crypto.tink.AesEaxKey",
    "type.googleapis.com/google.crypto.tink.ChaCha20Poly1305Key",
    "type.googleapis.com/google.crypto.tink.XChaCha20Poly1305Key",
];

/// Bytes of the big-endian length of the encrypted DEK.
pub const DEK_LEN_BYTES: usize = 4;

/// The longest encrypted DEK Tink writes or reads.
pub const MAX_ENCRYPTED_DEK_LEN: usize = 4096;

/// How many leading bytes of a stored ciphertext always hold its output
/// prefix, DEK length and whole encrypted DEK: what a census reads to
/// tell the master-key version ([`KeysetAsyncAead::envelope_info`])
/// without fetching the whole object.
pub const MAX_HEAD_LEN: usize = PREFIX_LEN + DEK_LEN_BYTES + MAX_ENCRYPTED_DEK_LEN;

/// Why an envelope operation failed. No variant carries key material,
/// plaintext or a KMS credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The ciphertext did not authenticate: tampered with, other associated
    /// data, or a DEK the master key does not unwrap. Says nothing more.
    #[error("decryption failed: ciphertext is not authentic under this keyset and associated data")]
    Authentication,
    /// The ciphertext's prefix names a key ID that is not an enabled key of
    /// the keyset, and no RAW key decrypts it.
    #[error("ciphertext names key ID {key_id}, which is not an enabled key of this keyset")]
    UnknownKeyId {
        /// The key ID in the prefix.
        key_id: u32,
    },
    /// The bytes are not an envelope ciphertext: the DEK length field is
    /// 0, above 4096, or past the end.
    #[error("not a KMS envelope ciphertext: {reason}")]
    Malformed {
        /// What is wrong, in fixed words.
        reason: &'static str,
    },
    /// The master key returned an encrypted DEK that Tink's format cannot
    /// hold (empty, or longer than 4096 bytes). Nothing was written.
    #[error(
        "master key {kek_uri} returned a {len}-byte encrypted DEK; Tink's envelope format holds 1 to 4096 bytes"
    )]
    EncryptedDekSize {
        /// The master key (secrets redacted).
        kek_uri: String,
        /// The length it returned.
        len: usize,
    },
    /// The master key is unavailable, refused the call, or failed; the
    /// [`KekError`] holds the KMS crate's typed error.
    #[error("master key {kek_uri}: {error}")]
    Kek {
        /// The master key (secrets redacted).
        kek_uri: String,
        /// What the KEK said.
        error: KekError,
    },
    /// The master key did not answer within the AEAD's
    /// [`kms_call_timeout`](EnvelopeOptions::kms_call_timeout).
    #[error("master key {kek_uri} did not answer within {} s", .after.as_secs_f64())]
    KmsTimeout {
        /// The master key (secrets redacted).
        kek_uri: String,
        /// The timeout.
        after: Duration,
    },
    /// The master key unwrapped bytes that are not a valid DEK of the
    /// key's DEK type (the envelope was made for another key type, or the
    /// master key wraps other data too).
    #[error("master key {kek_uri} unwrapped a DEK that is not a valid {dek_type} key: {error}")]
    InvalidDek {
        /// The master key (secrets redacted).
        kek_uri: String,
        /// The DEK type URL.
        dek_type: String,
        /// Why the DEK was refused.
        error: KeyError,
    },
    /// The resolver could not open the master key of an envelope key while
    /// the keyset's async AEAD was being built.
    #[error("cannot open master key {kek_uri} of KMS envelope key {key_id}: {error}")]
    Resolve {
        /// The envelope key.
        key_id: u32,
        /// Its `kek_uri` (secrets redacted).
        kek_uri: String,
        /// What the resolver said.
        error: KekError,
    },
    /// The ciphertext is not under a KMS envelope key of this keyset (for
    /// [`KeysetAsyncAead::rewrap`] and
    /// [`KeysetAsyncAead::envelope_info`]).
    #[error("the ciphertext is not under a KMS envelope key of this keyset")]
    NotEnvelope,
    /// The keyset cannot make an envelope AEAD (a streaming keyset, ...).
    #[error(transparent)]
    Keyset(#[from] KeysetError),
    /// The DEK template is refused.
    #[error("invalid DEK template: {0}")]
    DekTemplate(KeyError),
    /// A local AEAD error (input too large, randomness failure, no primary).
    #[error(transparent)]
    Aead(#[from] AeadError),
}

impl EnvelopeError {
    /// Whether this is an authentication failure (tampering, wrong
    /// associated data or key): the data is not readable with this keyset,
    /// as opposed to a KMS that failed or is unreachable.
    pub fn is_authentication(&self) -> bool {
        matches!(
            self,
            EnvelopeError::Authentication
                | EnvelopeError::UnknownKeyId { .. }
                | EnvelopeError::Malformed { .. }
        )
    }
}

/// Bounds on the KMS calls of one AEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnvelopeOptions {
    /// At most this many KMS calls (wrap, unwrap, rewrap) at once; more
    /// wait for a slot. Default 64.
    pub max_concurrent_kms_calls: usize,
    /// Each KMS call must answer within this, or fails with
    /// [`EnvelopeError::KmsTimeout`]. Default 60 s: longer than the Vault
    /// and AWS KMS clients' own request bounds (30 s), so theirs, which
    /// name the cause, fire first.
    pub kms_call_timeout: Duration,
}

impl Default for EnvelopeOptions {
    fn default() -> Self {
        EnvelopeOptions {
            max_concurrent_kms_calls: 64,
            kms_call_timeout: Duration::from_secs(60),
        }
    }
}

impl EnvelopeOptions {
    /// The defaults.
    pub fn new() -> EnvelopeOptions {
        EnvelopeOptions::default()
    }

    /// Sets [`EnvelopeOptions::max_concurrent_kms_calls`] (at least 1).
    pub fn max_concurrent_kms_calls(mut self, n: usize) -> EnvelopeOptions {
        self.max_concurrent_kms_calls = n.max(1);
        self
    }

    /// Sets [`EnvelopeOptions::kms_call_timeout`].
    pub fn kms_call_timeout(mut self, timeout: Duration) -> EnvelopeOptions {
        self.kms_call_timeout = timeout;
        self
    }
}

/// Splits a raw envelope ciphertext (without output prefix) into the
/// encrypted DEK and the DEK ciphertext, with Tink's checks.
///
/// # Errors
/// [`EnvelopeError::Malformed`] when the length field is 0, above 4096 or
/// past the end (or the input has no byte after it).
pub fn split(ciphertext: &[u8]) -> Result<(&[u8], &[u8]), EnvelopeError> {
    let Some((len, rest)) = ciphertext.split_first_chunk::<DEK_LEN_BYTES>() else {
        return Err(EnvelopeError::Malformed {
            reason: "shorter than the 4-byte DEK length",
        });
    };
    let len = u32::from_be_bytes(*len) as usize;
    if len == 0 {
        return Err(EnvelopeError::Malformed {
            reason: "the encrypted DEK length is 0",
        });
    }
    if len > MAX_ENCRYPTED_DEK_LEN {
        return Err(EnvelopeError::Malformed {
            reason: "the encrypted DEK length is above 4096",
        });
    }
    if len > rest.len() {
        return Err(EnvelopeError::Malformed {
            reason: "the encrypted DEK length runs past the end",
        });
    }
    Ok(rest.split_at(len))
}

/// The encrypted DEK of a raw envelope ciphertext (without output
/// prefix), for [`Kek::describe_wrapped`](encstore_core::Kek::describe_wrapped):
/// which master key and version wrapped it.
///
/// # Errors
/// As [`split`].
pub fn encrypted_dek(ciphertext: &[u8]) -> Result<&[u8], EnvelopeError> {
    split(ciphertext).map(|(dek, _)| dek)
}

/// Appends `BE32(len) ‖ encrypted DEK` to `out`, refusing what Tink's
/// format cannot hold.
fn append_encrypted_dek(
    out: &mut Vec<u8>,
    encrypted_dek: &[u8],
    kek_uri: &str,
) -> Result<(), EnvelopeError> {
    let len = encrypted_dek.len();
    if len == 0 || len > MAX_ENCRYPTED_DEK_LEN {
        return Err(EnvelopeError::EncryptedDekSize {
            kek_uri: shown_uri(kek_uri),
            len,
        });
    }
    // len <= 4096 fits in a u32.
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(encrypted_dek);
    Ok(())
}

/// A KEK URI for messages and `Debug`: the value of any `pin-value`
/// attribute (RFC 7512; encstore refuses it, but a keyset written
/// elsewhere may hold one) is replaced by `REDACTED`.
pub(crate) fn shown_uri(uri: &str) -> String {
    const ATTR: &str = "pin-value=";
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(i) = rest.to_ascii_lowercase().find(ATTR) {
        let start = i + ATTR.len();
        out.push_str(&rest[..start]);
        out.push_str("REDACTED");
        let end = rest[start..]
            .find([';', '&', '?'])
            .map_or(rest.len(), |j| start + j);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Maps a KEK error of an unwrap to the envelope error: authentication
/// failures say nothing more.
fn unwrap_error(e: KekError, kek_uri: &str) -> EnvelopeError {
    match e {
        KekError::Authentication => EnvelopeError::Authentication,
        error => EnvelopeError::Kek {
            kek_uri: shown_uri(kek_uri),
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_applies_tinks_length_rules() {
        let mut ct = vec![0, 0, 0, 3, b'd', b'e', b'k', b'p'];
        assert_eq!(split(&ct).unwrap(), (&b"dek"[..], &b"p"[..]));
        // An empty payload is structurally fine (the DEK AEAD refuses it).
        ct.pop();
        assert_eq!(split(&ct).unwrap(), (&b"dek"[..], &b""[..]));
        for (bad, reason) in [
            (&b""[..], "shorter"),
            (b"\x00\x00\x00", "shorter"),
            (b"\x00\x00\x00\x00abc", "is 0"),
            (b"\x00\x00\x10\x01abc", "above 4096"),
            (b"\xff\xff\xff\xffabc", "above 4096"),
            (b"\x00\x00\x00\x04abc", "past the end"),
        ] {
            match split(bad) {
                Err(EnvelopeError::Malformed { reason: r }) => assert!(r.contains(reason), "{r}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let mut max = vec![0, 0, 0x10, 0];
        max.extend_from_slice(&[7; 4096]);
        assert_eq!(split(&max).unwrap().0.len(), 4096);
        assert_eq!(encrypted_dek(&max).unwrap().len(), 4096);
    }

    #[test]
    fn appended_dek_lengths() {
        let mut out = b"\x01abcd".to_vec();
        append_encrypted_dek(&mut out, b"xy", "u").unwrap();
        assert_eq!(out, b"\x01abcd\x00\x00\x00\x02xy");
        for len in [0, 4097] {
            match append_encrypted_dek(&mut Vec::new(), &vec![1; len], "pkcs11:pin-value=1234") {
                Err(EnvelopeError::EncryptedDekSize { kek_uri, len: l }) => {
                    assert_eq!(l, len);
                    assert_eq!(kek_uri, "pkcs11:pin-value=REDACTED");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn uris_are_shown_without_pins() {
        assert_eq!(
            shown_uri("hcvault://h:8200/transit/keys/k"),
            "hcvault://h:8200/transit/keys/k"
        );
        assert_eq!(
            shown_uri("pkcs11:token=t;object=k?PIN-VALUE=secret&module-path=/m.so"),
            "pkcs11:token=t;object=k?PIN-VALUE=REDACTED&module-path=/m.so"
        );
        assert_eq!(
            shown_uri("pkcs11:pin-value=a;pin-value=b"),
            "pkcs11:pin-value=REDACTED;pin-value=REDACTED"
        );
    }
}
