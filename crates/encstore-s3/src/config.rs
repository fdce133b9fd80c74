//! [`S3StorageBuilder`]: configuring an [`S3Storage`] from code, from the
//! standard `AWS_*` environment variables, or from an `s3://bucket/prefix`
//! URL.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use encstore_core::{Error, Result, validate_prefix};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::{ClientOptions, RetryConfig};

use crate::error::BACKEND;
use crate::storage::{Inner, S3Storage};

/// The default lock lease: 60 s, renewed every 20 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The default timeout of one HTTP request (connect, send, and receive the
/// response headers and body).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The default timeout for establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default deadline of one storage operation, retries included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// The region used when none is configured (SeaweedFS, MinIO and most
/// S3-compatible servers accept any region; AWS needs the bucket's).
pub const DEFAULT_REGION: &str = "us-east-1";

/// Configures an [`S3Storage`].
///
/// ```no_run
/// # async fn f() -> Result<(), encstore_core::Error> {
/// use std::time::Duration;
/// use encstore_s3::S3Storage;
///
/// let store = S3Storage::builder("my-bucket")
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
    bucket: String,
    /// Keys live at `prefix/key` (or `key` when empty).
    prefix: String,
    /// A custom endpoint (MinIO, SeaweedFS, R2); `None` for AWS.
    endpoint: Option<String>,
    /// The bucket's region.
    region: Option<String>,
    /// Static credentials; `None` leaves them to `object_store`'s chain
    /// (environment, web identity, container or instance metadata).
    credentials: Option<Credentials>,
    /// Whether plain `http://` endpoints are allowed.
    allow_http: bool,
    /// How long a lock lease lasts without renewal.
    lease: Duration,
    /// Timeout of one HTTP request.
    request_timeout: Duration,
    /// Timeout of establishing one connection.
    connect_timeout: Duration,
    /// Deadline of one storage operation, retries included.
    operation_timeout: Duration,
    /// Retries with exponential back-off on transient failures.
    retry: RetryConfig,
    /// Start `object_store`'s builder from the environment, so that its
    /// credential chain (web identity, containers, IMDS) is available.
    from_env: bool,
}

/// Static S3 credentials. `Debug` never shows them.
#[derive(Clone)]
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl fmt::Debug for S3StorageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3StorageBuilder")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field(
                "credentials",
                &if self.credentials.is_some() {
                    "static (redacted)"
                } else {
                    "default chain"
                },
            )
            .field("allow_http", &self.allow_http)
            .field("lease", &self.lease)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_first(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| env(n))
}

impl S3StorageBuilder {
    /// A builder for `bucket` with the defaults: no prefix, AWS's endpoint,
    /// [`DEFAULT_REGION`], the default credential chain, HTTPS only,
    /// [`DEFAULT_LEASE`], [`DEFAULT_REQUEST_TIMEOUT`],
    /// [`DEFAULT_CONNECT_TIMEOUT`], [`DEFAULT_OPERATION_TIMEOUT`] and
    /// `object_store`'s default retries (10 with exponential back-off,
    /// within 3 minutes).
    pub fn new(bucket: impl Into<String>) -> Self {
        S3StorageBuilder {
            bucket: bucket.into(),
            prefix: String::new(),
            endpoint: None,
            region: None,
            credentials: None,
            allow_http: false,
            lease: DEFAULT_LEASE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            retry: RetryConfig::default(),
            from_env: false,
        }
    }

