//! `AesCtrHmacAeadKey`: encrypt-then-MAC with AES-CTR and HMAC, from the
//! key's provider: RustCrypto `aes`, `hmac`, `sha1` and `sha2` under
//! `ring`; AWS-LC's AES-CTR and HMAC under `aws-lc-rs` and `fips` (which
//! refuses SHA-1).
//!
//! Tink's `EncryptThenAuthenticate`: with a random IV of `iv_size` bytes,
//! the CTR counter block is `iv ‖ 0…` (a 128-bit big-endian counter), and
//!
//! ```text
//! ct  = iv ‖ AES-CTR(aes_key, iv, pt)
//! tag = HMAC(hmac_key, ad ‖ ct ‖ bit_length(ad) as u64 big-endian)[..tag_size]
//! raw ciphertext = ct ‖ tag
//! ```
//! The tag is checked (in constant time) before anything is decrypted.
//!
//! Tink 1.16 (C++ `AesCtrHmacAeadKeyManager` and `HmacKeyManager`): key,
//! AES key and HMAC key versions 0; AES key 16 or 32 bytes; IV 12 to 16
//! bytes; HMAC key at least 16 bytes; hash SHA1, SHA224, SHA256, SHA384 or
//! SHA512; tag at least 10 bytes and at most the hash's output size.

use encstore_core::AeadError;
use tink_proto::{AesCtrHmacAeadKey, AesCtrHmacAeadKeyFormat, AesCtrKey, HmacKey, HmacParams};
use zeroize::{Zeroize, Zeroizing};

use super::{
    KeyParams, RawAead, check_aes_key_size, check_version, decode, encode_key, random_key, size,
};
use crate::error::KeyError;
use crate::provider::CryptoProvider;
use crate::provider::prim::{AesCtr, Hmac, ct_eq};

const KEY_TYPE: &str = "AesCtrHmacAeadKey";
const MIN_IV_SIZE: usize = 12;
const MAX_IV_SIZE: usize = 16;
const MIN_HMAC_KEY_SIZE: usize = 16;
const MIN_TAG_SIZE: usize = 10;
/// Largest HMAC key `new_key` makes. Tink sets no upper bound, but a key
/// format asking for gigabytes must not allocate them; keys read from a
/// keyset are accepted at any size of at least 16 bytes, as Tink does.
const MAX_GENERATED_HMAC_KEY_SIZE: usize = 1024;

/// An AES-CTR-HMAC-AEAD key.
struct AesCtrHmac {
    /// The AES-CTR key.
    aes: AesCtr,
    /// Keyed HMAC.
    hmac: Hmac,
    /// Where IVs come from.
    provider: &'static CryptoProvider,
    /// IV size in bytes (12 to 16).
    iv_size: usize,
    /// Tag size in bytes.
    tag_size: usize,
}

impl std::fmt::Debug for AesCtrHmac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AesCtrHmac")
            .field("iv_size", &self.iv_size)
            .field("tag_size", &self.tag_size)
            .finish_non_exhaustive()
    }
}

impl AesCtrHmac {
    /// The first counter block: `iv ‖ 0…`.
    fn counter_block(&self, iv: &[u8]) -> [u8; 16] {
        let mut block = [0u8; 16];
        block[..self.iv_size].copy_from_slice(iv);
        block
    }

    /// Full-length tag of `ad ‖ ct ‖ bit_length(ad)`.
    fn tag(&self, ad: &[u8], ct: &[u8]) -> Zeroizing<([u8; 64], usize)> {
        let ad_bits = (ad.len() as u64).wrapping_mul(8).to_be_bytes();
        self.hmac.mac(&[ad, ct, &ad_bits])
    }
}

