//! `store_if` hashes the current object before taking its write guard, so a
//! compare-and-swap on a large object does not hold up writers of other
//! keys that share the guard's stripe.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::sync::mpsc;

use bytes::Bytes;
use encstore_core::{Storage, WriteCondition};
use encstore_fs::FsStorage;
use xxhash_rust::xxh3::xxh3_64;

/// The write-guard stripe of a key (4096 stripes by the key's xxh3-64).
fn stripe(key: &str) -> u64 {
    xxh3_64(key.as_bytes()) % 4096
}

/// True when this process has a descriptor open on `path`.
fn has_open_fd(path: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    rd.flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|target| target == path))
}

/// A 256 MiB object `big` is compare-and-swapped (`store_if` with
/// `Matches`). Once the CAS is seen reading `big` (an open descriptor on it),
/// a `store_if` of another key in the same guard stripe starts, and it
/// completes first: the CAS's hash does not hold the stripe's guard. Both
/// writes take effect.
#[test]
fn hashing_a_large_object_does_not_hold_up_its_guard_stripe() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::new(dir.path().join("root")).unwrap();
    let other = (0..)
        .map(|i| format!("other-{i}"))
        .find(|k| stripe(k) == stripe("big"))
        .unwrap();
    let v = {
        let value = Bytes::from(vec![0x5a; 256 << 20]);
        rt.block_on(store.store_if("big", value, &WriteCondition::Absent))
            .unwrap()
    };
    let guard_file = store.root().join(format!(
        ".encstore-locks/guards/{:03x}.guard",
        stripe("big")
    ));
    assert!(guard_file.is_file(), "the stripe's guard file");
    let big = store.root().join("big");

    let (tx, rx) = mpsc::channel();
    let cas = {
        let (store, tx) = (store.clone(), tx.clone());
        rt.spawn(async move {
            let r = store
                .store_if(
                    "big",
                    Bytes::from_static(b"small"),
                    &WriteCondition::Matches(v),
                )
                .await;
            tx.send(("cas", r.map(|_| ()))).unwrap();
        })
    };
    while !has_open_fd(&big) {
        assert!(
            !cas.is_finished(),
            "the CAS finished before it was seen reading the object"
        );
        std::thread::yield_now();
    }
    {
        let (store, tx, other) = (store.clone(), tx.clone(), other.clone());
        rt.spawn(async move {
            let r = store
                .store_if(&other, Bytes::from_static(b"y"), &WriteCondition::Absent)
                .await;
            tx.send(("other", r.map(|_| ()))).unwrap();
        });
    }
    let first = rx.recv().unwrap();
    let second = rx.recv().unwrap();
    assert_eq!(
        (first.0, second.0),
        ("other", "cas"),
        "the write of another key in the stripe waited for the CAS"
    );
    first.1.unwrap();
    second.1.unwrap();
    assert_eq!(&rt.block_on(store.load("big")).unwrap()[..], b"small");
    assert_eq!(&rt.block_on(store.load(&other)).unwrap()[..], b"y");
}
