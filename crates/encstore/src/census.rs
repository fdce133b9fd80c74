//! The key census: how many objects are under each key ID, RAW keys
//! included, and the store check behind retiring a key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use encstore_core::{Error, Result};
use serde::Serialize;

use crate::concurrency::{self, Control, Flow, Step};
use crate::encrypted::{EncryptedStorage, off_the_runtime};
use crate::keys::{KeysetSnapshot, ObjectClass};
use encstore_tink::OutputPrefix;
use encstore_tink::envelope::MAX_HEAD_LEN;

/// How many objects are under each key; what `encstore store status` prints.
///
/// Every object is counted once, in exactly one of `by_key_id`, `plaintext`,
/// `unknown_key` and `prefix_less_unattributed` (`raw` and `large` are
/// parts of `by_key_id`). Keys of the AEAD keyset (small objects) and of
/// the streaming keyset (large objects) are counted alike: their IDs are
/// unique across the two.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Census {
    /// Objects counted.
    pub total: u64,
    /// Objects by key ID, for keys of either keyset (whatever their
    /// status): the key ID in their prefix or, for an object without one,
    /// the RAW key (ENABLED or DISABLED) that decrypts it.
    pub by_key_id: BTreeMap<u32, u64>,
    /// The AEAD keyset's primary key ID (small objects are written with
    /// it).
    pub primary_key_id: u32,
    /// The streaming keyset's primary key ID (large objects are written
    /// with it); absent when the store has no streaming keyset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streaming_primary_key_id: Option<u32>,
    /// Of the objects in `by_key_id`, those under a key of the streaming
    /// keyset (large objects).
    pub large: u64,
    /// Objects with no Tink prefix while the keyset holds no RAW key:
    /// plaintext written before encryption was turned on.
    pub plaintext: u64,
    /// Objects whose prefix names a key ID that the keyset does not have
    /// (and that no RAW key decrypts).
    pub unknown_key: u64,
    /// Of the objects in `by_key_id`, those under a RAW key (found by trial
    /// decryption, as they carry no key ID).
    pub raw: u64,
    /// Objects with no Tink prefix that no RAW key with key material
    /// decrypts, while the keyset holds a RAW key (in any status): they may
    /// be ciphertexts under a destroyed or deleted RAW key, so they are
    /// never counted, read or migrated as plaintext.
    pub prefix_less_unattributed: u64,
    /// `unknown_key`, by the key ID their prefix names.
    pub unknown_key_ids: BTreeMap<u32, u64>,
    /// Of the objects in `by_key_id`, those under a KMS envelope key of
    /// the AEAD keyset (each holds its own DEK, wrapped by a master key).
    pub envelope: u64,
    /// The `envelope` objects by the master key and version that wrapped
    /// their DEK (read from the encrypted DEK, no KMS call), sorted by
    /// master key then version. Sums to `envelope`.
    pub master_keys: Vec<MasterKeyCount>,
}

/// How many envelope objects (or keysets) have their DEK wrapped by one
/// master key version: a row of [`Census::master_keys`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub struct MasterKeyCount {
    /// The master key's identity: its URI (`hcvault://HOST/MOUNT/keys/NAME`,
    /// `aws-kms://arn:…` with the key ARN).
    pub master_key: String,
    /// The master-key version (Vault transit's `N` of `vault:vN:`); `None`
    /// when the KMS's ciphertexts name no version (AWS KMS, whose rotation
    /// keeps old key material and needs no rewrap) or the envelope key is
    /// not ENABLED (its master key is not opened).
    pub version: Option<u32>,
    /// The objects.
    pub objects: u64,
}

impl MasterKeyCount {
    /// A row.
    pub fn new(master_key: impl Into<String>, version: Option<u32>, objects: u64) -> Self {
        MasterKeyCount {
            master_key: master_key.into(),
            version,
            objects,
        }
    }
}

