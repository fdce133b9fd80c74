//! Streamed writes: `store_stream` and `store_stream_if`, failing bodies,
//! cancellation, racing conditional writes.

use std::time::Duration;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::storage::{Storage, WriteCondition};
use crate::stream::{ByteStream, from_chunks};

use super::scratch_prefix;
use super::util::{
    IterBody, b, body_error, channel_body, chunked, futures_join_all, is_body_error, keys_under,
    pattern,
};

/// `store_stream` stores exactly the concatenation of its body: many
/// chunks of varied sizes (empty ones included), one chunk, an empty body;
/// it overwrites a longer value without leaving a tail, and creates missing
/// parents. Invalid keys are refused.
pub async fn stream_writes(store: &dyn Storage) {
    let p = scratch_prefix("stream-write");
    let key = format!("{p}/deep/er/k");
    let value = pattern(3 * 1024 * 1024 + 17, 0x5a);
    store
        .store_stream(&key, chunked(&value, &[1, 0, 7, 4096, 65_536, 0, 300_001]))
        .await
        .unwrap();
    assert!(
        store.load(&key).await.unwrap() == value,
        "many chunks store their concatenation"
    );

    store
        .store_stream(&key, chunked(b"short", &[2]))
        .await
        .unwrap();
    assert_eq!(store.load(&key).await.unwrap(), b("short"), "no tail left");

    store
        .store_stream(&key, from_chunks(Vec::new()))
        .await
        .unwrap();
    assert_eq!(store.load(&key).await.unwrap().len(), 0, "an empty body");
    let empties = format!("{p}/empties");
    store
        .store_stream(&empties, from_chunks(vec![Bytes::new(), Bytes::new()]))
        .await
        .unwrap();
    assert_eq!(store.load(&empties).await.unwrap().len(), 0);

    let one = format!("{p}/one");
    store
        .store_stream(&one, crate::stream::once(b("x")))
        .await
        .unwrap();
    assert_eq!(store.load(&one).await.unwrap(), b("x"));

    for bad in ["", "a/../b", "a//b", "x/.encstore-tmp.1"] {
        assert!(
            matches!(
                store.store_stream(bad, crate::stream::once(b("x"))).await,
                Err(Error::InvalidKey { .. })
            ),
            "store_stream({bad:?})"
        );
        assert!(
            matches!(
                store
                    .store_stream_if(bad, crate::stream::once(b("x")), &WriteCondition::Absent)
                    .await,
                Err(Error::InvalidKey { .. })
            ),
            "store_stream_if({bad:?})"
        );
    }
    store.delete(&p).await.unwrap();
}

/// A body that fails midway: `store_stream` and `store_stream_if` return the
/// body's own error and write nothing. An existing key keeps its value and
/// its version, a new key stays absent, and the listing is unchanged.
pub async fn stream_write_errors(store: &dyn Storage) {
    let p = scratch_prefix("stream-error");
    let key = format!("{p}/k");
    let old = pattern(100_000, 1);
    store.store(&key, Bytes::from(old.clone())).await.unwrap();
    let version = store.load_versioned(&key).await.unwrap().version;
    let failing = || {
        let mut items: Vec<Result<Bytes>> = (0..8)
            .map(|i| Ok(Bytes::from(pattern(64 << 10, i))))
            .collect();
        items.push(Err(body_error()));
        items.push(Ok(b("never read")));
        let s: ByteStream = Box::pin(IterBody(items.into_iter()));
        s
    };
    let new = format!("{p}/new/k");

    match store.store_stream(&key, failing()).await {
        Err(e) if is_body_error(&e) => {}
        other => panic!("store_stream with a failing body: expected its error, got {other:?}"),
    }
    match store.store_stream(&new, failing()).await {
        Err(e) if is_body_error(&e) => {}
        other => panic!("store_stream with a failing body: expected its error, got {other:?}"),
    }
    for cond in [
        WriteCondition::Matches(version.clone()),
        WriteCondition::Absent,
    ] {
        let target = if cond == WriteCondition::Absent {
            &new
        } else {
            &key
        };
        match store.store_stream_if(target, failing(), &cond).await {
            Err(e) if is_body_error(&e) => {}
            other => panic!(
                "store_stream_if({cond:?}) with a failing body: expected its error, got {other:?}"
            ),
        }
    }
    let now = store.load_versioned(&key).await.unwrap();
    assert!(
        now.value == old,
        "a failed streamed write changed the value"
    );
    assert_eq!(
        now.version, version,
        "a failed streamed write changed the version"
    );
    assert!(
        !store.exists(&new).await.unwrap(),
        "a failed streamed write created the key"
    );
    assert_eq!(keys_under(store, &p).await, vec![key.clone()]);
    store.delete(&p).await.unwrap();
}

