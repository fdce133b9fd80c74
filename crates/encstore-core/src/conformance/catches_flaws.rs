//! The suite's streaming and range checks catch what they are meant to:
//! each runs against a `MemoryStorage` with one deliberate flaw and must
//! fail with the matching message.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::*;
use crate::MemoryStorage;
use crate::error::{Error, Result};
use crate::storage::{Lease, ObjectInfo, Version, Versioned, WriteCondition};
use crate::stream::{ByteStream, ObjectStream, RangeRead, Stream, VersionedStream};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Flaw {
    /// `store_stream` stores each prefix of the body as it arrives.
    TornStreamWrite,
    /// `store_stream_if` checks its condition before the body, then
    /// writes unconditionally.
    EarlyConditionOnly,
    /// `load_range` refuses an end beyond the size.
    NoClamp,
    /// `load_range` reports the range's length as the size.
    RangeSize,
    /// `load_stream` reads each chunk from the live value.
    LiveStream,
    /// `load_stream` drops the last byte.
    ShortStream,
    /// `load_stream_versioned` reports a version from before the read.
    StaleStreamVersion,
}

#[derive(Debug)]
struct Flawed(MemoryStorage, Flaw);

#[async_trait]
impl Storage for Flawed {
    async fn store(&self, key: &str, value: Bytes) -> Result<()> {
        self.0.store(key, value).await
    }
    async fn store_if(&self, key: &str, value: Bytes, c: &WriteCondition) -> Result<Version> {
        self.0.store_if(key, value, c).await
    }
    async fn load_versioned(&self, key: &str) -> Result<Versioned> {
        self.0.load_versioned(key).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key).await
    }
    async fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<String>> {
        self.0.list(prefix, recursive).await
    }
    async fn stat(&self, key: &str) -> Result<ObjectInfo> {
        self.0.stat(key).await
    }
    async fn try_lock(&self, name: &str) -> Result<Lease> {
        self.0.try_lock(name).await
    }
    async fn unlock(&self, lease: Lease) -> Result<()> {
        self.0.unlock(lease).await
    }
    fn lease_duration(&self) -> Duration {
        self.0.lease_duration()
    }

    async fn store_stream(&self, key: &str, mut body: ByteStream) -> Result<()> {
        if self.1 != Flaw::TornStreamWrite {
            return self.0.store_stream(key, body).await;
        }
        crate::validate_key(key)?;
        let mut acc = Vec::new();
        while let Some(c) = crate::stream::next(&mut body).await {
            acc.extend_from_slice(&c?);
            self.0.store(key, Bytes::from(acc.clone())).await?;
        }
        self.0.store(key, Bytes::from(acc)).await
    }

    async fn store_stream_if(
        &self,
        key: &str,
        body: ByteStream,
        c: &WriteCondition,
    ) -> Result<Version> {
        if self.1 != Flaw::EarlyConditionOnly {
            return self.0.store_stream_if(key, body, c).await;
        }
        crate::validate_key(key)?;
        let current = match self.0.load_versioned(key).await {
            Ok(v) => Some(v.version),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let holds = match c {
            WriteCondition::Absent => current.is_none(),
            WriteCondition::Matches(v) => current.as_ref() == Some(v),
        };
        if !holds {
            return Err(Error::PreconditionFailed { key: key.into() });
        }
        let value = crate::stream::collect(body).await?;
        self.0.store(key, value).await?;
        Ok(self.0.load_versioned(key).await?.version)
    }

    async fn load_range(&self, key: &str, range: Range<u64>) -> Result<RangeRead> {
        let mut r = self.0.load_range(key, range.clone()).await?;
        match self.1 {
            Flaw::NoClamp if range.end > r.size => {
                return Err(Error::RangeNotSatisfiable {
                    key: key.into(),
                    start: range.start,
                    size: r.size,
                });
            }
            Flaw::RangeSize => r.size = r.bytes.len() as u64,
            _ => {}
        }
        Ok(r)
    }

    async fn load_stream(&self, key: &str) -> Result<ObjectStream> {
        let s = self.0.load_stream(key).await?;
        match self.1 {
            // Each chunk comes from whatever is stored when it is read.
            Flaw::LiveStream => Ok(ObjectStream {
                size: s.size,
                body: Box::pin(LazyRanges {
                    store: self.0.clone(),
                    key: key.to_owned(),
                    at: 0,
                    size: s.size,
                    fut: None,
                }),
            }),
            Flaw::ShortStream if s.size > 0 => {
                let v = s.collect().await?;
                Ok(ObjectStream {
                    size: v.len() as u64,
                    body: crate::stream::once(v.slice(..v.len() - 1)),
                })
            }
            _ => Ok(s),
        }
    }

    async fn load_stream_versioned(&self, key: &str) -> Result<VersionedStream> {
        let v = self.0.load_stream_versioned(key).await?;
        if self.1 == Flaw::StaleStreamVersion {
            return Ok(VersionedStream {
                stream: v.stream,
                version: Version::new("stale"),
            });
        }
        Ok(v)
    }
}

