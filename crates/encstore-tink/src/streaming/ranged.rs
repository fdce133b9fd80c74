//! Random access: decrypt any plaintext byte range by fetching and
//! authenticating only the segments that cover it.

use std::io;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;

use super::StreamingError;
use super::cipher::{MAX_HEADER_LEN, SegmentCipher, StreamingKey};
use super::layout::SegmentLayout;

/// The largest fetch decrypted into a thread's scratch buffer (a small
/// range of up to two 1 MiB segments, with room); larger ones get a buffer
/// of their own.
const SCRATCH_MAX: usize = 4 << 20;

thread_local! {
    /// Per-thread scratch for small ranges: grows to the largest fetch it
    /// served (at most `SCRATCH_MAX`) and is freed with its thread (tokio's
    /// blocking threads exit after a while idle).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A ciphertext that can be read by byte range: what a storage backend
/// implements (an object store's ranged GET, a file's positioned read) so
/// that [`RandomAccessReader`] fetches only what a read needs.
#[async_trait]
pub trait RangedRead: Send + Sync {
    /// The ciphertext's total size in bytes.
    fn size(&self) -> u64;

    /// Reads exactly the bytes `range` (within `0..size()`); fewer bytes
    /// is an error (the reader reports it as `UnexpectedEof`).
    async fn read_range(&self, range: Range<u64>) -> io::Result<Bytes>;
}

#[async_trait]
impl RangedRead for Bytes {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    async fn read_range(&self, range: Range<u64>) -> io::Result<Bytes> {
        let out_of_range = || {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("range {range:?} is outside {} bytes", self.len()),
            )
        };
        let start = usize::try_from(range.start).map_err(|_| out_of_range())?;
        let end = usize::try_from(range.end).map_err(|_| out_of_range())?;
        if start > end || end > self.len() {
            return Err(out_of_range());
        }
        Ok(self.slice(start..end))
    }
}

#[async_trait]
impl<T: RangedRead + ?Sized> RangedRead for Arc<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }

    async fn read_range(&self, range: Range<u64>) -> io::Result<Bytes> {
        (**self).read_range(range).await
    }
}

/// One key that may have written the ciphertext.
struct Candidate {
    cipher: SegmentCipher,
    layout: SegmentLayout,
    segments: u64,
    plaintext_size: u64,
}

/// Decrypts any byte range of a streaming ciphertext read through a
/// [`RangedRead`], fetching only the segments that cover it (in one
/// `read_range` call per read) and authenticating each one, the
/// ciphertext's final segment with the last-segment flag.
///
/// Made by [`KeysetStreamingAead::open_ranged`](super::KeysetStreamingAead::open_ranged),
/// which reads the header. `&self` methods: share it between tasks.
///
/// [`plaintext_size`](RandomAccessReader::plaintext_size) is computed from
/// the ciphertext size, which is not authenticated: a ciphertext cut at a
/// segment boundary looks shorter, and reads of its middle succeed (they
/// are genuine), but any read that reaches its end fails, because its last
/// segment was not sealed as the last one. A read that covers the final
/// segment ([`read_all`](RandomAccessReader::read_all), a range ending at
/// the end, [`verified_plaintext_size`](RandomAccessReader::verified_plaintext_size))
/// proves the size.
///
/// When several keys of the keyset could have written the ciphertext
/// (same header length, size valid for each), the first read tries them in
/// turn (the primary first) on the segments it needs (fetched once per
/// distinct segment layout) and keeps the first that authenticates.
pub struct RandomAccessReader<S> {
    source: S,
    ciphertext_size: u64,
    candidates: Vec<Candidate>,
    chosen: OnceLock<usize>,
}

impl<S> std::fmt::Debug for RandomAccessReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomAccessReader")
            .field("ciphertext_size", &self.ciphertext_size)
            .field("candidates", &self.candidates.len())
            .field("chosen", &self.chosen.get())
            .finish_non_exhaustive()
    }
}

fn io_err(e: StreamingError) -> io::Error {
    e.into()
}

