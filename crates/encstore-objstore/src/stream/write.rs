//! Streamed writes: [`store_stream`](encstore_core::Storage::store_stream)
//! and [`store_stream_if`](encstore_core::Storage::store_stream_if), one
//! `PUT` or a multipart upload.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use encstore_core::stream::ByteStream;
use encstore_core::{Error, Result, Version, WriteCondition, validate_key};
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{
    MultipartUpload, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult,
};
use tokio::task::JoinSet;

use crate::complete::{CompletionCondition, complete_with};
use crate::config::MAX_PARTS;
use crate::error::{Class, Kind, classify};
use crate::probe::Conditional;
use crate::storage::ObjectStorage;
use crate::version::{update_version, version_of};

/// Chunks shorter than this are copied together rather than kept as they
/// are, so that a body of tiny chunks does not cost a buffer each.
const SMALL_CHUNK: usize = 16 << 10;

/// The size small chunks are gathered into.
const GATHER: usize = 64 << 10;

/// Chunks of a body, gathered for one `PUT` or one part.
#[derive(Default)]
struct Gathered {
    chunks: Vec<Bytes>,
    /// Small chunks, copied together.
    small: BytesMut,
    /// Bytes in `chunks` and `small`.
    len: u64,
}

impl Gathered {
    fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.len += chunk.len() as u64;
        if chunk.len() < SMALL_CHUNK {
            if self.small.is_empty() {
                self.small.reserve(GATHER);
            }
            self.small.extend_from_slice(&chunk);
            if self.small.len() >= GATHER {
                self.chunks.push(self.small.split().freeze());
            }
        } else {
            self.flush_small();
            self.chunks.push(chunk);
        }
    }

    fn flush_small(&mut self) {
        if !self.small.is_empty() {
            self.chunks.push(self.small.split().freeze());
        }
    }

    /// Takes the first `n` bytes (at most all of them) as a payload.
    fn take(&mut self, n: u64) -> PutPayload {
        self.flush_small();
        let mut out = Vec::new();
        let mut taken = 0u64;
        let mut rest = std::mem::take(&mut self.chunks).into_iter();
        for mut chunk in rest.by_ref() {
            let want = n - taken;
            if chunk.len() as u64 > want {
                // `want` is less than this chunk's length, a usize.
                let head = chunk.split_to(want as usize);
                taken += head.len() as u64;
                out.push(head);
                self.chunks.push(chunk);
                break;
            }
            taken += chunk.len() as u64;
            out.push(chunk);
            if taken == n {
                break;
            }
        }
        self.chunks.extend(rest);
        self.len -= taken;
        out.into_iter().collect()
    }

    fn into_payload(mut self) -> PutPayload {
        self.flush_small();
        self.chunks.into_iter().collect()
    }
}

/// Reads `body` into `buf` until `buf` holds more than `limit` bytes or the
/// body ends; `Ok(true)` when it ended. A body error is returned as is.
async fn fill(body: &mut ByteStream, buf: &mut Gathered, limit: u64) -> Result<bool> {
    while buf.len <= limit {
        match body.next().await {
            None => return Ok(true),
            Some(chunk) => buf.push(chunk?),
        }
    }
    Ok(false)
}

/// Aborts a multipart upload that is dropped before it completed (or
/// failed): from a spawned task, best effort.
struct UploadGuard {
    upload: Option<Box<dyn MultipartUpload>>,
    /// For the log line when an abort fails.
    path: Path,
}

impl UploadGuard {
    fn upload(&mut self) -> Result<&mut Box<dyn MultipartUpload>> {
        self.upload
            .as_mut()
            .ok_or_else(|| Error::backend("object_store", "upload", "the upload is gone"))
    }

    /// The upload completed: nothing to abort.
    fn disarm(&mut self) {
        self.upload = None;
    }

