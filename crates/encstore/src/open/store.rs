//! [`open_store`]: a [`StoreLocation`] becomes an `Arc<dyn Storage>`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use encstore_core::Storage;
use encstore_core::lease::{ENV_LOCK_LEASE, LeaseError, check_lease, lease_from_env};
use encstore_fs::FsStorage;

use super::{display_uri, uri_scheme};

/// An object store a location URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectStoreScheme {
    /// `s3://bucket/prefix`: S3 and S3-compatible servers, configured from
    /// `AWS_*` (endpoint, region, credentials, `AWS_ALLOW_HTTP`).
    S3,
    /// `gs://bucket/prefix`: Google Cloud Storage, configured from
    /// `GOOGLE_*` (`GOOGLE_SERVICE_ACCOUNT`, ...).
    Gcs,
    /// `az://container/prefix`: Azure Blob Storage, configured from
    /// `AZURE_*` (`AZURE_STORAGE_ACCOUNT_NAME`, ...).
    Azure,
    /// `memory:///prefix`: a new, empty in-memory store (each open is a
    /// different store; for tests and demonstrations).
    Memory,
}

impl ObjectStoreScheme {
    /// The scheme name as written in locations: `s3`, `gs`, `az`, `memory`.
    pub fn name(self) -> &'static str {
        match self {
            ObjectStoreScheme::S3 => "s3",
            ObjectStoreScheme::Gcs => "gs",
            ObjectStoreScheme::Azure => "az",
            ObjectStoreScheme::Memory => "memory",
        }
    }

    fn from_name(name: &str) -> Option<ObjectStoreScheme> {
        let n = name.to_ascii_lowercase();
        Some(match n.as_str() {
            "s3" => ObjectStoreScheme::S3,
            "gs" => ObjectStoreScheme::Gcs,
            "az" | "azure" => ObjectStoreScheme::Azure,
            "memory" => ObjectStoreScheme::Memory,
            _ => return None,
        })
    }
}

/// Shown as its URL prefix (`s3://`, ...).
impl fmt::Display for ObjectStoreScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.name())
    }
}

/// Where a store lives: what [`open_store`] opens, and what the tool's
/// `--store` takes.
///
/// Parsed from text ([`FromStr`]; usable as a clap value parser): a
/// directory path (absolute or relative), `file:///abs/path` (the path is
/// taken literally, without percent-decoding), `s3://bucket/prefix`,
/// `gs://bucket/prefix`, `az://container/prefix` or `memory:///prefix`. A
/// location never carries credentials (they come from the environment):
/// one with user information, a query or a fragment is refused. `Display`
/// shows the directory path or the URL.
///
/// ```
/// use encstore::open::{ObjectStoreScheme, StoreLocation};
///
/// let l: StoreLocation = "s3://my-bucket/tls/prod".parse().unwrap();
/// assert_eq!(l.object_store_scheme(), Some(ObjectStoreScheme::S3));
/// assert_eq!(l.to_string(), "s3://my-bucket/tls/prod");
/// let l: StoreLocation = "file:///var/lib/encstore".parse().unwrap();
/// assert_eq!(l, StoreLocation::directory("/var/lib/encstore"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreLocation {
    /// A local directory: the filesystem backend (encstore-fs).
    Directory(PathBuf),
    /// An object store URL (encstore-objstore, cargo feature `objstore`).
    ObjectStore {
        /// Which store.
        scheme: ObjectStoreScheme,
        /// The URL as given.
        url: String,
    },
}

impl StoreLocation {
    /// A directory location.
    pub fn directory(path: impl Into<PathBuf>) -> StoreLocation {
        StoreLocation::Directory(path.into())
    }

    /// The object store scheme, or `None` for a directory.
    pub fn object_store_scheme(&self) -> Option<ObjectStoreScheme> {
        match self {
            StoreLocation::Directory(_) => None,
            StoreLocation::ObjectStore { scheme, .. } => Some(*scheme),
        }
    }

    /// The location for messages: the path, or the URL through
    /// [`display_uri`](super::display_uri).
    pub fn display(&self) -> String {
        match self {
            StoreLocation::Directory(p) => p.display().to_string(),
            StoreLocation::ObjectStore { url, .. } => display_uri(url),
        }
    }
}

