//! [`open_kek`] and [`create_master_key`]: a [`MasterKeyRef`] becomes an
//! `Arc<dyn Kek>`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use encstore_core::{AeadKek, Kek, KekError};
use encstore_tink::KeysetError;
use encstore_tink::keyset::{Keyset, KeysetFormat, detect_format};
use zeroize::Zeroizing;

use super::master_key::{KekScheme, MasterKeyRef, MasterKeyUri, MasterKeysetFormat};

/// Settings for the KEKs that are configured in code rather than from the
/// environment. The default reads everything from the environment, as the
/// `encstore` tool does: `VAULT_TOKEN`/`VAULT_CACERT`/... for Vault
/// ([`encstore_vault::VaultConfig::from_env`]), the AWS SDK's standard
/// chain for AWS KMS, and `ENCSTORE_PKCS11_MODULE`/`ENCSTORE_PKCS11_PIN_FILE`
/// for PKCS#11 when the URI does not say.
///
/// `Debug` shows no token or secret key.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct KekOptions {
    /// Vault / OpenBao: the token, CA, namespace and timeouts, instead of
    /// the environment.
    #[cfg(feature = "vault")]
    vault: Option<encstore_vault::VaultConfig>,
    /// AWS KMS: endpoint, credentials and timeouts, instead of the SDK's
    /// default chain.
    aws_kms: Option<encstore_awskms::AwsKmsConfig>,
}

impl KekOptions {
    /// Everything from the environment (the default).
    pub fn new() -> KekOptions {
        KekOptions::default()
    }

    /// Uses `config` for `hcvault://` URIs instead of the environment.
    #[cfg(feature = "vault")]
    pub fn vault(mut self, config: encstore_vault::VaultConfig) -> KekOptions {
        self.vault = Some(config);
        self
    }

    /// Uses `config` for `aws-kms://` URIs instead of the SDK's default
    /// chain.
    pub fn aws_kms(mut self, config: encstore_awskms::AwsKmsConfig) -> KekOptions {
        self.aws_kms = Some(config);
        self
    }
}

/// Why a master key could not be opened or created.
///
/// Messages are one line, complete, and secret-free; see the
/// [module documentation](super#errors) for how causes are kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenKekError {
    /// The KEK crate refused: module, token, PIN or key (PKCS#11); server,
    /// TLS, token, mount or key (Vault); credentials, permission or key
    /// (AWS KMS); an existing key for `create_master_key`. The
    /// [`KekError`] holds the crate's typed error
    /// ([`KekError::downcast_ref`]) and shows its message.
    #[error(transparent)]
    Kek(#[from] KekError),
    /// The scheme is known but this build was compiled without the cargo
    /// feature that opens it.
    #[error(
        "{scheme} master keys are not supported by this build: enable the `{feature}` cargo feature of the encstore crate",
        feature = .scheme.cargo_feature()
    )]
    NotCompiled {
        /// The scheme.
        scheme: KekScheme,
    },
    /// `create_master_key` for a scheme whose keys encstore does not
    /// create.
    #[error("encstore does not create {scheme} master keys: {hint}")]
    CreateUnsupported {
        /// The scheme.
        scheme: KekScheme,
        /// How to create one instead.
        hint: &'static str,
    },
    /// `create_master_key` was given a master keyset file.
    #[error(
        "master keyset {}: create a master keyset with encstore create-keyset (a cleartext AEAD keyset), not create-master-key",
        .path.display()
    )]
    CreateKeysetFile {
        /// The file.
        path: PathBuf,
    },
    /// The master keyset file could not be read.
    #[error("cannot read master keyset {}: {error}", .path.display())]
    ReadKeyset {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// The master keyset file is itself an encrypted keyset.
    #[error(
        "master keyset {} is itself encrypted; a master keyset must be a cleartext AEAD keyset",
        .path.display()
    )]
    EncryptedKeyset {
        /// The file.
        path: PathBuf,
    },
    /// The master keyset file is not a valid AEAD keyset in the format it
    /// was read in (given, or detected from its content).
    #[error(
        "master keyset {} is not a valid AEAD keyset (read as {format}): {error}",
        .path.display()
    )]
    InvalidKeyset {
        /// The file.
        path: PathBuf,
        /// The format it was read in.
        format: MasterKeysetFormat,
        /// What was wrong.
        error: KeysetError,
    },
    /// The master keyset is valid but cannot encrypt (no usable primary).
    #[error("master keyset {} cannot encrypt: {error}", .path.display())]
    KeysetCannotEncrypt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        error: KeysetError,
    },
    /// The blocking task that opened the key was cancelled (the runtime
    /// is shutting down).
    #[error("opening the master key was cancelled: the async runtime is shutting down")]
    Cancelled,
}

