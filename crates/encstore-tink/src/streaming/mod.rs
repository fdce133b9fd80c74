//! Tink's streaming AEAD: `AesGcmHkdfStreamingKey` and
//! `AesCtrHmacStreamingKey`, byte-compatible with Google's Tink.
//!
//! A streaming keyset ([`Keyset::streaming_aead`](crate::Keyset::streaming_aead))
//! encrypts with its primary key and decrypts with any of its enabled keys
//! (streaming ciphertexts carry no key ID: the key is found by trying
//! them, as Tink does). Memory stays at one or two segments whatever the
//! stream's length.
//!
//! | layer | API |
//! | --- | --- |
//! | segment arithmetic (sizes, ranges; no keys) | [`SegmentLayout`], [`CiphertextRange`] |
//! | sync, I/O-free cores | [`StreamEncryptor`], [`StreamDecryptor`] |
//! | whole segments in the caller's buffers (no copy) | [`SegmentEncryptor`], [`SegmentDecryptor`] |
//! | blocking `std::io` copies (zero-copy) | [`KeysetStreamingAead::encrypt_copy`], [`KeysetStreamingAead::decrypt_copy`] |
//! | async streams (tokio) | [`EncryptingWriter`], [`EncryptingReader`], [`DecryptingReader`] |
//! | random access (any byte range) | [`RangedRead`], [`RandomAccessReader`] |
//! | whole buffers | [`KeysetStreamingAead::encrypt`], [`KeysetStreamingAead::decrypt`] |
//!
//! The format (Tink's, see `docs/format.md`): a header
//! `header_len ‖ salt ‖ nonce_prefix(7)`, then segments sealed with keys
//! HKDF-derived from the key, the salt and the associated data; each
//! segment's nonce is `nonce_prefix ‖ segment number (32-bit BE) ‖ last`,
//! where `last` is 1 only for the final segment, so truncating, extending
//! or reordering segments fails authentication.

mod cipher;
mod copy;
mod decrypt;
mod encrypt;
mod io;
mod layout;
pub(crate) mod params;
mod ranged;
mod segment;

use std::fmt;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

pub use cipher::SegmentTag;
pub use copy::{Checkpoint, CopyError, read_full};
pub use decrypt::StreamDecryptor;
pub use encrypt::StreamEncryptor;
pub use io::{DecryptingReader, EncryptingReader, EncryptingWriter};
pub use layout::{CiphertextRange, MAX_SEGMENTS, SegmentLayout};
pub use ranged::{RandomAccessReader, RangedRead};
pub use segment::{SegmentBuffer, SegmentDecryptor, SegmentEncryptor};

pub(crate) use cipher::StreamingKey;

use crate::error::KeysetError;
use crate::keyset::{KeyStatus, Keyset, KeysetInfo};

