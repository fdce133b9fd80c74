//! What the library tells an operator: an object under a key the keyset
//! holds but not ENABLED is reported as such (with what to do), the "newer
//! keyset?" hint is kept for key IDs the keyset does not have, a RAW
//! primary is warned about once per loaded keyset, and long key names are
//! shortened in error messages.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use encstore::{EncryptedStorage, Policy, ReloadableKeyset};
use encstore_core::{Error, ErrorKind, MemoryStorage, Storage};
use encstore_tink::Keyset;
use encstore_tink::templates::by_name;

fn keyset(template: &str) -> Keyset {
    Keyset::generate(&by_name(template).unwrap()).unwrap()
}

fn store(mem: &Arc<MemoryStorage>, k: &Keyset) -> EncryptedStorage {
    EncryptedStorage::new(
        mem.clone(),
        Arc::new(ReloadableKeyset::new(k, Policy::default()).unwrap()),
    )
}

/// A keyset whose first key wrote "k", then a second key promoted; returns
/// (keyset, first key ID, memory store).
async fn rotated() -> (Keyset, u32, Arc<MemoryStorage>) {
    let mut k = keyset("AES256_GCM");
    let old = k.primary_key_id();
    let mem = Arc::new(MemoryStorage::new());
    store(&mem, &k)
        .store("certs/a.pem", Bytes::from_static(b"v"))
        .await
        .unwrap();
    let new = k.add_key(&by_name("AES128_GCM").unwrap()).unwrap();
    k.promote(new).unwrap();
    (k, old, mem)
}

#[tokio::test]
async fn an_object_under_a_disabled_key_says_disabled_and_how_to_enable_it() {
    let (mut k, old, mem) = rotated().await;
    k.disable(old).unwrap();
    let s = store(&mem, &k);
    let err = s.load("certs/a.pem").await.unwrap_err();
    match &err {
        Error::KeyNotEnabled {
            key,
            key_id,
            status,
        } => {
            assert_eq!(key, "certs/a.pem");
            assert_eq!(*key_id, old);
            assert_eq!(*status, "DISABLED");
        }
        other => panic!("expected KeyNotEnabled, got {other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::KeyNotEnabled);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("key {old}, which is DISABLED in this keyset")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("encstore enable-key --key-id {old}")),
        "{msg}"
    );
    assert!(!msg.contains("newer keyset"), "{msg}");
    // reencrypt_one says the same, and leaves the object alone.
    let before = mem.load("certs/a.pem").await.unwrap();
    assert!(matches!(
        s.reencrypt_one("certs/a.pem").await,
        Err(Error::KeyNotEnabled { .. })
    ));
    assert_eq!(mem.load("certs/a.pem").await.unwrap(), before);
    assert_eq!(
        s.metrics().snapshot().failures.get("key_not_enabled"),
        Some(&2)
    );
}

#[tokio::test]
async fn an_object_under_a_destroyed_key_says_its_material_is_gone() {
    let (mut k, old, mem) = rotated().await;
    k.destroy(old).unwrap();
    let err = store(&mem, &k).load("certs/a.pem").await.unwrap_err();
    assert!(
        matches!(err, Error::KeyNotEnabled { status: "DESTROYED", key_id, .. } if key_id == old),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("DESTROYED in this keyset"), "{msg}");
    assert!(msg.contains("key material is gone"), "{msg}");
    assert!(!msg.contains("enable-key"), "{msg}");
    assert!(!msg.contains("newer keyset"), "{msg}");
}

#[tokio::test]
async fn a_key_id_the_keyset_does_not_have_keeps_the_newer_keyset_hint() {
    let (k, old, mem) = rotated().await;
    // A keyset without the writer's key at all.
    let other = keyset("AES256_GCM");
    assert_ne!(other.primary_key_id(), old);
    let err = store(&mem, &other).load("certs/a.pem").await.unwrap_err();
    assert!(
        matches!(err, Error::UnknownKeyId { key_id, .. } if key_id == old),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("does not have"), "{msg}");
    assert!(msg.contains("newer keyset"), "{msg}");
    drop(k);
}

/// Captures what the `tracing` events of `f` print at WARN and above.
fn warnings_of(f: impl FnOnce()) -> String {
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf(Arc::new(Mutex::new(Vec::new())));
    let writer = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(sub, f);
    String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn a_raw_primary_is_warned_about_once_per_loaded_keyset() {
    let k = keyset("AES256_GCM_RAW");
    let id = k.primary_key_id();
    let mem = Arc::new(MemoryStorage::new());
    let logs = warnings_of(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let s = store(&mem, &k);
            for i in 0..5 {
                s.store(&format!("k{i}"), Bytes::from_static(b"v"))
                    .await
                    .unwrap();
            }
            // A reload (a new snapshot) warns again, once.
            s.keyset().replace(&k).unwrap();
            s.store("k9", Bytes::from_static(b"v")).await.unwrap();
        });
    });
    let needle = format!("the primary key {id} is RAW");
    assert_eq!(logs.matches(&needle).count(), 2, "{logs}");
    assert!(logs.contains("do not name their key"), "{logs}");

    // A TINK primary never warns.
    let k = keyset("AES256_GCM");
    let logs = warnings_of(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            store(&mem, &k)
                .store("t", Bytes::from_static(b"v"))
                .await
                .unwrap();
        });
    });
    assert!(!logs.contains("is RAW"), "{logs}");
}

#[tokio::test]
async fn long_key_names_are_shortened_in_errors() {
    let mem = Arc::new(MemoryStorage::new());
    let s = store(&mem, &keyset("AES256_GCM"));
    // Valid but long: 1,000 bytes.
    let long = format!("certs/{}/end.pem", "x".repeat(986));
    assert_eq!(long.len(), 1000);
    let msg = s.load(&long).await.unwrap_err().to_string();
    assert!(msg.len() < 200, "{} bytes: {msg}", msg.len());
    assert!(msg.contains("\"certs/xxxx"), "{msg}");
    assert!(msg.contains("x/end.pem\" (1000 bytes)"), "{msg}");
    // Refused for its length: 100,000 bytes, still one short line.
    let huge = "y".repeat(100_000);
    let msg = s.load(&huge).await.unwrap_err().to_string();
    assert!(msg.len() < 250, "{} bytes: {msg}", msg.len());
    assert!(msg.contains("(100000 bytes)"), "{msg}");
    // Short names are shown whole.
    let msg = s.load("certs/a.pem").await.unwrap_err().to_string();
    assert_eq!(msg, "not found: \"certs/a.pem\"");
}
