//! Tests of [`SegmentEncryptor`] and [`SegmentDecryptor`] with small
//! segments: the same bytes as `StreamEncryptor`, every misuse refused,
//! every tampering refused.

use bytes::BytesMut;

use super::super::tests::{Rng, sizes, small_keysets};
use super::super::{KeysetStreamingAead, StreamEncryptor};
use super::*;
use crate::keyset::KeyStatus;
use crate::templates;

/// A `StreamEncryptor` and a `SegmentEncryptor` of the same ciphertext
/// (same header, hence same derived keys): their outputs must be equal.
fn twins(s: &KeysetStreamingAead, ad: &[u8]) -> (StreamEncryptor, SegmentEncryptor) {
    let key = &s.keys[0];
    let (header, cipher) = key.new_stream(ad).expect("stream");
    let again = key.cipher_for(header.as_bytes(), ad).expect("cipher");
    (
        StreamEncryptor::new(cipher, key.layout(), header),
        SegmentEncryptor::new(again, key.layout(), header),
    )
}

/// The plaintext cut as the segments hold it.
fn plaintext_segments(l: &SegmentLayout, pt: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = pt;
    let mut index = 0;
    loop {
        let n = (full_plaintext(l, index) as usize).min(rest.len());
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
        index += 1;
        if rest.is_empty() {
            return out;
        }
    }
}

/// The segments of a ciphertext (without its header).
fn ciphertext_segments(l: &SegmentLayout, ct: &[u8]) -> Vec<Vec<u8>> {
    let count = l.segment_count(ct.len() as u64).expect("valid size");
    (0..count)
        .map(|i| {
            let r = l
                .segment_ciphertext_range(i, ct.len() as u64)
                .expect("range");
            ct[r.start as usize..r.end as usize].to_vec()
        })
        .collect()
}

/// Seals `pt` with the segment API, alternating `Vec`, `BytesMut` and
/// detached tags.
fn seal_all(enc: &mut SegmentEncryptor, pt: &[u8]) -> Vec<u8> {
    let l = enc.layout();
    let mut out = enc.header().to_vec();
    let segments = plaintext_segments(&l, pt);
    let count = segments.len();
    for (i, seg) in segments.into_iter().enumerate() {
        let last = i + 1 == count;
        assert_eq!(enc.segment_index(), i as u64);
        match i % 3 {
            0 => {
                let mut v = seg;
                enc.seal_segment(&mut v, last).expect("seal");
                out.extend_from_slice(&v);
            }
            1 => {
                let mut b = BytesMut::from(&seg[..]);
                enc.seal_segment(&mut b, last).expect("seal");
                out.extend_from_slice(&b.freeze());
            }
            _ => {
                let mut v = seg;
                let tag = enc.seal_segment_detached(&mut v, last).expect("seal");
                assert_eq!(tag.as_ref().len() as u64, l.tag_size());
                out.extend_from_slice(&v);
                out.extend_from_slice(tag.as_ref());
            }
        }
    }
    assert!(enc.is_finished());
    out
}

/// Opens every segment of `ct` in order; the plaintext or the first error.
fn open_all(s: &KeysetStreamingAead, ct: &[u8], ad: &[u8]) -> Result<Vec<u8>, StreamingError> {
    let h = usize::from(*ct.first().ok_or(StreamingError::Truncated)?);
    let mut dec = s.segment_decryptor(&ct[..h.min(ct.len())], ad)?;
    let l = dec.layout();
    let mut out = Vec::new();
    let segments = ciphertext_segments(&l, ct);
    let count = segments.len();
    for (i, seg) in segments.into_iter().enumerate() {
        let last = i + 1 == count;
        if i % 2 == 0 {
            let mut v = seg;
            dec.open_segment(&mut v, last)?;
            out.extend_from_slice(&v);
        } else {
            let mut b = BytesMut::from(&seg[..]);
            dec.open_segment(&mut b, last)?;
            out.extend_from_slice(&b);
        }
    }
    assert!(dec.is_done());
    Ok(out)
}

