//! EncryptedObjectStore over object_store's in-memory store: object_store's
//! own integration test functions, compatibility with EncryptedStorage (the
//! `encstore` tool's reader and writer), rotation, ranged reads that fetch
//! only the covering segments, and the error mapping.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{Counting, keys, keys_with};
use encstore::EncryptedStorage;
use encstore_core::Storage;
use encstore_object_store::{EncryptedObjectStore, EncryptionError};
use encstore_objstore::ObjectStorage;
use encstore_tink::templates::by_name;
use futures_util::TryStreamExt;
use object_store::integration::*;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, UpdateVersion,
};

/// The (path, size) pairs `enc.list` yields under `prefix`, sorted.
async fn listed(enc: &EncryptedObjectStore, prefix: &str) -> Vec<(String, u64)> {
    let mut listed: Vec<(String, u64)> = enc
        .list(Some(&Path::from(prefix)))
        .map_ok(|m| (m.location.to_string(), m.size))
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    listed
}

fn store() -> (Arc<InMemory>, EncryptedObjectStore) {
    let inner = Arc::new(InMemory::new());
    let enc = EncryptedObjectStore::new(inner.clone(), keys());
    (inner, enc)
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// Every object in `inner` is ciphertext: none contains `needle`.
async fn no_plaintext(inner: &dyn ObjectStore, needle: &[u8]) {
    let metas: Vec<_> = futures_util::TryStreamExt::try_collect::<Vec<_>>(inner.list(None))
        .await
        .unwrap();
    assert!(!metas.is_empty());
    for m in metas {
        let ct = inner.get(&m.location).await.unwrap().bytes().await.unwrap();
        assert!(
            !ct.windows(needle.len()).any(|w| w == needle),
            "{} holds plaintext",
            m.location
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_integration_suite_over_memory() {
    let (inner, enc) = store();
    // Small inner parts so the multipart tests cut several parts.
    let enc = enc.with_part_size(5 << 20);
    put_get_delete_list(&enc).await;
    get_opts(&enc).await;
    put_opts(&enc, true).await;
    put_get_attributes(&enc).await;
    list_uses_directories_correctly(&enc).await;
    list_with_delimiter(&enc).await;
    list_with_offset_exclusivity(&enc).await;
    rename_and_copy(&enc).await;
    copy_if_not_exists(&enc).await;
    copy_rename_nonexistent_object(&enc).await;
    stream_get(&enc).await;
    multipart_race_condition(&enc, true).await;
    multipart_out_of_order(&enc).await;
    get_nonexistent_object(&enc, None).await.unwrap_err();
    // What the suite left behind is ciphertext.
    no_plaintext(inner.as_ref(), b"arbitrary data").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_gets_fetch_only_the_covering_segments() {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let counting = Arc::new(Counting::new(inner));
    let enc = EncryptedObjectStore::new(counting.clone(), keys());
    let p = Path::from("big/object.bin");
    let value = data(1 << 20); // 256 segments of 4 KiB
    enc.put(&p, value.clone().into()).await.unwrap();

    // head: one small ranged GET, the plaintext size.
    counting.reset();
    let meta = enc.head(&p).await.unwrap();
    assert_eq!(meta.size, value.len() as u64);
    assert_eq!(counting.gets(), 1);
    assert!(counting.bytes() <= 45);

    // A range after head: one ranged GET of the two covering segments.
    counting.reset();
    let got = enc.get_range(&p, 10_000..12_000).await.unwrap();
    assert_eq!(&got[..], &value[10_000..12_000]);
    assert_eq!(counting.gets(), 1);
    assert!(counting.bytes() <= 2 * 4096, "{}", counting.bytes());

    // Suffix and Offset, exact bytes and plaintext ranges.
    for (range, want) in [
        (GetRange::Suffix(100), value.len() - 100..value.len()),
        (
            GetRange::Offset(value.len() as u64 - 5000),
            value.len() - 5000..value.len(),
        ),
        (GetRange::Bounded(0..1), 0..1),
        (GetRange::Bounded(4095..4097), 4095..4097),
    ] {
        counting.reset();
        let r = enc
            .get_opts(&p, GetOptions::new().with_range(Some(range.clone())))
            .await
            .unwrap();
        assert_eq!(r.meta.size, value.len() as u64);
        assert_eq!(r.range, want.start as u64..want.end as u64, "{range:?}");
        assert_eq!(
            &r.bytes().await.unwrap()[..],
            &value[want.clone()],
            "{range:?}"
        );
        assert_eq!(counting.gets(), 1, "{range:?}");
        // A range of n bytes spans at most n / 4080 + 2 segments of 4096
        // ciphertext bytes (4080 of plaintext).
        let segments = (want.end - want.start) as u64 / 4080 + 2;
        assert!(
            counting.bytes() <= segments * 4096,
            "{range:?}: {}",
            counting.bytes()
        );
    }

    // get_ranges (what Parquet calls): object_store's default coalescing
    // (ranges less than 1 MiB apart are read as one), then only the
    // segments covering the coalesced range.
    let ranges = [1000..1100, 500_000..501_000, 900_000..900_010];
    let got = enc.get_ranges(&p, &ranges).await.unwrap();
    for (r, g) in ranges.iter().zip(got) {
        assert_eq!(&g[..], &value[r.start as usize..r.end as usize]);
    }
    counting.reset();
    let ranges = [300_000..300_100, 301_000..301_500];
    let got = enc.get_ranges(&p, &ranges).await.unwrap();
    for (r, g) in ranges.iter().zip(got) {
        assert_eq!(&g[..], &value[r.start as usize..r.end as usize]);
    }
    assert_eq!(counting.gets(), 1);
    assert!(counting.bytes() <= 2 * 4096, "{}", counting.bytes());

    // Without a remembered header (a new store over the same inner): the
    // header and one ranged GET of the segments.
    let fresh = EncryptedObjectStore::new(counting.clone(), enc.keyset().clone());
    counting.reset();
    let got = fresh.get_range(&p, 700_000..700_100).await.unwrap();
    assert_eq!(&got[..], &value[700_000..700_100]);
    assert_eq!(counting.gets(), 2);
    assert!(counting.bytes() <= 45 + 4096, "{}", counting.bytes());

    // A replaced object is never read with a stale header.
    let other = data(300_000)
        .into_iter()
        .map(|b| b ^ 0x5a)
        .collect::<Vec<u8>>();
    let raw = enc.inner().clone();
    let writer = EncryptedObjectStore::new(raw, enc.keyset().clone());
    writer.put(&p, other.clone().into()).await.unwrap();
    let got = enc.get_range(&p, 10_000..12_000).await.unwrap();
    assert_eq!(&got[..], &other[10_000..12_000]);
    let bad = enc.get_range(&p, 400_000..400_010).await.unwrap_err();
    assert!(
        !matches!(bad, object_store::Error::NotFound { .. }),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_moved_objects_fail_with_an_authentication_error_naming_the_path() {
    let (inner, enc) = store();
    let p = Path::from("a/x");
    let value = data(20_000);
    enc.put(&p, value.clone().into()).await.unwrap();

    // Moved: a server-side copy of the ciphertext under another name.
    let q = Path::from("b/y");
    inner.copy(&p, &q).await.unwrap();
    let err = enc.get(&q).await.unwrap().bytes().await.unwrap_err();
    let e = EncryptionError::of(&err).unwrap_or_else(|| panic!("{err}"));
    assert!(e.is_authentication());
    assert!(err.to_string().contains("b/y"), "{err}");
    let err = enc.get_range(&q, 100..200).await.unwrap_err();
    assert!(
        EncryptionError::of(&err).unwrap().is_authentication(),
        "{err}"
    );

    // One flipped byte in a middle segment: the whole read fails there,
    // a range elsewhere still reads.
    let mut ct = inner.get(&p).await.unwrap().bytes().await.unwrap().to_vec();
    let mid = ct.len() / 2;
    ct[mid] ^= 1;
    inner.put(&p, ct.into()).await.unwrap();
    let err = enc.get(&p).await.unwrap().bytes().await.unwrap_err();
    assert!(
        EncryptionError::of(&err).unwrap().is_authentication(),
        "{err}"
    );
    assert!(err.to_string().contains("a/x"));
    assert_eq!(&enc.get_range(&p, 0..100).await.unwrap()[..], &value[..100]);
    let err = enc.get_range(&p, 9_000..11_000).await.unwrap_err();
    assert!(
        EncryptionError::of(&err).unwrap().is_authentication(),
        "{err}"
    );

    // Truncated: the size no streaming ciphertext has, or a lost segment.
    let ct = inner.get(&p).await.unwrap().bytes().await.unwrap();
    inner
        .put(&p, ct.slice(..ct.len() - 4096).into())
        .await
        .unwrap();
    let err = enc.get(&p).await.unwrap().bytes().await.unwrap_err();
    assert!(
        EncryptionError::of(&err).unwrap().is_authentication(),
        "{err}"
    );

    // Plaintext written around the store: an unknown-key error.
    let r = Path::from("plain");
    inner.put(&r, "hello there".into()).await.unwrap();
    let err = enc.get(&r).await.unwrap_err();
    assert!(
        matches!(
            EncryptionError::of(&err),
            Some(EncryptionError::UnknownKey { .. })
        ),
        "{err}"
    );
    // No secret in an error or in Debug output.
    let debug = format!("{enc:?}");
    assert!(
        !debug.contains("key_value") && !debug.contains("value:"),
        "{debug}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_object_store_errors() {
    let (_, enc) = store();
    let p = Path::from("e");
    let err = enc.get(&p).await.unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    let err = enc.head(&p).await.unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    let err = enc.get_range(&p, 0..3).await.unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");

    let v1 = enc.put(&p, "one".into()).await.unwrap();
    let create = PutOptions::from(PutMode::Create);
    let err = enc.put_opts(&p, "two".into(), create).await.unwrap_err();
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "{err}"
    );
    let stale = UpdateVersion {
        e_tag: Some("\"nope\"".into()),
        version: None,
    };
    let err = enc
        .put_opts(&p, "two".into(), PutMode::Update(stale).into())
        .await
        .unwrap_err();
    assert!(
        matches!(err, object_store::Error::Precondition { .. }),
        "{err}"
    );
    let v2 = enc
        .put_opts(&p, "two".into(), PutMode::Update(v1.clone().into()).into())
        .await
        .unwrap();
    assert_ne!(v1.e_tag, v2.e_tag);
    assert_eq!(
        &enc.get(&p).await.unwrap().bytes().await.unwrap()[..],
        b"two"
    );

    let o = GetOptions {
        if_none_match: v2.e_tag.clone(),
        ..GetOptions::default()
    };
    let err = enc.get_opts(&p, o).await.unwrap_err();
    assert!(
        matches!(err, object_store::Error::NotModified { .. }),
        "{err}"
    );
    let o = GetOptions {
        if_match: v1.e_tag.clone(),
        range: Some(GetRange::Bounded(0..1)),
        ..GetOptions::default()
    };
    let err = enc.get_opts(&p, o).await.unwrap_err();
    assert!(
        matches!(err, object_store::Error::Precondition { .. }),
        "{err}"
    );
    // The e_tag of head is the stored object's, usable for Update.
    let meta = enc.head(&p).await.unwrap();
    assert_eq!(meta.e_tag, v2.e_tag);
    assert_eq!(meta.size, 3);
}

/// The `encstore` tool's side (EncryptedStorage over encstore-objstore's
/// ObjectStorage) and EncryptedObjectStore over the same store read each
/// other's objects, and the census, verify and rewrap of the tool work on
/// what EncryptedObjectStore wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_storage_and_encrypted_object_store_read_each_other() {
    let (_aead, mut streaming, keys) = keys_with("AES256_GCM_HKDF_4KB");
    let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let enc = EncryptedObjectStore::new(raw.clone(), keys.clone());
    let tool = EncryptedStorage::new(
        Arc::new(ObjectStorage::new(raw.clone(), "").unwrap()),
        keys.clone(),
    );
    compatibility(&enc, &tool).await;

    // Rotation: a new streaming primary; old objects still read, new ones
    // use the new key; the tool's census counts both, its rewrap moves
    // everything to the new key, and this store reads the result.
    let old = streaming.primary_key_id();
    let new = streaming
        .rotate(&by_name("AES256_GCM_HKDF_4KB").unwrap())
        .unwrap();
    keys.replace_streaming(&streaming).unwrap();
    let p = Path::from("rotated/new.bin");
    enc.put(&p, data(10_000).into()).await.unwrap();
    let census = tool.census("").await.unwrap();
    assert_eq!(census.by_key_id.get(&new), Some(&1));
    assert!(
        census.by_key_id.get(&old).copied().unwrap_or(0) >= 2,
        "{census:?}"
    );
    for key in tool.inner().list("", true).await.unwrap() {
        tool.reencrypt_one(&key).await.unwrap();
    }
    let census = tool.census("").await.unwrap();
    assert_eq!(census.by_key_id.get(&old), None, "{census:?}");
    assert_eq!(
        &enc.get(&p).await.unwrap().bytes().await.unwrap()[..],
        &data(10_000)[..]
    );
    let q = Path::from("from-eos/big.bin");
    assert_eq!(
        &enc.get_range(&q, 100_000..100_050).await.unwrap()[..],
        &data(300_000)[100_000..100_050]
    );
}

/// Both directions over `enc` and `tool` (which share the inner store and
/// keyset).
pub async fn compatibility(enc: &EncryptedObjectStore, tool: &EncryptedStorage) {
    // EncryptedObjectStore writes (put and multipart), the tool reads.
    let big = data(300_000);
    enc.put(&Path::from("from-eos/big.bin"), big.clone().into())
        .await
        .unwrap();
    let mut up = enc
        .put_multipart(&Path::from("from-eos/multi.bin"))
        .await
        .unwrap();
    up.put_part(Bytes::from(big[..100_000].to_vec()).into())
        .await
        .unwrap();
    up.put_part(Bytes::from(big[100_000..].to_vec()).into())
        .await
        .unwrap();
    up.complete().await.unwrap();
    for key in ["from-eos/big.bin", "from-eos/multi.bin"] {
        assert_eq!(&tool.load(key).await.unwrap()[..], &big[..], "{key}");
        let r = tool.load_range(key, 5_000..9_000).await.unwrap();
        assert_eq!(&r.bytes[..], &big[5_000..9_000]);
        assert_eq!(r.size, big.len() as u64);
        let check = tool.verify_one(key).await.unwrap();
        assert!(
            matches!(check, encstore::ObjectCheck::Verified { size: 300_000, .. }),
            "{check:?}"
        );
    }

    // The tool writes: a small value (AEAD layout), a large one and a
    // streamed one (streaming layout); EncryptedObjectStore reads them all.
    let small = b"a small secret".repeat(100);
    tool.store("from-tool/small", small.clone().into())
        .await
        .unwrap();
    let large = data(2 << 20);
    tool.store("from-tool/large", large.clone().into())
        .await
        .unwrap();
    tool.store_stream(
        "from-tool/streamed",
        encstore_core::stream::from_chunks(vec![Bytes::from(big.clone())]),
    )
    .await
    .unwrap();
    let got = enc.get(&Path::from("from-tool/small")).await.unwrap();
    assert_eq!(got.meta.size, small.len() as u64);
    assert_eq!(&got.bytes().await.unwrap()[..], &small[..]);
    assert_eq!(
        enc.head(&Path::from("from-tool/small")).await.unwrap().size,
        small.len() as u64
    );
    assert_eq!(
        &enc.get_range(&Path::from("from-tool/small"), 2..7)
            .await
            .unwrap()[..],
        &small[2..7]
    );
    for (key, v) in [("from-tool/large", &large), ("from-tool/streamed", &big)] {
        let p = Path::from(key);
        assert_eq!(
            &enc.get(&p).await.unwrap().bytes().await.unwrap()[..],
            &v[..]
        );
        assert_eq!(enc.head(&p).await.unwrap().size, v.len() as u64);
        assert_eq!(
            &enc.get_range(&p, 70_000..70_100).await.unwrap()[..],
            &v[70_000..70_100]
        );
    }
    // Listing reports plaintext sizes of the streaming-layout objects.
    assert_eq!(
        listed(enc, "from-eos").await,
        vec![
            ("from-eos/big.bin".to_string(), big.len() as u64),
            ("from-eos/multi.bin".to_string(), big.len() as u64),
        ]
    );
    // The tool's objects: sizes computed from the ciphertext size assume
    // the streaming layout, so the small one (one-shot AEAD) is listed off;
    // with exact list sizes every size is read from its object.
    let exact = vec![
        ("from-tool/large".to_string(), large.len() as u64),
        ("from-tool/small".to_string(), small.len() as u64),
        ("from-tool/streamed".to_string(), big.len() as u64),
    ];
    let computed = listed(enc, "from-tool").await;
    assert_ne!(computed[1], exact[1], "the small layout, computed");
    assert_eq!(
        (&computed[0], &computed[2]),
        (&exact[0], &exact[2]),
        "the streaming layout, computed"
    );
    let enc = enc.clone().with_exact_list_sizes();
    assert_eq!(listed(&enc, "from-tool").await, exact);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_and_rename_reencrypt_for_the_new_path() {
    let (inner, enc) = store();
    let (a, b, c) = (Path::from("a"), Path::from("b"), Path::from("c"));
    let v = data(50_000);
    enc.put(&a, v.clone().into()).await.unwrap();
    enc.copy(&a, &b).await.unwrap();
    assert_eq!(
        &enc.get(&b).await.unwrap().bytes().await.unwrap()[..],
        &v[..]
    );
    let ca = inner.get(&a).await.unwrap().bytes().await.unwrap();
    let cb = inner.get(&b).await.unwrap().bytes().await.unwrap();
    assert_ne!(ca, cb, "a copy must be a new ciphertext");
    enc.rename(&b, &c).await.unwrap();
    assert!(matches!(
        enc.head(&b).await.unwrap_err(),
        object_store::Error::NotFound { .. }
    ));
    assert_eq!(
        &enc.get(&c).await.unwrap().bytes().await.unwrap()[..],
        &v[..]
    );
    let err = enc.copy_if_not_exists(&a, &c).await.unwrap_err();
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "{err}"
    );

    // A copy larger than one part goes through a multipart upload.
    let enc = enc.with_part_size(64 << 10);
    let big = data(1 << 20);
    enc.put(&a, big.clone().into()).await.unwrap();
    enc.copy(&a, &b).await.unwrap();
    assert_eq!(
        &enc.get(&b).await.unwrap().bytes().await.unwrap()[..],
        &big[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_keys_and_missing_streaming_keysets_are_clear_errors() {
    let (aead, mut streaming, keys) = keys_with("AES256_GCM_HKDF_4KB");
    let enc = EncryptedObjectStore::new(Arc::new(InMemory::new()), keys.clone());
    let p = Path::from("k");
    enc.put(&p, "v".into()).await.unwrap();
    let old = streaming.primary_key_id();
    streaming
        .rotate(&by_name("AES256_GCM_HKDF_4KB").unwrap())
        .unwrap();
    streaming.disable(old).unwrap();
    keys.replace_streaming(&streaming).unwrap();
    let err = enc.get(&p).await.unwrap_err();
    assert!(
        matches!(EncryptionError::of(&err), Some(EncryptionError::KeyNotEnabled { key_id, .. }) if *key_id == old),
        "{err}"
    );

    let only_aead =
        Arc::new(encstore::ReloadableKeyset::new(&aead, encstore::Policy::default()).unwrap());
    let enc = EncryptedObjectStore::new(Arc::new(InMemory::new()), only_aead);
    let err = enc.put(&p, "v".into()).await.unwrap_err();
    assert!(
        matches!(
            EncryptionError::of(&err),
            Some(EncryptionError::NoStreamingKeyset { .. })
        ),
        "{err}"
    );
}

/// A multipart upload re-cuts the ciphertext into inner parts of exactly
/// the part size (the last one shorter): what it holds at any time is one
/// part of ciphertext beyond the caller's part, whatever the object's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_stream_in_parts_of_the_part_size() {
    let counting = Arc::new(Counting::new(Arc::new(InMemory::new())));
    let enc = EncryptedObjectStore::new(counting.clone(), keys()).with_part_size(64 << 10);
    let p = Path::from("multi");
    let value = data(3 << 20);
    let mut up = enc.put_multipart(&p).await.unwrap();
    for chunk in value.chunks(100_000) {
        up.put_part(Bytes::copy_from_slice(chunk).into())
            .await
            .unwrap();
    }
    up.complete().await.unwrap();
    let parts = counting.parts.lock().unwrap().clone();
    let (last, full) = parts.split_last().unwrap();
    assert!(full.len() > 40, "{parts:?}");
    assert!(full.iter().all(|&n| n == 64 << 10), "{parts:?}");
    assert!(*last > 0 && *last <= 64 << 10);
    assert_eq!(
        &enc.get(&p).await.unwrap().bytes().await.unwrap()[..],
        &value[..]
    );
    assert_eq!(enc.head(&p).await.unwrap().size, value.len() as u64);
}

/// An empty object in the inner store (written around the encrypting
/// store: no encstore object is ever empty) is a clear error naming the
/// path, from `head`, `get` and a ranged `get`, never a range or decoding
/// error of the inner store. Listings show it as the empty object it is
/// (a directory marker must not fail a listing), beside the encrypted
/// objects with their plaintext sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_inner_objects_are_a_clear_error() {
    let (inner, enc) = store();
    let p = Path::from("dir/empty");
    inner.put(&p, Bytes::new().into()).await.unwrap();
    enc.put(&Path::from("dir/a"), vec![7u8; 1000].into())
        .await
        .unwrap();
    let want = vec![("dir/a".to_string(), 1000), ("dir/empty".to_string(), 0)];
    assert_eq!(listed(&enc, "dir").await, want);
    let r = enc
        .list_with_delimiter(Some(&Path::from("dir")))
        .await
        .unwrap();
    let mut listed: Vec<(String, u64)> = r
        .objects
        .iter()
        .map(|m| (m.location.to_string(), m.size))
        .collect();
    listed.sort();
    assert_eq!(listed, want);
    let head = enc.head(&p).await.unwrap_err();
    let get = match enc.get(&p).await {
        Ok(r) => r.bytes().await.unwrap_err(),
        Err(e) => e,
    };
    let range = enc.get_range(&p, 0..1).await.unwrap_err();
    for err in [head, get, range] {
        let e =
            EncryptionError::of(&err).unwrap_or_else(|| panic!("not an encryption error: {err}"));
        assert!(
            matches!(e, EncryptionError::Empty { path } if path == "dir/empty"),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "Generic EncryptedObjectStore error: object dir/empty is empty, which no encrypted object is: it was written around the encrypting store or truncated to nothing"
        );
    }
}
