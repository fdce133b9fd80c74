//! Ranged and streamed operations through [`ObjectStorage`] against the
//! same operations through `object_store` directly, on the local SeaweedFS
//! server (`eval "$(bash scripts/seaweedfs.sh start)"`), in one run:
//!
//! - a 4 KiB `load_range` at a random offset of a 64 MiB object, against
//!   `ObjectStoreExt::get_range` (concurrency 1 and 16);
//! - a 64 MiB `store_stream` (1 MiB chunks; 8 MiB parts, 1 in flight),
//!   against `object_store`'s own `WriteMultipart` with the same part size
//!   and concurrency; plus `store_stream_if` with the condition on the
//!   multipart completion (`ConditionalCompletion::Enabled`), which adds a
//!   `HEAD` before the upload;
//! - a 64 MiB `load_stream` drained, against `get(..).into_stream()`
//!   drained.
//!
//! Contenders run in interleaved rounds (the order rotates each round); the
//! table gives each one's median and the ratio of its median time to the
//! direct `object_store` baseline's (1.00 = no overhead), and the median of
//! the per-round ratios.
//!
//! ```text
//! cargo bench -p encstore-objstore --bench s3_stream
//! ENCSTORE_BENCH_ROUNDS=21 cargo bench -p encstore-objstore --bench s3_stream   # default 11
//! ```
//!
//! Without `ENCSTORE_S3_ENDPOINT` it prints a notice and exits.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use encstore_core::{ByteStream, Storage, WriteCondition, new_lease_token};
use encstore_objstore::object_store::path::Path;
use encstore_objstore::object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use encstore_objstore::{
    ConditionalCompletion, DEFAULT_PART_SIZE, DEFAULT_UPLOAD_CONCURRENCY, ObjectStorage,
    S3StorageBuilder,
};
use futures_util::StreamExt;

const MIB: usize = 1 << 20;
const BIG: usize = 64 * MIB;
const RANGE: u64 = 4096;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A cheap pseudo-random sequence for range offsets.
struct Offsets(u64);

impl Offsets {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (self.0 >> 11) % (BIG as u64 - RANGE)
    }
}

/// 64 MiB as 1 MiB chunks (shared, no copy).
fn body(chunks: &[Bytes]) -> ByteStream {
    encstore_core::stream::from_chunks(chunks.to_vec())
}

