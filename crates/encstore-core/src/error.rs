//! The one error type that every [`Storage`](crate::Storage) returns.
//!
//! Each backend keeps its own private error detail and converts it into
//! [`Error`]; callers match on the variants, never on message text.

use std::fmt;

use crate::aead::AeadError;
use crate::key::{InvalidKeyReason, ShownKey};

/// A boxed error from a backend or the operating system, kept as the source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every storage operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a storage operation.
///
/// The enum is `#[non_exhaustive]`: new kinds may be added without a major
/// release, so match with a wildcard arm. No variant ever carries key
/// material or plaintext; key *names* are metadata and do appear.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key does not exist.
    #[error("not found: {}", ShownKey(.key))]
    NotFound {
        /// The key that was asked for.
        key: String,
    },

    /// The key or prefix breaks the key-name rules shared by every backend.
    #[error("invalid key {}: {reason}", ShownKey(.key))]
    InvalidKey {
        /// The refused name, as given.
        key: String,
        /// Which rule it breaks.
        reason: InvalidKeyReason,
    },

    /// A conditional write found that the object changed (or exists, or is
    /// gone) since the caller read it. Nothing was written.
    #[error("precondition failed: {} changed since it was read", ShownKey(.key))]
    PreconditionFailed {
        /// The key whose write was refused.
        key: String,
    },

    /// The lock is held by someone else (from `try_lock`).
    #[error("lock {name:?} is held by another owner")]
    LockHeld {
        /// The lock name.
        name: String,
    },

    /// `unlock` was given a lease that no longer owns the lock: it expired
    /// and another owner may hold the lock now. Nothing was released.
    #[error("lock {name:?} is not held by this lease (it expired or was taken over)")]
    LockNotHeld {
        /// The lock name.
        name: String,
    },

    /// The stored object failed authentication: it was tampered with, moved
    /// to another key name, or written under a different keyset.
    #[error(
        "authentication failed for {}: the object was tampered with, moved from another key name, or written with a different keyset",
        ShownKey(.key)
    )]
    Authentication {
        /// The key whose object failed to decrypt.
        key: String,
    },

    /// The object's key-ID prefix names a key that the loaded keyset does
    /// not have, for example data written under a newer keyset. (A key the
    /// keyset has but not ENABLED is [`Error::KeyNotEnabled`].)
    #[error(
        "{} is encrypted under key ID {key_id}, which the loaded keyset does not have (was it written with a newer keyset?)",
        ShownKey(.key)
    )]
    UnknownKeyId {
        /// The key whose object could not be decrypted.
        key: String,
        /// The key ID named by the ciphertext prefix.
        key_id: u32,
    },

    /// The object's key-ID prefix names a key that the loaded keyset has,
    /// but not ENABLED: DISABLED (it can be re-enabled) or DESTROYED (its
    /// key material is gone).
    #[error(
        "{} is encrypted under key {key_id}, which is {status} in this keyset: {}",
        ShownKey(.key),
        not_enabled_hint(.status, *.key_id)
    )]
    KeyNotEnabled {
        /// The key whose object could not be decrypted.
        key: String,
        /// The key ID named by the ciphertext prefix.
        key_id: u32,
        /// The key's status in the keyset: `DISABLED` or `DESTROYED`.
        status: &'static str,
    },

    /// Another cryptographic failure, for example a policy refusal.
    #[error("cryptographic failure for {}: {source}", ShownKey(.key))]
    Crypto {
        /// The key being read or written.
        key: String,
        /// What failed.
        #[source]
        source: AeadError,
    },

    /// A ranged read ([`Storage::load_range`](crate::Storage::load_range))
    /// asked for a range that starts beyond the end of the value. A start
    /// equal to the size is not an error: it gives no bytes.
    #[error("range starting at byte {start} is beyond the end of {key:?} ({size} bytes)")]
    RangeNotSatisfiable {
        /// The key that was read.
        key: String,
        /// The start of the range asked for.
        start: u64,
        /// The size of the value.
        size: u64,
    },

    /// A ranged read was given a range whose start is after its end.
    /// Refused before any I/O.
    #[error("invalid range {start}..{end} for {key:?}: the start is after the end")]
    InvalidRange {
        /// The key that was to be read.
        key: String,
        /// The start of the range.
        start: u64,
        /// The end of the range.
        end: u64,
    },

    /// An operation did not finish within its deadline.
    #[error("{backend} {op} timed out")]
    Timeout {
        /// The backend's short name.
        backend: &'static str,
        /// The operation that timed out.
        op: &'static str,
    },

    /// The backend cannot be reached (connection refused, DNS failure, no
    /// answer after bounded retries). Callers running long operations stop
    /// on it instead of retrying for minutes.
    #[error("cannot reach the {backend} backend at {address}: {source}")]
    Unreachable {
        /// The backend's short name.
        backend: &'static str,
        /// The address that did not answer (host and port, or URL without
        /// credentials).
        address: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// The backend does not provide a guarantee that this operation needs,
    /// for example an S3-compatible server that ignores conditional-write
    /// headers. Nothing was written.
    #[error("{backend} backend cannot {op}: {reason}")]
    Unsupported {
        /// The backend's short name.
        backend: &'static str,
        /// The operation refused, such as `conditional write` or `lock`.
        op: &'static str,
        /// What the backend lacks and what to do about it.
        reason: String,
    },

    /// The backend failed: I/O, network, permissions, corrupt metadata.
    #[error("{backend} backend failed to {op}: {source}")]
    Backend {
        /// The backend's short name, such as `fs` or `s3`.
        backend: &'static str,
        /// What it was doing, such as `write` or `list`.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

/// What to do about an object under a key that is not ENABLED.
fn not_enabled_hint(status: &str, key_id: u32) -> String {
    if status == "DISABLED" {
        format!(
            "re-enable the key to read it (`encstore enable-key --key-id {key_id} --in KEYSET --out KEYSET`, then reload the keyset everywhere)"
        )
    } else {
        "its key material is gone, so this keyset cannot decrypt it (only a backup of the keyset from before the key was destroyed can)".to_owned()
    }
}

impl Error {
    /// A "not found" error for `key`.
    pub fn not_found(key: impl Into<String>) -> Self {
        Error::NotFound { key: key.into() }
    }

    /// A backend failure.
    pub fn backend(backend: &'static str, op: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            op,
            source: source.into(),
        }
    }

    /// Maps an AEAD failure on `key` to the matching storage error.
    pub fn from_aead(key: impl Into<String>, err: AeadError) -> Self {
        let key = key.into();
        match err {
            AeadError::Authentication => Error::Authentication { key },
            AeadError::UnknownKeyId { key_id } => Error::UnknownKeyId { key, key_id },
            other => Error::Crypto { key, source: other },
        }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// A short, stable name for the error kind, for metrics and logs.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::InvalidKey { .. } => ErrorKind::InvalidKey,
            Error::PreconditionFailed { .. } => ErrorKind::PreconditionFailed,
            Error::LockHeld { .. } => ErrorKind::LockHeld,
            Error::LockNotHeld { .. } => ErrorKind::LockNotHeld,
            Error::Authentication { .. } => ErrorKind::Authentication,
            Error::UnknownKeyId { .. } => ErrorKind::UnknownKeyId,
            Error::KeyNotEnabled { .. } => ErrorKind::KeyNotEnabled,
            Error::Crypto { .. } => ErrorKind::Crypto,
            Error::RangeNotSatisfiable { .. } => ErrorKind::RangeNotSatisfiable,
            Error::InvalidRange { .. } => ErrorKind::InvalidRange,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Unreachable { .. } => ErrorKind::Unreachable,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Backend { .. } => ErrorKind::Backend,
        }
    }
}

