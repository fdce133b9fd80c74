//! # encstore-fs: the reference filesystem backend
//!
//! [`FsStorage`] implements encstore's [`Storage`] contract on a local (or
//! NFS-mounted) directory, so that operators can inspect what is stored with
//! ordinary tools.
//!
//! ```no_run
//! use std::time::Duration;
//! use encstore_core::Storage;
//! use encstore_fs::FsStorage;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), encstore_core::Error> {
//! let store = FsStorage::builder("/var/lib/myapp/store")
//!     .lease(Duration::from_secs(30))
//!     .build()?;
//! store.store("certs/example.com.crt", "PEM".into()).await?;
//! assert_eq!(&store.load("certs/example.com.crt").await?[..], b"PEM");
//! # Ok(()) }
//! ```
//!
//! ## Layout
//!
//! ```text
//! ROOT/                              0700, created if missing, canonicalized
//! ├── a/b/c                          the key "a/b/c": a plain file, 0600
//! ├── a/.encstore-tmp.<16 hex>       a write in progress (or a stale one)
//! └── .encstore-locks/               0700
//!     ├── <xxh3-128 hex>.lock        a held lock: JSON {name, token,
//!     │                              expires_unix_ms, pid, host}
//!     ├── <xxh3-128 hex>.guard       flock guard for that lock's state changes
//!     └── guards/<3 hex>.guard       write guards, 4096 stripes by key hash
//! ```
//!
//! The key `a/b/c` lives at `ROOT/a/b/c`; every directory on the way is a
//! prefix. Files are created 0600 and directories 0700, set explicitly
//! rather than trusting the umask. Names starting with `.encstore` are
//! reserved by [`validate_key`], so encstore's
//! own files can never collide with a key, and [`list`](Storage::list),
//! [`exists`](Storage::exists) and [`stat`](Storage::stat) never show them.
//!
//! ## Durability and atomicity
//!
//! [`store`](Storage::store) writes the value to a temporary file in the
//! key's directory (creating missing directories 0700), `fsync`s it, renames
//! it over the key, and then `fsync`s the key's directory and every
//! directory it created (and the parent of each). A reader, or a process
//! that survives a crash of the writer, sees the old value or the new one,
//! whole. When `store` returns `Ok`, the value survives power loss (as far as
//! the filesystem honours `fsync`). When it returns an error, the key holds
//! either value.
//!
//! A writer killed mid-write leaves a `.encstore-tmp.*` file behind. Those are
//! invisible, and [`list`](Storage::list) deletes the ones it passes that are
//! older than [`DEFAULT_STALE_TEMP_AGE`] (one hour, by mtime; see
//! [`FsStorageBuilder::stale_temp_age`]); opening the store sweeps the lock
//! directory the same way.
//!
//! [`delete`](Storage::delete) unlinks a key (or removes a prefix
//! recursively) and `fsync`s the parent directory. Directories left empty
//! are not removed (removing them would race with concurrent writers); empty
//! directories are not keys and are not listed.
//!
//! ## Conditional writes
//!
//! [`store_if`](Storage::store_if) writes its temporary file, then takes an
//! exclusive `flock` on the key's write guard, re-reads the current file and
//! computes its version, compares it with the condition, and renames only if
//! it holds. Plain [`store`](Storage::store) and the deletion of a single key
//! take the same guard around their rename or unlink, so `store_if` is a
//! true compare-and-swap against every writer of this store, in any process
//! on the host. (The recursive deletion of a prefix does not take the guards
//! of the keys under it.)
//!
//! A [`Version`] is the xxh3-64 hash of the content plus the file's inode
//! number and size. Every write creates a new inode, so rewriting a value
//! changes its version; only a later write of *identical* bytes that happens
//! to reuse the same inode number can give an equal version, and then the
//! content is identical anyway. [`load`](Storage::load) does not hash; only
//! [`load_versioned`](Storage::load_versioned) does.
//!
//! ## Locks
//!
//! A lock is a file under `.encstore-locks/`, named by the xxh3-128 hash of
//! the lock name and carrying a random owner token and a wall-clock expiry
//! (`expires_unix_ms`). Every state change to one lock (create, renew,
//! take over, release) happens while holding an exclusive `flock` on the
//! lock's `.guard` file, in a short critical section that never spans an
//! await:
//!
//! - [`try_lock`](Storage::try_lock) creates the lock file exclusively with
//!   complete content (temporary file, `fsync`, `link(2)`), or replaces an
//!   expired one atomically (temporary file and rename), or fails with
//!   [`Error::LockHeld`].
//! - The lease is renewed every third of the lease duration (by
//!   [`Lease::start_renewal`]) by atomic replacement, never by truncating in
//!   place, and only while the file still carries the holder's token;
//!   otherwise the lease is marked lost.
//! - [`unlock`](Storage::unlock) removes the file only if it still carries
//!   the holder's token; a holder that resumes after its lease ran out and a
//!   successor took over gets [`Error::LockNotHeld`] and releases nothing.
//!
//! The default lease is [`DEFAULT_LEASE`] (60 s). A lock whose holder died
//! can be taken over once its lease has run out.
//!
//! **Clock assumptions.** Expiry is wall-clock time (`SystemTime`), compared
//! across processes. All processes sharing a root must agree on the time to
//! well within the lease (trivially true on one host; on NFS, keep clients
//! NTP-synchronized). A holder checks [`Lease::is_held`] against its own
//! monotonic clock, which starts before the lock file is written, so the
//! holder stops relying on a lock no later than the file says it expires.
//!
//! **flock assumptions.** The guards use `flock(2)` (through
//! [`File::lock`](std::fs::File::lock)): advisory, released when the
//! process dies, and on Linux NFS emulated with byte-range locks (NFSv4
//! locking works; very old NFS setups may not lock at all). A process
//! stopped (SIGSTOP) *inside* a critical section holds its guard until it
//! continues; others wait for a guard for a bounded time and then report the
//! lock as held ([`Error::LockHeld`]) or the operation as timed out
//! ([`Error::Timeout`]).
//!
//! ## Paths never leave ROOT
//!
//! Keys are checked with [`validate_key`] first,
//! so `..`, absolute paths, empty segments, NUL and backslashes never reach
//! the filesystem. Every operation then walks the key's path component by
//! component from ROOT with `lstat` and refuses any symlink with
//! [`Error::Backend`] (an [`io::Error`] of kind
//! [`InvalidInput`](io::ErrorKind::InvalidInput), "path component is a
//! symlink"); final files are opened with `O_NOFOLLOW` on Linux, and
//! temporary files with `O_EXCL`. `list` skips symlinks it finds. This check
//! is not atomic: it protects against symlinks that exist in the tree, not
//! against another process with write access to ROOT swapping a directory
//! for a symlink between the check and the use (ROOT is 0700, so that
//! process would have to run as the store's owner already).
//!
//! ## What is not guaranteed
//!
//! - Durability of lock files across power loss (a lock simply expires).
//! - Isolation between a recursive prefix delete and concurrent writes under
//!   that prefix: a key written during the delete may survive it, or the
//!   delete may report an error.
//! - Protection against other programs that write into ROOT without going
//!   through `FsStorage`.
//! - Durability of a directory another writer is creating at the same
//!   moment: a `store` that finds a key's directory already present does not
//!   `fsync` that directory's parent, so if a concurrent `store` created it
//!   and has not yet synced it, a power loss in that window can lose both
//!   keys (the creating `store` has not returned yet; the other has).
//! - Names on disk that are not valid keys (not UTF-8, a backslash, ...), or
//!   that are symlinks, FIFOs and the like, are skipped by `list`; files
//!   that are not regular files or directories fail with [`Error::Backend`].
//!
//! All blocking filesystem calls run in [`tokio::task::spawn_blocking`]; a
//! tokio runtime is required. [`FsStorageBuilder::build`] itself blocks
//! briefly (it creates and checks ROOT): call it at startup.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use encstore_core::key::{is_under, validate_key, validate_prefix};
use encstore_core::{
    Error, KeyInfo, Lease, Renewal, Result, Storage, Version, Versioned, WriteCondition,
    new_lease_token,
};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

