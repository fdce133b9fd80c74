//! Streamed writes and reads, and ranged reads, against a real S3 server
//! (SeaweedFS on loopback, `eval "$(bash scripts/seaweedfs.sh start)"`),
//! most of them through the loopback proxy of tests/proxy/mod.rs, which
//! logs every request and the bytes that crossed the wire:
//!
//! - multipart uploads: the shape of the upload (part sizes, one `PUT` up
//!   to one part), round trips, versions;
//! - a body that fails mid-upload, and a write dropped mid-upload, leave
//!   the old value, no new key and no incomplete upload;
//! - conditional streamed writes larger than a part: by default (not AWS)
//!   buffered up to a bound into one conditional `PUT`, which keeps the
//!   compare-and-swap against a plain write landing mid-body and among
//!   racers, and refused beyond the bound; with
//!   `ConditionalCompletion::Enabled`, a multipart upload whose completion
//!   carries the condition, checked at the end against a plain write and a
//!   creation landing mid-body, and early against a stale version;
//! - a server that ignores conditions on multipart completions (with
//!   `Enabled`): the probe finds out, bounded buffered fallback;
//! - a ranged read moves only the range; a streamed read whose response is
//!   cut resumes pinned to its version, and fails (never mixes) when the
//!   object changed;
//! - a 1 GiB object written and read, and a 256 MiB one rewrapped (a
//!   versioned stream piped into a conditional streamed write), in a child
//!   process whose peak resident memory (`VmHWM`) stays under 64 MiB, with
//!   a control child showing that the measure sees a collected value.
//!
//! Without a server every test prints `SKIPPED` and passes, unless
//! `ENCSTORE_REQUIRE_SERVICES=1`.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use encstore_core::stream::Stream;
use encstore_core::{ByteStream, Error, Result, Storage, WriteCondition, new_lease_token};
use encstore_objstore::object_store::{BackoffConfig, RetryConfig};
use encstore_objstore::testing::proxy::{self, Proxy, incomplete_uploads};
use encstore_objstore::{
    ConditionalCompletion, MIN_PART_SIZE, ObjectStorage, PROBE_OBJECT, S3StorageBuilder,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;

const MIB: usize = 1 << 20;
/// The part size of these tests: the smallest S3 accepts.
const PART: usize = MIN_PART_SIZE;

fn server(test: &str) -> Option<(String, String)> {
    encstore_objstore::testing::server(test)
}

fn unique_prefix(test: &str) -> String {
    format!(
        "encstore-objstore-streaming/{test}-{}",
        &new_lease_token().unwrap()[..12]
    )
}

fn builder(endpoint: &str, bucket: &str, prefix: &str) -> S3StorageBuilder {
    S3StorageBuilder::from_env(bucket, prefix)
        .endpoint(endpoint)
        .allow_http(true)
        .part_size(PART)
        .lease_duration(Duration::from_secs(2))
}

fn store(endpoint: &str, bucket: &str, prefix: &str) -> ObjectStorage {
    builder(endpoint, bucket, prefix).build().unwrap()
}

/// A store that puts conditions on multipart completions (which SeaweedFS
/// honours one at a time, but not atomically: see docs/backends.md).
fn completing_store(endpoint: &str, bucket: &str, prefix: &str) -> ObjectStorage {
    builder(endpoint, bucket, prefix)
        .conditional_completion(ConditionalCompletion::Enabled)
        .build()
        .unwrap()
}

/// `len` bytes that differ with `seed` and along the value.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// `value` as a body of chunks of `size` bytes.
fn chunks_of(value: &[u8], size: usize) -> ByteStream {
    let chunks: Vec<Bytes> = value.chunks(size).map(Bytes::copy_from_slice).collect();
    encstore_core::stream::from_chunks(chunks)
}

/// A body fed by the test through a channel.
fn channel_body() -> (mpsc::Sender<Result<Bytes>>, ByteStream) {
    struct Rx(mpsc::Receiver<Result<Bytes>>);
    impl Stream for Rx {
        type Item = Result<Bytes>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
    let (tx, rx) = mpsc::channel(4);
    (tx, Box::pin(Rx(rx)))
}

async fn send_all(tx: &mpsc::Sender<Result<Bytes>>, value: &[u8]) {
    for c in value.chunks(MIB) {
        tx.send(Ok(Bytes::copy_from_slice(c))).await.unwrap();
    }
}

/// The requests in the proxy's log since `from` that match.
fn requests(proxy: &Proxy, from: usize, f: impl Fn(&proxy::Logged) -> bool) -> Vec<proxy::Logged> {
    proxy.log()[from..]
        .iter()
        .filter(|l| f(l))
        .cloned()
        .collect()
}

fn is_part(l: &proxy::Logged) -> bool {
    l.method == "PUT" && l.query.contains("partNumber=")
}

fn is_create_upload(l: &proxy::Logged) -> bool {
    l.method == "POST" && l.query.starts_with("uploads")
}

fn is_completion(l: &proxy::Logged) -> bool {
    l.method == "POST" && l.query.contains("uploadId=")
}

fn is_abort(l: &proxy::Logged) -> bool {
    l.method == "DELETE" && l.query.contains("uploadId=")
}

/// Waits until the proxy has seen `n` successful part uploads of `key`
/// since `from`.
async fn wait_for_parts(proxy: &Proxy, from: usize, key: &str, n: usize) {
    let path = format!("/{key}");
    let started = Instant::now();
    while requests(proxy, from, |l| {
        is_part(l) && l.status == 200 && l.path.ends_with(&path)
    })
    .len()
        < n
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "fewer than {n} parts of {key} were uploaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no incomplete multipart upload is left under `prefix`.
async fn assert_no_uploads_left(endpoint: &str, bucket: &str, prefix: &str) {
    let started = Instant::now();
    loop {
        let left = incomplete_uploads(endpoint, bucket, prefix).await;
        if left.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "incomplete uploads left: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The error a failing test body ends with.
fn body_error() -> Error {
    Error::Timeout {
        backend: "test-body",
        op: "produce the body",
    }
}

// ---------------------------------------------------------------------------
// Multipart writes.

/// A body of up to one part is one `PUT`; a larger one is a multipart
/// upload of full parts and a shorter last one, visible only once complete,
/// whose ETag is the version `store_stream_if` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_writes_have_the_expected_shape_and_round_trip() {
    let Some((endpoint, bucket)) = server("multipart_shape") else {
        return;
    };
    let prefix = unique_prefix("shape");
    let proxy = Proxy::start(&endpoint, false).await;
    let s = store(&proxy.endpoint, &bucket, &prefix);
    for (len, chunk, parts) in [
        (PART, 300_001, 0),
        (PART + 1, MIB, 2),
        (2 * PART + 12_345, 300_001, 3),
        (3 * PART, 7, 3),
    ] {
        let value = pattern(len, len as u8);
        let from = proxy.log().len();
        s.store_stream("k", chunks_of(&value, chunk)).await.unwrap();
        let log = proxy.log()[from..].to_vec();
        let part_sizes: Vec<usize> = log
            .iter()
            .filter(|l| is_part(l))
            .map(|l| l.request_bytes)
            .collect();
        if parts == 0 {
            assert!(part_sizes.is_empty(), "{len}: one PUT");
            let puts: Vec<_> = log.iter().filter(|l| l.method == "PUT").collect();
            assert_eq!(puts.len(), 1, "{len}: {log:?}");
            assert_eq!(puts[0].request_bytes, len);
        } else {
            let mut want = vec![PART; parts - 1];
            want.push(len - PART * (parts - 1));
            let mut sorted = part_sizes.clone();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            assert_eq!(sorted, want, "{len}: part sizes");
            assert_eq!(log.iter().filter(|l| is_create_upload(l)).count(), 1);
            assert_eq!(log.iter().filter(|l| is_completion(l)).count(), 1);
            assert!(!log.iter().any(|l| l.conditional), "an unconditional write");
        }
        let got = s.load_versioned("k").await.unwrap();
        assert!(got.value == value, "{len}: round trip");
        let etag = got.version.as_str();
        if parts == 0 {
            assert!(!etag.contains('-'), "{etag}");
        } else {
            assert!(etag.ends_with(&format!("-{parts}\"")), "{etag}");
        }
    }

    // Conditional multipart writes return the version load reports.
    let s = completing_store(&proxy.endpoint, &bucket, &prefix);
    let from = proxy.log().len();
    let value = pattern(2 * PART + 3, 9);
    let v1 = s
        .store_stream_if("c", chunks_of(&value, MIB), &WriteCondition::Absent)
        .await
        .unwrap();
    let got = s.load_versioned("c").await.unwrap();
    assert_eq!(got.version, v1);
    assert!(got.value == value);
    let value2 = pattern(2 * PART + 3, 10);
    let v2 = s
        .store_stream_if(
            "c",
            chunks_of(&value2, MIB),
            &WriteCondition::Matches(v1.clone()),
        )
        .await
        .unwrap();
    assert_ne!(v1, v2);
    let got = s.load_versioned("c").await.unwrap();
    assert_eq!(got.version, v2);
    assert!(got.value == value2);
    let completions = requests(&proxy, from, |l| is_completion(l) && l.path.ends_with("/c"));
    assert_eq!(completions.len(), 2);
    assert_eq!(completions[1].if_match.as_deref(), Some(v1.as_str()));
    assert_no_uploads_left(&endpoint, &bucket, &prefix).await;
    s.delete("k").await.unwrap();
    s.delete("c").await.unwrap();
}

/// A body that fails after several parts were uploaded: the body's error
/// comes back as is, the upload is aborted, and nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_error_mid_upload_writes_nothing() {
    let Some((endpoint, bucket)) = server("multipart_body_error") else {
        return;
    };
    let prefix = unique_prefix("body-error");
    let proxy = Proxy::start(&endpoint, false).await;
    let s = completing_store(&proxy.endpoint, &bucket, &prefix);
    let old = pattern(100_000, 1);
    s.store("k", Bytes::from(old.clone())).await.unwrap();
    let v = s.load_versioned("k").await.unwrap().version;
    for (key, cond) in [
        ("k", None),
        ("new/k", None),
        ("k", Some(WriteCondition::Matches(v.clone()))),
        ("new/k", Some(WriteCondition::Absent)),
    ] {
        let from = proxy.log().len();
        let (tx, body) = channel_body();
        let write = {
            let s = s.clone();
            let cond = cond.clone();
            tokio::spawn(async move {
                match &cond {
                    None => s.store_stream(key, body).await.map(|_| ()),
                    Some(c) => s.store_stream_if(key, body, c).await.map(|_| ()),
                }
            })
        };
        send_all(&tx, &pattern(3 * PART, 4)).await;
        // The error comes once two parts reached the server.
        wait_for_parts(&proxy, from, key, 2).await;
        tx.send(Err(body_error())).await.unwrap();
        let _ = tx.send(Ok(Bytes::from_static(b"never read"))).await;
        match write.await.unwrap() {
            Err(Error::Timeout {
                backend: "test-body",
                ..
            }) => {}
            other => panic!("{key} {cond:?}: expected the body's error, got {other:?}"),
        }
        let on_key = |f: fn(&proxy::Logged) -> bool| {
            requests(&proxy, from, |l| {
                f(l) && l.path.ends_with(&format!("/{key}"))
            })
        };
        let parts = on_key(is_part);
        assert!(
            parts.len() >= 2,
            "{key} {cond:?}: the error came after parts were uploaded: {parts:?}"
        );
        assert_eq!(on_key(is_completion).len(), 0);
        assert_eq!(on_key(is_abort).len(), 1, "aborted");
        assert_no_uploads_left(&endpoint, &bucket, &prefix).await;
    }
    let now = s.load_versioned("k").await.unwrap();
    assert!(now.value == old);
    assert_eq!(now.version, v);
    assert!(!s.exists("new/k").await.unwrap());
    assert_eq!(s.list("", true).await.unwrap(), vec!["k"]);
    s.delete("k").await.unwrap();
}

/// A streamed write dropped while its body is pending, after parts were
/// uploaded: nothing is written and the upload is aborted in the
/// background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_upload_writes_nothing_and_is_aborted() {
    let Some((endpoint, bucket)) = server("multipart_dropped") else {
        return;
    };
    let prefix = unique_prefix("dropped");
    let proxy = Proxy::start(&endpoint, false).await;
    let s = completing_store(&proxy.endpoint, &bucket, &prefix);
    s.store("k", Bytes::from_static(b"old")).await.unwrap();
    let v = s.load_versioned("k").await.unwrap().version;
    for (key, cond) in [
        ("k", None),
        ("k", Some(WriteCondition::Matches(v.clone()))),
        ("new", Some(WriteCondition::Absent)),
    ] {
        let from = proxy.log().len();
        let (tx, body) = channel_body();
        let task = {
            let s = s.clone();
            let cond = cond.clone();
            tokio::spawn(async move {
                match cond {
                    None => s.store_stream(key, body).await.map(|_| ()),
                    Some(c) => s.store_stream_if(key, body, &c).await.map(|_| ()),
                }
            })
        };
        send_all(&tx, &pattern(3 * PART, 3)).await;
        // Wait until two parts reached the server.
        wait_for_parts(&proxy, from, key, 2).await;
        let path = format!("/{key}");
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        drop(tx);
        assert_no_uploads_left(&endpoint, &bucket, &prefix).await;
        assert_eq!(
            requests(&proxy, from, |l| is_completion(l)
                && l.path.ends_with(&path))
            .len(),
            0,
            "{cond:?}"
        );
        let now = s.load_versioned("k").await.unwrap();
        assert_eq!(
            (now.value, now.version),
            (Bytes::from_static(b"old"), v.clone())
        );
        assert!(!s.exists("new").await.unwrap());
    }
    s.delete("k").await.unwrap();
}

// ---------------------------------------------------------------------------
// Conditional multipart writes.

/// Off AWS, by default, a conditional streamed write larger than a part is
/// buffered (up to the bound) and written with one conditional `PUT`: a
/// plain write landing while the body is read makes it fail, of racing
/// writes from one version exactly one wins, no multipart upload is made
/// for it, and a body beyond the bound is refused, writing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_conditional_writes_are_buffered_by_default() {
    let Some((endpoint, bucket)) = server("buffered_cas") else {
        return;
    };
    let prefix = unique_prefix("buffered-cas");
    let proxy = Proxy::start(&endpoint, false).await;
    let s = builder(&proxy.endpoint, &bucket, &prefix)
        .max_buffered_conditional_write((3 * PART) as u64)
        .build()
        .unwrap();
    s.store("k", Bytes::from_static(b"v1")).await.unwrap();
    let v1 = s.load_versioned("k").await.unwrap().version;

    // A plain write lands while the body is read.
    let (tx, body) = channel_body();
    let write = {
        let s = s.clone();
        let cond = WriteCondition::Matches(v1.clone());
        tokio::spawn(async move { s.store_stream_if("k", body, &cond).await })
    };
    send_all(&tx, &pattern(2 * PART, 1)).await;
    s.store("k", Bytes::from_static(b"server wrote this"))
        .await
        .unwrap();
    send_all(&tx, &pattern(PART, 2)).await;
    drop(tx);
    match write.await.unwrap() {
        Err(Error::PreconditionFailed { key }) => assert_eq!(key, "k"),
        other => panic!("expected PreconditionFailed, got {other:?}"),
    }
    assert_eq!(
        s.load("k").await.unwrap(),
        Bytes::from_static(b"server wrote this")
    );

    // Racers from one version: exactly one wins.
    let base = s.load_versioned("k").await.unwrap().version;
    let bodies: Vec<Vec<u8>> = (0..4).map(|i| pattern(PART + MIB, 20 + i)).collect();
    let tasks: Vec<_> = bodies
        .iter()
        .map(|b| {
            let s = s.clone();
            let body = chunks_of(b, 256 << 10);
            let cond = WriteCondition::Matches(base.clone());
            tokio::spawn(async move { s.store_stream_if("k", body, &cond).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let winners: Vec<usize> = (0..4).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, Error::PreconditionFailed { .. }), "{e:?}");
        }
    }
    let now = s.load_versioned("k").await.unwrap();
    assert!(now.value == bodies[winners[0]]);
    assert_eq!(&now.version, results[winners[0]].as_ref().unwrap());
    // Single PUTs: no upload, and the probe's multipart stage never ran.
    assert!(
        !proxy.log().iter().any(is_create_upload),
        "no multipart upload"
    );

    // Beyond the bound: refused, nothing written.
    let r = s
        .store_stream_if(
            "k",
            chunks_of(&pattern(3 * PART + 1, 3), MIB),
            &WriteCondition::Matches(now.version.clone()),
        )
        .await;
    match r {
        Err(Error::Unsupported {
            backend: "s3",
            op,
            reason,
        }) => {
            assert_eq!(op, "write a large stream conditionally");
            assert!(reason.contains("not relied on"), "{reason}");
            assert!(
                reason.contains("conditional_completion(Enabled)"),
                "{reason}"
            );
            assert!(reason.contains("Nothing was written"), "{reason}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert_eq!(s.load_versioned("k").await.unwrap().version, now.version);
    s.delete("k").await.unwrap();
}

/// With conditions on multipart completions (`Enabled`), the
/// compare-and-swap of a large streamed write is checked when the upload
/// completes: a plain write (or a creation) landing while the body is
/// uploaded makes it fail with the completion refused (412), keeping the
/// other write; a condition that already fails is found before any upload
/// starts. The multipart stage of the probe runs once per handle. (Racing
/// conditional completions are not tested here: SeaweedFS does not make
/// them atomic, which is why `Auto` does not use them off AWS.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_completions_check_the_condition_at_the_end() {
    let Some((endpoint, bucket)) = server("multipart_cas") else {
        return;
    };
    let prefix = unique_prefix("cas");
    let proxy = Proxy::start(&endpoint, false).await;
    let s = completing_store(&proxy.endpoint, &bucket, &prefix);
    s.store("k", Bytes::from_static(b"v1")).await.unwrap();
    let v1 = s.load_versioned("k").await.unwrap().version;
    // A plain write lands after parts were uploaded.
    // (It waits for the upload to start: before, the write may also fail
    // early, which the contract allows.)
    let from = proxy.log().len();
    let (tx, body) = channel_body();
    let write = {
        let s = s.clone();
        let cond = WriteCondition::Matches(v1.clone());
        tokio::spawn(async move { s.store_stream_if("k", body, &cond).await })
    };
    send_all(&tx, &pattern(2 * PART, 1)).await;
    wait_for_parts(&proxy, from, "k", 1).await;
    s.store("k", Bytes::from_static(b"server wrote this"))
        .await
        .unwrap();
    send_all(&tx, &pattern(PART, 2)).await;
    drop(tx);
    match write.await.unwrap() {
        Err(Error::PreconditionFailed { key }) => assert_eq!(key, "k"),
        other => panic!("expected PreconditionFailed, got {other:?}"),
    }
    assert_eq!(
        s.load("k").await.unwrap(),
        Bytes::from_static(b"server wrote this")
    );
    // It was refused at the completion, which carried the condition.
    let completions: Vec<_> = proxy
        .log()
        .into_iter()
        .filter(|l| is_completion(l) && l.path.ends_with("/k"))
        .collect();
    assert_eq!(completions.len(), 1, "{completions:?}");
    assert_eq!(completions[0].if_match.as_deref(), Some(v1.as_str()));
    assert_eq!(completions[0].status, 412);
    // The probe's multipart stage ran once, on the sentinel.
    let probe_completions = proxy
        .log()
        .iter()
        .filter(|l| is_completion(l) && l.path.ends_with(PROBE_OBJECT))
        .count();
    assert_eq!(probe_completions, 2);

    // A creation lands while an Absent write uploads.
    let from = proxy.log().len();
    let (tx, body) = channel_body();
    let write = {
        let s = s.clone();
        tokio::spawn(async move {
            s.store_stream_if("fresh", body, &WriteCondition::Absent)
                .await
        })
    };
    send_all(&tx, &pattern(2 * PART, 3)).await;
    wait_for_parts(&proxy, from, "fresh", 1).await;
    s.store("fresh", Bytes::from_static(b"theirs"))
        .await
        .unwrap();
    send_all(&tx, &pattern(MIB, 4)).await;
    drop(tx);
    assert!(
        matches!(write.await.unwrap(), Err(Error::PreconditionFailed { .. })),
        "Absent lost to a creation"
    );
    assert_eq!(
        s.load("fresh").await.unwrap(),
        Bytes::from_static(b"theirs")
    );

    // A stale version fails before any upload is created.
    let from = proxy.log().len();
    let r = s
        .store_stream_if(
            "k",
            chunks_of(&pattern(2 * PART, 5), MIB),
            &WriteCondition::Matches(v1),
        )
        .await;
    assert!(matches!(r, Err(Error::PreconditionFailed { .. })), "{r:?}");
    assert!(requests(&proxy, from, is_create_upload).is_empty());
    assert!(requests(&proxy, from, is_part).is_empty());
    // ... and the probe did not run again.
    assert!(requests(&proxy, from, |l| l.path.ends_with(PROBE_OBJECT)).is_empty());

    assert_no_uploads_left(&endpoint, &bucket, &prefix).await;
    assert_eq!(
        s.list("", true).await.unwrap(),
        vec!["fresh".to_owned(), "k".to_owned()]
    );
    s.delete("k").await.unwrap();
    s.delete("fresh").await.unwrap();
}

/// A server that honours conditional `PUT`s but ignores conditions on
/// multipart completions (simulated by a proxy that drops them from
/// completions only): the probe's multipart stage says so; large
/// conditional writes up to the buffered bound become one conditional
/// `PUT` and keep compare-and-swap; beyond it they are refused with
/// `Unsupported` and write nothing. Plain streamed writes still use
/// multipart uploads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_completion_conditions_fall_back_to_a_bounded_conditional_put() {
    let Some((endpoint, bucket)) = server("multipart_ignored") else {
        return;
    };
    let prefix = unique_prefix("ignored-completions");
    let proxy = Proxy::start_stripping_completions(&endpoint).await;
    let s = builder(&proxy.endpoint, &bucket, &prefix)
        .conditional_completion(ConditionalCompletion::Enabled)
        .max_buffered_conditional_write((2 * PART) as u64)
        .build()
        .unwrap();
    s.store("k", Bytes::from_static(b"old")).await.unwrap();
    let v = s.load_versioned("k").await.unwrap().version;

    // Within the bound: one conditional PUT, no upload of the key.
    let value = pattern(PART + MIB, 1);
    let from = proxy.log().len();
    let v2 = s
        .store_stream_if(
            "k",
            chunks_of(&value, MIB),
            &WriteCondition::Matches(v.clone()),
        )
        .await
        .unwrap();
    let key_requests = requests(&proxy, from, |l| l.path.ends_with("/k"));
    assert!(
        key_requests
            .iter()
            .all(|l| !is_create_upload(l) && !is_part(l)),
        "{key_requests:?}"
    );
    let puts: Vec<_> = key_requests.iter().filter(|l| l.method == "PUT").collect();
    assert_eq!(puts.len(), 1);
    assert!(puts[0].conditional && puts[0].request_bytes == value.len());
    assert_eq!(s.load_versioned("k").await.unwrap().version, v2);
    // ... and the compare-and-swap holds there.
    let r = s
        .store_stream_if("k", chunks_of(&value, MIB), &WriteCondition::Matches(v))
        .await;
    assert!(matches!(r, Err(Error::PreconditionFailed { .. })), "{r:?}");

    // Beyond the bound: refused, nothing written.
    let r = s
        .store_stream_if(
            "k",
            chunks_of(&pattern(2 * PART + 1, 2), MIB),
            &WriteCondition::Matches(v2.clone()),
        )
        .await;
    match r {
        Err(Error::Unsupported {
            backend: "s3",
            op,
            reason,
        }) => {
            assert_eq!(op, "write a large stream conditionally");
            assert!(
                reason.contains("accepted a multipart completion"),
                "{reason}"
            );
            assert!(reason.contains(&proxy.endpoint), "{reason}");
            assert!(reason.contains("Nothing was written"), "{reason}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let now = s.load_versioned("k").await.unwrap();
    assert_eq!(now.version, v2);
    assert!(now.value == value);

    // Plain streamed writes are unaffected.
    let big = pattern(2 * PART + 1, 3);
    s.store_stream("k", chunks_of(&big, MIB)).await.unwrap();
    assert!(s.load("k").await.unwrap() == big);
    assert_no_uploads_left(&endpoint, &bucket, &prefix).await;
    s.delete("k").await.unwrap();
}

// ---------------------------------------------------------------------------
// Ranged and streamed reads.

/// `load_range` is one ranged GET whose response carries exactly the
/// range; an empty range is one HEAD; `load_head` reads only its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ranged_read_transfers_only_the_range() {
    let Some((endpoint, bucket)) = server("range_wire") else {
        return;
    };
    let prefix = unique_prefix("range-wire");
    let direct = store(&endpoint, &bucket, &prefix);
    let size = 16 * MIB + 5;
    let value = pattern(size, 7);
    direct
        .store_stream("big", chunks_of(&value, MIB))
        .await
        .unwrap();
    let proxy = Proxy::start(&endpoint, false).await;
    let s = store(&proxy.endpoint, &bucket, &prefix);

    let start = 7 * MIB + 3;
    let r = s
        .load_range("big", start as u64..(start + 4096) as u64)
        .await
        .unwrap();
    assert_eq!(r.size, size as u64);
    assert!(r.bytes == value[start..start + 4096]);
    let log = proxy.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].method, "GET");
    assert_eq!(
        log[0].range.as_deref(),
        Some(format!("bytes={start}-{}", start + 4095).as_str())
    );
    assert_eq!(log[0].response_bytes, 4096);

    let head = s.load_head("big", 5).await.unwrap();
    assert!(head == value[..5]);
    let log = proxy.log();
    assert_eq!((log.len(), log[1].response_bytes), (2, 5));

    // Clamped at the end: only what exists.
    let r = s
        .load_range("big", (size - 10) as u64..u64::MAX)
        .await
        .unwrap();
    assert!(r.bytes == value[size - 10..]);
    assert_eq!(proxy.log()[2].response_bytes, 10);

    // Empty ranges: a HEAD, no body.
    let r = s.load_range("big", 100..100).await.unwrap();
    assert_eq!((r.bytes.len(), r.size), (0, size as u64));
    let r = s
        .load_range("big", size as u64..size as u64 + 9)
        .await
        .unwrap();
    assert_eq!((r.bytes.len(), r.size), (0, size as u64));
    match s.load_range("big", size as u64 + 1..size as u64 + 2).await {
        Err(Error::RangeNotSatisfiable { size: got, .. }) => assert_eq!(got, size as u64),
        other => panic!("expected RangeNotSatisfiable, got {other:?}"),
    }
    let total: usize = proxy.log().iter().map(|l| l.response_bytes).sum();
    assert!(
        total < 4096 + 5 + 10 + 2048,
        "{total} bytes moved (error bodies included)"
    );
    s.delete("big").await.unwrap();
}

/// No retries in object_store: the stream's own resumption is what runs.
fn no_retries() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 0,
        retry_timeout: Duration::from_secs(1),
    }
}

