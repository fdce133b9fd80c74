//! [`VaultKek`]: wrapping and unwrapping through the transit engine.

use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use encstore_core::{Kek, KekError, MasterKeyVersion};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::client::{ApiError, Client};
use crate::config::VaultConfig;
use crate::error::VaultError;
use crate::uri::VaultUri;

/// The transit key type [`VaultKek::create_master_key`] creates.
pub const MASTER_KEY_TYPE: &str = "aes256-gcm96";

/// Transit key types that are AEADs: the server binds `associated_data`.
const AEAD_KEY_TYPES: &[&str] = &[
    "aes128-gcm96",
    "aes256-gcm96",
    "chacha20-poly1305",
    "xchacha20-poly1305",
];

/// What transit says about a key (`GET MOUNT/keys/NAME`), without any key
/// material.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The key type, e.g. `aes256-gcm96`.
    pub key_type: String,
    /// The newest version: what encryption and rewrap use.
    pub latest_version: u32,
    /// Ciphertexts of older versions are refused.
    pub min_decryption_version: u32,
    /// Encryption with older versions is refused (0: any).
    pub min_encryption_version: u32,
    /// Whether the key derives per-context keys (Tink and encstore need
    /// `false`).
    pub derived: bool,
    /// Whether the key may be exported.
    pub exportable: bool,
    /// Whether the type can encrypt.
    pub supports_encryption: bool,
    /// Whether the type can decrypt.
    pub supports_decryption: bool,
}

impl KeyInfo {
    /// Whether the server binds associated data for this key type.
    pub fn binds_associated_data(&self) -> bool {
        AEAD_KEY_TYPES.contains(&self.key_type.as_str())
    }
}

#[derive(Deserialize)]
struct Reply<T> {
    data: Option<T>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct KeyData {
    #[serde(rename = "type")]
    key_type: String,
    #[serde(default)]
    derived: bool,
    #[serde(default)]
    exportable: bool,
    #[serde(default)]
    supports_encryption: bool,
    #[serde(default)]
    supports_decryption: bool,
    latest_version: u32,
    #[serde(default)]
    min_decryption_version: u32,
    #[serde(default)]
    min_encryption_version: u32,
}

#[derive(Deserialize)]
struct CiphertextData {
    ciphertext: String,
}

#[derive(Deserialize)]
struct PlaintextData {
    plaintext: String,
}

/// The key version a transit ciphertext names: `vault:vN:…` → `N`.
///
/// The census by master-key version uses it: a wrapped keyset whose version
/// is below [`KeyInfo::latest_version`] is due for
/// [`VaultKek::rewrap_ciphertext`].
///
/// # Errors
/// [`VaultError::NotTransitCiphertext`] when `ciphertext` is not
/// `vault:vN:BASE64` (N a decimal from 1).
pub fn ciphertext_key_version(ciphertext: &[u8]) -> Result<u32, VaultError> {
    let s = std::str::from_utf8(ciphertext).map_err(|_| VaultError::NotTransitCiphertext)?;
    let rest = s
        .strip_prefix("vault:v")
        .ok_or(VaultError::NotTransitCiphertext)?;
    let (num, body) = rest
        .split_once(':')
        .ok_or(VaultError::NotTransitCiphertext)?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || num.starts_with('0') {
        return Err(VaultError::NotTransitCiphertext);
    }
    let version: u32 = num.parse().map_err(|_| VaultError::NotTransitCiphertext)?;
    let base64ish = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
    if body.is_empty() || !body.bytes().all(base64ish) {
        return Err(VaultError::NotTransitCiphertext);
    }
    Ok(version)
}

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

fn parse_reply<T: for<'de> Deserialize<'de>>(
    client: &Client,
    operation: &str,
    body: &[u8],
) -> Result<(T, Vec<String>), VaultError> {
    let protocol = |reason: String| VaultError::Protocol {
        address: client.address.clone(),
        operation: operation.to_owned(),
        reason,
    };
    // serde_json's messages quote no input values for these shapes beyond
    // field names, but keep them out anyway: the body may hold a plaintext.
    let reply: Reply<T> = serde_json::from_slice(body)
        .map_err(|e| protocol(format!("not a transit JSON reply ({})", e.classify_name())))?;
    let data = reply
        .data
        .ok_or_else(|| protocol("the reply has no data".to_owned()))?;
    Ok((data, reply.warnings.unwrap_or_default()))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "malformed JSON",
            serde_json::error::Category::Data => "missing or mistyped field",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

/// Whether the server said it ignored the `associated_data` parameter.
fn ignored_associated_data(warnings: &[String]) -> bool {
    warnings
        .iter()
        .any(|w| w.contains("associated_data") && w.to_ascii_lowercase().contains("ignored"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_version_of_ciphertexts() {
        assert_eq!(ciphertext_key_version(b"vault:v1:AAAA").ok(), Some(1));
        assert_eq!(ciphertext_key_version(b"vault:v42:ab+/cd==").ok(), Some(42));
        assert_eq!(
            ciphertext_key_version(b"vault:v4294967295:AA").ok(),
            Some(u32::MAX)
        );
        for bad in [
            &b""[..],
            b"vault:v1:",
            b"vault:v:AA",
            b"vault:v0:AA",
            b"vault:v01:AA",
            b"vault:v+1:AA",
            b"vault:v4294967296:AA",
            b"vault:1:AA",
            b"Vault:v1:AA",
            b"vault:v1AA",
            b"vault:v1:A A",
            b"vault:v1:AA\n",
            b"\x01\x02\x03",
            b"vault:v1:\xff",
        ] {
            assert!(
                matches!(
                    ciphertext_key_version(bad),
                    Err(VaultError::NotTransitCiphertext)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ignored_parameter_warnings() {
        assert!(ignored_associated_data(&[
            "Endpoint ignored these unrecognized parameters: [associated_data]".to_owned()
        ]));
        assert!(!ignored_associated_data(&[
            "Endpoint ignored these unrecognized parameters: [bogus]".to_owned()
        ]));
        assert!(!ignored_associated_data(&[]));
    }

    #[test]
    fn aead_key_types() {
        let info = |t: &str| KeyInfo {
            key_type: t.to_owned(),
            latest_version: 1,
            min_decryption_version: 1,
            min_encryption_version: 0,
            derived: false,
            exportable: false,
            supports_encryption: true,
            supports_decryption: true,
        };
        assert!(info("aes256-gcm96").binds_associated_data());
        assert!(info("chacha20-poly1305").binds_associated_data());
        assert!(!info("rsa-2048").binds_associated_data());
    }
}
