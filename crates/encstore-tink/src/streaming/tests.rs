//! Unit tests of the streaming cores, adapters and random access, with
//! small segments so that many segments are cheap. Interop with Google's
//! Tink and tink-rust is in `tests/streaming_interop.rs`.

use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::keyset::KeyStatus;
use crate::templates;

/// A tiny deterministic PRNG (xorshift64*).
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub(super) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

pub(super) const GCM: &str = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey";
pub(super) const CTR: &str = "type.googleapis.com/google.crypto.tink.AesCtrHmacStreamingKey";

/// A serialized `AesGcmHkdfStreamingKey`.
pub(super) fn gcm_key(
    key: &[u8],
    derived: u32,
    hash: tink_proto::HashType,
    segment: u32,
) -> Vec<u8> {
    tink_proto::AesGcmHkdfStreamingKey {
        version: 0,
        params: Some(tink_proto::AesGcmHkdfStreamingParams {
            ciphertext_segment_size: segment,
            derived_key_size: derived,
            hkdf_hash_type: hash as i32,
        }),
        key_value: key.to_vec(),
    }
    .encode_to_vec()
}

/// A serialized `AesCtrHmacStreamingKey`.
fn ctr_key(
    key: &[u8],
    derived: u32,
    hkdf: tink_proto::HashType,
    hmac: tink_proto::HashType,
    tag: u32,
    segment: u32,
) -> Vec<u8> {
    tink_proto::AesCtrHmacStreamingKey {
        version: 0,
        params: Some(tink_proto::AesCtrHmacStreamingParams {
            ciphertext_segment_size: segment,
            derived_key_size: derived,
            hkdf_hash_type: hkdf as i32,
            hmac_params: Some(tink_proto::HmacParams {
                hash: hmac as i32,
                tag_size: tag,
            }),
        }),
        key_value: key.to_vec(),
    }
    .encode_to_vec()
}

/// A keyset of `(id, type URL, key value, status)`, primary `primary`.
pub(super) fn keyset(keys: &[(u32, &str, Vec<u8>, KeyStatus)], primary: u32) -> Keyset {
    try_keyset(keys, primary).expect("valid keyset")
}

/// [`keyset`], or its error.
fn try_keyset(
    keys: &[(u32, &str, Vec<u8>, KeyStatus)],
    primary: u32,
) -> Result<Keyset, KeysetError> {
    let proto = tink_proto::Keyset {
        primary_key_id: primary,
        key: keys
            .iter()
            .map(|(id, url, value, status)| tink_proto::keyset::Key {
                key_data: Some(tink_proto::KeyData {
                    type_url: (*url).to_owned(),
                    value: value.clone(),
                    key_material_type: tink_proto::key_data::KeyMaterialType::Symmetric as i32,
                }),
                status: status.to_proto(),
                key_id: *id,
                output_prefix_type: tink_proto::OutputPrefixType::Raw as i32,
            })
            .collect(),
    };
    Keyset::from_binary_insecure(&proto.encode_to_vec())
}

/// Small-segment keys of both types: (name, keyset). Under the `fips`
/// provider the SHA-1 ones are refused (checked) and left out.
pub(super) fn small_keysets() -> Vec<(&'static str, KeysetStreamingAead)> {
    use tink_proto::HashType::*;
    let all = [
        ("gcm16 seg41", GCM, gcm_key(&[1; 16], 16, Sha256, 41)),
        ("gcm32 seg73 sha512", GCM, gcm_key(&[2; 40], 32, Sha512, 73)),
        ("gcm16 seg100 sha1", GCM, gcm_key(&[3; 16], 16, Sha1, 100)),
        (
            "ctr16 hkdf-sha256 sha256 tag32 seg57",
            CTR,
            ctr_key(&[4; 16], 16, Sha256, Sha256, 32, 57),
        ),
        (
            "ctr32 hkdf-sha1 sha1 tag10 seg60",
            CTR,
            ctr_key(&[5; 32], 32, Sha1, Sha1, 10, 60),
        ),
        (
            "ctr16 hkdf-sha1 sha512 tag64 seg120",
            CTR,
            ctr_key(&[6; 20], 16, Sha1, Sha512, 64, 120),
        ),
    ];
    let fips = crate::provider::get_default().expect("provider").fips();
    let mut out = Vec::new();
    for (name, url, v) in all {
        match try_keyset(&[(1, url, v, KeyStatus::Enabled)], 1) {
            Ok(ks) => out.push((name, ks.streaming_aead().expect("streaming"))),
            Err(KeysetError::Key {
                source: crate::error::KeyError::NotFipsApproved { .. },
                ..
            }) if fips && name.contains("sha1") => {}
            Err(e) => panic!("{name}: {e}"),
        }
    }
    assert_eq!(out.len(), if fips { 3 } else { 6 });
    out
}

