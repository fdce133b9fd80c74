//! [`ReloadableKeyset`]: a keyset that can be replaced while a server runs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use encstore_core::Kek;
use encstore_tink::{Keyset, KeysetInfo, KeysetProtection};

use encstore_tink::envelope::{EnvelopeOptions, KekResolver};

use crate::keys::{AeadKeys, KeysetSnapshot, LoadError, StreamingKeys};
use crate::masters::{MasterKeys, UriResolver};
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
            None => Ok(Keyset::read(&bytes, KeysetProtection::Cleartext)?),
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
    if let Some((policy, refusal)) = e.policy_refusal() {
        tracing::warn!(
            policy = %policy,
            key_id = refusal.key_id,
            key_type = %refusal.key_type,
            streaming = matches!(e, LoadError::Streaming(_)),
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
    /// The streaming keyset's primary key before (`None`: no streaming
    /// keyset).
    pub old_streaming_primary_key_id: Option<u32>,
    /// The streaming keyset's primary key now.
    pub new_streaming_primary_key_id: Option<u32>,
    /// How many keys the streaming keyset has now (0 without one).
    pub streaming_keys: usize,
}

/// A keyset that a running server can replace without a restart: the
/// store's AEAD keyset and, optionally, its streaming keyset (for large
/// objects; see `docs/format.md`, "Large stored objects").
///
/// Readers take the current [`KeysetSnapshot`] with an atomic load (no
/// lock on the read path); a reload builds and validates a new snapshot and
/// swaps it in whole. Operations already running finish with the snapshot
/// they started with. A reload that fails validation keeps the old keysets
/// (both of them), logs why, counts the failure and returns the error. The
/// two keysets reload together ([`reload`](ReloadableKeyset::reload)) or
/// separately ([`replace`](ReloadableKeyset::replace),
/// [`replace_streaming`](ReloadableKeyset::replace_streaming),
/// [`reload_streaming`](ReloadableKeyset::reload_streaming)); every swap
/// checks that no key ID is in both.
pub struct ReloadableKeyset {
    current: ArcSwap<KeysetSnapshot>,
    source: Option<KeysetSource>,
    /// Where the streaming keyset is read from, if from a file.
    streaming_source: Option<KeysetSource>,
    policy: Policy,
    /// How the master keys of KMS envelope keys are opened; `None` for the
    /// synchronous constructors (an envelope keyset is then refused).
    masters: Option<Arc<MasterKeys>>,
    metrics: Metrics,
    generation: AtomicU64,
    last_stamp: std::sync::Mutex<Option<FileStamp>>,
    last_streaming_stamp: std::sync::Mutex<Option<FileStamp>>,
    reload_lock: tokio::sync::Mutex<()>,
    /// Serializes swaps, so that replacing one keyset never drops a
    /// concurrent replacement of the other.
    swap_lock: std::sync::Mutex<()>,
}

impl fmt::Debug for ReloadableKeyset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.current.load();
        f.debug_struct("ReloadableKeyset")
            .field("source", &self.source.as_ref().map(|s| &s.path))
            .field(
                "streaming_source",
                &self.streaming_source.as_ref().map(|s| &s.path),
            )
            .field("policy", &self.policy.name)
            .field("generation", &snap.generation())
            .field("primary_key_id", &snap.primary_key_id())
            .field("streaming_primary_key_id", &snap.streaming_primary_key_id())
            .finish()
    }
}

