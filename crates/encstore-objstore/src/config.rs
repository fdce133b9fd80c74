//! Building an [`ObjectStorage`]: over any `ObjectStore`
//! ([`ObjectStorageBuilder`]), from a location URL
//! ([`UrlStorageBuilder`]: `s3://`, `gs://`, `az://`, `memory://`), or for
//! an S3 bucket configured in code ([`S3StorageBuilder`]).
//!
//! Cloud stores are configured by `object_store`'s own builders, started
//! from their standard environment variables (`AmazonS3Builder::from_env`,
//! `GoogleCloudStorageBuilder::from_env`, `MicrosoftAzureBuilder::from_env`)
//! and pointed at the URL with their `with_url`. What this module adds:
//! encstore's defaults for timeouts and bounded retries, clear errors for
//! the configurations operators get wrong (no S3 credentials, a plain
//! `http://` endpoint), and the lock lease.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use encstore_core::{Error, Result, check_lease, validate_prefix};
use object_store::aws::{
    AmazonS3Builder, AmazonS3ConfigKey, AwsCredential, AwsCredentialProvider, S3ConditionalPut,
};
use object_store::client::CredentialProvider;
use object_store::memory::InMemory;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreScheme, RetryConfig};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::complete::ConditionConnector;
use crate::error::NoCredentials;
use crate::storage::{Inner, ObjectStorage};

/// The default lock lease: 60 s, renewed every 20 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The default timeout of one HTTP request (connect, send, and receive the
/// response headers and body).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The default timeout for establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default deadline of one storage operation, retries included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// The default part size of streamed writes: 8 MiB. A streamed body of
/// at most this size is written with one `PUT`; a larger one with a
/// multipart upload of parts of this size (the last one smaller). With the
/// 10,000 parts S3 and GCS allow, objects of up to 80 GiB; raise it for
/// larger ones (see [`ObjectStorageBuilder::part_size`]).
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// The smallest part size S3-compatible servers and GCS accept for every
/// part but the last (5 MiB); the S3 and URL builders refuse a smaller one.
pub const MIN_PART_SIZE: usize = 5 << 20;

/// The largest part size S3 accepts (5 GiB).
pub const MAX_PART_SIZE: usize = 5 << 30;

/// The default number of parts of one streamed write uploaded at once: 2.
/// A streamed write holds at most this many parts in flight plus the one
/// being filled: 24 MiB with the default part size.
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 2;

/// The default bound of a conditional streamed write on a store without
/// conditional multipart completion (anything but the S3 stores this
/// crate builds, or an S3 server that does not honour it): 64 MiB. Such a
/// write is buffered and sent as one conditional `PUT`; a larger body is
/// refused with [`Error::Unsupported`] (see
/// [`ObjectStorageBuilder::max_buffered_conditional_write`]).
pub const DEFAULT_MAX_BUFFERED_CONDITIONAL_WRITE: u64 = 64 << 20;

/// Whether a conditional streamed write larger than one part may put its
/// condition (`If-None-Match: *` / `If-Match`) on the completion of a
/// multipart upload, which keeps it in constant memory.
///
/// That is only a compare-and-swap if the server checks the condition and
/// completes the upload atomically, excluding concurrent writes. AWS S3
/// documents it so (a concurrent conflicting write makes it answer 409).
/// SeaweedFS 4.48 does not: it checks the condition, then completes, and
/// racing conditional completions from one version were measured to
/// succeed together (see docs/backends.md), while its conditional `PUT`s
/// race correctly. Where it is not used, such writes are buffered up to
/// [`max_buffered_conditional_write`](ObjectStorageBuilder::max_buffered_conditional_write)
/// and sent as one conditional `PUT`, and refused beyond.
///
/// Either way the per-handle probe checks, before the first use, that the
/// server refuses completions whose condition fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConditionalCompletion {
    /// Use it on AWS S3 (no custom endpoint, or one under `amazonaws.com`),
    /// not elsewhere. The default.
    #[default]
    Auto,
    /// Use it: the server's conditional completions are atomic (check
    /// yours; SeaweedFS 4.48's are not).
    Enabled,
    /// Never use it.
    Disabled,
}

/// Whether an S3 endpoint is AWS's own.
fn is_aws_endpoint(endpoint: &str) -> bool {
    Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|h| {
            h == "amazonaws.com"
                || h.ends_with(".amazonaws.com")
                || h.ends_with(".amazonaws.com.cn")
        })
}

/// The most parts one multipart upload may have (S3, GCS).
pub(crate) const MAX_PARTS: usize = 10_000;

/// The region used when none is configured (SeaweedFS, MinIO and most
/// S3-compatible servers accept any region; AWS needs the bucket's).
pub const DEFAULT_REGION: &str = "us-east-1";

/// The default retries of one request: at most 5, with exponential
/// back-off from 100 ms to at most 2 s, none started after 15 s.
///
/// Connection failures (refused, reset, DNS) and 5xx/429 answers are
/// retried. A backend that stopped answering is reported as
/// [`Error::Unreachable`] after about 3 s of refused connections, instead of
/// `object_store`'s default of 10 retries within 3 minutes, so that a long
/// run (a rewrap, a verify) stops within seconds and says why.
pub fn default_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(15),
    }
}

