//! Shared test helpers: keysets, a byte-counting `ObjectStore` wrapper and
//! the SeaweedFS store (or a printed skip).
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use encstore::{Policy, ReloadableKeyset};
use encstore_tink::Keyset;
use encstore_tink::templates::by_name;
use futures_util::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// An AEAD keyset (AES256_GCM) and a streaming keyset of `template`.
pub fn keys_with(template: &str) -> (Keyset, Keyset, Arc<ReloadableKeyset>) {
    let aead = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    let streaming = Keyset::generate(&by_name(template).unwrap()).unwrap();
    let handle =
        ReloadableKeyset::new_with_streaming(&aead, &streaming, Policy::default()).unwrap();
    (aead, streaming, Arc::new(handle))
}

/// 4 KiB segments: ranged reads of small objects already skip segments.
pub fn keys() -> Arc<ReloadableKeyset> {
    keys_with("AES256_GCM_HKDF_4KB").2
}

/// Counts what passes through to the wrapped store: GET requests and the
/// bytes they returned (body bytes actually streamed).
#[derive(Debug)]
pub struct Counting {
    pub inner: Arc<dyn ObjectStore>,
    pub gets: Arc<AtomicU64>,
    pub bytes: Arc<AtomicU64>,
    /// The size of every part sent to a multipart upload.
    pub parts: Arc<Mutex<Vec<usize>>>,
}

/// Records the size of each part.
#[derive(Debug)]
struct RecordingUpload {
    inner: Box<dyn MultipartUpload>,
    parts: Arc<Mutex<Vec<usize>>>,
}

#[async_trait]
impl MultipartUpload for RecordingUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        self.parts.lock().unwrap().push(data.content_length());
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

impl Counting {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Counting {
            inner,
            gets: Arc::default(),
            bytes: Arc::default(),
            parts: Arc::default(),
        }
    }

    pub fn reset(&self) {
        self.gets.store(0, Ordering::SeqCst);
        self.bytes.store(0, Ordering::SeqCst);
    }

    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }
}

impl std::fmt::Display for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(l, p, o).await
    }

    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(l, o).await?;
        Ok(Box::new(RecordingUpload {
            inner,
            parts: Arc::clone(&self.parts),
        }))
    }

    async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let mut r = self.inner.get_opts(l, o).await?;
        let counter = Arc::clone(&self.bytes);
        #[allow(irrefutable_let_patterns)] // a `File` payload with object_store's `fs`
        let GetResultPayload::Stream(s) = r.payload else {
            panic!("file payloads are not counted");
        };
        r.payload = GetResultPayload::Stream(
            s.inspect(move |c| {
                if let Ok(c) = c {
                    counter.fetch_add(c.len() as u64, Ordering::SeqCst);
                }
            })
            .boxed(),
        );
        Ok(r)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}

/// A unique prefix for one test.
pub fn unique(test: &str) -> String {
    format!(
        "encstore-object-store-tests/{test}-{}",
        &encstore_core::new_lease_token().unwrap()[..12]
    )
}

/// The SeaweedFS bucket root as an `ObjectStore` and an
/// `encstore_objstore::ObjectStorage` under `prefix` (for the
/// EncryptedStorage side of compatibility tests), or `None` after a
/// printed `SKIPPED` (a failure under `ENCSTORE_REQUIRE_SERVICES=1`).
pub fn s3(
    test: &str,
    prefix: &str,
) -> Option<(Arc<dyn ObjectStore>, encstore_objstore::ObjectStorage)> {
    let (endpoint, bucket) = encstore_objstore::testing::server(test)?;
    let storage = encstore_objstore::S3StorageBuilder::from_env(bucket, prefix)
        .endpoint(endpoint)
        .allow_http(true)
        .build()
        .unwrap();
    Some((storage.object_store(), storage))
}
