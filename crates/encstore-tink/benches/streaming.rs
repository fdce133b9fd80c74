//! Streaming AEAD throughput, 1 MiB segments, from memory, one core:
//! encstore's sync cores and async adapters against ring one-shot
//! AES-256-GCM over the same segments, and against tink-rust 0.3's
//! streaming AEAD, measured in one run.
//!
//! Run: `cargo bench -p encstore-tink --bench streaming` (256 MiB per
//! operation; `ENCSTORE_BENCH_STREAM_MIB=1024` for 1 GiB).
//!
//! Same harness as the other benches (`benches/harness/mod.rs`): the cases
//! of a group run in interleaved rounds; each reports the median of its
//! samples and its throughput ratio to the group's first case.
//!
//! - ring reference, encrypt: `seal_in_place_separate_tag` over each
//!   plaintext segment (1 MiB - 16 bytes) of the buffer, in place, counter
//!   nonces; and the same after copying each segment into a reused buffer
//!   (the data movement of any encryptor reading a borrowed buffer: ring
//!   only seals in place). Decrypt: each genuine ciphertext segment copied into a reused
//!   1 MiB buffer and opened in place (a segment opened in place cannot be
//!   opened again).
//! - encstore sync core: `StreamEncryptor` / `StreamDecryptor` fed from the
//!   buffer through their zero-copy input buffers (one copy into the
//!   segment buffer), output taken in place.
//! - encstore segment API: `SegmentEncryptor` sealing each segment of the
//!   buffer in place with a detached tag (the data movement of ring's in
//!   place reference), and sealing each segment after copying it into a
//!   reused buffer, tag appended (of ring's copy-then-seal row);
//!   `SegmentDecryptor` opening each ciphertext segment after copying it
//!   into a reused buffer (of ring's decrypt reference).
//! - encstore async: `EncryptingWriter` into `tokio::io::sink()` (1 MiB
//!   writes), `EncryptingReader` and `DecryptingReader` over a `&[u8]`,
//!   read into a reused 1 MiB buffer; on a current-thread runtime.
//! - encstore random access: `RandomAccessReader` over `Bytes`, every
//!   segment's plaintext range read in turn.
//! - tink-rust: `new_encrypting_writer` into `io::sink()`, and
//!   `new_decrypting_reader` over the ciphertext, read into a reused 1 MiB
//!   buffer.

#![allow(missing_docs)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use encstore_tink::{Keyset, KeysetStreamingAead, templates};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, UnboundKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// The ring helpers of the shared harness are for the other benches.
#[allow(dead_code)]
mod harness;

use harness::{Harness, bench, counter_nonce};

const MIB: usize = 1 << 20;
const AD: &[u8] = b"objects/large.bin";

