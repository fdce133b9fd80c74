//! The crate's typed error, and how it becomes an [`encstore_core::KekError`].

use std::time::Duration;

use encstore_core::KekError;

/// Why opening or using an AWS KMS KEK failed.
///
/// Every message is one line and says what to fix. None contains a secret
/// access key, a session token or plaintext. `service` fields read like
/// `AWS KMS (us-east-1)` or `AWS KMS (us-east-1, endpoint http://…)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwsKmsError {
    /// The `aws-kms://` URI is malformed.
    #[error("invalid aws-kms URI: {0}")]
    InvalidUri(String),
    /// This build of encstore-awskms has no AWS SDK (its `aws` feature is
    /// off).
    #[error(
        "this build has no AWS KMS support: rebuild with the encstore-awskms `aws` feature (the CLI's aws-kms feature)"
    )]
    NotCompiled,
    /// The standard credential chain found no credentials.
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a credentials file, or run where an instance or task role is available ({reason})"
    )]
    NoCredentials {
        /// What the credential chain said.
        reason: String,
    },
    /// No connection could be made (refused, no route, name not resolved,
    /// connect timeout).
    #[error("{service} is unreachable: {reason}")]
    Unreachable {
        /// Region and endpoint.
        service: String,
        /// What the network said.
        reason: String,
    },
    /// No answer in time: an attempt or the whole call (retries included)
    /// hit its timeout.
    #[error(
        "{service} did not answer in time (each attempt may take {} s, the whole call {} s)",
        .attempt_timeout.as_secs_f64(),
        .operation_timeout.as_secs_f64()
    )]
    Timeout {
        /// Region and endpoint.
        service: String,
        /// The bound on one attempt.
        attempt_timeout: Duration,
        /// The bound on the whole call.
        operation_timeout: Duration,
    },
    /// KMS refused the credentials themselves: a wrong secret (invalid
    /// signature), an unknown access key ID, an expired session token.
    #[error("{service} refused the credentials ({code}): {message}")]
    CredentialsRejected {
        /// Region and endpoint.
        service: String,
        /// The error code, e.g. `InvalidSignatureException`.
        code: String,
        /// What KMS said.
        message: String,
    },
    /// The credentials are valid but IAM or the key policy does not allow
    /// the operation.
    #[error(
        "{service}: access denied to {operation} ({message}); the IAM or key policy must allow {operation}"
    )]
    AccessDenied {
        /// Region and endpoint.
        service: String,
        /// The KMS action, e.g. `kms:Encrypt`.
        operation: &'static str,
        /// What KMS said.
        message: String,
    },
    /// No such key or alias in that account and region.
    #[error("{service}: key {key} not found ({message})")]
    KeyNotFound {
        /// Region and endpoint.
        service: String,
        /// The ARN.
        key: String,
        /// What KMS said.
        message: String,
    },
    /// The key is disabled.
    #[error("{service}: key {key} is disabled; enable it (aws kms enable-key) to use it")]
    KeyDisabled {
        /// Region and endpoint.
        service: String,
        /// The ARN.
        key: String,
    },
    /// The key is in a state that cannot be used (pending deletion, pending
    /// import, unavailable, ...).
    #[error("{service}: key {key} cannot be used in state {state}")]
    KeyInvalidState {
        /// Region and endpoint.
        service: String,
        /// The ARN.
        key: String,
        /// The key state (or KMS's message).
        state: String,
    },
    /// The key is not a symmetric encryption key.
    #[error("{service}: key {key} cannot wrap keysets: {reason}")]
    KeyUnsuitable {
        /// Region and endpoint.
        service: String,
        /// The ARN.
        key: String,
        /// Why, e.g. its key spec.
        reason: String,
    },
    /// `Decrypt` succeeded with a different key than the URI names (checked
    /// for key ARNs, as Tink does).
    #[error("decryption failed: the data was wrapped by another key ({actual}, not {expected})")]
    WrongKey {
        /// The URI's key ARN.
        expected: String,
        /// The key KMS used.
        actual: String,
    },
    /// The ciphertext did not authenticate: wrong key, wrong associated
    /// data (encryption context), or tampering.
    #[error(
        "the keyset could not be unwrapped: wrong master key or associated data, or the data was tampered with"
    )]
    Authentication,
    /// Any other error KMS returned.
    #[error("{service}: {operation} failed ({status}{}): {message}", .code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Server {
        /// Region and endpoint.
        service: String,
        /// The KMS action.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// The error code, if any.
        code: Option<String>,
        /// What KMS said.
        message: String,
    },
    /// KMS answered with something that is not a KMS response.
    #[error("{service}: unexpected response to {operation}: {reason}")]
    Protocol {
        /// Region and endpoint.
        service: String,
        /// The KMS action.
        operation: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl AwsKmsError {
    fn is_unavailable(&self) -> bool {
        matches!(
            self,
            AwsKmsError::NotCompiled
                | AwsKmsError::NoCredentials { .. }
                | AwsKmsError::Unreachable { .. }
                | AwsKmsError::Timeout { .. }
                | AwsKmsError::CredentialsRejected { .. }
                | AwsKmsError::AccessDenied { .. }
                | AwsKmsError::KeyNotFound { .. }
                | AwsKmsError::KeyDisabled { .. }
                | AwsKmsError::KeyInvalidState { .. }
                | AwsKmsError::KeyUnsuitable { .. }
        )
    }
}

/// The one place an [`AwsKmsError`] becomes a [`KekError`]:
/// - a malformed URI becomes [`KekError::InvalidUri`];
/// - data that does not authenticate, or was wrapped by another key,
///   becomes [`KekError::Authentication`];
/// - a credential, network, permission or key problem (or a build without
///   the `aws` feature) becomes [`KekError::Unavailable`];
/// - anything else (a server or protocol error) becomes [`KekError::Failed`].
///
/// Each carries this error as its typed inner error (reach it with
/// [`KekError::downcast_ref`]) and shows its message.
impl From<AwsKmsError> for KekError {
    fn from(e: AwsKmsError) -> Self {
        match e {
            e @ AwsKmsError::InvalidUri(_) => KekError::invalid_uri(e),
            AwsKmsError::Authentication | AwsKmsError::WrongKey { .. } => KekError::Authentication,
            e if e.is_unavailable() => KekError::unavailable(e),
            e => KekError::failed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_into_kek_error() {
        let e = KekError::from(AwsKmsError::InvalidUri("x".into()));
        assert!(matches!(&e, KekError::InvalidUri(_)), "{e:?}");
        assert_eq!(e.to_string(), "invalid aws-kms URI: x");
        assert!(matches!(
            e.downcast_ref::<AwsKmsError>(),
            Some(AwsKmsError::InvalidUri(_))
        ));
        assert!(matches!(
            KekError::from(AwsKmsError::WrongKey {
                expected: "a".into(),
                actual: "b".into()
            }),
            KekError::Authentication
        ));
        let e = KekError::from(AwsKmsError::NotCompiled);
        assert!(matches!(e, KekError::Unavailable(_)));
        assert!(matches!(
            e.downcast_ref::<AwsKmsError>(),
            Some(AwsKmsError::NotCompiled)
        ));
        let e = KekError::from(AwsKmsError::Server {
            service: "AWS KMS (us-east-1)".into(),
            operation: "kms:Encrypt",
            status: 500,
            code: Some("KMSInternalException".into()),
            message: "boom".into(),
        });
        let KekError::Failed(source) = &e else {
            panic!("expected Failed");
        };
        assert_eq!(
            e.to_string(),
            "AWS KMS (us-east-1): kms:Encrypt failed (500, KMSInternalException): boom"
        );
        assert!(matches!(
            source.downcast_ref::<AwsKmsError>(),
            Some(AwsKmsError::Server { status: 500, .. })
        ));
    }
}
