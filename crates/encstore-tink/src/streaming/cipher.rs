//! The per-ciphertext cryptography: header, key derivation, and sealing
//! and opening one segment in place.
//!
//! Tink's wire format (`AesGcmHkdfStreaming`, `AesCtrHmacStreaming`):
//!
//! ```text
//! header  = header_len (1 byte, = 1 + derived key size + 7) ‖ salt (derived key size) ‖ nonce prefix (7)
//! keys    = HKDF(hash, ikm = key, salt = salt, info = associated data)
//!           AES-GCM: derived key size bytes
//!           AES-CTR-HMAC: derived key size bytes of AES key, then 32 bytes of HMAC key
//! nonce i = nonce prefix ‖ i (4 bytes, big-endian) ‖ last (1 byte: 1 for the last segment, else 0)
//!           AES-GCM: that 12-byte nonce, empty AAD, 16-byte tag
//!           AES-CTR-HMAC: CTR with the 16-byte block nonce i ‖ 0 0 0 0 (128-bit big-endian counter),
//!                         tag = HMAC(nonce i (16 bytes) ‖ ciphertext)[..tag size]
//! ```

use zeroize::Zeroizing;

use super::StreamingError;
use super::layout::SegmentLayout;
use super::params::{CTR_HMAC_KEY_SIZE, Mode, NONCE_PREFIX_SIZE, StreamingParams};
use crate::provider::CryptoProvider;
use crate::provider::prim::{AeadAlg, AeadKey, AesCtr, Hmac, ct_eq};

/// The longest header: `1 + 32 + 7`.
pub(crate) const MAX_HEADER_LEN: usize = 1 + 32 + NONCE_PREFIX_SIZE;

/// One streaming key of a keyset: its parameters and key bytes (the HKDF
/// input keying material, zeroized on drop), and the provider its
/// derivations and segment ciphers come from.
pub(crate) struct StreamingKey {
    params: StreamingParams,
    key: Zeroizing<Vec<u8>>,
    layout: SegmentLayout,
    provider: &'static CryptoProvider,
}

impl std::fmt::Debug for StreamingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingKey")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// A ciphertext header.
#[derive(Clone, Copy)]
pub(crate) struct Header {
    bytes: [u8; MAX_HEADER_LEN],
    len: usize,
}

impl Header {
    /// The header bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A nonce prefix.
type NoncePrefix = [u8; NONCE_PREFIX_SIZE];

/// The longest segment tag: a full HMAC-SHA512 (AES-CTR-HMAC keys keep 10
/// to 64 bytes; AES-GCM's is 16).
const MAX_TAG_SIZE: usize = crate::provider::prim::MAX_MAC_LEN;

/// The authentication tag of one sealed segment, which follows its
/// ciphertext on the wire ([`SegmentEncryptor::seal_segment_detached`](super::SegmentEncryptor::seal_segment_detached)).
/// A tag is public (it is part of the ciphertext).
#[derive(Clone, Copy)]
pub struct SegmentTag {
    bytes: [u8; MAX_TAG_SIZE],
    len: usize,
}

impl AsRef<[u8]> for SegmentTag {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Debug for SegmentTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentTag")
            .field("len", &self.len)
            .finish()
    }
}

impl StreamingKey {
    /// A key from validated parameters and its key bytes, whose
    /// primitives come from `provider`.
    pub(crate) fn new(
        provider: &'static CryptoProvider,
        params: StreamingParams,
        key: Zeroizing<Vec<u8>>,
    ) -> Self {
        let layout = SegmentLayout::new(
            params.header_len() as u64,
            u64::from(params.ciphertext_segment_size),
            params.tag_size() as u64,
        )
        .unwrap_or_else(|| unreachable!("validated parameters make a valid layout"));
        StreamingKey {
            params,
            key,
            layout,
            provider,
        }
    }

    /// The key's segment layout.
    pub(crate) fn layout(&self) -> SegmentLayout {
        self.layout
    }

    /// The header length (`1 + derived key size + 7`).
    pub(crate) fn header_len(&self) -> usize {
        self.params.header_len()
    }

    /// The ciphertext segment size as `usize`.
    pub(crate) fn segment_size(&self) -> usize {
        self.params.ciphertext_segment_size as usize
    }

    /// A fresh header (random salt and nonce prefix from the provider's
    /// source: the kernel CSPRNG, or the FIPS module's DRBG) and the
    /// segment cipher it and `associated_data` derive.
    pub(crate) fn new_stream(
        &self,
        associated_data: &[u8],
    ) -> Result<(Header, SegmentCipher), StreamingError> {
        let len = self.header_len();
        let mut bytes = [0u8; MAX_HEADER_LEN];
        bytes[0] = len as u8;
        self.provider
            .fill_nonce(&mut bytes[1..len])
            .map_err(|_| StreamingError::Randomness)?;
        let header = Header { bytes, len };
        let cipher = self.cipher_for(header.as_bytes(), associated_data)?;
        Ok((header, cipher))
    }

