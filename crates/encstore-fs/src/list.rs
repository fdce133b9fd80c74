//! Listing, `stat`, and sweeping stale temporary files on the way.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use encstore_core::key::{is_under, validate_key};
use encstore_core::{Error, ObjectInfo, Result, is_reserved_segment};

use crate::paths::{Node, backend, ctx, is_missing, join_key};
use crate::{Inner, TEMP_PREFIX};

impl Inner {
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

    pub(crate) fn sweep_dir(&self, dir: &Path) {
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
            if is_reserved_segment(name) {
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

    pub(crate) fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<String>> {
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

    pub(crate) fn stat(&self, key: &str) -> Result<ObjectInfo> {
        let op = "stat";
        let (path, node) = self.inspect(key).map_err(|e| backend(op, e))?;
        match node {
            Node::File(m) => Ok(ObjectInfo {
                key: key.to_owned(),
                modified: m.modified().ok(),
                size: m.len(),
                terminal: true,
            }),
            Node::Dir(m) if self.has_keys(&path, key).map_err(|e| backend(op, e))? => {
                Ok(ObjectInfo {
                    key: key.to_owned(),
                    modified: m.modified().ok(),
                    size: 0,
                    terminal: false,
                })
            }
            _ => Err(Error::not_found(key)),
        }
    }
}
