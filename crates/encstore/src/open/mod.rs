//! Opening what a deployment names by text: master keys (KEKs) from URIs or
//! keyset files, and stores from locations.
//!
//! These are the functions the `encstore` tool uses, so that a server that
//! embeds encstore opens exactly what the tool opens, with the same
//! environment conventions and the same errors:
//!
//! - [`open_kek`] turns a [`MasterKeyRef`] into an `Arc<dyn Kek>`:
//!   `pkcs11:` URIs (an HSM, [`encstore_pkcs11`]; its blocking work runs on
//!   tokio's blocking pool), `hcvault://` URIs (Vault or OpenBao transit,
//!   [`encstore_vault`]), `aws-kms://` URIs (AWS KMS, [`encstore_awskms`])
//!   and master keyset files (a cleartext Tink AEAD keyset, JSON or binary).
//!   [`create_master_key`] creates a new key in an HSM or in transit.
//!   [`open_kek_with`] takes [`KekOptions`] to configure Vault or AWS KMS in
//!   code instead of from the environment.
//! - [`open_store`] turns a [`StoreLocation`] into an `Arc<dyn Storage>`: a
//!   directory (path or `file:///abs/path`), `s3://`, `gs://`, `az://` or
//!   `memory://`, with the lock lease from `ENCSTORE_LOCK_LEASE_SECS` and the
//!   cloud settings from the standard `AWS_*`, `GOOGLE_*` and `AZURE_*`
//!   variables.
//!
//! Which schemes are compiled in depends on the crate's cargo features
//! (`pkcs11`, `vault`, `objstore` on by default, `aws-kms` off); a scheme
//! that is known but not compiled in parses, and opening it fails with a
//! `NotCompiled` error naming the feature.
//!
//! ## Errors
//!
//! Every error here is a typed, `#[non_exhaustive]` enum whose message is
//! one line, complete on its own (`{}` says everything), and never holds a
//! PIN, a token, a secret key or key material; locations and URIs in
//! messages go through [`display_uri`]. A KEK crate's error reaches the top
//! typed: [`OpenKekError::Kek`] holds the [`KekError`](encstore_core::KekError),
//! which holds the `Pkcs11Error`, `VaultError` or `AwsKmsError`
//! ([`KekError::downcast_ref`](encstore_core::KekError::downcast_ref)).
//! Wrapped errors are kept in public fields, and are not repeated as
//! [`source`](std::error::Error::source) when their text is already in the
//! message, so printing the whole chain (`{:#}` in anyhow) never shows a
//! line twice.
//!
//! ```no_run
//! use encstore::open::{MasterKeyRef, OpenStoreOptions, StoreLocation, open_kek, open_store};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let master: MasterKeyRef = "hcvault://vault.internal:8200/transit/keys/kek-2026".parse()?;
//! let kek = open_kek(&master).await?;
//! let location: StoreLocation = "s3://my-bucket/tls/prod".parse()?;
//! let store = open_store(&location, &OpenStoreOptions::default()).await?;
//! # let _ = (kek, store);
//! # Ok(()) }
//! ```

mod kek;
mod master_key;
mod store;

pub use kek::{
    KekOptions, OpenKekError, create_master_key, create_master_key_with, open_kek, open_kek_with,
};
pub use master_key::{
    KekScheme, MasterKeyRef, MasterKeyRefError, MasterKeyUri, MasterKeysetFormat,
};
pub use store::{
    ObjectStoreScheme, OpenStoreError, OpenStoreOptions, StoreLocation, StoreLocationError,
    open_store,
};

/// A URI or location as shown in messages and logs: without its query and
/// fragment (module and PIN-file paths of a `pkcs11:` URI, which are noise
/// in a one-line message, and where a URL may carry a signature or token),
/// and with any user information (`user:password@`) replaced by `***@`.
///
/// ```
/// use encstore::open::display_uri;
///
/// assert_eq!(
///     display_uri("pkcs11:token=t;object=k?module-path=/m.so&pin-source=file:/p"),
///     "pkcs11:token=t;object=k"
/// );
/// assert_eq!(display_uri("s3://AKIA:secret@bucket/p?x=y"), "s3://***@bucket/p");
/// ```
pub fn display_uri(uri: &str) -> String {
    let head = uri.find(['?', '#']).map_or(uri, |end| &uri[..end]);
    if let Some(i) = head.find("://") {
        let start = i + 3;
        let end = head[start..].find('/').map_or(head.len(), |j| start + j);
        if let Some(at) = head[start..end].rfind('@') {
            return format!("{}***@{}", &head[..start], &head[start + at + 1..]);
        }
    }
    head.to_owned()
}

/// The URI scheme `s` starts with, if it has one: RFC 3986 syntax (a
/// letter, then letters, digits, `+`, `-` or `.`), followed by `:`.
fn uri_scheme(s: &str) -> Option<&str> {
    let (head, _) = s.split_once(':')?;
    let mut chars = head.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uri_drops_queries_and_credentials() {
        assert_eq!(
            display_uri("pkcs11:token=t;object=k?pin-value=1234"),
            "pkcs11:token=t;object=k"
        );
        assert_eq!(display_uri("pkcs11:token=t#frag"), "pkcs11:token=t");
        assert_eq!(
            display_uri("hcvault://tok@vault:8200/transit/keys/k"),
            "hcvault://***@vault:8200/transit/keys/k"
        );
        assert_eq!(
            display_uri("az://user:pw@container/prefix?sig=SECRET"),
            "az://***@container/prefix"
        );
        // An `@` in the path is not user information.
        assert_eq!(display_uri("s3://bucket/a@b"), "s3://bucket/a@b");
        assert_eq!(display_uri("/plain/path"), "/plain/path");
        assert_eq!(display_uri(""), "");
    }

    #[test]
    fn uri_schemes_follow_rfc_3986() {
        assert_eq!(uri_scheme("pkcs11:token=t"), Some("pkcs11"));
        assert_eq!(uri_scheme("aws-kms://arn"), Some("aws-kms"));
        assert_eq!(uri_scheme("a+b.c-d:x"), Some("a+b.c-d"));
        assert_eq!(uri_scheme("/abs/path:x"), None);
        assert_eq!(uri_scheme("./rel:x"), None);
        assert_eq!(uri_scheme("1abc:x"), None);
        assert_eq!(uri_scheme(":x"), None);
        assert_eq!(uri_scheme("no-colon"), None);
    }
}