/// A streamed read whose response is cut short resumes with a ranged GET
/// pinned to the first response's ETag, and yields the value whole. When
/// the object was replaced before the resumption, the stream fails with
/// `PreconditionFailed` after a prefix of the old value: never a mix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_resumes_on_its_version_or_fails() {
    let Some((endpoint, bucket)) = server("stream_resume") else {
        return;
    };
    let prefix = unique_prefix("resume");
    let direct = store(&endpoint, &bucket, &prefix);
    let value = pattern(12 * MIB, 1);
    direct.store("k", Bytes::from(value.clone())).await.unwrap();
    let etag = direct.load_versioned("k").await.unwrap().version;
    let proxy = Proxy::start(&endpoint, false).await;
    let s = builder(&proxy.endpoint, &bucket, &prefix)
        .retry(no_retries())
        .build()
        .unwrap();

    let cut = 3 * MIB + 17;
    for versioned in [false, true] {
        let from = proxy.log().len();
        proxy.cut_next_get("/k", cut);
        let st = if versioned {
            let vs = s.load_stream_versioned("k").await.unwrap();
            assert_eq!(vs.version, etag);
            vs.stream
        } else {
            s.load_stream("k").await.unwrap()
        };
        assert_eq!(st.size, value.len() as u64);
        let got = st.collect().await.unwrap();
        assert!(got == value, "the value, whole");
        let gets = requests(&proxy, from, |l| l.method == "GET");
        assert_eq!(gets.len(), 2, "{gets:?}");
        assert_eq!(gets[0].response_bytes, cut);
        assert_eq!(
            gets[1].range.as_deref(),
            Some(format!("bytes={cut}-").as_str())
        );
        assert_eq!(gets[1].if_match.as_deref(), Some(etag.as_str()));
        assert_eq!(gets[1].response_bytes, value.len() - cut);
    }

    // Replaced between the cut and the resumption: it fails.
    proxy.cut_next_get("/k", cut);
    let mut st = s.load_stream("k").await.unwrap();
    let mut got = BytesMut::new();
    got.extend_from_slice(&st.body.next().await.unwrap().unwrap());
    direct
        .store("k", Bytes::from(pattern(12 * MIB, 2)))
        .await
        .unwrap();
    let mut err = None;
    while let Some(item) = st.body.next().await {
        match item {
            Ok(c) => got.extend_from_slice(&c),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert!(st.body.next().await.is_none(), "nothing after the error");
    match err {
        Some(Error::PreconditionFailed { key }) => assert_eq!(key, "k"),
        other => panic!("expected PreconditionFailed, got {other:?}"),
    }
    assert_eq!(got.len(), cut);
    assert!(got[..] == value[..cut], "only the old value's bytes");
    s.delete("k").await.unwrap();
}

// ---------------------------------------------------------------------------
// A gigabyte in constant memory, in a child process.

/// Values are made of 1 MiB units.
const UNIT: usize = MIB;
/// Peak resident memory allowed to a child streaming 1 GiB.
const MEMORY_LIMIT_KB: u64 = 64 << 10;
const CHILD_ENV: &str = "ENCSTORE_OBJSTORE_STREAM_CHILD";
const PREFIX_ENV: &str = "ENCSTORE_OBJSTORE_STREAM_PREFIX";
const SEED_A: u64 = 0xa11c_e000_0000_0001;
const SEED_B: u64 = 0xb0b0_0000_0000_0002;

fn block() -> &'static [u8] {
    static BLOCK: OnceLock<Vec<u8>> = OnceLock::new();
    BLOCK.get_or_init(|| {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut v = Vec::with_capacity(UNIT);
        while v.len() < UNIT {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            v.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        v
    })
}

/// Unit `i` of the value with `seed`: the block, its first 8 bytes
/// replaced by `i ^ seed`.
fn unit(seed: u64, i: u64) -> Vec<u8> {
    let mut v = block().to_vec();
    v[..8].copy_from_slice(&(i ^ seed).to_le_bytes());
    v
}

/// A body of `units` units, generated as it is read.
struct Generated {
    seed: u64,
    next: u64,
    units: u64,
}

impl Stream for Generated {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.next == self.units {
            return Poll::Ready(None);
        }
        let u = unit(self.seed, self.next);
        self.next += 1;
        Poll::Ready(Some(Ok(Bytes::from(u))))
    }
}