impl Census {
    /// Objects not under the primary key of their layout: the AEAD
    /// primary for small objects, the streaming primary for large ones
    /// (what a rewrap would touch).
    pub fn not_under_primary(&self) -> u64 {
        self.total - self.under_primary()
    }

    /// Objects under a primary key: the AEAD primary's and the streaming
    /// primary's (what a rewrap leaves alone).
    pub fn under_primary(&self) -> u64 {
        self.objects_under(self.primary_key_id)
            + self
                .streaming_primary_key_id
                .map_or(0, |id| self.objects_under(id))
    }

    /// Objects a rewrap can move to the primary of their layout: those
    /// under another key of either keyset, and plaintext (which a rewrap
    /// encrypts only when allowed to). Objects under key IDs the keyset
    /// does not have and prefix-less objects no RAW key decrypts are left
    /// out: a rewrap cannot read them.
    pub fn rewrappable(&self) -> u64 {
        self.not_under_primary() - self.prefix_less_unattributed - self.unknown_key
    }

    /// Whether some master key wraps the DEKs of envelope objects under
    /// two versions or more (the older ones can be re-wrapped to the
    /// newest).
    pub fn has_older_master_key_versions(&self) -> bool {
        self.master_keys.iter().any(|m| {
            self.master_keys
                .iter()
                .any(|o| o.master_key == m.master_key && o.version > m.version)
        })
    }

    /// Envelope objects whose DEK is wrapped by `master_key` under a
    /// version other than `version` (what a master-key rewrap would
    /// re-wrap).
    pub fn master_key_objects_not_at(&self, master_key: &str, version: u32) -> u64 {
        self.master_keys
            .iter()
            .filter(|m| m.master_key == master_key && m.version != Some(version))
            .map(|m| m.objects)
            .sum()
    }

    /// Objects under key `key_id` (by prefix, or by trial decryption for a
    /// RAW key).
    pub fn objects_under(&self, key_id: u32) -> u64 {
        self.by_key_id.get(&key_id).copied().unwrap_or(0)
    }

    fn count(&mut self, class: ObjectClass, large: bool) {
        self.total += 1;
        match class {
            ObjectClass::Key { key_id, raw, .. } => {
                *self.by_key_id.entry(key_id).or_default() += 1;
                if raw {
                    self.raw += 1;
                }
                if large {
                    self.large += 1;
                }
            }
            ObjectClass::UnknownKeyId { key_id } => {
                self.unknown_key += 1;
                *self.unknown_key_ids.entry(key_id).or_default() += 1;
            }
            ObjectClass::PrefixLessUnattributed => self.prefix_less_unattributed += 1,
            ObjectClass::Plaintext => self.plaintext += 1,
        }
    }
}

/// The store check behind retiring a key: how many objects are under it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyObjects {
    /// The key checked.
    pub key_id: u32,
    /// Objects under it.
    pub objects: u64,
    /// Objects checked (the whole store).
    pub checked: u64,
    /// The census the check was taken from.
    pub census: Census,
}

/// What the census learns of one object: its class, whether it is large,
/// and for an envelope object the master key and version of its DEK.
type Counted = (ObjectClass, bool, Option<(String, Option<u32>)>);

/// Head reads in flight at once.
const CENSUS_CONCURRENCY: usize = 32;

/// How much of each object's head the census reads: the 5-byte prefix, and
/// with envelope keys the encrypted DEK's head too (its master-key
/// version).
fn head_len(snap: &KeysetSnapshot) -> usize {
    if snap.envelope_aead().is_some() {
        MAX_HEAD_LEN
    } else {
        5
    }
}

