//! Opening a store: settings, ROOT, the probe of its filesystem, and the
//! private area.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use encstore_core::lease::check_lease;
use encstore_core::{Error, Result};

use crate::locks::Sightings;
use crate::owner::Conventions;
use crate::paths::{backend, ctx, ensure_dir, set_mode};
use crate::probe::probe;
use crate::{BACKEND, DIR_MODE, FsStorage, GUARDS_DIR, Inner, LOCKS_DIR};

/// Configures and opens an [`FsStorage`]; see [`FsStorage::builder`].
#[derive(Debug, Clone)]
pub struct FsStorageBuilder {
    pub(crate) root: PathBuf,
    pub(crate) lease: Duration,
    pub(crate) stale_temp_age: Duration,
}

impl FsStorageBuilder {
    /// Sets the lock lease (default [`DEFAULT_LEASE`](crate::DEFAULT_LEASE),
    /// 60 s). Every process sharing a root should use the same lease. It
    /// must lie between [`MIN_LEASE`](encstore_core::lease::MIN_LEASE)
    /// (100 ms) and [`MAX_LEASE`](encstore_core::lease::MAX_LEASE) (24 h);
    /// [`build`](Self::build) refuses anything else.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets the age (by mtime) after which leftover temporary files are
    /// swept (default [`DEFAULT_STALE_TEMP_AGE`](crate::DEFAULT_STALE_TEMP_AGE),
    /// one hour). It must exceed the longest write any process sharing the
    /// root can take, or a sweep could remove a write in progress (that
    /// write then fails; nothing stored is lost).
    pub fn stale_temp_age(mut self, age: Duration) -> Self {
        self.stale_temp_age = age;
        self
    }

    /// Opens the store: checks the lease, creates ROOT (0700) if missing,
    /// canonicalizes it, probes its filesystem (refusing one that folds
    /// names), creates the lock directory if missing, and sweeps stale
    /// temporary files from it. Blocks on the filesystem.
    ///
    /// # Errors
    /// - [`Error::Backend`] (op `open`) when the lease is out of bounds (an
    ///   [`InvalidInput`](io::ErrorKind::InvalidInput) error naming the
    ///   bounds), or ROOT cannot be created or is not a directory.
    /// - [`Error::Unsupported`] (op `open`) when ROOT's filesystem folds
    ///   letter case or Unicode normalization, so that two keys could name
    ///   one file. Nothing is created on it then (but ROOT itself, if it
    ///   was missing).
    pub fn build(self) -> Result<FsStorage> {
        let op = "open";
        let lease = check_lease(self.lease)
            .map_err(|e| backend(op, io::Error::new(io::ErrorKind::InvalidInput, e)))?;
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
        // Before anything else is created or changed on ROOT's filesystem.
        let found = probe(&root).map_err(|e| backend(op, e))?;
        if let Some(folding) = found.folding {
            return Err(Error::Unsupported {
                backend: BACKEND,
                op,
                reason: folding.reason(&root),
            });
        }
        if created {
            set_mode(&root, DIR_MODE).map_err(|e| backend(op, e))?;
        }
        let meta = fs::metadata(&root).map_err(|e| backend(op, ctx(&root, e)))?;
        let conv = Conventions::for_root(&meta, created, found.creates_as_root);
        if !created && meta.mode() & 0o022 != 0 {
            tracing::warn!(root = %root.display(), mode = format!("{:o}", meta.mode() & 0o7777),
                "the store root is writable by group or others; new objects get the same mode without the execute bits");
        }
        let locks = root.join(LOCKS_DIR);
        let guards = locks.join(GUARDS_DIR);
        for dir in [&locks, &guards] {
            ensure_dir(dir, DIR_MODE, conv.owner).map_err(|e| backend(op, e))?;
        }
        let inner = Inner {
            root,
            locks,
            guards,
            lease,
            stale_temp_age: self.stale_temp_age,
            host: encstore_core::hostname(),
            conv,
            sightings: Sightings::default(),
        };
        inner.sweep_dir(&inner.locks);
        Ok(FsStorage {
            inner: Arc::new(inner),
        })
    }
}