impl RawAead for AesCtrHmac {
    fn seal_append(&self, pt: &[u8], ad: &[u8], out: &mut Vec<u8>) -> Result<(), AeadError> {
        let mut block = [0u8; 16];
        self.provider.fill_nonce(&mut block[..self.iv_size])?;
        out.reserve(self.iv_size + pt.len() + self.tag_size);
        let start = out.len();
        out.extend_from_slice(&block[..self.iv_size]);
        out.extend_from_slice(pt);
        self.aes.apply(&block, &mut out[start + self.iv_size..]);
        let tag = self.tag(ad, &out[start..]);
        out.extend_from_slice(&tag.0[..self.tag_size]);
        Ok(())
    }

    fn open_in_place(&self, buf: &mut Vec<u8>, start: usize, ad: &[u8]) -> Result<(), AeadError> {
        if buf.len() < start.saturating_add(self.iv_size + self.tag_size) {
            return Err(AeadError::Authentication);
        }
        let tag_start = buf.len() - self.tag_size;
        let expected = self.tag(ad, &buf[start..tag_start]);
        if !ct_eq(&expected.0[..self.tag_size], &buf[tag_start..]) {
            return Err(AeadError::Authentication);
        }
        let ct_start = start + self.iv_size;
        let block = self.counter_block(&buf[start..ct_start]);
        self.aes.apply(&block, &mut buf[ct_start..tag_start]);
        buf.copy_within(ct_start..tag_start, 0);
        buf.truncate(tag_start - ct_start);
        Ok(())
    }

    fn overhead(&self) -> usize {
        self.iv_size + self.tag_size
    }

    fn header_len(&self) -> usize {
        self.iv_size
    }
}

fn invalid(what: String) -> KeyError {
    KeyError::InvalidParameter {
        key_type: KEY_TYPE,
        what,
    }
}

/// Tink's IV rule: 12 to 16 bytes.
fn check_iv_size(iv_size: usize) -> Result<(), KeyError> {
    if !(MIN_IV_SIZE..=MAX_IV_SIZE).contains(&iv_size) {
        return Err(invalid(format!(
            "IV size is {iv_size} bytes; allowed: 12 to 16"
        )));
    }
    Ok(())
}

/// Tink's HMAC parameter rules (every hash but UNKNOWN_HASH); returns the
/// hash and tag size.
fn check_hmac_params(params: Option<&HmacParams>) -> Result<(super::HashType, usize), KeyError> {
    let params = params.cloned().unwrap_or_default();
    let tag_size = size(params.tag_size);
    let Some(hash) = super::HashType::from_proto(params.hash) else {
        return Err(invalid(format!(
            "HMAC hash {} is not supported; allowed: SHA1, SHA224, SHA256, SHA384, SHA512",
            params.hash
        )));
    };
    let max_tag = hash.output_size();
    if tag_size < MIN_TAG_SIZE || tag_size > max_tag {
        return Err(invalid(format!(
            "tag size is {tag_size} bytes; allowed with {hash}: {MIN_TAG_SIZE} to {max_tag}"
        )));
    }
    Ok((hash, tag_size))
}

/// Tink's HMAC key size rule: at least 16 bytes.
fn check_hmac_key_size(size: usize) -> Result<(), KeyError> {
    if size < MIN_HMAC_KEY_SIZE {
        return Err(KeyError::WrongKeySize {
            key_type: KEY_TYPE,
            size,
            allowed: "at least 16 bytes for the HMAC key",
        });
    }
    Ok(())
}

