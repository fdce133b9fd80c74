//! The conformance suite that every [`Storage`] backend runs.
//!
//! Each function takes a store, exercises one part of the contract in
//! `docs/storage-contract.md`, and panics with a description of the first
//! violation. Keys live under a fresh random prefix, so the suite can run
//! against a shared, non-empty store (such as an S3 bucket).
//!
//! Lock tests sleep past the store's [`Storage::lease_duration`], so give
//! the store under test a short lease (one or two seconds).
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use encstore_core::{MemoryStorage, Storage};
//! # async fn t() {
//! let store: Arc<dyn Storage> = Arc::new(MemoryStorage::with_lease(std::time::Duration::from_secs(1)).expect("a lease in bounds"));
//! encstore_core::conformance::run_all(store).await;
//! # }
//! ```
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::error::Error;
use crate::key::InvalidKeyReason;
use crate::storage::{Storage, WriteCondition};

/// A fresh, random namespace for one test, so runs never collide.
pub fn scratch_prefix(test: &str) -> String {
    let token = crate::storage::new_lease_token().unwrap();
    format!("conformance-{}/{test}", &token[..12])
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// What the suite may assume about the store under test.
#[derive(Debug, Clone, Copy)]
pub struct SuiteOptions {
    /// `stat` reports exactly the size of the value stored. True for
    /// backends; false for wrappers that transform values (such as
    /// `EncryptedStorage`, whose `stat` reports the larger ciphertext size).
    pub exact_sizes: bool,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions { exact_sizes: true }
    }
}

/// Runs every check, in order, for a backend.
pub async fn run_all(store: Arc<dyn Storage>) {
    run_all_with(store, SuiteOptions::default()).await
}

/// Runs every check, in order, with `options`.
pub async fn run_all_with(store: Arc<dyn Storage>, options: SuiteOptions) {
    store_and_load(&*store).await;
    overwrite(&*store).await;
    not_found(&*store).await;
    binary_and_large_values(&*store).await;
    delete(&*store).await;
    exists(&*store).await;
    list(&*store).await;
    stat_with(&*store, options).await;
    invalid_keys(&*store).await;
    conditional_writes(&*store).await;
    load_head(&*store).await;
    try_lock_excludes(&*store).await;
    lock_mutual_exclusion(Arc::clone(&store)).await;
    lock_cancellation(&*store).await;
    lease_renewed_while_held(&*store).await;
    lease_expires_and_unlock_spares_successor(&*store).await;
}

/// `store` then `load` returns the same bytes.
pub async fn store_and_load(store: &dyn Storage) {
    let p = scratch_prefix("store-load");
    let key = format!("{p}/a/b/c.txt");
    store.store(&key, b("hello")).await.unwrap();
    assert_eq!(store.load(&key).await.unwrap(), b("hello"));
    let v = store.load_versioned(&key).await.unwrap();
    assert_eq!(v.value, b("hello"));
    let empty = format!("{p}/empty");
    store.store(&empty, Bytes::new()).await.unwrap();
    assert_eq!(
        store.load(&empty).await.unwrap().len(),
        0,
        "empty values round-trip"
    );
    store.delete(&p).await.unwrap();
}

/// `store` on an existing key overwrites it.
pub async fn overwrite(store: &dyn Storage) {
    let p = scratch_prefix("overwrite");
    let key = format!("{p}/k");
    store.store(&key, b("one")).await.unwrap();
    store.store(&key, b("two, longer")).await.unwrap();
    assert_eq!(store.load(&key).await.unwrap(), b("two, longer"));
    store.store(&key, b("3")).await.unwrap();
    assert_eq!(
        store.load(&key).await.unwrap(),
        b("3"),
        "shorter overwrite leaves no tail"
    );
    store.delete(&p).await.unwrap();
}