/// Opens the master key `master` refers to, with everything configured
/// from the environment ([`KekOptions::default`]).
///
/// - `pkcs11:`: loads the module, finds the token, logs in, finds the key
///   ([`encstore_pkcs11::Pkcs11Kek::open`]), on tokio's blocking pool.
/// - `hcvault://`: checks that the transit key exists and can wrap keysets
///   ([`encstore_vault::VaultKek::open`]).
/// - `aws-kms://`: builds the KMS client ([`encstore_awskms::AwsKmsKek::open`]);
///   without the `aws-kms` feature, [`OpenKekError::NotCompiled`].
/// - a master keyset file: reads it (in its given format, or detected),
///   refuses an encrypted keyset, and wraps with its AEAD
///   ([`AeadKek`]).
///
/// Must be called within a tokio runtime.
///
/// # Errors
/// [`OpenKekError`]: [`Kek`](OpenKekError::Kek) with the KEK crate's typed
/// error, [`NotCompiled`](OpenKekError::NotCompiled), or one of the master
/// keyset file errors.
pub async fn open_kek(master: &MasterKeyRef) -> Result<Arc<dyn Kek>, OpenKekError> {
    open_kek_with(master, &KekOptions::default()).await
}

/// [`open_kek`] with Vault or AWS KMS configured in code.
///
/// # Errors
/// As [`open_kek`].
pub async fn open_kek_with(
    master: &MasterKeyRef,
    options: &KekOptions,
) -> Result<Arc<dyn Kek>, OpenKekError> {
    match master {
        MasterKeyRef::Uri(uri) => open_uri(uri, options, false).await,
        MasterKeyRef::KeysetFile { path, format } => {
            let (path, format) = (path.clone(), *format);
            blocking(move || open_keyset_file(&path, format)).await?
        }
    }
}

/// Creates a new master key where `uri` says, and opens it.
///
/// - `pkcs11:`: a sensitive, non-extractable AES-256 key labelled with the
///   URI's `object=` ([`encstore_pkcs11::Pkcs11Kek::create_master_key`]);
///   refuses a label (or id) already on the token.
/// - `hcvault://`: a transit key of type `aes256-gcm96`, not exportable
///   ([`encstore_vault::create_master_key`]); refuses an existing key.
/// - `aws-kms://`: [`OpenKekError::CreateUnsupported`]; create the key with
///   AWS tools.
///
/// # Errors
/// As [`open_kek`], plus [`OpenKekError::CreateUnsupported`]; an existing
/// key is an [`OpenKekError::Kek`] holding `Pkcs11Error::KeyExists` or
/// `VaultError::KeyExists`.
pub async fn create_master_key(uri: &MasterKeyUri) -> Result<Arc<dyn Kek>, OpenKekError> {
    create_master_key_with(uri, &KekOptions::default()).await
}

/// [`create_master_key`] with Vault configured in code.
///
/// # Errors
/// As [`create_master_key`].
pub async fn create_master_key_with(
    uri: &MasterKeyUri,
    options: &KekOptions,
) -> Result<Arc<dyn Kek>, OpenKekError> {
    open_uri(uri, options, true).await
}

impl MasterKeyRef {
    /// [`create_master_key`] for a URI; a master keyset file is refused
    /// with [`OpenKekError::CreateKeysetFile`].
    ///
    /// # Errors
    /// As [`create_master_key`].
    pub async fn create(&self, options: &KekOptions) -> Result<Arc<dyn Kek>, OpenKekError> {
        match self {
            MasterKeyRef::Uri(uri) => create_master_key_with(uri, options).await,
            MasterKeyRef::KeysetFile { path, .. } => {
                Err(OpenKekError::CreateKeysetFile { path: path.clone() })
            }
        }
    }
}

async fn open_uri(
    uri: &MasterKeyUri,
    options: &KekOptions,
    create: bool,
) -> Result<Arc<dyn Kek>, OpenKekError> {
    let scheme = uri.scheme();
    if !scheme.is_compiled_in() {
        return Err(OpenKekError::NotCompiled { scheme });
    }
    match scheme {
        KekScheme::Pkcs11 => pkcs11(uri.as_str(), create).await,
        KekScheme::HcVault => vault(uri.as_str(), options, create).await,
        KekScheme::AwsKms if create => Err(OpenKekError::CreateUnsupported {
            scheme,
            hint: "create a symmetric encryption key with AWS tools (aws kms create-key --key-spec SYMMETRIC_DEFAULT --key-usage ENCRYPT_DECRYPT), then give its key or alias ARN",
        }),
        KekScheme::AwsKms => {
            let config = options.aws_kms.clone().unwrap_or_default();
            let kek = encstore_awskms::AwsKmsKek::open_with(uri.as_str(), config)
                .await
                .map_err(KekError::from)?;
            Ok(Arc::new(kek))
        }
    }
}

