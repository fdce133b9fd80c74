//! AEAD throughput: encstore's raw primitives against raw ring.
//!
//! Run: `cargo bench -p encstore-tink --bench aead` (or `just bench`).
//!
//! A bench binary without criterion, on the harness shared with
//! `benches/keyset.rs` (`benches/harness/mod.rs`): every case of a group
//! runs in interleaved rounds (round 1 of each case, then round 2 of each,
//! …), so slow drifts of a shared machine hit all cases alike; each case
//! reports the median of 31 samples, and its ratio to the group's first case
//! (the reference) measured in the same run.
//!
//! To add a comparison, build a `Vec` of [`bench`] cases, reference first,
//! and pass it to [`run_group`] (the keyset-AEAD vs ring and 1 vs 1,000 keys
//! groups of `benches/keyset.rs` go in the same way).

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use encstore_tink::primitives::TYPE_URL_PREFIX;
use encstore_tink::primitives::testing::{RawPrimitive, new_key_data_value};
use prost::Message;
use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, UnboundKey};

mod harness;

use harness::{
    Harness, bench, counter_nonce, ring_open_owned_copy, ring_open_reused, ring_seal_in_place,
    ring_seal_zero_nonce,
};

/// Samples per case; the median is reported (and the minimum, which a
/// shared, busy machine disturbs least). Target wall time of one sample:
/// short, so that fewer samples are hit by a preemption on a shared
/// machine.
const HARNESS: Harness = Harness {
    rounds: 31,
    sample_time: Duration::from_millis(1),
    min_column: true,
};

/// Runs `cases` interleaved (see [`Harness::run_group`]).
fn run_group(title: &str, bytes: usize, cases: Vec<harness::Case<'_>>) {
    HARNESS.run_group(title, bytes, cases);
}

/// A fresh key of `type_name` from a key-format proto, loaded through the
/// real path (`new_key_data_value` then `primitive_from_key_data`).
fn primitive(type_name: &str, format: &[u8]) -> RawPrimitive {
    let url = format!("{TYPE_URL_PREFIX}{type_name}");
    let key = new_key_data_value(&url, format).expect("key generates");
    RawPrimitive::from_key_data(&url, &key).expect("key loads")
}

fn aes_gcm(key_size: u32) -> RawPrimitive {
    let format = tink_proto::AesGcmKeyFormat {
        key_size,
        version: 0,
    };
    primitive("AesGcmKey", &format.encode_to_vec())
}

/// AES-256-GCM: raw ring against encstore's `AesGcmKey` primitive.
fn aes_gcm_vs_ring(size: usize) {
    let key_bytes = [0x42u8; 32];
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).expect("key"));
    let ours = aes_gcm(32);
    let pt = vec![0x5au8; size];
    let ad = b"certmagic/acme/example.com.key";

    let mut n = 0u64;
    let mut in_place = pt.clone();
    let mut in_place_rep = pt.clone();
    let mut copy_out: Vec<u8> = Vec::with_capacity(size + 64);
    let mut n_rep = 0u64;
    let mut owned_n = 0u64;
    let mut seal_out = Vec::with_capacity(size + 64);

    let ring_ct = ring_seal_zero_nonce(&ring_key, &pt, ad);
    let mut ring_buf = Vec::with_capacity(ring_ct.len());
    let mut ring_buf2 = Vec::with_capacity(ring_ct.len());

    let mut our_ct = Vec::new();
    ours.seal_append(&pt, ad, &mut our_ct).expect("seals");
    let mut our_buf = Vec::with_capacity(our_ct.len());

    let encrypt = vec![
        bench(
            "(a) ring seal in place, reused buffer [reference]",
            ring_seal_in_place(&ring_key, &mut n, ad, &mut in_place),
        ),
        bench(
            "(b) ring seal of an owned copy (to_vec + seal + tag)",
            || {
                let mut v = black_box(&pt).to_vec();
                let tag = ring_key
                    .seal_in_place_separate_tag(counter_nonce(&mut owned_n), Aad::from(ad), &mut v)
                    .expect("seals");
                v.extend_from_slice(tag.as_ref());
                black_box(v);
            },
        ),
        bench("(c) encstore AesGcm seal_append, reused Vec", || {
            seal_out.clear();
            ours.seal_append(black_box(&pt), ad, &mut seal_out)
                .expect("seals");
            black_box(&seal_out);
        }),
        bench(
            "(a) ring seal in place, own buffer [reference, repeated]",
            ring_seal_in_place(&ring_key, &mut n_rep, ad, &mut in_place_rep),
        ),
        bench("    getrandom of a 12-byte nonce alone", || {
            let mut nonce = [0u8; 12];
            getrandom::fill(&mut nonce).expect("random");
            black_box(nonce);
        }),
        bench("    copy of the plaintext into a reused Vec alone", || {
            copy_out.clear();
            copy_out.extend_from_slice(black_box(&pt));
            black_box(&copy_out);
        }),
        bench("    getpid alone (what a fork check would cost)", || {
            black_box(std::process::id());
        }),
    ];
    run_group("AES-256-GCM encrypt", size, encrypt);

    let decrypt = vec![
        bench(
            "(d) ring open_within, ct copied into reused buffer [reference]",
            ring_open_reused(&ring_key, &ring_ct, ad, &mut ring_buf),
        ),
        bench(
            "(d) ring open of an owned copy (to_vec + open)",
            ring_open_owned_copy(&ring_key, &ring_ct, ad),
        ),
        bench(
            "(d) encstore open_in_place, ct copied into reused Vec",
            || {
                our_buf.clear();
                our_buf.extend_from_slice(black_box(&our_ct));
                ours.open_in_place(&mut our_buf, 0, ad).expect("opens");
                black_box(&our_buf);
            },
        ),
        bench("(d) encstore open (borrowed ct, new Vec)", || {
            black_box(ours.open(black_box(&our_ct), ad).expect("opens"));
        }),
        bench(
            "(d) ring open_within, own buffer [reference, repeated]",
            ring_open_reused(&ring_key, &ring_ct, ad, &mut ring_buf2),
        ),
    ];
    run_group("AES-256-GCM decrypt", size, decrypt);
}

