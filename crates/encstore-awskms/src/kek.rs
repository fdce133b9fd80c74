//! [`AwsKmsKek`] with the AWS SDK for Rust (the `aws` feature).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::config::{Credentials, ProvideCredentials, Region};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use encstore_core::{Kek, KekError, MasterKeyVersion};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::config::AwsKmsConfig;
use crate::error::AwsKmsError;
use crate::uri::{AwsKmsUri, encryption_context};

/// A KMS key used as a key-encryption key, exactly as Tink's AWS KMS AEAD:
/// `Encrypt` / `Decrypt` with the URI's ARN as `KeyId`, the ciphertext blob
/// as the wrapped form, and associated data as the encryption context
/// `{"associatedData": lowercase hex}` (none when it is empty). After
/// `Decrypt` with a key ARN, the key KMS used must be that key (Tink's
/// check); alias ARNs skip it, as in Tink.
///
/// `Debug` shows the URI, region and endpoint, never credentials.
pub struct AwsKmsKek {
    uri: AwsKmsUri,
    client: aws_sdk_kms::Client,
    /// `AWS KMS (REGION[, endpoint URL])`, for messages.
    service: String,
    /// The endpoint, if overridden (config or environment).
    endpoint: Option<String>,
    attempt_timeout: std::time::Duration,
    operation_timeout: std::time::Duration,
    connect_timeout: std::time::Duration,
}

/// The endpoint the SDK will use if not the region's: the config's, else
/// `AWS_ENDPOINT_URL_KMS`, else `AWS_ENDPOINT_URL` (for messages only; the
/// SDK reads the environment itself).
fn endpoint_for_messages(config: &AwsKmsConfig) -> Option<String> {
    if config.endpoint_url.is_some() {
        return config.endpoint_url.clone();
    }
    let ignore = std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if ignore {
        return None;
    }
    ["AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
}

/// The innermost message of `e`'s source chain.
fn innermost(e: &(dyn StdError + 'static)) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        last = err.to_string();
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            last = inner.to_string();
        }
        cur = err.source();
    }
    last
}

/// `<Tag>…</Tag>` in an XML error body (moto, and proxies, answer auth
/// failures in the query protocol's XML instead of KMS's JSON).
fn xml_field<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find(&close)?;
    Some(&body[start..start + len])
}

