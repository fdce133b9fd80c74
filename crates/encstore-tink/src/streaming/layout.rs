//! Segment arithmetic of Tink's streaming ciphertexts: where each segment
//! lies in the plaintext and in the ciphertext, and how the two sizes
//! relate. Pure integer arithmetic, no key material, no I/O: the storage
//! layer uses it to fetch exactly the ciphertext bytes a plaintext range
//! needs.
//!
//! A ciphertext is `header ‖ segment 0 ‖ segment 1 ‖ … ‖ segment n-1`.
//! With header length `H`, ciphertext segment size `S` and tag size `T`
//! (plaintext segment size `P = S - T`):
//!
//! | | plaintext bytes | ciphertext bytes |
//! | --- | --- | --- |
//! | header | | `0 .. H` |
//! | segment 0 | `0 .. P-H` | `H .. S` |
//! | segment i ≥ 1 | `i·P-H .. (i+1)·P-H` | `i·S .. (i+1)·S` |
//!
//! Every segment but the last is full; the last holds the rest (possibly
//! nothing, for an empty plaintext) and carries the last-segment flag in
//! its nonce. A plaintext that exactly fills its last segment gets no
//! extra empty segment (Tink's encrypters seal a segment only once more
//! data follows). At most 2^32 - 1 segments (Tink Go's limit: the segment
//! number is a 32-bit nonce field).

use std::ops::Range;

use super::StreamingError;

/// The most segments a ciphertext may have: indices `0 ..= u32::MAX - 1`.
pub const MAX_SEGMENTS: u64 = u32::MAX as u64;

/// The segment geometry of one streaming key: header length, ciphertext
/// segment size and tag size. Copy it freely; it holds no key material.
///
/// Get it from a key ([`KeysetStreamingAead::layout`](super::KeysetStreamingAead::layout),
/// [`SegmentLayout::from_params`]) or build it with [`SegmentLayout::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentLayout {
    /// `H`: length byte, salt, nonce prefix.
    header_len: u64,
    /// `S`: size of every ciphertext segment but the last.
    segment_size: u64,
    /// `T`: bytes each segment adds (tag).
    tag_size: u64,
}

/// The segments and ciphertext bytes that cover a plaintext range (see
/// [`SegmentLayout::ciphertext_range`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CiphertextRange {
    /// The segment indices, `first .. last + 1`. Empty for an empty
    /// plaintext range.
    pub segments: Range<u64>,
    /// The ciphertext bytes of exactly those segments (without the header,
    /// `0 .. header_len`, which is fetched once per ciphertext; segment 0
    /// starts right after it, so a range from segment 0 can be fetched
    /// together with the header as `0 .. bytes.end`). Empty (`n .. n`) for
    /// an empty plaintext range.
    pub bytes: Range<u64>,
}

impl SegmentLayout {
    /// A layout from its three sizes, or `None` unless
    /// `segment_size > header_len + tag_size` and `tag_size > 0` (what
    /// Tink requires, so that the first segment holds plaintext).
    pub fn new(header_len: u64, ciphertext_segment_size: u64, tag_size: u64) -> Option<Self> {
        let min = header_len.checked_add(tag_size)?;
        if tag_size == 0 || header_len == 0 || ciphertext_segment_size <= min {
            return None;
        }
        Some(SegmentLayout {
            header_len,
            segment_size: ciphertext_segment_size,
            tag_size,
        })
    }

    /// The layout of a streaming key's parameters; `None` for an AEAD key.
    pub fn from_params(params: &crate::KeyParams) -> Option<Self> {
        use crate::KeyParams::*;
        let (derived, tag, segment) = match params {
            AesGcmHkdfStreaming {
                derived_key_size,
                ciphertext_segment_size,
                ..
            } => (*derived_key_size, 16, *ciphertext_segment_size),
            AesCtrHmacStreaming {
                derived_key_size,
                tag_size,
                ciphertext_segment_size,
                ..
            } => (*derived_key_size, *tag_size, *ciphertext_segment_size),
            _ => return None,
        };
        SegmentLayout::new(
            1 + derived as u64 + super::params::NONCE_PREFIX_SIZE as u64,
            segment as u64,
            tag as u64,
        )
    }

    /// Length of the ciphertext header (`1 + derived key size + 7`: 24 for
    /// 128-bit keys, 40 for 256-bit keys).
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Size of every ciphertext segment but the last (`S`).
    pub fn ciphertext_segment_size(&self) -> u64 {
        self.segment_size
    }

    /// Bytes each segment adds to its plaintext (`T`).
    pub fn tag_size(&self) -> u64 {
        self.tag_size
    }

    /// Plaintext bytes of every full segment but the first (`P = S - T`).
    pub fn plaintext_segment_size(&self) -> u64 {
        self.segment_size - self.tag_size
    }

