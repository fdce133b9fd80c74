//! What every builder shares: the settings, their checks, and the surface of
//! `object_store`'s cloud builders that they drive.

use std::sync::Arc;
use std::time::Duration;

use encstore_core::{Error, Result, check_lease, validate_prefix};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::storage::{Inner, ObjectStorage};

use super::{
    ConditionalCompletion, DEFAULT_CONNECT_TIMEOUT, DEFAULT_LEASE,
    DEFAULT_MAX_BUFFERED_CONDITIONAL_WRITE, DEFAULT_OPERATION_TIMEOUT, DEFAULT_PART_SIZE,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_UPLOAD_CONCURRENCY, MAX_PART_SIZE, MIN_PART_SIZE,
    default_retry,
};

/// Settings every builder shares.
#[derive(Clone, Debug)]
pub(super) struct Common {
    /// Keys live at `prefix/key` (or `key` when empty).
    pub(super) prefix: String,
    /// How long a lock lease lasts without renewal.
    pub(super) lease: Duration,
    /// Deadline of one storage operation, retries included.
    pub(super) operation_timeout: Duration,
    /// Timeout of one HTTP request; `None`: the environment's, else the default.
    pub(super) request_timeout: Option<Duration>,
    /// Timeout of one connection attempt; as above.
    pub(super) connect_timeout: Option<Duration>,
    /// Retries; `None` for [`default_retry`].
    pub(super) retry: Option<RetryConfig>,
    /// Plain-HTTP endpoints; `None` leaves it to the environment.
    pub(super) allow_http: Option<bool>,
    /// Extra `object_store` configuration keys (values may be secrets).
    pub(super) options: Vec<(String, SecretString)>,
    /// Part size, upload concurrency and the buffered conditional bound of
    /// streamed writes.
    pub(super) stream: StreamSettings,
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
    pub(super) fn new(prefix: String) -> Self {
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
    pub(super) fn check(&self) -> Result<()> {
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
    pub(super) fn check_cloud(&self, backend: &'static str) -> Result<()> {
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
    pub(super) fn apply<B: CloudBuilder>(&self, mut b: B) -> Result<B> {
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
    pub(super) fn finish(
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
pub(super) fn duration_value(d: Duration) -> String {
    format!("{}ns", d.as_nanos())
}

pub(super) fn trim_prefix(p: &str) -> String {
    p.trim_matches('/').to_owned()
}

/// True for the values `object_store` reads as `true`.
pub(super) fn truthy(v: Option<String>) -> bool {
    v.is_some_and(|v| {
        matches!(
            v.to_ascii_lowercase().as_str(),
            "1" | "true" | "on" | "yes" | "y"
        )
    })
}

/// `url` without user, password, query or fragment, for messages.
pub(super) fn sanitize(url: &str) -> String {
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
pub(super) fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

pub(super) fn configure_error(
    backend: &'static str,
    e: impl Into<encstore_core::BoxError>,
) -> Error {
    Error::backend(backend, "configure", e)
}

/// The common surface of `object_store`'s cloud builders that this module
/// drives.
pub(super) trait CloudBuilder: Sized {
    /// The backend's short name, for errors.
    const BACKEND: &'static str;
    fn client(self, key: ClientConfigKey, value: String) -> Self;
    fn client_value(&self, key: &ClientConfigKey) -> Option<String>;
    fn retry(self, retry: RetryConfig) -> Self;
    fn option(self, key: &str, value: &str) -> Result<Self>;
}

/// Implements [`CloudBuilder`] for one of `object_store`'s builders, whose
/// configuration keys are the enum `$key` (with a `Client` variant).
macro_rules! cloud_builder {
    ($builder:ty, $key:ty, $backend:literal) => {
        impl CloudBuilder for $builder {
            const BACKEND: &'static str = $backend;
            fn client(self, key: ClientConfigKey, value: String) -> Self {
                self.with_config(<$key>::Client(key), value)
            }
            fn client_value(&self, key: &ClientConfigKey) -> Option<String> {
                self.get_config_value(&<$key>::Client(*key))
            }
            fn retry(self, retry: RetryConfig) -> Self {
                self.with_retry(retry)
            }
            fn option(self, key: &str, value: &str) -> Result<Self> {
                let k: $key = key
                    .to_ascii_lowercase()
                    .parse()
                    .map_err(|e| configure_error(Self::BACKEND, e))?;
                Ok(self.with_config(k, value))
            }
        }
    };
}

cloud_builder!(AmazonS3Builder, AmazonS3ConfigKey, "s3");
#[cfg(feature = "gcs")]
cloud_builder!(
    object_store::gcp::GoogleCloudStorageBuilder,
    object_store::gcp::GoogleConfigKey,
    "gcs"
);
#[cfg(feature = "azure")]
cloud_builder!(
    object_store::azure::MicrosoftAzureBuilder,
    object_store::azure::AzureConfigKey,
    "azure"
);

/// reqwest is built without a bundled TLS crypto provider (to avoid
/// aws-lc-rs); install ring as the process default unless the application
/// already chose one.
pub(super) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: some provider is
        // installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
