//! # encstore-s3: encstore's backend for fleets, on S3
//!
//! [`S3Storage`] implements [`encstore_core::Storage`] on an S3 bucket
//! through the `object_store` crate's S3 client, so it works with AWS S3,
//! MinIO, SeaweedFS, Cloudflare R2 and other S3-compatible services. Wrap it
//! in `EncryptedStorage` to encrypt everything it stores.
//!
//! ## Layout
//!
//! - `config`: [`S3StorageBuilder`], from code, from the standard `AWS_*`
//!   environment variables ([`S3Storage::from_env`]), or from an
//!   `s3://bucket/prefix` URL ([`S3Storage::from_url`], what the CLI's
//!   `--store` calls).
//! - `storage`: the [`Storage`](encstore_core::Storage) implementation:
//!   keys live at `prefix/key`; listings paginate; deleting a prefix deletes
//!   everything under it; [`Version`](encstore_core::Version)s are ETags
//!   (plus the object version on versioned buckets), and
//!   [`store_if`](encstore_core::Storage::store_if) is `If-None-Match: *` /
//!   `If-Match: <ETag>`.
//! - `lock`: leased locks on conditional writes, with the protocol and
//!   clock assumptions in that module's documentation and in
//!   `docs/backends.md`.
//! - `error`: how `object_store` errors map onto
//!   [`encstore_core::Error`] (timeouts to `Timeout`, 412 to
//!   `PreconditionFailed`, the rest to `Backend { backend: "s3", .. }`).
//!
//! ## Requirements on the server
//!
//! Conditional `PUT` (`If-None-Match: *` and `If-Match`), which AWS S3 has
//! offered since 2024, and which MinIO, R2 and SeaweedFS implement. Without
//! it, `store_if` and locks fail with `PreconditionFailed` or a backend
//! error rather than silently losing updates.
//!
//! ## TLS
//!
//! HTTPS uses rustls with *ring* (no aws-lc-rs, no OpenSSL), and the
//! system's root certificates. Building a store installs *ring* as rustls'
//! process-wide default crypto provider unless the application installed
//! one first. Plain `http://` endpoints need
//! [`S3StorageBuilder::allow_http`] (or `AWS_ALLOW_HTTP=true`).
//!
//! ```no_run
//! # async fn f() -> Result<(), encstore_core::Error> {
//! use encstore_core::Storage;
//! use encstore_s3::S3Storage;
//!
//! // AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, ... from the environment.
//! let store = S3Storage::from_url("s3://my-bucket/tls/prod")?;
//! store.store("certs/example.com.crt", "PEM".into()).await?;
//! let lease = store.lock("renew/example.com").await?;
//! // ... work under the lock ...
//! store.unlock(lease).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod error;
mod lock;
mod storage;
#[doc(hidden)]
pub mod testing;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_LEASE, DEFAULT_OPERATION_TIMEOUT, DEFAULT_REGION,
    DEFAULT_REQUEST_TIMEOUT, S3StorageBuilder,
};
pub use lock::LOCK_DIR;
/// The `object_store` crate this backend is built on (for its
/// `RetryConfig`, `BackoffConfig`, and direct access via
/// [`S3Storage::object_store`]).
pub use object_store;
pub use storage::S3Storage;
