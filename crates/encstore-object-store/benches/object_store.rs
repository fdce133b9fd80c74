//! EncryptedObjectStore against the bare store it wraps, in the same run:
//!
//! - over object_store's in-memory store (one core: a current-thread
//!   runtime): `get` of a 64 MiB object, a 4 KiB ranged get from it (after
//!   `head`, as Parquet does), and `put` of 64 MiB; with raw AES-256-GCM
//!   (from the library of the store's provider: ring, or aws-lc-rs) over
//!   the same 64 MiB, over one 1 MiB segment (the same buffer each time:
//!   hot in cache) and over a random 1 MiB of the 64 MiB buffer (where a
//!   ranged get finds its segment) as the references for the cost of the
//!   crypto, and the copy of the stored
//!   ciphertext out of the inner store's shared `Bytes` in 1 MiB pieces
//!   (which a `get` cannot avoid);
//! - over SeaweedFS when `ENCSTORE_S3_ENDPOINT` is set (`source
//!   /work/svc/env.sh`): the 4 KiB ranged get's latency.
//!
//! Operations are interleaved in a random order per iteration so machine
//! noise hits all alike; figures are medians.
//!
//! `cargo bench -p encstore-object-store --bench object_store` (ring), and
//! `ENCSTORE_CRYPTO_PROVIDER=aws-lc-rs cargo bench -p encstore-object-store
//! --bench object_store --features aws-lc-rs` (AWS-LC: out-of-place
//! segment opens, no copy in `get`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use encstore::{Policy, ReloadableKeyset};
use encstore_object_store::EncryptedObjectStore;
use encstore_tink::Keyset;
use encstore_tink::templates::by_name;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};

const SIZE: usize = 64 << 20;
const RANGE: u64 = 4096;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
    }
}

fn keys(template: &str) -> Arc<ReloadableKeyset> {
    let aead = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    let streaming = Keyset::generate(&by_name(template).unwrap()).unwrap();
    Arc::new(ReloadableKeyset::new_with_streaming(&aead, &streaming, Policy::default()).unwrap())
}

/// The raw AES-256-GCM reference, from the library of the provider the
/// store runs on in this run (ring, or aws-lc-rs with this crate's
/// `aws-lc-rs` feature and `ENCSTORE_CRYPTO_PROVIDER=aws-lc-rs`). Inline,
/// as the store holds its ring keys: no pointer chase in the reference.
#[allow(clippy::large_enum_variant)]
enum RawKey {
    Ring(ring::aead::LessSafeKey),
    #[cfg(feature = "aws-lc-rs")]
    AwsLc(aws_lc_rs::aead::LessSafeKey),
}

impl RawKey {
    fn new() -> (RawKey, &'static str) {
        let provider = encstore_tink::provider::status().unwrap().provider;
        #[cfg(feature = "aws-lc-rs")]
        if provider == encstore_tink::provider::Provider::AwsLc {
            let key = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &[7u8; 32])
                .unwrap();
            return (
                RawKey::AwsLc(aws_lc_rs::aead::LessSafeKey::new(key)),
                provider.name(),
            );
        }
        assert_eq!(
            provider,
            encstore_tink::provider::Provider::Ring,
            "the raw reference needs this crate's feature for {provider:?}"
        );
        let key = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &[7u8; 32]).unwrap();
        (
            RawKey::Ring(ring::aead::LessSafeKey::new(key)),
            provider.name(),
        )
    }

    fn seal(&self, nonce: [u8; 12], chunk: &mut [u8]) -> [u8; 16] {
        let mut out = [0u8; 16];
        match self {
            RawKey::Ring(k) => {
                let tag = k
                    .seal_in_place_separate_tag(
                        ring::aead::Nonce::assume_unique_for_key(nonce),
                        ring::aead::Aad::empty(),
                        chunk,
                    )
                    .unwrap();
                out.copy_from_slice(tag.as_ref());
            }
            #[cfg(feature = "aws-lc-rs")]
            RawKey::AwsLc(k) => {
                let tag = k
                    .seal_in_place_separate_tag(
                        aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                        aws_lc_rs::aead::Aad::empty(),
                        chunk,
                    )
                    .unwrap();
                out.copy_from_slice(tag.as_ref());
            }
        }
        out
    }

    fn open(&self, nonce: [u8; 12], tag: [u8; 16], chunk: &mut [u8]) {
        match self {
            RawKey::Ring(k) => {
                k.open_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::empty(),
                    ring::aead::Tag::from(tag),
                    chunk,
                    0..,
                )
                .unwrap();
            }
            #[cfg(feature = "aws-lc-rs")]
            RawKey::AwsLc(k) => {
                k.open_in_place_separate_tag(
                    aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                    aws_lc_rs::aead::Aad::empty(),
                    &tag,
                    chunk,
                )
                .unwrap();
            }
        }
    }
}

