//! [`AeadKey::open_to`] (out-of-place open) under every compiled provider.

use super::*;
use crate::provider::{CryptoProvider, Provider};

fn providers() -> Vec<&'static CryptoProvider> {
    Provider::compiled()
        .iter()
        .map(|p| CryptoProvider::get(*p).expect("compiled"))
        .collect()
}

const ALGS: [AeadAlg; 5] = [
    AeadAlg::Aes128Gcm,
    AeadAlg::Aes256Gcm,
    AeadAlg::ChaCha20Poly1305,
    AeadAlg::Aes128GcmSiv,
    AeadAlg::Aes256GcmSiv,
];

fn key_len(alg: AeadAlg) -> usize {
    match alg {
        AeadAlg::Aes128Gcm | AeadAlg::Aes128GcmSiv => 16,
        _ => 32,
    }
}

/// `pt` sealed under `key` (`ct ‖ tag`).
fn sealed(key: &AeadKey, nonce: [u8; NONCE_LEN], aad: &[u8], pt: &[u8]) -> Vec<u8> {
    let mut ct = pt.to_vec();
    let tag = key.seal(nonce, aad, &mut ct).expect("seal");
    ct.extend_from_slice(&tag);
    ct
}

/// Every provider's `open_to` opens what every provider seals (and what
/// ring seals on its own, for AES-256-GCM), into a separate buffer, for
/// sizes around the block and tag sizes; the input is left as it was.
#[test]
fn open_to_decrypts_out_of_place_under_every_provider() {
    let nonce = [9u8; NONCE_LEN];
    let all = providers();
    for alg in ALGS {
        let key_bytes: Vec<u8> = (0..key_len(alg) as u8).collect();
        for size in [0usize, 1, 15, 16, 17, 255, 4096, 65_536 + 3] {
            let pt: Vec<u8> = (0..size).map(|i| (i * 13 % 251) as u8).collect();
            for p in &all {
                let Some(sealer) = p.aead_key(alg, &key_bytes) else {
                    continue;
                };
                let ct = sealed(&sealer, nonce, b"ad", &pt);
                for q in &all {
                    let Some(k) = q.aead_key(alg, &key_bytes) else {
                        continue;
                    };
                    let input = ct.clone();
                    let mut out = vec![0xaa; size];
                    k.open_to(nonce, b"ad", &input, &mut out)
                        .unwrap_or_else(|e| panic!("{p:?} -> {q:?} {alg:?} {size}: {e:?}"));
                    assert_eq!(out, pt, "{p:?} -> {q:?} {alg:?} {size}");
                    assert_eq!(input, ct, "the input is only read");
                }
            }
        }
    }
    // An independent oracle: ring's own AES-256-GCM.
    let ring_key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &[3u8; 32]).expect("key"),
    );
    let mut ct = b"sealed by ring itself".to_vec();
    ring_key
        .seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(b"x"),
            &mut ct,
        )
        .expect("seal");
    for p in &all {
        let k = p.aead_key(AeadAlg::Aes256Gcm, &[3u8; 32]).expect("key");
        let mut out = vec![0u8; ct.len() - TAG_LEN];
        k.open_to(nonce, b"x", &ct, &mut out).expect("opens");
        assert_eq!(out, b"sealed by ring itself", "{p:?}");
    }
}

/// A tampered ciphertext or tag, the wrong nonce or associated data, an
/// input shorter than a tag and an output of the wrong length are refused,
/// and the output then holds zeros only: never unauthenticated plaintext
/// (the contract, whatever the library itself does).
#[test]
fn open_to_refuses_tampering_and_leaves_no_plaintext() {
    let nonce = [5u8; NONCE_LEN];
    for p in providers() {
        for alg in ALGS {
            let Some(k) = p.aead_key(alg, &vec![1u8; key_len(alg)]) else {
                continue;
            };
            let pt = vec![0x42u8; 1000];
            let ct = sealed(&k, nonce, b"ad", &pt);
            let check = |nonce: [u8; NONCE_LEN], aad: &[u8], input: &[u8], out_len: usize| {
                let mut out = vec![0xaa; out_len];
                assert_eq!(
                    k.open_to(nonce, aad, input, &mut out),
                    Err(AeadError::Authentication),
                    "{p:?} {alg:?}"
                );
                assert!(out.iter().all(|&b| b == 0), "{p:?} {alg:?}: out wiped");
            };
            for at in [0, 500, 999, 1000, 1015] {
                let mut bad = ct.clone();
                bad[at] ^= 1;
                check(nonce, b"ad", &bad, 1000);
            }
            let mut other = nonce;
            other[11] ^= 1;
            check(other, b"ad", &ct, 1000);
            check(nonce, b"ae", &ct, 1000);
            check(nonce, b"", &ct, 1000);
            check(nonce, b"ad", &ct, 999);
            check(nonce, b"ad", &ct, 1001);
            check(nonce, b"ad", &ct[..1015], 999);
            check(nonce, b"ad", &ct[..TAG_LEN - 1], 0);
            check(nonce, b"ad", &[], 0);
            // Still opens when nothing was changed.
            let mut out = vec![0u8; 1000];
            k.open_to(nonce, b"ad", &ct, &mut out).expect("opens");
            assert_eq!(out, pt);
        }
    }
}