    /// Aborts the upload now (best effort, within `limit`).
    async fn abort(&mut self, limit: Duration) {
        if let Some(mut upload) = self.upload.take() {
            match tokio::time::timeout(limit, upload.abort()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(
                    object = %self.path,
                    error = %e,
                    "could not abort an incomplete multipart upload; \
                     a lifecycle rule must remove it"
                ),
                Err(_) => tracing::warn!(
                    object = %self.path,
                    "aborting an incomplete multipart upload timed out; \
                     a lifecycle rule must remove it"
                ),
            }
        }
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if let Some(mut upload) = self.upload.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let path = self.path.clone();
            runtime.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(
                        object = %path,
                        error = %e,
                        "could not abort the multipart upload of a dropped streamed write; \
                         a lifecycle rule must remove it"
                    );
                }
            });
        }
    }
}

impl ObjectStorage {
    /// [`Storage::store_stream`](encstore_core::Storage::store_stream) and
    /// [`Storage::store_stream_if`](encstore_core::Storage::store_stream_if):
    /// the new version for a conditional write.
    pub(crate) async fn write_stream(
        &self,
        key: &str,
        mut body: ByteStream,
        condition: Option<&WriteCondition>,
    ) -> Result<Option<Version>> {
        let op = if condition.is_some() {
            "store a stream conditionally"
        } else {
            "store a stream"
        };
        validate_key(key)?;
        let path = self.path(key)?;
        let mode = condition.map(|c| self.put_mode(c)).transpose()?;
        let settings = self.inner.stream;
        let part = settings.part_size as u64;

        let mut buf = Gathered::default();
        if fill(&mut body, &mut buf, part).await? {
            return self
                .deadline(op, self.put_whole(op, key, &path, buf, mode))
                .await;
        }
        let Some(condition) = condition else {
            self.upload(op, key, &path, buf, body, None).await?;
            return Ok(None);
        };

        // A large conditional write.
        self.deadline(op, self.require_conditional_writes("write conditionally"))
            .await?;
        let verdict = self.deadline(op, self.conditional_multipart()).await?;
        match verdict {
            Conditional::Honoured => {
                let completion = match condition {
                    WriteCondition::Matches(v) => update_version(v)
                        .e_tag
                        .as_deref()
                        .and_then(CompletionCondition::matches),
                    _ => Some(CompletionCondition::absent()),
                };
                let Some(completion) = completion else {
                    // Not a header value: not an ETag this store gave out.
                    return Err(Error::PreconditionFailed {
                        key: key.to_owned(),
                    });
                };
                self.deadline(op, self.check_condition(op, key, &path, condition))
                    .await?;
                let r = self
                    .upload(op, key, &path, buf, body, Some(completion))
                    .await?;
                Ok(Some(self.version_of(r.e_tag, r.version, op)?))
            }
            Conditional::Ignored(reason) => {
                let limit = settings.max_buffered_conditional;
                if !fill(&mut body, &mut buf, limit).await? {
                    return Err(Error::Unsupported {
                        backend: self.inner.backend,
                        op: "write a large stream conditionally",
                        reason: format!(
                            "{reason}. Without that, conditional streamed writes are buffered \
                             up to {limit} bytes and written with one conditional PUT, and \
                             this body is larger. Nothing was written \
                             (max_buffered_conditional_write raises the bound)"
                        ),
                    });
                }
                self.deadline(op, self.put_whole(op, key, &path, buf, mode))
                    .await
            }
        }
    }

    /// The `PutMode` of a condition.
    pub(crate) fn put_mode(&self, condition: &WriteCondition) -> Result<PutMode> {
        match condition {
            WriteCondition::Absent => Ok(PutMode::Create),
            WriteCondition::Matches(v) => Ok(PutMode::Update(update_version(v))),
            _ => Err(Error::backend(
                self.inner.backend,
                "store_if",
                "unsupported write condition",
            )),
        }
    }