#[test]
fn sealed_segments_are_byte_identical_to_the_stream_encryptor() {
    let mut rng = Rng(77);
    for (name, s) in small_keysets() {
        let l = s.layout();
        for size in sizes(l) {
            let pt = rng.bytes(size);
            let (mut stream, mut segments) = twins(&s, b"ad");
            let mut want = Vec::new();
            stream.update(&pt, &mut want).expect("update");
            stream.finish_into(&mut want).expect("finish");
            let got = seal_all(&mut segments, &pt);
            assert_eq!(got, want, "{name} {size}");
            assert_eq!(got.len() as u64, l.ciphertext_size(size as u64).unwrap());
            assert_eq!(s.decrypt(&got, b"ad").expect(name), pt, "{name} {size}");
            // A fresh segment encryptor: fresh salt and nonce prefix.
            let fresh = seal_all(&mut s.segment_encryptor(b"ad").unwrap(), &pt);
            assert_ne!(
                fresh[..l.header_len() as usize],
                got[..l.header_len() as usize]
            );
            assert_eq!(s.decrypt(&fresh, b"ad").expect(name), pt);
        }
    }
}

#[test]
fn segment_encryptor_refuses_misuse_and_changes_nothing() {
    for (name, s) in small_keysets() {
        let l = s.layout();
        let first = l.first_plaintext_segment_size() as usize;
        let p = l.plaintext_segment_size() as usize;
        let mut enc = s.segment_encryptor(b"ad").unwrap();
        assert_eq!(enc.segment_plaintext_size(), first);
        // A non-last segment must be full.
        for bad in [0, first - 1, first + 1] {
            let mut v = vec![9u8; bad];
            let e = enc.seal_segment(&mut v, false).unwrap_err();
            assert_eq!(
                e,
                StreamingError::SegmentSize {
                    segment: 0,
                    size: bad as u64,
                    min: first as u64,
                    max: first as u64
                },
                "{name}"
            );
            assert_eq!(v, vec![9u8; bad], "{name}: buffer unchanged");
        }
        // A last segment may not be over-full.
        let mut v = vec![1u8; first + 1];
        assert!(matches!(
            enc.seal_segment(&mut v, true),
            Err(StreamingError::SegmentSize { .. })
        ));
        assert_eq!(enc.segment_index(), 0, "{name}: nothing counted");
        let mut v = vec![1u8; first];
        enc.seal_segment(&mut v, false).unwrap();
        assert_eq!(enc.segment_plaintext_size(), p);
        // After full segments, an empty last segment is not Tink's format.
        let mut empty = Vec::new();
        let e = enc.seal_segment(&mut empty, true).unwrap_err();
        assert_eq!(
            e,
            StreamingError::SegmentSize {
                segment: 1,
                size: 0,
                min: 1,
                max: p as u64
            }
        );
        assert!(empty.is_empty());
        let mut v = vec![2u8; 3];
        enc.seal_segment(&mut v, true).unwrap();
        let mut more = vec![3u8; 3];
        assert_eq!(
            enc.seal_segment(&mut more, true),
            Err(StreamingError::Finished)
        );
        assert_eq!(more, vec![3u8; 3]);
    }
    // An empty plaintext is one empty last segment.
    let (_, s) = small_keysets().swap_remove(0);
    let mut enc = s.segment_encryptor(b"").unwrap();
    let mut ct = enc.header().to_vec();
    let mut v = Vec::new();
    enc.seal_segment(&mut v, true).unwrap();
    ct.extend_from_slice(&v);
    assert_eq!(s.decrypt(&ct, b"").unwrap(), b"");
}

#[test]
fn segment_encryptor_stops_at_the_segment_limit() {
    let (_, s) = small_keysets().swap_remove(0);
    let mut enc = s.segment_encryptor(b"ad").unwrap();
    let p = enc.layout().plaintext_segment_size() as usize;
    enc.next = MAX_SEGMENTS - 1;
    let mut v = vec![0u8; p];
    assert_eq!(
        enc.seal_segment(&mut v, false),
        Err(StreamingError::TooLarge)
    );
    assert_eq!(v, vec![0u8; p]);
    // The last possible segment may still end the stream.
    enc.seal_segment(&mut v, true).unwrap();
    assert!(enc.is_finished());
}

