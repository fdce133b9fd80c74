//! [`MemoryStorage`]: an in-process backend for tests and embedding.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::key::{child_of, is_under, validate_key, validate_prefix};
use crate::lease::{LeaseError, check_lease};
use crate::storage::{
    Lease, ObjectInfo, Renewal, Storage, Version, Versioned, WriteCondition, new_lease_token,
};
use crate::stream::{self, ObjectStream, RangeRead, VersionedStream};

/// The default lock lease of [`MemoryStorage`].
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    version: u64,
    modified: SystemTime,
}

#[derive(Debug)]
struct LockEntry {
    token: String,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<String, Entry>,
    locks: HashMap<String, LockEntry>,
}

/// A [`Storage`] held in memory, shared by clones of the same value. It
/// meets the whole storage contract, including lock leases, so it stands in
/// for a real backend in tests and single-process embedding.
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    inner: Arc<Mutex<Inner>>,
    /// Source of versions: unique across the store's lifetime, so a
    /// version is never reused for different content.
    counter: Arc<AtomicU64>,
    lease: Duration,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStorage {
    /// An empty store with the default lease ([`DEFAULT_LEASE`]).
    pub fn new() -> Self {
        MemoryStorage {
            inner: Arc::new(Mutex::new(Inner::default())),
            counter: Arc::new(AtomicU64::new(1)),
            lease: DEFAULT_LEASE,
        }
    }

    /// An empty store whose locks last `lease` without renewal.
    ///
    /// # Errors
    /// When `lease` is outside [`MIN_LEASE`](crate::lease::MIN_LEASE) to
    /// [`MAX_LEASE`](crate::lease::MAX_LEASE).
    pub fn with_lease(lease: Duration) -> Result<Self, LeaseError> {
        let lease = check_lease(lease)?;
        Ok(MemoryStorage {
            lease,
            ..Self::new()
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied
        // update (every update is a single map operation), so recover.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry of `key` (its value is shared, not copied).
    fn entry(&self, key: &str) -> Result<Entry> {
        self.inner()
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| Error::not_found(key))
    }

    fn next_version(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

fn version_of(v: u64) -> Version {
    Version::new(v.to_string())
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn store(&self, key: &str, value: Bytes) -> Result<()> {
        validate_key(key)?;
        let version = self.next_version();
        self.inner().objects.insert(
            key.to_owned(),
            Entry {
                value,
                version,
                modified: SystemTime::now(),
            },
        );
        Ok(())
    }

    async fn store_if(
        &self,
        key: &str,
        value: Bytes,
        condition: &WriteCondition,
    ) -> Result<Version> {
        validate_key(key)?;
        let version = self.next_version();
        let mut inner = self.inner();
        let current = inner.objects.get(key).map(|e| version_of(e.version));
        let ok = match condition {
            WriteCondition::Absent => current.is_none(),
            WriteCondition::Matches(v) => current.as_ref() == Some(v),
        };
        if !ok {
            return Err(Error::PreconditionFailed {
                key: key.to_owned(),
            });
        }
        inner.objects.insert(
            key.to_owned(),
            Entry {
                value,
                version,
                modified: SystemTime::now(),
            },
        );
        Ok(version_of(version))
    }

    async fn load_versioned(&self, key: &str) -> Result<Versioned> {
        validate_key(key)?;
        let inner = self.inner();
        let e = inner
            .objects
            .get(key)
            .ok_or_else(|| Error::not_found(key))?;
        Ok(Versioned {
            value: e.value.clone(),
            version: version_of(e.version),
        })
    }

    /// A slice of the stored value (no copy).
    async fn load_range(&self, key: &str, range: Range<u64>) -> Result<RangeRead> {
        validate_key(key)?;
        stream::validate_range(key, &range)?;
        let value = self.entry(key)?.value;
        stream::slice_range(key, value, range)
    }

    /// The stored value in slices (no copy): a snapshot, so a later write
    /// does not change what the stream yields.
    async fn load_stream(&self, key: &str) -> Result<ObjectStream> {
        validate_key(key)?;
        Ok(ObjectStream::from_bytes(self.entry(key)?.value))
    }

    async fn load_stream_versioned(&self, key: &str) -> Result<VersionedStream> {
        validate_key(key)?;
        let e = self.entry(key)?;
        Ok(VersionedStream {
            stream: ObjectStream::from_bytes(e.value),
            version: version_of(e.version),
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let mut inner = self.inner();
        inner.objects.remove(key);
        inner.objects.retain(|k, _| !is_under(key, k));
        Ok(())
    }

    async fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        let inner = self.inner();
        let under = inner.objects.keys().filter(|k| is_under(prefix, k));
        if recursive {
            return Ok(under.cloned().collect());
        }
        let children: BTreeSet<&str> = under
            .filter_map(|k| child_of(prefix, k).map(|(c, _)| c))
            .collect();
        Ok(children.into_iter().map(str::to_owned).collect())
    }

    async fn stat(&self, key: &str) -> Result<ObjectInfo> {
        validate_key(key)?;
        let inner = self.inner();
        if let Some(e) = inner.objects.get(key) {
            return Ok(ObjectInfo {
                key: key.to_owned(),
                modified: Some(e.modified),
                size: e.value.len() as u64,
                terminal: true,
            });
        }
        let newest = inner
            .objects
            .iter()
            .filter(|(k, _)| is_under(key, k))
            .map(|(_, e)| e.modified)
            .max();
        match newest {
            Some(m) => Ok(ObjectInfo {
                key: key.to_owned(),
                modified: Some(m),
                size: 0,
                terminal: false,
            }),
            None => Err(Error::not_found(key)),
        }
    }

    async fn try_lock(&self, name: &str) -> Result<Lease> {
        validate_key(name)?;
        let token = new_lease_token()?;
        {
            let mut inner = self.inner();
            let now = Instant::now();
            if let Some(l) = inner.locks.get(name)
                && l.expires > now
            {
                return Err(Error::LockHeld {
                    name: name.to_owned(),
                });
            }
            inner.locks.insert(
                name.to_owned(),
                LockEntry {
                    token: token.clone(),
                    expires: now + self.lease,
                },
            );
        }
        let mut lease = Lease::new(name, token.clone(), self.lease);
        let store = self.clone();
        let name = name.to_owned();
        lease.start_renewal(move || {
            let store = store.clone();
            let name = name.clone();
            let token = token.clone();
            async move {
                let mut inner = store.inner();
                match inner.locks.get_mut(&name) {
                    Some(l) if l.token == token => {
                        l.expires = Instant::now() + store.lease;
                        Ok(Renewal::Renewed)
                    }
                    _ => Ok(Renewal::Lost),
                }
            }
        });
        Ok(lease)
    }

    async fn unlock(&self, lease: Lease) -> Result<()> {
        let mut inner = self.inner();
        match inner.locks.get(lease.name()) {
            // Our token still in place means nobody took the lock over,
            // even if the lease ran out meanwhile: releasing it is ours.
            Some(l) if l.token == lease.token() => {
                inner.locks.remove(lease.name());
                Ok(())
            }
            _ => {
                lease.mark_lost();
                Err(Error::LockNotHeld {
                    name: lease.name().to_owned(),
                })
            }
        }
    }

    fn lease_duration(&self) -> Duration {
        self.lease
    }
}

#[cfg(test)]
mod conformance_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::MemoryStorage;
    use crate::Storage;

    /// `cargo test -p encstore-core` runs the whole conformance suite
    /// against the in-memory backend.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_storage_conforms() {
        let store: Arc<dyn Storage> =
            Arc::new(MemoryStorage::with_lease(Duration::from_secs(1)).expect("a lease in bounds"));
        crate::conformance::run_all(store).await;
    }

    #[test]
    fn out_of_bounds_leases_are_refused() {
        assert!(MemoryStorage::with_lease(Duration::ZERO).is_err());
        assert!(MemoryStorage::with_lease(Duration::from_secs(90_000)).is_err());
    }
}
