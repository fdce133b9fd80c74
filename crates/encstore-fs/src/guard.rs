//! `flock` guards: short critical sections shared by every process on the
//! host (the per-key write guards of `store`/`store_if`/`delete`, and the
//! per-lock guards of the lock files).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use encstore_core::{Error, Result};
use xxhash_rust::xxh3::xxh3_64;

use crate::owner::Owner;
use crate::paths::{backend, ctx, open_error, open_flags};
use crate::{BACKEND, FILE_MODE, GUARD_STRIPES, Inner, WRITE_GUARD_WAIT};

/// An exclusive flock on a guard file; released on drop (when the file
/// closes).
pub(crate) struct Guard(#[allow(dead_code)] File);

/// Takes an exclusive flock on `path` (created 0600 and given to `owner` if
/// missing), polling for at most `wait`. `Ok(None)` when it stayed busy that
/// long.
pub(crate) fn acquire_guard(
    path: &Path,
    wait: Duration,
    owner: Owner,
) -> io::Result<Option<Guard>> {
    let file = open_guard(path, owner)?;
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_micros(200);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(Guard(file))),
            Err(fs::TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(fs::TryLockError::Error(e)) => return Err(ctx(path, e)),
        }
    }
}

/// Opens the guard file at `path`: normally it exists (one open call);
/// otherwise creates it 0600 and gives it to `owner`.
fn open_guard(path: &Path, owner: Owner) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).custom_flags(open_flags());
    match o.open(path) {
        Ok(f) => return Ok(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(open_error(path, e)),
    }
    match o.clone().create_new(true).mode(FILE_MODE).open(path) {
        Ok(f) => {
            owner.give_file(&f, path)?;
            Ok(f)
        }
        // Created by someone else meanwhile.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            o.open(path).map_err(|e| open_error(path, e))
        }
        Err(e) => Err(open_error(path, e)),
    }
}

impl Inner {
    /// The write guard of `key`: one of [`GUARD_STRIPES`] files, by the
    /// key's hash.
    pub(crate) fn guard_path(&self, key: &str) -> PathBuf {
        self.guards.join(format!(
            "{:03x}.guard",
            xxh3_64(key.as_bytes()) % GUARD_STRIPES
        ))
    }

    /// Takes the write guard of `key`, or [`Error::Timeout`] after
    /// [`WRITE_GUARD_WAIT`].
    pub(crate) fn write_guard(&self, op: &'static str, key: &str) -> Result<Guard> {
        acquire_guard(&self.guard_path(key), WRITE_GUARD_WAIT, self.conv.owner)
            .map_err(|e| backend(op, e))?
            .ok_or(Error::Timeout {
                backend: BACKEND,
                op,
            })
    }
}