/// Every key type's seal_append and open_in_place, with raw ring
/// AES-256-GCM in place as the reference.
fn all_primitives(size: usize) {
    let eax = |key_size, iv_size| {
        let f = tink_proto::AesEaxKeyFormat {
            params: Some(tink_proto::AesEaxParams { iv_size }),
            key_size,
        };
        primitive("AesEaxKey", &f.encode_to_vec())
    };
    let siv = |key_size| {
        let f = tink_proto::AesGcmSivKeyFormat {
            key_size,
            version: 0,
        };
        primitive("AesGcmSivKey", &f.encode_to_vec())
    };
    let ctr_hmac = |aes, hash: tink_proto::HashType, tag| {
        let f = tink_proto::AesCtrHmacAeadKeyFormat {
            aes_ctr_key_format: Some(tink_proto::AesCtrKeyFormat {
                params: Some(tink_proto::AesCtrParams { iv_size: 16 }),
                key_size: aes,
            }),
            hmac_key_format: Some(tink_proto::HmacKeyFormat {
                params: Some(tink_proto::HmacParams {
                    hash: hash as i32,
                    tag_size: tag,
                }),
                key_size: 32,
                version: 0,
            }),
        };
        primitive("AesCtrHmacAeadKey", &f.encode_to_vec())
    };
    // XAesGcmKeyFormat { version: 0, params (field 3): { salt_size: 12 } }.
    let xaes_format = [0x1a, 0x02, 0x08, 0x0c];
    let prims: Vec<(&str, RawPrimitive)> = vec![
        ("AesGcmKey AES-128", aes_gcm(16)),
        ("AesGcmKey AES-256", aes_gcm(32)),
        ("AesGcmSivKey AES-128", siv(16)),
        ("AesGcmSivKey AES-256", siv(32)),
        ("AesEaxKey AES-128 iv16", eax(16, 16)),
        ("AesEaxKey AES-256 iv12", eax(32, 12)),
        (
            "AesCtrHmacAeadKey AES-128 SHA256 tag16",
            ctr_hmac(16, tink_proto::HashType::Sha256, 16),
        ),
        (
            "AesCtrHmacAeadKey AES-256 SHA512 tag32",
            ctr_hmac(32, tink_proto::HashType::Sha512, 32),
        ),
        ("ChaCha20Poly1305Key", primitive("ChaCha20Poly1305Key", &[])),
        (
            "XChaCha20Poly1305Key",
            primitive("XChaCha20Poly1305Key", &[]),
        ),
        ("XAesGcmKey salt 12", primitive("XAesGcmKey", &xaes_format)),
    ];
    let pt = vec![0x5au8; size];
    let ad = b"certmagic/acme/example.com.key";
    let ring_aes = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).expect("key"));
    let ring_chacha = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7; 32]).expect("key"));

    // Buffers outlive the cases that borrow them.
    let mut outs: Vec<Vec<u8>> = prims
        .iter()
        .map(|_| Vec::with_capacity(size + 128))
        .collect();
    let cts: Vec<Vec<u8>> = prims
        .iter()
        .map(|(_, p)| {
            let mut ct = Vec::new();
            p.seal_append(&pt, ad, &mut ct).expect("seals");
            ct
        })
        .collect();
    let mut bufs: Vec<Vec<u8>> = cts.iter().map(|c| Vec::with_capacity(c.len())).collect();

    let (mut n1, mut n2, mut n3) = (0u64, 0u64, 0u64);
    let (mut b1, mut b2, mut b3) = (pt.clone(), pt.clone(), pt.clone());
    let mut seal_cases = vec![
        bench(
            "ring AES-256-GCM seal in place [reference]",
            ring_seal_in_place(&ring_aes, &mut n1, ad, &mut b1),
        ),
        bench(
            "ring AES-256-GCM seal in place [reference, repeated]",
            ring_seal_in_place(&ring_aes, &mut n3, ad, &mut b3),
        ),
        bench(
            "ring ChaCha20-Poly1305 seal in place",
            ring_seal_in_place(&ring_chacha, &mut n2, ad, &mut b2),
        ),
    ];
    for ((name, p), out) in prims.iter().zip(outs.iter_mut()) {
        let pt = &pt;
        seal_cases.push(bench(format!("{name} seal_append"), move || {
            out.clear();
            p.seal_append(black_box(pt), ad, out).expect("seals");
            black_box(&*out);
        }));
    }
    run_group("Encrypt, every key type", size, seal_cases);

    let ring_ct = ring_seal_zero_nonce(&ring_aes, &pt, ad);
    let mut ring_buf = Vec::with_capacity(ring_ct.len());
    let mut ring_buf_rep = Vec::with_capacity(ring_ct.len());
    let mut open_cases = vec![bench(
        "ring AES-256-GCM open_within, ct copied into reused buffer [reference]",
        ring_open_reused(&ring_aes, &ring_ct, ad, &mut ring_buf),
    )];
    open_cases.push(bench(
        "ring AES-256-GCM open_within, own buffer [reference, repeated]",
        ring_open_reused(&ring_aes, &ring_ct, ad, &mut ring_buf_rep),
    ));
    for (((name, p), ct), buf) in prims.iter().zip(&cts).zip(bufs.iter_mut()) {
        open_cases.push(bench(format!("{name} open_in_place"), move || {
            buf.clear();
            buf.extend_from_slice(black_box(ct));
            p.open_in_place(buf, 0, ad).expect("opens");
            black_box(&*buf);
        }));
    }
    run_group("Decrypt, every key type", size, open_cases);
}

