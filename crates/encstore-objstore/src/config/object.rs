//! [`ObjectStorageBuilder`]: over any `ObjectStore` you built.

use std::fmt;
use std::sync::Arc;

use encstore_core::Result;
use object_store::ObjectStore;

use crate::storage::ObjectStorage;

use super::common::{Common, CompletionSupport};
#[cfg(doc)]
use super::{DEFAULT_LEASE, DEFAULT_OPERATION_TIMEOUT};
#[cfg(doc)]
use encstore_core::Error;

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
