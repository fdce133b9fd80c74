//! Key-encryption keys: what wraps a keyset at rest.
//!
//! A KEK encrypts the serialized keyset into Tink's `EncryptedKeyset`. It is
//! async, so that remote KMSes (AWS KMS, GCP KMS, Vault transit) fit as well
//! as a local master keyset or an HSM reached through PKCS#11. Each KEK
//! lives in its own crate; the `encstore` crate opens one from a URI
//! without any global registry.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::aead::{Aead, AeadError};
use crate::error::BoxError;

/// Why a KEK operation failed. Messages are one line and never contain a
/// PIN, a key or plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KekError {
    /// The wrapped keyset did not authenticate under this KEK and associated
    /// data (wrong KEK, wrong associated data, or tampering).
    #[error(
        "the keyset could not be unwrapped: wrong master key or keyset associated data, or the file was tampered with"
    )]
    Authentication,
    /// The KEK's URI is malformed or names an unsupported scheme.
    #[error("invalid master key URI: {0}")]
    InvalidUri(String),
    /// The KEK could not be reached or configured (module missing, token
    /// not found, wrong PIN, key not found, ...). The message says which.
    #[error("{0}")]
    Unavailable(String),
    /// The KEK failed in the middle of an operation.
    #[error("master key operation failed: {message}")]
    Failed {
        /// What failed, in one line.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
}

/// A key-encryption key.
#[async_trait]
pub trait Kek: Send + Sync + fmt::Debug {
    /// Encrypts `plaintext` (a serialized keyset), binding `associated_data`.
    async fn wrap(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError>;

    /// Decrypts what [`Kek::wrap`] produced.
    async fn unwrap(&self, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError>;
}

/// A KEK made from any [`Aead`], such as a master keyset loaded from a file.
#[derive(Debug, Clone)]
pub struct AeadKek(pub Arc<dyn Aead>);

#[async_trait]
impl Kek for AeadKek {
    async fn wrap(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        self.0
            .encrypt(plaintext, associated_data)
            .map_err(|e| KekError::Failed {
                message: e.to_string(),
                source: None,
            })
    }

    async fn unwrap(&self, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        self.0
            .decrypt(ciphertext, associated_data)
            .map_err(|e| match e {
                AeadError::Authentication | AeadError::UnknownKeyId { .. } => {
                    KekError::Authentication
                }
                other => KekError::Failed {
                    message: other.to_string(),
                    source: None,
                },
            })
    }
}
