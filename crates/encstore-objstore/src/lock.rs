//! Leased locks on conditional writes (S3's `If-None-Match` / `If-Match`,
//! GCS generations, Azure ETags: `object_store`'s `PutMode`).
//!
//! A lock `name` is the object `prefix/.encstore-locks/<name>`, holding a
//! JSON [`LockRecord`]: the owner's random token, the expiry as wall-clock
//! Unix milliseconds, and the host and PID for operators.
//!
//! - **Acquire**: `PUT` with `If-None-Match: *`. If the object exists, read
//!   it: unexpired means [`Error::LockHeld`]; expired (or released) means
//!   take it over with `PUT If-Match: <the ETag just read>`. Of two
//!   contenders for one expired lock, only the first `PUT` matches the ETag;
//!   the other gets 412 and reports `LockHeld`.
//! - **Renew** (every third of the lease): `PUT If-Match: <our ETag>` with a
//!   fresh expiry. 412 means someone took the lock over: the lease is lost.
//! - **Unlock**: `PUT If-Match: <our ETag>` of a *released* record (empty
//!   token, expiry 0), which any contender treats as free. A holder whose
//!   lease expired and was taken over gets 412, and the successor's lock is
//!   untouched.
//!
//! Unlock overwrites instead of deleting: `object_store` has no conditional
//! delete, `DeleteObject` with `If-Match` is newer and less widely
//! implemented than conditional `PutObject`, and a server that ignored the
//! header would delete a successor's lock. A conditional `PUT` is what
//! acquisition already relies on, so unlock is exactly as safe as the lock
//! itself on every server. The cost is one small object per lock name left
//! behind.
//!
//! A request that the server applied but whose response was lost (a
//! timeout, a retried 5xx) leaves us with a stale ETag. Only the holder
//! knows its token, so when a conditional write fails we read the record:
//! if it carries our token, the write was ours, and we carry on from its
//! ETag.
//!
//! A lock object that is not a lock record (damaged, or written by
//! something else) is treated as held until it is one lease old by the
//! store's modification time, and as stale after that, as the filesystem
//! backend does; it is then taken over like an expired lock.
//!
//! Clocks: expiry is judged by the contender's wall clock against the
//! holder's wall-clock expiry (and, for unreadable records, the store's
//! modification time). Hosts must keep their clocks within a small fraction
//! of the lease (NTP); a host whose clock runs ahead by `d` can take a lock
//! `d` early.
//!
//! The lease is bounded by [`encstore_core::check_lease`] when the store is
//! built, and expiries are computed with checked arithmetic
//! ([`encstore_core::lease::expiry_unix_ms`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use encstore_core::lease::expiry_unix_ms;
use encstore_core::{Error, Lease, Renewal, Result, Version, new_lease_token};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode};
use serde::{Deserialize, Serialize};

use crate::error::{Class, Kind, classify};
use crate::storage::ObjectStorage;
use crate::version::update_version;

/// The directory (under the store's prefix) that holds lock objects.
pub const LOCK_DIR: &str = ".encstore-locks";

/// The content of a lock object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct LockRecord {
    /// The holder's random token; empty for a released lock.
    pub(crate) token: String,
    /// Wall-clock expiry, in Unix milliseconds; 0 for a released lock.
    pub(crate) expires_unix_ms: u64,
    /// The holder's host name (informational).
    pub(crate) host: String,
    /// The holder's process ID (informational).
    pub(crate) pid: u32,
}

impl LockRecord {
    fn is_free(&self, now_ms: u64) -> bool {
        self.token.is_empty() || self.expires_unix_ms <= now_ms
    }
}

/// What a [`Lease`] carries for `unlock` and renewal: the lock object's
/// current version (ETag), updated by every renewal.
#[derive(Debug)]
struct LockState {
    version: Mutex<Version>,
}