    /// Plaintext bytes of a full first segment (`P - H`; the header takes
    /// the rest of its room).
    pub fn first_plaintext_segment_size(&self) -> u64 {
        self.plaintext_segment_size() - self.header_len
    }

    /// The exact size of the ciphertext of a `plaintext_size`-byte
    /// plaintext.
    ///
    /// # Errors
    /// [`StreamingError::TooLarge`] when it would need more than
    /// [`MAX_SEGMENTS`] segments.
    pub fn ciphertext_size(&self, plaintext_size: u64) -> Result<u64, StreamingError> {
        let p = self.plaintext_segment_size();
        // Counting the header as plaintext makes every segment P long.
        let total = plaintext_size
            .checked_add(self.header_len)
            .ok_or(StreamingError::TooLarge)?;
        let (full, rest) = (total / p, total % p);
        let segments = full + u64::from(rest > 0);
        if segments > MAX_SEGMENTS {
            return Err(StreamingError::TooLarge);
        }
        full.checked_mul(self.segment_size)
            .and_then(|n| {
                if rest > 0 {
                    n.checked_add(rest + self.tag_size)
                } else {
                    Some(n)
                }
            })
            .ok_or(StreamingError::TooLarge)
    }

    /// The number of segments of a valid `ciphertext_size`-byte ciphertext.
    ///
    /// # Errors
    /// [`StreamingError::InvalidCiphertextSize`] when no ciphertext of this
    /// layout has that size (see [`SegmentLayout::plaintext_size`]).
    pub fn segment_count(&self, ciphertext_size: u64) -> Result<u64, StreamingError> {
        let invalid = StreamingError::InvalidCiphertextSize {
            size: ciphertext_size,
        };
        let s = self.segment_size;
        let (full, rest) = (ciphertext_size / s, ciphertext_size % s);
        let segments = full + u64::from(rest > 0);
        // A partial last segment holds at least its tag; the whole holds
        // the header and one tag per segment.
        if (rest > 0 && rest < self.tag_size) || segments > MAX_SEGMENTS {
            return Err(invalid);
        }
        let overhead = segments * self.tag_size + self.header_len;
        if segments == 0 || ciphertext_size < overhead {
            return Err(invalid);
        }
        Ok(segments)
    }

    /// The plaintext size of a `ciphertext_size`-byte ciphertext.
    ///
    /// The size is not authenticated: a ciphertext cut at a segment
    /// boundary has a valid, smaller size. Decrypting its (then) last
    /// segment fails, because it was not sealed as the last one.
    ///
    /// Every size Tink's encrypters produce is accepted, and also a last
    /// segment holding only its tag after full segments (which Tink's
    /// decrypters accept too, though no encrypter writes one): for those,
    /// `ciphertext_size(plaintext_size(c)) != c`.
    ///
    /// # Errors
    /// [`StreamingError::InvalidCiphertextSize`] when no ciphertext has this
    /// size: shorter than the header and one tag, a last segment shorter
    /// than a tag, or more than [`MAX_SEGMENTS`] segments.
    pub fn plaintext_size(&self, ciphertext_size: u64) -> Result<u64, StreamingError> {
        let segments = self.segment_count(ciphertext_size)?;
        Ok(ciphertext_size - segments * self.tag_size - self.header_len)
    }

    /// The index of the segment holding plaintext byte `offset`.
    pub fn segment_of(&self, offset: u64) -> u64 {
        // (offset + H) / P, without overflow for offsets near u64::MAX.
        let p = self.plaintext_segment_size();
        let h = self.header_len;
        offset / p + (offset % p + h) / p
    }

    /// The plaintext bytes segment `index` holds when full (the last
    /// segment of a ciphertext may hold fewer). Saturates at `u64::MAX`.
    pub fn segment_plaintext_range(&self, index: u64) -> Range<u64> {
        let p = self.plaintext_segment_size();
        let end = |i: u64| {
            i.checked_add(1)
                .and_then(|n| n.checked_mul(p))
                .map_or(u64::MAX, |n| n - self.header_len)
        };
        let start = if index == 0 { 0 } else { end(index - 1) };
        start..end(index)
    }

    /// The ciphertext bytes of segment `index` in a ciphertext of
    /// `ciphertext_size` bytes (the last segment ends at the end).
    ///
    /// # Errors
    /// [`StreamingError::InvalidCiphertextSize`] for an impossible size,
    /// [`StreamingError::SegmentOutOfRange`] when the ciphertext has no
    /// segment `index`.
    pub fn segment_ciphertext_range(
        &self,
        index: u64,
        ciphertext_size: u64,
    ) -> Result<Range<u64>, StreamingError> {
        let segments = self.segment_count(ciphertext_size)?;
        if index >= segments {
            return Err(StreamingError::SegmentOutOfRange { index, segments });
        }
        Ok(self.segment_bytes(index, segments, ciphertext_size))
    }