/// The default lock lease of [`FsStorage`]: 60 seconds. A lock whose holder
/// died can be taken over this long after its last renewal; holders renew
/// every third of it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The default age (by mtime) after which a leftover temporary file is
/// considered abandoned and swept: one hour. It must exceed the longest
/// time a single write can take.
pub const DEFAULT_STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// The backend name in [`Error::Backend`] and [`Error::Timeout`].
const BACKEND: &str = "fs";
/// Prefix of temporary files; reserved by key validation.
const TEMP_PREFIX: &str = ".encstore-tmp.";
/// Every name starting with this is encstore's own, never a key.
const RESERVED_PREFIX: &str = encstore_core::key::RESERVED_PREFIX;
/// The lock directory under ROOT.
const LOCKS_DIR: &str = ".encstore-locks";
/// The write-guard directory under the lock directory.
const GUARDS_DIR: &str = "guards";
/// How many write-guard stripes there are. Keys hash onto stripes, so the
/// guard directory stays small however many keys the store holds; two keys
/// sharing a stripe only serialize their (microseconds-long) renames.
const GUARD_STRIPES: u64 = 4096;
/// Mode of every file encstore-fs creates.
const FILE_MODE: u32 = 0o600;
/// Mode of every directory encstore-fs creates.
const DIR_MODE: u32 = 0o700;
/// How long a writer waits for a write guard before giving up with
/// [`Error::Timeout`]. Guards are held for microseconds; only a process
/// stopped inside its critical section holds one longer.
const WRITE_GUARD_WAIT: Duration = Duration::from_secs(10);

