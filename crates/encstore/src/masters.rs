//! The master keys of a store's KMS envelope keys: how their `kek_uri`s
//! are opened, and the bounds on their calls.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use encstore_core::{Kek, KekError};
use encstore_tink::envelope::{EnvelopeError, EnvelopeOptions, KekResolver, KeysetAsyncAead};
use encstore_tink::primitives::KeyParams;
use encstore_tink::{KeyStatus, Keyset};
use futures_util::FutureExt;

use crate::keys::LoadError;
use crate::open::{KekOptions, MasterKeyRef, OpenKekError, open_kek_with};

/// The default [`KekResolver`] of a store: opens each `kek_uri` with
/// [`open_kek_with`](crate::open::open_kek_with) (`hcvault://`,
/// `aws-kms://`, `pkcs11:`), configured from the environment or the
/// given [`KekOptions`].
#[derive(Debug, Clone, Default)]
pub struct UriResolver {
    options: KekOptions,
}

impl UriResolver {
    /// Opens master keys configured from the environment.
    pub fn new() -> UriResolver {
        UriResolver::default()
    }

    /// Opens master keys with `options` (Vault or AWS KMS configured in
    /// code).
    pub fn with_options(options: KekOptions) -> UriResolver {
        UriResolver { options }
    }
}

#[async_trait]
impl KekResolver for UriResolver {
    async fn resolve(&self, kek_uri: &str) -> Result<Arc<dyn Kek>, KekError> {
        let master = MasterKeyRef::uri(kek_uri).map_err(KekError::invalid_uri)?;
        open_kek_with(&master, &self.options)
            .await
            .map_err(|e| match e {
                OpenKekError::Kek(e) => e,
                e @ OpenKekError::NotCompiled { .. } => KekError::invalid_uri(e),
                e => KekError::failed(e),
            })
    }
}

/// The master keys a [`ReloadableKeyset`](crate::ReloadableKeyset) has
/// opened for its envelope keys, and how it opens new ones.
pub(crate) struct MasterKeys {
    resolver: Arc<dyn KekResolver>,
    opened: Mutex<HashMap<String, Arc<dyn Kek>>>,
    options: EnvelopeOptions,
}

impl fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("MasterKeys")
            .field("opened", &opened.len())
            .field("options", &self.options)
            .finish()
    }
}

impl MasterKeys {
    pub(crate) fn new(resolver: Arc<dyn KekResolver>, options: EnvelopeOptions) -> MasterKeys {
        MasterKeys {
            resolver,
            opened: Mutex::new(HashMap::new()),
            options,
        }
    }

    /// The `kek_uri` of every ENABLED envelope key of `keyset`.
    fn uris(keyset: &Keyset) -> Vec<String> {
        keyset
            .info()
            .keys
            .into_iter()
            .filter(|k| k.status == KeyStatus::Enabled)
            .filter_map(|k| match k.params {
                Some(KeyParams::KmsEnvelope { kek_uri, .. }) => Some(kek_uri),
                _ => None,
            })
            .collect()
    }

    /// Opens the master key of every ENABLED envelope key of `keyset` not
    /// opened yet (the async part of loading a keyset).
    ///
    /// # Errors
    /// [`LoadError::Envelope`] naming the master key that could not be
    /// opened.
    pub(crate) async fn prepare(&self, keyset: &Keyset) -> Result<(), LoadError> {
        for uri in Self::uris(keyset) {
            let known = self
                .opened
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&uri);
            if known {
                continue;
            }
            let key_id = keyset
                .info()
                .keys
                .iter()
                .find(|k| {
                    matches!(&k.params, Some(KeyParams::KmsEnvelope { kek_uri, .. }) if *kek_uri == uri)
                })
                .map_or(0, |k| k.key_id);
            let kek = self.resolver.resolve(&uri).await.map_err(|error| {
                LoadError::Envelope(EnvelopeError::Resolve {
                    key_id,
                    kek_uri: crate::open::display_uri(&uri),
                    error,
                })
            })?;
            self.opened
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(uri, kek);
        }
        Ok(())
    }

    /// The async AEAD of `keyset` over the master keys opened so far
    /// (synchronous: [`MasterKeys::prepare`] did the I/O); `None` when the
    /// keyset has no ENABLED envelope key.
    ///
    /// # Errors
    /// [`LoadError::Envelope`] when a master key was not opened
    /// ([`MasterKeys::prepare`] was not called for this keyset).
    pub(crate) fn build(&self, keyset: &Keyset) -> Result<Option<KeysetAsyncAead>, LoadError> {
        if Self::uris(keyset).is_empty() {
            return Ok(None);
        }
        let opened = self
            .opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // A map resolver answers at once: the future is ready when first
        // polled.
        match KeysetAsyncAead::with_options(keyset, &opened, &self.options).now_or_never() {
            Some(r) => r.map(Some).map_err(LoadError::Envelope),
            None => unreachable!("a map resolver never waits"),
        }
    }
}