/// What to set when a store has no S3 credentials.
const NO_S3_CREDENTIALS: &str = "no S3 credentials: set AWS_ACCESS_KEY_ID and \
     AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), or \
     AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; \
     on EC2 without them, the instance role's credentials come from the instance-metadata \
     service";

/// Settings every builder shares.
#[derive(Clone, Debug)]
struct Common {
    /// Keys live at `prefix/key` (or `key` when empty).
    prefix: String,
    /// How long a lock lease lasts without renewal.
    lease: Duration,
    /// Deadline of one storage operation, retries included.
    operation_timeout: Duration,
    /// Timeout of one HTTP request; `None`: the environment's, else the default.
    request_timeout: Option<Duration>,
    /// Timeout of one connection attempt; as above.
    connect_timeout: Option<Duration>,
    /// Retries; `None` for [`default_retry`].
    retry: Option<RetryConfig>,
    /// Plain-HTTP endpoints; `None` leaves it to the environment.
    allow_http: Option<bool>,
    /// Extra `object_store` configuration keys (values may be secrets).
    options: Vec<(String, SecretString)>,
    /// Part size, upload concurrency and the buffered conditional bound of
    /// streamed writes.
    stream: StreamSettings,
}

/// Whether a store's multipart completions can carry a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CompletionSupport {
    /// Not one of the S3 stores this crate builds: it cannot.
    NoConnector,
    /// It can, but [`ConditionalCompletion`] says not to rely on it.
    Untrusted,
    /// It can and may (the probe still checks the server).
    Trusted,
}

/// How streamed writes are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamSettings {
    /// Bodies up to this size are one `PUT`; larger ones are uploaded in
    /// parts of this size.
    pub(crate) part_size: usize,
    /// Parts uploaded at once.
    pub(crate) concurrency: usize,
    /// The largest conditional streamed write buffered for one conditional
    /// `PUT` when the store has no conditional multipart completion.
    pub(crate) max_buffered_conditional: u64,
    /// Whether conditional multipart completions may be used.
    pub(crate) completion: ConditionalCompletion,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_UPLOAD_CONCURRENCY,
            max_buffered_conditional: DEFAULT_MAX_BUFFERED_CONDITIONAL_WRITE,
            completion: ConditionalCompletion::Auto,
        }
    }
}

impl Common {
    fn new(prefix: String) -> Self {
        Common {
            prefix: trim_prefix(&prefix),
            lease: DEFAULT_LEASE,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            request_timeout: None,
            connect_timeout: None,
            retry: None,
            allow_http: None,
            options: Vec::new(),
            stream: StreamSettings::default(),
        }
    }

    /// Checks what `build` must refuse before any store is made.
    fn check(&self) -> Result<()> {
        validate_prefix(&self.prefix)?;
        check_lease(self.lease)?;
        let s = &self.stream;
        if s.part_size == 0 || s.part_size > MAX_PART_SIZE {
            return Err(configure_error(
                "object_store",
                format!("the part size {} is outside 1 byte..=5 GiB", s.part_size),
            ));
        }
        if !(1..=64).contains(&s.concurrency) {
            return Err(configure_error(
                "object_store",
                format!("the upload concurrency {} is outside 1..=64", s.concurrency),
            ));
        }
        Ok(())
    }

    /// [`check`](Self::check), plus the part-size minimum of the cloud
    /// stores (S3, GCS and Azure alike, for one rule).
    fn check_cloud(&self, backend: &'static str) -> Result<()> {
        self.check()?;
        if self.stream.part_size < MIN_PART_SIZE {
            return Err(configure_error(
                backend,
                format!(
                    "the part size {} is below the 5 MiB that S3-compatible servers require \
                     of every part but the last",
                    self.stream.part_size
                ),
            ));
        }
        Ok(())
    }

    /// Applies the client settings to a cloud builder, keeping values the
    /// environment set unless the caller set them explicitly.
    fn apply<B: CloudBuilder>(&self, mut b: B) -> Result<B> {
        for (k, v) in &self.options {
            b = b.option(k, v.expose_secret())?;
        }
        for (key, explicit, default) in [
            (
                ClientConfigKey::Timeout,
                self.request_timeout,
                DEFAULT_REQUEST_TIMEOUT,
            ),
            (
                ClientConfigKey::ConnectTimeout,
                self.connect_timeout,
                DEFAULT_CONNECT_TIMEOUT,
            ),
        ] {
            match explicit {
                Some(d) => b = b.client(key, duration_value(d)),
                None if b.client_value(&key).is_none() => {
                    b = b.client(key, duration_value(default));
                }
                None => {}
            }
        }
        if let Some(a) = self.allow_http {
            b = b.client(ClientConfigKey::AllowHttp, a.to_string());
        }
        Ok(b.retry(self.retry.clone().unwrap_or_else(default_retry)))
    }

