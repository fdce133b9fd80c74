//! [`EncryptedObjectStore`]: the `ObjectStore` implementation.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use encstore::ReloadableKeyset;
use encstore_tink::streaming::{SegmentEncryptor, SegmentLayout, StreamingError};
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    Result,
};

use crate::error::{EncryptionError, STORE};
use crate::read::HeadCache;
use crate::seal::SealingBuffer;
use crate::upload::EncryptingUpload;
use encstore::buffers::BufferPool;

/// The length of an object's prefix: `0x01 ‖ BE32(key ID)`.
pub const PREFIX_LEN: usize = 5;

/// What `head` (and a ranged read without a remembered header) fetches
/// first: the prefix and the longest Tink streaming header (40 bytes, for
/// 256-bit derived keys).
pub const HEAD_LEN: u64 = PREFIX_LEN as u64 + 40;

/// The default size of the parts a multipart upload sends to the inner
/// store: above S3's 5 MiB minimum, and every part but the last has
/// exactly this size (R2 requires equal parts).
pub const DEFAULT_PART_SIZE: usize = 10 << 20;

/// How many `head`s a listing runs at once when it cannot compute sizes.
const LIST_HEADS: usize = 8;

/// An [`ObjectStore`] that encrypts every object with an encstore keyset
/// (the streaming keyset of a [`ReloadableKeyset`]) over any other
/// `ObjectStore`. See the [crate documentation](crate) for the layout and
/// the cost of each operation.
#[derive(Clone)]
pub struct EncryptedObjectStore {
    pub(crate) inner: Arc<dyn ObjectStore>,
    pub(crate) keys: Arc<ReloadableKeyset>,
    namespace: Option<Arc<[u8]>>,
    part_size: usize,
    pub(crate) exact_list_sizes: bool,
    pub(crate) heads: Arc<HeadCache>,
    /// `get`'s output buffers, recycled when the caller drops them.
    pub(crate) buffers: Arc<BufferPool>,
}

impl fmt::Debug for EncryptedObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedObjectStore")
            .field("inner", &self.inner)
            .field("keyset", &self.keys)
            .field(
                "namespace",
                &self.namespace.as_ref().map(|n| String::from_utf8_lossy(n)),
            )
            .field("part_size", &self.part_size)
            .field("exact_list_sizes", &self.exact_list_sizes)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for EncryptedObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptedObjectStore({})", self.inner)
    }
}

impl EncryptedObjectStore {
    /// Wraps `inner`, encrypting with the streaming keyset of `keys` (which
    /// must have one to write; reads also accept objects in encstore's
    /// small-object layout, under its AEAD keyset). Reloading `keys`
    /// (a rotation) takes effect for the next operation.
    pub fn new(inner: Arc<dyn ObjectStore>, keys: Arc<ReloadableKeyset>) -> Self {
        EncryptedObjectStore {
            inner,
            keys,
            namespace: None,
            part_size: DEFAULT_PART_SIZE,
            exact_list_sizes: false,
            heads: Arc::default(),
            buffers: Arc::default(),
        }
    }

    /// Binds `namespace` into every object's associated data before its
    /// path (`namespace ‖ 0x00 ‖ path`), as
    /// [`encstore::Options::namespace`] does: objects then decrypt only
    /// through a store with the same namespace.
    ///
    /// # Panics
    /// If `namespace` contains a NUL byte.
    pub fn with_namespace(mut self, namespace: impl Into<Vec<u8>>) -> Self {
        let ns = namespace.into();
        assert!(
            !ns.contains(&0),
            "an EncryptedObjectStore namespace must not contain NUL"
        );
        self.namespace = Some(Arc::from(ns));
        self
    }

