//! Compare-and-swap: `store_if`.

use crate::error::Error;
use crate::storage::{Storage, WriteCondition};

use super::scratch_prefix;
use super::util::{b, futures_join_all};

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
