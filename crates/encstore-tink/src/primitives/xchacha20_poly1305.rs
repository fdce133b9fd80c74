//! `XChaCha20Poly1305Key`: XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) with
//! a 24-byte random nonce.
//!
//! Per message: the subkey is `HChaCha20(key, nonce[..16])`, and the message
//! is sealed with the provider's ChaCha20-Poly1305 (ring or AWS-LC) under
//! that subkey and the nonce `0⁴ ‖ nonce[16..24]`. A ChaCha20 key is just
//! the 32 key bytes (no schedule), so building one per message is cheap.
//! Refused under `fips`.
//!
//! Tink 1.16 (C++ `XChaCha20Poly1305KeyManager`): key version 0, key 32
//! bytes. Raw ciphertext: `nonce(24) ‖ ct ‖ tag(16)`.

use encstore_core::AeadError;
use tink_proto::{XChaCha20Poly1305Key, XChaCha20Poly1305KeyFormat};
use zeroize::Zeroizing;

use super::nonce_aead::{open_in_place_with_nonce, seal_append_without_nonce};
use super::{
    KeyParams, RawAead, TAG_SIZE, check_32_byte_key_size, check_version, decode, decode_key,
    encode_new_key,
};
use crate::error::KeyError;
use crate::provider::CryptoProvider;
use crate::provider::prim::{AeadAlg, AeadKey, NONCE_LEN};

const KEY_TYPE: &str = "XChaCha20Poly1305Key";
const KEY_SIZE: usize = 32;
const NONCE_SIZE: usize = 24;

/// An XChaCha20-Poly1305 key.
struct XChaCha20Poly1305 {
    /// The key, wiped on drop.
    key: Zeroizing<[u8; KEY_SIZE]>,
    /// Where nonces and the per-message ChaCha20-Poly1305 come from.
    provider: &'static CryptoProvider,
}

impl std::fmt::Debug for XChaCha20Poly1305 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XChaCha20Poly1305")
    }
}

/// HChaCha20 (draft-irtf-cfrg-xchacha-03, section 2.2), from RustCrypto's
/// `chacha20` crate: the per-message subkey, wiped when dropped.
fn hchacha20(key: &[u8; 32], nonce16: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut input = chacha20::cipher::Array::<u8, chacha20::cipher::consts::U16>::default();
    input.copy_from_slice(&nonce16[..16]);
    let mut derived = chacha20::hchacha::<chacha20::R20>(<&chacha20::Key>::from(key), &input);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&derived);
    zeroize::Zeroize::zeroize(&mut derived[..]);
    out
}

impl XChaCha20Poly1305 {
    /// The per-message ChaCha20-Poly1305 key and 12-byte nonce.
    fn subkey(&self, nonce: &[u8; NONCE_SIZE]) -> Result<(AeadKey, [u8; NONCE_LEN]), AeadError> {
        let subkey = hchacha20(&self.key, &nonce[..16]);
        let aead = self
            .provider
            .aead_key(AeadAlg::ChaCha20Poly1305, &subkey[..])
            .ok_or(AeadError::Authentication)?;
        let mut inner_nonce = [0u8; NONCE_LEN];
        inner_nonce[4..].copy_from_slice(&nonce[16..]);
        Ok((aead, inner_nonce))
    }
}

impl RawAead for XChaCha20Poly1305 {
    fn seal_append(&self, pt: &[u8], ad: &[u8], out: &mut Vec<u8>) -> Result<(), AeadError> {
        let mut nonce = [0u8; NONCE_SIZE];
        self.provider.fill_nonce(&mut nonce)?;
        let (aead, inner_nonce) = self.subkey(&nonce)?;
        out.reserve(NONCE_SIZE + pt.len() + TAG_SIZE);
        out.extend_from_slice(&nonce);
        seal_append_without_nonce(&aead, inner_nonce, pt, ad, out)
    }