    /// The storage over `store`. `completion`: whether its multipart
    /// completions can carry a condition, and may.
    fn finish(
        self,
        store: Arc<dyn ObjectStore>,
        backend: &'static str,
        location: String,
        address: String,
        bucket: Option<String>,
        completion: CompletionSupport,
    ) -> ObjectStorage {
        let mut inner = Inner::new(
            store,
            backend,
            location,
            address,
            bucket,
            self.prefix,
            self.lease,
            self.operation_timeout,
        );
        inner.stream = self.stream;
        inner.completion = completion;
        ObjectStorage::from_inner(inner)
    }
}

/// A duration as `object_store`'s configuration parses it.
fn duration_value(d: Duration) -> String {
    format!("{}ns", d.as_nanos())
}

fn trim_prefix(p: &str) -> String {
    p.trim_matches('/').to_owned()
}

/// True for the values `object_store` reads as `true`.
fn truthy(v: Option<String>) -> bool {
    v.is_some_and(|v| {
        matches!(
            v.to_ascii_lowercase().as_str(),
            "1" | "true" | "on" | "yes" | "y"
        )
    })
}

/// `url` without user, password, query or fragment, for messages.
fn sanitize(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string().trim_end_matches('/').to_owned()
        }
        Err(_) => "(an endpoint that is not a valid URL)".to_owned(),
    }
}

/// `url` as given, with any `user:password@` replaced by `***@`, for
/// messages about a URL that may not even parse.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

fn configure_error(backend: &'static str, e: impl Into<encstore_core::BoxError>) -> Error {
    Error::backend(backend, "configure", e)
}

/// The common surface of `object_store`'s cloud builders that this module
/// drives.
trait CloudBuilder: Sized {
    /// The backend's short name, for errors.
    const BACKEND: &'static str;
    fn client(self, key: ClientConfigKey, value: String) -> Self;
    fn client_value(&self, key: &ClientConfigKey) -> Option<String>;
    fn retry(self, retry: RetryConfig) -> Self;
    fn option(self, key: &str, value: &str) -> Result<Self>;
}

impl CloudBuilder for AmazonS3Builder {
    const BACKEND: &'static str = "s3";
    fn client(self, key: ClientConfigKey, value: String) -> Self {
        self.with_config(AmazonS3ConfigKey::Client(key), value)
    }
    fn client_value(&self, key: &ClientConfigKey) -> Option<String> {
        self.get_config_value(&AmazonS3ConfigKey::Client(*key))
    }
    fn retry(self, retry: RetryConfig) -> Self {
        self.with_retry(retry)
    }
    fn option(self, key: &str, value: &str) -> Result<Self> {
        let k: AmazonS3ConfigKey = key
            .to_ascii_lowercase()
            .parse()
            .map_err(|e| configure_error(Self::BACKEND, e))?;
        Ok(self.with_config(k, value))
    }
}

#[cfg(feature = "gcs")]
impl CloudBuilder for object_store::gcp::GoogleCloudStorageBuilder {
    const BACKEND: &'static str = "gcs";
    fn client(self, key: ClientConfigKey, value: String) -> Self {
        self.with_config(object_store::gcp::GoogleConfigKey::Client(key), value)
    }
    fn client_value(&self, key: &ClientConfigKey) -> Option<String> {
        self.get_config_value(&object_store::gcp::GoogleConfigKey::Client(*key))
    }
    fn retry(self, retry: RetryConfig) -> Self {
        self.with_retry(retry)
    }
    fn option(self, key: &str, value: &str) -> Result<Self> {
        let k: object_store::gcp::GoogleConfigKey = key
            .to_ascii_lowercase()
            .parse()
            .map_err(|e| configure_error(Self::BACKEND, e))?;
        Ok(self.with_config(k, value))
    }
}

#[cfg(feature = "azure")]
impl CloudBuilder for object_store::azure::MicrosoftAzureBuilder {
    const BACKEND: &'static str = "azure";
    fn client(self, key: ClientConfigKey, value: String) -> Self {
        self.with_config(object_store::azure::AzureConfigKey::Client(key), value)
    }
    fn client_value(&self, key: &ClientConfigKey) -> Option<String> {
        self.get_config_value(&object_store::azure::AzureConfigKey::Client(*key))
    }
    fn retry(self, retry: RetryConfig) -> Self {
        self.with_retry(retry)
    }
    fn option(self, key: &str, value: &str) -> Result<Self> {
        let k: object_store::azure::AzureConfigKey = key
            .to_ascii_lowercase()
            .parse()
            .map_err(|e| configure_error(Self::BACKEND, e))?;
        Ok(self.with_config(k, value))
    }
}

/// Implements the setters every builder shares.
macro_rules! common_setters {
    () => {
        /// Keys live at `prefix/key`. Leading and trailing slashes are
        /// ignored; the rest must be a valid key (checked by `build`).
        pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
            self.common.prefix = trim_prefix(&prefix.into());
            self
        }

        /// How long a lock lease lasts without renewal (default
        /// [`DEFAULT_LEASE`]; between 100 ms and 24 h, checked by `build`).
        /// Holders renew every third of it. Keep it far above the clock
        /// skew between hosts and above the request timeout.
        pub fn lease_duration(mut self, lease: Duration) -> Self {
            self.common.lease = lease;
            self
        }

        /// Deadline of one storage operation, all its requests and retries
        /// included (default [`DEFAULT_OPERATION_TIMEOUT`]). Past it the
        /// operation fails with [`Error::Timeout`].
        pub fn operation_timeout(mut self, timeout: Duration) -> Self {
            self.common.operation_timeout = timeout;
            self
        }

        stream_setters!();
    };
}

