//! The crate's typed error, and how it becomes an [`encstore_core::KekError`].

use std::path::PathBuf;

use encstore_core::KekError;

/// Why opening or using a PKCS#11 KEK failed.
///
/// Every message is one line and names what to fix; none contains a PIN or
/// key material. It converts into [`KekError`]: URI problems become
/// [`KekError::InvalidUri`], failed authentication of a wrapped keyset
/// becomes [`KekError::Authentication`], a failure in the middle of an
/// operation becomes [`KekError::Failed`] (with this error as its source),
/// and everything else (configuration, token, PIN, key) becomes
/// [`KekError::Unavailable`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// The URI is malformed or uses an attribute encstore does not support.
    #[error("invalid PKCS#11 URI: {0}")]
    InvalidUri(String),
    /// The URI carries `pin-value`; a PIN never belongs on a command line.
    #[error(
        "invalid PKCS#11 URI: pin-value is refused (a PIN must never be on a command line); use pin-source=file:/path or ENCSTORE_PKCS11_PIN_FILE"
    )]
    PinInUri,
    /// Neither the URI's `module-path` nor `ENCSTORE_PKCS11_MODULE` names a
    /// PKCS#11 module.
    #[error(
        "no PKCS#11 module given: add module-path=/path/to/module.so to the URI or set ENCSTORE_PKCS11_MODULE"
    )]
    NoModule,
    /// The module file does not exist.
    #[error("PKCS#11 module {} not found", .path.display())]
    ModuleNotFound {
        /// The module path that was tried.
        path: PathBuf,
    },
    /// The module exists but could not be loaded or initialised.
    #[error("PKCS#11 module {} could not be loaded: {reason}", .path.display())]
    ModuleLoad {
        /// The module path.
        path: PathBuf,
        /// What the loader or `C_Initialize` said.
        reason: String,
    },
    /// Neither the URI's `pin-source` nor `ENCSTORE_PKCS11_PIN_FILE` says
    /// where the PIN is.
    #[error(
        "no PKCS#11 PIN source given: add pin-source=file:/path/to/pin to the URI or set ENCSTORE_PKCS11_PIN_FILE"
    )]
    NoPinSource,
    /// The PIN source could not be read, or was empty.
    #[error("cannot read the PKCS#11 PIN from {source_name}: {reason}")]
    PinSource {
        /// The PIN source (`file:/path` or `env:VAR`), never the PIN.
        source_name: String,
        /// Why it could not be read.
        reason: String,
    },
    /// No initialised token matches the URI.
    #[error("PKCS#11 token {wanted} not found in module {}{}", .module.display(), available_list(.available))]
    TokenNotFound {
        /// The token the URI asked for.
        wanted: String,
        /// The module searched.
        module: PathBuf,
        /// Labels of the initialised tokens the module does offer.
        available: Vec<String>,
    },
    /// More than one token matches the URI.
    #[error("{count} PKCS#11 tokens match {wanted}; add token=, serial= or slot-id= to the URI")]
    AmbiguousToken {
        /// The token the URI asked for.
        wanted: String,
        /// How many matched.
        count: usize,
    },
    /// `C_Login` said `CKR_PIN_INCORRECT`.
    #[error("PKCS#11 token {token}: the user PIN is incorrect (CKR_PIN_INCORRECT)")]
    WrongPin {
        /// The token label.
        token: String,
    },
    /// `C_Login` said `CKR_PIN_LOCKED`: too many wrong PINs; the security
    /// officer must unlock it.
    #[error(
        "PKCS#11 token {token}: the user PIN is locked (CKR_PIN_LOCKED); the token's security officer must reset it"
    )]
    PinLocked {
        /// The token label.
        token: String,
    },
    /// No object on the token has the URI's label / id.
    #[error("PKCS#11 token {token}: no key {key} (create it with encstore create-master-key)")]
    KeyNotFound {
        /// The token label.
        token: String,
        /// The key's label and/or id.
        key: String,
    },
    /// More than one object has the URI's label / id.
    #[error(
        "PKCS#11 token {token}: {count} objects match key {key}; add id= to the URI to pick one"
    )]
    AmbiguousKey {
        /// The token label.
        token: String,
        /// The key's label and/or id.
        key: String,
        /// How many matched.
        count: usize,
    },
    /// `create_master_key` found an object with that label already.
    #[error(
        "PKCS#11 token {token}: an object with the label or id of key {key} already exists; refusing to create another"
    )]
    KeyExists {
        /// The token label.
        token: String,
        /// The key's label.
        key: String,
    },
    /// The object is not an AES secret key.
    #[error("PKCS#11 token {token}: key {key} is {found}, not an AES secret key")]
    NotAesKey {
        /// The token label.
        token: String,
        /// The key's label and/or id.
        key: String,
        /// What it is instead (`"a DES3 secret key"`, `"a private key"`, ...).
        found: String,
    },
    /// The key may not be used for encryption and decryption.
    #[error("PKCS#11 token {token}: key {key} lacks {missing}, so it cannot wrap keysets")]
    KeyUsage {
        /// The token label.
        token: String,
        /// The key's label and/or id.
        key: String,
        /// The missing permission(s): `"CKA_ENCRYPT"`, `"CKA_DECRYPT"` or both.
        missing: &'static str,
    },
    /// The token lacks a mechanism the KEK needs.
    #[error("PKCS#11 token {token} does not support {mechanism}")]
    Unsupported {
        /// The token label.
        token: String,
        /// The missing mechanism.
        mechanism: &'static str,
    },
    /// A PKCS#11 call failed while choosing a token.
    #[error("PKCS#11 module {}: {operation} failed ({rv})", .path.display())]
    Module {
        /// The module path.
        path: PathBuf,
        /// The step that failed, e.g. `"listing tokens"`.
        operation: &'static str,
        /// The PKCS#11 return value (`CKR_… from C_…`).
        rv: String,
    },
    /// A PKCS#11 call failed while opening the KEK or creating a key.
    #[error("PKCS#11 token {token}: {operation} failed ({rv})")]
    Token {
        /// The token label.
        token: String,
        /// The step that failed, e.g. `"opening a session"`.
        operation: &'static str,
        /// The PKCS#11 return value (`CKR_… from C_…`).
        rv: String,
    },
    /// The HSM failed in the middle of a wrap or unwrap: the session or
    /// key vanished, the module was finalised, the device went away.
    #[error("PKCS#11 {operation} with key {key} on token {token} failed mid-operation: {reason}")]
    Operation {
        /// `"wrap"` or `"unwrap"`.
        operation: &'static str,
        /// The token label.
        token: String,
        /// The key's label and/or id.
        key: String,
        /// What happened, with the PKCS#11 return value.
        reason: String,
    },
    /// The wrapped keyset did not authenticate (wrong key, wrong associated
    /// data, or tampering).
    #[error(
        "the keyset could not be unwrapped: wrong master key or associated data, or the data was tampered with"
    )]
    Authentication,
}

