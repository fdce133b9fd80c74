//! [`StreamEncryptor`]: the synchronous, I/O-free encryption core.

use std::ops::Range;

use super::StreamingError;
use super::cipher::{Header, SegmentCipher};
use super::layout::{MAX_SEGMENTS, SegmentLayout};

/// Encrypts one stream segment by segment, without doing any I/O: feed it
/// plaintext, take the ciphertext it has ready, and finish it. It holds one
/// segment (the key's ciphertext segment size) and never allocates after
/// it is made. That buffer is wiped when the encryptor is dropped.
///
/// A segment is sealed only when more plaintext arrives after it is full
/// (or at [`StreamEncryptor::finish`], with the last-segment flag), exactly
/// as Tink's encrypters do, so the ciphertext is byte-compatible with
/// Tink's and its size is [`SegmentLayout::ciphertext_size`] of the
/// plaintext size.
///
/// Made by [`KeysetStreamingAead::encryptor`](super::KeysetStreamingAead::encryptor).
/// Two ways to feed it:
/// - copy: [`StreamEncryptor::write`] (or the convenience
///   [`StreamEncryptor::update`] into a `Vec`);
/// - zero-copy: read plaintext straight into [`StreamEncryptor::input_buffer`]
///   and [`StreamEncryptor::commit`] it.
///
/// Ciphertext appears in [`StreamEncryptor::output`]; take it with
/// [`StreamEncryptor::consume`]. While output is pending, no plaintext is
/// taken. A stream dropped before it is finished has no last segment:
/// decryption refuses it.
///
/// ```
/// # use encstore_tink::{Keyset, templates};
/// let keyset = Keyset::generate(&templates::by_name("AES128_GCM_HKDF_4KB")?)?;
/// let streaming = keyset.streaming_aead()?;
/// let mut enc = streaming.encryptor(b"object name")?;
/// let mut ciphertext = Vec::new();
/// enc.update(&[7u8; 10_000], &mut ciphertext)?;
/// enc.finish_into(&mut ciphertext)?;
/// assert_eq!(ciphertext.len() as u64, streaming.layout().ciphertext_size(10_000)?);
/// assert_eq!(streaming.decrypt(&ciphertext, b"object name")?, vec![7u8; 10_000]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StreamEncryptor {
    /// The derived keys and nonce prefix of this ciphertext.
    cipher: SegmentCipher,
    /// Segment geometry of the key.
    layout: SegmentLayout,
    /// The header (also at the start of `buf` until segment 0 is output).
    header: Header,
    /// One ciphertext segment of room; segment 0 starts with the header.
    buf: Box<[u8]>,
    /// End of the plaintext in `buf`.
    filled: usize,
    /// Sealed ciphertext in `buf` not yet consumed.
    out: Range<usize>,
    /// Index of the segment being filled.
    segment: u64,
    /// Where the stream is.
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Taking plaintext.
    Filling,
    /// `finish` was called while output was pending: seal the last
    /// segment once it is consumed.
    Finishing,
    /// The last segment is sealed.
    Done,
}

impl std::fmt::Debug for StreamEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEncryptor")
            .field("layout", &self.layout)
            .field("segment", &self.segment)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Drop for StreamEncryptor {
    /// The buffer holds plaintext until its segment is sealed (all of it,
    /// when the stream is dropped unfinished).
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.buf[..]);
    }
}

impl StreamEncryptor {
    pub(crate) fn new(cipher: SegmentCipher, layout: SegmentLayout, header: Header) -> Self {
        let mut buf = vec![0u8; layout.ciphertext_segment_size() as usize].into_boxed_slice();
        let h = header.as_bytes().len();
        buf[..h].copy_from_slice(header.as_bytes());
        StreamEncryptor {
            cipher,
            layout,
            header,
            buf,
            filled: h,
            out: 0..0,
            segment: 0,
            state: State::Filling,
        }
    }

    /// The ciphertext header (it is also the start of the first output).
    pub fn header(&self) -> &[u8] {
        self.header.as_bytes()
    }

    /// The segment layout of the key encrypting this stream.
    pub fn layout(&self) -> SegmentLayout {
        self.layout
    }

    /// End of the plaintext room of the current segment.
    fn limit(&self) -> usize {
        self.buf.len() - self.cipher.tag_size()
    }

    /// Where the current segment's plaintext starts in `buf`.
    fn plaintext_start(&self) -> usize {
        if self.segment == 0 {
            self.header.as_bytes().len()
        } else {
            0
        }
    }

