//! `AesGcmSivKey`: AES-GCM-SIV (RFC 8452) with a 12-byte random nonce: on
//! RustCrypto `aes-gcm-siv` (AES-NI and CLMUL detected at run time) under
//! `ring`, which has no AES-GCM-SIV; on AWS-LC under `aws-lc-rs`. Not a
//! FIPS-approved mode: refused under `fips`.
//!
//! Tink 1.16 (C++ `AesGcmSivKeyManager`): key version 0, key 16 or 32 bytes.
//! Raw ciphertext: `nonce(12) ‖ ct ‖ tag(16)`.

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes128GcmSiv, Aes256GcmSiv, Nonce, Tag};
use encstore_core::AeadError;
use tink_proto::{AesGcmSivKey, AesGcmSivKeyFormat};
use zeroize::Zeroizing;

use super::nonce_aead::NoncePrimitive;
use super::{
    KeyParams, RawAead, TAG_SIZE, check_aes_key_size, check_version, decode, decode_key,
    encode_new_key, size,
};
use crate::error::KeyError;
use crate::provider::CryptoProvider;
use crate::provider::prim::AeadAlg;

const KEY_TYPE: &str = "AesGcmSivKey";
const NONCE_SIZE: usize = 12;

/// A RustCrypto AES-GCM-SIV key (the crate's key-generating key is AES
/// round keys, wiped on drop through `aes`'s `zeroize` feature).
enum Siv {
    /// 16-byte key.
    Aes128(Box<Aes128GcmSiv>),
    /// 32-byte key.
    Aes256(Box<Aes256GcmSiv>),
}

/// An AES-GCM-SIV key on RustCrypto, with its nonce source.
struct AesGcmSiv {
    siv: Siv,
    /// Where nonces come from.
    provider: &'static CryptoProvider,
}

impl std::fmt::Debug for AesGcmSiv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesGcmSiv")
    }
}

impl AesGcmSiv {
    fn encrypt(&self, nonce: &Nonce, ad: &[u8], buf: &mut [u8]) -> Result<Tag, AeadError> {
        match &self.siv {
            Siv::Aes128(c) => c.encrypt_inout_detached(nonce, ad, buf.into()),
            Siv::Aes256(c) => c.encrypt_inout_detached(nonce, ad, buf.into()),
        }
        .map_err(|_| AeadError::TooLarge)
    }

    fn decrypt(
        &self,
        nonce: &Nonce,
        ad: &[u8],
        buf: &mut [u8],
        tag: &Tag,
    ) -> Result<(), AeadError> {
        match &self.siv {
            Siv::Aes128(c) => c.decrypt_inout_detached(nonce, ad, buf.into(), tag),
            Siv::Aes256(c) => c.decrypt_inout_detached(nonce, ad, buf.into(), tag),
        }
        .map_err(|_| AeadError::Authentication)
    }
}