#[test]
fn segment_decryptor_opens_what_every_encryptor_writes() {
    let mut rng = Rng(78);
    for (name, s) in small_keysets() {
        let l = s.layout();
        for size in sizes(l) {
            let pt = rng.bytes(size);
            let ct = s.encrypt(&pt, b"ad").unwrap();
            assert_eq!(open_all(&s, &ct, b"ad").expect(name), pt, "{name} {size}");
            // Random access, in reverse order.
            let mut dec = s
                .segment_decryptor(&ct[..l.header_len() as usize], b"ad")
                .unwrap();
            let segments = ciphertext_segments(&l, &ct);
            let count = segments.len();
            let mut parts = vec![Vec::new(); count];
            for (i, seg) in segments.into_iter().enumerate().rev() {
                let mut v = seg;
                let n = dec
                    .open_segment_at(i as u64, i + 1 == count, &mut v)
                    .unwrap();
                v.truncate(n);
                parts[i] = v;
            }
            assert_eq!(parts.concat(), pt, "{name} {size}");
            assert_eq!(dec.segment_index(), 0, "random access counts nothing");
        }
    }
}

#[test]
fn segment_decryptor_refuses_tampering() {
    let mut rng = Rng(79);
    for (name, s) in small_keysets() {
        let l = s.layout();
        let h = l.header_len() as usize;
        let pt = rng.bytes(
            l.first_plaintext_segment_size() as usize + 3 * l.plaintext_segment_size() as usize + 5,
        );
        let ct = s.encrypt(&pt, b"ad").unwrap();
        let segs = ciphertext_segments(&l, &ct);
        assert_eq!(segs.len(), 5);
        let open = |parts: &[Vec<u8>], ad: &[u8]| -> Result<Vec<u8>, StreamingError> {
            let mut dec = s.segment_decryptor(&ct[..h], ad)?;
            let mut out = Vec::new();
            for (i, seg) in parts.iter().enumerate() {
                let mut v = seg.clone();
                dec.open_segment(&mut v, i + 1 == parts.len())?;
                out.extend_from_slice(&v);
            }
            Ok(out)
        };
        assert_eq!(open(&segs, b"ad").unwrap(), pt, "{name}");
        // Wrong associated data: the first segment fails.
        assert_eq!(
            open(&segs, b"AD"),
            Err(StreamingError::Authentication),
            "{name}"
        );
        // Truncated at a segment boundary: the new final segment was not
        // sealed as the last.
        assert_eq!(
            open(&segs[..4], b"ad"),
            Err(StreamingError::SegmentAuthentication { segment: 3 }),
            "{name}"
        );
        // Extended: a copy of a full segment after the last.
        let mut extended = segs.clone();
        let last = extended.pop().unwrap();
        extended.push(segs[3].clone());
        extended.push(last);
        assert_eq!(
            open(&extended, b"ad"),
            Err(StreamingError::SegmentAuthentication { segment: 4 }),
            "{name}"
        );
        // Reordered.
        let mut swapped = segs.clone();
        swapped.swap(1, 2);
        assert_eq!(
            open(&swapped, b"ad"),
            Err(StreamingError::SegmentAuthentication { segment: 1 }),
            "{name}"
        );
        // One altered byte in each segment.
        for i in 0..segs.len() {
            let mut altered = segs.clone();
            let j = rng.below(altered[i].len());
            altered[i][j] ^= 1;
            let want = if i == 0 {
                StreamingError::Authentication
            } else {
                StreamingError::SegmentAuthentication { segment: i as u64 }
            };
            assert_eq!(open(&altered, b"ad"), Err(want), "{name} segment {i}");
        }
        // A segment of the wrong size, and a segment after the last.
        let mut dec = s.segment_decryptor(&ct[..h], b"ad").unwrap();
        let mut short = segs[0][1..].to_vec();
        assert!(matches!(
            dec.open_segment(&mut short, false),
            Err(StreamingError::SegmentSize { segment: 0, .. })
        ));
        let mut tiny = vec![0u8; l.tag_size() as usize - 1];
        assert!(matches!(
            dec.open_segment(&mut tiny, true),
            Err(StreamingError::SegmentSize { segment: 0, .. })
        ));
        let mut whole = s.encrypt(b"x", b"ad").unwrap();
        let mut dec = s.segment_decryptor(&whole[..h], b"ad").unwrap();
        let mut only = whole.split_off(h);
        dec.open_segment(&mut only, true).unwrap();
        assert_eq!(only, b"x");
        let mut again = segs[1].clone();
        assert_eq!(
            dec.open_segment(&mut again, false),
            Err(StreamingError::Finished)
        );
    }
}

