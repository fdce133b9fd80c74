//! Streamed values and byte ranges: the types of
//! [`Storage::store_stream`](crate::Storage::store_stream),
//! [`Storage::load_stream`](crate::Storage::load_stream) and
//! [`Storage::load_range`](crate::Storage::load_range), and small helpers
//! to build and consume them.
//!
//! A [`ByteStream`] is any [`Stream`] of [`Bytes`] chunks that can fail with
//! an [`Error`]. Build one from a value ([`once`], [`from_chunks`]) or from
//! a [`tokio::io::AsyncRead`] ([`from_reader`]); turn one back into an
//! `AsyncRead` with [`StreamReader`]. Consume one with
//! `futures_util::StreamExt::next` or [`ObjectStream::collect`].
//!
//! ```
//! use encstore_core::{MemoryStorage, Storage, stream};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), encstore_core::Error> {
//! let store = MemoryStorage::new();
//! let file: &[u8] = b"a large file, read in constant memory";
//! store.store_stream("k", stream::from_reader(file, 8)).await?;
//! let range = store.load_range("k", 2..7).await?;
//! assert_eq!((&range.bytes[..], range.size), (&b"large"[..], 37));
//! let whole = store.load_stream("k").await?.collect().await?;
//! assert_eq!(&whole[..], file);
//! # Ok(()) }
//! ```

use std::fmt;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
pub use futures_core::Stream;
use tokio::io::{AsyncRead, ReadBuf};

use crate::error::{Error, Result};
use crate::storage::Version;

/// A value as a stream of chunks. Chunks may have any size (including
/// zero); an `Err` item ends the value in failure (a reader must not use
/// what it got before), and a well-behaved stream yields nothing after it.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send + 'static>>;

/// The chunk size of the helpers here and of the backends' streams:
/// 256 KiB.
pub const DEFAULT_CHUNK: usize = 256 << 10;

/// A stored value, streamed: what [`Storage::load_stream`] returns.
///
/// [`Storage::load_stream`]: crate::Storage::load_stream
pub struct ObjectStream {
    /// The size of the whole value in bytes (for a wrapper such as
    /// `EncryptedStorage`, the size of the value it presents, which is not
    /// the stored size [`stat`](crate::Storage::stat) reports). The body
    /// yields exactly this many bytes, or fails.
    pub size: u64,
    /// The value's bytes, in order.
    pub body: ByteStream,
}

impl ObjectStream {
    /// A stream over a value held in memory, in [`DEFAULT_CHUNK`] slices
    /// (no copy).
    pub fn from_bytes(value: Bytes) -> Self {
        let size = value.len() as u64;
        let chunks = (0..value.len())
            .step_by(DEFAULT_CHUNK)
            .map(move |i| value.slice(i..(i + DEFAULT_CHUNK).min(value.len())));
        ObjectStream {
            size,
            body: from_chunks(chunks.collect::<Vec<_>>()),
        }
    }

    /// Reads the whole body into memory. Fails with the body's error, or
    /// with [`Error::Backend`] if the body does not yield exactly
    /// [`size`](Self::size) bytes.
    pub async fn collect(self) -> Result<Bytes> {
        let size = self.size;
        let value = collect(self.body).await?;
        if value.len() as u64 != size {
            return Err(Error::backend(
                "stream",
                "read",
                format!(
                    "the stream yielded {} bytes but announced {size}",
                    value.len()
                ),
            ));
        }
        Ok(value)
    }

    /// The body as a [`tokio::io::AsyncRead`].
    pub fn into_reader(self) -> StreamReader {
        StreamReader::new(self.body)
    }
}

impl fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStream")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// A streamed value with its version: what
/// [`Storage::load_stream_versioned`] returns.
///
/// [`Storage::load_stream_versioned`]: crate::Storage::load_stream_versioned
#[derive(Debug)]
pub struct VersionedStream {
    /// The value, streamed.
    pub stream: ObjectStream,
    /// The version of exactly the value the stream yields (when it ends
    /// without error), to pass to [`WriteCondition::Matches`].
    ///
    /// [`WriteCondition::Matches`]: crate::WriteCondition::Matches
    pub version: Version,
}

/// Part of a value: what [`Storage::load_range`] returns.
///
/// [`Storage::load_range`]: crate::Storage::load_range
#[derive(Clone, PartialEq, Eq)]
pub struct RangeRead {
    /// The bytes of the range, clamped to the end of the value: for a
    /// range `start..end` of a value of `size` bytes, the bytes
    /// `start..min(end, size)`.
    pub bytes: Bytes,
    /// The size of the whole value (as [`ObjectStream::size`]).
    pub size: u64,
}

impl fmt::Debug for RangeRead {
    /// Lengths only: the bytes may be secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeRead")
            .field("len", &self.bytes.len())
            .field("size", &self.size)
            .finish()
    }
}

