//! Streamed reads: `load_stream`, and the versioned read-modify-write of a
//! rewrap.

use bytes::Bytes;

use crate::error::Error;
use crate::storage::{Storage, WriteCondition};
use crate::stream::ByteStream;

use super::scratch_prefix;
use super::util::{XorBody, b, drain, pattern};

/// `load_stream` yields chunks that concatenate to the value, exactly
/// `size` bytes (a multi-MiB value, a small one, an empty one). A stream
/// opened before the key is overwritten yields the old value whole, or
/// fails; never a mix. Missing keys give [`Error::NotFound`] from the call
/// itself; invalid keys [`Error::InvalidKey`].
pub async fn stream_reads(store: &dyn Storage) {
    let p = scratch_prefix("stream-read");
    let key = format!("{p}/k");
    for value in [
        pattern(3 * 1024 * 1024 + 5, 3),
        b"small".to_vec(),
        Vec::new(),
    ] {
        store.store(&key, Bytes::from(value.clone())).await.unwrap();
        for versioned in [false, true] {
            let s = if versioned {
                store.load_stream_versioned(&key).await.unwrap().stream
            } else {
                store.load_stream(&key).await.unwrap()
            };
            assert_eq!(s.size, value.len() as u64, "load_stream reports the size");
            let (bytes, err) = drain(s.body).await;
            assert!(err.is_none(), "load_stream failed: {err:?}");
            assert!(
                bytes == value,
                "load_stream yields the value ({} bytes)",
                value.len()
            );
        }
    }

    // A stream opened, and its first chunk read, before an overwrite with a
    // value of the same size.
    let old = pattern(1024 * 1024, 7);
    store.store(&key, Bytes::from(old.clone())).await.unwrap();
    let mut s = store.load_stream(&key).await.unwrap();
    let first = crate::stream::next(&mut s.body).await;
    store
        .store(&key, Bytes::from(pattern(1024 * 1024, 8)))
        .await
        .unwrap();
    let (bytes, err) = match first {
        Some(Ok(first)) => {
            let (rest, err) = drain(s.body).await;
            ([&first[..], &rest[..]].concat(), err)
        }
        Some(Err(e)) => (Vec::new(), Some(e)),
        None => (Vec::new(), None),
    };
    assert!(
        err.is_some() || bytes == old,
        "a stream opened before an overwrite yields the old value whole, or fails"
    );

    let missing = format!("{p}/missing");
    assert!(matches!(
        store.load_stream(&missing).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.load_stream_versioned(&missing).await,
        Err(Error::NotFound { .. })
    ));
    for bad in ["", "a/../b", "/abs"] {
        assert!(matches!(
            store.load_stream(bad).await,
            Err(Error::InvalidKey { .. })
        ));
        assert!(matches!(
            store.load_stream_versioned(bad).await,
            Err(Error::InvalidKey { .. })
        ));
    }
    store.delete(&p).await.unwrap();
}

/// The constant-memory read-modify-write of a rewrap: a versioned stream
/// reports the version `load_versioned` reports; piping it, transformed,
/// into `store_stream_if` with `Matches` of that version writes the
/// transformed value and returns its new version. A plain write between the
/// versioned load and the conditional write makes the write fail with
/// [`Error::PreconditionFailed`], keeping the plain write's value.
pub async fn versioned_stream_rewrap(store: &dyn Storage) {
    let p = scratch_prefix("stream-rewrap");
    let key = format!("{p}/k");
    let value = pattern(2 * 1024 * 1024 + 9, 9);
    store.store(&key, Bytes::from(value.clone())).await.unwrap();
    let v1 = store.load_versioned(&key).await.unwrap().version;

    let vs = store.load_stream_versioned(&key).await.unwrap();
    assert_eq!(
        vs.version, v1,
        "load_stream_versioned reports the current version"
    );
    assert_eq!(vs.stream.size, value.len() as u64);
    let body: ByteStream = Box::pin(XorBody(vs.stream.body, 0xff));
    let v2 = store
        .store_stream_if(&key, body, &WriteCondition::Matches(vs.version))
        .await
        .unwrap();
    let now = store.load_versioned(&key).await.unwrap();
    let flipped: Vec<u8> = value.iter().map(|b| b ^ 0xff).collect();
    assert!(
        now.value == flipped,
        "the rewrapped value is the transformed stream"
    );
    assert_eq!(now.version, v2, "store_stream_if returns the new version");
    assert_ne!(v1, v2);

    // A plain write after the versioned load: the conditional write fails.
    let vs = store.load_stream_versioned(&key).await.unwrap();
    assert_eq!(vs.version, v2);
    store.store(&key, b("server wrote this")).await.unwrap();
    let body: ByteStream = Box::pin(XorBody(vs.stream.body, 0xff));
    match store
        .store_stream_if(&key, body, &WriteCondition::Matches(vs.version))
        .await
    {
        Err(Error::PreconditionFailed { .. }) => {}
        other => {
            panic!("a write after the versioned load: expected PreconditionFailed, got {other:?}")
        }
    }
    assert_eq!(store.load(&key).await.unwrap(), b("server wrote this"));
    store.delete(&p).await.unwrap();
}