/// Implements the setters of streamed writes.
macro_rules! stream_setters {
    () => {
        /// The part size of streamed writes (default [`DEFAULT_PART_SIZE`],
        /// at most [`MAX_PART_SIZE`]): a body of at most this size is one
        /// `PUT`, a larger one a multipart upload of parts of this size, of
        /// which [`upload_concurrency`](Self::upload_concurrency) are held
        /// in memory at once. One upload has at most 10,000 parts, so this
        /// bounds the largest streamed object (80 GiB by default). The S3
        /// and URL builders refuse less than [`MIN_PART_SIZE`], which S3
        /// servers require; a store you built may take smaller parts.
        pub fn part_size(mut self, bytes: usize) -> Self {
            self.common.stream.part_size = bytes;
            self
        }

        /// How many parts of one streamed write are uploaded at once
        /// (default [`DEFAULT_UPLOAD_CONCURRENCY`], 1..=64).
        pub fn upload_concurrency(mut self, parts: usize) -> Self {
            self.common.stream.concurrency = parts;
            self
        }

        /// The largest conditional streamed write
        /// ([`store_stream_if`](encstore_core::Storage::store_stream_if))
        /// that is buffered in memory and sent as one conditional `PUT`
        /// when the store cannot complete a multipart upload conditionally
        /// (default [`DEFAULT_MAX_BUFFERED_CONDITIONAL_WRITE`]). Larger
        /// bodies are refused there with [`Error::Unsupported`], writing
        /// nothing. S3 stores built by this crate on a server that honours
        /// conditional completions stream any size in constant memory.
        pub fn max_buffered_conditional_write(mut self, bytes: u64) -> Self {
            self.common.stream.max_buffered_conditional = bytes;
            self
        }

        /// Whether conditional streamed writes larger than one part put
        /// their condition on the multipart completion (constant memory)
        /// or are buffered: see [`ConditionalCompletion`] (default
        /// [`ConditionalCompletion::Auto`]: on AWS S3 only). Only the S3
        /// stores this crate builds can send such a condition; elsewhere
        /// this has no effect.
        pub fn conditional_completion(mut self, mode: ConditionalCompletion) -> Self {
            self.common.stream.completion = mode;
            self
        }
    };
}

/// Implements the setters of the builders that make an HTTP client.
macro_rules! client_setters {
    () => {
        /// Timeout of one HTTP request (default: the environment's, else
        /// [`DEFAULT_REQUEST_TIMEOUT`]).
        pub fn request_timeout(mut self, timeout: Duration) -> Self {
            self.common.request_timeout = Some(timeout);
            self
        }

        /// Timeout of establishing a connection (default: the
        /// environment's, else [`DEFAULT_CONNECT_TIMEOUT`]).
        pub fn connect_timeout(mut self, timeout: Duration) -> Self {
            self.common.connect_timeout = Some(timeout);
            self
        }

        /// Retries on transient failures (connection errors, 5xx, 429, and
        /// timeouts of idempotent requests), with exponential back-off
        /// (default [`default_retry`]).
        pub fn retry(mut self, retry: RetryConfig) -> Self {
            self.common.retry = Some(retry);
            self
        }

        /// Allows (or forbids) a plain `http://` endpoint, overriding the
        /// environment (`AWS_ALLOW_HTTP`, ...). For a server on loopback or
        /// another trusted network only.
        pub fn allow_http(mut self, allow: bool) -> Self {
            self.common.allow_http = Some(allow);
            self
        }

        /// Any other configuration key of `object_store`'s builder for this
        /// store (`AmazonS3ConfigKey`, `GoogleConfigKey` or
        /// `AzureConfigKey` names, such as `aws_virtual_hosted_style_request`),
        /// applied after the environment. The value is kept as a secret and
        /// never shown. An unknown key fails `build`.
        pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
            self.common
                .options
                .push((key.into(), SecretString::from(value.into())));
            self
        }
    };
}

// ---------------------------------------------------------------------------
// Any ObjectStore.

/// Configures an [`ObjectStorage`] over an `ObjectStore` you built.
///
/// ```
/// # fn f() -> Result<(), encstore_core::Error> {
/// use std::sync::Arc;
/// use encstore_objstore::ObjectStorage;
/// use encstore_objstore::object_store::memory::InMemory;
///
/// let store = ObjectStorage::builder(Arc::new(InMemory::new()))
///     .prefix("tls/prod")
///     .backend_name("memory")
///     .build()?;
/// # Ok(()) }
/// ```
pub struct ObjectStorageBuilder {
    /// The store every request goes to.
    store: Arc<dyn ObjectStore>,
    /// Prefix, lease and deadline.
    common: Common,
    /// The backend's short name in errors.
    backend: &'static str,
    /// Where the store is, for `Debug` and `Unreachable` errors.
    address: Option<String>,
    /// The bucket, for missing-bucket errors.
    bucket: Option<String>,
}