/// Flags for opening existing files: `O_NOFOLLOW` (refuse a symlink as
/// the last component) and `O_NONBLOCK` (never hang on a FIFO planted in
/// the tree; no effect on regular files). Hard-coded because the crate uses
/// neither `libc` nor `unsafe`; `O_NOFOLLOW` differs between architectures
/// (x86: 0o400000, ARM: 0o100000). Elsewhere the last component is checked
/// with `lstat` before opening instead.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "x86")))]
const OPEN_FLAGS: Option<i32> = Some(0o400000 | 0o4000);
#[cfg(all(target_os = "linux", any(target_arch = "aarch64", target_arch = "arm")))]
const OPEN_FLAGS: Option<i32> = Some(0o100000 | 0o4000);
#[cfg(not(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm"
    )
)))]
const OPEN_FLAGS: Option<i32> = None;
/// `ELOOP` on Linux: what `open(O_NOFOLLOW)` returns for a symlink.
const ELOOP: i32 = 40;
/// `ENOTDIR` (Linux and the BSDs): a path component is not a directory.
const ENOTDIR: i32 = 20;

/// A [`Storage`] on a local directory. Cheap to clone; clones share the
/// same root and settings. See the [crate documentation](crate) for the
/// on-disk layout and the guarantees.
#[derive(Debug, Clone)]
pub struct FsStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The canonical root directory; every key lives below it.
    root: PathBuf,
    /// `ROOT/.encstore-locks`: lock files and their guards.
    locks: PathBuf,
    /// `ROOT/.encstore-locks/guards`: the striped write guards.
    guards: PathBuf,
    /// The lock lease.
    lease: Duration,
    /// Age after which a temporary file is swept.
    stale_temp_age: Duration,
    /// This host's name, recorded in lock files for operators.
    host: String,
}

/// Configures and opens an [`FsStorage`]; see [`FsStorage::builder`].
#[derive(Debug, Clone)]
pub struct FsStorageBuilder {
    root: PathBuf,
    lease: Duration,
    stale_temp_age: Duration,
}

impl FsStorageBuilder {
    /// Sets the lock lease (default [`DEFAULT_LEASE`], 60 s). Every process
    /// sharing a root should use the same lease. It must not be zero.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets the age (by mtime) after which leftover temporary files are
    /// swept (default [`DEFAULT_STALE_TEMP_AGE`], one hour). It must exceed
    /// the longest write any process sharing the root can take, or a sweep
    /// could remove a write in progress (that write then fails; nothing
    /// stored is lost).
    pub fn stale_temp_age(mut self, age: Duration) -> Self {
        self.stale_temp_age = age;
        self
    }

    /// Opens the store: creates ROOT (0700) and its lock directory if
    /// missing, canonicalizes ROOT, and sweeps stale temporary files from the
    /// lock directory. Blocks on the filesystem.
    ///
    /// # Errors
    /// [`Error::Backend`] (op `open`) when ROOT cannot be created or is not
    /// a directory, or the lease is zero.
    pub fn build(self) -> Result<FsStorage> {
        let op = "open";
        if self.lease.is_zero() {
            return Err(Error::backend(
                BACKEND,
                op,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the lock lease must not be zero",
                ),
            ));
        }
        let created = match fs::symlink_metadata(&self.root) {
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(&self.root)
                    .map_err(|e| backend(op, ctx(&self.root, e)))?;
                true
            }
            Err(e) => return Err(backend(op, ctx(&self.root, e))),
        };
        let root = fs::canonicalize(&self.root).map_err(|e| backend(op, ctx(&self.root, e)))?;
        let meta = fs::metadata(&root).map_err(|e| backend(op, ctx(&root, e)))?;
        if !meta.is_dir() {
            return Err(backend(
                op,
                io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{}: the store root is not a directory", root.display()),
                ),
            ));
        }
        if created {
            set_mode(&root, DIR_MODE).map_err(|e| backend(op, e))?;
        }
        let locks = root.join(LOCKS_DIR);
        let guards = locks.join(GUARDS_DIR);
        for dir in [&locks, &guards] {
            ensure_dir(dir).map_err(|e| backend(op, e))?;
        }
        let inner = Inner {
            root,
            locks,
            guards,
            lease: self.lease,
            stale_temp_age: self.stale_temp_age,
            host: hostname(),
        };
        inner.sweep_dir(&inner.locks);
        Ok(FsStorage {
            inner: Arc::new(inner),
        })
    }
}

impl FsStorage {
    /// Opens a store at `root` with the default settings (a 60 s lease);
    /// see [`FsStorageBuilder::build`].
    ///
    /// # Errors
    /// As [`FsStorageBuilder::build`].
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        Self::builder(root).build()
    }

    /// A builder for a store at `root`.
    pub fn builder(root: impl Into<PathBuf>) -> FsStorageBuilder {
        FsStorageBuilder {
            root: root.into(),
            lease: DEFAULT_LEASE,
            stale_temp_age: DEFAULT_STALE_TEMP_AGE,
        }
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The path of the lock file for lock `name` (which may not exist), for
    /// operators and tests. Lock names are keys, so `name` is validated.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when `name` is not a valid key.
    pub fn lock_file_path(&self, name: &str) -> Result<PathBuf> {
        validate_key(name)?;
        Ok(self.inner.lock_paths(name).0)
    }
}

// ---------------------------------------------------------------------------
// Small helpers.

