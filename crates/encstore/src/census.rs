//! The key census: how many objects are under each key ID.

use std::collections::BTreeMap;
use std::sync::Arc;

use encstore_core::{Error, Result, Storage};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::encrypted::EncryptedStorage;
use crate::keys::HeadClass;

/// How many objects are under each key; what `encstore store status` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Census {
    /// Objects counted.
    pub total: u64,
    /// Objects by the decimal key ID in their Tink prefix, for keys of the
    /// keyset (whatever their status).
    pub by_key_id: BTreeMap<u32, u64>,
    /// The keyset's primary key ID.
    pub primary_key_id: u32,
    /// Objects with no Tink prefix that no RAW key of the keyset decrypts:
    /// plaintext written before encryption was turned on.
    pub plaintext: u64,
    /// Objects whose prefix names a key ID that the keyset does not have.
    pub unknown_key: u64,
    /// Objects with no prefix that a RAW key of the keyset decrypts.
    pub raw: u64,
}

impl Census {
    /// Objects not under the primary key (what a rewrap would touch).
    pub fn not_under_primary(&self) -> u64 {
        self.total
            - self
                .by_key_id
                .get(&self.primary_key_id)
                .copied()
                .unwrap_or(0)
    }
}

/// Head reads in flight at once.
const CENSUS_CONCURRENCY: usize = 32;

impl EncryptedStorage {
    /// Counts the objects under `prefix` (`""` for all) by key ID. It reads
    /// only the first five bytes of each object (a range read where the
    /// backend has one), except for prefix-less objects when the keyset has
    /// RAW keys: those are loaded and tried, to tell RAW from plaintext.
    ///
    /// # Errors
    /// Listing or read failures of the backend. Objects deleted during the
    /// scan are skipped.
    pub async fn census(&self, prefix: &str) -> Result<Census> {
        let snap = self.keyset().snapshot();
        let keys = self.inner().list(prefix, true).await?;
        let mut census = Census {
            primary_key_id: snap.primary_key_id(),
            ..Census::default()
        };
        let inner: Arc<dyn Storage> = Arc::clone(self.inner());
        let mut set: JoinSet<Result<Option<(String, HeadClass)>>> = JoinSet::new();
        let mut iter = keys.into_iter();
        loop {
            while set.len() < CENSUS_CONCURRENCY {
                let Some(key) = iter.next() else { break };
                let inner = Arc::clone(&inner);
                let snap = Arc::clone(&snap);
                set.spawn(async move {
                    match inner.load_head(&key, 5).await {
                        Ok(head) => {
                            let class = snap.classify(&head);
                            Ok(Some((key, class)))
                        }
                        Err(Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                });
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            let item = joined.map_err(|e| Error::backend("census", "join", e.to_string()))??;
            let Some((key, class)) = item else { continue };
            census.total += 1;
            match class {
                HeadClass::Known { key_id, .. } => {
                    *census.by_key_id.entry(key_id).or_default() += 1
                }
                HeadClass::UnknownId { .. } => census.unknown_key += 1,
                HeadClass::NoPrefix if snap.has_raw_keys() => match self.inner().load(&key).await {
                    Ok(ct) => {
                        let ad = self.associated_data(&key);
                        if snap.aead_decrypts(&ct, &ad) {
                            census.raw += 1;
                        } else {
                            census.plaintext += 1;
                        }
                    }
                    Err(Error::NotFound { .. }) => census.total -= 1,
                    Err(e) => return Err(e),
                },
                HeadClass::NoPrefix => census.plaintext += 1,
            }
        }
        Ok(census)
    }
}