impl LockState {
    fn get(&self) -> Version {
        match self.version.lock() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, v: Version) {
        match self.version.lock() {
            Ok(mut g) => *g = v,
            Err(p) => *p.into_inner() = v,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

/// What a lock object holds.
#[derive(Debug)]
enum Stored {
    /// A lock record.
    Record(LockRecord),
    /// Something that is not a lock record, last modified at this time.
    Unparsable(SystemTime),
}

impl Stored {
    /// Whether a contender may take the lock over.
    fn is_free(&self, lease: Duration) -> bool {
        match self {
            Stored::Record(rec) => rec.is_free(now_ms()),
            Stored::Unparsable(modified) => SystemTime::now()
                .duration_since(*modified)
                .is_ok_and(|age| age >= lease),
        }
    }

    fn token(&self) -> Option<&str> {
        match self {
            Stored::Record(rec) => Some(&rec.token),
            Stored::Unparsable(_) => None,
        }
    }
}

impl ObjectStorage {
    fn lock_path(&self, name: &str) -> Result<Path> {
        self.path(&format!("{LOCK_DIR}/{name}"))
    }

    /// A lock record for `token` (empty: released), expiring `lease` from
    /// now.
    fn record(&self, token: &str, lease: Duration) -> Result<Bytes> {
        let rec = LockRecord {
            token: token.to_owned(),
            expires_unix_ms: if token.is_empty() {
                0
            } else {
                expiry_unix_ms(SystemTime::now(), lease)?
            },
            host: self.inner.host.clone(),
            pid: self.inner.pid,
        };
        serde_json::to_vec(&rec)
            .map(Bytes::from)
            .map_err(|e| Error::backend(self.inner.backend, "lock", e))
    }

    /// Reads the lock object and its version, or `None` when there is none.
    async fn read_lock(&self, name: &str, path: &Path) -> Result<Option<(Stored, Version)>> {
        let r = match self.inner.store.get(path).await {
            Ok(r) => r,
            Err(e) if classify(&e) == Class::NotFound => return Ok(None),
            Err(e) => return Err(self.map("read lock", name, Kind::Other, e)),
        };
        let version = self.version_of(r.meta.e_tag.clone(), r.meta.version.clone(), "read lock")?;
        let modified = SystemTime::from(r.meta.last_modified);
        let body = r
            .bytes()
            .await
            .map_err(|e| self.map("read lock", name, Kind::Other, e))?;
        let stored = match serde_json::from_slice::<LockRecord>(&body) {
            Ok(rec) => Stored::Record(rec),
            Err(e) => {
                tracing::debug!(
                    store = %self.inner.location,
                    lock = name,
                    error = %e,
                    "the lock object is not an encstore lock record; it counts as held until \
                     it is one lease old"
                );
                Stored::Unparsable(modified)
            }
        };
        Ok(Some((stored, version)))
    }

    /// One conditional write of the lock object. `Ok(None)` when the
    /// condition failed.
    async fn put_lock(&self, path: &Path, body: Bytes, mode: PutMode) -> Result<Option<Version>> {
        match self
            .inner
            .store
            .put_opts(path, body.into(), mode.into())
            .await
        {
            Ok(r) => Ok(Some(self.version_of(r.e_tag, r.version, "lock")?)),
            Err(e) if matches!(classify(&e), Class::Precondition | Class::NotFound) => Ok(None),
            Err(e) => Err(self.map("lock", path.as_ref(), Kind::Other, e)),
        }
    }

    /// Writes our record conditionally on `expected`; if that fails but
    /// the record still carries `token` (our own earlier write landed
    /// without us seeing its ETag), retries once from the record's
    /// current version. `Ok(None)`: the lock is someone else's, or gone.
    async fn replace_own(
        &self,
        name: &str,
        path: &Path,
        token: &str,
        expected: Version,
        body: Bytes,
    ) -> Result<Option<Version>> {
        let mode = PutMode::Update(update_version(&expected));
        if let Some(v) = self.put_lock(path, body.clone(), mode).await? {
            return Ok(Some(v));
        }
        match self.read_lock(name, path).await? {
            Some((stored, current)) if stored.token() == Some(token) && current != expected => {
                let mode = PutMode::Update(update_version(&current));
                self.put_lock(path, body, mode).await
            }
            _ => Ok(None),
        }
    }
}

/// See the module documentation.
pub(crate) async fn try_lock(store: &ObjectStorage, name: &str) -> Result<Lease> {
    let path = store.lock_path(name)?;
    let token = new_lease_token()?;
    let lease = store.inner.lease;
    let held = || Error::LockHeld {
        name: name.to_owned(),
    };

    // A lock object deleted between our create and our read (by an
    // operator, say) sends us round again; more than a few rounds means
    // something keeps churning it, and we report it held.
    for _ in 0..3 {
        // The record's expiry counts from before the request; so does the
        // holder's own view of the lease.
        let started = tokio::time::Instant::now();
        let body = store.record(&token, lease)?;
        if let Some(v) = store.put_lock(&path, body, PutMode::Create).await? {
            return Ok(leased(store, name, token, v, started));
        }
        let Some((stored, current)) = store.read_lock(name, &path).await? else {
            continue;
        };
        if stored.token() == Some(token.as_str()) {
            // Our create landed (and was retried): it is ours.
            return Ok(leased(store, name, token, current, started));
        }
        if !stored.is_free(lease) {
            return Err(held());
        }
        if let Stored::Unparsable(modified) = &stored {
            tracing::warn!(
                store = %store.inner.location,
                lock = name,
                modified = ?modified,
                "taking over a stale lock object that is not an encstore lock record"
            );
        }
        // Expired or released: take it over, on the condition that nobody
        // else did since we read it.
        let started = tokio::time::Instant::now();
        let body = store.record(&token, lease)?;
        return match store
            .replace_own(name, &path, &token, current, body)
            .await?
        {
            Some(v) => Ok(leased(store, name, token, v, started)),
            None => Err(held()),
        };
    }
    Err(held())
}

fn leased(
    store: &ObjectStorage,
    name: &str,
    token: String,
    version: Version,
    started: tokio::time::Instant,
) -> Lease {
    let lease_duration = store.inner.lease;
    let state = Arc::new(LockState {
        version: Mutex::new(version),
    });
    let mut lease = Lease::acquired_at(name, token.clone(), lease_duration, started)
        .with_state(Arc::clone(&state) as Arc<dyn std::any::Any + Send + Sync>);
    let store = store.clone();
    let name = name.to_owned();
    lease.start_renewal(move || {
        let store = store.clone();
        let name = name.clone();
        let token = token.clone();
        let state = Arc::clone(&state);
        async move {
            // A renewal slower than a third of the lease is no use: the next
            // one is due. Give up on it and let the next tick try again.
            let budget = (lease_duration / 3).max(Duration::from_millis(10));
            match tokio::time::timeout(budget, renew(&store, &name, &token, &state)).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout {
                    backend: store.inner.backend,
                    op: "renew lock",
                }),
            }
        }
    });
    lease
}

async fn renew(
    store: &ObjectStorage,
    name: &str,
    token: &str,
    state: &LockState,
) -> Result<Renewal> {
    let path = store.lock_path(name)?;
    let body = store.record(token, store.inner.lease)?;
    match store
        .replace_own(name, &path, token, state.get(), body)
        .await?
    {
        Some(v) => {
            state.set(v);
            Ok(Renewal::Renewed)
        }
        None => Ok(Renewal::Lost),
    }
}

/// See the module documentation.
pub(crate) async fn unlock(store: &ObjectStorage, mut lease: Lease) -> Result<()> {
    lease.stop_renewal();
    let not_held = |lease: &Lease| {
        lease.mark_lost();
        Error::LockNotHeld {
            name: lease.name().to_owned(),
        }
    };
    let Some(state) = lease.state::<LockState>() else {
        // Not a lease of this backend.
        return Err(not_held(&lease));
    };
    let expected = state.get();
    let path = store.lock_path(lease.name())?;
    let released = store.record("", Duration::ZERO)?;
    match store
        .replace_own(lease.name(), &path, lease.token(), expected, released)
        .await?
    {
        Some(_) => Ok(()),
        None => Err(not_held(&lease)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_free_rules() {
        let rec = LockRecord {
            token: "t".into(),
            expires_unix_ms: 1000,
            host: "h".into(),
            pid: 7,
        };
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(
            json,
            r#"{"token":"t","expires_unix_ms":1000,"host":"h","pid":7}"#
        );
        let back: LockRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rec);
        assert!(!rec.is_free(999));
        assert!(rec.is_free(1000));
        let released = LockRecord {
            token: String::new(),
            expires_unix_ms: 0,
            ..rec
        };
        assert!(released.is_free(0));
    }
}
