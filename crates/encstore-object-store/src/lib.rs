//! # encstore-object-store: client-side encryption for every `object_store` user
//!
//! [`EncryptedObjectStore`] is an [`object_store::ObjectStore`] that wraps
//! any other `ObjectStore` (S3, GCS, Azure, local files, memory, ...) and
//! encrypts every object with an encstore keyset before it leaves the
//! process. Programs that already speak `object_store` (Apache Arrow's
//! Parquet reader and writer, DataFusion, delta-rs, ...) switch it on by
//! wrapping their store, one line:
//!
//! ```no_run
//! use std::sync::Arc;
//! use encstore::{KeysetSource, Policy, ReloadableKeyset};
//! use encstore_object_store::EncryptedObjectStore;
//! use object_store::{ObjectStore, ObjectStoreExt, memory::InMemory, path::Path};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ReloadableKeyset::open_with_streaming(
//!     KeysetSource::cleartext("keysets/aead.json"),
//!     KeysetSource::cleartext("keysets/streaming.json"),
//!     Policy::default(),
//! )
//! .await?;
//! let plain: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
//! // The one-line change:
//! let store: Arc<dyn ObjectStore> = Arc::new(EncryptedObjectStore::new(plain, Arc::new(keys)));
//! store.put(&Path::from("data/a.parquet"), "bytes".into()).await?;
//! # Ok(()) }
//! ```
//!
//! ## What is stored
//!
//! Every object is written in encstore's large-object layout
//! (`docs/format.md`, "Large stored objects"):
//!
//! ```text
//! object = 0x01 ‖ BE32(streaming key ID) ‖ Tink streaming ciphertext
//! ```
//!
//! under the primary key of the keyset's streaming keyset, with the
//! object's path (optionally after a namespace and a NUL) as associated
//! data: exactly what [`encstore::EncryptedStorage`] writes for a large
//! object at the same key name, so the `encstore` tool (`--store s3://…`)
//! reads, verifies, counts (census) and rewraps objects written here, and
//! this store reads what it wrote (both of its layouts).
//!
//! ## What each operation costs
//!
//! - `put`/`put_opts`: one encryption in memory, one PUT (every
//!   [`PutMode`](object_store::PutMode) passes through: versions and ETags
//!   are the stored ciphertext's).
//! - `put_multipart`: streamed; memory is one inner part
//!   ([`with_part_size`](EncryptedObjectStore::with_part_size), 10 MiB by
//!   default) plus the caller's part.
//! - `get`: one GET, decrypted segment by segment as it streams.
//! - ranged `get_opts`/`get_range`/`get_ranges`: the segments covering the
//!   range, with one ranged GET of the inner store, after the object's
//!   header (the first 45 bytes) is known: `head` (which Parquet calls
//!   first) reads and remembers it, so a ranged read after a `head` is one
//!   ranged GET; otherwise it costs one more small ranged GET. The
//!   remembered header is checked with `If-Match` on the object's ETag, so
//!   a replaced object is never decrypted with a stale header.
//! - `head`: one ranged GET of the first 45 bytes (not a HEAD request: the
//!   object's prefix says which key and segment layout give the plaintext
//!   size).
//! - `list`/`list_with_delimiter`: the inner listing; plaintext sizes are
//!   computed from the ciphertext sizes when every enabled streaming key
//!   has the same segment layout (the usual case), else by a `head` per
//!   object. A listing assumes the large-object layout, which is what this
//!   store writes: an object in the small layout (a value of at most 1 MiB
//!   that `EncryptedStorage` wrote with `store`, not streamed) is listed
//!   with a wrong size (tens of bytes off, or exact when no streaming
//!   ciphertext has its size), unless the store was built
//!   [`with_exact_list_sizes`](EncryptedObjectStore::with_exact_list_sizes),
//!   which reads every listed object's size as `head` does (one or two
//!   GETs per object). `head` and `get` always report the exact size. An
//!   empty inner object (a folder marker written around the store) is
//!   listed with size 0; reading it fails with `EncryptionError::Empty`.
//! - `copy`/`rename`: the associated data binds the path, so an object is
//!   never copied server-side: it is read, decrypted and re-encrypted for
//!   its new path (a full download and upload; `copy_if_not_exists` and
//!   `rename_if_not_exists` buffer the object in memory, because a
//!   conditional write is one PUT). `rename` is `copy` then `delete`.
//!
//! ## What stays visible
//!
//! Object names, the plaintext size (it follows from the stored size),
//! timestamps, ETags, attributes (content type, user metadata) and tags
//! are not encrypted: they pass to the inner store as they are.
//!
//! ## Errors
//!
//! object_store's own errors pass through (`NotFound`, `AlreadyExists`,
//! `Precondition`, `NotModified` of the inner store). A ciphertext that
//! does not authenticate, an object under a disabled or unknown key, an
//! empty stored object (written around this store: `head`, `get` and
//! ranged reads say so), or a write without a streaming keyset is an
//! [`object_store::Error::Generic`] whose source is an [`EncryptionError`]
//! naming the path ([`EncryptionError::of`] finds it).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod decrypt;
mod error;
mod read;
mod seal;
mod store;
mod upload;

pub use error::{EncryptionError, STORE};
pub use store::{DEFAULT_PART_SIZE, EncryptedObjectStore, HEAD_LEN, PREFIX_LEN};
