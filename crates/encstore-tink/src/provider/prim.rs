//! The primitives a provider supplies, one type each, so that the key
//! types (`primitives`) and the streaming cipher (`streaming::cipher`)
//! never name a crypto library:
//!
//! | type | `ring` | `aws-lc-rs` / `fips` |
//! | --- | --- | --- |
//! | [`AeadKey`] (caller nonce) | ring `LessSafeKey` (AES-GCM, ChaCha20-Poly1305); RustCrypto for AES-GCM-SIV (in `primitives::aes_gcm_siv`) | aws-lc-rs `LessSafeKey` (AES-GCM, AES-GCM-SIV, ChaCha20-Poly1305) |
//! | [`RandomNonceKey`] (keyset AEAD) | [`AeadKey`] + a nonce from the kernel | `aws-lc-rs`: the same with aws-lc-rs; `fips`: AES-GCM's `RandomizedNonceKey` (the IV is made inside the module) |
//! | [`AesCtr`] | RustCrypto `aes` (AES-NI), 128-bit counter | aws-lc-rs `cipher::EncryptingKey::ctr` |
//! | [`Hmac`] | RustCrypto `hmac` + `sha1`/`sha2` | aws-lc-rs `hmac` |
//! | [`CryptoProvider::hkdf`] | RustCrypto `hkdf` | aws-lc-rs `hkdf` |
//! | nonces, IVs, salts | kernel (vDSO or `getrandom`, `primitives::nonce`) | `aws-lc-rs`: the kernel; `fips`: the module's DRBG |
//! | keys, key IDs | `getrandom` | `aws-lc-rs`: `getrandom`; `fips`: the module's DRBG |

use encstore_core::AeadError;
use hmac::Hmac as RcHmac;
use zeroize::{Zeroize, Zeroizing};

use super::{CryptoProvider, Provider};
use crate::primitives::HashType;

/// AEAD nonce length (every AEAD here).
pub(crate) const NONCE_LEN: usize = 12;
/// AEAD tag length (every AEAD here).
pub(crate) const TAG_LEN: usize = 16;
/// The longest HMAC output (SHA-512).
pub(crate) const MAX_MAC_LEN: usize = 64;

/// An AEAD algorithm with a 12-byte nonce and a 16-byte tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AeadAlg {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
    Aes128GcmSiv,
    Aes256GcmSiv,
}

impl CryptoProvider {
    /// Whether this provider's primitives are AWS-LC's (plain or FIPS).
    #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
    fn is_aws_lc(&self) -> bool {
        matches!(self.kind, Provider::AwsLc | Provider::AwsLcFips)
    }

    /// Fills a nonce, IV or salt: the kernel CSPRNG (vDSO or system call)
    /// under `ring` and `aws-lc-rs`, the module's DRBG under `fips`.
    pub(crate) fn fill_nonce(&self, buf: &mut [u8]) -> Result<(), AeadError> {
        #[cfg(feature = "fips")]
        if self.fips() {
            return aws_lc_rs::rand::fill(buf).map_err(|_| AeadError::Randomness);
        }
        crate::primitives::fill_kernel_nonce(buf)
    }

    /// Fills secret key material (and key IDs): `getrandom` under `ring`
    /// and `aws-lc-rs`, the module's DRBG under `fips`.
    pub(crate) fn fill_secret(&self, buf: &mut [u8]) -> Result<(), ()> {
        #[cfg(feature = "fips")]
        if self.fips() {
            return aws_lc_rs::rand::fill(buf).map_err(|_| ());
        }
        getrandom::fill(buf).map_err(|_| ())
    }

