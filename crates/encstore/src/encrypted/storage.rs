//! Reading and writing through [`EncryptedStorage`]: the streaming
//! (large-object) bodies, `open_read`, range reads, and the [`Storage`]
//! implementation itself.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use encstore_core::stream::{clamp_range, slice_range, validate_range};
use encstore_core::{
    ByteStream, Error, Lease, ObjectInfo, ObjectStream, RangeRead, Result, Storage, Version,
    Versioned, VersionedStream, WriteCondition, validate_key,
};

use encstore_tink::KeyStatus;
use zeroize::Zeroizing;

use super::{EncryptedStorage, off_the_runtime};
use crate::keys::{KeysetSnapshot, large_prefix};
use crate::large::{
    self, DecryptCodec, EncryptCodec, HEAD_LEN, PREFIX_LEN, Target, auth_error, encrypt_error,
};
use encstore_tink::CiphertextKey;

impl EncryptedStorage {
    /// The object a large-object codec works on.
    pub(super) fn target(&self, key: &str, key_id: u32) -> Target {
        Target {
            store: self.clone(),
            key: key.to_owned(),
            key_id,
            pool: Arc::clone(&self.buffers),
        }
    }

    /// A stream of the large-object ciphertext of `body`, under the
    /// streaming primary, in constant memory.
    pub(super) fn encrypting_body(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        body: ByteStream,
    ) -> Result<ByteStream> {
        let (s, key_id) = self.streaming(snap, key)?;
        let enc = s
            .segment_encryptor(&self.associated_data(key))
            .map_err(|e| encrypt_error(self, key, e))?;
        let codec = EncryptCodec::new(enc, self.target(key, key_id));
        let prefix = Bytes::copy_from_slice(&large_prefix(key_id));
        Ok(large::pump(codec, Some(prefix), body))
    }

    /// Opens the object at `key` for reading: a large object as a
    /// decrypting stream (constant memory), a small one decrypted whole
    /// (with `attribute_raw`, a small object that decrypted without naming
    /// its key is attributed to the RAW key that decrypts it).
    pub(super) async fn open_read(
        &self,
        key: &str,
        versioned: bool,
        attribute_raw: bool,
    ) -> Result<(Opened, Option<Version>)> {
        validate_key(key)?;
        let (stream, version) = if versioned {
            let v = self.inner.load_stream_versioned(key).await?;
            (v.stream, Some(v.version))
        } else {
            (self.inner.load_stream(key).await?, None)
        };
        let snap = self.keys.snapshot();
        let object_size = stream.size;
        let mut body = stream.body;
        let head = large::peek(&mut body, PREFIX_LEN).await?;
        if let Some((key_id, status)) = snap.streaming_key_of(&head) {
            let aead = self.large_key(&snap, key, key_id, status)?;
            let size = self.large_plaintext_size(&aead, key, object_size)?;
            let codec =
                DecryptCodec::new(aead, self.associated_data(key), self.target(key, key_id));
            let rest = large::prepend(head.slice(PREFIX_LEN..), body);
            let stream = ObjectStream {
                size,
                body: large::pump(codec, None, rest),
            };
            return Ok((Opened::Large { stream, key_id }, version));
        }
        // A small object: the whole ciphertext is needed to decrypt it. An
        // object under a key ID neither keyset has fails here, before it
        // is read whole, unless migration mode or a RAW key may still read
        // it.
        let class = snap.classify(&head);
        if let CiphertextKey::Prefixed {
            key_id,
            status: None,
            ..
        } = class
            && !snap.can_attribute_raw()
            && !snap.has_raw_envelope_keys()
            && !(self.allow_plaintext && snap.may_be_plaintext(class))
        {
            return Err(self.fail(Error::UnknownKeyId {
                key: key.to_owned(),
                key_id,
            }));
        }
        let ct = encstore_core::stream::collect(large::prepend(head, body)).await?;
        if snap.envelope_aead().is_some() {
            let (plaintext, key_id) = self.decrypt_small_async(snap, key, ct).await?;
            return Ok((Opened::Small { plaintext, key_id }, version));
        }
        let len = ct.len();
        let this = self.clone();
        let owned_key = key.to_owned();
        let kept = (attribute_raw && snap.can_attribute_raw()).then(|| ct.clone());
        let (plaintext, key_id) = off_the_runtime(len, move || {
            let (pt, id) = this.decrypt_secret(&snap, &owned_key, ct)?;
            let id = id.or_else(|| {
                let ct = kept?;
                let ad = this.associated_data(&owned_key);
                snap.raw_key_for(&ct, &ad).map(|(id, _)| id)
            });
            Ok::<_, Error>((pt, id))
        })
        .await??;
        Ok((Opened::Small { plaintext, key_id }, version))
    }

