//! Converting `object_store` errors into [`encstore_core::Error`].
//!
//! The mapping depends on what the operation was doing: a 404 on a read is
//! the key's [`Error::NotFound`], while a 404 on a write means the bucket is
//! missing, which is a backend failure.

use std::error::Error as StdError;

use encstore_core::Error;
use object_store::client::{HttpError, HttpErrorKind};

/// The backend name in [`Error::Backend`] and [`Error::Timeout`].
pub(crate) const BACKEND: &str = "s3";

/// What the failed call was, for choosing the error variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A read of one key: 404 is [`Error::NotFound`].
    Read,
    /// A conditional write: 412 (and 404 on `If-Match`) is
    /// [`Error::PreconditionFailed`].
    Conditional,
    /// Anything else: 404 and 412 are backend failures.
    Other,
}

/// Maps an `object_store` error from operation `op` on `key`.
pub(crate) fn map(op: &'static str, key: &str, kind: Kind, e: object_store::Error) -> Error {
    use object_store::Error as E;
    match (kind, e) {
        (Kind::Read, E::NotFound { .. }) => Error::not_found(key),
        (
            Kind::Conditional,
            E::AlreadyExists { .. } | E::Precondition { .. } | E::NotFound { .. },
        ) => Error::PreconditionFailed {
            key: key.to_owned(),
        },
        (_, e) if is_timeout(&e) => Error::Timeout {
            backend: BACKEND,
            op,
        },
        (_, e) => Error::backend(BACKEND, op, e),
    }
}

/// True when an HTTP request in the error's source chain timed out.
fn is_timeout(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<HttpError>()
            && h.kind() == HttpErrorKind::Timeout
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// True for the errors a conditional write reports when its condition
/// failed: the object exists (`If-None-Match`), changed or is gone
/// (`If-Match`).
pub(crate) fn is_precondition(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotFound { .. }
    )
}
