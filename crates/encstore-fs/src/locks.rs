//! Lock files: leased records under `.encstore-locks/`, changed only under
//! the lock's `flock` guard, and held with a kernel lock (`flock` on the
//! record itself) for as long as the holder keeps renewing.
//!
//! Who may take a lock over:
//!
//! - a record whose holder's kernel lock is held (the holder process is
//!   alive, on this host or on a shared filesystem whose locks work): only
//!   an acquirer that has itself watched that very record go unrenewed for
//!   a whole lease, on its own monotonic clock. The wall-clock expiry in the
//!   record is ignored, so a clock step on either side changes nothing.
//! - a record nobody holds a kernel lock on (the holder died, stopped
//!   renewing, or is on a host whose locks this one cannot see): once its
//!   wall-clock expiry has passed, or once the acquirer watched it go
//!   unrenewed for a lease.

use std::collections::HashMap;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use encstore_core::lease::expiry_unix_ms;
use encstore_core::{Error, Renewal, Result};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use crate::guard::acquire_guard;
use crate::paths::{backend, ctx, is_missing, open_read_nofollow, random_hex16};
use crate::{BACKEND, FILE_MODE, Inner, TEMP_PREFIX};

/// The lock file's content.
#[derive(Debug, Serialize, Deserialize)]
struct LockRecord {
    /// The lock name (the file name is only its hash).
    name: String,
    /// The holder's random token: only its holder renews or releases.
    token: String,
    /// Wall-clock expiry, in milliseconds since the Unix epoch.
    expires_unix_ms: u64,
    /// The holder's process ID, for operators.
    pid: u32,
    /// The holder's host name, for operators.
    host: String,
}

/// The record file a holder keeps open, with an exclusive `flock` on it,
/// while it holds the lock; renewal swaps in the new record's file. Closing
/// it (the renewal stopping, the process dying) releases the kernel lock.
pub(crate) type HeldRecord = Mutex<File>;

/// What an acquirer found in a lock file.
struct Found {
    bytes: Vec<u8>,
    meta: Metadata,
    /// Someone holds the record's kernel lock.
    live: bool,
}

/// A lock record's identity: any write of the record changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    content: u64,
}

impl Found {
    fn fingerprint(&self) -> Fingerprint {
        let m = &self.meta;
        Fingerprint {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            content: xxh3_64(&self.bytes),
        }
    }
}

/// A record seen by this store: since when (monotonic), and when last.
#[derive(Debug, Clone, Copy)]
struct Sighting {
    record: Fingerprint,
    since: Instant,
    last: Instant,
}

/// When this store first saw each lock's current record, on its monotonic
/// clock. Entries go when the lock is taken or found free, and are pruned
/// when nobody looked at them for a lease (which only restarts a watch,
/// delaying a takeover, never hastening one).
#[derive(Debug, Default)]
pub(crate) struct Sightings(Mutex<HashMap<String, Sighting>>);

/// Above this many entries, stale ones are pruned.
const SIGHTINGS_PRUNE_AT: usize = 1024;

impl Sightings {
    /// How long `record` has been lock `name`'s record, as far as this
    /// store has watched: zero at first sight and after any change.
    fn unchanged_for(&self, name: &str, record: Fingerprint, lease: Duration) -> Duration {
        let now = Instant::now();
        let mut map = match self.0.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if map.len() >= SIGHTINGS_PRUNE_AT {
            map.retain(|_, s| now.duration_since(s.last) < lease);
        }
        let s = map.entry(name.to_owned()).or_insert(Sighting {
            record,
            since: now,
            last: now,
        });
        if s.record != record {
            *s = Sighting {
                record,
                since: now,
                last: now,
            };
        }
        s.last = now;
        now.duration_since(s.since)
    }

    fn forget(&self, name: &str) {
        match self.0.lock() {
            Ok(mut m) => m.remove(name),
            Err(p) => p.into_inner().remove(name),
        };
    }
}

