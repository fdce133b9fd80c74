//! Segment buffers handed out as `Bytes` and recycled once the receiver
//! drops them: the plaintext of a large object's segments on the way to a
//! reader (EncryptedStorage's `load_stream`, EncryptedObjectStore's
//! `get`), and sealed segments on the way to the backend.
//!
//! A fresh buffer of a MiB costs its allocation, the kernel's zeroing of
//! new pages and a page fault per page on first touch (about 0.3× the
//! AES-GCM work itself, measured in docs/performance.md), and buffers
//! allocated on the blocking pool's threads and freed on the runtime's
//! stay cached in the allocator's per-thread arenas, which raises the
//! resident memory of a long stream. A consumer that takes a stream piece
//! by piece drops each piece before it asks for the next, so the same few
//! buffers can carry the whole object: a [`Bytes`] made by
//! [`BufferPool::freeze`] owns its buffer through [`Bytes::from_owner`],
//! and when the last reference to it is dropped the buffer goes back to
//! its pool (buffers of at most [`MAX_POOLED_LEN`] bytes, up to
//! [`MAX_POOLED_BYTES`] in all; the rest are freed).
//!
//! A recycled buffer still holds what it held (plaintext, for a read) until
//! it is overwritten, as freed heap memory does; only the bytes the new
//! owner wrote are ever exposed (the `Bytes` covers exactly them).

use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

/// The idle bytes a pool keeps at most (its buffers' lengths added up).
///
/// 16 MiB: an object-store upload holds up to two 8 MiB parts of sealed
/// segments at once (one in flight, one being gathered), and when the pool
/// keeps less, the surplus of every part is freed and allocated again on
/// the blocking pool's threads, where glibc's per-thread arenas keep it
/// resident. A 1 GiB `encstore store put` to SeaweedFS (debug binary)
/// peaked at 54–66 MiB with 4 pooled buffers and at 46 MiB with 16 MiB.
pub const MAX_POOLED_BYTES: usize = 16 << 20;
/// The largest buffer a pool keeps (a segment is at most about 1 MiB with
/// Tink's templates, a piece of `get` one segment more at most; larger
/// segments get buffers of their own).
pub const MAX_POOLED_LEN: usize = 4 << 20;

/// A few initialized buffers, handed out to be filled and returned when
/// the `Bytes` made from them is dropped.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Mutex<Idle>,
}

/// The idle buffers and their lengths added up (kept, not recounted on
/// every return: a pool of small segments holds thousands).
#[derive(Debug, Default)]
struct Idle {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl BufferPool {
    /// An initialized buffer of at least `len` bytes: a pooled one when one
    /// is large enough, else a new zeroed one (`calloc`: fresh pages are
    /// zero already).
    pub fn take(&self, len: usize) -> Vec<u8> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = free.buffers.iter().position(|b| b.len() >= len) {
            let buf = free.buffers.swap_remove(i);
            free.bytes -= buf.len();
            return buf;
        }
        drop(free);
        vec![0u8; len]
    }

    fn give(&self, buf: Vec<u8>) {
        if buf.len() > MAX_POOLED_LEN {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.bytes + buf.len() <= MAX_POOLED_BYTES {
            free.bytes += buf.len();
            free.buffers.push(buf);
        }
    }

    /// `buf[..len]` as `Bytes`; `buf` returns to `pool` (if the pool still
    /// exists) when the last reference to those bytes is dropped.
    ///
    /// # Panics
    /// If `len` is larger than `buf`.
    pub fn freeze(pool: &Arc<BufferPool>, buf: Vec<u8>, len: usize) -> Bytes {
        assert!(
            len <= buf.len(),
            "{len} bytes of a {}-byte buffer",
            buf.len()
        );
        if len == 0 {
            pool.give(buf);
            return Bytes::new();
        }
        Bytes::from_owner(Pooled {
            buf,
            len,
            pool: Arc::downgrade(pool),
        })
    }

    /// The idle buffers the pool holds (of [`MAX_POOLED_BYTES`] at most
    /// in all).
    pub fn idle(&self) -> usize {
        self.free.lock().map(|f| f.buffers.len()).unwrap_or(0)
    }
}

/// The owner behind a pooled `Bytes`.
struct Pooled {
    buf: Vec<u8>,
    len: usize,
    pool: Weak<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_bytes_returns_its_buffer_and_the_next_take_reuses_it() {
        let pool = Arc::new(BufferPool::default());
        let mut buf = pool.take(1000);
        assert_eq!(buf.len(), 1000);
        let addr = buf.as_ptr();
        buf[..3].copy_from_slice(b"abc");
        let b = BufferPool::freeze(&pool, buf, 3);
        assert_eq!(&b[..], b"abc", "exactly the written prefix");
        let half = b.slice(1..);
        drop(b);
        assert_eq!(pool.idle(), 0, "a slice still refers to the buffer");
        assert_eq!(&half[..], b"bc");
        drop(half);
        assert_eq!(pool.idle(), 1);
        // Large enough: reused; too small: a new buffer.
        let again = pool.take(800);
        assert_eq!(again.as_ptr(), addr);
        assert_eq!(again.len(), 1000);
        assert_eq!(pool.take(2000).len(), 2000);
    }

    #[test]
    fn the_pool_keeps_a_few_buffers_of_bounded_size() {
        // 1 MiB buffers: the pool keeps as many as its byte bound holds.
        const MIB: usize = 1 << 20;
        let pool = Arc::new(BufferPool::default());
        let held: Vec<Bytes> = (0..MAX_POOLED_BYTES / MIB + 3)
            .map(|_| BufferPool::freeze(&pool, pool.take(MIB), MIB))
            .collect();
        drop(held);
        assert_eq!(pool.idle(), MAX_POOLED_BYTES / MIB);
        // Small buffers count by their bytes too.
        let pool = Arc::new(BufferPool::default());
        let held: Vec<Bytes> = (0..100)
            .map(|_| BufferPool::freeze(&pool, pool.take(64), 64))
            .collect();
        drop(held);
        assert_eq!(pool.idle(), 100);
        let pool = Arc::new(BufferPool::default());
        drop(BufferPool::freeze(&pool, pool.take(MAX_POOLED_LEN + 1), 1));
        assert_eq!(pool.idle(), 0, "an oversized buffer is freed");
        // Bytes outliving their pool free their buffer.
        let b = BufferPool::freeze(&pool, pool.take(8), 8);
        drop(pool);
        assert_eq!(b.len(), 8);
    }
}
