//! [`EncryptedObjectStore`]: the `ObjectStore` implementation.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use encstore::core::Aead as _;
use encstore::{CiphertextKey, KeysetSnapshot, ReloadableKeyset};
use encstore_tink::KeysetStreamingAead;
use encstore_tink::streaming::{SegmentEncryptor, SegmentLayout, StreamingError};
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attributes, CopyMode, CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload,
    ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions,
    PutPayload, PutResult, Result,
};

use crate::error::{EncryptionError, STORE};
use crate::seal::SealingBuffer;
use crate::upload::EncryptingUpload;

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

/// Headers remembered for ranged reads (cleared when full).
const HEAD_CACHE: usize = 4096;

/// How many times a ranged read starts again when the object is replaced
/// between its reads.
const RANGE_ATTEMPTS: usize = 3;

/// How many `head`s a listing runs at once when it cannot compute sizes.
const LIST_HEADS: usize = 8;

/// The first bytes of a stored object, remembered by `head` (and ranged
/// reads) for the next ranged read of the same object version.
#[derive(Clone)]
struct Header {
    /// The stored (ciphertext) object's metadata.
    meta: ObjectMeta,
    attributes: Attributes,
    /// Its first [`HEAD_LEN`] bytes (or all of it).
    head: Bytes,
}

#[derive(Default)]
struct HeadCache {
    map: Mutex<HashMap<Path, Header>>,
}

impl HeadCache {
    fn get(&self, path: &Path) -> Option<Header> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned()
    }

    fn put(&self, path: &Path, header: Header) {
        if header.meta.e_tag.is_none() {
            // Without an ETag a later read cannot check that the object
            // is still the one this header came from.
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= HEAD_CACHE {
            map.clear();
        }
        map.insert(path.clone(), header);
    }

    fn remove(&self, path: &Path) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(path);
    }
}

/// An [`ObjectStore`] that encrypts every object with an encstore keyset
/// (the streaming keyset of a [`ReloadableKeyset`]) over any other
/// `ObjectStore`. See the [crate documentation](crate) for the layout and
/// the cost of each operation.
#[derive(Clone)]
pub struct EncryptedObjectStore {
    inner: Arc<dyn ObjectStore>,
    keys: Arc<ReloadableKeyset>,
    namespace: Option<Arc<[u8]>>,
    part_size: usize,
    heads: Arc<HeadCache>,
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
            heads: Arc::default(),
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

    /// The single-key streaming AEAD of an object whose first bytes are
    /// `head`: `None` when they do not name a streaming key (an object in
    /// the small layout, or not encstore's).
    fn streaming_key(
        &self,
        snap: &KeysetSnapshot,
        path: &Path,
        head: &[u8],
    ) -> Result<Option<Arc<KeysetStreamingAead>>> {
        let Some((key_id, status)) = snap.streaming_key_of(head) else {
            return Ok(None);
        };
        match snap.streaming_key_aead(key_id) {
            Some(a) => Ok(Some(a)),
            None => Err(EncryptionError::KeyNotEnabled {
                path: path.to_string(),
                key_id,
                status: status.as_str(),
            }
            .into()),
        }
    }

    /// Decrypts a whole object that is not in the streaming layout: a small
    /// object (one Tink AEAD ciphertext under the AEAD keyset), as
    /// `EncryptedStorage` writes values up to its streaming threshold.
    async fn decrypt_small(&self, path: &Path, ct: Bytes) -> Result<Bytes> {
        let snap = self.keys.snapshot();
        let class = snap.classify(&ct[..ct.len().min(PREFIX_LEN)]);
        if let CiphertextKey::Prefixed {
            key_id,
            status: None,
            ..
        } = class
        {
            return Err(EncryptionError::UnknownKey {
                path: path.to_string(),
                key_id: Some(key_id),
            }
            .into());
        }
        if let CiphertextKey::Prefixed {
            key_id,
            status: Some(status),
            ..
        } = class
            && status != encstore_tink::KeyStatus::Enabled
        {
            return Err(EncryptionError::KeyNotEnabled {
                path: path.to_string(),
                key_id,
                status: status.as_str(),
            }
            .into());
        }
        let ad = self.associated_data(path);
        let len = ct.len();
        // A keyset with an ENABLED KMS envelope key decrypts through its
        // async AEAD (one KMS call per envelope object); else the
        // synchronous keyset AEAD, off the runtime for large values.
        let r = if let Some(env) = snap.envelope_aead() {
            match env.decrypt(&ct, &ad).await {
                Ok(pt) => Ok(pt),
                Err(e) if e.is_authentication() => Err(e.to_string()),
                Err(e) => {
                    return Err(EncryptionError::Kms {
                        path: path.to_string(),
                        reason: e.to_string(),
                    }
                    .into());
                }
            }
        } else {
            offload(len, move || match snap.aead() {
                Some(aead) => aead.decrypt(&ct, &ad).map_err(|e| e.to_string()),
                None => Err("the keyset has no AEAD primitive".to_owned()),
            })
            .await?
        };
        match r {
            Ok(pt) => Ok(Bytes::from(pt)),
            Err(e) => {
                tracing::debug!(path = %path, error = %e, "object failed to decrypt");
                Err(match class {
                    CiphertextKey::Unprefixed => EncryptionError::UnknownKey {
                        path: path.to_string(),
                        key_id: None,
                    },
                    _ => EncryptionError::Authentication {
                        path: path.to_string(),
                    },
                }
                .into())
            }
        }
    }