impl FromStr for StoreLocation {
    type Err = StoreLocationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(StoreLocationError::Empty);
        }
        let shown = || display_uri(s);
        let Some((name, rest)) =
            uri_scheme(s).and_then(|n| Some((n, s[n.len()..].strip_prefix("://")?)))
        else {
            return Ok(StoreLocation::Directory(PathBuf::from(s)));
        };
        if name.eq_ignore_ascii_case("file") {
            if !rest.starts_with('/') {
                return Err(StoreLocationError::FileUrlNotAbsolute { shown: shown() });
            }
            return Ok(StoreLocation::Directory(PathBuf::from(rest)));
        }
        let Some(scheme) = ObjectStoreScheme::from_name(name) else {
            return Err(StoreLocationError::UnsupportedScheme {
                scheme: name.to_owned(),
                shown: shown(),
            });
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(StoreLocationError::Credentials { shown: shown() });
        }
        if s.contains(['?', '#']) {
            return Err(StoreLocationError::QueryOrFragment { shown: shown() });
        }
        if authority.is_empty() && scheme != ObjectStoreScheme::Memory {
            return Err(StoreLocationError::NoBucket {
                scheme,
                shown: shown(),
            });
        }
        Ok(StoreLocation::ObjectStore {
            scheme,
            url: s.to_owned(),
        })
    }
}

/// The directory path, or the URL.
impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Directory(p) => write!(f, "{}", p.display()),
            StoreLocation::ObjectStore { url, .. } => f.write_str(url),
        }
    }
}

/// The forms a location may take, for messages.
const FORMS: &str = "use a directory, file:///abs/path, s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or memory:///prefix";

/// Why a store location was refused. Messages show the location through
/// [`display_uri`](super::display_uri), so never credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreLocationError {
    /// The location is empty.
    #[error("the store location is empty")]
    Empty,
    /// A URL scheme encstore does not store to.
    #[error("store location {shown:?}: unsupported scheme {scheme:?} ({FORMS})")]
    UnsupportedScheme {
        /// The scheme as written.
        scheme: String,
        /// The location, as shown.
        shown: String,
    },
    /// A `file:` URL without an absolute path.
    #[error("store location {shown:?}: a file: URL needs an absolute path (file:///abs/path)")]
    FileUrlNotAbsolute {
        /// The location, as shown.
        shown: String,
    },
    /// An object store URL without a bucket or container.
    #[error("store location {shown:?}: no bucket or container after {scheme} ({FORMS})")]
    NoBucket {
        /// The scheme.
        scheme: ObjectStoreScheme,
        /// The location, as shown.
        shown: String,
    },
    /// The URL carries user information (credentials).
    #[error(
        "store location {shown:?} carries credentials; give them in the environment instead (AWS_*, GOOGLE_*, AZURE_*)"
    )]
    Credentials {
        /// The location, as shown (without them).
        shown: String,
    },
    /// The URL has a query or a fragment.
    #[error(
        "store location {shown:?} has a query or a fragment; object store settings come from the environment (AWS_*, GOOGLE_*, AZURE_*)"
    )]
    QueryOrFragment {
        /// The location, as shown (without them).
        shown: String,
    },
}

/// How [`open_store`] opens a store.
///
/// The default opens for reading: a missing directory is an error
/// ([`OpenStoreError::Missing`]), not a new empty store; the lease comes
/// from `ENCSTORE_LOCK_LEASE_SECS` if set, else the backend's default
/// (60 s on the filesystem and on object stores).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenStoreOptions {
    /// Create a missing store directory (with mode 0700): for writes.
    /// Object store buckets are never created.
    pub create: bool,
    /// The lock lease, overriding the environment; 100 ms to 24 h.
    pub lease: Option<Duration>,
    /// Read the lease from `ENCSTORE_LOCK_LEASE_SECS` when
    /// [`lease`](Self::lease) is `None` (default `true`, as the tool does).
    /// Every process sharing a store must use the same lease.
    pub lease_from_env: bool,
}

impl Default for OpenStoreOptions {
    fn default() -> Self {
        OpenStoreOptions {
            create: false,
            lease: None,
            lease_from_env: true,
        }
    }
}

impl OpenStoreOptions {
    /// For reading: the default.
    pub fn read() -> OpenStoreOptions {
        OpenStoreOptions::default()
    }

    /// For writing: a missing directory is created.
    pub fn write() -> OpenStoreOptions {
        OpenStoreOptions::default().create(true)
    }

    /// Sets [`create`](Self::create).
    pub fn create(mut self, create: bool) -> OpenStoreOptions {
        self.create = create;
        self
    }

    /// Sets the lease, overriding the environment.
    pub fn lease(mut self, lease: Duration) -> OpenStoreOptions {
        self.lease = Some(lease);
        self
    }

    /// Sets [`lease_from_env`](Self::lease_from_env).
    pub fn lease_from_env(mut self, read: bool) -> OpenStoreOptions {
        self.lease_from_env = read;
        self
    }
}

