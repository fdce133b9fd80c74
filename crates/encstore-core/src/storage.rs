//! The [`Storage`] trait and the types it speaks in.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::key::validate_key;
use crate::stream::{self, ByteStream, ObjectStream, RangeRead, VersionedStream};

/// An opaque version of a stored object, returned by
/// [`Storage::load_versioned`] and [`Storage::store_if`], and checked by
/// [`WriteCondition::Matches`].
///
/// A backend picks what it holds: an S3 ETag, a Redis counter, a SQL row
/// version, or a digest of the file's bytes and identity. Two versions are
/// equal only if the object did not change in between (backends must not
/// reuse a version for different content).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Version(Arc<str>);

impl Version {
    /// Wraps a backend's version string. For backend implementors.
    pub fn new(v: impl Into<Arc<str>>) -> Self {
        Version(v.into())
    }

    /// The backend's version string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({:?})", &*self.0)
    }
}

/// The condition under which [`Storage::store_if`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteCondition {
    /// Write only if the key does not exist (S3 `If-None-Match: *`).
    Absent,
    /// Write only if the object is still at this version (S3 `If-Match`).
    Matches(Version),
}

/// A loaded value together with its version.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The value.
    pub value: Bytes,
    /// The version to pass to [`WriteCondition::Matches`].
    pub version: Version,
}

/// What [`Storage::stat`] reports about a key: the stored object's (or
/// prefix's) metadata, not a keyset key's (that is
/// `encstore_tink::keyset::KeyInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key, as asked.
    pub key: String,
    /// When the object was last written, when the backend knows it.
    pub modified: Option<SystemTime>,
    /// The stored size in bytes (for an encrypted store, the ciphertext).
    /// Zero for a non-terminal key.
    pub size: u64,
    /// True for an object; false for a prefix that has keys under it
    /// (a "directory").
    pub terminal: bool,
}

/// The former name of [`ObjectInfo`].
#[deprecated(note = "renamed to `ObjectInfo` (object metadata, not a key's info)")]
pub type KeyInfo = ObjectInfo;

