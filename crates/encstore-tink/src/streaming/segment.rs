//! [`SegmentEncryptor`] and [`SegmentDecryptor`]: seal and open whole
//! segments in the caller's own buffers (no copy into an internal segment
//! buffer), in Tink's wire format.
//!
//! The caller cuts the stream into segments ([`SegmentLayout`] gives every
//! size) and owns every buffer; these types only check the sizes, keep the
//! segment count and apply the segment cipher in place. The ciphertext is
//! byte-for-byte what [`StreamEncryptor`](super::StreamEncryptor) writes
//! for the same header (Tink's format), and every ciphertext Tink writes
//! opens here.

use bytes::BytesMut;

use super::StreamingError;
use super::cipher::{Header, SegmentCipher, SegmentTag};
use super::layout::{MAX_SEGMENTS, SegmentLayout};

mod private {
    pub trait Sealed {}
    impl Sealed for Vec<u8> {}
    impl Sealed for bytes::BytesMut {}
}

/// A growable byte buffer a segment is sealed or opened in:
/// `Vec<u8>` or [`bytes::BytesMut`] (sealed: no other implementations).
///
/// Sealing appends the tag (reserve [`SegmentLayout::tag_size`] bytes of
/// spare capacity to avoid a reallocation); opening truncates it.
pub trait SegmentBuffer: private::Sealed {
    /// The buffer's bytes.
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Appends `data`.
    fn append(&mut self, data: &[u8]);
    /// Shortens the buffer to `len` bytes.
    fn cut(&mut self, len: usize);
}

impl SegmentBuffer for Vec<u8> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
    fn append(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }
    fn cut(&mut self, len: usize) {
        self.truncate(len);
    }
}

impl SegmentBuffer for BytesMut {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
    fn append(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }
    fn cut(&mut self, len: usize) {
        self.truncate(len);
    }
}

/// The ciphertext bytes segment `index` has when it is full: `S - H` for
/// the first (the header takes the rest of its room), `S` for the others.
fn full_ciphertext(layout: &SegmentLayout, index: u64) -> u64 {
    let s = layout.ciphertext_segment_size();
    if index == 0 {
        s - layout.header_len()
    } else {
        s
    }
}

/// The plaintext bytes segment `index` has when it is full.
fn full_plaintext(layout: &SegmentLayout, index: u64) -> u64 {
    full_ciphertext(layout, index) - layout.tag_size()
}

/// The allowed range of ciphertext sizes of segment `index`: exactly full
/// unless it is the last, which holds at least its tag.
fn ciphertext_bounds(layout: &SegmentLayout, index: u64, last: bool) -> (u64, u64) {
    let full = full_ciphertext(layout, index);
    if last {
        (layout.tag_size(), full)
    } else {
        (full, full)
    }
}

/// The 32-bit nonce field of segment `index`, or `TooLarge`.
fn nonce_index(index: u64) -> Result<u32, StreamingError> {
    if index >= MAX_SEGMENTS {
        return Err(StreamingError::TooLarge);
    }
    u32::try_from(index).map_err(|_| StreamingError::TooLarge)
}

