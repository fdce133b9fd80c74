//! [`EncryptedStorage`]: a [`Storage`] that encrypts every value with the
//! keyset's primary key before it reaches the wrapped backend.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use encstore_core::stream::{clamp_range, slice_range, validate_range};
use encstore_core::{
    AeadError, ByteStream, Error, Lease, ObjectInfo, ObjectStream, RangeRead, Result, Storage,
    Version, Versioned, VersionedStream, WriteCondition, validate_key,
};

use encstore_core::KekError;
use encstore_tink::envelope::{EnvelopeError, KeysetAsyncAead};
use encstore_tink::{KeyStatus, KeysetStreamingAead};
use futures_util::StreamExt;
use zeroize::{Zeroize, Zeroizing};

use crate::keys::{KeysetSnapshot, large_prefix};
use crate::large::{
    self, DecryptCodec, EncryptCodec, HEAD_LEN, PREFIX_LEN, ReencryptCodec, auth_error,
    encrypt_error,
};
use crate::metrics::Metrics;
use crate::reload::ReloadableKeyset;
use encstore_tink::CiphertextKey;

/// How many times [`EncryptedStorage::reencrypt_one`] retries when a writer
/// changes the object between its read and its conditional write.
const REWRAP_ATTEMPTS: usize = 8;

/// Values (and stored objects) of at least this many bytes are encrypted
/// and decrypted on tokio's blocking pool instead of the async worker
/// thread that runs the operation.
///
/// tokio asks tasks to run at most 10 to 100 µs between two yields; AES-GCM
/// takes about 90 µs for 256 KiB on the (shared, loaded) machine of
/// `docs/performance.md`, well under that for 64 KiB. Below the threshold
/// the hand-off to the blocking pool would cost more than it spares
/// (measured: a 64 KiB store+load takes about twice as long through the
/// pool on a busy machine); above it, a worker thread held by AEAD work
/// would delay every other task on it (lock-lease renewal, timers, other
/// requests). `cargo bench -p encstore --bench blocking` measures the cost
/// per size. Without a tokio runtime the work runs inline.
pub const BLOCKING_THRESHOLD: usize = 256 * 1024;

/// The default streaming threshold of [`EncryptedStorage`]: values of more
/// than 1 MiB passed to `store`/`store_if` are written as large objects
/// (the streaming layout) when a streaming keyset is loaded.
///
/// 1 MiB is the segment size of the `_1MB` streaming templates: a value
/// that fits in one segment gains nothing from the streaming layout (a
/// range read or a streamed read fetches and authenticates the whole
/// segment, that is, the whole value, exactly as for a one-shot AEAD
/// ciphertext), while it would lose the format the certmagic Tink storages
/// read. Above it, range reads fetch only the covering segments and reads,
/// verifies and rewraps run in constant memory. Streaming calls
/// (`store_stream`, `store_stream_if`) always write the large layout.
pub const DEFAULT_STREAMING_THRESHOLD: usize = 1 << 20;

/// Runs `f` (AEAD work on `len` bytes) on tokio's blocking pool when `len`
/// is at least [`BLOCKING_THRESHOLD`], inline otherwise.
pub(crate) async fn off_the_runtime<T, F>(len: usize, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if len < BLOCKING_THRESHOLD {
        return Ok(f());
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return Ok(f());
    };
    match handle.spawn_blocking(f).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::backend(
            "encstore",
            "run AEAD work on the blocking pool",
            e.to_string(),
        )),
    }
}

/// Runs an operation of the async keyset AEAD (`make` builds its future):
/// awaited in place below [`BLOCKING_THRESHOLD`] bytes; at or above it, on
/// tokio's blocking pool, where [`Handle::block_on`](tokio::runtime::Handle::block_on)
/// drives the KMS call too, so that the AEAD work on a large value never
/// holds an async worker (as [`off_the_runtime`] does for ordinary keys).
/// Without a tokio runtime it is awaited in place.
pub(crate) async fn envelope_op<T, F, Fut>(len: usize, make: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
{
    if len < BLOCKING_THRESHOLD {
        return Ok(make().await);
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return Ok(make().await);
    };
    let inner = handle.clone();
    match handle.spawn_blocking(move || inner.block_on(make())).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::backend(
            "encstore",
            "run AEAD work on the blocking pool",
            e.to_string(),
        )),
    }
}

/// What [`EncryptedStorage::reencrypt_one`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectReencryption {
    /// The object was re-encrypted under the primary key.
    Reencrypted {
        /// The key ID it was under before (`None`: plaintext or RAW).
        from: Option<u32>,
        /// The primary key ID it is under now.
        to: u32,
    },
    /// The object was already under the primary key; nothing was written.
    AlreadyCurrent,
    /// The object was deleted meanwhile; nothing was written.
    Deleted,
}