#[test]
fn segment_decryptor_checks_the_header() {
    let (_, s) = small_keysets().swap_remove(0);
    let ct = s.encrypt(b"abc", b"ad").unwrap();
    let h = s.layout().header_len() as usize;
    assert_eq!(
        s.segment_decryptor(&[], b"ad").err(),
        Some(StreamingError::Truncated)
    );
    assert_eq!(
        s.segment_decryptor(&ct[..h - 1], b"ad").err(),
        Some(StreamingError::Truncated)
    );
    assert_eq!(
        s.segment_decryptor(&ct[..h + 1], b"ad").err(),
        Some(StreamingError::InvalidHeader)
    );
    let mut other = ct[..h].to_vec();
    other[0] = 99;
    assert_eq!(
        s.segment_decryptor(&other, b"ad").err(),
        Some(StreamingError::InvalidHeader)
    );
    // The error says nothing about keys or plaintext.
    let e = StreamingError::SegmentSize {
        segment: 2,
        size: 5,
        min: 17,
        max: 17,
    };
    assert_eq!(
        e.to_string(),
        "segment 2 is 5 bytes; a segment there must be 17 to 17 bytes (every segment but the last is full)"
    );
    assert_eq!(
        std::io::Error::from(e).kind(),
        std::io::ErrorKind::InvalidInput
    );
}

#[test]
fn segment_decryptor_finds_the_key() {
    // Two keys with one layout: the first segment decides.
    let mut ks =
        crate::Keyset::generate(&templates::by_name("AES128_GCM_HKDF_4KB").unwrap()).unwrap();
    let first = ks.primary_key_id();
    let old = ks.streaming_aead().unwrap();
    let second = ks
        .add_key(&templates::by_name("AES128_GCM_HKDF_4KB").unwrap())
        .unwrap();
    ks.promote(second).unwrap();
    let pt: Vec<u8> = (0..10_000u32).map(|i| (i * 3) as u8).collect();
    let ct_old = old.encrypt(&pt, b"ad").unwrap();
    let s = ks.streaming_aead().unwrap();
    let ct_new = s.encrypt(&pt, b"ad").unwrap();
    for ct in [&ct_old, &ct_new] {
        assert_eq!(open_all(&s, ct, b"ad").unwrap(), pt);
        // Random access from a middle segment first.
        let l = s.layout();
        let mut dec = s.segment_decryptor(&ct[..24], b"ad").unwrap();
        let mut seg = ciphertext_segments(&l, ct)[1].clone();
        let n = dec.open_segment_at(1, false, &mut seg).unwrap();
        assert_eq!(
            seg[..n],
            pt[l.segment_plaintext_range(1).start as usize..][..n]
        );
    }
    ks.disable(first).unwrap();
    let s = ks.streaming_aead().unwrap();
    assert_eq!(
        open_all(&s, &ct_old, b"ad"),
        Err(StreamingError::Authentication)
    );
    assert_eq!(open_all(&s, &ct_new, b"ad").unwrap(), pt);
    assert!(
        ks.keys()
            .iter()
            .any(|k| k.id == first && k.status == KeyStatus::Disabled)
    );
}

#[test]
fn debug_shows_no_secrets() {
    let (_, s) = small_keysets().swap_remove(0);
    let enc = s.segment_encryptor(b"secret ad").unwrap();
    let d = format!("{enc:?}");
    assert!(d.starts_with("SegmentEncryptor { layout:"), "{d}");
    let dec = s.segment_decryptor(enc.header(), b"secret ad").unwrap();
    let d = format!("{dec:?}");
    assert_eq!(
        d,
        "SegmentDecryptor { candidates: 1, key_found: false, next_segment: 0, done: false, .. }"
    );
}

