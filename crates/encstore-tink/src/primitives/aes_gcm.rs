//! `AesGcmKey`: AES-GCM with a 12-byte random IV and a 16-byte tag, from
//! the key's provider (under `fips`, the IV is made inside the module).
//!
//! Tink 1.16 (C++ `AesGcmKeyManager`): key version 0, key 16 or 32 bytes.
//! Raw ciphertext: `iv(12) ‖ ct ‖ tag(16)`.

use tink_proto::{AesGcmKey, AesGcmKeyFormat};
use zeroize::Zeroizing;

use super::nonce_aead::NoncePrimitive;
use super::{
    KeyParams, RawAead, check_aes_key_size, check_version, decode, decode_key, encode_new_key, size,
};
use crate::error::KeyError;
use crate::provider::CryptoProvider;
use crate::provider::prim::AeadAlg;

const KEY_TYPE: &str = "AesGcmKey";

/// Builds the primitive from raw key bytes (already validated): the
/// provider's AES-GCM key (128 or 256), shown by `Debug` as `AesGcm`.
fn build(provider: &'static CryptoProvider, key: &[u8]) -> Result<NoncePrimitive, KeyError> {
    let algorithm = match key.len() {
        16 => AeadAlg::Aes128Gcm,
        _ => AeadAlg::Aes256Gcm,
    };
    let inner = provider
        .random_nonce_key(algorithm, key)
        .ok_or(KeyError::WrongKeySize {
            key_type: KEY_TYPE,
            size: key.len(),
            allowed: "16 or 32 bytes",
        })?;
    Ok(NoncePrimitive::new("AesGcm", inner))
}

pub(super) fn from_key(
    provider: &'static CryptoProvider,
    value: &[u8],
) -> Result<(KeyParams, Box<dyn RawAead>), KeyError> {
    let (_, key) = decode_key::<AesGcmKey>(KEY_TYPE, value, check_aes_key_size)?;
    let params = KeyParams::AesGcm {
        key_size: key.len(),
    };
    Ok((params, Box::new(build(provider, &key)?)))
}

pub(super) fn new_key(
    provider: &CryptoProvider,
    key_format: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let format: AesGcmKeyFormat = decode(KEY_TYPE, key_format)?;
    check_version(KEY_TYPE, format.version)?;
    check_aes_key_size(KEY_TYPE, size(format.key_size))?;
    encode_new_key(provider, size(format.key_size), |key_value| AesGcmKey {
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
        prost::Message::encode_to_vec(&AesGcmKey {
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
            let p = prim(&vec![7u8; size]);
            check_roundtrip(&*p, 28);
            check_tamper_and_ad(&*p);
        }
    }

    /// Source: McGrew & Viega, "The Galois/Counter Mode of Operation
    /// (GCM)", test case 14 (AES-256, zero key and IV), in Tink's layout
    /// `iv ‖ ct ‖ tag`. Ciphertexts made by Tink itself are checked in
    /// `primitives::tests::tink_py_vectors`.
    #[test]
    fn known_answer() {
        let key = [0u8; 32];
        let ct = hex(
            "000000000000000000000000cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
        );
        assert_eq!(prim(&key).open(&ct, b"").expect("decrypts"), [0u8; 16]);
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
        for bad in [0, 15, 24, 33] {
            assert!(matches!(
                from_key(&key_proto(&vec![0; bad], 0)).err(),
                Some(KeyError::WrongKeySize { size, .. }) if size == bad
            ));
        }
        assert_eq!(
            from_key(b"\xff").err(),
            Some(KeyError::MalformedKey { key_type: KEY_TYPE })
        );
        let fmt = |key_size, version| {
            prost::Message::encode_to_vec(&AesGcmKeyFormat { key_size, version })
        };
        assert!(matches!(
            new_key(&fmt(24, 0)),
            Err(KeyError::WrongKeySize { size: 24, .. })
        ));
        assert!(matches!(
            new_key(&fmt(32, 1)),
            Err(KeyError::UnsupportedVersion { .. })
        ));
        for size in [16, 32] {
            let key = new_key(&fmt(size, 0)).expect("generates");
            let (params, p) = from_key(&key).expect("loads");
            assert_eq!(
                params,
                KeyParams::AesGcm {
                    key_size: size as usize
                }
            );
            check_roundtrip(&*p, 28);
            assert_ne!(*new_key(&fmt(size, 0)).expect("generates"), *key);
        }
    }
}