    /// Segment `index`'s ciphertext bytes, for a valid size and index.
    fn segment_bytes(&self, index: u64, segments: u64, ciphertext_size: u64) -> Range<u64> {
        let start = if index == 0 {
            self.header_len
        } else {
            index * self.segment_size
        };
        let end = if index + 1 == segments {
            ciphertext_size
        } else {
            (index + 1) * self.segment_size
        };
        start..end
    }

    /// The segments and the ciphertext bytes that cover `plaintext` in a
    /// ciphertext of `ciphertext_size` bytes: decrypting exactly those
    /// segments (with the last-segment flag on the ciphertext's final
    /// segment) yields the range. The end of the range is clamped to the
    /// plaintext size.
    ///
    /// # Errors
    /// [`StreamingError::InvalidCiphertextSize`] for an impossible size;
    /// [`StreamingError::RangeOutOfBounds`] when the range is reversed or
    /// starts after the end of the plaintext.
    pub fn ciphertext_range(
        &self,
        plaintext: Range<u64>,
        ciphertext_size: u64,
    ) -> Result<CiphertextRange, StreamingError> {
        let segments = self.segment_count(ciphertext_size)?;
        let size = ciphertext_size - segments * self.tag_size - self.header_len;
        if plaintext.start > plaintext.end || plaintext.start > size {
            return Err(StreamingError::RangeOutOfBounds {
                start: plaintext.start,
                end: plaintext.end,
                size,
            });
        }
        let end = plaintext.end.min(size);
        if plaintext.start == end {
            let at = if end == size {
                ciphertext_size
            } else {
                self.segment_bytes(self.segment_of(end), segments, ciphertext_size)
                    .start
            };
            return Ok(CiphertextRange {
                segments: 0..0,
                bytes: at..at,
            });
        }
        let first = self.segment_of(plaintext.start);
        let last = self.segment_of(end - 1).min(segments - 1);
        Ok(CiphertextRange {
            segments: first..last + 1,
            bytes: self.segment_bytes(first, segments, ciphertext_size).start
                ..self.segment_bytes(last, segments, ciphertext_size).end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The segments a naive encrypter writes: (plaintext len, ciphertext
    /// len) of each segment, header counted in segment 0's ciphertext.
    fn naive(l: &SegmentLayout, pt: u64) -> Vec<(u64, u64)> {
        let mut segs = Vec::new();
        let mut left = pt;
        let mut cap = l.first_plaintext_segment_size();
        loop {
            // Seal a full segment only if more data follows.
            if left > cap {
                segs.push((cap, cap + l.tag_size()));
                left -= cap;
                cap = l.plaintext_segment_size();
            } else {
                segs.push((left, left + l.tag_size()));
                break;
            }
        }
        segs
    }

    fn layouts() -> Vec<SegmentLayout> {
        vec![
            SegmentLayout::new(24, 41, 16).expect("smallest"),
            SegmentLayout::new(24, 64, 16).expect("small"),
            SegmentLayout::new(40, 100, 32).expect("ctr"),
            SegmentLayout::new(40, 4096, 16).expect("4KB"),
            SegmentLayout::new(24, 1 << 20, 16).expect("1MB"),
        ]
    }

    #[test]
    fn new_refuses_impossible_layouts() {
        assert!(SegmentLayout::new(24, 40, 16).is_none());
        assert!(SegmentLayout::new(24, 41, 16).is_some());
        assert!(SegmentLayout::new(24, 41, 0).is_none());
        assert!(SegmentLayout::new(0, 41, 16).is_none());
        assert!(SegmentLayout::new(u64::MAX, 41, 16).is_none());
    }

    /// Sizes, segment counts and per-segment ranges agree with a naive
    /// model of Tink's encrypter, for every plaintext size up to several
    /// segments.
    #[test]
    fn sizes_match_a_naive_encrypter() {
        for l in layouts() {
            let max = (l.ciphertext_segment_size() * 4).min(20_000);
            for pt in 0..max {
                let segs = naive(&l, pt);
                let ct: u64 = l.header_len() + segs.iter().map(|s| s.1).sum::<u64>();
                assert_eq!(l.ciphertext_size(pt).unwrap(), ct, "{l:?} pt {pt}");
                assert_eq!(l.plaintext_size(ct).unwrap(), pt, "{l:?} ct {ct}");
                assert_eq!(l.segment_count(ct).unwrap(), segs.len() as u64);
                let (mut p0, mut c0) = (0u64, l.header_len());
                for (i, (plen, clen)) in segs.iter().enumerate() {
                    let i = i as u64;
                    let cr = l.segment_ciphertext_range(i, ct).unwrap();
                    assert_eq!(cr, c0..c0 + clen, "{l:?} pt {pt} seg {i}");
                    let pr = l.segment_plaintext_range(i);
                    assert_eq!(pr.start, p0);
                    assert!(pr.end >= p0 + plen);
                    if *plen > 0 {
                        assert_eq!(l.segment_of(p0), i);
                        assert_eq!(l.segment_of(p0 + plen - 1), i);
                    }
                    p0 += plen;
                    c0 += clen;
                }
                assert!(matches!(
                    l.segment_ciphertext_range(segs.len() as u64, ct),
                    Err(StreamingError::SegmentOutOfRange { .. })
                ));
            }
        }
    }

    /// Every ciphertext size is either the size of exactly the plaintext
    /// `plaintext_size` says (or a last segment of only a tag), or refused.
    #[test]
    fn impossible_sizes_are_refused() {
        for l in layouts() {
            let max = (l.ciphertext_segment_size() * 4).min(20_000);
            for ct in 0..max {
                match l.plaintext_size(ct) {
                    Ok(pt) => {
                        let canonical = l.ciphertext_size(pt).unwrap();
                        let rest = ct % l.ciphertext_segment_size();
                        assert!(
                            canonical == ct || (rest == l.tag_size() && ct > canonical),
                            "{l:?} ct {ct}"
                        );
                    }
                    Err(e) => {
                        assert_eq!(e, StreamingError::InvalidCiphertextSize { size: ct });
                        assert!(
                            ct < l.header_len() + l.tag_size()
                                || (ct % l.ciphertext_segment_size() > 0
                                    && ct % l.ciphertext_segment_size() < l.tag_size()),
                            "{l:?} ct {ct}"
                        );
                    }
                }
            }
        }
    }

    /// `ciphertext_range` covers exactly the segments holding the range:
    /// brute force over every range of small plaintexts.
    #[test]
    fn ciphertext_range_is_exact() {
        for l in layouts().into_iter().take(3) {
            for pt in [0u64, 1, 16, 17, 40, 100, 250] {
                let ct = l.ciphertext_size(pt).unwrap();
                let segs = naive(&l, pt);
                // Plaintext start of each segment.
                let mut starts = vec![0u64];
                for s in &segs {
                    starts.push(starts.last().unwrap() + s.0);
                }
                for a in 0..=pt {
                    for b in a..=pt + 3 {
                        let r = l.ciphertext_range(a..b, ct).unwrap();
                        let end = b.min(pt);
                        if a == end {
                            assert!(r.segments.is_empty() && r.bytes.is_empty());
                            continue;
                        }
                        let want: Vec<u64> = (0..segs.len() as u64)
                            .filter(|&i| {
                                let (s, e) = (starts[i as usize], starts[i as usize + 1]);
                                s < end && a < e
                            })
                            .collect();
                        assert_eq!(
                            r.segments,
                            want[0]..want.last().unwrap() + 1,
                            "{l:?} pt {pt} range {a}..{b}"
                        );
                        let first = l.segment_ciphertext_range(want[0], ct).unwrap();
                        let last = l
                            .segment_ciphertext_range(*want.last().unwrap(), ct)
                            .unwrap();
                        assert_eq!(r.bytes, first.start..last.end);
                    }
                }
                assert!(matches!(
                    l.ciphertext_range(pt + 1..pt + 2, ct),
                    Err(StreamingError::RangeOutOfBounds { .. })
                ));
                #[allow(clippy::reversed_empty_ranges)]
                let reversed = 1..0;
                assert!(l.ciphertext_range(reversed, ct).is_err());
            }
        }
    }

    #[test]
    fn large_sizes() {
        let l = SegmentLayout::new(40, 1 << 20, 16).unwrap();
        let gib = 1u64 << 30;
        let ct = l.ciphertext_size(gib).unwrap();
        // 1024 full plaintext segments of P plus the header's share.
        assert_eq!(ct, gib + 40 + 1025 * 16);
        assert_eq!(l.plaintext_size(ct).unwrap(), gib);
        let r = l.ciphertext_range(gib - 1..gib, ct).unwrap();
        assert_eq!(r.segments, 1024..1025);
        assert_eq!(r.bytes.end, ct);
        // The segment limit.
        let small = SegmentLayout::new(24, 41, 16).unwrap();
        let max_pt = MAX_SEGMENTS * 25 - 24;
        assert!(small.ciphertext_size(max_pt).is_ok());
        assert_eq!(
            small.ciphertext_size(max_pt + 1),
            Err(StreamingError::TooLarge)
        );
        assert_eq!(l.ciphertext_size(u64::MAX), Err(StreamingError::TooLarge));
        assert!(l.plaintext_size(u64::MAX).is_err());
        // No overflow at the edges.
        assert!(l.segment_of(u64::MAX) >= u64::MAX / l.plaintext_segment_size());
        assert_eq!(l.segment_plaintext_range(u64::MAX).end, u64::MAX);
    }
}