/// Opens every segment of `ct` out of place, in order, from read-only
/// slices of `ct` into `out` buffers `spare` bytes longer than needed;
/// the plaintext or the first error (and the buffer of the failed
/// segment).
fn open_all_to(
    s: &KeysetStreamingAead,
    ct: &[u8],
    ad: &[u8],
    spare: usize,
) -> Result<Vec<u8>, (StreamingError, Vec<u8>)> {
    let h = usize::from(ct[0]);
    let mut dec = s
        .segment_decryptor(&ct[..h], ad)
        .map_err(|e| (e, Vec::new()))?;
    let l = dec.layout();
    let segments = ciphertext_segments(&l, ct);
    let count = segments.len();
    let mut pt = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let mut out = vec![0xaa; seg.len() - l.tag_size() as usize + spare];
        match dec.open_segment_to(seg, i + 1 == count, &mut out) {
            Ok(n) => {
                assert_eq!(n, seg.len() - l.tag_size() as usize);
                assert!(out[n..].iter().all(|&b| b == 0xaa), "only out[..n] written");
                pt.extend_from_slice(&out[..n]);
            }
            Err(e) => return Err((e, out)),
        }
    }
    assert!(dec.is_done());
    Ok(pt)
}

#[test]
fn segment_decryptor_opens_out_of_place() {
    let mut rng = Rng(80);
    for (name, s) in small_keysets() {
        let l = s.layout();
        for size in sizes(l) {
            let pt = rng.bytes(size);
            let ct = s.encrypt(&pt, b"ad").unwrap();
            let kept = ct.clone();
            for spare in [0, 3] {
                assert_eq!(open_all_to(&s, &ct, b"ad", spare).unwrap(), pt, "{name}");
            }
            assert_eq!(ct, kept, "{name}: the ciphertext is only read");
            // Random access, in reverse order, mixed with in-place opens.
            let mut dec = s
                .segment_decryptor(&ct[..l.header_len() as usize], b"ad")
                .unwrap();
            let segments = ciphertext_segments(&l, &ct);
            let count = segments.len();
            let mut parts = vec![Vec::new(); count];
            for (i, seg) in segments.iter().enumerate().rev() {
                let last = i + 1 == count;
                let mut out = vec![0u8; seg.len()];
                let n = if i % 2 == 0 {
                    dec.open_segment_at_to(i as u64, last, seg, &mut out)
                } else {
                    out.copy_from_slice(seg);
                    dec.open_segment_at(i as u64, last, &mut out)
                }
                .unwrap();
                out.truncate(n);
                parts[i] = out;
            }
            assert_eq!(parts.concat(), pt, "{name} {size}");
            assert_eq!(dec.segment_index(), 0, "random access counts nothing");
        }
    }
}

