//! Noticing that a keyset file changed, and reloading it: the file
//! stamps, [`ReloadableKeyset::reload_if_changed`], [`ReloadableKeyset::watch`]
//! and its [`WatchHandle`].

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::keys::LoadError;

use super::{KeysetSource, ReloadReport, ReloadableKeyset};

/// The file's identity and modification time, to notice replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

pub(super) fn stamp(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode,
    })
}

impl ReloadableKeyset {
    /// Reloads if either keyset file changed (size, modification time or
    /// inode) since the last load. Returns `None` when neither had.
    pub async fn reload_if_changed(&self) -> Option<Result<ReloadReport, LoadError>> {
        let changed = |source: &Option<KeysetSource>,
                       last: &std::sync::Mutex<Option<FileStamp>>| {
            let Some(source) = source else { return false };
            let now = stamp(&source.path);
            let last = last.lock().ok().and_then(|s| *s);
            now.is_none() || now != last
        };
        let aead = changed(&self.source, &self.last_stamp);
        let streaming = changed(&self.streaming_source, &self.last_streaming_stamp);
        if !aead && !streaming {
            return None;
        }
        Some(self.reload().await)
    }

    /// Polls the keyset files every `interval` and reloads them when one
    /// changes. The task stops when the returned handle is dropped.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> WatchHandle {
        let me = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                let _ = me.reload_if_changed().await;
            }
        });
        WatchHandle(task)
    }
}

/// Stops the file watcher when dropped.
#[derive(Debug)]
pub struct WatchHandle(tokio::task::JoinHandle<()>);

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}
