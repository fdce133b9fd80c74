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

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes256};
use hmac::{Hmac, Mac};
use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::{Zeroize, Zeroizing};

use super::StreamingError;
use super::layout::SegmentLayout;
use super::params::{CTR_HMAC_KEY_SIZE, HashAlg, Mode, NONCE_PREFIX_SIZE, StreamingParams};

/// The longest header: `1 + 32 + 7`.
pub(crate) const MAX_HEADER_LEN: usize = 1 + 32 + NONCE_PREFIX_SIZE;
/// The longest tag (HMAC-SHA512).
pub(crate) const MAX_TAG_SIZE: usize = 64;

/// One streaming key of a keyset: its parameters and key bytes (the HKDF
/// input keying material, zeroized on drop).
pub(crate) struct StreamingKey {
    params: StreamingParams,
    key: Zeroizing<Vec<u8>>,
    layout: SegmentLayout,
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

impl StreamingKey {
    /// A key from validated parameters and its key bytes.
    pub(crate) fn new(params: StreamingParams, key: Zeroizing<Vec<u8>>) -> Self {
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

    /// A fresh header (random salt and nonce prefix from the OS CSPRNG)
    /// and the segment cipher it and `associated_data` derive.
    pub(crate) fn new_stream(
        &self,
        associated_data: &[u8],
    ) -> Result<(Header, SegmentCipher), StreamingError> {
        let len = self.header_len();
        let mut bytes = [0u8; MAX_HEADER_LEN];
        bytes[0] = len as u8;
        getrandom::fill(&mut bytes[1..len]).map_err(|_| StreamingError::Randomness)?;
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
        hkdf(self.params.hkdf_hash, &self.key, salt, associated_data, okm);
        let kind = match self.params.mode {
            Mode::Gcm => {
                let alg = if derived == 16 {
                    &AES_128_GCM
                } else {
                    &AES_256_GCM
                };
                let key = UnboundKey::new(alg, okm)
                    .unwrap_or_else(|_| unreachable!("16- or 32-byte AES-GCM key"));
                CipherKind::Gcm(Box::new(LessSafeKey::new(key)))
            }
            Mode::CtrHmac { hmac_hash, .. } => {
                let (aes_key, hmac_key) = okm.split_at(derived);
                CipherKind::CtrHmac(Box::new(CtrHmac {
                    aes: AesKey::new(aes_key),
                    hmac: HmacKey::new(hmac_hash, hmac_key),
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

/// HKDF-`hash`(ikm, salt, info) into `okm` (at most 64 bytes, far below
/// HKDF's limit of 255 hash outputs).
fn hkdf(hash: HashAlg, ikm: &[u8], salt: &[u8], info: &[u8], okm: &mut [u8]) {
    let done = match hash {
        HashAlg::Sha1 => hkdf::Hkdf::<sha1::Sha1>::new(Some(salt), ikm).expand(info, okm),
        HashAlg::Sha256 => hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm).expand(info, okm),
        HashAlg::Sha512 => hkdf::Hkdf::<sha2::Sha512>::new(Some(salt), ikm).expand(info, okm),
    };
    done.unwrap_or_else(|_| unreachable!("at most 64 bytes of output"));
}

/// The keys of one ciphertext (derived from the key, the header's salt and
/// the associated data) and its nonce prefix: seals and opens segments in
/// place. Derived key bytes are wiped as soon as the keys are expanded;
/// the RustCrypto AES and HMAC states are wiped on drop (their `zeroize`
/// features), ring's AES-GCM key schedule is not (ring does not wipe).
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
    Gcm(Box<LessSafeKey>),
    CtrHmac(Box<CtrHmac>),
}

/// AES-CTR and HMAC keys of one ciphertext.
struct CtrHmac {
    aes: AesKey,
    hmac: HmacKey,
}

/// An expanded AES key for CTR (128-bit big-endian counter).
enum AesKey {
    Aes128(Aes128),
    Aes256(Aes256),
}

/// Counter blocks encrypted per batch (1 KiB: stays in L1, and is enough
/// for the AES backends' parallel blocks).
const CTR_BATCH: usize = 64;

impl AesKey {
    fn new(key: &[u8]) -> Self {
        match key.len() {
            16 => AesKey::Aes128(
                Aes128::new_from_slice(key).unwrap_or_else(|_| unreachable!("16 bytes")),
            ),
            _ => AesKey::Aes256(
                Aes256::new_from_slice(key).unwrap_or_else(|_| unreachable!("32 bytes")),
            ),
        }
    }

    /// XORs `data` with the AES-CTR keystream starting at counter block
    /// `iv`, incremented as one 128-bit big-endian integer (as Tink's
    /// `AES/CTR/NoPadding` and Go's `cipher.NewCTR` do).
    fn apply(&self, iv: &[u8; 16], data: &mut [u8]) {
        let mut counter = u128::from_be_bytes(*iv);
        let mut blocks = [aes::Block::default(); CTR_BATCH];
        for chunk in data.chunks_mut(CTR_BATCH * 16) {
            let n = chunk.len().div_ceil(16);
            for b in &mut blocks[..n] {
                b.copy_from_slice(&counter.to_be_bytes());
                counter = counter.wrapping_add(1);
            }
            match self {
                AesKey::Aes128(c) => c.encrypt_blocks(&mut blocks[..n]),
                AesKey::Aes256(c) => c.encrypt_blocks(&mut blocks[..n]),
            }
            for (d, k) in chunk.chunks_mut(16).zip(&blocks[..n]) {
                if let Ok(d) = <&mut [u8; 16]>::try_from(&mut *d) {
                    let x = u128::from_ne_bytes(*d) ^ u128::from_ne_bytes(k.0);
                    *d = x.to_ne_bytes();
                } else {
                    for (x, y) in d.iter_mut().zip(k.iter()) {
                        *x ^= y;
                    }
                }
            }
        }
        // The keystream is key-dependent: wipe it.
        blocks.zeroize();
    }
}

/// A keyed HMAC (inner and outer states computed once, cloned per segment).
enum HmacKey {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
    Sha512(Hmac<sha2::Sha512>),
}

fn mac_of<M: Mac + Clone>(mac: &M, nonce: &[u8], data: &[u8], out: &mut [u8; MAX_TAG_SIZE]) {
    let mut m = mac.clone();
    m.update(nonce);
    m.update(data);
    let full = m.finalize().into_bytes();
    out[..full.len()].copy_from_slice(&full);
}

impl HmacKey {
    fn new(hash: HashAlg, key: &[u8]) -> Self {
        fn keyed<M: KeyInit>(key: &[u8]) -> M {
            M::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key size"))
        }
        match hash {
            HashAlg::Sha1 => HmacKey::Sha1(keyed(key)),
            HashAlg::Sha256 => HmacKey::Sha256(keyed(key)),
            HashAlg::Sha512 => HmacKey::Sha512(keyed(key)),
        }
    }

    /// The full HMAC of `nonce ‖ data`.
    fn mac(&self, nonce: &[u8], data: &[u8]) -> Zeroizing<[u8; MAX_TAG_SIZE]> {
        let mut out = Zeroizing::new([0u8; MAX_TAG_SIZE]);
        match self {
            HmacKey::Sha1(m) => mac_of(m, nonce, data, &mut out),
            HmacKey::Sha256(m) => mac_of(m, nonce, data, &mut out),
            HmacKey::Sha512(m) => mac_of(m, nonce, data, &mut out),
        }
        out
    }
}

/// `true` if `a == b`, in time independent of where they differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
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
        let nonce = self.nonce(index, last);
        match &self.kind {
            CipherKind::Gcm(key) => {
                let mut n = [0u8; 12];
                n.copy_from_slice(&nonce[..12]);
                let t = key
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), data)
                    .unwrap_or_else(|_| unreachable!("a segment is far below GCM's limit"));
                tag.copy_from_slice(t.as_ref());
            }
            CipherKind::CtrHmac(k) => {
                k.aes.apply(&nonce, data);
                let mac = k.hmac.mac(&nonce, data);
                tag.copy_from_slice(&mac[..self.tag_size]);
            }
        }
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
                key.open_in_place(Nonce::assume_unique_for_key(n), Aad::empty(), segment)
                    .ok()?;
            }
            CipherKind::CtrHmac(k) => {
                let (data, tag) = segment.split_at_mut(len);
                let mac = k.hmac.mac(&nonce, data);
                if !ct_eq(&mac[..self.tag_size], tag) {
                    return None;
                }
                k.aes.apply(&nonce, data);
            }
        }
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5869 test cases 1 (SHA-256) and 4 (SHA-1).
    #[test]
    fn hkdf_matches_rfc_5869() {
        let ikm = [0x0b; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let mut okm = [0u8; 42];
        hkdf(HashAlg::Sha256, &ikm, &salt, &info, &mut okm);
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        let ikm = [0x0b; 11];
        hkdf(HashAlg::Sha1, &ikm, &salt, &info, &mut okm);
        assert_eq!(
            hex::encode(okm),
            "085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2c22e422478d305f3f896"
        );
    }

    #[test]
    fn nonce_layout() {
        let c = SegmentCipher {
            kind: CipherKind::CtrHmac(Box::new(CtrHmac {
                aes: AesKey::new(&[1; 16]),
                hmac: HmacKey::new(HashAlg::Sha256, &[2; 32]),
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
