//! [`VaultKek`]: wrapping and unwrapping through the transit engine.

use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use encstore_core::{Kek, KekError, MasterKeyVersion};
use reqwest::{Method, StatusCode};
use zeroize::Zeroizing;

use crate::client::{ApiError, Client};
use crate::config::VaultConfig;
use crate::error::VaultError;
use crate::transit::{
    CiphertextData, KeyData, KeyInfo, MASTER_KEY_TYPE, PlaintextData, ciphertext_key_version,
    ignored_associated_data, parse_reply,
};
use crate::uri::VaultUri;

/// A transit key used as a key-encryption key.
///
/// The wrapped form is exactly what Tink's Vault AEAD produces and reads:
/// the UTF-8 bytes of transit's ciphertext string, `vault:vN:BASE64`.
/// Empty associated data sends none (Tink sends an empty one, which
/// transit treats the same for a non-derived key). Non-empty associated
/// data is sent as transit's `associated_data`, which AEAD key types bind
/// (Tink Go's `hcvault.NewAEAD` does the same); a key or server that cannot
/// bind it is refused with [`VaultError::AssociatedDataUnsupported`], never
/// ignored.
///
/// `Debug` shows the URI and namespace, never the token.
pub struct VaultKek {
    uri: VaultUri,
    client: Client,
    namespace: Option<String>,
}

impl VaultKek {
    /// Opens the transit key named by `uri`, with the token, CA, namespace
    /// and timeouts from the environment ([`VaultConfig::from_env`]).
    ///
    /// It reads the key's configuration (`GET MOUNT/keys/NAME`, which needs
    /// `read` on that path) to check that the key exists and can wrap
    /// keysets: transit would otherwise create a missing key on the first
    /// encryption.
    ///
    /// # Errors
    /// Every [`VaultError`] about the URI, the environment, the network,
    /// TLS, the token and the key.
    pub async fn open(uri: &str) -> Result<VaultKek, VaultError> {
        let config = VaultConfig::from_env()?;
        Self::open_with(uri, config).await
    }

    /// As [`VaultKek::open`], with an explicit configuration.
    ///
    /// # Errors
    /// As [`VaultKek::open`].
    pub async fn open_with(uri: &str, config: VaultConfig) -> Result<VaultKek, VaultError> {
        let kek = Self::connect(uri, &config)?;
        let info = kek.key_info().await?;
        kek.check_key(&info)?;
        tracing::debug!(uri = %kek.uri, version = info.latest_version, "opened Vault transit key");
        Ok(kek)
    }

    /// Creates the transit key named by `uri` (type `aes256-gcm96`, not
    /// exportable, no plaintext backup) and opens it, with the configuration
    /// from the environment. Refuses if a key of that name exists.
    ///
    /// # Errors
    /// [`VaultError::KeyExists`], and every error of [`VaultKek::open`].
    pub async fn create_master_key(uri: &str) -> Result<VaultKek, VaultError> {
        let config = VaultConfig::from_env()?;
        Self::create_master_key_with(uri, config).await
    }

