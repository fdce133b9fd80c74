//! RAW keys in the library: the census attributes prefix-less objects to
//! the RAW key that decrypts them (ENABLED or DISABLED), the retirement
//! check counts them, and migration mode never takes a prefix-less object
//! for plaintext while the keyset holds a RAW key; without RAW keys, a
//! plaintext value that starts like a Tink prefix is still read.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use encstore::{
    EncryptedStorage, ObjectClass, ObjectReencryption, Options, Policy, ReloadableKeyset,
};
use encstore_core::{Aead, Error, MemoryStorage, Storage};
use encstore_tink::templates::by_name;
use encstore_tink::{KeyStatus, Keyset};

fn keyset(template: &str) -> Keyset {
    Keyset::generate(&by_name(template).unwrap()).unwrap()
}

fn store(mem: &Arc<MemoryStorage>, k: &Keyset, allow_plaintext: bool) -> EncryptedStorage {
    EncryptedStorage::with_options(
        mem.clone(),
        Arc::new(ReloadableKeyset::new(k, Policy::default()).unwrap()),
        Options::new().allow_plaintext(allow_plaintext),
    )
}

/// Stores `value` at `key` with keyset `k`, again until the stored
/// object's first byte is neither 0x00 nor 0x01 (a RAW ciphertext starts
/// with its random nonce; this keeps tests that destroy the RAW key from
/// seeing a prefix-like head, which is counted as an unknown key ID).
async fn store_unprefixed(mem: &Arc<MemoryStorage>, k: &Keyset, key: &str, value: &str) {
    loop {
        store(mem, k, false)
            .store(key, Bytes::from(value.to_owned()))
            .await
            .unwrap();
        if mem.load(key).await.unwrap()[0] > 1 {
            return;
        }
    }
}

/// A keyset: RAW key A (primary at first), then RAW key B, then TINK key
/// T promoted. Objects: 3 under A, 2 under B, 4 under T.
async fn three_keys() -> (Arc<MemoryStorage>, Keyset, u32, u32, u32) {
    let mem = Arc::new(MemoryStorage::new());
    let mut k = keyset("AES256_GCM_RAW");
    let a = k.primary_key_id();
    for i in 0..3 {
        store_unprefixed(&mem, &k, &format!("a/{i}"), &format!("a{i}")).await;
    }
    let b = k.add_key(&by_name("AES128_GCM_RAW").unwrap()).unwrap();
    k.promote(b).unwrap();
    for i in 0..2 {
        store_unprefixed(&mem, &k, &format!("b/{i}"), &format!("b{i}")).await;
    }
    let t = k.add_key(&by_name("AES256_GCM").unwrap()).unwrap();
    k.promote(t).unwrap();
    for i in 0..4 {
        store(&mem, &k, false)
            .store(&format!("t/{i}"), Bytes::from(format!("t{i}")))
            .await
            .unwrap();
    }
    (mem, k, a, b, t)
}

#[tokio::test]
async fn census_counts_each_raw_key_by_id_in_any_status_with_material() {
    let (mem, mut k, a, b, t) = three_keys().await;
    let c = store(&mem, &k, false).census("").await.unwrap();
    assert_eq!(c.total, 9);
    assert_eq!(c.objects_under(a), 3);
    assert_eq!(c.objects_under(b), 2);
    assert_eq!(c.objects_under(t), 4);
    assert_eq!(c.raw, 5);
    assert_eq!(c.plaintext, 0);
    assert_eq!(c.prefix_less_unattributed, 0);
    assert_eq!(c.not_under_primary(), 5);

    // Disabled, A keeps its material: still found, and the retirement
    // check counts it.
    k.disable(a).unwrap();
    let s = store(&mem, &k, false);
    let check = s.objects_under(a).await.unwrap();
    assert_eq!((check.objects, check.checked), (3, 9));
    assert_eq!(s.census("").await.unwrap().objects_under(a), 3);

    // Destroyed, A's objects can no longer be attributed: they are counted
    // apart, never as plaintext.
    k.destroy(a).unwrap();
    let c = store(&mem, &k, false).census("").await.unwrap();
    assert_eq!(c.objects_under(a), 0);
    assert_eq!(c.objects_under(b), 2);
    assert_eq!(c.prefix_less_unattributed, 3);
    assert_eq!(c.plaintext, 0);
    // Deleted too: the keyset still holds RAW key B.
    k.delete(a).unwrap();
    let c = store(&mem, &k, false).census("").await.unwrap();
    assert_eq!(c.prefix_less_unattributed, 3);
    assert_eq!(c.plaintext, 0);
}

/// A RAW ciphertext's nonce starts with 0x00 or 0x01 one time in 128: it
/// then looks like a Tink prefix naming an unknown key ID, and must still
/// be attributed to its RAW key.
#[tokio::test]
async fn raw_ciphertext_that_looks_prefixed_is_attributed() {
    let k = keyset("AES256_GCM_RAW");
    let id = k.primary_key_id();
    let aead = k.aead().unwrap();
    let mem = Arc::new(MemoryStorage::new());
    let mut found = 0;
    for i in 0..5000 {
        let key = format!("o/{i}");
        let ct = aead.encrypt(b"v", key.as_bytes()).unwrap();
        if ct[0] <= 1 {
            mem.store(&key, Bytes::from(ct)).await.unwrap();
            found += 1;
            if found == 3 {
                break;
            }
        }
    }
    assert_eq!(found, 3);
    let s = store(&mem, &k, false);
    let c = s.census("").await.unwrap();
    assert_eq!(c.objects_under(id), 3, "{c:?}");
    assert_eq!(c.unknown_key, 0);
    assert_eq!(s.objects_under(id).await.unwrap().objects, 3);
}

