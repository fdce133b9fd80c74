//! Streaming keys in keysets: every format, and one primitive per keyset
//! (Google's Tink refuses a keyset that mixes AEAD and streaming keys,
//! "Wrong primitive class", checked with Python Tink 1.16.1).
#![allow(clippy::unwrap_used)]

mod provider_util;

use encstore_tink::error::KeysetError;
use encstore_tink::templates::{self, STREAMING_NAMES};
use encstore_tink::{HashType, KeyParams, Keyset, PrimitiveKind, SegmentLayout};
use encstore_tink::{KeysetEncoding, KeysetProtection};
use prost::Message;

fn tpl(name: &str) -> encstore_tink::KeyTemplate {
    templates::by_name(name).unwrap()
}

#[test]
fn streaming_keysets_round_trip_every_format() {
    let mut ks = Keyset::generate(&tpl("AES128_GCM_HKDF_4KB")).unwrap();
    for name in STREAMING_NAMES {
        ks.add_key(&tpl(name)).unwrap();
    }
    assert_eq!(ks.primitive(), PrimitiveKind::StreamingAead);
    let ct = ks
        .streaming_aead()
        .unwrap()
        .encrypt(b"data", b"ad")
        .unwrap();
    let kek = Keyset::generate(&tpl("AES256_GCM"))
        .unwrap()
        .aead()
        .unwrap();
    let forms = [
        Keyset::from_json_insecure(&ks.to_json_insecure()).unwrap(),
        Keyset::from_binary_insecure(&ks.to_binary_insecure()).unwrap(),
        Keyset::read_as(
            &ks.write(
                KeysetEncoding::Json,
                KeysetProtection::encrypted(&kek, b"x"),
            )
            .unwrap(),
            KeysetEncoding::Json,
            KeysetProtection::encrypted(&kek, b"x"),
        )
        .unwrap(),
        Keyset::read_as(
            &ks.write(
                KeysetEncoding::Binary,
                KeysetProtection::encrypted(&kek, b""),
            )
            .unwrap(),
            KeysetEncoding::Binary,
            KeysetProtection::encrypted(&kek, b""),
        )
        .unwrap(),
    ];
    for k in forms {
        assert_eq!(k.info(), ks.info());
        assert_eq!(
            k.streaming_aead().unwrap().decrypt(&ct, b"ad").unwrap(),
            b"data"
        );
    }
    // Parameters in listings, and the layout from them.
    let info = ks.info();
    let p = info.keys[0].params.clone().unwrap();
    assert_eq!(
        p,
        KeyParams::AesGcmHkdfStreaming {
            key_size: 16,
            derived_key_size: 16,
            hkdf_hash: HashType::Sha256,
            ciphertext_segment_size: 4096,
        }
    );
    assert!(p.is_streaming());
    assert_eq!(
        SegmentLayout::from_params(&p),
        SegmentLayout::new(24, 4096, 16)
    );
    let ctr = info.keys.last().unwrap().params.clone().unwrap();
    assert_eq!(
        ctr,
        KeyParams::AesCtrHmacStreaming {
            key_size: 32,
            derived_key_size: 32,
            hkdf_hash: HashType::Sha256,
            hmac_hash: HashType::Sha256,
            tag_size: 32,
            ciphertext_segment_size: 1 << 20,
        }
    );
    assert_eq!(
        SegmentLayout::from_params(&ctr),
        SegmentLayout::new(40, 1 << 20, 32)
    );
    assert_eq!(
        SegmentLayout::from_params(&KeyParams::AesGcm { key_size: 32 }),
        None
    );
}

#[test]
fn aead_and_streaming_are_never_mixed() {
    let mut aead = Keyset::generate(&tpl("AES256_GCM")).unwrap();
    let mut streaming = Keyset::generate(&tpl("AES256_GCM_HKDF_1MB")).unwrap();
    // Asking a keyset for the other primitive.
    assert_eq!(
        aead.streaming_aead().unwrap_err(),
        KeysetError::WrongPrimitive {
            wanted: PrimitiveKind::StreamingAead,
            found: PrimitiveKind::Aead
        }
    );
    let e = streaming.aead().unwrap_err();
    assert_eq!(
        e,
        KeysetError::WrongPrimitive {
            wanted: PrimitiveKind::Aead,
            found: PrimitiveKind::StreamingAead
        }
    );
    assert_eq!(
        e.to_string(),
        "this keyset holds streaming AEAD keys, not AEAD keys"
    );
    // Adding a key of the other primitive leaves the keyset as it was.
    let before = aead.info();
    let e = aead
        .add_key(&tpl("AES128_CTR_HMAC_SHA256_4KB"))
        .unwrap_err();
    assert_eq!(
        e,
        KeysetError::TemplatePrimitive {
            template: PrimitiveKind::StreamingAead,
            keyset: PrimitiveKind::Aead
        }
    );
    assert_eq!(
        e.to_string(),
        "the template makes streaming AEAD keys, but this keyset holds AEAD keys; a keyset holds the keys of one primitive (Google's Tink refuses a mixed keyset)"
    );
    assert!(aead.rotate(&tpl("AES128_GCM_HKDF_4KB")).is_err());
    assert_eq!(aead.info(), before);
    // An AEAD template the provider allows (`fips` refuses XChaCha20
    // before it looks at the primitive).
    let aead_template = if provider_util::refuses_template("XCHACHA20_POLY1305") {
        "AES256_GCM"
    } else {
        "XCHACHA20_POLY1305"
    };
    assert!(matches!(
        streaming.rotate(&tpl(aead_template)),
        Err(KeysetError::TemplatePrimitive { .. })
    ));
    assert_eq!(streaming.len(), 1);
}

/// A keyset proto with an AES-GCM key (ID 1, primary) and a streaming key
/// (ID 2) of status `status`.
fn mixed(status: tink_proto::KeyStatusType) -> Vec<u8> {
    let aead = Keyset::generate(&tpl("AES128_GCM")).unwrap();
    let streaming = Keyset::generate(&tpl("AES128_GCM_HKDF_4KB")).unwrap();
    let mut a = tink_proto::Keyset::decode(&aead.to_binary_insecure()[..]).unwrap();
    let s = tink_proto::Keyset::decode(&streaming.to_binary_insecure()[..]).unwrap();
    a.key[0].key_id = 1;
    a.primary_key_id = 1;
    let mut k = s.key[0].clone();
    k.key_id = 2;
    k.status = status as i32;
    if status == tink_proto::KeyStatusType::Destroyed {
        // Destroyed keys keep their type URL but no key material.
        if let Some(d) = k.key_data.as_mut() {
            d.value.clear();
        }
    }
    a.key.push(k);
    a.encode_to_vec()
}

#[test]
fn mixed_keysets_are_refused_on_load() {
    use tink_proto::KeyStatusType::*;
    for status in [Enabled, Disabled] {
        let e = Keyset::from_binary_insecure(&mixed(status)).unwrap_err();
        assert_eq!(
            e,
            KeysetError::MixedPrimitives {
                aead_key_id: 1,
                streaming_key_id: 2
            },
            "{status:?}"
        );
        assert!(
            e.to_string()
                .contains("mixes AEAD key 1 and streaming AEAD key 2")
        );
    }
    // A destroyed key has no material: it is not a key of either primitive
    // (Tink accepts this keyset too).
    let ks = Keyset::from_binary_insecure(&mixed(Destroyed)).unwrap();
    assert_eq!(ks.primitive(), PrimitiveKind::Aead);
    assert!(ks.aead().is_ok());
}
