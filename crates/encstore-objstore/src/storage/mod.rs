//! [`ObjectStorage`]: the handle (its configuration, paths and helpers);
//! `ops` implements [`Storage`] on it.

mod ops;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
#[cfg(doc)]
use encstore_core::Storage;
use encstore_core::{Error, Result, Version, is_reserved_segment, validate_key};
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use crate::config::{
    CompletionSupport, ObjectStorageBuilder, S3StorageBuilder, StreamSettings, UrlStorageBuilder,
};
use crate::error::Kind;
use crate::probe::Conditional;

/// A [`Storage`] over any `object_store` [`ObjectStore`]: S3 and
/// S3-compatible servers, Google Cloud Storage, Azure Blob Storage, the
/// in-memory store, or one you built.
///
/// Keys live at `prefix/key` in the store. encstore's own objects live
/// under the reserved `.encstore` names of the prefix, outside the key
/// namespace: lock objects at `prefix/.encstore-locks/<name>`, and the
/// conditional-write probe at `prefix/.encstore/conditional-write-probe`.
/// Cloning is cheap and shares the client, its connection pool and the
/// probe's result.
///
/// Build one with [`ObjectStorage::from_url`] (`s3://`, `gs://`, `az://`,
/// `memory://`), [`ObjectStorage::url_builder`],
/// [`ObjectStorage::builder`] (any `Arc<dyn ObjectStore>`), or
/// [`S3StorageBuilder`].
#[derive(Clone)]
pub struct ObjectStorage {
    pub(crate) inner: Arc<Inner>,
}

/// The S3 backend's former name: an [`ObjectStorage`] on an S3 bucket.
pub type S3Storage = ObjectStorage;

pub(crate) struct Inner {
    /// The client (connection pool, signer, retries).
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The backend's short name in errors: `s3`, `gcs`, `azure`, `memory`.
    pub(crate) backend: &'static str,
    /// What the store is, for `Debug`: `s3://bucket`, ...
    pub(crate) location: String,
    /// Where requests go (an endpoint URL without credentials), for
    /// `Debug`, unreachable-backend and probe errors.
    pub(crate) address: String,
    /// The bucket or container, for missing-bucket errors.
    pub(crate) bucket: Option<String>,
    /// Keys live at `prefix/key`; empty for the bucket's root.
    pub(crate) prefix: String,
    /// The lock lease, within the bounds of `check_lease`.
    pub(crate) lease: Duration,
    /// The deadline of one storage operation.
    pub(crate) operation_timeout: Duration,
    /// Written into lock records, to tell operators who holds a lock.
    pub(crate) host: String,
    /// Written into lock records, to tell operators who holds a lock.
    pub(crate) pid: u32,
    /// Whether the store honours conditional writes: probed once, before
    /// the first conditional write or lock of this handle (and its clones).
    pub(crate) conditional: tokio::sync::OnceCell<Conditional>,
    /// Part size, concurrency and buffered bound of streamed writes.
    pub(crate) stream: StreamSettings,
    /// Whether multipart completions can carry a condition (through
    /// [`ConditionConnector`](crate::complete::ConditionConnector), on the
    /// S3 stores this crate builds) and may be relied on.
    pub(crate) completion: CompletionSupport,
    /// Whether the server honours conditions on multipart completions:
    /// probed once, before the first conditional streamed write that needs
    /// a multipart upload.
    pub(crate) conditional_multipart: tokio::sync::OnceCell<Conditional>,
}

impl Inner {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        backend: &'static str,
        location: String,
        address: String,
        bucket: Option<String>,
        prefix: String,
        lease: Duration,
        operation_timeout: Duration,
    ) -> Self {
        Inner {
            store,
            backend,
            location,
            address,
            bucket,
            prefix,
            lease,
            operation_timeout,
            host: encstore_core::hostname(),
            pid: std::process::id(),
            conditional: tokio::sync::OnceCell::new(),
            stream: StreamSettings::default(),
            completion: CompletionSupport::NoConnector,
            conditional_multipart: tokio::sync::OnceCell::new(),
        }
    }
}

impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("ObjectStorage")
            .field("location", &i.location)
            .field("prefix", &i.prefix)
            .field("address", &i.address)
            .field("lease", &i.lease)
            .finish_non_exhaustive()
    }
}

impl ObjectStorage {
    pub(crate) fn from_inner(inner: Inner) -> Self {
        ObjectStorage {
            inner: Arc::new(inner),
        }
    }

