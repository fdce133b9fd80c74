//! [`UrlStorageBuilder`]: from a location URL (`s3://`, `gs://`, `az://`,
//! `memory://`), with everything else from the environment.

use std::sync::Arc;
use std::time::Duration;

use encstore_core::Result;
use object_store::ObjectStoreScheme;
use object_store::memory::InMemory;
use url::Url;

use crate::storage::ObjectStorage;

use super::common::{Common, CompletionSupport, configure_error, redact_userinfo, trim_prefix};
use super::s3::S3StorageBuilder;
#[cfg(doc)]
use super::{DEFAULT_LEASE, DEFAULT_OPERATION_TIMEOUT};
#[cfg(doc)]
use encstore_core::Error;

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
    use super::common::install_crypto_provider;
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
    Err(encstore_core::Error::Unsupported {
        backend: "gcs",
        op: "open gs:// locations",
        reason: "this build of encstore-objstore lacks its `gcs` cargo feature".to_owned(),
    })
}

#[cfg(feature = "azure")]
fn azure(url: Url, container: String, common: Common) -> Result<ObjectStorage> {
    use super::common::{install_crypto_provider, sanitize, truthy};
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
    Err(encstore_core::Error::Unsupported {
        backend: "azure",
        op: "open az:// locations",
        reason: "this build of encstore-objstore lacks its `azure` cargo feature".to_owned(),
    })
}
