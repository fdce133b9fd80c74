//! The `nonce(12) ‖ ct ‖ tag(16)` layout over a provider's AEAD key: the
//! keyset primitive of AES-GCM and ChaCha20-Poly1305 (and of AES-GCM-SIV
//! under AWS-LC), and the per-message step of XChaCha20-Poly1305 and
//! XAES-256-GCM under a derived key.

use encstore_core::AeadError;

use super::{RawAead, TAG_SIZE};
use crate::provider::prim::{AeadKey, NONCE_LEN, RandomNonceKey};

/// A Tink primitive that is one AEAD key in the `nonce(12) ‖ ct ‖ tag(16)`
/// layout, sealing under a fresh random nonce. Its `Debug` shows only the
/// primitive's name.
pub(super) struct NoncePrimitive {
    /// The name `Debug` shows.
    name: &'static str,
    /// The provider's key (neither library prints key bytes).
    key: RandomNonceKey,
}

impl NoncePrimitive {
    /// Wraps a provider key as the primitive `name`.
    pub(super) fn new(name: &'static str, key: RandomNonceKey) -> Self {
        Self { name, key }
    }
}

impl std::fmt::Debug for NoncePrimitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl RawAead for NoncePrimitive {
    fn seal_append(&self, pt: &[u8], ad: &[u8], out: &mut Vec<u8>) -> Result<(), AeadError> {
        out.reserve(NONCE_LEN + pt.len() + TAG_SIZE);
        let start = out.len();
        out.extend_from_slice(&[0u8; NONCE_LEN]);
        out.extend_from_slice(pt);
        let (nonce, tag) = self.key.seal(ad, &mut out[start + NONCE_LEN..])?;
        out[start..start + NONCE_LEN].copy_from_slice(&nonce);
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Decrypts `buf[start..] = nonce ‖ ct ‖ tag` so that `buf` holds exactly
    /// the plaintext, with no copy beyond the library's own in-place shift.
    fn open_in_place(&self, buf: &mut Vec<u8>, start: usize, ad: &[u8]) -> Result<(), AeadError> {
        if buf.len() < start.saturating_add(NONCE_LEN + TAG_SIZE) {
            return Err(AeadError::Authentication);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&buf[start..start + NONCE_LEN]);
        let n = self
            .key
            .open_within(nonce, ad, buf.as_mut_slice(), start + NONCE_LEN)?;
        buf.truncate(n);
        Ok(())
    }

    fn overhead(&self) -> usize {
        NONCE_LEN + TAG_SIZE
    }

    fn header_len(&self) -> usize {
        NONCE_LEN
    }

    /// Encrypts `buf[start + NONCE_LEN..]` in place under a fresh random
    /// nonce written at `buf[start..]`, and appends the tag: no copy.
    fn seal_in_place(&self, buf: &mut Vec<u8>, start: usize, ad: &[u8]) -> Result<(), AeadError> {
        let payload = start.checked_add(NONCE_LEN).ok_or(AeadError::TooLarge)?;
        if buf.len() < payload {
            return Err(AeadError::TooLarge);
        }
        let (nonce, tag) = self.key.seal(ad, &mut buf[payload..])?;
        buf[start..payload].copy_from_slice(&nonce);
        buf.extend_from_slice(&tag);
        Ok(())
    }
}

/// Appends `ct ‖ tag` of `plaintext` under a derived key and `nonce` (the
/// caller has written its own header already).
pub(super) fn seal_append_without_nonce(
    key: &AeadKey,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    associated_data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), AeadError> {
    out.reserve(plaintext.len() + TAG_SIZE);
    let ct_start = out.len();
    out.extend_from_slice(plaintext);
    let tag = key.seal(nonce, associated_data, &mut out[ct_start..])?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// Decrypts `buf[ct_start..] = ct ‖ tag` under a derived key and `nonce`
/// so that `buf` holds exactly the plaintext.
pub(super) fn open_in_place_with_nonce(
    key: &AeadKey,
    nonce: [u8; NONCE_LEN],
    buf: &mut Vec<u8>,
    ct_start: usize,
    associated_data: &[u8],
) -> Result<(), AeadError> {
    let n = key.open_within(nonce, associated_data, buf.as_mut_slice(), ct_start)?;
    buf.truncate(n);
    Ok(())
}
