//! `encstore store …` against a real S3 server (SeaweedFS, started by
//! `scripts/seaweedfs.sh`), through `--store s3://bucket/prefix` and the
//! standard AWS_* environment. Skipped with a notice without a server,
//! unless `ENCSTORE_REQUIRE_SERVICES=1`.
#![cfg(feature = "s3")]
#![allow(clippy::unwrap_used)]

mod common;

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
