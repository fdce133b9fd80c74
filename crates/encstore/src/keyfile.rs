//! Rewriting keyset files without losing a key.
//!
//! A keyset file is read, changed (a key added, promoted, retired) and
//! written back, sometimes by two operators or scripts at once. Done
//! naively, the second writer silently drops the first one's change. This
//! module makes the read-modify-write safe:
//!
//! - [`KeysetFile::open_locked`] takes an exclusive advisory lock (`flock`)
//!   on the file and holds it until the [`KeysetFile`] is dropped, so
//!   cooperating writers (every `encstore` command, any server using this
//!   module) take turns. The lock is on the file's inode; a writer that
//!   replaced the file meanwhile (a rename swaps the inode) is noticed after
//!   the lock is taken, and the new file is locked instead. No lock file is
//!   left behind.
//! - [`KeysetFile::replace`] renames the new content over the file only if
//!   the file still holds the bytes that were read (and is the same inode),
//!   which also catches writers that ignore the lock (an editor, Tinkey):
//!   otherwise it fails with [`KeyfileError::Changed`] and writes nothing.
//! - Every write is atomic: a temporary file in the same directory, fsynced,
//!   renamed over the target, then the directory fsynced. A replaced file
//!   keeps its owner, group and mode (the write is refused if the owner
//!   cannot be kept); a new file gets mode 0600.
//! - A path that is a symbolic link is written through to its target, in
//!   the target's directory; the link stays.
//! - [`write_new`] writes a file that is not the one read: it refuses to
//!   replace an existing file unless asked to.
//!
//! The guarantee holds between writers that lock (all of encstore's) on a
//! local filesystem. A writer that ignores the lock can still slip in
//! between the final comparison and the rename (microseconds); its change
//! is then lost, as with any tool that does not lock.

use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Why a keyset file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyfileError {
    /// An I/O step failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done, such as `lock` or `rename over`.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file changed between the read and the write: another program
    /// wrote it meanwhile. Nothing was written.
    #[error(
        "{} changed since it was read (another program wrote it meanwhile); nothing was written: run the command again on the new file",
        path.display()
    )]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// The output file exists and replacing it was not asked for.
    #[error("{} already exists", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The new file could not be given the owner and group of the file it
    /// replaces. Nothing was written.
    #[error(
        "cannot give the new {} the owner and group of the file it replaces (uid {uid}, gid {gid}): {source}; nothing was written",
        path.display()
    )]
    Ownership {
        /// The file.
        path: PathBuf,
        /// The owner to keep.
        uid: u32,
        /// The group to keep.
        gid: u32,
        /// The error of `fchown`.
        #[source]
        source: io::Error,
    },
    /// The path is a directory or another non-regular file.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A chain of symbolic links too long (or a loop).
    #[error("{}: too many levels of symbolic links", path.display())]
    SymlinkLoop {
        /// The path.
        path: PathBuf,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> KeyfileError + 'a {
    move |source| KeyfileError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Follows `path` while it is a symbolic link (relative targets are taken
/// from the link's directory) and returns the final path, which may not
/// exist yet. Directory symlinks along the way are left to the kernel.
///
/// # Errors
/// [`KeyfileError::SymlinkLoop`] after 40 links; I/O errors other than
/// "not found".
pub fn resolve(path: &Path) -> Result<PathBuf, KeyfileError> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&p).map_err(io_err("read the symbolic link", &p))?;
                p = if target.is_absolute() {
                    target
                } else {
                    parent_dir(&p).join(target)
                };
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(io_err("inspect", &p)(e)),
        }
    }
    Err(KeyfileError::SymlinkLoop {
        path: path.to_path_buf(),
    })
}

/// Whether `a` and `b` name the same existing file (after symbolic links).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => file_id(&x) == file_id(&y),
        _ => false,
    }
}