/// Checks a body of any chunking against the value with `seed`, one unit
/// at a time; returns the number of units.
async fn check_body(mut body: ByteStream, seed: u64) -> u64 {
    let mut buf = Vec::with_capacity(UNIT);
    let mut units = 0;
    while let Some(chunk) = body.next().await {
        let mut chunk = &chunk.unwrap()[..];
        while !chunk.is_empty() {
            let n = (UNIT - buf.len()).min(chunk.len());
            buf.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if buf.len() == UNIT {
                assert!(buf == unit(seed, units), "unit {units} differs");
                units += 1;
                buf.clear();
            }
        }
    }
    assert!(buf.is_empty(), "a partial unit at the end");
    units
}

/// Rewrites the unit stamps of a stream from seed `from` to seed `to`.
struct Restamp {
    inner: ByteStream,
    offset: u64,
    from: u64,
    to: u64,
}

impl Stream for Restamp {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(c))) => c,
            other => return other,
        };
        let (start, end) = (self.offset, self.offset + item.len() as u64);
        self.offset = end;
        let unit_len = UNIT as u64;
        let mut out: Option<BytesMut> = None;
        let mut u = start / unit_len;
        while u * unit_len < end {
            for b in 0..8u64 {
                let at = u * unit_len + b;
                if (start..end).contains(&at) {
                    let buf = out.get_or_insert_with(|| BytesMut::from(&item[..]));
                    let i = (at - start) as usize;
                    assert_eq!(buf[i], (u ^ self.from).to_le_bytes()[b as usize]);
                    buf[i] = (u ^ self.to).to_le_bytes()[b as usize];
                }
            }
            u += 1;
        }
        Poll::Ready(Some(Ok(out.map_or(item, BytesMut::freeze))))
    }
}

