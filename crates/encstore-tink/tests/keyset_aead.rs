//! The keyset AEAD: output prefixes, key lookup by prefix, RAW fallback,
//! disabled keys, `UnknownKeyId`, zero-copy `decrypt_owned`, `classify`,
//! thread sharing, and 1,000-key keysets.

mod keyset_util;
mod provider_util;

use std::sync::Arc;

use encstore_core::{Aead, AeadError};
use encstore_tink::{CiphertextKey, KeyStatus, Keyset, OutputPrefix};
use keyset_util::*;

fn keyset(json: &str) -> Keyset {
    Keyset::from_json_insecure(json.as_bytes()).expect("valid keyset")
}

/// Both decrypt paths must agree.
fn decrypt_both(aead: &dyn Aead, ct: &[u8], ad: &[u8]) -> Result<Vec<u8>, AeadError> {
    let borrowed = aead.decrypt(ct, ad);
    let owned = aead.decrypt_owned(ct.to_vec(), ad);
    assert_eq!(borrowed, owned, "decrypt and decrypt_owned disagree");
    borrowed
}

#[test]
fn output_prefixes() {
    let id = 0x0102_0304;
    for (prefix, expected) in [
        ("TINK", vec![0x01, 1, 2, 3, 4]),
        ("LEGACY", vec![0x00, 1, 2, 3, 4]),
        ("CRUNCHY", vec![0x00, 1, 2, 3, 4]),
        ("RAW", vec![]),
    ] {
        let aead = keyset(&keyset_json(id, &[aes_key(id, "ENABLED", prefix, 1)]))
            .aead()
            .expect("aead");
        let ct = aead.encrypt(b"plaintext", b"ad").expect("encrypt");
        assert_eq!(&ct[..expected.len()], &expected[..], "{prefix}");
        // prefix || iv(12) || ct || tag(16)
        assert_eq!(ct.len(), expected.len() + 12 + 9 + 16, "{prefix}");
        assert_eq!(decrypt_both(&aead, &ct, b"ad").expect(prefix), b"plaintext");
    }
    assert_eq!(OutputPrefix::Tink.prefix_bytes(id), [1, 1, 2, 3, 4]);
    assert_eq!(OutputPrefix::Crunchy.prefix_bytes(id), [0, 1, 2, 3, 4]);
    assert!(OutputPrefix::Raw.prefix_bytes(id).is_empty());
}

#[test]
fn decrypts_tink_ciphertexts_made_independently() {
    // A ciphertext assembled by hand, Tink's way, with ring's AES-256-GCM:
    // 0x01 || key id || iv || ct || tag.
    let key = key_bytes(0x5a);
    let id = 3_000_000_000u32;
    let aead = keyset(&keyset_json(id, &[aes_key(id, "ENABLED", "TINK", 0x5a)]))
        .aead()
        .expect("aead");
    let mut ct = vec![0x01];
    ct.extend_from_slice(&id.to_be_bytes());
    ct.extend_from_slice(&ring_aes256_gcm(&key, [9; 12], b"interop", b"name"));
    assert_eq!(
        decrypt_both(&aead, &ct, b"name").expect("decrypt"),
        b"interop"
    );
    // And our ciphertexts open with ring after stripping the prefix.
    let ours = aead.encrypt(b"the other way", b"name").expect("encrypt");
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("key"));
    let nonce = Nonce::try_assume_unique_for_key(&ours[5..17]).expect("nonce");
    let mut body = ours[17..].to_vec();
    let pt = k
        .open_in_place(nonce, Aad::from(b"name"), &mut body)
        .expect("ring opens it");
    assert_eq!(pt, b"the other way");
}

