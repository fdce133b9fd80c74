//! Conditional writes against a real S3 server (SeaweedFS), directly and
//! through a loopback proxy that strips `If-Match` / `If-None-Match`: a
//! faithful simulation of an S3-compatible server that accepts those
//! headers and applies the write anyway (see `encstore_objstore::testing::proxy`).
//!
//! Skipped with a notice without a server, unless
//! `ENCSTORE_REQUIRE_SERVICES=1`.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use encstore_core::{Error, Storage, WriteCondition, new_lease_token};
use encstore_objstore::object_store::path::Path;
use encstore_objstore::object_store::{ObjectStore, ObjectStoreExt};
use encstore_objstore::testing::proxy::Proxy;
use encstore_objstore::{ObjectStorage, PROBE_OBJECT, S3StorageBuilder};
use futures_util::TryStreamExt;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn unique_prefix(test: &str) -> String {
    format!(
        "encstore-objstore-tests/{test}-{}",
        &new_lease_token().unwrap()[..12]
    )
}

fn store(endpoint: &str, bucket: &str, prefix: &str) -> ObjectStorage {
    S3StorageBuilder::from_env(bucket, prefix)
        .endpoint(endpoint)
        .allow_http(true)
        .lease_duration(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// Every object under `prefix`: path → (size, ETag, content).
async fn snapshot(
    os: &Arc<dyn ObjectStore>,
    prefix: &str,
) -> BTreeMap<String, (u64, Option<String>, Bytes)> {
    let metas: Vec<_> = os
        .list(Some(&Path::parse(prefix).unwrap()))
        .try_collect()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for m in metas {
        let body = os.get(&m.location).await.unwrap().bytes().await.unwrap();
        out.insert(m.location.to_string(), (m.size, m.e_tag.clone(), body));
    }
    out
}

fn assert_unsupported(what: &str, r: Result<(), Error>, op: &str, proxy: &Proxy, bucket: &str) {
    match r {
        Err(
            ref e @ Error::Unsupported {
                backend: "s3",
                op: got_op,
                ref reason,
            },
        ) => {
            assert_eq!(got_op, op, "{what}");
            assert!(reason.contains(&proxy.endpoint), "{what}: {reason}");
            assert!(reason.contains(&format!("{bucket:?}")), "{what}: {reason}");
            assert!(reason.contains("If-None-Match"), "{what}: {reason}");
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("s3 backend cannot {op}: ")),
                "{msg}"
            );
            assert!(msg.contains("does not honour conditional writes"), "{msg}");
        }
        other => panic!("{what}: expected Unsupported, got {other:?}"),
    }
}

/// Through a server that ignores conditions, `store_if`, `try_lock` and
/// `lock` refuse with `Unsupported`, and nothing in the bucket changes;
/// plain `store` and `load` keep working. Without the probe, these writes
/// would have silently overwritten the values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_server_refuses_cas_and_locks_and_changes_nothing() {
    let Some((endpoint, bucket)) = encstore_objstore::testing::server("ignoring_server") else {
        return;
    };
    let prefix = unique_prefix("ignoring");
    // Set up directly: data, a version, a released lock, the sentinel.
    let direct = store(&endpoint, &bucket, &prefix);
    direct.store("a", b("one")).await.unwrap();
    let v = direct
        .store_if("b", b("two"), &WriteCondition::Absent)
        .await
        .unwrap();
    let lease = direct.try_lock("l").await.unwrap();
    direct.unlock(lease).await.unwrap();
    let os = direct.object_store();
    let before = snapshot(&os, &prefix).await;
    assert!(before.contains_key(&format!("{prefix}/{PROBE_OBJECT}")));
    assert_eq!(before.len(), 4, "a, b, the lock object, the sentinel");

    let proxy = Proxy::start(&endpoint, true).await;
    let bad = store(&proxy.endpoint, &bucket, &prefix);
    let cases: Vec<(&str, Result<(), Error>)> = vec![
        (
            "store_if absent on an existing key",
            bad.store_if("a", b("x"), &WriteCondition::Absent)
                .await
                .map(|_| ()),
        ),
        (
            "store_if absent on a new key",
            bad.store_if("new", b("x"), &WriteCondition::Absent)
                .await
                .map(|_| ()),
        ),
        (
            "store_if matches",
            bad.store_if("b", b("x"), &WriteCondition::Matches(v))
                .await
                .map(|_| ()),
        ),
    ];
    for (what, r) in cases {
        assert_unsupported(what, r, "write conditionally", &proxy, &bucket);
    }
    assert_unsupported(
        "try_lock (released lock)",
        bad.try_lock("l").await.map(|_| ()),
        "take a lock",
        &proxy,
        &bucket,
    );
    assert_unsupported(
        "try_lock (new lock)",
        bad.try_lock("m").await.map(|_| ()),
        "take a lock",
        &proxy,
        &bucket,
    );
    let r = tokio::time::timeout(Duration::from_secs(10), bad.lock("l"))
        .await
        .expect("lock returns at once");
    assert_unsupported("lock", r.map(|_| ()), "take a lock", &proxy, &bucket);

    // Nothing changed: same objects, sizes, ETags and bytes.
    assert_eq!(snapshot(&os, &prefix).await, before);
    // The only writes that reached the server were the probe's.
    for l in proxy.log() {
        if l.method == "PUT" {
            assert!(l.path.ends_with(PROBE_OBJECT), "unexpected write {l:?}");
        }
    }
    // The verdict is cached: no second probe.
    let probes = proxy.count(PROBE_OBJECT);
    assert!((2..=4).contains(&probes), "{probes} probe requests");
    let r = bad.store_if("a", b("y"), &WriteCondition::Absent).await;
    assert_unsupported(
        "again",
        r.map(|_| ()),
        "write conditionally",
        &proxy,
        &bucket,
    );
    assert_eq!(proxy.count(PROBE_OBJECT), probes);

    // Plain writes and reads still work through it.
    bad.store("c", b("three")).await.unwrap();
    assert_eq!(bad.load("c").await.unwrap(), b("three"));
    assert_eq!(direct.load("a").await.unwrap(), b("one"));
    direct.delete("a").await.unwrap();
    direct.delete("b").await.unwrap();
    direct.delete("c").await.unwrap();
}

