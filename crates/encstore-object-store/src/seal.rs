//! Encryption into one growing buffer: plaintext is copied once, straight
//! to where its ciphertext goes, and sealed there in place with
//! [`SegmentEncryptor`] (no copy into an encryptor's segment buffer and
//! out of it). Used by `put` (the whole object) and multipart uploads
//! (parts cut from the front of the buffer).

use bytes::{Bytes, BytesMut};
use encstore_tink::streaming::{SegmentEncryptor, StreamingError};

/// Sealed ciphertext, then the plaintext of the current segment.
pub(crate) struct SealingBuffer {
    enc: SegmentEncryptor,
    buf: BytesMut,
    /// Where the current segment's plaintext starts in `buf`: everything
    /// before it is sealed ciphertext.
    seg_start: usize,
    /// The room the buffer gets again after sealed bytes are taken.
    capacity: usize,
}

impl std::fmt::Debug for SealingBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingBuffer")
            .field("enc", &self.enc)
            .field("sealed", &self.seg_start)
            .finish_non_exhaustive()
    }
}

impl SealingBuffer {
    /// A buffer that starts with `prefix` and the ciphertext header, with
    /// room for `capacity` bytes in all.
    pub(crate) fn new(enc: SegmentEncryptor, prefix: &[u8], capacity: usize) -> Self {
        let capacity = capacity.max(prefix.len() + enc.header().len());
        let mut buf = BytesMut::with_capacity(capacity);
        buf.extend_from_slice(prefix);
        buf.extend_from_slice(enc.header());
        SealingBuffer {
            seg_start: buf.len(),
            enc,
            buf,
            capacity,
        }
    }

    /// Encrypts `data`: a full segment is sealed (not as the last) once
    /// more plaintext follows it, as Tink's encrypters do.
    ///
    /// # Errors
    /// [`StreamingError::TooLarge`] past the segment limit,
    /// [`StreamingError::Finished`] after [`finish`](SealingBuffer::finish).
    pub(crate) fn write(&mut self, mut data: &[u8]) -> Result<(), StreamingError> {
        if self.enc.is_finished() {
            return Err(StreamingError::Finished);
        }
        while !data.is_empty() {
            let filled = self.buf.len() - self.seg_start;
            let room = self.enc.segment_plaintext_size() - filled;
            if room == 0 {
                self.seal(false)?;
                continue;
            }
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        Ok(())
    }

    fn seal(&mut self, last: bool) -> Result<(), StreamingError> {
        let tag = self
            .enc
            .seal_segment_detached(&mut self.buf[self.seg_start..], last)?;
        self.buf.extend_from_slice(tag.as_ref());
        self.seg_start = self.buf.len();
        Ok(())
    }

    /// Seals the current segment as the last: the whole buffer is then
    /// ciphertext.
    ///
    /// # Errors
    /// [`StreamingError::Finished`] when already finished.
    pub(crate) fn finish(&mut self) -> Result<(), StreamingError> {
        self.seal(true)
    }

    /// The sealed ciphertext bytes not yet taken.
    pub(crate) fn sealed(&self) -> usize {
        self.seg_start
    }

    /// Takes the first `n` sealed bytes (no copy).
    ///
    /// # Panics
    /// If fewer than `n` bytes are sealed.
    pub(crate) fn take(&mut self, n: usize) -> Bytes {
        assert!(n <= self.seg_start, "took more than is sealed");
        self.seg_start -= n;
        let taken = self.buf.split_to(n).freeze();
        if !self.enc.is_finished() && self.buf.capacity() < self.capacity {
            // The taken bytes keep the old allocation: move what is left
            // (less than a part and a segment) to a new one of the full
            // size at once, instead of growing it step by step (each step
            // a copy).
            self.buf.reserve(self.capacity - self.buf.len());
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encstore_tink::{Keyset, templates};

    #[test]
    fn seals_what_the_stream_encryptor_would_and_cuts_without_copying() {
        let ks = Keyset::generate(&templates::by_name("AES128_GCM_HKDF_4KB").expect("template"))
            .expect("keyset");
        let s = ks.streaming_aead().expect("streaming");
        let l = s.layout();
        let first = l.first_plaintext_segment_size() as usize;
        let p = l.plaintext_segment_size() as usize;
        for size in [
            0,
            1,
            first - 1,
            first,
            first + 1,
            first + p,
            first + 7 * p + 3,
        ] {
            let pt: Vec<u8> = (0..size).map(|i| (i * 13 % 256) as u8).collect();
            for chunk in [1usize, 1000, 4096, size.max(1)] {
                let mut sb =
                    SealingBuffer::new(s.segment_encryptor(b"ad").expect("enc"), b"PFX", 20_000);
                let mut out = Vec::new();
                for c in pt.chunks(chunk) {
                    sb.write(c).expect("write");
                    // Take sealed bytes in odd amounts as they appear.
                    let n = sb.sealed() / 2;
                    out.extend_from_slice(&sb.take(n));
                    // The room is back at once (growing step by step
                    // would copy the buffer again and again).
                    assert!(sb.buf.capacity() >= 20_000, "{}", sb.buf.capacity());
                }
                sb.finish().expect("finish");
                assert_eq!(sb.write(b"x"), Err(StreamingError::Finished));
                let n = sb.sealed();
                out.extend_from_slice(&sb.take(n));
                assert_eq!(sb.sealed(), 0);
                assert_eq!(&out[..3], b"PFX");
                let ct = &out[3..];
                assert_eq!(
                    ct.len() as u64,
                    l.ciphertext_size(size as u64).expect("size")
                );
                assert_eq!(s.decrypt(ct, b"ad").expect("genuine"), pt, "{size} {chunk}");
            }
        }
    }
}