fn nonce(i: usize) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
    nonce
}

/// Raw AES-256-GCM sealing `buf` in place in 1 MiB chunks; their tags.
fn raw_gcm(key: &RawKey, buf: &mut [u8]) -> Vec<[u8; 16]> {
    buf.chunks_mut(1 << 20)
        .enumerate()
        .map(|(i, chunk)| key.seal(nonce(i), chunk))
        .collect()
}

/// Raw AES-256-GCM opening, in place, what `raw_gcm` sealed.
fn raw_open(key: &RawKey, buf: &mut [u8], tags: &[[u8; 16]]) {
    for ((i, chunk), tag) in buf.chunks_mut(1 << 20).enumerate().zip(tags) {
        key.open(nonce(i), *tag, chunk);
    }
}

/// Reads a get's stream to its end, returning its length.
async fn consume(r: object_store::GetResult) -> usize {
    use futures_util::StreamExt;
    let mut s = r.into_stream();
    let mut n = 0;
    while let Some(c) = s.next().await {
        n += std::hint::black_box(c.unwrap()).len();
    }
    n
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    BareGet,
    EncGet,
    BareRange,
    EncRange,
    Enc4kRange,
    StreamDecrypt,
    StreamEncrypt,
    BarePut,
    EncPut,
    RawGcm,
    RawOpen,
    RawSegment,
    RawColdSegment,
    Copy,
    OpenToReused,
    OpenToFresh,
}

