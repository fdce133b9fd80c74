//! Keyset AEAD throughput: encstore's `KeysetAead` (Tink prefix + primary
//! key, prefix lookup on decrypt) against raw ring AES-256-GCM and
//! tink-rust 0.3, and decryption with 1 key against 1,000 keys in the
//! keyset.
//!
//! Encryption needs a fresh nonce per message, so the reference is ring
//! with a nonce from a user-space CSPRNG (`rand::rng()`, ChaCha12 in
//! thread-local memory: fast, but not fork-safe), next to ring with no
//! randomness at all (a counter) and ring with one `getrandom` system call
//! per nonce. The nonce sources alone are measured first.
//!
//! Run: `cargo bench -p encstore-tink --bench keyset` (or `just bench`).
//!
//! Same method and harness (`benches/harness/mod.rs`) as `benches/aead.rs`
//! (the primitives benchmark): the cases of a group run in interleaved
//! rounds, each case reports the median of `ROUNDS` samples and its
//! throughput ratio to the group's first case (the reference), measured in
//! the same run.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use encstore_core::Aead;
use encstore_tink::primitives::testing::fill_nonce;
use encstore_tink::{Keyset, KeysetAead, primitives, templates};
use rand::Rng;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

mod harness;

use harness::{
    Harness, bench, ring_open_owned_copy, ring_open_reused, ring_seal_in_place,
    ring_seal_zero_nonce,
};

/// Samples per case; the median is reported.
const ROUNDS: usize = 15;
/// Target wall time of one sample.
const SAMPLE_TIME: Duration = Duration::from_millis(4);

/// Runs `cases` interleaved; prints median ns/op, GB/s, the throughput
/// ratio to the first case and the difference in ns/op.
fn run_group(title: &str, bytes: usize, cases: Vec<harness::Case<'_>>, rounds: usize) {
    Harness {
        rounds,
        sample_time: SAMPLE_TIME,
        min_column: false,
    }
    .run_group(title, bytes, cases);
}

fn template() -> encstore_tink::KeyTemplate {
    templates::by_name("AES256_GCM").expect("template")
}

/// A keyset of `n` AES-256-GCM TINK keys; the primary is the last added.
fn keyset_with(n: usize) -> Keyset {
    let mut ks = Keyset::generate(&template()).expect("generate");
    for _ in 1..n {
        ks.rotate(&template()).expect("rotate");
    }
    ks
}

const AD: &[u8] = b"certmagic/acme/example.com.key";

/// A 12-byte nonce from the user-space CSPRNG (`rand::rng()`).
fn user_space_nonce() -> Nonce {
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    Nonce::assume_unique_for_key(nonce)
}

/// A 12-byte nonce from one `getrandom` system call.
fn os_nonce() -> Nonce {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).expect("random");
    Nonce::assume_unique_for_key(nonce)
}

/// ring sealing `buf` in place under `nonce()`.
fn ring_seal_with<'a>(
    key: &'a LessSafeKey,
    nonce: fn() -> Nonce,
    buf: &'a mut [u8],
) -> impl FnMut() + 'a {
    move || {
        let tag = key
            .seal_in_place_separate_tag(nonce(), Aad::from(AD), black_box(&mut *buf))
            .expect("seals");
        let _ = black_box(tag);
    }
}

/// The nonce sources alone: 12 bytes each.
fn nonce_sources(rounds: usize) {
    let cases = vec![
        bench("rand::rng() (user-space ChaCha12) [reference]", || {
            black_box(user_space_nonce());
        }),
        bench(
            format!("encstore nonce ({:?})", primitives::nonce_source()),
            || {
                let mut nonce = [0u8; 12];
                fill_nonce(&mut nonce).expect("random");
                black_box(nonce);
            },
        ),
        bench("getrandom system call", || {
            black_box(os_nonce());
        }),
        bench(
            "getpid system call (what a fork check per nonce costs)",
            || {
                black_box(std::process::id());
            },
        ),
    ];
    run_group("12-byte nonce alone", 12, cases, rounds);
}

