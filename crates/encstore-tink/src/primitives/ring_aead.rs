//! The `nonce(12) ‖ ct ‖ tag(16)` layout over a ring AEAD key, shared by
//! AES-GCM and ChaCha20-Poly1305 (and used per message by XChaCha20 and
//! XAES-256-GCM with a derived key).

use encstore_core::AeadError;
use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::{RawAead, TAG_SIZE, fill_random};

/// A ring AEAD key with a 12-byte nonce and a 16-byte tag.
pub(super) struct RingAead {
    /// ring's key. ring keeps the expanded key private and never prints it.
    key: LessSafeKey,
}

impl RingAead {
    /// Builds the key. `key_bytes` must already have the algorithm's length.
    pub(super) fn new(
        algorithm: &'static ring::aead::Algorithm,
        key_bytes: &[u8],
    ) -> Result<Self, ring::error::Unspecified> {
        Ok(Self {
            key: LessSafeKey::new(UnboundKey::new(algorithm, key_bytes)?),
        })
    }

    /// Appends `nonce ‖ ct ‖ tag` with a fresh random nonce.
    pub(super) fn seal_append(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), AeadError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        self.seal_append_with_nonce(nonce, plaintext, associated_data, out)
    }

    /// Appends `nonce ‖ ct ‖ tag` with the given nonce.
    pub(super) fn seal_append_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
        associated_data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), AeadError> {
        out.reserve(NONCE_LEN + plaintext.len() + TAG_SIZE);
        out.extend_from_slice(&nonce);
        self.seal_append_without_nonce(nonce, plaintext, associated_data, out)
    }

    /// Appends `ct ‖ tag` (the caller has written the nonce, or its own
    /// header, already).
    pub(super) fn seal_append_without_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
        associated_data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), AeadError> {
        out.reserve(plaintext.len() + TAG_SIZE);
        let ct_start = out.len();
        out.extend_from_slice(plaintext);
        self.seal_tail(nonce, associated_data, out, ct_start)
    }

    /// Encrypts `buf[start + NONCE_LEN..]` in place with a fresh random
    /// nonce written at `buf[start..]`, and appends the tag: no copy.
    pub(super) fn seal_in_place(
        &self,
        buf: &mut Vec<u8>,
        start: usize,
        associated_data: &[u8],
    ) -> Result<(), AeadError> {
        let payload = start.checked_add(NONCE_LEN).ok_or(AeadError::TooLarge)?;
        if buf.len() < payload {
            return Err(AeadError::TooLarge);
        }
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        buf[start..payload].copy_from_slice(&nonce);
        self.seal_tail(nonce, associated_data, buf, payload)
    }

    /// Encrypts `buf[payload..]` in place under `nonce` and appends the tag.
    fn seal_tail(
        &self,
        nonce: [u8; NONCE_LEN],
        associated_data: &[u8],
        buf: &mut Vec<u8>,
        payload: usize,
    ) -> Result<(), AeadError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data),
                &mut buf[payload..],
            )
            .map_err(|_| AeadError::TooLarge)?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Decrypts `buf[start..] = nonce ‖ ct ‖ tag` so that `buf` holds exactly
    /// the plaintext, with no copy beyond ring's own in-place shift.
    pub(super) fn open_in_place(
        &self,
        buf: &mut Vec<u8>,
        start: usize,
        associated_data: &[u8],
    ) -> Result<(), AeadError> {
        if buf.len() < start.saturating_add(NONCE_LEN + TAG_SIZE) {
            return Err(AeadError::Authentication);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&buf[start..start + NONCE_LEN]);
        self.open_in_place_with_nonce(nonce, buf, start + NONCE_LEN, associated_data)
    }

    /// Decrypts `buf[ct_start..] = ct ‖ tag` under `nonce` so that `buf`
    /// holds exactly the plaintext.
    pub(super) fn open_in_place_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        buf: &mut Vec<u8>,
        ct_start: usize,
        associated_data: &[u8],
    ) -> Result<(), AeadError> {
        if buf.len() < ct_start.saturating_add(TAG_SIZE) {
            return Err(AeadError::Authentication);
        }
        let plaintext_len = self
            .key
            .open_within(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data),
                buf.as_mut_slice(),
                ct_start..,
            )
            .map_err(|_| AeadError::Authentication)?
            .len();
        buf.truncate(plaintext_len);
        Ok(())
    }
}

/// A Tink primitive that is one ring AEAD key in the `nonce(12) ‖ ct ‖
/// tag(16)` layout (`AesGcmKey`, `ChaCha20Poly1305Key`). Its `Debug` shows
/// only the primitive's name.
pub(super) struct RingPrimitive {
    /// The name `Debug` shows.
    name: &'static str,
    /// ring's key.
    inner: RingAead,
}

impl RingPrimitive {
    /// Wraps a ring key as the primitive `name`.
    pub(super) fn new(name: &'static str, inner: RingAead) -> Self {
        Self { name, inner }
    }
}

impl std::fmt::Debug for RingPrimitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl RawAead for RingPrimitive {
    fn seal_append(&self, pt: &[u8], ad: &[u8], out: &mut Vec<u8>) -> Result<(), AeadError> {
        self.inner.seal_append(pt, ad, out)
    }

    fn open_in_place(&self, buf: &mut Vec<u8>, start: usize, ad: &[u8]) -> Result<(), AeadError> {
        self.inner.open_in_place(buf, start, ad)
    }

    fn overhead(&self) -> usize {
        NONCE_LEN + TAG_SIZE
    }

    fn header_len(&self) -> usize {
        NONCE_LEN
    }

    fn seal_in_place(&self, buf: &mut Vec<u8>, start: usize, ad: &[u8]) -> Result<(), AeadError> {
        self.inner.seal_in_place(buf, start, ad)
    }
}