/// What [`EncryptedStorage::verify_one`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectCheck {
    /// Every byte of the object authenticated (and was discarded).
    Verified {
        /// The key that decrypts it: named by its prefix, or the RAW key
        /// found by trial decryption.
        key_id: u32,
        /// The object's layout.
        layout: ObjectLayout,
        /// The plaintext size in bytes.
        size: u64,
    },
    /// Migration mode: a plaintext object (see [`Options::allow_plaintext`]).
    Plaintext {
        /// Its size in bytes.
        size: u64,
    },
    /// The object was deleted meanwhile.
    Deleted,
}

/// The two layouts of a stored object (`docs/format.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectLayout {
    /// A small object: one Tink AEAD ciphertext, under a key of the AEAD
    /// keyset.
    Aead,
    /// A large object: `0x01 ‖ BE32(key ID) ‖ Tink streaming ciphertext`,
    /// under a key of the streaming keyset.
    Streaming,
}

impl ObjectLayout {
    /// `aead` or `streaming`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectLayout::Aead => "aead",
            ObjectLayout::Streaming => "streaming",
        }
    }
}

/// Options for [`EncryptedStorage`]. The streaming threshold is set with
/// [`EncryptedStorage::with_streaming_threshold`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Options {
    /// Bytes bound into every object's associated data before the key name
    /// (see `docs/format.md`). `None` gives exactly the Tink-certmagic
    /// format: the associated data is the UTF-8 key name.
    pub namespace: Option<Vec<u8>>,
    /// Migration mode: `load` returns objects stored before encryption was
    /// turned on (plaintext), with a warning per object. Off by default;
    /// see `docs/threat-model.md` for the downgrade risk. An object is taken
    /// for plaintext only when it does not decrypt, its first five bytes
    /// name no key of the keyset, and the keyset holds no RAW key in any
    /// status (a prefix-less object may then be a RAW ciphertext).
    pub allow_plaintext: bool,
}

impl Options {
    /// The defaults: no namespace, no migration mode.
    pub fn new() -> Options {
        Options::default()
    }

    /// Binds `namespace` into every object's associated data, before the
    /// key name (`None`: the Tink-certmagic format).
    pub fn namespace(mut self, namespace: Option<Vec<u8>>) -> Options {
        self.namespace = namespace;
        self
    }

    /// Migration mode on or off (see [`Options::allow_plaintext`]).
    pub fn allow_plaintext(mut self, allow: bool) -> Options {
        self.allow_plaintext = allow;
        self
    }
}

/// A [`Storage`] that encrypts on `store` and decrypts on `load`, with the
/// keyset's primary key, over any other `Storage`.
///
/// A small object is exactly a Tink AEAD ciphertext (key-ID prefix, then
/// the primitive's output) whose associated data is the UTF-8 key name,
/// optionally preceded by a namespace. A large object (a value above the
/// [streaming threshold](EncryptedStorage::with_streaming_threshold) when
/// a streaming keyset is loaded, and every value written by
/// `store_stream`/`store_stream_if`) is `0x01 ‖ BE32(key ID) ‖` a Tink
/// streaming ciphertext under the streaming keyset's primary, with the
/// same associated data (`docs/format.md`). Every read accepts both
/// layouts: the prefix's key ID says which keyset decrypts. Large objects
/// are written, read, verified and rewrapped in constant memory, and a
/// `load_range` fetches only the segments covering the range.
///
/// `list`, `delete`, `stat`, `exists` and the locks pass through; `stat`
/// reports the ciphertext's size. `load_range`'s and `load_stream`'s sizes
/// are plaintext sizes.
#[derive(Clone)]
pub struct EncryptedStorage {
    inner: Arc<dyn Storage>,
    keys: Arc<ReloadableKeyset>,
    namespace: Option<Arc<[u8]>>,
    allow_plaintext: bool,
    /// Values of more bytes than this go to the streaming layout.
    streaming_threshold: usize,
}

impl fmt::Debug for EncryptedStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedStorage")
            .field("inner", &self.inner)
            .field("keyset", &self.keys)
            .field(
                "namespace",
                &self.namespace.as_ref().map(|n| String::from_utf8_lossy(n)),
            )
            .field("allow_plaintext", &self.allow_plaintext)
            .field("streaming_threshold", &self.streaming_threshold)
            .finish()
    }
}

impl EncryptedStorage {
    /// Wraps `inner`, encrypting with `keys`.
    pub fn new(inner: Arc<dyn Storage>, keys: Arc<ReloadableKeyset>) -> Self {
        Self::with_options(inner, keys, Options::default())
    }