#[cfg(unix)]
fn file_id(m: &Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn file_id(_: &Metadata) -> (u64, u64) {
    (0, 0)
}

/// A keyset file read under an exclusive lock, held until this is dropped.
pub struct KeysetFile {
    /// The file's path, symbolic links resolved.
    path: PathBuf,
    /// The locked file (its inode).
    file: File,
    /// The bytes read under the lock.
    bytes: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for KeysetFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeysetFile")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl KeysetFile {
    /// Opens the keyset file at `path` (through symbolic links), takes an
    /// exclusive lock on it, and reads it. When another process holds the
    /// lock, `on_wait` is called once and this blocks until it is released
    /// (run it on a blocking thread in async code).
    ///
    /// # Errors
    /// I/O errors (naming the step and the file), and
    /// [`KeyfileError::NotAFile`].
    pub fn open_locked(path: &Path, on_wait: &mut dyn FnMut()) -> Result<KeysetFile, KeyfileError> {
        let target = resolve(path)?;
        let mut waited = false;
        loop {
            let file = open_for_lock(&target)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    if !waited {
                        waited = true;
                        on_wait();
                    }
                    file.lock().map_err(io_err("lock", &target))?;
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &target)(e)),
            }
            let ours = file.metadata().map_err(io_err("inspect", &target))?;
            if !ours.is_file() {
                return Err(KeyfileError::NotAFile { path: target });
            }
            // The lock is on the inode: if a writer renamed a new file over
            // the path while this waited, lock that one instead.
            match fs::symlink_metadata(&target) {
                Ok(now) if file_id(&now) == file_id(&ours) => {
                    let bytes = read_all(&file, ours.len(), &target)?;
                    return Ok(KeysetFile {
                        path: target,
                        file,
                        bytes,
                    });
                }
                Ok(_) => continue,
                Err(e) => return Err(io_err("open", &target)(e)),
            }
        }
    }

    /// The file's path, symbolic links resolved.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes read under the lock (key material: wiped on drop).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Replaces the file with `data`, atomically, keeping its owner, group
    /// and mode, if it still holds the bytes read (and is the same file).
    ///
    /// # Errors
    /// [`KeyfileError::Changed`] if another program wrote it meanwhile;
    /// [`KeyfileError::Ownership`] if the owner cannot be kept; I/O
    /// errors. In every case the file is left as it was.
    pub fn replace(&self, data: &[u8]) -> Result<(), KeyfileError> {
        let changed = || KeyfileError::Changed {
            path: self.path.clone(),
        };
        let ours = self
            .file
            .metadata()
            .map_err(io_err("inspect", &self.path))?;
        let now = match fs::symlink_metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(changed()),
            Err(e) => return Err(io_err("inspect", &self.path)(e)),
        };
        if file_id(&now) != file_id(&ours) {
            return Err(changed());
        }
        let current = read_all(&self.file, ours.len(), &self.path)?;
        if current.as_slice() != self.bytes.as_slice() {
            return Err(changed());
        }
        replace_file(&self.path, data, &now)
    }
}

/// Opens `path` to lock it: read-write when allowed (some network
/// filesystems only grant exclusive locks then), read-only otherwise.
fn open_for_lock(path: &Path) -> Result<File, KeyfileError> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            File::open(path).map_err(io_err("open", path))
        }
        Err(e) => Err(io_err("open", path)(e)),
    }
}

