//! The KEK's state: the loaded module, the token, the PIN, and one
//! logged-in session that is reopened when the token drops it.

use std::path::PathBuf;
use std::sync::Mutex;

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::ck::{ck_name, explain};
use crate::error::Pkcs11Error;
use crate::key::find_key;
use crate::pin::login;
use crate::uri::Pkcs11Uri;

/// Shared by a [`Pkcs11Kek`](crate::Pkcs11Kek) and the blocking tasks that
/// run its PKCS#11 calls.
pub(crate) struct Inner {
    /// The parsed URI: which token and key, for re-finding after a reconnect.
    pub(crate) uri: Pkcs11Uri,
    /// What was loaded, for Debug and messages.
    pub(crate) module_path: PathBuf,
    /// The loaded, initialised module; shared process-wide per module path.
    pub(crate) ctx: Pkcs11,
    /// The token's slot.
    pub(crate) slot: Slot,
    /// The token's label, for messages.
    pub(crate) token_label: String,
    /// The user PIN, kept (zeroized on drop) so the KEK can log in again.
    pub(crate) pin: AuthPin,
    /// Whether the token has its own RNG (`CKF_RNG`) to draw IVs from.
    pub(crate) token_rng: bool,
    /// The logged-in session and the key handle valid in it; `None` after a
    /// failure, so the next operation reconnects.
    pub(crate) live: Mutex<Option<Live>>,
}

/// A logged-in session and the key's handle in it.
pub(crate) struct Live {
    pub(crate) session: Session,
    pub(crate) key: ObjectHandle,
}

impl Inner {
    /// Runs `f` on the logged-in session, reconnecting once if the token
    /// closed the session, logged the user out or invalidated the handle.
    pub(crate) fn with_live<T>(
        &self,
        operation: &'static str,
        f: impl Fn(&Session, ObjectHandle) -> cryptoki::error::Result<T>,
    ) -> Result<T, Pkcs11Error> {
        let mut guard = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut retried = false;
        loop {
            if guard.is_none() {
                // Only after a failure: the first session is made by open().
                match self.connect_live() {
                    Ok(live) => *guard = Some(live),
                    Err(Pkcs11Error::Token {
                        operation: step,
                        rv,
                        ..
                    }) => {
                        return Err(self.op_error(
                            operation,
                            format!("reconnecting to the token, {step} failed ({rv})"),
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(live) = guard.as_ref() else {
                continue;
            };
            match f(&live.session, live.key) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let rv = match &e {
                        CkError::Pkcs11(rv, _) => Some(*rv),
                        _ => None,
                    };
                    if operation == "unwrap"
                        && matches!(
                            rv,
                            Some(RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange)
                        )
                    {
                        return Err(Pkcs11Error::Authentication);
                    }
                    let reconnectable = matches!(
                        rv,
                        Some(
                            RvError::SessionHandleInvalid
                                | RvError::SessionClosed
                                | RvError::UserNotLoggedIn
                                | RvError::ObjectHandleInvalid
                                | RvError::KeyHandleInvalid
                        )
                    );
                    // Whatever happened, do not reuse this session.
                    *guard = None;
                    if reconnectable && !retried {
                        retried = true;
                        tracing::warn!(token = %self.token_label, %operation, error = %ck_name(&e), "PKCS#11 session lost; reconnecting");
                        continue;
                    }
                    return Err(self.op_error(operation, explain(&e)));
                }
            }
        }
    }

    pub(crate) fn op_error(&self, operation: &'static str, reason: String) -> Pkcs11Error {
        Pkcs11Error::Operation {
            operation,
            token: format!("{:?}", self.token_label),
            key: self.uri.key_description(),
            reason,
        }
    }

    /// Opens a session, logs in and finds the key.
    pub(crate) fn connect_live(&self) -> Result<Live, Pkcs11Error> {
        let token = format!("{:?}", self.token_label);
        let session = self
            .ctx
            .open_ro_session(self.slot)
            .map_err(|e| Pkcs11Error::Token {
                token: token.clone(),
                operation: "opening a session",
                rv: ck_name(&e),
            })?;
        login(&session, &self.pin, &token)?;
        let key = find_key(&session, &self.uri, &token)?;
        Ok(Live { session, key })
    }
}
