//! The cost of moving AEAD work to tokio's blocking pool, by value size:
//! `EncryptedStorage::store` + `load` over `MemoryStorage` (which runs the
//! AEAD on the blocking pool from `BLOCKING_THRESHOLD` on) against the same
//! work done inline (keyset AEAD encrypt, bare store, bare load, decrypt),
//! interleaved in the same run. The ratio shows what the hop costs at each
//! size, which is what chose the threshold.
//!
//! `cargo bench -p encstore --bench blocking` (`-- --quick` for a short run).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use encstore::{BLOCKING_THRESHOLD, EncryptedStorage, Policy, ReloadableKeyset};
use encstore_core::{Aead, MemoryStorage, Storage};
use encstore_tink::Keyset;
use encstore_tink::templates::by_name;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let keyset = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    let aead = keyset.aead().unwrap();
    let keys = Arc::new(ReloadableKeyset::new(&keyset, Policy::default()).unwrap());
    let bare = Arc::new(MemoryStorage::new());
    let enc = EncryptedStorage::new(Arc::new(MemoryStorage::new()), keys);
    println!(
        "store+load of one value over MemoryStorage, AES256_GCM, median µs; threshold {} KiB",
        BLOCKING_THRESHOLD / 1024
    );
    println!(
        "{:>8} {:>10} {:>14} {:>8}",
        "size", "inline", "EncryptedStorage", "ratio"
    );
    for size in [16 << 10, 64 << 10, 255 << 10, 256 << 10, 1 << 20, 4 << 20] {
        let value = Bytes::from(vec![0x5au8; size]);
        let iters = if quick { 50 } else { 400 };
        let (mut inline, mut pooled) = (Vec::new(), Vec::new());
        for i in 0..iters {
            let key = format!("k/{}", i % 8);
            for pass in 0..2 {
                if (pass == 0) == (i % 2 == 0) {
                    let t = Instant::now();
                    let ct = aead.encrypt(&value, key.as_bytes()).unwrap();
                    bare.store(&key, Bytes::from(ct)).await.unwrap();
                    let ct = bare.load(&key).await.unwrap();
                    let pt = aead.decrypt_owned(Vec::from(ct), key.as_bytes()).unwrap();
                    assert_eq!(pt.len(), size);
                    inline.push(t.elapsed());
                } else {
                    let t = Instant::now();
                    enc.store(&key, value.clone()).await.unwrap();
                    assert_eq!(enc.load(&key).await.unwrap().len(), size);
                    pooled.push(t.elapsed());
                }
            }
        }
        let (a, b) = (median(inline), median(pooled));
        println!(
            "{:>7}K {:>10.1} {:>14.1} {:>8.2}",
            size / 1024,
            a.as_secs_f64() * 1e6,
            b.as_secs_f64() * 1e6,
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
}
