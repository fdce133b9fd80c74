//! [`S3Storage`]: the [`Storage`] implementation.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use encstore_core::key::RESERVED_PREFIX;
use encstore_core::{
    Error, KeyInfo, Lease, Result, Storage, Version, Versioned, WriteCondition, validate_key,
    validate_prefix,
};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion,
};

use crate::config::{S3StorageBuilder, parse_url};
use crate::error::{BACKEND, Kind, map};

/// A [`Storage`] on an S3 bucket (AWS S3, MinIO, SeaweedFS, Cloudflare R2,
/// and other S3-compatible services), through `object_store`'s S3 client.
///
/// Keys live at `prefix/key` in the bucket. Lock objects live at
/// `prefix/.encstore-locks/<name>`, outside the key namespace. Cloning is
/// cheap and shares the HTTP connection pool.
///
/// Build one with [`S3Storage::builder`], [`S3Storage::from_env`] or
/// [`S3Storage::from_url`].
#[derive(Clone)]
pub struct S3Storage {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The S3 client (connection pool, signer, retries).
    pub(crate) store: Arc<AmazonS3>,
    /// For `Debug` and error messages.
    pub(crate) bucket: String,
    /// Keys live at `prefix/key`; empty for the bucket's root.
    pub(crate) prefix: String,
    /// For `Debug`.
    pub(crate) endpoint: Option<String>,
    /// For `Debug`.
    pub(crate) region: String,
    /// The lock lease.
    pub(crate) lease: Duration,
    /// The deadline of one storage operation.
    pub(crate) operation_timeout: Duration,
    /// Written into lock records, to tell operators who holds a lock.
    pub(crate) host: String,
    /// Written into lock records, to tell operators who holds a lock.
    pub(crate) pid: u32,
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("S3Storage")
            .field("bucket", &i.bucket)
            .field("prefix", &i.prefix)
            .field("endpoint", &i.endpoint)
            .field("region", &i.region)
            .field("lease", &i.lease)
            .finish_non_exhaustive()
    }
}

impl S3Storage {
    /// A builder for a store in `bucket`.
    pub fn builder(bucket: impl Into<String>) -> S3StorageBuilder {
        S3StorageBuilder::new(bucket)
    }

    /// A store in `bucket` under `prefix`, configured from the standard
    /// `AWS_*` environment variables (see [`S3StorageBuilder::from_env`]).
    ///
    /// # Errors
    /// See [`S3StorageBuilder::build`].
    pub fn from_env(bucket: impl Into<String>, prefix: impl Into<String>) -> Result<Self> {
        S3StorageBuilder::from_env(bucket, prefix).build()
    }

    /// A store for `s3://bucket/prefix` (the CLI's `--store` value), with
    /// everything else from the environment as in [`S3Storage::from_env`].
    ///
    /// # Errors
    /// [`Error::Backend`] for a malformed URL; see also
    /// [`S3StorageBuilder::build`].
    pub fn from_url(url: &str) -> Result<Self> {
        let (bucket, prefix) = parse_url(url)?;
        Self::from_env(bucket, prefix)
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The prefix under which keys live (empty for the bucket's root).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The underlying `object_store` client, for callers that need S3
    /// operations this trait does not offer (and for benchmarks).
    pub fn object_store(&self) -> Arc<AmazonS3> {
        Arc::clone(&self.inner.store)
    }

    /// The S3 object path of `key` (which must be valid): `prefix/key`.
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
        Path::parse(&full).map_err(|e| Error::backend(BACKEND, "map key to object path", e))
    }

    /// The key of an object path under our prefix, or `None` for objects
    /// outside the key namespace (lock objects, names that are not valid
    /// keys).
    fn key_of(&self, location: &Path) -> Option<String> {
        let s = location.as_ref();
        let rel = if self.inner.prefix.is_empty() {
            s
        } else {
            s.strip_prefix(self.inner.prefix.as_str())?
                .strip_prefix('/')?
        };
        if rel.split('/').any(|seg| seg.starts_with(RESERVED_PREFIX)) {
            return None;
        }
        if validate_key(rel).is_err() {
            tracing::warn!(
                bucket = %self.inner.bucket,
                object = s,
                "skipping an object whose name is not a valid encstore key"
            );
            return None;
        }
        Some(rel.to_owned())
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
                backend: BACKEND,
                op,
            }),
        }
    }

    /// Every object under the key prefix `prefix` ("" for all), as keys.
    async fn list_recursive(&self, prefix: &str) -> Result<Vec<String>> {
        let base = self.list_base(prefix)?;
        let metas: Vec<_> = self
            .inner
            .store
            .list(base.as_ref())
            .try_collect()
            .await
            .map_err(|e| map("list", prefix, Kind::Other, e))?;
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
    fn list_base(&self, prefix: &str) -> Result<Option<Path>> {
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
            .map_err(|e| map(op, key, Kind::Conditional, e))?;
        version_of(r.e_tag, r.version, op)
    }
}

/// The separator between the ETag and the object version in a [`Version`].
const VERSION_SEP: &str = ";version=";

