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

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::key::InvalidKeyReason;
use crate::storage::{Storage, WriteCondition};
use crate::stream::{ByteStream, Stream, from_chunks};

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
    ranges(&*store).await;
    stream_writes(&*store).await;
    stream_write_errors(&*store).await;
    stream_write_cancellation(&*store).await;
    conditional_stream_writes(&*store).await;
    stream_reads(&*store).await;
    versioned_stream_rewrap(&*store).await;
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

// ---------------------------------------------------------------------------
// Ranges and streams.

/// `len` bytes that differ with `seed` and position.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2654435761) >> 13) as u8 ^ seed)
        .collect()
}

/// `value` cut into chunks of the sizes in `sizes`, cycled (0 gives an
/// empty chunk).
fn chunked(value: &[u8], sizes: &[usize]) -> ByteStream {
    let mut chunks = Vec::new();
    let (mut at, mut i) = (0, 0);
    while at < value.len() {
        let n = sizes[i % sizes.len()].min(value.len() - at);
        chunks.push(Bytes::copy_from_slice(&value[at..at + n]));
        at += n;
        i += 1;
    }
    from_chunks(chunks)
}

/// A body fed through a channel: it waits for the sender, and ends when the
/// sender is dropped.
struct ChannelBody(mpsc::Receiver<Result<Bytes>>);

impl Stream for ChannelBody {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn channel_body() -> (mpsc::Sender<Result<Bytes>>, ByteStream) {
    let (tx, rx) = mpsc::channel(16);
    (tx, Box::pin(ChannelBody(rx)))
}

/// A body with every byte of `inner` XORed with `mask`.
struct XorBody(ByteStream, u8);

impl Stream for XorBody {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mask = self.1;
        self.0.as_mut().poll_next(cx).map(|item| {
            item.map(|chunk| chunk.map(|c| c.iter().map(|b| b ^ mask).collect::<Bytes>()))
        })
    }
}

/// Reads `body` to its end: the bytes, and the error it ended with, if any.
/// Checks that nothing follows an error.
async fn drain(mut body: ByteStream) -> (Vec<u8>, Option<Error>) {
    let mut out = Vec::new();
    while let Some(item) = crate::stream::next(&mut body).await {
        match item {
            Ok(c) => out.extend_from_slice(&c),
            Err(e) => {
                assert!(
                    crate::stream::next(&mut body).await.is_none(),
                    "a stream yields nothing after its error"
                );
                return (out, Some(e));
            }
        }
    }
    (out, None)
}

/// The error a failing test body ends with: recognisable when it comes back.
fn body_error() -> Error {
    Error::Timeout {
        backend: "conformance-body",
        op: "produce the body",
    }
}

fn is_body_error(e: &Error) -> bool {
    matches!(
        e,
        Error::Timeout {
            backend: "conformance-body",
            ..
        }
    )
}

/// The keys under `p`, listed recursively: what a failed write must leave
/// unchanged (no temporary file or partial object may show up).
async fn keys_under(store: &dyn Storage, p: &str) -> Vec<String> {
    store.list(p, true).await.unwrap()
}

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

/// A body from a list of items.
struct IterBody<I>(I);

impl<I: Iterator<Item = Result<Bytes>> + Unpin> Stream for IterBody<I> {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.next())
    }
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

/// The suite's streaming and range checks catch what they are meant to:
/// each runs against a `MemoryStorage` with one deliberate flaw and must
/// fail with the matching message.
#[cfg(test)]
mod catches_flaws {
    use std::ops::Range;

    use async_trait::async_trait;

    use super::*;
    use crate::MemoryStorage;
    use crate::storage::{KeyInfo, Lease, Version, Versioned};
    use crate::stream::{ObjectStream, RangeRead, VersionedStream};

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Flaw {
        /// `store_stream` stores each prefix of the body as it arrives.
        TornStreamWrite,
        /// `store_stream_if` checks its condition before the body, then
        /// writes unconditionally.
        EarlyConditionOnly,
        /// `load_range` refuses an end beyond the size.
        NoClamp,
        /// `load_range` reports the range's length as the size.
        RangeSize,
        /// `load_stream` reads each chunk from the live value.
        LiveStream,
        /// `load_stream` drops the last byte.
        ShortStream,
        /// `load_stream_versioned` reports a version from before the read.
        StaleStreamVersion,
    }

    #[derive(Debug)]
    struct Flawed(MemoryStorage, Flaw);

    #[async_trait]
    impl Storage for Flawed {
        async fn store(&self, key: &str, value: Bytes) -> Result<()> {
            self.0.store(key, value).await
        }
        async fn store_if(&self, key: &str, value: Bytes, c: &WriteCondition) -> Result<Version> {
            self.0.store_if(key, value, c).await
        }
        async fn load_versioned(&self, key: &str) -> Result<Versioned> {
            self.0.load_versioned(key).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.0.delete(key).await
        }
        async fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<String>> {
            self.0.list(prefix, recursive).await
        }
        async fn stat(&self, key: &str) -> Result<KeyInfo> {
            self.0.stat(key).await
        }
        async fn try_lock(&self, name: &str) -> Result<Lease> {
            self.0.try_lock(name).await
        }
        async fn unlock(&self, lease: Lease) -> Result<()> {
            self.0.unlock(lease).await
        }
        fn lease_duration(&self) -> Duration {
            self.0.lease_duration()
        }

