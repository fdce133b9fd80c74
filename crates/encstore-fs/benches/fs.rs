//! `FsStorage::store` and `load` against the plain `std::fs` floor doing
//! the same bytes, for 1 KiB and 64 KiB values.
//!
//! - store floor: write a temporary file, `sync_all`, rename it over the
//!   target, `fsync` the directory.
//! - load floor: `std::fs::read`.
//! - "async floor": the same floor run through `spawn_blocking` and awaited,
//!   which is the least any async store on this runtime pays.
//!
//! Implementations are interleaved operation by operation (in a random order
//! each time) so that machine noise hits them alike; each figure is the
//! median time per operation.
//!
//! Run with `cargo bench -p encstore-fs` (`--bench fs -- --quick` for a
//! short run; `ENCSTORE_BENCH_DIR=/dev/shm` to measure on tmpfs, where
//! `fsync` is free and only the CPU overhead remains).
#![allow(clippy::unwrap_used, missing_docs)]

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use encstore_core::Storage;
use encstore_fs::FsStorage;

const KEYS: usize = 16;

fn floor_store(dir: &Path, i: usize, value: &[u8]) {
    let target = dir.join(format!("k{}", i % KEYS));
    let tmp = dir.join(format!(".tmp.{i}"));
    let mut f = File::create(&tmp).unwrap();
    f.write_all(value).unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::rename(&tmp, &target).unwrap();
    File::open(dir).unwrap().sync_all().unwrap();
}

fn floor_load(dir: &Path, i: usize) -> Vec<u8> {
    fs::read(dir.join(format!("k{}", i % KEYS))).unwrap()
}

/// Every order of the three implementations.
const ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

/// xorshift64, for the order of each iteration.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Imp {
    Floor,
    AsyncFloor,
    Fs,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

struct Row {
    op: &'static str,
    size: usize,
    floor: Duration,
    async_floor: Duration,
    fs: Duration,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (store_n, load_n) = if quick { (30, 1000) } else { (600, 20000) };
    let warmup = 10;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    // Where to write: the target directory's disk by default;
    // ENCSTORE_BENCH_DIR picks another (tmpfs shows the CPU overhead alone).
    let base = std::env::var_os("ENCSTORE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let dir = tempfile::tempdir_in(&base).unwrap();
    let floor_dir = dir.path().join("floor");
    fs::create_dir(&floor_dir).unwrap();
    let store = FsStorage::new(dir.path().join("store")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    let mut rows = Vec::new();
    for size in [1024usize, 64 * 1024] {
        let value: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        let bytes = Bytes::from(value.clone());
        // Populate both sides so loads always hit.
        for i in 0..KEYS {
            floor_store(&floor_dir, i, &value);
            rt.block_on(store.store(&format!("k{i}"), bytes.clone()))
                .unwrap();
        }

        for op in ["store", "load"] {
            let n = if op == "store" { store_n } else { load_n };
            let mut times = [Vec::new(), Vec::new(), Vec::new()];
            let imps = [Imp::Floor, Imp::AsyncFloor, Imp::Fs];
            // One operation of each implementation per iteration, in a
            // random order, so that noise (and whichever operation ran just
            // before) hits all three alike.
            for i in 0..n + warmup {
                let order = ORDERS[(rng.next() % ORDERS.len() as u64) as usize];
                for k in order {
                    let imp = imps[k];
                    let start = Instant::now();
                    match (op, imp) {
                        ("store", Imp::Floor) => floor_store(&floor_dir, i, &value),
                        ("store", Imp::AsyncFloor) => rt.block_on(async {
                            let (d, v) = (floor_dir.clone(), bytes.clone());
                            tokio::task::spawn_blocking(move || floor_store(&d, i, &v))
                                .await
                                .unwrap();
                        }),
                        ("store", Imp::Fs) => rt.block_on(async {
                            store
                                .store(&format!("k{}", i % KEYS), bytes.clone())
                                .await
                                .unwrap();
                        }),
                        (_, Imp::Floor) => assert_eq!(floor_load(&floor_dir, i).len(), size),
                        (_, Imp::AsyncFloor) => rt.block_on(async {
                            let d = floor_dir.clone();
                            let v = tokio::task::spawn_blocking(move || floor_load(&d, i))
                                .await
                                .unwrap();
                            assert_eq!(v.len(), size);
                        }),
                        (_, Imp::Fs) => rt.block_on(async {
                            let v = store.load(&format!("k{}", i % KEYS)).await.unwrap();
                            assert_eq!(v.len(), size);
                        }),
                    }
                    let took = start.elapsed();
                    if i >= warmup {
                        times[imp as usize].push(took);
                    }
                }
            }
            let [floor, async_floor, fs] = times.map(median);
            rows.push(Row {
                op,
                size,
                floor,
                async_floor,
                fs,
            });
        }
    }

    println!(
        "encstore-fs vs the std::fs floor: median per operation over {store_n} stores / \
         {load_n} loads of each implementation, interleaved, in {}",
        base.display()
    );
    println!();
    println!(
        "| op    | size   | std::fs floor | async floor (spawn_blocking) | FsStorage | FsStorage / floor | FsStorage / async floor |"
    );
    println!(
        "| ----- | ------ | ------------- | ---------------------------- | --------- | ----------------- | ----------------------- |"
    );
    for r in &rows {
        println!(
            "| {:<5} | {:>3} KiB | {:>13} | {:>28} | {:>9} | {:>17.3} | {:>23.3} |",
            r.op,
            r.size / 1024,
            fmt(r.floor),
            fmt(r.async_floor),
            fmt(r.fs),
            r.fs.as_secs_f64() / r.floor.as_secs_f64(),
            r.fs.as_secs_f64() / r.async_floor.as_secs_f64(),
        );
    }
}