pub(super) fn from_key(
    provider: &'static CryptoProvider,
    value: &[u8],
) -> Result<(KeyParams, Box<dyn RawAead>), KeyError> {
    let mut proto = AesCtrHmacAeadKey::default();
    crate::keyset::merge_or_wipe(&mut proto, value, |p| {
        for k in [
            p.aes_ctr_key.as_mut().map(|k| &mut k.key_value),
            p.hmac_key.as_mut().map(|k| &mut k.key_value),
        ]
        .into_iter()
        .flatten()
        {
            k.zeroize();
        }
    })
    .map_err(|_| KeyError::MalformedKey { key_type: KEY_TYPE })?;
    let mut aes_ctr = proto.aes_ctr_key.take().unwrap_or_default();
    let mut hmac = proto.hmac_key.take().unwrap_or_default();
    let aes_key = Zeroizing::new(std::mem::take(&mut aes_ctr.key_value));
    let hmac_key = Zeroizing::new(std::mem::take(&mut hmac.key_value));

    check_version(KEY_TYPE, proto.version)?;
    check_version(KEY_TYPE, aes_ctr.version)?;
    check_aes_key_size(KEY_TYPE, aes_key.len())?;
    let iv_size = size(aes_ctr.params.as_ref().map_or(0, |p| p.iv_size));
    check_iv_size(iv_size)?;
    check_version(KEY_TYPE, hmac.version)?;
    check_hmac_key_size(hmac_key.len())?;
    let (hash, tag_size) = check_hmac_params(hmac.params.as_ref())?;

    let aead = AesCtrHmac {
        aes: provider
            .aes_ctr(&aes_key)
            .ok_or_else(|| invalid("AES key".into()))?,
        hmac: provider.hmac(hash, &hmac_key),
        provider,
        iv_size,
        tag_size,
    };
    let params = KeyParams::AesCtrHmac {
        aes_key_size: aes_key.len(),
        iv_size,
        hmac_key_size: hmac_key.len(),
        hash,
        tag_size,
    };
    Ok((params, Box::new(aead)))
}

pub(super) fn new_key(
    provider: &CryptoProvider,
    key_format: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let format: AesCtrHmacAeadKeyFormat = decode(KEY_TYPE, key_format)?;
    let aes_format = format.aes_ctr_key_format.unwrap_or_default();
    let hmac_format = format.hmac_key_format.unwrap_or_default();
    check_aes_key_size(KEY_TYPE, size(aes_format.key_size))?;
    let aes_params = aes_format.params.unwrap_or_default();
    check_iv_size(size(aes_params.iv_size))?;
    check_version(KEY_TYPE, hmac_format.version)?;
    check_hmac_key_size(size(hmac_format.key_size))?;
    if size(hmac_format.key_size) > MAX_GENERATED_HMAC_KEY_SIZE {
        return Err(KeyError::WrongKeySize {
            key_type: KEY_TYPE,
            size: size(hmac_format.key_size),
            allowed: "at most 1024 bytes for a new HMAC key",
        });
    }
    check_hmac_params(hmac_format.params.as_ref())?;

    let aes_key = random_key(provider, size(aes_format.key_size))?;
    let hmac_key = random_key(provider, size(hmac_format.key_size))?;
    let mut proto = AesCtrHmacAeadKey {
        version: 0,
        aes_ctr_key: Some(AesCtrKey {
            version: 0,
            params: Some(aes_params),
            key_value: aes_key.to_vec(),
        }),
        hmac_key: Some(HmacKey {
            version: 0,
            params: hmac_format.params,
            key_value: hmac_key.to_vec(),
        }),
    };
    let encoded = encode_key(&proto);
    if let Some(k) = proto.aes_ctr_key.as_mut() {
        k.key_value.zeroize();
    }
    if let Some(k) = proto.hmac_key.as_mut() {
        k.key_value.zeroize();
    }
    Ok(encoded)
}

#[cfg(test)]
mod tests {
    use tink_proto::HashType;

    use super::*;
    use crate::primitives::test_util::*;

    fn from_key(value: &[u8]) -> Result<(KeyParams, Box<dyn RawAead>), KeyError> {
        super::from_key(provider_for(KEY_TYPE), value)
    }

    fn new_key(format: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        super::new_key(provider_for(KEY_TYPE), format)
    }
    use tink_proto::{AesCtrKeyFormat, AesCtrParams, HmacKeyFormat};

