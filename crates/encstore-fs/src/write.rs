//! The write path: staging a temporary file, the guarded compare and
//! rename, and deletion.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use encstore_core::{Error, Result, Version, WriteCondition};
use xxhash_rust::xxh3::xxh3_64;

use crate::owner::Attrs;
use crate::paths::{Node, backend, create_dir, ctx, is_missing, lstat, random_hex16, sync_dir};
use crate::read::{Hashed, version_of};
use crate::{FILE_MODE, Inner, TEMP_PREFIX};

/// A temporary file that becomes the object when it is renamed over the
/// key. Until then, dropping it removes the temporary file: a write that
/// fails, or whose future is dropped, leaves nothing behind (except when
/// the process dies first; see the stale-file sweep).
pub(crate) struct Staged {
    pub(crate) temp: PathBuf,
    /// The temporary file, open for writing; shared with the blocking
    /// tasks of a streamed write, and kept so that its owner and mode can
    /// be fixed under the guard if the target changed meanwhile.
    pub(crate) file: Arc<File>,
    target: PathBuf,
    /// Directories to fsync after the rename, deepest first.
    sync: Vec<PathBuf>,
    /// The temporary file's inode, which the key has after the rename.
    pub(crate) ino: u64,
    /// The owner, group and mode given to the temporary file.
    attrs: Attrs,
    /// Whether dropping removes the temporary file: until the rename.
    armed: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// What a conditional write checks under the guard.
pub(crate) enum Check {
    /// Nothing (plain `store`).
    None,
    /// The key must not exist.
    Absent,
    /// The key must still be the file that was hashed (before the guard)
    /// and found at the expected version.
    Unchanged(Box<Hashed>),
}

fn precondition_failed(key: &str) -> Error {
    Error::PreconditionFailed {
        key: key.to_owned(),
    }
}

impl Inner {
    /// Creates the key's missing directories and its temporary file, owned
    /// and moded as the object it becomes (see [`crate::owner`]); refuses
    /// before a byte is written when that owner cannot be given.
    fn open_temp(&self, key: &str) -> io::Result<Staged> {
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
                    create_dir(&path, self.conv.dir_mode, self.conv.owner)?;
                    created.push(path.clone());
                }
            }
            dir = path;
        }
        let target = target.unwrap_or_else(|| self.key_path(key));
        let attrs = match lstat(&target)? {
            Some(m) if m.is_dir() => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!(
                        "{}: cannot store {key:?}: it is a prefix of other keys (a directory)",
                        target.display()
                    ),
                ));
            }
            Some(m) => Attrs::of_replaced(&m),
            None => Attrs::new_object(&self.conv),
        };
        let temp = dir.join(format!("{TEMP_PREFIX}{}", random_hex16()?));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&temp)
            .map_err(|e| ctx(&temp, e))?;
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
        let mut staged = Staged {
            temp,
            file: Arc::new(file),
            target,
            sync,
            ino: 0,
            attrs,
            armed: true,
        };
        // On failure, dropping `staged` removes the temporary file.
        let m = attrs.apply(&staged.file, &staged.temp, &staged.target)?;
        staged.ino = m.ino();
        Ok(staged)
    }

    /// [`open_temp`](Self::open_temp), tried again a few times when a
    /// concurrent delete of a prefix removes a directory between its
    /// creation and the temporary file's.
    pub(crate) fn stage(&self, op: &'static str, key: &str) -> Result<Staged> {
        let mut attempt = 0;
        loop {
            match self.open_temp(key) {
                Ok(s) => return Ok(s),
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 3 => attempt += 1,
                Err(e) => return Err(backend(op, e)),
            }
        }
    }

    /// What a write under `cond` must check under the guard. A `Matches`
    /// condition is checked now, by hashing the current file with no guard
    /// held (a mismatch fails at once, writing nothing). With `early`, an
    /// `Absent` condition is checked now as well (a streamed write then
    /// does not consume a body it cannot write); the check under the guard
    /// decides in any case.
    pub(crate) fn precheck(
        &self,
        op: &'static str,
        key: &str,
        cond: Option<&WriteCondition>,
        early: bool,
    ) -> Result<Check> {
        match cond {
            None => Ok(Check::None),
            Some(WriteCondition::Absent) => {
                if early
                    && let (_, Node::File(_)) = self.inspect(key).map_err(|e| backend(op, e))?
                {
                    return Err(precondition_failed(key));
                }
                Ok(Check::Absent)
            }
            Some(WriteCondition::Matches(want)) => {
                match self.hash_object(key).map_err(|e| backend(op, e))? {
                    Some(h) if h.version == *want => Ok(Check::Unchanged(Box::new(h))),
                    _ => Err(precondition_failed(key)),
                }
            }
            Some(_) => Err(precondition_failed(key)),
        }
    }

    /// Puts a staged file, written and fsynced, in place: under the key's
    /// write guard there are only a few system calls, an `lstat` of the
    /// target, the check ([`Hashed::still_current`] for `Matches`) and the
    /// rename. So hashing a large object never makes writers of other keys
    /// sharing the guard stripe wait. Then fsyncs the directories. On any
    /// failure before the rename, the temporary file is removed.
    pub(crate) fn commit(
        &self,
        op: &'static str,
        key: &str,
        mut staged: Staged,
        check: Check,
    ) -> Result<()> {
        let committed = (|| {
            let _guard = self.write_guard(op, key)?;
            let current = lstat(&staged.target).map_err(|e| backend(op, e))?;
            let holds = match (&check, &current) {
                (Check::None, _) => true,
                (Check::Absent, current) => current.is_none(),
                (Check::Unchanged(h), Some(m)) => h.still_current(m).map_err(|e| backend(op, e))?,
                (Check::Unchanged(_), None) => false,
            };
            if !holds {
                return Err(precondition_failed(key));
            }
            // Another writer replaced the target since staging, with a
            // different owner or mode: keep those instead (rare; a few
            // system calls).
            if let Some(m) = current.filter(|m| m.is_file()) {
                let now = Attrs::of_replaced(&m);
                if now != staged.attrs {
                    now.apply(&staged.file, &staged.temp, &staged.target)
                        .map_err(|e| backend(op, e))?;
                }
            }
            fs::rename(&staged.temp, &staged.target)
                .map_err(|e| backend(op, ctx(&staged.target, e)))
        })();
        drop(check);
        // Dropping `staged` removes the temporary file unless renamed.
        committed?;
        staged.armed = false;
        for dir in &staged.sync {
            sync_dir(dir).map_err(|e| backend(op, e))?;
        }
        Ok(())
    }

    /// `store` (no condition) and `store_if`: returns the new version for
    /// `store_if` (none is computed for a plain `store`).
    pub(crate) fn store(
        &self,
        key: &str,
        value: &[u8],
        cond: Option<&WriteCondition>,
    ) -> Result<Option<Version>> {
        let op = if cond.is_some() { "store_if" } else { "store" };
        let check = self.precheck(op, key, cond, false)?;
        let staged = self.stage(op, key)?;
        (|| {
            (&*staged.file).write_all(value)?;
            staged.file.sync_all()
        })()
        .map_err(|e| backend(op, ctx(&staged.temp, e)))?;
        let ino = staged.ino;
        self.commit(op, key, staged, check)?;
        Ok(cond
            .is_some()
            .then(|| version_of(xxh3_64(value), ino, value.len() as u64)))
    }

    pub(crate) fn delete(&self, key: &str) -> Result<()> {
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
}
