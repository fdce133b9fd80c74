//! Async adapters on tokio's `AsyncRead`/`AsyncWrite`, over the sync
//! cores [`StreamEncryptor`] and [`StreamDecryptor`]. Each holds one
//! segment buffer (plus, for [`EncryptingReader`], a small read-ahead
//! buffer), whatever the stream's length.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::StreamingError;
use super::decrypt::StreamDecryptor;
use super::encrypt::StreamEncryptor;

/// An `AsyncWrite` that encrypts everything written to it into `inner`.
///
/// Made by [`KeysetStreamingAead::encrypting_writer`](super::KeysetStreamingAead::encrypting_writer).
/// Call `shutdown` (`AsyncWriteExt::shutdown`) when done: it seals the last
/// segment, writes it, and shuts `inner` down. Without it the ciphertext
/// has no last segment and never decrypts. `flush` writes every sealed
/// segment, but the current segment stays buffered until more data or
/// `shutdown` (a segment is sealed only once it is known whether it is the
/// last).
#[derive(Debug)]
pub struct EncryptingWriter<W> {
    inner: W,
    enc: StreamEncryptor,
}

impl<W> EncryptingWriter<W> {
    pub(crate) fn new(inner: W, enc: StreamEncryptor) -> Self {
        EncryptingWriter { inner, enc }
    }

    /// The wrapped writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The wrapped writer. Writing to it directly corrupts the ciphertext.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Whether `shutdown` completed: the whole ciphertext was written.
    pub fn is_finished(&self) -> bool {
        self.enc.is_done()
    }

    /// The wrapped writer (complete ciphertext only after `shutdown`).
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: AsyncWrite + Unpin> EncryptingWriter<W> {
    /// Writes all pending ciphertext to `inner`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.enc.output().is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, self.enc.output()))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.enc.consume(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for EncryptingWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            ready!(this.poll_drain(cx))?;
            if data.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let n = this.enc.write(data)?;
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
            // A full segment was sealed: write it out, then take `data`.
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.enc.finish();
        while !this.enc.is_done() {
            ready!(this.poll_drain(cx))?;
        }
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// An `AsyncRead` of the ciphertext of the plaintext read from `inner`
/// (for uploads: encrypt while reading a file).
///
/// Made by [`KeysetStreamingAead::encrypting_reader`](super::KeysetStreamingAead::encrypting_reader).
/// Reaches end-of-file after the last segment, once `inner` did.
#[derive(Debug)]
pub struct EncryptingReader<R> {
    inner: R,
    enc: StreamEncryptor,
    /// Plaintext read past a full segment (to learn it is not the last).
    ahead: Box<[u8]>,
    /// The part of `ahead` not yet given to `enc`.
    ahead_pending: std::ops::Range<usize>,
    /// Whether `inner` reached end-of-file.
    inner_eof: bool,
}

impl<R> EncryptingReader<R> {
    pub(crate) fn new(inner: R, enc: StreamEncryptor) -> Self {
        let ahead = (enc.layout().plaintext_segment_size() as usize).min(8192);
        EncryptingReader {
            inner,
            enc,
            ahead: vec![0u8; ahead].into_boxed_slice(),
            ahead_pending: 0..0,
            inner_eof: false,
        }
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for EncryptingReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let ready = this.enc.output();
            if !ready.is_empty() {
                let n = ready.len().min(out.remaining());
                out.put_slice(&ready[..n]);
                this.enc.consume(n);
                return Poll::Ready(Ok(()));
            }
            if this.enc.is_done() || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if !this.ahead_pending.is_empty() {
                let n = this.enc.write(&this.ahead[this.ahead_pending.clone()])?;
                this.ahead_pending.start += n;
                continue;
            }
            if this.inner_eof {
                this.enc.finish();
                continue;
            }
            let space = this.enc.input_buffer();
            let direct = !space.is_empty();
            let mut rb = ReadBuf::new(if direct { space } else { &mut this.ahead[..] });
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                this.inner_eof = true;
            } else if direct {
                this.enc.commit(n);
            } else {
                this.ahead_pending = 0..n;
            }
        }
    }
}

/// An `AsyncRead` of the plaintext of the ciphertext read from `inner`.
///
/// Made by [`KeysetStreamingAead::decrypting_reader`](super::KeysetStreamingAead::decrypting_reader).
/// Returns plaintext one authenticated segment at a time; end-of-file
/// comes only after the last segment authenticated with the last-segment
/// flag, so a truncated ciphertext ends in an error, never in a short
/// plaintext. Errors are `io::ErrorKind::InvalidData` wrapping a
/// [`StreamingError`] (`e.get_ref()` and `downcast_ref`), or `inner`'s own
/// I/O errors.
#[derive(Debug)]
pub struct DecryptingReader<R> {
    inner: R,
    dec: StreamDecryptor,
}

impl<R> DecryptingReader<R> {
    pub(crate) fn new(inner: R, dec: StreamDecryptor) -> Self {
        DecryptingReader { inner, dec }
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Whether the whole plaintext was read and authenticated.
    pub fn is_done(&self) -> bool {
        self.dec.is_done()
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for DecryptingReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let plain = this.dec.plaintext();
            if !plain.is_empty() {
                let n = plain.len().min(out.remaining());
                out.put_slice(&plain[..n]);
                // An error in the next segment is kept and returned by the
                // next read, so these bytes are not lost.
                let _ = this.dec.consume(n);
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = this.dec.error() {
                return Poll::Ready(Err(e.clone().into()));
            }
            if this.dec.is_done() || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let space = this.dec.input_buffer();
            if space.is_empty() {
                // Not done, no error, no room: only after the end, which
                // always yields plaintext, an error or the end.
                return Poll::Ready(Err(StreamingError::Truncated.into()));
            }
            let mut rb = ReadBuf::new(space);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                this.dec.finish()?;
            } else {
                this.dec.commit(n)?;
            }
        }
    }
}