    /// Wraps `inner` with `options`.
    ///
    /// # Panics
    /// If the namespace contains a NUL byte (it separates the namespace from
    /// the key name in the associated data).
    pub fn with_options(
        inner: Arc<dyn Storage>,
        keys: Arc<ReloadableKeyset>,
        options: Options,
    ) -> Self {
        if let Some(ns) = &options.namespace {
            assert!(
                !ns.contains(&0),
                "an EncryptedStorage namespace must not contain NUL"
            );
        }
        EncryptedStorage {
            inner,
            keys,
            namespace: options.namespace.map(Arc::from),
            allow_plaintext: options.allow_plaintext,
            streaming_threshold: DEFAULT_STREAMING_THRESHOLD,
        }
    }

    /// Sets the streaming threshold: a value of more than `bytes` bytes
    /// passed to `store`/`store_if` is written as a large object (the
    /// streaming layout) when a streaming keyset is loaded; smaller ones
    /// stay one-shot AEAD ciphertexts. Default
    /// [`DEFAULT_STREAMING_THRESHOLD`] (1 MiB). Streaming calls always
    /// write large objects; reads accept both layouts whatever the
    /// threshold.
    pub fn with_streaming_threshold(mut self, bytes: usize) -> Self {
        self.streaming_threshold = bytes;
        self
    }

    /// The streaming threshold (see
    /// [`with_streaming_threshold`](Self::with_streaming_threshold)).
    pub fn streaming_threshold(&self) -> usize {
        self.streaming_threshold
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<dyn Storage> {
        &self.inner
    }

    /// The keyset handle (reload it, read its metrics).
    pub fn keyset(&self) -> &Arc<ReloadableKeyset> {
        &self.keys
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        self.keys.metrics()
    }

    /// The associated data for `key`: the namespace and a NUL, if any, then
    /// the UTF-8 key name.
    pub fn associated_data(&self, key: &str) -> Vec<u8> {
        match &self.namespace {
            None => key.as_bytes().to_vec(),
            Some(ns) => {
                let mut ad = Vec::with_capacity(ns.len() + 1 + key.len());
                ad.extend_from_slice(ns);
                ad.push(0);
                ad.extend_from_slice(key.as_bytes());
                ad
            }
        }
    }

    pub(crate) fn fail(&self, err: Error) -> Error {
        self.metrics().failure(err.kind());
        // Its own target, so that a caller that reports the error anyway
        // (the CLI) can leave this event out: `encstore::failure=off`.
        tracing::warn!(target: "encstore::failure", kind = err.kind().as_str(), error = %err, "encstore operation failed");
        err
    }

    /// Encrypts a small value with the AEAD keyset's primary.
    fn encrypt(&self, snap: &KeysetSnapshot, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let ad = self.associated_data(key);
        match snap.encrypt(value, &ad) {
            Ok((ct, key_id)) => {
                snap.warn_raw_primary_once();
                self.metrics().encrypted(key_id);
                tracing::trace!(key_id, len = value.len(), "encrypted");
                Ok(ct)
            }
            Err(e) => {
                if matches!(e, AeadError::Policy(_)) {
                    self.metrics().policy_refused();
                }
                Err(self.fail(Error::from_aead(key, e)))
            }
        }
    }

    /// The streaming keyset's AEAD, or the error for a large write without
    /// one.
    fn streaming<'a>(
        &self,
        snap: &'a KeysetSnapshot,
        key: &str,
    ) -> Result<(&'a KeysetStreamingAead, u32)> {
        match (snap.streaming_aead(), snap.streaming_primary_key_id()) {
            (Some(s), Some(id)) => Ok((s, id)),
            _ => Err(self.fail(Error::Unsupported {
                backend: "encstore",
                op: "store a large object",
                reason: format!(
                    "no streaming keyset is loaded, so {} cannot be written as a large object (streamed writes always are): load a streaming keyset beside the AEAD keyset (ReloadableKeyset::new_with_streaming, open_with_streaming or replace_streaming; see docs/rotation.md)",
                    encstore_core::ShownKey(key)
                ),
            })),
        }
    }

    /// Encrypts a whole value as a large object (in memory): the prefix of
    /// the streaming primary, then its streaming ciphertext.
    fn encrypt_large(&self, snap: &KeysetSnapshot, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let (s, key_id) = self.streaming(snap, key)?;
        tracing::trace!(target: "encstore::large", len = value.len(), "whole-value crypto");
        let ad = self.associated_data(key);
        let size = s
            .layout()
            .ciphertext_size(value.len() as u64)
            .map_err(|e| encrypt_error(self, key, e))?;
        let mut enc = s.encryptor(&ad).map_err(|e| encrypt_error(self, key, e))?;
        let mut out = Vec::with_capacity(PREFIX_LEN + size as usize);
        out.extend_from_slice(&large_prefix(key_id));
        enc.update(value, &mut out)
            .and_then(|()| enc.finish_into(&mut out))
            .map_err(|e| encrypt_error(self, key, e))?;
        self.metrics().encrypted(key_id);
        tracing::trace!(key_id, len = value.len(), "encrypted a large object");
        Ok(out)
    }

