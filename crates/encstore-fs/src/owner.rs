//! Who owns what encstore-fs writes, and with which modes.
//!
//! - Replacing an object keeps the replaced file's owner, group and
//!   permission bits (`0o777`; set-user-ID, set-group-ID and sticky bits are
//!   not carried over). When the process may not give the new file that
//!   owner and group, the write is refused before any byte is written.
//! - A new object gets ROOT's owner and group when the process creates
//!   files as root (otherwise the process's own, which is unavoidable), and
//!   ROOT's permission bits without the execute bits (0700 → 0600,
//!   0750 → 0640, 0755 → 0644), and never writable by others. A new
//!   directory gets ROOT's permission bits (and its set-group-ID bit),
//!   also never writable by others. A ROOT the store creates itself is 0700.
//! - The private area (`.encstore-locks`) stays 0700, its files 0600, given
//!   to ROOT's owner like new objects.

use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, fchown, lchown};
use std::path::Path;

use rustix::io::Errno;

use crate::paths::ctx;
use crate::{DIR_MODE, FILE_MODE};

/// Whom new files and directories are given to: `Some((uid, gid))` of ROOT
/// when this process creates files as root; `None` leaves them to the
/// process (no `chown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner(pub(crate) Option<(u32, u32)>);

impl Owner {
    /// Gives the directory or file at `path` (which this process just
    /// created) to the owner, without following a symlink.
    pub(crate) fn give_path(self, path: &Path) -> io::Result<()> {
        let Some((uid, gid)) = self.0 else {
            return Ok(());
        };
        let m = fs::symlink_metadata(path).map_err(|e| ctx(path, e))?;
        if (m.uid(), m.gid()) != (uid, gid) {
            lchown(path, Some(uid), Some(gid)).map_err(|e| ctx(path, e))?;
        }
        Ok(())
    }

    /// Gives the open `file` to the owner.
    pub(crate) fn give_file(self, file: &File, path: &Path) -> io::Result<()> {
        let Some((uid, gid)) = self.0 else {
            return Ok(());
        };
        let m = file.metadata().map_err(|e| ctx(path, e))?;
        if (m.uid(), m.gid()) != (uid, gid) {
            fchown(file, Some(uid), Some(gid)).map_err(|e| ctx(path, e))?;
        }
        Ok(())
    }
}

/// The store's conventions for what it creates, fixed when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conventions {
    /// Owner of new objects, directories and private files.
    pub(crate) owner: Owner,
    /// Mode of new objects.
    pub(crate) file_mode: u32,
    /// Mode of new directories under ROOT (not the private area).
    pub(crate) dir_mode: u32,
}

impl Conventions {
    /// The conventions for a ROOT with metadata `root`: `created` when the
    /// store just created it (then 0600/0700), `as_root` when this process
    /// creates files owned by uid 0.
    pub(crate) fn for_root(root: &Metadata, created: bool, as_root: bool) -> Conventions {
        let (file_mode, dir_mode) = if created {
            (FILE_MODE, DIR_MODE)
        } else {
            let mode = root.mode();
            // Never world-writable, whatever ROOT allows: a store under a
            // 1777 directory must not let every user replace objects.
            (mode & 0o664, mode & 0o2775)
        };
        Conventions {
            owner: Owner(as_root.then(|| (root.uid(), root.gid()))),
            file_mode,
            dir_mode,
        }
    }
}

/// What a staged file must look like before it replaces, or becomes, an
/// object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attrs {
    uid: Option<u32>,
    gid: Option<u32>,
    mode: u32,
    /// Whether an existing object is being replaced (for the message).
    replacing: bool,
}

impl Attrs {
    /// Those of the file being replaced: its owner, group and permission
    /// bits.
    pub(crate) fn of_replaced(m: &Metadata) -> Attrs {
        Attrs {
            uid: Some(m.uid()),
            gid: Some(m.gid()),
            mode: m.mode() & 0o777,
            replacing: true,
        }
    }

    /// Those of a new object under the store's conventions.
    pub(crate) fn new_object(c: &Conventions) -> Attrs {
        let (uid, gid) = match c.owner.0 {
            Some((u, g)) => (Some(u), Some(g)),
            None => (None, None),
        };
        Attrs {
            uid,
            gid,
            mode: c.file_mode,
            replacing: false,
        }
    }

    /// Gives the staged `file` (at `temp`, to become `target`) these
    /// attributes: owner and group first (`fchown`), then the mode (a
    /// `chown` may clear mode bits). When the process may not give the file
    /// that owner or group (`EPERM`), fails with a
    /// [`PermissionDenied`](io::ErrorKind::PermissionDenied) error that says
    /// why; the caller removes the temporary file, so nothing changes.
    ///
    /// Returns the file's metadata from before the change (its inode
    /// number is what matters to the caller).
    pub(crate) fn apply(&self, file: &File, temp: &Path, target: &Path) -> io::Result<Metadata> {
        let m = file.metadata().map_err(|e| ctx(temp, e))?;
        let uid = self.uid.filter(|u| *u != m.uid());
        let gid = self.gid.filter(|g| *g != m.gid());
        if (uid.is_some() || gid.is_some())
            && let Err(e) = fchown(file, uid, gid)
        {
            if e.raw_os_error() == Some(Errno::PERM.raw_os_error()) {
                return Err(self.refusal(target, &m));
            }
            return Err(ctx(temp, e));
        }
        if uid.is_some() || gid.is_some() || m.mode() & 0o7777 != self.mode {
            file.set_permissions(fs::Permissions::from_mode(self.mode))
                .map_err(|e| ctx(temp, e))?;
        }
        Ok(m)
    }

    fn refusal(&self, target: &Path, created: &Metadata) -> io::Error {
        let (uid, gid) = (
            self.uid.unwrap_or(created.uid()),
            self.gid.unwrap_or(created.gid()),
        );
        let what = if self.replacing {
            format!("refusing to replace it: it belongs to uid {uid}, gid {gid}, and this process")
        } else {
            format!(
                "refusing to create it: the store's convention gives new objects to uid {uid}, \
                 gid {gid}, and this process"
            )
        };
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{}: {what} (which creates files as uid {}, gid {}) may not give a file that \
                 owner and group, so the service owning the store might not be able to read it; \
                 nothing was changed. Write as that user or as root, or change the owner of the \
                 file",
                target.display(),
                created.uid(),
                created.gid(),
            ),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The mode rule: files lose the execute bits of ROOT's mode,
    /// directories keep ROOT's permission and set-group-ID bits, and a ROOT
    /// the store created gives 0600/0700.
    #[test]
    fn modes_derive_from_the_root() {
        let dir = tempfile::tempdir().unwrap();
        for (root_mode, file, sub) in [
            (0o700, 0o600, 0o700),
            (0o750, 0o640, 0o750),
            (0o755, 0o644, 0o755),
            (0o2770, 0o660, 0o2770),
            (0o1777, 0o664, 0o775),
            (0o777, 0o664, 0o775),
        ] {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(root_mode)).unwrap();
            let m = fs::metadata(dir.path()).unwrap();
            let c = Conventions::for_root(&m, false, false);
            assert_eq!((c.file_mode, c.dir_mode), (file, sub), "{root_mode:o}");
            assert_eq!(c.owner, Owner(None));
            let c = Conventions::for_root(&m, true, true);
            assert_eq!((c.file_mode, c.dir_mode), (0o600, 0o700));
            assert_eq!(c.owner, Owner(Some((m.uid(), m.gid()))));
        }
    }
}
