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
//! ROOT/                              created 0700 if missing, canonicalized
//! ├── a/b/c                          the key "a/b/c": a plain file
//! ├── a/.encstore-tmp.<16 hex>       a write in progress (or a stale one)
//! └── .encstore-locks/               0700
//!     ├── <xxh3-128 hex>.lock        a held lock: JSON {name, token,
//!     │                              expires_unix_ms, pid, host}, 0600
//!     ├── <xxh3-128 hex>.guard       flock guard for that lock's state changes
//!     └── guards/<3 hex>.guard       write guards, 4096 stripes by key hash
//! ```
//!
//! The key `a/b/c` lives at `ROOT/a/b/c`; every directory on the way is a
//! prefix. Names starting with `.encstore` (in any letter case) are reserved
//! by [`validate_key`], so encstore's own files can never collide with a
//! key, and [`list`](Storage::list), [`exists`](Storage::exists) and
//! [`stat`](Storage::stat) never show them.
//!
//! ## Owners and modes
//!
//! Modes are set explicitly, never left to the umask.
//!
//! - **Replacing** an object ([`store`](Storage::store),
//!   [`store_if`](Storage::store_if), and so a rewrap) keeps the replaced
//!   file's owner, group and permission bits (`0o777`; set-user-ID,
//!   set-group-ID and sticky bits are not carried over): the temporary file
//!   gets them (`fchown`, then `fchmod`) before a byte is written, and
//!   again under the guard if another writer replaced the object meanwhile.
//!   When the process may not give a file that owner or group (a non-root
//!   process replacing another user's file), the write is refused with
//!   [`Error::Backend`] (an [`io::Error`](std::io::Error) of kind
//!   [`PermissionDenied`](std::io::ErrorKind::PermissionDenied) saying why), the
//!   temporary file is removed, and nothing changes.
//! - **New** objects get ROOT's owner and group when the process is root
//!   (precisely: when the files it creates are owned by uid 0, so not under
//!   NFS `root_squash`); otherwise the process's own, which cannot be
//!   helped. Their mode is ROOT's permission bits without the execute bits
//!   (ROOT 0700 → 0600, 0750 → 0640, 0755 → 0644). New directories get the
//!   same owner and ROOT's permission bits (and its set-group-ID bit). A
//!   ROOT the store creates itself is 0700, so its files are 0600 and its
//!   directories 0700. ROOT's owner and mode are read when the store opens.
//! - The private area `.encstore-locks/` is always 0700 and its files 0600
//!   (lock records carry tokens), given to ROOT's owner like new objects.
//!
//! ## Durability and atomicity
//!
//! [`store`](Storage::store) writes the value to a temporary file in the
//! key's directory (creating missing directories), `fsync`s it, renames it
//! over the key, and then `fsync`s the key's directory and every directory
//! it created (and the parent of each). A reader, or a process that
//! survives a crash of the writer, sees the old value or the new one,
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
//! A [`Version`] is the xxh3-64 hash of the content plus the file's inode
//! number and size. Every write creates a new inode, so rewriting a value
//! changes its version; only a later write of *identical* bytes that happens
//! to reuse the same inode number can give an equal version, and then the
//! content is identical anyway. [`load`](Storage::load) does not hash; only
//! [`load_versioned`](Storage::load_versioned) and `store_if` do.
//!
//! [`store_if`](Storage::store_if) with
//! [`Matches`](WriteCondition::Matches) first hashes the current file with
//! no guard held, keeping it open (a mismatch fails at once and writes
//! nothing). It then writes its temporary file and takes an exclusive
//! `flock` on the key's write guard, under which it only `lstat`s the key
//! and checks that it is still the file it hashed (same device and inode as
//! the file it holds open, whose inode therefore cannot have been reused,
//! and the same size, mtime and ctime as when the hash began), before
//! renaming. So the guard is held for a few system calls whatever the
//! object's size, and writers of other keys sharing the guard stripe never
//! wait for a hash. With [`Absent`](WriteCondition::Absent) the check under
//! the guard is that the key does not exist. Plain
//! [`store`](Storage::store) and the deletion of a single key take the same
//! guard around their rename or unlink, so `store_if` is a true
//! compare-and-swap against every writer of this store, in any process on
//! the host. (The recursive deletion of a prefix does not take the guards of
//! the keys under it.) A file rewritten in place by another program during
//! the hash changes its ctime, and the `store_if` then fails with
//! [`Error::PreconditionFailed`].
//!
//! ## Streams and ranges
//!
//! [`store_stream`](Storage::store_stream) and
//! [`store_stream_if`](Storage::store_stream_if) stage the temporary file
//! exactly as `store` does (directories, owner and mode first), write the
//! body into it as it arrives, in batches of at least 256 KiB on the
//! blocking pool (one batch written while the next is gathered, so memory
//! is bounded by two batches plus one chunk of the body), `fsync` it, and
//! commit it under the key's write guard with the same check and rename as
//! `store_if`, then `fsync` the directories. A `Matches` condition is
//! hashed before the body is read and an `Absent` one checked then too
//! (so a write that cannot succeed fails before consuming its body); the
//! check under the guard decides. If the body yields an error, the write
//! fails, or its future is dropped before the body ends, the temporary file
//! is removed (it removes itself when dropped) before the error is returned
//! or the drop completes (or, when the drop interrupts the blocking step
//! that creates it, as soon as that step ends), and nothing changes; only
//! a process that dies
//! mid-write leaves one behind, swept once stale like any other. A body
//! stalled for longer than the stale age may see its temporary file swept
//! by a `list`; the write then fails at the rename, writing nothing.
//!
//! [`load_stream`](Storage::load_stream) opens the object and reads it
//! with `pread`, 256 KiB at a time, one chunk ahead of the consumer, each
//! chunk in its own short blocking task, so a slow consumer holds an open
//! file but no thread. Objects are only replaced by `rename`, never written
//! in place, so a stream whose object is replaced or deleted meanwhile goes
//! on reading the old file: it yields the old value, whole. Before handing
//! out its last chunk it checks that the file was not modified in place by
//! another program: the same size and mtime as when opened, and the same
//! ctime while the file is still linked (the unlink of a replaced file
//! changes its ctime, not its content). A file that became shorter or
//! changed fails the stream with [`Error::Backend`] ("modified in place").
//! These checks are as fine as the filesystem's timestamps.
//! [`load_stream_versioned`](Storage::load_stream_versioned) first hashes
//! the open file (its [`Version`], as `load_versioned` computes it), then
//! streams the same file, hashing it again: the stream fails unless both
//! hashes agree, so the bytes it yields are exactly that version's. A
//! rewrap (versioned stream piped into `store_stream_if`) thus reads the
//! object three times: the hash, the stream, and the `Matches` check.
//!
//! [`load_range`](Storage::load_range) opens the object and reads exactly
//! the range with one `pread` (no other byte of the file is read);
//! [`load_head`](Storage::load_head) reads only the head likewise.
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
//!   complete content (temporary file, `fsync`, `link(2)`), or replaces a
//!   stale one atomically (temporary file and rename), or fails with
//!   [`Error::LockHeld`].
//! - The holder keeps the record file open with an exclusive `flock` on it
//!   (taken before the record is put in place) for as long as its
//!   [`Lease`] renews: the **kernel lock**. The kernel drops it when the
//!   process dies; dropping the lease or
//!   [`stop_renewal`](Lease::stop_renewal) closes it.
//! - The lease is renewed every third of the lease duration (by
//!   [`Lease::start_renewal`]) by atomic replacement, never by truncating in
//!   place, and only while the file still carries the holder's token;
//!   otherwise the lease is marked lost.
//! - [`unlock`](Storage::unlock) removes the file only if it still carries
//!   the holder's token; a holder that resumes after its lease ran out and a
//!   successor took over gets [`Error::LockNotHeld`] and releases nothing.
//!
//! A contender takes a lock over when either holds:
//!
//! 1. nobody holds the record's kernel lock (the holder died, dropped its
//!    lease, or runs on another host whose locks this one cannot see) and
//!    the record's wall-clock expiry has passed (an unparsable record: its
//!    mtime is a lease old); or
//! 2. this store has itself watched the very same record (same inode, times
//!    and content) go unrenewed for a whole lease, on its monotonic clock:
//!    the holder is alive (stopped by SIGSTOP, say) but no longer renewing.
//!
//! While a holder's kernel lock is held, the wall-clock expiry is ignored:
//! a clock step on the contender's or the holder's host cannot let a second
//! process in. The lease is bounded by [`check_lease`] to
//! 100 ms..24 h ([`FsStorageBuilder::lease`]), and every expiry is computed
//! with checked arithmetic ([`expiry_unix_ms`]), so no record is written
//! with an expiry in the past or an overflowed one. The default lease is
//! [`DEFAULT_LEASE`] (60 s).
//!
//! **Clock and host assumptions.** On one host (any local filesystem), a
//! live holder keeps its lock whatever the wall clocks do; a dead one's lock
//! is taken over once its recorded expiry has passed by the contender's
//! wall clock, so a clock stepped forward can only hasten the takeover of a
//! *dead* holder's lock, and one stepped back delays it. A holder checks
//! [`Lease::is_held`] against its own monotonic clock, which starts before
//! the record is written, so it stops relying on a lock no later than the
//! record says it expires, and no later than rule 2 lets a contender in. On
//! a shared filesystem (NFS), Linux emulates `flock` with POSIX byte-range
//! locks: on NFSv4 (and v3 with the lock manager) they reach the server and
//! the kernel lock protects holders on other hosts too, but a process drops
//! such a lock when it closes *any* descriptor of the file, so the kernel
//! lock is best effort there; with `nolock` or `local_lock=flock` mounts
//! other hosts cannot see it at all. Either way the wall-clock expiry then
//! decides, and hosts sharing the root must keep their clocks within a
//! small fraction of the lease (NTP).
//!
//! **Guard assumptions.** The guards use `flock(2)` (through
//! [`File::lock`](std::fs::File::lock)): advisory, released when the
//! process dies, with the NFS emulation above. A process stopped (SIGSTOP)
//! *inside* a critical section holds its guard until it continues; others
//! wait for a guard for a bounded time and then report the lock as held
//! ([`Error::LockHeld`]) or the operation as timed out ([`Error::Timeout`]).
//!
//! ## Filesystems that fold names
//!
//! On a filesystem that treats `a` and `A` (or NFC `é` and NFD `e` + U+0301)
//! as one name, two keys would share a file. [`FsStorageBuilder::build`]
//! probes ROOT (it creates a reserved, random, lower-case name and checks
//! whether its upper-case spelling resolves, then the same for an NFC name
//! against its NFD spelling; a process that may not write to ROOT checks
//! whether the lock directory resolves under its upper-case spelling
//! although no entry is spelled so) and refuses such a filesystem with
//! [`Error::Unsupported`], creating nothing on it but a missing ROOT: vfat,
//! exFAT, ext4 or tmpfs directories with casefolding, default macOS volumes.
//! Reserved names are refused in any letter case, so no key can reach the
//! lock, guard or temporary files either way.
//!
//! ## Paths never leave ROOT
//!
//! Keys are checked with [`validate_key`] first,
//! so `..`, absolute paths, empty segments, NUL and backslashes never reach
//! the filesystem. Every operation then walks the key's path component by
//! component from ROOT with `lstat` and refuses any symlink with
//! [`Error::Backend`] (an [`io::Error`](std::io::Error) of kind
//! [`InvalidInput`](std::io::ErrorKind::InvalidInput), "path component is a
//! symlink"); final files are opened with `O_NOFOLLOW` and `O_NONBLOCK`,
//! and temporary files with `O_EXCL`. `list` skips symlinks it finds. This
//! check is not atomic: it protects against symlinks that exist in the
//! tree, not against another process with write access to ROOT swapping a
//! directory for a symlink between the check and the use (that process
//! would have to be able to write to ROOT already).
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
//!
//! [`check_lease`]: encstore_core::lease::check_lease
//! [`expiry_unix_ms`]: encstore_core::lease::expiry_unix_ms
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod builder;
mod guard;
mod list;
mod locks;
mod owner;
mod paths;
mod probe;
mod read;
mod stream;
mod write;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use encstore_core::key::{validate_key, validate_prefix};
use encstore_core::stream::validate_range;
use encstore_core::{
    ByteStream, Error, Lease, ObjectInfo, ObjectStream, RangeRead, Result, Storage, Version,
    Versioned, VersionedStream, WriteCondition, new_lease_token,
};