#[test]
fn decrypt_picks_the_key_by_prefix() {
    let mut ks = Keyset::generate(&tpl("AES256_GCM")).expect("generate");
    let old = ks.aead().expect("aead");
    let ct_old = old.encrypt(b"old", b"").expect("encrypt");
    ks.rotate(&tpl("AES128_GCM")).expect("rotate");
    // A third key of another type (the `fips` provider refuses ChaCha20).
    let other = if provider_util::refuses_template("CHACHA20_POLY1305") {
        "AES256_CTR_HMAC_SHA256"
    } else {
        "CHACHA20_POLY1305"
    };
    ks.add_key(&tpl(other)).expect("add");
    let new = ks.aead().expect("aead");
    let ct_new = new.encrypt(b"new", b"").expect("encrypt");
    assert_eq!(&ct_new[1..5], &ks.primary_key_id().to_be_bytes());
    assert_eq!(decrypt_both(&new, &ct_old, b"").expect("old"), b"old");
    assert_eq!(decrypt_both(&new, &ct_new, b"").expect("new"), b"new");
    // The old AEAD does not know the new key.
    assert_eq!(
        decrypt_both(&old, &ct_new, b"").expect_err("unknown"),
        AeadError::UnknownKeyId {
            key_id: ks.primary_key_id()
        }
    );
}

#[test]
fn falls_back_to_raw_keys() {
    // A RAW key 2 and a TINK primary 1; a raw ciphertext of key 2.
    let ks = keyset(&keyset_json(
        1,
        &[
            aes_key(1, "ENABLED", "TINK", 1),
            aes_key(2, "ENABLED", "RAW", 2),
        ],
    ));
    let aead = ks.aead().expect("aead");
    let raw_ct = ring_aes256_gcm(&key_bytes(2), [7; 12], b"raw", b"ad");
    assert_eq!(decrypt_both(&aead, &raw_ct, b"ad").expect("raw"), b"raw");
    // Even when the raw ciphertext happens to start like a prefix (its IV
    // starts with 0x01 and then some key ID).
    let tricky = ring_aes256_gcm(
        &key_bytes(2),
        [1, 0, 0, 0, 1, 5, 5, 5, 5, 5, 5, 5],
        b"raw",
        b"ad",
    );
    assert_eq!(
        decrypt_both(&aead, &tricky, b"ad").expect("raw after prefix try"),
        b"raw"
    );
    // With several RAW keys, each is tried.
    let ks = keyset(&keyset_json(
        1,
        &[
            aes_key(1, "ENABLED", "RAW", 1),
            aes_key(2, "ENABLED", "RAW", 2),
            aes_key(3, "ENABLED", "RAW", 3),
        ],
    ));
    let aead = ks.aead().expect("aead");
    for b in 1..=3u8 {
        let ct = ring_aes256_gcm(&key_bytes(b), [b; 12], &[b; 40], b"");
        assert_eq!(decrypt_both(&aead, &ct, b"").expect("raw key"), [b; 40]);
    }
}

#[test]
fn only_enabled_keys_decrypt() {
    let mut ks = Keyset::generate(&tpl("AES256_GCM")).expect("generate");
    let a = ks.primary_key_id();
    let ct = ks
        .aead()
        .expect("aead")
        .encrypt(b"x", b"")
        .expect("encrypt");
    ks.rotate(&tpl("AES256_GCM")).expect("rotate");
    ks.disable(a).expect("disable");
    let aead = ks.aead().expect("aead");
    assert_eq!(
        decrypt_both(&aead, &ct, b"").expect_err("disabled"),
        AeadError::UnknownKeyId { key_id: a }
    );
    assert_eq!(
        aead.classify(&ct),
        CiphertextKey::Prefixed {
            key_id: a,
            prefix: OutputPrefix::Tink,
            status: Some(KeyStatus::Disabled)
        }
    );
    ks.enable(a).expect("enable");
    assert_eq!(
        decrypt_both(&ks.aead().expect("aead"), &ct, b"").expect("enabled"),
        b"x"
    );
    // Disabled RAW keys are not tried either.
    let raw = keyset(&keyset_json(
        1,
        &[
            aes_key(1, "ENABLED", "TINK", 1),
            aes_key(2, "DISABLED", "RAW", 2),
        ],
    ));
    let raw_ct = ring_aes256_gcm(&key_bytes(2), [7; 12], b"raw", b"");
    assert_eq!(
        decrypt_both(&raw.aead().expect("aead"), &raw_ct, b"").expect_err("disabled raw"),
        AeadError::Authentication
    );
}

