//! Tink keysets: the validated [`Keyset`] handle, its formats and key
//! management.
//!
//! A [`Keyset`] is always valid: every way to get one (reading JSON or
//! binary, cleartext or encrypted, or [`Keyset::generate`]) checks it with
//! Tink's rules, and every management operation keeps it valid.
//!
//! | task | API |
//! | --- | --- |
//! | read any form (format detected) | [`Keyset::read`] (or [`Keyset::read_with_provider`]) with an explicit [`KeysetProtection`]: `Cleartext`, or `Encrypted { kek, associated_data }` |
//! | read a keyset in a declared format | [`Keyset::read_as`] with a [`KeysetEncoding`] and a [`KeysetProtection`]; the cleartext shorthands [`Keyset::from_json_insecure`], [`Keyset::from_binary_insecure`] |
//! | read or write an `EncryptedKeyset` wrapped by an async KEK (HSM, KMS) | [`Keyset::read_with_kek`], [`Keyset::write_with_kek`], [`Keyset::rewrap_encrypted`] |
//! | tell the format of a file | [`detect_format`] |
//! | write | [`Keyset::write`] with a [`KeysetEncoding`] and a [`KeysetProtection`]; the cleartext shorthands [`Keyset::to_json_insecure`], [`Keyset::to_binary_insecure`] |
//! | new keyset | [`Keyset::generate`] with a [`KeyTemplate`] |
//! | manage keys | [`Keyset::add_key`], [`Keyset::rotate`], [`Keyset::promote`], [`Keyset::enable`], [`Keyset::disable`], [`Keyset::destroy`], [`Keyset::delete`] |
//! | list keys (no key material) | [`Keyset::info`] |
//! | encrypt and decrypt | [`Keyset::aead`] (AEAD keysets), [`Keyset::streaming_aead`] (streaming keysets) |
//!
//! A keyset holds the keys of one primitive, AEAD or streaming AEAD
//! ([`Keyset::primitive`]): Google's Tink refuses a keyset that mixes them
//! ("Wrong primitive class"), so encstore refuses to read, create or make
//! one ([`KeysetError::MixedPrimitives`], [`KeysetError::TemplatePrimitive`]).

mod attributes;
mod binary;
mod info;
mod io;
mod json;
mod kek;
mod key;
mod manage;
mod validate;
mod wipe;

use std::fmt;

use crate::aead::KeysetAead;
use crate::error::KeysetError;
use crate::provider::CryptoProvider;
use crate::streaming::KeysetStreamingAead;
#[cfg(doc)]
use crate::{envelope, templates::KeyTemplate};

pub use attributes::{KeyStatus, OutputPrefix, PrimitiveKind};
pub use binary::{KeysetFormat, detect_format};
pub use info::{KeyInfo, KeysetInfo, encrypted_keyset_ciphertext, encrypted_keyset_info};
pub use io::{KeysetEncoding, KeysetProtection};
pub(crate) use key::Key;
use key::{DebugKeys, KeyPrimitive};
pub(crate) use wipe::{WipeOnDrop, merge_or_wipe, wipe_key_proto};

/// The process's default provider ([`crate::provider::get_default`]).
fn default_provider() -> Result<&'static CryptoProvider, KeysetError> {
    crate::provider::get_default().map_err(KeysetError::Provider)
}

/// A validated Tink keyset: a primary key ID and keys, each with an ID,
/// status, output prefix type and key data.
///
/// Key material is zeroized on drop and never printed: `Debug` shows only
/// IDs, types, statuses and prefixes. The only ways to get the key
/// material out are the methods whose names end in `_insecure` and
/// [`Keyset::write`] with an explicit [`KeysetProtection::Cleartext`].
///
/// Every key's primitive comes from the keyset's [`CryptoProvider`]
/// ([`Keyset::provider`]): the process default when the keyset was read or
/// created, or the one given to [`Keyset::read_with_provider`],
/// [`Keyset::generate_with_provider`] or [`Keyset::with_provider`].
#[derive(Clone)]
pub struct Keyset {
    /// The ID of the key that encrypts. Always an ENABLED key of `keys`.
    primary_key_id: u32,
    /// The keys in keyset order; never empty, IDs unique.
    keys: Vec<Key>,
    /// Where every key's primitive (and new keys' material) comes from.
    provider: &'static CryptoProvider,
}

impl fmt::Debug for Keyset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyset")
            .field("primary_key_id", &self.primary_key_id)
            .field("keys", &DebugKeys(&self.keys))
            .finish()
    }
}

impl Keyset {
    // ----------------------------------------------------------- inspect

    /// The primary key's ID.
    pub fn primary_key_id(&self) -> u32 {
        self.primary_key_id
    }

    /// The number of keys, whatever their status.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always `false`: a valid keyset has at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keyset without key material: IDs, types, statuses, prefixes,
    /// which key is primary, and each key's parameters.
    pub fn info(&self) -> KeysetInfo {
        KeysetInfo {
            primary_key_id: self.primary_key_id,
            keys: self
                .keys
                .iter()
                .map(|k| k.info(self.primary_key_id))
                .collect(),
        }
    }

    /// Builds the keyset's AEAD: encrypts with the primary key, decrypts
    /// with any ENABLED key. Build it once and share it (it is
    /// `Send + Sync`; wrap it in an `Arc` to use it as
    /// `Arc<dyn encstore_core::Aead>`).
    ///
    /// # Errors
    /// [`KeysetError::WrongPrimitive`] for a streaming AEAD keyset;
    /// [`KeysetError::NeedsAsyncAead`] for a keyset with an ENABLED KMS
    /// envelope key (primary or not): its ciphertexts need KMS calls, which
    /// this synchronous AEAD never makes; use
    /// [`envelope::KeysetAsyncAead`].
    pub fn aead(&self) -> Result<KeysetAead, KeysetError> {
        self.expect_primitive(PrimitiveKind::Aead)?;
        if let Some(k) = self
            .keys
            .iter()
            .find(|k| k.status == KeyStatus::Enabled && k.envelope().is_some())
        {
            return Err(KeysetError::NeedsAsyncAead { key_id: k.id });
        }
        KeysetAead::new(self)
    }

    /// Builds the keyset's streaming AEAD: encrypts with the primary key,
    /// decrypts with any ENABLED key (see [`crate::streaming`]). Build it
    /// once and share it (`Send + Sync`).
    ///
    /// # Errors
    /// [`KeysetError::WrongPrimitive`] for an AEAD keyset.
    pub fn streaming_aead(&self) -> Result<KeysetStreamingAead, KeysetError> {
        self.expect_primitive(PrimitiveKind::StreamingAead)?;
        KeysetStreamingAead::new(self)
    }

    /// The primitive of the keyset's keys: every key that is not destroyed
    /// is of this one primitive.
    pub fn primitive(&self) -> PrimitiveKind {
        self.keys
            .iter()
            .find(|k| k.id == self.primary_key_id)
            .and_then(|k| k.primitive.as_ref())
            .map_or(PrimitiveKind::Aead, KeyPrimitive::kind)
    }

    fn expect_primitive(&self, wanted: PrimitiveKind) -> Result<(), KeysetError> {
        let found = self.primitive();
        if found != wanted {
            return Err(KeysetError::WrongPrimitive { wanted, found });
        }
        Ok(())
    }

    pub(crate) fn keys(&self) -> &[Key] {
        &self.keys
    }
}