impl fmt::Debug for ObjectStorageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStorageBuilder")
            .field("store", &format_args!("{}", self.store))
            .field("backend", &self.backend)
            .field("prefix", &self.common.prefix)
            .field("lease", &self.common.lease)
            .finish_non_exhaustive()
    }
}

impl ObjectStorageBuilder {
    /// A builder over `store`, with no prefix, [`DEFAULT_LEASE`] and
    /// [`DEFAULT_OPERATION_TIMEOUT`]. Timeouts and retries of single
    /// requests are the store's own configuration.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        ObjectStorageBuilder {
            store,
            common: Common::new(String::new()),
            backend: "object_store",
            address: None,
            bucket: None,
        }
    }

    common_setters!();

    /// The backend's short name in errors (default `object_store`).
    pub fn backend_name(mut self, name: &'static str) -> Self {
        self.backend = name;
        self
    }

    /// Where the store is (an endpoint URL without credentials), named by
    /// [`Error::Unreachable`] and `Debug`. Default: the store's own
    /// description.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// The bucket or container, named when it turns out to be missing.
    pub fn bucket(mut self, bucket: impl Into<String>) -> Self {
        self.bucket = Some(bucket.into());
        self
    }

    /// Builds the storage. No request is sent.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an invalid prefix; [`Error::Backend`] for a
    /// lease outside 100 ms..=24 h.
    pub fn build(self) -> Result<ObjectStorage> {
        self.common.check()?;
        let address = self.address.unwrap_or_else(|| self.store.to_string());
        let location = match &self.bucket {
            Some(b) => format!("{}:{b}", self.backend),
            None => address.clone(),
        };
        Ok(self.common.finish(
            self.store,
            self.backend,
            location,
            address,
            self.bucket,
            CompletionSupport::NoConnector,
        ))
    }
}

// ---------------------------------------------------------------------------
// From a URL.

/// Configures an [`ObjectStorage`] from a location URL, with everything
/// else from the environment:
///
/// | URL | store | environment | cargo feature |
/// | --- | --- | --- | --- |
/// | `s3://bucket/prefix` | S3 and S3-compatible | `AWS_*` (`AmazonS3Builder::from_env`) | always |
/// | `gs://bucket/prefix` | Google Cloud Storage | `GOOGLE_*` (`GoogleCloudStorageBuilder::from_env`) | `gcs` |
/// | `az://container/prefix` | Azure Blob Storage | `AZURE_*` (`MicrosoftAzureBuilder::from_env`) | `azure` |
/// | `memory:///prefix` | a new, empty in-memory store | none | always |
///
/// The URL must not carry credentials, a query or a fragment.
#[derive(Debug)]
pub struct UrlStorageBuilder {
    /// The location as given.
    url: String,
    /// Prefix (set from the URL), lease, deadline, client settings.
    common: Common,
}

impl UrlStorageBuilder {
    /// A builder for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        UrlStorageBuilder {
            url: url.into(),
            common: Common::new(String::new()),
        }
    }

    client_setters!();

    /// How long a lock lease lasts without renewal (default
    /// [`DEFAULT_LEASE`]; between 100 ms and 24 h, checked by `build`).
    pub fn lease_duration(mut self, lease: Duration) -> Self {
        self.common.lease = lease;
        self
    }

    /// Deadline of one storage operation, retries included (default
    /// [`DEFAULT_OPERATION_TIMEOUT`]).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.common.operation_timeout = timeout;
        self
    }

    stream_setters!();

    /// Builds the storage. No request is sent.
    ///
    /// # Errors
    /// [`Error::Backend`] (`configure`) for a malformed or unsupported URL,
    /// missing S3 credentials with a custom endpoint, an `http://`
    /// endpoint without `AWS_ALLOW_HTTP=true`, or a configuration
    /// `object_store` refuses; [`Error::Unsupported`] for `gs://` or `az://`
    /// in a build without the `gcs` or `azure` feature; [`Error::InvalidKey`]
    /// for a prefix that is not a valid key.
    pub fn build(self) -> Result<ObjectStorage> {
        let shown = redact_userinfo(&self.url);
        let bad = |why: &str| {
            configure_error(
                "object_store",
                format!(
                    "{shown:?} is not a store location: {why} (use s3://bucket/prefix, \
                     gs://bucket/prefix, az://container/prefix or memory:///prefix)"
                ),
            )
        };
        let url = Url::parse(&self.url).map_err(|e| bad(&e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "it carries credentials; give them in the environment instead",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("it has a query or a fragment"));
        }
        // URL parsing resolves `.` and `..` segments; a location must say
        // exactly where the keys go, so refuse them instead.
        let raw_path = self
            .url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map_or("", |(_, p)| p);
        if raw_path.split('/').any(|seg| {
            let seg = seg.to_ascii_lowercase().replace("%2e", ".");
            seg == "." || seg == ".."
        }) {
            return Err(bad("its path has a `.` or `..` segment"));
        }
        let (scheme, path) = ObjectStoreScheme::parse(&url).map_err(|e| bad(&e.to_string()))?;
        let mut common = self.common;
        common.prefix = trim_prefix(path.as_ref());
        let host = url.host_str().unwrap_or_default().to_owned();
        match scheme {
            ObjectStoreScheme::AmazonS3 if url.scheme() == "s3" => {
                if url.port().is_some() {
                    return Err(bad("an s3:// URL names a bucket, not a host and port"));
                }
                S3StorageBuilder {
                    bucket: host,
                    url: Some(url.to_string()),
                    endpoint: None,
                    region: None,
                    credentials: None,
                    from_env: true,
                    common,
                }
                .build()
            }
            ObjectStoreScheme::GoogleCloudStorage => gcs(url, host, common),
            ObjectStoreScheme::MicrosoftAzure if matches!(url.scheme(), "az" | "azure") => {
                azure(url, host, common)
            }
            ObjectStoreScheme::Memory => {
                common.check()?;
                Ok(common.finish(
                    Arc::new(InMemory::new()),
                    "memory",
                    "memory://".to_owned(),
                    "memory://".to_owned(),
                    None,
                    CompletionSupport::NoConnector,
                ))
            }
            _ => Err(bad(&format!(
                "the scheme {:?} is not supported",
                url.scheme()
            ))),
        }
    }
}

