use encstore_core::AeadError;

use super::{KeyParams, RawAead};
use crate::error::KeyError;
use crate::provider::CryptoProvider;

/// The process default provider (test and benchmark code: panics if
/// there is none).
fn default_provider() -> &'static CryptoProvider {
    crate::provider::get_default().unwrap_or_else(|e| panic!("crypto provider: {e}"))
}

/// One key's raw AEAD, built from a serialized key proto.
pub struct RawPrimitive {
    params: KeyParams,
    inner: Box<dyn RawAead>,
}

impl std::fmt::Debug for RawPrimitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPrimitive")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl RawPrimitive {
    /// See `primitive_from_key_data`; under the process default provider.
    pub fn from_key_data(type_url: &str, value: &[u8]) -> Result<Self, KeyError> {
        Self::from_key_data_with(default_provider(), type_url, value)
    }

    /// See `primitive_from_key_data`; under `provider`.
    pub fn from_key_data_with(
        provider: &'static CryptoProvider,
        type_url: &str,
        value: &[u8],
    ) -> Result<Self, KeyError> {
        let (params, inner) = super::primitive_from_key_data(provider, type_url, value)?;
        Ok(Self { params, inner })
    }

    /// What the key is.
    pub fn params(&self) -> &KeyParams {
        &self.params
    }

    /// See `RawAead::seal_append`.
    pub fn seal_append(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), AeadError> {
        self.inner.seal_append(plaintext, associated_data, out)
    }

    /// See `RawAead::open_in_place`.
    pub fn open_in_place(
        &self,
        buf: &mut Vec<u8>,
        start: usize,
        associated_data: &[u8],
    ) -> Result<(), AeadError> {
        self.inner.open_in_place(buf, start, associated_data)
    }

    /// See `RawAead::open`.
    pub fn open(&self, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, AeadError> {
        self.inner.open(ciphertext, associated_data)
    }

    /// See `RawAead::overhead`.
    pub fn overhead(&self) -> usize {
        self.inner.overhead()
    }
}

/// The nonce source the primitives use (for the benchmark).
pub fn fill_nonce(buf: &mut [u8]) -> Result<(), AeadError> {
    super::nonce::fill_nonce(buf)
}

/// See `new_key_data_value`; under the process default provider.
pub fn new_key_data_value(
    type_url: &str,
    key_format: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
    super::new_key_data_value(default_provider(), type_url, key_format)
}

/// See `new_key_data_value`; under `provider`.
pub fn new_key_data_value_with(
    provider: &'static CryptoProvider,
    type_url: &str,
    key_format: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
    super::new_key_data_value(provider, type_url, key_format)
}
