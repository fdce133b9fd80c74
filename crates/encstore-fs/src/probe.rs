//! What the store learns about ROOT's filesystem when it opens: whether it
//! folds names (letter case, Unicode normalization), which would let two
//! keys alias one file, and whether this process creates files as root.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::paths::{ctx, lstat, random_hex16};
use crate::{FILE_MODE, LOCKS_DIR, TEMP_PREFIX};

/// A way the filesystem treats different names as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Folding {
    /// Names differing only in letter case name one file; the two names
    /// that did.
    Case(String, String),
    /// Names differing only in Unicode normalization (NFC `é` and NFD
    /// `e` + U+0301) name one file.
    Normalization,
}

impl Folding {
    /// Why a store cannot live on such a filesystem.
    pub(crate) fn reason(&self, root: &Path) -> String {
        let how = match self {
            Folding::Case(a, b) => format!(
                "folds letter case ({a:?} and {b:?} name the same file), so keys differing only \
                 in case (\"a\" and \"A\") would share one file"
            ),
            Folding::Normalization => "treats differently normalized Unicode names as one \
                 (NFC \"\u{e9}\" and NFD \"e\u{301}\" name the same file), so two different keys \
                 would share one file"
                .to_owned(),
        };
        format!(
            "{}: the filesystem {how}. encstore-fs needs a filesystem that compares names byte \
             for byte (on Linux: ext4, xfs, btrfs, tmpfs without casefolding; not vfat/exFAT; \
             on macOS a case-sensitive APFS volume)",
            root.display()
        )
    }
}

/// The findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    /// How the filesystem folds names, if it does.
    pub(crate) folding: Option<Folding>,
    /// True when a file this process creates is owned by uid 0 (a root
    /// process, and no `root_squash` in the way).
    pub(crate) creates_as_root: bool,
}

/// Probes ROOT: creates a file with a reserved, random, lower-case name,
/// checks whether its upper-case spelling resolves, then does the same for
/// a name in NFC against its NFD spelling, and removes the probes (a
/// leftover, after a crash, is swept like any stale temporary file). A
/// process that may not write to ROOT checks instead whether the lock
/// directory (present in every store that has been written to) resolves
/// under its upper-case spelling although no entry is spelled so; it is not
/// treated as root.
pub(crate) fn probe(root: &Path) -> io::Result<Probe> {
    let tag = random_hex16()?;
    let name = format!("{TEMP_PREFIX}probe-{tag}");
    let path = root.join(&name);
    let file = match create(&path) {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            let upper = LOCKS_DIR.to_ascii_uppercase();
            let folds = lstat(&root.join(LOCKS_DIR))?.is_some() && alias_only(root, &upper)?;
            return Ok(Probe {
                folding: folds.then(|| Folding::Case(LOCKS_DIR.to_owned(), upper)),
                creates_as_root: false,
            });
        }
        Err(e) => return Err(ctx(&path, e)),
    };
    let result = (|| {
        let creates_as_root = file.metadata().map_err(|e| ctx(&path, e))?.uid() == 0;
        let upper = name.to_ascii_uppercase();
        // The name is fresh, random and reserved: if another spelling of it
        // resolves, the filesystem folds. (Inode numbers cannot tell: FUSE
        // filesystems number each name they look up.)
        let folding = if exists(&root.join(&upper))? {
            Some(Folding::Case(name.clone(), upper))
        } else if normalization_folds(root, &tag) {
            Some(Folding::Normalization)
        } else {
            None
        };
        Ok(Probe {
            folding,
            creates_as_root,
        })
    })();
    drop(file);
    let _ = fs::remove_file(&path);
    result
}

fn create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// True when `path` exists (`lstat`).
fn exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ctx(path, e)),
    }
}

/// True when `dir/name` resolves although no entry of `dir` is spelled
/// `name`: the filesystem found it under another spelling. (A filesystem
/// that compares bytes resolves only names that are listed.)
pub(crate) fn alias_only(dir: &Path, name: &str) -> io::Result<bool> {
    if !exists(&dir.join(name))? {
        return Ok(false);
    }
    for entry in fs::read_dir(dir).map_err(|e| ctx(dir, e))? {
        if entry.map_err(|e| ctx(dir, e))?.file_name() == name {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Best effort: a filesystem that refuses the non-ASCII probe name gives no
/// evidence of folding (and will refuse such keys with an error anyway).
fn normalization_folds(root: &Path, tag: &str) -> bool {
    let nfc = root.join(format!("{TEMP_PREFIX}probe-\u{e9}-{tag}"));
    let nfd = root.join(format!("{TEMP_PREFIX}probe-e\u{301}-{tag}"));
    match create(&nfc) {
        Ok(f) => drop(f),
        Err(e) => {
            tracing::debug!(error = %e, "cannot create the Unicode normalization probe");
            return false;
        }
    }
    let folds = exists(&nfd).unwrap_or(false);
    let _ = fs::remove_file(&nfc);
    folds
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The read-only check never mistakes two listed names for one file:
    /// `.ENCSTORE-LOCKS` next to `.encstore-locks` on a byte-comparing
    /// filesystem is a directory of its own, and a missing spelling is not
    /// an alias. (That a folded spelling is found is tested on a real
    /// case-folding filesystem in `tests/casefold.rs`.)
    #[test]
    fn alias_only_needs_a_spelling_that_is_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(".encstore-locks")).unwrap();
        assert!(!alias_only(dir.path(), ".ENCSTORE-LOCKS").unwrap());
        fs::create_dir(dir.path().join(".ENCSTORE-LOCKS")).unwrap();
        assert!(!alias_only(dir.path(), ".ENCSTORE-LOCKS").unwrap());
        assert!(!alias_only(dir.path(), ".encstore-locks").unwrap());
    }

    /// On this (case-sensitive, byte-comparing) filesystem the probe finds
    /// no folding, sees whether the process is root, and leaves nothing
    /// behind.
    #[test]
    fn probe_on_a_byte_comparing_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let p = probe(dir.path()).unwrap();
        assert_eq!(p.folding, None);
        let mine = dir.path().join("mine");
        fs::write(&mine, b"x").unwrap();
        let as_root = fs::metadata(&mine).unwrap().uid() == 0;
        assert_eq!(p.creates_as_root, as_root);
        fs::remove_file(&mine).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
