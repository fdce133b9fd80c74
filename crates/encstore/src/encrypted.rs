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

use crate::keys::KeysetSnapshot;
use crate::metrics::Metrics;
use crate::reload::ReloadableKeyset;

/// How many times [`EncryptedStorage::rewrap_one`] retries when a writer
/// changes the object between its read and its conditional write.
const REWRAP_ATTEMPTS: usize = 8;

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
    /// see `docs/threat-model.md` for the downgrade risk.
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
        tracing::warn!(kind = err.kind().as_str(), error = %err, "encstore operation failed");
        err
    }

    fn encrypt(&self, snap: &KeysetSnapshot, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let ad = self.associated_data(key);
        match snap.encrypt(value, &ad) {
            Ok((ct, key_id)) => {
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

    /// Decrypts `ct` stored at `key`. Returns the plaintext and the key ID
    /// that decrypted it (`None` for a plaintext object in migration mode or
    /// a RAW key).
    fn decrypt(&self, snap: &KeysetSnapshot, key: &str, ct: Bytes) -> Result<(Bytes, Option<u32>)> {
        let ad = self.associated_data(key);
        let class = snap.classify(&ct);
        let owned: Vec<u8> = Vec::from(ct);
        // Keep a copy only when migration mode may need the original bytes.
        let original = if self.allow_plaintext && class.may_be_plaintext() {
            Some(owned.clone())
        } else {
            None
        };
        match snap.decrypt_owned(owned, &ad, class) {
            Ok((pt, key_id)) => {
                if let Some(id) = key_id {
                    self.metrics().decrypted(id);
                }
                tracing::trace!(key_id, "decrypted");
                Ok((Bytes::from(pt), key_id))
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
                    return Ok((Bytes::from(original), None));
                }
                Err(self.fail(Error::from_aead(key, e)))
            }
        }
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
            if snap.decrypts_with_primary(&loaded.value, &self.associated_data(key)) {
                return Ok(RewrapOutcome::AlreadyCurrent);
            }
            // Not under the primary (checked above): decrypt and re-encrypt.
            let (plaintext, from) = self.decrypt(&snap, key, loaded.value)?;
            let ct = self.encrypt(&snap, key, &plaintext)?;
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
        let ct = self.encrypt(&snap, key, &value)?;
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
        let ct = self.encrypt(&snap, key, &value)?;
        self.inner.store_if(key, Bytes::from(ct), condition).await
    }

    async fn load(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        let ct = self.inner.load(key).await?;
        let snap = self.keys.snapshot();
        Ok(self.decrypt(&snap, key, ct)?.0)
    }

    async fn load_versioned(&self, key: &str) -> Result<Versioned> {
        validate_key(key)?;
        let v = self.inner.load_versioned(key).await?;
        let snap = self.keys.snapshot();
        let (value, _) = self.decrypt(&snap, key, v.value)?;
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
