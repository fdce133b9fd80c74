//! AEAD work on large values runs on tokio's blocking pool, so other tasks
//! (lock-lease renewal, timers, other requests) keep running meanwhile.
//!
//! On a current-thread runtime, a "ticker" task counts how often it runs.
//! A probe backend records the count at the edges of the AEAD work (when
//! the stored object reaches it, when it hands an object over). If the
//! encryption ran on the runtime's only thread, the ticker cannot have run
//! in between: the count is unchanged. These are progress events, not
//! timings.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use encstore::{
    BLOCKING_THRESHOLD, EncryptedStorage, ObjectReencryption, Policy, ReloadableKeyset,
};
use encstore_core::{
    Lease, MemoryStorage, ObjectInfo, Result, Storage, Version, Versioned, WriteCondition,
};
use encstore_tink::Keyset;
use encstore_tink::templates::by_name;

/// A MemoryStorage that notes the ticker's count at each call.
#[derive(Debug)]
struct Probe {
    inner: MemoryStorage,
    ticks: Arc<AtomicU64>,
    events: Mutex<Vec<(&'static str, u64)>>,
}

impl Probe {
    fn note(&self, what: &'static str) {
        let n = self.ticks.load(Ordering::SeqCst);
        self.events.lock().unwrap().push((what, n));
    }

    fn last(&self, what: &str) -> u64 {
        self.events
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(w, _)| *w == what)
            .map(|(_, n)| *n)
            .unwrap()
    }
}