/// Adds the path to an I/O error's message.
fn ctx(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn backend(op: &'static str, e: io::Error) -> Error {
    Error::backend(BACKEND, op, e)
}

fn symlink_error(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{}: path component is a symlink (encstore-fs never follows symlinks)",
            path.display()
        ),
    )
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| ctx(path, e))
}

/// Creates `dir` 0700 if missing; refuses a symlink or a non-directory.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    match lstat(dir)? {
        Some(m) if m.is_dir() => Ok(()),
        Some(_) => Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{}: exists and is not a directory", dir.display()),
        )),
        None => create_dir(dir),
    }
}

/// Creates one directory 0700 (tolerating a concurrent creator).
fn create_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => set_mode(dir, DIR_MODE),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match lstat(dir)? {
            Some(m) if m.is_dir() => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{}: exists and is not a directory", dir.display()),
            )),
        },
        Err(e) => Err(ctx(dir, e)),
    }
}

/// `lstat`, refusing symlinks: `None` when the path does not exist.
fn lstat(path: &Path) -> io::Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(symlink_error(path)),
        Ok(m) => Ok(Some(m)),
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(ctx(path, e)),
    }
}

fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ENOTDIR)
}

/// Opens an existing file for reading without following a symlink (and
/// without blocking on a FIFO).
fn open_read_nofollow(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    match OPEN_FLAGS {
        Some(flags) => {
            o.custom_flags(flags);
            o.open(path).map_err(|e| {
                if e.raw_os_error() == Some(ELOOP) {
                    symlink_error(path)
                } else {
                    e
                }
            })
        }
        None => match lstat(path)? {
            Some(m) if !(m.is_file() || m.is_dir()) => Err(not_file_or_dir(path)),
            _ => o.open(path),
        },
    }
}

fn not_file_or_dir(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: not a regular file or directory", path.display()),
    )
}

/// `fsync`s a directory, so that entries created or renamed in it persist.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ctx(dir, e))
}

/// A fresh 16-hex-digit name suffix: a random per-process seed (from the
/// OS, once) mixed with a counter, so names never repeat within a process
/// and collide across processes with negligible probability (and
/// `O_EXCL` refuses a collision rather than sharing a file).
fn random_hex16() -> io::Result<String> {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = match SEED.get() {
        Some(s) => *s,
        None => {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).map_err(|e| io::Error::other(format!("random name: {e}")))?;
            *SEED.get_or_init(|| u64::from_le_bytes(b))
        }
    };
    // splitmix64 of seed + n: a bijection of the counter, so distinct.
    let mut z = seed.wrapping_add(
        COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    Ok(format!("{:016x}", z ^ (z >> 31)))
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A version: the content's xxh3-64, the inode and the size, in hex.
fn version_of(hash: u64, ino: u64, size: u64) -> Version {
    Version::new(format!("{hash:016x}-{ino:x}-{size:x}"))
}

fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Runs blocking filesystem work off the async executor.
async fn blocking<T, F>(op: &'static str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::backend(BACKEND, op, e))?
}

/// An exclusive flock on a guard file; released on drop (when the file
/// closes).
struct Guard(#[allow(dead_code)] File);

/// Takes an exclusive flock on `path` (created 0600 if missing), polling for
/// at most `wait`. `Ok(None)` when it stayed busy that long.
fn acquire_guard(path: &Path, wait: Duration) -> io::Result<Option<Guard>> {
    let mut o = OpenOptions::new();
    o.read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE);
    match OPEN_FLAGS {
        Some(flags) => {
            o.custom_flags(flags);
        }
        None => {
            if lstat(path)?.is_some_and(|m| !m.is_file()) {
                return Err(not_file_or_dir(path));
            }
        }
    }
    let file = o.open(path).map_err(|e| {
        if e.raw_os_error() == Some(ELOOP) {
            symlink_error(path)
        } else {
            ctx(path, e)
        }
    })?;
    let deadline = std::time::Instant::now() + wait;
    let mut pause = Duration::from_micros(200);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(Guard(file))),
            Err(fs::TryLockError::WouldBlock) => {
                if std::time::Instant::now() >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(fs::TryLockError::Error(e)) => return Err(ctx(path, e)),
        }
    }
}

/// What a path holds.
enum Node {
    Missing,
    File(fs::Metadata),
    Dir(fs::Metadata),
}

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

/// Where a write puts its bytes before the rename.
struct Staged {
    temp: PathBuf,
    target: PathBuf,
    /// Directories to fsync after the rename, deepest first.
    sync: Vec<PathBuf>,
    /// The temporary file's inode, which the key has after the rename.
    ino: u64,
}

// ---------------------------------------------------------------------------
// The blocking implementation.

