//! The AEAD contract: authenticated encryption with associated data.

use std::fmt;

/// Why an AEAD operation failed.
///
/// Decryption failures deliberately carry no detail about which key was
/// tried or why the tag did not match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AeadError {
    /// The ciphertext did not authenticate under any candidate key: it was
    /// tampered with, the associated data differs, or the key is wrong.
    #[error("decryption failed: ciphertext is not authentic under this keyset and associated data")]
    Authentication,

    /// The ciphertext's prefix names a key ID that is not an enabled key of
    /// the keyset, and no raw key decrypts it.
    #[error("ciphertext names key ID {key_id}, which is not an enabled key of this keyset")]
    UnknownKeyId {
        /// The key ID in the ciphertext prefix.
        key_id: u32,
    },

    /// The input is larger than the primitive can process.
    #[error("input too large for this primitive")]
    TooLarge,

    /// An in-place encryption was given a buffer shorter than the headroom
    /// it must reserve before the plaintext.
    #[error("in-place encryption needs {needed} bytes of headroom before the plaintext")]
    NoHeadroom {
        /// The headroom the primary key needs.
        needed: usize,
    },

    /// The keyset has no usable primary key to encrypt with.
    #[error("the keyset has no enabled primary key to encrypt with")]
    NoPrimary,

    /// A compliance policy refused the operation.
    #[error("refused by policy: {0}")]
    Policy(PolicyRefusal),

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Randomness,
}

/// Which key a [`Policy`](AeadError::Policy) refusal concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRefusal {
    /// The key ID that was refused.
    pub key_id: u32,
    /// The key's type, such as `AesGcmKey`, with its parameters.
    pub key_type: String,
}

impl fmt::Display for PolicyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key {} ({}) is not allowed by the active policy",
            self.key_id, self.key_type
        )
    }
}

/// Authenticated encryption with associated data.
///
/// Implementations are synchronous (the work is CPU-bound), object-safe and
/// `Send + Sync`, so an `Arc<dyn Aead>` can be shared across tokio tasks.
///
/// `encrypt` must use fresh randomness on every call; `decrypt` must fail
/// with [`AeadError::Authentication`] on any tampering with the ciphertext
/// or a mismatch of the associated data, and say nothing more.
pub trait Aead: Send + Sync + fmt::Debug {
    /// Encrypts `plaintext`, binding `associated_data`.
    fn encrypt(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, AeadError>;

    /// Decrypts `ciphertext`, checking `associated_data`.
    fn decrypt(&self, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, AeadError>;

    /// Decrypts an owned ciphertext, reusing its buffer where the
    /// implementation can. The default copies via [`Aead::decrypt`].
    fn decrypt_owned(
        &self,
        ciphertext: Vec<u8>,
        associated_data: &[u8],
    ) -> Result<Vec<u8>, AeadError> {
        self.decrypt(&ciphertext, associated_data)
    }
}

impl<T: Aead + ?Sized> Aead for std::sync::Arc<T> {
    fn encrypt(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, AeadError> {
        (**self).encrypt(plaintext, associated_data)
    }
    fn decrypt(&self, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, AeadError> {
        (**self).decrypt(ciphertext, associated_data)
    }
    fn decrypt_owned(
        &self,
        ciphertext: Vec<u8>,
        associated_data: &[u8],
    ) -> Result<Vec<u8>, AeadError> {
        (**self).decrypt_owned(ciphertext, associated_data)
    }
}
