//! The conformance suite that every [`Storage`] backend runs.
//!
//! Each function takes a store, exercises one part of the contract in
//! `docs/storage-contract.md`, and panics with a description of the first
//! violation. Keys live under a fresh random prefix, so the suite can run
//! against a shared, non-empty store (such as an S3 bucket).
//!
//! Lock tests sleep past the store's [`Storage::lease_duration`], so give
//! the store under test a short lease (one or two seconds).
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use encstore_core::{MemoryStorage, Storage};
//! # async fn t() {
//! let store: Arc<dyn Storage> = Arc::new(MemoryStorage::with_lease(std::time::Duration::from_secs(1)).expect("a lease in bounds"));
//! encstore_core::conformance::run_all(store).await;
//! # }
//! ```
#![allow(clippy::unwrap_used, clippy::panic)]

mod basic;
mod cas;
mod locks;
mod ranges;
mod stream_reads;
mod stream_writes;
mod util;

#[cfg(test)]
mod catches_flaws;

use std::sync::Arc;

use crate::storage::Storage;

pub use basic::{
    binary_and_large_values, delete, exists, invalid_keys, list, load_head, not_found, overwrite,
    stat, stat_with, store_and_load,
};
pub use cas::conditional_writes;
pub use locks::{
    lease_expires_and_unlock_spares_successor, lease_renewed_while_held, lock_cancellation,
    lock_mutual_exclusion, try_lock_excludes,
};
pub use ranges::ranges;
pub use stream_reads::{stream_reads, versioned_stream_rewrap};
pub use stream_writes::{
    conditional_stream_writes, stream_write_cancellation, stream_write_errors, stream_writes,
};

/// A fresh, random namespace for one test, so runs never collide.
pub fn scratch_prefix(test: &str) -> String {
    let token = crate::storage::new_lease_token().unwrap();
    format!("conformance-{}/{test}", &token[..12])
}

/// What the suite may assume about the store under test.
#[derive(Debug, Clone, Copy)]
pub struct SuiteOptions {
    /// `stat` reports exactly the size of the value stored. True for
    /// backends; false for wrappers that transform values (such as
    /// `EncryptedStorage`, whose `stat` reports the larger ciphertext size).
    pub exact_sizes: bool,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions { exact_sizes: true }
    }
}

/// Runs every check, in order, for a backend.
pub async fn run_all(store: Arc<dyn Storage>) {
    run_all_with(store, SuiteOptions::default()).await
}

/// Runs every check, in order, with `options`.
pub async fn run_all_with(store: Arc<dyn Storage>, options: SuiteOptions) {
    store_and_load(&*store).await;
    overwrite(&*store).await;
    not_found(&*store).await;
    binary_and_large_values(&*store).await;
    delete(&*store).await;
    exists(&*store).await;
    list(&*store).await;
    stat_with(&*store, options).await;
    invalid_keys(&*store).await;
    conditional_writes(&*store).await;
    load_head(&*store).await;
    ranges(&*store).await;
    stream_writes(&*store).await;
    stream_write_errors(&*store).await;
    stream_write_cancellation(&*store).await;
    conditional_stream_writes(&*store).await;
    stream_reads(&*store).await;
    versioned_stream_rewrap(&*store).await;
    try_lock_excludes(&*store).await;
    lock_mutual_exclusion(Arc::clone(&store)).await;
    lock_cancellation(&*store).await;
    lease_renewed_while_held(&*store).await;
    lease_expires_and_unlock_spares_successor(&*store).await;
}