        async fn store_stream(&self, key: &str, mut body: ByteStream) -> Result<()> {
            if self.1 != Flaw::TornStreamWrite {
                return self.0.store_stream(key, body).await;
            }
            crate::validate_key(key)?;
            let mut acc = Vec::new();
            while let Some(c) = crate::stream::next(&mut body).await {
                acc.extend_from_slice(&c?);
                self.0.store(key, Bytes::from(acc.clone())).await?;
            }
            self.0.store(key, Bytes::from(acc)).await
        }

        async fn store_stream_if(
            &self,
            key: &str,
            body: ByteStream,
            c: &WriteCondition,
        ) -> Result<Version> {
            if self.1 != Flaw::EarlyConditionOnly {
                return self.0.store_stream_if(key, body, c).await;
            }
            crate::validate_key(key)?;
            let current = match self.0.load_versioned(key).await {
                Ok(v) => Some(v.version),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            let holds = match c {
                WriteCondition::Absent => current.is_none(),
                WriteCondition::Matches(v) => current.as_ref() == Some(v),
            };
            if !holds {
                return Err(Error::PreconditionFailed { key: key.into() });
            }
            let value = crate::stream::collect(body).await?;
            self.0.store(key, value).await?;
            Ok(self.0.load_versioned(key).await?.version)
        }

        async fn load_range(&self, key: &str, range: Range<u64>) -> Result<RangeRead> {
            let mut r = self.0.load_range(key, range.clone()).await?;
            match self.1 {
                Flaw::NoClamp if range.end > r.size => {
                    return Err(Error::RangeNotSatisfiable {
                        key: key.into(),
                        start: range.start,
                        size: r.size,
                    });
                }
                Flaw::RangeSize => r.size = r.bytes.len() as u64,
                _ => {}
            }
            Ok(r)
        }

        async fn load_stream(&self, key: &str) -> Result<ObjectStream> {
            let s = self.0.load_stream(key).await?;
            match self.1 {
                // Each chunk comes from whatever is stored when it is read.
                Flaw::LiveStream => Ok(ObjectStream {
                    size: s.size,
                    body: Box::pin(LazyRanges {
                        store: self.0.clone(),
                        key: key.to_owned(),
                        at: 0,
                        size: s.size,
                        fut: None,
                    }),
                }),
                Flaw::ShortStream if s.size > 0 => {
                    let v = s.collect().await?;
                    Ok(ObjectStream {
                        size: v.len() as u64,
                        body: crate::stream::once(v.slice(..v.len() - 1)),
                    })
                }
                _ => Ok(s),
            }
        }

        async fn load_stream_versioned(&self, key: &str) -> Result<VersionedStream> {
            let v = self.0.load_stream_versioned(key).await?;
            if self.1 == Flaw::StaleStreamVersion {
                return Ok(VersionedStream {
                    stream: v.stream,
                    version: Version::new("stale"),
                });
            }
            Ok(v)
        }
    }

    /// A stream that reads 4 KiB ranges of the live value, one per poll.
    struct LazyRanges {
        store: MemoryStorage,
        key: String,
        at: u64,
        size: u64,
        fut: Option<Pin<Box<dyn std::future::Future<Output = Result<RangeRead>> + Send>>>,
    }

    impl Stream for LazyRanges {
        type Item = Result<Bytes>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            if self.fut.is_none() {
                if self.at >= self.size {
                    return Poll::Ready(None);
                }
                let (store, key, at, size) =
                    (self.store.clone(), self.key.clone(), self.at, self.size);
                self.fut = Some(Box::pin(async move {
                    store.load_range(&key, at..(at + 4096).min(size)).await
                }));
            }
            let r = match self.fut.as_mut().map(|f| f.as_mut().poll(cx)) {
                Some(Poll::Ready(r)) => r,
                _ => return Poll::Pending,
            };
            self.fut = None;
            self.at += 4096;
            Poll::Ready(Some(r.map(|r| r.bytes)))
        }
    }

    /// Runs `check` against a store with `flaw`: it must panic with a
    /// message containing `expect`.
    async fn must_catch<F, Fut>(flaw: Flaw, check: F, expect: &str)
    where
        F: FnOnce(Arc<dyn Storage>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let store: Arc<dyn Storage> = Arc::new(Flawed(MemoryStorage::new(), flaw));
        let err = tokio::spawn(check(store))
            .await
            .expect_err(&format!("{flaw:?} went unnoticed"));
        let panic = err.into_panic();
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(msg.contains(expect), "{flaw:?}: caught, but with {msg:?}");
    }

    #[tokio::test]
    async fn the_stream_and_range_checks_catch_flawed_backends() {
        must_catch(
            Flaw::TornStreamWrite,
            |s| async move { stream_write_errors(&*s).await },
            "a failed streamed write changed the value",
        )
        .await;
        must_catch(
            Flaw::EarlyConditionOnly,
            |s| async move { conditional_stream_writes(&*s).await },
            "a write landed during the body",
        )
        .await;
        must_catch(
            Flaw::NoClamp,
            |s| async move { ranges(&*s).await },
            "load_range 10..20 of 10 bytes: RangeNotSatisfiable",
        )
        .await;
        must_catch(
            Flaw::RangeSize,
            |s| async move { ranges(&*s).await },
            "reports the whole size",
        )
        .await;
        must_catch(
            Flaw::LiveStream,
            |s| async move { stream_reads(&*s).await },
            "yields the old value whole, or fails",
        )
        .await;
        must_catch(
            Flaw::ShortStream,
            |s| async move { stream_reads(&*s).await },
            "load_stream yields the value",
        )
        .await;
        must_catch(
            Flaw::StaleStreamVersion,
            |s| async move { versioned_stream_rewrap(&*s).await },
            "load_stream_versioned reports the current version",
        )
        .await;
    }
}
