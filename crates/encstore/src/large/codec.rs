//! The streaming operations a [`pump`](super::pump) runs: encryption,
//! decryption and re-encryption of a large object's Tink streaming
//! ciphertext, segment by segment in buffers of their own.
//!
//! Each segment is gathered once into a buffer from the store's
//! [`BufferPool`], sealed or opened there in place ([`SegmentEncryptor`],
//! [`SegmentDecryptor`]), and handed on as that buffer (a [`Bytes`] that
//! returns it to the pool when dropped; no copy out). A codec holds at
//! most one segment being gathered; plaintext left in it when the codec is
//! dropped (an error, a cancelled stream) is wiped, and a rewrap wipes each
//! segment's plaintext once it is re-encrypted.

use std::sync::Arc;

use bytes::Bytes;
use encstore_core::Result;
use encstore_tink::KeysetStreamingAead;
use encstore_tink::streaming::{SegmentDecryptor, SegmentEncryptor, StreamingError};
use zeroize::Zeroize;

use super::{auth_error, encrypt_error};
use crate::buffers::BufferPool;
use crate::encrypted::EncryptedStorage;

/// One streaming operation, fed in batches.
pub(crate) trait Codec: Send + 'static {
    /// Takes `input`, appending the output it completes to `out`.
    fn update(&mut self, input: &[u8], out: &mut Vec<Bytes>) -> Result<()>;
    /// Ends the input, appending the rest of the output to `out`.
    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<()>;
}

/// Which object a codec works on (for its errors and metrics), and the
/// store's buffers.
pub(crate) struct Target {
    pub(crate) store: EncryptedStorage,
    pub(crate) key: String,
    pub(crate) key_id: u32,
    pub(crate) pool: Arc<BufferPool>,
}

/// One segment being gathered: `buf[..filled]`.
struct Segment {
    buf: Vec<u8>,
    filled: usize,
}

impl Segment {
    fn new(pool: &BufferPool, len: usize) -> Segment {
        Segment {
            buf: pool.take(len),
            filled: 0,
        }
    }

    /// Copies as much of `input` as fits below `full` bytes; returns the
    /// rest of `input`.
    fn fill<'a>(&mut self, input: &'a [u8], full: usize) -> &'a [u8] {
        let n = full.saturating_sub(self.filled).min(input.len());
        self.buf[self.filled..self.filled + n].copy_from_slice(&input[..n]);
        self.filled += n;
        &input[n..]
    }

    /// Hands the first `len` bytes on (the buffer goes with them, back to
    /// the pool when they are dropped) and starts over in a buffer of
    /// `next` bytes.
    fn hand_on(&mut self, pool: &Arc<BufferPool>, len: usize, next: usize) -> Bytes {
        // After the last segment no buffer is needed (and none is taken
        // from the pool).
        let fresh = if next == 0 {
            Vec::new()
        } else {
            pool.take(next)
        };
        let buf = std::mem::replace(&mut self.buf, fresh);
        self.filled = 0;
        BufferPool::freeze(pool, buf, len)
    }

    /// Wipes the first `len` bytes and starts over (in a buffer of at least
    /// `next` bytes).
    fn wipe_and_reuse(&mut self, pool: &Arc<BufferPool>, len: usize, next: usize) {
        self.buf[..len].zeroize();
        self.filled = 0;
        if self.buf.len() < next {
            let old = std::mem::replace(&mut self.buf, pool.take(next));
            drop(BufferPool::freeze(pool, old, 0));
        }
    }
}

impl Drop for Segment {
    /// A segment not sealed yet, or one whose open failed, may hold
    /// plaintext.
    fn drop(&mut self) {
        self.buf[..self.filled].zeroize();
    }
}

/// Encrypts a plaintext stream under the streaming primary: the header,
/// then each segment sealed in the buffer its plaintext was gathered in.
pub(crate) struct EncryptCodec {
    enc: SegmentEncryptor,
    /// The header, until it is output.
    header: Option<Bytes>,
    /// The plaintext of the current segment (room for its tag).
    segment: Segment,
    target: Target,
}

impl EncryptCodec {
    pub(crate) fn new(enc: SegmentEncryptor, target: Target) -> Self {
        let header = Some(Bytes::copy_from_slice(enc.header()));
        let segment = Segment::new(&target.pool, Self::room(&enc));
        EncryptCodec {
            enc,
            header,
            segment,
            target,
        }
    }