fn available_list(v: &[String]) -> String {
    if v.is_empty() {
        " (it offers no initialised token)".to_owned()
    } else {
        let l: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
        format!(" (it offers: {})", l.join(", "))
    }
}

/// The one place a [`Pkcs11Error`] becomes a [`KekError`], which carries
/// it as its typed inner error (reach it with
/// [`KekError::downcast_ref`]):
/// - a malformed URI (or one with `pin-value`) becomes
///   [`KekError::InvalidUri`];
/// - a wrapped keyset that does not authenticate becomes
///   [`KekError::Authentication`];
/// - a failure in the middle of a wrap or unwrap becomes
///   [`KekError::Failed`];
/// - everything else (module, token, PIN, key) becomes
///   [`KekError::Unavailable`].
impl From<Pkcs11Error> for KekError {
    fn from(e: Pkcs11Error) -> Self {
        match e {
            e @ (Pkcs11Error::InvalidUri(_) | Pkcs11Error::PinInUri) => KekError::invalid_uri(e),
            Pkcs11Error::Authentication => KekError::Authentication,
            e @ Pkcs11Error::Operation { .. } => KekError::failed(e),
            other => KekError::unavailable(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_conversions() {
        let k: KekError = Pkcs11Error::Authentication.into();
        assert!(matches!(k, KekError::Authentication));
        let k: KekError = Pkcs11Error::PinInUri.into();
        assert!(matches!(k, KekError::InvalidUri(_)));
        assert!(matches!(
            k.downcast_ref::<Pkcs11Error>(),
            Some(Pkcs11Error::PinInUri)
        ));
        let k: KekError = Pkcs11Error::InvalidUri("x".into()).into();
        assert!(matches!(k, KekError::InvalidUri(_)));
        assert_eq!(k.to_string(), "invalid PKCS#11 URI: x");
        let k: KekError = Pkcs11Error::WrongPin {
            token: "\"t\"".into(),
        }
        .into();
        assert!(matches!(k, KekError::Unavailable(_)));
        assert_eq!(
            k.to_string(),
            "PKCS#11 token \"t\": the user PIN is incorrect (CKR_PIN_INCORRECT)"
        );
        assert!(matches!(
            k.downcast_ref::<Pkcs11Error>(),
            Some(Pkcs11Error::WrongPin { .. })
        ));
        let k: KekError = Pkcs11Error::PinLocked {
            token: "\"t\"".into(),
        }
        .into();
        assert_eq!(
            k.to_string(),
            "PKCS#11 token \"t\": the user PIN is locked (CKR_PIN_LOCKED); the token's security officer must reset it"
        );
        let k: KekError = Pkcs11Error::Operation {
            operation: "wrap",
            token: "\"t\"".into(),
            key: "\"k\"".into(),
            reason: "x".into(),
        }
        .into();
        match &k {
            KekError::Failed(inner) => {
                assert!(inner.downcast_ref::<Pkcs11Error>().is_some());
            }
            other => panic!("{other:?}"),
        }
        // Displayed once: the message is the PKCS#11 error's, and the
        // source chain does not repeat it.
        assert_eq!(
            k.to_string(),
            "PKCS#11 wrap with key \"k\" on token \"t\" failed mid-operation: x"
        );
        assert!(std::error::Error::source(&k).is_none());
    }
}