    /// One `PUT` of the whole body, conditional when `mode` is given.
    async fn put_whole(
        &self,
        op: &'static str,
        key: &str,
        path: &Path,
        buf: Gathered,
        mode: Option<PutMode>,
    ) -> Result<Option<Version>> {
        let payload = buf.into_payload();
        match mode {
            None => {
                self.inner
                    .store
                    .put_opts(path, payload, PutOptions::default())
                    .await
                    .map_err(|e| self.map(op, key, Kind::Other, e))?;
                Ok(None)
            }
            Some(mode) => {
                self.require_conditional_writes("write conditionally")
                    .await?;
                let r = self
                    .inner
                    .store
                    .put_opts(path, payload, PutOptions::from(mode))
                    .await
                    .map_err(|e| self.map(op, key, Kind::Conditional, e))?;
                Ok(Some(self.version_of(r.e_tag, r.version, op)?))
            }
        }
    }

    /// Fails with [`Error::PreconditionFailed`] when `condition` already
    /// does not hold, before a large upload that would then be refused.
    async fn check_condition(
        &self,
        op: &'static str,
        key: &str,
        path: &Path,
        condition: &WriteCondition,
    ) -> Result<()> {
        let holds = match self.inner.store.head(path).await {
            Ok(meta) => match condition {
                WriteCondition::Matches(v) => {
                    version_of(meta.e_tag, meta.version).as_ref() == Some(v)
                }
                _ => false,
            },
            Err(e) if classify(&e) == Class::NotFound => {
                !matches!(condition, WriteCondition::Matches(_))
            }
            Err(e) => return Err(self.map(op, key, Kind::Read, e)),
        };
        if holds {
            Ok(())
        } else {
            Err(Error::PreconditionFailed {
                key: key.to_owned(),
            })
        }
    }

    /// A multipart upload of `buf` and the rest of `body`, completed with
    /// `condition` on the completion when given.
    async fn upload(
        &self,
        op: &'static str,
        key: &str,
        path: &Path,
        mut buf: Gathered,
        mut body: ByteStream,
        condition: Option<CompletionCondition>,
    ) -> Result<PutResult> {
        let settings = self.inner.stream;
        let part = settings.part_size as u64;
        let limit = self.inner.operation_timeout;
        let upload = self
            .deadline(op, async {
                self.inner
                    .store
                    .put_multipart_opts(path, PutMultipartOptions::default())
                    .await
                    .map_err(|e| self.map(op, key, Kind::Other, e))
            })
            .await?;
        let mut guard = UploadGuard {
            upload: Some(upload),
            path: path.clone(),
        };
        // Declared after the guard, so dropped first: in-flight parts are
        // cancelled before the upload is aborted.
        let mut parts: JoinSet<Result<()>> = JoinSet::new();
        let result = async {
            let mut count = 0usize;
            let mut ended = false;
            loop {
                // Cut whole parts while more than a part is buffered, so
                // the last part is never empty.
                while buf.len > part || (ended && buf.len > 0) {
                    while parts.len() >= settings.concurrency {
                        self.reap(op, key, parts.join_next().await)?;
                    }
                    if count == MAX_PARTS {
                        return Err(Error::backend(
                            self.inner.backend,
                            op,
                            format!(
                                "the body of {key:?} needs more than {MAX_PARTS} parts of {part} \
                                 bytes; raise the part size. Nothing was written"
                            ),
                        ));
                    }
                    let payload = buf.take(part);
                    let upload = guard.upload()?.put_part(payload);
                    let backend = self.inner.backend;
                    let storage = self.clone();
                    let key = key.to_owned();
                    parts.spawn(async move {
                        match tokio::time::timeout(limit, upload).await {
                            Ok(r) => r.map_err(|e| storage.map(op, &key, Kind::Other, e)),
                            Err(_) => Err(Error::Timeout { backend, op }),
                        }
                    });
                    count += 1;
                }
                if ended {
                    break;
                }
                tokio::select! {
                    biased;
                    done = parts.join_next(), if !parts.is_empty() => self.reap(op, key, done)?,
                    item = body.next() => match item {
                        None => ended = true,
                        Some(chunk) => buf.push(chunk?),
                    },
                }
            }
            while let Some(done) = parts.join_next().await {
                self.reap(op, key, Some(done))?;
            }
            self.deadline(op, self.complete(op, key, guard.upload()?, condition))
                .await
        }
        .await;
        match result {
            Ok(r) => {
                guard.disarm();
                Ok(r)
            }
            Err(e) => {
                parts.abort_all();
                guard.abort(limit.min(Duration::from_secs(30))).await;
                Err(e)
            }
        }
    }

