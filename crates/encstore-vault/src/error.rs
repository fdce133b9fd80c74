//! The crate's typed error, and how it becomes an [`encstore_core::KekError`].

use std::path::PathBuf;
use std::time::Duration;

use encstore_core::KekError;

/// Why opening or using a Vault / OpenBao transit KEK failed.
///
/// Every message is one line and says what to fix. None contains the token,
/// the plaintext or the key material: server messages are quoted only from
/// error responses, which carry none of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The `hcvault://` URI is malformed.
    #[error("invalid hcvault URI: {0}")]
    InvalidUri(String),
    /// Neither `VAULT_TOKEN` nor `BAO_TOKEN` is set (and no token was given
    /// in code).
    #[error(
        "no Vault token: set VAULT_TOKEN (or BAO_TOKEN) to a token that may use the transit key"
    )]
    NoToken,
    /// An environment variable holds a value encstore cannot use.
    #[error("{variable}: {reason}")]
    InvalidEnv {
        /// The variable's name.
        variable: &'static str,
        /// What is wrong with it (never the value of a secret).
        reason: String,
    },
    /// The CA file (`VAULT_CACERT` / `BAO_CACERT`) cannot be read or holds
    /// no PEM certificate.
    #[error("cannot use the Vault CA certificate file {}: {reason}", .path.display())]
    CaCert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No connection could be made within the connect timeout: connection
    /// refused, no route, name not resolved, or nothing answered.
    #[error("Vault server {address} is unreachable: {reason}")]
    Unreachable {
        /// `https://HOST:PORT`.
        address: String,
        /// What the network said (or the timeout that expired).
        reason: String,
    },
    /// The connection was made but no response came within the request
    /// timeout.
    #[error("Vault server {address} did not answer within {} s", .after.as_secs_f64())]
    Timeout {
        /// `https://HOST:PORT`.
        address: String,
        /// The request timeout that expired.
        after: Duration,
    },
    /// The TLS handshake failed: the server's certificate is not trusted
    /// (wrong or missing `VAULT_CACERT`), names another host, or expired.
    #[error("TLS with Vault server {address} failed: {reason} (check VAULT_CACERT / BAO_CACERT)")]
    Tls {
        /// `https://HOST:PORT`.
        address: String,
        /// What rustls said.
        reason: String,
    },
    /// The server refused the token itself (403, also on
    /// `auth/token/lookup-self`): wrong, expired or revoked.
    #[error(
        "Vault server {address} refused the token (403 permission denied): it is wrong, expired or revoked; set VAULT_TOKEN (or BAO_TOKEN)"
    )]
    TokenRejected {
        /// `https://HOST:PORT`.
        address: String,
    },
    /// The token is valid but its policies do not allow this path.
    #[error(
        "Vault server {address}: the token may not use {path} (403 permission denied); its policy needs {capability} on it"
    )]
    PermissionDenied {
        /// `https://HOST:PORT`.
        address: String,
        /// The API path, e.g. `transit/encrypt/kek`.
        path: String,
        /// The capability the path needs (`read`, `update`, `create`).
        capability: &'static str,
    },
    /// The server is sealed (503).
    #[error(
        "Vault server {address} is sealed; unseal it (bao operator unseal / vault operator unseal) and retry"
    )]
    Sealed {
        /// `https://HOST:PORT`.
        address: String,
    },
    /// Nothing is mounted at the URI's mount path.
    #[error(
        "Vault server {address}: no secrets engine is mounted at {mount}/ (enable transit there: bao secrets enable -path={mount} transit)"
    )]
    MountNotFound {
        /// `https://HOST:PORT`.
        address: String,
        /// The mount path.
        mount: String,
    },
    /// The mount has no transit key of that name.
    #[error(
        "Vault server {address}: no transit key {key:?} at {mount}/ (create it with encstore create-master-key)"
    )]
    KeyNotFound {
        /// `https://HOST:PORT`.
        address: String,
        /// The mount path.
        mount: String,
        /// The key name.
        key: String,
    },
    /// `create_master_key` found a key of that name already.
    #[error(
        "Vault server {address}: transit key {key:?} already exists at {mount}/; refusing to create another"
    )]
    KeyExists {
        /// `https://HOST:PORT`.
        address: String,
        /// The mount path.
        mount: String,
        /// The key name.
        key: String,
    },
    /// The key exists but cannot wrap keysets the way Tink does (derived,
    /// or a type that cannot encrypt and decrypt).
    #[error("Vault transit key {key:?} cannot wrap keysets: {reason}")]
    KeyUnsuitable {
        /// The key name.
        key: String,
        /// Why (e.g. "it is a derived key (derived=true)").
        reason: String,
    },
    /// The ciphertext was made with a key version that the key's
    /// `min_decryption_version` no longer allows.
    #[error(
        "Vault transit key {key:?}: the data was wrapped with key version {version}, below the key's min_decryption_version{}; lower min_decryption_version to read it, then rewrap it under the newest version",
        .min_decryption_version.map(|m| format!(" ({m})")).unwrap_or_default()
    )]
    KeyVersionTooOld {
        /// The key name.
        key: String,
        /// The version the ciphertext names (`vault:vN:`).
        version: u32,
        /// The key's `min_decryption_version`, if it could be read.
        min_decryption_version: Option<u32>,
    },
    /// Associated data was given but the server cannot bind it: the key type
    /// is not an AEAD (RSA), or the server ignored the parameter (a Vault
    /// without transit `associated_data`). Nothing was wrapped.
    #[error(
        "Vault transit key {key:?} cannot bind associated data: {reason}; use empty associated data or an AEAD key (aes256-gcm96)"
    )]
    AssociatedDataUnsupported {
        /// The key name.
        key: String,
        /// What the key or server said.
        reason: String,
    },
    /// The data is not a transit ciphertext (`vault:vN:BASE64`).
    #[error("not a Vault transit ciphertext (expected vault:vN:BASE64)")]
    NotTransitCiphertext,
    /// The wrapped keyset did not authenticate (wrong key, wrong associated
    /// data, tampering, or a ciphertext of another key).
    #[error(
        "the keyset could not be unwrapped: wrong master key or associated data, or the data was tampered with"
    )]
    Authentication,
    /// Any other error the server returned.
    #[error("Vault server {address}: {operation} failed ({status}): {message}")]
    Server {
        /// `https://HOST:PORT`.
        address: String,
        /// What encstore asked for, e.g. `"encrypt with transit/encrypt/kek"`.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// The server's `errors`, joined.
        message: String,
    },
    /// The server answered with something that is not a transit response.
    #[error("Vault server {address}: unexpected response to {operation}: {reason}")]
    Protocol {
        /// `https://HOST:PORT`.
        address: String,
        /// What encstore asked for.
        operation: String,
        /// What was wrong with the response.
        reason: String,
    },
}

