//! Streamed and ranged operations of `FsStorage` on a large object (64 MiB
//! by default), against the whole-value operations and a plain `std::fs`
//! floor run through `spawn_blocking`, in the same run:
//!
//! - write: `store_stream` (1 MiB chunks) and `store` (the whole value)
//!   against the floor (write a temporary file, `sync_all`, rename, `fsync`
//!   the directory);
//! - read: `load_stream` and `load_stream_versioned` (drained) and `load`
//!   against the floor (`std::fs::read`), and a chunked floor (one blocking
//!   task reading 256 KiB chunks into a reused buffer, constant memory);
//! - range: `load_range` of 4 KiB in the middle against `load` of the whole
//!   object and a floor `pread` of those 4 KiB.
//!
//! Implementations are interleaved in a random order each iteration; each
//! figure is the median.
//!
//! Run with `cargo bench -p encstore-fs --bench stream` (`-- --quick` for a
//! short run; `ENCSTORE_BENCH_DIR=/dev/shm` for tmpfs, where `fsync` is free
//! and only the CPU and copy costs remain; `ENCSTORE_BENCH_MIB=N` for
//! another size).
#![allow(clippy::unwrap_used, missing_docs)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use encstore_core::{Storage, stream};
use encstore_fs::FsStorage;
use futures_util::StreamExt;

fn floor_store(dir: &Path, i: usize, value: &[u8]) {
    let target = dir.join("obj");
    let tmp = dir.join(format!(".tmp.{i}"));
    let mut f = File::create(&tmp).unwrap();
    f.write_all(value).unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::rename(&tmp, &target).unwrap();
    File::open(dir).unwrap().sync_all().unwrap();
}

