//! Key-encryption keys: what wraps a keyset at rest.
//!
//! A KEK encrypts the serialized keyset into Tink's `EncryptedKeyset`. It is
//! async, so that remote KMSes (AWS KMS, GCP KMS, Vault transit) fit as well
//! as a local master keyset or an HSM reached through PKCS#11. Each KEK
//! lives in its own crate; the `encstore` crate opens one from a URI
//! without any global registry.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::aead::{Aead, AeadError};
use crate::error::BoxError;

/// Why a KEK operation failed.
///
/// Every variant but [`Authentication`](KekError::Authentication) carries
/// the KEK crate's own typed error (`encstore_pkcs11::Pkcs11Error`,
/// `encstore_vault::VaultError`, `encstore_awskms::AwsKmsError`,
/// `encstore_core::AeadError`, ...) and is displayed *transparently*: the
/// message is that error's message, one line, naming what to fix, never a
/// PIN, a token, a key or plaintext. Because the display is transparent,
/// printing the whole source chain (`{:#}` in anyhow) never repeats it:
/// [`source`](std::error::Error::source) continues with the inner error's
/// own source, if any.
///
/// To get at the typed error, use [`KekError::downcast_ref`] (or
/// [`KekError::inner`]):
///
/// ```
/// use encstore_core::{AeadError, KekError};
///
/// let e = KekError::failed(AeadError::Randomness);
/// assert_eq!(e.to_string(), "the system random number generator failed");
/// assert!(matches!(e.downcast_ref::<AeadError>(), Some(AeadError::Randomness)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KekError {
    /// The wrapped keyset did not authenticate under this KEK and associated
    /// data (wrong KEK, wrong associated data, or tampering).
    #[error(
        "the keyset could not be unwrapped: wrong master key or keyset associated data, or the file was tampered with"
    )]
    Authentication,
    /// The KEK's URI is malformed or names an unsupported scheme. The inner
    /// error (e.g. `Pkcs11Error::InvalidUri`) names the scheme and the
    /// problem.
    #[error(transparent)]
    InvalidUri(BoxError),
    /// The KEK could not be reached or configured (module missing, token
    /// not found, wrong PIN, server unreachable, token refused, key not
    /// found, ...). The inner error says which.
    #[error(transparent)]
    Unavailable(BoxError),
    /// The KEK failed in the middle of an operation (the HSM session or
    /// key vanished, the server failed, ...). The inner error says how.
    #[error(transparent)]
    Failed(BoxError),
}

impl KekError {
    /// [`KekError::InvalidUri`] with `error` as its typed inner error.
    pub fn invalid_uri(error: impl Into<BoxError>) -> Self {
        KekError::InvalidUri(error.into())
    }

    /// [`KekError::Unavailable`] with `error` as its typed inner error.
    pub fn unavailable(error: impl Into<BoxError>) -> Self {
        KekError::Unavailable(error.into())
    }

    /// [`KekError::Failed`] with `error` as its typed inner error.
    pub fn failed(error: impl Into<BoxError>) -> Self {
        KekError::Failed(error.into())
    }

    /// The KEK crate's typed error this one carries (`None` for
    /// [`KekError::Authentication`]).
    pub fn inner(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            KekError::Authentication => None,
            KekError::InvalidUri(e) | KekError::Unavailable(e) | KekError::Failed(e) => {
                Some(e.as_ref())
            }
        }
    }

    /// The inner error as a `T` (e.g. `encstore_pkcs11::Pkcs11Error`), if
    /// it is one.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.inner()?.downcast_ref::<T>()
    }
}

/// Which master key, and which version of it, wrapped a ciphertext: what
/// [`Kek::describe_wrapped`] reads from the wrapped bytes alone.
///
/// Censuses count wrapped keysets and envelope DEKs by it, so that an
/// operator can tell when no data is left under an old master-key version
/// (and raise Vault's `min_decryption_version` safely).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct MasterKeyVersion {
    /// The master key's identity: its URI (`hcvault://HOST/MOUNT/keys/NAME`,
    /// `aws-kms://arn:…`), never a secret.
    pub key: String,
    /// The master-key version the ciphertext names (Vault transit's `N` of
    /// `vault:vN:`), or `None` when the KEK's ciphertexts carry none that
    /// can be read reliably (AWS KMS: its ciphertext blob format is not
    /// documented; key rotation there keeps old key material and needs no
    /// rewrap).
    pub version: Option<u32>,
}

