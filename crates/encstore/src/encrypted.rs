//! [`EncryptedStorage`]: a [`Storage`] that encrypts every value with the
//! keyset's primary key before it reaches the wrapped backend.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use encstore_core::{
    AeadError, Error, KeyInfo, Lease, Result, Storage, Version, Versioned, WriteCondition,
    validate_key,
};

use encstore_tink::KeyStatus;
use zeroize::Zeroizing;

use crate::keys::{HeadClass, KeysetSnapshot};
use crate::metrics::Metrics;
use crate::reload::ReloadableKeyset;

/// How many times [`EncryptedStorage::rewrap_one`] retries when a writer
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

/// What [`EncryptedStorage::rewrap_one`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RewrapOutcome {
    /// The object was re-encrypted under the primary key.
    Rewrapped {
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

/// Options for [`EncryptedStorage`].
#[derive(Debug, Clone, Default)]
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

/// A [`Storage`] that encrypts on `store` and decrypts on `load`, with the
/// keyset's primary key, over any other `Storage`.
///
/// Each stored object is exactly a Tink AEAD ciphertext (key-ID prefix,
/// then the primitive's output) whose associated data is the UTF-8 key name,
/// optionally preceded by a namespace. `list`, `delete`, `stat`, `exists`
/// and the locks pass through; `stat` reports the ciphertext's size.
#[derive(Clone)]
pub struct EncryptedStorage {
    inner: Arc<dyn Storage>,
    keys: Arc<ReloadableKeyset>,
    namespace: Option<Arc<[u8]>>,
    allow_plaintext: bool,
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
        }
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

    fn fail(&self, err: Error) -> Error {
        self.metrics().failure(err.kind());
        // Its own target, so that a caller that reports the error anyway
        // (the CLI) can leave this event out: `encstore::failure=off`.
        tracing::warn!(target: "encstore::failure", kind = err.kind().as_str(), error = %err, "encstore operation failed");
        err
    }

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

    /// [`encrypt`](Self::encrypt), on the blocking pool for large values.
    async fn encrypt_async(
        &self,
        snap: Arc<KeysetSnapshot>,
        key: &str,
        value: Bytes,
    ) -> Result<Vec<u8>> {
        if value.len() < BLOCKING_THRESHOLD {
            return self.encrypt(&snap, key, &value);
        }
        let this = self.clone();
        let key = key.to_owned();
        off_the_runtime(value.len(), move || this.encrypt(&snap, &key, &value)).await?
    }

    /// Decrypts `ct` stored at `key` into a buffer that is wiped when
    /// dropped. Returns the plaintext and the key ID that decrypted it
    /// (`None` for a plaintext object in migration mode or a RAW key).
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
                    && matches!(class, HeadClass::NoPrefix | HeadClass::UnknownId { .. })
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
                    HeadClass::Known { key_id, status } if status != KeyStatus::Enabled => {
                        Error::KeyNotEnabled {
                            key: key.to_owned(),
                            key_id,
                            status: status.as_str(),
                        }
                    }
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
        if ct.len() < BLOCKING_THRESHOLD {
            return self.decrypt(&snap, key, ct);
        }
        let this = self.clone();
        let key = key.to_owned();
        off_the_runtime(ct.len(), move || this.decrypt(&snap, &key, ct)).await?
    }

    /// The CPU part of a rewrap: `None` when `ct` is already under the
    /// primary, otherwise the new ciphertext and the key it was under. The
    /// plaintext is wiped before this returns.
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

    /// Re-encrypts the object at `key` under the current primary key, with a
    /// conditional write: if a writer changes the object in between, the
    /// new value is re-read and the attempt repeated, so a value a server
    /// wrote meanwhile is never overwritten.
    ///
    /// # Errors
    /// Decryption errors (the object is left untouched), and
    /// [`Error::PreconditionFailed`] if the object kept changing for
    /// several attempts in a row.
    pub async fn rewrap_one(&self, key: &str) -> Result<RewrapOutcome> {
        validate_key(key)?;
        for _ in 0..REWRAP_ATTEMPTS {
            let snap = self.keys.snapshot();
            let loaded = match self.inner.load_versioned(key).await {
                Ok(v) => v,
                Err(Error::NotFound { .. }) => return Ok(RewrapOutcome::Deleted),
                Err(e) => return Err(e),
            };
            let primary = snap.primary_key_id();
            let len = loaded.value.len();
            let this = self.clone();
            let owned_key = key.to_owned();
            let value = loaded.value;
            let step =
                off_the_runtime(len, move || this.reencrypt(&snap, &owned_key, value)).await??;
            let Some((ct, from)) = step else {
                return Ok(RewrapOutcome::AlreadyCurrent);
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
                    return Ok(RewrapOutcome::Rewrapped { from, to: primary });
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
}

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

    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key).await
    }

    async fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<String>> {
        self.inner.list(prefix, recursive).await
    }

    async fn stat(&self, key: &str) -> Result<KeyInfo> {
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
