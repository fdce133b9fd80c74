//! [`EncryptedStorage::reencrypt_all`]: re-encrypt every stored object under
//! the primary key, store-wide, safely; and its dry run
//! [`EncryptedStorage::reencrypt_plan`].
//!
//! (Re-encrypting *objects* is not *wrapping*: wrap, unwrap and rewrap are
//! the words for a keyset or a data key under a key-encryption key. The
//! `encstore store rewrap` command is this operation under its historical
//! name.)

mod lock;
mod plan;

use std::fmt;
use std::time::{Duration, Instant};

use encstore_core::{Error, Lease};
use tokio_util::sync::CancellationToken;

use crate::concurrency::{self, Flow, Step};
use crate::encrypted::{EncryptedStorage, ObjectReencryption};
use crate::verify::{
    DEFAULT_CONCURRENCY, EventSink, FailureClass, FailureCounts, FailureReason, ObjectFailure,
    StopReason, UNREACHABLE_DRAIN, end_of_run,
};

pub use lock::{LockWait, REENCRYPT_LOCK};
pub use plan::ReencryptPlan;

/// How many times an object is re-encrypted and re-checked before it is
/// reported as [`FailureReason::StillNotUnderPrimary`].
const RECHECK_ATTEMPTS: usize = 3;

/// How [`EncryptedStorage::reencrypt_all`] runs.
#[derive(Clone)]
#[non_exhaustive]
pub struct ReencryptOptions {
    /// Objects re-encrypted at once (at least 1; default
    /// [`DEFAULT_CONCURRENCY`]).
    pub concurrency: usize,
    /// Whether to wait for another run's lock.
    pub lock_wait: LockWait,
    /// When it fires, no new object is started; the ones in flight finish
    /// and are counted, the lock is released, and the summary says
    /// [`StopReason::Cancelled`]. While waiting for the lock, it ends the
    /// wait with [`ReencryptError::Cancelled`].
    pub cancel: Option<CancellationToken>,
    /// When it fires, the objects in flight are abandoned too (each is
    /// either re-encrypted or untouched; counted in
    /// [`ReencryptSummary::abandoned`]).
    pub abort: Option<CancellationToken>,
    /// Receives every event.
    pub on_event: Option<EventSink<ReencryptEvent>>,
}

impl Default for ReencryptOptions {
    fn default() -> Self {
        ReencryptOptions {
            concurrency: DEFAULT_CONCURRENCY,
            lock_wait: LockWait::Wait,
            cancel: None,
            abort: None,
            on_event: None,
        }
    }
}

impl fmt::Debug for ReencryptOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReencryptOptions")
            .field("concurrency", &self.concurrency)
            .field("lock_wait", &self.lock_wait)
            .field("cancel", &self.cancel.is_some())
            .field("abort", &self.abort.is_some())
            .field("on_event", &self.on_event.is_some())
            .finish()
    }
}

concurrency::run_options!(ReencryptOptions, ReencryptEvent);

impl ReencryptOptions {
    /// Sets [`lock_wait`](Self::lock_wait).
    pub fn lock_wait(mut self, wait: LockWait) -> ReencryptOptions {
        self.lock_wait = wait;
        self
    }
}

/// What re-encrypting one object did.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReencryptOutcome {
    /// Re-encrypted under the primary key, and re-checked.
    Reencrypted,
    /// Already under the primary key; nothing was written.
    AlreadyCurrent,
    /// Deleted meanwhile; nothing was written.
    Deleted,
    /// Left untouched: it does not decrypt, or kept changing.
    Failed {
        /// The kind of failure.
        class: FailureClass,
        /// Why.
        reason: FailureReason,
    },
    /// The backend did not answer: the run stops.
    Unreachable(Error),
}

/// An event of [`EncryptedStorage::reencrypt_all`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ReencryptEvent {
    /// Another run holds the lock; this one waits for it.
    WaitingForLock {
        /// The lock's name ([`REENCRYPT_LOCK`]).
        lock: &'static str,
        /// The backend's lease: a killed run's lock expires after it.
        lease: Duration,
    },
    /// The lock is held and the objects were listed; the run starts.
    Started {
        /// Objects to handle.
        total: u64,
    },
    /// One object was handled.
    Object {
        /// Its key name.
        key: String,
        /// What was done.
        outcome: ReencryptOutcome,
    },
    /// The run stops early: no new object is started.
    Stopping {
        /// Why.
        reason: StopReason,
        /// Objects still in flight, which finish (or are abandoned).
        in_flight: usize,
    },
}

