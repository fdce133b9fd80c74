//! Ranged reads: [`load_range`](encstore_core::Storage::load_range).

use std::ops::Range;

use bytes::Bytes;
use encstore_core::stream::{RangeRead, clamp_range, validate_range};
use encstore_core::{Error, Result, validate_key};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStoreExt};

use crate::error::{Class, Kind, classify};
use crate::storage::ObjectStorage;

/// How many times a ranged read retries when a 416 and the size a `HEAD`
/// then reports disagree (the object was replaced in between).
const RANGE_ATTEMPTS: usize = 3;

impl ObjectStorage {
    /// [`Storage::load_range`](encstore_core::Storage::load_range).
    pub(crate) async fn read_range(&self, key: &str, range: Range<u64>) -> Result<RangeRead> {
        const OP: &str = "load a range";
        validate_key(key)?;
        validate_range(key, &range)?;
        let path = self.path(key)?;
        self.deadline(OP, async {
            if range.start == range.end {
                // Not an HTTP range; the size alone decides.
                let size = self.head_size(OP, key, &path).await?;
                clamp_range(key, range, size)?;
                return Ok(RangeRead {
                    bytes: Bytes::new(),
                    size,
                });
            }
            // An end past i64::MAX is beyond any object, and beyond what
            // some servers parse: ask for the rest of the object instead.
            let get_range = if range.end > i64::MAX as u64 {
                GetRange::Offset(range.start)
            } else {
                GetRange::Bounded(range.clone())
            };
            for _ in 0..RANGE_ATTEMPTS {
                let opts = GetOptions {
                    range: Some(get_range.clone()),
                    ..GetOptions::default()
                };
                match self.inner.store.get_opts(&path, opts).await {
                    Ok(r) => {
                        let size = r.meta.size;
                        let want = clamp_range(key, range.clone(), size)?;
                        if r.range != want {
                            return Err(Error::backend(
                                self.inner.backend,
                                OP,
                                format!(
                                    "asked for bytes {want:?} of {key:?}, the server sent {:?}",
                                    r.range
                                ),
                            ));
                        }
                        let bytes = r
                            .bytes()
                            .await
                            .map_err(|e| self.map(OP, key, Kind::Read, e))?;
                        if bytes.len() as u64 != want.end - want.start {
                            return Err(Error::backend(
                                self.inner.backend,
                                OP,
                                format!(
                                    "asked for bytes {want:?} of {key:?}, the server sent {} bytes",
                                    bytes.len()
                                ),
                            ));
                        }
                        return Ok(RangeRead { bytes, size });
                    }
                    Err(e) if classify(&e) == Class::RangeNotSatisfiable => {
                        let size = self.head_size(OP, key, &path).await?;
                        if range.start >= size {
                            clamp_range(key, range, size)?;
                            return Ok(RangeRead {
                                bytes: Bytes::new(),
                                size,
                            });
                        }
                        // The object grew between the GET and the HEAD.
                    }
                    Err(e) => return Err(self.map(OP, key, Kind::Read, e)),
                }
            }
            Err(Error::backend(
                self.inner.backend,
                OP,
                format!("{key:?} kept changing size while its range was read; retry"),
            ))
        })
        .await
    }

    /// The size of `key` from a `HEAD`; [`Error::NotFound`] when missing
    /// (after telling a missing bucket apart: a `HEAD` has no body to say).
    async fn head_size(&self, op: &'static str, key: &str, path: &Path) -> Result<u64> {
        match self.inner.store.head(path).await {
            Ok(meta) => Ok(meta.size),
            Err(e) if classify(&e) == Class::NotFound => {
                self.check_bucket(op).await?;
                Err(Error::not_found(key))
            }
            Err(e) => Err(self.map(op, key, Kind::Read, e)),
        }
    }
}
