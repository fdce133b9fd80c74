//! `ChaCha20Poly1305Key`: RFC 8439 ChaCha20-Poly1305 with a 12-byte random
//! nonce, from the key's provider (ring or AWS-LC; refused under `fips`).
//!
//! Tink 1.16 (Java/Go `ChaCha20Poly1305KeyManager`): key version 0, key 32
//! bytes; the key format is empty. Raw ciphertext: `nonce(12) ‖ ct ‖ tag(16)`.

use tink_proto::{ChaCha20Poly1305Key, ChaCha20Poly1305KeyFormat};
use zeroize::Zeroizing;

use super::nonce_aead::NoncePrimitive;
use super::{KeyParams, RawAead, check_32_byte_key_size, decode, decode_key, encode_new_key};
use crate::error::KeyError;
use crate::provider::CryptoProvider;
use crate::provider::prim::AeadAlg;

const KEY_TYPE: &str = "ChaCha20Poly1305Key";
const KEY_SIZE: usize = 32;

pub(super) fn from_key(
    provider: &'static CryptoProvider,
    value: &[u8],
) -> Result<(KeyParams, Box<dyn RawAead>), KeyError> {
    let (_, key) = decode_key::<ChaCha20Poly1305Key>(KEY_TYPE, value, check_32_byte_key_size)?;
    let inner = provider
        .random_nonce_key(AeadAlg::ChaCha20Poly1305, &key)
        .ok_or(KeyError::WrongKeySize {
            key_type: KEY_TYPE,
            size: key.len(),
            allowed: "32 bytes",
        })?;
    Ok((
        KeyParams::ChaCha20Poly1305,
        Box::new(NoncePrimitive::new("ChaCha20Poly1305", inner)),
    ))
}

pub(super) fn new_key(
    provider: &CryptoProvider,
    key_format: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let _format: ChaCha20Poly1305KeyFormat = decode(KEY_TYPE, key_format)?;
    encode_new_key(provider, KEY_SIZE, |key_value| ChaCha20Poly1305Key {
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
        prost::Message::encode_to_vec(&ChaCha20Poly1305Key {
            version,
            key_value: key.to_vec(),
        })
    }

    fn prim(key: &[u8]) -> Box<dyn RawAead> {
        from_key(&key_proto(key, 0)).expect("valid key").1
    }

    #[test]
    fn roundtrip_tamper_wrong_ad() {
        let p = prim(&[9u8; 32]);
        check_roundtrip(&*p, 28);
        check_tamper_and_ad(&*p);
    }

    /// Source: tink-crypto/tink-cc
    /// `tink/aead/internal/testing/chacha20_poly1305_test_vectors.cc`
    /// (Wycheproof tcId 66, kNoPrefix).
    #[test]
    fn known_answer_tink() {
        let key = hex("e1731d5854e1b70cb3ffe8b786a2b3ebf0994370954757b9dc8c7bc5354634a3");
        let pt = hex("b9c554cbc36ac18ae897df7beecac1dbeb4eafa156bb60ce2e5d48f05715e678");
        let ct = hex(
            "72cfd90ef3026ca22b7e6e6aea29afa49d36e8760f5fe19723b9811ed5d51\
             9934a440f5081ac430b953b0e21222541af46b86533c6b68d2ff108a7ea",
        );
        assert_eq!(prim(&key).open(&ct, b"").expect("decrypts"), pt);
    }

    #[test]
    fn validation() {
        assert_eq!(
            from_key(&key_proto(&[0; 32], 1)).err(),
            Some(KeyError::UnsupportedVersion {
                key_type: KEY_TYPE,
                version: 1
            })
        );
        for bad in [0, 16, 31, 33] {
            assert!(matches!(
                from_key(&key_proto(&vec![0; bad], 0)).err(),
                Some(KeyError::WrongKeySize { size, .. }) if size == bad
            ));
        }
        assert_eq!(
            from_key(b"\x0a\xff").err(),
            Some(KeyError::MalformedKey { key_type: KEY_TYPE })
        );
        let key = new_key(&[]).expect("generates");
        let (params, p) = from_key(&key).expect("loads");
        assert_eq!(params, KeyParams::ChaCha20Poly1305);
        check_roundtrip(&*p, 28);
    }
}