impl Inner {
    fn key_path(&self, key: &str) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(key.split('/'));
        p
    }

    fn guard_path(&self, key: &str) -> PathBuf {
        self.guards.join(format!(
            "{:03x}.guard",
            xxh3_64(key.as_bytes()) % GUARD_STRIPES
        ))
    }

    fn write_guard(&self, op: &'static str, key: &str) -> Result<Guard> {
        acquire_guard(&self.guard_path(key), WRITE_GUARD_WAIT)
            .map_err(|e| backend(op, e))?
            .ok_or(Error::Timeout {
                backend: BACKEND,
                op,
            })
    }

    fn lock_paths(&self, name: &str) -> (PathBuf, PathBuf) {
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

    /// Walks `key` from ROOT with `lstat`, refusing symlinks, and reports
    /// what its path holds. A parent that is missing or not a directory
    /// means the key is missing.
    fn inspect(&self, key: &str) -> io::Result<(PathBuf, Node)> {
        let mut path = self.root.clone();
        if key.is_empty() {
            let m = lstat(&path)?.ok_or_else(|| ctx(&path, io::ErrorKind::NotFound.into()))?;
            return Ok((path, Node::Dir(m)));
        }
        let mut parts = key.split('/').peekable();
        while let Some(part) = parts.next() {
            path.push(part);
            let last = parts.peek().is_none();
            match lstat(&path)? {
                None => return Ok((self.key_path(key), Node::Missing)),
                Some(m) if m.is_dir() => {
                    if last {
                        return Ok((path, Node::Dir(m)));
                    }
                }
                Some(m) if m.is_file() => {
                    if last {
                        return Ok((path, Node::File(m)));
                    }
                    return Ok((self.key_path(key), Node::Missing));
                }
                Some(_) => return Err(not_file_or_dir(&path)),
            }
        }
        // Not reached: a valid key has at least one segment.
        Ok((path, Node::Missing))
    }

    /// Checks the parent directories of `key` (refusing symlinks): true when
    /// they all exist as directories.
    fn parents_exist(&self, key: &str) -> io::Result<bool> {
        let mut path = self.root.clone();
        let mut parts = key.split('/').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                break;
            }
            path.push(part);
            match lstat(&path)? {
                Some(m) if m.is_dir() => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Opens the object `key` for reading: `None` when it does not exist
    /// (or is a prefix, not an object).
    fn open_object(&self, key: &str) -> io::Result<Option<(File, fs::Metadata)>> {
        if !self.parents_exist(key)? {
            return Ok(None);
        }
        let path = self.key_path(key);
        let file = match open_read_nofollow(&path) {
            Ok(f) => f,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(ctx(&path, e)),
        };
        let meta = file.metadata().map_err(|e| ctx(&path, e))?;
        if meta.is_dir() {
            // A prefix, not an object.
            return Ok(None);
        }
        if !meta.is_file() {
            return Err(not_file_or_dir(&path));
        }
        Ok(Some((file, meta)))
    }

    fn read_object(
        &self,
        key: &str,
        limit: Option<usize>,
    ) -> io::Result<Option<(Vec<u8>, fs::Metadata)>> {
        let Some((mut file, meta)) = self.open_object(key)? else {
            return Ok(None);
        };
        // Objects are never modified in place (only replaced by rename), so
        // the size from `fstat` is the size to read: one `read` call
        // normally, with no size-hint `fstat`/`lseek` and no EOF probe.
        let want = (meta.len() as usize).min(limit.unwrap_or(usize::MAX));
        let mut buf = Vec::new();
        buf.try_reserve_exact(want).map_err(io::Error::other)?;
        buf.resize(want, 0);
        let mut filled = 0;
        let read = loop {
            if filled == want {
                break Ok(());
            }
            match file.read(&mut buf[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(filled);
        read.map_err(|e| ctx(&self.key_path(key), e))?;
        Ok(Some((buf, meta)))
    }

    fn load(&self, key: &str) -> Result<Bytes> {
        match self
            .read_object(key, None)
            .map_err(|e| backend("load", e))?
        {
            Some((buf, _)) => Ok(Bytes::from(buf)),
            None => Err(Error::not_found(key)),
        }
    }

    fn load_head(&self, key: &str, len: usize) -> Result<Bytes> {
        match self
            .read_object(key, Some(len))
            .map_err(|e| backend("load", e))?
        {
            Some((buf, _)) => Ok(Bytes::from(buf)),
            None => Err(Error::not_found(key)),
        }
    }

    fn load_versioned(&self, key: &str) -> Result<Versioned> {
        match self
            .read_object(key, None)
            .map_err(|e| backend("load", e))?
        {
            Some((buf, meta)) => {
                let version = version_of(xxh3_64(&buf), meta.ino(), meta.len());
                Ok(Versioned {
                    value: Bytes::from(buf),
                    version,
                })
            }
            None => Err(Error::not_found(key)),
        }
    }

    /// The current version of `key`, or `None` if it is not an object.
    fn current_version(&self, key: &str) -> io::Result<Option<Version>> {
        Ok(self
            .read_object(key, None)?
            .map(|(buf, meta)| version_of(xxh3_64(&buf), meta.ino(), meta.len())))
    }

    /// Creates the key's missing directories and writes, fsyncs and closes
    /// its temporary file.
    fn stage(&self, key: &str, value: &[u8]) -> io::Result<Staged> {
        let mut dir = self.root.clone();
        let mut created: Vec<PathBuf> = Vec::new();
        let mut parts = key.split('/').peekable();
        let mut target = None;
        while let Some(part) = parts.next() {
            let path = dir.join(part);
            if parts.peek().is_none() {
                target = Some(path);
                break;
            }
            match lstat(&path)? {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!(
                            "{}: cannot store {key:?}: a parent is an object, not a prefix",
                            path.display()
                        ),
                    ));
                }
                None => {
                    create_dir(&path)?;
                    created.push(path.clone());
                }
            }
            dir = path;
        }
        let target = target.unwrap_or_else(|| self.key_path(key));
        if lstat(&target)?.is_some_and(|m| m.is_dir()) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!(
                    "{}: cannot store {key:?}: it is a prefix of other keys (a directory)",
                    target.display()
                ),
            ));
        }
        let temp = dir.join(format!("{TEMP_PREFIX}{}", random_hex16()?));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&temp)?;
            let meta = f.metadata()?;
            // 0600 explicitly, whatever the umask did.
            if meta.permissions().mode() & 0o7777 != FILE_MODE {
                f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
            }
            f.write_all(value)?;
            f.sync_all()?;
            Ok(meta.ino())
        })();
        let ino = match written {
            Ok(ino) => ino,
            Err(e) => {
                let _ = fs::remove_file(&temp);
                return Err(ctx(&temp, e));
            }
        };
        // fsync the key's directory and, for each created directory, its
        // parent (which includes every created directory but the deepest,
        // and the deepest is the key's directory).
        let mut sync = vec![dir];
        for c in created.iter().rev() {
            if let Some(p) = c.parent()
                && !sync.iter().any(|s| s == p)
            {
                sync.push(p.to_path_buf());
            }
        }
        Ok(Staged {
            temp,
            target,
            sync,
            ino,
        })
    }

    fn store(&self, key: &str, value: &[u8], cond: Option<&WriteCondition>) -> Result<Version> {
        let op = if cond.is_some() { "store_if" } else { "store" };
        // A concurrent delete of a prefix can remove a directory between
        // its creation and the temporary file's: try again a few times.
        let mut attempt = 0;
        let staged = loop {
            match self.stage(key, value) {
                Ok(s) => break s,
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 3 => attempt += 1,
                Err(e) => return Err(backend(op, e)),
            }
        };
        let committed = (|| {
            let _guard = self.write_guard(op, key)?;
            if let Some(cond) = cond {
                let current = self.current_version(key).map_err(|e| backend(op, e))?;
                let ok = match cond {
                    WriteCondition::Absent => current.is_none(),
                    WriteCondition::Matches(v) => current.as_ref() == Some(v),
                    _ => false,
                };
                if !ok {
                    return Err(Error::PreconditionFailed {
                        key: key.to_owned(),
                    });
                }
            }
            fs::rename(&staged.temp, &staged.target)
                .map_err(|e| backend(op, ctx(&staged.target, e)))
        })();
        if let Err(e) = committed {
            let _ = fs::remove_file(&staged.temp);
            return Err(e);
        }
        for dir in &staged.sync {
            sync_dir(dir).map_err(|e| backend(op, e))?;
        }
        Ok(version_of(xxh3_64(value), staged.ino, value.len() as u64))
    }

    fn delete(&self, key: &str) -> Result<()> {
        let op = "delete";
        let (path, node) = self.inspect(key).map_err(|e| backend(op, e))?;
        match node {
            Node::Missing => return Ok(()),
            Node::File(_) => {
                let _guard = self.write_guard(op, key)?;
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if is_missing(&e) => return Ok(()),
                    Err(e) => return Err(backend(op, ctx(&path, e))),
                }
            }
            Node::Dir(_) => {
                // std's remove_dir_all never follows symlinks inside the
                // tree. Retry a few times when a concurrent writer adds an
                // entry while it runs.
                let mut attempt = 0;
                loop {
                    match fs::remove_dir_all(&path) {
                        Ok(()) => break,
                        Err(e) if is_missing(&e) => break,
                        Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty && attempt < 3 => {
                            attempt += 1;
                        }
                        Err(e) => return Err(backend(op, ctx(&path, e))),
                    }
                }
            }
        }
        if let Some(parent) = path.parent() {
            sync_dir(parent).map_err(|e| backend(op, e))?;
        }
        Ok(())
    }

    /// Removes `dir`/`name` if it is a temporary file older than the stale
    /// age. Best effort.
    fn sweep_entry(&self, dir: &Path, name: &str) {
        if !name.starts_with(TEMP_PREFIX) {
            return;
        }
        let path = dir.join(name);
        let Ok(m) = fs::symlink_metadata(&path) else {
            return;
        };
        if !m.is_file() {
            return;
        }
        let age = m
            .modified()
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or(Duration::ZERO);
        if age >= self.stale_temp_age {
            match fs::remove_file(&path) {
                Ok(()) => tracing::debug!(path = %path.display(), "swept a stale temporary file"),
                Err(e) if is_missing(&e) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not sweep a stale temporary file")
                }
            }
        }
    }

    fn sweep_dir(&self, dir: &Path) {
        if let Ok(rd) = fs::read_dir(dir) {
            for entry in rd.flatten() {
                if let Some(name) = entry.file_name().to_str() {
                    self.sweep_entry(dir, name);
                }
            }
        }
    }

    /// Reads the entries of `dir` that can be keys: `(name, is_dir)`.
    /// Sweeps stale temporary files on the way; skips encstore's own
    /// files, symlinks, other file types and names that are not valid keys.
    fn entries(&self, dir: &Path, prefix: &str) -> io::Result<Vec<(String, bool)>> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if is_missing(&e) => return Ok(Vec::new()),
            Err(e) => return Err(ctx(dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => return Err(ctx(dir, e)),
            };
            let os_name = entry.file_name();
            let Some(name) = os_name.to_str() else {
                tracing::warn!(dir = %dir.display(), "skipping a file name that is not UTF-8");
                continue;
            };
            if name.starts_with(RESERVED_PREFIX) {
                self.sweep_entry(dir, name);
                continue;
            }
            let Ok(ft) = entry.file_type() else { continue };
            let is_dir = ft.is_dir();
            if !(is_dir || ft.is_file()) {
                if ft.is_symlink() {
                    tracing::warn!(path = %entry.path().display(), "skipping a symlink in the store");
                }
                continue;
            }
            if validate_key(&join_key(prefix, name)).is_err() {
                tracing::warn!(path = %entry.path().display(), "skipping a file whose name is not a valid key");
                continue;
            }
            out.push((name.to_owned(), is_dir));
        }
        Ok(out)
    }

    /// True when some object lives below `dir`.
    fn has_keys(&self, dir: &Path, prefix: &str) -> io::Result<bool> {
        for (name, is_dir) in self.entries(dir, prefix)? {
            if !is_dir || self.has_keys(&dir.join(&name), &join_key(prefix, &name))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn walk(&self, dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
        for (name, is_dir) in self.entries(dir, prefix)? {
            let key = join_key(prefix, &name);
            if is_dir {
                self.walk(&dir.join(&name), &key, out)?;
            } else {
                out.push(key);
            }
        }
        Ok(())
    }

    fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<String>> {
        let op = "list";
        let (path, node) = self.inspect(prefix).map_err(|e| backend(op, e))?;
        if !matches!(node, Node::Dir(_)) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        if recursive {
            self.walk(&path, prefix, &mut out)
                .map_err(|e| backend(op, e))?;
        } else {
            for (name, is_dir) in self.entries(&path, prefix).map_err(|e| backend(op, e))? {
                let key = join_key(prefix, &name);
                if !is_dir
                    || self
                        .has_keys(&path.join(&name), &key)
                        .map_err(|e| backend(op, e))?
                {
                    out.push(key);
                }
            }
        }
        debug_assert!(out.iter().all(|k| is_under(prefix, k)));
        out.sort();
        Ok(out)
    }

    fn stat(&self, key: &str) -> Result<KeyInfo> {
        let op = "stat";
        let (path, node) = self.inspect(key).map_err(|e| backend(op, e))?;
        match node {
            Node::File(m) => Ok(KeyInfo {
                key: key.to_owned(),
                modified: m.modified().ok(),
                size: m.len(),
                terminal: true,
            }),
            Node::Dir(m) if self.has_keys(&path, key).map_err(|e| backend(op, e))? => Ok(KeyInfo {
                key: key.to_owned(),
                modified: m.modified().ok(),
                size: 0,
                terminal: false,
            }),
            _ => Err(Error::not_found(key)),
        }
    }

    // --- locks ---

    fn read_lock(&self, path: &Path) -> io::Result<Option<(Vec<u8>, fs::Metadata)>> {
        let mut file = match open_read_nofollow(path) {
            Ok(f) => f,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(ctx(path, e)),
        };
        let meta = file.metadata().map_err(|e| ctx(path, e))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(|e| ctx(path, e))?;
        Ok(Some((buf, meta)))
    }

    /// Writes a complete lock record to a fresh temporary file and puts it
    /// in place: exclusively (`link(2)`, fails if the lock file exists) or
    /// by atomic replacement (`rename(2)`).
    fn write_lock(&self, path: &Path, token: &str, name: &str, exclusive: bool) -> io::Result<()> {
        let record = LockRecord {
            name: name.to_owned(),
            token: token.to_owned(),
            expires_unix_ms: now_unix_ms() + self.lease.as_millis() as u64,
            pid: std::process::id(),
            host: self.host.clone(),
        };
        let json = serde_json::to_vec(&record).map_err(io::Error::other)?;
        let temp = self.locks.join(format!("{TEMP_PREFIX}{}", random_hex16()?));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&temp)?;
            f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
            f.write_all(&json)?;
            f.sync_all()?;
            drop(f);
            if exclusive {
                fs::hard_link(&temp, path)?;
                fs::remove_file(&temp)
            } else {
                fs::rename(&temp, path)
            }
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.map_err(|e| ctx(path, e))
    }

    fn try_lock(&self, name: &str, token: &str) -> Result<()> {
        let op = "try_lock";
        let held = || Error::LockHeld {
            name: name.to_owned(),
        };
        let (path, guard_path) = self.lock_paths(name);
        let Some(_guard) =
            acquire_guard(&guard_path, self.lock_guard_wait()).map_err(|e| backend(op, e))?
        else {
            return Err(held());
        };
        let exclusive = match self.read_lock(&path).map_err(|e| backend(op, e))? {
            None => true,
            Some((bytes, meta)) => {
                let expired = match serde_json::from_slice::<LockRecord>(&bytes) {
                    Ok(rec) => rec.expires_unix_ms <= now_unix_ms(),
                    // Unparsable (a foreign or damaged file): stale once it
                    // is a lease old.
                    Err(_) => meta
                        .modified()
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .is_some_and(|age| age >= self.lease),
                };
                if !expired {
                    return Err(held());
                }
                tracing::info!(lock = name, "taking over an expired lock");
                false
            }
        };
        match self.write_lock(&path, token, name, exclusive) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(held()),
            Err(e) => Err(backend(op, e)),
        }
    }

    /// Reads the lock file and tells whether it carries `token`.
    fn holds(&self, path: &Path, token: &str) -> io::Result<bool> {
        Ok(match self.read_lock(path)? {
            Some((bytes, _)) => serde_json::from_slice::<LockRecord>(&bytes)
                .map(|r| r.token == token)
                .unwrap_or(false),
            None => false,
        })
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
        let Some(_guard) =
            acquire_guard(&guard_path, self.lock_guard_wait()).map_err(|e| backend(op, e))?
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

    fn renew(&self, name: &str, token: &str) -> Result<Renewal> {
        let renewed = self.if_holder("renew lock", name, token, |path| {
            self.write_lock(path, token, name, false)
        })?;
        Ok(match renewed {
            Some(()) => Renewal::Renewed,
            None => Renewal::Lost,
        })
    }

    /// Removes the lock file if it carries `token`; false otherwise.
    fn unlock(&self, name: &str, token: &str) -> Result<bool> {
        let removed = self.if_holder("unlock", name, token, |path| {
            fs::remove_file(path).map_err(|e| ctx(path, e))
        })?;
        Ok(removed.is_some())
    }
}