/// Why a store could not be opened. Messages are one line, complete, name
/// the location, and never show credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenStoreError {
    /// The location text was refused.
    #[error(transparent)]
    Location(#[from] StoreLocationError),
    /// The store directory does not exist (and
    /// [`create`](OpenStoreOptions::create) was not set).
    #[error("store {} does not exist", .path.display())]
    Missing {
        /// The directory.
        path: PathBuf,
    },
    /// The location is something other than a directory.
    #[error("store {} is not a directory", .path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The store directory could not be examined.
    #[error("cannot open store {}: {error}", .path.display())]
    Inaccessible {
        /// The path.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// `ENCSTORE_LOCK_LEASE_SECS` holds something other than a number of
    /// seconds between 0.1 and 86400.
    #[error("{ENV_LOCK_LEASE}: {error}")]
    LeaseEnv {
        /// What was wrong.
        error: LeaseError,
    },
    /// [`OpenStoreOptions::lease`] is out of bounds.
    #[error("invalid lock lease: {error}")]
    Lease {
        /// What was wrong.
        error: LeaseError,
    },
    /// The location's scheme is known but this build lacks the
    /// `objstore` cargo feature.
    #[error(
        "{scheme} store locations are not supported by this build: enable the `objstore` cargo feature of the encstore crate"
    )]
    NotCompiled {
        /// The scheme.
        scheme: ObjectStoreScheme,
    },
    /// The backend refused the location or its configuration: the
    /// directory could not be created or probed, a filesystem that folds
    /// names, an object store URL or environment `object_store` refuses.
    /// `error` is the backend's typed error (its message is part of this
    /// one).
    #[error("cannot open store {location}: {error}")]
    Open {
        /// The location, as shown.
        location: String,
        /// The backend's error.
        error: encstore_core::Error,
    },
    /// The blocking task opening the directory was cancelled (the runtime
    /// is shutting down).
    #[error("opening the store was cancelled: the async runtime is shutting down")]
    Cancelled,
}

/// Opens the store at `location`.
///
/// - A directory: [`FsStorage`] (its checks run on tokio's blocking
///   pool). Unless `options.create`, a missing directory is
///   [`OpenStoreError::Missing`], so that a mistyped path never reads as an
///   empty store.
/// - `s3://`, `gs://`, `az://`, `memory://`: encstore-objstore's
///   `ObjectStorage`, configured by `object_store`'s builders from the
///   standard environment variables; no request is sent yet.
///
/// The lock lease: `options.lease`, else `ENCSTORE_LOCK_LEASE_SECS` (when
/// `options.lease_from_env`), else the backend's default.
///
/// # Errors
/// [`OpenStoreError`].
pub async fn open_store(
    location: &StoreLocation,
    options: &OpenStoreOptions,
) -> Result<Arc<dyn Storage>, OpenStoreError> {
    let lease = lease(options)?;
    match location {
        StoreLocation::Directory(path) => {
            let (path, create) = (path.clone(), options.create);
            match tokio::task::spawn_blocking(move || open_dir(&path, create, lease)).await {
                Ok(r) => r,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => Err(OpenStoreError::Cancelled),
            }
        }
        StoreLocation::ObjectStore { scheme, url } => open_object_store(*scheme, url, lease),
    }
}

/// The lease to configure, if any.
fn lease(options: &OpenStoreOptions) -> Result<Option<Duration>, OpenStoreError> {
    if let Some(l) = options.lease {
        return check_lease(l)
            .map(Some)
            .map_err(|error| OpenStoreError::Lease { error });
    }
    if options.lease_from_env {
        return lease_from_env().map_err(|error| OpenStoreError::LeaseEnv { error });
    }
    Ok(None)
}

