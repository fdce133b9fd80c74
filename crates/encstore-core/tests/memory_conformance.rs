//! MemoryStorage passes the conformance suite.
#![cfg(feature = "conformance")]

use std::sync::Arc;
use std::time::Duration;

use encstore_core::{MemoryStorage, Storage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_storage_conforms() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStorage::with_lease(Duration::from_secs(1)));
    encstore_core::conformance::run_all(store).await;
}
