//! EncryptedStorage over the S3 backend, against a real S3 server
//! (SeaweedFS, started by `scripts/seaweedfs.sh`). Skipped with a notice
//! when no server is configured, unless `ENCSTORE_REQUIRE_SERVICES=1`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use encstore::{EncryptedStorage, ObjectReencryption, Policy, ReloadableKeyset};
use encstore_core::conformance::{SuiteOptions, run_all_with};
use encstore_core::{Error, Storage, new_lease_token};
use encstore_objstore::{S3Storage, S3StorageBuilder};
use encstore_tink::Keyset;
use encstore_tink::templates::by_name;

fn s3(test: &str) -> Option<S3Storage> {
    let (endpoint, bucket) = encstore_objstore::testing::server(test)?;
    let prefix = format!(
        "encstore-tests/{test}-{}",
        &new_lease_token().unwrap()[..12]
    );
    Some(
        S3StorageBuilder::from_env(bucket, prefix)
            .endpoint(endpoint)
            .allow_http(true)
            .lease_duration(Duration::from_secs(2))
            .build()
            .unwrap(),
    )
}

fn keyset() -> Keyset {
    Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_storage_over_s3_conforms() {
    let Some(s3) = s3("encrypted_storage_over_s3_conforms") else {
        return;
    };
    // Streamed writes need a streaming keyset (large objects); small
    // values stay one-shot AEAD ciphertexts (default threshold). Both
    // layouts with a small threshold: `large_objects.rs`.
    let streaming = Keyset::generate(&by_name("AES256_GCM_HKDF_1MB").unwrap()).unwrap();
    let keys = Arc::new(
        ReloadableKeyset::new_with_streaming(&keyset(), &streaming, Policy::default()).unwrap(),
    );
    let enc = EncryptedStorage::new(Arc::new(s3), keys);
    run_all_with(Arc::new(enc), SuiteOptions { exact_sizes: false }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_census_and_rewrap_over_s3() {
    let Some(s3) = s3("rotation_census_and_rewrap_over_s3") else {
        return;
    };
    let s3: Arc<dyn Storage> = Arc::new(s3);
    let k0 = keyset();
    let mut k1 = k0.clone();
    let new_id = k1.rotate(&by_name("AES256_GCM").unwrap()).unwrap();
    let old = EncryptedStorage::new(
        Arc::clone(&s3),
        Arc::new(ReloadableKeyset::new(&k0, Policy::default()).unwrap()),
    );
    let new = EncryptedStorage::new(
        Arc::clone(&s3),
        Arc::new(ReloadableKeyset::new(&k1, Policy::default()).unwrap()),
    );
    for i in 0..20 {
        old.store(
            &format!("certs/{i}.pem"),
            Bytes::from(format!("secret {i}")),
        )
        .await
        .unwrap();
    }
    // The stored object is a Tink ciphertext bound to its key name.
    let raw = s3.load("certs/0.pem").await.unwrap();
    assert_eq!(
        k0.aead().unwrap().decrypt(&raw, b"certs/0.pem").unwrap(),
        b"secret 0"
    );
    use encstore_core::Aead;

    let before = new.census("").await.unwrap();
    assert_eq!(before.total, 20);
    assert_eq!(before.by_key_id.get(&k0.primary_key_id()), Some(&20));

    for i in 0..20 {
        let key = format!("certs/{i}.pem");
        assert!(
            matches!(new.reencrypt_one(&key).await.unwrap(), ObjectReencryption::Reencrypted { to, .. } if to == new_id)
        );
    }
    let after = new.census("").await.unwrap();
    assert_eq!(after.by_key_id.get(&new_id), Some(&20));
    assert_eq!(after.not_under_primary(), 0);
    for i in 0..20 {
        assert_eq!(
            new.load(&format!("certs/{i}.pem")).await.unwrap(),
            Bytes::from(format!("secret {i}"))
        );
    }
    // The old keyset lacks the new key: a clear, distinct error.
    assert!(matches!(
        old.load("certs/3.pem").await,
        Err(Error::UnknownKeyId { .. })
    ));
    new.delete("certs").await.unwrap();
}

/// `EncryptedStorage::reencrypt_one` over a server that ignores conditional
/// writes (SeaweedFS behind encstore-objstore's test proxy, which strips
/// `If-Match`/`If-None-Match`) refuses instead of writing, and leaves the
/// object as it was. (Moved here from encstore-objstore, so that
/// encstore-objstore need not dev-depend on encstore.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_over_ignoring_server_refuses() {
    let Some((endpoint, bucket)) =
        encstore_objstore::testing::server("rewrap_over_ignoring_server_refuses")
    else {
        return;
    };
    let prefix = format!(
        "encstore-tests/rewrap-ignoring-{}",
        &new_lease_token().unwrap()[..12]
    );
    let store = |endpoint: &str| -> Arc<dyn Storage> {
        Arc::new(
            S3StorageBuilder::from_env(bucket.clone(), prefix.clone())
                .endpoint(endpoint)
                .allow_http(true)
                .lease_duration(Duration::from_secs(2))
                .build()
                .unwrap(),
        )
    };
    let direct = store(&endpoint);
    let k0 = keyset();
    let mut k1 = k0.clone();
    k1.rotate(&by_name("AES256_GCM").unwrap()).unwrap();
    let old = EncryptedStorage::new(
        Arc::clone(&direct),
        Arc::new(ReloadableKeyset::new(&k0, Policy::default()).unwrap()),
    );
    old.store("certs/a.pem", Bytes::from_static(b"secret"))
        .await
        .unwrap();
    let raw = direct.load("certs/a.pem").await.unwrap();

    let proxy = encstore_objstore::testing::proxy::Proxy::start(&endpoint, true).await;
    let new = EncryptedStorage::new(
        store(&proxy.endpoint),
        Arc::new(ReloadableKeyset::new(&k1, Policy::default()).unwrap()),
    );
    match new.reencrypt_one("certs/a.pem").await {
        Err(e @ Error::Unsupported { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("does not honour conditional writes"), "{msg}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert_eq!(direct.load("certs/a.pem").await.unwrap(), raw, "untouched");
    assert_eq!(&old.load("certs/a.pem").await.unwrap()[..], b"secret");
    direct.delete("certs").await.unwrap();
}