/// Why a streaming encryption or decryption failed. Decryption errors say
/// which segment failed, never why (no detail that would help forge).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamingError {
    /// The header and first segment do not authenticate with any enabled
    /// key of the keyset and this associated data: another key, other
    /// associated data, or a tampered header or first segment.
    #[error(
        "the streaming ciphertext does not decrypt with any enabled key of this keyset and this associated data"
    )]
    Authentication,
    /// A segment after the first failed to authenticate: the ciphertext
    /// was altered, truncated (a cut ciphertext's final segment was not
    /// sealed as the last one), extended, or its segments reordered.
    #[error(
        "segment {segment} of the streaming ciphertext does not authenticate (altered, truncated, extended or reordered)"
    )]
    SegmentAuthentication {
        /// The segment index (0 is the first).
        segment: u64,
    },
    /// The ciphertext ends before its header and first segment: empty, or
    /// shorter than a header and one tag.
    #[error("the streaming ciphertext is truncated: it ends before its first segment")]
    Truncated,
    /// The header's length byte is not the header length of any enabled
    /// key of the keyset (24 for 128-bit keys, 40 for 256-bit keys): not a
    /// ciphertext of this keyset.
    #[error(
        "the streaming ciphertext's header length matches no enabled key of this keyset (not a streaming ciphertext of this keyset)"
    )]
    InvalidHeader,
    /// No ciphertext of this key has this size (see
    /// [`SegmentLayout::plaintext_size`]).
    #[error("no streaming ciphertext of this key is {size} bytes long")]
    InvalidCiphertextSize {
        /// The refused size.
        size: u64,
    },
    /// A plaintext range that is reversed or starts after the end.
    #[error("plaintext range {start}..{end} is outside the plaintext of {size} bytes")]
    RangeOutOfBounds {
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
        /// The plaintext size.
        size: u64,
    },
    /// A segment index past the last segment.
    #[error("segment {index} does not exist; the ciphertext has {segments} segments")]
    SegmentOutOfRange {
        /// The requested index.
        index: u64,
        /// The number of segments.
        segments: u64,
    },
    /// A segment given to [`SegmentEncryptor`] or [`SegmentDecryptor`]
    /// does not have a size that segment can have (every segment but the
    /// last is full; see [`SegmentLayout`]).
    #[error(
        "segment {segment} is {size} bytes; a segment there must be {min} to {max} bytes (every segment but the last is full)"
    )]
    SegmentSize {
        /// The segment index.
        segment: u64,
        /// Its size (plaintext when sealing, ciphertext when opening).
        size: u64,
        /// The smallest size allowed there.
        min: u64,
        /// The largest size allowed there.
        max: u64,
    },
    /// The output buffer given to
    /// [`SegmentDecryptor::open_segment_to`] is shorter than the
    /// segment's plaintext.
    #[error(
        "the output buffer for segment {segment} is {size} bytes; its plaintext needs {needed}"
    )]
    OutputTooSmall {
        /// The segment index.
        segment: u64,
        /// The output buffer's size.
        size: u64,
        /// The plaintext size.
        needed: u64,
    },
    /// The stream would need more than [`MAX_SEGMENTS`] segments.
    #[error("the stream is too long: more than 2^32 - 1 segments")]
    TooLarge,
    /// Data was given after the stream was finished.
    #[error("the stream is already finished")]
    Finished,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Randomness,
}

impl From<StreamingError> for std::io::Error {
    /// `InvalidInput` for misuse (a range past the end, a finished stream,
    /// too long a stream), `InvalidData` for everything about the
    /// ciphertext, `Other` for the random number generator.
    fn from(e: StreamingError) -> Self {
        use std::io::ErrorKind;
        let kind = match e {
            StreamingError::RangeOutOfBounds { .. }
            | StreamingError::SegmentOutOfRange { .. }
            | StreamingError::TooLarge
            | StreamingError::SegmentSize { .. }
            | StreamingError::OutputTooSmall { .. }
            | StreamingError::Finished => ErrorKind::InvalidInput,
            StreamingError::Randomness => ErrorKind::Other,
            _ => ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, e)
    }
}

/// The streaming AEAD of a keyset: encrypts with the primary key,
/// decrypts with any ENABLED key, byte-compatible with Tink's
/// `StreamingAead`.
///
/// Built once with [`Keyset::streaming_aead`]; it is `Send + Sync` and
/// immutable, so share it (`Arc`). `Debug` shows key IDs, never keys.
///
/// ```
/// # use encstore_tink::{Keyset, templates};
/// let keyset = Keyset::generate(&templates::by_name("AES256_GCM_HKDF_1MB")?)?;
/// let s = keyset.streaming_aead()?;
/// let ct = s.encrypt(b"a large object", b"its name")?;
/// assert_eq!(ct.len() as u64, s.layout().ciphertext_size(14)?);
/// assert_eq!(s.decrypt(&ct, b"its name")?, b"a large object");
/// assert!(s.decrypt(&ct, b"another name").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KeysetStreamingAead {
    /// Enabled keys, the primary first, then keyset order.
    keys: Arc<[Arc<StreamingKey>]>,
    /// Their key IDs, in the same order.
    key_ids: Vec<u32>,
    /// The keyset's description, for listings.
    info: KeysetInfo,
}