    /// The bytes the next segment takes: its plaintext and its tag.
    fn room(enc: &SegmentEncryptor) -> usize {
        enc.segment_plaintext_size() + enc.layout().tag_size() as usize
    }

    /// Seals the current segment and outputs it.
    fn seal(&mut self, last: bool, out: &mut Vec<Bytes>) -> Result<()> {
        let n = self.segment.filled;
        let tag = match self
            .enc
            .seal_segment_detached(&mut self.segment.buf[..n], last)
        {
            Ok(tag) => tag,
            Err(e) => return Err(encrypt_error(&self.target.store, &self.target.key, e)),
        };
        let tag = tag.as_ref();
        self.segment.buf[n..n + tag.len()].copy_from_slice(tag);
        let next = if last { 0 } else { Self::room(&self.enc) };
        out.push(self.segment.hand_on(&self.target.pool, n + tag.len(), next));
        Ok(())
    }
}

impl Codec for EncryptCodec {
    fn update(&mut self, mut input: &[u8], out: &mut Vec<Bytes>) -> Result<()> {
        out.extend(self.header.take());
        while !input.is_empty() {
            let full = self.enc.segment_plaintext_size();
            if self.segment.filled == full {
                // More plaintext follows: this segment is not the last.
                self.seal(false, out)?;
                continue;
            }
            input = self.segment.fill(input, full);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<()> {
        out.extend(self.header.take());
        self.seal(true, out)?;
        self.target.store.metrics().encrypted(self.target.key_id);
        tracing::trace!(key_id = self.target.key_id, "encrypted a large object");
        Ok(())
    }
}

/// Decrypts a streaming ciphertext (after its prefix): each segment is
/// gathered and opened in place, and its plaintext is used only once it
/// authenticated; the last segment with the last-segment flag when the
/// input ends.
pub(crate) struct DecryptCodec {
    /// The key named by the object's prefix.
    aead: Arc<KeysetStreamingAead>,
    associated_data: Vec<u8>,
    /// The header being gathered, until the decryptor is made from it.
    header: Vec<u8>,
    dec: Option<SegmentDecryptor>,
    /// The ciphertext of the current segment.
    segment: Segment,
    target: Target,
}

/// What to do with each segment's authenticated plaintext: the codec and
/// the plaintext's length (in `codec.segment.buf`), and whether it is the
/// last segment.
type Opened<'a> = dyn FnMut(&mut DecryptCodec, usize, bool) -> Result<()> + 'a;

impl DecryptCodec {
    pub(crate) fn new(
        aead: Arc<KeysetStreamingAead>,
        associated_data: Vec<u8>,
        target: Target,
    ) -> Self {
        let header = Vec::with_capacity(aead.layout().header_len() as usize);
        DecryptCodec {
            aead,
            associated_data,
            header,
            dec: None,
            segment: Segment {
                buf: Vec::new(),
                filled: 0,
            },
            target,
        }
    }

    fn error(&self, e: &StreamingError) -> encstore_core::Error {
        auth_error(&self.target.store, &self.target.key, e)
    }

    /// The size of the next segment's buffer.
    fn next_len(&self, last: bool) -> usize {
        match &self.dec {
            Some(dec) if !last => dec.segment_ciphertext_size(),
            _ => 0,
        }
    }

    /// Opens the current segment in place and gives its plaintext to
    /// `opened`.
    fn open(&mut self, last: bool, opened: &mut Opened<'_>) -> Result<()> {
        let Some(dec) = self.dec.as_mut() else {
            // The input ended inside the header.
            return Err(self.error(&StreamingError::Truncated));
        };
        let filled = self.segment.filled;
        match dec.open_segment_in_place(&mut self.segment.buf[..filled], last) {
            Ok(n) => opened(self, n, last),
            Err(e) => Err(self.error(&e)),
        }
    }

    /// Decrypts ciphertext; each segment it completes goes to `opened`.
    fn feed(&mut self, mut input: &[u8], opened: &mut Opened<'_>) -> Result<()> {
        while !input.is_empty() {
            let Some(dec) = &self.dec else {
                let want = self.aead.layout().header_len() as usize - self.header.len();
                let n = want.min(input.len());
                self.header.extend_from_slice(&input[..n]);
                input = &input[n..];
                if n == want {
                    let dec = self
                        .aead
                        .segment_decryptor(&self.header, &self.associated_data)
                        .map_err(|e| self.error(&e))?;
                    self.segment = Segment::new(&self.target.pool, dec.segment_ciphertext_size());
                    self.dec = Some(dec);
                }
                continue;
            };
            let full = dec.segment_ciphertext_size();
            if self.segment.filled == full {
                // More ciphertext follows: this segment is not the last.
                self.open(false, opened)?;
                continue;
            }
            input = self.segment.fill(input, full);
        }
        Ok(())
    }

    /// Ends the ciphertext: opens the last segment.
    fn end(&mut self, opened: &mut Opened<'_>) -> Result<()> {
        self.open(true, opened)?;
        self.target.store.metrics().decrypted(self.target.key_id);
        tracing::trace!(key_id = self.target.key_id, "decrypted a large object");
        Ok(())
    }

    /// Outputs the segment's plaintext (its buffer with it).
    fn output(&mut self, n: usize, last: bool, out: &mut Vec<Bytes>) {
        let next = self.next_len(last);
        out.push(self.segment.hand_on(&self.target.pool, n, next));
    }
}

impl Codec for DecryptCodec {
    fn update(&mut self, input: &[u8], out: &mut Vec<Bytes>) -> Result<()> {
        self.feed(input, &mut |d, n, last| {
            d.output(n, last, out);
            Ok(())
        })
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<()> {
        self.end(&mut |d, n, last| {
            d.output(n, last, out);
            Ok(())
        })
    }
}

/// Re-encrypts a streaming ciphertext under another key (a rewrap): each
/// authenticated segment's plaintext goes straight from the decryptor's
/// buffer into the encryptor, and is wiped there. The new ciphertext's
/// last segment is sealed only after the old one's last segment
/// authenticated.
pub(crate) struct ReencryptCodec {
    dec: DecryptCodec,
    enc: EncryptCodec,
}

impl ReencryptCodec {
    pub(crate) fn new(dec: DecryptCodec, enc: EncryptCodec) -> Self {
        ReencryptCodec { dec, enc }
    }
}

/// Encrypts the plaintext `d` opened, then wipes it.
fn forward(
    enc: &mut EncryptCodec,
    d: &mut DecryptCodec,
    n: usize,
    last: bool,
    out: &mut Vec<Bytes>,
) -> Result<()> {
    let r = enc.update(&d.segment.buf[..n], out);
    let next = d.next_len(last);
    d.segment.wipe_and_reuse(&d.target.pool, n, next);
    r
}

impl Codec for ReencryptCodec {
    fn update(&mut self, input: &[u8], out: &mut Vec<Bytes>) -> Result<()> {
        let ReencryptCodec { dec, enc } = self;
        dec.feed(input, &mut |d, n, last| forward(enc, d, n, last, out))
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<()> {
        let ReencryptCodec { dec, enc } = self;
        dec.end(&mut |d, n, last| forward(enc, d, n, last, out))?;
        enc.finish(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Policy, ReloadableKeyset};
    use encstore_core::MemoryStorage;
    use encstore_tink::Keyset;
    use encstore_tink::templates::by_name;

    /// A store, a streaming AEAD of `AES128_GCM_HKDF_4KB` (4096-byte
    /// segments) and a pool.
    fn setup() -> (EncryptedStorage, Arc<KeysetStreamingAead>, Arc<BufferPool>) {
        let aead = Keyset::generate(&by_name("AES128_GCM").unwrap()).unwrap();
        let streaming = Keyset::generate(&by_name("AES128_GCM_HKDF_4KB").unwrap()).unwrap();
        let s = Arc::new(streaming.streaming_aead().unwrap());
        let keys = Arc::new(
            ReloadableKeyset::new_with_streaming(&aead, &streaming, Policy::default()).unwrap(),
        );
        let store = EncryptedStorage::new(Arc::new(MemoryStorage::new()), keys);
        (store, s, Arc::default())
    }

    fn target(store: &EncryptedStorage, pool: &Arc<BufferPool>) -> Target {
        Target {
            store: store.clone(),
            key: "k".into(),
            key_id: 1,
            pool: Arc::clone(pool),
        }
    }

    /// Runs `codec` over `input` in `chunk`-byte pieces, dropping each
    /// output piece once it is copied (as a backend or reader does).
    fn run(codec: &mut dyn Codec, input: &[u8], chunk: usize) -> Result<Vec<u8>> {
        let mut all = Vec::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            codec.update(piece, &mut out)?;
            for b in out.drain(..) {
                all.extend_from_slice(&b);
            }
        }
        codec.finish(&mut out)?;
        for b in out.drain(..) {
            all.extend_from_slice(&b);
        }
        Ok(all)
    }

    #[test]
    fn segments_round_trip_through_pooled_buffers_as_tinks_format() {
        let (store, s, pool) = setup();
        let ad = b"k";
        // 4096-byte segments: the first holds 4096 - 24 - 16 plaintext
        // bytes, the others 4080.
        for size in [
            0usize,
            1,
            4055,
            4056,
            4057,
            4056 + 4080,
            4056 + 4080 + 1,
            20_000,
        ] {
            let plaintext: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            for chunk in [1usize, 1000, 4096, 1 << 20] {
                let mut enc =
                    EncryptCodec::new(s.segment_encryptor(ad).unwrap(), target(&store, &pool));
                let ct = run(&mut enc, &plaintext, chunk).unwrap();
                assert_eq!(
                    ct.len() as u64,
                    s.layout().ciphertext_size(size as u64).unwrap()
                );
                // Tink's format: the whole-stream decryption reads it.
                assert_eq!(
                    s.decrypt(&ct, ad).unwrap(),
                    plaintext,
                    "size {size} chunk {chunk}"
                );
                let mut dec = DecryptCodec::new(s.clone(), ad.to_vec(), target(&store, &pool));
                assert_eq!(run(&mut dec, &ct, chunk).unwrap(), plaintext);
                // Re-encryption into another stream of the same key.
                let mut re = ReencryptCodec::new(
                    DecryptCodec::new(s.clone(), ad.to_vec(), target(&store, &pool)),
                    EncryptCodec::new(s.segment_encryptor(ad).unwrap(), target(&store, &pool)),
                );
                let ct2 = run(&mut re, &ct, chunk).unwrap();
                assert_ne!(ct2, ct, "a fresh header and nonces");
                assert_eq!(s.decrypt(&ct2, ad).unwrap(), plaintext);
            }
        }
        // The pieces were dropped as they came: their buffers went back,
        // and the pool keeps a few.
        assert!(pool.idle() > 0);
        assert!(pool.idle() <= crate::buffers::MAX_POOLED_BYTES / 4096);
    }

    #[test]
    fn a_finished_stream_holds_no_buffer_of_the_pool() {
        let (store, s, pool) = setup();
        let plaintext = vec![5u8; 10_000];
        let mut enc = EncryptCodec::new(s.segment_encryptor(b"k").unwrap(), target(&store, &pool));
        let ct = run(&mut enc, &plaintext, 4096).unwrap();
        // The outputs went back to the pool as they were dropped; after the
        // last segment the codec took none of them for a next segment.
        assert!(pool.idle() > 0);
        assert_eq!(enc.segment.buf.capacity(), 0);
        let mut dec = DecryptCodec::new(s.clone(), b"k".to_vec(), target(&store, &pool));
        assert_eq!(run(&mut dec, &ct, 3000).unwrap(), plaintext);
        assert_eq!(dec.segment.buf.capacity(), 0);
    }

    #[test]
    fn damaged_streams_fail_and_release_nothing_unauthenticated() {
        let (store, s, pool) = setup();
        let ad = b"k";
        let plaintext = vec![9u8; 12_000];
        let ct = s.encrypt(&plaintext, ad).unwrap();
        let decrypt = |ct: &[u8], ad: &[u8]| {
            let mut dec = DecryptCodec::new(s.clone(), ad.to_vec(), target(&store, &pool));
            run(&mut dec, ct, 5000)
        };
        assert!(matches!(
            decrypt(&ct, b"other"),
            Err(encstore_core::Error::Authentication { .. })
        ));
        // Truncated at a segment boundary, extended, altered in the last
        // segment, cut inside the header, empty.
        let bad: Vec<Vec<u8>> = vec![
            ct[..4096].to_vec(),
            [&ct[..], b"x"].concat(),
            {
                let mut c = ct.clone();
                let n = c.len();
                c[n - 1] ^= 1;
                c
            },
            ct[..10].to_vec(),
            Vec::new(),
        ];
        for c in bad {
            assert!(
                matches!(
                    decrypt(&c, ad),
                    Err(encstore_core::Error::Authentication { .. })
                ),
                "{} bytes",
                c.len()
            );
        }
        // Only the segments before an altered one are output.
        let mut c = ct.clone();
        c[5000] ^= 1; // in the second segment
        let mut dec = DecryptCodec::new(s.clone(), ad.to_vec(), target(&store, &pool));
        let mut out = Vec::new();
        assert!(dec.update(&c, &mut out).is_err());
        let released: usize = out.iter().map(Bytes::len).sum();
        assert_eq!(released, 4096 - 24 - 16, "the first segment alone");
    }
}