/// Checks `range` before any I/O: [`Error::InvalidRange`] when its start is
/// after its end.
///
/// # Errors
/// [`Error::InvalidRange`].
pub fn validate_range(key: &str, range: &Range<u64>) -> Result<()> {
    if range.start > range.end {
        return Err(Error::InvalidRange {
            key: key.to_owned(),
            start: range.start,
            end: range.end,
        });
    }
    Ok(())
}

/// The part of `range` that a value of `size` bytes has: `start..min(end,
/// size)`. For backend implementors, so that every backend clamps and
/// refuses alike.
///
/// # Errors
/// [`Error::InvalidRange`] when the start is after the end, and
/// [`Error::RangeNotSatisfiable`] when the start is beyond `size` (a start
/// equal to `size` is allowed and gives an empty range).
pub fn clamp_range(key: &str, range: Range<u64>, size: u64) -> Result<Range<u64>> {
    validate_range(key, &range)?;
    if range.start > size {
        return Err(Error::RangeNotSatisfiable {
            key: key.to_owned(),
            start: range.start,
            size,
        });
    }
    Ok(range.start..range.end.min(size))
}

/// The range `range` of `value`, as [`Storage::load_range`] returns it.
///
/// # Errors
/// As [`clamp_range`].
///
/// [`Storage::load_range`]: crate::Storage::load_range
pub fn slice_range(key: &str, value: Bytes, range: Range<u64>) -> Result<RangeRead> {
    let size = value.len() as u64;
    let r = clamp_range(key, range, size)?;
    // Both ends are at most `size`, which came from a `usize`.
    Ok(RangeRead {
        bytes: value.slice(r.start as usize..r.end as usize),
        size,
    })
}

/// The next item of `body`.
pub(crate) async fn next(body: &mut ByteStream) -> Option<Result<Bytes>> {
    std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await
}

/// Reads all of `body` into memory (without a copy when it is one chunk).
///
/// # Errors
/// The body's first error.
pub async fn collect(mut body: ByteStream) -> Result<Bytes> {
    let mut single: Option<Bytes> = None;
    let mut acc = BytesMut::new();
    while let Some(chunk) = next(&mut body).await {
        let chunk = chunk?;
        if chunk.is_empty() {
            continue;
        }
        if single.is_none() && acc.is_empty() {
            single = Some(chunk);
            continue;
        }
        if let Some(first) = single.take() {
            acc.extend_from_slice(&first);
        }
        acc.extend_from_slice(&chunk);
    }
    Ok(single.unwrap_or_else(|| acc.freeze()))
}

/// A body of one chunk.
pub fn once(value: Bytes) -> ByteStream {
    from_chunks([value])
}

/// A body of the given chunks, in order.
pub fn from_chunks<I>(chunks: I) -> ByteStream
where
    I: IntoIterator<Item = Bytes>,
    I::IntoIter: Send + Unpin + 'static,
{
    Box::pin(Chunks(chunks.into_iter()))
}

struct Chunks<I>(I);

impl<I: Iterator<Item = Bytes> + Unpin> Stream for Chunks<I> {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.next().map(Ok))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

/// A body read from `reader` in chunks of at most `chunk_size` bytes (at
/// least 1), holding at most one chunk at a time. A read error ends the
/// body with [`Error::Backend`] (backend `reader`), carrying the
/// [`io::Error`] as its source.
pub fn from_reader<R>(reader: R, chunk_size: usize) -> ByteStream
where
    R: AsyncRead + Send + 'static,
{
    Box::pin(ReaderStream {
        reader: Some(Box::pin(reader)),
        chunk: chunk_size.max(1),
        buf: BytesMut::new(),
    })
}

struct ReaderStream<R> {
    /// `None` once the reader reached its end or failed.
    reader: Option<Pin<Box<R>>>,
    chunk: usize,
    /// Zeroed space to read into; chunks are split off its front.
    buf: BytesMut,
}

impl<R: AsyncRead> Stream for ReaderStream<R> {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(reader) = this.reader.as_mut() else {
            return Poll::Ready(None);
        };
        if this.buf.len() < this.chunk.div_ceil(4) {
            this.buf = BytesMut::zeroed(this.chunk);
        }
        let mut rb = ReadBuf::new(&mut this.buf[..]);
        match reader.as_mut().poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => {
                this.reader = None;
                Poll::Ready(Some(Err(Error::backend("reader", "read the body", e))))
            }
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    this.reader = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(this.buf.split_to(n).freeze())))
            }
        }
    }
}

/// A [`ByteStream`] as a [`tokio::io::AsyncRead`]. An error item becomes an
/// [`io::Error`] (kind `Other`) whose source is the [`Error`].
pub struct StreamReader {
    body: ByteStream,
    /// What is left of the current chunk.
    chunk: Bytes,
    /// The body ended (or failed).
    done: bool,
}