    /// A random `u32` (key IDs), from [`CryptoProvider::fill_secret`]'s
    /// source.
    pub(crate) fn random_u32(&self) -> Result<u32, ()> {
        let mut b = [0u8; 4];
        self.fill_secret(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    /// An AEAD key for caller-chosen nonces; `None` if the key length does
    /// not fit `alg` (or the provider lacks `alg`: ring has no AES-GCM-SIV,
    /// which `primitives::aes_gcm_siv` takes from RustCrypto instead).
    pub(crate) fn aead_key(&self, alg: AeadAlg, key: &[u8]) -> Option<AeadKey> {
        match self.kind {
            #[cfg(feature = "ring")]
            Provider::Ring => {
                let alg = match alg {
                    AeadAlg::Aes128Gcm => &ring::aead::AES_128_GCM,
                    AeadAlg::Aes256Gcm => &ring::aead::AES_256_GCM,
                    AeadAlg::ChaCha20Poly1305 => &ring::aead::CHACHA20_POLY1305,
                    AeadAlg::Aes128GcmSiv | AeadAlg::Aes256GcmSiv => return None,
                };
                let key = ring::aead::UnboundKey::new(alg, key).ok()?;
                Some(AeadKey(AeadInner::Ring(ring::aead::LessSafeKey::new(key))))
            }
            #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
            Provider::AwsLc | Provider::AwsLcFips => {
                let key = aws_lc_rs::aead::UnboundKey::new(aws_aead_alg(alg), key).ok()?;
                Some(AeadKey(AeadInner::AwsLc(
                    aws_lc_rs::aead::LessSafeKey::new(key),
                )))
            }
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// An AEAD key that seals under a fresh random nonce (a keyset key).
    /// Under `fips`, AES-GCM's IV is generated inside the module
    /// (`RandomizedNonceKey`: an approved service, SP 800-38D section
    /// 8.2.2); elsewhere the nonce comes from
    /// [`CryptoProvider::fill_nonce`].
    pub(crate) fn random_nonce_key(
        &'static self,
        alg: AeadAlg,
        key: &[u8],
    ) -> Option<RandomNonceKey> {
        #[cfg(feature = "fips")]
        if self.fips() {
            let alg = match alg {
                AeadAlg::Aes128Gcm => &aws_lc_rs::aead::AES_128_GCM,
                AeadAlg::Aes256Gcm => &aws_lc_rs::aead::AES_256_GCM,
                // Refused before a key is built (`check_key_type`).
                _ => return None,
            };
            let key = aws_lc_rs::aead::RandomizedNonceKey::new(alg, key).ok()?;
            return Some(RandomNonceKey(RandomInner::Module(key)));
        }
        Some(RandomNonceKey(RandomInner::Caller {
            key: self.aead_key(alg, key)?,
            provider: self,
        }))
    }

    /// An AES-CTR key (16 or 32 bytes; `None` otherwise).
    pub(crate) fn aes_ctr(&self, key: &[u8]) -> Option<AesCtr> {
        if key.len() != 16 && key.len() != 32 {
            return None;
        }
        #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
        if self.is_aws_lc() {
            let alg = if key.len() == 16 {
                &aws_lc_rs::cipher::AES_128
            } else {
                &aws_lc_rs::cipher::AES_256
            };
            let key = aws_lc_rs::cipher::UnboundCipherKey::new(alg, key).ok()?;
            return aws_lc_rs::cipher::EncryptingKey::ctr(key)
                .ok()
                .map(|k| AesCtr::AwsLc(Box::new(k)));
        }
        RcCtr::new(key).map(AesCtr::RustCrypto)
    }

    /// A keyed HMAC (any key length).
    pub(crate) fn hmac(&self, hash: HashType, key: &[u8]) -> Hmac {
        #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
        if self.is_aws_lc() {
            use aws_lc_rs::hmac;
            let alg = match hash {
                HashType::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                HashType::Sha224 => hmac::HMAC_SHA224,
                HashType::Sha256 => hmac::HMAC_SHA256,
                HashType::Sha384 => hmac::HMAC_SHA384,
                HashType::Sha512 => hmac::HMAC_SHA512,
            };
            return Hmac::AwsLc(Box::new(hmac::Key::new(alg, key)));
        }
        Hmac::RustCrypto(RcHmacAny::new(hash, key))
    }

    /// HKDF-`hash`(ikm, salt, info) into `okm` (at most 255 hash outputs;
    /// encstore asks for at most 64 bytes). `Err` if `okm` is too long, or
    /// for HKDF-SHA-224, which AWS-LC does not offer and nothing here uses.
    pub(crate) fn hkdf(
        &self,
        hash: HashType,
        ikm: &[u8],
        salt: &[u8],
        info: &[u8],
        okm: &mut [u8],
    ) -> Result<(), ()> {
        #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
        if self.is_aws_lc() {
            use aws_lc_rs::hkdf;
            /// An output length for aws-lc-rs's `expand`.
            struct Len(usize);
            impl hkdf::KeyType for Len {
                fn len(&self) -> usize {
                    self.0
                }
            }
            let alg = match hash {
                HashType::Sha1 => hkdf::HKDF_SHA1_FOR_LEGACY_USE_ONLY,
                HashType::Sha256 => hkdf::HKDF_SHA256,
                HashType::Sha384 => hkdf::HKDF_SHA384,
                HashType::Sha512 => hkdf::HKDF_SHA512,
                HashType::Sha224 => return Err(()),
            };
            let prk = hkdf::Salt::new(alg, salt).extract(ikm);
            let info = [info];
            return prk
                .expand(&info, Len(okm.len()))
                .and_then(|o| o.fill(okm))
                .map_err(|_| ());
        }
        let done = match hash {
            HashType::Sha1 => hkdf::Hkdf::<sha1::Sha1>::new(Some(salt), ikm).expand(info, okm),
            HashType::Sha224 => hkdf::Hkdf::<sha2::Sha224>::new(Some(salt), ikm).expand(info, okm),
            HashType::Sha256 => hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm).expand(info, okm),
            HashType::Sha384 => hkdf::Hkdf::<sha2::Sha384>::new(Some(salt), ikm).expand(info, okm),
            HashType::Sha512 => hkdf::Hkdf::<sha2::Sha512>::new(Some(salt), ikm).expand(info, okm),
        };
        done.map_err(|_| ())
    }
}

#[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
fn aws_aead_alg(alg: AeadAlg) -> &'static aws_lc_rs::aead::Algorithm {
    use aws_lc_rs::aead;
    match alg {
        AeadAlg::Aes128Gcm => &aead::AES_128_GCM,
        AeadAlg::Aes256Gcm => &aead::AES_256_GCM,
        AeadAlg::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        AeadAlg::Aes128GcmSiv => &aead::AES_128_GCM_SIV,
        AeadAlg::Aes256GcmSiv => &aead::AES_256_GCM_SIV,
    }
}

mod aead;
use aead::{AeadInner, RandomInner};
pub(crate) use aead::{AeadKey, RandomNonceKey};

// ---------------------------------------------------------------------------
// AES-CTR

/// An AES-CTR key: XORs data with the keystream of a 16-byte initial
/// counter block incremented as one 128-bit big-endian integer (wrapping),
/// as BoringSSL/AWS-LC's `CRYPTO_ctr128_encrypt` and Tink do.
pub(crate) enum AesCtr {
    /// RustCrypto `aes` (round keys wiped on drop).
    RustCrypto(RcCtr),
    /// aws-lc-rs (`AES_ctr128_encrypt`).
    #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
    AwsLc(Box<aws_lc_rs::cipher::EncryptingKey>),
}

impl AesCtr {
    /// XORs `data` with the keystream starting at counter block `iv`.
    pub(crate) fn apply(&self, iv: &[u8; 16], data: &mut [u8]) {
        match self {
            AesCtr::RustCrypto(k) => k.apply(iv, data),
            #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
            AesCtr::AwsLc(k) => {
                use aws_lc_rs::cipher::EncryptionContext;
                let ctx = EncryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from(iv));
                k.less_safe_encrypt(data, ctx)
                    .map(|_| ())
                    .unwrap_or_else(|_| unreachable!("CTR takes any length and a 16-byte IV"));
            }
        }
    }
}

/// RustCrypto AES for CTR, in batches of counter blocks.
pub(crate) enum RcCtr {
    Aes128(Box<aes::Aes128>),
    Aes256(Box<aes::Aes256>),
}

/// Counter blocks encrypted per batch (1 KiB: stays in L1, and is enough
/// for the AES backends' parallel blocks).
const CTR_BATCH: usize = 64;

impl RcCtr {
    fn new(key: &[u8]) -> Option<RcCtr> {
        use aes::cipher::KeyInit;
        match key.len() {
            16 => aes::Aes128::new_from_slice(key)
                .ok()
                .map(|c| RcCtr::Aes128(Box::new(c))),
            32 => aes::Aes256::new_from_slice(key)
                .ok()
                .map(|c| RcCtr::Aes256(Box::new(c))),
            _ => None,
        }
    }

