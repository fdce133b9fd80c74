//! The `encstore` tool and `EncryptedObjectStore` (encstore-object-store)
//! on one S3 prefix (SeaweedFS): each reads what the other wrote, and a
//! key rotation done with the tool (add, promote, `store rewrap`, census,
//! retire) leaves every object readable through `EncryptedObjectStore`.
//! Without `ENCSTORE_S3_ENDPOINT` the test prints `SKIPPED` and passes,
//! unless `ENCSTORE_REQUIRE_SERVICES=1`.
#![cfg(feature = "s3")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::{Dir, key_args, ok, primary_of, read_keyset, run, store_args};
use encstore::{Policy, ReloadableKeyset};
use encstore_object_store::EncryptedObjectStore;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[1] ^ seed)
        .collect()
}

/// An EncryptedObjectStore over `prefix` of the bucket, with the keyset
/// files as they are now.
fn eos(s3: &Arc<dyn ObjectStore>, prefix: &str, k: &str, sk: &str) -> EncryptedObjectStore {
    let keys =
        ReloadableKeyset::new_with_streaming(&read_keyset(k), &read_keyset(sk), Policy::default())
            .unwrap();
    let inner: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(s3.clone(), prefix));
    EncryptedObjectStore::new(inner, Arc::new(keys)).with_part_size(5 << 20)
}

#[test]
fn the_tool_and_encrypted_object_store_share_objects_and_rotations() {
    let test = "the_tool_and_encrypted_object_store_share_objects_and_rotations";
    let Some((endpoint, bucket)) = encstore_objstore::testing::server(test) else {
        return;
    };
    let rt = common::rt();
    let tag = encstore_core::new_lease_token().unwrap();
    let prefix = format!("cli-tests/eos-{}", &tag[..12]);
    let st = format!("s3://{bucket}/{prefix}");
    let s3 = encstore_objstore::S3StorageBuilder::from_env(bucket.clone(), prefix.clone())
        .endpoint(endpoint)
        .allow_http(true)
        .build()
        .unwrap()
        .object_store();
    let d = Dir::new();
    let k = d.s("k.json");
    ok(&["create-keyset", "--key-template", "AES256_GCM", "--out", &k]);
    let sk = d.s("s.json");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM_HKDF_4KB",
        "--out",
        &sk,
    ]);

    // EncryptedObjectStore writes; the tool reads (whole, and a range).
    let from_eos = data(300_000, 1);
    let store = eos(&s3, &prefix, &k, &sk);
    rt.block_on(store.put(&Path::from("eos/a.bin"), from_eos.clone().into()))
        .unwrap();
    assert_eq!(
        ok(&store_args("get", &st, &k, &sk, &["eos/a.bin"])),
        from_eos
    );
    assert_eq!(
        ok(&store_args(
            "get",
            &st,
            &k,
            &sk,
            &["eos/a.bin", "--range", "70000-74095"]
        )),
        &from_eos[70_000..74_096]
    );

    // The tool writes a large and a small object; EncryptedObjectStore
    // reads them, with plaintext sizes in head.
    let big = data(2_500_000, 2);
    let big_file = d.s("big");
    std::fs::write(&big_file, &big).unwrap();
    ok(&store_args(
        "put",
        &st,
        &k,
        &sk,
        &["cli/big.bin", "--in", &big_file],
    ));
    common::put(&st, &k, "cli/small", b"small secret");
    let got = rt.block_on(async {
        let p = Path::from("cli/big.bin");
        let whole = store.get(&p).await.unwrap().bytes().await.unwrap();
        let range = store.get_range(&p, 1_000_000..1_000_100).await.unwrap();
        let size = store.head(&p).await.unwrap().size;
        let small = store
            .get(&Path::from("cli/small"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        (whole, range, size, small)
    });
    assert_eq!(&got.0[..], &big[..]);
    assert_eq!(&got.1[..], &big[1_000_000..1_000_100]);
    assert_eq!(got.2, big.len() as u64);
    assert_eq!(&got.3[..], b"small secret");

    // Rotation with the tool: a new streaming primary, rewrap, census.
    let old = primary_of(&sk);
    ok(&[
        "add-key",
        "--key-template",
        "AES128_GCM_HKDF_4KB",
        "--in",
        &sk,
        "--out",
        &sk,
    ]);
    let new = read_keyset(&sk)
        .info()
        .keys
        .iter()
        .map(|x| x.key_id)
        .find(|id| *id != old)
        .unwrap();
    ok(&key_args("promote-key", &new.to_string(), &sk));
    let status: serde_json::Value =
        serde_json::from_slice(&ok(&store_args("status", &st, &k, &sk, &["--json"]))).unwrap();
    assert_eq!(status["large"], 2, "{status}");
    ok(&store_args("rewrap", &st, &k, &sk, &[]));
    let status: serde_json::Value =
        serde_json::from_slice(&ok(&store_args("status", &st, &k, &sk, &["--json"]))).unwrap();
    assert_eq!(status["streaming_primary_key_id"], new, "{status}");
    // Retiring the old streaming key: the census finds nothing under it.
    let old_id = old.to_string();
    let mut args = key_args("disable-key", &old_id, &sk);
    args.extend(["--store", st.as_str()]);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // EncryptedObjectStore with the rotated keysets (old key DISABLED)
    // reads everything, including what it wrote itself before the
    // rotation; new writes go under the new primary, which the tool reads.
    let store = eos(&s3, &prefix, &k, &sk);
    let after = rt.block_on(async {
        let a = store
            .get(&Path::from("eos/a.bin"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let b = store
            .get(&Path::from("cli/big.bin"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        store
            .put(&Path::from("eos/after.bin"), data(50_000, 3).into())
            .await
            .unwrap();
        (a, b)
    });
    assert_eq!(&after.0[..], &from_eos[..]);
    assert_eq!(&after.1[..], &big[..]);
    assert_eq!(
        ok(&store_args("get", &st, &k, &sk, &["eos/after.bin"])),
        data(50_000, 3)
    );
    let status: serde_json::Value =
        serde_json::from_slice(&ok(&store_args("status", &st, &k, &sk, &["--json"]))).unwrap();
    assert_eq!(status["large"], 3, "{status}");

    // Clean up the prefix.
    rt.block_on(async {
        for p in ["eos/a.bin", "eos/after.bin", "cli/big.bin", "cli/small"] {
            store.delete(&Path::from(p)).await.unwrap();
        }
    });
}