/// Plaintext sizes around the segment boundaries of `l`.
pub(super) fn sizes(l: SegmentLayout) -> Vec<usize> {
    let first = l.first_plaintext_segment_size() as usize;
    let p = l.plaintext_segment_size() as usize;
    vec![
        0,
        1,
        first - 1,
        first,
        first + 1,
        first + p - 1,
        first + p,
        first + p + 1,
        first + 5 * p + 3,
    ]
}

/// Encrypts with the push API in random chunks.
fn encrypt_chunked(s: &KeysetStreamingAead, pt: &[u8], ad: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut enc = s.encryptor(ad).expect("encryptor");
    let mut out = Vec::new();
    let mut rest = pt;
    while !rest.is_empty() {
        let n = rng.below(rest.len() + 1).max(1);
        // Alternate the copying and the zero-copy paths.
        if rng.next().is_multiple_of(2) {
            enc.update(&rest[..n], &mut out).expect("update");
            rest = &rest[n..];
        } else {
            let space = enc.input_buffer();
            let k = space.len().min(n);
            if k == 0 {
                let taken = enc.write(&rest[..n]).expect("write");
                rest = &rest[taken..];
            } else {
                space[..k].copy_from_slice(&rest[..k]);
                enc.commit(k);
                rest = &rest[k..];
            }
            let o = enc.output().len();
            out.extend_from_slice(enc.output());
            enc.consume(o);
        }
    }
    enc.finish_into(&mut out).expect("finish");
    assert!(enc.is_done());
    out
}

/// Decrypts with the push API in random chunks.
fn decrypt_chunked(
    s: &KeysetStreamingAead,
    ct: &[u8],
    ad: &[u8],
    rng: &mut Rng,
) -> Result<Vec<u8>, StreamingError> {
    let mut dec = s.decryptor(ad);
    let mut out = Vec::new();
    let mut rest = ct;
    while !rest.is_empty() {
        let n = rng.below(rest.len() + 1).max(1);
        dec.update(&rest[..n], &mut out)?;
        rest = &rest[n..];
    }
    dec.finish_into(&mut out)?;
    assert!(dec.is_done());
    Ok(out)
}

#[test]
fn round_trips_every_size_and_chunking() {
    let mut rng = Rng(0x1234_5678);
    for (name, s) in small_keysets() {
        let l = s.layout();
        for size in sizes(l) {
            let pt = rng.bytes(size);
            let a = s.encrypt(&pt, b"ad").expect("encrypt");
            let b = encrypt_chunked(&s, &pt, b"ad", &mut rng);
            let want = l.ciphertext_size(size as u64).expect("size");
            assert_eq!(a.len() as u64, want, "{name} {size}");
            assert_eq!(b.len() as u64, want, "{name} {size}");
            assert_eq!(a[0] as u64, l.header_len(), "{name}: header length byte");
            assert_ne!(a, b, "{name}: fresh salt and nonce prefix");
            for ct in [&a, &b] {
                assert_eq!(s.decrypt(ct, b"ad").expect(name), pt, "{name} {size}");
                assert_eq!(decrypt_chunked(&s, ct, b"ad", &mut rng).expect(name), pt);
                assert_eq!(s.decrypt(ct, b"AD"), Err(StreamingError::Authentication));
            }
        }
    }
}