/// The building blocks of the non-GCM key types, to show what bounds them:
/// AES-CTR, AES-CMAC and HMAC from RustCrypto, and ring's HMAC.
fn building_blocks(size: usize) {
    use aes::cipher::{KeyInit, KeyIvInit, StreamCipher};
    use hmac::Mac;

    let data = vec![0x5au8; size];
    let mut buf = data.clone();
    let ring_sha256 = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[1; 32]);
    let ring_sha512 = ring::hmac::Key::new(ring::hmac::HMAC_SHA512, &[1; 32]);
    let rc_sha256 = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&[1; 32]).expect("key");
    let rc_sha512 = <hmac::Hmac<sha2::Sha512> as KeyInit>::new_from_slice(&[1; 32]).expect("key");
    let cmac128 = <cmac::Cmac<aes::Aes128> as KeyInit>::new_from_slice(&[1; 16]).expect("key");
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).expect("key"));
    let mut n = 0u64;
    let mut gcm_buf = data.clone();
    let cases = vec![
        bench("ring AES-256-GCM seal in place [reference]", || {
            let _ = black_box(
                ring_key
                    .seal_in_place_separate_tag(counter_nonce(&mut n), Aad::empty(), &mut gcm_buf)
                    .expect("seals"),
            );
        }),
        bench("RustCrypto AES-128-CTR (ctr 0.10)", || {
            let mut c = ctr::Ctr128BE::<aes::Aes128>::new(&[1; 16].into(), &[0; 16].into());
            c.apply_keystream(&mut buf);
            black_box(&buf);
        }),
        bench("RustCrypto AES-128-CMAC (cmac 0.8)", || {
            let mut m = cmac128.clone();
            m.update(black_box(&data));
            black_box(m.finalize());
        }),
        bench("RustCrypto HMAC-SHA256 (hmac 0.13, sha2 0.11)", || {
            let mut m = rc_sha256.clone();
            m.update(black_box(&data));
            black_box(m.finalize());
        }),
        bench("ring HMAC-SHA256", || {
            black_box(ring::hmac::sign(&ring_sha256, black_box(&data)));
        }),
        bench("RustCrypto HMAC-SHA512", || {
            let mut m = rc_sha512.clone();
            m.update(black_box(&data));
            black_box(m.finalize());
        }),
        bench("ring HMAC-SHA512", || {
            black_box(ring::hmac::sign(&ring_sha512, black_box(&data)));
        }),
    ];
    run_group("Building blocks", size, cases);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it too, so
    // in that case only check that every case works, quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    if quick {
        aes_gcm_vs_ring(64);
        println!("(quick run: pass --bench for the full measurement)");
        return;
    }
    // An optional filter argument runs only the groups whose name has it:
    // `cargo bench --bench aead -- blocks`.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    let wanted = |group: &str| group.contains(filter.as_str());
    println!("# encstore-tink AEAD benchmark (one core, medians, interleaved rounds)");
    if wanted("aes-gcm") {
        for size in [64, 1 << 10, 16 << 10, 1 << 20] {
            aes_gcm_vs_ring(size);
        }
    }
    if wanted("all") {
        for size in [64, 16 << 10, 1 << 20] {
            all_primitives(size);
        }
    }
    if wanted("blocks") {
        building_blocks(1 << 20);
    }
}
