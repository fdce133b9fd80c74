//! Ranged reads: `load_range` (and `load_head`) at every boundary.

use bytes::Bytes;

use crate::error::Error;
use crate::storage::Storage;

use super::scratch_prefix;
use super::util::{b, pattern};

/// `load_range` at every boundary: empty ranges, a start equal to the size,
/// an end beyond it (clamped), a start beyond it
/// ([`Error::RangeNotSatisfiable`]), a start after the end
/// ([`Error::InvalidRange`]), the full range, the single first and last
/// bytes, an empty object, ranges across the backends' chunk sizes of a
/// larger value; missing and invalid keys. `load_head` agrees.
pub async fn ranges(store: &dyn Storage) {
    let p = scratch_prefix("range");
    let key = format!("{p}/k");
    store.store(&key, b("0123456789")).await.unwrap();
    let range = |r: std::ops::Range<u64>| {
        let key = key.clone();
        async move { store.load_range(&key, r).await }
    };
    for (r, want) in [
        (0..0, ""),
        (4..4, ""),
        (10..10, ""),
        (10..20, ""),
        (10..u64::MAX, ""),
        (3..7, "3456"),
        (5..100, "56789"),
        (0..10, "0123456789"),
        (0..u64::MAX, "0123456789"),
        (0..1, "0"),
        (9..10, "9"),
        (9..11, "9"),
    ] {
        let got = range(r.clone())
            .await
            .unwrap_or_else(|e| panic!("load_range {r:?} of 10 bytes: {e:?}"));
        assert_eq!(got.bytes, b(want), "load_range {r:?}");
        assert_eq!(got.size, 10, "load_range {r:?} reports the whole size");
    }
    for r in [11..12, 11..11, 11..u64::MAX, u64::MAX..u64::MAX] {
        match range(r.clone()).await {
            Err(Error::RangeNotSatisfiable {
                key: k,
                start,
                size,
            }) => {
                assert_eq!((k.as_str(), start, size), (key.as_str(), r.start, 10));
            }
            other => {
                panic!("load_range {r:?} of 10 bytes: expected RangeNotSatisfiable, got {other:?}")
            }
        }
    }
    #[allow(clippy::reversed_empty_ranges)]
    for r in [5..3, 11..5, u64::MAX..0] {
        match range(r.clone()).await {
            Err(Error::InvalidRange { start, end, .. }) => {
                assert_eq!((start, end), (r.start, r.end))
            }
            other => panic!("load_range {r:?}: expected InvalidRange, got {other:?}"),
        }
    }

    let empty = format!("{p}/empty");
    store.store(&empty, Bytes::new()).await.unwrap();
    for r in [0..0, 0..5] {
        let got = store.load_range(&empty, r.clone()).await.unwrap();
        assert_eq!(
            (got.bytes.len(), got.size),
            (0, 0),
            "{r:?} of an empty value"
        );
    }
    assert!(matches!(
        store.load_range(&empty, 1..2).await,
        Err(Error::RangeNotSatisfiable { size: 0, .. })
    ));

    let big = pattern((1 << 20) + 3, 0x11);
    let bigkey = format!("{p}/big");
    store
        .store(&bigkey, Bytes::from(big.clone()))
        .await
        .unwrap();
    let n = big.len() as u64;
    for r in [
        0..1,
        (64 << 10) - 1..(64 << 10) + 1,
        (256 << 10) - 5..(256 << 10) + 5,
        1000..500_000,
        n - 1..n,
        n - 5..n + 5,
        0..n,
        n..n,
    ] {
        let got = store.load_range(&bigkey, r.clone()).await.unwrap();
        let want = &big[r.start as usize..(r.end.min(n)) as usize];
        assert!(got.bytes == want, "load_range {r:?} of {n} bytes");
        assert_eq!(got.size, n);
    }
    assert_eq!(&store.load_head(&bigkey, 7).await.unwrap()[..], &big[..7]);

    let missing = format!("{p}/missing");
    assert!(matches!(
        store.load_range(&missing, 0..1).await,
        Err(Error::NotFound { .. })
    ));
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 2..1;
    assert!(
        matches!(
            store.load_range(&missing, backwards).await,
            Err(Error::InvalidRange { .. })
        ),
        "an invalid range is refused before the key is looked up"
    );
    assert!(matches!(
        store.load_range("a/../b", 0..1).await,
        Err(Error::InvalidKey { .. })
    ));
    store.delete(&p).await.unwrap();
}