fn vm_hwm_kb() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

/// Runs this test binary as a child in `role`; returns its `VmHWM` in kB
/// at the end, and before its work began.
fn run_child(role: &str, prefix: &str) -> (u64, u64) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_ENV, role)
        .env(PREFIX_ENV, prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (mut hwm, mut start) = (None, None);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(v) = line.strip_prefix("VMHWM=") {
            hwm = Some(v.trim().parse().unwrap());
        } else if let Some(v) = line.strip_prefix("VMHWM_START=") {
            start = Some(v.trim().parse().unwrap());
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "child {role} failed: {status}");
    (
        hwm.unwrap_or_else(|| panic!("child {role} printed no VMHWM")),
        start.unwrap_or_else(|| panic!("child {role} printed no VMHWM_START")),
    )
}

/// 1 GiB written with `store_stream` and read back with `load_stream`
/// through SeaweedFS, ranges of it read, and a 256 MiB object rewrapped
/// (`load_stream_versioned` piped into `store_stream_if(Matches)`), all in
/// a child whose peak resident memory stays under 64 MiB; a control child
/// that collects the 256 MiB object peaks above 256 MiB, so the measure
/// sees buffering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_streams_in_constant_memory() {
    let Some((endpoint, bucket)) = server("gigabyte") else {
        return;
    };
    let prefix = unique_prefix("gigabyte");
    let big = tokio::task::spawn_blocking({
        let prefix = prefix.clone();
        move || run_child("big", &prefix)
    })
    .await
    .unwrap();
    let control = tokio::task::spawn_blocking({
        let prefix = prefix.clone();
        move || run_child("collect", &prefix)
    })
    .await
    .unwrap();
    let ((big, big_start), (control, _)) = (big, control);
    eprintln!(
        "VmHWM: streaming child {big} kB ({big_start} kB before its work), \
         collecting control {control} kB"
    );
    assert!(
        big < MEMORY_LIMIT_KB,
        "streaming 1 GiB peaked at {big} kB of resident memory"
    );
    assert!(
        control > (256 << 10),
        "the control child collected 256 MiB but peaked at {control} kB"
    );
    let s = store(&endpoint, &bucket, &prefix);
    s.delete("big").await.unwrap();
    s.delete("rewrap").await.unwrap();
}

