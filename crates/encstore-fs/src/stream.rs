//! Streamed writes and reads: the async side, feeding the blocking write
//! and read paths chunk by chunk, in constant memory.
//!
//! - A streamed write stages its temporary file exactly as `store` does,
//!   writes the body's chunks into it as they come (in batches, one batch
//!   written on the blocking pool while the next is gathered), fsyncs it,
//!   and commits it with the same guarded check and rename. The
//!   [`Staged`] file removes itself when dropped before the rename, so a
//!   body that fails, or a future that is dropped, leaves nothing behind.
//! - A streamed read keeps the object's file open and reads it with
//!   `pread`, one chunk ahead of the consumer, each chunk in its own short
//!   blocking task (no thread is held between chunks, however slowly the
//!   consumer reads). Before its last chunk is handed out, it checks that
//!   the file was not modified in place meanwhile; a versioned read also
//!   checks the content hash again.

use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use encstore_core::{ByteStream, Error, ObjectStream, Result, Version, WriteCondition};
use tokio::task::JoinHandle;
use xxhash_rust::xxh3::Xxh3Default;

use crate::paths::{backend, ctx};
use crate::read::{HASH_CHUNK, content_stamp, version_of};
use crate::write::Staged;
use crate::{BACKEND, Inner, blocking};

/// The chunk size of streamed reads: 256 KiB.
pub(crate) const READ_CHUNK: usize = HASH_CHUNK;

/// A streamed write hands its body to the blocking pool in batches of at
/// least this many bytes (or the body's chunk, if larger), so tiny chunks
/// do not cost a task each. At most two batches are held: one being
/// written, one being gathered.
const WRITE_BATCH: usize = 256 << 10;

type Hasher = Box<Xxh3Default>;

fn join_error(op: &'static str, e: tokio::task::JoinError) -> Error {
    Error::backend(BACKEND, op, e)
}

/// Writes `chunks` to `file` (and into the hash, if any).
fn write_chunks(
    file: &File,
    chunks: &[Bytes],
    mut hasher: Option<Hasher>,
) -> (io::Result<()>, Option<Hasher>) {
    for c in chunks {
        if let Err(e) = (&*file).write_all(c) {
            return (Err(e), hasher);
        }
        if let Some(h) = hasher.as_mut() {
            h.update(c);
        }
    }
    (Ok(()), hasher)
}

type WriteTask = JoinHandle<(io::Result<()>, Option<Hasher>)>;

async fn finish_write(
    op: &'static str,
    staged: &Staged,
    task: WriteTask,
) -> Result<Option<Hasher>> {
    let (r, hasher) = task.await.map_err(|e| join_error(op, e))?;
    r.map_err(|e| backend(op, ctx(&staged.temp, e)))?;
    Ok(hasher)
}

/// `store_stream` (no condition) and `store_stream_if`: returns the new
/// version for a conditional write.
pub(crate) async fn store_stream(
    inner: Arc<Inner>,
    key: String,
    mut body: ByteStream,
    cond: Option<WriteCondition>,
) -> Result<Option<Version>> {
    let op = if cond.is_some() {
        "store_stream_if"
    } else {
        "store_stream"
    };
    let mut hasher: Option<Hasher> = cond.is_some().then(|| Box::new(Xxh3Default::new()));
    let (check, staged) = {
        let (inner, key) = (Arc::clone(&inner), key.clone());
        blocking(op, move || {
            let check = inner.precheck(op, &key, cond.as_ref(), true)?;
            let staged = inner.stage(op, &key)?;
            Ok((check, staged))
        })
        .await?
    };
    // From here on, returning early (an error) or being dropped drops
    // `staged`, which removes the temporary file.
    let mut written = 0u64;
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_len = 0usize;
    let mut in_flight: Option<WriteTask> = None;
    loop {
        let item = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await;
        let end = match item {
            None => true,
            Some(Ok(chunk)) => {
                if !chunk.is_empty() {
                    batch_len += chunk.len();
                    batch.push(chunk);
                }
                false
            }
            Some(Err(e)) => return Err(e),
        };
        if batch_len > 0 && (end || batch_len >= WRITE_BATCH) {
            if let Some(task) = in_flight.take() {
                hasher = finish_write(op, &staged, task).await?;
            }
            written += batch_len as u64;
            let (file, chunks, h) = (
                Arc::clone(&staged.file),
                std::mem::take(&mut batch),
                hasher.take(),
            );
            in_flight = Some(tokio::task::spawn_blocking(move || {
                write_chunks(&file, &chunks, h)
            }));
            batch_len = 0;
        }
        if end {
            break;
        }
    }
    drop(body);
    if let Some(task) = in_flight.take() {
        hasher = finish_write(op, &staged, task).await?;
    }
    let ino = staged.ino;
    blocking(op, move || {
        staged
            .file
            .sync_all()
            .map_err(|e| backend(op, ctx(&staged.temp, e)))?;
        inner.commit(op, &key, staged, check)
    })
    .await?;
    Ok(hasher.map(|h| version_of(h.digest(), ino, written)))
}

