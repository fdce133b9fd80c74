//! ObjectStorage over object_store's in-memory store: the core conformance
//! suite and the backend's own rules, with no server.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use encstore_core::{Error, Storage, WriteCondition};
use encstore_objstore::object_store::memory::InMemory;
use encstore_objstore::object_store::path::Path;
use encstore_objstore::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use encstore_objstore::{LOCK_DIR, ObjectStorage, PROBE_OBJECT};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_from_a_memory_url() {
    let store = ObjectStorage::url_builder("memory:///conformance")
        .lease_duration(Duration::from_secs(1))
        .build()
        .unwrap();
    assert_eq!(store.backend(), "memory");
    assert_eq!(store.prefix(), "conformance");
    encstore_core::conformance::run_all(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_over_a_store_you_built() {
    let store = ObjectStorage::builder(Arc::new(InMemory::new()))
        .lease_duration(Duration::from_secs(1))
        .build()
        .unwrap();
    encstore_core::conformance::run_all(Arc::new(store)).await;
}

/// Every object under `prefix` with its content.
async fn snapshot(os: &Arc<dyn ObjectStore>) -> Vec<(String, Bytes)> {
    let metas: Vec<ObjectMeta> = os.list(None).try_collect().await.unwrap();
    let mut out = Vec::new();
    for m in metas {
        let b = os.get(&m.location).await.unwrap().bytes().await.unwrap();
        out.push((m.location.to_string(), b));
    }
    out.sort();
    out
}

/// An in-memory store that accepts conditional writes and applies them
/// unconditionally, as some S3-compatible servers do. (The real test of
/// this is tests/conditional.rs, against SeaweedFS behind a proxy; this one
/// runs without a server.)
#[derive(Debug)]
struct IgnoresConditions(InMemory);

impl fmt::Display for IgnoresConditions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IgnoresConditions")
    }
}

#[async_trait::async_trait]
impl ObjectStore for IgnoresConditions {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> encstore_objstore::object_store::Result<PutResult> {
        opts.mode = PutMode::Overwrite;
        self.0.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> encstore_objstore::object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> encstore_objstore::object_store::Result<GetResult> {
        self.0.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, encstore_objstore::object_store::Result<Path>>,
    ) -> BoxStream<'static, encstore_objstore::object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, encstore_objstore::object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> encstore_objstore::object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> encstore_objstore::object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn a_store_ignoring_conditions_refuses_cas_and_locks() {
    let os: Arc<dyn ObjectStore> = Arc::new(IgnoresConditions(InMemory::new()));
    let store = ObjectStorage::builder(Arc::clone(&os))
        .prefix("p")
        .backend_name("test")
        .address("memory://ignores-conditions")
        .build()
        .unwrap();
    store.store("a", Bytes::from_static(b"one")).await.unwrap();
    let v = store.load_versioned("a").await.unwrap().version;
    let before = snapshot(&os).await;

    for (what, r) in [
        (
            "absent, existing key",
            store
                .store_if("a", Bytes::from_static(b"x"), &WriteCondition::Absent)
                .await,
        ),
        (
            "absent, new key",
            store
                .store_if("b", Bytes::from_static(b"x"), &WriteCondition::Absent)
                .await,
        ),
        (
            "matches",
            store
                .store_if("a", Bytes::from_static(b"x"), &WriteCondition::Matches(v))
                .await,
        ),
    ] {
        match r {
            Err(Error::Unsupported {
                backend: "test",
                op: "write conditionally",
                reason,
            }) => {
                assert!(reason.contains("If-None-Match"), "{what}: {reason}");
                assert!(reason.contains("memory://ignores-conditions"), "{reason}");
            }
            other => panic!("{what}: expected Unsupported, got {other:?}"),
        }
    }
    for r in [
        store.try_lock("l").await.map(|_| ()),
        store.lock("l").await.map(|_| ()),
    ] {
        assert!(
            matches!(
                r,
                Err(Error::Unsupported {
                    op: "take a lock",
                    ..
                })
            ),
            "{r:?}"
        );
    }
    // Nothing changed but the probe's sentinel, created with fixed content
    // (it did not exist before).
    let after = snapshot(&os).await;
    let sentinel = format!("p/{PROBE_OBJECT}");
    let without: Vec<_> = after
        .iter()
        .filter(|(k, _)| *k != sentinel)
        .cloned()
        .collect();
    assert_eq!(without, before);
    assert!(after.iter().any(|(k, _)| *k == sentinel));
    // Plain writes still work.
    store
        .store("c", Bytes::from_static(b"three"))
        .await
        .unwrap();
    assert_eq!(store.load("c").await.unwrap(), Bytes::from_static(b"three"));
}

/// A lock object that is not a lock record counts as held until it is one
/// lease old, then it is stale and taken over (as the fs backend does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_lock_object_is_stale_after_one_lease() {
    let lease = Duration::from_millis(600);
    let os: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = ObjectStorage::builder(Arc::clone(&os))
        .prefix("p")
        .lease_duration(lease)
        .build()
        .unwrap();
    let path = Path::parse(format!("p/{LOCK_DIR}/l")).unwrap();
    os.put(&path, PutPayload::from_static(b"garbage"))
        .await
        .unwrap();
    assert!(matches!(
        store.try_lock("l").await,
        Err(Error::LockHeld { .. })
    ));
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let l = store.try_lock("l").await.unwrap();
    assert!(l.is_held());
    let rec = os.get(&path).await.unwrap().bytes().await.unwrap();
    assert!(
        std::str::from_utf8(&rec).unwrap().contains(l.token()),
        "the stale object was replaced by our record"
    );
    store.unlock(l).await.unwrap();
    // Everything stays outside the key namespace.
    assert!(store.list("", true).await.unwrap().is_empty());
    let all: Vec<_> = os
        .list(None)
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    assert!(all.iter().all(|p| p.as_ref().starts_with("p/.encstore")));
    assert!(os.list(None).next().await.is_some());
}