    /// Encrypts a value in the layout its size calls for.
    fn encrypt_value(&self, snap: &KeysetSnapshot, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        if snap.has_streaming() && value.len() > self.streaming_threshold {
            self.encrypt_large(snap, key, value)
        } else {
            self.encrypt(snap, key, value)
        }
    }

    /// [`encrypt_value`](Self::encrypt_value), on the blocking pool for
    /// large values.
    async fn encrypt_async(
        &self,
        snap: Arc<KeysetSnapshot>,
        key: &str,
        value: Bytes,
    ) -> Result<Vec<u8>> {
        let large = snap.has_streaming() && value.len() > self.streaming_threshold;
        if !large && let Some(env) = snap.envelope_aead() {
            return self.encrypt_envelope(&snap, env, key, value).await;
        }
        if value.len() < BLOCKING_THRESHOLD {
            return self.encrypt_value(&snap, key, &value);
        }
        let this = self.clone();
        let key = key.to_owned();
        off_the_runtime(value.len(), move || this.encrypt_value(&snap, &key, &value)).await?
    }

    /// The error for an object under key `key_id` of status `status`, which
    /// is not ENABLED.
    fn not_enabled(&self, key: &str, key_id: u32, status: KeyStatus) -> Error {
        self.fail(Error::KeyNotEnabled {
            key: key.to_owned(),
            key_id,
            status: status.as_str(),
        })
    }

    /// The single-key streaming AEAD of the large object whose prefix
    /// names `key_id` with `status`.
    fn large_key(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        key_id: u32,
        status: KeyStatus,
    ) -> Result<Arc<KeysetStreamingAead>> {
        match snap.streaming_entry(key_id).and_then(|e| e.aead.clone()) {
            Some(a) if status == KeyStatus::Enabled => Ok(a),
            _ => Err(self.not_enabled(key, key_id, status)),
        }
    }

    /// The plaintext size of a large object of `object_size` bytes under
    /// `aead`, or an authentication error when no ciphertext has that size
    /// (a truncated object).
    fn large_plaintext_size(
        &self,
        aead: &KeysetStreamingAead,
        key: &str,
        object_size: u64,
    ) -> Result<u64> {
        let ct = object_size.saturating_sub(PREFIX_LEN as u64);
        aead.layout()
            .plaintext_size(ct)
            .map_err(|e| auth_error(self, key, &e))
    }

    /// Decrypts a whole large object in memory.
    fn decrypt_large(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        ct: &[u8],
        key_id: u32,
        status: KeyStatus,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let aead = self.large_key(snap, key, key_id, status)?;
        tracing::trace!(target: "encstore::large", len = ct.len(), "whole-value crypto");
        let size = self.large_plaintext_size(&aead, key, ct.len() as u64)?;
        let mut dec = aead.decryptor(&self.associated_data(key));
        let mut out = Zeroizing::new(Vec::with_capacity(size as usize));
        dec.update(&ct[PREFIX_LEN..], &mut out)
            .and_then(|()| dec.finish_into(&mut out))
            .map_err(|e| auth_error(self, key, &e))?;
        self.metrics().decrypted(key_id);
        tracing::trace!(key_id, "decrypted a large object");
        Ok(out)
    }