pub use builder::FsStorageBuilder;

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
/// The lock directory under ROOT.
const LOCKS_DIR: &str = ".encstore-locks";
/// The write-guard directory under the lock directory.
const GUARDS_DIR: &str = "guards";
/// How many write-guard stripes there are. Keys hash onto stripes, so the
/// guard directory stays small however many keys the store holds; two keys
/// sharing a stripe only serialize their (microseconds-long) renames.
const GUARD_STRIPES: u64 = 4096;
/// Mode of the files of the private area (and of a fresh temporary file
/// before it gets its object's mode).
const FILE_MODE: u32 = 0o600;
/// Mode of the private area's directories, and of a ROOT the store creates.
const DIR_MODE: u32 = 0o700;
/// How long a writer waits for a write guard before giving up with
/// [`Error::Timeout`]. Guards are held for microseconds; only a process
/// stopped inside its critical section holds one longer.
const WRITE_GUARD_WAIT: Duration = Duration::from_secs(10);

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
    /// The lock lease, within the bounds of `check_lease`.
    lease: Duration,
    /// Age after which a temporary file is swept.
    stale_temp_age: Duration,
    /// This host's name, recorded in lock files for operators.
    host: String,
    /// Owner and modes of what the store creates.
    conv: owner::Conventions,
    /// Lock records this store is watching for renewals (takeover rule 2).
    sightings: locks::Sightings,
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

