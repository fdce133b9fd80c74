//! [`Pkcs11Kek`]: an AES-256 key inside a PKCS#11 token, used as a KEK.
//!
//! The pieces live in sibling modules: `token` (loading the module and
//! choosing the token), `pin` (reading the PIN and logging in), `key`
//! (finding and generating the key object), `session` (the logged-in
//! session, reopened when the token drops it), `gcm` (wrapping and
//! unwrapping) and `ck` (naming PKCS#11 return values in messages).

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use encstore_core::{Kek, KekError};
use zeroize::Zeroizing;

use crate::error::Pkcs11Error;
use crate::key::generate_key;
use crate::session::Inner;
use crate::token::{Conn, connect};
use crate::uri::Pkcs11Uri;

/// A key-encryption key that lives in a PKCS#11 token (an HSM, or SoftHSM2).
///
/// [`Kek::wrap`] runs `CKM_AES_GCM` inside the token and returns
/// `IV (12 bytes) || ciphertext || tag (16 bytes)`; the IV comes from the
/// token's random number generator (`C_GenerateRandom`), or from the
/// operating system's CSPRNG when the token has none. If the token replaces
/// the IV with one of its own choosing (as FIPS-mode HSMs do), the one it
/// used is what is written. [`Kek::unwrap`] is the inverse; a wrong key,
/// wrong associated data or any tampering gives [`KekError::Authentication`].
/// The key bytes never leave the token.
///
/// The KEK keeps one logged-in read-only session behind a mutex, and reopens
/// it (logging in again with the PIN, which it keeps in zeroizing memory)
/// if the token closes it or logs the user out. PKCS#11 calls block, so the
/// async methods run them on tokio's blocking pool.
///
/// `Debug` shows the token, key and module, never the PIN:
/// `Pkcs11Kek { token: "encstore", key: "kek-2026", module: "/usr/lib/softhsm/libsofthsm2.so" }`.
#[derive(Clone)]
pub struct Pkcs11Kek {
    /// Shared with the blocking tasks that run the PKCS#11 calls.
    inner: Arc<Inner>,
}

impl fmt::Debug for Pkcs11Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Kek")
            .field("token", &self.inner.token_label)
            .field("key", &DisplayAsDebug(&self.inner.uri.key_description()))
            .field("module", &self.inner.module_path)
            .finish()
    }
}

struct DisplayAsDebug<'a>(&'a str);
impl fmt::Debug for DisplayAsDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Pkcs11Kek {
    /// Opens the key that `uri` names: loads the module, finds the token,
    /// logs in as the user with the PIN from `pin-source` (or
    /// `ENCSTORE_PKCS11_PIN_FILE`), and checks that exactly one object
    /// matches `object=`/`id=` and that it is an AES secret key allowed to
    /// encrypt and decrypt.
    ///
    /// This blocks (module loading, login); from async code call it inside
    /// `tokio::task::spawn_blocking`. The error converts into
    /// [`KekError`] with `?`.
    pub fn open(uri: &str) -> Result<Self, Pkcs11Error> {
        Self::open_with_env(uri, &|k| std::env::var(k).ok())
    }

    /// Creates a new AES-256 key in the token, with the URI's `object=` as
    /// its label (and `id=` as its `CKA_ID` if given), then opens it.
    ///
    /// The key is generated in the token (`CKM_AES_KEY_GEN`) as a private,
    /// sensitive, non-extractable token object allowed to encrypt and decrypt
    /// only. Refuses with [`Pkcs11Error::KeyExists`] if any object already
    /// has that label (or id). Blocks, like [`Pkcs11Kek::open`].
    pub fn create_master_key(uri: &str) -> Result<Self, Pkcs11Error> {
        let env = |k: &str| std::env::var(k).ok();
        let parsed = Pkcs11Uri::parse(uri)?;
        if parsed.object.is_none() {
            return Err(Pkcs11Error::InvalidUri(
                "creating a master key needs object=LABEL in the URI".to_owned(),
            ));
        }
        let conn = connect(&parsed, &env)?;
        generate_key(&conn, &parsed)?;
        Self::finish_open(parsed, conn)
    }