/// A stream that reads 4 KiB ranges of the live value, one per poll.
struct LazyRanges {
    store: MemoryStorage,
    key: String,
    at: u64,
    size: u64,
    fut: Option<Pin<Box<dyn std::future::Future<Output = Result<RangeRead>> + Send>>>,
}

impl Stream for LazyRanges {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.fut.is_none() {
            if self.at >= self.size {
                return Poll::Ready(None);
            }
            let (store, key, at, size) = (self.store.clone(), self.key.clone(), self.at, self.size);
            self.fut = Some(Box::pin(async move {
                store.load_range(&key, at..(at + 4096).min(size)).await
            }));
        }
        let r = match self.fut.as_mut().map(|f| f.as_mut().poll(cx)) {
            Some(Poll::Ready(r)) => r,
            _ => return Poll::Pending,
        };
        self.fut = None;
        self.at += 4096;
        Poll::Ready(Some(r.map(|r| r.bytes)))
    }
}

/// Runs `check` against a store with `flaw`: it must panic with a
/// message containing `expect`.
async fn must_catch<F, Fut>(flaw: Flaw, check: F, expect: &str)
where
    F: FnOnce(Arc<dyn Storage>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let store: Arc<dyn Storage> = Arc::new(Flawed(MemoryStorage::new(), flaw));
    let err = tokio::spawn(check(store))
        .await
        .expect_err(&format!("{flaw:?} went unnoticed"));
    let panic = err.into_panic();
    let msg = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains(expect), "{flaw:?}: caught, but with {msg:?}");
}

#[tokio::test]
async fn the_stream_and_range_checks_catch_flawed_backends() {
    must_catch(
        Flaw::TornStreamWrite,
        |s| async move { stream_write_errors(&*s).await },
        "a failed streamed write changed the value",
    )
    .await;
    must_catch(
        Flaw::EarlyConditionOnly,
        |s| async move { conditional_stream_writes(&*s).await },
        "a write landed during the body",
    )
    .await;
    must_catch(
        Flaw::NoClamp,
        |s| async move { ranges(&*s).await },
        "load_range 10..20 of 10 bytes: RangeNotSatisfiable",
    )
    .await;
    must_catch(
        Flaw::RangeSize,
        |s| async move { ranges(&*s).await },
        "reports the whole size",
    )
    .await;
    must_catch(
        Flaw::LiveStream,
        |s| async move { stream_reads(&*s).await },
        "yields the old value whole, or fails",
    )
    .await;
    must_catch(
        Flaw::ShortStream,
        |s| async move { stream_reads(&*s).await },
        "load_stream yields the value",
    )
    .await;
    must_catch(
        Flaw::StaleStreamVersion,
        |s| async move { versioned_stream_rewrap(&*s).await },
        "load_stream_versioned reports the current version",
    )
    .await;
}