    /// `load_range` of a large object whose first [`HEAD_LEN`] bytes (or
    /// all of it) are `first`: fetches the segments covering the range
    /// with one more ranged read and decrypts them. `Ok(None)`: the object
    /// changed between the two reads; start again.
    pub(super) async fn range_large(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        first: &RangeRead,
        (key_id, status): (u32, KeyStatus),
        range: Range<u64>,
    ) -> Result<Option<RangeRead>> {
        let aead = self.large_key(snap, key, key_id, status)?;
        let object_size = first.size;
        let size = self.large_plaintext_size(&aead, key, object_size)?;
        let ct_size = object_size - PREFIX_LEN as u64;
        let r = clamp_range(key, range, size)?;
        if r.is_empty() {
            return Ok(Some(RangeRead {
                bytes: Bytes::new(),
                size,
            }));
        }
        let cover = aead
            .layout()
            .ciphertext_range(r.clone(), ct_size)
            .map_err(|e| auth_error(self, key, &e))?
            .bytes;
        let head = first.bytes.slice(PREFIX_LEN..);
        let body = if cover.end <= head.len() as u64 {
            head.slice(cover.start as usize..cover.end as usize)
        } else {
            let shift = PREFIX_LEN as u64;
            let got = self
                .inner
                .load_range(key, cover.start + shift..cover.end + shift)
                .await?;
            if got.size != object_size || got.bytes.len() as u64 != cover.end - cover.start {
                return Ok(None);
            }
            got.bytes
        };
        let ad = self.associated_data(key);
        let len = body.len();
        let start = cover.start;
        let decrypted = off_the_runtime(len, move || {
            large::decrypt_prefetched(&aead, &ad, ct_size, head, start, body, r)
        })
        .await?;
        match decrypted {
            Ok(bytes) => {
                self.metrics().decrypted(key_id);
                Ok(Some(RangeRead { bytes, size }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                // A replaced object (a rewrap, an overwrite) has a new
                // header; a tampered one has the same.
                let again = self.inner.load_range(key, 0..HEAD_LEN).await?;
                if again.size != first.size || again.bytes != first.bytes {
                    return Ok(None);
                }
                tracing::debug!(key, error = %e, "large object range failed to authenticate");
                Err(self.fail(Error::Authentication {
                    key: key.to_owned(),
                }))
            }
            Err(e) => Err(self.fail(Error::backend("encstore", "decrypt a range", e))),
        }
    }
}

/// An object opened for reading by [`EncryptedStorage::open_read`].
pub(super) enum Opened {
    /// A small object, decrypted.
    Small {
        plaintext: Zeroizing<Vec<u8>>,
        key_id: Option<u32>,
    },
    /// A large object, as a decrypting stream.
    Large { stream: ObjectStream, key_id: u32 },
}

impl Opened {
    fn into_stream(self) -> ObjectStream {
        match self {
            Opened::Large { stream, .. } => stream,
            Opened::Small { mut plaintext, .. } => {
                ObjectStream::from_bytes(Bytes::from(std::mem::take(&mut *plaintext)))
            }
        }
    }
}

/// How many times `load_range` starts again when the object is replaced
/// between its two reads.
const RANGE_ATTEMPTS: usize = 3;

#[async_trait]
impl Storage for EncryptedStorage {
    async fn store(&self, key: &str, value: Bytes) -> Result<()> {
        validate_key(key)?;
        let snap = self.keys.snapshot();
        let ct = self.encrypt_async(snap, key, value).await?;
        self.inner.store(key, Bytes::from(ct)).await
    }

    async fn store_if(
        &self,
        key: &str,
        value: Bytes,
        condition: &WriteCondition,
    ) -> Result<Version> {
        validate_key(key)?;
        let snap = self.keys.snapshot();
        let ct = self.encrypt_async(snap, key, value).await?;
        self.inner.store_if(key, Bytes::from(ct), condition).await
    }

    async fn load(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        let ct = self.inner.load(key).await?;
        let snap = self.keys.snapshot();
        Ok(self.decrypt_async(snap, key, ct).await?.0)
    }

    async fn load_versioned(&self, key: &str) -> Result<Versioned> {
        validate_key(key)?;
        let v = self.inner.load_versioned(key).await?;
        let snap = self.keys.snapshot();
        let (value, _) = self.decrypt_async(snap, key, v.value).await?;
        // The version is the stored object's: decryption never hides a
        // change, because any write (re-encryption included) changes it.
        Ok(Versioned {
            value,
            version: v.version,
        })
    }

    /// A large object: the header and the segments covering the range, in
    /// two ranged reads of the inner store; a small one: loaded whole,
    /// decrypted and sliced. `size` is the plaintext size.
    async fn load_range(&self, key: &str, range: Range<u64>) -> Result<RangeRead> {
        validate_key(key)?;
        validate_range(key, &range)?;
        for _ in 0..RANGE_ATTEMPTS {
            let first = self.inner.load_range(key, 0..HEAD_LEN).await?;
            let snap = self.keys.snapshot();
            if let Some(named) = snap.streaming_key_of(&first.bytes) {
                match self
                    .range_large(&snap, key, &first, named, range.clone())
                    .await?
                {
                    Some(r) => return Ok(r),
                    None => continue,
                }
            }
            let ct = if first.size <= first.bytes.len() as u64 {
                first.bytes
            } else {
                self.inner.load(key).await?
            };
            let (value, _) = self.decrypt_async(snap, key, ct).await?;
            return slice_range(key, value, range);
        }
        // Replaced between the header read and the segment read every
        // time.
        Err(Error::PreconditionFailed {
            key: key.to_owned(),
        })
    }

    async fn store_stream(&self, key: &str, body: ByteStream) -> Result<()> {
        validate_key(key)?;
        let snap = self.keys.snapshot();
        let body = self.encrypting_body(&snap, key, body)?;
        self.inner.store_stream(key, body).await
    }

    async fn store_stream_if(
        &self,
        key: &str,
        body: ByteStream,
        condition: &WriteCondition,
    ) -> Result<Version> {
        validate_key(key)?;
        let snap = self.keys.snapshot();
        let body = self.encrypting_body(&snap, key, body)?;
        self.inner.store_stream_if(key, body, condition).await
    }

    async fn load_stream(&self, key: &str) -> Result<ObjectStream> {
        Ok(self.open_read(key, false, false).await?.0.into_stream())
    }

    async fn load_stream_versioned(&self, key: &str) -> Result<VersionedStream> {
        let (opened, version) = self.open_read(key, true, false).await?;
        let version = version.ok_or_else(|| {
            Error::backend(
                "encstore",
                "load a versioned stream",
                "the inner store returned no version",
            )
        })?;
        Ok(VersionedStream {
            stream: opened.into_stream(),
            version,
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key).await
    }

    async fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<String>> {
        self.inner.list(prefix, recursive).await
    }

    async fn stat(&self, key: &str) -> Result<ObjectInfo> {
        self.inner.stat(key).await
    }

    async fn try_lock(&self, name: &str) -> Result<Lease> {
        self.inner.try_lock(name).await
    }

    async fn lock(&self, name: &str) -> Result<Lease> {
        self.inner.lock(name).await
    }

    async fn unlock(&self, lease: Lease) -> Result<()> {
        self.inner.unlock(lease).await
    }

    fn lease_duration(&self) -> Duration {
        self.inner.lease_duration()
    }
}