/// Missing keys give [`Error::NotFound`] from every reading operation.
pub async fn not_found(store: &dyn Storage) {
    let p = scratch_prefix("not-found");
    let key = format!("{p}/missing");
    match store.load(&key).await {
        Err(Error::NotFound { key: k }) => assert_eq!(k, key),
        other => panic!("load of a missing key: expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        store.load_versioned(&key).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.stat(&key).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.load_head(&key, 5).await,
        Err(Error::NotFound { .. })
    ));
    assert!(!store.exists(&key).await.unwrap());
}

/// Arbitrary bytes (every byte value) and a multi-MiB value round-trip.
pub async fn binary_and_large_values(store: &dyn Storage) {
    let p = scratch_prefix("binary");
    let all: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    store
        .store(&format!("{p}/all"), Bytes::from(all.clone()))
        .await
        .unwrap();
    assert_eq!(
        &store.load(&format!("{p}/all")).await.unwrap()[..],
        &all[..]
    );
    let big: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    store
        .store(&format!("{p}/big"), Bytes::from(big.clone()))
        .await
        .unwrap();
    assert!(
        store.load(&format!("{p}/big")).await.unwrap() == big,
        "3 MiB value round-trips"
    );
    store.delete(&p).await.unwrap();
}

/// Deleting a key removes it; deleting a prefix removes everything under it
/// by component (not `ab` when deleting `a`); deleting a missing key is Ok.
pub async fn delete(store: &dyn Storage) {
    let p = scratch_prefix("delete");
    for k in ["a/1", "a/2", "a/sub/3", "ab/4", "a"] {
        let key = format!("{p}/{k}");
        // "a" as both an object and a prefix is allowed on some backends
        // only; skip it where the backend refuses.
        if k == "a" {
            continue;
        }
        store.store(&key, b(k)).await.unwrap();
    }
    store.delete(&format!("{p}/a/1")).await.unwrap();
    assert!(!store.exists(&format!("{p}/a/1")).await.unwrap());
    assert!(store.exists(&format!("{p}/a/2")).await.unwrap());

    store.delete(&format!("{p}/a")).await.unwrap();
    for k in ["a/2", "a/sub/3"] {
        assert!(
            !store.exists(&format!("{p}/{k}")).await.unwrap(),
            "{k} should be gone after deleting prefix a"
        );
    }
    assert_eq!(
        store.load(&format!("{p}/ab/4")).await.unwrap(),
        b("ab/4"),
        "deleting prefix a must not touch ab/4"
    );
    store.delete(&format!("{p}/never-existed")).await.unwrap();
    store
        .delete(&format!("{p}/never/existed/either"))
        .await
        .unwrap();
    store.delete(&p).await.unwrap();
    assert!(store.list(&p, true).await.unwrap().is_empty());
}

/// `exists` is true for objects and for prefixes that have objects.
pub async fn exists(store: &dyn Storage) {
    let p = scratch_prefix("exists");
    store.store(&format!("{p}/dir/obj"), b("x")).await.unwrap();
    assert!(store.exists(&format!("{p}/dir/obj")).await.unwrap());
    assert!(store.exists(&format!("{p}/dir")).await.unwrap());
    assert!(!store.exists(&format!("{p}/di")).await.unwrap());
    assert!(!store.exists(&format!("{p}/dir/ob")).await.unwrap());
    store.delete(&p).await.unwrap();
}

/// Recursive and non-recursive listings, component-wise prefixes, sorting.
pub async fn list(store: &dyn Storage) {
    let p = scratch_prefix("list");
    let keys = ["a/b", "a/c/d", "a/c/e", "ab/x", "z"];
    for k in keys {
        store.store(&format!("{p}/{k}"), b(k)).await.unwrap();
    }
    let full = |ks: &[&str]| ks.iter().map(|k| format!("{p}/{k}")).collect::<Vec<_>>();

    assert_eq!(
        store.list(&format!("{p}/a"), true).await.unwrap(),
        full(&["a/b", "a/c/d", "a/c/e"])
    );
    assert_eq!(
        store.list(&format!("{p}/a"), false).await.unwrap(),
        full(&["a/b", "a/c"])
    );
    assert_eq!(
        store.list(&p, false).await.unwrap(),
        full(&["a", "ab", "z"])
    );
    assert_eq!(store.list(&p, true).await.unwrap(), full(&keys));
    assert_eq!(
        store.list(&format!("{p}/a/c"), false).await.unwrap(),
        full(&["a/c/d", "a/c/e"])
    );
    assert!(
        store
            .list(&format!("{p}/nothing"), true)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list(&format!("{p}/nothing"), false)
            .await
            .unwrap()
            .is_empty()
    );
    // The whole store includes our keys.
    let all = store.list("", true).await.unwrap();
    for k in full(&keys) {
        assert!(all.contains(&k), "list(\"\", true) misses {k}");
    }
    store.delete(&p).await.unwrap();
}