#[cfg(feature = "pkcs11")]
async fn pkcs11(uri: &str, create: bool) -> Result<Arc<dyn Kek>, OpenKekError> {
    use encstore_pkcs11::Pkcs11Kek;
    let owned = uri.to_owned();
    let kek = blocking(move || {
        if create {
            Pkcs11Kek::create_master_key(&owned)
        } else {
            Pkcs11Kek::open(&owned)
        }
    })
    .await?
    .map_err(KekError::from)?;
    Ok(Arc::new(kek))
}

#[cfg(not(feature = "pkcs11"))]
async fn pkcs11(_uri: &str, _create: bool) -> Result<Arc<dyn Kek>, OpenKekError> {
    Err(OpenKekError::NotCompiled {
        scheme: KekScheme::Pkcs11,
    })
}

#[cfg(feature = "vault")]
async fn vault(
    uri: &str,
    options: &KekOptions,
    create: bool,
) -> Result<Arc<dyn Kek>, OpenKekError> {
    use encstore_vault::{VaultConfig, VaultKek};
    let config = match &options.vault {
        Some(c) => c.clone(),
        None => VaultConfig::from_env().map_err(KekError::from)?,
    };
    let kek = if create {
        VaultKek::create_master_key_with(uri, config).await
    } else {
        VaultKek::open_with(uri, config).await
    }
    .map_err(KekError::from)?;
    Ok(Arc::new(kek))
}

#[cfg(not(feature = "vault"))]
async fn vault(
    _uri: &str,
    _options: &KekOptions,
    _create: bool,
) -> Result<Arc<dyn Kek>, OpenKekError> {
    Err(OpenKekError::NotCompiled {
        scheme: KekScheme::HcVault,
    })
}

/// Runs blocking work on tokio's blocking pool. A panic in it is resumed
/// here; a cancelled task is [`OpenKekError::Cancelled`].
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OpenKekError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(OpenKekError::Cancelled),
    }
}

/// Reads a master keyset file into an [`AeadKek`]. Blocks.
fn open_keyset_file(
    path: &Path,
    format: Option<MasterKeysetFormat>,
) -> Result<Arc<dyn Kek>, OpenKekError> {
    let bytes = read_secret_file(path).map_err(|error| OpenKekError::ReadKeyset {
        path: path.to_owned(),
        error,
    })?;
    let detected = detect_format(&bytes);
    if detected.is_encrypted() {
        return Err(OpenKekError::EncryptedKeyset {
            path: path.to_owned(),
        });
    }
    let format = format.unwrap_or(if detected == KeysetFormat::Json {
        MasterKeysetFormat::Json
    } else {
        MasterKeysetFormat::Binary
    });
    let keyset = match format {
        MasterKeysetFormat::Json => Keyset::from_json_insecure(&bytes),
        MasterKeysetFormat::Binary => Keyset::from_binary_insecure(&bytes),
    }
    .map_err(|error| OpenKekError::InvalidKeyset {
        path: path.to_owned(),
        format,
        error,
    })?;
    let aead = keyset
        .aead()
        .map_err(|error| OpenKekError::KeysetCannotEncrypt {
            path: path.to_owned(),
            error,
        })?;
    Ok(Arc::new(AeadKek(Arc::new(aead))))
}

/// Reads all of `path` into memory that is wiped when dropped, including
/// every buffer outgrown on the way (a file that grows while read).
fn read_secret_file(path: &Path) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut file = std::fs::File::open(path)?;
    let hint = file.metadata().map_or(0, |m| m.len());
    crate::keyfile::read_secret(&mut file, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_read_whole() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for len in [0usize, 1, 64 * 1024 - 1, 64 * 1024, 200_000] {
            let p = dir.path().join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&p, &data).unwrap_or_else(|e| panic!("{e}"));
            let got = read_secret_file(&p).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&got[..], &data[..], "{len}");
        }
        let e = read_secret_file(&dir.path().join("absent")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn errors_are_send_sync_and_one_line() {
        fn assert<T: Send + Sync + 'static>() {}
        assert::<OpenKekError>();
        let e = OpenKekError::NotCompiled {
            scheme: KekScheme::AwsKms,
        };
        assert_eq!(
            e.to_string(),
            "aws-kms:// master keys are not supported by this build: enable the `aws-kms` cargo feature of the encstore crate"
        );
    }
}
