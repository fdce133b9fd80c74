//! The dry run of a re-encryption: [`EncryptedStorage::reencrypt_plan`]
//! and its [`ReencryptPlan`].

use std::collections::BTreeMap;

use encstore_core::Error;

use crate::census::Census;
use crate::encrypted::EncryptedStorage;

/// What a re-encryption would do: [`EncryptedStorage::reencrypt_plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReencryptPlan {
    /// The census it is computed from.
    pub census: Census,
    /// Objects under keys other than the primary, by key ID.
    pub by_key_id: BTreeMap<u32, u64>,
    /// Objects that would be re-encrypted.
    pub would_reencrypt: u64,
    /// Objects taken as plaintext and encrypted (migration mode).
    pub plaintext_reencrypted: u64,
    /// Objects that would fail.
    pub would_fail: u64,
    /// Migration mode takes for plaintext the objects whose first bytes
    /// name a key ID the keyset does not have (the keyset holds no RAW
    /// key).
    pub migrating: bool,
    /// Migration mode would refuse to run
    /// ([`ReencryptError::UnsafeMigration`](super::ReencryptError::UnsafeMigration)).
    pub allow_plaintext_refused: bool,
}

impl ReencryptPlan {
    /// Objects already under the primary key of their layout: the AEAD
    /// primary for small objects, the streaming primary for large ones
    /// (what a re-encryption leaves alone; [`Census::under_primary`]).
    pub fn already_current(&self) -> u64 {
        self.census.under_primary()
    }
}

impl EncryptedStorage {
    /// The dry run of [`reencrypt_all`](Self::reencrypt_all): what it would
    /// do to the objects under `prefix`, from a census. Nothing is written
    /// and no lock is taken.
    ///
    /// # Errors
    /// As [`EncryptedStorage::census`].
    pub async fn reencrypt_plan(&self, prefix: &str) -> Result<ReencryptPlan, Error> {
        let census = self.census(prefix).await?;
        let allow_plaintext = self.allows_plaintext();
        let holds_raw = self.keyset().snapshot().holds_raw_keys();
        let primary = census.primary_key_id;
        // Objects under either primary (the AEAD keyset's, and the streaming
        // keyset's for large objects) are current.
        let streaming_primary = census.streaming_primary_key_id;
        let by_key_id: BTreeMap<u32, u64> = census
            .by_key_id
            .iter()
            .filter(|(id, _)| **id != primary && Some(**id) != streaming_primary)
            .map(|(id, n)| (*id, *n))
            .collect();
        // Migration mode takes for plaintext the prefix-less objects, and
        // those whose first bytes name a key ID the keyset does not have
        // (plaintext may start with 0x00 or 0x01), but only while the
        // keyset holds no RAW key (the census then counts no prefix-less
        // object as plaintext).
        let migrating = allow_plaintext && !holds_raw;
        let plaintext_reencrypted = if migrating {
            census.plaintext + census.unknown_key
        } else if allow_plaintext {
            census.plaintext
        } else {
            0
        };
        let others: u64 = by_key_id.values().sum();
        let would_reencrypt = others + plaintext_reencrypted;
        let would_fail = census.total - census.under_primary() - others - plaintext_reencrypted;
        let allow_plaintext_refused =
            allow_plaintext && holds_raw && census.prefix_less_unattributed > 0;
        Ok(ReencryptPlan {
            census,
            by_key_id,
            would_reencrypt,
            plaintext_reencrypted,
            would_fail,
            migrating,
            allow_plaintext_refused,
        })
    }
}