    /// A builder for `bucket` and `prefix` filled from the standard
    /// environment variables:
    ///
    /// | variable | setting |
    /// | --- | --- |
    /// | `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT` (first set) | [`endpoint`](Self::endpoint) |
    /// | `AWS_REGION`, `AWS_DEFAULT_REGION` (first set) | [`region`](Self::region) |
    /// | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | [`credentials`](Self::credentials) |
    /// | `AWS_ALLOW_HTTP` (`true` or `1`) | [`allow_http`](Self::allow_http) |
    ///
    /// Without static credentials, `object_store`'s chain applies (web
    /// identity token, ECS/EKS container credentials, instance metadata).
    pub fn from_env(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        let mut b = Self::new(bucket).prefix(prefix);
        b.from_env = true;
        if let Some(e) = env_first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]) {
            b = b.endpoint(e);
        }
        if let Some(r) = env_first(&["AWS_REGION", "AWS_DEFAULT_REGION"]) {
            b = b.region(r);
        }
        if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            b = b.credentials(id, secret, env("AWS_SESSION_TOKEN"));
        }
        if let Some(v) = env("AWS_ALLOW_HTTP") {
            b = b.allow_http(matches!(
                v.to_ascii_lowercase().as_str(),
                "true" | "1" | "yes"
            ));
        }
        b
    }

    /// Keys live at `prefix/key`. Leading and trailing slashes are ignored;
    /// the rest must be a valid key (checked by [`build`](Self::build)).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().trim_matches('/').to_owned();
        self
    }

    /// A custom endpoint, such as `http://127.0.0.1:8333` (SeaweedFS) or
    /// `https://ACCOUNT.r2.cloudflarestorage.com`. Requests use path-style
    /// addressing (`endpoint/bucket/key`).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The bucket's region (default [`DEFAULT_REGION`]).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Static credentials, with an optional session token (STS).
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.credentials = Some(Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        });
        self
    }

    /// Allows a plain `http://` endpoint (for a local server on loopback).
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// How long a lock lease lasts without renewal (default
    /// [`DEFAULT_LEASE`]). Holders renew every third of it. Keep it far
    /// above the clock skew between hosts and above the request timeout.
    pub fn lease_duration(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Timeout of one HTTP request (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Timeout of establishing a connection (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Deadline of one storage operation, all its requests and retries
    /// included (default [`DEFAULT_OPERATION_TIMEOUT`]). Past it the
    /// operation fails with [`Error::Timeout`].
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Retries on transient failures (connection errors, 5xx, 429, and
    /// timeouts of idempotent requests), with exponential back-off.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Builds the storage. No request is sent.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an invalid prefix; [`Error::Backend`] when
    /// `object_store` refuses the configuration (a missing bucket name, an
    /// `http://` endpoint without [`allow_http`](Self::allow_http), ...).
    pub fn build(self) -> Result<S3Storage> {
        validate_prefix(&self.prefix)?;
        if self.bucket.is_empty() {
            return Err(Error::backend(
                BACKEND,
                "configure",
                "the bucket name is empty",
            ));
        }
        install_crypto_provider();

        let client = ClientOptions::new()
            .with_allow_http(self.allow_http)
            .with_timeout(self.request_timeout)
            .with_connect_timeout(self.connect_timeout);
        let mut s3 = if self.from_env {
            AmazonS3Builder::from_env()
        } else {
            AmazonS3Builder::new()
        };
        let region = self
            .region
            .clone()
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        s3 = s3
            .with_bucket_name(&self.bucket)
            .with_region(&region)
            .with_allow_http(self.allow_http)
            .with_client_options(client)
            .with_retry(self.retry.clone())
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        if let Some(e) = &self.endpoint {
            s3 = s3.with_endpoint(e);
        }
        if let Some(c) = &self.credentials {
            s3 = s3
                .with_access_key_id(&c.access_key_id)
                .with_secret_access_key(&c.secret_access_key);
            if let Some(t) = &c.session_token {
                s3 = s3.with_token(t);
            }
        }
        let store = s3
            .build()
            .map_err(|e| Error::backend(BACKEND, "configure", e))?;

        Ok(S3Storage {
            inner: Arc::new(Inner {
                store: Arc::new(store),
                bucket: self.bucket,
                prefix: self.prefix,
                endpoint: self.endpoint,
                region,
                lease: self.lease,
                operation_timeout: self.operation_timeout,
                host: hostname(),
                pid: std::process::id(),
            }),
        })
    }
}

/// reqwest is built without a bundled TLS crypto provider (to avoid
/// aws-lc-rs); install ring as the process default unless the application
/// already chose one.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: some provider is
        // installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| env("HOSTNAME"))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Splits `s3://bucket/prefix` into bucket and prefix.
pub(crate) fn parse_url(url: &str) -> Result<(String, String)> {
    let bad = |why: &str| {
        Error::backend(
            BACKEND,
            "parse store URL",
            format!("{url:?} is not an s3://bucket[/prefix] URL: {why}"),
        )
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("it must start with s3://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("the bucket is missing"));
    }
    if bucket.contains(['?', '#', '@', ':']) {
        return Err(bad("the bucket name has a character S3 does not allow"));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls() {
        assert_eq!(
            parse_url("s3://b/p/q").unwrap(),
            ("b".to_owned(), "p/q".to_owned())
        );
        assert_eq!(
            parse_url("s3://b").unwrap(),
            ("b".to_owned(), String::new())
        );
        assert_eq!(
            parse_url("s3://b/").unwrap(),
            ("b".to_owned(), String::new())
        );
        assert_eq!(
            parse_url("s3://b/p/").unwrap(),
            ("b".to_owned(), "p".to_owned())
        );
        for bad in ["b/p", "s3://", "s3:///p", "file:///x", "s3://user@b/p"] {
            assert!(parse_url(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn builder_debug_hides_credentials() {
        let b = S3StorageBuilder::new("bucket").prefix("p").credentials(
            "AKIDEXAMPLE",
            "s3cr3t-key",
            Some("session-tok".into()),
        );
        let dbg = format!("{b:?}");
        assert!(!dbg.contains("s3cr3t-key"), "{dbg}");
        assert!(!dbg.contains("session-tok"), "{dbg}");
        assert!(!dbg.contains("AKIDEXAMPLE"), "{dbg}");
        assert_eq!(
            dbg,
            "S3StorageBuilder { bucket: \"bucket\", prefix: \"p\", endpoint: None, region: None, \
             credentials: \"static (redacted)\", allow_http: false, lease: 60s, \
             request_timeout: 30s, .. }"
        );
    }

    #[test]
    fn invalid_prefix_is_refused() {
        match S3StorageBuilder::new("b").prefix("a/../b").build() {
            Err(Error::InvalidKey { .. }) => {}
            other => panic!("expected InvalidKey, got {other:?}"),
        }
        match S3StorageBuilder::new("b").prefix(".encstore-locks").build() {
            Err(Error::InvalidKey { .. }) => {}
            other => panic!("expected InvalidKey, got {other:?}"),
        }
    }
}
