//! EncryptedStorage with a keyset whose primary is a KMS envelope key: the
//! async keyset AEAD, the census by master-key version and the master-key
//! level rewrap of DEKs. With a master keyset as the KEK (no server), and
//! against the real OpenBao server across a `transit/keys/NAME/rotate`,
//! with a concurrent writer, then `min_decryption_version` raised.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use encstore::open::KekOptions;
use encstore::{
    EncryptedStorage, LoadError, MasterKeyCount, Policy, ReencryptOptions, ReloadableKeyset,
    UriResolver,
};
use encstore_core::{AeadKek, Error, Kek, Storage};
use encstore_fs::FsStorage;
use encstore_tink::envelope::{EnvelopeOptions, KekResolver, split};
use encstore_tink::{Keyset, OutputPrefix, templates};

fn envelope_keyset(uri: &str, prefix: OutputPrefix) -> Keyset {
    let dek = templates::by_name("AES256_GCM").unwrap();
    Keyset::generate(&templates::kms_envelope(uri, &dek, prefix).unwrap()).unwrap()
}

/// The handle of an envelope keyset (a TINK-prefixed primary under master
/// key `uri`), its master keys opened through `resolver`.
async fn open_envelope_keyset(
    uri: &str,
    policy: Policy,
    resolver: impl KekResolver + 'static,
    options: EnvelopeOptions,
) -> Result<ReloadableKeyset, encstore::LoadError> {
    let keyset = envelope_keyset(uri, OutputPrefix::Tink);
    ReloadableKeyset::new_with_master_keys(&keyset, None, policy, Arc::new(resolver), options).await
}

fn fs_store(dir: &std::path::Path) -> Arc<dyn Storage> {
    Arc::new(FsStorage::new(dir).unwrap())
}

/// Every file under `root`, with its bytes.
fn files(root: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// [`files`] but the store's own (`.encstore`: its lock files): the
/// objects, which a failed run must leave as they were.
fn object_files(root: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    files(root)
        .into_iter()
        .filter(|(p, _)| !p.to_string_lossy().contains(".encstore"))
        .collect()
}

/// The DEK ciphertext (payload) of a stored TINK-prefixed envelope object.
fn payload(object: &[u8]) -> Vec<u8> {
    split(&object[5..]).unwrap().1.to_vec()
}

const LOCAL_URI: &str = "hcvault://kms.invalid:8200/transit/keys/local";

async fn local_store(dir: &std::path::Path, prefix: OutputPrefix) -> (EncryptedStorage, Keyset) {
    let master = Keyset::generate(&templates::by_name("AES256_GCM").unwrap()).unwrap();
    let kek: Arc<dyn Kek> = Arc::new(AeadKek(Arc::new(master.aead().unwrap())));
    let resolver: HashMap<String, Arc<dyn Kek>> = [(LOCAL_URI.to_owned(), kek)].into();
    let keyset = envelope_keyset(LOCAL_URI, prefix);
    let keys = ReloadableKeyset::new_with_master_keys(
        &keyset,
        None,
        Policy::default(),
        Arc::new(resolver),
        EnvelopeOptions::default(),
    )
    .await
    .unwrap();
    (EncryptedStorage::new(fs_store(dir), Arc::new(keys)), keyset)
}

#[tokio::test]
async fn an_envelope_primary_stores_loads_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (store, keyset) = local_store(dir.path(), OutputPrefix::Tink).await;
    let id = keyset.primary_key_id();
    for i in 0..10 {
        store
            .store(&format!("o/{i}"), format!("value {i}").into())
            .await
            .unwrap();
    }
    for i in 0..10 {
        assert_eq!(
            &store.load(&format!("o/{i}")).await.unwrap()[..],
            format!("value {i}").as_bytes()
        );
    }
    // The stored object is Tink's envelope ciphertext under the key.
    let raw = store.inner().load("o/0").await.unwrap();
    assert_eq!(raw[0], 1);
    assert_eq!(u32::from_be_bytes(raw[1..5].try_into().unwrap()), id);
    // Bound to its name.
    store.inner().store("moved", raw.clone()).await.unwrap();
    assert!(matches!(
        store.load("moved").await,
        Err(Error::Authentication { .. })
    ));
    store.inner().delete("moved").await.unwrap();
    let census = store.census("").await.unwrap();
    assert_eq!(census.total, 10);
    assert_eq!(census.objects_under(id), 10);
    assert_eq!(census.envelope, 10);
    // A master keyset's ciphertexts name no version.
    assert_eq!(
        census.master_keys,
        vec![MasterKeyCount::new(LOCAL_URI, None, 10)]
    );
    // verify_one and reencrypt_one (already under the primary) work.
    assert!(matches!(
        store.verify_one("o/3").await.unwrap(),
        encstore::ObjectCheck::Verified { key_id, .. } if key_id == id
    ));
    assert_eq!(
        store.reencrypt_one("o/3").await.unwrap(),
        encstore::ObjectReencryption::AlreadyCurrent
    );
}