impl fmt::Debug for KeysetStreamingAead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeysetStreamingAead")
            .field("primary_key_id", &self.key_ids[0])
            .field("enabled_key_ids", &self.key_ids)
            .finish()
    }
}

impl KeysetStreamingAead {
    pub(crate) fn new(keyset: &Keyset) -> Result<Self, KeysetError> {
        let primary_key_id = keyset.primary_key_id();
        let mut keys = Vec::new();
        let mut key_ids = Vec::new();
        let mut primary = None;
        for k in keyset.keys() {
            let Some(s) = k.streaming() else { continue };
            if k.status != KeyStatus::Enabled {
                continue;
            }
            if k.id == primary_key_id {
                primary = Some(Arc::clone(s));
            } else {
                keys.push(Arc::clone(s));
                key_ids.push(k.id);
            }
        }
        let primary = primary.ok_or(KeysetError::PrimaryMissing { primary_key_id })?;
        keys.insert(0, primary);
        key_ids.insert(0, primary_key_id);
        Ok(KeysetStreamingAead {
            keys: keys.into(),
            key_ids,
            info: keyset.info(),
        })
    }

    /// The primary key's ID (the key new ciphertexts are written with).
    pub fn primary_key_id(&self) -> u32 {
        self.key_ids[0]
    }

    /// The keyset this was built from, without key material.
    pub fn info(&self) -> &KeysetInfo {
        &self.info
    }

    /// The segment layout of the primary key: the header length, and the
    /// exact ciphertext size of new ciphertexts
    /// ([`SegmentLayout::ciphertext_size`]).
    pub fn layout(&self) -> SegmentLayout {
        self.keys[0].layout()
    }