    /// Sets the size of the parts multipart uploads send to the inner
    /// store (at least 5 MiB for S3; default [`DEFAULT_PART_SIZE`]).
    ///
    /// # Panics
    /// If `bytes` is zero.
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        assert!(bytes > 0, "the part size must not be zero");
        self.part_size = bytes;
        self
    }

    /// Reads the size of every listed object from the object itself.
    ///
    /// By default a listing computes each plaintext size from the
    /// ciphertext size, without reading the object, assuming the
    /// streaming layout: exact for everything this store writes, but a
    /// small value that [`encstore::EncryptedStorage`] (or `encstore store
    /// put`) wrote in the one-shot AEAD layout into the same store would
    /// be listed some tens of bytes off. With this option each listed
    /// object is read like `head` reads it (its first bytes; a one-shot
    /// AEAD object whole, and authenticated), 8 at a time, so a listing
    /// costs one or two GETs per object. `head` is always exact.
    pub fn with_exact_list_sizes(mut self) -> Self {
        self.exact_list_sizes = true;
        self
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The keyset handle (reload it to rotate).
    pub fn keyset(&self) -> &Arc<ReloadableKeyset> {
        &self.keys
    }

    /// The associated data of the object at `path`: the namespace and a
    /// NUL, if any, then the path's UTF-8 text.
    pub fn associated_data(&self, path: &Path) -> Vec<u8> {
        let p = path.as_ref().as_bytes();
        match &self.namespace {
            None => p.to_vec(),
            Some(ns) => {
                let mut ad = Vec::with_capacity(ns.len() + 1 + p.len());
                ad.extend_from_slice(ns);
                ad.push(0);
                ad.extend_from_slice(p);
                ad
            }
        }
    }

    /// A new encryption of the object at `path` under the streaming
    /// primary, with its prefix.
    pub(crate) fn encryptor(
        &self,
        path: &Path,
    ) -> Result<(SegmentEncryptor, SegmentLayout, [u8; PREFIX_LEN])> {
        let snap = self.keys.snapshot();
        let (Some(aead), Some(key_id)) = (snap.streaming_aead(), snap.streaming_primary_key_id())
        else {
            return Err(EncryptionError::NoStreamingKeyset {
                path: path.to_string(),
            }
            .into());
        };
        let enc = aead
            .segment_encryptor(&self.associated_data(path))
            .map_err(|e| encrypt_error(path, &e))?;
        let id = key_id.to_be_bytes();
        Ok((enc, aead.layout(), [0x01, id[0], id[1], id[2], id[3]]))
    }

    /// Encrypts a whole payload.
    async fn encrypt_payload(&self, path: &Path, payload: PutPayload) -> Result<PutPayload> {
        let (enc, layout, prefix) = self.encryptor(path)?;
        let n = payload.content_length();
        let ct_len = layout
            .ciphertext_size(n as u64)
            .map_err(|e| encrypt_error(path, &e))?;
        let p = path.clone();
        let out = offload(n, move || {
            // One copy: the plaintext straight into the ciphertext buffer,
            // sealed there.
            let mut out = SealingBuffer::new(enc, &prefix, PREFIX_LEN + ct_len as usize);
            for chunk in &payload {
                out.write(chunk).map_err(|e| encrypt_error(&p, &e))?;
            }
            out.finish().map_err(|e| encrypt_error(&p, &e))?;
            let all = out.sealed();
            Ok::<_, object_store::Error>(out.take(all))
        })
        .await??;
        Ok(PutPayload::from(out))
    }

    /// Re-encrypts the object at `from` for `to` (its associated data binds
    /// the path).
    async fn reencrypt(&self, from: &Path, to: &Path, mode: CopyMode) -> Result<()> {
        let src = self.get_opts(from, GetOptions::default()).await?;
        let attributes = src.attributes.clone();
        let size = src.meta.size;
        if matches!(mode, CopyMode::Create) || size <= self.part_size as u64 {
            let bytes = src.bytes().await?;
            let put_mode = match mode {
                CopyMode::Create => PutMode::Create,
                CopyMode::Overwrite => PutMode::Overwrite,
            };
            let opts = PutOptions {
                mode: put_mode,
                attributes,
                ..PutOptions::default()
            };
            self.put_opts(to, bytes.into(), opts).await?;
            return Ok(());
        }
        let opts = PutMultipartOptions {
            attributes,
            ..PutMultipartOptions::default()
        };
        let mut upload = self.put_multipart_opts(to, opts).await?;
        let mut stream = src.into_stream();
        while let Some(chunk) = stream.next().await {
            let r = match chunk {
                Ok(c) => upload.put_part(c.into()).await,
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                if let Err(a) = upload.abort().await {
                    tracing::warn!(path = %to, error = %a, "aborting a multipart upload failed");
                }
                return Err(e);
            }
        }
        upload.complete().await?;
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for EncryptedObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let ct = self.encrypt_payload(location, payload).await?;
        self.heads.remove(location);
        let r = self.inner.put_opts(location, ct, opts).await;
        self.heads.remove(location);
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let (enc, _, prefix) = self.encryptor(location)?;
        self.heads.remove(location);
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(EncryptingUpload::new(
            inner,
            enc,
            &prefix,
            self.part_size,
            location.clone(),
        )))
    }

    async fn get_opts(&self, location: &Path, mut options: GetOptions) -> Result<GetResult> {
        if options.head {
            let (meta, attributes) = self.head_meta(location, &options).await?;
            return Ok(GetResult {
                payload: GetResultPayload::Stream(futures_util::stream::empty().boxed()),
                range: 0..meta.size,
                meta,
                attributes,
                extensions: Default::default(),
            });
        }
        match options.range.take() {
            None => self.get_whole(location, options).await,
            Some(range) => self.get_range_opts(location, range, options).await,
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let heads = Arc::clone(&self.heads);
        let locations = locations.inspect_ok(move |p| heads.remove(p)).boxed();
        let heads = Arc::clone(&self.heads);
        self.inner
            .delete_stream(locations)
            .inspect_ok(move |p| heads.remove(p))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let this = self.clone();
        self.inner
            .list(prefix)
            .map(move |r| {
                let this = this.clone();
                async move { this.plain_meta(r?).await }
            })
            .buffered(LIST_HEADS)
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let this = self.clone();
        self.inner
            .list_with_offset(prefix, offset)
            .map(move |r| {
                let this = this.clone();
                async move { this.plain_meta(r?).await }
            })
            .buffered(LIST_HEADS)
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let r = self.inner.list_with_delimiter(prefix).await?;
        let objects = futures_util::stream::iter(r.objects)
            .map(|m| self.plain_meta(m))
            .buffered(LIST_HEADS)
            .try_collect()
            .await?;
        Ok(ListResult {
            common_prefixes: r.common_prefixes,
            objects,
            extensions: r.extensions,
        })
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.reencrypt(from, to, options.mode).await
    }
}

pub(crate) fn encrypt_error(path: &Path, e: &StreamingError) -> object_store::Error {
    EncryptionError::Encrypt {
        path: path.to_string(),
        reason: e.to_string(),
    }
    .into()
}

/// Runs `f` (crypto over `len` bytes) on tokio's blocking pool when `len`
/// is at least [`encstore::BLOCKING_THRESHOLD`], inline otherwise.
pub(crate) async fn offload<T, F>(len: usize, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if len < encstore::BLOCKING_THRESHOLD {
        return Ok(f());
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return Ok(f());
    };
    match handle.spawn_blocking(f).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(object_store::Error::Generic {
            store: STORE,
            source: Box::new(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_len_covers_the_longest_header() {
        // 1 (length byte) + 32 (salt of a 256-bit key) + 7 (nonce prefix).
        assert_eq!(HEAD_LEN, 5 + 1 + 32 + 7);
    }
}
