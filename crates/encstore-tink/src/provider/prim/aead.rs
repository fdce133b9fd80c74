//! AEAD keys with caller-chosen nonces ([`AeadKey`]) and the keyset AEAD's
//! random-nonce key ([`RandomNonceKey`]), on ring or aws-lc-rs.

use encstore_core::AeadError;
use zeroize::Zeroize;

use super::{NONCE_LEN, TAG_LEN};
use crate::provider::CryptoProvider;

/// An AEAD key used with nonces the caller chooses (segment nonces,
/// per-message derived keys). Neither library prints key bytes; ring does
/// not wipe its key schedule, aws-lc-rs does.
pub(crate) struct AeadKey(pub(super) AeadInner);

// ring's key is held inline (as before providers existed): the enum lives
// inside the key's one heap allocation, built once per key, and boxing it
// would add a pointer chase to every ring operation for nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum AeadInner {
    #[cfg(feature = "ring")]
    Ring(ring::aead::LessSafeKey),
    #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
    AwsLc(aws_lc_rs::aead::LessSafeKey),
}

impl AeadKey {
    /// Encrypts `data` in place under `nonce`; returns the tag.
    pub(crate) fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; TAG_LEN], AeadError> {
        let mut out = [0u8; TAG_LEN];
        match &self.0 {
            #[cfg(feature = "ring")]
            AeadInner::Ring(k) => {
                use ring::aead::{Aad, Nonce};
                let tag = k
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        data,
                    )
                    .map_err(|_| AeadError::TooLarge)?;
                out.copy_from_slice(tag.as_ref());
            }
            #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
            AeadInner::AwsLc(k) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                let tag = k
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        data,
                    )
                    .map_err(|_| AeadError::TooLarge)?;
                out.copy_from_slice(tag.as_ref());
            }
        }
        Ok(out)
    }

    /// Decrypts `buf[ct_start..] = ct ‖ tag` under `nonce`; on success the
    /// plaintext is `buf[..n]` and `n` is returned (ring's `open_within`).
    pub(crate) fn open_within(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        ct_start: usize,
    ) -> Result<usize, AeadError> {
        if buf.len() < ct_start.saturating_add(TAG_LEN) {
            return Err(AeadError::Authentication);
        }
        match &self.0 {
            #[cfg(feature = "ring")]
            AeadInner::Ring(k) => {
                use ring::aead::{Aad, Nonce};
                k.open_within(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    buf,
                    ct_start..,
                )
                .map(|p| p.len())
                .map_err(|_| AeadError::Authentication)
            }
            #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
            AeadInner::AwsLc(k) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                k.open_within(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    buf,
                    ct_start..,
                )
                .map(|p| p.len())
                .map_err(|_| AeadError::Authentication)
            }
        }
    }

    /// Decrypts `ciphertext_and_tag` (`ct ‖ tag`) under `nonce` into
    /// `out`, which must be exactly `ct`'s length
    /// (`ciphertext_and_tag.len() - TAG_LEN`); the input is only read.
    ///
    /// aws-lc-rs decrypts out of place (`open_separate_gather`): one pass
    /// over the ciphertext, no copy. ring has no out-of-place open: the
    /// ciphertext is copied into `out` and opened there in place (what
    /// [`AeadKey::open_within`] costs after the caller's own copy).
    ///
    /// On any failure `out` is all zeros: it never holds unauthenticated
    /// plaintext. Both libraries already wipe on a tag mismatch (ring, and
    /// AWS-LC's `EVP_AEAD_CTX_open_gather`, though aws-lc-rs documents
    /// `out` as unspecified); `out` is zeroed here as well, and on the
    /// size errors no library sees.
    ///
    /// # Errors
    /// [`AeadError::Authentication`] when the input is shorter than a
    /// tag, `out` is not `ct`'s length, or the tag does not authenticate.
    pub(crate) fn open_to(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
        out: &mut [u8],
    ) -> Result<(), AeadError> {
        let fail = |out: &mut [u8]| {
            out.zeroize();
            Err(AeadError::Authentication)
        };
        let Some(ct_len) = ciphertext_and_tag.len().checked_sub(TAG_LEN) else {
            return fail(out);
        };
        if out.len() != ct_len {
            return fail(out);
        }
        let (ct, tag) = ciphertext_and_tag.split_at(ct_len);
        let opened = match &self.0 {
            #[cfg(feature = "ring")]
            AeadInner::Ring(k) => {
                use ring::aead::{Aad, Nonce, Tag};
                let tag: [u8; TAG_LEN] = tag
                    .try_into()
                    .unwrap_or_else(|_| unreachable!("split at TAG_LEN from the end"));
                out.copy_from_slice(ct);
                k.open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    Tag::from(tag),
                    out,
                    0..,
                )
                .is_ok()
            }
            #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
            AeadInner::AwsLc(k) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                k.open_separate_gather(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    ct,
                    tag,
                    out,
                )
                .is_ok()
            }
        };
        if opened { Ok(()) } else { fail(out) }
    }
}

/// A keyset AEAD key: seals under a fresh random nonce, opens under the
/// nonce the ciphertext carries.
pub(crate) struct RandomNonceKey(pub(super) RandomInner);

// As for `AeadInner`: one allocation per key, no pointer chase per message.
#[allow(clippy::large_enum_variant)]
pub(super) enum RandomInner {
    /// The nonce comes from the provider's source, then a caller-nonce seal.
    Caller {
        key: AeadKey,
        provider: &'static CryptoProvider,
    },
    /// The FIPS module makes the IV itself (`RandomizedNonceKey`).
    #[cfg(feature = "fips")]
    Module(aws_lc_rs::aead::RandomizedNonceKey),
}

impl RandomNonceKey {
    /// Encrypts `data` in place under a fresh random nonce; returns the
    /// nonce and the tag.
    pub(crate) fn seal(
        &self,
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<([u8; NONCE_LEN], [u8; TAG_LEN]), AeadError> {
        match &self.0 {
            RandomInner::Caller { key, provider } => {
                let mut nonce = [0u8; NONCE_LEN];
                provider.fill_nonce(&mut nonce)?;
                Ok((nonce, key.seal(nonce, aad, data)?))
            }
            #[cfg(feature = "fips")]
            RandomInner::Module(k) => {
                let (nonce, tag) = k
                    .seal_in_place_separate_tag(aws_lc_rs::aead::Aad::from(aad), data)
                    .map_err(|_| AeadError::TooLarge)?;
                let mut t = [0u8; TAG_LEN];
                t.copy_from_slice(tag.as_ref());
                Ok((*nonce.as_ref(), t))
            }
        }
    }

    /// As [`AeadKey::open_within`].
    pub(crate) fn open_within(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        ct_start: usize,
    ) -> Result<usize, AeadError> {
        match &self.0 {
            RandomInner::Caller { key, .. } => key.open_within(nonce, aad, buf, ct_start),
            #[cfg(feature = "fips")]
            RandomInner::Module(k) => {
                if buf.len() < ct_start.saturating_add(TAG_LEN) {
                    return Err(AeadError::Authentication);
                }
                let n = k
                    .open_in_place(
                        aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                        aws_lc_rs::aead::Aad::from(aad),
                        &mut buf[ct_start..],
                    )
                    .map_err(|_| AeadError::Authentication)?
                    .len();
                buf.copy_within(ct_start..ct_start + n, 0);
                Ok(n)
            }
        }
    }
}