#[cfg(feature = "gcs")]
fn gcs(url: Url, bucket: String, common: Common) -> Result<ObjectStorage> {
    use object_store::gcp::GoogleCloudStorageBuilder;
    common.check_cloud("gcs")?;
    install_crypto_provider();
    let b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
    let store = common
        .apply(b)?
        .build()
        .map_err(|e| configure_error("gcs", e))?;
    let location = format!("gs://{bucket}");
    Ok(common.finish(
        Arc::new(store),
        "gcs",
        location,
        "https://storage.googleapis.com".to_owned(),
        Some(bucket),
        CompletionSupport::NoConnector,
    ))
}

#[cfg(not(feature = "gcs"))]
fn gcs(_url: Url, _bucket: String, _common: Common) -> Result<ObjectStorage> {
    Err(Error::Unsupported {
        backend: "gcs",
        op: "open gs:// locations",
        reason: "this build of encstore-objstore lacks its `gcs` cargo feature".to_owned(),
    })
}

#[cfg(feature = "azure")]
fn azure(url: Url, container: String, common: Common) -> Result<ObjectStorage> {
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    common.check_cloud("azure")?;
    install_crypto_provider();
    let b = common.apply(MicrosoftAzureBuilder::from_env().with_url(url.as_str()))?;
    let address = match (
        b.get_config_value(&AzureConfigKey::Endpoint),
        b.get_config_value(&AzureConfigKey::AccountName),
    ) {
        (Some(e), _) => sanitize(&e),
        _ if truthy(b.get_config_value(&AzureConfigKey::UseEmulator)) => {
            "http://127.0.0.1:10000".to_owned()
        }
        (None, Some(a)) => format!("https://{a}.blob.core.windows.net"),
        (None, None) => "https://(no account: set AZURE_STORAGE_ACCOUNT_NAME)".to_owned(),
    };
    let store = b.build().map_err(|e| configure_error("azure", e))?;
    let location = format!("az://{container}");
    Ok(common.finish(
        Arc::new(store),
        "azure",
        location,
        address,
        Some(container),
        CompletionSupport::NoConnector,
    ))
}

#[cfg(not(feature = "azure"))]
fn azure(_url: Url, _container: String, _common: Common) -> Result<ObjectStorage> {
    Err(Error::Unsupported {
        backend: "azure",
        op: "open az:// locations",
        reason: "this build of encstore-objstore lacks its `azure` cargo feature".to_owned(),
    })
}

// ---------------------------------------------------------------------------
// S3 in code.

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
    bucket: String,
    /// The `s3://` URL this came from, handed to `object_store`'s
    /// `with_url`.
    url: Option<String>,
    /// A custom endpoint (MinIO, SeaweedFS, R2); `None` for the
    /// environment's, else AWS.
    endpoint: Option<String>,
    /// The bucket's region; `None` for the environment's, else
    /// [`DEFAULT_REGION`].
    region: Option<String>,
    /// Static credentials; `None` leaves them to the environment and
    /// `object_store`'s chain.
    credentials: Option<Credentials>,
    /// Start from the `AWS_*` environment variables.
    from_env: bool,
    /// Prefix, lease, timeouts, retries, plain HTTP, extra options.
    common: Common,
}

/// Static S3 credentials. `Debug` never shows them; the secret parts are
/// held as secrets (zeroized on drop).
#[derive(Clone)]
struct Credentials {
    access_key_id: String,
    secret_access_key: SecretString,
    session_token: Option<SecretString>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The default retries give up on a dead endpoint within seconds:
    /// even with the longest back-off the jitter can pick, the sleeps add
    /// up to under 4 s (object_store's own default allows about a minute).
    #[test]
    fn default_retries_give_up_within_seconds() {
        let r = default_retry();
        let mut worst = Duration::ZERO;
        let mut next = r.backoff.init_backoff;
        for _ in 0..r.max_retries {
            worst += next;
            next = next.mul_f64(r.backoff.base).min(r.backoff.max_backoff);
        }
        assert!(worst < Duration::from_secs(4), "{worst:?}");
        assert!(r.retry_timeout <= Duration::from_secs(15));
        assert!(r.max_retries >= 3, "transient failures are still retried");
    }