/// What [`EncryptedStorage::reencrypt_all`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ReencryptSummary {
    /// Objects listed.
    pub objects: u64,
    /// Objects re-encrypted under the primary key.
    pub reencrypted: u64,
    /// Objects already under the primary key.
    pub already_current: u64,
    /// Objects deleted while the run went on.
    pub deleted: u64,
    /// Every object left untouched because it failed, sorted by key.
    pub failures: Vec<ObjectFailure>,
    /// The primary key ID.
    pub primary_key_id: u32,
    /// Time from the start of the run (lock held, objects listed).
    pub elapsed: Duration,
    /// Why the run stopped early, if it did.
    pub stopped: Option<StopReason>,
    /// The first unreachable-backend error, when it stopped the run.
    pub unreachable: Option<Error>,
    /// Objects in flight that were abandoned uncounted (an abort, or the
    /// backend stayed silent): each is either re-encrypted or untouched.
    pub abandoned: usize,
    /// Releasing the lock failed (it expires on its own after
    /// [`lease`](Self::lease)).
    pub unlock_error: Option<Error>,
    /// The backend's lock lease.
    pub lease: Duration,
}

impl ReencryptSummary {
    /// The failures by class.
    pub fn failure_counts(&self) -> FailureCounts {
        FailureCounts::of(&self.failures)
    }
}

/// Why [`EncryptedStorage::reencrypt_all`] did not run. Nothing was
/// changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReencryptError {
    /// Another run holds the lock, and [`LockWait::FailFast`] was asked.
    #[error(
        "another re-encryption holds the lock {REENCRYPT_LOCK:?} (a killed run's lock expires after {} s)",
        .lease.as_secs()
    )]
    LockHeld {
        /// The backend's lease.
        lease: Duration,
    },
    /// Taking the lock failed.
    #[error("cannot take the re-encryption lock: {0}")]
    Lock(Error),
    /// Listing the objects failed.
    #[error("cannot list the objects: {0}")]
    List(Error),
    /// The census before a migration failed.
    #[error("cannot take the census: {0}")]
    Census(Error),
    /// Migration mode ([`Options::allow_plaintext`](crate::Options)) refuses
    /// to run: the keyset holds RAW keys and the store has prefix-less
    /// objects that no RAW key decrypts. They may be ciphertexts under a
    /// RAW key that was destroyed or removed, not plaintext, and encrypting
    /// them would bury them.
    #[error(
        "refusing migration mode: {objects} object(s) have no Tink prefix and no enabled RAW key decrypts them, and the keyset holds RAW key(s) {}: they may be ciphertexts, not plaintext",
        raw_key_ids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    )]
    UnsafeMigration {
        /// The prefix-less objects no RAW key decrypts.
        objects: u64,
        /// The keyset's RAW keys.
        raw_key_ids: Vec<u32>,
    },
    /// The cancellation token fired while waiting for the lock.
    #[error("cancelled while waiting for the re-encryption lock")]
    Cancelled,
}

impl EncryptedStorage {
    /// Re-encrypts every object under `prefix` (`""` for all) that is not
    /// under the primary key, store-wide and safely:
    ///
    /// - it holds the store-wide lock [`REENCRYPT_LOCK`] for the whole run
    ///   (waiting for another run, or failing fast), and stops if the
    ///   lock's lease is lost;
    /// - at most `options.concurrency` objects at once, each with
    ///   [`reencrypt_one`](Self::reencrypt_one)'s conditional write (a value
    ///   written meanwhile is never overwritten), then re-checked: the
    ///   stored object must decrypt and be under the primary (re-encrypted
    ///   again, a few times, if an older writer put it back under an old
    ///   key);
    /// - an object that does not decrypt is left untouched and reported,
    ///   never an error of the run;
    /// - it stops early, with true counts (the objects in flight finish),
    ///   on `options.cancel`, a lost lock, or a backend that stops
    ///   answering ([`Error::Unreachable`]);
    /// - in migration mode ([`Options::allow_plaintext`](crate::Options))
    ///   it refuses to run while the keyset holds a RAW key and the store
    ///   has prefix-less objects no RAW key decrypts.
    ///
    /// It is safe to stop at any moment (even by killing the process): run
    /// it again to finish.
    ///
    /// # Errors
    /// [`ReencryptError`]: the run did not start, and nothing was changed.
    pub async fn reencrypt_all(
        &self,
        prefix: &str,
        options: &ReencryptOptions,
    ) -> Result<ReencryptSummary, ReencryptError> {
        self.refuse_unsafe_migration().await?;
        let (lease, lease_time) = self.take_run_lock(options).await?;
        let result = self.reencrypt_locked(prefix, options, &lease).await;
        let unreachable = matches!(&result, Ok(s) if s.stopped == Some(StopReason::Unreachable));
        let unlocked = self.release_run_lock(lease, unreachable).await;
        let mut summary = result?;
        summary.unlock_error = unlocked.err();
        summary.lease = lease_time;
        Ok(summary)
    }

    async fn refuse_unsafe_migration(&self) -> Result<(), ReencryptError> {
        let snap = self.keyset().snapshot();
        if !self.allows_plaintext() || !snap.holds_raw_keys() {
            return Ok(());
        }
        let census = self.census("").await.map_err(ReencryptError::Census)?;
        if census.prefix_less_unattributed == 0 {
            return Ok(());
        }
        Err(ReencryptError::UnsafeMigration {
            objects: census.prefix_less_unattributed,
            raw_key_ids: snap.raw_key_ids(),
        })
    }

