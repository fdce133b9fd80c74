//! Large objects through `EncryptedStorage` against the bare backend, in
//! one run: the streamed write (`store_stream`) and read (`load_stream`) of
//! 64 MiB to 1 GiB, a 4 KiB `load_range`, and a rewrap (a versioned
//! stream decrypted, re-encrypted under another key and written back with
//! `store_stream_if`) against the same read-modify-write copying the bytes
//! unchanged; and, as the ceiling of the crypto on the machine at that
//! moment, the same bytes through the sync streaming cores alone (memory to
//! memory, one core, no I/O). The backend is the filesystem, on tmpfs (`/dev/shm`) by
//! default so that the crypto is not hidden behind a disk; set
//! `ENCSTORE_BENCH_DIR` to measure another directory. Streaming keyset:
//! `AES256_GCM_HKDF_1MB`. Runs alternate between the two sides; medians.
//!
//! `cargo bench -p encstore --bench large` (`-- --quick`: 64 MiB only,
//! fewer runs).
#![allow(clippy::unwrap_used, missing_docs)]

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use encstore::{EncryptedStorage, Policy, ReloadableKeyset};
use encstore_core::stream::Stream;
use encstore_core::{ByteStream, Result, Storage, WriteCondition};
use encstore_fs::FsStorage;
use encstore_tink::Keyset;
use encstore_tink::templates::by_name;
use futures_util::StreamExt;

const UNIT: usize = 1 << 20;

/// `units` MiB of a fixed block, as a body (no copy per chunk).
struct Body {
    block: Bytes,
    left: u64,
}

impl Stream for Body {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(self.block.clone())))
    }
}

fn body(block: &Bytes, units: u64) -> ByteStream {
    Box::pin(Body {
        block: block.clone(),
        left: units,
    })
}