fn memory(rt: &tokio::runtime::Runtime) {
    let data: Vec<u8> = (0..SIZE).map(|i| (i * 31 % 251) as u8).collect();
    let bare: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let enc_raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let enc = EncryptedObjectStore::new(enc_raw.clone(), keys("AES256_GCM_HKDF_1MB"));
    let enc4k = EncryptedObjectStore::new(Arc::new(InMemory::new()), keys("AES256_GCM_HKDF_4KB"));
    let p = Path::from("bench/object.bin");
    let (key, provider) = RawKey::new();
    let mut scratch = data.clone();
    let mut segment = vec![0u8; 1 << 20];
    // Sealed for the raw open reference, and sealed again after each open.
    let mut sealed = data.clone();
    let mut sealed_tags = raw_gcm(&key, &mut sealed);
    rt.block_on(async {
        bare.put(&p, data.clone().into()).await.unwrap();
        enc.put(&p, data.clone().into()).await.unwrap();
        enc.head(&p).await.unwrap();
        enc4k.put(&p, data.clone().into()).await.unwrap();
        enc4k.head(&p).await.unwrap();
    });
    let ciphertext = rt.block_on(async { enc_raw.get(&p).await.unwrap().bytes().await.unwrap() });
    let snap = enc.keyset().snapshot();
    let streaming = snap.streaming_aead().unwrap();
    let ad = enc.associated_data(&p);
    let mut plain = Vec::with_capacity(2 << 20);
    let mut reused = vec![0u8; 2 << 20];
    let mut copy_buf = Vec::with_capacity(1 << 20);
    let iterations = 15;
    let ranges_per_iteration = 20;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut times: std::collections::HashMap<&'static str, Vec<Duration>> = Default::default();
    for _ in 0..iterations {
        let mut ops = vec![
            Op::BareGet,
            Op::EncGet,
            Op::BarePut,
            Op::EncPut,
            Op::RawGcm,
            Op::RawOpen,
            Op::Copy,
            Op::StreamDecrypt,
            Op::StreamEncrypt,
            Op::OpenToReused,
            Op::OpenToFresh,
        ];
        for _ in 0..ranges_per_iteration {
            ops.extend([
                Op::BareRange,
                Op::EncRange,
                Op::Enc4kRange,
                Op::RawSegment,
                Op::RawColdSegment,
            ]);
        }
        rng.shuffle(&mut ops);
        for op in ops {
            let start = rng.next() % (SIZE as u64 - RANGE);
            let t = Instant::now();
            let name = rt.block_on(async {
                match op {
                    // A get is a stream: consumed chunk by chunk, as a
                    // reader or a socket writer would (no concatenation).
                    Op::BareGet => {
                        assert_eq!(consume(bare.get(&p).await.unwrap()).await, SIZE);
                        "get 64 MiB: bare"
                    }
                    Op::EncGet => {
                        assert_eq!(consume(enc.get(&p).await.unwrap()).await, SIZE);
                        "get 64 MiB: encrypted"
                    }
                    Op::StreamDecrypt => {
                        let mut dec = streaming.decryptor(&ad);
                        let mut n = 0;
                        for piece in ciphertext[5..].chunks(1 << 20) {
                            plain.clear();
                            dec.update(piece, &mut plain).unwrap();
                            n += plain.len();
                        }
                        plain.clear();
                        dec.finish_into(&mut plain).unwrap();
                        assert_eq!(n + plain.len(), SIZE);
                        "Tink streaming decrypt alone, 64 MiB"
                    }
                    Op::StreamEncrypt => {
                        // What `put` does, without the store: the 64 MiB
                        // payload into a fresh ciphertext buffer.
                        let mut e = streaming.encryptor(&ad).unwrap();
                        let mut out = Vec::with_capacity(SIZE + (SIZE >> 6) + 64);
                        e.update(&data, &mut out).unwrap();
                        e.finish_into(&mut out).unwrap();
                        assert!(std::hint::black_box(out).len() > SIZE);
                        "Tink streaming encrypt alone, 64 MiB"
                    }
                    Op::Enc4kRange => {
                        let b = enc4k.get_range(&p, start..start + RANGE).await.unwrap();
                        assert_eq!(b.len() as u64, RANGE);
                        "4 KiB range: encrypted, 4 KiB segments"
                    }
                    Op::BareRange => {
                        let b = bare.get_range(&p, start..start + RANGE).await.unwrap();
                        assert_eq!(b.len() as u64, RANGE);
                        "4 KiB range: bare"
                    }
                    Op::EncRange => {
                        let b = enc.get_range(&p, start..start + RANGE).await.unwrap();
                        assert_eq!(b.len() as u64, RANGE);
                        "4 KiB range: encrypted"
                    }
                    Op::BarePut => {
                        bare.put(&p, data.clone().into()).await.unwrap();
                        "put 64 MiB: bare"
                    }
                    Op::EncPut => {
                        enc.put(&p, data.clone().into()).await.unwrap();
                        "put 64 MiB: encrypted"
                    }
                    Op::RawGcm => {
                        std::hint::black_box(raw_gcm(&key, &mut scratch));
                        "raw AES-256-GCM, 64 MiB"
                    }
                    Op::RawOpen => {
                        raw_open(&key, &mut sealed, &sealed_tags);
                        "raw AES-256-GCM open, 64 MiB"
                    }
                    Op::Copy => {
                        // The copy a `get` cannot avoid: the inner store's
                        // Bytes are shared, so each segment is copied into
                        // a buffer of its own before it is opened in place.
                        for piece in ciphertext.chunks(1 << 20) {
                            copy_buf.clear();
                            copy_buf.extend_from_slice(piece);
                            std::hint::black_box(&copy_buf);
                        }
                        "copy 64 MiB out of the stored Bytes, 1 MiB pieces"
                    }
                    // `get`'s decryption alone: the stored ciphertext's
                    // segments opened out of place (`open_segment_to`),
                    // into one reused buffer (the crypto) or into a fresh
                    // zeroed buffer each, as `get` does (plus allocation
                    // and first-touch page faults).
                    Op::OpenToReused | Op::OpenToFresh => {
                        let ct = &ciphertext[5..];
                        let l = streaming.layout();
                        let h = l.header_len() as usize;
                        let mut dec = streaming.segment_decryptor(&ct[..h], &ad).unwrap();
                        let count = l.segment_count(ct.len() as u64).unwrap();
                        let mut n = 0;
                        for i in 0..count {
                            let r = l.segment_ciphertext_range(i, ct.len() as u64).unwrap();
                            let seg = &ct[r.start as usize..r.end as usize];
                            let last = i + 1 == count;
                            if op == Op::OpenToReused {
                                n += dec
                                    .open_segment_to(seg, last, &mut reused[..seg.len()])
                                    .unwrap();
                            } else {
                                let mut out = vec![0u8; seg.len()];
                                n += dec.open_segment_to(seg, last, &mut out).unwrap();
                                std::hint::black_box(out);
                            }
                        }
                        assert_eq!(n, SIZE);
                        if op == Op::OpenToReused {
                            "open_segment_to 64 MiB, one reused buffer"
                        } else {
                            "open_segment_to 64 MiB, fresh buffers"
                        }
                    }
                    Op::RawSegment => {
                        std::hint::black_box(raw_gcm(&key, &mut segment));
                        "raw AES-256-GCM, one 1 MiB segment"
                    }
                    // The segment a ranged get decrypts is wherever the
                    // range falls in a 64 MiB object, mostly out of cache:
                    // the same work on a random 1 MiB of the 64 MiB buffer.
                    Op::RawColdSegment => {
                        let at = (start as usize >> 20) << 20;
                        std::hint::black_box(raw_gcm(&key, &mut scratch[at..at + (1 << 20)]));
                        "raw AES-256-GCM, one 1 MiB segment of 64 MiB"
                    }
                }
            });
            times.entry(name).or_default().push(t.elapsed());
            if op == Op::RawOpen {
                // Untimed: the opened buffer is sealed again for the next.
                sealed_tags = raw_gcm(&key, &mut sealed);
            }
            if op == Op::EncPut {
                // The next ranged read finds the new header by `head`.
                rt.block_on(enc.head(&p)).unwrap();
            }
        }
    }
    let m = |k: &str| median(times[k].clone());
    println!(
        "EncryptedObjectStore over InMemory vs bare InMemory, one core, medians of {iterations} (ranges: {}); provider {provider} (store and raw AES-GCM alike):",
        iterations * ranges_per_iteration
    );
    for k in [
        "get 64 MiB: bare",
        "get 64 MiB: encrypted",
        "put 64 MiB: bare",
        "put 64 MiB: encrypted",
        "raw AES-256-GCM, 64 MiB",
        "raw AES-256-GCM open, 64 MiB",
        "copy 64 MiB out of the stored Bytes, 1 MiB pieces",
        "Tink streaming decrypt alone, 64 MiB",
        "Tink streaming encrypt alone, 64 MiB",
        "open_segment_to 64 MiB, one reused buffer",
        "open_segment_to 64 MiB, fresh buffers",
    ] {
        println!("  {k:<40} {:>9.2} ms", ms(m(k)));
    }
    for k in [
        "4 KiB range: bare",
        "4 KiB range: encrypted",
        "4 KiB range: encrypted, 4 KiB segments",
        "raw AES-256-GCM, one 1 MiB segment",
        "raw AES-256-GCM, one 1 MiB segment of 64 MiB",
    ] {
        println!("  {k:<42} {:>9.1} µs", us(m(k)));
    }
    let raw = m("raw AES-256-GCM, 64 MiB").as_secs_f64();
    let get_over = m("get 64 MiB: encrypted").as_secs_f64() - m("get 64 MiB: bare").as_secs_f64();
    let put_over = m("put 64 MiB: encrypted").as_secs_f64() - m("put 64 MiB: bare").as_secs_f64();
    println!(
        "  get: encryption overhead {:.2}x raw AES-GCM per byte ({:.0} MiB/s decrypted)",
        get_over / raw,
        64.0 / get_over
    );
    println!(
        "  get: encryption overhead {:.2}x raw AES-GCM open (decryption) per byte",
        get_over / m("raw AES-256-GCM open, 64 MiB").as_secs_f64()
    );
    println!(
        "  get: encryption overhead {:.2}x raw AES-GCM plus the copy out of the shared Bytes",
        get_over / (raw + m("copy 64 MiB out of the stored Bytes, 1 MiB pieces").as_secs_f64())
    );
    println!(
        "  get: encryption overhead {:.2}x Tink's streaming decryption alone",
        get_over / m("Tink streaming decrypt alone, 64 MiB").as_secs_f64()
    );
    println!(
        "  put: encryption overhead {:.2}x raw AES-GCM per byte ({:.0} MiB/s encrypted)",
        put_over / raw,
        64.0 / put_over
    );
    println!(
        "  4 KiB range: {:.2} segments of raw AES-GCM work (a hot segment)",
        m("4 KiB range: encrypted").as_secs_f64()
            / m("raw AES-256-GCM, one 1 MiB segment").as_secs_f64()
    );
    println!(
        "  4 KiB range: {:.2} segments of raw AES-GCM work (a random segment of 64 MiB)",
        m("4 KiB range: encrypted").as_secs_f64()
            / m("raw AES-256-GCM, one 1 MiB segment of 64 MiB").as_secs_f64()
    );
}

