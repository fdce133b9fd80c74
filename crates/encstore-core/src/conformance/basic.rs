//! The basic operations: store, load, overwrite, delete, exists, list,
//! stat, invalid keys, `load_head`.

use std::time::Duration;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::key::InvalidKeyReason;
use crate::storage::{Storage, WriteCondition};

use super::util::b;
use super::{SuiteOptions, scratch_prefix};

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

/// `load_head` returns at most the first `len` bytes.
pub async fn load_head(store: &dyn Storage) {
    let p = scratch_prefix("head");
    let key = format!("{p}/k");
    store.store(&key, b("0123456789")).await.unwrap();
    assert_eq!(store.load_head(&key, 5).await.unwrap(), b("01234"));
    assert_eq!(store.load_head(&key, 100).await.unwrap(), b("0123456789"));
    store.delete(&p).await.unwrap();
}
