//! Key management with Tink's `KeysetManager` rules, key IDs, and the
//! exact `Debug` output (no key material).

mod keyset_util;
mod provider_util;

use std::collections::HashSet;

use encstore_core::Aead;
use encstore_tink::{KeyStatus, Keyset, KeysetError, OutputPrefix, templates};
use keyset_util::*;

fn status_of(ks: &Keyset, id: u32) -> KeyStatus {
    ks.info()
        .keys
        .iter()
        .find(|k| k.key_id == id)
        .expect("key present")
        .status
}

#[test]
fn generate_makes_one_enabled_primary() {
    let ks = Keyset::generate(&tpl("AES256_GCM")).expect("generate");
    let info = ks.info();
    assert_eq!(info.keys.len(), 1);
    let k = &info.keys[0];
    assert_eq!(k.key_id, ks.primary_key_id());
    assert_ne!(k.key_id, 0);
    assert!(k.primary);
    assert_eq!(k.status, KeyStatus::Enabled);
    assert_eq!(k.output_prefix, OutputPrefix::Tink);
    assert_eq!(k.type_url, AES_GCM_URL);
    let raw = Keyset::generate(&tpl("AES128_GCM_RAW")).expect("generate");
    assert_eq!(raw.info().keys[0].output_prefix, OutputPrefix::Raw);
}

#[test]
fn add_does_not_change_the_primary_and_rotate_does() {
    let mut ks = Keyset::generate(&tpl("AES256_GCM")).expect("generate");
    let first = ks.primary_key_id();
    let added = ks.add_key(&tpl("AES128_GCM")).expect("add");
    assert_eq!(ks.primary_key_id(), first);
    assert_eq!(status_of(&ks, added), KeyStatus::Enabled);
    let rotated = ks.rotate(&tpl("AES256_GCM")).expect("rotate");
    assert_eq!(ks.primary_key_id(), rotated);
    assert_eq!(ks.len(), 3);
    // The order of keys is the order they were added, as in Tink.
    let ids: Vec<u32> = ks.info().keys.iter().map(|k| k.key_id).collect();
    assert_eq!(ids, [first, added, rotated]);
}

#[test]
fn promote_only_enabled_keys() {
    let mut ks = Keyset::generate(&tpl("AES256_GCM")).expect("generate");
    let a = ks.add_key(&tpl("AES256_GCM")).expect("add");
    let b = ks.add_key(&tpl("AES256_GCM")).expect("add");
    ks.disable(a).expect("disable");
    ks.destroy(b).expect("destroy");
    assert_eq!(
        ks.promote(a).expect_err("disabled"),
        KeysetError::KeyNotEnabled {
            key_id: a,
            status: KeyStatus::Disabled
        }
    );
    assert_eq!(
        ks.promote(b).expect_err("destroyed"),
        KeysetError::KeyNotEnabled {
            key_id: b,
            status: KeyStatus::Destroyed
        }
    );
    ks.enable(a).expect("enable");
    ks.promote(a).expect("promote");
    assert_eq!(ks.primary_key_id(), a);
    assert_eq!(
        ks.promote(12345).expect_err("missing"),
        KeysetError::KeyNotFound { key_id: 12345 }
    );
}

#[test]
fn primary_cannot_be_disabled_destroyed_or_deleted() {
    let mut ks = Keyset::generate(&tpl("AES256_GCM")).expect("generate");
    let p = ks.primary_key_id();
    for (op, result) in [
        ("disable", ks.clone().disable(p)),
        ("destroy", ks.clone().destroy(p)),
        ("delete", ks.clone().delete(p)),
    ] {
        assert_eq!(
            result.expect_err(op),
            KeysetError::PrimaryKey {
                key_id: p,
                operation: op
            }
        );
    }
    // Enabling the primary is a no-op that succeeds.
    ks.enable(p).expect("enable primary");
    assert_eq!(status_of(&ks, p), KeyStatus::Enabled);
}

#[test]
fn enable_and_disable() {
    let mut ks = Keyset::generate(&tpl("AES256_GCM")).expect("generate");
    let k = ks.add_key(&tpl("AES256_GCM")).expect("add");
    ks.disable(k).expect("disable");
    assert_eq!(status_of(&ks, k), KeyStatus::Disabled);
    ks.disable(k).expect("disable twice");
    ks.enable(k).expect("enable");
    assert_eq!(status_of(&ks, k), KeyStatus::Enabled);
    for result in [ks.enable(99), ks.disable(99), ks.destroy(99), ks.delete(99)] {
        assert_eq!(
            result.expect_err("missing"),
            KeysetError::KeyNotFound { key_id: 99 }
        );
    }
}

