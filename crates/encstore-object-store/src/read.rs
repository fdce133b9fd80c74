//! The read side of [`EncryptedObjectStore`]: headers (read and
//! remembered), `head`, whole and ranged `get`, plaintext sizes of listed
//! objects, and objects in the small layout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use encstore::core::Aead as _;
use encstore::{CiphertextKey, KeysetSnapshot};
use encstore_tink::KeysetStreamingAead;
use encstore_tink::streaming::{SegmentLayout, StreamingError};
use futures_util::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    Attributes, GetOptions, GetRange, GetResult, GetResultPayload, ObjectMeta, Result,
};

use crate::error::{EncryptionError, STORE};
use crate::store::{EncryptedObjectStore, HEAD_LEN, PREFIX_LEN, offload};

/// Headers remembered for ranged reads (cleared when full).
const HEAD_CACHE: usize = 4096;

/// How many times a ranged read starts again when the object is replaced
/// between its reads.
const RANGE_ATTEMPTS: usize = 3;

/// The first bytes of a stored object, remembered by `head` (and ranged
/// reads) for the next ranged read of the same object version.
#[derive(Clone)]
pub(crate) struct Header {
    /// The stored (ciphertext) object's metadata.
    meta: ObjectMeta,
    attributes: Attributes,
    /// Its first [`HEAD_LEN`] bytes (or all of it).
    head: Bytes,
}

#[derive(Default)]
pub(crate) struct HeadCache {
    map: Mutex<HashMap<Path, Header>>,
}

impl HeadCache {
    pub(crate) fn get(&self, path: &Path) -> Option<Header> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned()
    }

    pub(crate) fn put(&self, path: &Path, header: Header) {
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

    pub(crate) fn remove(&self, path: &Path) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(path);
    }
}

impl EncryptedObjectStore {
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
    pub(crate) async fn head_meta(
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
    pub(crate) async fn plain_meta(&self, meta: ObjectMeta) -> Result<ObjectMeta> {
        if meta.size == 0 {
            // Written around the store (a console's "folder/" marker, a
            // `_SUCCESS` file): listed as the empty object it is, so that
            // one such object does not fail a whole listing; reading it
            // fails with `EncryptionError::Empty`.
            return Ok(meta);
        }
        let snap = self.keys.snapshot();
        if !self.exact_list_sizes
            && let Some(layout) = uniform_layout(&snap)
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
    pub(crate) async fn get_whole(&self, path: &Path, options: GetOptions) -> Result<GetResult> {
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
                crate::decrypt::decrypting_stream(dec, rest, path.clone(), self.buffers.clone())
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
    pub(crate) async fn get_range_opts(
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
}

/// The plaintext size of a streaming-layout object of `object_size`
/// bytes, or an authentication error when no ciphertext has that size (a
/// truncated or extended object).
fn plaintext_size(layout: &SegmentLayout, path: &Path, object_size: u64) -> Result<u64> {
    let ct = object_size.saturating_sub(PREFIX_LEN as u64);
    layout.plaintext_size(ct).map_err(|e| auth_error(path, &e))
}

/// The segment layout every enabled streaming key shares, if they do.
pub(crate) fn uniform_layout(snap: &KeysetSnapshot) -> Option<SegmentLayout> {
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

fn range_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(e),
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
    fn range_errors_are_generic_errors_of_this_store() {
        let e = range_error(GetRange::Offset(9).as_range(3).unwrap_err());
        assert!(matches!(e, object_store::Error::Generic { store, .. } if store == STORE));
    }
}