fn s3(rt: &tokio::runtime::Runtime) {
    let Some(endpoint) = std::env::var("ENCSTORE_S3_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        println!(
            "SKIPPED: SeaweedFS figures: ENCSTORE_S3_ENDPOINT is unset (source /work/svc/env.sh)"
        );
        return;
    };
    let bucket = std::env::var("ENCSTORE_S3_BUCKET").unwrap_or_else(|_| "encstore-test".into());
    let prefix = format!(
        "encstore-object-store-bench/{}",
        &encstore_core::new_lease_token().unwrap()[..12]
    );
    let storage = encstore_objstore::S3StorageBuilder::from_env(bucket, "")
        .endpoint(endpoint)
        .allow_http(true)
        .build()
        .unwrap();
    let root: Arc<dyn ObjectStore> =
        Arc::new(PrefixStore::new(storage.object_store(), prefix.as_str()));
    let enc = EncryptedObjectStore::new(root.clone(), keys("AES256_GCM_HKDF_1MB"));
    let enc4k = EncryptedObjectStore::new(root.clone(), keys("AES256_GCM_HKDF_4KB"));
    let (bp, ep, ep4) = (
        Path::from("bare.bin"),
        Path::from("enc.bin"),
        Path::from("enc4k.bin"),
    );
    let data: Vec<u8> = (0..SIZE).map(|i| (i * 31 % 251) as u8).collect();
    rt.block_on(async {
        root.put(&bp, data.clone().into()).await.unwrap();
        enc.put(&ep, data.clone().into()).await.unwrap();
        enc.head(&ep).await.unwrap();
        enc4k.put(&ep4, data.clone().into()).await.unwrap();
        enc4k.head(&ep4).await.unwrap();
    });
    let mut rng = Rng(42);
    let mut times: [Vec<Duration>; 3] = Default::default();
    for _ in 0..100 {
        let mut ops = [0usize, 1, 2];
        rng.shuffle(&mut ops);
        for which in ops {
            let start = rng.next() % (SIZE as u64 - RANGE);
            let t = Instant::now();
            let b = rt.block_on(async {
                match which {
                    0 => root.get_range(&bp, start..start + RANGE).await.unwrap(),
                    1 => enc.get_range(&ep, start..start + RANGE).await.unwrap(),
                    _ => enc4k.get_range(&ep4, start..start + RANGE).await.unwrap(),
                }
            });
            assert_eq!(b.len() as u64, RANGE);
            times[which].push(t.elapsed());
        }
    }
    let [b, e, e4] = times.map(median);
    println!(
        "4 KiB ranged get of a 64 MiB object over SeaweedFS (loopback), after head, medians of 100:"
    );
    println!(
        "  bare S3                                  {:>9.1} µs",
        us(b)
    );
    for (name, d) in [("1 MiB segments", e), ("4 KiB segments", e4)] {
        println!(
            "  EncryptedObjectStore, {name}           {:>9.1} µs  ({:.2}x)",
            us(d),
            d.as_secs_f64() / b.as_secs_f64()
        );
    }
    rt.block_on(async {
        for p in [&bp, &ep, &ep4] {
            root.delete(p).await.unwrap();
        }
    });
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    memory(&rt);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    s3(&rt);
}
