//! What the checks share: test values and bodies, draining a stream,
//! joining futures.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::stream::{ByteStream, Stream, from_chunks};

pub(super) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// `len` bytes that differ with `seed` and position.
pub(super) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2654435761) >> 13) as u8 ^ seed)
        .collect()
}

/// `value` cut into chunks of the sizes in `sizes`, cycled (0 gives an
/// empty chunk).
pub(super) fn chunked(value: &[u8], sizes: &[usize]) -> ByteStream {
    let mut chunks = Vec::new();
    let (mut at, mut i) = (0, 0);
    while at < value.len() {
        let n = sizes[i % sizes.len()].min(value.len() - at);
        chunks.push(Bytes::copy_from_slice(&value[at..at + n]));
        at += n;
        i += 1;
    }
    from_chunks(chunks)
}

/// A body fed through a channel: it waits for the sender, and ends when the
/// sender is dropped.
pub(super) struct ChannelBody(mpsc::Receiver<Result<Bytes>>);

impl Stream for ChannelBody {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

pub(super) fn channel_body() -> (mpsc::Sender<Result<Bytes>>, ByteStream) {
    let (tx, rx) = mpsc::channel(16);
    (tx, Box::pin(ChannelBody(rx)))
}

/// A body with every byte of `inner` XORed with `mask`.
pub(super) struct XorBody(pub(super) ByteStream, pub(super) u8);

impl Stream for XorBody {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mask = self.1;
        self.0.as_mut().poll_next(cx).map(|item| {
            item.map(|chunk| chunk.map(|c| c.iter().map(|b| b ^ mask).collect::<Bytes>()))
        })
    }
}

/// Reads `body` to its end: the bytes, and the error it ended with, if any.
/// Checks that nothing follows an error.
pub(super) async fn drain(mut body: ByteStream) -> (Vec<u8>, Option<Error>) {
    let mut out = Vec::new();
    while let Some(item) = crate::stream::next(&mut body).await {
        match item {
            Ok(c) => out.extend_from_slice(&c),
            Err(e) => {
                assert!(
                    crate::stream::next(&mut body).await.is_none(),
                    "a stream yields nothing after its error"
                );
                return (out, Some(e));
            }
        }
    }
    (out, None)
}

/// The error a failing test body ends with: recognisable when it comes back.
pub(super) fn body_error() -> Error {
    Error::Timeout {
        backend: "conformance-body",
        op: "produce the body",
    }
}

pub(super) fn is_body_error(e: &Error) -> bool {
    matches!(
        e,
        Error::Timeout {
            backend: "conformance-body",
            ..
        }
    )
}

/// The keys under `p`, listed recursively: what a failed write must leave
/// unchanged (no temporary file or partial object may show up).
pub(super) async fn keys_under(store: &dyn Storage, p: &str) -> Vec<String> {
    store.list(p, true).await.unwrap()
}

/// A body from a list of items.
pub(super) struct IterBody<I>(pub(super) I);

impl<I: Iterator<Item = Result<Bytes>> + Unpin> Stream for IterBody<I> {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.next())
    }
}

/// Runs futures concurrently on the current task (no `futures` dependency).
pub(super) async fn futures_join_all<F: std::future::Future>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap()).collect()
}
