//! Crypto providers compared in one run: the keyset AEAD (AES256_GCM, TINK
//! prefix) under each compiled provider against that provider's raw
//! AES-256-GCM, and the providers against each other, at 64 B, 16 KiB and
//! 1 MiB.
//!
//! Run (ring is always there; add one AWS-LC build):
//! `cargo bench -p encstore-tink --bench providers --features aws-lc-rs`
//! `cargo bench -p encstore-tink --bench providers --features fips`
//! (the two AWS-LC builds cannot share a binary: with `fips` the whole
//! aws-lc-rs crate runs on the FIPS module).
//!
//! The raw references do what the keyset AEAD does minus the keyset: seal
//! into a new `Vec` under a fresh random nonce from the same source
//! (`ring`, `aws-lc-rs`: the kernel's, through encstore's nonce source;
//! `fips`: the module makes the IV, `RandomizedNonceKey`), and open a
//! ciphertext copied into a reused buffer. A counter-nonce row shows the
//! cipher alone. Same harness as the other benches: cases of a group run in
//! interleaved rounds; medians; ratios to the group's first case.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use encstore_core::Aead;
use encstore_tink::primitives::testing::fill_nonce;
use encstore_tink::provider::{CryptoProvider, Provider};
use encstore_tink::{Keyset, KeysetAead, templates};

// Only the timing harness is used, not its ring helpers.
#[allow(dead_code)]
mod harness;

use harness::{Case, Harness, bench};

const AD: &[u8] = b"certmagic/acme/example.com.key";
const KEY: [u8; 32] = [0x42; 32];

fn run_group(title: &str, bytes: usize, cases: Vec<Case<'_>>) {
    Harness {
        rounds: 15,
        sample_time: Duration::from_millis(4),
        min_column: false,
    }
    .run_group(title, bytes, cases);
}

/// One provider's raw AES-256-GCM: seal into a new Vec under a fresh
/// nonce, seal in place under a counter nonce, open into a reused buffer.
trait Raw {
    fn seal_new_vec(&self, pt: &[u8]) -> Vec<u8>;
    fn seal_counter(&self, n: &mut u64, buf: &mut [u8]);
    /// A ciphertext `nonce ‖ ct ‖ tag`.
    fn ciphertext(&self, pt: &[u8]) -> Vec<u8> {
        self.seal_new_vec(pt)
    }
    fn open_into(&self, ct: &[u8], buf: &mut Vec<u8>);
}

fn counter(n: &mut u64) -> [u8; 12] {
    *n += 1;
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&n.to_be_bytes());
    nonce
}

struct RingRaw(ring::aead::LessSafeKey);

impl Raw for RingRaw {
    fn seal_new_vec(&self, pt: &[u8]) -> Vec<u8> {
        use ring::aead::{Aad, Nonce};
        let mut nonce = [0u8; 12];
        fill_nonce(&mut nonce).expect("nonce");
        let mut v = Vec::with_capacity(12 + pt.len() + 16);
        v.extend_from_slice(&nonce);
        v.extend_from_slice(pt);
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AD),
                &mut v[12..],
            )
            .expect("seals");
        v.extend_from_slice(tag.as_ref());
        v
    }
    fn seal_counter(&self, n: &mut u64, buf: &mut [u8]) {
        use ring::aead::{Aad, Nonce};
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(counter(n)),
                Aad::from(AD),
                buf,
            )
            .expect("seals");
        let _ = black_box(tag);
    }
    fn open_into(&self, ct: &[u8], buf: &mut Vec<u8>) {
        use ring::aead::{Aad, Nonce};
        buf.clear();
        buf.extend_from_slice(ct);
        let nonce: [u8; 12] = ct[..12].try_into().expect("12");
        let pt = self
            .0
            .open_within(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AD),
                buf,
                12..,
            )
            .expect("opens");
        black_box(pt);
    }
}

#[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
struct AwsLcRaw {
    key: aws_lc_rs::aead::LessSafeKey,
    /// The FIPS module's own-IV key (`fips` builds).
    randomized: Option<aws_lc_rs::aead::RandomizedNonceKey>,
}

#[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
impl AwsLcRaw {
    fn new() -> Self {
        use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, RandomizedNonceKey, UnboundKey};
        AwsLcRaw {
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).expect("key")),
            randomized: cfg!(feature = "fips")
                .then(|| RandomizedNonceKey::new(&AES_256_GCM, &KEY).expect("key")),
        }
    }
}

#[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
impl Raw for AwsLcRaw {
    fn seal_new_vec(&self, pt: &[u8]) -> Vec<u8> {
        use aws_lc_rs::aead::{Aad, Nonce};
        let mut v = Vec::with_capacity(12 + pt.len() + 16);
        v.extend_from_slice(&[0u8; 12]);
        v.extend_from_slice(pt);
        if let Some(k) = &self.randomized {
            let (nonce, tag) = k
                .seal_in_place_separate_tag(Aad::from(AD), &mut v[12..])
                .expect("seals");
            v[..12].copy_from_slice(nonce.as_ref());
            v.extend_from_slice(tag.as_ref());
            return v;
        }
        let mut nonce = [0u8; 12];
        fill_nonce(&mut nonce).expect("nonce");
        v[..12].copy_from_slice(&nonce);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AD),
                &mut v[12..],
            )
            .expect("seals");
        v.extend_from_slice(tag.as_ref());
        v
    }
    fn seal_counter(&self, n: &mut u64, buf: &mut [u8]) {
        use aws_lc_rs::aead::{Aad, Nonce};
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(counter(n)),
                Aad::from(AD),
                buf,
            )
            .expect("seals");
        let _ = black_box(tag);
    }
    fn open_into(&self, ct: &[u8], buf: &mut Vec<u8>) {
        use aws_lc_rs::aead::{Aad, Nonce};
        buf.clear();
        buf.extend_from_slice(ct);
        let nonce: [u8; 12] = ct[..12].try_into().expect("12");
        let pt = self
            .key
            .open_within(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AD),
                buf,
                12..,
            )
            .expect("opens");
        black_box(pt);
    }
}

