//! Streamed (multipart) writes: the caller's parts are encrypted in order
//! and re-cut into inner parts of a fixed size.

use async_trait::async_trait;
use encstore_tink::streaming::SegmentEncryptor;
use futures_util::future::BoxFuture;
use object_store::path::Path;
use object_store::{MultipartUpload, PutPayload, PutResult, Result, UploadPart};

use crate::seal::SealingBuffer;
use crate::store::encrypt_error;

/// A multipart upload that encrypts: the ciphertext of the caller's parts
/// (in the order `put_part` is called) is sent to the inner upload in
/// parts of exactly `part_size` bytes, the last one at `complete`. Memory:
/// at most one inner part of ciphertext beyond the caller's part. The
/// plaintext is copied once, into the buffer the inner parts are cut from
/// (without copying), and sealed there.
pub(crate) struct EncryptingUpload {
    inner: Box<dyn MultipartUpload>,
    /// Ciphertext not yet sent, then the current segment's plaintext;
    /// `None` after `complete` or `abort`, or an error.
    buf: Option<SealingBuffer>,
    part_size: usize,
    path: Path,
    /// Whether any inner part was started.
    sent: bool,
}

impl std::fmt::Debug for EncryptingUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptingUpload")
            .field("inner", &self.inner)
            .field("path", &self.path)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl EncryptingUpload {
    pub(crate) fn new(
        inner: Box<dyn MultipartUpload>,
        enc: SegmentEncryptor,
        prefix: &[u8],
        part_size: usize,
        path: Path,
    ) -> Self {
        let segment = enc.layout().ciphertext_segment_size() as usize;
        EncryptingUpload {
            inner,
            buf: Some(SealingBuffer::new(enc, prefix, part_size + segment)),
            part_size,
            path,
            sent: false,
        }
    }

    /// Starts inner parts for every full `part_size` of the buffer.
    fn send_full(&mut self, buf: &mut SealingBuffer, parts: &mut Vec<UploadPart>) {
        while buf.sealed() >= self.part_size {
            let part = buf.take(self.part_size);
            self.sent = true;
            parts.push(self.inner.put_part(PutPayload::from(part)));
        }
    }
}

fn join(parts: Vec<UploadPart>) -> UploadPart {
    Box::pin(async move {
        futures_util::future::try_join_all(parts).await?;
        Ok(())
    }) as BoxFuture<'static, Result<()>>
}

#[async_trait]
impl MultipartUpload for EncryptingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let Some(mut buf) = self.buf.take() else {
            let path = self.path.to_string();
            return Box::pin(async move {
                Err(object_store::Error::Generic {
                    store: crate::STORE,
                    source: format!("put_part after complete or abort of the upload to {path}")
                        .into(),
                })
            });
        };
        for chunk in &data {
            if let Err(e) = buf.write(chunk) {
                let err = encrypt_error(&self.path, &e);
                return Box::pin(async move { Err(err) });
            }
        }
        let mut parts = Vec::new();
        self.send_full(&mut buf, &mut parts);
        self.buf = Some(buf);
        join(parts)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let Some(mut buf) = self.buf.take() else {
            return Err(object_store::Error::Generic {
                store: crate::STORE,
                source: format!(
                    "complete after complete or abort of the upload to {}",
                    self.path
                )
                .into(),
            });
        };
        buf.finish().map_err(|e| encrypt_error(&self.path, &e))?;
        let mut parts = Vec::new();
        self.send_full(&mut buf, &mut parts);
        if buf.sealed() > 0 || !self.sent {
            let last = buf.take(buf.sealed());
            parts.push(self.inner.put_part(PutPayload::from(last)));
        }
        join(parts).await?;
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.buf = None;
        self.inner.abort().await
    }
}