fn floor_chunked_read(path: &Path) -> usize {
    let mut f = File::open(path).unwrap();
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0;
    loop {
        match f.read(&mut buf).unwrap() {
            0 => return n,
            k => n += k,
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
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

/// Runs each of `ops` `n` times (plus a warm-up), interleaved in a random
/// order, and returns the median of each.
fn interleave(n: usize, rng: &mut Rng, ops: &mut [&mut dyn FnMut(usize)]) -> Vec<Duration> {
    let warmup = 2;
    let mut times = vec![Vec::new(); ops.len()];
    for i in 0..n + warmup {
        let mut order: Vec<usize> = (0..ops.len()).collect();
        for k in (1..order.len()).rev() {
            order.swap(k, (rng.next() % (k as u64 + 1)) as usize);
        }
        for k in order {
            let start = Instant::now();
            ops[k](i);
            if i >= warmup {
                times[k].push(start.elapsed());
            }
        }
    }
    times.into_iter().map(median).collect()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 5 } else { 21 };
    let mib: usize = std::env::var("ENCSTORE_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let size = mib << 20;
    let base = std::env::var_os("ENCSTORE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let dir = tempfile::tempdir_in(&base).unwrap();
    let floor_dir = dir.path().join("floor");
    fs::create_dir(&floor_dir).unwrap();
    let store = FsStorage::new(dir.path().join("store")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let value: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
    let bytes = Bytes::from(value.clone());
    let chunks = || {
        let b = bytes.clone();
        stream::from_chunks(
            (0..size)
                .step_by(1 << 20)
                .map(move |i| b.slice(i..(i + (1 << 20)).min(size)))
                .collect::<Vec<_>>(),
        )
    };
    floor_store(&floor_dir, 0, &value);
    rt.block_on(store.store("obj", bytes.clone())).unwrap();
    let floor_obj = floor_dir.join("obj");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);

    let write = interleave(
        n,
        &mut rng,
        &mut [
            &mut |i| {
                rt.block_on(async {
                    let (d, v) = (floor_dir.clone(), bytes.clone());
                    tokio::task::spawn_blocking(move || floor_store(&d, i, &v))
                        .await
                        .unwrap()
                })
            },
            &mut |_| rt.block_on(store.store("obj", bytes.clone())).unwrap(),
            &mut |_| rt.block_on(store.store_stream("obj", chunks())).unwrap(),
        ],
    );

    let drain = |body: encstore_core::ByteStream| async move {
        let mut body = body;
        let mut n = 0;
        while let Some(c) = body.next().await {
            n += c.unwrap().len();
        }
        n
    };
    let read = interleave(
        n,
        &mut rng,
        &mut [
            &mut |_| {
                let p = floor_obj.clone();
                let v = rt.block_on(async {
                    tokio::task::spawn_blocking(move || fs::read(p).unwrap())
                        .await
                        .unwrap()
                });
                assert_eq!(v.len(), size);
            },
            &mut |_| {
                let p = floor_obj.clone();
                let k = rt.block_on(async {
                    tokio::task::spawn_blocking(move || floor_chunked_read(&p))
                        .await
                        .unwrap()
                });
                assert_eq!(k, size);
            },
            &mut |_| assert_eq!(rt.block_on(store.load("obj")).unwrap().len(), size),
            &mut |_| {
                let k = rt
                    .block_on(async { drain(store.load_stream("obj").await.unwrap().body).await });
                assert_eq!(k, size);
            },
            &mut |_| {
                let k = rt.block_on(async {
                    drain(
                        store
                            .load_stream_versioned("obj")
                            .await
                            .unwrap()
                            .stream
                            .body,
                    )
                    .await
                });
                assert_eq!(k, size);
            },
        ],
    );

    let mid = (size / 2) as u64;
    let range = interleave(
        n * 10,
        &mut rng,
        &mut [
            &mut |_| {
                let p = floor_obj.clone();
                rt.block_on(async {
                    tokio::task::spawn_blocking(move || {
                        let mut buf = vec![0u8; 4096];
                        File::open(p).unwrap().read_exact_at(&mut buf, mid).unwrap();
                        buf
                    })
                    .await
                    .unwrap()
                });
            },
            &mut |_| {
                let r = rt
                    .block_on(store.load_range("obj", mid..mid + 4096))
                    .unwrap();
                assert_eq!(r.bytes.len(), 4096);
            },
            &mut |_| assert_eq!(rt.block_on(store.load("obj")).unwrap().len(), size),
        ],
    );

    let gbs = |d: Duration| size as f64 / d.as_secs_f64() / 1e9;
    println!(
        "FsStorage, {mib} MiB object, medians of {n} interleaved runs ({} for ranges), in {}",
        n * 10,
        base.display()
    );
    println!();
    println!("| op | implementation | median | GB/s | / floor |");
    println!("| --- | --- | --- | --- | --- |");
    let rows: [(&str, &str, Duration, Duration); 11] = [
        ("write", "floor (spawn_blocking)", write[0], write[0]),
        ("write", "`store` (whole value)", write[1], write[0]),
        ("write", "`store_stream` (1 MiB chunks)", write[2], write[0]),
        (
            "read",
            "floor `fs::read` (spawn_blocking)",
            read[0],
            read[0],
        ),
        (
            "read",
            "floor chunked (one task, 256 KiB)",
            read[1],
            read[0],
        ),
        ("read", "`load`", read[2], read[0]),
        ("read", "`load_stream`", read[3], read[0]),
        ("read", "`load_stream_versioned`", read[4], read[0]),
        (
            "4 KiB range",
            "floor `pread` (spawn_blocking)",
            range[0],
            range[0],
        ),
        ("4 KiB range", "`load_range`", range[1], range[0]),
        (
            "4 KiB range",
            "`load` of the whole object",
            range[2],
            range[0],
        ),
    ];
    for (op, imp, d, floor) in rows {
        let rate = if op == "4 KiB range" {
            "".to_owned()
        } else {
            format!("{:.2}", gbs(d))
        };
        println!(
            "| {op} | {imp} | {} | {rate} | {:.2} |",
            fmt(d),
            d.as_secs_f64() / floor.as_secs_f64()
        );
    }
}