/// The code and message of an error response, from the SDK's parse or
/// from the raw body.
fn code_and_message<E: ProvideErrorMetadata>(
    err: &SdkError<E, HttpResponse>,
    raw: &HttpResponse,
) -> (Option<String>, String) {
    let mut code = err.code().map(str::to_owned);
    let mut message = err.message().unwrap_or_default().to_owned();
    if let Some(body) = raw.body().bytes().and_then(|b| std::str::from_utf8(b).ok())
        && body.trim_start().starts_with('<')
    {
        if let Some(c) = xml_field(body, "Code") {
            code = Some(c.to_owned());
        }
        if let Some(m) = xml_field(body, "Message") {
            m.clone_into(&mut message);
        }
    }
    if message.is_empty() {
        message = format!("HTTP {} with no message", raw.status().as_u16());
    }
    // One line, bounded.
    let mut message: String = message.replace(['\n', '\r'], " ");
    if message.len() > 300 {
        let mut cut = 300;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    (code, message)
}

impl AwsKmsKek {
    /// Opens the key named by `uri` with the AWS SDK's standard chain for
    /// credentials and endpoint, in the ARN's region.
    ///
    /// It resolves the credentials and calls `DescribeKey` (which needs
    /// `kms:DescribeKey`) to check that the key exists, is enabled, and is
    /// a symmetric encryption key.
    ///
    /// # Errors
    /// Every [`AwsKmsError`] about the URI, credentials, network and key.
    pub async fn open(uri: &str) -> Result<AwsKmsKek, AwsKmsError> {
        Self::open_with(uri, AwsKmsConfig::new()).await
    }

    /// As [`AwsKmsKek::open`], with overrides.
    ///
    /// # Errors
    /// As [`AwsKmsKek::open`].
    pub async fn open_with(uri: &str, config: AwsKmsConfig) -> Result<AwsKmsKek, AwsKmsError> {
        let uri = AwsKmsUri::parse(uri)?;
        let endpoint = endpoint_for_messages(&config);
        let service = match &endpoint {
            Some(e) => format!("AWS KMS ({}, endpoint {e})", uri.region()),
            None => format!("AWS KMS ({})", uri.region()),
        };
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout)
            .operation_attempt_timeout(config.attempt_timeout)
            .operation_timeout(config.operation_timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new(uri.region().to_owned()))
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts));
        if let Some(p) = &config.profile {
            loader = loader.profile_name(p);
        }
        if let Some(c) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.expose_secret().to_owned(),
                c.session_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned()),
                None,
                "encstore-awskms",
            ));
        }
        if let Some(e) = &config.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        let sdk = loader.load().await;
        // Resolve credentials now, so that "none found" is its own error
        // rather than a failed request.
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| AwsKmsError::NoCredentials {
                reason: "no credential provider is configured".to_owned(),
            })?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| AwsKmsError::NoCredentials {
                reason: innermost(&e),
            })?;
        let kek = AwsKmsKek {
            client: aws_sdk_kms::Client::new(&sdk),
            uri,
            service,
            endpoint,
            attempt_timeout: config.attempt_timeout,
            operation_timeout: config.operation_timeout,
            connect_timeout: config.connect_timeout,
        };
        kek.check_key().await?;
        tracing::debug!(uri = %kek.uri, "opened AWS KMS key");
        Ok(kek)
    }

    /// The parsed URI.
    pub fn uri(&self) -> &AwsKmsUri {
        &self.uri
    }

    async fn check_key(&self) -> Result<(), AwsKmsError> {
        let out = self
            .client
            .describe_key()
            .key_id(self.uri.arn())
            .send()
            .await
            .map_err(|e| self.classify("kms:DescribeKey", e))?;
        let meta = out.key_metadata().ok_or_else(|| AwsKmsError::Protocol {
            service: self.service.clone(),
            operation: "kms:DescribeKey",
            reason: "the reply has no KeyMetadata".to_owned(),
        })?;
        let key = self.uri.arn().to_owned();
        match meta.key_state() {
            Some(KeyState::Enabled) => {}
            Some(KeyState::Disabled) => {
                return Err(AwsKmsError::KeyDisabled {
                    service: self.service.clone(),
                    key,
                });
            }
            other => {
                return Err(AwsKmsError::KeyInvalidState {
                    service: self.service.clone(),
                    key,
                    state: other.map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned()),
                });
            }
        }
        let usage_ok = meta
            .key_usage()
            .is_none_or(|u| *u == KeyUsageType::EncryptDecrypt);
        let spec_ok = meta
            .key_spec()
            .is_none_or(|s| *s == KeySpec::SymmetricDefault);
        if !usage_ok || !spec_ok {
            return Err(AwsKmsError::KeyUnsuitable {
                service: self.service.clone(),
                key,
                reason: format!(
                    "it is a {} key for {}, not a SYMMETRIC_DEFAULT key for ENCRYPT_DECRYPT",
                    meta.key_spec().map_or("?", |s| s.as_str()),
                    meta.key_usage().map_or("?", |u| u.as_str())
                ),
            });
        }
        Ok(())
    }

    fn classify<E>(&self, operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsKmsError
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let service = self.service.clone();
        let key = self.uri.arn().to_owned();
        let raw = match &err {
            SdkError::TimeoutError(_) => {
                return AwsKmsError::Timeout {
                    service,
                    attempt_timeout: self.attempt_timeout,
                    operation_timeout: self.operation_timeout,
                };
            }
            SdkError::DispatchFailure(d) => {
                let reason = if d.is_timeout() {
                    format!(
                        "no connection or answer within the timeouts (connect {} s)",
                        self.connect_timeout.as_secs_f64()
                    )
                } else {
                    innermost(&err)
                };
                return AwsKmsError::Unreachable { service, reason };
            }
            SdkError::ConstructionFailure(_) => {
                return AwsKmsError::Protocol {
                    service,
                    operation,
                    reason: format!("the request could not be built: {}", innermost(&err)),
                };
            }
            SdkError::ResponseError(r) => r.raw(),
            SdkError::ServiceError(s) => s.raw(),
            _ => {
                return AwsKmsError::Protocol {
                    service,
                    operation,
                    reason: innermost(&err),
                };
            }
        };
        let status = raw.status().as_u16();
        let (code, message) = code_and_message(&err, raw);
        match code.as_deref() {
            Some(
                "InvalidSignatureException"
                | "SignatureDoesNotMatch"
                | "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "ExpiredTokenException"
                | "ExpiredToken"
                | "IncompleteSignature"
                | "IncompleteSignatureException"
                | "MissingAuthenticationToken"
                | "MissingAuthenticationTokenException",
            ) => AwsKmsError::CredentialsRejected {
                service,
                code: code.unwrap_or_default(),
                message,
            },
            Some("AccessDeniedException" | "AccessDenied") => AwsKmsError::AccessDenied {
                service,
                operation,
                message,
            },
            Some("NotFoundException") => AwsKmsError::KeyNotFound {
                service,
                key,
                message,
            },
            Some("DisabledException") => AwsKmsError::KeyDisabled { service, key },
            Some("KMSInvalidStateException" | "KeyUnavailableException") => {
                AwsKmsError::KeyInvalidState {
                    service,
                    key,
                    state: message,
                }
            }
            Some("InvalidKeyUsageException") => AwsKmsError::KeyUnsuitable {
                service,
                key,
                reason: message,
            },
            Some("InvalidCiphertextException" | "IncorrectKeyException") => {
                AwsKmsError::Authentication
            }
            None if status == 403 => AwsKmsError::CredentialsRejected {
                service,
                code: "403 Forbidden".to_owned(),
                message,
            },
            _ => AwsKmsError::Server {
                service,
                operation,
                status,
                code,
                message,
            },
        }
    }

    fn context(associated_data: &[u8]) -> Option<HashMap<String, String>> {
        encryption_context(associated_data).map(|(k, v)| HashMap::from([(k.to_owned(), v)]))
    }

    /// `Encrypt`: wraps `plaintext`, binding `associated_data` as Tink's
    /// encryption context.
    ///
    /// # Errors
    /// The credential, network, permission, key and server errors.
    pub async fn encrypt(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, AwsKmsError> {
        let out = self
            .client
            .encrypt()
            .key_id(self.uri.arn())
            .plaintext(Blob::new(plaintext.to_vec()))
            .set_encryption_context(Self::context(associated_data))
            .send()
            .await
            .map_err(|e| self.classify("kms:Encrypt", e))?;
        let blob = out.ciphertext_blob().ok_or_else(|| AwsKmsError::Protocol {
            service: self.service.clone(),
            operation: "kms:Encrypt",
            reason: "the reply has no CiphertextBlob".to_owned(),
        })?;
        Ok(blob.as_ref().to_vec())
    }

    /// `Decrypt`: unwraps a ciphertext blob, checking `associated_data`
    /// and (for a key ARN) that the URI's key made it.
    ///
    /// # Errors
    /// [`AwsKmsError::Authentication`] or [`AwsKmsError::WrongKey`] when it
    /// does not authenticate, and the credential, network, permission, key
    /// and server errors.
    pub async fn decrypt(
        &self,
        ciphertext: &[u8],
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AwsKmsError> {
        let out = self
            .client
            .decrypt()
            .key_id(self.uri.arn())
            .ciphertext_blob(Blob::new(ciphertext.to_vec()))
            .set_encryption_context(Self::context(associated_data))
            .send()
            .await
            .map_err(|e| self.classify("kms:Decrypt", e))?;
        if self.uri.is_key_arn()
            && let Some(actual) = out.key_id()
            && actual != self.uri.arn()
        {
            return Err(AwsKmsError::WrongKey {
                expected: self.uri.arn().to_owned(),
                actual: actual.to_owned(),
            });
        }
        let pt = out.plaintext().ok_or_else(|| AwsKmsError::Protocol {
            service: self.service.clone(),
            operation: "kms:Decrypt",
            reason: "the reply has no Plaintext".to_owned(),
        })?;
        Ok(Zeroizing::new(pt.as_ref().to_vec()))
    }
}

impl fmt::Debug for AwsKmsKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsKek")
            .field("uri", &self.uri.to_string())
            .field("region", &self.uri.region())
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

#[async_trait]
impl Kek for AwsKmsKek {
    async fn wrap(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        Ok(self.encrypt(plaintext, associated_data).await?)
    }

    async fn unwrap(&self, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        Ok(self.decrypt(ciphertext, associated_data).await?.to_vec())
    }

    /// This key's URI, without a version: KMS's ciphertext blob format is
    /// not documented, so encstore reads nothing out of it (and KMS key
    /// rotation keeps the old key material, so no rewrap is ever needed
    /// for it). `None` for an empty blob.
    fn describe_wrapped(&self, wrapped: &[u8]) -> Option<MasterKeyVersion> {
        (!wrapped.is_empty()).then(|| MasterKeyVersion::new(self.uri.to_string(), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_fields() {
        let body = "<?xml version=\"1.0\"?>\n<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error></Errors></ErrorResponse>";
        assert_eq!(xml_field(body, "Code"), Some("SignatureDoesNotMatch"));
        assert_eq!(
            xml_field(body, "Message"),
            Some("The request signature we calculated does not match")
        );
        assert_eq!(xml_field(body, "Type"), None);
        assert_eq!(xml_field("<Code>unterminated", "Code"), None);
    }
}