impl<S: RangedRead> RandomAccessReader<S> {
    pub(crate) async fn open(
        keys: &[Arc<StreamingKey>],
        source: S,
        associated_data: &[u8],
    ) -> io::Result<Self> {
        let size = source.size();
        if size == 0 {
            return Err(io_err(StreamingError::Truncated));
        }
        let head_len = size.min(MAX_HEADER_LEN as u64);
        let head = source.read_range(0..head_len).await?;
        if head.len() as u64 != head_len {
            return Err(short_read(head_len, head.len()));
        }
        let header_len = usize::from(head[0]);
        let matching: Vec<&Arc<StreamingKey>> = keys
            .iter()
            .filter(|k| k.header_len() == header_len)
            .collect();
        if matching.is_empty() {
            return Err(io_err(StreamingError::InvalidHeader));
        }
        if head.len() < header_len {
            return Err(io_err(StreamingError::Truncated));
        }
        let mut candidates = Vec::new();
        for key in matching {
            let layout = key.layout();
            let Ok(segments) = layout.segment_count(size) else {
                continue;
            };
            let plaintext_size = layout.plaintext_size(size).map_err(io_err)?;
            let cipher = key
                .cipher_for(&head[..header_len], associated_data)
                .map_err(io_err)?;
            candidates.push(Candidate {
                cipher,
                layout,
                segments,
                plaintext_size,
            });
        }
        if candidates.is_empty() {
            return Err(io_err(StreamingError::InvalidCiphertextSize { size }));
        }
        let chosen = OnceLock::new();
        if candidates.len() == 1 {
            let _ = chosen.set(0);
        }
        Ok(RandomAccessReader {
            source,
            ciphertext_size: size,
            candidates,
            chosen,
        })
    }

    /// The candidate to describe the ciphertext with: the key found, or
    /// before the first read, the first candidate.
    fn current(&self) -> &Candidate {
        &self.candidates[self.chosen.get().copied().unwrap_or(0)]
    }

    /// The plaintext size, from the ciphertext size (see the type's docs:
    /// not authenticated until a read reaches the end).
    pub fn plaintext_size(&self) -> u64 {
        self.current().plaintext_size
    }

    /// The ciphertext size.
    pub fn ciphertext_size(&self) -> u64 {
        self.ciphertext_size
    }

    /// The segment layout of the key that wrote the ciphertext (before the
    /// first read, of the first key that may have).
    pub fn layout(&self) -> SegmentLayout {
        self.current().layout
    }

    /// The segments and ciphertext bytes a read of `plaintext` fetches
    /// (see [`SegmentLayout::ciphertext_range`]).
    ///
    /// # Errors
    /// [`StreamingError::RangeOutOfBounds`] for a range past the end.
    pub fn ciphertext_range(
        &self,
        plaintext: Range<u64>,
    ) -> Result<super::CiphertextRange, StreamingError> {
        self.current()
            .layout
            .ciphertext_range(plaintext, self.ciphertext_size)
    }

    /// Decrypts the plaintext bytes `range` (its end clamped to the
    /// plaintext size), fetching only the segments that cover it.
    ///
    /// # Errors
    /// `InvalidInput` wrapping [`StreamingError::RangeOutOfBounds`] for a
    /// range past the end; `InvalidData` wrapping
    /// [`StreamingError::SegmentAuthentication`] (or
    /// [`StreamingError::Authentication`] when no key fits) for any
    /// segment that does not authenticate; the source's I/O errors.
    pub async fn read_range(&self, range: Range<u64>) -> io::Result<Bytes> {
        let plan = |c: &Candidate| -> io::Result<(Range<u64>, Range<u64>)> {
            let cr = c
                .layout
                .ciphertext_range(range.clone(), self.ciphertext_size)
                .map_err(io_err)?;
            Ok((cr.segments, range.start..range.end.min(c.plaintext_size)))
        };
        self.read_segments(|c| plan(c)).await
    }

    /// Decrypts the whole plaintext, authenticating every segment (so the
    /// size is proven). Holds the whole plaintext in memory: for large
    /// ciphertexts, read ranges, or use
    /// [`decrypting_reader`](super::KeysetStreamingAead::decrypting_reader).
    ///
    /// # Errors
    /// As [`read_range`](RandomAccessReader::read_range).
    pub async fn read_all(&self) -> io::Result<Bytes> {
        self.read_segments(|c| Ok((0..c.segments, 0..c.plaintext_size)))
            .await
    }

    /// The plaintext size, proven by authenticating the final segment (one
    /// segment fetched).
    ///
    /// # Errors
    /// As [`read_range`](RandomAccessReader::read_range).
    pub async fn verified_plaintext_size(&self) -> io::Result<u64> {
        self.read_segments(|c| {
            Ok((
                c.segments - 1..c.segments,
                c.plaintext_size..c.plaintext_size,
            ))
        })
        .await?;
        Ok(self.plaintext_size())
    }