/// Counts the multipart uploads an `InMemory` store is asked for, and how
/// they end.
#[derive(Debug, Default)]
struct CountingMultipart {
    inner: InMemory,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    started: std::sync::atomic::AtomicUsize,
    completed: std::sync::atomic::AtomicUsize,
    aborted: std::sync::atomic::AtomicUsize,
}

impl Counts {
    fn get(&self) -> (usize, usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (
            self.started.load(SeqCst),
            self.completed.load(SeqCst),
            self.aborted.load(SeqCst),
        )
    }
}

impl fmt::Display for CountingMultipart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingMultipart")
    }
}

#[derive(Debug)]
struct CountingUpload {
    inner: Box<dyn MultipartUpload>,
    counts: Arc<Counts>,
}

#[async_trait::async_trait]
impl MultipartUpload for CountingUpload {
    fn put_part(&mut self, data: PutPayload) -> encstore_objstore::object_store::UploadPart {
        self.inner.put_part(data)
    }
    async fn complete(&mut self) -> encstore_objstore::object_store::Result<PutResult> {
        let r = self.inner.complete().await;
        self.counts
            .completed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        r
    }
    async fn abort(&mut self) -> encstore_objstore::object_store::Result<()> {
        self.counts
            .aborted
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.abort().await
    }
}

#[async_trait::async_trait]
impl ObjectStore for CountingMultipart {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> encstore_objstore::object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> encstore_objstore::object_store::Result<Box<dyn MultipartUpload>> {
        self.counts
            .started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(CountingUpload {
            inner,
            counts: Arc::clone(&self.counts),
        }))
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> encstore_objstore::object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, encstore_objstore::object_store::Result<Path>>,
    ) -> BoxStream<'static, encstore_objstore::object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, encstore_objstore::object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> encstore_objstore::object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> encstore_objstore::object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// The whole suite with 64 KiB parts, so that its larger streamed writes
/// are multipart uploads (the in-memory store takes parts of any size):
/// writes of many chunks complete their uploads; failing and dropped ones
/// abort them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_with_small_parts() {
    let os = Arc::new(CountingMultipart::default());
    let counts = Arc::clone(&os.counts);
    let store = ObjectStorage::builder(os)
        .part_size(64 << 10)
        .upload_concurrency(3)
        .lease_duration(Duration::from_secs(1))
        .build()
        .unwrap();
    encstore_core::conformance::run_all(Arc::new(store)).await;
    // Let the aborts of dropped writes (spawned) run.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (started, completed, aborted) = counts.get();
    eprintln!("multipart uploads: {started} started, {completed} completed, {aborted} aborted");
    assert!(completed >= 1, "multipart uploads completed: {completed}");
    assert!(
        aborted >= 4,
        "failed and dropped uploads aborted: {aborted}"
    );
    assert_eq!(started, completed + aborted, "every upload ended one way");
}

/// Without conditional completions (any store but the S3 stores this crate
/// builds), a conditional streamed write is buffered up to the bound and
/// written with one conditional `PUT`; a larger one is refused with
/// `Unsupported`, writing nothing and starting no upload.
#[tokio::test]
async fn conditional_streams_beyond_the_bound_are_refused() {
    let os = Arc::new(CountingMultipart::default());
    let counts = Arc::clone(&os.counts);
    let store = ObjectStorage::builder(os)
        .part_size(64 << 10)
        .max_buffered_conditional_write(256 << 10)
        .backend_name("test")
        .address("memory://bounded")
        .build()
        .unwrap();
    let body = |len: usize, seed: u8| {
        let chunks: Vec<Bytes> = (0..len)
            .map(|i| (i as u8) ^ seed)
            .collect::<Vec<u8>>()
            .chunks(10_000)
            .map(Bytes::copy_from_slice)
            .collect();
        encstore_core::stream::from_chunks(chunks)
    };
    let v1 = store
        .store_stream_if("k", body(200 << 10, 1), &WriteCondition::Absent)
        .await
        .unwrap();
    let v2 = store
        .store_stream_if(
            "k",
            body(256 << 10, 2),
            &WriteCondition::Matches(v1.clone()),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .store_stream_if("k", body(100 << 10, 3), &WriteCondition::Matches(v1))
            .await,
        Err(Error::PreconditionFailed { .. })
    ));
    match store
        .store_stream_if(
            "k",
            body((256 << 10) + 1, 4),
            &WriteCondition::Matches(v2.clone()),
        )
        .await
    {
        Err(Error::Unsupported {
            backend: "test",
            op: "write a large stream conditionally",
            reason,
        }) => {
            assert!(reason.contains("memory://bounded"), "{reason}");
            assert!(reason.contains("cannot put a condition"), "{reason}");
            assert!(reason.contains("262144 bytes"), "{reason}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let now = store.load_versioned("k").await.unwrap();
    assert_eq!(now.version, v2);
    assert_eq!(now.value.len(), 256 << 10);
    assert_eq!(counts.get(), (0, 0, 0), "no multipart upload for them");
    // Plain streamed writes of the same size are multipart uploads.
    store
        .store_stream("k", body((256 << 10) + 1, 5))
        .await
        .unwrap();
    assert_eq!(counts.get(), (1, 1, 0));
}
