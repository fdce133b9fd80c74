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
