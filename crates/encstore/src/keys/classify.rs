//! Which key a stored object is under: [`ObjectClass`], and the
//! classification, attribution and primary checks of a [`KeysetSnapshot`].

use encstore_core::Aead;
use encstore_tink::envelope::EnvelopeInfo;
use encstore_tink::{CiphertextKey, KeyStatus, OutputPrefix};
use zeroize::Zeroizing;

use super::KeysetSnapshot;

/// Which key a whole stored object is under, as the census and the store
/// check of key retirement see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectClass {
    /// Under key `key_id` of this keyset: named by the object's Tink
    /// prefix, or (for a RAW key) the key that decrypts it.
    Key {
        /// The key ID.
        key_id: u32,
        /// That key's status in the keyset.
        status: KeyStatus,
        /// True when a RAW key was found by trial decryption.
        raw: bool,
    },
    /// The object's first five bytes look like a Tink prefix naming a key
    /// ID this keyset does not have, and no RAW key decrypts it.
    UnknownKeyId {
        /// The key ID in the prefix.
        key_id: u32,
    },
    /// No Tink prefix, and the keyset holds a RAW key (in any status), but
    /// no RAW key that still has key material decrypts it: it may be a
    /// ciphertext under a RAW key that was destroyed or deleted, so it is
    /// never taken for plaintext.
    PrefixLessUnattributed,
    /// No Tink prefix and the keyset holds no RAW key: plaintext written
    /// before encryption was turned on (or data from elsewhere).
    Plaintext,
}

impl KeysetSnapshot {
    /// The RAW key (ENABLED or DISABLED, in keyset order) that decrypts
    /// `ciphertext` with `associated_data`, with its status. The trial
    /// plaintext is wiped.
    pub fn raw_key_for(
        &self,
        ciphertext: &[u8],
        associated_data: &[u8],
    ) -> Option<(u32, KeyStatus)> {
        self.aead.raw_keys.iter().find_map(|k| {
            k.aead
                .decrypt(ciphertext, associated_data)
                .map(Zeroizing::new)
                .ok()
                .map(|_| (k.key_id, k.status))
        })
    }

    /// Whether migration mode may take an object with this head for
    /// plaintext (when it does not decrypt): only when the keyset holds no
    /// RAW key, and the object has no prefix or a prefix naming a key ID
    /// the keyset does not have (a plaintext value may start with 0x00 or
    /// 0x01; a prefix of a key the keyset has is taken as ciphertext).
    pub fn may_be_plaintext(&self, head: CiphertextKey) -> bool {
        !self.aead.holds_raw_keys
            && matches!(
                head,
                CiphertextKey::Unprefixed | CiphertextKey::Prefixed { status: None, .. }
            )
    }

    /// Whether the class of an object with this head depends on more than
    /// its first five bytes: prefix-less objects, and objects naming an
    /// unknown key ID (a RAW ciphertext's random nonce starts with 0x00 or
    /// 0x01 one time in 128), when a RAW key can be tried.
    pub fn needs_whole_object(&self, head: CiphertextKey) -> bool {
        self.can_attribute_raw()
            && matches!(
                head,
                CiphertextKey::Unprefixed | CiphertextKey::Prefixed { status: None, .. }
            )
    }

    /// The class of an object from its head alone: exact when
    /// [`needs_whole_object`](KeysetSnapshot::needs_whole_object) is false
    /// for that head.
    pub fn class_from_head(&self, head: CiphertextKey) -> ObjectClass {
        match head {
            CiphertextKey::Prefixed {
                key_id,
                status: Some(status),
                ..
            } => ObjectClass::Key {
                key_id,
                status,
                raw: false,
            },
            CiphertextKey::Prefixed {
                key_id,
                status: None,
                ..
            } => ObjectClass::UnknownKeyId { key_id },
            CiphertextKey::Unprefixed if self.aead.holds_raw_keys => {
                ObjectClass::PrefixLessUnattributed
            }
            CiphertextKey::Unprefixed => ObjectClass::Plaintext,
        }
    }

