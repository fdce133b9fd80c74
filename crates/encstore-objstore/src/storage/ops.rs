//! The [`Storage`] implementation of [`ObjectStorage`].

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use encstore_core::stream::{ByteStream, ObjectStream, RangeRead, VersionedStream};
use encstore_core::{
    Error, Lease, ObjectInfo, Result, Storage, Version, Versioned, WriteCondition, validate_key,
    validate_prefix,
};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetResult, ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Class, Kind, classify};

use super::ObjectStorage;

#[async_trait]
impl Storage for ObjectStorage {
    async fn store(&self, key: &str, value: Bytes) -> Result<()> {
        validate_key(key)?;
        let path = self.path(key)?;
        self.deadline("store", async {
            self.inner
                .store
                .put(&path, PutPayload::from(value))
                .await
                .map_err(|e| self.map("store", key, Kind::Other, e))?;
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
        let mode = self.put_mode(condition)?;
        self.deadline("store_if", async {
            self.require_conditional_writes("write conditionally")
                .await?;
            self.put_conditional("store_if", key, &path, value, mode)
                .await
        })
        .await
    }

    async fn load_versioned(&self, key: &str) -> Result<Versioned> {
        validate_key(key)?;
        let path = self.path(key)?;
        self.deadline("load", async {
            let r = self.get_for_load(key, &path).await?;
            let version = self.version_of(r.meta.e_tag.clone(), r.meta.version.clone(), "load")?;
            let value = self.body_for_load(key, r).await?;
            Ok(Versioned { value, version })
        })
        .await
    }

    async fn load(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        let path = self.path(key)?;
        self.deadline("load", async {
            let r = self.get_for_load(key, &path).await?;
            self.body_for_load(key, r).await
        })
        .await
    }

    async fn load_range(&self, key: &str, range: Range<u64>) -> Result<RangeRead> {
        self.read_range(key, range).await
    }

    async fn store_stream(&self, key: &str, body: ByteStream) -> Result<()> {
        self.write_stream(key, body, None).await.map(|_| ())
    }

    async fn store_stream_if(
        &self,
        key: &str,
        body: ByteStream,
        condition: &WriteCondition,
    ) -> Result<Version> {
        match self.write_stream(key, body, Some(condition)).await? {
            Some(v) => Ok(v),
            None => Err(Error::backend(
                self.inner.backend,
                "store a stream conditionally",
                "the write returned no version",
            )),
        }
    }

    async fn load_stream(&self, key: &str) -> Result<ObjectStream> {
        Ok(self.open_stream(key).await?.0)
    }

    async fn load_stream_versioned(&self, key: &str) -> Result<VersionedStream> {
        let (stream, version) = self.open_stream(key).await?;
        let version = match version {
            Some(v) => v,
            None => self.version_of(None, None, "load a stream")?,
        };
        Ok(VersionedStream { stream, version })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let path = self.path(key)?;
        self.deadline("delete", async {
            match self.inner.store.delete(&path).await {
                Ok(()) => {}
                Err(e) if classify(&e) == Class::NotFound => {}
                Err(e) => return Err(self.map("delete", key, Kind::Other, e)),
            }
            // Everything under the key, as a prefix. The listing is of
            // object paths, so it includes names that are not valid keys:
            // deleting a prefix deletes all of it. (It also fails, naming
            // the bucket, when the bucket is missing.)
            let under: Vec<Path> = self
                .inner
                .store
                .list(Some(&path))
                .map_ok(|m| m.location)
                .try_collect()
                .await
                .map_err(|e| self.map("delete", key, Kind::Other, e))?;
            if under.is_empty() {
                return Ok(());
            }
            let stream = futures_util::stream::iter(under.into_iter().map(Ok)).boxed();
            let mut results = self.inner.store.delete_stream(stream);
            while let Some(r) = results.next().await {
                match r {
                    Ok(_) => {}
                    Err(e) if classify(&e) == Class::NotFound => {}
                    Err(e) => return Err(self.map("delete", key, Kind::Other, e)),
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
                .map_err(|e| self.map("list", prefix, Kind::Other, e))?;
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

    async fn stat(&self, key: &str) -> Result<ObjectInfo> {
        validate_key(key)?;
        let path = self.path(key)?;
        self.deadline("stat", async {
            match self.inner.store.head(&path).await {
                Ok(meta) => {
                    return Ok(ObjectInfo {
                        key: key.to_owned(),
                        modified: Some(SystemTime::from(meta.last_modified)),
                        size: meta.size,
                        terminal: true,
                    });
                }
                Err(e) if classify(&e) == Class::NotFound => {}
                Err(e) => return Err(self.map("stat", key, Kind::Read, e)),
            }
            // Not an object: a prefix if anything lies under it. Only the
            // first page is fetched. (A missing bucket fails here, named.)
            let mut under = self.inner.store.list(Some(&path));
            match under.next().await {
                Some(Ok(meta)) => Ok(ObjectInfo {
                    key: key.to_owned(),
                    // The first object's time; object stores have no
                    // directory times.
                    modified: Some(SystemTime::from(meta.last_modified)),
                    size: 0,
                    terminal: false,
                }),
                Some(Err(e)) => Err(self.map("stat", key, Kind::Other, e)),
                None => Err(Error::not_found(key)),
            }
        })
        .await
    }

    async fn try_lock(&self, name: &str) -> Result<Lease> {
        validate_key(name)?;
        self.deadline("lock", async {
            self.require_conditional_writes("take a lock").await?;
            crate::lock::try_lock(self, name).await
        })
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

impl ObjectStorage {
    /// The `GET` of `load` and `load_versioned`.
    async fn get_for_load(&self, key: &str, path: &Path) -> Result<GetResult> {
        self.inner
            .store
            .get(path)
            .await
            .map_err(|e| self.map("load", key, Kind::Read, e))
    }

    /// The whole body of that `GET`.
    async fn body_for_load(&self, key: &str, r: GetResult) -> Result<Bytes> {
        r.bytes()
            .await
            .map_err(|e| self.map("load", key, Kind::Read, e))
    }
}