#[tokio::test]
async fn unknown_key_ids_are_listed() {
    let mem = Arc::new(MemoryStorage::new());
    let other = keyset("AES256_GCM");
    store(&mem, &other, false)
        .store("x", Bytes::from_static(b"v"))
        .await
        .unwrap();
    let c = store(&mem, &keyset("AES256_GCM"), false)
        .census("")
        .await
        .unwrap();
    assert_eq!(c.unknown_key, 1);
    assert_eq!(
        c.unknown_key_ids.get(&other.primary_key_id()).copied(),
        Some(1)
    );
}

#[tokio::test]
async fn migration_mode_never_takes_a_prefix_less_object_for_plaintext_with_raw_keys() {
    let (mem, mut k, a, _, _) = three_keys().await;
    k.destroy(a).unwrap();
    let migrating = store(&mem, &k, true);
    // The object under the destroyed RAW key is not handed out as a secret.
    assert!(matches!(
        migrating.load("a/0").await,
        Err(Error::Authentication { .. })
    ));
    assert!(migrating.reencrypt_one("a/0").await.is_err());
    let before = mem.load("a/0").await.unwrap();
    assert_eq!(mem.load("a/0").await.unwrap(), before);
    assert_eq!(migrating.metrics().snapshot().plaintext_reads, 0);
    // Real plaintext is refused too while a RAW key is held (even destroyed).
    mem.store("legacy", Bytes::from_static(b"plain"))
        .await
        .unwrap();
    assert!(migrating.load("legacy").await.is_err());
    let snap = migrating.keyset().snapshot();
    let ad = migrating.associated_data("legacy");
    assert_eq!(
        snap.classify_object(b"plain", &ad),
        ObjectClass::PrefixLessUnattributed
    );
    assert!(snap.holds_raw_keys());
    // Objects under the live RAW key B still read and rewrap.
    assert_eq!(&migrating.load("b/1").await.unwrap()[..], b"b1");
    assert!(matches!(
        migrating.reencrypt_one("b/1").await.unwrap(),
        ObjectReencryption::Reencrypted { .. }
    ));
}

#[tokio::test]
async fn migration_mode_reads_plaintext_that_starts_like_a_prefix() {
    let k = keyset("AES256_GCM");
    let mem = Arc::new(MemoryStorage::new());
    let values: [&[u8]; 3] = [
        b"\x01\x02\x03\x04\x05 starts like a TINK prefix",
        b"\x00\xff\xff\xff\xff starts like a LEGACY prefix",
        b"\x01\x00\x00\x00\x00",
    ];
    for (i, v) in values.iter().enumerate() {
        mem.store(&format!("p/{i}"), Bytes::copy_from_slice(v))
            .await
            .unwrap();
    }
    let strict = store(&mem, &k, false);
    let migrating = store(&mem, &k, true);
    for (i, v) in values.iter().enumerate() {
        let key = format!("p/{i}");
        assert!(strict.load(&key).await.is_err());
        assert_eq!(&migrating.load(&key).await.unwrap()[..], *v);
        assert!(matches!(
            migrating.reencrypt_one(&key).await.unwrap(),
            ObjectReencryption::Reencrypted { from: None, .. }
        ));
        assert_eq!(&strict.load(&key).await.unwrap()[..], *v);
    }
    // A prefix naming a key of the keyset is ciphertext: a tampered object
    // is not taken for plaintext.
    let mut ct = mem.load("p/0").await.unwrap().to_vec();
    let last = ct.len() - 1;
    ct[last] ^= 1;
    mem.store("p/0", Bytes::from(ct)).await.unwrap();
    assert!(matches!(
        migrating.load("p/0").await,
        Err(Error::Authentication { .. })
    ));
}

#[test]
fn snapshot_classifies_whole_objects() {
    let mut k = keyset("AES256_GCM_RAW");
    let raw = k.primary_key_id();
    let raw_ct = loop {
        let ct = k.aead().unwrap().encrypt(b"v", b"ad").unwrap();
        if ct[0] > 1 {
            break ct;
        }
    };
    let t = k.add_key(&by_name("AES256_GCM").unwrap()).unwrap();
    k.promote(t).unwrap();
    k.disable(raw).unwrap();
    let snap = ReloadableKeyset::new(&k, Policy::default())
        .unwrap()
        .snapshot();
    assert!(snap.can_attribute_raw());
    assert_eq!(snap.raw_key_ids(), vec![raw]);
    assert_eq!(
        snap.classify_object(&raw_ct, b"ad"),
        ObjectClass::Key {
            key_id: raw,
            status: KeyStatus::Disabled,
            raw: true
        }
    );
    // Wrong associated data: not attributed.
    assert_eq!(
        snap.classify_object(&raw_ct, b"other"),
        ObjectClass::PrefixLessUnattributed
    );
    let t_ct = k.aead().unwrap().encrypt(b"v", b"ad").unwrap();
    assert!(matches!(
        snap.classify_object(&t_ct, b"ad"),
        ObjectClass::Key { key_id, raw: false, .. } if key_id == t
    ));
}