#[tokio::test]
async fn raw_envelope_keys_are_attributed_by_their_encrypted_dek() {
    let dir = tempfile::tempdir().unwrap();
    let (store, keyset) = local_store(dir.path(), OutputPrefix::Raw).await;
    for i in 0..4 {
        store.store(&format!("r/{i}"), "v".into()).await.unwrap();
    }
    assert_eq!(&store.load("r/2").await.unwrap()[..], b"v");
    assert!(matches!(
        store.verify_one("r/3").await.unwrap(),
        encstore::ObjectCheck::Verified { key_id, .. } if key_id == keyset.primary_key_id()
    ));
    let census = store.census("").await.unwrap();
    assert_eq!(census.objects_under(keyset.primary_key_id()), 4);
    assert_eq!(census.raw, 4);
    assert_eq!(census.envelope, 4);
    assert_eq!(census.prefix_less_unattributed, 0);
}

#[tokio::test]
async fn rotating_from_a_local_key_to_an_envelope_key_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let master = Keyset::generate(&templates::by_name("AES256_GCM").unwrap()).unwrap();
    let kek: Arc<dyn Kek> = Arc::new(AeadKek(Arc::new(master.aead().unwrap())));
    let resolver: Arc<dyn KekResolver> = Arc::new(HashMap::from([(LOCAL_URI.to_owned(), kek)]));
    let mut keyset = Keyset::generate(&templates::by_name("AES128_GCM").unwrap()).unwrap();
    let local = keyset.primary_key_id();
    let keys = Arc::new(
        ReloadableKeyset::new_with_master_keys(
            &keyset,
            None,
            Policy::default(),
            Arc::clone(&resolver),
            EnvelopeOptions::default(),
        )
        .await
        .unwrap(),
    );
    let store = EncryptedStorage::new(fs_store(dir.path()), Arc::clone(&keys));
    store.store("a", "local".into()).await.unwrap();
    let dek = templates::by_name("AES256_GCM").unwrap();
    let env = keyset
        .rotate(&templates::kms_envelope(LOCAL_URI, &dek, OutputPrefix::Tink).unwrap())
        .unwrap();
    keys.prepare_master_keys(&keyset).await.unwrap();
    keys.replace(&keyset).unwrap();
    store.store("b", "envelope".into()).await.unwrap();
    assert_eq!(&store.load("a").await.unwrap()[..], b"local");
    assert_eq!(&store.load("b").await.unwrap()[..], b"envelope");
    // `store rewrap` moves the local object under the envelope primary.
    let s = store
        .reencrypt_all("", &ReencryptOptions::new())
        .await
        .unwrap();
    assert_eq!((s.reencrypted, s.already_current), (1, 1), "{s:?}");
    let census = store.census("").await.unwrap();
    assert_eq!(census.objects_under(env), 2);
    assert_eq!(census.objects_under(local), 0);
    assert_eq!(census.envelope, 2);
    assert_eq!(&store.load("a").await.unwrap()[..], b"local");
}

#[tokio::test]
async fn envelope_keysets_need_a_way_to_open_master_keys_and_the_policy() {
    let keyset = envelope_keyset(LOCAL_URI, OutputPrefix::Tink);
    // The synchronous constructor cannot open a KMS.
    let e = ReloadableKeyset::new(&keyset, Policy::default()).unwrap_err();
    assert!(matches!(e, LoadError::NoMasterKeys(_)), "{e}");
    assert!(e.to_string().contains("new_with_master_keys"), "{e}");
    // An unknown master key: the error names it.
    let empty: Arc<dyn KekResolver> = Arc::new(HashMap::<String, Arc<dyn Kek>>::new());
    let e = ReloadableKeyset::new_with_master_keys(
        &keyset,
        None,
        Policy::default(),
        Arc::clone(&empty),
        EnvelopeOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, LoadError::Envelope(_)), "{e}");
    assert!(e.to_string().contains(LOCAL_URI), "{e}");
    // A policy without the envelope family refuses the key.
    let gcm_only = Policy::from_json(
        r#"{"name":"gcm","allow":[{"key_type":"AesGcmKey"}]}"#,
        "inline",
    )
    .unwrap();
    let e = ReloadableKeyset::new_with_master_keys(
        &keyset,
        None,
        gcm_only,
        empty,
        EnvelopeOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(e.policy_refusal().is_some(), "{e}");
    assert!(e.to_string().contains("KmsEnvelopeAeadKey"), "{e}");
}

