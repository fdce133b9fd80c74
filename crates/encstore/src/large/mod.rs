//! Large objects: the streaming layout of `docs/format.md` ("Large stored
//! objects"),
//!
//! ```text
//! object = 0x01 ‖ BE32(streaming key ID) ‖ Tink streaming ciphertext
//! ```
//!
//! and the machinery that moves them in constant memory: a [`pump`] that
//! runs a streaming encryption, decryption or re-encryption over a
//! [`ByteStream`] in batches on tokio's blocking pool (gathering the next
//! batch while one is processed), and the prefetched source that lets a
//! ranged read decrypt exactly the segments it fetched.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use encstore_core::{ByteStream, Error, Result};
use encstore_tink::KeysetStreamingAead;
use encstore_tink::streaming::{RangedRead, StreamingError};
use futures_util::StreamExt;
use tokio::task::{JoinError, JoinHandle};

use crate::encrypted::{BLOCKING_THRESHOLD, EncryptedStorage};

mod codec;
pub(crate) use codec::{Codec, DecryptCodec, EncryptCodec, ReencryptCodec, Target};

/// The length of a large object's prefix: `0x01 ‖ BE32(key ID)`.
pub(crate) const PREFIX_LEN: usize = 5;

/// What a ranged read fetches first: the prefix and the longest Tink
/// streaming header (40 bytes, for 256-bit derived keys). The second read
/// fetches the covering segments.
pub(crate) const HEAD_LEN: u64 = PREFIX_LEN as u64 + 40;

/// Input gathered before one crypto step runs on the blocking pool: large
/// enough that the hand-off (tens of microseconds) is small against the
/// work (a few hundred microseconds for AES-GCM), small enough that memory
/// stays a few MiB per stream (this batch, the one being processed and its
/// output). `cargo bench -p encstore --bench large` measures the result.
pub(crate) const BATCH: usize = 1 << 20;

/// Runs one batch (and, with `finish`, the end) through `codec`.
fn run<C: Codec>(mut codec: C, chunks: Vec<Bytes>, finish: bool) -> (C, Result<Vec<Bytes>>) {
    let n: usize = chunks.iter().map(Bytes::len).sum();
    tracing::trace!(target: "encstore::large", len = n, finish, "stream crypto batch");
    let mut out = Vec::new();
    let r = (|| {
        for c in &chunks {
            codec.update(c, &mut out)?;
        }
        if finish {
            codec.finish(&mut out)?;
        }
        Ok(())
    })();
    (codec, r.map(|()| out))
}

type Step<C> = (C, Result<Vec<Bytes>>);

/// The state of a [`pump`].
struct Pump<C> {
    input: ByteStream,
    input_done: bool,
    /// `None` while a blocking task holds it.
    codec: Option<C>,
    /// The next batch, being gathered.
    chunks: Vec<Bytes>,
    gathered: usize,
    /// The batch being processed on the blocking pool.
    task: Option<JoinHandle<Step<C>>>,
    /// Whether the task in flight ends the stream.
    finishing: bool,
    /// Bytes to yield next: a large object's prefix, then the output of
    /// the last batch (a buffer per segment).
    ready: VecDeque<Bytes>,
    /// The stream ended (or failed).
    done: bool,
}

/// A stream of `codec`'s output over `input`, preceded by `head`: batches
/// of at least [`BATCH`] bytes run on tokio's blocking pool (smaller ones,
/// at the end, inline when under [`BLOCKING_THRESHOLD`]), and the next
/// batch is gathered while one runs. An error of `input` is yielded as is;
/// any error ends the stream. Memory: two batches and their output, and the
/// codec's own segment buffers.
pub(crate) fn pump<C: Codec>(codec: C, head: Option<Bytes>, input: ByteStream) -> ByteStream {
    let state = Pump {
        input,
        input_done: false,
        codec: Some(codec),
        chunks: Vec::new(),
        gathered: 0,
        task: None,
        finishing: false,
        ready: head.into_iter().collect(),
        done: false,
    };
    Box::pin(futures_util::stream::unfold(state, step))
}

