//! Blocking streaming between `std::io` readers and writers, zero-copy:
//! the input is read straight into the stream's segment buffer, sealed or
//! opened there, and written out from there. Memory stays at one segment
//! (and a 64 KiB look-ahead when encrypting) whatever the input's size.
//!
//! For tokio, see [`EncryptingWriter`](super::EncryptingWriter),
//! [`EncryptingReader`](super::EncryptingReader) and
//! [`DecryptingReader`](super::DecryptingReader); these functions suit a
//! blocking thread (`spawn_blocking`, a CLI, a batch job).

use std::io::{self, Read, Write};

use zeroize::Zeroizing;

use super::{StreamDecryptor, StreamEncryptor, StreamingError};

/// How much input encryption reads past a full segment, to learn whether
/// that segment is the last (Tink's format flags it in the nonce); the
/// rest of the input is read straight into the segment buffer.
const PEEK_CHUNK: usize = 64 * 1024;

/// Where a copy is, when it asks its caller whether to go on (see
/// [`KeysetStreamingAead::encrypt_copy_with`](super::KeysetStreamingAead::encrypt_copy_with)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Checkpoint {
    /// Before reading the next chunk of input: a segment's worth, or up
    /// to 64 KiB when encrypting with smaller segments.
    Chunk,
    /// The input ended (a read returned 0 bytes), before the last segment
    /// is sealed or opened. A caller reading a pipe that Ctrl-C may have
    /// cut short can wait here for the signal before the end counts.
    InputEnd,
}

