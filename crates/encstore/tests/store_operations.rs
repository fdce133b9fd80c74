//! The store-wide operations a server runs through the library, as the
//! `encstore` tool does: `reencrypt_all` (lock, events, cancellation,
//! concurrent writers), `verify_all` with typed failures, and
//! `retirement_check`. Over the in-memory backend (the backends' own
//! behaviour is covered by their conformance suites and the tool's tests
//! over the filesystem and SeaweedFS).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use encstore::{
    CancellationToken, EncryptedStorage, FailureClass, LockWait, Policy, REENCRYPT_LOCK,
    ReencryptError, ReencryptEvent, ReencryptOptions, ReencryptOutcome, ReloadableKeyset,
    Retirement, StopReason, VerifyOptions, retirement_check,
};
use encstore_core::{MemoryStorage, Storage};
use encstore_tink::Keyset;
use encstore_tink::templates::by_name;

fn aes() -> Keyset {
    Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap()
}

/// A store with `n` objects under the first key, then the keyset rotated
/// (a second key promoted): returns (backend, store, old id, new id).
async fn rotated(n: usize) -> (Arc<MemoryStorage>, EncryptedStorage, Keyset, u32, u32) {
    let mut ks = aes();
    let old = ks.primary_key_id();
    let backend = Arc::new(MemoryStorage::new());
    let keys = Arc::new(ReloadableKeyset::new(&ks, Policy::default()).unwrap());
    let store = EncryptedStorage::new(backend.clone(), Arc::clone(&keys));
    for i in 0..n {
        store
            .store(&format!("obj/{i}"), Bytes::from(format!("value {i}")))
            .await
            .unwrap();
    }
    let new = ks.add_key(&by_name("AES256_GCM").unwrap()).unwrap();
    ks.promote(new).unwrap();
    keys.replace(&ks).unwrap();
    (backend, store, ks, old, new)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reencrypt_all_moves_everything_and_reports_each_object() {
    let (_, store, _, old, new) = rotated(40).await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let options = ReencryptOptions::new().concurrency(4).on_event(move |e| {
        let line = match e {
            ReencryptEvent::Started { total } => format!("started {total}"),
            ReencryptEvent::Object {
                outcome: ReencryptOutcome::Reencrypted,
                ..
            } => "reencrypted".to_owned(),
            other => format!("{other:?}"),
        };
        seen.lock().unwrap().push(line);
    });
    let s = store.reencrypt_all("", &options).await.unwrap();
    assert_eq!((s.objects, s.reencrypted, s.already_current), (40, 40, 0));
    assert!(s.failures.is_empty() && s.stopped.is_none() && s.unlock_error.is_none());
    assert_eq!(s.primary_key_id, new);
    let events = events.lock().unwrap().clone();
    assert_eq!(events[0], "started 40");
    assert_eq!(events.iter().filter(|e| *e == "reencrypted").count(), 40);
    assert_eq!(events.len(), 41, "{events:?}");

    let census = store.census("").await.unwrap();
    assert_eq!(census.objects_under(new), 40);
    assert_eq!(census.objects_under(old), 0);
    // A second run finds everything current.
    let s = store
        .reencrypt_all("", &ReencryptOptions::new())
        .await
        .unwrap();
    assert_eq!((s.reencrypted, s.already_current), (0, 40));
    // The plan agrees.
    let plan = store.reencrypt_plan("").await.unwrap();
    assert_eq!((plan.would_reencrypt, plan.already_current()), (0, 40));

    let v = store.verify_all("", &VerifyOptions::new()).await.unwrap();
    assert_eq!((v.objects, v.ok, v.checked()), (40, 40, 40));
    assert_eq!(v.by_key_id.get(&new), Some(&40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_during_a_reencryption_lose_nothing() {
    let (_, store, _, _, new) = rotated(200).await;
    let stop = CancellationToken::new();
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut last = std::collections::BTreeMap::new();
            let mut n = 0u32;
            while !stop.is_cancelled() || n < 50 {
                let key = format!("obj/{}", n % 200);
                let value = format!("written {n}");
                store.store(&key, Bytes::from(value.clone())).await.unwrap();
                last.insert(key, value);
                n += 1;
                tokio::task::yield_now().await;
            }
            last
        })
    };
    let s = store
        .reencrypt_all("", &ReencryptOptions::new().concurrency(8))
        .await
        .unwrap();
    stop.cancel();
    let last = writer.await.unwrap();
    assert!(s.failures.is_empty(), "{:?}", s.failures);
    assert_eq!(s.reencrypted + s.already_current + s.deleted, 200);
    for i in 0..200 {
        let key = format!("obj/{i}");
        let want = last
            .get(&key)
            .cloned()
            .unwrap_or_else(|| format!("value {i}"));
        assert_eq!(store.load(&key).await.unwrap(), want.as_bytes(), "{key}");
    }
    assert_eq!(store.census("").await.unwrap().objects_under(new), 200);
}

#[tokio::test]
async fn the_lock_fails_fast_or_waits_and_cancels() {
    let (backend, store, _, _, _) = rotated(3).await;
    let held = backend.try_lock(REENCRYPT_LOCK).await.unwrap();
    let e = store
        .reencrypt_all("", &ReencryptOptions::new().lock_wait(LockWait::FailFast))
        .await
        .unwrap_err();
    assert!(matches!(e, ReencryptError::LockHeld { .. }), "{e:?}");
    let cancel = CancellationToken::new();
    let waited = Arc::new(Mutex::new(false));
    let w = Arc::clone(&waited);
    let c = cancel.clone();
    let options = ReencryptOptions::new()
        .cancel(cancel.clone())
        .on_event(move |e| {
            if let ReencryptEvent::WaitingForLock { lock, .. } = e {
                assert_eq!(*lock, REENCRYPT_LOCK);
                *w.lock().unwrap() = true;
                c.cancel();
            }
        });
    let e = tokio::time::timeout(Duration::from_secs(10), store.reencrypt_all("", &options))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, ReencryptError::Cancelled), "{e:?}");
    assert!(*waited.lock().unwrap());
    // Nothing was changed.
    assert_eq!(store.reencrypt_plan("").await.unwrap().would_reencrypt, 3);
    backend.unlock(held).await.unwrap();
}

