//! [`KeysetSource`]: where a keyset file is and how to unwrap it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use encstore_core::Kek;
use encstore_tink::{Keyset, KeysetProtection};

use crate::keys::LoadError;

/// Where a keyset file is, and how to unwrap it.
#[derive(Clone)]
pub struct KeysetSource {
    /// The keyset file: Tink JSON or binary, cleartext or `EncryptedKeyset`
    /// (detected from the content).
    pub path: PathBuf,
    /// The key-encryption key for an `EncryptedKeyset`; `None` for a
    /// cleartext keyset (then an encrypted file is refused, and vice versa).
    pub kek: Option<Arc<dyn Kek>>,
    /// The associated data the keyset was encrypted with (usually empty).
    pub associated_data: Vec<u8>,
}

impl fmt::Debug for KeysetSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeysetSource")
            .field("path", &self.path)
            .field("kek", &self.kek)
            .field("associated_data_len", &self.associated_data.len())
            .finish()
    }
}

impl KeysetSource {
    /// A cleartext keyset file (development only; see
    /// `docs/key-management.md`).
    pub fn cleartext(path: impl Into<PathBuf>) -> Self {
        KeysetSource {
            path: path.into(),
            kek: None,
            associated_data: Vec::new(),
        }
    }

    /// An `EncryptedKeyset` file wrapped by `kek` with `associated_data`.
    pub fn encrypted(path: impl Into<PathBuf>, kek: Arc<dyn Kek>, associated_data: &[u8]) -> Self {
        KeysetSource {
            path: path.into(),
            kek: Some(kek),
            associated_data: associated_data.to_vec(),
        }
    }

    /// Reads and validates the keyset.
    ///
    /// # Errors
    /// [`LoadError`] saying what is wrong with the file.
    pub async fn read(&self) -> Result<Keyset, LoadError> {
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|source| LoadError::Io {
                path: self.path.display().to_string(),
                source,
            })?;
        let bytes = zeroize::Zeroizing::new(bytes);
        match &self.kek {
            None => Ok(Keyset::read(&bytes, KeysetProtection::Cleartext)?),
            Some(kek) => {
                Ok(Keyset::read_with_kek(&bytes, kek.as_ref(), &self.associated_data).await?)
            }
        }
    }
}

/// Reads a streaming keyset file; its errors are wrapped in
/// [`LoadError::Streaming`].
pub(super) async fn read_streaming(source: &KeysetSource) -> Result<Keyset, LoadError> {
    source
        .read()
        .await
        .map_err(|e| LoadError::Streaming(Box::new(e)))
}