impl VaultError {
    /// Whether this error is about reaching or configuring the server, the
    /// token or the key (as opposed to the data being wrapped or unwrapped).
    fn is_unavailable(&self) -> bool {
        matches!(
            self,
            VaultError::NoToken
                | VaultError::InvalidEnv { .. }
                | VaultError::CaCert { .. }
                | VaultError::Unreachable { .. }
                | VaultError::Timeout { .. }
                | VaultError::Tls { .. }
                | VaultError::TokenRejected { .. }
                | VaultError::PermissionDenied { .. }
                | VaultError::Sealed { .. }
                | VaultError::MountNotFound { .. }
                | VaultError::KeyNotFound { .. }
                | VaultError::KeyExists { .. }
                | VaultError::KeyUnsuitable { .. }
        )
    }
}

/// The one place a [`VaultError`] becomes a [`KekError`]:
/// - a malformed URI becomes [`KekError::InvalidUri`];
/// - a ciphertext that does not authenticate (or is not a transit
///   ciphertext) becomes [`KekError::Authentication`];
/// - a server, network, token or key problem becomes
///   [`KekError::Unavailable`];
/// - everything else (a too-old key version, associated data the server
///   cannot bind, a server or protocol error) becomes [`KekError::Failed`].
///
/// Each carries this error as its typed inner error (reach it with
/// [`KekError::downcast_ref`]) and shows its message.
impl From<VaultError> for KekError {
    fn from(e: VaultError) -> Self {
        match e {
            e @ VaultError::InvalidUri(_) => KekError::invalid_uri(e),
            VaultError::Authentication | VaultError::NotTransitCiphertext => {
                KekError::Authentication
            }
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
        let e = KekError::from(VaultError::InvalidUri("x".into()));
        assert!(matches!(&e, KekError::InvalidUri(_)), "{e:?}");
        assert_eq!(e.to_string(), "invalid hcvault URI: x");
        assert!(matches!(
            e.downcast_ref::<VaultError>(),
            Some(VaultError::InvalidUri(_))
        ));
        assert!(matches!(
            KekError::from(VaultError::Authentication),
            KekError::Authentication
        ));
        assert!(matches!(
            KekError::from(VaultError::NotTransitCiphertext),
            KekError::Authentication
        ));
        let e = KekError::from(VaultError::Sealed {
            address: "https://h:1".into(),
        });
        assert!(
            matches!(&e, KekError::Unavailable(_))
                && e.to_string()
                    .starts_with("Vault server https://h:1 is sealed"),
            "{e:?}"
        );
        assert!(matches!(
            e.downcast_ref::<VaultError>(),
            Some(VaultError::Sealed { .. })
        ));
        let e = KekError::from(VaultError::KeyVersionTooOld {
            key: "k".into(),
            version: 1,
            min_decryption_version: Some(2),
        });
        let KekError::Failed(source) = &e else {
            panic!("expected Failed");
        };
        assert_eq!(
            e.to_string(),
            "Vault transit key \"k\": the data was wrapped with key version 1, below the key's min_decryption_version (2); lower min_decryption_version to read it, then rewrap it under the newest version"
        );
        assert!(matches!(
            source.downcast_ref::<VaultError>(),
            Some(VaultError::KeyVersionTooOld { version: 1, .. })
        ));
    }
}