/// A storage backend, with certmagic's `Storage` semantics made precise.
/// `docs/storage-contract.md` is the normative text; in short:
///
/// - Keys are validated by [`validate_key`] on every
///   backend.
/// - [`store`](Storage::store) creates or overwrites, atomically: a reader
///   sees the old value or the new one, whole.
/// - [`delete`](Storage::delete) of a prefix deletes everything under it;
///   deleting a missing key succeeds (an error means the key may remain).
/// - [`list`](Storage::list) matches prefixes by whole components.
/// - Locks are leases: they expire if the holder dies, are renewed while
///   held, and [`unlock`](Storage::unlock) never releases a successor's lock.
/// - [`store_if`](Storage::store_if) is a compare-and-swap on the version.
/// - Large values stream: [`store_stream`](Storage::store_stream) and
///   [`store_stream_if`](Storage::store_stream_if) write from a
///   [`ByteStream`], [`load_stream`](Storage::load_stream) and
///   [`load_stream_versioned`](Storage::load_stream_versioned) read into
///   one, and [`load_range`](Storage::load_range) reads part of a value.
///   Their default implementations hold the whole value in memory;
///   backends that can do better override them (constant memory).
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// Creates or overwrites `key` with `value`.
    async fn store(&self, key: &str, value: Bytes) -> Result<()>;

    /// Writes `value` only if `condition` holds, and returns the new
    /// version. Fails with [`Error::PreconditionFailed`] otherwise, writing
    /// nothing.
    async fn store_if(
        &self,
        key: &str,
        value: Bytes,
        condition: &WriteCondition,
    ) -> Result<Version>;

    /// Loads the value of `key`, or [`Error::NotFound`].
    async fn load(&self, key: &str) -> Result<Bytes> {
        Ok(self.load_versioned(key).await?.value)
    }

    /// Loads the value of `key` with its version.
    async fn load_versioned(&self, key: &str) -> Result<Versioned>;

    /// Loads at most the first `len` bytes of `key`: the range `0..len`
    /// of [`load_range`](Storage::load_range), which the default calls.
    async fn load_head(&self, key: &str, len: usize) -> Result<Bytes> {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        Ok(self.load_range(key, 0..len).await?.bytes)
    }

    /// Loads the bytes `range` of the value of `key`, and the size of the
    /// whole value.
    ///
    /// The end is clamped to the size; a start equal to the size gives no
    /// bytes. A start beyond the size fails with
    /// [`Error::RangeNotSatisfiable`] and a start after the end with
    /// [`Error::InvalidRange`] (checked before any I/O); a missing key
    /// fails with [`Error::NotFound`]. Backends that can read a range
    /// override this and read only that range; the default loads the whole
    /// value and slices it.
    async fn load_range(&self, key: &str, range: Range<u64>) -> Result<RangeRead> {
        validate_key(key)?;
        stream::validate_range(key, &range)?;
        let value = self.load(key).await?;
        stream::slice_range(key, value, range)
    }

    /// Creates or overwrites `key` with the bytes of `body`.
    ///
    /// Atomic, like [`store`](Storage::store): if `body` yields an error
    /// (which is then returned as is), the write fails or the future is
    /// dropped before the body ends, nothing is written and the key keeps
    /// its old value; a reader sees the old value or the new one, whole.
    /// Backends that override this write in constant memory; the default
    /// collects the body in memory and calls [`store`](Storage::store).
    async fn store_stream(&self, key: &str, body: ByteStream) -> Result<()> {
        validate_key(key)?;
        let value = stream::collect(body).await?;
        self.store(key, value).await
    }

    /// [`store_stream`](Storage::store_stream) under a condition, with the
    /// guarantees of [`store_if`](Storage::store_if): the condition is
    /// checked when the write commits, after the whole body was consumed,
    /// so a write by anyone else in the meantime makes it fail with
    /// [`Error::PreconditionFailed`], writing nothing. A backend may also
    /// fail before consuming the body, when the condition already does not
    /// hold. Returns the new version.
    async fn store_stream_if(
        &self,
        key: &str,
        body: ByteStream,
        condition: &WriteCondition,
    ) -> Result<Version> {
        validate_key(key)?;
        let value = stream::collect(body).await?;
        self.store_if(key, value, condition).await
    }

    /// Streams the value of `key`, or fails with [`Error::NotFound`].
    ///
    /// The body yields exactly [`ObjectStream::size`] bytes of one value:
    /// the one stored when the load started, whole, or it ends with an
    /// error (never a mix of two values, never a silent prefix). Backends
    /// that override this hold a bounded number of chunks in memory; the
    /// default loads the whole value first.
    async fn load_stream(&self, key: &str) -> Result<ObjectStream> {
        Ok(ObjectStream::from_bytes(self.load(key).await?))
    }

    /// [`load_stream`](Storage::load_stream), with the version of the
    /// value it yields: a later
    /// [`store_stream_if`](Storage::store_stream_if) with
    /// [`WriteCondition::Matches`] of it succeeds only if nothing wrote the
    /// key meanwhile (the constant-memory read-modify-write of a rewrap).
    /// If the stream ends without error, the bytes it yielded are exactly
    /// the value at that version.
    async fn load_stream_versioned(&self, key: &str) -> Result<VersionedStream> {
        let v = self.load_versioned(key).await?;
        Ok(VersionedStream {
            stream: ObjectStream::from_bytes(v.value),
            version: v.version,
        })
    }

    /// Deletes `key`, or every key under it when it is a prefix. Deleting a
    /// key that does not exist succeeds.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Whether `key` exists, as an object or as a prefix of objects.
    async fn exists(&self, key: &str) -> Result<bool> {
        match self.stat(key).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Lists the keys under `prefix` (`""` for the whole store), sorted.
    ///
    /// Recursive: every object under the prefix. Non-recursive: the
    /// immediate children, objects and prefixes alike, each once.
    async fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<String>>;

    /// Describes `key`, or [`Error::NotFound`].
    async fn stat(&self, key: &str) -> Result<ObjectInfo>;

    /// Acquires the lock `name` if it is free (or its lease has expired),
    /// or fails with [`Error::LockHeld`]. The returned lease is renewed in
    /// the background until it is passed to [`unlock`](Storage::unlock) or
    /// dropped.
    async fn try_lock(&self, name: &str) -> Result<Lease>;

    /// Waits until the lock `name` is acquired. Dropping the future cancels
    /// the wait; nothing is acquired then.
    async fn lock(&self, name: &str) -> Result<Lease> {
        let mut backoff = LockBackoff::new();
        loop {
            match self.try_lock(name).await {
                Err(Error::LockHeld { .. }) => backoff.wait().await,
                other => return other,
            }
        }
    }

    /// Releases the lock held by `lease`. Fails with
    /// [`Error::LockNotHeld`] when the lease expired and the lock is gone or
    /// belongs to another owner; a successor's lock is never released.
    async fn unlock(&self, lease: Lease) -> Result<()>;

    /// How long a lock lease lasts without renewal.
    fn lease_duration(&self) -> Duration;
}

