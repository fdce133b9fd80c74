//! Streamed (multipart) writes: the caller's parts are encrypted in order
//! and re-cut into inner parts of a fixed size.

use async_trait::async_trait;
use bytes::Bytes;
use encstore_tink::streaming::StreamEncryptor;
use futures_util::future::BoxFuture;
use object_store::path::Path;
use object_store::{MultipartUpload, PutPayload, PutResult, Result, UploadPart};

use crate::store::encrypt_error;

/// A multipart upload that encrypts: the ciphertext of the caller's parts
/// (in the order `put_part` is called) is sent to the inner upload in
/// parts of exactly `part_size` bytes, the last one at `complete`. Memory:
/// at most one inner part of ciphertext beyond the caller's part.
pub(crate) struct EncryptingUpload {
    inner: Box<dyn MultipartUpload>,
    enc: Option<StreamEncryptor>,
    /// Ciphertext not yet sent.
    buf: Vec<u8>,
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
        enc: StreamEncryptor,
        prefix: &[u8],
        part_size: usize,
        path: Path,
    ) -> Self {
        EncryptingUpload {
            inner,
            enc: Some(enc),
            buf: prefix.to_vec(),
            part_size,
            path,
            sent: false,
        }
    }

    /// Starts inner parts for every full `part_size` of the buffer.
    fn send_full(&mut self, parts: &mut Vec<UploadPart>) {
        while self.buf.len() >= self.part_size {
            let rest = self.buf.split_off(self.part_size);
            let part = std::mem::replace(&mut self.buf, rest);
            self.sent = true;
            parts.push(self.inner.put_part(PutPayload::from(Bytes::from(part))));
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
        let Some(enc) = self.enc.as_mut() else {
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
            if let Err(e) = enc.update(chunk, &mut self.buf) {
                let err = encrypt_error(&self.path, &e);
                self.enc = None;
                return Box::pin(async move { Err(err) });
            }
        }
        let mut parts = Vec::new();
        self.send_full(&mut parts);
        join(parts)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let Some(mut enc) = self.enc.take() else {
            return Err(object_store::Error::Generic {
                store: crate::STORE,
                source: format!(
                    "complete after complete or abort of the upload to {}",
                    self.path
                )
                .into(),
            });
        };
        enc.finish_into(&mut self.buf)
            .map_err(|e| encrypt_error(&self.path, &e))?;
        let mut parts = Vec::new();
        self.send_full(&mut parts);
        if !self.buf.is_empty() || !self.sent {
            let last = std::mem::take(&mut self.buf);
            parts.push(self.inner.put_part(PutPayload::from(Bytes::from(last))));
        }
        join(parts).await?;
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.enc = None;
        self.buf = Vec::new();
        self.inner.abort().await
    }
}
