//! Converting `object_store` errors into [`encstore_core::Error`].
//!
//! The mapping depends on what the operation was doing: a 404 on a read is
//! the key's [`Error::NotFound`], while a 404 that says the bucket is
//! missing is a backend failure naming the bucket, whatever the operation.
//! Connection failures (refused, reset, DNS) that outlast the bounded
//! retries are [`Error::Unreachable`] naming the endpoint; timeouts are
//! [`Error::Timeout`].

use std::error::Error as StdError;
use std::fmt;

use encstore_core::Error;
use object_store::client::{HttpError, HttpErrorKind};

use crate::storage::Inner;

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

/// The bucket (or container) the store addresses does not exist.
#[derive(Debug)]
pub(crate) struct BucketMissing {
    pub(crate) bucket: String,
    pub(crate) address: String,
}

impl fmt::Display for BucketMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the bucket {:?} does not exist at {} (create it, or fix the store location)",
            self.bucket, self.address
        )
    }
}

impl StdError for BucketMissing {}

/// No credentials were configured and the cloud's metadata service gave
/// none. Carries the underlying failure as text only, so that its
/// connection error (to the metadata address) is not mistaken for the
/// storage endpoint being unreachable.
#[derive(Debug)]
pub(crate) struct NoCredentials {
    /// What to set, for the operator.
    pub(crate) hint: &'static str,
    /// Why the fallback failed, as text.
    pub(crate) detail: Option<String>,
}

impl fmt::Display for NoCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hint)?;
        if let Some(d) = &self.detail {
            write!(f, " (the instance-metadata fallback failed: {d})")?;
        }
        Ok(())
    }
}

impl StdError for NoCredentials {}

/// What a failed `object_store` call amounts to, before the operation's
/// context picks the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The bucket or container does not exist.
    BucketMissing,
    /// No credentials (see [`NoCredentials`]).
    NoCredentials,
    /// 404 on the object.
    NotFound,
    /// The condition of a conditional write failed (412, 409, 304).
    Precondition,
    /// The store does not implement the operation (`NotImplemented`, 501).
    NotImplemented,
    /// A ranged read starts at or beyond the object's end (416, or
    /// `object_store`'s own range check).
    RangeNotSatisfiable,
    /// The multipart upload is gone (`NoSuchUpload`: aborted, or already
    /// completed).
    NoSuchUpload,
    /// A request timed out.
    Timeout,
    /// The endpoint could not be reached (refused, reset, DNS).
    Unreachable,
    /// Anything else.
    Other,
}

/// Walks the error's source chain.
fn chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let next: fn(&&'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> =
        |e| (*e).source();
    std::iter::successors(Some(e), next)
}

/// Markers of a missing bucket in an error response body: S3's (and the
/// GCS XML API's) `NoSuchBucket`, Azure's `ContainerNotFound`.
/// `object_store` keeps the response in its (private) retry error, which
/// shows the body in its message, so the chain's messages are searched. An
/// object name cannot fake them: it appears percent-encoded in a URL.
const BUCKET_MISSING_MARKERS: [&str; 2] = [
    "<Code>NoSuchBucket</Code>",
    "<Code>ContainerNotFound</Code>",
];

