//! [`EncryptedStorage::verify_all`]: decrypt every object and report every
//! failure, typed; and the failure types it shares with
//! [`reencrypt_all`](EncryptedStorage::reencrypt_all).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use encstore_core::Error;
use encstore_tink::KeyStatus;
use tokio_util::sync::CancellationToken;

use crate::concurrency::{self, End, Flow, Halt, Step};
use crate::encrypted::{EncryptedStorage, ObjectCheck};
use crate::keys::ObjectClass;

/// Objects handled at once by default (`encstore store verify` and
/// `store rewrap` default to the same).
pub const DEFAULT_CONCURRENCY: usize = 16;

/// How long the objects in flight may take to finish once the backend was
/// found unreachable (they are failing too, each after the backend's
/// bounded retries); after that they are abandoned.
pub const UNREACHABLE_DRAIN: Duration = Duration::from_secs(5);

/// Why a run over every object stopped before the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// The caller's cancellation token fired (Ctrl-C in the tool, shutdown
    /// in a server).
    Cancelled,
    /// The backend stopped answering ([`Error::Unreachable`], after the
    /// backend's bounded retries); the summary holds the error.
    Unreachable,
    /// The re-encryption lock's lease ran out, or another process took it
    /// over.
    LockLost,
}

impl StopReason {
    pub(crate) fn from_halt(halt: Halt) -> StopReason {
        match halt {
            Halt::Cancelled => StopReason::Cancelled,
            Halt::Handler => StopReason::Unreachable,
            Halt::LeaseLost => StopReason::LockLost,
        }
    }
}

/// How a store-wide run ended, as its summary reports it: why it stopped
/// early (if it did) and how many objects in flight were abandoned. The
/// unreachable-backend error is kept only when it is what stopped the run;
/// the failures are sorted by key.
pub(crate) fn end_of_run(
    end: End,
    unreachable: &mut Option<Error>,
    failures: &mut [ObjectFailure],
) -> (Option<StopReason>, usize) {
    let stopped = end.halt.map(StopReason::from_halt);
    if stopped != Some(StopReason::Unreachable) {
        *unreachable = None;
    }
    failures.sort_by(|a, b| a.key.cmp(&b.key));
    (stopped, end.abandoned)
}

/// Which kind of failure an object's is, for the breakdown of a summary
/// ([`FailureCounts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureClass {
    /// No Tink prefix, and no RAW key decrypts it, while the keyset holds a
    /// RAW key.
    PrefixLessUnattributed,
    /// Under a key ID the keyset does not have.
    UnknownKeyId(u32),
    /// Under a key the keyset holds, but not ENABLED.
    KeyNotEnabled(u32),
    /// Anything else.
    Other,
}

/// Why one object could not be read (or re-encrypted). `Display` is one
/// line, the message `encstore` prints for the object (hints name the
/// `encstore` tool's commands; `KEYSET` stands for the keyset file).
#[derive(Debug)]
#[non_exhaustive]
pub enum FailureReason {
    /// The library's error: decryption, or the backend.
    Error(Error),
    /// No Tink prefix, and no RAW key with key material decrypts it, while
    /// the keyset holds the RAW keys listed: it may be a ciphertext under a
    /// RAW key that was destroyed or removed, so it is never taken for
    /// plaintext.
    PrefixLessUnattributed {
        /// The keyset's RAW keys.
        raw_key_ids: Vec<u32>,
    },
    /// Under a RAW key (found by trial decryption) that is not ENABLED.
    RawKeyNotEnabled {
        /// The key.
        key_id: u32,
        /// Its status.
        status: KeyStatus,
    },
    /// Its first bytes name a key ID the keyset does not have, no RAW key
    /// decrypts it, and the keyset holds RAW keys (so it is never taken for
    /// plaintext: a RAW ciphertext may start like a prefix).
    UnknownKeyIdWithRawKeys {
        /// The key ID its first bytes name.
        key_id: u32,
        /// The keyset's RAW keys.
        raw_key_ids: Vec<u32>,
    },
    /// Re-encrypted, but reading it back for the re-check failed.
    Recheck(Error),
    /// Re-encrypted several times, and still not under the primary key (a
    /// writer with an older keyset keeps rewriting it?).
    StillNotUnderPrimary,
}

