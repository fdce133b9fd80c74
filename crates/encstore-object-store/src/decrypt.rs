//! The plaintext stream of a whole-object `get`: the inner store's
//! ciphertext chunks are cut into segments, and each segment is decrypted
//! into the buffer that becomes the returned `Bytes`. A segment contiguous
//! in one chunk is opened out of place
//! ([`SegmentDecryptor::open_segment_to`]): under the `aws-lc-rs` (and
//! `fips`) provider AES-GCM decrypts straight from the inner store's shared
//! `Bytes` into that buffer, with no copy; under `ring`, which has no
//! out-of-place open, the segment is copied there once and opened in
//! place. A segment spread over chunks is gathered there by one copy and
//! opened in place. No copy into a decryptor's buffer, none out of it.
//! The buffers come from the store's [`BufferPool`] and return to it when
//! the caller drops the `Bytes`.

use std::sync::Arc;

use bytes::Bytes;
use encstore_tink::streaming::{SegmentDecryptor, SegmentLayout};
use futures_util::stream::{BoxStream, StreamExt};
use object_store::Result;
use object_store::path::Path;

use crate::read::auth_error;
use crate::store::offload;
use encstore::buffers::BufferPool;

/// Ciphertext decrypted per step: whole segments, at least one, up to
/// about this many bytes (small segments are batched so each returned
/// chunk is large; a 1 MiB segment is one step), so memory stays bounded
/// and the runtime is not held for long.
const PIECE: usize = 1 << 20;

/// The ciphertext of one segment, as slices of the inner store's chunks.
struct Segment {
    parts: Vec<Bytes>,
    last: bool,
}

struct State {
    dec: Option<SegmentDecryptor>,
    layout: SegmentLayout,
    input: BoxStream<'static, Result<Bytes>>,
    /// Input not yet cut into segments.
    pending: Bytes,
    /// Whether `input` ended.
    eof: bool,
    /// The index of the next segment to cut.
    next: u64,
    /// Whether the last segment was cut.
    cut_last: bool,
    path: Path,
    pool: Arc<BufferPool>,
}

impl State {
    /// The ciphertext size of the next segment when it is full.
    fn full(&self) -> usize {
        let s = self.layout.ciphertext_segment_size();
        let full = if self.next == 0 {
            s - self.layout.header_len()
        } else {
            s
        };
        full as usize
    }

    /// Makes `pending` non-empty unless the input ended.
    async fn fill(&mut self) -> Result<()> {
        while self.pending.is_empty() && !self.eof {
            match self.input.next().await {
                Some(chunk) => self.pending = chunk?,
                None => self.eof = true,
            }
        }
        Ok(())
    }

    /// Cuts the next segment's ciphertext from the input: a full segment,
    /// the last when the input ends within or right after it.
    async fn cut(&mut self) -> Result<Segment> {
        let mut want = self.full();
        let mut parts = Vec::new();
        while want > 0 {
            self.fill().await?;
            if self.pending.is_empty() {
                break;
            }
            let n = want.min(self.pending.len());
            parts.push(self.pending.split_to(n));
            want -= n;
        }
        // A full segment is the last when nothing follows it.
        self.fill().await?;
        let last = self.pending.is_empty();
        self.next += 1;
        self.cut_last = last;
        Ok(Segment { parts, last })
    }
}