    struct K {
        version: u32,
        aes_version: u32,
        aes_key: Vec<u8>,
        iv_size: u32,
        hmac_version: u32,
        hmac_key: Vec<u8>,
        hash: HashType,
        tag_size: u32,
    }

    impl Default for K {
        fn default() -> Self {
            K {
                version: 0,
                aes_version: 0,
                aes_key: vec![0x11; 16],
                iv_size: 16,
                hmac_version: 0,
                hmac_key: vec![0x22; 32],
                hash: HashType::Sha256,
                tag_size: 16,
            }
        }
    }

    fn key_proto(k: &K) -> Vec<u8> {
        prost::Message::encode_to_vec(&AesCtrHmacAeadKey {
            version: k.version,
            aes_ctr_key: Some(AesCtrKey {
                version: k.aes_version,
                params: Some(AesCtrParams { iv_size: k.iv_size }),
                key_value: k.aes_key.clone(),
            }),
            hmac_key: Some(HmacKey {
                version: k.hmac_version,
                params: Some(HmacParams {
                    hash: k.hash as i32,
                    tag_size: k.tag_size,
                }),
                key_value: k.hmac_key.clone(),
            }),
        })
    }

    fn prim(k: &K) -> Box<dyn RawAead> {
        from_key(&key_proto(k)).expect("valid key").1
    }

    #[test]
    fn roundtrip_tamper_wrong_ad() {
        for (aes, iv, hash, tag) in [
            (16, 16, HashType::Sha256, 16),
            (32, 12, HashType::Sha256, 32),
            (16, 13, HashType::Sha1, 10),
            (32, 16, HashType::Sha224, 28),
            (16, 14, HashType::Sha384, 48),
            (32, 16, HashType::Sha512, 64),
            (32, 16, HashType::Sha512, 32),
        ] {
            let p = prim(&K {
                aes_key: vec![3; aes],
                iv_size: iv,
                hash,
                tag_size: tag,
                ..K::default()
            });
            check_roundtrip(&*p, (iv + tag) as usize);
            check_tamper_and_ad(&*p);
        }
    }

    /// Source: tink-crypto/tink-cc
    /// `tink/aead/internal/testing/aes_ctr_hmac_aead_test_vectors.cc`
    /// (kNoPrefix; HMAC-SHA256 with a 32-byte key, 16-byte IV and tag).
    #[test]
    fn known_answer_tink() {
        let pt = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45\
             af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b\
             417be66c3710");
        let hmac_key = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        for (aes_key, ct) in [
            (
                "2b7e151628aed2a6abf7158809cf4f3c",
                "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff874d6191b620e3261bef686499\
                 0db6ce9806f66b7970fdff8617187bb9fffdff5ae4df3edbd5d35e5b4f\
                 09020db03eab1e031dda2fbe03d1792170a0f3009cee44c94780653c7b\
                 5bbfb7c07b3a8c4da5",
            ),
            (
                "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
                "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff601ec313775789a5b7a7f504bb\
                 f3d228f443e3ca4d62b59aca84e990cacaf5c52b0930daa23de94ce870\
                 17ba2d84988ddfc9c58db67aada613c2dd08457941a6cf5fe859652142\
                 daea9def01abd443b6",
            ),
        ] {
            let p = prim(&K {
                aes_key: hex(aes_key),
                hmac_key: hmac_key.clone(),
                ..K::default()
            });
            assert_eq!(p.open(&hex(ct), b"").expect("decrypts"), pt);
        }
    }