/// What happened while a task ran.
enum Event<C> {
    Joined(std::result::Result<Step<C>, JoinError>),
    Input(Option<Result<Bytes>>),
}

impl<C: Codec> Pump<C> {
    /// Takes one item of the input; an error ends the stream.
    fn take_input(&mut self, item: Option<Result<Bytes>>) -> Option<Error> {
        match item {
            Some(Ok(chunk)) => {
                if !chunk.is_empty() {
                    self.gathered += chunk.len();
                    self.chunks.push(chunk);
                }
                None
            }
            Some(Err(e)) => {
                self.done = true;
                Some(e)
            }
            None => {
                self.input_done = true;
                None
            }
        }
    }

    /// Takes the result of a batch: its output is queued; its error is
    /// returned.
    fn finish_step(&mut self, codec: C, r: Result<Vec<Bytes>>, finishing: bool) -> Option<Error> {
        self.codec = Some(codec);
        match r {
            Ok(out) => {
                if finishing {
                    self.done = true;
                }
                self.ready.extend(out.into_iter().filter(|b| !b.is_empty()));
                None
            }
            Err(e) => {
                self.done = true;
                self.ready.clear();
                Some(e)
            }
        }
    }
}

async fn step<C: Codec>(mut p: Pump<C>) -> Option<(Result<Bytes>, Pump<C>)> {
    loop {
        if let Some(b) = p.ready.pop_front() {
            return Some((Ok(b), p));
        }
        if p.done {
            return None;
        }
        if p.task.is_none() {
            if p.gathered < BATCH && !p.input_done {
                let item = p.input.next().await;
                if let Some(e) = p.take_input(item) {
                    return Some((Err(e), p));
                }
                continue;
            }
            let Some(codec) = p.codec.take() else {
                // Only after a panic in a batch, which was resumed.
                return None;
            };
            let chunks = std::mem::take(&mut p.chunks);
            let len = std::mem::take(&mut p.gathered);
            let finishing = p.input_done;
            match tokio::runtime::Handle::try_current() {
                Ok(handle) if len >= BLOCKING_THRESHOLD => {
                    p.finishing = finishing;
                    p.task = Some(handle.spawn_blocking(move || run(codec, chunks, finishing)));
                }
                _ => {
                    let (codec, r) = run(codec, chunks, finishing);
                    if let Some(e) = p.finish_step(codec, r, finishing) {
                        return Some((Err(e), p));
                    }
                }
            }
            continue;
        }
        // A batch is being processed: gather the next one meanwhile.
        let want_input = !p.input_done && p.gathered < BATCH;
        let event = {
            let Some(task) = p.task.as_mut() else {
                continue;
            };
            let input = &mut p.input;
            tokio::select! {
                biased;
                joined = task => Event::Joined(joined),
                item = input.next(), if want_input => Event::Input(item),
            }
        };
        match event {
            Event::Input(item) => {
                if let Some(e) = p.take_input(item) {
                    return Some((Err(e), p));
                }
            }
            Event::Joined(joined) => {
                p.task = None;
                let (codec, r) = match joined {
                    Ok(step) => step,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => {
                        p.done = true;
                        let err =
                            Error::backend("encstore", "run stream crypto on the blocking pool", e);
                        return Some((Err(err), p));
                    }
                };
                let finishing = p.finishing;
                if let Some(e) = p.finish_step(codec, r, finishing) {
                    return Some((Err(e), p));
                }
            }
        }
    }
}