    #[test]
    fn aws_endpoints_are_recognised() {
        for e in [
            "https://s3.us-east-1.amazonaws.com",
            "https://bucket.s3.eu-west-1.amazonaws.com/",
            "https://s3.cn-north-1.amazonaws.com.cn",
            "https://S3.AMAZONAWS.COM",
        ] {
            assert!(is_aws_endpoint(e), "{e}");
        }
        for e in [
            "http://127.0.0.1:8333",
            "https://amazonaws.com.evil.example",
            "https://s3.amazonaws.community",
            "https://account.r2.cloudflarestorage.com",
            "not a url",
        ] {
            assert!(!is_aws_endpoint(e), "{e}");
        }
    }

    #[test]
    fn completion_trust_follows_the_endpoint_and_the_setting() {
        let build = |endpoint: Option<&str>, mode| {
            let mut b = S3StorageBuilder::new("b")
                .credentials("id", "secret", None)
                .allow_http(true)
                .conditional_completion(mode);
            if let Some(e) = endpoint {
                b = b.endpoint(e);
            }
            b.build().unwrap().inner.completion
        };
        use CompletionSupport::{Trusted, Untrusted};
        use ConditionalCompletion::{Auto, Disabled, Enabled};
        assert_eq!(build(None, Auto), Trusted);
        assert_eq!(
            build(Some("https://s3.us-west-2.amazonaws.com"), Auto),
            Trusted
        );
        assert_eq!(build(Some("http://127.0.0.1:8333"), Auto), Untrusted);
        assert_eq!(build(Some("http://127.0.0.1:8333"), Enabled), Trusted);
        assert_eq!(build(None, Disabled), Untrusted);
        let mem = ObjectStorageBuilder::new(Arc::new(InMemory::new()))
            .conditional_completion(Enabled)
            .build()
            .unwrap();
        assert_eq!(mem.inner.completion, CompletionSupport::NoConnector);
    }