/// Classifies an `object_store` error.
pub(crate) fn classify(e: &object_store::Error) -> Class {
    use object_store::Error as E;
    let root: &(dyn StdError + 'static) = e;
    for err in chain(root) {
        if err.downcast_ref::<NoCredentials>().is_some() {
            return Class::NoCredentials;
        }
    }
    let text: String = chain(root).map(|err| err.to_string() + "\n").collect();
    if BUCKET_MISSING_MARKERS.iter().any(|m| text.contains(m)) {
        return Class::BucketMissing;
    }
    if text.contains("non-2xx status code: 501") {
        return Class::NotImplemented;
    }
    // A 416 from a server; "Wanted range starting at …" is object_store's
    // own check (InMemory, local files), which has no public type.
    if text.contains("non-2xx status code: 416") || text.contains("Wanted range starting at") {
        return Class::RangeNotSatisfiable;
    }
    if text.contains("<Code>NoSuchUpload</Code>") {
        return Class::NoSuchUpload;
    }
    match e {
        E::NotFound { .. } => return Class::NotFound,
        E::AlreadyExists { .. } | E::Precondition { .. } | E::NotModified { .. } => {
            return Class::Precondition;
        }
        E::NotImplemented { .. } | E::NotSupported { .. } => return Class::NotImplemented,
        _ => {}
    }
    for err in chain(root) {
        if let Some(h) = err.downcast_ref::<HttpError>() {
            match h.kind() {
                HttpErrorKind::Timeout => return Class::Timeout,
                HttpErrorKind::Connect | HttpErrorKind::Request | HttpErrorKind::Interrupted => {
                    return Class::Unreachable;
                }
                _ => {}
            }
        }
    }
    Class::Other
}

impl Inner {
    /// Maps an `object_store` error from operation `op` on `key`.
    pub(crate) fn map(
        &self,
        op: &'static str,
        key: &str,
        kind: Kind,
        e: object_store::Error,
    ) -> Error {
        match (classify(&e), kind) {
            (Class::BucketMissing, _) => self.bucket_missing(op),
            (Class::NoCredentials, _) => {
                // Just the explanation, without object_store's wrappers.
                let root: &(dyn StdError + 'static) = &e;
                let text = chain(root)
                    .find_map(|err| err.downcast_ref::<NoCredentials>().map(ToString::to_string))
                    .unwrap_or_else(|| e.to_string());
                Error::backend(self.backend, op, text)
            }
            (Class::NotFound, Kind::Read) => Error::not_found(key),
            (Class::NotFound | Class::Precondition, Kind::Conditional) => {
                Error::PreconditionFailed {
                    key: key.to_owned(),
                }
            }
            (Class::Timeout, _) => Error::Timeout {
                backend: self.backend,
                op,
            },
            (Class::Unreachable, _) => Error::Unreachable {
                backend: self.backend,
                address: self.address.clone(),
                source: Box::new(e),
            },
            _ => Error::backend(self.backend, op, e),
        }
    }

    /// The error for a missing bucket.
    pub(crate) fn bucket_missing(&self, op: &'static str) -> Error {
        Error::backend(
            self.backend,
            op,
            BucketMissing {
                bucket: self.bucket.clone().unwrap_or_default(),
                address: self.address.clone(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_uploads_classify_by_their_messages() {
        let generic = |msg: &str| object_store::Error::Generic {
            store: "S3",
            source: msg.to_owned().into(),
        };
        assert_eq!(
            classify(&generic(
                "Error performing GET http://h/b/k - Server returned non-2xx status code: \
                 416 Range Not Satisfiable: <Error><Code>InvalidRange</Code></Error>"
            )),
            Class::RangeNotSatisfiable
        );
        assert_eq!(
            classify(&generic(
                "Wanted range starting at 11, but object was only 10 bytes long"
            )),
            Class::RangeNotSatisfiable
        );
        assert_eq!(
            classify(&object_store::Error::NotFound {
                path: "p".into(),
                source: "Server returned non-2xx status code: 404 Not Found: \
                         <Error><Code>NoSuchUpload</Code></Error>"
                    .into()
            }),
            Class::NoSuchUpload
        );
        assert_eq!(
            classify(&generic("non-2xx status code: 400 Bad Request")),
            Class::Other
        );
    }

    #[test]
    fn object_store_kinds_classify() {
        let src = || -> Box<dyn StdError + Send + Sync> { "x".into() };
        assert_eq!(
            classify(&object_store::Error::NotFound {
                path: "p".into(),
                source: src()
            }),
            Class::NotFound
        );
        assert_eq!(
            classify(&object_store::Error::AlreadyExists {
                path: "p".into(),
                source: src()
            }),
            Class::Precondition
        );
        assert_eq!(
            classify(&object_store::Error::Generic {
                store: "S3",
                source: Box::new(NoCredentials {
                    hint: "h",
                    detail: None
                })
            }),
            Class::NoCredentials
        );
        assert_eq!(
            classify(&object_store::Error::Generic {
                store: "S3",
                source: Box::new(HttpError::new(
                    HttpErrorKind::Connect,
                    std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
                ))
            }),
            Class::Unreachable
        );
        assert_eq!(
            classify(&object_store::Error::Generic {
                store: "S3",
                source: Box::new(HttpError::new(
                    HttpErrorKind::Timeout,
                    std::io::Error::from(std::io::ErrorKind::TimedOut)
                ))
            }),
            Class::Timeout
        );
    }
}
