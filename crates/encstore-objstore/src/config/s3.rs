//! [`S3StorageBuilder`]: an S3 bucket configured in code.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use encstore_core::Result;
use object_store::ClientConfigKey;
use object_store::aws::{
    AmazonS3Builder, AmazonS3ConfigKey, AwsCredential, AwsCredentialProvider, S3ConditionalPut,
};
use object_store::client::CredentialProvider;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::complete::ConditionConnector;
use crate::error::NoCredentials;
use crate::storage::ObjectStorage;

use super::common::{
    Common, CompletionSupport, configure_error, install_crypto_provider, sanitize, truthy,
};
use super::{ConditionalCompletion, DEFAULT_REGION};
#[cfg(doc)]
use super::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_LEASE, DEFAULT_OPERATION_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
    default_retry,
};
#[cfg(doc)]
use encstore_core::Error;

/// Whether an S3 endpoint is AWS's own.
pub(super) fn is_aws_endpoint(endpoint: &str) -> bool {
    Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|h| {
            h == "amazonaws.com"
                || h.ends_with(".amazonaws.com")
                || h.ends_with(".amazonaws.com.cn")
        })
}

/// What to set when a store has no S3 credentials.
pub(super) const NO_S3_CREDENTIALS: &str = "no S3 credentials: set AWS_ACCESS_KEY_ID and \
     AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), or \
     AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; \
     on EC2 without them, the instance role's credentials come from the instance-metadata \
     service";

/// Configures an [`ObjectStorage`] on an S3 bucket (AWS S3, MinIO,
/// SeaweedFS, Cloudflare R2, ...).
///
/// ```no_run
/// # fn f() -> Result<(), encstore_core::Error> {
/// use std::time::Duration;
/// use encstore_objstore::S3StorageBuilder;
///
/// let store = S3StorageBuilder::new("my-bucket")
///     .prefix("tls/prod")
///     .endpoint("http://127.0.0.1:8333")
///     .allow_http(true)
///     .credentials("ACCESS_KEY_ID", "SECRET_ACCESS_KEY", None)
///     .lease_duration(Duration::from_secs(60))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct S3StorageBuilder {
    /// The bucket every key lives in.
    pub(super) bucket: String,
    /// The `s3://` URL this came from, handed to `object_store`'s
    /// `with_url`.
    pub(super) url: Option<String>,
    /// A custom endpoint (MinIO, SeaweedFS, R2); `None` for the
    /// environment's, else AWS.
    pub(super) endpoint: Option<String>,
    /// The bucket's region; `None` for the environment's, else
    /// [`DEFAULT_REGION`].
    pub(super) region: Option<String>,
    /// Static credentials; `None` leaves them to the environment and
    /// `object_store`'s chain.
    pub(super) credentials: Option<Credentials>,
    /// Start from the `AWS_*` environment variables.
    pub(super) from_env: bool,
    /// Prefix, lease, timeouts, retries, plain HTTP, extra options.
    pub(super) common: Common,
}

/// Static S3 credentials. `Debug` never shows them; the secret parts are
/// held as secrets (zeroized on drop).
#[derive(Clone)]
pub(super) struct Credentials {
    pub(super) access_key_id: String,
    pub(super) secret_access_key: SecretString,
    pub(super) session_token: Option<SecretString>,
}

impl fmt::Debug for S3StorageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3StorageBuilder")
            .field("bucket", &self.bucket)
            .field("prefix", &self.common.prefix)
            .field("endpoint", &self.endpoint.as_deref().map(sanitize))
            .field("region", &self.region)
            .field(
                "credentials",
                &if self.credentials.is_some() {
                    "static (redacted)"
                } else if self.from_env {
                    "environment"
                } else {
                    "default chain"
                },
            )
            .field("allow_http", &self.common.allow_http)
            .field("lease", &self.common.lease)
            .field("request_timeout", &self.common.request_timeout)
            .finish_non_exhaustive()
    }
}