    /// Decrypts `ct` stored at `key` into a buffer that is wiped when
    /// dropped. Returns the plaintext and the key ID that decrypted it
    /// (`None` for a plaintext object in migration mode or a RAW key).
    /// Both layouts: a large object (its prefix names a streaming key) is
    /// decrypted in memory.
    ///
    /// Migration mode takes an object that does not decrypt for plaintext
    /// only when [`KeysetSnapshot::may_be_plaintext`] allows it: never
    /// while the keyset holds a RAW key, and never when its prefix names a
    /// key of the keyset.
    fn decrypt_secret(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        ct: Bytes,
    ) -> Result<(Zeroizing<Vec<u8>>, Option<u32>)> {
        if let Some((key_id, status)) = snap.streaming_key_of(&ct) {
            let pt = self.decrypt_large(snap, key, &ct, key_id, status)?;
            return Ok((pt, Some(key_id)));
        }
        let ad = self.associated_data(key);
        let class = snap.classify(&ct);
        let owned: Vec<u8> = Vec::from(ct);
        // Keep a copy only when migration mode may need the original bytes.
        let original = if self.allow_plaintext && snap.may_be_plaintext(class) {
            Some(Zeroizing::new(owned.clone()))
        } else {
            None
        };
        match snap.decrypt_owned(owned, &ad, class) {
            Ok((pt, key_id)) => {
                if let Some(id) = key_id {
                    self.metrics().decrypted(id);
                }
                tracing::trace!(key_id, "decrypted");
                Ok((Zeroizing::new(pt), key_id))
            }
            Err(e) => {
                if let Some(original) = original {
                    // Migration mode: an object that names no key of this
                    // keyset and does not decrypt is taken as plaintext
                    // written before encryption was enabled.
                    self.metrics().plaintext_read();
                    tracing::warn!(
                        key,
                        "returning a plaintext object (migration mode); re-encrypt the store with `encstore store rewrap`"
                    );
                    return Ok((original, None));
                }
                if self.allow_plaintext
                    && snap.holds_raw_keys()
                    && matches!(
                        class,
                        CiphertextKey::Unprefixed | CiphertextKey::Prefixed { status: None, .. }
                    )
                {
                    tracing::warn!(
                        key,
                        "not returning an object without a known key prefix as plaintext: the keyset holds a RAW key, so it may be a RAW ciphertext (migration mode)"
                    );
                }
                let err = match class {
                    // The prefix names a key the keyset has, but not
                    // ENABLED: say so (and how to fix it) rather than
                    // suggesting a newer keyset.
                    CiphertextKey::Prefixed {
                        key_id,
                        status: Some(status),
                        ..
                    } if status != KeyStatus::Enabled => Error::KeyNotEnabled {
                        key: key.to_owned(),
                        key_id,
                        status: status.as_str(),
                    },
                    _ => Error::from_aead(key, e),
                };
                Err(self.fail(err))
            }
        }
    }

    /// [`decrypt_secret`](Self::decrypt_secret) for a caller that takes the
    /// plaintext (`load`): it is handed over without a copy.
    fn decrypt(&self, snap: &KeysetSnapshot, key: &str, ct: Bytes) -> Result<(Bytes, Option<u32>)> {
        let (mut pt, key_id) = self.decrypt_secret(snap, key, ct)?;
        Ok((Bytes::from(std::mem::take(&mut *pt)), key_id))
    }

    /// [`decrypt`](Self::decrypt), on the blocking pool for large objects.
    async fn decrypt_async(
        &self,
        snap: Arc<KeysetSnapshot>,
        key: &str,
        ct: Bytes,
    ) -> Result<(Bytes, Option<u32>)> {
        if snap.envelope_aead().is_some() && snap.streaming_key_of(&ct).is_none() {
            let (mut pt, key_id) = self.decrypt_small_async(snap, key, ct).await?;
            return Ok((Bytes::from(std::mem::take(&mut *pt)), key_id));
        }
        if ct.len() < BLOCKING_THRESHOLD {
            return self.decrypt(&snap, key, ct);
        }
        let this = self.clone();
        let key = key.to_owned();
        off_the_runtime(ct.len(), move || this.decrypt(&snap, &key, ct)).await?
    }

    /// The CPU part of a rewrap of a small object: `None` when `ct` is
    /// already under the primary, otherwise the new ciphertext (one-shot
    /// AEAD, whatever its size: objects keep their layout) and the key it
    /// was under. The plaintext is wiped before this returns.
    fn reencrypt(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        ct: Bytes,
    ) -> Result<Option<(Vec<u8>, Option<u32>)>> {
        if snap.decrypts_with_primary(&ct, &self.associated_data(key)) {
            return Ok(None);
        }
        let (plaintext, from) = self.decrypt_secret(snap, key, ct)?;
        let ct = self.encrypt(snap, key, &plaintext)?;
        Ok(Some((ct, from)))
    }

    /// Encrypts a small value with the AEAD keyset's primary through the
    /// async keyset AEAD (an envelope primary wraps a fresh DEK with one
    /// KMS call, bounded in concurrency and time; an ordinary primary
    /// makes no I/O).
    async fn encrypt_envelope<V>(
        &self,
        snap: &KeysetSnapshot,
        env: &Arc<KeysetAsyncAead>,
        key: &str,
        value: V,
    ) -> Result<Vec<u8>>
    where
        V: AsRef<[u8]> + Send + 'static,
    {
        let ad = self.associated_data(key);
        let len = value.as_ref().len();
        let env = Arc::clone(env);
        let r = envelope_op(len, move || async move {
            env.encrypt(value.as_ref(), &ad).await
        })
        .await?;
        match r {
            Ok(ct) => {
                let key_id = snap.primary_key_id();
                snap.warn_raw_primary_once();
                self.metrics().encrypted(key_id);
                tracing::trace!(key_id, len, "encrypted");
                Ok(ct)
            }
            Err(e) => Err(self.fail(envelope_error(key, e, "wrap a data key"))),
        }
    }

