//! [`StreamDecryptor`]: the synchronous, I/O-free decryption core.

use std::ops::Range;
use std::sync::Arc;

use super::StreamingError;
use super::cipher::{SegmentCipher, StreamingKey};
use super::layout::{MAX_SEGMENTS, SegmentLayout};

/// Decrypts one stream segment by segment, without doing any I/O: feed it
/// ciphertext, take the plaintext of each authenticated segment, and tell
/// it where the ciphertext ends. It holds one segment (plus one byte, to
/// know whether a segment is the last) of the largest segment size of
/// the keyset's keys, and never allocates after it is made (except once,
/// for one scratch segment, when several keys could have written the
/// ciphertext). Its buffers are wiped when it is dropped or done with.
///
/// Plaintext is released one whole segment at a time, and only after the
/// segment authenticated. The last segment is opened with the
/// last-segment flag when the ciphertext ends, so a truncated ciphertext
/// (even one cut at a segment boundary) fails instead of ending early, and
/// an extended or reordered one fails at the first altered segment.
///
/// Streaming ciphertexts carry no key ID: the key is found by its header
/// length and by authenticating the first segment with each enabled key in
/// turn (the primary first), as Tink does. After any error the decryptor
/// is poisoned and returns that error again.
///
/// Made by [`KeysetStreamingAead::decryptor`](super::KeysetStreamingAead::decryptor).
/// Feed it by copying ([`StreamDecryptor::update`]) or zero-copy (read into
/// [`StreamDecryptor::input_buffer`], then [`StreamDecryptor::commit`]),
/// then [`StreamDecryptor::finish`].
pub struct StreamDecryptor {
    /// The keyset's enabled keys, primary first.
    keys: Arc<[Arc<StreamingKey>]>,
    /// The associated data, until the key is found.
    associated_data: Vec<u8>,
    /// Ciphertext (and, in place, plaintext) of the current segment.
    buf: Box<[u8]>,
    /// Ciphertext not yet processed: `buf[start..filled]`.
    start: usize,
    /// End of the data in `buf`.
    filled: usize,
    /// Plaintext not yet consumed.
    plain: Range<usize>,
    /// Where the stream is.
    state: State,
    /// Whether the end of the ciphertext was signalled.
    eof: bool,
    /// The first error; every later call returns it.
    error: Option<StreamingError>,
}

enum State {
    /// Waiting for the header and the first segment.
    Header,
    /// The key is known; decrypting segment `index`.
    Segments {
        cipher: SegmentCipher,
        layout: SegmentLayout,
        index: u64,
    },
    /// The last segment authenticated.
    Done,
}

impl std::fmt::Debug for StreamDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Header => "header".to_owned(),
            State::Segments { index, .. } => format!("segment {index}"),
            State::Done => "done".to_owned(),
        };
        f.debug_struct("StreamDecryptor")
            .field("state", &state)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Drop for StreamDecryptor {
    /// The buffer holds the plaintext of the last segment opened.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.buf[..]);
    }
}

impl StreamDecryptor {
    pub(crate) fn new(keys: Arc<[Arc<StreamingKey>]>, associated_data: &[u8]) -> Self {
        let cap = keys.iter().map(|k| k.segment_size()).max().unwrap_or(0) + 1;
        StreamDecryptor {
            keys,
            associated_data: associated_data.to_vec(),
            buf: vec![0u8; cap].into_boxed_slice(),
            start: 0,
            filled: 0,
            plain: 0..0,
            state: State::Header,
            eof: false,
            error: None,
        }
    }

    /// The layout of the key that wrote the ciphertext, once it is known
    /// (after the first segment authenticated).
    pub fn layout(&self) -> Option<SegmentLayout> {
        match &self.state {
            State::Segments { layout, .. } => Some(*layout),
            _ => None,
        }
    }