/// The raw reference of `provider`.
fn raw_for(provider: Provider) -> Box<dyn Raw> {
    match provider {
        Provider::Ring => Box::new(RingRaw(ring::aead::LessSafeKey::new(
            ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &KEY).expect("key"),
        ))),
        #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
        _ => Box::new(AwsLcRaw::new()),
        #[cfg(not(any(feature = "aws-lc-rs", feature = "fips")))]
        other => panic!("{other} is not compiled in"),
    }
}

/// The keyset AEAD (AES256_GCM) under `provider`.
fn keyset_aead(provider: Provider) -> KeysetAead {
    let p = CryptoProvider::get(provider).expect("compiled and usable");
    let template = templates::by_name("AES256_GCM").expect("template");
    Keyset::generate_with_provider(&template, p)
        .expect("generate")
        .aead()
        .expect("aead")
}

fn name(p: Provider) -> &'static str {
    match p {
        Provider::Ring => "ring",
        Provider::AwsLc => "aws-lc-rs",
        _ => "fips",
    }
}

/// Keyset AEAD vs the provider's raw AES-256-GCM, encrypt and decrypt.
fn keyset_vs_raw(provider: Provider, size: usize) {
    let pt = vec![0x5au8; size];
    let raw = raw_for(provider);
    let aead = keyset_aead(provider);
    let mut n = 0u64;
    let mut counter_buf = pt.clone();
    let p = name(provider);
    run_group(
        &format!("{p}: AES-256-GCM encrypt, keyset AEAD vs raw"),
        size,
        vec![
            bench(format!("{p} raw, fresh nonce, new Vec [reference]"), || {
                black_box(raw.seal_new_vec(black_box(&pt)));
            }),
            bench(format!("{p} keyset AEAD encrypt (new Vec)"), || {
                black_box(aead.encrypt(black_box(&pt), AD).expect("encrypts"));
            }),
            bench(
                format!("{p} raw, counter nonce, in place (cipher alone)"),
                || {
                    raw.seal_counter(&mut n, black_box(&mut counter_buf));
                },
            ),
        ],
    );
    let raw_ct = raw.ciphertext(&pt);
    let ct = aead.encrypt(&pt, AD).expect("encrypts");
    let mut buf = Vec::with_capacity(raw_ct.len());
    run_group(
        &format!("{p}: AES-256-GCM decrypt, keyset AEAD vs raw"),
        size,
        vec![
            bench(
                format!("{p} raw open, ct copied into reused buffer [reference]"),
                || raw.open_into(black_box(&raw_ct), &mut buf),
            ),
            bench(format!("{p} keyset AEAD decrypt (new Vec)"), || {
                black_box(aead.decrypt(black_box(&ct), AD).expect("opens"));
            }),
        ],
    );
}

/// The providers against each other: keyset AEAD and raw, encrypt and
/// decrypt; the reference is ring.
fn providers_against_each_other(size: usize) {
    let pt = vec![0x5au8; size];
    let providers = Provider::compiled();
    let aeads: Vec<KeysetAead> = providers.iter().map(|p| keyset_aead(*p)).collect();
    let raws: Vec<Box<dyn Raw>> = providers.iter().map(|p| raw_for(*p)).collect();
    let mut enc = Vec::new();
    for (i, p) in providers.iter().enumerate() {
        let (aead, pt) = (&aeads[i], &pt);
        let reference = if i == 0 { " [reference]" } else { "" };
        enc.push(bench(
            format!("{} keyset AEAD encrypt{reference}", name(*p)),
            move || {
                black_box(aead.encrypt(black_box(pt), AD).expect("encrypts"));
            },
        ));
    }
    for (i, p) in providers.iter().enumerate() {
        let (raw, pt) = (&raws[i], &pt);
        enc.push(bench(
            format!("{} raw, fresh nonce, new Vec", name(*p)),
            move || {
                black_box(raw.seal_new_vec(black_box(pt)));
            },
        ));
    }
    run_group(
        "providers against each other: AES-256-GCM encrypt",
        size,
        enc,
    );
    let cts: Vec<Vec<u8>> = aeads
        .iter()
        .map(|a| a.encrypt(&pt, AD).expect("encrypts"))
        .collect();
    let mut dec = Vec::new();
    for (i, p) in providers.iter().enumerate() {
        let (aead, ct) = (&aeads[i], &cts[i]);
        let reference = if i == 0 { " [reference]" } else { "" };
        dec.push(bench(
            format!("{} keyset AEAD decrypt{reference}", name(*p)),
            move || {
                black_box(aead.decrypt(black_box(ct), AD).expect("opens"));
            },
        ));
    }
    run_group(
        "providers against each other: AES-256-GCM decrypt",
        size,
        dec,
    );
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!("# Crypto providers (compiled: {:?})", Provider::compiled());
    for p in Provider::compiled() {
        let status = CryptoProvider::get(*p).expect("usable").status();
        println!("- {status}");
    }
    for size in [64, 16 << 10, 1 << 20] {
        if filter
            .as_deref()
            .is_some_and(|f| !format!("{size}").contains(f))
        {
            continue;
        }
        for p in Provider::compiled() {
            keyset_vs_raw(*p, size);
        }
        providers_against_each_other(size);
    }
}
