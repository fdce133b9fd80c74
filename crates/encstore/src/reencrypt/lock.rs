//! The store-wide lock of whole-store runs ([`REENCRYPT_LOCK`], shared by
//! `reencrypt_all` and `rewrap_deks_all`): taking it (waiting or failing
//! fast) and releasing it.

use std::time::Duration;

use encstore_core::{Error, Lease};

use crate::encrypted::EncryptedStorage;
use crate::verify::UNREACHABLE_DRAIN;

use super::{ReencryptError, ReencryptEvent, ReencryptOptions};

/// The name of the store-wide lock that a re-encryption holds (and that
/// `encstore store rewrap` has always used): one run at a time per store,
/// whichever process runs it.
pub const REENCRYPT_LOCK: &str = "encstore-rewrap";

/// What to do when another run holds [`REENCRYPT_LOCK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LockWait {
    /// Wait for it (emitting [`ReencryptEvent::WaitingForLock`] first).
    #[default]
    Wait,
    /// Fail at once with [`ReencryptError::LockHeld`].
    FailFast,
}

impl EncryptedStorage {
    /// Takes the store-wide lock of whole-store runs ([`REENCRYPT_LOCK`],
    /// shared by `reencrypt_all` and `rewrap_deks_all`), waiting for it or
    /// failing fast as `options` say; returns the lease and its duration.
    pub(crate) async fn take_run_lock(
        &self,
        options: &ReencryptOptions,
    ) -> Result<(Lease, Duration), ReencryptError> {
        let backend = self.inner();
        let lease_time = backend.lease_duration();
        let lease = match backend.try_lock(REENCRYPT_LOCK).await {
            Ok(l) => l,
            Err(Error::LockHeld { .. }) if options.lock_wait == LockWait::FailFast => {
                return Err(ReencryptError::LockHeld { lease: lease_time });
            }
            Err(Error::LockHeld { .. }) => {
                options.emit(&ReencryptEvent::WaitingForLock {
                    lock: REENCRYPT_LOCK,
                    lease: lease_time,
                });
                let cancel = options.cancel.clone().unwrap_or_default();
                tokio::select! {
                    r = backend.lock(REENCRYPT_LOCK) => r.map_err(ReencryptError::Lock)?,
                    () = cancel.cancelled() => return Err(ReencryptError::Cancelled),
                }
            }
            Err(e) => return Err(ReencryptError::Lock(e)),
        };
        Ok((lease, lease_time))
    }

    /// Releases the lock [`take_run_lock`](Self::take_run_lock) took. When
    /// the run stopped because the backend is not answering, waits only
    /// briefly: the lock expires on its own.
    pub(crate) async fn release_run_lock(
        &self,
        lease: Lease,
        unreachable: bool,
    ) -> Result<(), Error> {
        let backend = self.inner();
        if unreachable {
            match tokio::time::timeout(UNREACHABLE_DRAIN, backend.unlock(lease)).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout {
                    backend: "store",
                    op: "unlock",
                }),
            }
        } else {
            backend.unlock(lease).await
        }
    }
}