    /// [`Pkcs11Kek::open`] with an explicit environment lookup (for tests).
    pub(crate) fn open_with_env(
        uri: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Pkcs11Error> {
        let parsed = Pkcs11Uri::parse(uri)?;
        let conn = connect(&parsed, env)?;
        Self::finish_open(parsed, conn)
    }

    fn finish_open(uri: Pkcs11Uri, conn: Conn) -> Result<Self, Pkcs11Error> {
        let inner = Inner {
            uri,
            module_path: conn.module_path,
            ctx: conn.ctx,
            slot: conn.slot,
            token_label: conn.token_label,
            pin: conn.pin,
            token_rng: conn.token_rng,
            live: Mutex::new(None),
        };
        let live = inner.connect_live()?;
        *inner.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(live);
        tracing::debug!(token = %inner.token_label, key = %inner.uri.key_description(), "opened PKCS#11 KEK");
        Ok(Pkcs11Kek {
            inner: Arc::new(inner),
        })
    }

    /// The URI this KEK was opened from (it never contains a PIN).
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.inner.uri
    }

    /// Blocking [`Kek::wrap`], typed error.
    pub fn wrap_blocking(&self, plaintext: &[u8], ad: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        self.inner.wrap(plaintext, ad)
    }

    /// Blocking [`Kek::unwrap`], typed error.
    pub fn unwrap_blocking(&self, ciphertext: &[u8], ad: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        self.inner.unwrap(ciphertext, ad)
    }
}

#[async_trait]
impl Kek for Pkcs11Kek {
    async fn wrap(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        let inner = Arc::clone(&self.inner);
        let pt = Zeroizing::new(plaintext.to_vec());
        let ad = associated_data.to_vec();
        tokio::task::spawn_blocking(move || inner.wrap(&pt, &ad))
            .await
            .map_err(|e| join_error(&self.inner, "wrap", &e))?
            .map_err(KekError::from)
    }

    async fn unwrap(&self, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        let inner = Arc::clone(&self.inner);
        let ct = ciphertext.to_vec();
        let ad = associated_data.to_vec();
        tokio::task::spawn_blocking(move || inner.unwrap(&ct, &ad))
            .await
            .map_err(|e| join_error(&self.inner, "unwrap", &e))?
            .map_err(KekError::from)
    }
}

/// The blocking task running a PKCS#11 call did not finish (it panicked,
/// or the runtime is shutting down): an operation failure on this KEK.
fn join_error(inner: &Inner, operation: &'static str, e: &tokio::task::JoinError) -> KekError {
    KekError::from(inner.op_error(
        operation,
        format!("the PKCS#11 worker task did not finish ({e})"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs11_kek_is_send_and_sync() {
        fn assert<T: Send + Sync + 'static>() {}
        assert::<Pkcs11Kek>();
        assert::<Pkcs11Error>();
    }

    #[test]
    fn missing_module_is_reported() {
        let e = Pkcs11Kek::open_with_env(
            "pkcs11:token=t;object=k?module-path=/nonexistent/libnope.so&pin-source=env:X",
            &|_| None,
        )
        .unwrap_err();
        assert!(matches!(e, Pkcs11Error::ModuleNotFound { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "PKCS#11 module /nonexistent/libnope.so not found"
        );
        let k: KekError = e.into();
        assert!(matches!(k, KekError::Unavailable(_)));
    }

    #[test]
    fn a_file_that_is_not_a_module_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake.so");
        std::fs::write(&fake, b"not an ELF file").unwrap();
        let uri = format!(
            "pkcs11:token=t;object=k?module-path={}&pin-source=env:X",
            fake.display()
        );
        let e = Pkcs11Kek::open_with_env(&uri, &|_| None).unwrap_err();
        assert!(matches!(e, Pkcs11Error::ModuleLoad { .. }), "{e:?}");
        assert!(!e.to_string().contains('\n'));
    }
}
