//! EncryptedStorage: format, errors, rotation, reload, rewrap, census,
//! policy, migration mode and namespaces, over real backends.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use encstore::{
    Census, EncryptedStorage, KeysetSource, LoadError, ObjectReencryption, Options, Policy,
    ReloadableKeyset,
};
use encstore_core::{Aead, Error, MemoryStorage, Storage, Version, Versioned, WriteCondition};
use encstore_tink::templates::by_name;
use encstore_tink::{CryptoProvider, Keyset, Provider};

/// `stat` on an encrypted store reports the ciphertext size.
const ENCRYPTED: encstore_core::conformance::SuiteOptions =
    encstore_core::conformance::SuiteOptions { exact_sizes: false };

fn keyset(template: &str) -> Keyset {
    Keyset::generate(&by_name(template).unwrap()).unwrap()
}

/// Whether the process's crypto provider is `fips` (a build with the
/// `fips` feature), which refuses key types that are not FIPS-approved.
fn fips_provider() -> bool {
    encstore_tink::provider::get_default().unwrap().fips()
}

/// The ring provider, which every build of this crate has (encstore-tink's
/// default feature): under `fips` it makes the non-approved keys that the
/// policy tests need, the `fips` provider having refused them.
fn ring() -> &'static CryptoProvider {
    CryptoProvider::get(Provider::Ring).unwrap()
}

/// `template`'s keyset, even under `fips` (see [`ring`]): there the
/// default provider's refusal, naming the key type, is checked first.
fn keyset_of_any_type(template: &str, key_type: &str) -> Keyset {
    let t = by_name(template).unwrap();
    match Keyset::generate(&t) {
        Ok(k) => {
            assert!(!fips_provider(), "{template}: fips made it");
            k
        }
        Err(e) => {
            assert!(fips_provider(), "{template}: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("{key_type} is not FIPS-approved")),
                "{msg}"
            );
            Keyset::generate_with_provider(&t, ring()).unwrap()
        }
    }
}

fn handle(k: &Keyset) -> Arc<ReloadableKeyset> {
    Arc::new(ReloadableKeyset::new(k, Policy::default()).unwrap())
}

fn over_memory(k: &Keyset) -> (Arc<MemoryStorage>, EncryptedStorage) {
    let inner = Arc::new(MemoryStorage::with_lease(Duration::from_secs(1)).unwrap());
    let enc = EncryptedStorage::new(inner.clone(), handle(k));
    (inner, enc)
}