/// Child-process entry point, not a test of its own. Without
/// `ENCSTORE_OBJSTORE_STREAM_CHILD` it does nothing.
#[test]
#[ignore = "child-process entry point of a_gigabyte_streams_in_constant_memory"]
fn child_process_entry() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let prefix = std::env::var(PREFIX_ENV).unwrap();
    let (endpoint, bucket) = server("child").unwrap();
    // The defaults (8 MiB parts, 1 in flight), with conditions on
    // completions so that the rewrap streams.
    let s = S3StorageBuilder::from_env(bucket, prefix)
        .endpoint(endpoint)
        .allow_http(true)
        .conditional_completion(ConditionalCompletion::Enabled)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The test data's 1 MiB block is made before the baseline.
    let _ = block();
    println!("VMHWM_START={}", vm_hwm_kb());
    rt.block_on(async move {
        match role.as_str() {
            "big" => child_big(&s).await,
            "collect" => {
                let v = s
                    .load_stream("rewrap")
                    .await
                    .unwrap()
                    .collect()
                    .await
                    .unwrap();
                assert_eq!(v.len(), 256 * UNIT);
            }
            other => panic!("unknown role {other:?}"),
        }
    });
    println!("VMHWM={}", vm_hwm_kb());
}

async fn child_big(s: &ObjectStorage) {
    let units = 1024u64;
    let size = units * UNIT as u64;
    let body = Box::pin(Generated {
        seed: SEED_A,
        next: 0,
        units,
    });
    s.store_stream("big", body).await.unwrap();
    assert_eq!(s.stat("big").await.unwrap().size, size);
    let st = s.load_stream("big").await.unwrap();
    assert_eq!(st.size, size);
    assert_eq!(check_body(st.body, SEED_A).await, units);
    for r in [
        0..4096u64,
        size / 2 - 3..size / 2 + 4093,
        size - 100..size + 100,
    ] {
        let got = s.load_range("big", r.clone()).await.unwrap();
        assert_eq!(got.size, size);
        let first = r.start / UNIT as u64;
        let mut want = Vec::new();
        for u in first..=((r.end.min(size) - 1) / UNIT as u64) {
            want.extend_from_slice(&unit(SEED_A, u));
        }
        let off = (r.start - first * UNIT as u64) as usize;
        let len = (r.end.min(size) - r.start) as usize;
        assert!(got.bytes == want[off..off + len], "range {r:?}");
    }

    // The rewrap: a versioned stream piped into a conditional write.
    let units = 256u64;
    let body = Box::pin(Generated {
        seed: SEED_A,
        next: 0,
        units,
    });
    s.store_stream("rewrap", body).await.unwrap();
    let vs = s.load_stream_versioned("rewrap").await.unwrap();
    let body: ByteStream = Box::pin(Restamp {
        inner: vs.stream.body,
        offset: 0,
        from: SEED_A,
        to: SEED_B,
    });
    let v2 = s
        .store_stream_if("rewrap", body, &WriteCondition::Matches(vs.version.clone()))
        .await
        .unwrap();
    assert_ne!(v2, vs.version);
    let vs = s.load_stream_versioned("rewrap").await.unwrap();
    assert_eq!(vs.version, v2);
    assert_eq!(check_body(vs.stream.body, SEED_B).await, units);
}