    /// The segment layout of every enabled key, by key ID, the primary
    /// first: one of them wrote any ciphertext this keyset decrypts.
    pub fn key_layouts(&self) -> impl Iterator<Item = (u32, SegmentLayout)> + '_ {
        self.key_ids
            .iter()
            .zip(self.keys.iter())
            .map(|(id, k)| (*id, k.layout()))
    }

    /// A new encryption with the primary key (fresh random salt and nonce
    /// prefix), bound to `associated_data`.
    ///
    /// # Errors
    /// [`StreamingError::Randomness`].
    pub fn encryptor(&self, associated_data: &[u8]) -> Result<StreamEncryptor, StreamingError> {
        let key = &self.keys[0];
        let (header, cipher) = key.new_stream(associated_data)?;
        Ok(StreamEncryptor::new(cipher, key.layout(), header))
    }

    /// A new encryption with the primary key (fresh random salt and nonce
    /// prefix), bound to `associated_data`, that seals whole segments in
    /// the caller's buffers (no copy).
    ///
    /// # Errors
    /// [`StreamingError::Randomness`].
    pub fn segment_encryptor(
        &self,
        associated_data: &[u8],
    ) -> Result<SegmentEncryptor, StreamingError> {
        let key = &self.keys[0];
        let (header, cipher) = key.new_stream(associated_data)?;
        Ok(SegmentEncryptor::new(cipher, key.layout(), header))
    }

    /// A decryption of the ciphertext whose header is `header` (exactly
    /// its first `header[0]` bytes), bound to `associated_data`, that opens
    /// whole segments in the caller's buffers (no copy). The key is found
    /// when the first segment is opened.
    ///
    /// # Errors
    /// [`StreamingError::Truncated`] for an empty or short header,
    /// [`StreamingError::InvalidHeader`] when no enabled key has this
    /// header length or `header` is longer than its length byte says.
    pub fn segment_decryptor(
        &self,
        header: &[u8],
        associated_data: &[u8],
    ) -> Result<SegmentDecryptor, StreamingError> {
        let header_len = usize::from(*header.first().ok_or(StreamingError::Truncated)?);
        let mut candidates = Vec::new();
        for key in self.keys.iter().filter(|k| k.header_len() == header_len) {
            if header.len() < header_len {
                return Err(StreamingError::Truncated);
            }
            candidates.push((key.cipher_for(header, associated_data)?, key.layout()));
        }
        if candidates.is_empty() {
            return Err(StreamingError::InvalidHeader);
        }
        Ok(SegmentDecryptor::new(candidates))
    }

    /// A new decryption with this keyset's enabled keys, bound to
    /// `associated_data`.
    pub fn decryptor(&self, associated_data: &[u8]) -> StreamDecryptor {
        StreamDecryptor::new(Arc::clone(&self.keys), associated_data)
    }

    /// Encrypts a whole plaintext in memory.
    ///
    /// # Errors
    /// [`StreamingError::TooLarge`], [`StreamingError::Randomness`].
    pub fn encrypt(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, StreamingError> {
        let mut out = Vec::new();
        self.encrypt_to(plaintext, associated_data, &mut out)?;
        Ok(out)
    }

    /// Encrypts a whole plaintext in memory, appending the ciphertext to
    /// `out` (after what it holds, such as a prefix of the caller's): each
    /// segment's plaintext is copied once, to where its ciphertext goes,
    /// and sealed there.
    ///
    /// # Errors
    /// [`StreamingError::TooLarge`], [`StreamingError::Randomness`]; `out`
    /// is then unchanged.
    pub fn encrypt_to(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), StreamingError> {
        let key = &self.keys[0];
        let layout = key.layout();
        let size = layout.ciphertext_size(plaintext.len() as u64)?;
        let segments = layout.segment_count(size)?;
        let (header, cipher) = key.new_stream(associated_data)?;
        out.reserve(usize::try_from(size).map_err(|_| StreamingError::TooLarge)?);
        let base = out.len();
        out.extend_from_slice(header.as_bytes());
        let tag = cipher.tag_size();
        for index in 0..segments {
            let Ok(i) = u32::try_from(index) else {
                out.truncate(base);
                return Err(StreamingError::TooLarge);
            };
            let r = layout.segment_plaintext_range(index);
            let end = (r.end as usize).min(plaintext.len());
            let start = out.len();
            out.extend_from_slice(&plaintext[r.start as usize..end]);
            out.resize(out.len() + tag, 0);
            cipher.seal(i, index + 1 == segments, &mut out[start..]);
        }
        Ok(())
    }

    /// Decrypts a whole ciphertext in memory, authenticating every segment.
    ///
    /// # Errors
    /// See [`StreamingError`].
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, StreamingError> {
        let mut dec = self.decryptor(associated_data);
        let mut out = Vec::with_capacity(ciphertext.len());
        dec.update(ciphertext, &mut out)?;
        dec.finish_into(&mut out)?;
        Ok(out)
    }

    /// Encrypts everything `reader` yields into `writer` (blocking), in
    /// one segment of memory: the input is read straight into the
    /// segment buffer, sealed there and written from there. Flushes
    /// `writer` at the end and returns the plaintext's length. The output
    /// is exactly Tink's streaming ciphertext, under the primary key.
    ///
    /// # Errors
    /// [`CopyError::Read`], [`CopyError::Write`]; [`CopyError::Streaming`]
    /// with [`StreamingError::TooLarge`] or [`StreamingError::Randomness`].
    /// `writer` then holds part of the ciphertext.
    pub fn encrypt_copy(
        &self,
        associated_data: &[u8],
        reader: &mut (impl std::io::Read + ?Sized),
        writer: &mut (impl std::io::Write + ?Sized),
    ) -> Result<u64, CopyError> {
        self.encrypt_copy_with(associated_data, reader, writer, &mut |_| true)
    }

    /// [`encrypt_copy`](Self::encrypt_copy), asking `go_on` at every
    /// [`Checkpoint`] whether to continue; `false` stops the copy with
    /// [`CopyError::Stopped`] (for cancellation).
    ///
    /// # Errors
    /// As [`encrypt_copy`](Self::encrypt_copy), and [`CopyError::Stopped`].
    pub fn encrypt_copy_with(
        &self,
        associated_data: &[u8],
        reader: &mut (impl std::io::Read + ?Sized),
        writer: &mut (impl std::io::Write + ?Sized),
        go_on: &mut dyn FnMut(Checkpoint) -> bool,
    ) -> Result<u64, CopyError> {
        copy::encrypt(self.encryptor(associated_data)?, reader, writer, go_on)
    }

    /// Decrypts the streaming ciphertext `reader` yields into `writer`
    /// (blocking), in one segment of memory, trying every enabled key.
    /// Each segment's plaintext is written once it authenticated; flushes
    /// `writer` at the end and returns the plaintext's length. On success
    /// the whole plaintext is genuine and complete.
    ///
    /// # Errors
    /// [`CopyError::Read`], [`CopyError::Write`], [`CopyError::Streaming`]
    /// (a ciphertext that does not authenticate, is cut short, extended or
    /// not of this keyset). `writer` then holds the plaintext of the
    /// segments before the failure: discard it.
    pub fn decrypt_copy(
        &self,
        associated_data: &[u8],
        reader: &mut (impl std::io::Read + ?Sized),
        writer: &mut (impl std::io::Write + ?Sized),
    ) -> Result<u64, CopyError> {
        self.decrypt_copy_with(associated_data, reader, writer, &mut |_| true)
    }

    /// [`decrypt_copy`](Self::decrypt_copy), asking `go_on` at every
    /// [`Checkpoint`] whether to continue; `false` stops the copy with
    /// [`CopyError::Stopped`].
    ///
    /// # Errors
    /// As [`decrypt_copy`](Self::decrypt_copy), and [`CopyError::Stopped`].
    pub fn decrypt_copy_with(
        &self,
        associated_data: &[u8],
        reader: &mut (impl std::io::Read + ?Sized),
        writer: &mut (impl std::io::Write + ?Sized),
        go_on: &mut dyn FnMut(Checkpoint) -> bool,
    ) -> Result<u64, CopyError> {
        copy::decrypt(self.decryptor(associated_data), reader, writer, go_on)
    }

    /// An `AsyncWrite` that encrypts what is written to it into `inner`
    /// (`shutdown` finishes the ciphertext).
    ///
    /// # Errors
    /// [`StreamingError::Randomness`].
    pub fn encrypting_writer<W: AsyncWrite + Unpin>(
        &self,
        inner: W,
        associated_data: &[u8],
    ) -> Result<EncryptingWriter<W>, StreamingError> {
        Ok(EncryptingWriter::new(
            inner,
            self.encryptor(associated_data)?,
        ))
    }

    /// An `AsyncRead` of the ciphertext of what `inner` reads.
    ///
    /// # Errors
    /// [`StreamingError::Randomness`].
    pub fn encrypting_reader<R: AsyncRead + Unpin>(
        &self,
        inner: R,
        associated_data: &[u8],
    ) -> Result<EncryptingReader<R>, StreamingError> {
        Ok(EncryptingReader::new(
            inner,
            self.encryptor(associated_data)?,
        ))
    }

    /// An `AsyncRead` of the plaintext of the ciphertext `inner` reads.
    pub fn decrypting_reader<R: AsyncRead + Unpin>(
        &self,
        inner: R,
        associated_data: &[u8],
    ) -> DecryptingReader<R> {
        DecryptingReader::new(inner, self.decryptor(associated_data))
    }

    /// Opens a ciphertext for random access: reads its header (one
    /// `read_range` of at most 40 bytes) and returns a reader that
    /// decrypts any plaintext range.
    ///
    /// # Errors
    /// `InvalidData` wrapping [`StreamingError::InvalidHeader`],
    /// [`StreamingError::Truncated`] or
    /// [`StreamingError::InvalidCiphertextSize`]; the source's errors.
    pub async fn open_ranged<S: RangedRead>(
        &self,
        source: S,
        associated_data: &[u8],
    ) -> std::io::Result<RandomAccessReader<S>> {
        RandomAccessReader::open(&self.keys, source, associated_data).await
    }
}

#[cfg(test)]
mod tests;