    /// A builder over `store`, any `object_store` implementation.
    pub fn builder(store: Arc<dyn ObjectStore>) -> ObjectStorageBuilder {
        ObjectStorageBuilder::new(store)
    }

    /// A store over `store`, keys under `prefix`, with the default lease
    /// and deadline.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an invalid prefix.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Self> {
        ObjectStorageBuilder::new(store).prefix(prefix).build()
    }

    /// A store for a location URL (the CLI's `--store` value):
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`
    /// or `memory:///prefix`, configured from the standard environment
    /// variables (see [`UrlStorageBuilder`]).
    ///
    /// # Errors
    /// See [`UrlStorageBuilder::build`].
    pub fn from_url(url: &str) -> Result<Self> {
        UrlStorageBuilder::new(url).build()
    }

    /// A builder for a location URL, to set timeouts, retries or the lease
    /// before building.
    pub fn url_builder(url: &str) -> UrlStorageBuilder {
        UrlStorageBuilder::new(url)
    }

    /// A store in the S3 bucket `bucket` under `prefix`, configured from
    /// the standard `AWS_*` environment variables (see
    /// [`S3StorageBuilder::from_env`]).
    ///
    /// # Errors
    /// See [`S3StorageBuilder::build`].
    pub fn from_env(bucket: impl Into<String>, prefix: impl Into<String>) -> Result<Self> {
        S3StorageBuilder::from_env(bucket, prefix).build()
    }

    /// The backend's short name: `s3`, `gcs`, `azure`, `memory`, or what
    /// [`ObjectStorageBuilder::backend_name`] set.
    pub fn backend(&self) -> &'static str {
        self.inner.backend
    }

    /// The bucket or container, when known.
    pub fn bucket(&self) -> Option<&str> {
        self.inner.bucket.as_deref()
    }

    /// Where requests go: the endpoint URL, without credentials.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The prefix under which keys live (empty for the bucket's root).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The underlying `object_store` client, for callers that need
    /// operations this trait does not offer (and for benchmarks).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner.store)
    }

    /// The object path of `key` (which must be valid): `prefix/key`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an invalid key.
    pub fn object_path(&self, key: &str) -> Result<Path> {
        validate_key(key)?;
        self.path(key)
    }

    /// `prefix/rel` as an object path; `rel` must already be validated (or
    /// be one of ours, like the lock directory).
    pub(crate) fn path(&self, rel: &str) -> Result<Path> {
        let full = if self.inner.prefix.is_empty() {
            rel.to_owned()
        } else if rel.is_empty() {
            self.inner.prefix.clone()
        } else {
            format!("{}/{rel}", self.inner.prefix)
        };
        Path::parse(&full)
            .map_err(|e| Error::backend(self.inner.backend, "map key to object path", e))
    }

    /// The key of an object path under our prefix, or `None` for objects
    /// outside the key namespace (encstore's reserved objects, names that
    /// are not valid keys).
    pub(super) fn key_of(&self, location: &Path) -> Option<String> {
        let s = location.as_ref();
        let rel = if self.inner.prefix.is_empty() {
            s
        } else {
            s.strip_prefix(self.inner.prefix.as_str())?
                .strip_prefix('/')?
        };
        if rel.split('/').any(is_reserved_segment) {
            return None;
        }
        if validate_key(rel).is_err() {
            tracing::warn!(
                store = %self.inner.location,
                object = s,
                "skipping an object whose name is not a valid encstore key"
            );
            return None;
        }
        Some(rel.to_owned())
    }

    /// Maps an `object_store` error (see `error.rs`).
    pub(crate) fn map(
        &self,
        op: &'static str,
        key: &str,
        kind: Kind,
        e: object_store::Error,
    ) -> Error {
        self.inner.map(op, key, kind, e)
    }

    /// Runs `fut` under the operation deadline.
    pub(crate) async fn deadline<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.inner.operation_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                backend: self.inner.backend,
                op,
            }),
        }
    }

    /// A HEAD answers 404 without a body, for a missing key and a missing
    /// bucket alike. After one, this tells them apart with a listing (whose
    /// error names a missing bucket): `Ok` when the bucket exists.
    pub(crate) async fn check_bucket(&self, op: &'static str) -> Result<()> {
        let probe = self.path(crate::lock::LOCK_DIR)?;
        match self.inner.store.list_with_delimiter(Some(&probe)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.map(op, "", Kind::Other, e)),
        }
    }

    /// Every object under the key prefix `prefix` ("" for all), as keys.
    pub(super) async fn list_recursive(&self, prefix: &str) -> Result<Vec<String>> {
        let base = self.list_base(prefix)?;
        let metas: Vec<_> = self
            .inner
            .store
            .list(base.as_ref())
            .try_collect()
            .await
            .map_err(|e| self.map("list", prefix, Kind::Other, e))?;
        let mut keys: Vec<String> = metas
            .iter()
            .filter_map(|m| self.key_of(&m.location))
            .filter(|k| encstore_core::key::is_under(prefix, k))
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// The object path to list for the key prefix `prefix`.
    pub(super) fn list_base(&self, prefix: &str) -> Result<Option<Path>> {
        if prefix.is_empty() && self.inner.prefix.is_empty() {
            Ok(None)
        } else {
            Ok(Some(self.path(prefix)?))
        }
    }

    pub(crate) async fn put_conditional(
        &self,
        op: &'static str,
        key: &str,
        path: &Path,
        value: Bytes,
        mode: PutMode,
    ) -> Result<Version> {
        let r = self
            .inner
            .store
            .put_opts(path, PutPayload::from(value), PutOptions::from(mode))
            .await
            .map_err(|e| self.map(op, key, Kind::Conditional, e))?;
        self.version_of(r.e_tag, r.version, op)
    }

    /// Encodes an ETag (and the object version, on versioned buckets and
    /// GCS generations) as a [`Version`].
    pub(crate) fn version_of(
        &self,
        e_tag: Option<String>,
        version: Option<String>,
        op: &'static str,
    ) -> Result<Version> {
        crate::version::version_of(e_tag, version).ok_or_else(|| {
            Error::backend(
                self.inner.backend,
                op,
                "the server returned no ETag, which conditional writes need",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn storage_is_send_sync() {
        assert_send_sync::<ObjectStorage>();
    }

    #[test]
    fn debug_shows_no_secrets() {
        let s = S3StorageBuilder::new("bucket")
            .prefix("/tls/prod/")
            .endpoint("http://127.0.0.1:8333")
            .allow_http(true)
            .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI-secret", Some("tok".into()))
            .build()
            .unwrap();
        let dbg = format!("{s:?}");
        assert_eq!(
            dbg,
            "ObjectStorage { location: \"s3://bucket\", prefix: \"tls/prod\", \
             address: \"http://127.0.0.1:8333\", lease: 60s, .. }"
        );
        assert!(!dbg.contains("wJalrXUtnFEMI-secret"));
        assert!(!dbg.contains("AKIDEXAMPLE"));
        // object_store's own Debug of the client redacts the secret too.
        let inner = format!("{:?}", s.object_store());
        assert!(!inner.contains("wJalrXUtnFEMI-secret"), "{inner}");
        assert!(!inner.contains("\"tok\""), "{inner}");
    }

    #[test]
    fn keys_map_to_prefixed_paths_and_back() {
        let creds = |b: S3StorageBuilder| b.credentials("id", "secret", None);
        let s = creds(S3StorageBuilder::new("b").prefix("p/q"))
            .build()
            .unwrap();
        let path = s.object_path("a/b c/%d#e").unwrap();
        assert_eq!(path.as_ref(), "p/q/a/b c/%d#e");
        assert_eq!(s.key_of(&path).as_deref(), Some("a/b c/%d#e"));
        let lock = s.path(".encstore-locks/n").unwrap();
        assert_eq!(s.key_of(&lock), None, "lock objects are not keys");
        let probe = s.path(".encstore/conditional-write-probe").unwrap();
        assert_eq!(s.key_of(&probe), None, "the probe object is not a key");
        let upper = s.path(".ENCSTORE-LOCKS/n").unwrap();
        assert_eq!(s.key_of(&upper), None, "reserved in any letter case");
        assert_eq!(s.key_of(&Path::parse("p/qq/x").unwrap()), None);
        assert!(matches!(
            s.object_path("a/../b"),
            Err(Error::InvalidKey { .. })
        ));

        let root = creds(S3StorageBuilder::new("b")).build().unwrap();
        assert_eq!(root.object_path("x/y").unwrap().as_ref(), "x/y");
        assert_eq!(
            root.key_of(&Path::parse(".encstore-locks/x").unwrap()),
            None
        );
    }
}