#[test]
fn failures_say_nothing_about_keys_except_unknown_ids() {
    let ks = keyset(&keyset_json(
        1,
        &[
            aes_key(1, "ENABLED", "TINK", 1),
            aes_key(2, "ENABLED", "LEGACY", 2),
        ],
    ));
    let aead = ks.aead().expect("aead");
    let ct = aead.encrypt(b"message", b"ad").expect("encrypt");
    // Wrong associated data, tampering, truncation: Authentication.
    assert_eq!(
        decrypt_both(&aead, &ct, b"other").expect_err("ad"),
        AeadError::Authentication
    );
    let mut tampered = ct.clone();
    *tampered.last_mut().expect("byte") ^= 1;
    assert_eq!(
        decrypt_both(&aead, &tampered, b"ad").expect_err("tag"),
        AeadError::Authentication
    );
    assert_eq!(
        decrypt_both(&aead, &ct[..20], b"ad").expect_err("short"),
        AeadError::Authentication
    );
    assert_eq!(
        decrypt_both(&aead, &[], b"ad").expect_err("empty"),
        AeadError::Authentication
    );
    assert_eq!(
        decrypt_both(&aead, &ct[..5], b"ad").expect_err("prefix only"),
        AeadError::Authentication
    );
    // The key ID's prefix kind matters: key 2 is LEGACY (0x00), so 0x01
    // with ID 2 names no key.
    let mut wrong_kind = ct.clone();
    wrong_kind[..5].copy_from_slice(&[0x01, 0, 0, 0, 2]);
    assert_eq!(
        decrypt_both(&aead, &wrong_kind, b"ad").expect_err("kind"),
        AeadError::UnknownKeyId { key_id: 2 }
    );
    // A prefix naming a key this keyset does not have.
    let mut unknown = ct.clone();
    unknown[..5].copy_from_slice(&[0x01, 0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(
        decrypt_both(&aead, &unknown, b"ad").expect_err("unknown"),
        AeadError::UnknownKeyId {
            key_id: 0xdead_beef
        }
    );
    let msg = AeadError::Authentication.to_string();
    assert!(!msg.contains('1') && !msg.contains('2'), "{msg}");
}

#[test]
fn legacy_and_crunchy_prefixed_ciphertexts_decrypt() {
    let ks = keyset(&keyset_json(
        10,
        &[
            aes_key(10, "ENABLED", "TINK", 1),
            aes_key(11, "ENABLED", "LEGACY", 2),
            aes_key(12, "ENABLED", "CRUNCHY", 3),
        ],
    ));
    let aead = ks.aead().expect("aead");
    for (id, b) in [(11u32, 2u8), (12, 3)] {
        let mut ct = vec![0x00];
        ct.extend_from_slice(&id.to_be_bytes());
        ct.extend_from_slice(&ring_aes256_gcm(&key_bytes(b), [b; 12], b"legacy", b"ad"));
        assert_eq!(decrypt_both(&aead, &ct, b"ad").expect("legacy"), b"legacy");
    }
}

#[test]
fn classify_reads_the_prefix() {
    let ks = keyset(&keyset_json(
        1,
        &[
            aes_key(1, "ENABLED", "TINK", 1),
            aes_key(2, "ENABLED", "LEGACY", 2),
            r#"{"status":"DESTROYED","keyId":3,"outputPrefixType":"TINK"}"#.to_owned(),
            aes_key(4, "ENABLED", "RAW", 4),
        ],
    ));
    let aead = ks.aead().expect("aead");
    assert_eq!(aead.primary_key_id(), 1);
    assert_eq!(aead.info().keys.len(), 4);
    let cases = [
        (
            vec![1, 0, 0, 0, 1, 99],
            CiphertextKey::Prefixed {
                key_id: 1,
                prefix: OutputPrefix::Tink,
                status: Some(KeyStatus::Enabled),
            },
        ),
        (
            vec![0, 0, 0, 0, 2],
            CiphertextKey::Prefixed {
                key_id: 2,
                prefix: OutputPrefix::Legacy,
                status: Some(KeyStatus::Enabled),
            },
        ),
        (
            vec![1, 0, 0, 0, 3],
            CiphertextKey::Prefixed {
                key_id: 3,
                prefix: OutputPrefix::Tink,
                status: Some(KeyStatus::Destroyed),
            },
        ),
        (
            vec![1, 0, 0, 0, 2],
            CiphertextKey::Prefixed {
                key_id: 2,
                prefix: OutputPrefix::Tink,
                status: None,
            },
        ),
        (
            vec![1, 0, 0, 0, 4],
            CiphertextKey::Prefixed {
                key_id: 4,
                prefix: OutputPrefix::Tink,
                status: None,
            },
        ),
        (vec![1, 0, 0, 0], CiphertextKey::Unprefixed),
        (vec![2, 0, 0, 0, 1], CiphertextKey::Unprefixed),
        (vec![], CiphertextKey::Unprefixed),
    ];
    for (head, expected) in cases {
        assert_eq!(aead.classify(&head), expected, "{head:?}");
    }
    let ct = aead.encrypt(b"x", b"").expect("encrypt");
    assert_eq!(
        aead.classify(&ct[..5]),
        CiphertextKey::Prefixed {
            key_id: 1,
            prefix: OutputPrefix::Tink,
            status: Some(KeyStatus::Enabled)
        }
    );
}

#[test]
fn decrypt_owned_matches_decrypt_on_every_path() {
    // Single prefixed candidate (in place), prefixed + RAW (copies), RAW
    // only (in place), several RAW keys.
    let ks = keyset(&keyset_json(
        1,
        &[
            aes_key(1, "ENABLED", "TINK", 1),
            aes_key(2, "ENABLED", "RAW", 2),
            aes_key(3, "ENABLED", "RAW", 3),
        ],
    ));
    let single = keyset(&keyset_json(1, &[aes_key(1, "ENABLED", "TINK", 1)]));
    let raw_only = keyset(&keyset_json(2, &[aes_key(2, "ENABLED", "RAW", 2)]));
    for ks in [&ks, &single, &raw_only] {
        let aead = ks.aead().expect("aead");
        for len in [0usize, 1, 15, 16, 17, 1000, 70_000] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let ct = aead.encrypt(&pt, b"ad").expect("encrypt");
            assert_eq!(decrypt_both(&aead, &ct, b"ad").expect("decrypt"), pt);
        }
        let raw_ct = ring_aes256_gcm(&key_bytes(2), [3; 12], b"r", b"");
        let _ = decrypt_both(&aead, &raw_ct, b"");
    }
}

#[test]
fn thousand_keys_decrypt() {
    let mut ks = Keyset::generate(&tpl("AES128_GCM")).expect("generate");
    let mut samples = Vec::new();
    for i in 0..1000 {
        let aead = ks.aead().expect("aead");
        if i % 100 == 0 {
            let pt = format!("message {i}").into_bytes();
            samples.push((aead.encrypt(&pt, b"ad").expect("encrypt"), pt));
        }
        ks.rotate(&tpl("AES128_GCM")).expect("rotate");
    }
    assert_eq!(ks.len(), 1001);
    // Through JSON and back, too.
    let ks = Keyset::from_json_insecure(&ks.to_json_insecure()).expect("reread");
    let aead = ks.aead().expect("aead");
    for (ct, pt) in &samples {
        assert_eq!(&decrypt_both(&aead, ct, b"ad").expect("decrypt"), pt);
    }
    let ct = aead.encrypt(b"newest", b"").expect("encrypt");
    assert_eq!(decrypt_both(&aead, &ct, b"").expect("decrypt"), b"newest");
}

#[test]
fn shared_across_threads_as_arc_dyn_aead() {
    let ks = Keyset::generate(&tpl("AES256_GCM")).expect("generate");
    let aead: Arc<dyn Aead> = Arc::new(ks.aead().expect("aead"));
    let handles: Vec<_> = (0..4u8)
        .map(|t| {
            let aead = Arc::clone(&aead);
            std::thread::spawn(move || {
                for i in 0..50u8 {
                    let pt = [t, i];
                    let ct = aead.encrypt(&pt, &[t]).expect("encrypt");
                    assert_eq!(aead.decrypt_owned(ct, &[t]).expect("decrypt"), pt);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
}

#[test]
fn encryption_is_randomized() {
    let aead = Keyset::generate(&tpl("AES256_GCM"))
        .expect("generate")
        .aead()
        .expect("aead");
    let a = aead.encrypt(b"same", b"").expect("encrypt");
    let b = aead.encrypt(b"same", b"").expect("encrypt");
    assert_ne!(a, b);
    assert_eq!(a[..5], b[..5]);
}

#[test]
fn no_panic_on_garbage_ciphertexts() {
    let ks = keyset(&keyset_json(
        1,
        &[
            aes_key(1, "ENABLED", "TINK", 1),
            aes_key(2, "ENABLED", "LEGACY", 2),
            aes_key(3, "ENABLED", "RAW", 3),
            aes_key(4, "DISABLED", "TINK", 4),
        ],
    ));
    let aead = ks.aead().expect("aead");
    let good = aead.encrypt(b"some plaintext", b"ad").expect("encrypt");
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..3000 {
        let mut ct = match rng.below(3) {
            0 => good.clone(),
            1 => {
                let mut v = vec![rng.below(2) as u8, 0, 0, 0, 1 + rng.below(4) as u8];
                v.extend((0..rng.below(64)).map(|_| rng.next() as u8));
                v
            }
            _ => (0..rng.below(80)).map(|_| rng.next() as u8).collect(),
        };
        if !ct.is_empty() && rng.below(2) == 0 {
            let i = rng.below(ct.len());
            ct[i] ^= 1 << rng.below(8);
        }
        if rng.below(3) == 0 {
            ct.truncate(rng.below(ct.len() + 1));
        }
        let result = decrypt_both(&aead, &ct, b"ad");
        if ct != good {
            assert!(result.is_err(), "forged ciphertext decrypted");
        }
        let _ = aead.classify(&ct);
    }
}

/// `encrypt_in_place` produces exactly what `encrypt` produces (same
/// length and prefix, decryptable by the keyset, bound to the associated
/// data), for every template, and refuses a buffer without headroom.
#[test]
fn encrypt_in_place_matches_encrypt_for_every_template() {
    use encstore_core::{Aead, AeadError};
    use encstore_tink::OutputPrefix;
    for name in encstore_tink::templates::NAMES {
        let template = encstore_tink::templates::by_name(name).unwrap();
        if provider_util::refuses_template(name) {
            provider_util::assert_fips_refusal(encstore_tink::Keyset::generate(&template), name);
            continue;
        }
        let prefix_len = if template.output_prefix() == OutputPrefix::Raw {
            0
        } else {
            5
        };
        let keyset = encstore_tink::Keyset::generate(&template).unwrap();
        let aead = keyset.aead().unwrap();
        for len in [0usize, 1, 17, 1000] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut buf = vec![0xeeu8; aead.encrypt_headroom()];
            buf.extend_from_slice(&pt);
            aead.encrypt_in_place(&mut buf, b"ad").unwrap();
            let reference = aead.encrypt(&pt, b"ad").unwrap();
            assert_eq!(buf.len(), reference.len(), "{name}: same length as encrypt");
            assert_eq!(
                buf[..prefix_len],
                reference[..prefix_len],
                "{name}: same prefix"
            );
            assert_ne!(buf, reference, "{name}: fresh nonce");
            assert_eq!(aead.decrypt(&buf, b"ad").unwrap(), pt, "{name}");
            assert!(aead.decrypt(&buf, b"other").is_err(), "{name}: AD bound");
        }
        let mut short = vec![0u8; aead.encrypt_headroom() - 1];
        assert_eq!(
            aead.encrypt_in_place(&mut short, b""),
            Err(AeadError::NoHeadroom {
                needed: aead.encrypt_headroom()
            })
        );
    }
}