#[tokio::test]
async fn a_cancelled_run_stops_with_true_counts_and_releases_the_lock() {
    let (backend, store, _, _, _) = rotated(10).await;
    let cancel = CancellationToken::new();
    cancel.cancel();
    let s = store
        .reencrypt_all("", &ReencryptOptions::new().cancel(cancel))
        .await
        .unwrap();
    assert_eq!(s.stopped, Some(StopReason::Cancelled));
    assert_eq!((s.objects, s.reencrypted), (10, 0));
    assert_eq!(store.reencrypt_plan("").await.unwrap().would_reencrypt, 10);
    let l = backend.try_lock(REENCRYPT_LOCK).await.unwrap();
    backend.unlock(l).await.unwrap();
}

#[tokio::test]
async fn verify_and_the_retirement_check_are_typed() {
    let (backend, store, ks, old, new) = rotated(5).await;
    // An object written with another keyset: its prefix names a key this
    // keyset does not have.
    let other = aes();
    let stranger = EncryptedStorage::new(
        backend.clone(),
        Arc::new(ReloadableKeyset::new(&other, Policy::default()).unwrap()),
    );
    stranger.store("stranger", Bytes::from("x")).await.unwrap();
    let v = store.verify_all("", &VerifyOptions::new()).await.unwrap();
    assert_eq!((v.objects, v.ok), (6, 5));
    assert_eq!(v.failures.len(), 1);
    assert_eq!(v.failures[0].key, "stranger");
    assert_eq!(
        v.failures[0].class,
        FailureClass::UnknownKeyId(other.primary_key_id())
    );
    assert_eq!(
        v.failure_counts()
            .unknown_key_ids
            .get(&other.primary_key_id()),
        Some(&1)
    );

    let b: Arc<dyn Storage> = backend.clone();
    assert_eq!(
        retirement_check(Arc::clone(&b), &ks, old).await.unwrap(),
        Retirement::InUse {
            objects: 5,
            checked: 6
        }
    );
    assert_eq!(
        retirement_check(Arc::clone(&b), &ks, 12345).await.unwrap(),
        Retirement::NotInKeyset
    );
    backend.delete("stranger").await.unwrap();
    store
        .reencrypt_all("", &ReencryptOptions::new())
        .await
        .unwrap();
    assert_eq!(
        retirement_check(b, &ks, old).await.unwrap(),
        Retirement::Clear { checked: 5 }
    );
    assert_eq!(
        store.retirement_check(new).await.unwrap(),
        Retirement::InUse {
            objects: 5,
            checked: 5
        }
    );
}