/// Reads all of `file` from its start (`len`: its expected length) with
/// [`read_secret`].
fn read_all(file: &File, len: u64, path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyfileError> {
    let mut f = file;
    f.rewind().map_err(io_err("read", path))?;
    read_secret(&mut f, len).map_err(io_err("read", path))
}

/// Reads all of `reader` into a buffer that is wiped when dropped, for
/// secrets (keysets, plaintext): unlike `read_to_end`, growing the buffer
/// never leaves an unwiped copy of the bytes read so far behind.
/// `size_hint` is the expected length (a file's size; 0 when unknown):
/// with the right hint the buffer is allocated once. Reads interrupted by
/// a signal are retried.
///
/// # Errors
/// The reader's first error other than `Interrupted`.
pub fn read_secret(
    reader: &mut (impl Read + ?Sized),
    size_hint: u64,
) -> io::Result<Zeroizing<Vec<u8>>> {
    const CHUNK: usize = 64 * 1024;
    let first = usize::try_from(size_hint)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .max(CHUNK);
    let mut buf = Zeroizing::new(Vec::with_capacity(first));
    loop {
        if buf.len() == buf.capacity() {
            // Grow by moving into a new buffer; the old one is wiped.
            let mut bigger = Zeroizing::new(Vec::with_capacity(buf.capacity().saturating_mul(2)));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        let start = buf.len();
        let n = (buf.capacity() - start).min(CHUNK);
        buf.resize(start + n, 0);
        match reader.read(&mut buf[start..]) {
            Ok(0) => {
                buf.truncate(start);
                return Ok(buf);
            }
            Ok(got) => buf.truncate(start + got),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(start),
            Err(e) => return Err(e),
        }
    }
}

/// Writes `data` to a new file at `path` (through symbolic links): a file
/// that is not the one a command read. An existing file is replaced only
/// when `overwrite` is true, under its lock (`on_wait` as in
/// [`KeysetFile::open_locked`]), keeping its owner, group and mode; a new
/// file gets mode 0600 and is created atomically without ever replacing a
/// file that appears meanwhile.
///
/// # Errors
/// [`KeyfileError::Exists`] when the file exists and `overwrite` is false;
/// the errors of [`KeysetFile::replace`] otherwise.
pub fn write_new(
    path: &Path,
    data: &[u8],
    overwrite: bool,
    on_wait: &mut dyn FnMut(),
) -> Result<(), KeyfileError> {
    let target = resolve(path)?;
    match fs::symlink_metadata(&target) {
        Ok(_) if !overwrite => Err(KeyfileError::Exists { path: target }),
        Ok(_) => {
            let locked = KeysetFile::open_locked(&target, on_wait)?;
            let meta = fs::symlink_metadata(&locked.path).map_err(io_err("inspect", &target))?;
            replace_file(&locked.path, data, &meta)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let tmp = temp_with(&target, data)?;
            match tmp.persist_noclobber(&target) {
                Ok(_) => {}
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(KeyfileError::Exists { path: target });
                }
                Err(e) => return Err(io_err("create", &target)(e.error)),
            }
            sync_dir(&parent_dir(&target))
        }
        Err(e) => Err(io_err("inspect", &target)(e)),
    }
}

/// A temporary file next to `target`, mode 0600, holding `data`, fsynced.
fn temp_with(target: &Path, data: &[u8]) -> Result<tempfile::NamedTempFile, KeyfileError> {
    let dir = parent_dir(target);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    let mut tmp = builder
        .tempfile_in(&dir)
        .map_err(io_err("create a temporary file in", &dir))?;
    tmp.write_all(data)
        .map_err(io_err("write a temporary file in", &dir))?;
    #[cfg(unix)]
    {
        // Whatever the umask did, a new keyset file is private.
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err("set the mode of a temporary file in", &dir))?;
    }
    Ok(tmp)
}

/// Atomically replaces the file at `path` (whose metadata is `old`) with
/// `data`, giving the new file the old one's owner, group and mode.
fn replace_file(path: &Path, data: &[u8], old: &Metadata) -> Result<(), KeyfileError> {
    if !old.is_file() {
        return Err(KeyfileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let tmp = temp_with(path, data)?;
    keep_owner_and_mode(&tmp, path, old)?;
    tmp.as_file()
        .sync_all()
        .map_err(io_err("sync a temporary file for", path))?;
    tmp.persist(path)
        .map_err(|e| io_err("rename over", path)(e.error))?;
    sync_dir(&parent_dir(path))
}

#[cfg(unix)]
fn keep_owner_and_mode(
    tmp: &tempfile::NamedTempFile,
    path: &Path,
    old: &Metadata,
) -> Result<(), KeyfileError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let file = tmp.as_file();
    let new = file
        .metadata()
        .map_err(io_err("inspect a temporary file for", path))?;
    if (new.uid(), new.gid()) != (old.uid(), old.gid()) {
        std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid())).map_err(|source| {
            KeyfileError::Ownership {
                path: path.to_path_buf(),
                uid: old.uid(),
                gid: old.gid(),
                source,
            }
        })?;
    }
    // After the chown, which clears set-id bits.
    file.set_permissions(fs::Permissions::from_mode(old.mode() & 0o7777))
        .map_err(io_err("set the mode of a temporary file for", path))
}

