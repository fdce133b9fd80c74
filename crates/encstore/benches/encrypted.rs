//! EncryptedStorage over the filesystem backend against the bare backend,
//! in the same run, for 1 KiB and 64 KiB objects; and the key census of
//! 10,000 objects against a naive scan that loads every object whole.
//!
//! Operations are interleaved (random order per iteration) so machine noise
//! hits both alike; figures are medians per operation.
//!
//! `cargo bench -p encstore --bench encrypted` (set `ENCSTORE_BENCH_DIR` to
//! measure on another filesystem, e.g. /dev/shm where fsync is free).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use encstore::{EncryptedStorage, Policy, ReloadableKeyset};
use encstore_core::Storage;
use encstore_fs::FsStorage;
use encstore_tink::Keyset;
use encstore_tink::templates::by_name;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

struct Rng(u64);
impl Rng {
    fn coin(&mut self) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 & 1 == 1
    }
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("ENCSTORE_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

async fn time<F: std::future::Future<Output = ()>>(f: F) -> Duration {
    let t = Instant::now();
    f.await;
    t.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let keyset = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    let keys = Arc::new(ReloadableKeyset::new(&keyset, Policy::default()).unwrap());

    println!("EncryptedStorage (AES256_GCM) over FsStorage vs bare FsStorage, median per op");
    println!(
        "{:>7} {:>6} {:>12} {:>12} {:>9}",
        "size", "op", "bare µs", "enc µs", "overhead"
    );
    for size in [1024usize, 64 * 1024] {
        let dir = bench_dir();
        let bare: Arc<dyn Storage> = Arc::new(FsStorage::new(dir.path().join("bare")).unwrap());
        let inner: Arc<dyn Storage> = Arc::new(FsStorage::new(dir.path().join("enc")).unwrap());
        let enc = EncryptedStorage::new(inner, Arc::clone(&keys));
        let value = Bytes::from(vec![0x5au8; size]);
        let iters = if quick { 50 } else { 400 };
        let mut rng = Rng(0x9e3779b97f4a7c15);
        let (mut sb, mut se, mut lb, mut le) = (vec![], vec![], vec![], vec![]);
        for i in 0..iters {
            let key = format!("k/{}", i % 16);
            let bare_first = rng.coin();
            for pass in 0..2 {
                if (pass == 0) == bare_first {
                    sb.push(time(async { bare.store(&key, value.clone()).await.unwrap() }).await);
                } else {
                    se.push(time(async { enc.store(&key, value.clone()).await.unwrap() }).await);
                }
            }
            for pass in 0..2 {
                if (pass == 0) == bare_first {
                    lb.push(
                        time(async { assert_eq!(bare.load(&key).await.unwrap().len(), size) })
                            .await,
                    );
                } else {
                    le.push(
                        time(async { assert_eq!(enc.load(&key).await.unwrap().len(), size) }).await,
                    );
                }
            }
        }
        for (op, b, e) in [("store", sb, se), ("load", lb, le)] {
            let (b, e) = (median(b), median(e));
            println!(
                "{:>6}K {:>6} {:>12.1} {:>12.1} {:>8.1}%",
                size / 1024,
                op,
                us(b),
                us(e),
                (us(e) / us(b) - 1.0) * 100.0
            );
        }
    }

    let n = if quick { 1000 } else { 10_000 };
    let dir = bench_dir();
    let inner: Arc<dyn Storage> = Arc::new(FsStorage::new(dir.path()).unwrap());
    let enc = EncryptedStorage::new(Arc::clone(&inner), Arc::clone(&keys));
    let value = Bytes::from(vec![1u8; 4096]);
    for i in 0..n {
        enc.store(&format!("d{}/obj{i}", i % 100), value.clone())
            .await
            .unwrap();
    }
    let mut census = vec![];
    let mut naive = vec![];
    for _ in 0..5 {
        census
            .push(time(async { assert_eq!(enc.census("").await.unwrap().total, n as u64) }).await);
        naive.push(
            time(async {
                let keys = inner.list("", true).await.unwrap();
                let mut total = 0;
                for k in keys {
                    total += inner.load(&k).await.unwrap().len();
                }
                assert_eq!(total, n * (4096 + 5 + 28));
            })
            .await,
        );
    }
    let (c, nv) = (median(census), median(naive));
    println!();
    println!("census of {n} objects of 4 KiB on FsStorage (median of 5)");
    println!(
        "  census (5-byte head reads, 32 in flight): {:>8.1} ms  ({:.1} µs/object)",
        c.as_secs_f64() * 1e3,
        us(c) / n as f64
    );
    println!(
        "  naive scan (list + sequential full loads): {:>7.1} ms  ({:.2}x the census time)",
        nv.as_secs_f64() * 1e3,
        nv.as_secs_f64() / c.as_secs_f64()
    );
}