/// On a prefix never probed before, the probe through an ignoring server
/// creates its sentinel (with fixed content) and changes nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_probe_adds_only_its_sentinel() {
    let Some((endpoint, bucket)) = encstore_objstore::testing::server("first_probe") else {
        return;
    };
    let prefix = unique_prefix("first-probe");
    let direct = store(&endpoint, &bucket, &prefix);
    direct.store("a", b("one")).await.unwrap();
    let os = direct.object_store();
    let before = snapshot(&os, &prefix).await;

    let proxy = Proxy::start(&endpoint, true).await;
    let bad = store(&proxy.endpoint, &bucket, &prefix);
    let r = bad.store_if("a", b("x"), &WriteCondition::Absent).await;
    assert_unsupported(
        "store_if",
        r.map(|_| ()),
        "write conditionally",
        &proxy,
        &bucket,
    );

    let mut after = snapshot(&os, &prefix).await;
    let sentinel = after
        .remove(&format!("{prefix}/{PROBE_OBJECT}"))
        .expect("the sentinel");
    assert!(sentinel.2.starts_with(b"encstore conditional-write probe"));
    assert_eq!(after, before);
    direct.delete("a").await.unwrap();
}

/// Many first callers at once share one probe, on an honest server and on
/// an ignoring one; a new handle probes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_callers_share_one_probe() {
    let Some((endpoint, bucket)) = encstore_objstore::testing::server("concurrent_probe") else {
        return;
    };
    for strip in [false, true] {
        let prefix = unique_prefix("concurrent-probe");
        let proxy = Proxy::start(&endpoint, strip).await;
        let s = store(&proxy.endpoint, &bucket, &prefix);
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.store_if(&format!("k{i}"), b("v"), &WriteCondition::Absent)
                        .await
                })
            })
            .collect();
        for t in tasks {
            match (strip, t.await.unwrap()) {
                (false, Ok(_)) | (true, Err(Error::Unsupported { .. })) => {}
                (_, other) => panic!("strip={strip}: unexpected {other:?}"),
            }
        }
        // Honest: GET (missing), create, create again (refused), If-Match
        // (refused). Ignoring: GET (missing), create, create again
        // (accepted: verdict).
        let one = if strip { 3 } else { 4 };
        assert_eq!(proxy.count(PROBE_OBJECT), one, "strip={strip}: one probe");
        // More calls on the handle (and its clones) do not probe again.
        let _ = s.clone().try_lock("l").await;
        assert_eq!(proxy.count(PROBE_OBJECT), one, "strip={strip}: cached");
        // A new handle probes once more; the sentinel exists now, so it
        // skips the creation.
        let s2 = store(&proxy.endpoint, &bucket, &prefix);
        let _ = s2.store_if("k0", b("v"), &WriteCondition::Absent).await;
        assert_eq!(
            proxy.count(PROBE_OBJECT),
            2 * one - 1,
            "strip={strip}: per handle"
        );
        if !strip {
            for i in 0..16 {
                s.delete(&format!("k{i}")).await.unwrap();
            }
        }
    }
}