/// Prints one table row per contender: median seconds per operation (and
/// throughput), ratio of medians to the first, median of paired ratios.
fn report(op: &str, names: &[&str], secs: &[Vec<f64>], bytes_per_op: f64) {
    let base = median(secs[0].clone());
    for (i, name) in names.iter().enumerate() {
        let m = median(secs[i].clone());
        let paired = median(secs[i].iter().zip(&secs[0]).map(|(s, b)| s / b).collect());
        let rate = if bytes_per_op >= MIB as f64 {
            format!("{:.0} MiB/s", bytes_per_op / m / MIB as f64)
        } else {
            format!("{:.0} ops/s", 1.0 / m)
        };
        println!(
            "| {op} | {name} | {:.2} ms | {rate} | {:.3} | {:.3} |",
            m * 1e3,
            m / base,
            paired
        );
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("s3_stream bench: run with `cargo bench -p encstore-objstore --bench s3_stream`");
        return;
    }
    let Some(endpoint) = std::env::var("ENCSTORE_S3_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        println!(
            "SKIPPED: s3_stream bench needs an S3 server; ENCSTORE_S3_ENDPOINT and the AWS_* \
             credentials are set by: eval \"$(bash scripts/seaweedfs.sh start)\""
        );
        return;
    };
    let bucket = std::env::var("ENCSTORE_S3_BUCKET").unwrap_or_else(|_| "encstore-test".to_owned());
    let rounds: usize = std::env::var("ENCSTORE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    let prefix = format!(
        "encstore-bench-stream/{}",
        &new_lease_token().unwrap()[..12]
    );
    let store: ObjectStorage = S3StorageBuilder::from_env(bucket, prefix.clone())
        .endpoint(endpoint)
        .allow_http(true)
        .conditional_completion(ConditionalCompletion::Enabled)
        .build()
        .unwrap();
    let os: Arc<dyn ObjectStore> = store.object_store();
    let path = |k: &str| Path::parse(format!("{prefix}/{k}")).unwrap();

    let chunks: Vec<Bytes> = (0..BIG / MIB)
        .map(|i| {
            Bytes::from(
                (0..MIB)
                    .map(|j| {
                        ((i * MIB + j) as u32)
                            .wrapping_mul(2_654_435_761)
                            .to_le_bytes()[2]
                    })
                    .collect::<Vec<u8>>(),
            )
        })
        .collect();
    store.store_stream("big", body(&chunks)).await.unwrap();

    println!(
        "SeaweedFS on loopback, {rounds} interleaved rounds, medians; ratios are time per \
         operation relative to object_store directly\n"
    );
    println!("| op | contender | time/op | rate | ratio of medians | median of per-round ratios |");
    println!("| --- | --- | --- | --- | --- | --- |");

    // 4 KiB ranges of the 64 MiB object.
    for conc in [1usize, 16] {
        let n = if conc == 1 { 100 } else { 640 };
        let names = ["object_store get_range", "ObjectStorage load_range"];
        let mut secs = vec![Vec::new(); 2];
        for r in 0..=rounds {
            for k in 0..2 {
                let idx = (k + r) % 2;
                let started = Instant::now();
                let mut workers = Vec::new();
                for w in 0..conc {
                    let (os, store, p) = (Arc::clone(&os), store.clone(), path("big"));
                    workers.push(tokio::spawn(async move {
                        let mut offs = Offsets(w as u64 + 1);
                        for _ in 0..n / conc {
                            let at = offs.next();
                            let len = if idx == 0 {
                                os.get_range(&p, at..at + RANGE).await.unwrap().len()
                            } else {
                                store
                                    .load_range("big", at..at + RANGE)
                                    .await
                                    .unwrap()
                                    .bytes
                                    .len()
                            };
                            assert_eq!(len as u64, RANGE);
                        }
                    }));
                }
                for w in workers {
                    w.await.unwrap();
                }
                // Round 0 warms up.
                if r > 0 {
                    secs[idx].push(started.elapsed().as_secs_f64() / n as f64);
                }
            }
        }
        report(
            &format!("4 KiB range, concurrency {conc}"),
            &names,
            &secs,
            RANGE as f64,
        );
    }

    // 64 MiB streamed writes.
    let names = [
        "object_store WriteMultipart",
        "ObjectStorage store_stream",
        "ObjectStorage store_stream_if (conditional completion)",
    ];
    let mut secs = vec![Vec::new(); 3];
    let mut cas_version = None;
    for r in 0..=rounds {
        for k in 0..3 {
            let idx = (k + r) % 3;
            let started = Instant::now();
            match idx {
                0 => {
                    let upload = os.put_multipart(&path("direct-put")).await.unwrap();
                    let mut w = WriteMultipart::new_with_chunk_size(upload, DEFAULT_PART_SIZE);
                    for c in &chunks {
                        w.wait_for_capacity(DEFAULT_UPLOAD_CONCURRENCY)
                            .await
                            .unwrap();
                        w.put(c.clone());
                    }
                    w.finish().await.unwrap();
                }
                1 => store.store_stream("put", body(&chunks)).await.unwrap(),
                _ => {
                    let cond = match cas_version.take() {
                        Some(v) => WriteCondition::Matches(v),
                        None => WriteCondition::Absent,
                    };
                    let v = store
                        .store_stream_if("cas", body(&chunks), &cond)
                        .await
                        .unwrap();
                    cas_version = Some(v);
                }
            }
            if r > 0 {
                secs[idx].push(started.elapsed().as_secs_f64());
            }
        }
    }
    report("64 MiB streamed put", &names, &secs, BIG as f64);

    // 64 MiB streamed reads.
    let names = ["object_store get into_stream", "ObjectStorage load_stream"];
    let mut secs = vec![Vec::new(); 2];
    for r in 0..=rounds {
        for k in 0..2 {
            let idx = (k + r) % 2;
            let started = Instant::now();
            let mut total = 0usize;
            if idx == 0 {
                let mut s = os.get(&path("big")).await.unwrap().into_stream();
                while let Some(c) = s.next().await {
                    total += c.unwrap().len();
                }
            } else {
                let mut s = store.load_stream("big").await.unwrap().body;
                while let Some(c) = s.next().await {
                    total += c.unwrap().len();
                }
            }
            assert_eq!(total, BIG);
            if r > 0 {
                secs[idx].push(started.elapsed().as_secs_f64());
            }
        }
    }
    report("64 MiB streamed get", &names, &secs, BIG as f64);

    store.delete("big").await.unwrap();
    store.delete("put").await.unwrap();
    store.delete("cas").await.unwrap();
    os.delete(&path("direct-put")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
}