    /// Decrypts a small object: through the async keyset AEAD when the
    /// keyset has a KMS envelope key (the KMS call is awaited, never
    /// blocking a worker), else as [`decrypt_secret`](Self::decrypt_secret)
    /// on the blocking pool for large values. The key ID is the one the
    /// prefix names or, for a RAW envelope key, the one its encrypted DEK
    /// is attributed to.
    async fn decrypt_small_async(
        &self,
        snap: Arc<KeysetSnapshot>,
        key: &str,
        ct: Bytes,
    ) -> Result<(Zeroizing<Vec<u8>>, Option<u32>)> {
        let Some(env) = snap.envelope_aead() else {
            let this = self.clone();
            let key = key.to_owned();
            return off_the_runtime(ct.len(), move || this.decrypt_secret(&snap, &key, ct)).await?;
        };
        let ad = self.associated_data(key);
        let class = snap.classify(&ct);
        let (env, owned) = (Arc::clone(env), ct.clone());
        let r = envelope_op(
            ct.len(),
            move || async move { env.decrypt(&owned, &ad).await },
        )
        .await?;
        match r {
            Ok(pt) => {
                let pt = Zeroizing::new(pt);
                let key_id = match class {
                    CiphertextKey::Prefixed {
                        key_id,
                        status: Some(_),
                        ..
                    } => Some(key_id),
                    _ => snap.envelope_info(&ct).map(|i| i.key_id),
                };
                if let Some(id) = key_id {
                    self.metrics().decrypted(id);
                }
                tracing::trace!(key_id, "decrypted");
                Ok((pt, key_id))
            }
            Err(e) => {
                if self.allow_plaintext && snap.may_be_plaintext(class) && e.is_authentication() {
                    self.metrics().plaintext_read();
                    tracing::warn!(
                        key,
                        "returning a plaintext object (migration mode); re-encrypt the store with `encstore store rewrap`"
                    );
                    return Ok((Zeroizing::new(Vec::from(ct)), None));
                }
                let err = match class {
                    CiphertextKey::Prefixed {
                        key_id,
                        status: Some(status),
                        ..
                    } if status != KeyStatus::Enabled => Error::KeyNotEnabled {
                        key: key.to_owned(),
                        key_id,
                        status: status.as_str(),
                    },
                    _ => envelope_error(key, e, "unwrap a data key"),
                };
                Err(self.fail(err))
            }
        }
    }

    /// [`reencrypt`](Self::reencrypt) through the async keyset AEAD.
    async fn reencrypt_envelope(
        &self,
        snap: Arc<KeysetSnapshot>,
        key: &str,
        ct: Bytes,
    ) -> Result<Option<(Vec<u8>, Option<u32>)>> {
        if snap.decrypts_with_primary(&ct, &self.associated_data(key)) {
            // Under the primary by its prefix (or, for a RAW envelope
            // primary, by its encrypted DEK); the re-check decrypts it.
            return Ok(None);
        }
        let (plaintext, from) = self.decrypt_small_async(Arc::clone(&snap), key, ct).await?;
        let Some(env) = snap.envelope_aead() else {
            return Ok(Some((self.encrypt(&snap, key, &plaintext)?, from)));
        };
        let ct = self.encrypt_envelope(&snap, env, key, plaintext).await?;
        Ok(Some((ct, from)))
    }

    /// Whether `ct`, stored at `key`, decrypts with the snapshot's keysets
    /// and is under the primary key of its layout: the re-check after a
    /// re-encryption. Through the async keyset AEAD (a KMS call) when the
    /// keyset has an envelope key.
    pub(crate) async fn is_current(
        &self,
        snap: Arc<KeysetSnapshot>,
        key: &str,
        ct: Bytes,
    ) -> Result<bool> {
        let ad = self.associated_data(key);
        if snap.envelope_aead().is_some() && snap.streaming_key_of(&ct).is_none() {
            return Ok(snap.decrypts_with_primary(&ct, &ad)
                && self.decrypt_small_async(snap, key, ct).await.is_ok());
        }
        off_the_runtime(ct.len(), move || {
            snap.decrypts_with_primary(&ct, &ad) && snap.aead_decrypts(&ct, &ad)
        })
        .await
    }

    /// A stream of the large-object ciphertext of `body`, under the
    /// streaming primary, in constant memory.
    fn encrypting_body(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        body: ByteStream,
    ) -> Result<ByteStream> {
        let (s, key_id) = self.streaming(snap, key)?;
        let enc = s
            .encryptor(&self.associated_data(key))
            .map_err(|e| encrypt_error(self, key, e))?;
        let codec = EncryptCodec {
            enc,
            store: self.clone(),
            key: key.to_owned(),
            key_id,
        };
        let prefix = Bytes::copy_from_slice(&large_prefix(key_id));
        Ok(large::pump(codec, Some(prefix), body))
    }