fn ids(ids: &[u32]) -> String {
    ids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Error(e) => write!(f, "{e}"),
            FailureReason::PrefixLessUnattributed { raw_key_ids } => write!(
                f,
                "{PREFIX_LESS}: it has no Tink prefix, and the keyset holds RAW key(s) {}, so it may be a ciphertext under a RAW key that was destroyed or removed; it is never taken as plaintext (not even with --allow-plaintext)",
                ids(raw_key_ids)
            ),
            FailureReason::RawKeyNotEnabled { key_id, status } => write!(
                f,
                "under RAW key {key_id}, which is {status}: enable it (encstore enable-key --key-id {key_id}) to read or re-encrypt it"
            ),
            FailureReason::UnknownKeyIdWithRawKeys {
                key_id,
                raw_key_ids,
            } => write!(
                f,
                "its first bytes name key ID {key_id}, which this keyset does not have, and no RAW key decrypts it; with RAW key(s) {} in the keyset it is never taken as plaintext (a RAW ciphertext may start like a prefix)",
                ids(raw_key_ids)
            ),
            FailureReason::Recheck(e) => write!(f, "re-check: {e}"),
            FailureReason::StillNotUnderPrimary => f.write_str(
                "still not under the primary key after re-encryption (is a writer with an older keyset rewriting it?)",
            ),
        }
    }
}

/// How `encstore` labels objects with no Tink prefix that no RAW key
/// decrypts while the keyset holds a RAW key.
pub const PREFIX_LESS: &str = "prefix-less, no enabled RAW key decrypts it";

/// An object that failed, in a summary.
#[derive(Debug)]
#[non_exhaustive]
pub struct ObjectFailure {
    /// The object's key name.
    pub key: String,
    /// The kind of failure.
    pub class: FailureClass,
    /// Why.
    pub reason: FailureReason,
}

/// The failures of a summary by class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailureCounts {
    /// [`FailureClass::PrefixLessUnattributed`] failures.
    pub prefix_less_unattributed: u64,
    /// [`FailureClass::UnknownKeyId`] failures, by key ID.
    pub unknown_key_ids: BTreeMap<u32, u64>,
    /// [`FailureClass::KeyNotEnabled`] failures, by key ID.
    pub not_enabled_key_ids: BTreeMap<u32, u64>,
}

impl FailureCounts {
    /// Counts `failures` by class.
    pub fn of(failures: &[ObjectFailure]) -> FailureCounts {
        let mut c = FailureCounts::default();
        for f in failures {
            match f.class {
                FailureClass::PrefixLessUnattributed => c.prefix_less_unattributed += 1,
                FailureClass::UnknownKeyId(id) => *c.unknown_key_ids.entry(id).or_default() += 1,
                FailureClass::KeyNotEnabled(id) => {
                    *c.not_enabled_key_ids.entry(id).or_default() += 1;
                }
                FailureClass::Other => {}
            }
        }
        c
    }
}

/// A callback that receives a run's events (from the task that called
/// the run; it should be quick: log, update a progress bar).
pub type EventSink<E> = Arc<dyn Fn(&E) + Send + Sync>;

/// How [`EncryptedStorage::verify_all`] runs.
#[derive(Clone)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Objects read and decrypted at once (at least 1; default
    /// [`DEFAULT_CONCURRENCY`]).
    pub concurrency: usize,
    /// When it fires, no new object is started; the ones in flight finish
    /// and are counted, and the summary says
    /// [`StopReason::Cancelled`].
    pub cancel: Option<CancellationToken>,
    /// When it fires, the objects in flight are abandoned too (counted in
    /// [`VerifySummary::abandoned`]).
    pub abort: Option<CancellationToken>,
    /// Receives every event.
    pub on_event: Option<EventSink<VerifyEvent>>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            concurrency: DEFAULT_CONCURRENCY,
            cancel: None,
            abort: None,
            on_event: None,
        }
    }
}