/// `stat` reports size, a modified time and terminality.
pub async fn stat(store: &dyn Storage) {
    stat_with(store, SuiteOptions::default()).await
}

/// [`stat`], with `options`.
pub async fn stat_with(store: &dyn Storage, options: SuiteOptions) {
    let p = scratch_prefix("stat");
    let key = format!("{p}/d/obj");
    let before = std::time::SystemTime::now() - Duration::from_secs(120);
    store
        .store(&key, Bytes::from(vec![7u8; 1234]))
        .await
        .unwrap();
    let info = store.stat(&key).await.unwrap();
    assert_eq!(info.key, key);
    if options.exact_sizes {
        assert_eq!(info.size, 1234, "stat reports the stored size");
    } else {
        assert!(info.size >= 1234, "stat reports at least the value's size");
    }
    assert!(info.terminal);
    let m = info.modified.expect("objects have a modified time");
    assert!(m >= before, "modified time is recent");
    let dir = store.stat(&format!("{p}/d")).await.unwrap();
    assert!(!dir.terminal, "a prefix is not terminal");
    store.delete(&p).await.unwrap();
}

/// Every operation refuses invalid keys with [`Error::InvalidKey`].
pub async fn invalid_keys(store: &dyn Storage) {
    let bad = [
        ("", InvalidKeyReason::Empty),
        ("/abs", InvalidKeyReason::LeadingSlash),
        ("a/../b", InvalidKeyReason::DotDotSegment),
        ("../escape", InvalidKeyReason::DotDotSegment),
        ("a/./b", InvalidKeyReason::DotSegment),
        ("a//b", InvalidKeyReason::EmptySegment),
        ("a\\b", InvalidKeyReason::Backslash),
        ("nul\0byte", InvalidKeyReason::Nul),
        ("a/.encstore-locks", InvalidKeyReason::Reserved),
    ];
    for (key, want) in bad {
        let check = |what: &str, r: Result<(), Error>| match r {
            Err(Error::InvalidKey { reason, .. }) if reason == want || key.is_empty() => {}
            other => panic!("{what}({key:?}): expected InvalidKey({want:?}), got {other:?}"),
        };
        check("store", store.store(key, b("x")).await);
        check(
            "store_if",
            store
                .store_if(key, b("x"), &WriteCondition::Absent)
                .await
                .map(|_| ()),
        );
        check("load", store.load(key).await.map(|_| ()));
        check(
            "load_versioned",
            store.load_versioned(key).await.map(|_| ()),
        );
        check("stat", store.stat(key).await.map(|_| ()));
        check("exists", store.exists(key).await.map(|_| ()));
        check("try_lock", store.try_lock(key).await.map(|_| ()));
        if !key.is_empty() {
            check("delete", store.delete(key).await);
            check("list", store.list(key, true).await.map(|_| ()));
        }
    }
    let long = "k".repeat(2000);
    assert!(matches!(
        store.store(&long, b("x")).await,
        Err(Error::InvalidKey { .. })
    ));
}

