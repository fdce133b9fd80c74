//! The errors [`EncryptedObjectStore`](crate::EncryptedObjectStore) adds
//! to object_store's: they reach the caller inside
//! [`object_store::Error::Generic`] (store `"EncryptedObjectStore"`), and
//! [`EncryptionError::of`] finds them there.

/// The name of this store in [`object_store::Error::Generic`].
pub const STORE: &str = "EncryptedObjectStore";

/// An encryption-side failure. No variant carries key material or
/// plaintext: only the path, key IDs and statuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptionError {
    /// The object's ciphertext did not authenticate: it was tampered with,
    /// truncated or extended, moved or copied from another path (the
    /// associated data binds the path), or written under another keyset.
    /// Nothing of it was returned past the first segment that failed.
    #[error(
        "object {path} failed to authenticate: it was modified, truncated, moved from another path or encrypted under another keyset"
    )]
    Authentication {
        /// The object's path.
        path: String,
    },
    /// The object's prefix names a key of the keyset that is not ENABLED
    /// (DISABLED or DESTROYED).
    #[error("object {path} is under key {key_id}, which is {status} in the keyset")]
    KeyNotEnabled {
        /// The object's path.
        path: String,
        /// The key ID in the object's prefix.
        key_id: u32,
        /// That key's status.
        status: &'static str,
    },
    /// The stored object is empty: no encstore object is (each has at least
    /// a prefix and a header), so it was written around the encrypting
    /// store, or truncated to nothing.
    #[error(
        "object {path} is empty, which no encrypted object is: it was written around the encrypting store or truncated to nothing"
    )]
    Empty {
        /// The object's path.
        path: String,
    },
    /// The object's first bytes name no key of the keyset (or it is not an
    /// encstore object at all, such as plaintext).
    #[error(
        "object {path} is not encrypted under this keyset: its prefix names no key of the keyset{}",
        key_id.map(|id| format!(" (it names key ID {id})")).unwrap_or_default()
    )]
    UnknownKey {
        /// The object's path.
        path: String,
        /// The key ID its prefix names, when it has a Tink prefix.
        key_id: Option<u32>,
    },
    /// Writing needs a streaming keyset, and none is loaded.
    #[error(
        "no streaming keyset is loaded, so {path} cannot be written: load one beside the AEAD keyset (ReloadableKeyset::new_with_streaming, open_with_streaming or replace_streaming; see docs/rotation.md)"
    )]
    NoStreamingKeyset {
        /// The object's path.
        path: String,
    },
    /// A small object under a KMS envelope key could not be decrypted
    /// because the KMS failed or did not answer (not an authentication
    /// failure: the data may be intact).
    #[error("decrypting {path} needs the KMS, which failed: {reason}")]
    Kms {
        /// The object's path.
        path: String,
        /// What the KMS said (no key material or token).
        reason: String,
    },
    /// Encryption failed (no randomness, or an object larger than the key's
    /// 2^32 segments).
    #[error("encrypting {path} failed: {reason}")]
    Encrypt {
        /// The object's path.
        path: String,
        /// Why.
        reason: String,
    },
}

impl EncryptionError {
    /// The [`EncryptionError`] inside an `object_store` error returned by
    /// [`EncryptedObjectStore`](crate::EncryptedObjectStore), if it is one.
    pub fn of(err: &object_store::Error) -> Option<&EncryptionError> {
        match err {
            object_store::Error::Generic { store, source } if *store == STORE => {
                source.downcast_ref::<EncryptionError>()
            }
            _ => None,
        }
    }

    /// True for [`EncryptionError::Authentication`].
    pub fn is_authentication(&self) -> bool {
        matches!(self, EncryptionError::Authentication { .. })
    }
}

impl From<EncryptionError> for object_store::Error {
    fn from(e: EncryptionError) -> Self {
        object_store::Error::Generic {
            store: STORE,
            source: Box::new(e),
        }
    }
}