/// The plaintext of the segments after a streaming ciphertext's header,
/// opened in order with `dec`: only authenticated segments are released,
/// and the end is checked (a truncated object fails at its end, an
/// extended or reordered one at its first altered segment).
pub(crate) fn decrypting_stream(
    dec: SegmentDecryptor,
    input: BoxStream<'static, Result<Bytes>>,
    path: Path,
    pool: Arc<BufferPool>,
) -> BoxStream<'static, Result<Bytes>> {
    let state = State {
        layout: dec.layout(),
        dec: Some(dec),
        input,
        pending: Bytes::new(),
        eof: false,
        next: 0,
        cut_last: false,
        path,
        pool,
    };
    futures_util::stream::try_unfold(state, |mut s| async move {
        loop {
            if s.cut_last {
                return Ok(None);
            }
            let mut segments = Vec::new();
            let mut total = 0;
            while !s.cut_last && (segments.is_empty() || total + s.full() <= PIECE) {
                let seg = s.cut().await?;
                total += seg.parts.iter().map(Bytes::len).sum::<usize>();
                segments.push(seg);
            }
            let Some(mut dec) = s.dec.take() else {
                return Ok(None);
            };
            let pool = s.pool.clone();
            let (dec, r) = offload(total, move || {
                // An initialized buffer (recycled, or zeroed by calloc)
                // that the plaintext is written straight into; `total`
                // ciphertext bytes bound the plaintext.
                let mut out = pool.take(total);
                let mut len = 0;
                let mut r = Ok(());
                for seg in segments {
                    let opened = if let [whole] = &seg.parts[..] {
                        // The segment is contiguous in one chunk: decrypted
                        // out of place, no copy under aws-lc-rs (ring
                        // copies it into `out` and opens it there).
                        dec.open_segment_to(whole, seg.last, &mut out[len..])
                    } else {
                        // Spread over chunks: gathered into `out`, opened
                        // in place.
                        let mut end = len;
                        for p in &seg.parts {
                            out[end..end + p.len()].copy_from_slice(p);
                            end += p.len();
                        }
                        dec.open_segment_in_place(&mut out[len..end], seg.last)
                    };
                    match opened {
                        Ok(n) => len += n,
                        Err(e) => {
                            r = Err(e);
                            break;
                        }
                    }
                }
                (dec, r.map(|()| BufferPool::freeze(&pool, out, len)))
            })
            .await?;
            s.dec = Some(dec);
            let out = r.map_err(|e| auth_error(&s.path, &e))?;
            if !out.is_empty() {
                return Ok(Some((out, s)));
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use encstore_tink::{Keyset, KeysetStreamingAead, templates};

    fn aead() -> KeysetStreamingAead {
        let ks = Keyset::generate(&templates::by_name("AES128_GCM_HKDF_4KB").expect("template"))
            .expect("keyset");
        ks.streaming_aead().expect("streaming")
    }

    /// The ciphertext after its header, as a stream of `chunk`-byte
    /// chunks, and the decrypting stream over it.
    fn stream(
        s: &KeysetStreamingAead,
        ct: &[u8],
        chunk: usize,
    ) -> BoxStream<'static, Result<Bytes>> {
        stream_with(s, ct, chunk, Arc::default())
    }

    /// As [`stream`], decrypting into buffers of `pool`.
    fn stream_with(
        s: &KeysetStreamingAead,
        ct: &[u8],
        chunk: usize,
        pool: Arc<BufferPool>,
    ) -> BoxStream<'static, Result<Bytes>> {
        let h = s.layout().header_len() as usize;
        let dec = s.segment_decryptor(&ct[..h], b"ad").expect("header");
        let chunks: Vec<Result<Bytes>> = ct[h..]
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        decrypting_stream(
            dec,
            futures_util::stream::iter(chunks).boxed(),
            Path::from("p"),
            pool,
        )
    }

    /// The chunks a stream yields, and its first error.
    async fn drain(mut st: BoxStream<'static, Result<Bytes>>) -> (Vec<Bytes>, Option<String>) {
        let mut out = Vec::new();
        while let Some(c) = st.next().await {
            match c {
                Ok(b) => out.push(b),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn decrypts_any_chunking_in_whole_segments() {
        let s = aead();
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
            first + 300 * p + 5,
        ] {
            let pt: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let ct = s.encrypt(&pt, b"ad").expect("encrypt");
            for chunk in [ct.len().max(1), 1000, 4096, 4097, 65_537] {
                let (chunks, err) = drain(stream(&s, &ct, chunk)).await;
                assert_eq!(err, None, "{size} {chunk}");
                assert_eq!(chunks.concat(), pt, "{size} {chunk}");
                // Whole segments per chunk, about a PIECE at most.
                // (Segment 0 holds the header's size less plaintext.)
                let mut released = l.header_len() as usize;
                for c in &chunks[..chunks.len().saturating_sub(1)] {
                    assert!(c.len() <= PIECE, "{size} {chunk}: {}", c.len());
                    released += c.len();
                    assert_eq!(released % p, 0, "{size} {chunk}: whole segments");
                }
            }
            if size > PIECE {
                let (chunks, _) = drain(stream(&s, &ct, ct.len())).await;
                assert!(chunks.len() >= 2, "batched up to a PIECE");
            }
        }
    }

    /// Buffers recycled through one pool carry only the new plaintext: a
    /// stream decrypted after a larger one (whose plaintext is still in
    /// the pooled buffers) yields exactly its own bytes, whole or failed.
    #[tokio::test]
    async fn recycled_buffers_expose_only_the_new_plaintext() {
        let s = aead();
        let pool: Arc<BufferPool> = Arc::default();
        let run = |ct: Vec<u8>, chunk: usize| stream_with(&s, &ct, chunk, pool.clone());
        let big: Vec<u8> = vec![0xEE; 3 * PIECE + 12_345];
        let ct = s.encrypt(&big, b"ad").expect("encrypt");
        let (chunks, err) = drain(run(ct, 1 << 20)).await;
        assert_eq!((chunks.concat(), err), (big, None));
        drop(chunks);
        assert!(pool.idle() > 0, "the dropped pieces went back to the pool");
        for size in [1, 5000, PIECE - 3, PIECE + 1, 2 * PIECE + 77] {
            // Never 0xEE, the stale pattern.
            let pt: Vec<u8> = (0..size).map(|i| (i % 200) as u8).collect();
            let ct = s.encrypt(&pt, b"ad").expect("encrypt");
            for chunk in [ct.len(), 4096] {
                let (chunks, err) = drain(run(ct.clone(), chunk)).await;
                assert_eq!(err, None, "{size} {chunk}");
                assert!(
                    !chunks.concat().contains(&0xEE),
                    "{size} {chunk}: stale bytes"
                );
                assert_eq!(chunks.concat(), pt, "{size} {chunk}");
            }
            let mut bad = ct.clone();
            let at = ct.len() - 1;
            bad[at] ^= 1;
            let (chunks, err) = drain(run(bad, ct.len())).await;
            assert!(err.is_some(), "{size}");
            assert!(
                pt.starts_with(&chunks.concat()),
                "{size}: genuine plaintext only"
            );
        }
    }

    /// Segments whole in one chunk are opened out of place (no copy under
    /// aws-lc-rs): an altered byte in any of them, ciphertext or tag, fails
    /// the stream and only genuine plaintext before it is released.
    #[tokio::test]
    async fn altered_segments_opened_out_of_place_fail() {
        let s = aead();
        let l = s.layout();
        let h = l.header_len() as usize;
        let seg = l.ciphertext_segment_size() as usize;
        let size = l.first_plaintext_segment_size() as usize
            + (PIECE / l.plaintext_segment_size() as usize + 40)
                * l.plaintext_segment_size() as usize
            + 7;
        let pt: Vec<u8> = (0..size).map(|i| (i % 249) as u8).collect();
        let ct = s.encrypt(&pt, b"ad").expect("encrypt");
        let (chunks, err) = drain(stream(&s, &ct, ct.len())).await;
        assert_eq!((chunks.concat(), err), (pt.clone(), None));
        for at in [h, seg + 100, seg * 2 - 1, seg * 290 + 5, ct.len() - 1] {
            let mut bad = ct.clone();
            bad[at] ^= 1;
            // One chunk (every segment whole: out of place), and chunks
            // that split every segment (gathered, opened in place).
            for chunk in [ct.len(), seg] {
                let (chunks, err) = drain(stream(&s, &bad, chunk)).await;
                assert!(err.expect("refused").contains("authenticat"), "{at}");
                let released = chunks.concat();
                assert!(pt.starts_with(&released), "{at}: genuine plaintext only");
                // Nothing from the altered segment or after it.
                let altered = at / seg;
                let before = l.segment_plaintext_range(altered as u64).start as usize;
                assert!(released.len() <= before, "{at}");
            }
        }
    }

    #[tokio::test]
    async fn truncated_extended_or_reordered_input_fails_after_genuine_segments_only() {
        let s = aead();
        let l = s.layout();
        let h = l.header_len() as usize;
        let seg = l.ciphertext_segment_size() as usize;
        let p = l.plaintext_segment_size() as usize;
        let size = l.first_plaintext_segment_size() as usize + 3 * p + 10;
        let pt: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let ct = s.encrypt(&pt, b"ad").expect("encrypt");
        assert_eq!(l.segment_count(ct.len() as u64), Ok(5));
        // Cut at the boundary before the last segment.
        let cut = &ct[..4 * seg];
        let (chunks, err) = drain(stream(&s, cut, 5000)).await;
        assert!(err.expect("refused").contains("authenticat"));
        let released = chunks.concat();
        assert!(released.len() < size - 10 && pt.starts_with(&released));
        // Cut to the header: no segment.
        let (chunks, err) = drain(stream(&s, &ct[..h], 5000)).await;
        assert!(err.is_some() && chunks.is_empty());
        // Extended by a segment.
        let extended = [&ct[..4 * seg], &ct[3 * seg..4 * seg], &ct[4 * seg..]].concat();
        let (chunks, err) = drain(stream(&s, &extended, 1 << 20)).await;
        assert!(err.is_some());
        assert!(pt.starts_with(&chunks.concat()));
        // Two segments swapped.
        let mut swapped = ct.clone();
        swapped[seg..2 * seg].copy_from_slice(&ct[2 * seg..3 * seg]);
        swapped[2 * seg..3 * seg].copy_from_slice(&ct[seg..2 * seg]);
        let (chunks, err) = drain(stream(&s, &swapped, 3000)).await;
        assert!(err.is_some());
        assert!(chunks.concat().len() <= l.first_plaintext_segment_size() as usize);
        // An error of the inner stream passes through.
        let dec = s.segment_decryptor(&ct[..h], b"ad").expect("header");
        let input = futures_util::stream::iter(vec![
            Ok(Bytes::copy_from_slice(&ct[h..100])),
            Err(object_store::Error::NotImplemented {
                operation: "test".into(),
                implementer: "test".into(),
            }),
        ])
        .boxed();
        let mut st = decrypting_stream(dec, input, Path::from("p"), Arc::default());
        let e = st
            .next()
            .await
            .expect("an item")
            .expect_err("the inner error");
        assert!(
            matches!(e, object_store::Error::NotImplemented { .. }),
            "{e}"
        );
        assert!(st.next().await.is_none(), "the stream ends after an error");
    }
}