fn open_dir(
    path: &Path,
    create: bool,
    lease: Option<Duration>,
) -> Result<Arc<dyn Storage>, OpenStoreError> {
    if path.as_os_str().is_empty() {
        return Err(StoreLocationError::Empty.into());
    }
    if !create {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(OpenStoreError::NotADirectory {
                    path: path.to_owned(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(OpenStoreError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(error) => {
                return Err(OpenStoreError::Inaccessible {
                    path: path.to_owned(),
                    error,
                });
            }
        }
    }
    let mut builder = FsStorage::builder(path);
    if let Some(lease) = lease {
        builder = builder.lease(lease);
    }
    let fs = builder.build().map_err(|error| OpenStoreError::Open {
        location: path.display().to_string(),
        error,
    })?;
    Ok(Arc::new(fs))
}

#[cfg(feature = "objstore")]
fn open_object_store(
    _scheme: ObjectStoreScheme,
    url: &str,
    lease: Option<Duration>,
) -> Result<Arc<dyn Storage>, OpenStoreError> {
    let mut builder = encstore_objstore::ObjectStorage::url_builder(url);
    if let Some(lease) = lease {
        builder = builder.lease_duration(lease);
    }
    let store = builder.build().map_err(|error| OpenStoreError::Open {
        location: display_uri(url),
        error,
    })?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "objstore"))]
fn open_object_store(
    scheme: ObjectStoreScheme,
    _url: &str,
    _lease: Option<Duration>,
) -> Result<Arc<dyn Storage>, OpenStoreError> {
    Err(OpenStoreError::NotCompiled { scheme })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(s: &str) -> StoreLocation {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> StoreLocationError {
        let e = s.parse::<StoreLocation>().unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
        e
    }

    #[test]
    fn locations_parse() {
        assert_eq!(
            loc("/var/lib/encstore"),
            StoreLocation::directory("/var/lib/encstore")
        );
        assert_eq!(loc("rel/dir"), StoreLocation::directory("rel/dir"));
        assert_eq!(loc("a:b"), StoreLocation::directory("a:b"));
        assert_eq!(loc("file:///abs/p"), StoreLocation::directory("/abs/p"));
        assert_eq!(loc("FILE:///abs/p"), StoreLocation::directory("/abs/p"));
        for (s, scheme) in [
            ("s3://bucket/tls/prod", ObjectStoreScheme::S3),
            ("S3://bucket", ObjectStoreScheme::S3),
            ("gs://bucket/p", ObjectStoreScheme::Gcs),
            ("az://container/p", ObjectStoreScheme::Azure),
            ("azure://container/p", ObjectStoreScheme::Azure),
            ("memory:///p", ObjectStoreScheme::Memory),
            ("memory://", ObjectStoreScheme::Memory),
        ] {
            let l = loc(s);
            assert_eq!(l.object_store_scheme(), Some(scheme), "{s}");
            assert_eq!(l.to_string(), s);
            assert_eq!(l.to_string().parse::<StoreLocation>().unwrap(), l);
        }
        assert_eq!(loc("/x").object_store_scheme(), None);
        assert_eq!(loc("/x").display(), "/x");
    }

    #[test]
    fn bad_locations_are_refused_clearly() {
        assert_eq!(err(""), StoreLocationError::Empty);
        assert!(matches!(
            err("file://rel/path"),
            StoreLocationError::FileUrlNotAbsolute { .. }
        ));
        let e = err("ftp://host/p");
        assert!(
            matches!(&e, StoreLocationError::UnsupportedScheme { scheme, .. } if scheme == "ftp"),
            "{e:?}"
        );
        assert!(e.to_string().contains("unsupported scheme \"ftp\""), "{e}");
        assert!(e.to_string().contains("s3://bucket/prefix"), "{e}");
        assert!(matches!(
            err("s3:///prefix"),
            StoreLocationError::NoBucket { .. }
        ));
        assert!(matches!(err("gs://"), StoreLocationError::NoBucket { .. }));
        let e = err("s3://AKIAEXAMPLE:SECRETKEY@bucket/p");
        assert!(matches!(e, StoreLocationError::Credentials { .. }), "{e:?}");
        assert!(!format!("{e} {e:?}").contains("SECRETKEY"));
        let e = err("az://container/p?sig=SECRETSIG");
        assert!(
            matches!(e, StoreLocationError::QueryOrFragment { .. }),
            "{e:?}"
        );
        assert!(!format!("{e} {e:?}").contains("SECRETSIG"));
        assert!(matches!(
            err("s3://b/p#f"),
            StoreLocationError::QueryOrFragment { .. }
        ));
    }

    #[test]
    fn options() {
        let o = OpenStoreOptions::default();
        assert!(!o.create && o.lease.is_none() && o.lease_from_env);
        assert_eq!(OpenStoreOptions::read(), o);
        assert!(OpenStoreOptions::write().create);
        let o = OpenStoreOptions::write()
            .lease(Duration::from_secs(5))
            .lease_from_env(false);
        assert_eq!(o.lease, Some(Duration::from_secs(5)));
        assert!(!o.lease_from_env);
        assert!(matches!(
            lease(&OpenStoreOptions::read().lease(Duration::ZERO)),
            Err(OpenStoreError::Lease {
                error: LeaseError::TooShort(_)
            })
        ));
        assert_eq!(
            lease(&OpenStoreOptions::read().lease_from_env(false)).unwrap(),
            None
        );
    }
}