/// Reads `body` until it has yielded at least `n` bytes or ended, and
/// returns what it yielded (one chunk, or the chunks joined).
///
/// # Errors
/// The body's error.
pub(crate) async fn peek(body: &mut ByteStream, n: usize) -> Result<Bytes> {
    let mut first: Option<Bytes> = None;
    let mut acc = BytesMut::new();
    let mut total = 0usize;
    while total < n {
        match body.next().await {
            Some(Ok(c)) if c.is_empty() => {}
            Some(Ok(c)) => {
                total += c.len();
                match first.take() {
                    None if acc.is_empty() => first = Some(c),
                    prev => {
                        if let Some(f) = prev {
                            acc.extend_from_slice(&f);
                        }
                        acc.extend_from_slice(&c);
                    }
                }
            }
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    Ok(first.unwrap_or_else(|| acc.freeze()))
}

/// `first`, then the rest of `body`.
pub(crate) fn prepend(first: Bytes, body: ByteStream) -> ByteStream {
    Box::pin(futures_util::stream::iter([Ok(first)]).chain(body))
}

/// Maps a streaming decryption error on `key`: always an authentication
/// failure for the caller (tampered, truncated, extended, moved or another
/// keyset), with the detail in a debug event only.
pub(crate) fn auth_error(store: &EncryptedStorage, key: &str, e: &StreamingError) -> Error {
    tracing::debug!(key, error = %e, "large object failed to authenticate");
    store.fail(Error::Authentication {
        key: key.to_owned(),
    })
}

/// Maps a streaming encryption error on `key`.
pub(crate) fn encrypt_error(store: &EncryptedStorage, key: &str, e: StreamingError) -> Error {
    let source = match e {
        StreamingError::Randomness => encstore_core::AeadError::Randomness,
        _ => encstore_core::AeadError::TooLarge,
    };
    store.fail(Error::Crypto {
        key: key.to_owned(),
        source,
    })
}

/// A streaming ciphertext of which only the header and one run of
/// segments were fetched: what [`decrypt_prefetched`] reads with Tink's
/// random-access reader. Reads outside what was fetched fail.
struct Prefetched {
    size: u64,
    /// Ciphertext bytes `0..head.len()`.
    head: Bytes,
    /// Ciphertext bytes `body_start..body_start + body.len()`.
    body_start: u64,
    body: Bytes,
}

#[async_trait]
impl RangedRead for Prefetched {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read_range(&self, range: Range<u64>) -> io::Result<Bytes> {
        let head_len = self.head.len() as u64;
        let body_end = self.body_start + self.body.len() as u64;
        if range.end <= head_len {
            return Ok(self.head.slice(range.start as usize..range.end as usize));
        }
        if range.start >= self.body_start && range.end <= body_end {
            let off = self.body_start;
            return Ok(self
                .body
                .slice((range.start - off) as usize..(range.end - off) as usize));
        }
        Err(io::Error::other(format!(
            "ciphertext bytes {range:?} were not fetched"
        )))
    }
}

/// Polls a future that never waits (its I/O is all in memory) to its end.
fn now<F: Future>(f: F) -> io::Result<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => Err(io::Error::other("an in-memory read did not complete")),
    }
}

/// Decrypts the plaintext `range` of a streaming ciphertext of `size`
/// bytes whose header (`head`, from byte 0) and covering segments (`body`,
/// from byte `body_start`) were fetched. Synchronous: run it on the
/// blocking pool for large ranges.
///
/// # Errors
/// `InvalidData` when a segment does not authenticate; other kinds for
/// bytes that were not fetched.
pub fn decrypt_prefetched(
    aead: &KeysetStreamingAead,
    associated_data: &[u8],
    size: u64,
    head: Bytes,
    body_start: u64,
    body: Bytes,
    range: Range<u64>,
) -> io::Result<Bytes> {
    tracing::trace!(target: "encstore::large", len = body.len(), "range crypto");
    let source = Prefetched {
        size,
        head,
        body_start,
        body,
    };
    let reader = now(aead.open_ranged(source, associated_data))??;
    now(reader.read_range(range))?
}