/// The version a conditional write computed (always `Some` for those).
fn written_version(op: &'static str, v: Option<Version>) -> Result<Version> {
    v.ok_or_else(|| {
        Error::backend(
            BACKEND,
            op,
            std::io::Error::other("internal error: no version computed"),
        )
    })
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

// ---------------------------------------------------------------------------
// The async trait, delegating to the blocking implementation.
#[async_trait]
impl Storage for FsStorage {
    async fn store(&self, key: &str, value: Bytes) -> Result<()> {
        validate_key(key)?;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        blocking("store", move || inner.store(&key, &value, None).map(|_| ())).await
    }

    async fn store_stream(&self, key: &str, body: ByteStream) -> Result<()> {
        validate_key(key)?;
        stream::store_stream(Arc::clone(&self.inner), key.to_owned(), body, None)
            .await
            .map(|_| ())
    }

    async fn store_stream_if(
        &self,
        key: &str,
        body: ByteStream,
        condition: &WriteCondition,
    ) -> Result<Version> {
        validate_key(key)?;
        let v = stream::store_stream(
            Arc::clone(&self.inner),
            key.to_owned(),
            body,
            Some(condition.clone()),
        )
        .await?;
        written_version("store_stream_if", v)
    }

    async fn load_stream(&self, key: &str) -> Result<ObjectStream> {
        validate_key(key)?;
        let (s, _) = stream::load_stream(Arc::clone(&self.inner), key.to_owned(), false).await?;
        Ok(s)
    }

    async fn load_stream_versioned(&self, key: &str) -> Result<VersionedStream> {
        validate_key(key)?;
        let (stream, version) =
            stream::load_stream(Arc::clone(&self.inner), key.to_owned(), true).await?;
        Ok(VersionedStream {
            stream,
            version: written_version("load_stream_versioned", version)?,
        })
    }

    async fn load_range(&self, key: &str, range: Range<u64>) -> Result<RangeRead> {
        validate_key(key)?;
        validate_range(key, &range)?;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        blocking("load_range", move || inner.load_range(&key, range)).await
    }

    async fn store_if(
        &self,
        key: &str,
        value: Bytes,
        condition: &WriteCondition,
    ) -> Result<Version> {
        validate_key(key)?;
        let (inner, key, cond) = (Arc::clone(&self.inner), key.to_owned(), condition.clone());
        let v = blocking("store_if", move || inner.store(&key, &value, Some(&cond))).await?;
        written_version("store_if", v)
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

    async fn stat(&self, key: &str) -> Result<ObjectInfo> {
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
        let record = {
            let (inner, name, token) = (Arc::clone(&self.inner), name.to_owned(), token.clone());
            blocking("try_lock", move || inner.try_lock(&name, &token)).await?
        };
        // The record file with the holder's kernel lock, kept (and swapped
        // by each renewal) by the renewal task alone: stopping the renewal
        // closes it, and the lock is then left to its wall-clock expiry.
        let held: Arc<locks::HeldRecord> = Arc::new(Mutex::new(record));
        let (inner, name) = (Arc::clone(&self.inner), name.to_owned());
        lease.start_renewal(move || {
            let (inner, name, token) = (Arc::clone(&inner), name.clone(), token.clone());
            let held = Arc::clone(&held);
            async move { blocking("renew lock", move || inner.renew(&name, &token, &held)).await }
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