    /// Classifies a whole stored object (with the associated data of its
    /// key name): by its prefix when it names a key of either keyset,
    /// otherwise by trial decryption with each RAW key that has key
    /// material.
    pub fn classify_object(&self, object: &[u8], associated_data: &[u8]) -> ObjectClass {
        let head = self.classify(object);
        if self.needs_whole_object(head)
            && let Some((key_id, status)) = self.raw_key_for(object, associated_data)
        {
            return ObjectClass::Key {
                key_id,
                status,
                raw: true,
            };
        }
        self.class_from_head(head)
    }
    /// Which envelope key wrote a small object, and which master key and
    /// version wrapped its DEK, from its first
    /// [`MAX_HEAD_LEN`](encstore_tink::envelope::MAX_HEAD_LEN) bytes (no
    /// I/O); `None` for an object not under an envelope key of the keyset
    /// (or when the keyset has no ENABLED envelope key).
    pub fn envelope_info(&self, head: &[u8]) -> Option<EnvelopeInfo> {
        if self.streaming_key_of(head).is_some() {
            return None;
        }
        self.aead.envelope.as_ref()?.envelope_info(head).ok()
    }

    /// Classifies a stored object by its first five bytes: a key of the
    /// streaming keyset (the large-object prefix `0x01 ‖ BE32(id)`), else
    /// the AEAD keyset's own prefix lookup.
    pub fn classify(&self, head: &[u8]) -> CiphertextKey {
        if let Some((key_id, status)) = self.streaming_key_of(head) {
            return CiphertextKey::Prefixed {
                key_id,
                prefix: OutputPrefix::Tink,
                status: Some(status),
            };
        }
        match (&self.aead.aead, &self.aead.envelope) {
            (Some(a), _) => a.classify(head),
            (None, Some(e)) => e.classify(head),
            (None, None) => CiphertextKey::Unprefixed,
        }
    }

    /// True when the object certainly is under the primary key of its
    /// kind: its prefix is the AEAD primary's (never for a RAW primary:
    /// see [`KeysetSnapshot::decrypts_with_primary`]) or, for a large
    /// object, the streaming primary's.
    pub fn is_under_primary(&self, ciphertext: &[u8]) -> bool {
        (!self.aead.primary_prefix.is_empty() && ciphertext.starts_with(&self.aead.primary_prefix))
            || self
                .streaming
                .as_ref()
                .is_some_and(|s| ciphertext.starts_with(&s.primary_prefix))
    }

    /// Whether the object is under the primary key of its kind: for a RAW
    /// AEAD primary, whether the primary alone decrypts `ciphertext` (the
    /// trial plaintext is wiped); otherwise by prefix (see
    /// [`KeysetSnapshot::is_under_primary`]).
    pub fn decrypts_with_primary(&self, ciphertext: &[u8], associated_data: &[u8]) -> bool {
        if self
            .streaming
            .as_ref()
            .is_some_and(|s| ciphertext.starts_with(&s.primary_prefix))
        {
            return true;
        }
        match &self.aead.primary_only {
            Some(a) => a
                .decrypt(ciphertext, associated_data)
                .map(Zeroizing::new)
                .is_ok(),
            // A RAW envelope primary: the envelope key its encrypted DEK
            // is attributed to (no KMS call).
            None if self.primary_is_raw() => self
                .envelope_info(ciphertext)
                .is_some_and(|i| i.key_id == self.primary_key_id()),
            None => self.is_under_primary(ciphertext),
        }
    }

    /// Whether the keysets decrypt `ciphertext` (a whole stored object,
    /// small or large) with `associated_data`. The trial plaintext is
    /// wiped. A large object is decrypted in memory: for constant memory,
    /// use [`EncryptedStorage::verify_one`](crate::EncryptedStorage::verify_one).
    pub fn aead_decrypts(&self, ciphertext: &[u8], associated_data: &[u8]) -> bool {
        if let Some((key_id, _)) = self.streaming_key_of(ciphertext) {
            return self
                .streaming_entry(key_id)
                .and_then(|e| e.aead.as_ref())
                .is_some_and(|a| {
                    a.decrypt(&ciphertext[5..], associated_data)
                        .map(Zeroizing::new)
                        .is_ok()
                });
        }
        self.aead.aead.as_ref().is_some_and(|a| {
            a.decrypt(ciphertext, associated_data)
                .map(Zeroizing::new)
                .is_ok()
        })
    }
}
