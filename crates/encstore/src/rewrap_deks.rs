//! [`EncryptedStorage::rewrap_deks_all`]: the master-key-level rewrap.
//! After a master key rotates (`bao write -f transit/keys/NAME/rotate`),
//! the encrypted DEK of every envelope object is re-wrapped under the
//! newest master-key version, without decrypting or rewriting the payload
//! (`encstore store rewrap-deks`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use encstore_core::{Error, Lease, MasterKeyVersion, WriteCondition, validate_key};
use encstore_tink::KeyStatus;
use encstore_tink::envelope::MAX_HEAD_LEN;

use crate::concurrency::{self, Flow, Step};
use crate::encrypted::{EncryptedStorage, envelope_error};
use crate::keys::KeysetSnapshot;
use crate::reencrypt::{ReencryptError, ReencryptEvent, ReencryptOptions, ReencryptOutcome};
use crate::verify::{
    FailureClass, FailureReason, ObjectFailure, StopReason, UNREACHABLE_DRAIN, end_of_run,
};

/// How many times one object's DEK rewrap is retried when a writer changes
/// the object between its read and its conditional write.
const ATTEMPTS: usize = 8;

/// What re-wrapping one object's DEK did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DekRewrap {
    /// Its encrypted DEK was re-wrapped (the payload bytes are unchanged)
    /// and written back with a conditional write.
    Rewrapped {
        /// The envelope key.
        key_id: u32,
        /// The master-key version before.
        before: Option<MasterKeyVersion>,
        /// The master-key version after.
        after: Option<MasterKeyVersion>,
    },
    /// Its DEK is already under the newest master-key version; nothing
    /// was written.
    AlreadyCurrent,
    /// Not under a KMS envelope key (an ordinary key, a large object,
    /// plaintext): nothing to re-wrap; nothing was written.
    NotEnvelope,
    /// Deleted meanwhile; nothing was written.
    Deleted,
}

/// The newest master-key version of each ENABLED envelope key of a
/// snapshot, asked of the KMS once at the start of a run.
#[derive(Debug, Clone, Default)]
pub struct NewestVersions {
    by_key_id: BTreeMap<u32, Option<MasterKeyVersion>>,
}

impl NewestVersions {
    /// Asks the KMS of every ENABLED envelope key of the store's keyset
    /// for its master key's newest version (one wrap of a throwaway byte
    /// each; nothing is stored).
    ///
    /// # Errors
    /// The KMS's error, as a storage error.
    pub async fn fetch(store: &EncryptedStorage) -> Result<NewestVersions, Error> {
        let snap = store.keyset().snapshot();
        let mut by_key_id = BTreeMap::new();
        let Some(env) = snap.envelope_aead() else {
            return Ok(NewestVersions { by_key_id });
        };
        for k in &snap.info().keys {
            if k.status != KeyStatus::Enabled
                || !matches!(
                    k.params,
                    Some(encstore_tink::primitives::KeyParams::KmsEnvelope { .. })
                )
            {
                continue;
            }
            let newest = env
                .newest_master_version(k.key_id)
                .await
                .map_err(|e| envelope_error("(master key probe)", e, "wrap a probe"))?;
            by_key_id.insert(k.key_id, newest);
        }
        Ok(NewestVersions { by_key_id })
    }

    /// The newest version of envelope key `key_id`'s master key.
    pub fn get(&self, key_id: u32) -> Option<&MasterKeyVersion> {
        self.by_key_id.get(&key_id).and_then(Option::as_ref)
    }

    /// Every master key and its newest version (`None`: the KMS names no
    /// versions).
    pub fn master_keys(&self) -> BTreeMap<String, Option<u32>> {
        self.by_key_id
            .values()
            .flatten()
            .map(|m| (m.key.clone(), m.version))
            .collect()
    }

    /// Whether a DEK wrapped under `current` needs a re-wrap for key
    /// `key_id`: when either version is unknown (a KMS whose ciphertexts
    /// name no version, such as AWS KMS: re-wrapped every run), or it is
    /// older than the newest.
    fn needs_rewrap(&self, key_id: u32, current: Option<&MasterKeyVersion>) -> bool {
        match (self.get(key_id), current) {
            (Some(newest), Some(cur)) => match (newest.version, cur.version) {
                (Some(n), Some(c)) => newest.key != cur.key || c < n,
                _ => true,
            },
            _ => true,
        }
    }
}