    /// Room for ciphertext, to fill and [`commit`](StreamDecryptor::commit)
    /// (zero-copy). Empty while plaintext is pending, after
    /// [`finish`](StreamDecryptor::finish), after the last segment, or
    /// after an error. It never offers more than the current segment and
    /// one byte.
    pub fn input_buffer(&mut self) -> &mut [u8] {
        if !self.plain.is_empty() || self.eof || self.error.is_some() {
            return &mut [];
        }
        let limit = match &self.state {
            State::Header => self.buf.len(),
            State::Segments { layout, .. } => {
                if self.start > 0 {
                    self.buf.copy_within(self.start..self.filled, 0);
                    self.filled -= self.start;
                    self.start = 0;
                }
                layout.ciphertext_segment_size() as usize + 1
            }
            State::Done => return &mut [],
        };
        &mut self.buf[self.filled..limit]
    }

    /// Records that the first `n` bytes of
    /// [`input_buffer`](StreamDecryptor::input_buffer) hold ciphertext, and
    /// decrypts the segment they complete, if any.
    ///
    /// # Errors
    /// The stream's error (see [`StreamingError`]).
    ///
    /// # Panics
    /// If `n` is larger than the input buffer was.
    pub fn commit(&mut self, n: usize) -> Result<(), StreamingError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        assert!(
            n <= self.input_buffer().len(),
            "committed more than the input buffer holds"
        );
        self.filled += n;
        self.process()
    }

    /// Marks the end of the ciphertext and decrypts what remains, the last
    /// segment with the last-segment flag.
    ///
    /// # Errors
    /// The stream's error; [`StreamingError::Truncated`] when the
    /// ciphertext ended before its first segment.
    pub fn finish(&mut self) -> Result<(), StreamingError> {
        self.eof = true;
        self.process()
    }

    /// Authenticated plaintext not yet consumed (one segment's at most).
    pub fn plaintext(&self) -> &[u8] {
        &self.buf[self.plain.clone()]
    }

    /// Marks the first `n` bytes of [`plaintext`](StreamDecryptor::plaintext)
    /// as taken; when it is all taken, decrypts the next segment if its
    /// ciphertext is here.
    ///
    /// # Errors
    /// The stream's error.
    ///
    /// # Panics
    /// If `n` is larger than the pending plaintext.
    pub fn consume(&mut self, n: usize) -> Result<(), StreamingError> {
        assert!(n <= self.plain.len(), "consumed more than the plaintext");
        self.plain.start += n;
        if self.plain.is_empty() {
            self.process()
        } else {
            Ok(())
        }
    }

    /// The error that stopped the stream, if any (every later call
    /// returns it too).
    pub fn error(&self) -> Option<&StreamingError> {
        self.error.as_ref()
    }

    /// Whether the last segment authenticated and its plaintext was taken:
    /// the whole plaintext is genuine and complete.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done) && self.plain.is_empty() && self.error.is_none()
    }

    /// Decrypts `ciphertext` and appends the plaintext of every segment it
    /// completes to `out`.
    ///
    /// # Errors
    /// The stream's error; [`StreamingError::Finished`] if ciphertext comes
    /// after [`finish`](StreamDecryptor::finish).
    pub fn update(
        &mut self,
        mut ciphertext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), StreamingError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        loop {
            self.drain_into(out)?;
            if ciphertext.is_empty() {
                return Ok(());
            }
            let space = self.input_buffer();
            if space.is_empty() {
                return Err(StreamingError::Finished);
            }
            let n = space.len().min(ciphertext.len());
            space[..n].copy_from_slice(&ciphertext[..n]);
            ciphertext = &ciphertext[n..];
            self.commit(n)?;
        }
    }

    /// Ends the ciphertext and appends the rest of the plaintext to `out`.
    /// On success, the whole plaintext is genuine and complete.
    ///
    /// # Errors
    /// The stream's error.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) -> Result<(), StreamingError> {
        self.finish()?;
        while !self.is_done() {
            if self.plain.is_empty() {
                // After the end, every step yields plaintext, an error or
                // the end; this guards against a stuck state.
                return Err(StreamingError::Truncated);
            }
            self.drain_into(out)?;
        }
        Ok(())
    }

    fn drain_into(&mut self, out: &mut Vec<u8>) -> Result<(), StreamingError> {
        while !self.plain.is_empty() {
            out.extend_from_slice(self.plaintext());
            self.consume(self.plain.len())?;
        }
        Ok(())
    }

    /// Decrypts the next segment if it is complete; remembers any error.
    fn process(&mut self) -> Result<(), StreamingError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let r = self.step();
        if let Err(e) = &r {
            self.error = Some(e.clone());
            self.plain = 0..0;
        }
        r
    }

    fn step(&mut self) -> Result<(), StreamingError> {
        if !self.plain.is_empty() {
            return Ok(());
        }
        match &mut self.state {
            State::Header => self.first_segment(),
            State::Segments {
                cipher,
                layout,
                index,
            } => {
                let seg = layout.ciphertext_segment_size() as usize;
                let avail = self.filled - self.start;
                let last = if avail > seg {
                    false
                } else if self.eof {
                    true
                } else {
                    return Ok(());
                };
                let segment = *index;
                let end = if last { self.filled } else { self.start + seg };
                let i = u32::try_from(segment).map_err(|_| StreamingError::TooLarge)?;
                let n = cipher
                    .open(i, last, &mut self.buf[self.start..end])
                    .ok_or(StreamingError::SegmentAuthentication { segment })?;
                *index += 1;
                self.plain = self.start..self.start + n;
                self.start = end;
                if last {
                    self.state = State::Done;
                } else if segment + 1 >= MAX_SEGMENTS {
                    return Err(StreamingError::TooLarge);
                }
                Ok(())
            }
            State::Done => Ok(()),
        }
    }

    /// Reads the header, finds the key whose first segment authenticates,
    /// and releases that segment's plaintext.
    fn first_segment(&mut self) -> Result<(), StreamingError> {
        let avail = self.filled - self.start;
        if avail == 0 {
            return if self.eof {
                Err(StreamingError::Truncated)
            } else {
                Ok(())
            };
        }
        let header_len = usize::from(self.buf[self.start]);
        let candidates: Vec<Arc<StreamingKey>> = self
            .keys
            .iter()
            .filter(|k| k.header_len() == header_len)
            .cloned()
            .collect();
        let need = candidates
            .iter()
            .map(|k| k.segment_size() + 1)
            .max()
            .ok_or(StreamingError::InvalidHeader)?;
        if avail < need && !self.eof {
            return Ok(());
        }
        let mut too_short = true;
        // Holds a candidate's plaintext for a moment: wiped when dropped.
        let mut scratch = zeroize::Zeroizing::new(Vec::new());
        for (i, key) in candidates.iter().enumerate() {
            let layout = key.layout();
            let seg = key.segment_size();
            let tag = layout.tag_size() as usize;
            if avail < header_len + tag {
                continue;
            }
            too_short = false;
            let last = avail <= seg;
            let seg_end = self.start + avail.min(seg);
            let data_start = self.start + header_len;
            let cipher =
                key.cipher_for(&self.buf[self.start..data_start], &self.associated_data)?;
            let opened = if i + 1 == candidates.len() {
                cipher.open(0, last, &mut self.buf[data_start..seg_end])
            } else {
                // Another key may still be the one: keep the ciphertext.
                scratch.clear();
                scratch.extend_from_slice(&self.buf[data_start..seg_end]);
                let n = cipher.open(0, last, &mut scratch);
                if let Some(n) = n {
                    self.buf[data_start..data_start + n].copy_from_slice(&scratch[..n]);
                }
                n
            };
            let Some(n) = opened else { continue };
            self.plain = data_start..data_start + n;
            self.start = seg_end;
            self.associated_data = Vec::new();
            self.state = if last {
                State::Done
            } else {
                State::Segments {
                    cipher,
                    layout,
                    index: 1,
                }
            };
            return Ok(());
        }
        Err(if too_short {
            StreamingError::Truncated
        } else {
            StreamingError::Authentication
        })
    }
}
