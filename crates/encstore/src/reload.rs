//! [`ReloadableKeyset`]: a keyset that can be replaced while a server runs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use encstore_core::Kek;
use encstore_tink::{Keyset, KeysetInfo};

use crate::keys::{KeysetSnapshot, LoadError};
use crate::metrics::Metrics;
use crate::policy::Policy;

/// Where a keyset file is, and how to unwrap it.
#[derive(Clone)]
pub struct KeysetSource {
    /// The keyset file: Tink JSON or binary, cleartext or `EncryptedKeyset`
    /// (detected from the content).
    pub path: PathBuf,
    /// The key-encryption key for an `EncryptedKeyset`; `None` for a
    /// cleartext keyset (then an encrypted file is refused, and vice versa).
    pub kek: Option<Arc<dyn Kek>>,
    /// The associated data the keyset was encrypted with (usually empty).
    pub associated_data: Vec<u8>,
}

impl fmt::Debug for KeysetSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeysetSource")
            .field("path", &self.path)
            .field("kek", &self.kek)
            .field("associated_data_len", &self.associated_data.len())
            .finish()
    }
}

impl KeysetSource {
    /// A cleartext keyset file (development only; see
    /// `docs/key-management.md`).
    pub fn cleartext(path: impl Into<PathBuf>) -> Self {
        KeysetSource {
            path: path.into(),
            kek: None,
            associated_data: Vec::new(),
        }
    }

    /// An `EncryptedKeyset` file wrapped by `kek` with `associated_data`.
    pub fn encrypted(path: impl Into<PathBuf>, kek: Arc<dyn Kek>, associated_data: &[u8]) -> Self {
        KeysetSource {
            path: path.into(),
            kek: Some(kek),
            associated_data: associated_data.to_vec(),
        }
    }

    /// Reads and validates the keyset.
    ///
    /// # Errors
    /// [`LoadError`] saying what is wrong with the file.
    pub async fn read(&self) -> Result<Keyset, LoadError> {
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|source| LoadError::Io {
                path: self.path.display().to_string(),
                source,
            })?;
        let bytes = zeroize::Zeroizing::new(bytes);
        match &self.kek {
            None => Ok(Keyset::read(&bytes, None)?),
            Some(kek) => {
                Ok(Keyset::read_with_kek(&bytes, kek.as_ref(), &self.associated_data).await?)
            }
        }
    }
}

/// The file's identity and modification time, to notice replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
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

/// A structured event for a keyset refused by the policy.
fn log_policy_refusal(e: &LoadError) {
    if let LoadError::Policy { policy, refusal } = e {
        tracing::warn!(
            policy = %policy,
            key_id = refusal.key_id,
            key_type = %refusal.key_type,
            "keyset refused by policy"
        );
    }
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// The new snapshot's generation.
    pub generation: u64,
    /// The primary key before.
    pub old_primary_key_id: u32,
    /// The primary key now.
    pub new_primary_key_id: u32,
    /// How many keys the new keyset has.
    pub keys: usize,
}

/// A keyset that a running server can replace without a restart.
///
/// Readers take the current [`KeysetSnapshot`] with an atomic load (no
/// lock on the read path); a reload builds and validates a new snapshot and
/// swaps it in whole. Operations already running finish with the snapshot
/// they started with. A reload that fails validation keeps the old keyset,
/// logs why, counts the failure and returns the error.
pub struct ReloadableKeyset {
    current: ArcSwap<KeysetSnapshot>,
    source: Option<KeysetSource>,
    policy: Policy,
    metrics: Metrics,
    generation: AtomicU64,
    last_stamp: std::sync::Mutex<Option<FileStamp>>,
    reload_lock: tokio::sync::Mutex<()>,
}

impl fmt::Debug for ReloadableKeyset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.current.load();
        f.debug_struct("ReloadableKeyset")
            .field("source", &self.source.as_ref().map(|s| &s.path))
            .field("policy", &self.policy.name)
            .field("generation", &snap.generation())
            .field("primary_key_id", &snap.primary_key_id())
            .finish()
    }
}