#[async_trait]
impl Storage for Probe {
    async fn store(&self, key: &str, value: Bytes) -> Result<()> {
        self.note("store");
        self.inner.store(key, value).await
    }
    async fn store_if(
        &self,
        key: &str,
        value: Bytes,
        condition: &WriteCondition,
    ) -> Result<Version> {
        self.note("store_if");
        self.inner.store_if(key, value, condition).await
    }
    async fn load_versioned(&self, key: &str) -> Result<Versioned> {
        let v = self.inner.load_versioned(key).await;
        self.note("load");
        v
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<String>> {
        self.inner.list(prefix, recursive).await
    }
    async fn stat(&self, key: &str) -> Result<ObjectInfo> {
        self.inner.stat(key).await
    }
    async fn try_lock(&self, name: &str) -> Result<Lease> {
        self.inner.try_lock(name).await
    }
    async fn unlock(&self, lease: Lease) -> Result<()> {
        self.inner.unlock(lease).await
    }
    fn lease_duration(&self) -> Duration {
        self.inner.lease_duration()
    }
}

fn setup() -> (Arc<Probe>, EncryptedStorage, Keyset) {
    let k = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    let probe = Arc::new(Probe {
        inner: MemoryStorage::new(),
        ticks: Arc::new(AtomicU64::new(0)),
        events: Mutex::new(Vec::new()),
    });
    let keys = Arc::new(ReloadableKeyset::new(&k, Policy::default()).unwrap());
    let enc = EncryptedStorage::new(probe.clone(), keys);
    (probe, enc, k)
}

/// Starts the ticker: a task that counts and yields, forever.
async fn start_ticker(ticks: Arc<AtomicU64>) {
    tokio::spawn(async move {
        loop {
            ticks.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
        }
    });
    // Let it run once, so it is in the run queue.
    tokio::task::yield_now().await;
}

const BIG: usize = 8 << 20;

/// How many times a ticker check is tried before it fails. Work run on
/// the runtime's own thread fails every attempt (the ticker cannot run in
/// between), so retrying cannot hide it; work on the blocking pool can still
/// miss the ticker once when the OS keeps the runtime's thread off the CPU
/// for the whole of it (two loaded cores), which a retry absorbs.
const ATTEMPTS: usize = 5;

#[tokio::test(flavor = "current_thread")]
async fn other_tasks_run_while_a_large_value_is_encrypted_and_decrypted() {
    let (probe, enc, _) = setup();
    start_ticker(Arc::clone(&probe.ticks)).await;

    let big = Bytes::from(vec![7u8; BIG]);
    let mut encrypted_meanwhile = false;
    for _ in 0..ATTEMPTS {
        let before = probe.ticks.load(Ordering::SeqCst);
        enc.store("big", big.clone()).await.unwrap();
        if probe.last("store") > before {
            encrypted_meanwhile = true;
            break;
        }
    }
    assert!(
        encrypted_meanwhile,
        "the ticker did not run while {BIG} bytes were encrypted ({ATTEMPTS} attempts)"
    );

    let mut decrypted_meanwhile = false;
    for _ in 0..ATTEMPTS {
        assert_eq!(enc.load("big").await.unwrap(), big);
        if probe.ticks.load(Ordering::SeqCst) > probe.last("load") {
            decrypted_meanwhile = true;
            break;
        }
    }
    assert!(
        decrypted_meanwhile,
        "the ticker did not run while {BIG} bytes were decrypted ({ATTEMPTS} attempts)"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn other_tasks_run_during_a_large_rewrap() {
    let (probe, enc, mut k) = setup();
    enc.store("big", Bytes::from(vec![1u8; BIG])).await.unwrap();
    let old = k.primary_key_id();
    let new = k.add_key(&by_name("AES128_GCM").unwrap()).unwrap();
    start_ticker(Arc::clone(&probe.ticks)).await;

    // Between reading the object and writing its new ciphertext, the
    // decryption and re-encryption ran; the ticker ran meanwhile. Each
    // attempt re-encrypts under the other key of the two.
    let mut reencrypted_meanwhile = false;
    for attempt in 0..ATTEMPTS {
        let target = if attempt % 2 == 0 { new } else { old };
        k.promote(target).unwrap();
        enc.keyset().replace(&k).unwrap();
        let outcome = enc.reencrypt_one("big").await.unwrap();
        assert!(matches!(outcome, ObjectReencryption::Reencrypted { to, .. } if to == target));
        if probe.last("store_if") > probe.last("load") {
            reencrypted_meanwhile = true;
            break;
        }
    }
    assert!(
        reencrypted_meanwhile,
        "the ticker did not run while {BIG} bytes were re-encrypted ({ATTEMPTS} attempts)"
    );
    assert_eq!(&enc.load("big").await.unwrap()[..], &vec![1u8; BIG][..]);
}

/// Below the threshold the work stays inline (handing it to the blocking
/// pool would cost as much as the work itself).
#[tokio::test(flavor = "current_thread")]
async fn small_values_are_encrypted_inline() {
    let (probe, enc, _) = setup();
    start_ticker(Arc::clone(&probe.ticks)).await;
    let before = probe.ticks.load(Ordering::SeqCst);
    enc.store("small", Bytes::from(vec![7u8; BLOCKING_THRESHOLD - 100]))
        .await
        .unwrap();
    assert_eq!(probe.last("store"), before);
}

// ---------------------------------------------------------------------------
// Large objects: streamed encryption, decryption, ranges and rewrap.

/// The thread and input length of every streamed crypto batch (the
/// `encstore::large` trace event "stream crypto batch"), from any thread.
#[derive(Default)]
struct Batches(Mutex<Vec<(std::thread::ThreadId, u64)>>);

struct LenVisitor(Option<u64>);

impl tracing::field::Visit for LenVisitor {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "len" {
            self.0 = Some(value);
        }
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

struct BatchRecorder(Arc<Batches>);

impl tracing::Subscriber for BatchRecorder {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        m.target() == "encstore::large"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut v = LenVisitor(None);
        e.record(&mut v);
        if let Some(len) = v.0 {
            let me = std::thread::current().id();
            (self.0).0.lock().unwrap().push((me, len));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// On a current-thread runtime (the test's own thread), all large-object
/// crypto on at least the blocking threshold runs on another thread
/// (tokio's blocking pool): each batch of a streamed write, a streamed
/// read and a rewrap, a ranged read, and a large value stored and loaded
/// whole.
#[tokio::test(flavor = "current_thread")]
async fn large_object_crypto_runs_on_the_blocking_pool() {
    let batches = Arc::new(Batches::default());
    tracing::subscriber::set_global_default(BatchRecorder(batches.clone()))
        .expect("no other test of this binary sets a global subscriber");
    let runtime_thread = std::thread::current().id();
    let check = |what: &str, at_least: usize| {
        let seen = std::mem::take(&mut *batches.0.lock().unwrap());
        let big: Vec<_> = seen
            .iter()
            .filter(|(_, len)| *len >= BLOCKING_THRESHOLD as u64)
            .collect();
        assert!(big.len() >= at_least, "{what}: {} batches", big.len());
        for (thread, len) in big {
            assert_ne!(
                *thread, runtime_thread,
                "{what}: a {len}-byte batch ran on the runtime's thread"
            );
        }
    };

    let a = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    let mut s = Keyset::generate(&by_name("AES256_GCM_HKDF_1MB").unwrap()).unwrap();
    let inner = Arc::new(MemoryStorage::new());
    let keys = Arc::new(ReloadableKeyset::new_with_streaming(&a, &s, Policy::default()).unwrap());
    let enc = EncryptedStorage::new(inner, keys.clone());
    let value: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();

    let body = encstore_core::stream::from_chunks(
        value
            .chunks(64 << 10)
            .map(Bytes::copy_from_slice)
            .collect::<Vec<_>>(),
    );
    enc.store_stream("big", body).await.unwrap();
    check("store_stream", 8);

    let stream = enc.load_stream("big").await.unwrap();
    assert!(stream.collect().await.unwrap() == value[..]);
    check("load_stream", 7);

    let new = s.rotate(&by_name("AES256_GCM_HKDF_1MB").unwrap()).unwrap();
    keys.replace_streaming(&s).unwrap();
    assert!(matches!(
        enc.reencrypt_one("big").await.unwrap(),
        ObjectReencryption::Reencrypted { to, .. } if to == new
    ));
    check("rewrap", 7);

    let r = enc.load_range("big", 100..(1 << 20)).await.unwrap();
    assert!(r.bytes[..] == value[100..1 << 20]);
    check("load_range", 1);
    enc.store("whole", Bytes::from(value.clone()))
        .await
        .unwrap();
    check("store", 1);
    assert!(enc.load("whole").await.unwrap() == value[..]);
    check("load", 1);
}