/// Poll back-off for [`Storage::lock`]: 10 ms doubling to 250 ms, with
/// jitter so that contenders do not march in step.
#[derive(Debug)]
pub struct LockBackoff {
    next: Duration,
}

impl LockBackoff {
    /// A fresh back-off.
    pub fn new() -> Self {
        LockBackoff {
            next: Duration::from_millis(10),
        }
    }

    /// Sleeps for the next interval.
    pub async fn wait(&mut self) {
        let jitter = random_u64() % (self.next.as_millis() as u64 / 2 + 1);
        tokio::time::sleep(self.next + Duration::from_millis(jitter)).await;
        self.next = (self.next * 2).min(Duration::from_millis(250));
    }
}

impl Default for LockBackoff {
    fn default() -> Self {
        Self::new()
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // A failing RNG only removes jitter.
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// A fresh, random owner token for a lock lease: 128 bits, hex.
///
/// # Errors
/// When the operating system's random number generator fails.
pub fn new_lease_token() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::backend("lock", "generate token", e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// What a renewal attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// The lease was extended by the backend's lease duration.
    Renewed,
    /// The lock belongs to someone else now (or is gone); renewal stops.
    Lost,
}

struct LeaseShared {
    /// Until when the holder may rely on the lock (local monotonic clock,
    /// measured from the start of the last successful renewal).
    valid_until: Mutex<Instant>,
    /// Set when a renewal found the lock taken over.
    lost: AtomicBool,
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A held lock: the proof of ownership that [`Storage::unlock`] takes.
///
/// While the lease exists, a background task renews it every third of the
/// lease duration. Dropping the lease stops the renewal without releasing
/// the lock, which then expires after the lease duration, just as if the
/// holder had died.
pub struct Lease {
    name: String,
    token: String,
    lease: Duration,
    shared: Arc<LeaseShared>,
    renewal: Option<AbortOnDrop>,
    state: Option<Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("lease", &self.lease)
            .field("held", &self.is_held())
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// A new lease on `name`, owned by `token`, valid for `lease` from now.
    /// For backend implementors; call [`Lease::start_renewal`] next.
    pub fn new(name: impl Into<String>, token: impl Into<String>, lease: Duration) -> Self {
        Self::acquired_at(name, token, lease, Instant::now())
    }

    /// A new lease valid for `lease` from `started`: the moment the backend
    /// began the write that took the lock. Backends whose lock record's
    /// expiry is computed before a slow write (a network request) use this,
    /// so that [`Lease::is_held`] never outlives the record.
    pub fn acquired_at(
        name: impl Into<String>,
        token: impl Into<String>,
        lease: Duration,
        started: Instant,
    ) -> Self {
        Lease {
            name: name.into(),
            token: token.into(),
            lease,
            shared: Arc::new(LeaseShared {
                valid_until: Mutex::new(valid_until(started, lease)),
                lost: AtomicBool::new(false),
            }),
            renewal: None,
            state: None,
        }
    }

    /// Attaches backend state (such as the lock object's ETag) that
    /// `unlock` reads back with [`Lease::state`].
    pub fn with_state(mut self, state: Arc<dyn Any + Send + Sync>) -> Self {
        self.state = Some(state);
        self
    }

    /// The backend state attached with [`Lease::with_state`].
    pub fn state<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.state.as_ref().and_then(|s| s.downcast_ref::<T>())
    }

    /// Starts renewing in the background: `renew` is called every third of
    /// the lease. It stops when the lease is dropped or unlocked, or when
    /// `renew` reports [`Renewal::Lost`]. Errors are retried at the next
    /// tick; if renewals keep failing the lease simply runs out.
    pub fn start_renewal<F, Fut>(&mut self, renew: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Renewal>> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let lease = self.lease;
        let period = (lease / 3).max(Duration::from_millis(10));
        let name = self.name.clone();
        let handle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let started = Instant::now();
                match renew().await {
                    Ok(Renewal::Renewed) => {
                        if let Ok(mut v) = shared.valid_until.lock() {
                            *v = valid_until(started, lease);
                        }
                    }
                    Ok(Renewal::Lost) => {
                        shared.lost.store(true, Ordering::SeqCst);
                        tracing_lost(&name);
                        return;
                    }
                    Err(_) => {
                        // Transient: try again next period. If the lease
                        // runs out first, is_held() turns false.
                    }
                }
            }
        });
        self.renewal = Some(AbortOnDrop(handle));
    }

    /// Stops renewing, leaving the lock to expire after the lease duration
    /// unless it is unlocked first. The lease can still be passed to
    /// `unlock`. Useful to hand a lock over gracefully, and to test expiry.
    pub fn stop_renewal(&mut self) {
        self.renewal = None;
    }

    /// The lock name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The owner token. Treat it as a capability: whoever has it can renew
    /// and release the lock.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The lease duration.
    pub fn lease_duration(&self) -> Duration {
        self.lease
    }

    /// True while the holder may rely on the lock: no renewal found it taken
    /// over, and the last successful renewal is less than a lease ago.
    /// Check it before acting on the lock's protection after a pause.
    pub fn is_held(&self) -> bool {
        if self.shared.lost.load(Ordering::SeqCst) {
            return false;
        }
        match self.shared.valid_until.lock() {
            Ok(v) => Instant::now() < *v,
            Err(_) => false,
        }
    }

    /// Marks the lease lost. For backends, when an operation finds the lock
    /// taken over.
    pub fn mark_lost(&self) {
        self.shared.lost.store(true, Ordering::SeqCst);
    }
}