/// Seals a stream segment by segment in the caller's buffers: the caller
/// writes the [`header`](SegmentEncryptor::header), then each segment's
/// plaintext sealed in place, in order. No copy, no allocation.
///
/// Every segment but the last must hold exactly
/// [`segment_plaintext_size`](SegmentEncryptor::segment_plaintext_size)
/// bytes (the first segment holds the header's size less than the others);
/// the last holds 1 to that many (0 only when it is also the first: an
/// empty plaintext). Then the ciphertext is exactly Tink's (and
/// [`StreamEncryptor`](super::StreamEncryptor)'s) and its size is
/// [`SegmentLayout::ciphertext_size`] of the plaintext size. A segment of
/// another size, a segment after the last and a stream of more than
/// [`MAX_SEGMENTS`] segments are refused with an error, before anything
/// is sealed; a stream whose last segment was never sealed does not
/// decrypt.
///
/// Made by [`KeysetStreamingAead::segment_encryptor`](super::KeysetStreamingAead::segment_encryptor).
///
/// ```
/// # use encstore_tink::{Keyset, templates};
/// let keyset = Keyset::generate(&templates::by_name("AES128_GCM_HKDF_4KB")?)?;
/// let streaming = keyset.streaming_aead()?;
/// let plaintext = vec![7u8; 10_000];
/// let mut enc = streaming.segment_encryptor(b"object name")?;
/// let mut ciphertext = enc.header().to_vec();
/// let mut rest = &plaintext[..];
/// loop {
///     let n = enc.segment_plaintext_size().min(rest.len());
///     let last = n == rest.len();
///     // A real caller reads the plaintext straight into its buffer.
///     let mut segment = Vec::with_capacity(n + 16);
///     segment.extend_from_slice(&rest[..n]);
///     enc.seal_segment(&mut segment, last)?;
///     ciphertext.extend_from_slice(&segment);
///     rest = &rest[n..];
///     if last {
///         break;
///     }
/// }
/// assert_eq!(streaming.decrypt(&ciphertext, b"object name")?, plaintext);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SegmentEncryptor {
    cipher: SegmentCipher,
    layout: SegmentLayout,
    header: Header,
    /// The index of the next segment.
    next: u64,
    /// Whether the last segment was sealed.
    finished: bool,
}

impl std::fmt::Debug for SegmentEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentEncryptor")
            .field("layout", &self.layout)
            .field("next_segment", &self.next)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl SegmentEncryptor {
    pub(crate) fn new(cipher: SegmentCipher, layout: SegmentLayout, header: Header) -> Self {
        SegmentEncryptor {
            cipher,
            layout,
            header,
            next: 0,
            finished: false,
        }
    }

    /// The ciphertext header: the first bytes of the ciphertext, before
    /// segment 0.
    pub fn header(&self) -> &[u8] {
        self.header.as_bytes()
    }

    /// The segment layout of the key encrypting this stream.
    pub fn layout(&self) -> SegmentLayout {
        self.layout
    }

    /// The index of the next segment to seal.
    pub fn segment_index(&self) -> u64 {
        self.next
    }

    /// The plaintext bytes the next segment must hold unless it is the
    /// last (which holds at most that many): `P - H` for segment 0, `P`
    /// after it.
    pub fn segment_plaintext_size(&self) -> usize {
        full_plaintext(&self.layout, self.next) as usize
    }

    /// Whether the last segment was sealed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Checks that the next segment may hold `len` plaintext bytes.
    fn check(&self, len: usize, last: bool) -> Result<u32, StreamingError> {
        if self.finished {
            return Err(StreamingError::Finished);
        }
        let full = full_plaintext(&self.layout, self.next);
        let min = if !last {
            full
        } else if self.next == 0 {
            0
        } else {
            1
        };
        let len = len as u64;
        if len < min || len > full {
            return Err(StreamingError::SegmentSize {
                segment: self.next,
                size: len,
                min,
                max: full,
            });
        }
        if !last && self.next + 1 >= MAX_SEGMENTS {
            // The next segment could not be numbered.
            return Err(StreamingError::TooLarge);
        }
        nonce_index(self.next)
    }

    /// Seals the next segment in place: `buf` holds its plaintext (and
    /// nothing else); on return it holds the segment's ciphertext and tag,
    /// the next bytes of the ciphertext. `last` marks the final segment.
    ///
    /// # Errors
    /// [`StreamingError::SegmentSize`] when `buf` is not the size the
    /// segment must have, [`StreamingError::Finished`] after the last
    /// segment, [`StreamingError::TooLarge`] when the stream would need
    /// more than [`MAX_SEGMENTS`] segments; `buf` is then unchanged.
    pub fn seal_segment<B: SegmentBuffer>(
        &mut self,
        buf: &mut B,
        last: bool,
    ) -> Result<(), StreamingError> {
        let tag = self.seal_segment_detached(buf.bytes_mut(), last)?;
        buf.append(tag.as_ref());
        Ok(())
    }

    /// Seals the next segment in place and returns its tag separately:
    /// the segment's bytes on the wire are the new contents of
    /// `plaintext` followed by the tag. `last` marks the final segment.
    ///
    /// # Errors
    /// As [`seal_segment`](SegmentEncryptor::seal_segment).
    pub fn seal_segment_detached(
        &mut self,
        plaintext: &mut [u8],
        last: bool,
    ) -> Result<SegmentTag, StreamingError> {
        let index = self.check(plaintext.len(), last)?;
        let tag = self.cipher.seal_detached(index, last, plaintext);
        self.next += 1;
        self.finished = last;
        Ok(tag)
    }
}