impl RawAead for AesGcmSiv {
    fn seal_append(&self, pt: &[u8], ad: &[u8], out: &mut Vec<u8>) -> Result<(), AeadError> {
        let mut nonce = Nonce::default();
        self.provider.fill_nonce(&mut nonce)?;
        out.reserve(NONCE_SIZE + pt.len() + TAG_SIZE);
        out.extend_from_slice(&nonce);
        let ct_start = out.len();
        out.extend_from_slice(pt);
        let tag = self.encrypt(&nonce, ad, &mut out[ct_start..])?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    fn open_in_place(&self, buf: &mut Vec<u8>, start: usize, ad: &[u8]) -> Result<(), AeadError> {
        if buf.len() < start.saturating_add(NONCE_SIZE + TAG_SIZE) {
            return Err(AeadError::Authentication);
        }
        let nonce = Nonce::try_from(&buf[start..start + NONCE_SIZE])
            .map_err(|_| AeadError::Authentication)?;
        let tag_start = buf.len() - TAG_SIZE;
        let tag = Tag::try_from(&buf[tag_start..]).map_err(|_| AeadError::Authentication)?;
        let ct_start = start + NONCE_SIZE;
        self.decrypt(&nonce, ad, &mut buf[ct_start..tag_start], &tag)?;
        // The crate cannot decrypt into an overlapping lower range, so the
        // plaintext moves down once (a memmove, far cheaper than the cipher).
        buf.copy_within(ct_start..tag_start, 0);
        buf.truncate(tag_start - ct_start);
        Ok(())
    }

    fn overhead(&self) -> usize {
        NONCE_SIZE + TAG_SIZE
    }

    fn header_len(&self) -> usize {
        NONCE_SIZE
    }
}

pub(super) fn from_key(
    provider: &'static CryptoProvider,
    value: &[u8],
) -> Result<(KeyParams, Box<dyn RawAead>), KeyError> {
    let (_, key) = decode_key::<AesGcmSivKey>(KEY_TYPE, value, check_aes_key_size)?;
    let wrong = |_| KeyError::WrongKeySize {
        key_type: KEY_TYPE,
        size: key.len(),
        allowed: "16 or 32 bytes",
    };
    let params = KeyParams::AesGcmSiv {
        key_size: key.len(),
    };
    let alg = match key.len() {
        16 => AeadAlg::Aes128GcmSiv,
        _ => AeadAlg::Aes256GcmSiv,
    };
    // The provider's AES-GCM-SIV where it has one (AWS-LC), else RustCrypto.
    if provider.aead_key(alg, &key).is_some()
        && let Some(k) = provider.random_nonce_key(alg, &key)
    {
        return Ok((params, Box::new(NoncePrimitive::new("AesGcmSiv", k))));
    }
    let siv = match key.len() {
        16 => Siv::Aes128(Box::new(Aes128GcmSiv::new_from_slice(&key).map_err(wrong)?)),
        _ => Siv::Aes256(Box::new(Aes256GcmSiv::new_from_slice(&key).map_err(wrong)?)),
    };
    Ok((params, Box::new(AesGcmSiv { siv, provider })))
}

pub(super) fn new_key(
    provider: &CryptoProvider,
    key_format: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let format: AesGcmSivKeyFormat = decode(KEY_TYPE, key_format)?;
    check_version(KEY_TYPE, format.version)?;
    check_aes_key_size(KEY_TYPE, size(format.key_size))?;
    encode_new_key(provider, size(format.key_size), |key_value| AesGcmSivKey {
        version: 0,
        key_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::test_util::*;

    fn from_key(value: &[u8]) -> Result<(KeyParams, Box<dyn RawAead>), KeyError> {
        super::from_key(provider_for(KEY_TYPE), value)
    }

    fn new_key(format: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        super::new_key(provider_for(KEY_TYPE), format)
    }

    fn key_proto(key: &[u8], version: u32) -> Vec<u8> {
        prost::Message::encode_to_vec(&AesGcmSivKey {
            version,
            key_value: key.to_vec(),
        })
    }

    fn prim(key: &[u8]) -> Box<dyn RawAead> {
        from_key(&key_proto(key, 0)).expect("valid key").1
    }

    #[test]
    fn roundtrip_tamper_wrong_ad() {
        for size in [16, 32] {
            let p = prim(&vec![5u8; size]);
            check_roundtrip(&*p, 28);
            check_tamper_and_ad(&*p);
        }
    }

    /// Source: tink-crypto/tink-cc
    /// `tink/aead/internal/testing/aes_gcm_siv_test_vectors.cc` (Wycheproof
    /// tcId 5 and 80, kNoPrefix).
    #[test]
    fn known_answer_tink() {
        let pt = hex("0100000000000000000000000000000002000000000000000000000000000000");
        let key16 = hex("01000000000000000000000000000000");
        let ct16 = hex("03000000000000000000000084e07e62ba83a6585417245d7ec413a9fe\
             427d6315c09b57ce45f2e3936a94451a8e45dcd4578c667cd86847bf61\
             55ff");
        assert_eq!(prim(&key16).open(&ct16, b"").expect("decrypts"), pt);
        let key32 = hex("0100000000000000000000000000000000000000000000000000000000000000");
        let ct32 = hex("0300000000000000000000004a6a9db4c8c6549201b9edb53006cba821\
             ec9cf850948a7c86c68ac7539d027fe819e63abcd020b006a976397632\
             eb5d");
        assert_eq!(prim(&key32).open(&ct32, b"").expect("decrypts"), pt);
    }

    #[test]
    fn validation() {
        assert_eq!(
            from_key(&key_proto(&[0; 16], 1)).err(),
            Some(KeyError::UnsupportedVersion {
                key_type: KEY_TYPE,
                version: 1
            })
        );
        for bad in [0, 15, 24, 33] {
            assert!(matches!(
                from_key(&key_proto(&vec![0; bad], 0)).err(),
                Some(KeyError::WrongKeySize { size, .. }) if size == bad
            ));
        }
        let fmt = |key_size, version| {
            prost::Message::encode_to_vec(&AesGcmSivKeyFormat { key_size, version })
        };
        assert!(matches!(
            new_key(&fmt(24, 0)),
            Err(KeyError::WrongKeySize { size: 24, .. })
        ));
        assert!(matches!(
            new_key(&fmt(16, 1)),
            Err(KeyError::UnsupportedVersion { .. })
        ));
        for size in [16, 32] {
            let key = new_key(&fmt(size, 0)).expect("generates");
            let (params, p) = from_key(&key).expect("loads");
            assert_eq!(
                params,
                KeyParams::AesGcmSiv {
                    key_size: size as usize
                }
            );
            check_roundtrip(&*p, 28);
        }
    }
}
