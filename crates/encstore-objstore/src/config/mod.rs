//! Building an [`ObjectStorage`]: over any `ObjectStore`
//! ([`ObjectStorageBuilder`]), from a location URL
//! ([`UrlStorageBuilder`]: `s3://`, `gs://`, `az://`, `memory://`), or for
//! an S3 bucket configured in code ([`S3StorageBuilder`]).
//!
//! Cloud stores are configured by `object_store`'s own builders, started
//! from their standard environment variables (`AmazonS3Builder::from_env`,
//! `GoogleCloudStorageBuilder::from_env`, `MicrosoftAzureBuilder::from_env`)
//! and pointed at the URL with their `with_url`. What this module adds:
//! encstore's defaults for timeouts and bounded retries, clear errors for
//! the configurations operators get wrong (no S3 credentials, a plain
//! `http://` endpoint), and the lock lease.

#[macro_use]
mod setters;
mod common;
mod location;
mod object;
mod s3;
#[cfg(test)]
mod tests;

use std::time::Duration;

use object_store::{BackoffConfig, RetryConfig};

#[cfg(doc)]
use crate::ObjectStorage;
#[cfg(doc)]
use encstore_core::Error;

pub(crate) use common::{CompletionSupport, StreamSettings};
pub use location::UrlStorageBuilder;
pub use object::ObjectStorageBuilder;
pub use s3::S3StorageBuilder;

/// The default lock lease: 60 s, renewed every 20 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The default timeout of one HTTP request (connect, send, and receive the
/// response headers and body).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The default timeout for establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default deadline of one storage operation, retries included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// The default part size of streamed writes: 8 MiB. A streamed body of
/// at most this size is written with one `PUT`; a larger one with a
/// multipart upload of parts of this size (the last one smaller). With the
/// 10,000 parts S3 and GCS allow, objects of up to 80 GiB; raise it for
/// larger ones (see [`ObjectStorageBuilder::part_size`]).
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// The smallest part size S3-compatible servers and GCS accept for every
/// part but the last (5 MiB); the S3 and URL builders refuse a smaller one.
pub const MIN_PART_SIZE: usize = 5 << 20;

/// The largest part size S3 accepts (5 GiB).
pub const MAX_PART_SIZE: usize = 5 << 30;

/// The default number of parts of one streamed write uploaded at once: 1.
/// A streamed write holds at most this many parts in flight plus the one
/// being filled: 16 MiB with the default part size. The part being filled
/// still overlaps the one being uploaded; raise it
/// ([`S3StorageBuilder::upload_concurrency`](crate::S3StorageBuilder::upload_concurrency))
/// for more throughput on a high-latency link, at one part of memory each.
/// (It was 2: `encstore store put` of 1 GiB to S3 then peaked at 58–70 MiB
/// in a debug build, over the tool's 64 MiB bound; with 1, 49–52 MiB, and
/// no slower against a local SeaweedFS.)
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 1;

/// The default bound of a conditional streamed write on a store without
/// conditional multipart completion (anything but the S3 stores this
/// crate builds, or an S3 server that does not honour it): 64 MiB. Such a
/// write is buffered and sent as one conditional `PUT`; a larger body is
/// refused with [`Error::Unsupported`] (see
/// [`ObjectStorageBuilder::max_buffered_conditional_write`]).
pub const DEFAULT_MAX_BUFFERED_CONDITIONAL_WRITE: u64 = 64 << 20;

/// Whether a conditional streamed write larger than one part may put its
/// condition (`If-None-Match: *` / `If-Match`) on the completion of a
/// multipart upload, which keeps it in constant memory.
///
/// That is only a compare-and-swap if the server checks the condition and
/// completes the upload atomically, excluding concurrent writes. AWS S3
/// documents it so (a concurrent conflicting write makes it answer 409).
/// SeaweedFS 4.48 does not: it checks the condition, then completes, and
/// racing conditional completions from one version were measured to
/// succeed together (see docs/backends.md), while its conditional `PUT`s
/// race correctly. Where it is not used, such writes are buffered up to
/// [`max_buffered_conditional_write`](ObjectStorageBuilder::max_buffered_conditional_write)
/// and sent as one conditional `PUT`, and refused beyond.
///
/// Either way the per-handle probe checks, before the first use, that the
/// server refuses completions whose condition fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConditionalCompletion {
    /// Use it on AWS S3 (no custom endpoint, or one under `amazonaws.com`),
    /// not elsewhere. The default.
    #[default]
    Auto,
    /// Use it: the server's conditional completions are atomic (check
    /// yours; SeaweedFS 4.48's are not).
    Enabled,
    /// Never use it.
    Disabled,
}

/// The most parts one multipart upload may have (S3, GCS).
pub(crate) const MAX_PARTS: usize = 10_000;

/// The region used when none is configured (SeaweedFS, MinIO and most
/// S3-compatible servers accept any region; AWS needs the bucket's).
pub const DEFAULT_REGION: &str = "us-east-1";

/// The default retries of one request: at most 5, with exponential
/// back-off from 100 ms to at most 2 s, none started after 15 s.
///
/// Connection failures (refused, reset, DNS) and 5xx/429 answers are
/// retried. A backend that stopped answering is reported as
/// [`Error::Unreachable`] after about 3 s of refused connections, instead of
/// `object_store`'s default of 10 retries within 3 minutes, so that a long
/// run (a rewrap, a verify) stops within seconds and says why.
pub fn default_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(15),
    }
}
