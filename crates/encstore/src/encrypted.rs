//! [`EncryptedStorage`]: a [`Storage`] that encrypts every value with the
//! keyset's primary key before it reaches the wrapped backend.

mod by_size;
mod crypto;
mod envelope;
mod object;
mod storage;

use std::fmt;
use std::sync::Arc;

use encstore_core::{Error, Result, Storage};

use crate::metrics::Metrics;
use crate::reload::ReloadableKeyset;

pub(crate) use envelope::envelope_error;
pub use object::{ObjectCheck, ObjectLayout, ObjectReencryption};

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
    joined(handle.spawn_blocking(f).await)
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
    joined(handle.spawn_blocking(move || inner.block_on(make())).await)
}

/// The value of a task of the blocking pool: its panic goes on here; a
/// task that did not run (the runtime shutting down) is an error.
fn joined<T>(r: std::result::Result<T, tokio::task::JoinError>) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::backend(
            "encstore",
            "run AEAD work on the blocking pool",
            e.to_string(),
        )),
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
    /// Segment buffers of large-object streams, recycled (shared by the
    /// clones of this store).
    buffers: Arc<crate::buffers::BufferPool>,
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
            buffers: Arc::default(),
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
}

impl EncryptedStorage {
    /// Whether migration mode ([`Options::allow_plaintext`]) is on.
    pub fn allows_plaintext(&self) -> bool {
        self.allow_plaintext
    }
}
