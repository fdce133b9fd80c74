//! Keyset AEAD throughput: encstore's `KeysetAead` (Tink prefix + primary
//! key, prefix lookup on decrypt) against raw ring AES-256-GCM, and
//! decryption with 1 key against 1,000 keys in the keyset.
//!
//! Run: `cargo bench -p encstore-tink --bench keyset` (or `just bench`).
//!
//! Same method as `benches/aead.rs` (the primitives benchmark): the cases
//! of a group run in interleaved rounds, each case reports the median of
//! `ROUNDS` samples and its throughput ratio to the group's first case
//! (the reference), measured in the same run.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use encstore_core::Aead;
use encstore_tink::{Keyset, KeysetAead, templates};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

/// Samples per case; the median is reported.
const ROUNDS: usize = 15;
/// Target wall time of one sample.
const SAMPLE_TIME: Duration = Duration::from_millis(4);

/// One benchmark case: a name and one operation to time.
struct Case<'a> {
    name: String,
    op: Box<dyn FnMut() + 'a>,
}

fn bench<'a>(name: impl Into<String>, op: impl FnMut() + 'a) -> Case<'a> {
    Case {
        name: name.into(),
        op: Box::new(op),
    }
}

/// How many iterations make one sample last about `SAMPLE_TIME`.
fn calibrate(op: &mut dyn FnMut()) -> u64 {
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        let elapsed = start.elapsed();
        if elapsed >= SAMPLE_TIME / 4 || iters >= 1 << 30 {
            let per = elapsed.as_secs_f64() / iters as f64;
            return ((SAMPLE_TIME.as_secs_f64() / per) as u64).max(1);
        }
        iters *= 4;
    }
}

/// Runs `cases` interleaved; prints median ns/op, GB/s, the throughput
/// ratio to the first case and the difference in ns/op.
fn run_group(title: &str, bytes: usize, mut cases: Vec<Case<'_>>, rounds: usize) {
    let iters: Vec<u64> = cases.iter_mut().map(|c| calibrate(&mut *c.op)).collect();
    let mut samples = vec![Vec::with_capacity(rounds); cases.len()];
    for _ in 0..rounds {
        for (i, case) in cases.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..iters[i] {
                (case.op)();
            }
            samples[i].push(start.elapsed().as_secs_f64() * 1e9 / iters[i] as f64);
        }
    }
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect();
    println!("\n### {title}, {}\n", human(bytes));
    println!("| case | ns/op (median of {rounds}) | GB/s | vs reference | Δ ns/op |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (case, &ns) in cases.iter().zip(&medians) {
        println!(
            "| {} | {ns:.0} | {:.2} | {:.2} | {:+.0} |",
            case.name,
            bytes as f64 / ns,
            medians[0] / ns,
            ns - medians[0]
        );
    }
}

fn human(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
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

/// A counter nonce for the raw-ring reference (pure cipher cost).
fn counter_nonce(n: &mut u64) -> Nonce {
    *n += 1;
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

const AD: &[u8] = b"certmagic/acme/example.com.key";

/// Keyset AEAD vs raw ring AES-256-GCM, encrypt and decrypt.
fn keyset_vs_ring(size: usize, aead: &KeysetAead, rounds: usize) {
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[0x42; 32]).expect("key"));
    let pt = vec![0x5au8; size];
    let mut n1 = 0u64;
    let mut n2 = 0u64;
    let mut in_place = pt.clone();
    let mut in_place_random = pt.clone();
    let headroom = aead.encrypt_headroom();
    let mut ours_in_place = vec![0u8; headroom];
    ours_in_place.extend_from_slice(&pt);

    let encrypt = vec![
        bench("ring seal in place, reused buffer [reference]", || {
            let tag = ring_key
                .seal_in_place_separate_tag(counter_nonce(&mut n1), Aad::from(AD), &mut in_place)
                .expect("seals");
            let _ = black_box(tag);
        }),
        bench("ring seal in place, reused buffer, OS-random nonce", || {
            let mut nonce = [0u8; 12];
            getrandom::fill(&mut nonce).expect("random");
            let tag = ring_key
                .seal_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    Aad::from(AD),
                    &mut in_place_random,
                )
                .expect("seals");
            let _ = black_box(tag);
        }),
        bench(
            "encstore KeysetAead::encrypt_in_place (reused buffer, random nonce)",
            || {
                ours_in_place.truncate(headroom + size);
                aead.encrypt_in_place(black_box(&mut ours_in_place), AD)
                    .expect("encrypts");
            },
        ),
        bench("ring seal into a new Vec (copy + seal + tag)", || {
            let mut v = Vec::with_capacity(size + 16);
            v.extend_from_slice(black_box(&pt));
            let tag = ring_key
                .seal_in_place_separate_tag(counter_nonce(&mut n2), Aad::from(AD), &mut v)
                .expect("seals");
            v.extend_from_slice(tag.as_ref());
            black_box(v);
        }),
        bench(
            "encstore KeysetAead::encrypt (new Vec, random nonce)",
            || {
                black_box(aead.encrypt(black_box(&pt), AD).expect("encrypts"));
            },
        ),
    ];
    run_group(
        "AES-256-GCM encrypt: keyset AEAD vs ring",
        size,
        encrypt,
        rounds,
    );

    let mut ring_ct = pt.clone();
    let tag = ring_key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(AD),
            &mut ring_ct,
        )
        .expect("seals");
    ring_ct.extend_from_slice(tag.as_ref());
    let mut ring_buf = Vec::with_capacity(ring_ct.len());
    let ct = aead.encrypt(&pt, AD).expect("encrypts");
    let mut owned_buf = Vec::with_capacity(ct.len());

    let decrypt = vec![
        bench(
            "ring open, ct copied into reused buffer [reference]",
            || {
                ring_buf.clear();
                ring_buf.extend_from_slice(black_box(&ring_ct));
                let pt = ring_key
                    .open_in_place(
                        Nonce::assume_unique_for_key([0; 12]),
                        Aad::from(AD),
                        &mut ring_buf,
                    )
                    .expect("opens");
                black_box(pt);
            },
        ),
        bench(
            "ring open of a new Vec copy (to_vec + open + truncate)",
            || {
                let mut v = black_box(&ring_ct).to_vec();
                let len = ring_key
                    .open_in_place(Nonce::assume_unique_for_key([0; 12]), Aad::from(AD), &mut v)
                    .expect("opens")
                    .len();
                v.truncate(len);
                black_box(v);
            },
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

    println!("# encstore-tink keyset AEAD benchmark (one core, medians, interleaved rounds)");
    let sizes: &[usize] = if quick {
        &[64]
    } else {
        &[64, 1 << 10, 16 << 10, 1 << 20]
    };
    for &size in sizes {
        keyset_vs_ring(size, &one, rounds);
    }
    one_vs_thousand(64, &one, &thousand, &olds, rounds);
    if quick {
        println!("(quick run: pass --bench for the full measurement)");
    }
}