/// `store_if`: `Absent` creates once; `Matches` succeeds only at the current
/// version; a stale version fails with [`Error::PreconditionFailed`] and
/// writes nothing.
pub async fn conditional_writes(store: &dyn Storage) {
    let p = scratch_prefix("cas");
    let key = format!("{p}/k");

    let v1 = store
        .store_if(&key, b("v1"), &WriteCondition::Absent)
        .await
        .unwrap();
    match store
        .store_if(&key, b("again"), &WriteCondition::Absent)
        .await
    {
        Err(Error::PreconditionFailed { .. }) => {}
        other => panic!("Absent on an existing key: expected PreconditionFailed, got {other:?}"),
    }
    assert_eq!(store.load(&key).await.unwrap(), b("v1"));

    let loaded = store.load_versioned(&key).await.unwrap();
    assert_eq!(
        loaded.version, v1,
        "load_versioned returns the version store_if returned"
    );
    let v2 = store
        .store_if(
            &key,
            b("v2"),
            &WriteCondition::Matches(loaded.version.clone()),
        )
        .await
        .unwrap();
    assert_ne!(v1, v2, "a write changes the version");
    match store
        .store_if(&key, b("stale"), &WriteCondition::Matches(v1.clone()))
        .await
    {
        Err(Error::PreconditionFailed { .. }) => {}
        other => panic!("stale version: expected PreconditionFailed, got {other:?}"),
    }
    assert_eq!(
        store.load(&key).await.unwrap(),
        b("v2"),
        "failed store_if wrote nothing"
    );

    // An unconditional store in between invalidates the version.
    let cur = store.load_versioned(&key).await.unwrap().version;
    store.store(&key, b("server wrote this")).await.unwrap();
    match store
        .store_if(&key, b("rewrap"), &WriteCondition::Matches(cur))
        .await
    {
        Err(Error::PreconditionFailed { .. }) => {}
        other => panic!("version after a plain store: expected PreconditionFailed, got {other:?}"),
    }
    assert_eq!(store.load(&key).await.unwrap(), b("server wrote this"));

    // Rewriting identical bytes still works with the fresh version.
    let cur = store.load_versioned(&key).await.unwrap().version;
    store
        .store_if(&key, b("server wrote this"), &WriteCondition::Matches(cur))
        .await
        .unwrap();

    // Matches on a missing key fails.
    let gone = format!("{p}/gone");
    store.store(&gone, b("x")).await.unwrap();
    let vg = store.load_versioned(&gone).await.unwrap().version;
    store.delete(&gone).await.unwrap();
    match store
        .store_if(&gone, b("y"), &WriteCondition::Matches(vg))
        .await
    {
        Err(Error::PreconditionFailed { .. }) => {}
        other => panic!("Matches on a deleted key: expected PreconditionFailed, got {other:?}"),
    }
    assert!(!store.exists(&gone).await.unwrap());

    // Racing compare-and-swaps from one version: exactly one wins.
    let race = format!("{p}/race");
    store.store(&race, b("0")).await.unwrap();
    let base = store.load_versioned(&race).await.unwrap().version;
    let cond = WriteCondition::Matches(base);
    let attempts = (0..8).map(|i| {
        let race = race.clone();
        let cond = cond.clone();
        async move { store.store_if(&race, b(&format!("w{i}")), &cond).await }
    });
    let results = futures_join_all(attempts).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        wins, 1,
        "exactly one of 8 racing store_if calls wins: {results:?}"
    );
    for r in &results {
        if let Err(e) = r {
            assert!(
                matches!(e, Error::PreconditionFailed { .. }),
                "losers fail with PreconditionFailed: {e:?}"
            );
        }
    }
    store.delete(&p).await.unwrap();
}

/// `load_head` returns at most the first `len` bytes.
pub async fn load_head(store: &dyn Storage) {
    let p = scratch_prefix("head");
    let key = format!("{p}/k");
    store.store(&key, b("0123456789")).await.unwrap();
    assert_eq!(store.load_head(&key, 5).await.unwrap(), b("01234"));
    assert_eq!(store.load_head(&key, 100).await.unwrap(), b("0123456789"));
    store.delete(&p).await.unwrap();
}