impl MasterKeyVersion {
    /// A master key's identity and, if known, the version.
    pub fn new(key: impl Into<String>, version: Option<u32>) -> MasterKeyVersion {
        MasterKeyVersion {
            key: key.into(),
            version,
        }
    }
}

impl fmt::Display for MasterKeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{} version {v}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

/// A key-encryption key.
#[async_trait]
pub trait Kek: Send + Sync + fmt::Debug {
    /// Encrypts `plaintext` (a serialized keyset), binding `associated_data`.
    async fn wrap(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError>;

    /// Decrypts what [`Kek::wrap`] produced.
    async fn unwrap(&self, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError>;

    /// Which master key and version made `wrapped`, read from its bytes
    /// alone (no I/O, no secret). `None` (the default) when the KEK cannot
    /// tell, or `wrapped` is not one of its ciphertexts.
    fn describe_wrapped(&self, wrapped: &[u8]) -> Option<MasterKeyVersion> {
        let _ = wrapped;
        None
    }

    /// Re-wraps `wrapped` (made by [`Kek::wrap`] with `associated_data`)
    /// under the master key's newest version, for the same
    /// `associated_data`.
    ///
    /// The default unwraps and wraps again (the plaintext is wiped after
    /// use). A KEK with a server-side re-encryption (Vault transit's
    /// `rewrap`) overrides it so that the plaintext never leaves the
    /// server.
    ///
    /// # Errors
    /// As [`Kek::unwrap`] and [`Kek::wrap`].
    async fn rewrap(&self, wrapped: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        let plaintext = zeroize::Zeroizing::new(self.unwrap(wrapped, associated_data).await?);
        self.wrap(&plaintext, associated_data).await
    }
}

/// A KEK made from any [`Aead`], such as a master keyset loaded from a file.
#[derive(Debug, Clone)]
pub struct AeadKek(pub Arc<dyn Aead>);

#[async_trait]
impl Kek for AeadKek {
    async fn wrap(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        self.0
            .encrypt(plaintext, associated_data)
            .map_err(KekError::failed)
    }

    async fn unwrap(&self, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        self.0
            .decrypt(ciphertext, associated_data)
            .map_err(|e| match e {
                AeadError::Authentication | AeadError::UnknownKeyId { .. } => {
                    KekError::Authentication
                }
                other => KekError::failed(other),
            })
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// An inner error with a source of its own, like a KEK crate's error
    /// that keeps an I/O error.
    #[derive(Debug, thiserror::Error)]
    #[error("outer detail")]
    struct Outer(#[source] std::io::Error);

    /// Every message in the chain, as anyhow's `{:#}` joins them.
    fn chain(e: &KekError) -> String {
        let mut parts = vec![e.to_string()];
        let mut cur = e.source();
        while let Some(s) = cur {
            parts.push(s.to_string());
            cur = s.source();
        }
        parts.join(": ")
    }

    #[test]
    fn display_is_transparent_and_the_chain_has_no_repeats() {
        let e = KekError::unavailable(Outer(std::io::Error::other("io detail")));
        assert_eq!(e.to_string(), "outer detail");
        assert_eq!(chain(&e), "outer detail: io detail");
        let e = KekError::failed(AeadError::Randomness);
        assert_eq!(chain(&e), "the system random number generator failed");
        let e = KekError::invalid_uri("bad URI");
        assert_eq!(chain(&e), "bad URI");
        assert_eq!(
            chain(&KekError::Authentication),
            KekError::Authentication.to_string()
        );
    }

    #[test]
    fn the_typed_inner_error_is_reachable() {
        let e = KekError::unavailable(Outer(std::io::Error::other("x")));
        assert!(e.downcast_ref::<Outer>().is_some());
        assert!(e.downcast_ref::<AeadError>().is_none());
        assert!(KekError::Authentication.inner().is_none());
        let e = KekError::failed(AeadError::TooLarge);
        assert!(matches!(
            e.downcast_ref::<AeadError>(),
            Some(AeadError::TooLarge)
        ));
    }

    /// An AEAD that fails every call with the error `0` makes.
    #[derive(Debug)]
    struct Failing(fn() -> AeadError);

    impl Aead for Failing {
        fn encrypt(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, AeadError> {
            Err((self.0)())
        }
        fn decrypt(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, AeadError> {
            Err((self.0)())
        }
    }

    /// A toy AEAD for the trait's default methods: the "ciphertext" is a
    /// generation byte, the plaintext and the associated data; each
    /// encryption bumps the generation (like a KMS's newest key version).
    #[derive(Debug, Default)]
    struct Generations(std::sync::atomic::AtomicU8);

    impl Aead for Generations {
        fn encrypt(&self, pt: &[u8], ad: &[u8]) -> Result<Vec<u8>, AeadError> {
            let g = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Ok([&[g], pt, ad].concat())
        }
        fn decrypt(&self, ct: &[u8], ad: &[u8]) -> Result<Vec<u8>, AeadError> {
            let body = ct.get(1..).ok_or(AeadError::Authentication)?;
            let pt = body.strip_suffix(ad).ok_or(AeadError::Authentication)?;
            Ok(pt.to_vec())
        }
    }

    #[tokio::test]
    async fn default_rewrap_unwraps_then_wraps_with_the_same_associated_data() {
        let kek = AeadKek(Arc::new(Generations::default()));
        let wrapped = kek.wrap(b"dek", b"ad").await.unwrap();
        assert_eq!(wrapped[0], 1);
        let re = kek.rewrap(&wrapped, b"ad").await.unwrap();
        assert_eq!(re, [&[2u8][..], b"dek", b"ad"].concat());
        assert_eq!(kek.unwrap(&re, b"ad").await.unwrap(), b"dek");
        // The unwrap checks the associated data first: nothing is wrapped.
        assert!(matches!(
            kek.rewrap(&wrapped, b"other").await,
            Err(KekError::Authentication)
        ));
        assert_eq!(kek.wrap(b"x", b"").await.unwrap()[0], 3);
        // No description by default.
        assert_eq!(kek.describe_wrapped(&re), None);
    }

    #[test]
    fn master_key_versions_display_and_order() {
        let v1 = MasterKeyVersion::new("hcvault://h/transit/keys/k", Some(1));
        let v2 = MasterKeyVersion::new("hcvault://h/transit/keys/k", Some(2));
        assert_eq!(v1.to_string(), "hcvault://h/transit/keys/k version 1");
        assert!(v1 < v2);
        let aws = MasterKeyVersion::new("aws-kms://arn:aws:kms:r:1:key/k", None);
        assert_eq!(aws.to_string(), "aws-kms://arn:aws:kms:r:1:key/k");
    }

    #[tokio::test]
    async fn aead_kek_keeps_the_aead_error() {
        let kek = AeadKek(Arc::new(Failing(|| AeadError::Randomness)));
        let e = kek.wrap(b"k", b"").await.unwrap_err();
        assert!(matches!(&e, KekError::Failed(_)), "{e:?}");
        assert!(matches!(
            e.downcast_ref::<AeadError>(),
            Some(AeadError::Randomness)
        ));
        let kek = AeadKek(Arc::new(Failing(|| AeadError::UnknownKeyId { key_id: 7 })));
        assert!(matches!(
            kek.unwrap(b"c", b"").await,
            Err(KekError::Authentication)
        ));
        let kek = AeadKek(Arc::new(Failing(|| AeadError::TooLarge)));
        let e = kek.unwrap(b"c", b"").await.unwrap_err();
        assert_eq!(e.to_string(), "input too large for this primitive");
        assert!(e.downcast_ref::<AeadError>().is_some());
    }
}