/// Keyset AEAD vs raw ring AES-256-GCM and tink-rust, encrypt and decrypt.
fn keyset_vs_ring(size: usize, aead: &KeysetAead, tink: &dyn tink_core::Aead, rounds: usize) {
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[0x42; 32]).expect("key"));
    let pt = vec![0x5au8; size];
    let mut n1 = 0u64;
    let mut in_place_user = pt.clone();
    let mut in_place_counter = pt.clone();
    let mut in_place_os = pt.clone();
    let headroom = aead.encrypt_headroom();
    let mut ours_in_place = vec![0u8; headroom];
    ours_in_place.extend_from_slice(&pt);

    let encrypt = vec![
        bench(
            "ring in place, user-space random nonce [reference]",
            ring_seal_with(&ring_key, user_space_nonce, &mut in_place_user),
        ),
        bench(
            "ring in place, counter nonce (no randomness)",
            ring_seal_in_place(&ring_key, &mut n1, AD, &mut in_place_counter),
        ),
        bench(
            "ring in place, OS nonce (getrandom call) per message",
            ring_seal_with(&ring_key, os_nonce, &mut in_place_os),
        ),
        bench(
            "encstore KeysetAead::encrypt_in_place (reused buffer)",
            || {
                ours_in_place.truncate(headroom + size);
                aead.encrypt_in_place(black_box(&mut ours_in_place), AD)
                    .expect("encrypts");
            },
        ),
        bench(
            "ring into a new Vec (copy + seal + tag), user-space nonce",
            || {
                let mut v = Vec::with_capacity(size + 16);
                v.extend_from_slice(black_box(&pt));
                let tag = ring_key
                    .seal_in_place_separate_tag(user_space_nonce(), Aad::from(AD), &mut v)
                    .expect("seals");
                v.extend_from_slice(tag.as_ref());
                black_box(v);
            },
        ),
        bench("encstore KeysetAead::encrypt (new Vec)", || {
            black_box(aead.encrypt(black_box(&pt), AD).expect("encrypts"));
        }),
        bench("tink-rust 0.3 Aead::encrypt (new Vec)", || {
            black_box(tink.encrypt(black_box(&pt), AD).expect("encrypts"));
        }),
    ];
    run_group(
        "AES-256-GCM encrypt: keyset AEAD vs ring and tink-rust",
        size,
        encrypt,
        rounds,
    );

    let ring_ct = ring_seal_zero_nonce(&ring_key, &pt, AD);
    let mut ring_buf = Vec::with_capacity(ring_ct.len());
    let ct = aead.encrypt(&pt, AD).expect("encrypts");
    let mut owned_buf = Vec::with_capacity(ct.len());

    let decrypt = vec![
        bench(
            "ring open, ct copied into reused buffer [reference]",
            ring_open_reused(&ring_key, &ring_ct, AD, &mut ring_buf),
        ),
        bench(
            "ring open of a new Vec copy (to_vec + open + truncate)",
            ring_open_owned_copy(&ring_key, &ring_ct, AD),
        ),
        bench(
            "encstore KeysetAead::decrypt (borrowed ct, new Vec)",
            || {
                black_box(aead.decrypt(black_box(&ct), AD).expect("opens"));
            },
        ),
        bench(
            "encstore KeysetAead::decrypt_owned (ct copied into a Vec first)",
            || {
                let mut v = std::mem::take(&mut owned_buf);
                v.clear();
                v.extend_from_slice(black_box(&ct));
                owned_buf = aead.decrypt_owned(v, AD).expect("opens");
            },
        ),
    ];
    run_group(
        "AES-256-GCM decrypt: keyset AEAD vs ring",
        size,
        decrypt,
        rounds,
    );
}

/// Decrypt cost with 1 key against 1,000 keys (ciphertexts of the oldest,
/// a middle and the newest key of the big keyset).
fn one_vs_thousand(
    size: usize,
    one: &KeysetAead,
    thousand: &KeysetAead,
    old: &[Vec<u8>],
    rounds: usize,
) {
    let pt = vec![0x5au8; size];
    let ct_one = one.encrypt(&pt, AD).expect("encrypts");
    let ct_new = thousand.encrypt(&pt, AD).expect("encrypts");
    let ct_old: Vec<Vec<u8>> = old.to_vec();
    let cases = vec![
        bench("decrypt, keyset of 1 key [reference]", || {
            black_box(one.decrypt(black_box(&ct_one), AD).expect("opens"));
        }),
        bench("decrypt, keyset of 1,000 keys, newest key", || {
            black_box(thousand.decrypt(black_box(&ct_new), AD).expect("opens"));
        }),
        bench("decrypt, keyset of 1,000 keys, key #500", || {
            black_box(thousand.decrypt(black_box(&ct_old[1]), AD).expect("opens"));
        }),
        bench("decrypt, keyset of 1,000 keys, oldest key", || {
            black_box(thousand.decrypt(black_box(&ct_old[0]), AD).expect("opens"));
        }),
    ];
    run_group("Decrypt: 1 key vs 1,000 keys", size, cases, rounds);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too,
    // and then only checks that every case works, quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { ROUNDS };
    let one = keyset_with(1).aead().expect("aead");

    // A 1,000-key keyset whose key #1 and #500 wrote some ciphertexts.
    let mut big = Keyset::generate(&template()).expect("generate");
    let mut olds = Vec::new();
    for i in 1..1000 {
        if i == 1 || i == 500 {
            let pt = vec![0x5au8; 64];
            olds.push(
                big.aead()
                    .expect("aead")
                    .encrypt(&pt, AD)
                    .expect("encrypts"),
            );
        }
        big.rotate(&template()).expect("rotate");
    }
    let thousand = big.aead().expect("aead");

    // tink-rust 0.3: its global registry, then an AES256_GCM (TINK) keyset.
    tink_aead::init();
    let tink_handle =
        tink_core::keyset::Handle::new(&tink_aead::aes256_gcm_key_template()).expect("tink keyset");
    let tink = tink_aead::new(&tink_handle).expect("tink aead");

    println!("# encstore-tink keyset AEAD benchmark (one core, medians, interleaved rounds)");
    let sizes: &[usize] = if quick {
        &[64]
    } else {
        &[64, 1 << 10, 16 << 10, 1 << 20]
    };
    nonce_sources(rounds);
    for &size in sizes {
        keyset_vs_ring(size, &one, &*tink, rounds);
    }
    one_vs_thousand(64, &one, &thousand, &olds, rounds);
    if quick {
        println!("(quick run: pass --bench for the full measurement)");
    }
}