    /// The result of a finished part upload.
    fn reap(
        &self,
        op: &'static str,
        key: &str,
        done: Option<std::result::Result<Result<()>, tokio::task::JoinError>>,
    ) -> Result<()> {
        match done {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(e)) => Err(Error::backend(
                self.inner.backend,
                op,
                format!("the upload of a part of {key:?} failed: {e}"),
            )),
        }
    }

    /// Completes the upload, with `condition` when given.
    async fn complete(
        &self,
        op: &'static str,
        key: &str,
        upload: &mut Box<dyn MultipartUpload>,
        condition: Option<CompletionCondition>,
    ) -> Result<PutResult> {
        let Some(condition) = condition else {
            return upload
                .complete()
                .await
                .map_err(|e| self.map(op, key, Kind::Other, e));
        };
        let done = complete_with(upload.as_mut(), condition).await;
        match done.result {
            Ok(r) if done.attempts > 0 => Ok(r),
            Ok(_) => {
                // Cannot happen once the probe passed (its completions go
                // through the same connector).
                tracing::error!(
                    key,
                    "a conditional completion was sent without its condition"
                );
                Err(Error::backend(
                    self.inner.backend,
                    op,
                    format!(
                        "the completion of {key:?} was sent without its condition; the value \
                         may have overwritten a concurrent write"
                    ),
                ))
            }
            Err(e)
                if done.attempts > 1
                    && matches!(classify(&e), Class::Precondition | Class::NotFound) =>
            {
                // The first attempt may have committed and its answer been
                // lost; the retry then found the condition false because of
                // our own write.
                Err(Error::backend(
                    self.inner.backend,
                    op,
                    format!(
                        "the conditional completion of {key:?} was retried after a failure and \
                         the retry found the condition false: the first attempt may or may not \
                         have written the value; load the key to find out"
                    ),
                ))
            }
            Err(e) => Err(self.map(op, key, Kind::Conditional, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gathered(chunks: &[&[u8]]) -> Gathered {
        let mut g = Gathered::default();
        for c in chunks {
            g.push(Bytes::copy_from_slice(c));
        }
        g
    }

    fn bytes(p: PutPayload) -> Vec<u8> {
        p.iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[test]
    fn gathered_takes_exact_prefixes_across_chunks() {
        let big = vec![7u8; SMALL_CHUNK + 5];
        let mut g = gathered(&[b"ab", b"", b"cde", &big, b"f"]);
        assert_eq!(g.len, (6 + big.len()) as u64);
        assert_eq!(bytes(g.take(4)), b"abcd");
        assert_eq!(g.len, (2 + big.len()) as u64);
        let p = g.take(3);
        assert_eq!(bytes(p), [b'e', 7, 7]);
        let rest = g.take(u64::MAX);
        assert_eq!(rest.content_length(), big.len() - 2 + 1);
        assert_eq!(g.len, 0);
        assert_eq!(g.take(10).content_length(), 0);
    }

    #[test]
    fn small_chunks_are_gathered() {
        let mut g = Gathered::default();
        for _ in 0..GATHER {
            g.push(Bytes::from_static(b"x"));
        }
        g.push(Bytes::from_static(b"y"));
        assert_eq!(g.chunks.len(), 1, "one gathered chunk, not {GATHER}");
        let p = g.into_payload();
        assert_eq!(p.content_length(), GATHER + 1);
        assert_eq!(p.as_ref().len(), 2);
    }
}
