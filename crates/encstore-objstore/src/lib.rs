//! # encstore-objstore: encstore's backend over any object store
//!
//! [`ObjectStorage`] implements [`encstore_core::Storage`] over any
//! [`object_store::ObjectStore`]: S3 and S3-compatible servers (AWS S3,
//! MinIO, SeaweedFS, Cloudflare R2, ...), Google Cloud Storage (cargo
//! feature `gcs`), Azure Blob Storage (feature `azure`), `object_store`'s
//! in-memory store, or a store you built. Wrap it in `EncryptedStorage` to
//! encrypt everything it stores. This crate was called `encstore-s3`;
//! [`S3Storage`] remains as a name of [`ObjectStorage`].
//!
//! ## Layout
//!
//! - `config`: building one. [`ObjectStorage::from_url`] takes a location
//!   (`s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
//!   `memory:///prefix`; what the CLI's `--store` calls) and configures the
//!   store with `object_store`'s own builders from their standard
//!   environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`);
//!   [`UrlStorageBuilder`] does the same with timeouts, retries and the
//!   lease set in code; [`S3StorageBuilder`] configures an S3 bucket in
//!   code; [`ObjectStorageBuilder`] wraps any `Arc<dyn ObjectStore>`.
//! - `storage`: the [`Storage`](encstore_core::Storage) implementation:
//!   keys live at `prefix/key`; listings paginate; deleting a prefix deletes
//!   everything under it; [`Version`](encstore_core::Version)s are ETags
//!   (plus the object version or generation where the store has one), and
//!   [`store_if`](encstore_core::Storage::store_if) is `object_store`'s
//!   `PutMode::Create` / `PutMode::Update` (on S3, `If-None-Match: *` /
//!   `If-Match: <ETag>`).
//! - `stream`: ranged reads (one ranged `GET`), streamed reads (one `GET`,
//!   resumed pinned to its ETag if cut) and streamed writes (one `PUT` up
//!   to one part, else a multipart upload with bounded parts in flight,
//!   aborted on failure or drop). A conditional streamed write larger than
//!   a part puts its condition on the multipart completion where that is
//!   trusted to be atomic ([`ConditionalCompletion`]: AWS S3 by default),
//!   and is otherwise buffered up to a bound into one conditional `PUT`,
//!   refused with [`Error::Unsupported`](encstore_core::Error::Unsupported)
//!   beyond it.
//! - `complete`: the HTTP connector of the S3 stores this crate builds,
//!   which adds `If-Match` / `If-None-Match` to a multipart completion
//!   (`object_store` 0.14 has no way to ask for it).
//! - `probe`: before the first conditional write or lock, each store
//!   handle checks once that the server enforces those conditions, and
//!   before the first conditional multipart completion, that it enforces
//!   them on completions (see below).
//! - `lock`: leased locks on conditional writes, with the protocol and
//!   clock assumptions in that module's documentation and in
//!   `docs/backends.md`.
//! - `error`: how `object_store` errors map onto [`encstore_core::Error`]:
//!   a missing key is `NotFound`; a missing bucket is a `Backend` error
//!   naming the bucket, whatever the operation; a failed condition is
//!   `PreconditionFailed`; a timeout is `Timeout`; an endpoint that refuses
//!   or drops connections (after bounded retries, a few seconds) is
//!   `Unreachable` naming its address; the rest is `Backend`.
//!
//! ## Requirements on the server
//!
//! Compare-and-swap and locks need conditional writes that the server
//! *enforces*: S3's conditional `PUT` (`If-None-Match: *` and `If-Match`,
//! offered by AWS S3 since 2024 and implemented by MinIO, R2 and
//! SeaweedFS), GCS generation preconditions, Azure ETags. Some
//! S3-compatible servers (and proxies that drop headers) accept the
//! headers and apply the write anyway, which would silently lose updates.
//! So each store handle probes the server once, on a sentinel object under
//! its reserved `.encstore` names, before its first conditional write or
//! lock: a create-only write over the existing sentinel and a write
//! conditional on a wrong ETag must both fail. If either succeeds,
//! [`store_if`](encstore_core::Storage::store_if),
//! [`try_lock`](encstore_core::Storage::try_lock) and
//! [`lock`](encstore_core::Storage::lock) fail with
//! [`Error::Unsupported`](encstore_core::Error::Unsupported), writing
//! nothing; `store`, `load`, `list` and `delete` keep working.
//!
//! ## TLS
//!
//! HTTPS uses rustls with *ring* (no aws-lc-rs, no OpenSSL), and the
//! system's root certificates. Building a cloud store installs *ring* as
//! rustls' process-wide default crypto provider unless the application
//! installed one first. Plain `http://` endpoints need
//! `AWS_ALLOW_HTTP=true` (or [`S3StorageBuilder::allow_http`]).
//!
//! ```no_run
//! # async fn f() -> Result<(), encstore_core::Error> {
//! use encstore_core::Storage;
//! use encstore_objstore::ObjectStorage;
//!
//! // AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, ... from the environment.
//! let store = ObjectStorage::from_url("s3://my-bucket/tls/prod")?;
//! store.store("certs/example.com.crt", "PEM".into()).await?;
//! let lease = store.lock("renew/example.com").await?;
//! // ... work under the lock ...
//! store.unlock(lease).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod complete;
mod config;
mod error;
mod lock;
mod probe;
mod storage;
mod stream;
#[cfg(feature = "test-util")]
pub mod testing;
mod version;

pub use config::{
    ConditionalCompletion, DEFAULT_CONNECT_TIMEOUT, DEFAULT_LEASE,
    DEFAULT_MAX_BUFFERED_CONDITIONAL_WRITE, DEFAULT_OPERATION_TIMEOUT, DEFAULT_PART_SIZE,
    DEFAULT_REGION, DEFAULT_REQUEST_TIMEOUT, DEFAULT_UPLOAD_CONCURRENCY, MAX_PART_SIZE,
    MIN_PART_SIZE, ObjectStorageBuilder, S3StorageBuilder, UrlStorageBuilder, default_retry,
};
pub use lock::LOCK_DIR;
/// The `object_store` crate this backend is built on (for its stores,
/// `RetryConfig`, `BackoffConfig`, and direct access via
/// [`ObjectStorage::object_store`]).
pub use object_store;
pub use probe::PROBE_OBJECT;
pub use storage::{ObjectStorage, S3Storage};