    /// Reads the first [`HEAD_LEN`] bytes of the object at `path` (with the
    /// caller's conditions).
    async fn read_header(&self, path: &Path, options: &GetOptions) -> Result<Header> {
        let o = GetOptions {
            range: Some(GetRange::Bounded(0..HEAD_LEN)),
            head: false,
            ..options.clone()
        };
        let r = match self.inner.get_opts(path, o).await {
            Ok(r) => r,
            Err(e @ object_store::Error::Generic { .. }) => {
                // A range of an empty object cannot be satisfied (the
                // in-memory store and S3 refuse it): say that it is empty.
                let o = GetOptions {
                    head: true,
                    range: None,
                    ..options.clone()
                };
                return match self.inner.get_opts(path, o).await {
                    Ok(h) if h.meta.size == 0 => Err(empty_error(path)),
                    _ => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        if r.meta.size == 0 {
            return Err(empty_error(path));
        }
        let meta = r.meta.clone();
        let attributes = r.attributes.clone();
        let head = r.bytes().await?;
        Ok(Header {
            meta,
            attributes,
            head,
        })
    }

    /// The whole stored object `header` came from (same ETag/version).
    async fn read_rest(&self, path: &Path, header: &Header) -> Result<Bytes> {
        if header.meta.size <= header.head.len() as u64 {
            return Ok(header.head.clone());
        }
        let o = GetOptions {
            if_match: header.meta.e_tag.clone(),
            version: header.meta.version.clone(),
            ..GetOptions::default()
        };
        self.inner.get_opts(path, o).await?.bytes().await
    }

    /// The plaintext metadata of the object at `path`, and its attributes.
    async fn head_meta(
        &self,
        path: &Path,
        options: &GetOptions,
    ) -> Result<(ObjectMeta, Attributes)> {
        let header = self.read_header(path, options).await?;
        let snap = self.keys.snapshot();
        let size = match self.streaming_key(&snap, path, &header.head)? {
            Some(aead) => {
                let size = plaintext_size(&aead.layout(), path, header.meta.size)?;
                self.heads.put(path, header.clone());
                size
            }
            None => {
                let ct = self.read_rest(path, &header).await?;
                self.decrypt_small(path, ct).await?.len() as u64
            }
        };
        let meta = ObjectMeta {
            size,
            ..header.meta
        };
        Ok((meta, header.attributes))
    }

    /// The plaintext metadata of a listed object.
    async fn plain_meta(&self, meta: ObjectMeta) -> Result<ObjectMeta> {
        let snap = self.keys.snapshot();
        if let Some(layout) = uniform_layout(&snap)
            && meta.size >= PREFIX_LEN as u64
            && let Ok(size) = layout.plaintext_size(meta.size - PREFIX_LEN as u64)
        {
            return Ok(ObjectMeta { size, ..meta });
        }
        let (plain, _) = self
            .head_meta(&meta.location, &GetOptions::default())
            .await?;
        Ok(plain)
    }

    /// A whole-object `get`: decrypted as it streams.
    async fn get_whole(&self, path: &Path, options: GetOptions) -> Result<GetResult> {
        let r = self.inner.get_opts(path, options).await?;
        if r.meta.size == 0 {
            return Err(empty_error(path));
        }
        let mut meta = r.meta.clone();
        let attributes = r.attributes.clone();
        let extensions = r.extensions.clone();
        let mut body = r.into_stream();
        // The prefix and the longest header (or the whole object).
        let head = peek(&mut body, HEAD_LEN as usize).await?;
        let snap = self.keys.snapshot();
        let payload = match self.streaming_key(&snap, path, &head)? {
            Some(aead) => {
                let layout = aead.layout();
                meta.size = plaintext_size(&layout, path, meta.size)?;
                let end = PREFIX_LEN + layout.header_len() as usize;
                let header = head
                    .get(PREFIX_LEN..end)
                    .ok_or_else(|| auth_error(path, &StreamingError::Truncated))?;
                let dec = aead
                    .segment_decryptor(header, &self.associated_data(path))
                    .map_err(|e| auth_error(path, &e))?;
                let rest = prepend(head.slice(end..), body);
                crate::decrypt::decrypting_stream(dec, rest, path.clone())
            }
            None => {
                let ct = collect(prepend(head, body)).await?;
                let pt = self.decrypt_small(path, ct).await?;
                meta.size = pt.len() as u64;
                once(pt)
            }
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            range: 0..meta.size,
            meta,
            attributes,
            extensions,
        })
    }

    /// A ranged `get`: the covering segments with one ranged GET (after
    /// the header, remembered or read).
    async fn get_range_opts(
        &self,
        path: &Path,
        range: GetRange,
        options: GetOptions,
    ) -> Result<GetResult> {
        range.is_valid().map_err(range_error)?;
        let unconditional = options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none()
            && options.version.is_none();
        for _ in 0..RANGE_ATTEMPTS {
            let remembered = if unconditional {
                self.heads.get(path)
            } else {
                None
            };
            let cached = remembered.is_some();
            let header = match remembered {
                Some(h) => h,
                None => self.read_header(path, &options).await?,
            };
            let snap = self.keys.snapshot();
            let Some(aead) = self.streaming_key(&snap, path, &header.head)? else {
                if cached {
                    // The keyset no longer has the key: read afresh.
                    self.heads.remove(path);
                    continue;
                }
                let ct = self.read_rest(path, &header).await?;
                let pt = self.decrypt_small(path, ct).await?;
                let r = range.as_range(pt.len() as u64).map_err(range_error)?;
                return Ok(GetResult {
                    payload: GetResultPayload::Stream(once(
                        pt.slice(r.start as usize..r.end as usize),
                    )),
                    meta: ObjectMeta {
                        size: pt.len() as u64,
                        ..header.meta
                    },
                    range: r,
                    attributes: header.attributes,
                    extensions: Default::default(),
                });
            };
            if !cached {
                self.heads.put(path, header.clone());
            }
            let layout = aead.layout();
            let size = plaintext_size(&layout, path, header.meta.size)?;
            let r = range.as_range(size).map_err(range_error)?;
            let ct_size = header.meta.size - PREFIX_LEN as u64;
            let tail = header.head.slice(PREFIX_LEN..);
            let (cover, body, meta, attributes) = if r.is_empty() {
                (
                    0..0,
                    Bytes::new(),
                    header.meta.clone(),
                    header.attributes.clone(),
                )
            } else {
                let cover = layout
                    .ciphertext_range(r.clone(), ct_size)
                    .map_err(|e| auth_error(path, &e))?
                    .bytes;
                if !cached && cover.end <= tail.len() as u64 {
                    let body = tail.slice(cover.start as usize..cover.end as usize);
                    (cover, body, header.meta.clone(), header.attributes.clone())
                } else {
                    let shift = PREFIX_LEN as u64;
                    let mut o = GetOptions {
                        if_match: header.meta.e_tag.clone(),
                        version: options.version.clone().or(header.meta.version.clone()),
                        range: Some(GetRange::Bounded(cover.start + shift..cover.end + shift)),
                        ..GetOptions::default()
                    };
                    if header.meta.e_tag.is_none() {
                        o.if_match.clone_from(&options.if_match);
                        o.if_unmodified_since = options.if_unmodified_since;
                    }
                    let got = match self.inner.get_opts(path, o).await {
                        Ok(g) => g,
                        Err(object_store::Error::Precondition { .. }) => {
                            // Replaced since its header was read.
                            self.heads.remove(path);
                            continue;
                        }
                        Err(e) => {
                            self.heads.remove(path);
                            return Err(e);
                        }
                    };
                    let meta = got.meta.clone();
                    let attributes = got.attributes.clone();
                    let body = got.bytes().await?;
                    if meta.size != header.meta.size || body.len() as u64 != cover.end - cover.start
                    {
                        self.heads.remove(path);
                        continue;
                    }
                    (cover, body, meta, attributes)
                }
            };
            let bytes = if r.is_empty() {
                Bytes::new()
            } else {
                let ad = self.associated_data(path);
                let (start, rr) = (cover.start, r.clone());
                let decrypted = offload(body.len(), move || {
                    encstore::decrypt_prefetched(&aead, &ad, ct_size, tail, start, body, rr)
                })
                .await?;
                match decrypted {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        self.heads.remove(path);
                        if header.meta.e_tag.is_none() {
                            // Without an ETag the segments may be of a
                            // newer object than the header: read again.
                            continue;
                        }
                        tracing::debug!(path = %path, error = %e, "range failed to authenticate");
                        return Err(EncryptionError::Authentication {
                            path: path.to_string(),
                        }
                        .into());
                    }
                    Err(e) => {
                        return Err(object_store::Error::Generic {
                            store: STORE,
                            source: Box::new(e),
                        });
                    }
                }
            };
            return Ok(GetResult {
                payload: GetResultPayload::Stream(once(bytes)),
                meta: ObjectMeta { size, ..meta },
                range: r,
                attributes,
                extensions: Default::default(),
            });
        }
        // Replaced between the header read and the segment read every time
        // (or, without ETags, segments that never authenticated).
        Err(object_store::Error::Precondition {
            path: path.to_string(),
            source: "the object changed during every attempt of a ranged read, or its segments did not authenticate"
                .into(),
        })
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

/// The plaintext size of a streaming-layout object of `object_size`
/// bytes, or an authentication error when no ciphertext has that size (a
/// truncated or extended object).
fn plaintext_size(layout: &SegmentLayout, path: &Path, object_size: u64) -> Result<u64> {
    let ct = object_size.saturating_sub(PREFIX_LEN as u64);
    layout.plaintext_size(ct).map_err(|e| auth_error(path, &e))
}

/// The segment layout every enabled streaming key shares, if they do.
fn uniform_layout(snap: &KeysetSnapshot) -> Option<SegmentLayout> {
    let mut layouts = snap.streaming_aead()?.key_layouts().map(|(_, l)| l);
    let first = layouts.next()?;
    layouts.all(|l| l == first).then_some(first)
}

pub(crate) fn auth_error(path: &Path, e: &StreamingError) -> object_store::Error {
    tracing::debug!(path = %path, error = %e, "object failed to authenticate");
    EncryptionError::Authentication {
        path: path.to_string(),
    }
    .into()
}

fn empty_error(path: &Path) -> object_store::Error {
    EncryptionError::Empty {
        path: path.to_string(),
    }
    .into()
}

pub(crate) fn encrypt_error(path: &Path, e: &StreamingError) -> object_store::Error {
    EncryptionError::Encrypt {
        path: path.to_string(),
        reason: e.to_string(),
    }
    .into()
}

fn range_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(e),
    }
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

fn once(b: Bytes) -> BoxStream<'static, Result<Bytes>> {
    futures_util::stream::once(async move { Ok(b) }).boxed()
}

fn prepend(
    first: Bytes,
    body: BoxStream<'static, Result<Bytes>>,
) -> BoxStream<'static, Result<Bytes>> {
    futures_util::stream::once(async move { Ok(first) })
        .chain(body)
        .boxed()
}

async fn collect(mut body: BoxStream<'static, Result<Bytes>>) -> Result<Bytes> {
    let mut out = Vec::new();
    while let Some(c) = body.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(Bytes::from(out))
}

/// Reads `body` until it has yielded at least `n` bytes or ended.
async fn peek(body: &mut BoxStream<'static, Result<Bytes>>, n: usize) -> Result<Bytes> {
    let mut acc: Vec<Bytes> = Vec::new();
    let mut total = 0;
    while total < n {
        match body.next().await {
            Some(c) => {
                let c = c?;
                total += c.len();
                acc.push(c);
            }
            None => break,
        }
    }
    if acc.len() == 1 {
        return Ok(acc.swap_remove(0));
    }
    Ok(Bytes::from(acc.concat()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_len_covers_the_longest_header() {
        // 1 (length byte) + 32 (salt of a 256-bit key) + 7 (nonce prefix).
        assert_eq!(HEAD_LEN, 5 + 1 + 32 + 7);
    }

    #[test]
    fn range_errors_are_generic_errors_of_this_store() {
        let e = range_error(GetRange::Offset(9).as_range(3).unwrap_err());
        assert!(matches!(e, object_store::Error::Generic { store, .. } if store == STORE));
    }
}