    async fn reencrypt_locked(
        &self,
        prefix: &str,
        options: &ReencryptOptions,
        lease: &Lease,
    ) -> Result<ReencryptSummary, ReencryptError> {
        let keys = self
            .inner()
            .list(prefix, true)
            .await
            .map_err(ReencryptError::List)?;
        let mut s = ReencryptSummary {
            objects: keys.len() as u64,
            primary_key_id: self.keyset().snapshot().primary_key_id(),
            ..ReencryptSummary::default()
        };
        options.emit(&ReencryptEvent::Started { total: s.objects });
        let start = Instant::now();
        let control = options.control(Some(lease));
        let end = concurrency::run(
            keys,
            &control,
            |key| {
                let store = self.clone();
                async move {
                    let outcome = reencrypt_and_check(&store, &key).await;
                    (key, outcome)
                }
            },
            |step| match step {
                Step::Stopping { halt, in_flight } => {
                    options.emit(&ReencryptEvent::Stopping {
                        reason: StopReason::from_halt(halt),
                        in_flight,
                    });
                    Flow::Continue
                }
                Step::Done((key, outcome)) => {
                    let event = ReencryptEvent::Object { key, outcome };
                    options.emit(&event);
                    let ReencryptEvent::Object { key, outcome } = event else {
                        return Flow::Continue;
                    };
                    match outcome {
                        ReencryptOutcome::Reencrypted => s.reencrypted += 1,
                        ReencryptOutcome::AlreadyCurrent => s.already_current += 1,
                        ReencryptOutcome::Deleted => s.deleted += 1,
                        ReencryptOutcome::Failed { class, reason } => {
                            s.failures.push(ObjectFailure { key, class, reason });
                        }
                        ReencryptOutcome::Unreachable(e) => {
                            s.unreachable.get_or_insert(e);
                            return Flow::Stop {
                                drain: UNREACHABLE_DRAIN,
                            };
                        }
                    }
                    Flow::Continue
                }
            },
        )
        .await;
        s.elapsed = start.elapsed();
        (s.stopped, s.abandoned) = end_of_run(end, &mut s.unreachable, &mut s.failures);
        Ok(s)
    }
}

/// Re-encrypts one object and re-checks it: after `reencrypt_one`, the stored
/// object must decrypt and be under the primary. A writer still on an older
/// keyset may write it back under an old key in between; then it is
/// re-encrypted again, a few times, before giving up.
async fn reencrypt_and_check(store: &EncryptedStorage, key: &str) -> ReencryptOutcome {
    let failed = |reason| ReencryptOutcome::Failed {
        class: FailureClass::Other,
        reason,
    };
    let mut reencrypted = false;
    for _ in 0..RECHECK_ATTEMPTS {
        match store.reencrypt_one(key).await {
            Ok(ObjectReencryption::Deleted) => return ReencryptOutcome::Deleted,
            Ok(ObjectReencryption::Reencrypted { .. }) => reencrypted = true,
            Ok(_) => {}
            Err(
                e @ (Error::Authentication { .. }
                | Error::UnknownKeyId { .. }
                | Error::KeyNotEnabled { .. }),
            ) => {
                let (class, reason) = store.classify_failure(key, e).await;
                return ReencryptOutcome::Failed { class, reason };
            }
            Err(e @ Error::Unreachable { .. }) => return ReencryptOutcome::Unreachable(e),
            Err(e) => return failed(FailureReason::Error(e)),
        }
        let snap = store.keyset().snapshot();
        // A large object names its streaming key in its first five bytes,
        // and its content was authenticated as `reencrypt_one` streamed it:
        // the re-check reads only that head (never the whole object into
        // memory), to catch a writer that put it back under an old key.
        match store.inner().load_head(key, 5).await {
            Ok(head) if snap.streaming_key_of(&head).is_some() => {
                if snap.is_under_primary(&head) {
                    return if reencrypted {
                        ReencryptOutcome::Reencrypted
                    } else {
                        ReencryptOutcome::AlreadyCurrent
                    };
                }
                continue;
            }
            Ok(_) => {}
            Err(Error::NotFound { .. }) => return ReencryptOutcome::Deleted,
            Err(e @ Error::Unreachable { .. }) => return ReencryptOutcome::Unreachable(e),
            Err(e) => return failed(FailureReason::Recheck(e)),
        }
        let raw = match store.inner().load(key).await {
            Ok(raw) => raw,
            Err(Error::NotFound { .. }) => return ReencryptOutcome::Deleted,
            Err(e @ Error::Unreachable { .. }) => return ReencryptOutcome::Unreachable(e),
            Err(e) => return failed(FailureReason::Recheck(e)),
        };
        let current = store.is_current(snap, key, raw).await;
        match current {
            Ok(true) if reencrypted => return ReencryptOutcome::Reencrypted,
            Ok(true) => return ReencryptOutcome::AlreadyCurrent,
            Ok(false) => {}
            Err(e) => return failed(FailureReason::Recheck(e)),
        }
    }
    failed(FailureReason::StillNotUnderPrimary)
}