    /// As [`VaultKek::create_master_key`], with an explicit configuration.
    ///
    /// # Errors
    /// As [`VaultKek::create_master_key`].
    pub async fn create_master_key_with(
        uri: &str,
        config: VaultConfig,
    ) -> Result<VaultKek, VaultError> {
        let kek = Self::connect(uri, &config)?;
        let exists = |kek: &VaultKek| VaultError::KeyExists {
            address: kek.client.address.clone(),
            mount: kek.uri.mount().to_owned(),
            key: kek.uri.key().to_owned(),
        };
        match kek.key_info().await {
            Ok(_) => return Err(exists(&kek)),
            Err(VaultError::KeyNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let path = kek.uri.api_path("keys");
        let body = serde_json::json!({
            "type": MASTER_KEY_TYPE,
            "exportable": false,
            "allow_plaintext_backup": false,
        });
        let body = Zeroizing::new(body.to_string().into_bytes());
        match kek.client.call(Method::POST, &path, Some(body)).await? {
            Ok(_) => {}
            Err(api) => {
                return Err(kek
                    .common_error(api, &format!("create key {path}"), &path, "create")
                    .await);
            }
        }
        let info = kek.key_info().await?;
        // Another client may have created the key between the check and the
        // write (transit's create is an upsert): refuse what we did not make.
        if info.key_type != MASTER_KEY_TYPE || info.exportable || info.latest_version != 1 {
            return Err(exists(&kek));
        }
        kek.check_key(&info)?;
        tracing::info!(uri = %kek.uri, "created Vault transit key");
        Ok(kek)
    }

    fn connect(uri: &str, config: &VaultConfig) -> Result<VaultKek, VaultError> {
        let uri = VaultUri::parse(uri)?;
        let client = Client::new(uri.address(), config)?;
        Ok(VaultKek {
            uri,
            client,
            namespace: config.namespace.clone(),
        })
    }

    fn check_key(&self, info: &KeyInfo) -> Result<(), VaultError> {
        let unsuitable = |reason: String| VaultError::KeyUnsuitable {
            key: self.uri.key().to_owned(),
            reason,
        };
        if info.derived {
            return Err(unsuitable(
                "it is a derived key (derived=true); Tink and encstore send no derivation context, so use a key with derived=false".to_owned(),
            ));
        }
        if !info.supports_encryption || !info.supports_decryption {
            return Err(unsuitable(format!(
                "its type {} cannot both encrypt and decrypt",
                info.key_type
            )));
        }
        Ok(())
    }

    /// The parsed URI.
    pub fn uri(&self) -> &VaultUri {
        &self.uri
    }

    /// The key's configuration, read now (`GET MOUNT/keys/NAME`).
    ///
    /// # Errors
    /// [`VaultError::KeyNotFound`], [`VaultError::MountNotFound`], and the
    /// network, TLS, token and server errors.
    pub async fn key_info(&self) -> Result<KeyInfo, VaultError> {
        let path = self.uri.api_path("keys");
        let operation = format!("read key {path}");
        match self.client.call(Method::GET, &path, None).await? {
            Ok(body) => {
                let (d, _) = parse_reply::<KeyData>(&self.client, &operation, &body)?;
                Ok(KeyInfo {
                    key_type: d.key_type,
                    latest_version: d.latest_version,
                    min_decryption_version: d.min_decryption_version,
                    min_encryption_version: d.min_encryption_version,
                    derived: d.derived,
                    exportable: d.exportable,
                    supports_encryption: d.supports_encryption,
                    supports_decryption: d.supports_decryption,
                })
            }
            Err(api) if api.status == StatusCode::NOT_FOUND && !api.says("no handler") => {
                Err(self.key_not_found())
            }
            Err(api) => Err(self.common_error(api, &operation, &path, "read").await),
        }
    }

    fn key_not_found(&self) -> VaultError {
        VaultError::KeyNotFound {
            address: self.client.address.clone(),
            mount: self.uri.mount().to_owned(),
            key: self.uri.key().to_owned(),
        }
    }

    fn ad_unsupported(&self, reason: impl Into<String>) -> VaultError {
        VaultError::AssociatedDataUnsupported {
            key: self.uri.key().to_owned(),
            reason: reason.into(),
        }
    }

    /// Errors every endpoint shares: a refused token or path, a sealed
    /// server, a missing mount, anything else the server said.
    async fn common_error(
        &self,
        api: ApiError,
        operation: &str,
        path: &str,
        capability: &'static str,
    ) -> VaultError {
        let address = self.client.address.clone();
        if api.status == StatusCode::FORBIDDEN {
            return match self.client.token_valid().await {
                Ok(false) => VaultError::TokenRejected { address },
                Ok(true) => VaultError::PermissionDenied {
                    address,
                    path: path.to_owned(),
                    capability,
                },
                Err(e) => e,
            };
        }
        if api.status == StatusCode::SERVICE_UNAVAILABLE && api.says("sealed") {
            return VaultError::Sealed { address };
        }
        if api.status == StatusCode::NOT_FOUND && api.says("no handler for route") {
            return VaultError::MountNotFound {
                address,
                mount: self.uri.mount().to_owned(),
            };
        }
        if api.says("encryption key not found") {
            return self.key_not_found();
        }
        if api.says("missing 'context'") || api.says("key derivation") {
            return VaultError::KeyUnsuitable {
                key: self.uri.key().to_owned(),
                reason: format!("it is a derived key ({})", api.message()),
            };
        }
        if api.says("associated_data") || api.says("non-AEAD") {
            return self.ad_unsupported(api.message());
        }
        VaultError::Server {
            address,
            operation: operation.to_owned(),
            status: api.status.as_u16(),
            message: api.message(),
        }
    }

    /// Errors of endpoints that read a ciphertext (decrypt, rewrap).
    async fn ciphertext_error(
        &self,
        api: ApiError,
        operation: &str,
        path: &str,
        version: u32,
    ) -> VaultError {
        if api.status == StatusCode::BAD_REQUEST {
            if api.says("too old") || api.says("disallowed by policy") {
                let min = self.key_info().await.ok().map(|i| i.min_decryption_version);
                return VaultError::KeyVersionTooOld {
                    key: self.uri.key().to_owned(),
                    version,
                    min_decryption_version: min,
                };
            }
            if api.says("message authentication failed") || api.says("invalid ciphertext") {
                return VaultError::Authentication;
            }
        }
        self.common_error(api, operation, path, "update").await
    }

    /// Encrypts `plaintext` under the newest key version, binding
    /// `associated_data` (see the type's documentation).
    ///
    /// Before encrypting it checks that the key still exists (transit's
    /// encrypt would create a missing one).
    ///
    /// # Errors
    /// [`VaultError::AssociatedDataUnsupported`] when associated data is
    /// given and cannot be bound, and the key, network and server errors.
    pub async fn encrypt(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let info = self.key_info().await?;
        self.check_key(&info)?;
        if !associated_data.is_empty() && info.key_type.starts_with("rsa-") {
            return Err(self.ad_unsupported(format!("its type {} is not an AEAD", info.key_type)));
        }
        let path = self.uri.api_path("encrypt");
        let operation = format!("encrypt with {path}");
        let pt64 = Zeroizing::new(B64.encode(plaintext));
        let mut body = serde_json::Map::new();
        body.insert("plaintext".into(), pt64.as_str().into());
        if !associated_data.is_empty() {
            body.insert("associated_data".into(), B64.encode(associated_data).into());
        }
        let body = serde_json::Value::Object(body);
        let body = Zeroizing::new(body.to_string().into_bytes());
        let reply = match self.client.call(Method::POST, &path, Some(body)).await? {
            Ok(reply) => reply,
            Err(api) => return Err(self.common_error(api, &operation, &path, "update").await),
        };
        let (data, warnings) = parse_reply::<CiphertextData>(&self.client, &operation, &reply)?;
        if !associated_data.is_empty() && ignored_associated_data(&warnings) {
            return Err(self.ad_unsupported(
                "the server ignored the associated_data parameter (a Vault without transit associated data)",
            ));
        }
        let ct = data.ciphertext.into_bytes();
        ciphertext_key_version(&ct).map_err(|_| VaultError::Protocol {
            address: self.client.address.clone(),
            operation,
            reason: "the ciphertext is not vault:vN:BASE64".to_owned(),
        })?;
        Ok(ct)
    }

    /// Decrypts a transit ciphertext, checking `associated_data`.
    ///
    /// # Errors
    /// [`VaultError::NotTransitCiphertext`] for data that is not
    /// `vault:vN:BASE64`, [`VaultError::Authentication`] when the server
    /// cannot authenticate it, [`VaultError::KeyVersionTooOld`], and the
    /// key, network and server errors.
    pub async fn decrypt(
        &self,
        ciphertext: &[u8],
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let version = ciphertext_key_version(ciphertext)?;
        let ct = std::str::from_utf8(ciphertext).map_err(|_| VaultError::NotTransitCiphertext)?;
        let path = self.uri.api_path("decrypt");
        let operation = format!("decrypt with {path}");
        let mut body = serde_json::Map::new();
        body.insert("ciphertext".into(), ct.into());
        if !associated_data.is_empty() {
            body.insert("associated_data".into(), B64.encode(associated_data).into());
        }
        let body = Zeroizing::new(serde_json::Value::Object(body).to_string().into_bytes());
        let reply = match self.client.call(Method::POST, &path, Some(body)).await? {
            Ok(reply) => reply,
            Err(api) => return Err(self.ciphertext_error(api, &operation, &path, version).await),
        };
        let (data, warnings) = parse_reply::<PlaintextData>(&self.client, &operation, &reply)?;
        let pt64 = Zeroizing::new(data.plaintext);
        if !associated_data.is_empty() && ignored_associated_data(&warnings) {
            // The server decrypted without checking the associated data:
            // the plaintext is not authenticated as asked, so it is dropped.
            return Err(self.ad_unsupported(
                "the server ignored the associated_data parameter (a Vault without transit associated data)",
            ));
        }
        let pt = B64
            .decode(pt64.as_bytes())
            .map_err(|_| VaultError::Protocol {
                address: self.client.address.clone(),
                operation,
                reason: "the plaintext is not base64".to_owned(),
            })?;
        Ok(Zeroizing::new(pt))
    }

    /// Re-encrypts a transit ciphertext under the key's newest version.
    ///
    /// With empty associated data this is transit's `rewrap` endpoint: the
    /// plaintext never leaves the server. Transit's rewrap takes no
    /// associated data, so with non-empty associated data it decrypts and
    /// re-encrypts instead (both binding the associated data; the plaintext
    /// passes through this process in zeroized memory).
    ///
    /// # Errors
    /// As [`VaultKek::decrypt`] and [`VaultKek::encrypt`].
    pub async fn rewrap_ciphertext(
        &self,
        ciphertext: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let version = ciphertext_key_version(ciphertext)?;
        if !associated_data.is_empty() {
            let pt = self.decrypt(ciphertext, associated_data).await?;
            return self.encrypt(&pt, associated_data).await;
        }
        let ct = std::str::from_utf8(ciphertext).map_err(|_| VaultError::NotTransitCiphertext)?;
        let path = self.uri.api_path("rewrap");
        let operation = format!("rewrap with {path}");
        let body = Zeroizing::new(
            serde_json::json!({ "ciphertext": ct })
                .to_string()
                .into_bytes(),
        );
        let reply = match self.client.call(Method::POST, &path, Some(body)).await? {
            Ok(reply) => reply,
            Err(api) => return Err(self.ciphertext_error(api, &operation, &path, version).await),
        };
        let (data, _) = parse_reply::<CiphertextData>(&self.client, &operation, &reply)?;
        let out = data.ciphertext.into_bytes();
        ciphertext_key_version(&out).map_err(|_| VaultError::Protocol {
            address: self.client.address.clone(),
            operation,
            reason: "the ciphertext is not vault:vN:BASE64".to_owned(),
        })?;
        Ok(out)
    }
}

impl fmt::Debug for VaultKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKek")
            .field("uri", &self.uri.to_string())
            .field("namespace", &self.namespace)
            .finish()
    }
}

