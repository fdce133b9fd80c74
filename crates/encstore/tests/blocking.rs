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
use encstore::{BLOCKING_THRESHOLD, EncryptedStorage, Policy, ReloadableKeyset, RewrapOutcome};
use encstore_core::{
    KeyInfo, Lease, MemoryStorage, Result, Storage, Version, Versioned, WriteCondition,
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
    async fn stat(&self, key: &str) -> Result<KeyInfo> {
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

#[tokio::test(flavor = "current_thread")]
async fn other_tasks_run_while_a_large_value_is_encrypted_and_decrypted() {
    let (probe, enc, _) = setup();
    start_ticker(Arc::clone(&probe.ticks)).await;

    let big = Bytes::from(vec![7u8; BIG]);
    let before = probe.ticks.load(Ordering::SeqCst);
    enc.store("big", big.clone()).await.unwrap();
    assert!(
        probe.last("store") > before,
        "the ticker did not run while {BIG} bytes were encrypted"
    );

    enc.load("big").await.unwrap();
    let after = probe.ticks.load(Ordering::SeqCst);
    assert!(
        after > probe.last("load"),
        "the ticker did not run while {BIG} bytes were decrypted"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn other_tasks_run_during_a_large_rewrap() {
    let (probe, enc, mut k) = setup();
    enc.store("big", Bytes::from(vec![1u8; BIG])).await.unwrap();
    let new = k.add_key(&by_name("AES128_GCM").unwrap()).unwrap();
    k.promote(new).unwrap();
    enc.keyset().replace(&k).unwrap();
    start_ticker(Arc::clone(&probe.ticks)).await;

    let outcome = enc.rewrap_one("big").await.unwrap();
    assert!(matches!(outcome, RewrapOutcome::Rewrapped { to, .. } if to == new));
    // Between reading the object and writing its new ciphertext, the
    // decryption and re-encryption ran; the ticker ran meanwhile.
    assert!(
        probe.last("store_if") > probe.last("load"),
        "the ticker did not run while {BIG} bytes were re-encrypted"
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