/// A streamed write whose future is dropped while its body is still
/// pending (after some chunks) writes nothing: an existing key keeps its
/// value and version, a new key stays absent, the listing is unchanged, and
/// the key can be written normally afterwards.
pub async fn stream_write_cancellation(store: &dyn Storage) {
    let p = scratch_prefix("stream-cancel");
    let key = format!("{p}/k");
    store.store(&key, b("old")).await.unwrap();
    let version = store.load_versioned(&key).await.unwrap().version;
    let new = format!("{p}/sub/new");
    for (target, cond) in [
        (&key, None),
        (&new, None),
        (&key, Some(WriteCondition::Matches(version.clone()))),
        (&new, Some(WriteCondition::Absent)),
    ] {
        let (tx, body) = channel_body();
        for i in 0..4 {
            tx.send(Ok(Bytes::from(pattern(64 << 10, i))))
                .await
                .unwrap();
        }
        let write = async {
            match &cond {
                None => store.store_stream(target, body).await.map(|_| ()),
                Some(c) => store.store_stream_if(target, body, c).await.map(|_| ()),
            }
        };
        let r = tokio::time::timeout(Duration::from_millis(300), write).await;
        assert!(r.is_err(), "the write must wait for its body: {r:?}");
        drop(tx);
        let now = store.load_versioned(&key).await.unwrap();
        assert_eq!(
            now.value,
            b("old"),
            "a dropped streamed write changed the value"
        );
        assert_eq!(
            now.version, version,
            "a dropped streamed write changed the version"
        );
        assert!(
            !store.exists(&new).await.unwrap(),
            "a dropped streamed write created a key"
        );
        assert_eq!(keys_under(store, &p).await, vec![key.clone()]);
    }
    store
        .store_stream(&new, chunked(b"after", &[1]))
        .await
        .unwrap();
    assert_eq!(store.load(&new).await.unwrap(), b("after"));
    store.delete(&p).await.unwrap();
}