    /// Decrypts the segments `plan` names for a candidate and returns the
    /// plaintext bytes it names. Tries every candidate until one
    /// authenticates, unless the key is known.
    async fn read_segments(
        &self,
        plan: impl Fn(&Candidate) -> io::Result<(Range<u64>, Range<u64>)>,
    ) -> io::Result<Bytes> {
        if let Some(&i) = self.chosen.get() {
            let c = &self.candidates[i];
            let (segments, want) = plan(c)?;
            let bytes = self.fetch(c, &segments).await?;
            return self.decrypt(c, segments, bytes, want).map_err(io_err);
        }
        // Several keys may fit: try each; a fetch is reused by the next
        // candidate with the same layout.
        let mut fetched: Option<(SegmentLayout, Range<u64>, Bytes)> = None;
        // A range can be past the end for one key's layout and not for
        // another's: report that only if no key fits.
        let mut plan_error = None;
        let mut tried = false;
        for (i, c) in self.candidates.iter().enumerate() {
            let (segments, want) = match plan(c) {
                Ok(p) => p,
                Err(e) => {
                    plan_error.get_or_insert(e);
                    continue;
                }
            };
            if segments.is_empty() {
                return Ok(Bytes::new());
            }
            tried = true;
            let bytes = match &fetched {
                Some((l, s, b)) if *l == c.layout && *s == segments => b.clone(),
                _ => {
                    let b = self.fetch(c, &segments).await?;
                    fetched = Some((c.layout, segments.clone(), b.clone()));
                    b
                }
            };
            if let Ok(out) = self.decrypt(c, segments, bytes, want) {
                let _ = self.chosen.set(i);
                return Ok(out);
            }
        }
        match plan_error {
            Some(e) if !tried => Err(e),
            _ => Err(io_err(StreamingError::Authentication)),
        }
    }

    /// Fetches the ciphertext of `segments`.
    async fn fetch(&self, c: &Candidate, segments: &Range<u64>) -> io::Result<Bytes> {
        if segments.is_empty() {
            return Ok(Bytes::new());
        }
        let size = self.ciphertext_size;
        let first = c
            .layout
            .segment_ciphertext_range(segments.start, size)
            .map_err(io_err)?;
        let last = c
            .layout
            .segment_ciphertext_range(segments.end - 1, size)
            .map_err(io_err)?;
        let want = first.start..last.end;
        let bytes = self.source.read_range(want.clone()).await?;
        if bytes.len() as u64 != want.end - want.start {
            return Err(short_read(want.end - want.start, bytes.len()));
        }
        Ok(bytes)
    }

    /// Opens `segments` (whose ciphertext is `bytes`) and returns the
    /// plaintext bytes `want` of them.
    fn decrypt(
        &self,
        c: &Candidate,
        segments: Range<u64>,
        bytes: Bytes,
        want: Range<u64>,
    ) -> Result<Bytes, StreamingError> {
        if segments.is_empty() {
            return Ok(Bytes::new());
        }
        let size = self.ciphertext_size;
        let base = c
            .layout
            .segment_ciphertext_range(segments.start, size)?
            .start;
        let first_plain = c.layout.segment_plaintext_range(segments.start).start;
        let from = (want.start - first_plain) as usize;
        let to = from + (want.end - want.start) as usize;
        // Each segment is opened out of place from the fetched (shared,
        // read-only) bytes into where its plaintext goes: decrypted
        // straight there under aws-lc-rs (AES-GCM), copied there once and
        // opened in place under ring and for AES-CTR-HMAC. No other copy.
        let open_all = |buf: &mut [u8]| -> Result<usize, StreamingError> {
            let mut len = 0;
            for index in segments.clone() {
                let r = c.layout.segment_ciphertext_range(index, size)?;
                let (a, b) = ((r.start - base) as usize, (r.end - base) as usize);
                let last = index + 1 == c.segments;
                let i = u32::try_from(index).map_err(|_| StreamingError::TooLarge)?;
                len += c
                    .cipher
                    .open_to(i, last, &bytes[a..b], &mut buf[len..])
                    .ok_or(StreamingError::SegmentAuthentication { segment: index })?;
            }
            Ok(len)
        };
        // A range much smaller than its segments (4 KiB of a 1 MiB
        // segment) is decrypted into this thread's scratch buffer, already
        // allocated and touched, and only the range is copied out: no fresh
        // segment-sized buffer per read, and the caller's Bytes does not
        // keep the whole segments alive.
        if (to - from).saturating_mul(4) < bytes.len() && bytes.len() <= SCRATCH_MAX {
            return SCRATCH.with_borrow_mut(|scratch| {
                if scratch.len() < bytes.len() {
                    scratch.resize(bytes.len(), 0);
                }
                let len = open_all(&mut scratch[..bytes.len()])?;
                debug_assert!(to <= len);
                Ok(Bytes::copy_from_slice(&scratch[from..to]))
            });
        }
        let mut buf = vec![0u8; bytes.len()];
        let len = open_all(&mut buf)?;
        buf.truncate(len);
        Ok(Bytes::from(buf).slice(from..to))
    }
}

fn short_read(wanted: u64, got: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the ciphertext source returned {got} bytes for a {wanted}-byte range"),
    )
}
