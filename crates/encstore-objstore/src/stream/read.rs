//! Streamed reads: [`load_stream`](encstore_core::Storage::load_stream),
//! resumed pinned to the first response's ETag.

use std::time::Duration;

use bytes::Bytes;
use encstore_core::stream::ObjectStream;
use encstore_core::{Error, Result, Version, validate_key};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetOptions, GetRange};

use crate::error::{Class, Kind, classify};
use crate::storage::ObjectStorage;
use crate::version::version_of;

/// How many times in a row a streamed read resumes without receiving a
/// byte before it gives up.
const MAX_RESUMES: u32 = 3;

impl ObjectStorage {
    /// [`Storage::load_stream`](encstore_core::Storage::load_stream), with
    /// the version of what it yields when the store reports one.
    pub(crate) async fn open_stream(&self, key: &str) -> Result<(ObjectStream, Option<Version>)> {
        const OP: &str = "load a stream";
        validate_key(key)?;
        let path = self.path(key)?;
        let r = self
            .deadline(OP, async {
                self.inner
                    .store
                    .get_opts(&path, GetOptions::default())
                    .await
                    .map_err(|e| self.map(OP, key, Kind::Read, e))
            })
            .await?;
        let meta = r.meta.clone();
        let version = version_of(meta.e_tag.clone(), meta.version.clone());
        let size = meta.size;
        let state = Resuming {
            storage: self.clone(),
            key: key.to_owned(),
            path,
            e_tag: meta.e_tag,
            version: meta.version,
            size,
            offset: 0,
            body: Some(r.into_stream()),
            failures: 0,
        };
        let body = futures_util::stream::unfold(state, |mut st| async move {
            let item = st.next_item().await?;
            Some((item, st))
        });
        Ok((
            ObjectStream {
                size,
                body: Box::pin(body),
            },
            version,
        ))
    }
}

/// The state of a streamed read.
struct Resuming {
    storage: ObjectStorage,
    key: String,
    path: Path,
    /// The first response's ETag: resumptions must match it.
    e_tag: Option<String>,
    /// The first response's object version, where the store has them.
    version: Option<String>,
    /// The size announced by the first response.
    size: u64,
    /// Bytes yielded so far.
    offset: u64,
    /// The response body being read; `None` once the stream ended or
    /// failed (it then yields nothing more).
    body: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    /// Resumptions in a row that brought no byte.
    failures: u32,
}

impl Resuming {
    const OP: &'static str = "load a stream";

    async fn next_item(&mut self) -> Option<Result<Bytes>> {
        loop {
            let body = self.body.as_mut()?;
            let cause = match body.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => {
                    let n = chunk.len() as u64;
                    if n > self.size - self.offset {
                        self.body = None;
                        return Some(Err(self.backend_error(format!(
                            "the server sent more than the {} bytes it announced",
                            self.size
                        ))));
                    }
                    self.offset += n;
                    self.failures = 0;
                    return Some(Ok(chunk));
                }
                None if self.offset == self.size => {
                    self.body = None;
                    return None;
                }
                None => Error::backend(
                    self.storage.inner.backend,
                    Self::OP,
                    format!(
                        "the response for {:?} ended after {} of {} bytes",
                        self.key, self.offset, self.size
                    ),
                ),
                Some(Err(e)) => self.storage.map(Self::OP, &self.key, Kind::Other, e),
            };
            self.body = None;
            // Interrupted: resume where it stopped, pinned to the version
            // read so far, unless it keeps failing.
            self.failures += 1;
            if self.failures > MAX_RESUMES || self.e_tag.is_none() || self.offset == self.size {
                return Some(Err(cause));
            }
            tracing::debug!(
                key = %self.key,
                offset = self.offset,
                error = %cause,
                "resuming an interrupted streamed read"
            );
            tokio::time::sleep(Duration::from_millis(100 << self.failures)).await;
            match self.resume().await {
                Ok(body) => self.body = Some(body),
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// A ranged `GET` of the rest of the object, only if it is still the
    /// version the stream started on.
    async fn resume(&mut self) -> Result<BoxStream<'static, object_store::Result<Bytes>>> {
        let s = &self.storage;
        let opts = GetOptions {
            range: Some(GetRange::Offset(self.offset)),
            if_match: self.e_tag.clone(),
            version: self.version.clone(),
            ..GetOptions::default()
        };
        let r = s
            .deadline(Self::OP, async {
                match s.inner.store.get_opts(&self.path, opts).await {
                    Ok(r) => Ok(r),
                    // The object was replaced or deleted.
                    Err(e) if matches!(classify(&e), Class::Precondition | Class::NotFound) => {
                        Err(Error::PreconditionFailed {
                            key: self.key.clone(),
                        })
                    }
                    Err(e) => Err(s.map(Self::OP, &self.key, Kind::Other, e)),
                }
            })
            .await?;
        if r.meta.e_tag != self.e_tag || r.meta.size != self.size || r.range.start != self.offset {
            return Err(Error::PreconditionFailed {
                key: self.key.clone(),
            });
        }
        Ok(r.into_stream())
    }

    fn backend_error(&self, why: String) -> Error {
        Error::backend(
            self.storage.inner.backend,
            Self::OP,
            format!("{:?}: {why}", self.key),
        )
    }
}
