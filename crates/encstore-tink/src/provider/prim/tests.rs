//! Unit tests of the provider primitives: AES-CTR, HMAC and the AEADs against known answers and across providers.

use super::*;
use crate::provider::{CryptoProvider, Provider};

fn providers() -> Vec<&'static CryptoProvider> {
    Provider::compiled()
        .iter()
        .map(|p| CryptoProvider::get(*p).expect("compiled"))
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

/// RFC 5869 test cases 1 (SHA-256) and 4 (SHA-1), and RFC 4231 test
/// case 2 (HMAC-SHA-224/256/384/512): every provider gives the same
/// bytes.
#[test]
fn hkdf_and_hmac_known_answers_under_every_provider() {
    for p in providers() {
        let salt = hex("000102030405060708090a0b0c");
        let info = hex("f0f1f2f3f4f5f6f7f8f9");
        let mut okm = [0u8; 42];
        p.hkdf(HashType::Sha256, &[0x0b; 22], &salt, &info, &mut okm)
            .expect("hkdf");
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
            "{p:?}"
        );
        p.hkdf(HashType::Sha1, &[0x0b; 11], &salt, &info, &mut okm)
            .expect("hkdf");
        assert_eq!(
            hex::encode(okm),
            "085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2c22e422478d305f3f896",
            "{p:?}"
        );
        let data = b"what do ya want for nothing?";
        for (hash, expected) in [
            (
                HashType::Sha224,
                "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
            ),
            (
                HashType::Sha256,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                HashType::Sha384,
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
            ),
            (
                HashType::Sha512,
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
        ] {
            let t = p.hmac(hash, b"Jefe").mac(&[&data[..10], &data[10..]]);
            assert_eq!(hex::encode(&t.0[..t.1]), expected, "{p:?} {hash:?}");
        }
    }
}

/// NIST SP 800-38A F.5.1 (CTR-AES128.Encrypt), and a counter that
/// carries across all 128 bits: every provider agrees with RustCrypto.
#[test]
fn aes_ctr_matches_sp800_38a_and_carries_128_bits() {
    let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
    let iv: [u8; 16] = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
        .try_into()
        .expect("16");
    let pt = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
    let ct = hex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff");
    let reference = RcCtr::new(&key).expect("key");
    for p in providers() {
        let k = p.aes_ctr(&key).expect("key");
        let mut d = pt.clone();
        k.apply(&iv, &mut d);
        assert_eq!(d, ct, "{p:?}");
        for start in [[0xff; 16], {
            let mut b = [0u8; 16];
            b[8..].copy_from_slice(&[0xff; 8]);
            b
        }] {
            let mut a = vec![0x5a; 1000];
            let mut b = a.clone();
            k.apply(&start, &mut a);
            reference.apply(&start, &mut b);
            assert_eq!(a, b, "{p:?}");
        }
        assert!(p.aes_ctr(&[0; 24]).is_none());
    }
}

/// A caller-nonce AEAD key and a random-nonce key of every provider
/// open each other's AES-GCM ciphertexts; tampering fails.
#[test]
fn aead_keys_interoperate_across_providers() {
    let key = [7u8; 32];
    let all = providers();
    for p in &all {
        let rk = p.random_nonce_key(AeadAlg::Aes256Gcm, &key).expect("key");
        let mut data = b"some plaintext".to_vec();
        let (nonce, tag) = rk.seal(b"ad", &mut data).expect("seal");
        data.extend_from_slice(&tag);
        for q in &all {
            let k = q.aead_key(AeadAlg::Aes256Gcm, &key).expect("key");
            let mut buf = b"xx".to_vec();
            buf.extend_from_slice(&data);
            let n = k.open_within(nonce, b"ad", &mut buf, 2).expect("opens");
            assert_eq!(&buf[..n], b"some plaintext");
            let mut bad = buf.clone();
            bad.truncate(0);
            bad.extend_from_slice(&data);
            bad[0] ^= 1;
            assert!(k.open_within(nonce, b"ad", &mut bad, 0).is_err());
            let mut buf = b"yyy".to_vec();
            buf.extend_from_slice(&data);
            let n = rk.open_within(nonce, b"ad", &mut buf, 3).expect("opens");
            assert_eq!(&buf[..n], b"some plaintext");
            assert!(rk.open_within(nonce, b"ad", &mut [0u8; 15], 0).is_err());
        }
    }
}

/// Random bytes from every provider's sources are fresh.
#[test]
fn randomness_is_fresh_under_every_provider() {
    for p in providers() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        p.fill_nonce(&mut a).expect("nonce");
        p.fill_nonce(&mut b).expect("nonce");
        assert_ne!(a, b);
        p.fill_secret(&mut a).expect("secret");
        p.fill_secret(&mut b).expect("secret");
        assert_ne!(a, b);
        assert_ne!(p.random_u32(), p.random_u32());
    }
}