#[tokio::test]
async fn a_master_keyset_kek_rewraps_deks_without_touching_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = local_store(dir.path(), OutputPrefix::Tink).await;
    for i in 0..6 {
        store.store(&format!("o/{i}"), "v".into()).await.unwrap();
    }
    let before = store.inner().load("o/1").await.unwrap();
    let s = store
        .rewrap_deks_all("", &ReencryptOptions::new())
        .await
        .unwrap();
    // A KEK without versions: every DEK is unwrapped and wrapped again.
    assert_eq!((s.objects, s.rewrapped), (6, 6), "{s:?}");
    let after = store.inner().load("o/1").await.unwrap();
    assert_ne!(before, after);
    assert_eq!(payload(&before), payload(&after));
    assert_eq!(&before[..5], &after[..5]);
    assert_eq!(&store.load("o/1").await.unwrap()[..], b"v");
}

// ------------------------------------------------------------- OpenBao

mod vault {
    use super::*;
    use encstore_vault::testing::{TestVault, server, unique_name};

    async fn vault_store(v: &TestVault, dir: &std::path::Path, uri: &str) -> EncryptedStorage {
        let keys = open_envelope_keyset(
            uri,
            Policy::fips(),
            UriResolver::with_options(KekOptions::new().vault(v.config())),
            EnvelopeOptions::new().max_concurrent_kms_calls(8),
        )
        .await
        .unwrap();
        EncryptedStorage::new(fs_store(dir), Arc::new(keys))
    }

    fn versions(c: &encstore::Census, uri: &str) -> Vec<(Option<u32>, u64)> {
        c.master_keys
            .iter()
            .map(|m| {
                assert_eq!(m.master_key, uri);
                (m.version, m.objects)
            })
            .collect()
    }

    /// One test's transit key (a fresh one, named after `what`) and a
    /// store in a new directory whose keyset's primary is an envelope key
    /// under it; `None` (the test skips) without a Vault server.
    struct Case {
        v: TestVault,
        name: String,
        uri: String,
        dir: tempfile::TempDir,
        store: EncryptedStorage,
    }

    async fn case(test: &str, what: &str) -> Option<Case> {
        let v = server(test)?;
        let name = unique_name(what);
        v.bao_ok(&["write", "-f", &format!("transit/keys/{name}")]);
        let uri = v.uri(&name);
        let dir = tempfile::tempdir().unwrap();
        let store = vault_store(&v, dir.path(), &uri).await;
        Some(Case {
            v,
            name,
            uri,
            dir,
            store,
        })
    }

    /// Rotates transit key `name`: new wraps use its next version.
    fn rotate(v: &TestVault, name: &str) {
        v.bao_ok(&["write", "-f", &format!("transit/keys/{name}/rotate")]);
    }