impl ReloadableKeyset {
    /// A handle over an in-memory keyset, checked against `policy`. Replace
    /// it later with [`ReloadableKeyset::replace`].
    ///
    /// # Errors
    /// [`LoadError::Policy`] if a key is outside the policy.
    pub fn new(keyset: &Keyset, policy: Policy) -> Result<Self, LoadError> {
        let snap = KeysetSnapshot::new(keyset, &policy, 1).inspect_err(log_policy_refusal)?;
        Ok(ReloadableKeyset {
            current: ArcSwap::from_pointee(snap),
            source: None,
            policy,
            metrics: Metrics::default(),
            generation: AtomicU64::new(1),
            last_stamp: std::sync::Mutex::new(None),
            reload_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Loads the keyset file described by `source`, checked against
    /// `policy`.
    ///
    /// # Errors
    /// [`LoadError`] if the file cannot be read, unwrapped or validated.
    pub async fn open(source: KeysetSource, policy: Policy) -> Result<Self, LoadError> {
        let before = stamp(&source.path);
        let keyset = source.read().await?;
        let mut handle = Self::new(&keyset, policy)?;
        handle.source = Some(source);
        handle.last_stamp = std::sync::Mutex::new(before);
        tracing::info!(
            primary_key_id = keyset.primary_key_id(),
            keys = keyset.len(),
            "keyset loaded"
        );
        Ok(handle)
    }

    /// The current snapshot. Hold it for the length of one operation.
    pub fn snapshot(&self) -> Arc<KeysetSnapshot> {
        self.current.load_full()
    }

    /// The current keyset, described without key material.
    pub fn info(&self) -> KeysetInfo {
        self.current.load().info().clone()
    }

    /// The active policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn swap_in(&self, keyset: &Keyset) -> Result<ReloadReport, LoadError> {
        let generation = self.generation.load(Ordering::SeqCst) + 1;
        let snap = match KeysetSnapshot::new(keyset, &self.policy, generation) {
            Ok(s) => s,
            Err(e) => {
                if matches!(e, LoadError::Policy { .. }) {
                    self.metrics.policy_refused();
                    log_policy_refusal(&e);
                }
                return Err(e);
            }
        };
        let old = self.current.swap(Arc::new(snap));
        self.generation.store(generation, Ordering::SeqCst);
        Ok(ReloadReport {
            generation,
            old_primary_key_id: old.primary_key_id(),
            new_primary_key_id: keyset.primary_key_id(),
            keys: keyset.len(),
        })
    }

    fn record(&self, r: &Result<ReloadReport, LoadError>) {
        match r {
            Ok(rep) => {
                self.metrics.reloaded(true);
                tracing::info!(
                    generation = rep.generation,
                    old_primary_key_id = rep.old_primary_key_id,
                    new_primary_key_id = rep.new_primary_key_id,
                    keys = rep.keys,
                    "keyset reloaded"
                );
            }
            Err(e) => {
                self.metrics.reloaded(false);
                tracing::error!(error = %e, "keyset reload failed; keeping the previous keyset");
            }
        }
    }

    /// Replaces the keyset with an in-memory one.
    ///
    /// # Errors
    /// [`LoadError`] if the keyset is refused; the old one stays.
    pub fn replace(&self, keyset: &Keyset) -> Result<ReloadReport, LoadError> {
        let r = self.swap_in(keyset);
        self.record(&r);
        r
    }

    /// Re-reads the keyset file and swaps it in.
    ///
    /// # Errors
    /// [`LoadError`] if the file cannot be read or is refused; the old
    /// keyset stays in use.
    pub async fn reload(&self) -> Result<ReloadReport, LoadError> {
        let _guard = self.reload_lock.lock().await;
        let Some(source) = &self.source else {
            return Err(LoadError::NoSource);
        };
        let before = stamp(&source.path);
        let r = match source.read().await {
            Ok(keyset) => self.swap_in(&keyset),
            Err(e) => Err(e),
        };
        if let Ok(mut s) = self.last_stamp.lock() {
            *s = before;
        }
        self.record(&r);
        r
    }

    /// Reloads if the file changed (size, modification time or inode) since
    /// the last load. Returns `None` when it had not changed.
    pub async fn reload_if_changed(&self) -> Option<Result<ReloadReport, LoadError>> {
        let source = self.source.as_ref()?;
        let now = stamp(&source.path);
        let last = self.last_stamp.lock().ok().and_then(|s| *s);
        if now.is_some() && now == last {
            return None;
        }
        Some(self.reload().await)
    }

    /// Polls the keyset file every `interval` and reloads it when it
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
