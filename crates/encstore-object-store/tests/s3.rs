//! EncryptedObjectStore over S3 (SeaweedFS on loopback, from
//! `source /work/svc/env.sh` or `scripts/seaweedfs.sh`): object_store's own
//! integration test functions, and compatibility with the `encstore`
//! tool's EncryptedStorage over encstore-objstore's S3 backend on the same
//! bucket prefix. Without `ENCSTORE_S3_ENDPOINT` the tests print `SKIPPED`
//! and pass, unless `ENCSTORE_REQUIRE_SERVICES=1`. Every test works under
//! its own random prefix.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{keys, keys_with, unique};
use encstore::EncryptedStorage;
use encstore_core::Storage;
use encstore_object_store::EncryptedObjectStore;
use object_store::integration::*;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};

/// A fresh EncryptedObjectStore under its own prefix of the bucket, for
/// one integration function: SeaweedFS keeps the empty "directories" a
/// deleted object leaves behind, which later listings of another function
/// would see (the bare store fails the same way), so each function gets a
/// clean prefix.
fn fresh(s3: &Arc<dyn ObjectStore>, prefix: &str, name: &str) -> EncryptedObjectStore {
    let inner: Arc<dyn ObjectStore> =
        Arc::new(PrefixStore::new(s3.clone(), format!("{prefix}/{name}")));
    // S3's minimum part size.
    EncryptedObjectStore::new(inner, keys()).with_part_size(5 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_integration_suite_over_s3() {
    let prefix = unique("integration");
    let Some((s3, _)) = common::s3("object_store_integration_suite_over_s3", &prefix) else {
        return;
    };
    let pgdl: Arc<dyn ObjectStore> = Arc::new(FilteredOffset(Arc::new(PrefixStore::new(
        s3.clone(),
        format!("{prefix}/put_get_delete_list"),
    ))));
    put_get_delete_list(&EncryptedObjectStore::new(pgdl, keys())).await;
    list_with_offset_exclusivity(&fresh(&s3, &prefix, "list_with_offset")).await;
    get_opts(&fresh(&s3, &prefix, "get_opts")).await;
    list_uses_directories_correctly(&fresh(&s3, &prefix, "list_dirs")).await;
    list_with_delimiter(&fresh(&s3, &prefix, "list_with_delimiter")).await;
    rename_and_copy(&fresh(&s3, &prefix, "rename_and_copy")).await;
    copy_if_not_exists(&fresh(&s3, &prefix, "copy_if_not_exists")).await;
    copy_rename_nonexistent_object(&fresh(&s3, &prefix, "copy_nonexistent")).await;
    stream_get(&fresh(&s3, &prefix, "stream_get")).await;
    multipart_race_condition(&fresh(&s3, &prefix, "multipart_race"), true).await;
    multipart_out_of_order(&fresh(&s3, &prefix, "multipart_out_of_order")).await;
    put_get_attributes(&fresh(&s3, &prefix, "attributes")).await;
    // encstore-objstore configures conditional PUTs (ETag match).
    put_opts(&fresh(&s3, &prefix, "put_opts"), true).await;
    // Clean up the prefix.
    let root = PrefixStore::new(s3.clone(), prefix.as_str());
    let all: Vec<_> = futures_util::TryStreamExt::try_collect::<Vec<_>>(root.list(None))
        .await
        .unwrap();
    for m in all {
        root.delete(&m.location).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_storage_over_s3_and_encrypted_object_store_read_each_other() {
    let prefix = unique("compat");
    let Some((s3, storage)) = common::s3("compat_over_s3", &prefix) else {
        return;
    };
    let (_, _, keys) = keys_with("AES256_GCM_HKDF_4KB");
    // The tool's view: `--store s3://bucket/<prefix>`, key names relative
    // to the prefix; this store's view: the same prefix, paths = key names.
    let inner: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(s3, prefix.as_str()));
    let enc = EncryptedObjectStore::new(inner.clone(), keys.clone());
    let tool = EncryptedStorage::new(Arc::new(storage), keys);
    let big: Vec<u8> = (0..300_000).map(|i| (i * 31 % 251) as u8).collect();
    enc.put(&Path::from("from-eos/big.bin"), big.clone().into())
        .await
        .unwrap();
    assert_eq!(&tool.load("from-eos/big.bin").await.unwrap()[..], &big[..]);
    let r = tool
        .load_range("from-eos/big.bin", 5_000..9_000)
        .await
        .unwrap();
    assert_eq!(&r.bytes[..], &big[5_000..9_000]);
    tool.store_stream(
        "from-tool/streamed",
        encstore_core::stream::from_chunks(vec![Bytes::from(big.clone())]),
    )
    .await
    .unwrap();
    tool.store("from-tool/small", Bytes::from_static(b"small secret"))
        .await
        .unwrap();
    let p = Path::from("from-tool/streamed");
    assert_eq!(
        &enc.get(&p).await.unwrap().bytes().await.unwrap()[..],
        &big[..]
    );
    assert_eq!(enc.head(&p).await.unwrap().size, big.len() as u64);
    assert_eq!(
        &enc.get_range(&p, 70_000..70_100).await.unwrap()[..],
        &big[70_000..70_100]
    );
    let s = Path::from("from-tool/small");
    assert_eq!(
        &enc.get(&s).await.unwrap().bytes().await.unwrap()[..],
        b"small secret"
    );
    let census = tool.census("").await.unwrap();
    assert_eq!(census.total, 3, "{census:?}");
    for k in ["from-eos/big.bin", "from-tool/streamed", "from-tool/small"] {
        tool.delete(k).await.unwrap();
    }
    // An empty object written around the store: S3 refuses a range of it;
    // the error says it is empty.
    let e = Path::from("around/empty");
    inner.put(&e, Bytes::new().into()).await.unwrap();
    for err in [
        enc.head(&e).await.unwrap_err(),
        enc.get_range(&e, 0..1).await.unwrap_err(),
        enc.get(&e).await.unwrap_err(),
    ] {
        assert!(
            matches!(
                encstore_object_store::EncryptionError::of(&err),
                Some(encstore_object_store::EncryptionError::Empty { .. })
            ),
            "{err}"
        );
    }
    inner.delete(&e).await.unwrap();
}

/// SeaweedFS's `start-after` listing skips the contents of a directory
/// whose name is the offset (`list_with_offset(None, "a")` omits `a/…`):
/// the bare SeaweedFS store fails `put_get_delete_list` at that check too
/// (integration.rs line 399, checked by hand). This wrapper lists with
/// offset the way object_store's default does (list, then filter), so the
/// rest of that function runs over S3; EncryptedObjectStore passes
/// `list_with_offset` through unchanged (the in-memory suite checks it).
#[derive(Debug)]
struct FilteredOffset(Arc<dyn ObjectStore>);

impl std::fmt::Display for FilteredOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FilteredOffset({})", self.0)
    }
}

#[async_trait::async_trait]
impl ObjectStore for FilteredOffset {
    async fn put_opts(
        &self,
        l: &Path,
        p: object_store::PutPayload,
        o: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.0.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.0.put_multipart_opts(l, o).await
    }
    async fn get_opts(
        &self,
        l: &Path,
        o: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.0.get_opts(l, o).await
    }
    fn delete_stream(
        &self,
        l: futures_util::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(l)
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
    {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        o: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.0.copy_opts(from, to, o).await
    }
}
