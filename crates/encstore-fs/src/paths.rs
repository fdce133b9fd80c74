//! Paths, errors and symlink-safe walking: every way a key becomes a path,
//! and the small file-system helpers the rest of the crate shares.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use encstore_core::Error;
use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::owner::Owner;
use crate::{BACKEND, Inner};

/// Flags for opening existing files: `O_NOFOLLOW` (refuse a symlink as the
/// last component) and `O_NONBLOCK` (never hang on a FIFO planted in the
/// tree; no effect on regular files). The values come from rustix, per
/// target.
pub(crate) fn open_flags() -> i32 {
    // The flags are small positive constants on every target.
    (OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32
}

/// Adds the path to an I/O error's message.
pub(crate) fn ctx(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// An [`Error::Backend`] of this backend.
pub(crate) fn backend(op: &'static str, e: io::Error) -> Error {
    Error::backend(BACKEND, op, e)
}

pub(crate) fn symlink_error(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{}: path component is a symlink (encstore-fs never follows symlinks)",
            path.display()
        ),
    )
}

pub(crate) fn not_file_or_dir(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: not a regular file or directory", path.display()),
    )
}

fn not_a_dir(dir: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotADirectory,
        format!("{}: exists and is not a directory", dir.display()),
    )
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| ctx(path, e))
}

/// True for "does not exist", including a parent that is not a directory.
pub(crate) fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error())
}

/// `lstat`, refusing symlinks: `None` when the path does not exist.
pub(crate) fn lstat(path: &Path) -> io::Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(symlink_error(path)),
        Ok(m) => Ok(Some(m)),
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(ctx(path, e)),
    }
}

/// Creates `dir` with `mode` and `owner` if missing; refuses a symlink or a
/// non-directory.
pub(crate) fn ensure_dir(dir: &Path, mode: u32, owner: Owner) -> io::Result<()> {
    match lstat(dir)? {
        Some(m) if m.is_dir() => Ok(()),
        Some(_) => Err(not_a_dir(dir)),
        None => create_dir(dir, mode, owner),
    }
}

/// Creates one directory with `mode`, given to `owner` (tolerating a
/// concurrent creator, whose directory is left as it made it).
pub(crate) fn create_dir(dir: &Path, mode: u32, owner: Owner) -> io::Result<()> {
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {
            owner.give_path(dir)?;
            // After the chown, which may clear the set-group-ID bit.
            set_mode(dir, mode)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match lstat(dir)? {
            Some(m) if m.is_dir() => Ok(()),
            _ => Err(not_a_dir(dir)),
        },
        Err(e) => Err(ctx(dir, e)),
    }
}

/// Opens an existing file for reading without following a symlink (and
/// without blocking on a FIFO).
pub(crate) fn open_read_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(open_flags())
        .open(path)
        .map_err(|e| nofollow_error(path, e))
}

/// Turns the `ELOOP` of `O_NOFOLLOW` into the symlink refusal.
fn nofollow_error(path: &Path, e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) {
        symlink_error(path)
    } else {
        e
    }
}

/// An error from opening `path` with [`open_flags`]: the symlink refusal
/// for `ELOOP`, else the error with the path added.
pub(crate) fn open_error(path: &Path, e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) {
        symlink_error(path)
    } else {
        ctx(path, e)
    }
}

/// `fsync`s a directory, so that entries created or renamed in it persist.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ctx(dir, e))
}

/// A fresh 16-hex-digit name suffix from the OS's random number generator:
/// names collide across writers with negligible probability, and `O_EXCL`
/// refuses a collision rather than sharing a file.
pub(crate) fn random_hex16() -> io::Result<String> {
    let n = getrandom::u64().map_err(|e| io::Error::other(format!("random name: {e}")))?;
    Ok(format!("{n:016x}"))
}

pub(crate) fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// What a path holds.
pub(crate) enum Node {
    Missing,
    File(fs::Metadata),
    Dir(fs::Metadata),
}

impl Inner {
    pub(crate) fn key_path(&self, key: &str) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(key.split('/'));
        p
    }

    /// Walks `key` from ROOT with `lstat`, refusing symlinks, and reports
    /// what its path holds. A parent that is missing or not a directory
    /// means the key is missing.
    pub(crate) fn inspect(&self, key: &str) -> io::Result<(PathBuf, Node)> {
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
    pub(crate) fn parents_exist(&self, key: &str) -> io::Result<bool> {
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
    pub(crate) fn open_object(&self, key: &str) -> io::Result<Option<(File, fs::Metadata)>> {
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
}
