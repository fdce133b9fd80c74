//! The store check before retiring a key (disabling, destroying or
//! deleting it): [`retirement_check`].

use std::sync::Arc;

use encstore_core::{Error, Storage};
use encstore_tink::Keyset;

use crate::encrypted::EncryptedStorage;
use crate::keys::LoadError;
use crate::policy::Policy;
use crate::reload::ReloadableKeyset;

/// What [`retirement_check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retirement {
    /// The keyset has no key with this ID: there is nothing to check (the
    /// keyset operation itself reports the unknown key).
    NotInKeyset,
    /// No object is under the key: it can be retired.
    Clear {
        /// Objects checked (the whole store).
        checked: u64,
    },
    /// Objects are still under the key: retiring it makes them unreadable.
    InUse {
        /// Objects under the key.
        objects: u64,
        /// Objects checked (the whole store).
        checked: u64,
    },
}

/// Why [`retirement_check`] could not check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetireCheckError {
    /// The keyset cannot read the store (no usable primary, ...).
    #[error("cannot check the store with this keyset: {0}")]
    Keyset(LoadError),
    /// The census failed (listing or reading the store).
    #[error("cannot take the census: {0}")]
    Census(Error),
}

/// Checks whether objects in `store` are still under key `key_id` of
/// `keyset` (the keyset as it is *before* the key is retired), by a census
/// of the whole store: TINK keys by their prefix, RAW keys by trial
/// decryption of the prefix-less objects, in any status that keeps key
/// material. Every key type Tink supports is accepted ([`Policy::tink`]):
/// the check reads, it never writes.
///
/// # Errors
/// [`RetireCheckError`].
pub async fn retirement_check(
    store: Arc<dyn Storage>,
    keyset: &Keyset,
    key_id: u32,
) -> Result<Retirement, RetireCheckError> {
    if keyset.info().keys.iter().all(|k| k.key_id != key_id) {
        return Ok(Retirement::NotInKeyset);
    }
    let keys = ReloadableKeyset::new(keyset, Policy::tink()).map_err(RetireCheckError::Keyset)?;
    EncryptedStorage::new(store, Arc::new(keys))
        .retirement_check(key_id)
        .await
}

impl EncryptedStorage {
    /// [`retirement_check`] with this store's keyset.
    ///
    /// # Errors
    /// [`RetireCheckError::Census`].
    pub async fn retirement_check(&self, key_id: u32) -> Result<Retirement, RetireCheckError> {
        let info = self.keyset().info();
        if info.keys.iter().all(|k| k.key_id != key_id) {
            return Ok(Retirement::NotInKeyset);
        }
        let found = self
            .objects_under(key_id)
            .await
            .map_err(RetireCheckError::Census)?;
        Ok(if found.objects == 0 {
            Retirement::Clear {
                checked: found.checked,
            }
        } else {
            Retirement::InUse {
                objects: found.objects,
                checked: found.checked,
            }
        })
    }
}