#[async_trait]
impl Kek for VaultKek {
    async fn wrap(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        Ok(self.encrypt(plaintext, associated_data).await?)
    }

    async fn unwrap(&self, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        let pt = self.decrypt(ciphertext, associated_data).await?;
        Ok(pt.to_vec())
    }

    /// This key's URI and the `N` of a `vault:vN:…` ciphertext; `None` for
    /// bytes that are not a transit ciphertext. Which transit key made a
    /// ciphertext is not in its bytes: the URI is this KEK's.
    fn describe_wrapped(&self, wrapped: &[u8]) -> Option<MasterKeyVersion> {
        let version = ciphertext_key_version(wrapped).ok()?;
        Some(MasterKeyVersion::new(self.uri.to_string(), Some(version)))
    }

    /// [`VaultKek::rewrap_ciphertext`]: with empty associated data (what
    /// Tink's envelope AEAD and keyset wrapping use), transit's `rewrap`
    /// endpoint, so the plaintext never leaves the server.
    async fn rewrap(&self, wrapped: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        Ok(self.rewrap_ciphertext(wrapped, associated_data).await?)
    }
}

/// Creates the transit key named by `uri` (`aes256-gcm96`, not exportable)
/// with the configuration from the environment, refusing an existing key;
/// what `encstore create-master-key --master-key-uri hcvault://…` does.
///
/// # Errors
/// As [`VaultKek::create_master_key`].
pub async fn create_master_key(uri: &str) -> Result<VaultKek, VaultError> {
    VaultKek::create_master_key(uri).await
}
