//! `encstore store …` against a real S3 server (SeaweedFS, started by
//! `scripts/seaweedfs.sh`), through `--store s3://bucket/prefix` and the
//! standard AWS_* environment. Skipped with a notice without a server,
//! unless `ENCSTORE_REQUIRE_SERVICES=1`.
#![cfg(feature = "s3")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

/// `s3://bucket/unique-prefix`, or `None` after printing why.
fn location(test: &str) -> Option<String> {
    let (_, bucket) = encstore_objstore::testing::server(test)?;
    let tag = encstore_core::new_lease_token().unwrap();
    Some(format!("s3://{bucket}/cli-tests/{test}-{}", &tag[..12]))
}

#[test]
fn store_commands_and_rewrap_over_s3() {
    let Some(store) = location("store_commands_and_rewrap_over_s3") else {
        return;
    };
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    for i in 0..30 {
        let value = format!("secret number {i}");
        put(&store, &k, &format!("certs/{i:02}.pem"), value.as_bytes());
    }
    let got = get(&store, &k, "certs/07.pem");
    assert_eq!(got, b"secret number 7");
    fails(
        &[
            "store",
            "get",
            "--store",
            &store,
            "--keyset",
            &k,
            "certs/nope.pem",
        ],
        1,
        "not found",
    );
    let ls = String::from_utf8(ok(&["store", "ls", "--store", &store, "certs"])).unwrap();
    assert_eq!(ls.lines().count(), 30, "{ls}");

    let (old, new) = add_and_promote(&k);
    let before = status_json(&store, &k);
    assert_eq!(before["total"], 30);
    assert_eq!(before["by_key_id"][old.to_string()], 30);
    assert_eq!(before["primary_key_id"], new);

    let out = ok(&rewrap_args(&store, &k, &["--concurrency", "8"]));
    let summary = String::from_utf8_lossy(&out);
    assert!(summary.contains("30"), "{summary}");

    let after = status_json(&store, &k);
    assert_eq!(after["total"], 30);
    assert_eq!(after["by_key_id"][new.to_string()], 30);
    assert_eq!(after["plaintext"], 0);
    assert_eq!(after["unknown_key"], 0);
    ok(&["store", "verify", "--store", &store, "--keyset", &k]);
    for i in [0, 13, 29] {
        let got = get(&store, &k, &format!("certs/{i:02}.pem"));
        assert_eq!(got, format!("secret number {i}").as_bytes());
    }
    // The old key can be disabled now: the census finds nothing under it.
    ok(&[
        "disable-key",
        "--key-id",
        &old.to_string(),
        "--in",
        &k,
        "--out",
        &k,
        "--store",
        &store,
    ]);
    ok(&["store", "rm", "--store", &store, "--recursive", "certs"]);
    let ls = ok(&["store", "ls", "--store", &store, "--recursive"]);
    assert!(ls.is_empty(), "{}", String::from_utf8_lossy(&ls));
}

// ------------------------------------------------------------ messages