    /// Room for plaintext, to fill and [`commit`](StreamEncryptor::commit)
    /// (zero-copy). Empty while output is pending, when the segment is
    /// full (then [`write`](StreamEncryptor::write) more plaintext, or
    /// [`finish`](StreamEncryptor::finish)), or after `finish`.
    pub fn input_buffer(&mut self) -> &mut [u8] {
        if !self.out.is_empty() || self.state != State::Filling {
            return &mut [];
        }
        let limit = self.limit();
        &mut self.buf[self.filled..limit]
    }

    /// Records that the first `n` bytes of
    /// [`input_buffer`](StreamEncryptor::input_buffer) hold plaintext.
    ///
    /// # Panics
    /// If `n` is larger than the input buffer was.
    pub fn commit(&mut self, n: usize) {
        assert!(
            n <= self.input_buffer().len(),
            "committed more than the input buffer holds"
        );
        self.filled += n;
    }

    /// Takes plaintext from `data` and returns how many bytes it took.
    /// Returns 0 while [`output`](StreamEncryptor::output) is pending:
    /// consume it and call again. When the current segment is full and
    /// `data` is not empty, seals it (it is not the last) and returns 0.
    ///
    /// # Errors
    /// [`StreamingError::Finished`] after [`finish`](StreamEncryptor::finish);
    /// [`StreamingError::TooLarge`] when the stream would need more than
    /// [`MAX_SEGMENTS`] segments.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, StreamingError> {
        if self.state != State::Filling {
            return Err(StreamingError::Finished);
        }
        if !self.out.is_empty() || data.is_empty() {
            return Ok(0);
        }
        let limit = self.limit();
        if self.filled == limit {
            if self.segment + 1 >= MAX_SEGMENTS {
                return Err(StreamingError::TooLarge);
            }
            self.seal(false);
            return Ok(0);
        }
        let n = data.len().min(limit - self.filled);
        self.buf[self.filled..self.filled + n].copy_from_slice(&data[..n]);
        self.filled += n;
        Ok(n)
    }

    /// Seals the current segment; its ciphertext becomes the output.
    fn seal(&mut self, last: bool) {
        let start = self.plaintext_start();
        let end = self.filled + self.cipher.tag_size();
        let index = u32::try_from(self.segment)
            .unwrap_or_else(|_| unreachable!("segment count checked before sealing"));
        self.cipher.seal(index, last, &mut self.buf[start..end]);
        self.out = 0..end;
        self.segment += 1;
    }

    /// Ciphertext ready to be written out (header, then sealed segments).
    pub fn output(&self) -> &[u8] {
        &self.buf[self.out.clone()]
    }

    /// Marks the first `n` bytes of [`output`](StreamEncryptor::output) as
    /// written.
    ///
    /// # Panics
    /// If `n` is larger than the output.
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.out.len(), "consumed more than the output holds");
        if n == 0 {
            return;
        }
        self.out.start += n;
        if self.out.is_empty() && self.state != State::Done {
            self.out = 0..0;
            self.filled = 0;
            if self.state == State::Finishing {
                self.seal(true);
                self.state = State::Done;
            }
        }
    }

    /// Ends the plaintext: seals the last segment (with the last-segment
    /// flag) as soon as pending output is consumed. Finishing twice is a
    /// no-op.
    pub fn finish(&mut self) {
        match self.state {
            State::Done | State::Finishing => {}
            State::Filling if !self.out.is_empty() => self.state = State::Finishing,
            State::Filling => {
                self.seal(true);
                self.state = State::Done;
            }
        }
    }

    /// Whether the last segment is sealed and all output consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done && self.out.is_empty()
    }

    /// Encrypts `plaintext` and appends every ciphertext byte that is
    /// ready to `out` (the last partial segment stays inside until more
    /// plaintext or [`finish_into`](StreamEncryptor::finish_into)).
    ///
    /// # Errors
    /// As [`write`](StreamEncryptor::write).
    pub fn update(
        &mut self,
        mut plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), StreamingError> {
        if self.state != State::Filling {
            return Err(StreamingError::Finished);
        }
        while !plaintext.is_empty() {
            self.drain_into(out);
            let n = self.write(plaintext)?;
            plaintext = &plaintext[n..];
        }
        self.drain_into(out);
        Ok(())
    }

    /// Finishes the stream and appends the rest of the ciphertext to `out`.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for finishing that can fail.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) -> Result<(), StreamingError> {
        self.finish();
        while !self.is_done() {
            self.drain_into(out);
        }
        Ok(())
    }

    fn drain_into(&mut self, out: &mut Vec<u8>) {
        let n = self.out.len();
        out.extend_from_slice(self.output());
        self.consume(n);
    }
}