/// Encodes an ETag (and the object version, on versioned buckets) as a
/// [`Version`].
pub(crate) fn version_of(
    e_tag: Option<String>,
    version: Option<String>,
    op: &'static str,
) -> Result<Version> {
    let e_tag = e_tag.ok_or_else(|| {
        Error::backend(
            BACKEND,
            op,
            "the server returned no ETag, which conditional writes need",
        )
    })?;
    Ok(match version {
        Some(v) => Version::new(format!("{e_tag}{VERSION_SEP}{v}")),
        None => Version::new(e_tag),
    })
}

/// Decodes a [`Version`] made by [`version_of`].
pub(crate) fn update_version(v: &Version) -> UpdateVersion {
    let s = v.as_str();
    // An ETag is a quoted string; split after its closing quote so that an
    // ETag containing the separator cannot confuse us.
    let split = match s.rfind('"') {
        Some(q) => s[q..]
            .find(VERSION_SEP)
            .map(|i| (&s[..q + i], &s[q + i + VERSION_SEP.len()..])),
        None => s.split_once(VERSION_SEP),
    };
    match split {
        Some((e, ver)) => UpdateVersion {
            e_tag: Some(e.to_owned()),
            version: Some(ver.to_owned()),
        },
        None => UpdateVersion {
            e_tag: Some(s.to_owned()),
            version: None,
        },
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn store(&self, key: &str, value: Bytes) -> Result<()> {
        validate_key(key)?;
        let path = self.path(key)?;
        self.deadline("store", async {
            self.inner
                .store
                .put(&path, PutPayload::from(value))
                .await
                .map_err(|e| map("store", key, Kind::Other, e))?;
            Ok(())
        })
        .await
    }

    async fn store_if(
        &self,
        key: &str,
        value: Bytes,
        condition: &WriteCondition,
    ) -> Result<Version> {
        validate_key(key)?;
        let path = self.path(key)?;
        let mode = match condition {
            WriteCondition::Absent => PutMode::Create,
            WriteCondition::Matches(v) => PutMode::Update(update_version(v)),
            _ => {
                return Err(Error::backend(
                    BACKEND,
                    "store_if",
                    "unsupported write condition",
                ));
            }
        };
        self.deadline(
            "store_if",
            self.put_conditional("store_if", key, &path, value, mode),
        )
        .await
    }

    async fn load_versioned(&self, key: &str) -> Result<Versioned> {
        validate_key(key)?;
        let path = self.path(key)?;
        self.deadline("load", async {
            let r = self
                .inner
                .store
                .get(&path)
                .await
                .map_err(|e| map("load", key, Kind::Read, e))?;
            let version = version_of(r.meta.e_tag.clone(), r.meta.version.clone(), "load")?;
            let value = r
                .bytes()
                .await
                .map_err(|e| map("load", key, Kind::Read, e))?;
            Ok(Versioned { value, version })
        })
        .await
    }

    async fn load(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        let path = self.path(key)?;
        self.deadline("load", async {
            let r = self
                .inner
                .store
                .get(&path)
                .await
                .map_err(|e| map("load", key, Kind::Read, e))?;
            r.bytes().await.map_err(|e| map("load", key, Kind::Read, e))
        })
        .await
    }

    async fn load_head(&self, key: &str, len: usize) -> Result<Bytes> {
        validate_key(key)?;
        let path = self.path(key)?;
        self.deadline("load", async {
            if len == 0 {
                // A zero-length range is not a valid HTTP range; check that
                // the key exists instead.
                self.inner
                    .store
                    .head(&path)
                    .await
                    .map_err(|e| map("load", key, Kind::Read, e))?;
                return Ok(Bytes::new());
            }
            let opts = GetOptions {
                range: Some(GetRange::Bounded(0..len as u64)),
                ..GetOptions::default()
            };
            match self.inner.store.get_opts(&path, opts).await {
                Ok(r) => {
                    let mut b = r
                        .bytes()
                        .await
                        .map_err(|e| map("load", key, Kind::Read, e))?;
                    b.truncate(len);
                    Ok(b)
                }
                Err(object_store::Error::NotFound { .. }) => Err(Error::not_found(key)),
                Err(e) => {
                    // An empty object has no byte 0, so servers refuse any
                    // range on it (416); its first `len` bytes are empty.
                    match self.inner.store.head(&path).await {
                        Ok(meta) if meta.size == 0 => Ok(Bytes::new()),
                        _ => Err(map("load", key, Kind::Read, e)),
                    }
                }
            }
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let path = self.path(key)?;
        self.deadline("delete", async {
            match self.inner.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(map("delete", key, Kind::Other, e)),
            }
            // Everything under the key, as a prefix. The listing is of
            // object paths, so it includes names that are not valid keys:
            // deleting a prefix deletes all of it.
            let under: Vec<Path> = self
                .inner
                .store
                .list(Some(&path))
                .map_ok(|m| m.location)
                .try_collect()
                .await
                .map_err(|e| map("delete", key, Kind::Other, e))?;
            if under.is_empty() {
                return Ok(());
            }
            let stream = futures_util::stream::iter(under.into_iter().map(Ok)).boxed();
            let mut results = self.inner.store.delete_stream(stream);
            while let Some(r) = results.next().await {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(map("delete", key, Kind::Other, e)),
                }
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        self.deadline("list", async {
            if recursive {
                return self.list_recursive(prefix).await;
            }
            let base = self.list_base(prefix)?;
            let r = self
                .inner
                .store
                .list_with_delimiter(base.as_ref())
                .await
                .map_err(|e| map("list", prefix, Kind::Other, e))?;
            let children: BTreeSet<String> = r
                .objects
                .iter()
                .map(|m| &m.location)
                .chain(r.common_prefixes.iter())
                .filter_map(|p| self.key_of(p))
                .filter(|k| encstore_core::key::is_under(prefix, k))
                .collect();
            Ok(children.into_iter().collect())
        })
        .await
    }

    async fn stat(&self, key: &str) -> Result<KeyInfo> {
        validate_key(key)?;
        let path = self.path(key)?;
        self.deadline("stat", async {
            match self.inner.store.head(&path).await {
                Ok(meta) => {
                    return Ok(KeyInfo {
                        key: key.to_owned(),
                        modified: Some(SystemTime::from(meta.last_modified)),
                        size: meta.size,
                        terminal: true,
                    });
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(map("stat", key, Kind::Read, e)),
            }
            // Not an object: a prefix if anything lies under it. Only the
            // first page is fetched.
            let mut under = self.inner.store.list(Some(&path));
            match under.next().await {
                Some(Ok(meta)) => Ok(KeyInfo {
                    key: key.to_owned(),
                    // The first object's time; S3 has no directory times.
                    modified: Some(SystemTime::from(meta.last_modified)),
                    size: 0,
                    terminal: false,
                }),
                Some(Err(e)) => Err(map("stat", key, Kind::Other, e)),
                None => Err(Error::not_found(key)),
            }
        })
        .await
    }

    async fn try_lock(&self, name: &str) -> Result<Lease> {
        validate_key(name)?;
        self.deadline("lock", crate::lock::try_lock(self, name))
            .await
    }

    async fn unlock(&self, lease: Lease) -> Result<()> {
        self.deadline("unlock", crate::lock::unlock(self, lease))
            .await
    }

    fn lease_duration(&self) -> Duration {
        self.inner.lease
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip() {
        let v = version_of(Some("\"abc\"".into()), None, "t").unwrap();
        assert_eq!(v.as_str(), "\"abc\"");
        let u = update_version(&v);
        assert_eq!(u.e_tag.as_deref(), Some("\"abc\""));
        assert_eq!(u.version, None);

        let v = version_of(Some("\"a;version=b\"".into()), Some("v1.2".into()), "t").unwrap();
        let u = update_version(&v);
        assert_eq!(u.e_tag.as_deref(), Some("\"a;version=b\""));
        assert_eq!(u.version.as_deref(), Some("v1.2"));

        let v = version_of(Some("unquoted".into()), Some("7".into()), "t").unwrap();
        let u = update_version(&v);
        assert_eq!(u.e_tag.as_deref(), Some("unquoted"));
        assert_eq!(u.version.as_deref(), Some("7"));

        assert!(version_of(None, None, "t").is_err());
    }

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn storage_is_send_sync() {
        assert_send_sync::<S3Storage>();
    }

    #[test]
    fn debug_shows_no_secrets() {
        let s = S3Storage::builder("bucket")
            .prefix("/tls/prod/")
            .endpoint("http://127.0.0.1:8333")
            .allow_http(true)
            .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI-secret", Some("tok".into()))
            .build()
            .unwrap();
        let dbg = format!("{s:?}");
        assert_eq!(
            dbg,
            "S3Storage { bucket: \"bucket\", prefix: \"tls/prod\", \
             endpoint: Some(\"http://127.0.0.1:8333\"), region: \"us-east-1\", lease: 60s, .. }"
        );
        assert!(!dbg.contains("wJalrXUtnFEMI-secret"));
        assert!(!dbg.contains("AKIDEXAMPLE"));
    }

    #[test]
    fn keys_map_to_prefixed_paths_and_back() {
        let s = S3Storage::builder("b").prefix("p/q").build().unwrap();
        let path = s.object_path("a/b c/%d#e").unwrap();
        assert_eq!(path.as_ref(), "p/q/a/b c/%d#e");
        assert_eq!(s.key_of(&path).as_deref(), Some("a/b c/%d#e"));
        let lock = s.path(".encstore-locks/n").unwrap();
        assert_eq!(s.key_of(&lock), None, "lock objects are not keys");
        assert_eq!(s.key_of(&Path::parse("p/qq/x").unwrap()), None);
        assert!(matches!(
            s.object_path("a/../b"),
            Err(Error::InvalidKey { .. })
        ));

        let root = S3Storage::builder("b").build().unwrap();
        assert_eq!(root.object_path("x/y").unwrap().as_ref(), "x/y");
        assert_eq!(
            root.key_of(&Path::parse(".encstore-locks/x").unwrap()),
            None
        );
    }
}
