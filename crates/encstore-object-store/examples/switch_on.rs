//! Client-side encryption for an existing `object_store` program: the
//! one-line change.
//!
//! `existing_code` stands for any program written against
//! `Arc<dyn ObjectStore>` (a Parquet writer, DataFusion, a server): it is
//! not changed. `main` builds the store it already had (in memory, or
//! `s3://bucket/prefix` from the standard `AWS_*` variables) and wraps it
//! in an `EncryptedObjectStore`: that wrapping is the whole change.
//!
//! ```sh
//! cargo run -p encstore-object-store --example switch_on                # in memory
//! source /work/svc/env.sh                                               # SeaweedFS
//! cargo run -p encstore-object-store --example switch_on -- s3://encstore-test/demo
//! ```
//!
//! Keysets: `ENCSTORE_KEYSET` (AEAD) and `ENCSTORE_STREAMING_KEYSET`
//! (streaming) name cleartext keyset files (`encstore create-keyset
//! --key-template AES256_GCM` / `AES256_GCM_HKDF_1MB`); without them the
//! example generates throwaway keysets.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use encstore::{KeysetSource, Policy, ReloadableKeyset};
use encstore_object_store::EncryptedObjectStore;
use encstore_tink::Keyset;
use encstore_tink::templates::by_name;
use futures_util::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};

/// Unchanged application code: it only knows `ObjectStore`.
async fn existing_code(store: Arc<dyn ObjectStore>) -> object_store::Result<()> {
    let path = Path::from("reports/2026/q4.csv");
    let body = "region,revenue\nnorth,1200\nsouth,900\n";
    store.put(&path, body.into()).await?;
    let meta = store.head(&path).await?;
    println!("wrote {path}: {} bytes (plaintext size)", meta.size);
    let first_line = store.get_range(&path, 0..14).await?;
    println!("range 0..14: {:?}", String::from_utf8_lossy(&first_line));
    let all = store.get(&path).await?.bytes().await?;
    assert_eq!(&all[..], body.as_bytes());
    for m in store
        .list(Some(&Path::from("reports")))
        .try_collect::<Vec<_>>()
        .await?
    {
        println!("listed {} ({} bytes)", m.location, m.size);
    }
    Ok(())
}

async fn keys() -> Result<Arc<ReloadableKeyset>, Box<dyn std::error::Error>> {
    let keys = match (
        std::env::var("ENCSTORE_KEYSET"),
        std::env::var("ENCSTORE_STREAMING_KEYSET"),
    ) {
        (Ok(aead), Ok(streaming)) => {
            ReloadableKeyset::open_with_streaming(
                KeysetSource::cleartext(aead),
                KeysetSource::cleartext(streaming),
                Policy::default(),
            )
            .await?
        }
        _ => {
            println!(
                "(throwaway keysets: set ENCSTORE_KEYSET and ENCSTORE_STREAMING_KEYSET to use yours)"
            );
            let aead = Keyset::generate(&by_name("AES256_GCM").unwrap())?;
            let streaming = Keyset::generate(&by_name("AES256_GCM_HKDF_1MB").unwrap())?;
            ReloadableKeyset::new_with_streaming(&aead, &streaming, Policy::default())?
        }
    };
    Ok(Arc::new(keys))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The store the program already had.
    let store: Arc<dyn ObjectStore> = match std::env::args().nth(1) {
        Some(url) => {
            let s = encstore_objstore::ObjectStorage::from_url(&url)?;
            Arc::new(PrefixStore::new(s.object_store(), s.prefix()))
        }
        None => Arc::new(InMemory::new()),
    };
    let raw = store.clone();

    // The one-line change: wrap it.
    let store: Arc<dyn ObjectStore> = Arc::new(EncryptedObjectStore::new(store, keys().await?));

    existing_code(store).await?;

    // What the storage provider sees: ciphertext, 5 + header + tags longer.
    let path = Path::from("reports/2026/q4.csv");
    let stored = raw.get(&path).await?.bytes().await?;
    println!(
        "stored object: {} bytes, starts {:02x?} (0x01 and the streaming key ID), contains \"north\": {}",
        stored.len(),
        &stored[..5],
        stored.windows(5).any(|w| w == b"north")
    );
    Ok(())
}
