//! # encstore-core: the contracts every encstore piece is built on
//!
//! encstore encrypts data on the client side before it reaches a storage
//! backend. This crate holds what the other crates agree on:
//!
//! - [`Storage`]: the async storage trait, with certmagic's semantics made
//!   precise (see `docs/storage-contract.md`): create-or-overwrite
//!   [`store`](Storage::store), [`load`](Storage::load), recursive
//!   [`delete`](Storage::delete), component-wise [`list`](Storage::list),
//!   [`stat`](Storage::stat), leased locks, and the conditional write
//!   [`store_if`](Storage::store_if) that lets a background re-encryption
//!   never overwrite a value a server wrote meanwhile.
//!   Large values stream ([`Storage::store_stream`],
//!   [`Storage::load_stream`], [`Storage::load_range`]; see [`stream`]).
//! - [`Aead`]: the synchronous, object-safe AEAD trait that keysets
//!   implement.
//! - [`Error`]: one typed, `#[non_exhaustive]` error enum.
//! - [`validate_key`]: the key-name rules every backend enforces.
//! - [`MemoryStorage`]: an in-memory backend for tests and embedding.
//! - `conformance` (feature `conformance`): the suite every backend's tests
//!   run.
//!
//! ```
//! use std::sync::Arc;
//! use encstore_core::{MemoryStorage, Storage};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), encstore_core::Error> {
//! let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
//! store.store("certs/example.com.crt", "PEM".into()).await?;
//! assert_eq!(&store.load("certs/example.com.crt").await?[..], b"PEM");
//! assert_eq!(store.list("certs", false).await?, vec!["certs/example.com.crt"]);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aead;
mod error;
mod host;
pub mod kek;
pub mod key;
pub mod lease;
mod memory;
mod storage;
pub mod stream;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use aead::{Aead, AeadError, PolicyRefusal};
pub use bytes::Bytes;
pub use error::{BoxError, Error, ErrorKind, Result};
pub use host::hostname;
pub use kek::{AeadKek, Kek, KekError, MasterKeyVersion};
pub use key::{InvalidKeyReason, ShownKey, is_reserved_segment, validate_key, validate_prefix};
pub use lease::{LeaseError, check_lease};
pub use memory::{DEFAULT_LEASE, MemoryStorage};
#[allow(deprecated)]
pub use storage::KeyInfo;
pub use storage::{
    Lease, LockBackoff, ObjectInfo, Renewal, Storage, Version, Versioned, WriteCondition,
    new_lease_token,
};
pub use stream::{ByteStream, ObjectStream, RangeRead, VersionedStream};