/// `encstore` with no AWS_* variables but `vars`.
fn es_aws(vars: &[(&str, &str)]) -> assert_cmd::Command {
    let mut c = es();
    c.env_clear();
    for k in ["PATH", "HOME", "TMPDIR"] {
        if let Ok(v) = std::env::var(k) {
            c.env(k, v);
        }
    }
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The operator sees, through the CLI, that S3 credentials are missing
/// (naming the variables) instead of an error about the instance-metadata
/// address; that an http:// endpoint needs AWS_ALLOW_HTTP=true; and which
/// address does not answer. No server needed.
#[test]
fn s3_configuration_errors_reach_the_operator() {
    let args = ["store", "ls", "--store", "s3://bucket/prefix"];
    // A custom endpoint without credentials.
    let out = es_aws(&[
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_ALLOW_HTTP", "true"),
    ])
    .args(args)
    .output()
    .unwrap();
    let err = check_fails(
        &args,
        &out,
        1,
        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    );
    assert!(
        err.contains("not to the endpoint http://127.0.0.1:9"),
        "{err}"
    );
    // AWS itself without credentials: the instance-metadata fallback fails
    // (a closed local port stands in for it); the message still names the
    // variables, not the metadata address as the store.
    let metadata = format!("http://127.0.0.1:{}", closed_port());
    let out = es_aws(&[
        ("AWS_METADATA_ENDPOINT", &metadata),
        ("AWS_REGION", "us-east-1"),
    ])
    .args(args)
    .timeout(Duration::from_secs(60))
    .output()
    .unwrap();
    let err = check_fails(&args, &out, 1, "no S3 credentials: set AWS_ACCESS_KEY_ID");
    assert!(!err.contains("cannot reach"), "{err}");
    // A plain http:// endpoint without AWS_ALLOW_HTTP.
    let out = es_aws(&[
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_ACCESS_KEY_ID", "id"),
        ("AWS_SECRET_ACCESS_KEY", "secret-value-never-shown"),
    ])
    .args(args)
    .output()
    .unwrap();
    let err = check_fails(&args, &out, 1, "set AWS_ALLOW_HTTP=true");
    assert!(err.contains("http://127.0.0.1:9"), "{err}");
    assert!(!err.contains("secret-value-never-shown"), "{err}");
    // Nothing answers at the endpoint: said so, with its address, within
    // seconds (bounded retries).
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let start = std::time::Instant::now();
    let out = es_aws(&[
        ("AWS_ENDPOINT_URL", &endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "id"),
        ("AWS_SECRET_ACCESS_KEY", "secret-value-never-shown"),
    ])
    .args(args)
    .output()
    .unwrap();
    let err = check_fails(
        &args,
        &out,
        1,
        &format!("cannot reach the s3 backend at {endpoint}"),
    );
    assert!(!err.contains("secret-value-never-shown"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

/// gs:// and az:// reach their backends through the CLI (no request is
/// needed to see it: a missing setting is reported by that backend).
#[test]
fn gs_and_az_locations_reach_their_backends() {
    for (location, backend) in [("gs://bucket/p", "gcs"), ("az://container/p", "azure")] {
        let args = ["store", "ls", "--store", location];
        let out = es_aws(&[])
            .args(args)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{location}: {err}");
        assert!(!err.contains("unsupported scheme"), "{location}: {err}");
        assert!(err.contains(backend), "{location}: {err}");
    }
    // memory:/// works end to end within one command (an empty store).
    let out = es_aws(&[])
        .args(["store", "ls", "--store", "memory:///"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

// ------------------------------------------------------------ a server that ignores conditions

/// Every object under `prefix` of `bucket` at `endpoint`: name → (size,
/// ETag, bytes).
fn bucket_snapshot(
    rt: &tokio::runtime::Runtime,
    endpoint: &str,
    bucket: &str,
    prefix: &str,
) -> std::collections::BTreeMap<String, (u64, Option<String>, Vec<u8>)> {
    use encstore_objstore::object_store::path::Path;
    use encstore_objstore::object_store::{ObjectStore, ObjectStoreExt};
    use futures_util::TryStreamExt;
    let s = encstore_objstore::S3StorageBuilder::from_env(bucket, "")
        .endpoint(endpoint)
        .allow_http(true)
        .build()
        .unwrap();
    let os = s.object_store();
    rt.block_on(async {
        let metas: Vec<_> = os
            .list(Some(&Path::parse(prefix).unwrap()))
            .try_collect()
            .await
            .unwrap();
        let mut out = std::collections::BTreeMap::new();
        for m in metas {
            let body = os.get(&m.location).await.unwrap().bytes().await.unwrap();
            out.insert(
                m.location.to_string(),
                (m.size, m.e_tag.clone(), body.to_vec()),
            );
        }
        out
    })
}

/// Through a loopback proxy that strips If-Match / If-None-Match (an
/// S3-compatible server that ignores them), `store rewrap` refuses with the
/// Unsupported message, and nothing in the bucket changes.
#[test]
fn rewrap_through_a_server_ignoring_conditions_refuses_and_changes_nothing() {
    let Some((endpoint, bucket)) =
        encstore_objstore::testing::server("rewrap_through_a_server_ignoring_conditions")
    else {
        return;
    };
    let tag = encstore_core::new_lease_token().unwrap();
    let prefix = format!("cli-tests/ignoring-{}", &tag[..12]);
    let store = format!("s3://{bucket}/{prefix}");
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    for i in 0..5 {
        put(
            &store,
            &k,
            &format!("certs/{i}.pem"),
            format!("secret {i}").as_bytes(),
        );
    }
    // A rewrap straight to the server: the probe's sentinel and the lock
    // object exist from now on (nothing to re-encrypt yet).
    ok(&rewrap_args(&store, &k, &[]));
    let (old, new) = add_and_promote(&k);
    let rt = rt();
    let before = bucket_snapshot(&rt, &endpoint, &bucket, &prefix);
    assert_eq!(
        before.keys().filter(|n| n.contains("/certs/")).count(),
        5,
        "{:?}",
        before.keys()
    );

    let proxy = rt.block_on(encstore_objstore::testing::proxy::Proxy::start(
        &endpoint, true,
    ));
    let args = rewrap_args(&store, &k, &[]);
    let out = es()
        .args(&args)
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .output()
        .unwrap();
    let err = check_fails(
        &args,
        &out,
        1,
        &format!("cannot take the rewrap lock on {store}: s3 backend cannot take a lock: "),
    );
    assert!(err.contains("does not honour conditional writes"), "{err}");
    assert!(err.contains(&proxy.endpoint), "{err}");
    // Nothing in the bucket changed: names, ETags, bytes.
    assert_eq!(bucket_snapshot(&rt, &endpoint, &bucket, &prefix), before);
    // No object write reached the server through the proxy.
    for l in proxy.log() {
        if l.method == "PUT" {
            assert!(
                l.path.ends_with(encstore_objstore::PROBE_OBJECT),
                "unexpected write {l:?}"
            );
        }
    }
    // Straight to the server, the same rewrap works.
    ok(&rewrap_args(&store, &k, &[]));
    let v = status_json(&store, &k);
    assert_eq!(v["by_key_id"][new.to_string()], 5, "{v}");
    assert_eq!(v["by_key_id"].get(old.to_string()), None, "{v}");
    ok(&["store", "rm", "--store", &store, "--recursive", "certs"]);
}