/// `store_stream_if`: `Absent` creates once; `Matches` writes only at the
/// current version and returns the version `load_versioned` then reports;
/// a stale version fails with [`Error::PreconditionFailed`] and writes
/// nothing. The condition is checked when the write commits: a plain write
/// (or a creation) that lands while the body is still being consumed makes
/// it fail. Of 8 racing streamed writes from one version, exactly one wins
/// and its body is the value.
pub async fn conditional_stream_writes(store: &dyn Storage) {
    let p = scratch_prefix("stream-cas");
    let key = format!("{p}/k");
    let v1 = store
        .store_stream_if(&key, chunked(b"version one", &[3]), &WriteCondition::Absent)
        .await
        .unwrap();
    assert_eq!(store.load_versioned(&key).await.unwrap().version, v1);
    match store
        .store_stream_if(&key, chunked(b"again", &[2]), &WriteCondition::Absent)
        .await
    {
        Err(Error::PreconditionFailed { .. }) => {}
        other => panic!("Absent on an existing key: expected PreconditionFailed, got {other:?}"),
    }
    let v2 = store
        .store_stream_if(
            &key,
            chunked(b"version two", &[4]),
            &WriteCondition::Matches(v1.clone()),
        )
        .await
        .unwrap();
    assert_ne!(v1, v2, "a streamed write changes the version");
    let loaded = store.load_versioned(&key).await.unwrap();
    assert_eq!(
        (loaded.value, loaded.version),
        (b("version two"), v2.clone())
    );
    match store
        .store_stream_if(&key, chunked(b"stale", &[1]), &WriteCondition::Matches(v1))
        .await
    {
        Err(Error::PreconditionFailed { .. }) => {}
        other => panic!("stale version: expected PreconditionFailed, got {other:?}"),
    }
    assert_eq!(store.load(&key).await.unwrap(), b("version two"));

    // A plain write while the body is being consumed: the CAS fails.
    let (tx, body) = channel_body();
    let cond = WriteCondition::Matches(v2);
    let write = store.store_stream_if(&key, body, &cond);
    let meddle = async {
        tx.send(Ok(b("rewrap part 1, "))).await.unwrap();
        store.store(&key, b("server wrote this")).await.unwrap();
        tx.send(Ok(b("part 2"))).await.unwrap();
        drop(tx);
    };
    let (r, ()) = tokio::join!(write, meddle);
    match r {
        Err(Error::PreconditionFailed { .. }) => {}
        other => {
            panic!("a write landed during the body: expected PreconditionFailed, got {other:?}")
        }
    }
    assert_eq!(store.load(&key).await.unwrap(), b("server wrote this"));

    // A creation while an Absent write consumes its body: it fails too.
    let fresh = format!("{p}/fresh");
    let (tx, body) = channel_body();
    let cond = WriteCondition::Absent;
    let write = store.store_stream_if(&fresh, body, &cond);
    let meddle = async {
        tx.send(Ok(b("mine, "))).await.unwrap();
        store.store(&fresh, b("theirs")).await.unwrap();
        tx.send(Ok(b("the end"))).await.unwrap();
        drop(tx);
    };
    let (r, ()) = tokio::join!(write, meddle);
    match r {
        Err(Error::PreconditionFailed { .. }) => {}
        other => {
            panic!("a creation landed during the body: expected PreconditionFailed, got {other:?}")
        }
    }
    assert_eq!(store.load(&fresh).await.unwrap(), b("theirs"));

    // Matches on a deleted key fails and creates nothing.
    let vf = store.load_versioned(&fresh).await.unwrap().version;
    store.delete(&fresh).await.unwrap();
    match store
        .store_stream_if(&fresh, chunked(b"y", &[1]), &WriteCondition::Matches(vf))
        .await
    {
        Err(Error::PreconditionFailed { .. }) => {}
        other => panic!("Matches on a deleted key: expected PreconditionFailed, got {other:?}"),
    }
    assert!(!store.exists(&fresh).await.unwrap());

    // Racing streamed compare-and-swaps from one version: exactly one wins.
    let race = format!("{p}/race");
    store.store(&race, b("0")).await.unwrap();
    let base = WriteCondition::Matches(store.load_versioned(&race).await.unwrap().version);
    let bodies: Vec<Vec<u8>> = (0..8).map(|i| pattern(40_000, i)).collect();
    let attempts = bodies.iter().map(|v| {
        let (race, base) = (race.clone(), base.clone());
        async move {
            store
                .store_stream_if(&race, chunked(v, &[10_000]), &base)
                .await
        }
    });
    let results = futures_join_all(attempts).await;
    let winners: Vec<usize> = (0..8).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 8 racing store_stream_if calls wins: {results:?}"
    );
    for r in &results {
        if let Err(e) = r {
            assert!(
                matches!(e, Error::PreconditionFailed { .. }),
                "losers fail with PreconditionFailed: {e:?}"
            );
        }
    }
    let now = store.load_versioned(&race).await.unwrap();
    assert!(
        now.value == bodies[winners[0]],
        "the value is the winner's body"
    );
    assert_eq!(&now.version, results[winners[0]].as_ref().unwrap());
    store.delete(&p).await.unwrap();
}
