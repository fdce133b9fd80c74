//! Reading objects, and versions: what they are and how `store_if` checks
//! one cheaply under its guard.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};

use bytes::Bytes;
use encstore_core::stream::clamp_range;
use encstore_core::{Error, RangeRead, Result, Version, Versioned};
use xxhash_rust::xxh3::{Xxh3Default, xxh3_64};

use crate::Inner;
use crate::paths::{backend, ctx};

/// A version: the content's xxh3-64, the inode and the size, in hex.
pub(crate) fn version_of(hash: u64, ino: u64, size: u64) -> Version {
    Version::new(format!("{hash:016x}-{ino:x}-{size:x}"))
}

/// How much [`Inner::hash_object`] reads at a time.
pub(crate) const HASH_CHUNK: usize = 256 << 10;

/// The version of an object, computed from a file that is kept open, with
/// what is needed to check later, in a few system calls, that the key still
/// names exactly that content.
pub(crate) struct Hashed {
    pub(crate) version: Version,
    /// The content's xxh3-64, the first part of the version.
    pub(crate) hash: u64,
    /// How many bytes were hashed.
    pub(crate) len: u64,
    /// The hashed file, kept open so that its inode cannot be freed and
    /// reused by another file while the check is pending.
    pub(crate) file: File,
    /// Its `fstat` before hashing.
    pub(crate) before: Metadata,
}

/// What changes when a file's content changes: size, mtime and ctime (which
/// no caller can set back; any write updates it).
pub(crate) fn content_stamp(m: &Metadata) -> (u64, i64, i64, i64, i64) {
    (
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

impl Hashed {
    /// True when `at_path` (an `lstat` of the key's path, taken under the
    /// write guard) is the hashed file and it has not been written since the
    /// hash began, so [`Hashed::version`] is the key's current version.
    ///
    /// Sound because objects are only ever replaced by `rename` (a new
    /// inode): the same device and inode number as the file still held open
    /// means the very same file, and an unchanged size, mtime and ctime mean
    /// no write touched it since.
    pub(crate) fn still_current(&self, at_path: &Metadata) -> io::Result<bool> {
        let now = self.file.metadata()?;
        Ok(
            (at_path.dev(), at_path.ino()) == (self.before.dev(), self.before.ino())
                && content_stamp(&now) == content_stamp(&self.before),
        )
    }
}

impl Inner {
    pub(crate) fn read_object(
        &self,
        key: &str,
        limit: Option<usize>,
    ) -> io::Result<Option<(Vec<u8>, Metadata)>> {
        let Some((mut file, meta)) = self.open_object(key)? else {
            return Ok(None);
        };
        // Objects are never modified in place (only replaced by rename), so
        // the size from `fstat` is the size to read: one `read` call
        // normally, with no size-hint `fstat`/`lseek` and no EOF probe.
        let want = usize::try_from(meta.len())
            .unwrap_or(usize::MAX)
            .min(limit.unwrap_or(usize::MAX));
        let mut buf = Vec::new();
        buf.try_reserve_exact(want).map_err(io::Error::other)?;
        buf.resize(want, 0);
        let mut filled = 0;
        let read = loop {
            if filled == want {
                break Ok(());
            }
            match file.read(&mut buf[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(filled);
        read.map_err(|e| ctx(&self.key_path(key), e))?;
        Ok(Some((buf, meta)))
    }

    pub(crate) fn load(&self, key: &str) -> Result<Bytes> {
        match self
            .read_object(key, None)
            .map_err(|e| backend("load", e))?
        {
            Some((buf, _)) => Ok(Bytes::from(buf)),
            None => Err(Error::not_found(key)),
        }
    }

    pub(crate) fn load_head(&self, key: &str, len: usize) -> Result<Bytes> {
        match self
            .read_object(key, Some(len))
            .map_err(|e| backend("load", e))?
        {
            Some((buf, _)) => Ok(Bytes::from(buf)),
            None => Err(Error::not_found(key)),
        }
    }

    pub(crate) fn load_versioned(&self, key: &str) -> Result<Versioned> {
        match self
            .read_object(key, None)
            .map_err(|e| backend("load", e))?
        {
            Some((buf, meta)) => {
                let version = version_of(xxh3_64(&buf), meta.ino(), buf.len() as u64);
                Ok(Versioned {
                    value: Bytes::from(buf),
                    version,
                })
            }
            None => Err(Error::not_found(key)),
        }
    }

    /// Reads the bytes `range` of `key` with `pread`, and nothing else of
    /// the file.
    pub(crate) fn load_range(&self, key: &str, range: Range<u64>) -> Result<RangeRead> {
        let op = "load_range";
        let Some((file, meta)) = self.open_object(key).map_err(|e| backend(op, e))? else {
            return Err(Error::not_found(key));
        };
        let size = meta.len();
        let r = clamp_range(key, range, size)?;
        let len = usize::try_from(r.end - r.start).map_err(|e| backend(op, io::Error::other(e)))?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len)
            .map_err(|e| backend(op, io::Error::other(e)))?;
        buf.resize(len, 0);
        // Objects are only ever replaced, never shortened in place, so the
        // range is there; if another program truncated the file, this
        // fails (UnexpectedEof) rather than returning fewer bytes.
        file.read_exact_at(&mut buf, r.start)
            .map_err(|e| backend(op, ctx(&self.key_path(key), e)))?;
        Ok(RangeRead {
            bytes: Bytes::from(buf),
            size,
        })
    }

    /// Hashes the current object `key` in chunks (no guard held, constant
    /// memory), or `None` if it is not an object.
    pub(crate) fn hash_object(&self, key: &str) -> io::Result<Option<Hashed>> {
        let Some((mut file, before)) = self.open_object(key)? else {
            return Ok(None);
        };
        let mut hasher = Xxh3Default::new();
        let mut buf = vec![0u8; HASH_CHUNK];
        let mut len = 0u64;
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    len += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ctx(&self.key_path(key), e)),
            }
        }
        let hash = hasher.digest();
        Ok(Some(Hashed {
            version: version_of(hash, before.ino(), len),
            hash,
            len,
            file,
            before,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The chunked hash gives exactly the one-shot hash that
    /// `load_versioned` uses, across chunk boundaries.
    #[test]
    fn chunked_hash_equals_one_shot_hash() {
        for len in [0, 1, 240, HASH_CHUNK - 1, HASH_CHUNK, 3 * HASH_CHUNK + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 131 + 7) as u8).collect();
            let mut h = Xxh3Default::new();
            for c in data.chunks(HASH_CHUNK) {
                h.update(c);
            }
            assert_eq!(h.digest(), xxh3_64(&data), "{len}");
        }
    }
}