impl S3StorageBuilder {
    /// A builder for `bucket` with the defaults: no prefix, AWS's endpoint,
    /// [`DEFAULT_REGION`], `object_store`'s credential chain, HTTPS only,
    /// [`DEFAULT_LEASE`], [`DEFAULT_REQUEST_TIMEOUT`],
    /// [`DEFAULT_CONNECT_TIMEOUT`], [`DEFAULT_OPERATION_TIMEOUT`] and
    /// [`default_retry`]. Nothing is read from the environment.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3StorageBuilder {
            bucket: bucket.into(),
            url: None,
            endpoint: None,
            region: None,
            credentials: None,
            from_env: false,
            common: Common::new(String::new()),
        }
    }

    /// A builder for `bucket` and `prefix` filled from the standard `AWS_*`
    /// environment variables by `object_store`'s `AmazonS3Builder::from_env`:
    /// `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, `AWS_REGION` (preferred
    /// to `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`, web
    /// identity and container credentials, and the rest of its keys.
    /// Settings made on this builder take precedence.
    pub fn from_env(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        let mut b = Self::new(bucket).prefix(prefix);
        b.from_env = true;
        b
    }

    common_setters!();
    client_setters!();

    /// A custom endpoint, such as `http://127.0.0.1:8333` (SeaweedFS) or
    /// `https://ACCOUNT.r2.cloudflarestorage.com`. Requests use path-style
    /// addressing (`endpoint/bucket/key`).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The bucket's region (default: the environment's, else
    /// [`DEFAULT_REGION`]).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Static credentials, with an optional session token (STS). The secret
    /// and the token are held as secrets.
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.credentials = Some(Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: SecretString::from(secret_access_key.into()),
            session_token: session_token.map(SecretString::from),
        });
        self
    }

    /// Builds the storage. No request is sent.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an invalid prefix; [`Error::Backend`]
    /// (`configure`) for a lease outside 100 ms..=24 h, an empty bucket
    /// name, a plain `http://` endpoint without
    /// [`allow_http`](Self::allow_http) or `AWS_ALLOW_HTTP=true`, a custom
    /// endpoint without credentials, only half of a key pair, or a
    /// configuration `object_store` refuses.
    pub fn build(self) -> Result<ObjectStorage> {
        const BACKEND: &str = "s3";
        self.common.check_cloud(BACKEND)?;
        if self.bucket.is_empty() {
            return Err(configure_error(BACKEND, "the bucket name is empty"));
        }
        install_crypto_provider();

        let mut s3 = if self.from_env {
            let mut s3 = AmazonS3Builder::from_env();
            // The AWS SDKs prefer AWS_REGION to AWS_DEFAULT_REGION;
            // `from_env` takes whichever it meets last.
            if let Some(r) = std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()) {
                s3 = s3.with_region(r);
            }
            s3
        } else {
            AmazonS3Builder::new()
        };
        s3 = self.common.apply(s3)?;
        if let Some(u) = &self.url {
            s3 = s3.with_url(u.as_str());
        }
        s3 = s3
            .with_bucket_name(&self.bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            // Lets streamed writes complete multipart uploads conditionally
            // (see complete.rs); forwards everything else untouched.
            .with_http_connector(ConditionConnector::default());
        if let Some(r) = &self.region {
            s3 = s3.with_region(r);
        }
        if let Some(e) = &self.endpoint {
            s3 = s3.with_endpoint(e);
        }
        if let Some(c) = &self.credentials {
            s3 = s3
                .with_access_key_id(&c.access_key_id)
                .with_secret_access_key(c.secret_access_key.expose_secret());
            if let Some(t) = &c.session_token {
                s3 = s3.with_token(t.expose_secret());
            }
        }

        let get = |k: AmazonS3ConfigKey| s3.get_config_value(&k).filter(|v| !v.is_empty());
        let endpoint =
            get(AmazonS3ConfigKey::S3Endpoint).or_else(|| get(AmazonS3ConfigKey::Endpoint));
        let region = get(AmazonS3ConfigKey::Region).unwrap_or_else(|| DEFAULT_REGION.to_owned());

        // Plain HTTP: object_store would refuse every request with "URL
        // scheme is not allowed"; say what to set instead.
        if let Some(e) = &endpoint
            && e.get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
            && !truthy(get(AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp)))
        {
            return Err(configure_error(
                BACKEND,
                format!(
                    "the endpoint {} is plain http://: set AWS_ALLOW_HTTP=true to allow \
                     unencrypted HTTP (only for a server on loopback or another trusted \
                     network), or use https://",
                    sanitize(e)
                ),
            ));
        }

        // Credentials: say what is missing instead of letting object_store
        // fall back to the EC2 instance-metadata address.
        let key_id = get(AmazonS3ConfigKey::AccessKeyId).is_some();
        let secret = get(AmazonS3ConfigKey::SecretAccessKey).is_some();
        match (key_id, secret) {
            (true, false) => {
                return Err(configure_error(
                    BACKEND,
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both",
                ));
            }
            (false, true) => {
                return Err(configure_error(
                    BACKEND,
                    "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both",
                ));
            }
            _ => {}
        }
        let other_source = (get(AmazonS3ConfigKey::WebIdentityTokenFile).is_some()
            && get(AmazonS3ConfigKey::RoleArn).is_some())
            || get(AmazonS3ConfigKey::ContainerCredentialsRelativeUri).is_some()
            || (get(AmazonS3ConfigKey::ContainerCredentialsFullUri).is_some()
                && get(AmazonS3ConfigKey::ContainerAuthorizationTokenFile).is_some())
            || truthy(get(AmazonS3ConfigKey::SkipSignature));
        let instance_metadata = !key_id && !other_source;
        if instance_metadata && let Some(e) = &endpoint {
            return Err(configure_error(
                BACKEND,
                format!(
                    "{NO_S3_CREDENTIALS}, which applies to AWS S3, not to the endpoint {}",
                    sanitize(e)
                ),
            ));
        }

        let address = match &endpoint {
            Some(e) => sanitize(e),
            None => format!("https://s3.{region}.amazonaws.com"),
        };
        let mut store = s3
            .clone()
            .build()
            .map_err(|e| configure_error(BACKEND, e))?;
        if instance_metadata {
            // AWS without configured credentials: the EC2 instance role,
            // whose failure names the variables to set.
            let inner = Arc::clone(store.credentials());
            store = s3
                .with_credentials(Arc::new(InstanceMetadata { inner }))
                .build()
                .map_err(|e| configure_error(BACKEND, e))?;
        }
        let location = format!("s3://{}", self.bucket);
        let trusted = match self.common.stream.completion {
            ConditionalCompletion::Enabled => true,
            ConditionalCompletion::Disabled => false,
            _ => endpoint.as_deref().is_none_or(is_aws_endpoint),
        };
        let completion = if trusted {
            CompletionSupport::Trusted
        } else {
            CompletionSupport::Untrusted
        };
        Ok(self.common.finish(
            Arc::new(store),
            BACKEND,
            location,
            address,
            Some(self.bucket),
            completion,
        ))
    }
}

/// `object_store`'s instance-metadata credentials, whose failure says that
/// no credentials are configured and which variables to set.
#[derive(Debug)]
struct InstanceMetadata {
    inner: AwsCredentialProvider,
}

#[async_trait]
impl CredentialProvider for InstanceMetadata {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        self.inner
            .get_credential()
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(NoCredentials {
                    hint: NO_S3_CREDENTIALS,
                    detail: Some(e.to_string()),
                }),
            })
    }
}