#[cfg(not(unix))]
fn keep_owner_and_mode(
    tmp: &tempfile::NamedTempFile,
    path: &Path,
    old: &Metadata,
) -> Result<(), KeyfileError> {
    tmp.as_file()
        .set_permissions(old.permissions())
        .map_err(io_err("set the mode of a temporary file for", path))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), KeyfileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync the directory", dir))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), KeyfileError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A reader that returns at most 1000 bytes per call, like a pipe, and
    /// is interrupted by a signal before every tenth read.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.1 += 1;
            if self.1.is_multiple_of(10) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.0.len().min(out.len()).min(1000);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_secret_reads_everything_whatever_the_hint() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        for hint in [0, 10, 299_999, 300_000, 1 << 20] {
            let got = read_secret(&mut Trickle(&data, 0), hint).unwrap();
            assert_eq!(got.as_slice(), data.as_slice(), "hint {hint}");
        }
        assert!(read_secret(&mut Trickle(b"", 0), 0).unwrap().is_empty());
    }

    #[test]
    fn replace_refuses_a_file_changed_behind_the_lock() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.json");
        fs::write(&p, b"one").unwrap();
        let locked = KeysetFile::open_locked(&p, &mut || {}).unwrap();
        assert_eq!(locked.bytes(), b"one");
        // A writer that ignores the lock, in place, then by rename.
        fs::write(&p, b"two").unwrap();
        assert!(matches!(
            locked.replace(b"three"),
            Err(KeyfileError::Changed { .. })
        ));
        assert_eq!(fs::read(&p).unwrap(), b"two");
        drop(locked);
        let locked = KeysetFile::open_locked(&p, &mut || {}).unwrap();
        let other = d.path().join("other");
        fs::write(&other, b"two").unwrap();
        fs::rename(&other, &p).unwrap();
        assert!(matches!(
            locked.replace(b"three"),
            Err(KeyfileError::Changed { .. })
        ));
        assert_eq!(fs::read(&p).unwrap(), b"two");
        drop(locked);
        let locked = KeysetFile::open_locked(&p, &mut || {}).unwrap();
        locked.replace(b"three").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_second_locker_waits_and_follows_a_renamed_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.json");
        fs::write(&p, b"one").unwrap();
        let first = KeysetFile::open_locked(&p, &mut || {}).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p2 = p.clone();
        let waiter = std::thread::spawn(move || {
            let mut told = || tx.send(()).unwrap();
            let f = KeysetFile::open_locked(&p2, &mut told).unwrap();
            f.bytes().to_vec()
        });
        // The waiter reports that it waits; then the first one replaces the
        // file (a new inode) and lets go.
        rx.recv().unwrap();
        first.replace(b"two").unwrap();
        drop(first);
        assert_eq!(waiter.join().unwrap(), b"two");
    }

    #[test]
    fn write_new_never_replaces_without_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.json");
        write_new(&p, b"one", false, &mut || {}).unwrap();
        assert!(matches!(
            write_new(&p, b"two", false, &mut || {}),
            Err(KeyfileError::Exists { .. })
        ));
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_new(&p, b"two", true, &mut || {}).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_to_a_missing_target_and_loops_refused() {
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink("sub/target", &link).unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        write_new(&link, b"x", false, &mut || {}).unwrap();
        assert_eq!(fs::read(d.path().join("sub/target")).unwrap(), b"x");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert!(matches!(resolve(&a), Err(KeyfileError::SymlinkLoop { .. })));
    }
}
