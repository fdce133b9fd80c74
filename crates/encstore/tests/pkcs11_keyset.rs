//! EncryptedStorage loading an HSM-wrapped keyset (a Tink `EncryptedKeyset`
//! whose KEK is an AES-256 key inside a real SoftHSM2 token), and reloading
//! it live after a rotation.
//!
//! (Moved here from encstore-pkcs11, so that encstore-pkcs11 need not
//! dev-depend on encstore, which depends on it.)
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use encstore::{EncryptedStorage, KeysetSource, LoadError, Policy, ReloadableKeyset};
use encstore_core::{Kek, MemoryStorage, Storage};
use encstore_pkcs11::Pkcs11Kek;
use encstore_pkcs11::testing::{Hsm, hsm_test};
use encstore_tink::Keyset;
use encstore_tink::KeysetEncoding;
use encstore_tink::templates::by_name;

const AD: &[u8] = b"encstore keyset v1";

fn write_atomic(path: &std::path::Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn encrypted_storage_over_an_hsm_wrapped_keyset_reloads_after_rotation() {
    hsm_test(
        "encrypted_storage_over_an_hsm_wrapped_keyset_reloads_after_rotation",
        |hsm: Hsm| async move {
            let uri = hsm.uri("kek-2026");
            let kek: Arc<dyn Kek> = Arc::new(
                tokio::task::spawn_blocking(move || Pkcs11Kek::create_master_key(&uri))
                    .await
                    .unwrap()
                    .unwrap(),
            );
            let path = hsm.dir.join("keyset.json");
            let k0 = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
            write_atomic(
                &path,
                &k0.write_with_kek(KeysetEncoding::Json, kek.as_ref(), AD)
                    .await
                    .unwrap(),
            );

            // The file is an EncryptedKeyset: keysetInfo in the clear, no key
            // material (the cleartext keyset's key value is nowhere in it).
            let file = std::fs::read_to_string(&path).unwrap();
            let clear: serde_json::Value = serde_json::from_slice(&k0.to_json_insecure()).unwrap();
            let key_value = clear["key"][0]["keyData"]["value"].as_str().unwrap();
            assert!(
                !file.contains(key_value),
                "cleartext key material in the wrapped file"
            );
            let parsed: serde_json::Value = serde_json::from_str(&file).unwrap();
            assert!(parsed.get("key").is_none());
            assert_eq!(parsed["keysetInfo"]["primaryKeyId"], k0.primary_key_id());

            let keys = Arc::new(
                ReloadableKeyset::open(
                    KeysetSource::encrypted(&path, Arc::clone(&kek), AD),
                    Policy::default(),
                )
                .await
                .unwrap(),
            );
            let store = EncryptedStorage::new(Arc::new(MemoryStorage::new()), Arc::clone(&keys));
            store
                .store("certs/a.key", Bytes::from_static(b"alpha"))
                .await
                .unwrap();

            // Rotate (add, then promote) and re-wrap in the HSM; reload live.
            let mut k1 = k0.clone();
            let new_id = k1.add_key(&by_name("AES256_GCM").unwrap()).unwrap();
            k1.promote(new_id).unwrap();
            write_atomic(
                &path,
                &k1.write_with_kek(KeysetEncoding::Json, kek.as_ref(), AD)
                    .await
                    .unwrap(),
            );
            let report = keys.reload().await.unwrap();
            assert_eq!(report.new_primary_key_id, new_id);
            store
                .store("certs/b.key", Bytes::from_static(b"beta"))
                .await
                .unwrap();
            let raw = store.inner().load("certs/b.key").await.unwrap();
            assert_eq!(&raw[1..5], &new_id.to_be_bytes());
            assert_eq!(&store.load("certs/a.key").await.unwrap()[..], b"alpha");
            assert_eq!(&store.load("certs/b.key").await.unwrap()[..], b"beta");

            // A keyset wrapped with other associated data is refused on
            // reload, and the working keyset stays.
            let mut k2 = k1.clone();
            k2.rotate(&by_name("AES256_GCM").unwrap()).unwrap();
            write_atomic(
                &path,
                &k2.write_with_kek(KeysetEncoding::Json, kek.as_ref(), b"other")
                    .await
                    .unwrap(),
            );
            let err = keys.reload().await.unwrap_err();
            assert!(matches!(err, LoadError::Keyset(_)), "{err:?}");
            assert_eq!(keys.snapshot().primary_key_id(), new_id);
            assert_eq!(&store.load("certs/b.key").await.unwrap()[..], b"beta");
            assert_eq!(keys.metrics().snapshot().reload_failures, 1);

            // A different HSM key cannot open the keyset.
            let uri2 = hsm.uri("another-kek");
            let other: Arc<dyn Kek> = Arc::new(
                tokio::task::spawn_blocking(move || Pkcs11Kek::create_master_key(&uri2))
                    .await
                    .unwrap()
                    .unwrap(),
            );
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                Keyset::read_with_kek(&bytes, other.as_ref(), b"other")
                    .await
                    .is_err()
            );
        },
    );
}
