//! 4 KiB `put` and `get` through [`S3Storage`] against the same operations
//! through `object_store` directly, at concurrency 1 and 16, against the
//! local SeaweedFS server (`eval "$(bash scripts/seaweedfs.sh start)"`).
//!
//! Contenders run in interleaved rounds (the order rotates each round), so a
//! noisy neighbour slows them alike; the table gives each one's median
//! throughput and the ratio of its median time per operation to the
//! direct `object_store` baseline's (1.00 = no overhead).
//!
//! ```text
//! cargo bench -p encstore --bench s3
//! ENCSTORE_BENCH_ROUNDS=41 cargo bench -p encstore --bench s3   # default 21
//! ```
//!
//! Without `ENCSTORE_S3_ENDPOINT` it prints a notice and exits.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use encstore_core::{Storage, new_lease_token};
use encstore_objstore::object_store::path::Path;
use encstore_objstore::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use encstore_objstore::{S3Storage, S3StorageBuilder};

const VALUE_LEN: usize = 4096;
/// Keys read by the `get` benchmark (written once, before timing).
const GET_KEYS: usize = 64;

#[derive(Clone)]
enum Target {
    /// `object_store` directly: the baseline.
    Direct(Arc<dyn ObjectStore>, String),
    /// Anything implementing `Storage`.
    Store(Arc<dyn Storage>, String),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Put,
    Get,
}

impl Target {
    async fn put(&self, i: usize, value: Bytes) {
        match self {
            Target::Direct(s, base) => {
                let path = Path::parse(format!("{base}/k{i}")).unwrap();
                s.put(&path, PutPayload::from(value)).await.unwrap();
            }
            Target::Store(s, base) => s.store(&format!("{base}/k{i}"), value).await.unwrap(),
        }
    }

    async fn get(&self, i: usize) -> usize {
        match self {
            Target::Direct(s, base) => {
                let path = Path::parse(format!("{base}/k{i}")).unwrap();
                s.get(&path).await.unwrap().bytes().await.unwrap().len()
            }
            Target::Store(s, base) => s.load(&format!("{base}/k{i}")).await.unwrap().len(),
        }
    }
}

/// Runs `n` operations with `conc` workers; returns the elapsed time.
async fn run(target: &Target, op: Op, conc: usize, n: usize, value: &Bytes) -> Duration {
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..conc {
        let target = target.clone();
        let value = value.clone();
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                match op {
                    Op::Put => target.put(i % 256, value.clone()).await,
                    Op::Get => assert_eq!(target.get(i % GET_KEYS).await, VALUE_LEN),
                }
                i += conc;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    started.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // and must stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("s3 bench: run with `cargo bench -p encstore --bench s3`");
        return;
    }
    let Some(endpoint) = std::env::var("ENCSTORE_S3_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        println!(
            "SKIPPED: s3 bench needs an S3 server; ENCSTORE_S3_ENDPOINT and the AWS_* \
             credentials are set by: eval \"$(bash scripts/seaweedfs.sh start)\""
        );
        return;
    };
    let bucket = std::env::var("ENCSTORE_S3_BUCKET").unwrap_or_else(|_| "encstore-test".to_owned());
    let rounds: usize = std::env::var("ENCSTORE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(21);
    let prefix = format!("encstore-bench/{}", &new_lease_token().unwrap()[..12]);
    let store: S3Storage = S3StorageBuilder::from_env(bucket, prefix.clone())
        .endpoint(endpoint)
        .allow_http(true)
        .build()
        .unwrap();

    // The contenders. The baseline writes under the same prefix through the
    // same client, so only encstore's own layer differs.
    let direct: Arc<dyn ObjectStore> = store.object_store();
    let s3: Arc<dyn Storage> = Arc::new(store.clone());
    let mut contenders: Vec<(&str, Target)> = vec![
        (
            "object_store direct",
            Target::Direct(direct, format!("{prefix}/direct")),
        ),
        ("S3Storage", Target::Store(Arc::clone(&s3), "plain".into())),
    ];
    // EncryptedStorage over the same S3Storage (AES-256-GCM keyset): its
    // objects are 4 KiB + 5 + 28 bytes.
    let keyset =
        encstore_tink::Keyset::generate(&encstore_tink::templates::by_name("AES256_GCM").unwrap())
            .unwrap();
    let keys =
        Arc::new(encstore::ReloadableKeyset::new(&keyset, encstore::Policy::default()).unwrap());
    contenders.push((
        "EncryptedStorage<S3Storage>",
        Target::Store(
            Arc::new(encstore::EncryptedStorage::new(Arc::clone(&s3), keys)),
            "enc".into(),
        ),
    ));

    let value = Bytes::from(
        (0..VALUE_LEN)
            .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1])
            .collect::<Vec<u8>>(),
    );
    for (_, t) in &contenders {
        for i in 0..GET_KEYS {
            t.put(i, value.clone()).await;
        }
    }

    println!("4 KiB objects, SeaweedFS on loopback, {rounds} interleaved rounds, medians\n");
    println!(
        "| op | concurrency | contender | ops/s (median) | time/op vs object_store, \
         ratio of medians | time/op vs object_store, median of per-round ratios |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for op in [Op::Put, Op::Get] {
        for conc in [1usize, 16] {
            let n = if conc == 1 { 60 } else { 320 };
            // Warm-up: connections, caches.
            for (_, t) in &contenders {
                run(t, op, conc, n / 4, &value).await;
            }
            let mut secs: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
            for r in 0..rounds {
                for k in 0..contenders.len() {
                    let idx = (k + r) % contenders.len();
                    let d = run(&contenders[idx].1, op, conc, n, &value).await;
                    secs[idx].push(d.as_secs_f64() / n as f64);
                }
            }
            let base = median(secs[0].clone());
            for (idx, (name, _)) in contenders.iter().enumerate() {
                let m = median(secs[idx].clone());
                // Each round runs the contenders back to back, so the
                // per-round ratio cancels slow drifts in the server's speed.
                let paired = median(secs[idx].iter().zip(&secs[0]).map(|(s, b)| s / b).collect());
                println!(
                    "| {op:?} | {conc} | {name} | {:.0} | {:.3} | {:.3} |",
                    1.0 / m,
                    m / base,
                    paired
                );
            }
        }
    }

    // What encstore's layer adds per operation on the CPU, without the
    // network: key validation and the key-to-path mapping. The request
    // itself costs milliseconds against a local server.
    let n = 200_000;
    let started = Instant::now();
    let mut total = 0usize;
    for i in 0..n {
        total += store
            .object_path(&format!("plain/k{}", i % 256))
            .unwrap()
            .as_ref()
            .len();
    }
    let per_op = started.elapsed().as_secs_f64() / n as f64;
    assert!(total > 0);
    println!(
        "\nkey validation + path mapping: {:.0} ns per operation \
         (the same work in the direct contender's Path::parse included)",
        per_op * 1e9
    );

    s3.delete("plain").await.unwrap();
    s3.delete("enc").await.unwrap();
    let list: Vec<_> = {
        use futures_util::TryStreamExt;
        store
            .object_store()
            .list(Some(&Path::parse(format!("{prefix}/direct")).unwrap()))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .unwrap()
    };
    for p in list {
        store.object_store().delete(&p).await.unwrap();
    }
}