/// Wall-clock now in milliseconds since the epoch (0 before 1970, so that
/// nothing looks expired; saturating far in the future).
fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Inner {
    /// The lock file and the guard file of lock `name`.
    pub(crate) fn lock_paths(&self, name: &str) -> (PathBuf, PathBuf) {
        let h = format!("{:032x}", xxh3_128(name.as_bytes()));
        (
            self.locks.join(format!("{h}.lock")),
            self.locks.join(format!("{h}.guard")),
        )
    }

    /// How long a lock operation waits for the lock's guard.
    fn lock_guard_wait(&self) -> Duration {
        (self.lease / 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// Reads the lock file and probes its kernel lock (with a shared
    /// `flock` attempt, released at once): `None` when there is no lock
    /// file.
    fn inspect_lock(&self, path: &Path) -> io::Result<Option<Found>> {
        let mut file = match open_read_nofollow(path) {
            Ok(f) => f,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(ctx(path, e)),
        };
        let meta = file.metadata().map_err(|e| ctx(path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| ctx(path, e))?;
        let live = match file.try_lock_shared() {
            Ok(()) => false,
            Err(fs::TryLockError::WouldBlock) => true,
            Err(fs::TryLockError::Error(e)) => {
                tracing::debug!(path = %path.display(), error = %e,
                    "cannot probe a lock holder's kernel lock; deciding by the record's expiry");
                false
            }
        };
        Ok(Some(Found { bytes, meta, live }))
    }

    /// Whether a record is past its wall-clock expiry; an unparsable one (a
    /// foreign or damaged file) once it is a lease old by mtime.
    fn expired_by_clock(&self, found: &Found) -> bool {
        match serde_json::from_slice::<LockRecord>(&found.bytes) {
            Ok(rec) => rec.expires_unix_ms <= now_unix_ms(),
            Err(_) => found
                .meta
                .modified()
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age >= self.lease),
        }
    }

    /// Writes a complete lock record to a fresh temporary file, takes the
    /// holder's kernel lock on it, and puts it in place: exclusively
    /// (`link(2)`, fails if the lock file exists) or by atomic replacement
    /// (`rename(2)`). Returns the record file, still locked.
    fn write_lock(
        &self,
        path: &Path,
        token: &str,
        name: &str,
        expires_unix_ms: u64,
        exclusive: bool,
    ) -> io::Result<File> {
        let record = LockRecord {
            name: name.to_owned(),
            token: token.to_owned(),
            expires_unix_ms,
            pid: std::process::id(),
            host: self.host.clone(),
        };
        let json = serde_json::to_vec(&record).map_err(io::Error::other)?;
        let temp = self.locks.join(format!("{TEMP_PREFIX}{}", random_hex16()?));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&temp)
            .map_err(|e| ctx(&temp, e))?;
        let result = (|| {
            self.conv.owner.give_file(&file, &temp)?;
            // Locked before it is in place, so a record in place is never
            // without its holder's kernel lock while the holder lives.
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(io::Error::other("a fresh lock record is already locked"));
                }
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
            file.write_all(&json)?;
            file.sync_all()?;
            if exclusive {
                fs::hard_link(&temp, path)?;
                fs::remove_file(&temp)
            } else {
                fs::rename(&temp, path)
            }
        })();
        match result {
            Ok(()) => Ok(file),
            Err(e) => {
                drop(file);
                let _ = fs::remove_file(&temp);
                Err(ctx(path, e))
            }
        }
    }

    /// Takes lock `name` for `token`; returns the locked record file.
    pub(crate) fn try_lock(&self, name: &str, token: &str) -> Result<File> {
        let op = "try_lock";
        let held = || Error::LockHeld {
            name: name.to_owned(),
        };
        let (path, guard_path) = self.lock_paths(name);
        let Some(_guard) = acquire_guard(&guard_path, self.lock_guard_wait(), self.conv.owner)
            .map_err(|e| backend(op, e))?
        else {
            return Err(held());
        };
        let exclusive = match self.inspect_lock(&path).map_err(|e| backend(op, e))? {
            None => true,
            Some(found) => {
                let watched = self
                    .sightings
                    .unchanged_for(name, found.fingerprint(), self.lease);
                let stalled = watched >= self.lease;
                if stalled {
                    tracing::info!(
                        lock = name,
                        live = found.live,
                        "taking over a lock whose record was not renewed for a whole lease"
                    );
                } else if !found.live && self.expired_by_clock(&found) {
                    tracing::info!(lock = name, "taking over an expired lock");
                } else {
                    return Err(held());
                }
                false
            }
        };
        let expires = expiry_unix_ms(SystemTime::now(), self.lease)?;
        match self.write_lock(&path, token, name, expires, exclusive) {
            Ok(file) => {
                self.sightings.forget(name);
                Ok(file)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(held()),
            Err(e) => Err(backend(op, e)),
        }
    }

    /// Reads the lock file and tells whether it carries `token`.
    fn holds(&self, path: &Path, token: &str) -> io::Result<bool> {
        let mut file = match open_read_nofollow(path) {
            Ok(f) => f,
            Err(e) if is_missing(&e) => return Ok(false),
            Err(e) => return Err(ctx(path, e)),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| ctx(path, e))?;
        Ok(serde_json::from_slice::<LockRecord>(&bytes).is_ok_and(|r| r.token == token))
    }

    /// Under the lock's guard, runs `f` on the lock file if it still carries
    /// `token`; `Ok(None)`, touching nothing, if it does not.
    fn if_holder<T>(
        &self,
        op: &'static str,
        name: &str,
        token: &str,
        f: impl FnOnce(&Path) -> io::Result<T>,
    ) -> Result<Option<T>> {
        let (path, guard_path) = self.lock_paths(name);
        let Some(_guard) = acquire_guard(&guard_path, self.lock_guard_wait(), self.conv.owner)
            .map_err(|e| backend(op, e))?
        else {
            return Err(Error::Timeout {
                backend: BACKEND,
                op,
            });
        };
        if !self.holds(&path, token).map_err(|e| backend(op, e))? {
            return Ok(None);
        }
        f(&path).map(Some).map_err(|e| backend(op, e))
    }

    /// Renews lock `name` if it still carries `token`, swapping the new
    /// record's locked file into `held`.
    pub(crate) fn renew(&self, name: &str, token: &str, held: &HeldRecord) -> Result<Renewal> {
        // Computed before the write, so the record never promises more than
        // the holder's own deadline (which starts before this call).
        let expires = expiry_unix_ms(SystemTime::now(), self.lease)?;
        let renewed = self.if_holder("renew lock", name, token, |path| {
            self.write_lock(path, token, name, expires, false)
        })?;
        Ok(match renewed {
            Some(file) => {
                // The old record's file closes here, after the new one is in
                // place and locked.
                match held.lock() {
                    Ok(mut h) => *h = file,
                    Err(p) => *p.into_inner() = file,
                }
                Renewal::Renewed
            }
            None => Renewal::Lost,
        })
    }

    /// Removes the lock file if it carries `token`; false otherwise.
    pub(crate) fn unlock(&self, name: &str, token: &str) -> Result<bool> {
        let removed = self.if_holder("unlock", name, token, |path| {
            fs::remove_file(path).map_err(|e| ctx(path, e))
        })?;
        Ok(removed.is_some())
    }
}