fn total_bytes() -> usize {
    std::env::var("ENCSTORE_BENCH_STREAM_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(256)
        * MIB
}

fn streaming(name: &str) -> (Keyset, KeysetStreamingAead) {
    let ks = Keyset::generate(&templates::by_name(name).expect("template")).expect("keyset");
    let s = ks.streaming_aead().expect("streaming");
    (ks, s)
}

fn tink_rust(ks: &Keyset) -> Box<dyn tink_core::StreamingAead> {
    tink_streaming_aead::init();
    let json = ks.to_json_insecure();
    let h = tink_core::keyset::insecure::read(&mut tink_core::keyset::JsonReader::new(&json[..]))
        .expect("tink-rust reads the keyset");
    tink_streaming_aead::new(&h).expect("tink-rust primitive")
}

/// Encrypts `pt` with the sync core, taking output in place.
fn sync_encrypt(s: &KeysetStreamingAead, pt: &[u8]) {
    let mut enc = s.encryptor(AD).expect("encryptor");
    let mut rest = pt;
    loop {
        let out = enc.output();
        if !out.is_empty() {
            let n = black_box(out).len();
            enc.consume(n);
            continue;
        }
        if rest.is_empty() {
            break;
        }
        let space = enc.input_buffer();
        if space.is_empty() {
            let n = enc.write(rest).expect("write");
            rest = &rest[n..];
        } else {
            let n = space.len().min(rest.len());
            space[..n].copy_from_slice(&rest[..n]);
            enc.commit(n);
            rest = &rest[n..];
        }
    }
    enc.finish();
    while !enc.is_done() {
        let n = black_box(enc.output()).len();
        enc.consume(n);
    }
}

/// Seals `buf` in place with the segment API, segment by segment
/// (detached tags).
fn segment_seal_in_place(s: &KeysetStreamingAead, buf: &mut [u8]) {
    let mut enc = s.segment_encryptor(AD).expect("encryptor");
    black_box(enc.header());
    let mut rest = buf;
    loop {
        let n = enc.segment_plaintext_size().min(rest.len());
        let last = n == rest.len();
        let (segment, tail) = rest.split_at_mut(n);
        let tag = enc.seal_segment_detached(segment, last).expect("seal");
        black_box(tag);
        rest = tail;
        if last {
            break;
        }
    }
}

/// Seals `pt` with the segment API, each segment copied into a reused
/// buffer first (the tag appended to it).
fn segment_seal_copied(s: &KeysetStreamingAead, pt: &[u8], buf: &mut Vec<u8>) {
    let mut enc = s.segment_encryptor(AD).expect("encryptor");
    black_box(enc.header());
    let mut rest = pt;
    loop {
        let n = enc.segment_plaintext_size().min(rest.len());
        let last = n == rest.len();
        buf.clear();
        buf.extend_from_slice(&rest[..n]);
        enc.seal_segment(buf, last).expect("seal");
        black_box(&buf);
        rest = &rest[n..];
        if last {
            break;
        }
    }
}

/// Opens `ct` with the segment API, each segment copied into a reused
/// buffer and opened there.
fn segment_open_copied(s: &KeysetStreamingAead, ct: &[u8], buf: &mut Vec<u8>) {
    let h = usize::from(ct[0]);
    let mut dec = s.segment_decryptor(&ct[..h], AD).expect("header");
    let layout = dec.layout();
    let size = ct.len() as u64;
    let segments = layout.segment_count(size).expect("size");
    for i in 0..segments {
        let r = layout.segment_ciphertext_range(i, size).expect("range");
        buf.clear();
        buf.extend_from_slice(&ct[r.start as usize..r.end as usize]);
        dec.open_segment(buf, i + 1 == segments).expect("genuine");
        black_box(&buf);
    }
    assert!(dec.is_done());
}

/// Opens `ct` with the segment API out of place: each segment read from
/// the borrowed ciphertext and decrypted into a reused buffer
/// (`open_segment_to`: one pass under aws-lc-rs, copy + open under ring).
fn segment_open_to(s: &KeysetStreamingAead, ct: &[u8], out: &mut [u8]) {
    let h = usize::from(ct[0]);
    let mut dec = s.segment_decryptor(&ct[..h], AD).expect("header");
    let layout = dec.layout();
    let size = ct.len() as u64;
    let segments = layout.segment_count(size).expect("size");
    for i in 0..segments {
        let r = layout.segment_ciphertext_range(i, size).expect("range");
        let n = dec
            .open_segment_to(
                &ct[r.start as usize..r.end as usize],
                i + 1 == segments,
                out,
            )
            .expect("genuine");
        black_box(&out[..n]);
    }
    assert!(dec.is_done());
}

/// Decrypts `ct` with the sync core, taking plaintext in place.
fn sync_decrypt(s: &KeysetStreamingAead, ct: &[u8]) {
    let mut dec = s.decryptor(AD);
    let mut rest = ct;
    loop {
        let p = dec.plaintext();
        if !p.is_empty() {
            let n = black_box(p).len();
            dec.consume(n).expect("genuine");
            continue;
        }
        if dec.is_done() {
            break;
        }
        if rest.is_empty() {
            dec.finish().expect("genuine");
            continue;
        }
        let space = dec.input_buffer();
        let n = space.len().min(rest.len());
        space[..n].copy_from_slice(&rest[..n]);
        dec.commit(n).expect("genuine");
        rest = &rest[n..];
    }
}

fn main() {
    let total = total_bytes();
    let rounds = 9;
    let h = Harness {
        rounds,
        sample_time: Duration::ZERO,
        min_column: true,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    println!(
        "Streaming AEAD, {} MiB per operation, 1 MiB segments, one core",
        total / MIB
    );

    // ---------------------------------------------------- AES-256-GCM-HKDF
    let (ks, s) = streaming("AES256_GCM_HKDF_1MB");
    let layout = s.layout();
    let pt: Vec<u8> = (0..total).map(|i| (i as u8).wrapping_mul(31)).collect();
    let ct = s.encrypt(&pt, AD).expect("encrypt");
    assert_eq!(s.decrypt(&ct, AD).expect("decrypt"), pt);
    let ct_bytes = Bytes::from(ct.clone());
    let theirs = tink_rust(&ks);
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[0x42; 32]).expect("key"));
    let seg_pt = layout.plaintext_segment_size() as usize;
    let seg_ct = layout.ciphertext_segment_size() as usize;

    let mut in_place = pt.clone();
    let mut in_place_segments = pt.clone();
    let mut seg_buf = Vec::with_capacity(layout.ciphertext_segment_size() as usize);
    let mut n1 = 0u64;
    let mut n2 = 0u64;
    // Genuine ring ciphertext segments (nonce = segment number).
    let ring_ct: Vec<u8> = {
        let mut v = Vec::with_capacity(total + total / seg_pt * 16 + 16);
        for (i, chunk) in pt.chunks(seg_pt).enumerate() {
            let start = v.len();
            v.extend_from_slice(chunk);
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
            let tag = ring_key
                .seal_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    Aad::from(AD),
                    &mut v[start..],
                )
                .expect("seal");
            v.extend_from_slice(tag.as_ref());
        }
        v
    };
    let mut scratch = vec![0u8; seg_ct];
    let mut scratch_dec = vec![0u8; seg_ct];
    let mut open_to_buf = vec![0u8; seg_ct];

    let encrypt = vec![
        bench(
            "ring AES-256-GCM one-shot per 1 MiB segment, in place [reference]",
            || {
                for chunk in in_place.chunks_mut(seg_pt) {
                    let tag = ring_key
                        .seal_in_place_separate_tag(counter_nonce(&mut n1), Aad::from(AD), chunk)
                        .expect("seal");
                    let _ = black_box(tag);
                }
            },
        ),
        bench(
            "ring AES-256-GCM, each segment copied into a reused 1 MiB buffer + sealed in place",
            || {
                for chunk in pt.chunks(seg_pt) {
                    let buf = &mut scratch[..chunk.len()];
                    buf.copy_from_slice(chunk);
                    let tag = ring_key
                        .seal_in_place_separate_tag(counter_nonce(&mut n2), Aad::from(AD), buf)
                        .expect("seal");
                    let _ = black_box(tag);
                }
            },
        ),
        bench(
            "encstore SegmentEncryptor, each segment sealed in place (detached tag)",
            || segment_seal_in_place(&s, &mut in_place_segments),
        ),
        bench(
            "encstore SegmentEncryptor, each segment copied into a reused buffer + sealed in place",
            || segment_seal_copied(&s, &pt, &mut seg_buf),
        ),
        bench("encstore StreamEncryptor (sync core)", || {
            sync_encrypt(&s, &pt)
        }),
        bench("encstore EncryptingWriter (async) -> sink", || {
            rt.block_on(async {
                let mut w = s.encrypting_writer(tokio::io::sink(), AD).expect("writer");
                for chunk in pt.chunks(MIB) {
                    w.write_all(chunk).await.expect("write");
                }
                w.shutdown().await.expect("shutdown");
            });
        }),
        bench("encstore EncryptingReader (async) over &[u8]", || {
            rt.block_on(async {
                let mut r = s.encrypting_reader(&pt[..], AD).expect("reader");
                let mut buf = vec![0u8; MIB];
                while r.read(&mut buf).await.expect("read") > 0 {
                    black_box(&buf);
                }
            });
        }),
        bench("tink-rust 0.3 encrypting writer -> io::sink", || {
            let mut w = theirs
                .new_encrypting_writer(Box::new(std::io::sink()), AD)
                .expect("writer");
            for chunk in pt.chunks(MIB) {
                w.write_all(chunk).expect("write");
            }
            w.close().expect("close");
        }),
    ];
    h.run_group("Encrypt, AES256_GCM_HKDF_1MB", total, encrypt);

    let mut read_buf = vec![0u8; MIB];
    let decrypt = vec![
        bench(
            "ring AES-256-GCM one-shot per 1 MiB segment, copy + open in place [reference]",
            || {
                for (i, chunk) in ring_ct.chunks(seg_pt + 16).enumerate() {
                    let buf = &mut scratch_dec[..chunk.len()];
                    buf.copy_from_slice(chunk);
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
                    let p = ring_key
                        .open_in_place(
                            ring::aead::Nonce::assume_unique_for_key(nonce),
                            Aad::from(AD),
                            buf,
                        )
                        .expect("open");
                    black_box(p);
                }
            },
        ),
        bench(
            "encstore SegmentDecryptor, each segment copied into a reused buffer + opened in place",
            || segment_open_copied(&s, &ct, &mut seg_buf),
        ),
        bench(
            "encstore SegmentDecryptor open_segment_to (out of place) into a reused buffer",
            || segment_open_to(&s, &ct, &mut open_to_buf),
        ),
        bench("encstore StreamDecryptor (sync core)", || {
            sync_decrypt(&s, &ct)
        }),
        bench("encstore DecryptingReader (async) over &[u8]", || {
            rt.block_on(async {
                let mut r = s.decrypting_reader(&ct[..], AD);
                let mut buf = vec![0u8; MIB];
                while r.read(&mut buf).await.expect("read") > 0 {
                    black_box(&buf);
                }
            });
        }),
        bench("encstore RandomAccessReader, every segment in turn", || {
            rt.block_on(async {
                let r = s.open_ranged(ct_bytes.clone(), AD).await.expect("open");
                let segments = layout.segment_count(ct_bytes.len() as u64).expect("size");
                for i in 0..segments {
                    let range = layout.segment_plaintext_range(i);
                    let b = r.read_range(range).await.expect("read");
                    black_box(b);
                }
            });
        }),
        bench("tink-rust 0.3 decrypting reader", || {
            let mut r = theirs
                .new_decrypting_reader(Box::new(std::io::Cursor::new(ct_bytes.clone())), AD)
                .expect("reader");
            loop {
                let n = r.read(&mut read_buf).expect("read");
                if n == 0 {
                    break;
                }
                black_box(&read_buf[..n]);
            }
        }),
    ];
    h.run_group("Decrypt, AES256_GCM_HKDF_1MB", total, decrypt);
    drop((ct, ct_bytes, ring_ct));

    // ------------------------------------------------ AES-256-CTR-HMAC-SHA256
    let (ks, s) = streaming("AES256_CTR_HMAC_SHA256_1MB");
    let ct = s.encrypt(&pt, AD).expect("encrypt");
    let ct_bytes = Bytes::from(ct.clone());
    let theirs = tink_rust(&ks);
    let mut in_place_ctr = pt.clone();
    let ctr = vec![
        bench("encstore StreamEncryptor (sync core) [reference]", || {
            sync_encrypt(&s, &pt)
        }),
        bench(
            "encstore SegmentEncryptor, each segment sealed in place (detached tag)",
            || segment_seal_in_place(&s, &mut in_place_ctr),
        ),
        bench("tink-rust 0.3 encrypting writer -> io::sink", || {
            let mut w = theirs
                .new_encrypting_writer(Box::new(std::io::sink()), AD)
                .expect("writer");
            for chunk in pt.chunks(MIB) {
                w.write_all(chunk).expect("write");
            }
            w.close().expect("close");
        }),
        bench("encstore StreamDecryptor (sync core)", || {
            sync_decrypt(&s, &ct)
        }),
        bench(
            "encstore SegmentDecryptor, each segment copied into a reused buffer + opened in place",
            || segment_open_copied(&s, &ct, &mut seg_buf),
        ),
        bench(
            "encstore SegmentDecryptor open_segment_to (out of place) into a reused buffer",
            || segment_open_to(&s, &ct, &mut open_to_buf),
        ),
        bench("tink-rust 0.3 decrypting reader", || {
            let mut r = theirs
                .new_decrypting_reader(Box::new(std::io::Cursor::new(ct_bytes.clone())), AD)
                .expect("reader");
            loop {
                let n = r.read(&mut read_buf).expect("read");
                if n == 0 {
                    break;
                }
                black_box(&read_buf[..n]);
            }
        }),
    ];
    h.run_group(
        "Encrypt and decrypt, AES256_CTR_HMAC_SHA256_1MB",
        total,
        ctr,
    );
}