/// One key that may have written the ciphertext.
struct Candidate {
    cipher: SegmentCipher,
    layout: SegmentLayout,
}

/// Opens the segments of a streaming ciphertext in the caller's buffers,
/// authenticating each one with its index and last-segment flag: no copy,
/// no allocation (except one scratch segment while several keys may have
/// written the ciphertext).
///
/// Made from the ciphertext's header by
/// [`KeysetStreamingAead::segment_decryptor`](super::KeysetStreamingAead::segment_decryptor).
/// In order ([`open_segment`](SegmentDecryptor::open_segment)): the caller
/// gives segment 0, 1, … and marks the final one `last`; the decryptor
/// counts them, so a truncated ciphertext (its final segment was not
/// sealed as the last), an extended one or reordered segments fail to
/// authenticate. Random access
/// ([`open_segment_at`](SegmentDecryptor::open_segment_at)): the caller
/// names the index, and `last` must be true exactly for the ciphertext's
/// final segment (see [`SegmentLayout::segment_count`]).
///
/// Segment sizes come from [`layout`](SegmentDecryptor::layout): segment 0
/// is `S - H` ciphertext bytes, the others `S`, the last from its tag to
/// that. Streaming ciphertexts carry no key ID: when several enabled keys
/// have the header's length, the first segment opened tries them in turn
/// (the primary first) and the first that authenticates is kept. If those
/// keys have different segment sizes, the caller must cut the segments
/// with the right key's layout: before a segment authenticated,
/// [`layout`](SegmentDecryptor::layout) is the first candidate's.
pub struct SegmentDecryptor {
    candidates: Vec<Candidate>,
    /// The key that authenticated a segment.
    chosen: Option<usize>,
    /// The index of the next segment in order.
    next: u64,
    /// Whether the last segment authenticated in order.
    done: bool,
    /// A copy of a segment while several keys are tried.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for SegmentDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentDecryptor")
            .field("candidates", &self.candidates.len())
            .field("key_found", &self.chosen.is_some())
            .field("next_segment", &self.next)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl SegmentDecryptor {
    pub(crate) fn new(candidates: Vec<(SegmentCipher, SegmentLayout)>) -> Self {
        let candidates: Vec<Candidate> = candidates
            .into_iter()
            .map(|(cipher, layout)| Candidate { cipher, layout })
            .collect();
        SegmentDecryptor {
            candidates,
            // Known only once a segment authenticates, even with one
            // candidate: a first failure is then `Authentication`.
            chosen: None,
            next: 0,
            done: false,
            scratch: Vec::new(),
        }
    }

    fn current(&self) -> &Candidate {
        &self.candidates[self.chosen.unwrap_or(0)]
    }

    /// The segment layout of the key that wrote the ciphertext (before a
    /// segment authenticated, of the first key that may have).
    pub fn layout(&self) -> SegmentLayout {
        self.current().layout
    }

    /// The index of the next segment [`open_segment`](SegmentDecryptor::open_segment)
    /// expects.
    pub fn segment_index(&self) -> u64 {
        self.next
    }

    /// The ciphertext bytes the next segment has unless it is the last
    /// (which has from its tag to that many): `S - H` for segment 0, `S`
    /// after it.
    pub fn segment_ciphertext_size(&self) -> usize {
        full_ciphertext(&self.layout(), self.next) as usize
    }

    /// Whether the last segment authenticated (in order): the plaintext of
    /// all segments opened is genuine and complete.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Opens the next segment in place: `buf` holds its ciphertext and tag
    /// (and nothing else); on success it holds its plaintext. `last` marks
    /// the ciphertext's final segment. On an error nothing is counted, and
    /// the contents of `buf` are unspecified after an authentication
    /// failure (its length is unchanged).
    ///
    /// # Errors
    /// [`StreamingError::Authentication`] when the first segment does not
    /// authenticate with any candidate key, then
    /// [`StreamingError::SegmentAuthentication`] (altered, truncated,
    /// extended or reordered); [`StreamingError::SegmentSize`] for a
    /// segment of a size no segment at this place has;
    /// [`StreamingError::Finished`] after the last segment;
    /// [`StreamingError::TooLarge`] past [`MAX_SEGMENTS`] segments.
    pub fn open_segment<B: SegmentBuffer>(
        &mut self,
        buf: &mut B,
        last: bool,
    ) -> Result<(), StreamingError> {
        let n = self.open_segment_in_place(buf.bytes_mut(), last)?;
        buf.cut(n);
        Ok(())
    }

    /// Opens the next segment in place in a slice: `segment` holds its
    /// ciphertext and tag; on success its first `n` bytes hold the
    /// plaintext and `n` is returned.
    ///
    /// # Errors
    /// As [`open_segment`](SegmentDecryptor::open_segment).
    pub fn open_segment_in_place(
        &mut self,
        segment: &mut [u8],
        last: bool,
    ) -> Result<usize, StreamingError> {
        self.open_next(last, Io::InPlace(segment))
    }

    /// Opens segment `index` in place, in any order (random access); the
    /// in-order count is not changed. `last` must be true exactly for the
    /// ciphertext's final segment.
    ///
    /// # Errors
    /// As [`open_segment`](SegmentDecryptor::open_segment), without
    /// `Finished`.
    pub fn open_segment_at(
        &mut self,
        index: u64,
        last: bool,
        segment: &mut [u8],
    ) -> Result<usize, StreamingError> {
        self.open_io(index, last, Io::InPlace(segment))
    }

    /// Opens the next segment out of place: `segment` holds its
    /// ciphertext and tag and is only read (it may be shared, e.g. a
    /// slice of a fetched `Bytes`); on success the plaintext is written to
    /// `out[..n]` and `n` (the segment's size less its tag) is returned.
    /// `last` marks the ciphertext's final segment. With AES-GCM under the
    /// `aws-lc-rs` and `fips` providers the segment is decrypted straight
    /// into `out` (no copy); under `ring`, which cannot decrypt out of
    /// place, and for AES-CTR-HMAC it is copied into `out` and opened
    /// there. Several candidate keys are tried without any scratch copy.
    ///
    /// On an error nothing is counted, and after an authentication
    /// failure the bytes of `out` that could have held plaintext are
    /// zeros: `out` never holds unauthenticated plaintext.
    ///
    /// # Errors
    /// As [`open_segment`](SegmentDecryptor::open_segment), and
    /// [`StreamingError::OutputTooSmall`] when `out` is shorter than the
    /// plaintext.
    pub fn open_segment_to(
        &mut self,
        segment: &[u8],
        last: bool,
        out: &mut [u8],
    ) -> Result<usize, StreamingError> {
        self.open_next(last, Io::To(segment, out))
    }

    /// [`open_segment_to`](SegmentDecryptor::open_segment_to) for segment
    /// `index`, in any order (random access); the in-order count is not
    /// changed. `last` must be true exactly for the ciphertext's final
    /// segment.
    ///
    /// # Errors
    /// As [`open_segment_to`](SegmentDecryptor::open_segment_to), without
    /// `Finished`.
    pub fn open_segment_at_to(
        &mut self,
        index: u64,
        last: bool,
        segment: &[u8],
        out: &mut [u8],
    ) -> Result<usize, StreamingError> {
        self.open_io(index, last, Io::To(segment, out))
    }

    /// Opens the next segment in order: counted only when it opened.
    fn open_next(&mut self, last: bool, io: Io<'_>) -> Result<usize, StreamingError> {
        if self.done {
            return Err(StreamingError::Finished);
        }
        let n = self.open_io(self.next, last, io)?;
        self.next += 1;
        self.done = last;
        Ok(n)
    }

    fn open_io(&mut self, index: u64, last: bool, io: Io<'_>) -> Result<usize, StreamingError> {
        let i = nonce_index(index)?;
        if !last && index + 1 >= MAX_SEGMENTS {
            return Err(StreamingError::TooLarge);
        }
        let len = io.len() as u64;
        let fits = |c: &Candidate| {
            let (min, max) = ciphertext_bounds(&c.layout, index, last);
            (min..=max).contains(&len)
        };
        let size_error = |c: &Candidate| {
            let (min, max) = ciphertext_bounds(&c.layout, index, last);
            StreamingError::SegmentSize {
                segment: index,
                size: len,
                min,
                max,
            }
        };
        // The output must hold the plaintext of every key that may open
        // the segment (keys may differ in tag size).
        let out_check = |io: &Io<'_>, c: &Candidate| match io {
            Io::To(_, out) if (out.len() as u64) < len - c.layout.tag_size() => {
                Err(StreamingError::OutputTooSmall {
                    segment: index,
                    size: out.len() as u64,
                    needed: len - c.layout.tag_size(),
                })
            }
            _ => Ok(()),
        };
        if let Some(k) = self.chosen {
            let c = &self.candidates[k];
            if !fits(c) {
                return Err(size_error(c));
            }
            out_check(&io, c)?;
            return io
                .open(&c.cipher, i, last)
                .ok_or(StreamingError::SegmentAuthentication { segment: index });
        }
        let fitting: Vec<usize> = (0..self.candidates.len())
            .filter(|&k| fits(&self.candidates[k]))
            .collect();
        if fitting.is_empty() {
            return Err(size_error(&self.candidates[0]));
        }
        for &k in &fitting {
            out_check(&io, &self.candidates[k])?;
        }
        let mut io = io;
        for (j, &k) in fitting.iter().enumerate() {
            let cipher = &self.candidates[k].cipher;
            let opened = match &mut io {
                Io::To(segment, out) => cipher.open_to(i, last, segment, out),
                Io::InPlace(segment) if j + 1 == fitting.len() => cipher.open(i, last, segment),
                Io::InPlace(segment) => {
                    // Another key may still be the one: keep the ciphertext.
                    self.scratch.clear();
                    self.scratch.extend_from_slice(segment);
                    let n = cipher.open(i, last, &mut self.scratch);
                    if let Some(n) = n {
                        segment[..n].copy_from_slice(&self.scratch[..n]);
                    }
                    n
                }
            };
            if let Some(n) = opened {
                self.chosen = Some(k);
                self.scratch = Vec::new();
                return Ok(n);
            }
        }
        Err(StreamingError::Authentication)
    }
}

/// Where a segment is opened: in place, or from a read-only ciphertext
/// into an output buffer.
enum Io<'a> {
    InPlace(&'a mut [u8]),
    To(&'a [u8], &'a mut [u8]),
}

impl Io<'_> {
    /// The segment's ciphertext size (with its tag).
    fn len(&self) -> usize {
        match self {
            Io::InPlace(s) => s.len(),
            Io::To(s, _) => s.len(),
        }
    }

    fn open(self, cipher: &SegmentCipher, index: u32, last: bool) -> Option<usize> {
        match self {
            Io::InPlace(segment) => cipher.open(index, last, segment),
            Io::To(segment, out) => cipher.open_to(index, last, segment, out),
        }
    }
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