/// What [`EncryptedStorage::rewrap_deks_all`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RewrapDeksSummary {
    /// Objects listed.
    pub objects: u64,
    /// Objects whose DEK was re-wrapped.
    pub rewrapped: u64,
    /// Envelope objects already under the newest master-key version.
    pub already_current: u64,
    /// Objects not under a KMS envelope key (left alone).
    pub not_envelope: u64,
    /// Objects deleted while the run went on.
    pub deleted: u64,
    /// Every object left untouched because it failed, sorted by key.
    pub failures: Vec<ObjectFailure>,
    /// The newest version of each master key at the start of the run.
    pub newest: BTreeMap<String, Option<u32>>,
    /// Time from the start of the run (lock held, objects listed).
    pub elapsed: Duration,
    /// Why the run stopped early, if it did.
    pub stopped: Option<StopReason>,
    /// The first unreachable-backend (or KMS) error, when it stopped the
    /// run.
    pub unreachable: Option<Error>,
    /// Objects in flight that were abandoned uncounted: each is either
    /// re-wrapped or untouched.
    pub abandoned: usize,
    /// Releasing the lock failed (it expires on its own after
    /// [`lease`](Self::lease)).
    pub unlock_error: Option<Error>,
    /// The backend's lock lease.
    pub lease: Duration,
}