/// What a swap replaces.
enum Swap<'a> {
    Aead(&'a Keyset),
    Streaming(&'a Keyset),
    Both(&'a Keyset, Option<&'a Keyset>),
}

impl ReloadableKeyset {
    /// A handle over an in-memory keyset, checked against `policy`. Replace
    /// it later with [`ReloadableKeyset::replace`].
    ///
    /// # Errors
    /// [`LoadError::Policy`] if a key is outside the policy.
    pub fn new(keyset: &Keyset, policy: Policy) -> Result<Self, LoadError> {
        let snap = KeysetSnapshot::new(keyset, &policy, 1).inspect_err(log_policy_refusal)?;
        Ok(Self::from_snapshot(snap, policy))
    }

    /// A handle over an in-memory AEAD keyset and streaming keyset (large
    /// objects), checked against `policy`.
    ///
    /// # Errors
    /// [`LoadError::Policy`] if a key is outside the policy,
    /// [`LoadError::Streaming`] if `streaming` is not a valid streaming
    /// keyset, [`LoadError::KeyIdCollision`] if a key ID is in both.
    pub fn new_with_streaming(
        keyset: &Keyset,
        streaming: &Keyset,
        policy: Policy,
    ) -> Result<Self, LoadError> {
        let snap = KeysetSnapshot::with_streaming(keyset, Some(streaming), &policy, 1)
            .inspect_err(log_policy_refusal)?;
        Ok(Self::from_snapshot(snap, policy))
    }

    /// A handle over an in-memory AEAD keyset (and optionally a streaming
    /// keyset) whose KMS envelope keys' master keys are opened through
    /// `resolver` (once per `kek_uri`, here and at each reload that names
    /// a new one), with `options` bounding their calls (concurrency and a
    /// timeout per call). A keyset without envelope keys is used as by
    /// [`ReloadableKeyset::new`].
    ///
    /// # Errors
    /// As [`ReloadableKeyset::new_with_streaming`], and
    /// [`LoadError::Envelope`] when a master key cannot be opened.
    pub async fn new_with_master_keys(
        keyset: &Keyset,
        streaming: Option<&Keyset>,
        policy: Policy,
        resolver: Arc<dyn KekResolver>,
        options: EnvelopeOptions,
    ) -> Result<Self, LoadError> {
        // A key the policy refuses is refused before any KMS is called.
        crate::keys::check_policy(&keyset.info(), &policy)
            .map_err(|refusal| LoadError::Policy {
                policy: policy.name.clone(),
                refusal,
            })
            .inspect_err(log_policy_refusal)?;
        let masters = Arc::new(MasterKeys::new(resolver, options));
        masters.prepare(keyset).await?;
        let aead = Arc::new(
            AeadKeys::new(keyset, &policy, Some(&masters)).inspect_err(log_policy_refusal)?,
        );
        let streaming = streaming
            .map(|s| StreamingKeys::new(s, &policy).map(Arc::new))
            .transpose()
            .map_err(|e| LoadError::Streaming(Box::new(e)))
            .inspect_err(log_policy_refusal)?;
        let snap = KeysetSnapshot::from_parts(aead, streaming, 1)?;
        let mut handle = Self::from_snapshot(snap, policy);
        handle.masters = Some(masters);
        Ok(handle)
    }

    fn from_snapshot(snap: KeysetSnapshot, policy: Policy) -> Self {
        ReloadableKeyset {
            current: ArcSwap::from_pointee(snap),
            source: None,
            streaming_source: None,
            policy,
            masters: None,
            metrics: Metrics::default(),
            generation: AtomicU64::new(1),
            last_stamp: std::sync::Mutex::new(None),
            last_streaming_stamp: std::sync::Mutex::new(None),
            reload_lock: tokio::sync::Mutex::new(()),
            swap_lock: std::sync::Mutex::new(()),
        }
    }

    /// Loads the keyset file described by `source`, checked against
    /// `policy`.
    ///
    /// # Errors
    /// [`LoadError`] if the file cannot be read, unwrapped or validated.
    pub async fn open(source: KeysetSource, policy: Policy) -> Result<Self, LoadError> {
        let before = stamp(&source.path);
        let keyset = source.read().await?;
        let mut handle = Self::new_with_master_keys(
            &keyset,
            None,
            policy,
            Arc::new(UriResolver::new()),
            EnvelopeOptions::default(),
        )
        .await?;
        handle.source = Some(source);
        handle.last_stamp = std::sync::Mutex::new(before);
        tracing::info!(
            primary_key_id = keyset.primary_key_id(),
            keys = keyset.len(),
            "keyset loaded"
        );
        Ok(handle)
    }

    /// Loads an AEAD keyset file and a streaming keyset file (each with
    /// its own master key options), checked against `policy`.
    /// [`reload`](ReloadableKeyset::reload) re-reads both.
    ///
    /// # Errors
    /// [`LoadError`] if a file cannot be read, unwrapped or validated (for
    /// the streaming keyset, wrapped in [`LoadError::Streaming`]), or
    /// [`LoadError::KeyIdCollision`].
    pub async fn open_with_streaming(
        source: KeysetSource,
        streaming: KeysetSource,
        policy: Policy,
    ) -> Result<Self, LoadError> {
        let before = stamp(&source.path);
        let before_streaming = stamp(&streaming.path);
        let keyset = source.read().await?;
        let streaming_keyset = read_streaming(&streaming).await?;
        let mut handle = Self::new_with_master_keys(
            &keyset,
            Some(&streaming_keyset),
            policy,
            Arc::new(UriResolver::new()),
            EnvelopeOptions::default(),
        )
        .await?;
        handle.source = Some(source);
        handle.streaming_source = Some(streaming);
        handle.last_stamp = std::sync::Mutex::new(before);
        handle.last_streaming_stamp = std::sync::Mutex::new(before_streaming);
        tracing::info!(
            primary_key_id = keyset.primary_key_id(),
            keys = keyset.len(),
            streaming_primary_key_id = streaming_keyset.primary_key_id(),
            streaming_keys = streaming_keyset.len(),
            "keysets loaded"
        );
        Ok(handle)
    }

    /// The current snapshot. Hold it for the length of one operation.
    pub fn snapshot(&self) -> Arc<KeysetSnapshot> {
        self.current.load_full()
    }

    /// The current AEAD keyset, described without key material.
    pub fn info(&self) -> KeysetInfo {
        self.current.load().info().clone()
    }

    /// The current streaming keyset, described without key material;
    /// `None` without one.
    pub fn streaming_info(&self) -> Option<KeysetInfo> {
        self.current.load().streaming_info().cloned()
    }

    /// The active policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn swap_in(&self, what: Swap<'_>) -> Result<ReloadReport, LoadError> {
        let _guard = self.swap_lock.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.current.load_full();
        let generation = self.generation.load(Ordering::SeqCst) + 1;
        let built = (|| {
            let streaming = |k: &Keyset| {
                StreamingKeys::new(k, &self.policy)
                    .map(Arc::new)
                    .map_err(|e| LoadError::Streaming(Box::new(e)))
            };
            let (aead, streaming) = match what {
                Swap::Aead(k) => (
                    Arc::new(AeadKeys::new(k, &self.policy, self.masters.as_deref())?),
                    old.streaming_part().cloned(),
                ),
                Swap::Streaming(s) => (Arc::clone(old.aead_part()), Some(streaming(s)?)),
                Swap::Both(k, s) => (
                    Arc::new(AeadKeys::new(k, &self.policy, self.masters.as_deref())?),
                    s.map(streaming).transpose()?,
                ),
            };
            KeysetSnapshot::from_parts(aead, streaming, generation)
        })();
        let snap = match built {
            Ok(s) => s,
            Err(e) => {
                if e.policy_refusal().is_some() {
                    self.metrics.policy_refused();
                    log_policy_refusal(&e);
                }
                return Err(e);
            }
        };
        let report = ReloadReport {
            generation,
            old_primary_key_id: old.primary_key_id(),
            new_primary_key_id: snap.primary_key_id(),
            keys: snap.info().keys.len(),
            old_streaming_primary_key_id: old.streaming_primary_key_id(),
            new_streaming_primary_key_id: snap.streaming_primary_key_id(),
            streaming_keys: snap.streaming_info().map_or(0, |i| i.keys.len()),
        };
        self.current.store(Arc::new(snap));
        self.generation.store(generation, Ordering::SeqCst);
        Ok(report)
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
                    old_streaming_primary_key_id = rep.old_streaming_primary_key_id,
                    new_streaming_primary_key_id = rep.new_streaming_primary_key_id,
                    streaming_keys = rep.streaming_keys,
                    "keyset reloaded"
                );
            }
            Err(e) => {
                self.metrics.reloaded(false);
                tracing::error!(error = %e, "keyset reload failed; keeping the previous keyset");
            }
        }
    }

    /// Opens the master keys of `keyset`'s ENABLED KMS envelope keys that
    /// this handle has not opened yet, so that a following
    /// [`replace`](ReloadableKeyset::replace) (synchronous) can use them.
    /// Needs a handle made with master keys
    /// ([`open`](ReloadableKeyset::open),
    /// [`new_with_master_keys`](ReloadableKeyset::new_with_master_keys)).
    ///
    /// # Errors
    /// [`LoadError::Envelope`] when a master key cannot be opened.
    pub async fn prepare_master_keys(&self, keyset: &Keyset) -> Result<(), LoadError> {
        match &self.masters {
            Some(m) => m.prepare(keyset).await,
            None => Ok(()),
        }
    }

    /// Replaces the AEAD keyset with an in-memory one (the streaming
    /// keyset stays). A keyset naming a master key this handle has not
    /// opened needs [`prepare_master_keys`](ReloadableKeyset::prepare_master_keys)
    /// first.
    ///
    /// # Errors
    /// [`LoadError`] if the keyset is refused; the old one stays.
    pub fn replace(&self, keyset: &Keyset) -> Result<ReloadReport, LoadError> {
        let r = self.swap_in(Swap::Aead(keyset));
        self.record(&r);
        r
    }

    /// Sets or replaces the streaming keyset with an in-memory one (the
    /// AEAD keyset stays).
    ///
    /// # Errors
    /// [`LoadError::Streaming`] if the keyset is refused,
    /// [`LoadError::KeyIdCollision`]; the old keysets stay.
    pub fn replace_streaming(&self, streaming: &Keyset) -> Result<ReloadReport, LoadError> {
        let r = self.swap_in(Swap::Streaming(streaming));
        self.record(&r);
        r
    }

    /// Replaces both keysets at once with in-memory ones (`None`: no
    /// streaming keyset; large objects then no longer decrypt).
    ///
    /// # Errors
    /// As [`replace`](ReloadableKeyset::replace) and
    /// [`replace_streaming`](ReloadableKeyset::replace_streaming); the old
    /// keysets stay.
    pub fn replace_both(
        &self,
        keyset: &Keyset,
        streaming: Option<&Keyset>,
    ) -> Result<ReloadReport, LoadError> {
        let r = self.swap_in(Swap::Both(keyset, streaming));
        self.record(&r);
        r
    }

    /// Re-reads the keyset files (the AEAD keyset's and, if it has one,
    /// the streaming keyset's) and swaps them in together. A keyset not
    /// loaded from a file stays as it is.
    ///
    /// # Errors
    /// [`LoadError`] if a file cannot be read or is refused; the old
    /// keysets stay in use. [`LoadError::NoSource`] when neither keyset
    /// was loaded from a file.
    pub async fn reload(&self) -> Result<ReloadReport, LoadError> {
        let _guard = self.reload_lock.lock().await;
        if self.source.is_none() && self.streaming_source.is_none() {
            return Err(LoadError::NoSource);
        }
        let before = self.source.as_ref().map(|s| stamp(&s.path));
        let before_streaming = self.streaming_source.as_ref().map(|s| stamp(&s.path));
        let r = async {
            let aead = match &self.source {
                Some(s) => Some(s.read().await?),
                None => None,
            };
            let streaming = match &self.streaming_source {
                Some(s) => Some(read_streaming(s).await?),
                None => None,
            };
            if let (Some(a), Some(m)) = (&aead, &self.masters) {
                m.prepare(a).await?;
            }
            match (&aead, &streaming) {
                (Some(a), Some(s)) => self.swap_in(Swap::Both(a, Some(s))),
                (Some(a), None) => self.swap_in(Swap::Aead(a)),
                (None, Some(s)) => self.swap_in(Swap::Streaming(s)),
                (None, None) => Err(LoadError::NoSource),
            }
        }
        .await;
        if let Some(before) = before
            && let Ok(mut s) = self.last_stamp.lock()
        {
            *s = before;
        }
        if let Some(before) = before_streaming
            && let Ok(mut s) = self.last_streaming_stamp.lock()
        {
            *s = before;
        }
        self.record(&r);
        r
    }

    /// Re-reads the streaming keyset file alone and swaps it in (the AEAD
    /// keyset stays).
    ///
    /// # Errors
    /// [`LoadError`] if the file cannot be read or is refused (the old
    /// keysets stay); [`LoadError::NoSource`] when the streaming keyset was
    /// not loaded from a file.
    pub async fn reload_streaming(&self) -> Result<ReloadReport, LoadError> {
        let _guard = self.reload_lock.lock().await;
        let Some(source) = &self.streaming_source else {
            return Err(LoadError::NoSource);
        };
        let before = stamp(&source.path);
        let r = match read_streaming(source).await {
            Ok(keyset) => self.swap_in(Swap::Streaming(&keyset)),
            Err(e) => Err(e),
        };
        if let Ok(mut s) = self.last_streaming_stamp.lock() {
            *s = before;
        }
        self.record(&r);
        r
    }

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

/// Reads a streaming keyset file; its errors are wrapped in
/// [`LoadError::Streaming`].
async fn read_streaming(source: &KeysetSource) -> Result<Keyset, LoadError> {
    source
        .read()
        .await
        .map_err(|e| LoadError::Streaming(Box::new(e)))
}

/// Stops the file watcher when dropped.
#[derive(Debug)]
pub struct WatchHandle(tokio::task::JoinHandle<()>);

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}
