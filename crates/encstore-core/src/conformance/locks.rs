//! Locks and leases: exclusion, cancellation, renewal, expiry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::Error;
use crate::storage::Storage;

use super::scratch_prefix;
use super::util::b;

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