/// A streamed read in progress, moved into each chunk's blocking task and
/// back.
struct Reader {
    op: &'static str,
    file: File,
    path: PathBuf,
    /// The object's size when it was opened: exactly this many bytes are
    /// read.
    size: u64,
    /// The next byte to read.
    offset: u64,
    /// The file's `fstat` when it was opened (or hashed).
    before: Metadata,
    /// For a versioned read: the running hash of what was read, and the
    /// hash the version names.
    verify: Option<(Hasher, u64)>,
}

impl Reader {
    /// Reads the next chunk; `Ok(None)` when there is none left (an empty
    /// object). The last chunk is returned only once [`Reader::finish`]
    /// passed.
    fn step(mut self) -> (Self, io::Result<Option<Bytes>>) {
        let r = self.read_next();
        (self, r)
    }

    fn read_next(&mut self) -> io::Result<Option<Bytes>> {
        let left = self.size - self.offset;
        if left == 0 {
            self.finish()?;
            return Ok(None);
        }
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(READ_CHUNK);
        let mut buf = vec![0u8; n];
        match self.file.read_exact_at(&mut buf, self.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(self.changed("it became shorter"));
            }
            Err(e) => return Err(ctx(&self.path, e)),
        }
        self.offset += n as u64;
        if let Some((h, _)) = self.verify.as_mut() {
            h.update(&buf);
        }
        if self.offset == self.size {
            self.finish()?;
        }
        Ok(Some(Bytes::from(buf)))
    }

    /// Checks that the file was not modified in place while it was read:
    /// the same size and mtime as when it was opened, and the same ctime
    /// while it is still linked as it was (replacing an object by rename,
    /// as every write does, unlinks the old file, which changes its ctime
    /// but not its content, so a replaced file's ctime is not compared);
    /// and for a versioned read, the same content hash as the version's,
    /// which detects any change.
    fn finish(&mut self) -> io::Result<()> {
        let now = self.file.metadata().map_err(|e| ctx(&self.path, e))?;
        let (b, n) = (&self.before, &now);
        let same = (b.size(), b.mtime(), b.mtime_nsec()) == (n.size(), n.mtime(), n.mtime_nsec())
            && (n.nlink() != b.nlink() || content_stamp(n) == content_stamp(b));
        if !same {
            return Err(self.changed("its size or times changed"));
        }
        if let Some((h, want)) = &self.verify
            && h.digest() != *want
        {
            return Err(self.changed("its content no longer matches its version"));
        }
        Ok(())
    }

    fn changed(&self, how: &str) -> io::Error {
        io::Error::other(format!(
            "{}: the object was modified in place while it was read ({how}); \
             encstore never does that, so another program wrote into the store",
            self.path.display()
        ))
    }
}

type ReadTask = JoinHandle<(Reader, io::Result<Option<Bytes>>)>;

fn spawn_step(r: Reader) -> ReadTask {
    tokio::task::spawn_blocking(move || r.step())
}

/// The body of a streamed read, reading one chunk ahead.
fn read_body(reader: Reader) -> ByteStream {
    let op = reader.op;
    let first = spawn_step(reader);
    Box::pin(futures_util::stream::unfold(
        Some(first),
        move |task| async move {
            let (reader, r) = match task?.await {
                Ok(x) => x,
                Err(e) => return Some((Err(join_error(op, e)), None)),
            };
            match r {
                Ok(Some(chunk)) => {
                    let next = (reader.offset < reader.size).then(|| spawn_step(reader));
                    Some((Ok(chunk), next))
                }
                Ok(None) => None,
                Err(e) => Some((Err(backend(op, e)), None)),
            }
        },
    ))
}

/// `load_stream`, and `load_stream_versioned` (which hashes the object
/// first, keeping it open, and streams that same open file).
pub(crate) async fn load_stream(
    inner: Arc<Inner>,
    key: String,
    versioned: bool,
) -> Result<(ObjectStream, Option<Version>)> {
    let op = if versioned {
        "load_stream_versioned"
    } else {
        "load_stream"
    };
    let (reader, version) = blocking(op, move || {
        let path = inner.key_path(&key);
        if versioned {
            let Some(h) = inner.hash_object(&key).map_err(|e| backend(op, e))? else {
                return Err(Error::not_found(key));
            };
            let size = h.before.size();
            let reader = Reader {
                op,
                file: h.file,
                path,
                size,
                offset: 0,
                before: h.before,
                verify: Some((Box::new(Xxh3Default::new()), h.hash)),
            };
            if h.len != size {
                return Err(backend(
                    op,
                    reader.changed("its length changed while hashed"),
                ));
            }
            Ok((reader, Some(h.version)))
        } else {
            let Some((file, before)) = inner.open_object(&key).map_err(|e| backend(op, e))? else {
                return Err(Error::not_found(key));
            };
            let reader = Reader {
                op,
                file,
                path,
                size: before.size(),
                offset: 0,
                before,
                verify: None,
            };
            Ok((reader, None))
        }
    })
    .await?;
    let size = reader.size;
    Ok((
        ObjectStream {
            size,
            body: read_body(reader),
        },
        version,
    ))
}