/// `started + lease`, or `started` itself (already expired: the safe side)
/// if the sum does not fit. Backends bound their leases with
/// [`check_lease`](crate::check_lease), so this never happens for them.
fn valid_until(started: Instant, lease: Duration) -> Instant {
    started.checked_add(lease).unwrap_or(started)
}

fn tracing_lost(name: &str) {
    tracing::warn!(
        lock = name,
        "lock lease lost: another owner holds the lock now"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn storage_is_object_safe_and_shareable() {
        assert_send_sync::<std::sync::Arc<dyn Storage>>();
        assert_send_sync::<Lease>();
        assert_send_sync::<Error>();
    }

    #[test]
    fn lease_tokens_are_random_hex() {
        let a = new_lease_token().unwrap();
        let b = new_lease_token().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[tokio::test(start_paused = true)]
    async fn lease_debug_hides_the_token() {
        let lease = Lease::new("n", "secret-token", Duration::from_secs(5));
        let dbg = format!("{lease:?}");
        assert!(!dbg.contains("secret-token"), "{dbg}");
        assert_eq!(dbg, "Lease { name: \"n\", lease: 5s, held: true, .. }");
    }

    #[tokio::test(start_paused = true)]
    async fn lease_runs_out_without_renewal_and_renews_with_it() {
        let lease = Lease::new("n", "t", Duration::from_secs(3));
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!lease.is_held());

        let mut renewed = Lease::new("n", "t", Duration::from_secs(3));
        renewed.start_renewal(|| async { Ok(Renewal::Renewed) });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(renewed.is_held());

        let mut lost = Lease::new("n", "t", Duration::from_secs(3));
        lost.start_renewal(|| async { Ok(Renewal::Lost) });
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!lost.is_held());
    }
}