    fn open_in_place(&self, buf: &mut Vec<u8>, start: usize, ad: &[u8]) -> Result<(), AeadError> {
        if buf.len() < start.saturating_add(NONCE_SIZE + TAG_SIZE) {
            return Err(AeadError::Authentication);
        }
        let mut nonce = [0u8; NONCE_SIZE];
        nonce.copy_from_slice(&buf[start..start + NONCE_SIZE]);
        let (aead, inner_nonce) = self.subkey(&nonce)?;
        open_in_place_with_nonce(&aead, inner_nonce, buf, start + NONCE_SIZE, ad)
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
    let (_, key_bytes) =
        decode_key::<XChaCha20Poly1305Key>(KEY_TYPE, value, check_32_byte_key_size)?;
    let mut key = Zeroizing::new([0u8; KEY_SIZE]);
    key.copy_from_slice(&key_bytes);
    Ok((
        KeyParams::XChaCha20Poly1305,
        Box::new(XChaCha20Poly1305 { key, provider }),
    ))
}

pub(super) fn new_key(
    provider: &CryptoProvider,
    key_format: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let format: XChaCha20Poly1305KeyFormat = decode(KEY_TYPE, key_format)?;
    check_version(KEY_TYPE, format.version)?;
    encode_new_key(provider, KEY_SIZE, |key_value| XChaCha20Poly1305Key {
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
        prost::Message::encode_to_vec(&XChaCha20Poly1305Key {
            version,
            key_value: key.to_vec(),
        })
    }

    fn prim(key: &[u8]) -> Box<dyn RawAead> {
        from_key(&key_proto(key, 0)).expect("valid key").1
    }

    /// Source: draft-irtf-cfrg-xchacha-03, section 2.2.1 (HChaCha20 test
    /// vector).
    #[test]
    fn hchacha20_draft_vector() {
        let mut key = [0u8; 32];
        key.copy_from_slice(&hex(
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ));
        let nonce = hex("000000090000004a0000000031415927");
        assert_eq!(
            hchacha20(&key, &nonce)[..],
            hex("82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")[..]
        );
    }

    /// Source: draft-irtf-cfrg-xchacha-03, appendix A.3.1 (AEAD_XChaCha20_Poly1305).
    #[test]
    fn known_answer_draft() {
        let key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        let nonce = hex("404142434445464748494a4b4c4d4e4f5051525354555657");
        let ad = hex("50515253c0c1c2c3c4c5c6c7");
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let ct = hex(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb\
             731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452\
             2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9\
             21f9664c97637da9768812f615c68b13b52e",
        );
        let tag = hex("c0875924c1c7987947deafd8780acf49");
        let mut wire = nonce.clone();
        wire.extend_from_slice(&ct);
        wire.extend_from_slice(&tag);
        assert_eq!(prim(&key).open(&wire, &ad).expect("decrypts"), pt);
    }

    /// Source: tink-crypto/tink-cc
    /// `tink/aead/internal/testing/xchacha20_poly1305_test_vectors.cc`
    /// (Wycheproof tcId 66, kNoPrefix).
    #[test]
    fn known_answer_tink() {
        let key = hex("2ed460a56867ee1a2877a8f3d2d98fb886cfcc8913e31c3d08f42374ba37ebb1");
        let pt = hex("318cc4bf151c3baaee5a783ec091ab618f2ecacf38c962ba9c32c323696cc94c");
        let ct = hex(
            "0140f2791eb81fd4b69edf2d9ba4b2d62eab1d296741583fd34c1778d105d\
             0e80d429c86b879d52835cf8aebc5a04a9084cff1f9646e040aac8a68605a\
             0567c559442342b764b964",
        );
        assert_eq!(prim(&key).open(&ct, b"").expect("decrypts"), pt);
    }

    #[test]
    fn roundtrip_tamper_wrong_ad() {
        let p = prim(&[3u8; 32]);
        check_roundtrip(&*p, 40);
        check_tamper_and_ad(&*p);
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
        let fmt = |version| prost::Message::encode_to_vec(&XChaCha20Poly1305KeyFormat { version });
        assert!(matches!(
            new_key(&fmt(1)),
            Err(KeyError::UnsupportedVersion { version: 1, .. })
        ));
        let key = new_key(&fmt(0)).expect("generates");
        let (params, p) = from_key(&key).expect("loads");
        assert_eq!(params, KeyParams::XChaCha20Poly1305);
        check_roundtrip(&*p, 40);
    }
}