impl fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("concurrency", &self.concurrency)
            .field("cancel", &self.cancel.is_some())
            .field("abort", &self.abort.is_some())
            .field("on_event", &self.on_event.is_some())
            .finish()
    }
}

concurrency::run_options!(VerifyOptions, VerifyEvent);

/// What verifying one object found.
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyOutcome {
    /// The keyset decrypts it; the key ID (from its prefix, or the RAW key
    /// that decrypts it; `None` if that cannot be told).
    Decrypted {
        /// The key it is under.
        key_id: Option<u32>,
    },
    /// A plaintext object, accepted in migration mode.
    Plaintext,
    /// Deleted meanwhile.
    Deleted,
    /// It does not decrypt.
    Failed {
        /// The kind of failure.
        class: FailureClass,
        /// Why.
        reason: FailureReason,
    },
    /// The backend did not answer: the run stops.
    Unreachable(Error),
}

/// An event of [`EncryptedStorage::verify_all`].
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyEvent {
    /// The objects were listed; verification starts.
    Started {
        /// Objects to verify.
        total: u64,
    },
    /// One object was verified.
    Object {
        /// Its key name.
        key: String,
        /// What was found.
        outcome: VerifyOutcome,
    },
    /// The run stops early: no new object is started.
    Stopping {
        /// Why.
        reason: StopReason,
        /// Objects still in flight, which finish (or are abandoned).
        in_flight: usize,
    },
}

/// What [`EncryptedStorage::verify_all`] found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct VerifySummary {
    /// Objects listed.
    pub objects: u64,
    /// Objects that decrypt.
    pub ok: u64,
    /// Plaintext objects (migration mode).
    pub plaintext: u64,
    /// Objects deleted while the run went on.
    pub deleted: u64,
    /// Objects that decrypt, by key ID.
    pub by_key_id: BTreeMap<u32, u64>,
    /// Every failure, sorted by key.
    pub failures: Vec<ObjectFailure>,
    /// The primary key ID at the end.
    pub primary_key_id: u32,
    /// Time from the start of verification (after the listing).
    pub elapsed: Duration,
    /// Why the run stopped early, if it did.
    pub stopped: Option<StopReason>,
    /// The first unreachable-backend error, when it stopped the run.
    pub unreachable: Option<Error>,
    /// Objects in flight that were abandoned uncounted (an abort, or the
    /// backend stayed silent).
    pub abandoned: usize,
}

impl VerifySummary {
    /// Objects handled and counted: ok, plaintext, deleted and failed.
    pub fn checked(&self) -> u64 {
        self.ok + self.plaintext + self.deleted + self.failures.len() as u64
    }

    /// The failures by class.
    pub fn failure_counts(&self) -> FailureCounts {
        FailureCounts::of(&self.failures)
    }
}