/// Why a blocking streaming copy failed.
///
/// When decrypting, the writer has received the plaintext of every segment
/// that authenticated before the failure: discard the output on error (for
/// a file, write to a temporary file and rename it into place on
/// success).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// Reading the input failed.
    #[error("cannot read the input: {0}")]
    Read(#[source] io::Error),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Write(#[source] io::Error),
    /// The stream itself failed: a ciphertext that does not authenticate,
    /// is truncated or is not of this keyset; a plaintext too long for the
    /// format; the random number generator.
    #[error(transparent)]
    Streaming(#[from] StreamingError),
    /// The caller's checkpoint function asked to stop.
    #[error("the copy was stopped by its caller")]
    Stopped,
}

/// Reads into `buf` until it is full or the input ends; returns how many
/// bytes were read (fewer than `buf.len()` only at the end). Retries
/// reads interrupted by a signal.
///
/// # Errors
/// The reader's first error other than `Interrupted`.
pub fn read_full(r: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn check(control: &mut dyn FnMut(Checkpoint) -> bool, at: Checkpoint) -> Result<(), CopyError> {
    if control(at) {
        Ok(())
    } else {
        Err(CopyError::Stopped)
    }
}

/// Encrypts everything `reader` yields with `enc` into `writer`, then
/// flushes it. Returns the plaintext's length.
pub(super) fn encrypt(
    mut enc: StreamEncryptor,
    reader: &mut (impl Read + ?Sized),
    writer: &mut (impl Write + ?Sized),
    control: &mut dyn FnMut(Checkpoint) -> bool,
) -> Result<u64, CopyError> {
    let mut total = 0u64;
    // A full segment is sealed only once more input shows it is not the
    // last: the first bytes of the next one are read here.
    let mut peek = Zeroizing::new(vec![0u8; PEEK_CHUNK]);
    loop {
        check(control, Checkpoint::Chunk)?;
        drain(&mut enc, writer)?;
        let room = enc.input_buffer();
        let (n, wanted) = if room.is_empty() {
            let n = read_full(reader, &mut peek).map_err(CopyError::Read)?;
            let mut rest = &peek[..n];
            while !rest.is_empty() {
                let taken = enc.write(rest)?;
                rest = &rest[taken..];
                drain(&mut enc, writer)?;
            }
            (n, peek.len())
        } else {
            let wanted = room.len();
            let n = read_full(reader, room).map_err(CopyError::Read)?;
            enc.commit(n);
            (n, wanted)
        };
        total += n as u64;
        if n < wanted {
            break;
        }
    }
    check(control, Checkpoint::InputEnd)?;
    enc.finish();
    while !enc.is_done() {
        drain(&mut enc, writer)?;
    }
    writer.flush().map_err(CopyError::Write)?;
    Ok(total)
}

/// Writes the ciphertext `enc` has ready (a sealed segment, in its own
/// buffer) to `writer`.
fn drain(enc: &mut StreamEncryptor, writer: &mut (impl Write + ?Sized)) -> Result<(), CopyError> {
    let out = enc.output();
    if !out.is_empty() {
        writer.write_all(out).map_err(CopyError::Write)?;
        let n = out.len();
        enc.consume(n);
    }
    Ok(())
}

/// Decrypts the ciphertext `reader` yields with `dec` into `writer`, a
/// segment at a time, each written once it authenticated; then flushes
/// `writer`. Returns the plaintext's length.
pub(super) fn decrypt(
    mut dec: StreamDecryptor,
    reader: &mut (impl Read + ?Sized),
    writer: &mut (impl Write + ?Sized),
    control: &mut dyn FnMut(Checkpoint) -> bool,
) -> Result<u64, CopyError> {
    let mut total = 0u64;
    let mut ended = false;
    loop {
        let plain = dec.plaintext();
        if !plain.is_empty() {
            writer.write_all(plain).map_err(CopyError::Write)?;
            let n = plain.len();
            total += n as u64;
            dec.consume(n)?;
            continue;
        }
        if dec.is_done() {
            break;
        }
        if ended {
            // After the end, every step yields plaintext, an error or the
            // end; this guards against a stuck state.
            return Err(StreamingError::Truncated.into());
        }
        check(control, Checkpoint::Chunk)?;
        let room = dec.input_buffer();
        if room.is_empty() {
            // Only after the last segment: anything more is an error that
            // the end reports.
            ended = true;
            dec.finish()?;
            continue;
        }
        let wanted = room.len();
        let n = read_full(reader, room).map_err(CopyError::Read)?;
        dec.commit(n)?;
        if n < wanted {
            check(control, Checkpoint::InputEnd)?;
            ended = true;
            dec.finish()?;
        }
    }
    writer.flush().map_err(CopyError::Write)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read, Write};

    use super::super::tests::{Rng, sizes, small_keysets};
    use super::super::{KeysetStreamingAead, StreamingError};
    use super::{Checkpoint, CopyError};
    use crate::keyset::Keyset;
    use crate::templates;

    /// A reader that returns short reads of random sizes and, now and
    /// then, `Interrupted` (which must be retried).
    struct Chunky<'a> {
        data: &'a [u8],
        rng: Rng,
    }

    impl Read for Chunky<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.rng.below(7) == 0 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(self.data.len()).min(1 + self.rng.below(5000));
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// A writer that takes `room` bytes, then fails.
    struct Failing {
        room: usize,
        got: Vec<u8>,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The small-segment keysets (the 64 KiB look-ahead spans many of
    /// their segments) and 4 KiB ones (several reads per segment).
    fn keysets() -> Vec<(String, KeysetStreamingAead)> {
        let mut out: Vec<(String, KeysetStreamingAead)> = small_keysets()
            .into_iter()
            .map(|(n, s)| (n.to_owned(), s))
            .collect();
        for name in ["AES128_GCM_HKDF_4KB", "AES256_CTR_HMAC_SHA256_4KB"] {
            let ks = Keyset::generate(&templates::by_name(name).unwrap()).unwrap();
            out.push((name.to_owned(), ks.streaming_aead().unwrap()));
        }
        out
    }

    #[test]
    fn copies_round_trip_through_short_and_interrupted_reads() {
        let mut rng = Rng(0x00c0_ffee);
        for (name, s) in keysets() {
            let l = s.layout();
            let mut all = sizes(l);
            // Around the look-ahead's size, and several of them.
            all.extend([
                super::PEEK_CHUNK - 1,
                super::PEEK_CHUNK,
                3 * super::PEEK_CHUNK + 5,
            ]);
            for size in all {
                let pt = rng.bytes(size);
                let mut ct = Vec::new();
                let mut reader = Chunky {
                    data: &pt,
                    rng: Rng(rng.next() | 1),
                };
                let n = s.encrypt_copy(b"ad", &mut reader, &mut ct).expect(&name);
                assert_eq!(n, size as u64, "{name} {size}");
                assert_eq!(ct.len() as u64, l.ciphertext_size(size as u64).unwrap());
                assert_eq!(s.decrypt(&ct, b"ad").expect(&name), pt, "{name} {size}");

                let other = s.encrypt(&pt, b"ad").unwrap();
                let mut back = Vec::new();
                let mut reader = Chunky {
                    data: &other,
                    rng: Rng(rng.next() | 1),
                };
                let n = s.decrypt_copy(b"ad", &mut reader, &mut back).expect(&name);
                assert_eq!(n, size as u64);
                assert_eq!(back, pt, "{name} {size}");
            }
        }
    }

    #[test]
    fn decrypt_copy_writes_only_segments_that_authenticated() {
        let mut rng = Rng(7);
        for (name, s) in keysets() {
            let l = s.layout();
            let size = (l.first_plaintext_segment_size() + 4 * l.plaintext_segment_size()) as usize;
            let pt = rng.bytes(size);
            let ct = s.encrypt(&pt, b"ad").unwrap();
            let seg = |i: u64| l.segment_ciphertext_range(i, ct.len() as u64).unwrap();
            let genuine = |i: u64| &pt[..l.segment_plaintext_range(i).start as usize];

            // Segment 3 altered: segments 0..3 are written, nothing after.
            let mut bad = ct.clone();
            bad[seg(3).start as usize + 1] ^= 0x20;
            let mut out = Vec::new();
            let e = s.decrypt_copy(b"ad", &mut &bad[..], &mut out).unwrap_err();
            assert!(
                matches!(
                    e,
                    CopyError::Streaming(StreamingError::SegmentAuthentication { segment: 3 })
                ),
                "{name}: {e:?}"
            );
            assert_eq!(out, genuine(3), "{name}");

            // Cut after segment 2: that segment was not sealed as the last.
            let mut out = Vec::new();
            let e = s
                .decrypt_copy(b"ad", &mut &ct[..seg(2).end as usize], &mut out)
                .unwrap_err();
            assert!(
                matches!(
                    e,
                    CopyError::Streaming(StreamingError::SegmentAuthentication { segment: 2 })
                ),
                "{name}: {e:?}"
            );
            assert_eq!(out, genuine(2), "{name}");

            // Extended by one byte.
            let mut longer = ct.clone();
            longer.push(0);
            let mut out = Vec::new();
            assert!(s.decrypt_copy(b"ad", &mut &longer[..], &mut out).is_err());
            assert!(out.len() < pt.len() && pt.starts_with(&out), "{name}");

            // Other associated data: nothing at all.
            let mut out = Vec::new();
            let e = s.decrypt_copy(b"AD", &mut &ct[..], &mut out).unwrap_err();
            assert!(
                matches!(e, CopyError::Streaming(StreamingError::Authentication)),
                "{name}: {e:?}"
            );
            assert!(out.is_empty());
        }
    }

    #[test]
    fn checkpoints_are_offered_and_a_stop_is_obeyed() {
        let keysets = keysets();
        let (name, s) = keysets.last().unwrap();
        let l = s.layout();
        // Encryption reads up to PEEK_CHUNK at a time once the first
        // segment is full; decryption reads a segment at a time: several
        // chunks either way.
        let pt = vec![
            9u8;
            3 * super::PEEK_CHUNK
                + (l.first_plaintext_segment_size() + 10 * l.plaintext_segment_size())
                    as usize
        ];
        let ct = s.encrypt(&pt, b"").unwrap();

        for encrypt in [true, false] {
            let input = if encrypt { &pt } else { &ct };
            let copy = |go_on: &mut dyn FnMut(Checkpoint) -> bool, out: &mut Vec<u8>| {
                if encrypt {
                    s.encrypt_copy_with(b"", &mut &input[..], out, go_on)
                } else {
                    s.decrypt_copy_with(b"", &mut &input[..], out, go_on)
                }
            };
            // Unstopped: several chunks, the end exactly once, last.
            let mut seen = Vec::new();
            let mut out = Vec::new();
            copy(
                &mut |c| {
                    seen.push(c);
                    true
                },
                &mut out,
            )
            .unwrap();
            let chunks = seen.iter().filter(|c| **c == Checkpoint::Chunk).count();
            assert!(chunks >= 3, "{name} encrypt={encrypt}: {chunks} chunks");
            assert_eq!(
                seen.iter().filter(|c| **c == Checkpoint::InputEnd).count(),
                1
            );
            assert_eq!(out.len(), if encrypt { ct.len() } else { pt.len() });

            // Stopped at the third chunk, or at the end: the output is
            // incomplete and the error says it was stopped.
            for stop_at in [(Checkpoint::Chunk, 3), (Checkpoint::InputEnd, 1)] {
                let mut count = 0;
                let mut out = Vec::new();
                let e = copy(
                    &mut |c| {
                        if c == stop_at.0 {
                            count += 1;
                        }
                        !(c == stop_at.0 && count == stop_at.1)
                    },
                    &mut out,
                )
                .unwrap_err();
                assert!(matches!(e, CopyError::Stopped), "{e:?}");
                let full = if encrypt { ct.len() } else { pt.len() };
                assert!(out.len() < full, "{name} encrypt={encrypt} {stop_at:?}");
            }
        }
    }

    #[test]
    fn read_and_write_errors_are_told_apart() {
        let keysets = keysets();
        let (_, s) = keysets.last().unwrap();
        let pt = vec![1u8; 20_000];
        let ct = s.encrypt(&pt, b"").unwrap();

        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::PermissionDenied, "gone"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(0);
                self.0 -= n;
                Ok(n)
            }
        }
        let e = s
            .encrypt_copy(b"", &mut Broken(10_000), &mut Vec::new())
            .unwrap_err();
        assert!(
            matches!(&e, CopyError::Read(io) if io.kind() == io::ErrorKind::PermissionDenied),
            "{e:?}"
        );
        let e = s
            .decrypt_copy(b"", &mut Broken(100), &mut Vec::new())
            .unwrap_err();
        assert!(matches!(&e, CopyError::Read(_)), "{e:?}");

        let mut w = Failing {
            room: 5000,
            got: Vec::new(),
        };
        let e = s.encrypt_copy(b"", &mut &pt[..], &mut w).unwrap_err();
        assert!(matches!(&e, CopyError::Write(_)), "{e:?}");
        assert_eq!(e.to_string(), "cannot write the output: disk full");
        let mut w = Failing {
            room: 5000,
            got: Vec::new(),
        };
        let e = s.decrypt_copy(b"", &mut &ct[..], &mut w).unwrap_err();
        assert!(matches!(&e, CopyError::Write(_)), "{e:?}");
        assert!(pt.starts_with(&w.got));
    }
}
