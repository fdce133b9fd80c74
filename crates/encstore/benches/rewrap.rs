//! `rewrap` over 10,000 objects of 4 KiB on the filesystem backend, against
//! a plain copy of the same objects on the same backend, in the same run.
//!
//! - rewrap: [`EncryptedStorage::reencrypt_one`] for every key, 16 at a time
//!   (what `encstore store rewrap` does per object, without its re-check):
//!   versioned load, decrypt, encrypt under the new primary, conditional
//!   write.
//! - copy: `load` then `store` of each stored ciphertext through the bare
//!   `FsStorage`, 16 at a time: the same reads and writes with no
//!   decryption, encryption or version check.
//!
//! Each rewrap pass flips the primary between two keys, so every pass
//! re-encrypts every object. Passes alternate (copy, rewrap, copy, ...);
//! the figures are medians over the passes. The goal is rewrap throughput
//! ≥ 0.8 × copy throughput.
//!
//! Run with `cargo bench -p encstore --bench rewrap`. Knobs:
//! `ENCSTORE_BENCH_OBJECTS` (default 10000), `ENCSTORE_BENCH_PASSES`
//! (default 5 of each), `ENCSTORE_BENCH_DIR` (default: the system temp dir;
//! `/dev/shm` removes fsync from the picture).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use encstore::{EncryptedStorage, ObjectReencryption, Policy, ReloadableKeyset};
use encstore_core::Storage;
use encstore_fs::FsStorage;
use encstore_tink::keyset::Keyset;
use tokio::task::JoinSet;

const SIZE: usize = 4096;
const CONCURRENCY: usize = 16;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn key(i: usize) -> String {
    format!("obj/{:02}/{i:05}", i % 64)
}

/// Runs `op` on every key, `CONCURRENCY` at a time; returns the wall time.
async fn over_all<F, Fut>(keys: &Arc<Vec<String>>, op: F) -> Duration
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let mut set = JoinSet::new();
    for k in keys.iter() {
        if set.len() >= CONCURRENCY {
            set.join_next().await.unwrap().unwrap();
        }
        set.spawn(op(k.clone()));
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    start.elapsed()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let n = env_usize("ENCSTORE_BENCH_OBJECTS", 10_000);
    let passes = env_usize("ENCSTORE_BENCH_PASSES", 5).max(1);
    let base = std::env::var("ENCSTORE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = tempfile::Builder::new()
        .prefix("encstore-rewrap-bench-")
        .tempdir_in(&base)
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let template = encstore_tink::templates::by_name("AES256_GCM").unwrap();
    let mut keyset = Keyset::generate(&template).unwrap();
    let first = keyset.primary_key_id();
    let second = keyset.add_key(&template).unwrap();
    let keys_handle = Arc::new(ReloadableKeyset::new(&keyset, Policy::tink()).unwrap());
    let fs: Arc<dyn Storage> = Arc::new(FsStorage::new(dir.path()).unwrap());
    let store = EncryptedStorage::new(Arc::clone(&fs), Arc::clone(&keys_handle));
    let keys: Arc<Vec<String>> = Arc::new((0..n).map(key).collect());

    println!(
        "rewrap bench: {n} objects of {SIZE} B on FsStorage at {}, concurrency {CONCURRENCY}, {passes} passes each",
        base.display()
    );
    rt.block_on(async {
        let s = store.clone();
        over_all(&keys, move |k| {
            let s = s.clone();
            async move {
                let mut v = vec![0u8; SIZE];
                v[..k.len()].copy_from_slice(k.as_bytes());
                s.store(&k, Bytes::from(v)).await.unwrap();
            }
        })
        .await;
    });

    let mut copy = Vec::new();
    let mut rewrap = Vec::new();
    let mut primary = first;
    for pass in 0..passes {
        let t = rt.block_on(over_all(&keys, {
            let fs = Arc::clone(&fs);
            move |k| {
                let fs = Arc::clone(&fs);
                async move {
                    let v = fs.load(&k).await.unwrap();
                    fs.store(&k, v).await.unwrap();
                }
            }
        }));
        copy.push(t);

        primary = if primary == first { second } else { first };
        keyset.promote(primary).unwrap();
        keys_handle.replace(&keyset).unwrap();
        let t = rt.block_on(over_all(&keys, {
            let s = store.clone();
            move |k| {
                let s = s.clone();
                async move {
                    match s.reencrypt_one(&k).await.unwrap() {
                        ObjectReencryption::Reencrypted { .. } => {}
                        other => panic!("{k}: {other:?}"),
                    }
                }
            }
        }));
        rewrap.push(t);
        println!(
            "pass {pass}: copy {:.2} s, rewrap {:.2} s",
            copy[pass].as_secs_f64(),
            rewrap[pass].as_secs_f64()
        );
    }
    let (c, r) = (median(&mut copy), median(&mut rewrap));
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let mib = |d: Duration| (n * SIZE) as f64 / d.as_secs_f64() / (1024.0 * 1024.0);
    println!(
        "copy   (load + store, bare FsStorage): median {:.2} s, {:.0} objects/s, {:.1} MiB/s",
        c.as_secs_f64(),
        rate(c),
        mib(c)
    );
    println!(
        "rewrap (reencrypt_one, EncryptedStorage): median {:.2} s, {:.0} objects/s, {:.1} MiB/s",
        r.as_secs_f64(),
        rate(r),
        mib(r)
    );
    println!(
        "ratio rewrap/copy throughput: {:.3} (goal >= 0.8)",
        c.as_secs_f64() / r.as_secs_f64()
    );
}
