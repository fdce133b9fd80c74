//! Storing a value of unknown length in the layout its length calls for:
//! [`EncryptedStorage::store_stream_by_size`] and its conditional form.

use bytes::Bytes;
use encstore_core::{ByteStream, Result, Storage, Version, WriteCondition, validate_key};
use futures_util::StreamExt;
use zeroize::Zeroizing;

use super::EncryptedStorage;

/// What the head of a body showed.
enum Measured {
    /// The body ended within the streaming threshold: the whole value, in
    /// a buffer wiped when the last reference to it is dropped.
    Small(Bytes),
    /// The body goes on past the threshold: what was read, then the rest.
    Large(ByteStream),
}

impl EncryptedStorage {
    /// Stores the value `body` yields, of a length not known in advance,
    /// in the layout [`store`](Storage::store) would choose for it: a value
    /// of at most the [streaming
    /// threshold](Self::with_streaming_threshold) is stored as a small
    /// object (one AEAD ciphertext under the AEAD primary), a longer one as
    /// a large object (Tink streaming AEAD under the streaming primary),
    /// streamed in constant memory as [`store_stream`](Storage::store_stream)
    /// does. Until the choice is made, the chunks read so far are held
    /// (at most the threshold plus one chunk); a small value is joined
    /// into one buffer that is wiped when dropped.
    ///
    /// Use it to upload a file or a request body that may be small or
    /// large ([`store_stream`](Storage::store_stream) always writes a
    /// large object).
    ///
    /// # Errors
    /// As [`store`](Storage::store) for a small value and
    /// [`store_stream`](Storage::store_stream) for a large one (without a
    /// streaming keyset, a value longer than the threshold is refused);
    /// the body's own error. Nothing is stored after an error.
    pub async fn store_stream_by_size(&self, key: &str, body: ByteStream) -> Result<()> {
        validate_key(key)?;
        match self.size_up(body).await? {
            Measured::Small(value) => self.store(key, value).await,
            Measured::Large(body) => self.store_stream(key, body).await,
        }
    }

    /// [`store_stream_by_size`](Self::store_stream_by_size), written only
    /// if `condition` holds (as [`store_if`](Storage::store_if) and
    /// [`store_stream_if`](Storage::store_stream_if)).
    ///
    /// # Errors
    /// As [`store_stream_by_size`](Self::store_stream_by_size), and
    /// [`Error::PreconditionFailed`](encstore_core::Error::PreconditionFailed)
    /// when the condition does not hold.
    pub async fn store_stream_by_size_if(
        &self,
        key: &str,
        body: ByteStream,
        condition: &WriteCondition,
    ) -> Result<Version> {
        validate_key(key)?;
        match self.size_up(body).await? {
            Measured::Small(value) => self.store_if(key, value, condition).await,
            Measured::Large(body) => self.store_stream_if(key, body, condition).await,
        }
    }

    /// Reads `body` until it ends or has yielded more than the streaming
    /// threshold. The chunks are kept as they came (no copy) until the
    /// choice is made; a small value is then joined into one buffer of its
    /// exact size, wiped on drop.
    async fn size_up(&self, mut body: ByteStream) -> Result<Measured> {
        let threshold = self.streaming_threshold;
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        loop {
            match body.next().await {
                Some(Ok(c)) => {
                    total = total.saturating_add(c.len());
                    chunks.push(c);
                    if total > threshold {
                        let head = encstore_core::stream::from_chunks(chunks);
                        return Ok(Measured::Large(Box::pin(head.chain(body))));
                    }
                }
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        if let [one] = chunks.as_slice() {
            // Already one buffer: the caller's, as `store` would take it.
            return Ok(Measured::Small(one.clone()));
        }
        let mut value = Zeroizing::new(Vec::with_capacity(total));
        for c in &chunks {
            value.extend_from_slice(c);
        }
        Ok(Measured::Small(Bytes::from_owner(value)))
    }
}
