//! The shared backend conformance suite, run against [`FsStorage`].
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use encstore_core::Storage;
use encstore_fs::FsStorage;

/// Every rule of the storage contract, on a real directory with a short
/// lease (the suite sleeps past it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_storage_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::builder(dir.path().join("root"))
        .lease(Duration::from_secs(1))
        .build()
        .unwrap();
    let store: Arc<dyn Storage> = Arc::new(store);
    encstore_core::conformance::run_all(store).await;
}