impl EncryptedStorage {
    /// Decrypts every object under `prefix` (`""` for all), at most
    /// `options.concurrency` at once, and reports every failure, typed.
    ///
    /// An object that does not decrypt is a failure, never an error of the
    /// run. The run stops early (with true counts: the objects in flight
    /// finish first) when `options.cancel` fires or when the backend stops
    /// answering ([`Error::Unreachable`]); see [`VerifySummary::stopped`].
    /// Nothing is written.
    ///
    /// # Errors
    /// Listing the objects failed.
    pub async fn verify_all(
        &self,
        prefix: &str,
        options: &VerifyOptions,
    ) -> Result<VerifySummary, Error> {
        let keys = self.inner().list(prefix, true).await?;
        let mut s = VerifySummary {
            objects: keys.len() as u64,
            ..VerifySummary::default()
        };
        options.emit(&VerifyEvent::Started { total: s.objects });
        let start = Instant::now();
        let control = options.control(None);
        let end = concurrency::run(
            keys,
            &control,
            |key| {
                let store = self.clone();
                async move {
                    let outcome = verify_one(&store, &key).await;
                    (key, outcome)
                }
            },
            |step| match step {
                Step::Stopping { halt, in_flight } => {
                    options.emit(&VerifyEvent::Stopping {
                        reason: StopReason::from_halt(halt),
                        in_flight,
                    });
                    Flow::Continue
                }
                Step::Done((key, outcome)) => {
                    let event = VerifyEvent::Object { key, outcome };
                    options.emit(&event);
                    let VerifyEvent::Object { key, outcome } = event else {
                        return Flow::Continue;
                    };
                    match outcome {
                        VerifyOutcome::Decrypted { key_id } => {
                            s.ok += 1;
                            if let Some(id) = key_id {
                                *s.by_key_id.entry(id).or_default() += 1;
                            }
                        }
                        VerifyOutcome::Plaintext => s.plaintext += 1,
                        VerifyOutcome::Deleted => s.deleted += 1,
                        VerifyOutcome::Failed { class, reason } => {
                            s.failures.push(ObjectFailure { key, class, reason });
                        }
                        VerifyOutcome::Unreachable(e) => {
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
        s.primary_key_id = self.keyset().snapshot().primary_key_id();
        Ok(s)
    }

    /// Why the object at `key`, which failed to decrypt, is not readable,
    /// when the keyset's classification of the whole object explains it
    /// better than the decryption error: an object without a known key
    /// prefix while the keyset holds RAW keys, or one under a RAW key that
    /// is not enabled. `None` otherwise (or when it cannot be read).
    pub async fn explain_unreadable(&self, key: &str) -> Option<FailureReason> {
        let object = self.inner().load(key).await.ok()?;
        let snap = self.keyset().snapshot();
        let ad = self.associated_data(key);
        match snap.classify_object(&object, &ad) {
            ObjectClass::PrefixLessUnattributed => Some(FailureReason::PrefixLessUnattributed {
                raw_key_ids: snap.raw_key_ids(),
            }),
            ObjectClass::Key {
                key_id,
                status,
                raw: true,
            } if status != KeyStatus::Enabled => {
                Some(FailureReason::RawKeyNotEnabled { key_id, status })
            }
            ObjectClass::UnknownKeyId { key_id } if snap.holds_raw_keys() => {
                Some(FailureReason::UnknownKeyIdWithRawKeys {
                    key_id,
                    raw_key_ids: snap.raw_key_ids(),
                })
            }
            _ => None,
        }
    }

    /// A failure on `key` with error `e`, classified, explained when the
    /// classification says more than the error.
    pub(crate) async fn classify_failure(
        &self,
        key: &str,
        e: Error,
    ) -> (FailureClass, FailureReason) {
        let explained = self.explain_unreadable(key).await;
        let class = match (&e, &explained) {
            (_, Some(FailureReason::PrefixLessUnattributed { .. })) => {
                FailureClass::PrefixLessUnattributed
            }
            (Error::UnknownKeyId { key_id, .. }, _) => FailureClass::UnknownKeyId(*key_id),
            (Error::KeyNotEnabled { key_id, .. }, _) => FailureClass::KeyNotEnabled(*key_id),
            _ => FailureClass::Other,
        };
        (class, explained.unwrap_or(FailureReason::Error(e)))
    }
}

/// Decrypts one object, large ones as a stream in constant memory
/// ([`EncryptedStorage::verify_one`]), and classifies a failure.
async fn verify_one(store: &EncryptedStorage, key: &str) -> VerifyOutcome {
    match store.verify_one(key).await {
        Ok(ObjectCheck::Verified { key_id, .. }) => VerifyOutcome::Decrypted {
            key_id: Some(key_id),
        },
        Ok(ObjectCheck::Plaintext { .. }) => VerifyOutcome::Plaintext,
        Ok(ObjectCheck::Deleted) | Err(Error::NotFound { .. }) => VerifyOutcome::Deleted,
        Err(e @ Error::Unreachable { .. }) => VerifyOutcome::Unreachable(e),
        Err(e) => {
            let (class, reason) = store.classify_failure(key, e).await;
            VerifyOutcome::Failed { class, reason }
        }
    }
}