    /// The segment cipher of a ciphertext whose header is `header` (exactly
    /// [`StreamingKey::header_len`] bytes, starting with that length).
    ///
    /// # Errors
    /// [`StreamingError::InvalidHeader`] when the length byte is not this
    /// key's header length.
    pub(crate) fn cipher_for(
        &self,
        header: &[u8],
        associated_data: &[u8],
    ) -> Result<SegmentCipher, StreamingError> {
        let len = self.header_len();
        if header.len() != len || usize::from(header[0]) != len {
            return Err(StreamingError::InvalidHeader);
        }
        let derived = self.params.derived_key_size;
        let salt = &header[1..1 + derived];
        let mut nonce_prefix = [0u8; NONCE_PREFIX_SIZE];
        nonce_prefix.copy_from_slice(&header[1 + derived..len]);
        let extra = match self.params.mode {
            Mode::Gcm => 0,
            Mode::CtrHmac { .. } => CTR_HMAC_KEY_SIZE,
        };
        let mut okm = Zeroizing::new([0u8; 32 + CTR_HMAC_KEY_SIZE]);
        let okm = &mut okm[..derived + extra];
        self.provider
            .hkdf(self.params.hkdf_hash, &self.key, salt, associated_data, okm)
            .unwrap_or_else(|()| unreachable!("HKDF-SHA1/256/512, at most 64 bytes of output"));
        let kind = match self.params.mode {
            Mode::Gcm => {
                let alg = if derived == 16 {
                    AeadAlg::Aes128Gcm
                } else {
                    AeadAlg::Aes256Gcm
                };
                let key = self
                    .provider
                    .aead_key(alg, okm)
                    .unwrap_or_else(|| unreachable!("16- or 32-byte AES-GCM key"));
                CipherKind::Gcm(Box::new(key))
            }
            Mode::CtrHmac { hmac_hash, .. } => {
                let (aes_key, hmac_key) = okm.split_at(derived);
                CipherKind::CtrHmac(Box::new(CtrHmac {
                    aes: self
                        .provider
                        .aes_ctr(aes_key)
                        .unwrap_or_else(|| unreachable!("16- or 32-byte AES key")),
                    hmac: self.provider.hmac(hmac_hash, hmac_key),
                }))
            }
        };
        Ok(SegmentCipher {
            kind,
            nonce_prefix,
            tag_size: self.params.tag_size(),
        })
    }
}

/// The keys of one ciphertext (derived from the key, the header's salt and
/// the associated data) and its nonce prefix: seals and opens segments in
/// place. Derived key bytes are wiped as soon as the keys are expanded;
/// the RustCrypto AES and HMAC states and aws-lc-rs's keys are wiped on
/// drop, ring's AES-GCM key schedule is not (ring does not wipe).
pub(crate) struct SegmentCipher {
    kind: CipherKind,
    nonce_prefix: NoncePrefix,
    tag_size: usize,
}

impl std::fmt::Debug for SegmentCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentCipher")
            .field(
                "mode",
                &match self.kind {
                    CipherKind::Gcm(_) => "AES-GCM",
                    CipherKind::CtrHmac(_) => "AES-CTR-HMAC",
                },
            )
            .field("tag_size", &self.tag_size)
            .finish_non_exhaustive()
    }
}

enum CipherKind {
    Gcm(Box<AeadKey>),
    CtrHmac(Box<CtrHmac>),
}

/// AES-CTR and HMAC keys of one ciphertext.
struct CtrHmac {
    aes: AesCtr,
    hmac: Hmac,
}

impl SegmentCipher {
    /// Bytes each segment adds.
    pub(crate) fn tag_size(&self) -> usize {
        self.tag_size
    }

    /// The 16-byte nonce block of segment `index` (AES-GCM uses its
    /// first 12 bytes).
    fn nonce(&self, index: u32, last: bool) -> [u8; 16] {
        let mut n = [0u8; 16];
        n[..NONCE_PREFIX_SIZE].copy_from_slice(&self.nonce_prefix);
        n[NONCE_PREFIX_SIZE..NONCE_PREFIX_SIZE + 4].copy_from_slice(&index.to_be_bytes());
        n[NONCE_PREFIX_SIZE + 4] = u8::from(last);
        n
    }

    /// Seals segment `index` in place: `segment` holds the plaintext
    /// followed by [`SegmentCipher::tag_size`] bytes of room; on return it
    /// holds the ciphertext and tag.
    ///
    /// # Panics
    /// If `segment` is shorter than the tag (a caller bug).
    pub(crate) fn seal(&self, index: u32, last: bool, segment: &mut [u8]) {
        let split = segment.len() - self.tag_size;
        let (data, tag) = segment.split_at_mut(split);
        tag.copy_from_slice(self.seal_detached(index, last, data).as_ref());
    }