impl StreamReader {
    /// Reads `body`.
    pub fn new(body: ByteStream) -> Self {
        StreamReader {
            body,
            chunk: Bytes::new(),
            done: false,
        }
    }
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader")
            .field("buffered", &self.chunk.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.chunk.is_empty() {
                let n = out.remaining().min(this.chunk.len());
                out.put_slice(&this.chunk[..n]);
                this.chunk.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.done {
                return Poll::Ready(Ok(()));
            }
            match this.body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.done = true,
                Poll::Ready(Some(Ok(chunk))) => this.chunk = chunk,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Err(io::Error::other(e)));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 131 + 7) as u8).collect()
    }

    #[tokio::test]
    async fn reader_round_trips_through_a_stream_and_back() {
        for (len, chunk) in [(0, 3), (1, 1), (10, 3), (10, 10), (100_000, 4096), (5, 0)] {
            let v = data(len);
            let body = from_reader(std::io::Cursor::new(v.clone()), chunk);
            let mut chunks = Vec::new();
            let mut body = body;
            while let Some(c) = next(&mut body).await {
                let c = c.unwrap();
                assert!(!c.is_empty() && c.len() <= chunk.max(1), "{len}/{chunk}");
                chunks.push(c);
            }
            assert_eq!(chunks.concat(), v, "{len}/{chunk}");
            let mut back = Vec::new();
            StreamReader::new(from_chunks(chunks))
                .read_to_end(&mut back)
                .await
                .unwrap();
            assert_eq!(back, v);
        }
    }

    #[tokio::test]
    async fn errors_pass_through_both_ways() {
        struct Failing;
        impl AsyncRead for Failing {
            fn poll_read(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "gone")))
            }
        }
        let mut body = from_reader(Failing, 16);
        match next(&mut body).await {
            Some(Err(Error::Backend {
                backend, source, ..
            })) => {
                assert_eq!(backend, "reader");
                assert!(source.to_string().contains("gone"));
            }
            other => panic!("{other:?}"),
        }
        assert!(next(&mut body).await.is_none(), "nothing after the error");

        let body: ByteStream = Box::pin(Chunks(vec![Bytes::from_static(b"ab")].into_iter()));
        let failing = Box::pin(futures_chain(body, Error::not_found("k")));
        let mut r = StreamReader::new(failing);
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).await.unwrap_err();
        assert_eq!(out, b"ab");
        let inner = e.into_inner().unwrap().downcast::<Error>().unwrap();
        assert!(inner.is_not_found());
    }

    /// `body`, then `err`.
    fn futures_chain(body: ByteStream, err: Error) -> impl Stream<Item = Result<Bytes>> + Send {
        struct Chain(ByteStream, Option<Error>);
        impl Stream for Chain {
            type Item = Result<Bytes>;
            fn poll_next(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Self::Item>> {
                match self.0.as_mut().poll_next(cx) {
                    Poll::Ready(None) => Poll::Ready(self.1.take().map(Err)),
                    other => other,
                }
            }
        }
        Chain(body, Some(err))
    }

    #[tokio::test]
    async fn collect_concatenates_and_checks_the_size() {
        let v = Bytes::from(data(3 * DEFAULT_CHUNK + 5));
        let s = ObjectStream::from_bytes(v.clone());
        assert_eq!(s.size, v.len() as u64);
        assert_eq!(s.collect().await.unwrap(), v);
        assert_eq!(
            collect(from_chunks(Vec::new())).await.unwrap(),
            Bytes::new()
        );
        let short = ObjectStream {
            size: 4,
            body: once(Bytes::from_static(b"abc")),
        };
        assert!(matches!(short.collect().await, Err(Error::Backend { .. })));
        let dbg = format!(
            "{:?}",
            ObjectStream::from_bytes(Bytes::from_static(b"secret"))
        );
        assert!(!dbg.contains("secret") && dbg.contains("size: 6"), "{dbg}");
    }

    #[test]
    fn ranges_clamp_and_refuse() {
        assert_eq!(clamp_range("k", 0..0, 10).unwrap(), 0..0);
        assert_eq!(clamp_range("k", 3..7, 10).unwrap(), 3..7);
        assert_eq!(clamp_range("k", 5..u64::MAX, 10).unwrap(), 5..10);
        assert_eq!(clamp_range("k", 10..20, 10).unwrap(), 10..10);
        assert_eq!(clamp_range("k", 0..5, 0).unwrap(), 0..0);
        match clamp_range("k", 11..12, 10) {
            Err(Error::RangeNotSatisfiable { key, start, size }) => {
                assert_eq!((key.as_str(), start, size), ("k", 11, 10));
            }
            other => panic!("{other:?}"),
        }
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 7..3;
        match clamp_range("k", backwards, 10) {
            Err(e @ Error::InvalidRange { .. }) => {
                assert_eq!(e.kind(), crate::ErrorKind::InvalidRange);
                assert_eq!(
                    e.to_string(),
                    "invalid range 7..3 for \"k\": the start is after the end"
                );
            }
            other => panic!("{other:?}"),
        }
        let r = slice_range("k", Bytes::from_static(b"0123456789"), 8..99).unwrap();
        assert_eq!((&r.bytes[..], r.size), (&b"89"[..], 10));
        assert_eq!(format!("{r:?}"), "RangeRead { len: 2, size: 10 }");
    }
}