/// An AEAD keyset and a streaming keyset (streamed writes need one; see
/// `large_objects.rs` for the store without one), default threshold.
fn with_streaming(k: &Keyset) -> Arc<ReloadableKeyset> {
    Arc::new(
        ReloadableKeyset::new_with_streaming(k, &keyset("AES256_GCM_HKDF_1MB"), Policy::default())
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_over_memory() {
    let inner = Arc::new(MemoryStorage::with_lease(Duration::from_secs(1)).unwrap());
    let enc = EncryptedStorage::new(inner, with_streaming(&keyset("AES256_GCM")));
    encstore_core::conformance::run_all_with(Arc::new(enc), ENCRYPTED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_over_fs() {
    let dir = tempfile::tempdir().unwrap();
    let fs = encstore_fs::FsStorage::builder(dir.path())
        .lease(Duration::from_secs(1))
        .build()
        .unwrap();
    let enc = EncryptedStorage::new(Arc::new(fs), with_streaming(&keyset("AES256_GCM")));
    encstore_core::conformance::run_all_with(Arc::new(enc), ENCRYPTED).await;
}

#[tokio::test]
async fn stored_object_is_a_tink_ciphertext_bound_to_the_key_name() {
    let k = keyset("AES256_GCM");
    let (inner, enc) = over_memory(&k);
    enc.store("certs/a.pem", Bytes::from_static(b"secret"))
        .await
        .unwrap();
    let raw = inner.load("certs/a.pem").await.unwrap();
    assert_ne!(&raw[..], b"secret");
    assert_eq!(raw[0], 0x01, "TINK prefix");
    assert_eq!(&raw[1..5], &k.primary_key_id().to_be_bytes());
    // Any Tink implementation decrypts it with the key name as associated data.
    let aead = k.aead().unwrap();
    assert_eq!(aead.decrypt(&raw, b"certs/a.pem").unwrap(), b"secret");
    assert!(aead.decrypt(&raw, b"certs/b.pem").is_err());
    assert_eq!(&enc.load("certs/a.pem").await.unwrap()[..], b"secret");
    // stat reports the ciphertext size: prefix + nonce + plaintext + tag.
    assert_eq!(
        enc.stat("certs/a.pem").await.unwrap().size,
        (5 + 12 + 6 + 16) as u64
    );
}

#[tokio::test]
async fn moved_or_tampered_objects_fail_authentication() {
    let (inner, enc) = over_memory(&keyset("AES128_GCM"));
    enc.store("a", Bytes::from_static(b"value of a"))
        .await
        .unwrap();
    let ct = inner.load("a").await.unwrap();
    inner.store("b", ct.clone()).await.unwrap();
    match enc.load("b").await {
        Err(Error::Authentication { key }) => assert_eq!(key, "b"),
        other => panic!("a moved object must fail authentication, got {other:?}"),
    }
    let mut bad = ct.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    inner.store("a", Bytes::from(bad)).await.unwrap();
    let err = enc.load("a").await.unwrap_err();
    assert!(matches!(err, Error::Authentication { .. }), "{err:?}");
    assert!(err.to_string().contains("tampered"), "{err}");
    // Not found stays distinct.
    assert!(matches!(
        enc.load("nope").await,
        Err(Error::NotFound { .. })
    ));
    let m = enc.metrics().snapshot();
    assert_eq!(m.failures.get("authentication"), Some(&2));
}

#[tokio::test]
async fn data_under_a_newer_key_is_reported_as_unknown_key_id() {
    let old = keyset("AES256_GCM");
    let mut new = old.clone();
    let new_id = new.rotate(&by_name("AES256_GCM").unwrap()).unwrap();
    let inner = Arc::new(MemoryStorage::new());
    let writer = EncryptedStorage::new(inner.clone(), handle(&new));
    let reader = EncryptedStorage::new(inner.clone(), handle(&old));
    writer.store("k", Bytes::from_static(b"v")).await.unwrap();
    match reader.load("k").await {
        Err(Error::UnknownKeyId { key, key_id }) => {
            assert_eq!(key, "k");
            assert_eq!(key_id, new_id);
        }
        other => panic!("expected UnknownKeyId, got {other:?}"),
    }
}

/// The rollout rule of docs/rotation.md: once every process holds the
/// keyset with the new key (step 1), a process still on that keyset reads
/// what a process that already promoted the key (step 2) writes.
#[tokio::test]
async fn rollout_rule_old_keyset_reads_new_writes_after_step_one() {
    let k0 = keyset("AES256_GCM");
    let mut k1 = k0.clone();
    let new_id = k1.add_key(&by_name("AES256_GCM").unwrap()).unwrap();
    assert_eq!(
        k1.primary_key_id(),
        k0.primary_key_id(),
        "add does not promote"
    );
    let mut k2 = k1.clone();
    k2.promote(new_id).unwrap();

    let inner = Arc::new(MemoryStorage::new());
    let promoted = EncryptedStorage::new(inner.clone(), handle(&k2));
    let deployed = EncryptedStorage::new(inner.clone(), handle(&k1));
    let not_deployed = EncryptedStorage::new(inner.clone(), handle(&k0));

    deployed
        .store("old", Bytes::from_static(b"written before promotion"))
        .await
        .unwrap();
    promoted
        .store("new", Bytes::from_static(b"written after promotion"))
        .await
        .unwrap();
    assert_eq!(
        &deployed.load("new").await.unwrap()[..],
        b"written after promotion"
    );
    assert_eq!(
        &promoted.load("old").await.unwrap()[..],
        b"written before promotion"
    );
    // Skipping step 1 is exactly what breaks.
    assert!(matches!(
        not_deployed.load("new").await,
        Err(Error::UnknownKeyId { .. })
    ));
}

fn write_keyset(path: &std::path::Path, k: &Keyset) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &*k.to_json_insecure()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A cleartext AES256_GCM keyset in a temp dir's `keyset.json`, opened as
/// a reloadable keyset.
async fn keyset_file() -> (tempfile::TempDir, Keyset, Arc<ReloadableKeyset>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyset.json");
    let k0 = keyset("AES256_GCM");
    write_keyset(&path, &k0);
    let keys = ReloadableKeyset::open(KeysetSource::cleartext(&path), Policy::default())
        .await
        .unwrap();
    (dir, k0, Arc::new(keys))
}

#[tokio::test]
async fn reload_swaps_keysets_and_keeps_the_old_one_on_failure() {
    let (dir, k0, keys) = keyset_file().await;
    let path = dir.path().join("keyset.json");
    let enc = EncryptedStorage::new(Arc::new(MemoryStorage::new()), Arc::clone(&keys));
    enc.store("before", Bytes::from_static(b"1")).await.unwrap();

    // An operation that took a snapshot keeps it across a reload.
    let held = keys.snapshot();
    let mut k1 = k0.clone();
    let new_id = k1.rotate(&by_name("AES256_GCM").unwrap()).unwrap();
    write_keyset(&path, &k1);
    let rep = keys.reload().await.unwrap();
    assert_eq!(rep.old_primary_key_id, k0.primary_key_id());
    assert_eq!(rep.new_primary_key_id, new_id);
    assert_eq!(
        held.primary_key_id(),
        k0.primary_key_id(),
        "in-flight snapshot unchanged"
    );
    assert_eq!(keys.snapshot().primary_key_id(), new_id);

    enc.store("after", Bytes::from_static(b"2")).await.unwrap();
    let raw = enc.inner().load("after").await.unwrap();
    assert_eq!(
        &raw[1..5],
        &new_id.to_be_bytes(),
        "new writes use the new primary"
    );
    assert_eq!(
        &enc.load("before").await.unwrap()[..],
        b"1",
        "old data still reads"
    );

    // A broken file is refused; the old keyset stays.
    std::fs::write(&path, b"{\"primaryKeyId\": 1, \"key\": [").unwrap();
    let err = keys.reload().await.unwrap_err();
    assert!(matches!(err, LoadError::Keyset(_)), "{err:?}");
    assert_eq!(keys.snapshot().primary_key_id(), new_id);
    assert_eq!(&enc.load("after").await.unwrap()[..], b"2");
    let m = enc.metrics().snapshot();
    assert_eq!((m.reloads, m.reload_failures), (1, 1));
}

#[tokio::test]
async fn watcher_reloads_when_the_file_changes() {
    let (dir, k0, keys) = keyset_file().await;
    let path = dir.path().join("keyset.json");
    let _watch = keys.watch(Duration::from_millis(50));
    let mut k1 = k0.clone();
    // Any other key type (one the fips provider also reads back).
    let other = if fips_provider() {
        "AES128_CTR_HMAC_SHA256"
    } else {
        "CHACHA20_POLY1305"
    };
    let new_id = k1.rotate(&by_name(other).unwrap()).unwrap();
    write_keyset(&path, &k1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while keys.snapshot().primary_key_id() != new_id {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watcher did not reload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A real backend (memory) with arranged timing: when `armed`, a "server"
/// (`server`) writes the key between rewrap's read and its conditional
/// write, deterministically; with `slow_heads`, head reads take 5 ms (so
/// they overlap), count in `peak` how many are in flight at most, and fail
/// for keys under `bad/`.
#[derive(Debug, Default)]
struct Interleave {
    inner: Arc<MemoryStorage>,
    server: Option<EncryptedStorage>,
    armed: std::sync::atomic::AtomicBool,
    slow_heads: bool,
    in_flight: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Storage for Interleave {
    async fn store(&self, key: &str, value: Bytes) -> encstore_core::Result<()> {
        self.inner.store(key, value).await
    }
    async fn store_if(
        &self,
        key: &str,
        value: Bytes,
        condition: &WriteCondition,
    ) -> encstore_core::Result<Version> {
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst)
            && let Some(server) = &self.server
        {
            server
                .store(key, Bytes::from_static(b"the server's newer value"))
                .await?;
        }
        self.inner.store_if(key, value, condition).await
    }
    async fn load_versioned(&self, key: &str) -> encstore_core::Result<Versioned> {
        self.inner.load_versioned(key).await
    }
    async fn load_head(&self, key: &str, len: usize) -> encstore_core::Result<Bytes> {
        if !self.slow_heads {
            return self.inner.load_head(key, len).await;
        }
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.in_flight.fetch_sub(1, SeqCst);
        if key.starts_with("bad/") {
            return Err(Error::backend(
                "test",
                "load_head",
                format!("{key} is unreadable"),
            ));
        }
        self.inner.load_head(key, len).await
    }
    async fn delete(&self, key: &str) -> encstore_core::Result<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str, recursive: bool) -> encstore_core::Result<Vec<String>> {
        self.inner.list(prefix, recursive).await
    }
    async fn stat(&self, key: &str) -> encstore_core::Result<encstore_core::ObjectInfo> {
        self.inner.stat(key).await
    }
    async fn try_lock(&self, name: &str) -> encstore_core::Result<encstore_core::Lease> {
        self.inner.try_lock(name).await
    }
    async fn unlock(&self, lease: encstore_core::Lease) -> encstore_core::Result<()> {
        self.inner.unlock(lease).await
    }
    fn lease_duration(&self) -> Duration {
        self.inner.lease_duration()
    }
}

#[tokio::test]
async fn rewrap_one_reencrypts_and_never_overwrites_a_concurrent_write() {
    let k0 = keyset("AES256_GCM");
    let mut k1 = k0.clone();
    let new_id = k1.rotate(&by_name("AES256_GCM").unwrap()).unwrap();
    let mem = Arc::new(MemoryStorage::new());
    let old = EncryptedStorage::new(mem.clone(), handle(&k0));
    old.store("a", Bytes::from_static(b"alpha")).await.unwrap();
    old.store("b", Bytes::from_static(b"beta")).await.unwrap();

    let server = EncryptedStorage::new(mem.clone(), handle(&k1));
    let inter = Arc::new(Interleave {
        inner: mem.clone(),
        server: Some(server),
        ..Interleave::default()
    });
    let rewrapper = EncryptedStorage::new(inter.clone(), handle(&k1));

    assert_eq!(
        rewrapper.reencrypt_one("a").await.unwrap(),
        ObjectReencryption::Reencrypted {
            from: Some(k0.primary_key_id()),
            to: new_id
        }
    );
    assert_eq!(
        rewrapper.reencrypt_one("a").await.unwrap(),
        ObjectReencryption::AlreadyCurrent
    );
    assert_eq!(&rewrapper.load("a").await.unwrap()[..], b"alpha");

    // The server writes "b" between rewrap's read and its write.
    inter.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let out = rewrapper.reencrypt_one("b").await.unwrap();
    assert_eq!(
        out,
        ObjectReencryption::AlreadyCurrent,
        "the server's write is already current"
    );
    assert_eq!(
        &rewrapper.load("b").await.unwrap()[..],
        b"the server's newer value"
    );
    assert_eq!(
        rewrapper.reencrypt_one("missing").await.unwrap(),
        ObjectReencryption::Deleted
    );
}

#[tokio::test]
async fn census_counts_objects_by_key() {
    let k0 = keyset("AES256_GCM");
    let mut k1 = k0.clone();
    let new_id = k1.rotate(&by_name("AES256_GCM").unwrap()).unwrap();
    let mem = Arc::new(MemoryStorage::new());
    let old = EncryptedStorage::new(mem.clone(), handle(&k0));
    let new = EncryptedStorage::new(mem.clone(), handle(&k1));
    for i in 0..5 {
        old.store(&format!("o/{i}"), Bytes::from(vec![i as u8; 10]))
            .await
            .unwrap();
    }
    for i in 0..3 {
        new.store(&format!("n/{i}"), Bytes::from(vec![i as u8; 10]))
            .await
            .unwrap();
    }
    mem.store(
        "plain/cert.pem",
        Bytes::from_static(b"-----BEGIN CERTIFICATE-----"),
    )
    .await
    .unwrap();
    // Under a key neither keyset has.
    let stranger = EncryptedStorage::new(mem.clone(), handle(&keyset("AES128_GCM")));
    stranger
        .store("x/stranger", Bytes::from_static(b"?"))
        .await
        .unwrap();

    let c: Census = new.census("").await.unwrap();
    assert_eq!(c.total, 10);
    assert_eq!(c.primary_key_id, new_id);
    assert_eq!(c.by_key_id.get(&k0.primary_key_id()), Some(&5));
    assert_eq!(c.by_key_id.get(&new_id), Some(&3));
    assert_eq!(c.plaintext, 1);
    assert_eq!(c.unknown_key, 1);
    assert_eq!(c.not_under_primary(), 7);
    let sub = new.census("o").await.unwrap();
    assert_eq!(sub.total, 5);
}

/// The census reads heads a bounded number at a time (32), several at
/// once, and a failed read ends it with that read's error.
#[tokio::test]
async fn census_reads_heads_with_bounded_concurrency_and_stops_on_a_failed_read() {
    let k = keyset("AES256_GCM");
    let slow = Arc::new(Interleave {
        slow_heads: true,
        ..Interleave::default()
    });
    let store = EncryptedStorage::new(slow.clone(), handle(&k));
    for i in 0..100 {
        store
            .store(&format!("ok/{i:03}"), Bytes::from(vec![1u8; 10]))
            .await
            .unwrap();
    }
    let c = store.census("ok").await.unwrap();
    assert_eq!(c.total, 100);
    assert_eq!(c.objects_under(k.primary_key_id()), 100);
    let peak = slow.peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        peak > 1 && peak <= 32,
        "head reads in flight at most: {peak}"
    );

    store
        .store("bad/050", Bytes::from_static(b"x"))
        .await
        .unwrap();
    let err = store.census("").await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Backend {
                backend: "test",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("bad/050 is unreadable"), "{err}");
}

#[tokio::test]
async fn policy_refuses_keys_outside_it_and_names_them() {
    // (Under the fips provider the key is made by ring: the policy, not
    // the provider, is what this test is about.)
    let chacha = keyset_of_any_type("CHACHA20_POLY1305", "ChaCha20Poly1305Key");
    let err = ReloadableKeyset::new(&chacha, Policy::fips()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LoadError::Policy { .. }), "{err:?}");
    assert!(msg.contains(&chacha.primary_key_id().to_string()), "{msg}");
    assert!(msg.contains("ChaCha20Poly1305Key"), "{msg}");
    assert!(msg.contains("fips"), "{msg}");

    // A policy-compliant keyset loads; a reload to a non-compliant one is
    // refused and the compliant one stays.
    let gcm = keyset("AES256_GCM");
    let keys = ReloadableKeyset::new(&gcm, Policy::fips()).unwrap();
    let mut mixed = if fips_provider() {
        gcm.with_provider(ring()).unwrap()
    } else {
        gcm.clone()
    };
    mixed
        .rotate(&by_name("XCHACHA20_POLY1305").unwrap())
        .unwrap();
    assert!(matches!(
        keys.replace(&mixed),
        Err(LoadError::Policy { .. })
    ));
    assert_eq!(keys.snapshot().primary_key_id(), gcm.primary_key_id());
    assert_eq!(keys.metrics().snapshot().policy_refusals, 1);
}

#[tokio::test]
async fn migration_mode_reads_plaintext_and_rewrap_encrypts_it() {
    let k = keyset("AES256_GCM");
    let mem = Arc::new(MemoryStorage::new());
    mem.store(
        "legacy.pem",
        Bytes::from_static(b"-----BEGIN PRIVATE KEY-----"),
    )
    .await
    .unwrap();

    let strict = EncryptedStorage::new(mem.clone(), handle(&k));
    assert!(matches!(
        strict.load("legacy.pem").await,
        Err(Error::Authentication { .. })
    ));

    let migrating = EncryptedStorage::with_options(
        mem.clone(),
        handle(&k),
        Options::new().allow_plaintext(true),
    );
    assert_eq!(
        &migrating.load("legacy.pem").await.unwrap()[..],
        b"-----BEGIN PRIVATE KEY-----"
    );
    assert_eq!(migrating.metrics().snapshot().plaintext_reads, 1);
    assert_eq!(migrating.census("").await.unwrap().plaintext, 1);
    assert!(matches!(
        migrating.reencrypt_one("legacy.pem").await.unwrap(),
        ObjectReencryption::Reencrypted { from: None, .. }
    ));
    // Now encrypted: the strict store reads it too.
    assert_eq!(
        &strict.load("legacy.pem").await.unwrap()[..],
        b"-----BEGIN PRIVATE KEY-----"
    );
    assert_eq!(migrating.census("").await.unwrap().plaintext, 0);
    // A tampered ciphertext is not mistaken for plaintext in migration mode.
    let mut ct = mem.load("legacy.pem").await.unwrap().to_vec();
    ct[10] ^= 0xff;
    mem.store("legacy.pem", Bytes::from(ct)).await.unwrap();
    assert!(matches!(
        migrating.load("legacy.pem").await,
        Err(Error::Authentication { .. })
    ));
}

#[tokio::test]
async fn namespaces_separate_deployments_sharing_a_keyset() {
    let k = keyset("AES256_GCM");
    let mem = Arc::new(MemoryStorage::new());
    let ns = |n: Option<&str>| {
        EncryptedStorage::with_options(
            mem.clone(),
            handle(&k),
            Options::new().namespace(n.map(|s| s.as_bytes().to_vec())),
        )
    };
    let a = ns(Some("tenant-a"));
    a.store("k", Bytes::from_static(b"v")).await.unwrap();
    assert_eq!(&a.load("k").await.unwrap()[..], b"v");
    assert!(matches!(
        ns(Some("tenant-b")).load("k").await,
        Err(Error::Authentication { .. })
    ));
    assert!(matches!(
        ns(None).load("k").await,
        Err(Error::Authentication { .. })
    ));
    assert_eq!(a.associated_data("k"), b"tenant-a\0k");
    let raw = mem.load("k").await.unwrap();
    assert_eq!(
        k.aead().unwrap().decrypt(&raw, b"tenant-a\0k").unwrap(),
        b"v"
    );
}

#[tokio::test]
async fn debug_output_shows_no_key_material() {
    let k = keyset("AES256_GCM");
    let (_, enc) = over_memory(&k);
    let dbg = format!("{enc:?}");
    assert!(dbg.contains("EncryptedStorage"), "{dbg}");
    assert!(dbg.contains(&k.primary_key_id().to_string()), "{dbg}");
    let json = String::from_utf8(k.to_json_insecure().to_vec()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let value = v["key"][0]["keyData"]["value"].as_str().unwrap();
    assert!(!dbg.contains(value), "key material leaked into Debug");
}