    fn apply(&self, iv: &[u8; 16], data: &mut [u8]) {
        use aes::cipher::BlockCipherEncrypt;
        let mut counter = u128::from_be_bytes(*iv);
        let mut blocks = [aes::Block::default(); CTR_BATCH];
        for chunk in data.chunks_mut(CTR_BATCH * 16) {
            let n = chunk.len().div_ceil(16);
            for b in &mut blocks[..n] {
                b.copy_from_slice(&counter.to_be_bytes());
                counter = counter.wrapping_add(1);
            }
            match self {
                RcCtr::Aes128(c) => c.encrypt_blocks(&mut blocks[..n]),
                RcCtr::Aes256(c) => c.encrypt_blocks(&mut blocks[..n]),
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

// ---------------------------------------------------------------------------
// HMAC

/// A keyed HMAC: the key is hashed into the inner and outer states once;
/// each message starts from a copy of them.
pub(crate) enum Hmac {
    /// RustCrypto `hmac` (states wiped on drop).
    RustCrypto(RcHmacAny),
    /// aws-lc-rs `hmac::Key`.
    #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
    AwsLc(Box<aws_lc_rs::hmac::Key>),
}

impl Hmac {
    /// The full HMAC of the concatenation of `parts`, and its length.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> Zeroizing<([u8; MAX_MAC_LEN], usize)> {
        let mut out = Zeroizing::new(([0u8; MAX_MAC_LEN], 0));
        let (buf, len) = &mut *out;
        match self {
            Hmac::RustCrypto(m) => *len = m.mac(parts, buf),
            #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
            Hmac::AwsLc(k) => {
                let mut ctx = aws_lc_rs::hmac::Context::with_key(k);
                for p in parts {
                    ctx.update(p);
                }
                let tag = ctx.sign();
                let tag = tag.as_ref();
                buf[..tag.len()].copy_from_slice(tag);
                *len = tag.len();
            }
        }
        out
    }
}

/// RustCrypto HMAC for each of Tink's hashes.
pub(crate) enum RcHmacAny {
    Sha1(Box<RcHmac<sha1::Sha1>>),
    Sha224(Box<RcHmac<sha2::Sha224>>),
    Sha256(Box<RcHmac<sha2::Sha256>>),
    Sha384(Box<RcHmac<sha2::Sha384>>),
    Sha512(Box<RcHmac<sha2::Sha512>>),
}

/// HMAC of the concatenation of `parts` into `out`; returns the length.
fn rc_mac<M: hmac::Mac + Clone>(mac: &M, parts: &[&[u8]], out: &mut [u8; MAX_MAC_LEN]) -> usize {
    let mut m = mac.clone();
    for p in parts {
        m.update(p);
    }
    let full = m.finalize().into_bytes();
    out[..full.len()].copy_from_slice(&full);
    full.len()
}

impl RcHmacAny {
    fn new(hash: HashType, key: &[u8]) -> Self {
        fn keyed<M: hmac::KeyInit>(key: &[u8]) -> Box<M> {
            Box::new(
                M::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key size")),
            )
        }
        match hash {
            HashType::Sha1 => RcHmacAny::Sha1(keyed(key)),
            HashType::Sha224 => RcHmacAny::Sha224(keyed(key)),
            HashType::Sha256 => RcHmacAny::Sha256(keyed(key)),
            HashType::Sha384 => RcHmacAny::Sha384(keyed(key)),
            HashType::Sha512 => RcHmacAny::Sha512(keyed(key)),
        }
    }

    fn mac(&self, parts: &[&[u8]], out: &mut [u8; MAX_MAC_LEN]) -> usize {
        match self {
            RcHmacAny::Sha1(m) => rc_mac(&**m, parts, out),
            RcHmacAny::Sha224(m) => rc_mac(&**m, parts, out),
            RcHmacAny::Sha256(m) => rc_mac(&**m, parts, out),
            RcHmacAny::Sha384(m) => rc_mac(&**m, parts, out),
            RcHmacAny::Sha512(m) => rc_mac(&**m, parts, out),
        }
    }
}

/// `true` if `a == b` (equal lengths and bytes), in time independent of
/// where they differ (`subtle`). Used for tags no library compares for us.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod open_to_tests;