#[test]
fn destroy_drops_material_keeps_id_and_cannot_be_undone() {
    let mut ks = Keyset::generate(&tpl("AES256_GCM")).expect("generate");
    let k = ks.add_key(&tpl("AES256_GCM")).expect("add");
    let before = ks.to_json_insecure().to_vec();
    ks.destroy(k).expect("destroy");
    let info = ks.info();
    let d = info.keys.iter().find(|x| x.key_id == k).expect("kept");
    assert_eq!(d.status, KeyStatus::Destroyed);
    assert_eq!(d.params, None);
    assert_eq!(d.type_url, "");
    // The JSON is Tink Java's for a destroyed key: empty key data.
    let json = String::from_utf8(ks.to_json_insecure().to_vec()).expect("utf8");
    assert!(json.contains(&format!(
        r#"{{"keyData":{{"typeUrl":"","value":"","keyMaterialType":"UNKNOWN_KEYMATERIAL"}},"status":"DESTROYED","keyId":{k},"outputPrefixType":"TINK"}}"#
    )), "{json}");
    assert!(json.len() < before.len());
    // Destroying again is allowed (as in Tink); enabling or disabling not.
    ks.destroy(k).expect("destroy twice");
    assert_eq!(
        ks.enable(k).expect_err("enable destroyed"),
        KeysetError::KeyDestroyed {
            key_id: k,
            operation: "enable"
        }
    );
    assert_eq!(
        ks.disable(k).expect_err("disable destroyed"),
        KeysetError::KeyDestroyed {
            key_id: k,
            operation: "disable"
        }
    );
    // It reads back.
    let back = Keyset::from_json_insecure(json.as_bytes()).expect("read back");
    assert_eq!(back.info(), ks.info());
}

#[test]
fn delete_removes_the_key() {
    let mut ks = Keyset::generate(&tpl("AES256_GCM")).expect("generate");
    let k = ks.add_key(&tpl("AES256_GCM")).expect("add");
    let d = ks.add_key(&tpl("AES256_GCM")).expect("add");
    ks.destroy(d).expect("destroy");
    ks.delete(k).expect("delete");
    ks.delete(d).expect("delete destroyed");
    assert_eq!(ks.len(), 1);
    assert_eq!(
        ks.delete(k).expect_err("gone"),
        KeysetError::KeyNotFound { key_id: k }
    );
}

#[test]
fn key_ids_are_random_nonzero_and_unique() {
    let mut ks = Keyset::generate(&tpl("AES128_GCM_RAW")).expect("generate");
    for _ in 0..500 {
        ks.add_key(&tpl("AES128_GCM_RAW")).expect("add");
    }
    let ids: HashSet<u32> = ks.info().keys.iter().map(|k| k.key_id).collect();
    assert_eq!(ids.len(), 501);
    assert!(!ids.contains(&0));
    // All 32 bits are used, as in Tink: with 501 draws, IDs above 2^31
    // appear (probability of none: 2^-501).
    assert!(ids.iter().any(|&id| id >= 0x8000_0000));
    assert!(ids.iter().any(|&id| id < 0x8000_0000));
}

#[test]
fn every_template_makes_a_working_key() {
    for name in templates::NAMES {
        if provider_util::refuses_template(name) {
            provider_util::assert_fips_refusal(Keyset::generate(&tpl(name)), name);
            continue;
        }
        let ks = Keyset::generate(&tpl(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let aead = ks.aead().expect("aead");
        let ct = aead.encrypt(b"hello", b"ad").expect("encrypt");
        assert_eq!(aead.decrypt(&ct, b"ad").expect(name), b"hello", "{name}");
        let raw = name.ends_with("_RAW") || name.ends_with("_NO_PREFIX");
        assert_eq!(
            ks.info().keys[0].output_prefix == OutputPrefix::Raw,
            raw,
            "{name}"
        );
    }
}

#[test]
fn unknown_template_is_a_typed_error() {
    assert_eq!(
        templates::by_name("AES256_GCM_NOPE").expect_err("unknown"),
        KeysetError::UnknownTemplate {
            name: "AES256_GCM_NOPE".to_owned()
        }
    );
}

#[test]
fn debug_shows_ids_types_and_statuses_only() {
    let json = keyset_json(
        42,
        &[
            aes_key(42, "ENABLED", "TINK", 0xab),
            aes_key(7, "DISABLED", "RAW", 0xcd),
            r#"{"status":"DESTROYED","keyId":9,"outputPrefixType":"LEGACY"}"#.to_owned(),
        ],
    );
    let ks = Keyset::from_json_insecure(json.as_bytes()).expect("read");
    assert_eq!(
        format!("{ks:?}"),
        "Keyset { primary_key_id: 42, keys: [\
         Key { id: 42, type: \"AesGcmKey\", status: Enabled, prefix: Tink }, \
         Key { id: 7, type: \"AesGcmKey\", status: Disabled, prefix: Raw }, \
         Key { id: 9, type: \"\", status: Destroyed, prefix: Legacy }] }"
    );
    let aead = ks.aead().expect("aead");
    assert_eq!(
        format!("{aead:?}"),
        "KeysetAead { primary_key_id: 42, enabled_key_ids: [42] }"
    );
    let pretty = format!("{ks:#?}{aead:#?}");
    for secret in ["abab", "ABAB", "171, 171", "q6ur", "cdcd"] {
        assert!(!pretty.contains(secret), "{secret} in {pretty}");
    }
}

#[test]
fn cleartext_output_is_zeroizing() {
    // The only cleartext writers return Zeroizing buffers.
    let ks = Keyset::generate(&tpl("AES256_GCM")).expect("generate");
    let json: zeroize::Zeroizing<Vec<u8>> = ks.to_json_insecure();
    let bin: zeroize::Zeroizing<Vec<u8>> = ks.to_binary_insecure();
    assert!(!json.is_empty() && !bin.is_empty());
}