// ---------------------------------------------------------------------------
// The async trait, delegating to the blocking implementation.

#[async_trait]
impl Storage for FsStorage {
    async fn store(&self, key: &str, value: Bytes) -> Result<()> {
        validate_key(key)?;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        blocking("store", move || inner.store(&key, &value, None).map(|_| ())).await
    }

    async fn store_if(
        &self,
        key: &str,
        value: Bytes,
        condition: &WriteCondition,
    ) -> Result<Version> {
        validate_key(key)?;
        let (inner, key, cond) = (Arc::clone(&self.inner), key.to_owned(), condition.clone());
        blocking("store_if", move || inner.store(&key, &value, Some(&cond))).await
    }

    async fn load(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        blocking("load", move || inner.load(&key)).await
    }

    async fn load_versioned(&self, key: &str) -> Result<Versioned> {
        validate_key(key)?;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        blocking("load", move || inner.load_versioned(&key)).await
    }

    async fn load_head(&self, key: &str, len: usize) -> Result<Bytes> {
        validate_key(key)?;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        blocking("load", move || inner.load_head(&key, len)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        blocking("delete", move || inner.delete(&key)).await
    }

    async fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        let (inner, prefix) = (Arc::clone(&self.inner), prefix.to_owned());
        blocking("list", move || inner.list(&prefix, recursive)).await
    }

