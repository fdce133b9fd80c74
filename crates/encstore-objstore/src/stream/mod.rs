//! Ranged reads, streamed reads and streamed writes.
//!
//! - [`load_range`](encstore_core::Storage::load_range) is one ranged `GET`
//!   (`Range: bytes=start-(end-1)`); the object's size comes from the
//!   response's `Content-Range`. A start at or beyond the end makes servers
//!   answer 416 (an empty object has no byte to start at), so then a `HEAD`
//!   tells an empty answer (`start == size`) from
//!   [`Error::RangeNotSatisfiable`]. An empty range is a `HEAD` alone.
//! - [`load_stream`](encstore_core::Storage::load_stream) is one `GET`,
//!   streamed as the response arrives (constant memory). One response is
//!   one version of the object. If the response is cut short (a reset, the
//!   request timeout, which covers the body too), the stream resumes with a
//!   ranged `GET` from where it stopped, conditional on the first
//!   response's ETag (`If-Match`, and its object version where the store
//!   has one), so it never joins two values: if the object changed, the
//!   stream ends with [`Error::PreconditionFailed`]. It also checks that it
//!   yields exactly the announced size.
//! - [`store_stream`](encstore_core::Storage::store_stream) buffers up to
//!   one part (8 MiB by default): a body that ends within it is one `PUT`.
//!   A larger one becomes a multipart upload, parts uploaded as the body is
//!   read with a bounded number in flight, so memory is bounded by
//!   (concurrency + 1) parts. Nothing is visible until the upload
//!   completes. A body error, a failed part or a failed completion aborts
//!   the upload (awaited, best effort) and returns the error; a dropped
//!   future aborts it from a spawned task (best effort: a process that dies
//!   mid-upload leaves an invisible incomplete upload, which the bucket's
//!   `AbortIncompleteMultipartUpload` lifecycle rule removes; see
//!   docs/backends.md).
//! - [`store_stream_if`](encstore_core::Storage::store_stream_if): a body
//!   within one part is one conditional `PUT`. A larger one, on an S3 store
//!   this crate built (see `complete.rs`) whose server passed the multipart
//!   stage of the probe, is a multipart upload whose completion carries the
//!   condition (`If-None-Match: *` or `If-Match`): the compare-and-swap is
//!   checked by the server when the object appears. Before uploading, a
//!   `HEAD` fails early when the condition already does not hold. Anywhere
//!   else (other stores, or a server that ignores conditions on
//!   completions) the body is buffered up to
//!   `max_buffered_conditional_write` (64 MiB by default) and written with
//!   one conditional `PUT`; a larger body is refused with
//!   [`Error::Unsupported`], writing nothing. The condition is never
//!   dropped.
//!
//! One module each: `range`, `read` and `write`.

#[cfg(doc)]
use encstore_core::Error;

mod range;
mod read;
mod write;