/// Truncated, extended, reordered, altered: every one is refused, and no
/// plaintext of a segment that does not authenticate is ever released.
#[test]
fn tampering_is_refused() {
    let mut rng = Rng(99);
    for (name, s) in small_keysets() {
        let l = s.layout();
        let size = (l.first_plaintext_segment_size() + 3 * l.plaintext_segment_size() + 5) as usize;
        let pt = rng.bytes(size);
        let ct = s.encrypt(&pt, b"ad").expect("encrypt");
        let segments = l.segment_count(ct.len() as u64).unwrap();
        assert_eq!(segments, 5);
        let seg = |i: u64| {
            let r = l.segment_ciphertext_range(i, ct.len() as u64).unwrap();
            r.start as usize..r.end as usize
        };
        // Truncated anywhere: at every segment boundary and inside.
        for cut in 0..ct.len() {
            let e = s.decrypt(&ct[..cut], b"ad").expect_err(name);
            assert!(
                matches!(
                    e,
                    StreamingError::Truncated
                        | StreamingError::Authentication
                        | StreamingError::SegmentAuthentication { .. }
                ),
                "{name} cut {cut}: {e:?}"
            );
        }
        // Cut right after segment 2: segments 0..=2 are genuine, the
        // (new) last one was not sealed as last.
        let cut = seg(2).end;
        assert_eq!(
            s.decrypt(&ct[..cut], b"ad"),
            Err(StreamingError::SegmentAuthentication { segment: 2 })
        );
        // Extended: one byte, a copy of the last segment, the header.
        for extra in [&[0u8][..], &ct[seg(4)], &ct[..l.header_len() as usize]] {
            let mut longer = ct.clone();
            longer.extend_from_slice(extra);
            assert!(s.decrypt(&longer, b"ad").is_err(), "{name}: extended");
        }
        // Reordered: swap segments 1 and 2 (same size).
        let mut swapped = ct.clone();
        let (a, b) = (seg(1), seg(2));
        swapped[a.clone()].copy_from_slice(&ct[b.clone()]);
        swapped[b].copy_from_slice(&ct[a]);
        assert_eq!(
            s.decrypt(&swapped, b"ad"),
            Err(StreamingError::SegmentAuthentication { segment: 1 })
        );
        // Every single-byte alteration.
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 1 << (i % 8);
            let e = s.decrypt(&bad, b"ad").expect_err(name);
            if i == 0 {
                assert_eq!(e, StreamingError::InvalidHeader, "{name}");
            } else if i < seg(0).end {
                assert_eq!(e, StreamingError::Authentication, "{name} byte {i}");
            } else {
                let k = (1..segments).find(|&k| seg(k).contains(&i)).unwrap();
                assert_eq!(e, StreamingError::SegmentAuthentication { segment: k });
            }
        }
        // The decryptor releases the genuine segments before the bad one,
        // and nothing of the bad one.
        let mut bad = ct.clone();
        bad[seg(3).start] ^= 1;
        let mut dec = s.decryptor(b"ad");
        let mut out = Vec::new();
        assert!(dec.update(&bad, &mut out).is_err());
        let genuine = l.segment_plaintext_range(3).start as usize;
        assert_eq!(out, pt[..genuine], "{name}");
        assert_eq!(
            dec.finish_into(&mut out),
            Err(StreamingError::SegmentAuthentication { segment: 3 }),
            "poisoned"
        );
    }
}

#[test]
fn empty_and_short_inputs() {
    for (_, s) in small_keysets() {
        assert_eq!(s.decrypt(b"", b""), Err(StreamingError::Truncated));
        let hl = s.layout().header_len() as u8;
        assert_eq!(s.decrypt(&[hl], b""), Err(StreamingError::Truncated));
        assert_eq!(
            s.decrypt(&[hl + 1; 100], b""),
            Err(StreamingError::InvalidHeader)
        );
        let ct = s.encrypt(b"", b"").unwrap();
        assert_eq!(
            ct.len() as u64,
            s.layout().header_len() + s.layout().tag_size()
        );
        // Feeding after the end is refused.
        let mut dec = s.decryptor(b"");
        let mut out = Vec::new();
        dec.update(&ct, &mut out).unwrap();
        dec.finish_into(&mut out).unwrap();
        assert!(out.is_empty() && dec.is_done());
        assert_eq!(dec.update(b"x", &mut out), Err(StreamingError::Finished));
        let mut enc = s.encryptor(b"").unwrap();
        enc.finish();
        assert_eq!(enc.write(b"x"), Err(StreamingError::Finished));
    }
}