    async fn stat(&self, key: &str) -> Result<KeyInfo> {
        validate_key(key)?;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        blocking("stat", move || inner.stat(&key)).await
    }

    async fn try_lock(&self, name: &str) -> Result<Lease> {
        validate_key(name)?;
        let token = new_lease_token()?;
        // Created before the file is written, so the holder's own deadline
        // is never later than the expiry recorded in the file.
        let mut lease = Lease::new(name, token.clone(), self.inner.lease);
        {
            let (inner, name, token) = (Arc::clone(&self.inner), name.to_owned(), token.clone());
            blocking("try_lock", move || inner.try_lock(&name, &token)).await?;
        }
        let (inner, name) = (Arc::clone(&self.inner), name.to_owned());
        lease.start_renewal(move || {
            let (inner, name, token) = (Arc::clone(&inner), name.clone(), token.clone());
            async move { blocking("renew lock", move || inner.renew(&name, &token)).await }
        });
        Ok(lease)
    }

    async fn unlock(&self, mut lease: Lease) -> Result<()> {
        lease.stop_renewal();
        let (inner, name, token) = (
            Arc::clone(&self.inner),
            lease.name().to_owned(),
            lease.token().to_owned(),
        );
        if blocking("unlock", move || inner.unlock(&name, &token)).await? {
            Ok(())
        } else {
            lease.mark_lost();
            Err(Error::LockNotHeld {
                name: lease.name().to_owned(),
            })
        }
    }

    fn lease_duration(&self) -> Duration {
        self.inner.lease
    }
}