/// The kind of an [`Error`], without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::InvalidKey`].
    InvalidKey,
    /// See [`Error::PreconditionFailed`].
    PreconditionFailed,
    /// See [`Error::LockHeld`].
    LockHeld,
    /// See [`Error::LockNotHeld`].
    LockNotHeld,
    /// See [`Error::Authentication`].
    Authentication,
    /// See [`Error::UnknownKeyId`].
    UnknownKeyId,
    /// See [`Error::KeyNotEnabled`].
    KeyNotEnabled,
    /// See [`Error::Crypto`].
    Crypto,
    /// See [`Error::RangeNotSatisfiable`].
    RangeNotSatisfiable,
    /// See [`Error::InvalidRange`].
    InvalidRange,
    /// See [`Error::Timeout`].
    Timeout,
    /// See [`Error::Unreachable`].
    Unreachable,
    /// See [`Error::Unsupported`].
    Unsupported,
    /// See [`Error::Backend`].
    Backend,
}

impl ErrorKind {
    /// A stable snake_case name, for metrics labels and structured logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::PreconditionFailed => "precondition_failed",
            ErrorKind::LockHeld => "lock_held",
            ErrorKind::LockNotHeld => "lock_not_held",
            ErrorKind::Authentication => "authentication",
            ErrorKind::UnknownKeyId => "unknown_key_id",
            ErrorKind::KeyNotEnabled => "key_not_enabled",
            ErrorKind::Crypto => "crypto",
            ErrorKind::RangeNotSatisfiable => "range_not_satisfiable",
            ErrorKind::InvalidRange => "invalid_range",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Backend => "backend",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