/// A keyset with several enabled keys (different types, sizes and
/// segment sizes) decrypts what each of them wrote; a disabled or
/// destroyed key's ciphertexts do not decrypt.
#[test]
fn any_enabled_key_decrypts() {
    let mut ks = Keyset::generate(&templates::by_name("AES128_GCM_HKDF_4KB").unwrap()).unwrap();
    let mut cts = Vec::new();
    let pt: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    for name in templates::STREAMING_NAMES {
        let id = ks.add_key(&templates::by_name(name).unwrap()).unwrap();
        ks.promote(id).unwrap();
        let s = ks.streaming_aead().unwrap();
        assert_eq!(s.primary_key_id(), id);
        cts.push((id, name, s.encrypt(&pt, b"ad").unwrap()));
    }
    // The same template twice: two candidates with one layout.
    let twin = ks
        .add_key(&templates::by_name("AES256_GCM_HKDF_4KB").unwrap())
        .unwrap();
    ks.promote(twin).unwrap();
    cts.push((
        twin,
        &"twin",
        ks.streaming_aead().unwrap().encrypt(&pt, b"ad").unwrap(),
    ));
    let s = ks.streaming_aead().unwrap();
    let mut rng = Rng(5);
    for (id, name, ct) in &cts {
        assert_eq!(s.decrypt(ct, b"ad").expect(name), pt, "{name}");
        assert_eq!(decrypt_chunked(&s, ct, b"ad", &mut rng).expect(name), pt);
        let mut ks2 = ks.clone();
        if *id != ks2.primary_key_id() {
            ks2.disable(*id).unwrap();
            assert!(
                ks2.streaming_aead().unwrap().decrypt(ct, b"ad").is_err(),
                "{name}"
            );
            ks2.destroy(*id).unwrap();
            assert!(
                ks2.streaming_aead().unwrap().decrypt(ct, b"ad").is_err(),
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn async_writer_and_readers_round_trip() {
    let mut rng = Rng(77);
    for (name, s) in small_keysets() {
        for size in sizes(s.layout()) {
            let pt = rng.bytes(size);
            // EncryptingWriter, written in odd-sized pieces.
            let mut w = s.encrypting_writer(Vec::new(), b"ad").unwrap();
            let mut rest = &pt[..];
            while !rest.is_empty() {
                let n = rng.below(rest.len() + 1).max(1);
                w.write_all(&rest[..n]).await.unwrap();
                rest = &rest[n..];
            }
            w.shutdown().await.unwrap();
            assert!(w.is_finished());
            let ct = w.into_inner();
            assert_eq!(s.decrypt(&ct, b"ad").expect(name), pt);
            // EncryptingReader over a slow, chunky plaintext source.
            let src = tokio_test_reader(&pt, &mut rng);
            let mut r = s.encrypting_reader(src, b"ad").unwrap();
            let mut ct2 = Vec::new();
            r.read_to_end(&mut ct2).await.unwrap();
            assert_eq!(ct2.len(), ct.len(), "{name} {size}");
            // DecryptingReader over both.
            for c in [&ct, &ct2] {
                let src = tokio_test_reader(c, &mut rng);
                let mut r = s.decrypting_reader(src, b"ad");
                let mut out = Vec::new();
                r.read_to_end(&mut out).await.expect(name);
                assert_eq!(out, pt, "{name} {size}");
                assert!(r.is_done());
            }
            // A truncated ciphertext ends in an InvalidData error.
            let cut = ct.len() - 1;
            let mut r = s.decrypting_reader(&ct[..cut], b"ad");
            let e = r.read_to_end(&mut Vec::new()).await.expect_err("truncated");
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(
                e.get_ref()
                    .unwrap()
                    .downcast_ref::<StreamingError>()
                    .is_some()
            );
        }
    }
}

/// A reader returning `data` in random small pieces.
fn tokio_test_reader(data: &[u8], rng: &mut Rng) -> tokio_test_io::Chunky {
    let mut chunks = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = rng.below(rest.len().min(97) + 1).max(1);
        chunks.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    tokio_test_io::Chunky {
        chunks,
        next: 0,
        calls: 0,
    }
}

mod tokio_test_io {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, ReadBuf};

    /// Returns one chunk (or what fits) per read; pending every third
    /// read, to exercise wake-ups.
    pub struct Chunky {
        pub chunks: Vec<Vec<u8>>,
        pub next: usize,
        pub calls: usize,
    }

    impl AsyncRead for Chunky {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let this = &mut *self;
            let Some(chunk) = this.chunks.get_mut(this.next) else {
                return Poll::Ready(Ok(()));
            };
            this.calls += 1;
            if this.calls.is_multiple_of(3) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            chunk.drain(..n);
            if chunk.is_empty() {
                this.next += 1;
            }
            Poll::Ready(Ok(()))
        }
    }
}

/// A `RangedRead` that records every range it serves.
struct Recording {
    data: Bytes,
    reads: Arc<Mutex<Vec<Range<u64>>>>,
}

/// The ranges a [`Recording`] served.
#[derive(Clone, Default)]
struct Reads(Arc<Mutex<Vec<Range<u64>>>>);

impl Reads {
    fn source(&self, data: Bytes) -> Recording {
        Recording {
            data,
            reads: Arc::clone(&self.0),
        }
    }
    fn take(&self) -> Vec<Range<u64>> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[async_trait::async_trait]
impl RangedRead for Recording {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    async fn read_range(&self, range: Range<u64>) -> io::Result<Bytes> {
        self.reads.lock().unwrap().push(range.clone());
        self.data.read_range(range).await
    }
}

use bytes::Bytes;

#[tokio::test]
async fn random_access_reads_only_covering_segments() {
    let mut rng = Rng(3);
    for (name, s) in small_keysets() {
        let l = s.layout();
        let size = (l.first_plaintext_segment_size() + 4 * l.plaintext_segment_size() + 7) as usize;
        let pt = rng.bytes(size);
        let ct = Bytes::from(s.encrypt(&pt, b"ad").unwrap());
        let reads = Reads::default();
        let r = s
            .open_ranged(reads.source(ct.clone()), b"ad")
            .await
            .expect(name);
        assert_eq!(r.plaintext_size(), size as u64);
        assert_eq!(
            reads.take(),
            vec![0..l.header_len().max(40).min(ct.len() as u64)],
            "{name}: open reads the header only"
        );
        for a in (0..=size).step_by(7) {
            for b in [a, a + 1, a + 13, a + 50, size, size + 10] {
                if b < a {
                    continue;
                }
                reads.take();
                let got = r.read_range(a as u64..b as u64).await.expect(name);
                assert_eq!(got, pt[a..b.min(size)], "{name} {a}..{b}");
                let cr = l
                    .ciphertext_range(a as u64..b as u64, ct.len() as u64)
                    .unwrap();
                let served = reads.take();
                if cr.segments.is_empty() {
                    assert!(served.is_empty(), "{name}: empty range fetches nothing");
                } else {
                    assert_eq!(served, vec![cr.bytes.clone()], "{name} {a}..{b}");
                }
            }
        }
        assert_eq!(r.read_all().await.unwrap(), pt);
        assert_eq!(r.verified_plaintext_size().await.unwrap(), size as u64);
        let e = r
            .read_range(size as u64 + 1..size as u64 + 2)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Wrong associated data: every read fails.
        let r = s.open_ranged(ct.clone(), b"AD").await.unwrap();
        assert!(r.read_range(0..1).await.is_err());
        // Truncated at a segment boundary: the middle is genuine, the end
        // is refused.
        let cut = l.segment_ciphertext_range(2, ct.len() as u64).unwrap().end;
        let r = s
            .open_ranged(ct.slice(..cut as usize), b"ad")
            .await
            .unwrap();
        assert_eq!(r.read_range(0..5).await.unwrap(), pt[..5]);
        let end = r.plaintext_size();
        assert!(end < size as u64);
        assert!(r.read_range(end - 1..end).await.is_err(), "{name}");
        assert!(r.verified_plaintext_size().await.is_err());
        assert!(r.read_all().await.is_err());
        // Altered segment: reads covering it fail, others succeed.
        let mut bad = ct.to_vec();
        let seg3 = l.segment_ciphertext_range(3, ct.len() as u64).unwrap();
        bad[seg3.start as usize + 2] ^= 0x40;
        let r = s.open_ranged(Bytes::from(bad), b"ad").await.unwrap();
        let p3 = l.segment_plaintext_range(3);
        let e = r.read_range(p3.start..p3.start + 1).await.unwrap_err();
        assert_eq!(
            e.get_ref().unwrap().downcast_ref::<StreamingError>(),
            Some(&StreamingError::SegmentAuthentication { segment: 3 })
        );
        assert_eq!(
            r.read_range(0..p3.start).await.unwrap(),
            pt[..p3.start as usize]
        );
        // A small range read after the failed one (both through the
        // thread's scratch buffer) is still exact.
        assert_eq!(r.read_range(1..3).await.unwrap(), pt[1..3], "{name}");
    }
}

#[tokio::test]
async fn random_access_finds_the_key() {
    let mut ks = Keyset::generate(&templates::by_name("AES256_GCM_HKDF_4KB").unwrap()).unwrap();
    let old = ks.streaming_aead().unwrap();
    let pt = vec![9u8; 20_000];
    let old_ct = Bytes::from(old.encrypt(&pt, b"ad").unwrap());
    // Two more keys with the same layout; the last is the primary.
    for name in ["AES256_GCM_HKDF_4KB", "AES256_GCM_HKDF_4KB"] {
        let id = ks.add_key(&templates::by_name(name).unwrap()).unwrap();
        ks.promote(id).unwrap();
    }
    let s = ks.streaming_aead().unwrap();
    let reads = Reads::default();
    let r = s
        .open_ranged(reads.source(old_ct.clone()), b"ad")
        .await
        .unwrap();
    reads.take();
    assert_eq!(r.read_range(5000..5010).await.unwrap(), pt[5000..5010]);
    assert_eq!(
        reads.take().len(),
        1,
        "one fetch shared by the three candidates with one layout"
    );
    assert_eq!(r.read_range(100..200).await.unwrap(), pt[100..200]);
    assert_eq!(reads.take().len(), 1, "the key is known now");
    // Candidates: the primary, then keyset order: the old key is 1.
    assert!(format!("{r:?}").contains("chosen: Some(1)"), "{r:?}");
    // A primary with another layout (tag 32): its own fetch first, then
    // one shared by the three others.
    let id = ks
        .add_key(&templates::by_name("AES256_CTR_HMAC_SHA256_4KB").unwrap())
        .unwrap();
    ks.promote(id).unwrap();
    let s = ks.streaming_aead().unwrap();
    let layouts: Vec<_> = s.key_layouts().map(|(_, l)| l).collect();
    assert!(layouts[0].segment_count(old_ct.len() as u64).is_ok());
    let r = s.open_ranged(reads.source(old_ct), b"ad").await.unwrap();
    reads.take();
    assert_eq!(r.read_range(5000..5010).await.unwrap(), pt[5000..5010]);
    assert_eq!(reads.take().len(), 2);
    assert!(format!("{r:?}").contains("chosen: Some(1)"), "{r:?}");
}

/// Before the key is known, a range past the end for one candidate's
/// layout but not for the writer's still reads.
#[tokio::test]
async fn random_access_range_valid_only_for_the_writer() {
    let writer =
        Keyset::generate(&templates::by_name("AES256_CTR_HMAC_SHA256_1MB").unwrap()).unwrap();
    let pt = vec![3u8; 100_000];
    let ct = Bytes::from(
        writer
            .streaming_aead()
            .unwrap()
            .encrypt(&pt, b"ad")
            .unwrap(),
    );
    // A 4 KiB key with the same header length is the primary, so it is
    // tried first; its layout sees a smaller plaintext in this size.
    let mut ks = writer.clone();
    let id = ks
        .add_key(&templates::by_name("AES256_GCM_HKDF_4KB").unwrap())
        .unwrap();
    ks.promote(id).unwrap();
    let s = ks.streaming_aead().unwrap();
    let other = s.key_layouts().next().unwrap().1;
    let other_size = other.plaintext_size(ct.len() as u64).unwrap();
    assert!(other_size < 100_000 - 10);
    let r = s.open_ranged(ct, b"ad").await.unwrap();
    assert_eq!(r.plaintext_size(), other_size, "the first candidate's view");
    assert_eq!(r.read_range(99_990..100_000).await.unwrap(), pt[99_990..]);
    assert_eq!(r.plaintext_size(), 100_000, "the writer's view once known");
}

#[test]
fn debug_never_shows_keys() {
    let ks = keyset(
        &[(
            42,
            GCM,
            gcm_key(&[0xab; 16], 16, tink_proto::HashType::Sha256, 4096),
            KeyStatus::Enabled,
        )],
        42,
    );
    let s = ks.streaming_aead().unwrap();
    assert_eq!(
        format!("{s:?}"),
        "KeysetStreamingAead { primary_key_id: 42, enabled_key_ids: [42] }"
    );
    let enc = s.encryptor(b"").unwrap();
    assert_eq!(
        format!("{enc:?}"),
        "StreamEncryptor { layout: SegmentLayout { header_len: 24, segment_size: 4096, tag_size: 16 }, segment: 0, state: Filling, .. }"
    );
    let dec = s.decryptor(b"");
    assert_eq!(
        format!("{dec:?}"),
        "StreamDecryptor { state: \"header\", error: None, .. }"
    );
    let key = &ks.keys()[0];
    assert_eq!(
        format!("{:?}", key.streaming().unwrap()),
        "StreamingKey { params: StreamingParams { mode: Gcm, key_size: 16, derived_key_size: 16, hkdf_hash: Sha256, ciphertext_segment_size: 4096 }, .. }"
    );
    assert_eq!(
        format!("{ks:?}"),
        "Keyset { primary_key_id: 42, keys: [Key { id: 42, type: \"AesGcmHkdfStreamingKey\", status: Enabled, prefix: Raw }] }"
    );
}

#[test]
fn send_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<KeysetStreamingAead>();
    assert_send_sync::<StreamEncryptor>();
    assert_send_sync::<StreamDecryptor>();
    assert_send_sync::<RandomAccessReader<Bytes>>();
    assert_send_sync::<EncryptingWriter<Vec<u8>>>();
    assert_send_sync::<DecryptingReader<&'static [u8]>>();
}

/// An `AsyncRead`/`AsyncWrite` that counts the bytes that pass through.
struct Counting<T> {
    inner: T,
    count: Arc<std::sync::atomic::AtomicUsize>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counting<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.count
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        r
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counting<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            self.count
                .fetch_add(*n, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The async adapters stream: whatever the length, they hold back at
/// most about one segment (constant memory), reading ciphertext only as
/// plaintext is asked for and writing ciphertext as soon as a segment is
/// sealed.
#[tokio::test]
async fn adapters_hold_back_at_most_a_segment() {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    for (name, s) in small_keysets() {
        let l = s.layout();
        let seg = l.ciphertext_segment_size() as usize;
        let pt: Vec<u8> = (0..200 * seg).map(|i| i as u8).collect();
        let ct = s.encrypt(&pt, b"").unwrap();
        // Decrypting: ciphertext read stays within two segments of the
        // plaintext delivered.
        let read = Arc::new(AtomicUsize::new(0));
        let src = Counting {
            inner: &ct[..],
            count: Arc::clone(&read),
        };
        let mut r = s.decrypting_reader(src, b"");
        let mut delivered = 0usize;
        let mut buf = [0u8; 7];
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            delivered += n;
            let behind = l.ciphertext_size(delivered as u64).unwrap() as usize;
            assert!(
                read.load(Relaxed) <= behind + 2 * seg,
                "{name}: read too far ahead"
            );
        }
        assert_eq!(delivered, pt.len());
        // Encrypting: ciphertext written keeps up within two segments.
        let written = Arc::new(AtomicUsize::new(0));
        let sink = Counting {
            inner: tokio::io::sink(),
            count: Arc::clone(&written),
        };
        let mut w = s.encrypting_writer(sink, b"").unwrap();
        for (i, chunk) in pt.chunks(13).enumerate() {
            w.write_all(chunk).await.unwrap();
            let given = (i * 13 + chunk.len()) as u64;
            let due = l.ciphertext_size(given).unwrap() as usize;
            assert!(
                written.load(Relaxed) + 2 * seg >= due,
                "{name}: buffered too much"
            );
        }
        w.shutdown().await.unwrap();
        assert_eq!(written.load(Relaxed), ct.len());
    }
}