    /// Opens the object at `key` for reading: a large object as a
    /// decrypting stream (constant memory), a small one decrypted whole
    /// (with `attribute_raw`, a small object that decrypted without naming
    /// its key is attributed to the RAW key that decrypts it).
    async fn open_read(
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
            let codec = DecryptCodec {
                dec: aead.decryptor(&self.associated_data(key)),
                store: self.clone(),
                key: key.to_owned(),
                key_id,
            };
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

    /// The former name of [`reencrypt_one`](Self::reencrypt_one): it
    /// re-encrypts an object (re-wrapping is what `rewrap_dek_one` does to
    /// a DEK, and what a master key does to a keyset).
    #[deprecated(note = "renamed to `reencrypt_one`")]
    pub async fn rewrap_one(&self, key: &str) -> Result<ObjectReencryption> {
        self.reencrypt_one(key).await
    }

    /// Re-encrypts the object at `key` under the current primary key of
    /// its layout (a small object under the AEAD keyset's primary, a large
    /// one under the streaming keyset's, streamed in constant memory), with
    /// a conditional write: if a writer changes the object in between, the
    /// new value is re-read and the attempt repeated, so a value a server
    /// wrote meanwhile is never overwritten.
    ///
    /// # Errors
    /// Decryption errors (the object is left untouched), and
    /// [`Error::PreconditionFailed`] if the object kept changing for
    /// several attempts in a row.
    pub async fn reencrypt_one(&self, key: &str) -> Result<ObjectReencryption> {
        validate_key(key)?;
        for _ in 0..REWRAP_ATTEMPTS {
            let snap = self.keys.snapshot();
            if snap.has_streaming() {
                // Five bytes say whether the object is large (and whether
                // it is already under a primary) without reading it.
                let head = match self.inner.load_head(key, PREFIX_LEN).await {
                    Ok(h) => h,
                    Err(Error::NotFound { .. }) => return Ok(ObjectReencryption::Deleted),
                    Err(e) => return Err(e),
                };
                if let Some((from, status)) = snap.streaming_key_of(&head) {
                    match self.rewrap_large(&snap, key, &head, from, status).await? {
                        Some(outcome) => return Ok(outcome),
                        None => continue,
                    }
                }
                if snap.is_under_primary(&head) {
                    return Ok(ObjectReencryption::AlreadyCurrent);
                }
            }
            let loaded = match self.inner.load_versioned(key).await {
                Ok(v) => v,
                Err(Error::NotFound { .. }) => return Ok(ObjectReencryption::Deleted),
                Err(e) => return Err(e),
            };
            if snap.streaming_key_of(&loaded.value).is_some() {
                // Replaced by a large object since the head was read.
                continue;
            }
            let primary = snap.primary_key_id();
            let len = loaded.value.len();
            let value = loaded.value;
            let step = if snap.envelope_aead().is_some() {
                self.reencrypt_envelope(snap, key, value).await?
            } else {
                let this = self.clone();
                let owned_key = key.to_owned();
                off_the_runtime(len, move || this.reencrypt(&snap, &owned_key, value)).await??
            };
            let Some((ct, from)) = step else {
                return Ok(ObjectReencryption::AlreadyCurrent);
            };
            match self
                .inner
                .store_if(
                    key,
                    Bytes::from(ct),
                    &WriteCondition::Matches(loaded.version),
                )
                .await
            {
                Ok(_) => {
                    tracing::debug!(key, from, to = primary, "rewrapped");
                    return Ok(ObjectReencryption::Reencrypted { from, to: primary });
                }
                Err(Error::PreconditionFailed { .. }) => {
                    tracing::debug!(key, "object changed during rewrap; retrying");
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::PreconditionFailed {
            key: key.to_owned(),
        })
    }

    /// One attempt at rewrapping the large object at `key`, whose first
    /// five bytes were `head` (naming streaming key `from`): a versioned
    /// stream, decrypted and re-encrypted under the streaming primary in
    /// constant memory, written back with `store_stream_if(Matches)`.
    /// `None`: the object changed meanwhile; try again.
    async fn rewrap_large(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        head: &[u8],
        from: u32,
        status: KeyStatus,
    ) -> Result<Option<ObjectReencryption>> {
        let (s, to) = self.streaming(snap, key)?;
        if from == to {
            return Ok(Some(ObjectReencryption::AlreadyCurrent));
        }
        let old = self.large_key(snap, key, from, status)?;
        let vs = match self.inner.load_stream_versioned(key).await {
            Ok(v) => v,
            Err(Error::NotFound { .. }) => return Ok(Some(ObjectReencryption::Deleted)),
            Err(e) => return Err(e),
        };
        let mut body = vs.stream.body;
        let first = large::peek(&mut body, PREFIX_LEN).await?;
        if first.len() < PREFIX_LEN || first[..PREFIX_LEN] != head[..PREFIX_LEN] {
            return Ok(None);
        }
        self.large_plaintext_size(&old, key, vs.stream.size)?;
        let ad = self.associated_data(key);
        let codec = ReencryptCodec {
            dec: DecryptCodec {
                dec: old.decryptor(&ad),
                store: self.clone(),
                key: key.to_owned(),
                key_id: from,
            },
            enc: EncryptCodec {
                enc: s.encryptor(&ad).map_err(|e| encrypt_error(self, key, e))?,
                store: self.clone(),
                key: key.to_owned(),
                key_id: to,
            },
            scratch: Zeroizing::new(Vec::new()),
        };
        let rest = large::prepend(first.slice(PREFIX_LEN..), body);
        let prefix = Bytes::copy_from_slice(&large_prefix(to));
        let new_body = large::pump(codec, Some(prefix), rest);
        match self
            .inner
            .store_stream_if(key, new_body, &WriteCondition::Matches(vs.version))
            .await
        {
            Ok(_) => {
                tracing::debug!(key, from, to, "rewrapped a large object");
                Ok(Some(ObjectReencryption::Reencrypted {
                    from: Some(from),
                    to,
                }))
            }
            Err(Error::PreconditionFailed { .. }) => {
                tracing::debug!(key, "large object changed during rewrap; retrying");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Decrypts the whole object at `key` and discards the plaintext: the
    /// check behind `encstore store verify`. A large object is streamed and
    /// authenticated segment by segment in constant memory (its plaintext
    /// is wiped as it goes); a small one is decrypted in memory and wiped.
    ///
    /// # Errors
    /// What a `load` of the object fails with: [`Error::Authentication`]
    /// (tampered, truncated, moved), [`Error::UnknownKeyId`],
    /// [`Error::KeyNotEnabled`], backend errors. A missing object is
    /// [`ObjectCheck::Deleted`], not an error.
    pub async fn verify_one(&self, key: &str) -> Result<ObjectCheck> {
        let (opened, _) = match self.open_read(key, false, true).await {
            Ok(o) => o,
            Err(Error::NotFound { .. }) => return Ok(ObjectCheck::Deleted),
            Err(e) => return Err(e),
        };
        match opened {
            Opened::Large { stream, key_id } => {
                let mut body = stream.body;
                let mut size = 0u64;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk?;
                    size += chunk.len() as u64;
                    let mut owned = Vec::from(chunk);
                    owned.zeroize();
                }
                Ok(ObjectCheck::Verified {
                    key_id,
                    layout: ObjectLayout::Streaming,
                    size,
                })
            }
            Opened::Small { plaintext, key_id } => {
                let size = plaintext.len() as u64;
                drop(plaintext);
                Ok(match key_id {
                    Some(key_id) => ObjectCheck::Verified {
                        key_id,
                        layout: ObjectLayout::Aead,
                        size,
                    },
                    None => ObjectCheck::Plaintext { size },
                })
            }
        }
    }

    /// `load_range` of a large object whose first [`HEAD_LEN`] bytes (or
    /// all of it) are `first`: fetches the segments covering the range
    /// with one more ranged read and decrypts them. `Ok(None)`: the object
    /// changed between the two reads; start again.
    async fn range_large(
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
enum Opened {
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

impl EncryptedStorage {
    /// Whether migration mode ([`Options::allow_plaintext`]) is on.
    pub fn allows_plaintext(&self) -> bool {
        self.allow_plaintext
    }
}

/// The storage error for a failed envelope operation on the object at
/// `key`: authentication failures as for any ciphertext; an unreachable
/// or silent KMS as [`Error::Unreachable`] (a store-wide run stops on it);
/// other KMS failures as a `kms` backend error naming the master key.
pub(crate) fn envelope_error(key: &str, e: EnvelopeError, op: &'static str) -> Error {
    match e {
        EnvelopeError::Authentication | EnvelopeError::Malformed { .. } => Error::Authentication {
            key: key.to_owned(),
        },
        EnvelopeError::UnknownKeyId { key_id } => Error::UnknownKeyId {
            key: key.to_owned(),
            key_id,
        },
        EnvelopeError::Aead(a) => Error::from_aead(key, a),
        EnvelopeError::KmsTimeout { ref kek_uri, .. }
        | EnvelopeError::Kek {
            ref kek_uri,
            error: KekError::Unavailable(_),
        } => Error::Unreachable {
            backend: "kms",
            address: kek_uri.clone(),
            source: Box::new(e),
        },
        e => Error::Backend {
            backend: "kms",
            op,
            source: Box::new(e),
        },
    }
}
