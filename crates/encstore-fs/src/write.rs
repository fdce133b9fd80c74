//! The write path: staging a temporary file, the guarded compare and
//! rename, and deletion.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use encstore_core::{Error, Result, Version, WriteCondition};
use xxhash_rust::xxh3::xxh3_64;

use crate::owner::Attrs;
use crate::paths::{Node, backend, create_dir, ctx, is_missing, lstat, random_hex16, sync_dir};
use crate::read::{Hashed, version_of};
use crate::{FILE_MODE, Inner, TEMP_PREFIX};

/// Where a write puts its bytes before the rename.
struct Staged {
    temp: PathBuf,
    /// The temporary file, still open, so that its owner and mode can be
    /// fixed under the guard if the target changed meanwhile.
    file: File,
    target: PathBuf,
    /// Directories to fsync after the rename, deepest first.
    sync: Vec<PathBuf>,
    /// The temporary file's inode, which the key has after the rename.
    ino: u64,
    /// The owner, group and mode given to the temporary file.
    attrs: Attrs,
}

/// What a conditional write checks under the guard.
enum Check {
    /// Nothing (plain `store`).
    None,
    /// The key must not exist.
    Absent,
    /// The key must still be the file that was hashed (before the guard)
    /// and found at the expected version.
    Unchanged(Hashed),
}

fn precondition_failed(key: &str) -> Error {
    Error::PreconditionFailed {
        key: key.to_owned(),
    }
}

impl Inner {
    /// Creates the key's missing directories and writes, fsyncs and closes
    /// its temporary file, owned and moded as the object it becomes (see
    /// [`crate::owner`]); refuses before writing a byte when that owner
    /// cannot be given.
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
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&temp)
            .map_err(|e| ctx(&temp, e))?;
        let written = attrs.apply(&file, &temp, &target).and_then(|m| {
            (|| {
                file.write_all(value)?;
                file.sync_all()?;
                Ok(m.ino())
            })()
            .map_err(|e| ctx(&temp, e))
        });
        let ino = match written {
            Ok(ino) => ino,
            Err(e) => {
                drop(file);
                let _ = fs::remove_file(&temp);
                return Err(e);
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
            file,
            target,
            sync,
            ino,
            attrs,
        })
    }

    /// `store` (no condition) and `store_if`.
    ///
    /// A `Matches` condition is checked first by hashing the current file
    /// with no guard held (a mismatch fails at once, writing nothing). Under
    /// the key's write guard there are then only a few system calls: an
    /// `lstat` of the target, the check that it is still the hashed file
    /// ([`Hashed::still_current`]), and the rename. So hashing a large
    /// object never makes writers of other keys sharing the guard stripe
    /// wait.
    pub(crate) fn store(
        &self,
        key: &str,
        value: &[u8],
        cond: Option<&WriteCondition>,
    ) -> Result<Version> {
        let op = if cond.is_some() { "store_if" } else { "store" };
        let check = match cond {
            None => Check::None,
            Some(WriteCondition::Absent) => Check::Absent,
            Some(WriteCondition::Matches(want)) => {
                match self.hash_object(key).map_err(|e| backend(op, e))? {
                    Some(h) if h.version == *want => Check::Unchanged(h),
                    _ => return Err(precondition_failed(key)),
                }
            }
            Some(_) => return Err(precondition_failed(key)),
        };
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
        if let Err(e) = committed {
            let _ = fs::remove_file(&staged.temp);
            return Err(e);
        }
        drop(staged.file);
        for dir in &staged.sync {
            sync_dir(dir).map_err(|e| backend(op, e))?;
        }
        Ok(version_of(xxh3_64(value), staged.ino, value.len() as u64))
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