impl EncryptedStorage {
    /// Re-wraps the encrypted DEK of the envelope object at `key` under its
    /// master key's newest version (`newest`, from
    /// [`NewestVersions::fetch`]): one KMS call (Vault's transit
    /// `rewrap`, where the DEK never leaves the server; unwrap then wrap
    /// for other KMSs), leaving the output prefix and the DEK ciphertext
    /// (the payload) byte for byte as they were. The new object is written
    /// with a conditional write on the version read: a value a writer
    /// stored meanwhile is never overwritten (the rewrap is retried on
    /// it).
    ///
    /// # Errors
    /// [`Error::KeyNotEnabled`] for an object under an envelope key that is
    /// not ENABLED; [`Error::Authentication`] when the master key does not
    /// unwrap its DEK; KMS errors ([`Error::Unreachable`] for an
    /// unreachable or silent KMS); backend errors; and
    /// [`Error::PreconditionFailed`] if the object kept changing.
    pub async fn rewrap_dek_one(
        &self,
        key: &str,
        newest: &NewestVersions,
    ) -> Result<DekRewrap, Error> {
        validate_key(key)?;
        for _ in 0..ATTEMPTS {
            let snap = self.keyset().snapshot();
            if snap.envelope_aead().is_none() {
                return Ok(DekRewrap::NotEnvelope);
            }
            // The head says whether it is an envelope object, and under
            // which master-key version, without reading it whole.
            let head = match self.inner().load_head(key, MAX_HEAD_LEN).await {
                Ok(h) => h,
                Err(Error::NotFound { .. }) => return Ok(DekRewrap::Deleted),
                Err(e) => return Err(e),
            };
            if let Some(done) = self.dek_state(&snap, key, &head, newest)? {
                return Ok(done);
            }
            let loaded = match self.inner().load_versioned(key).await {
                Ok(v) => v,
                Err(Error::NotFound { .. }) => return Ok(DekRewrap::Deleted),
                Err(e) => return Err(e),
            };
            if let Some(done) = self.dek_state(&snap, key, &loaded.value, newest)? {
                return Ok(done);
            }
            let Some(env) = snap.envelope_aead() else {
                return Ok(DekRewrap::NotEnvelope);
            };
            let r = env
                .rewrap(&loaded.value)
                .await
                .map_err(|e| self.fail(envelope_error(key, e, "re-wrap a data key")))?;
            match self
                .inner()
                .store_if(
                    key,
                    Bytes::from(r.ciphertext),
                    &WriteCondition::Matches(loaded.version),
                )
                .await
            {
                Ok(_) => {
                    tracing::debug!(key, key_id = r.key_id, before = ?r.before, after = ?r.after, "re-wrapped a DEK");
                    return Ok(DekRewrap::Rewrapped {
                        key_id: r.key_id,
                        before: r.before,
                        after: r.after,
                    });
                }
                Err(Error::PreconditionFailed { .. }) => {
                    tracing::debug!(key, "object changed during DEK rewrap; retrying");
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::PreconditionFailed {
            key: key.to_owned(),
        })
    }

    /// `Some` when the object whose head (or whole bytes) is `bytes` needs
    /// no DEK rewrap; `None` when it does.
    fn dek_state(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        bytes: &[u8],
        newest: &NewestVersions,
    ) -> Result<Option<DekRewrap>, Error> {
        let Some(info) = snap.envelope_info(bytes) else {
            return Ok(Some(DekRewrap::NotEnvelope));
        };
        if info.status != KeyStatus::Enabled {
            return Err(self.fail(Error::KeyNotEnabled {
                key: key.to_owned(),
                key_id: info.key_id,
                status: info.status.as_str(),
            }));
        }
        if !newest.needs_rewrap(info.key_id, info.master.as_ref()) {
            return Ok(Some(DekRewrap::AlreadyCurrent));
        }
        Ok(None)
    }

    /// Re-wraps the DEK of every envelope object under `prefix` (`""` for
    /// all) whose master-key version is older than the newest, store-wide
    /// and safely, as [`reencrypt_all`](Self::reencrypt_all) does for
    /// payloads:
    ///
    /// - it holds the same store-wide lock [`REENCRYPT_LOCK`](crate::REENCRYPT_LOCK) for the
    ///   whole run (so it never runs beside `store rewrap`), waiting for
    ///   another run or failing fast, and stops if the lease is lost;
    /// - it asks each master key for its newest version once, then handles
    ///   at most `options.concurrency` objects at once with
    ///   [`rewrap_dek_one`](Self::rewrap_dek_one) (a conditional write per
    ///   object; a value written meanwhile is never overwritten); the KMS
    ///   calls are bounded by the keyset's
    ///   [`EnvelopeOptions`](encstore_tink::envelope::EnvelopeOptions);
    /// - objects under ordinary keys, large objects and DEKs already under
    ///   the newest version are left alone (a rerun after a stop skips what
    ///   is done: it is resumable, even after the process was killed);
    /// - an object that fails is left untouched and reported; a KMS or
    ///   backend that stops answering stops the run with true counts.
    ///
    /// Events go to `options.on_event`: [`ReencryptOutcome::Reencrypted`]
    /// means the object's DEK was re-wrapped, and
    /// [`ReencryptOutcome::AlreadyCurrent`] that it needed nothing (already
    /// current, or not an envelope object).
    ///
    /// # Errors
    /// [`ReencryptError`]: the run did not start, and nothing was changed
    /// ([`ReencryptError::Census`] when a master key could not tell its
    /// newest version).
    pub async fn rewrap_deks_all(
        &self,
        prefix: &str,
        options: &ReencryptOptions,
    ) -> Result<RewrapDeksSummary, ReencryptError> {
        let (lease, lease_time) = self.take_run_lock(options).await?;
        let result = self.rewrap_deks_locked(prefix, options, &lease).await;
        let unreachable = matches!(&result, Ok(s) if s.stopped == Some(StopReason::Unreachable));
        let unlocked = self.release_run_lock(lease, unreachable).await;
        let mut summary = result?;
        summary.unlock_error = unlocked.err();
        summary.lease = lease_time;
        Ok(summary)
    }

    async fn rewrap_deks_locked(
        &self,
        prefix: &str,
        options: &ReencryptOptions,
        lease: &Lease,
    ) -> Result<RewrapDeksSummary, ReencryptError> {
        let newest = Arc::new(
            NewestVersions::fetch(self)
                .await
                .map_err(ReencryptError::Census)?,
        );
        let keys = self
            .inner()
            .list(prefix, true)
            .await
            .map_err(ReencryptError::List)?;
        let mut s = RewrapDeksSummary {
            objects: keys.len() as u64,
            newest: newest.master_keys(),
            ..RewrapDeksSummary::default()
        };
        options.emit(&ReencryptEvent::Started { total: s.objects });
        let start = Instant::now();
        let control = options.control(Some(lease));
        let end = concurrency::run(
            keys,
            &control,
            |key| {
                let store = self.clone();
                let newest = Arc::clone(&newest);
                async move {
                    let r = store.rewrap_dek_one(&key, &newest).await;
                    (key, r)
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
                Step::Done((key, r)) => {
                    let outcome = match r {
                        Ok(DekRewrap::Rewrapped { .. }) => {
                            s.rewrapped += 1;
                            ReencryptOutcome::Reencrypted
                        }
                        Ok(DekRewrap::AlreadyCurrent) => {
                            s.already_current += 1;
                            ReencryptOutcome::AlreadyCurrent
                        }
                        Ok(DekRewrap::NotEnvelope) => {
                            s.not_envelope += 1;
                            ReencryptOutcome::AlreadyCurrent
                        }
                        Ok(DekRewrap::Deleted) => {
                            s.deleted += 1;
                            ReencryptOutcome::Deleted
                        }
                        Err(e @ Error::Unreachable { .. }) => ReencryptOutcome::Unreachable(e),
                        Err(e) => {
                            let class = match &e {
                                Error::KeyNotEnabled { key_id, .. } => {
                                    FailureClass::KeyNotEnabled(*key_id)
                                }
                                Error::UnknownKeyId { key_id, .. } => {
                                    FailureClass::UnknownKeyId(*key_id)
                                }
                                _ => FailureClass::Other,
                            };
                            ReencryptOutcome::Failed {
                                class,
                                reason: FailureReason::Error(e),
                            }
                        }
                    };
                    let event = ReencryptEvent::Object { key, outcome };
                    options.emit(&event);
                    let ReencryptEvent::Object { key, outcome } = event else {
                        return Flow::Continue;
                    };
                    match outcome {
                        ReencryptOutcome::Failed { class, reason } => {
                            s.failures.push(ObjectFailure { key, class, reason });
                        }
                        ReencryptOutcome::Unreachable(e) => {
                            s.unreachable.get_or_insert(e);
                            return Flow::Stop {
                                drain: UNREACHABLE_DRAIN,
                            };
                        }
                        _ => {}
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
