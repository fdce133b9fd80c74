//! # encstore: client-side encryption for any storage, with key rotation
//!
//! encstore encrypts data before it reaches a storage backend, with Google
//! Tink keysets. Every stored object is a Tink AEAD ciphertext whose prefix
//! names its key, and whose associated data is its key name, so keys rotate
//! without breaking old data, and an object moved to another name does not
//! decrypt.
//!
//! The pieces:
//!
//! - [`EncryptedStorage`] wraps any [`Storage`](encstore_core::Storage)
//!   (filesystem, memory, S3, ...) and is itself a `Storage`: a server swaps
//!   it in and everything at rest is encrypted. Small values are Tink AEAD
//!   ciphertexts; large ones (above a threshold, and every streamed write)
//!   are Tink streaming ciphertexts behind a 5-byte prefix naming their
//!   key, written, read, verified and rewrapped in constant memory, and
//!   read by range segment by segment (`docs/format.md`).
//! - [`ReloadableKeyset`] holds the keyset (and the streaming keyset for
//!   large objects) and swaps in new ones while the server runs (on
//!   demand, on SIGHUP, or when a file changes).
//! - [`Policy`] restricts which key types a deployment accepts.
//! - [`EncryptedStorage::census`] counts objects by key ID (RAW keys
//!   included, by trial decryption), [`EncryptedStorage::objects_under`]
//!   is the check before retiring a key, and
//!   [`EncryptedStorage::reencrypt_one`] re-encrypts one object under the
//!   primary key without ever overwriting a concurrent write;
//!   [`EncryptedStorage::verify_one`] decrypts one object and discards the
//!   plaintext.
//! - The store-wide operations of the `encstore` tool, for servers too:
//!   [`EncryptedStorage::reencrypt_all`] re-encrypts every object under
//!   the primary (the store-wide lock, bounded concurrency, re-check,
//!   events for progress, cancellation; `encstore store rewrap`), with its
//!   dry run [`EncryptedStorage::reencrypt_plan`];
//!   [`EncryptedStorage::verify_all`] decrypts every object and reports
//!   every failure, typed (`encstore store verify`); [`retirement_check`]
//!   is the store check before disabling, destroying or deleting a key.
//! - KMS envelope keys (each object's DEK wrapped by Vault transit, AWS
//!   KMS, an HSM): [`ReloadableKeyset::open`] and
//!   [`ReloadableKeyset::new_with_master_keys`] open their master keys
//!   ([`UriResolver`]); reads and writes then go through the async keyset
//!   AEAD with bounded, timed KMS calls and no DEK cache. The census counts
//!   envelope objects by master-key version ([`Census::master_keys`]), and
//!   [`EncryptedStorage::rewrap_deks_all`] re-wraps every DEK under the
//!   newest master-key version without touching payloads (`encstore store
//!   rewrap-deks`).
//! - [`keyfile`] rewrites keyset files safely: an exclusive lock, a
//!   compare-before-rename, owner/group/mode kept, symlinks written
//!   through.
//! - [`open`] opens what a deployment names by text, as the `encstore`
//!   tool does: [`open_kek`] a master key from a `pkcs11:`, `hcvault://` or
//!   `aws-kms://` URI or a master keyset file, [`create_master_key`] a new
//!   one, and [`open_store`] a store from a directory, `file://`, `s3://`,
//!   `gs://`, `az://` or `memory://` location.
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `pkcs11` | on | `pkcs11:` master keys (encstore-pkcs11) |
//! | `vault` | on | `hcvault://` master keys (encstore-vault) |
//! | `objstore` | on | `s3://`, `gs://`, `az://`, `memory://` stores (encstore-objstore) |
//! | `aws-kms` | off | `aws-kms://` master keys reach AWS KMS (the AWS SDK: minutes of a cold build) |
//!
//! A scheme whose feature is off still parses; opening it fails with a
//! `NotCompiled` error naming the feature.
//!
//! ```no_run
//! use std::sync::Arc;
//! use encstore::{EncryptedStorage, KeysetSource, Policy, ReloadableKeyset};
//! use encstore_core::{MemoryStorage, Storage};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ReloadableKeyset::open(KeysetSource::cleartext("keysets/dev.json"), Policy::default()).await?;
//! let store = EncryptedStorage::new(Arc::new(MemoryStorage::new()), Arc::new(keys));
//! store.store("certs/example.com.key", "secret".into()).await?;
//! assert_eq!(&store.load("certs/example.com.key").await?[..], b"secret");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod buffers;
mod census;
pub mod concurrency;
mod encrypted;
pub mod keyfile;
mod keys;
mod large;
mod masters;
mod metrics;
pub mod open;
pub mod policy;
mod reencrypt;
mod reload;
mod retire;
mod rewrap_deks;
mod verify;

pub use census::{Census, KeyObjects, MasterKeyCount};
pub use encrypted::{
    BLOCKING_THRESHOLD, DEFAULT_STREAMING_THRESHOLD, EncryptedStorage, ObjectCheck, ObjectLayout,
    ObjectReencryption, Options,
};
pub use encstore_tink::CiphertextKey;
pub use keys::{KeysetSnapshot, LoadError, ObjectClass};
pub use large::decrypt_prefetched;
pub use masters::UriResolver;
pub use metrics::{Metrics, MetricsSnapshot};
pub use open::{
    MasterKeyRef, MasterKeyUri, OpenKekError, OpenStoreError, OpenStoreOptions, StoreLocation,
    create_master_key, open_kek, open_store,
};
pub use policy::{Policy, PolicyError};
pub use reencrypt::{
    LockWait, REENCRYPT_LOCK, ReencryptError, ReencryptEvent, ReencryptOptions, ReencryptOutcome,
    ReencryptPlan, ReencryptSummary,
};
pub use reload::{KeysetSource, ReloadReport, ReloadableKeyset, WatchHandle};
pub use retire::{RetireCheckError, Retirement, retirement_check};
pub use rewrap_deks::{DekRewrap, NewestVersions, RewrapDeksSummary};
/// The cancellation token that stops [`EncryptedStorage::reencrypt_all`]
/// and [`EncryptedStorage::verify_all`] (re-exported from `tokio-util`).
pub use tokio_util::sync::CancellationToken;
pub use verify::{
    DEFAULT_CONCURRENCY, EventSink, FailureClass, FailureCounts, FailureReason, ObjectFailure,
    PREFIX_LESS, StopReason, UNREACHABLE_DRAIN, VerifyEvent, VerifyOptions, VerifyOutcome,
    VerifySummary,
};

pub use encstore_core as core;
pub use encstore_tink as tink;