async fn drain(mut body: ByteStream) -> u64 {
    let mut n = 0u64;
    while let Some(c) = body.next().await {
        n += c.unwrap().len() as u64;
    }
    n
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

/// Times `a` and `b` alternately, `runs` times each; medians.
async fn pair<A, B, FA, FB>(runs: usize, mut a: A, mut b: B) -> (Duration, Duration)
where
    A: FnMut() -> FA,
    B: FnMut() -> FB,
    FA: std::future::Future<Output = ()>,
    FB: std::future::Future<Output = ()>,
{
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for i in 0..runs {
        for pass in 0..2 {
            if (pass == 0) == (i % 2 == 0) {
                let t = Instant::now();
                a().await;
                ta.push(t.elapsed());
            } else {
                let t = Instant::now();
                b().await;
                tb.push(t.elapsed());
            }
        }
    }
    (median(ta), median(tb))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let base = std::env::var("ENCSTORE_BENCH_DIR").unwrap_or_else(|_| "/dev/shm".to_owned());
    let dir = tempfile::tempdir_in(&base).unwrap();
    let bare: Arc<dyn Storage> = Arc::new(FsStorage::new(dir.path()).unwrap());
    let aead = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    let template = by_name("AES256_GCM_HKDF_1MB").unwrap();
    let mut streaming = Keyset::generate(&template).unwrap();
    let first = streaming.primary_key_id();
    let second = streaming.add_key(&template).unwrap();
    let keys = Arc::new(
        ReloadableKeyset::new_with_streaming(&aead, &streaming, Policy::default()).unwrap(),
    );
    let enc = EncryptedStorage::new(bare.clone(), keys.clone());
    let block = Bytes::from(
        (0..UNIT)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
            .collect::<Vec<u8>>(),
    );

    println!("fs on {base}, AES256_GCM_HKDF_1MB; medians; ratio = EncryptedStorage / bare (time)");
    println!(
        "{:<34} {:>6} {:>12} {:>12} {:>8}",
        "operation", "MiB", "bare", "encrypted", "ratio"
    );
    let sizes: &[u64] = if quick { &[64] } else { &[64, 256, 1024] };
    for &units in sizes {
        let runs = match (quick, units) {
            (true, _) => 3,
            (_, 64) => 11,
            (_, 256) => 7,
            _ => 5,
        };
        let bytes = units * UNIT as u64;
        let (b, e) = pair(
            runs,
            || {
                let (bare, body) = (bare.clone(), body(&block, units));
                async move { bare.store_stream("bare", body).await.unwrap() }
            },
            || {
                let (enc, body) = (enc.clone(), body(&block, units));
                async move { enc.store_stream("enc", body).await.unwrap() }
            },
        )
        .await;
        println!(
            "{:<34} {:>6} {:>7.2} GB/s {:>7.2} GB/s {:>8.2}",
            "store_stream",
            units,
            gbps(bytes, b),
            gbps(bytes, e),
            e.as_secs_f64() / b.as_secs_f64()
        );
        let (b, e) = pair(
            runs,
            || {
                let bare = bare.clone();
                async move {
                    assert_eq!(
                        drain(bare.load_stream("bare").await.unwrap().body).await,
                        bytes
                    )
                }
            },
            || {
                let enc = enc.clone();
                async move {
                    assert_eq!(
                        drain(enc.load_stream("enc").await.unwrap().body).await,
                        bytes
                    )
                }
            },
        )
        .await;
        println!(
            "{:<34} {:>6} {:>7.2} GB/s {:>7.2} GB/s {:>8.2}",
            "load_stream",
            units,
            gbps(bytes, b),
            gbps(bytes, e),
            e.as_secs_f64() / b.as_secs_f64()
        );
        // Rewrap: the encrypted object moves between two streaming keys;
        // the bare reference copies its object through the same
        // versioned stream and conditional streamed write.
        let (b, e) = pair(
            runs,
            || {
                let bare = bare.clone();
                async move {
                    let vs = bare.load_stream_versioned("bare").await.unwrap();
                    bare.store_stream_if(
                        "bare",
                        vs.stream.body,
                        &WriteCondition::Matches(vs.version),
                    )
                    .await
                    .unwrap();
                }
            },
            || {
                let current = keys.snapshot().streaming_primary_key_id();
                let primary = if current == Some(first) {
                    second
                } else {
                    first
                };
                streaming.promote(primary).unwrap();
                keys.replace_streaming(&streaming).unwrap();
                let enc = enc.clone();
                async move {
                    assert!(matches!(
                        enc.reencrypt_one("enc").await.unwrap(),
                        encstore::ObjectReencryption::Reencrypted { .. }
                    ));
                }
            },
        )
        .await;
        println!(
            "{:<34} {:>6} {:>7.2} GB/s {:>7.2} GB/s {:>8.2}",
            "rewrap (versioned stream → CAS)",
            units,
            gbps(bytes, b),
            gbps(bytes, e),
            e.as_secs_f64() / b.as_secs_f64()
        );
        // The crypto alone, in memory, on one core: what the streamed rows
        // would cost if the I/O were free.
        let sa = streaming.streaming_aead().unwrap();
        let plain: Vec<u8> = block.repeat(16);
        let ct = sa.encrypt(&plain, b"k").unwrap();
        let per = plain.len() as u64;
        let (ce, cd) = pair(
            runs * 3,
            || {
                let mut enc = sa.encryptor(b"k").unwrap();
                let mut out = Vec::with_capacity(ct.len());
                enc.update(&plain, &mut out).unwrap();
                enc.finish_into(&mut out).unwrap();
                assert_eq!(out.len(), ct.len());
                async {}
            },
            || {
                let mut dec = sa.decryptor(b"k");
                let mut out = Vec::with_capacity(plain.len());
                dec.update(&ct, &mut out).unwrap();
                dec.finish_into(&mut out).unwrap();
                assert_eq!(out.len(), plain.len());
                async {}
            },
        )
        .await;
        println!(
            "{:<34} {:>6} {:>7.2} GB/s {:>7.2} GB/s {:>8}",
            "crypto alone: encrypt | decrypt",
            16,
            gbps(per, ce),
            gbps(per, cd),
            "-"
        );
        let range_runs = if quick { 50 } else { 400 };
        let at = std::cell::Cell::new(0u64);
        let step = 7_919 * 4096 + 123;
        let (b, e) = pair(
            range_runs,
            || {
                at.set((at.get() + step) % (bytes - 4096));
                let r = at.get()..at.get() + 4096;
                let bare = bare.clone();
                async move { assert_eq!(bare.load_range("bare", r).await.unwrap().bytes.len(), 4096) }
            },
            || {
                let r = at.get()..at.get() + 4096;
                let enc = enc.clone();
                async move { assert_eq!(enc.load_range("enc", r).await.unwrap().bytes.len(), 4096) }
            },
        )
        .await;
        println!(
            "{:<34} {:>6} {:>9.1} µs {:>9.1} µs {:>8.2}",
            "load_range 4 KiB (1 MiB segments)",
            units,
            b.as_secs_f64() * 1e6,
            e.as_secs_f64() * 1e6,
            e.as_secs_f64() / b.as_secs_f64()
        );
    }
    // Small segments make small ranges cheap: the same 4 KiB ranges of a
    // 64 MiB object under AES256_GCM_HKDF_4KB.
    let small_keys = Arc::new(
        ReloadableKeyset::new_with_streaming(
            &aead,
            &Keyset::generate(&by_name("AES256_GCM_HKDF_4KB").unwrap()).unwrap(),
            Policy::default(),
        )
        .unwrap(),
    );
    let enc4k = EncryptedStorage::new(bare.clone(), small_keys);
    let units = 64u64;
    let bytes = units * UNIT as u64;
    bare.store_stream("bare", body(&block, units))
        .await
        .unwrap();
    enc4k
        .store_stream("enc4k", body(&block, units))
        .await
        .unwrap();
    let at = std::cell::Cell::new(0u64);
    let step = 7_919 * 4096 + 123;
    let (b, e) = pair(
        if quick { 50 } else { 400 },
        || {
            at.set((at.get() + step) % (bytes - 4096));
            let r = at.get()..at.get() + 4096;
            let bare = bare.clone();
            async move { assert_eq!(bare.load_range("bare", r).await.unwrap().bytes.len(), 4096) }
        },
        || {
            let r = at.get()..at.get() + 4096;
            let enc = enc4k.clone();
            async move { assert_eq!(enc.load_range("enc4k", r).await.unwrap().bytes.len(), 4096) }
        },
    )
    .await;
    println!(
        "{:<34} {:>6} {:>9.1} µs {:>9.1} µs {:>8.2}",
        "load_range 4 KiB (4 KiB segments)",
        units,
        b.as_secs_f64() * 1e6,
        e.as_secs_f64() * 1e6,
        e.as_secs_f64() / b.as_secs_f64()
    );
}