/// A held lock makes `try_lock` fail with [`Error::LockHeld`]; after unlock
/// it can be taken again; unlocking twice fails.
pub async fn try_lock_excludes(store: &dyn Storage) {
    let name = scratch_prefix("try-lock");
    let lease = store.try_lock(&name).await.unwrap();
    assert!(lease.is_held());
    match store.try_lock(&name).await {
        Err(Error::LockHeld { name: n }) => assert_eq!(n, name),
        other => panic!("try_lock on a held lock: expected LockHeld, got {other:?}"),
    }
    // Lock names are independent.
    let other = store.try_lock(&format!("{name}-other")).await.unwrap();
    store.unlock(other).await.unwrap();
    store.unlock(lease).await.unwrap();
    let again = store.try_lock(&name).await.unwrap();
    store.unlock(again).await.unwrap();
}

/// Tasks incrementing a counter object under `lock` lose no increment.
pub async fn lock_mutual_exclusion(store: Arc<dyn Storage>) {
    let name = scratch_prefix("mutex");
    let counter = format!("{name}/counter");
    store.store(&counter, b("0")).await.unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let tasks = 4;
    let rounds = 10;
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = Arc::clone(&store);
        let name = name.clone();
        let counter = counter.clone();
        let inside = Arc::clone(&inside);
        handles.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let lease = store.lock(&name).await.unwrap();
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two holders at once"
                );
                let n: u64 = std::str::from_utf8(&store.load(&counter).await.unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                tokio::task::yield_now().await;
                store
                    .store(&counter, b(&(n + 1).to_string()))
                    .await
                    .unwrap();
                inside.fetch_sub(1, Ordering::SeqCst);
                store.unlock(lease).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let n = store.load(&counter).await.unwrap();
    assert_eq!(n, b(&(tasks * rounds).to_string()), "no increment lost");
    store.delete(&name).await.unwrap();
}

/// Dropping a waiting `lock` future acquires nothing.
pub async fn lock_cancellation(store: &dyn Storage) {
    let name = scratch_prefix("cancel");
    let held = store.try_lock(&name).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), store.lock(&name)).await;
    assert!(waited.is_err(), "lock must wait while the lock is held");
    store.unlock(held).await.unwrap();
    // The cancelled waiter must not have taken the lock.
    let lease = store.try_lock(&name).await.unwrap();
    store.unlock(lease).await.unwrap();
}

/// A held lease is renewed: after three lease durations it still excludes.
pub async fn lease_renewed_while_held(store: &dyn Storage) {
    let name = scratch_prefix("renew");
    let lease = store.try_lock(&name).await.unwrap();
    tokio::time::sleep(store.lease_duration() * 3).await;
    assert!(lease.is_held(), "renewal keeps the lease");
    assert!(
        matches!(store.try_lock(&name).await, Err(Error::LockHeld { .. })),
        "a renewed lease still excludes others"
    );
    store.unlock(lease).await.unwrap();
}

/// A lease whose holder stops renewing (as if it died or hung) expires and
/// can be taken over; the old holder's `unlock` then fails with
/// [`Error::LockNotHeld`] and leaves the successor's lock in place.
pub async fn lease_expires_and_unlock_spares_successor(store: &dyn Storage) {
    let name = scratch_prefix("expiry");
    let mut stale = store.try_lock(&name).await.unwrap();
    stale.stop_renewal();
    assert!(matches!(
        store.try_lock(&name).await,
        Err(Error::LockHeld { .. })
    ));
    tokio::time::sleep(store.lease_duration() + Duration::from_millis(500)).await;
    assert!(!stale.is_held(), "an unrenewed lease runs out");
    let successor = tokio::time::timeout(store.lease_duration() * 4, store.lock(&name))
        .await
        .expect("an expired lease can be taken over")
        .unwrap();
    match store.unlock(stale).await {
        Err(Error::LockNotHeld { .. }) => {}
        other => panic!("unlock by an expired holder: expected LockNotHeld, got {other:?}"),
    }
    assert!(
        matches!(store.try_lock(&name).await, Err(Error::LockHeld { .. })),
        "the successor still holds the lock"
    );
    store.unlock(successor).await.unwrap();
}

/// Runs futures concurrently on the current task (no `futures` dependency).
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap()).collect()
}