    /// Seals segment `index` in place: `data` holds the plaintext and on
    /// return the ciphertext; returns the tag, which follows the
    /// ciphertext on the wire.
    pub(crate) fn seal_detached(&self, index: u32, last: bool, data: &mut [u8]) -> SegmentTag {
        let nonce = self.nonce(index, last);
        let mut tag = SegmentTag {
            bytes: [0u8; MAX_TAG_SIZE],
            len: self.tag_size,
        };
        match &self.kind {
            CipherKind::Gcm(key) => {
                let mut n = [0u8; 12];
                n.copy_from_slice(&nonce[..12]);
                let t = key
                    .seal(n, &[], data)
                    .unwrap_or_else(|_| unreachable!("a segment is far below GCM's limit"));
                tag.bytes[..t.len()].copy_from_slice(&t);
            }
            CipherKind::CtrHmac(k) => {
                k.aes.apply(&nonce, data);
                let mac = k.hmac.mac(&[&nonce, data]);
                tag.bytes[..self.tag_size].copy_from_slice(&mac.0[..self.tag_size]);
            }
        }
        tag
    }

    /// Opens segment `index` in place: `segment` holds ciphertext and tag;
    /// on success its first `len - tag_size` bytes hold the plaintext, and
    /// that length is returned. On failure (wrong key, associated data,
    /// index or last flag, or any altered byte) the contents are
    /// unspecified and nothing is returned.
    pub(crate) fn open(&self, index: u32, last: bool, segment: &mut [u8]) -> Option<usize> {
        let len = segment.len().checked_sub(self.tag_size)?;
        let nonce = self.nonce(index, last);
        match &self.kind {
            CipherKind::Gcm(key) => {
                let mut n = [0u8; 12];
                n.copy_from_slice(&nonce[..12]);
                key.open_within(n, &[], segment, 0).ok()?;
            }
            CipherKind::CtrHmac(k) => {
                let (data, tag) = segment.split_at_mut(len);
                let mac = k.hmac.mac(&[&nonce, data]);
                if !ct_eq(&mac.0[..self.tag_size], tag) {
                    return None;
                }
                k.aes.apply(&nonce, data);
            }
        }
        Some(len)
    }

    /// Opens segment `index` out of place: `segment` (only read) holds
    /// ciphertext and tag; on success the plaintext is written to
    /// `out[..n]` and `n = segment.len() - tag_size` is returned. AES-GCM
    /// decrypts straight into `out` where the provider can
    /// ([`AeadKey::open_to`]: aws-lc-rs; ring copies, then opens in
    /// place); AES-CTR-HMAC checks the tag on `segment`, then copies and
    /// decrypts in `out`.
    ///
    /// On failure (as [`SegmentCipher::open`], or `out` shorter than `n`)
    /// nothing is returned and `out[..n]` (as much of it as exists) holds
    /// zeros: never unauthenticated plaintext.
    pub(crate) fn open_to(
        &self,
        index: u32,
        last: bool,
        segment: &[u8],
        out: &mut [u8],
    ) -> Option<usize> {
        let wipe = |out: &mut [u8]| {
            let n = out.len().min(segment.len());
            zeroize::Zeroize::zeroize(&mut out[..n]);
            None
        };
        let Some(len) = segment.len().checked_sub(self.tag_size) else {
            return wipe(out);
        };
        if out.len() < len {
            return wipe(out);
        }
        let out = &mut out[..len];
        let nonce = self.nonce(index, last);
        match &self.kind {
            CipherKind::Gcm(key) => {
                let mut n = [0u8; 12];
                n.copy_from_slice(&nonce[..12]);
                // `open_to` wipes `out` itself on failure.
                key.open_to(n, &[], segment, out).ok()?;
            }
            CipherKind::CtrHmac(k) => {
                let (data, tag) = segment.split_at(len);
                let mac = k.hmac.mac(&[&nonce, data]);
                if !ct_eq(&mac.0[..self.tag_size], tag) {
                    return wipe(out);
                }
                out.copy_from_slice(data);
                k.aes.apply(&nonce, out);
            }
        }
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::HashType;

    // HKDF's RFC 5869 vectors run under every provider in
    // `provider::prim::tests`.

    #[test]
    fn nonce_layout() {
        let provider = crate::provider::get_default().expect("provider");
        let c = SegmentCipher {
            kind: CipherKind::CtrHmac(Box::new(CtrHmac {
                aes: provider.aes_ctr(&[1; 16]).expect("key"),
                hmac: provider.hmac(HashType::Sha256, &[2; 32]),
            })),
            nonce_prefix: [1, 2, 3, 4, 5, 6, 7],
            tag_size: 32,
        };
        assert_eq!(
            c.nonce(0x0102_0304, true),
            [1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 1, 0, 0, 0, 0]
        );
        assert_eq!(c.nonce(0, false)[7..], [0; 9]);
        assert_eq!(
            format!("{c:?}"),
            "SegmentCipher { mode: \"AES-CTR-HMAC\", tag_size: 32, .. }"
        );
    }
}