#[test]
fn segment_decryptor_out_of_place_refuses_tampering_and_leaves_no_plaintext() {
    let mut rng = Rng(81);
    for (name, s) in small_keysets() {
        let l = s.layout();
        let h = l.header_len() as usize;
        let tag = l.tag_size() as usize;
        let pt = rng.bytes(
            l.first_plaintext_segment_size() as usize + 3 * l.plaintext_segment_size() as usize + 5,
        );
        let ct = s.encrypt(&pt, b"ad").unwrap();
        let segs = ciphertext_segments(&l, &ct);
        let join = |parts: &[Vec<u8>]| [&ct[..h], &parts.concat()[..]].concat();
        // One altered byte (ciphertext or tag) in each segment: refused, and
        // the output of the failed segment holds zeros only.
        for i in 0..segs.len() {
            for j in [0, segs[i].len() - tag, segs[i].len() - 1] {
                let mut altered = segs.clone();
                altered[i][j] ^= 1;
                let (e, out) = open_all_to(&s, &join(&altered), b"ad", 2).unwrap_err();
                let want = if i == 0 {
                    StreamingError::Authentication
                } else {
                    StreamingError::SegmentAuthentication { segment: i as u64 }
                };
                assert_eq!(e, want, "{name} segment {i} byte {j}");
                let n = segs[i].len() - tag;
                assert!(out[..n].iter().all(|&b| b == 0), "{name}: no plaintext");
                assert_eq!(out[n..], [0xaa, 0xaa], "{name}: nothing past the plaintext");
            }
        }
        // Wrong associated data, truncated, reordered.
        assert_eq!(
            open_all_to(&s, &ct, b"AD", 0).unwrap_err().0,
            StreamingError::Authentication
        );
        assert_eq!(
            open_all_to(&s, &join(&segs[..4]), b"ad", 0).unwrap_err().0,
            StreamingError::SegmentAuthentication { segment: 3 }
        );
        let mut swapped = segs.clone();
        swapped.swap(1, 2);
        assert_eq!(
            open_all_to(&s, &join(&swapped), b"ad", 0).unwrap_err().0,
            StreamingError::SegmentAuthentication { segment: 1 }
        );
        // Too small an output, a wrong size, a segment after the last:
        // refused, nothing counted.
        let mut dec = s.segment_decryptor(&ct[..h], b"ad").unwrap();
        let mut small = vec![0u8; segs[0].len() - tag - 1];
        assert_eq!(
            dec.open_segment_to(&segs[0], false, &mut small),
            Err(StreamingError::OutputTooSmall {
                segment: 0,
                size: small.len() as u64,
                needed: (segs[0].len() - tag) as u64,
            })
        );
        assert!(matches!(
            dec.open_segment_to(&segs[0][1..], false, &mut [0u8; 1 << 16]),
            Err(StreamingError::SegmentSize { segment: 0, .. })
        ));
        assert_eq!(dec.segment_index(), 0);
        let mut out = vec![0u8; segs[0].len()];
        let n = dec.open_segment_to(&segs[0], false, &mut out).unwrap();
        assert_eq!(out[..n], pt[..n], "{name}");
        // Now the key is known: a too-small output is still refused.
        assert!(matches!(
            dec.open_segment_to(&segs[1], false, &mut small),
            Err(StreamingError::OutputTooSmall { segment: 1, .. })
        ));
        let whole = s.encrypt(b"x", b"ad").unwrap();
        let mut dec = s.segment_decryptor(&whole[..h], b"ad").unwrap();
        let mut out = [0u8; 1];
        assert_eq!(dec.open_segment_to(&whole[h..], true, &mut out), Ok(1));
        assert_eq!(&out, b"x");
        assert_eq!(
            dec.open_segment_to(&segs[1], false, &mut [0u8; 1 << 16]),
            Err(StreamingError::Finished)
        );
    }
}

#[test]
fn segment_decryptor_out_of_place_finds_the_key() {
    // Two keys with one layout: the first segment decides, with no copy of
    // the ciphertext while both are tried.
    let mut ks =
        crate::Keyset::generate(&templates::by_name("AES128_GCM_HKDF_4KB").unwrap()).unwrap();
    let old = ks.streaming_aead().unwrap();
    let second = ks
        .add_key(&templates::by_name("AES128_GCM_HKDF_4KB").unwrap())
        .unwrap();
    ks.promote(second).unwrap();
    let pt: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let s = ks.streaming_aead().unwrap();
    for ct in [
        old.encrypt(&pt, b"ad").unwrap(),
        s.encrypt(&pt, b"ad").unwrap(),
    ] {
        assert_eq!(open_all_to(&s, &ct, b"ad", 1).unwrap(), pt);
        let l = s.layout();
        let mut dec = s.segment_decryptor(&ct[..24], b"ad").unwrap();
        let seg = &ciphertext_segments(&l, &ct)[1];
        let mut out = vec![0u8; seg.len()];
        let n = dec.open_segment_at_to(1, false, seg, &mut out).unwrap();
        assert_eq!(
            out[..n],
            pt[l.segment_plaintext_range(1).start as usize..][..n]
        );
    }
}