    #[test]
    fn validation() {
        let err = |k: K| from_key(&key_proto(&k)).err().expect("refused");
        for (k, v) in [
            (
                K {
                    version: 1,
                    ..K::default()
                },
                1,
            ),
            (
                K {
                    aes_version: 2,
                    ..K::default()
                },
                2,
            ),
            (
                K {
                    hmac_version: 3,
                    ..K::default()
                },
                3,
            ),
        ] {
            assert_eq!(
                err(k),
                KeyError::UnsupportedVersion {
                    key_type: KEY_TYPE,
                    version: v
                }
            );
        }
        for bad in [0, 15, 24, 33] {
            assert!(matches!(
                err(K { aes_key: vec![0; bad], ..K::default() }),
                KeyError::WrongKeySize { size, .. } if size == bad
            ));
        }
        assert!(matches!(
            err(K {
                hmac_key: vec![0; 15],
                ..K::default()
            }),
            KeyError::WrongKeySize { size: 15, .. }
        ));
        for iv in [0, 11, 17] {
            assert!(matches!(
                err(K {
                    iv_size: iv,
                    ..K::default()
                }),
                KeyError::InvalidParameter { .. }
            ));
        }
        for (hash, tag) in [
            (HashType::Sha256, 9),
            (HashType::Sha256, 33),
            (HashType::Sha1, 21),
            (HashType::Sha224, 29),
            (HashType::Sha384, 49),
            (HashType::Sha512, 65),
            (HashType::UnknownHash, 16),
        ] {
            assert!(
                matches!(
                    err(K {
                        hash,
                        tag_size: tag,
                        ..K::default()
                    }),
                    KeyError::InvalidParameter { .. }
                ),
                "{hash:?} {tag}"
            );
        }
        let empty = prost::Message::encode_to_vec(&AesCtrHmacAeadKey::default());
        assert!(from_key(&empty).is_err());

        let fmt = |aes: u32, iv: u32, hmac: u32, hash: HashType, tag: u32, version: u32| {
            prost::Message::encode_to_vec(&AesCtrHmacAeadKeyFormat {
                aes_ctr_key_format: Some(AesCtrKeyFormat {
                    params: Some(AesCtrParams { iv_size: iv }),
                    key_size: aes,
                }),
                hmac_key_format: Some(HmacKeyFormat {
                    params: Some(HmacParams {
                        hash: hash as i32,
                        tag_size: tag,
                    }),
                    key_size: hmac,
                    version,
                }),
            })
        };
        assert!(matches!(
            new_key(&fmt(24, 16, 32, HashType::Sha256, 16, 0)),
            Err(KeyError::WrongKeySize { .. })
        ));
        assert!(matches!(
            new_key(&fmt(16, 11, 32, HashType::Sha256, 16, 0)),
            Err(KeyError::InvalidParameter { .. })
        ));
        assert!(matches!(
            new_key(&fmt(16, 16, 8, HashType::Sha256, 16, 0)),
            Err(KeyError::WrongKeySize { .. })
        ));
        assert!(matches!(
            new_key(&fmt(16, 16, u32::MAX, HashType::Sha256, 16, 0)),
            Err(KeyError::WrongKeySize { .. })
        ));
        assert!(matches!(
            new_key(&fmt(16, 16, 32, HashType::Sha256, 33, 0)),
            Err(KeyError::InvalidParameter { .. })
        ));
        assert!(matches!(
            new_key(&fmt(16, 16, 32, HashType::Sha256, 16, 1)),
            Err(KeyError::UnsupportedVersion { .. })
        ));
        for (aes, iv, hash, tag) in [
            (16, 16, HashType::Sha256, 16),
            (32, 16, HashType::Sha256, 32),
            (32, 12, HashType::Sha512, 64),
        ] {
            let key = new_key(&fmt(aes, iv, 32, hash, tag, 0)).expect("generates");
            let (params, p) = from_key(&key).expect("loads");
            assert_eq!(
                params,
                KeyParams::AesCtrHmac {
                    aes_key_size: aes as usize,
                    iv_size: iv as usize,
                    hmac_key_size: 32,
                    hash: crate::primitives::HashType::from_proto(hash as i32).expect("known"),
                    tag_size: tag as usize,
                }
            );
            check_roundtrip(&*p, (iv + tag) as usize);
        }
    }
}