    #[test]
    fn part_sizes_are_checked() {
        let s3 = |part| {
            S3StorageBuilder::new("b")
                .credentials("id", "secret", None)
                .part_size(part)
                .build()
        };
        assert!(s3(MIN_PART_SIZE).is_ok());
        let e = s3(MIN_PART_SIZE - 1).unwrap_err().to_string();
        assert!(e.contains("below the 5 MiB"), "{e}");
        let e = s3(MAX_PART_SIZE + 1).unwrap_err().to_string();
        assert!(e.contains("outside 1 byte..=5 GiB"), "{e}");
        let mem = |part, conc| {
            ObjectStorageBuilder::new(Arc::new(InMemory::new()))
                .part_size(part)
                .upload_concurrency(conc)
                .build()
        };
        assert!(mem(1024, 1).is_ok(), "any store may take small parts");
        assert!(mem(0, 1).is_err());
        assert!(mem(1024, 0).is_err());
        assert!(mem(1024, 65).is_err());
        assert!(
            UrlStorageBuilder::new("memory:///p")
                .part_size(1024)
                .build()
                .is_ok()
        );
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
             credentials: \"static (redacted)\", allow_http: None, lease: 60s, \
             request_timeout: None, .. }"
        );
        // Options are secrets too, and an endpoint's user info is dropped.
        let b = S3StorageBuilder::new("bucket")
            .endpoint("https://user:pa55word@example.com:9000/")
            .option("aws_session_token", "tok-in-an-option");
        let dbg = format!("{b:?}");
        assert!(!dbg.contains("pa55word") && !dbg.contains("user"), "{dbg}");
        assert!(!dbg.contains("tok-in-an-option"), "{dbg}");
        assert!(dbg.contains("https://example.com:9000"), "{dbg}");
    }

    #[test]
    fn secret_is_held_as_a_secret() {
        let b = S3StorageBuilder::new("b").credentials("id", "the-secret", None);
        let c = b.credentials.as_ref().unwrap();
        // SecretString's own Debug redacts.
        assert!(!format!("{:?}", c.secret_access_key).contains("the-secret"));
        assert_eq!(c.secret_access_key.expose_secret(), "the-secret");
    }

    #[test]
    fn invalid_prefix_and_lease_are_refused() {
        match S3StorageBuilder::new("b").prefix("a/../b").build() {
            Err(Error::InvalidKey { .. }) => {}
            other => panic!("expected InvalidKey, got {other:?}"),
        }
        match S3StorageBuilder::new("b").prefix(".encstore-locks").build() {
            Err(Error::InvalidKey { .. }) => {}
            other => panic!("expected InvalidKey, got {other:?}"),
        }
        for lease in [
            Duration::ZERO,
            Duration::from_millis(99),
            Duration::from_secs(86_401),
        ] {
            let r = S3StorageBuilder::new("b")
                .credentials("id", "s", None)
                .lease_duration(lease)
                .build();
            match r {
                Err(Error::Backend { source, .. }) => {
                    assert!(source.to_string().contains("lease"), "{source}")
                }
                other => panic!("lease {lease:?}: expected a refusal, got {other:?}"),
            }
        }
        let r = UrlStorageBuilder::new("memory:///p")
            .lease_duration(Duration::MAX)
            .build();
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn plain_http_needs_allow_http() {
        let r = S3StorageBuilder::new("b")
            .endpoint("http://127.0.0.1:1")
            .credentials("id", "s", None)
            .build();
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("AWS_ALLOW_HTTP=true"), "{msg}");
        assert!(msg.contains("http://127.0.0.1:1"), "{msg}");
        S3StorageBuilder::new("b")
            .endpoint("http://127.0.0.1:1")
            .credentials("id", "s", None)
            .allow_http(true)
            .build()
            .unwrap();
        S3StorageBuilder::new("b")
            .endpoint("https://127.0.0.1:1")
            .credentials("id", "s", None)
            .build()
            .unwrap();
    }

    #[test]
    fn custom_endpoint_without_credentials_names_the_variables() {
        let msg = S3StorageBuilder::new("b")
            .endpoint("https://minio.example:9000")
            .build()
            .unwrap_err()
            .to_string();
        for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            assert!(msg.contains(var), "{msg}");
        }
        assert!(msg.contains("no S3 credentials"), "{msg}");
        let msg = S3StorageBuilder::new("b")
            .option("aws_access_key_id", "id")
            .build()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("AWS_SECRET_ACCESS_KEY is not"), "{msg}");
    }

    #[test]
    fn urls_are_parsed_by_object_store() {
        let s = UrlStorageBuilder::new("memory:///a/b/").build().unwrap();
        assert_eq!(s.prefix(), "a/b");
        assert_eq!(s.backend(), "memory");
        let s = S3StorageBuilder::new("x")
            .credentials("id", "s", None)
            .build()
            .unwrap();
        assert_eq!(s.bucket(), Some("x"));
        for bad in [
            "b/p",
            "s3://",
            "file:///x",
            "s3://user@b/p",
            "s3://user:pw@b/p",
            "s3://b/p?x=1",
            "s3://b:99/p",
            "https://example.com/b",
            "s3://b/a/../c",
        ] {
            let r = UrlStorageBuilder::new(bad).build();
            assert!(r.is_err(), "{bad:?} should be refused: {r:?}");
            let msg = r.unwrap_err().to_string();
            assert!(!msg.contains("pw@") && !msg.contains("user"), "{msg}");
        }
    }

    #[cfg(feature = "gcs")]
    #[test]
    fn gcs_locations_open_through_object_store() {
        let s = UrlStorageBuilder::new("gs://my-bucket/tls/prod/")
            .build()
            .unwrap();
        assert_eq!(s.backend(), "gcs");
        assert_eq!(s.bucket(), Some("my-bucket"));
        assert_eq!(s.prefix(), "tls/prod");
        assert_eq!(s.address(), "https://storage.googleapis.com");
        assert_eq!(
            s.object_store().to_string(),
            "GoogleCloudStorage(my-bucket)"
        );
    }

    #[cfg(feature = "azure")]
    #[test]
    fn azure_locations_open_through_object_store() {
        let s = UrlStorageBuilder::new("az://my-container/tls")
            .option("azure_storage_account_name", "myaccount")
            .option("azure_storage_account_key", "c2VjcmV0LWtleQ==")
            .build()
            .unwrap();
        assert_eq!(s.backend(), "azure");
        assert_eq!(s.bucket(), Some("my-container"));
        assert_eq!(s.prefix(), "tls");
        assert_eq!(s.address(), "https://myaccount.blob.core.windows.net");
        assert!(!format!("{s:?}").contains("c2VjcmV0LWtleQ"));
        let s = UrlStorageBuilder::new("az://c/p")
            .option("azure_storage_use_emulator", "true")
            .build()
            .unwrap();
        assert_eq!(s.address(), "http://127.0.0.1:10000");
        // An unknown option is refused, not ignored.
        let r = UrlStorageBuilder::new("az://c/p")
            .option("azure_no_such_option", "x")
            .build();
        assert!(r.is_err(), "{r:?}");
    }

    #[cfg(not(feature = "gcs"))]
    #[test]
    fn gcs_without_its_feature_is_unsupported() {
        match UrlStorageBuilder::new("gs://bucket/p").build() {
            Err(Error::Unsupported {
                backend: "gcs",
                reason,
                ..
            }) => {
                assert!(reason.contains("`gcs` cargo feature"), "{reason}")
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }

    #[cfg(not(feature = "azure"))]
    #[test]
    fn azure_without_its_feature_is_unsupported() {
        assert!(matches!(
            UrlStorageBuilder::new("az://container/p").build(),
            Err(Error::Unsupported {
                backend: "azure",
                ..
            })
        ));
    }
}