impl EncryptedStorage {
    /// Counts the objects under `prefix` (`""` for all) by key ID, small
    /// and large objects alike.
    ///
    /// It reads only the first five bytes of each object (a range read
    /// where the backend has one): the prefix names a key of the AEAD
    /// keyset or, for a large object (`0x01 ‖ BE32(id)`), of the streaming
    /// keyset. Only when the keyset has a RAW key with
    /// key material (ENABLED or DISABLED) does it load the objects that
    /// have no Tink prefix, or a prefix naming a key ID the keyset does not
    /// have, and try each such RAW key on them, to attribute them to the
    /// RAW key that wrote them. Objects whose prefix names a key of the
    /// keyset are never loaded whole. (A RAW ciphertext whose first five
    /// bytes happen to equal the prefix of a key of the keyset, a chance of
    /// 2^-32 per key, is counted under that key.)
    ///
    /// # Errors
    /// Listing or read failures of the backend. Objects deleted during the
    /// scan are skipped.
    pub async fn census(&self, prefix: &str) -> Result<Census> {
        let snap = self.keyset().snapshot();
        let keys = self.inner().list(prefix, true).await?;
        let mut census = Census {
            primary_key_id: snap.primary_key_id(),
            streaming_primary_key_id: snap.streaming_primary_key_id(),
            ..Census::default()
        };
        let head_len = head_len(&snap);
        let mut masters: BTreeMap<(String, Option<u32>), u64> = BTreeMap::new();
        let mut failed: Option<Error> = None;
        concurrency::run(
            keys,
            &Control::new(CENSUS_CONCURRENCY),
            |key| {
                let store = self.clone();
                let snap = Arc::clone(&snap);
                async move { store.census_one(snap, &key, head_len).await }
            },
            |step| {
                let Step::Done(item) = step else {
                    return Flow::Continue;
                };
                match item {
                    Ok(Some((class, large, master))) => {
                        census.count(class, large);
                        if let Some(m) = master {
                            census.envelope += 1;
                            *masters.entry(m).or_default() += 1;
                        }
                        Flow::Continue
                    }
                    Ok(None) => Flow::Continue,
                    // The first error ends the census: nothing new starts
                    // and the reads in flight are abandoned.
                    Err(e) => {
                        failed.get_or_insert(e);
                        Flow::Stop {
                            drain: Duration::ZERO,
                        }
                    }
                }
            },
        )
        .await;
        if let Some(e) = failed {
            return Err(e);
        }
        census.master_keys = masters
            .into_iter()
            .map(|((key, version), n)| MasterKeyCount::new(key, version, n))
            .collect();
        Ok(census)
    }

    /// The class of the object at `key`, learnt as [`census`](Self::census)
    /// learns it for each object: from its first bytes when its prefix
    /// names a key of either keyset (a large object is never read whole),
    /// an envelope object from its encrypted DEK's head (no KMS call), and
    /// from the whole object only when a RAW key must be tried on it.
    /// `None` when there is no object at `key`.
    ///
    /// # Errors
    /// An invalid key; read failures of the backend.
    pub async fn object_class(&self, key: &str) -> Result<Option<ObjectClass>> {
        encstore_core::validate_key(key)?;
        let snap = self.keyset().snapshot();
        let head_len = head_len(&snap);
        Ok(self
            .census_one(snap, key, head_len)
            .await?
            .map(|(class, _, _)| class))
    }

