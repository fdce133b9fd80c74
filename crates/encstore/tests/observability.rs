//! Tracing events name key IDs and error kinds, never plaintext or key
//! material; counters count per key ID.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use encstore::{EncryptedStorage, Policy, ReloadableKeyset};
use encstore_core::{MemoryStorage, Storage};
use encstore_tink::Keyset;
use encstore_tink::templates::by_name;

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn events_carry_key_ids_and_never_secrets() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let k0 = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    let keys = Arc::new(ReloadableKeyset::new(&k0, Policy::default()).unwrap());
    let mem = Arc::new(MemoryStorage::new());
    let store = EncryptedStorage::new(mem.clone(), Arc::clone(&keys));
    let secret = "PLAINTEXT-SENTINEL-4411";
    store.store("a", Bytes::from(secret)).await.unwrap();
    assert_eq!(store.load("a").await.unwrap(), Bytes::from(secret));
    // A failure, a reload and a policy refusal.
    let mut ct = mem.load("a").await.unwrap().to_vec();
    ct[20] ^= 1;
    mem.store("a", Bytes::from(ct)).await.unwrap();
    assert!(store.load("a").await.is_err());
    let mut k1 = k0.clone();
    k1.rotate(&by_name("AES256_GCM").unwrap()).unwrap();
    keys.replace(&k1).unwrap();
    let chacha = Keyset::generate(&by_name("CHACHA20_POLY1305").unwrap()).unwrap();
    assert!(ReloadableKeyset::new(&chacha, Policy::fips()).is_err());

    let log = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let id0 = k0.primary_key_id().to_string();
    assert!(
        log.contains("encrypted") && log.contains(&format!("key_id={id0}")),
        "{log}"
    );
    assert!(log.contains("decrypted"), "{log}");
    assert!(log.contains("kind=\"authentication\""), "{log}");
    assert!(log.contains("keyset reloaded"), "{log}");
    assert!(log.contains("keyset refused by policy"), "{log}");
    assert!(
        log.contains(&format!("key_id={}", chacha.primary_key_id())),
        "{log}"
    );
    assert!(!log.contains(secret), "plaintext in the log: {log}");
    for ks in [&k0, &k1, &chacha] {
        let json: serde_json::Value = serde_json::from_slice(&ks.to_json_insecure()).unwrap();
        for key in json["key"].as_array().unwrap() {
            let value = key["keyData"]["value"].as_str().unwrap();
            assert!(!log.contains(value), "key material in the log");
        }
    }

    let m = store.metrics().snapshot();
    assert_eq!(m.encrypted_by_key_id.get(&k0.primary_key_id()), Some(&1));
    assert_eq!(m.decrypted_by_key_id.get(&k0.primary_key_id()), Some(&1));
    assert_eq!(m.failures.get("authentication"), Some(&1));
    assert_eq!(m.reloads, 1);
}