    /// Sets transit key `name`'s `min_decryption_version`.
    fn min_decryption_version(v: &TestVault, name: &str, version: u32) {
        v.bao_ok(&[
            "write",
            &format!("transit/keys/{name}/config"),
            &format!("min_decryption_version={version}"),
        ]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn census_and_dek_rewrap_across_a_transit_rotate_with_a_concurrent_writer() {
        let Some(Case {
            v,
            name,
            uri,
            dir: _dir,
            store,
        }) = case(
            "census_and_dek_rewrap_across_a_transit_rotate",
            "envelope-rewrap",
        )
        .await
        else {
            return;
        };
        const N: usize = 60;
        for i in 0..N {
            store
                .store(&format!("o/{i:03}"), format!("v1 {i}").into())
                .await
                .unwrap();
        }
        let c = store.census("").await.unwrap();
        assert_eq!(versions(&c, &uri), vec![(Some(1), N as u64)]);
        let untouched_before = store.inner().load("o/000").await.unwrap();

        rotate(&v, &name);
        store.store("new/a", "after rotate".into()).await.unwrap();
        let c = store.census("").await.unwrap();
        assert_eq!(versions(&c, &uri), vec![(Some(1), N as u64), (Some(2), 1)]);

        // A writer overwrites objects while the rewrap runs.
        let writer_store = store.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop_w = Arc::clone(&stop);
        let writer = tokio::spawn(async move {
            let mut last = HashMap::new();
            let mut round = 0usize;
            while !stop_w.load(std::sync::atomic::Ordering::Relaxed) {
                for i in (1..N).step_by(7) {
                    let key = format!("o/{i:03}");
                    let value = format!("writer {round} {i}");
                    writer_store
                        .store(&key, value.clone().into())
                        .await
                        .unwrap();
                    last.insert(key, value);
                }
                round += 1;
                tokio::task::yield_now().await;
            }
            (last, round)
        });
        let s = store
            .rewrap_deks_all("", &ReencryptOptions::new().concurrency(4))
            .await
            .unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (last, rounds) = writer.await.unwrap();
        assert!(rounds >= 1);
        assert!(s.failures.is_empty(), "{:?}", s.failures);
        assert_eq!(s.objects, N as u64 + 1);
        assert!(s.rewrapped >= 1 && s.already_current >= 1, "{s:?}");
        assert_eq!(s.newest.get(&uri), Some(&Some(2)));

        // Nothing lost: every object holds the last value written.
        for i in 0..N {
            let key = format!("o/{i:03}");
            let want = last.get(&key).cloned().unwrap_or(format!("v1 {i}"));
            assert_eq!(
                &store.load(&key).await.unwrap()[..],
                want.as_bytes(),
                "{key}"
            );
        }
        // The payload of an object no writer touched is byte for byte the
        // same; only its encrypted DEK changed.
        let untouched_after = store.inner().load("o/000").await.unwrap();
        assert_ne!(untouched_before, untouched_after);
        assert_eq!(payload(&untouched_before), payload(&untouched_after));
        assert!(untouched_after[9..].starts_with(b"vault:v2:"));

        let c = store.census("").await.unwrap();
        assert_eq!(versions(&c, &uri), vec![(Some(2), N as u64 + 1)]);
        // A second run has nothing to do.
        let again = store
            .rewrap_deks_all("", &ReencryptOptions::new())
            .await
            .unwrap();
        assert_eq!(again.rewrapped, 0);
        assert_eq!(again.already_current, N as u64 + 1);

        // Raising min_decryption_version leaves everything readable.
        min_decryption_version(&v, &name, 2);
        for i in 0..N {
            store.load(&format!("o/{i:03}")).await.unwrap();
        }
        assert_eq!(&store.load("new/a").await.unwrap()[..], b"after rotate");
    }

    #[tokio::test]
    async fn a_dek_below_min_decryption_version_fails_and_changes_nothing() {
        let Some(Case {
            v,
            name,
            uri,
            dir,
            store,
        }) = case("a_dek_below_min_decryption_version_fails", "envelope-min").await
        else {
            return;
        };
        for i in 0..3 {
            store.store(&format!("o/{i}"), "v".into()).await.unwrap();
        }
        rotate(&v, &name);
        // Raised too early: the v1 DEKs can no longer be unwrapped.
        min_decryption_version(&v, &name, 2);
        let before = object_files(dir.path());
        let e = store.load("o/0").await.unwrap_err();
        assert!(e.to_string().contains("min_decryption_version"), "{e}");
        let s = store
            .rewrap_deks_all("", &ReencryptOptions::new())
            .await
            .unwrap();
        assert_eq!(s.failures.len(), 3, "{s:?}");
        assert_eq!(s.rewrapped, 0);
        assert!(
            s.failures[0]
                .reason
                .to_string()
                .contains("min_decryption_version"),
            "{}",
            s.failures[0].reason
        );
        let after = object_files(dir.path());
        assert_eq!(before, after, "a failed rewrap changed a file");
        // Lowered again, the rewrap finishes and the key can be raised.
        min_decryption_version(&v, &name, 1);
        let s = store
            .rewrap_deks_all("", &ReencryptOptions::new())
            .await
            .unwrap();
        assert_eq!(s.rewrapped, 3, "{s:?}");
        assert_eq!(
            versions(&store.census("").await.unwrap(), &uri),
            vec![(Some(2), 3)]
        );
    }

    #[tokio::test]
    async fn a_wrong_token_fails_the_run_before_anything_is_written() {
        let Some(Case {
            v,
            name,
            uri,
            dir,
            store,
        }) = case("a_wrong_token_fails_the_run", "envelope-token").await
        else {
            return;
        };
        store.store("o", "v".into()).await.unwrap();
        rotate(&v, &name);
        // The same store with a token that cannot use transit.
        let bad = TestVault {
            token: "not-a-token".into(),
            ..v.clone()
        };
        let before = files(dir.path());
        let e = open_envelope_keyset(
            &uri,
            Policy::default(),
            UriResolver::with_options(KekOptions::new().vault(bad.config())),
            EnvelopeOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains(&uri), "{e}");
        assert!(!e.to_string().contains(&v.token), "{e}");
        assert_eq!(before, files(dir.path()));
    }
}

// ------------------------------------------------- bounds on KMS calls

/// A KEK over a master keyset that counts the calls in flight (and the
/// most at once), and can be made to hang.
#[derive(Debug)]
struct Probe {
    inner: AeadKek,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    hang: std::sync::atomic::AtomicBool,
}

impl Probe {
    async fn call<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        if self.hang.load(SeqCst) {
            std::future::pending::<()>().await;
        }
        let r = f.await;
        self.in_flight.fetch_sub(1, SeqCst);
        r
    }
}

#[async_trait::async_trait]
impl Kek for Probe {
    async fn wrap(&self, pt: &[u8], ad: &[u8]) -> Result<Vec<u8>, encstore_core::KekError> {
        self.call(self.inner.wrap(pt, ad)).await
    }
    async fn unwrap(&self, ct: &[u8], ad: &[u8]) -> Result<Vec<u8>, encstore_core::KekError> {
        self.call(self.inner.unwrap(ct, ad)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_calls_are_bounded_in_number_and_time() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let master = Keyset::generate(&templates::by_name("AES256_GCM").unwrap()).unwrap();
    let probe = Arc::new(Probe {
        inner: AeadKek(Arc::new(master.aead().unwrap())),
        in_flight: 0.into(),
        most: 0.into(),
        hang: false.into(),
    });
    let kek: Arc<dyn Kek> = probe.clone();
    let resolver: HashMap<String, Arc<dyn Kek>> = [(LOCAL_URI.to_owned(), kek)].into();
    let keys = open_envelope_keyset(
        LOCAL_URI,
        Policy::default(),
        resolver,
        EnvelopeOptions::new()
            .max_concurrent_kms_calls(3)
            .kms_call_timeout(std::time::Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let store = EncryptedStorage::new(fs_store(dir.path()), Arc::new(keys));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..24 {
        let s = store.clone();
        set.spawn(async move { s.store(&format!("o/{i}"), "v".into()).await });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    let most = probe.most.load(SeqCst);
    assert!(most <= 3, "{most} KMS calls at once");
    assert!(most >= 2, "the writes did not overlap: {most}");

    // A KMS that never answers: each call fails after the timeout, as an
    // unreachable KMS, and a DEK rewrap run stops on it.
    probe.hang.store(true, SeqCst);
    let e = store.load("o/1").await.unwrap_err();
    assert!(
        matches!(&e, Error::Unreachable { backend: "kms", .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("did not answer within 0.3 s"), "{e}");
    let e = store.store("o/new", "v".into()).await.unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    assert!(!store.inner().exists("o/new").await.unwrap());
    let before = object_files(dir.path());
    let r = store.rewrap_deks_all("", &ReencryptOptions::new()).await;
    // Asking for the newest version already times out: nothing starts.
    assert!(
        matches!(
            &r,
            Err(encstore::ReencryptError::Census(Error::Unreachable { .. }))
        ),
        "{r:?}"
    );
    let after = object_files(dir.path());
    assert_eq!(before, after);
}

// ------------------------------------------------- AWS KMS (moto)

#[cfg(feature = "aws-kms")]
mod aws_kms {
    use super::*;
    use encstore_awskms::testing::server;

    #[tokio::test]
    async fn aws_envelope_objects_are_counted_by_key_and_rewrapped_by_unwrap_and_wrap() {
        let Some(kms) = server("aws_envelope_objects_are_counted_by_key") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let keys = open_envelope_keyset(
            &kms.key_uri,
            Policy::fips(),
            UriResolver::with_options(KekOptions::new().aws_kms(kms.config())),
            EnvelopeOptions::default(),
        )
        .await
        .unwrap();
        let store = EncryptedStorage::new(fs_store(dir.path()), Arc::new(keys));
        for i in 0..3 {
            store.store(&format!("a/{i}"), "aws".into()).await.unwrap();
        }
        let c = store.census("").await.unwrap();
        // The key's identity, and no version (AWS names none).
        assert_eq!(
            c.master_keys,
            vec![MasterKeyCount::new(kms.key_uri.clone(), None, 3)]
        );
        let before = store.inner().load("a/0").await.unwrap();
        let s = store
            .rewrap_deks_all("", &ReencryptOptions::new())
            .await
            .unwrap();
        // Without versions, every DEK is unwrapped and wrapped again.
        assert_eq!(s.rewrapped, 3, "{s:?}");
        assert_eq!(s.newest.get(&kms.key_uri), Some(&None));
        let after = store.inner().load("a/0").await.unwrap();
        assert_ne!(before, after);
        assert_eq!(payload(&before), payload(&after));
        for i in 0..3 {
            assert_eq!(&store.load(&format!("a/{i}")).await.unwrap()[..], b"aws");
        }
    }
}

/// A value at or above BLOCKING_THRESHOLD under an envelope key: its AEAD
/// work (and the KMS call with it) runs on the blocking pool, on both
/// runtime flavours; a value below it in place.
async fn large_and_small_values() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = local_store(dir.path(), OutputPrefix::Tink).await;
    let big: Vec<u8> = (0..encstore::BLOCKING_THRESHOLD * 2)
        .map(|i| (i % 251) as u8)
        .collect();
    store.store("big", big.clone().into()).await.unwrap();
    store.store("small", "s".into()).await.unwrap();
    assert_eq!(&store.load("big").await.unwrap()[..], &big[..]);
    assert_eq!(&store.load("small").await.unwrap()[..], b"s");
    assert!(matches!(
        store.verify_one("big").await.unwrap(),
        encstore::ObjectCheck::Verified { size, .. } if size == big.len() as u64
    ));
}

/// A KEK that records the thread of its last call.
#[derive(Debug)]
struct Threads {
    inner: AeadKek,
    last: std::sync::Mutex<Option<std::thread::ThreadId>>,
}

#[async_trait::async_trait]
impl Kek for Threads {
    async fn wrap(&self, pt: &[u8], ad: &[u8]) -> Result<Vec<u8>, encstore_core::KekError> {
        *self.last.lock().unwrap() = Some(std::thread::current().id());
        self.inner.wrap(pt, ad).await
    }
    async fn unwrap(&self, ct: &[u8], ad: &[u8]) -> Result<Vec<u8>, encstore_core::KekError> {
        *self.last.lock().unwrap() = Some(std::thread::current().id());
        self.inner.unwrap(ct, ad).await
    }
}

#[tokio::test]
async fn large_values_on_a_current_thread_runtime() {
    large_and_small_values().await;
    // On this runtime the test's thread is the only async worker: a large
    // value's KMS call (with its AEAD work) runs on another thread, a small
    // one's here.
    let dir = tempfile::tempdir().unwrap();
    let master = Keyset::generate(&templates::by_name("AES256_GCM").unwrap()).unwrap();
    let threads = Arc::new(Threads {
        inner: AeadKek(Arc::new(master.aead().unwrap())),
        last: std::sync::Mutex::new(None),
    });
    let kek: Arc<dyn Kek> = threads.clone();
    let resolver: HashMap<String, Arc<dyn Kek>> = [(LOCAL_URI.to_owned(), kek)].into();
    let keys = open_envelope_keyset(
        LOCAL_URI,
        Policy::default(),
        resolver,
        EnvelopeOptions::default(),
    )
    .await
    .unwrap();
    let store = EncryptedStorage::new(fs_store(dir.path()), Arc::new(keys));
    let here = std::thread::current().id();
    let last = || threads.last.lock().unwrap().unwrap();
    store
        .store("big", vec![7u8; encstore::BLOCKING_THRESHOLD].into())
        .await
        .unwrap();
    assert_ne!(last(), here);
    store.load("big").await.unwrap();
    assert_ne!(last(), here);
    store.store("small", "s".into()).await.unwrap();
    assert_eq!(last(), here);
    store.load("small").await.unwrap();
    assert_eq!(last(), here);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_on_a_multi_thread_runtime() {
    large_and_small_values().await;
}