    /// What the census learns of the object at `key` (`None`: deleted
    /// meanwhile): from its first `head_len` bytes, or, when only a RAW
    /// key's trial decryption can tell, from the whole object.
    async fn census_one(
        &self,
        snap: Arc<KeysetSnapshot>,
        key: &str,
        head_len: usize,
    ) -> Result<Option<Counted>> {
        let head_bytes = match self.inner().load_head(key, head_len).await {
            Ok(head) => head,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let head = snap.classify(&head_bytes);
        // An envelope object: its prefix names an envelope key, or
        // (prefix-less) its encrypted DEK is attributed to a RAW envelope
        // key. No KMS call. (A RAW envelope ciphertext starts with the BE32
        // length of its encrypted DEK, 0x00 0x00: it looks like a LEGACY
        // prefix of an unknown key.)
        if let Some(info) = snap.envelope_info(&head_bytes) {
            let class = ObjectClass::Key {
                key_id: info.key_id,
                status: info.status,
                raw: info.output_prefix == OutputPrefix::Raw,
            };
            let master = match info.master {
                Some(m) => (m.key, m.version),
                None => (crate::open::display_uri(&info.kek_uri), None),
            };
            return Ok(Some((class, false, Some(master))));
        }
        if !snap.needs_whole_object(head) {
            let class = snap.class_from_head(head);
            let large =
                matches!(class, ObjectClass::Key { key_id, .. } if snap.is_streaming_key(key_id));
            return Ok(Some((class, large, None)));
        }
        let object = match self.inner().load(key).await {
            Ok(o) => o,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let ad = self.associated_data(key);
        let len = object.len();
        let class = off_the_runtime(len, move || snap.classify_object(&object, &ad)).await?;
        Ok(Some((class, false, None)))
    }

    /// How many objects in the whole store are under key `key_id` (of the
    /// AEAD keyset or the streaming keyset): the check to make before
    /// disabling, destroying or deleting it. RAW keys
    /// are checked by trial decryption of the prefix-less objects (see
    /// [`EncryptedStorage::census`]), so a RAW key that still has objects
    /// is found like a TINK one, in any status that keeps key material.
    ///
    /// # Errors
    /// As [`EncryptedStorage::census`].
    pub async fn objects_under(&self, key_id: u32) -> Result<KeyObjects> {
        let census = self.census("").await?;
        Ok(KeyObjects {
            key_id,
            objects: census.objects_under(key_id),
            checked: census.total,
            census,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Census, MasterKeyCount, ObjectClass};
    use encstore_tink::KeyStatus;

    fn key(key_id: u32, raw: bool) -> ObjectClass {
        ObjectClass::Key {
            key_id,
            status: KeyStatus::Enabled,
            raw,
        }
    }

    #[test]
    fn rewrappable_counts_what_a_rewrap_can_read_and_move() {
        let mut c = Census {
            primary_key_id: 1,
            streaming_primary_key_id: Some(2),
            ..Census::default()
        };
        for (class, large) in [
            (key(1, false), false),
            (key(2, false), true),
            (key(3, false), false),
            (key(3, false), false),
            (key(4, true), false),
            (key(5, false), true),
            (ObjectClass::Plaintext, false),
            (ObjectClass::UnknownKeyId { key_id: 9 }, false),
            (ObjectClass::PrefixLessUnattributed, false),
        ] {
            c.count(class, large);
        }
        assert_eq!(c.total, 9);
        assert_eq!(c.under_primary(), 2);
        assert_eq!(c.not_under_primary(), 7);
        // Keys 3 (twice), 4 (RAW), 5 (an older streaming key), plaintext.
        assert_eq!(c.rewrappable(), 5);
    }

    #[test]
    fn older_master_key_versions_are_told_per_master_key() {
        let census = |rows: &[(&str, Option<u32>)]| Census {
            master_keys: rows
                .iter()
                .map(|(k, v)| MasterKeyCount::new(*k, *v, 1))
                .collect(),
            ..Census::default()
        };
        assert!(!census(&[]).has_older_master_key_versions());
        assert!(!census(&[("a", Some(3))]).has_older_master_key_versions());
        // Two master keys at different versions: nothing older of either.
        assert!(!census(&[("a", Some(1)), ("b", Some(2))]).has_older_master_key_versions());
        assert!(census(&[("a", Some(1)), ("a", Some(2))]).has_older_master_key_versions());
        // A version-less row (AWS KMS) beside a versioned one of that key.
        assert!(census(&[("a", None), ("a", Some(1))]).has_older_master_key_versions());
        assert!(!census(&[("a", None)]).has_older_master_key_versions());
    }
}
