//! Tink keysets: the validated [`Keyset`] handle, its formats and key
//! management.
//!
//! A [`Keyset`] is always valid: every way to get one (reading JSON or
//! binary, cleartext or encrypted, or [`Keyset::generate`]) checks it with
//! Tink's rules, and every management operation keeps it valid.
//!
//! | task | API |
//! | --- | --- |
//! | read a cleartext keyset | [`Keyset::from_json_insecure`], [`Keyset::from_binary_insecure`] |
//! | read an `EncryptedKeyset` | [`Keyset::read_encrypted_json`], [`Keyset::read_encrypted_binary`] |
//! | tell the format of a file | [`detect_format`] |
//! | write | [`Keyset::to_encrypted_json`], [`Keyset::to_encrypted_binary`], and the cleartext [`Keyset::to_json_insecure`], [`Keyset::to_binary_insecure`] |
//! | new keyset | [`Keyset::generate`] with a [`KeyTemplate`] |
//! | manage keys | [`Keyset::add_key`], [`Keyset::rotate`], [`Keyset::promote`], [`Keyset::enable`], [`Keyset::disable`], [`Keyset::destroy`], [`Keyset::delete`] |
//! | list keys (no key material) | [`Keyset::info`] |
//! | encrypt and decrypt | [`Keyset::aead`] (AEAD keysets), [`Keyset::streaming_aead`] (streaming keysets) |
//!
//! A keyset holds the keys of one primitive, AEAD or streaming AEAD
//! ([`Keyset::primitive`]): Google's Tink refuses a keyset that mixes them
//! ("Wrong primitive class"), so encstore refuses to read, create or make
//! one ([`KeysetError::MixedPrimitives`], [`KeysetError::TemplatePrimitive`]).

mod binary;
mod info;
mod json;
mod kek;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use tink_proto::key_data::KeyMaterialType;
use zeroize::Zeroizing;

use crate::aead::KeysetAead;
use crate::envelope::{self, EnvelopeKey};
use crate::error::{KeyError, KeysetError};
use crate::primitives::{self, KeyParams, RawAead};
use crate::provider::CryptoProvider;
use crate::streaming::{KeysetStreamingAead, StreamingKey, params as streaming_params};
use crate::templates::KeyTemplate;

pub use binary::{KeysetFormat, detect_format};
pub use info::{encrypted_keyset_ciphertext, encrypted_keyset_info};

/// The status of a key in a keyset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    /// The key decrypts (and, if primary, encrypts).
    Enabled,
    /// The key keeps its material but is not used.
    Disabled,
    /// The key material is gone; only the ID remains.
    Destroyed,
}

impl KeyStatus {
    /// Tink's name for the status: `ENABLED`, `DISABLED` or `DESTROYED`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Enabled => "ENABLED",
            KeyStatus::Disabled => "DISABLED",
            KeyStatus::Destroyed => "DESTROYED",
        }
    }

    pub(crate) fn from_proto(v: i32) -> Option<Self> {
        match tink_proto::KeyStatusType::try_from(v).ok()? {
            tink_proto::KeyStatusType::Enabled => Some(KeyStatus::Enabled),
            tink_proto::KeyStatusType::Disabled => Some(KeyStatus::Disabled),
            tink_proto::KeyStatusType::Destroyed => Some(KeyStatus::Destroyed),
            tink_proto::KeyStatusType::UnknownStatus => None,
        }
    }

    pub(crate) fn to_proto(self) -> i32 {
        (match self {
            KeyStatus::Enabled => tink_proto::KeyStatusType::Enabled,
            KeyStatus::Disabled => tink_proto::KeyStatusType::Disabled,
            KeyStatus::Destroyed => tink_proto::KeyStatusType::Destroyed,
        }) as i32
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The primitive a keyset's keys implement. A keyset holds keys of one
/// primitive only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PrimitiveKind {
    /// AEAD keys (`AesGcmKey`, `XChaCha20Poly1305Key`, ...):
    /// [`Keyset::aead`].
    Aead,
    /// Streaming AEAD keys (`AesGcmHkdfStreamingKey`,
    /// `AesCtrHmacStreamingKey`): [`Keyset::streaming_aead`].
    StreamingAead,
}

impl PrimitiveKind {
    /// A short name: `AEAD` or `streaming AEAD`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrimitiveKind::Aead => "AEAD",
            PrimitiveKind::StreamingAead => "streaming AEAD",
        }
    }
}

impl fmt::Display for PrimitiveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A live key's primitive, built once when the key is read or created.
#[derive(Clone)]
pub(crate) enum KeyPrimitive {
    /// A raw AEAD.
    Aead(Arc<dyn RawAead>),
    /// A streaming AEAD key.
    Streaming(Arc<StreamingKey>),
    /// A KMS envelope key: an AEAD whose every operation calls a KMS
    /// (see [`crate::envelope`]).
    Envelope(Arc<EnvelopeKey>),
}

impl KeyPrimitive {
    fn kind(&self) -> PrimitiveKind {
        match self {
            KeyPrimitive::Aead(_) | KeyPrimitive::Envelope(_) => PrimitiveKind::Aead,
            KeyPrimitive::Streaming(_) => PrimitiveKind::StreamingAead,
        }
    }
}

/// Parses a key's data of type `type_url`, checks it with Tink's rules and
/// with `provider`'s (under `fips`: approved key types and parameters
/// only), and builds its primitive from `provider`: a streaming key, an
/// envelope key (whose DEKs `provider` makes) or an AEAD.
fn build_key(
    provider: &'static CryptoProvider,
    type_url: &str,
    value: &[u8],
) -> Result<(KeyParams, KeyPrimitive), KeyError> {
    if envelope::is_envelope(type_url) {
        let (params, key) = envelope::parse_key(provider, value)?;
        return Ok((params, KeyPrimitive::Envelope(Arc::new(key))));
    }
    if let Some(key_type) = streaming_params::streaming_type(type_url) {
        provider.check_key_type(type_url)?;
        let (params, key) = streaming_params::parse_key(key_type, value)?;
        let described = params.key_params();
        provider.check_key_params(&described)?;
        return Ok((
            described,
            KeyPrimitive::Streaming(Arc::new(StreamingKey::new(provider, params, key))),
        ));
    }
    let (params, primitive) = primitives::primitive_from_key_data(provider, type_url, value)?;
    Ok((params, KeyPrimitive::Aead(Arc::from(primitive))))
}

/// A fresh key's data (`KeyData.value`) from a template's type URL and key
/// format, for either primitive, with key material from `provider`.
fn new_key_value(
    provider: &'static CryptoProvider,
    type_url: &str,
    key_format: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if envelope::is_envelope(type_url) {
        return envelope::new_key(provider, key_format);
    }
    provider.check_key_type(type_url)?;
    match streaming_params::streaming_type(type_url) {
        Some(key_type) => streaming_params::new_key(provider, key_type, key_format),
        None => primitives::new_key_data_value(provider, type_url, key_format),
    }
}

/// The process's default provider ([`crate::provider::get_default`]).
fn default_provider() -> Result<&'static CryptoProvider, KeysetError> {
    crate::provider::get_default().map_err(KeysetError::Provider)
}

/// How a key marks its ciphertexts (Tink's `OutputPrefixType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputPrefix {
    /// `0x01` followed by the big-endian key ID (5 bytes).
    Tink,
    /// `0x00` followed by the big-endian key ID (5 bytes).
    Legacy,
    /// `0x00` followed by the big-endian key ID (5 bytes), like LEGACY.
    Crunchy,
    /// No prefix.
    Raw,
}

impl OutputPrefix {
    /// Tink's name: `TINK`, `LEGACY`, `CRUNCHY` or `RAW`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputPrefix::Tink => "TINK",
            OutputPrefix::Legacy => "LEGACY",
            OutputPrefix::Crunchy => "CRUNCHY",
            OutputPrefix::Raw => "RAW",
        }
    }

    /// The prefix bytes a key with this type and ID puts before its
    /// ciphertexts (empty for RAW).
    pub fn prefix_bytes(self, key_id: u32) -> Vec<u8> {
        let (buf, len) = self.prefix_array(key_id);
        buf[..len].to_vec()
    }

    /// The prefix as a fixed array and its length (0 or 5).
    pub(crate) fn prefix_array(self, key_id: u32) -> ([u8; 5], usize) {
        let id = key_id.to_be_bytes();
        match self {
            OutputPrefix::Tink => ([0x01, id[0], id[1], id[2], id[3]], 5),
            OutputPrefix::Legacy | OutputPrefix::Crunchy => ([0x00, id[0], id[1], id[2], id[3]], 5),
            OutputPrefix::Raw => ([0; 5], 0),
        }
    }

    pub(crate) fn from_proto(v: i32) -> Option<Self> {
        match tink_proto::OutputPrefixType::try_from(v).ok()? {
            tink_proto::OutputPrefixType::Tink => Some(OutputPrefix::Tink),
            tink_proto::OutputPrefixType::Legacy => Some(OutputPrefix::Legacy),
            tink_proto::OutputPrefixType::Crunchy => Some(OutputPrefix::Crunchy),
            tink_proto::OutputPrefixType::Raw => Some(OutputPrefix::Raw),
            tink_proto::OutputPrefixType::UnknownPrefix => None,
        }
    }

    pub(crate) fn to_proto(self) -> i32 {
        (match self {
            OutputPrefix::Tink => tink_proto::OutputPrefixType::Tink,
            OutputPrefix::Legacy => tink_proto::OutputPrefixType::Legacy,
            OutputPrefix::Crunchy => tink_proto::OutputPrefixType::Crunchy,
            OutputPrefix::Raw => tink_proto::OutputPrefixType::Raw,
        }) as i32
    }
}

impl fmt::Display for OutputPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key of a keyset, described without its key material.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The key ID.
    pub key_id: u32,
    /// The key's type URL, such as
    /// `type.googleapis.com/google.crypto.tink.AesGcmKey`. Empty for a key
    /// destroyed by Tink or encstore.
    pub type_url: String,
    /// The key's status.
    pub status: KeyStatus,
    /// The key's output prefix type.
    pub output_prefix: OutputPrefix,
    /// Whether this is the primary key.
    pub primary: bool,
    /// The key's type and parameters; `None` for a destroyed key.
    pub params: Option<KeyParams>,
}

/// A keyset described without key material: what `list-keyset` shows and
/// what an `EncryptedKeyset` carries in the clear as `keysetInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeysetInfo {
    /// The primary key's ID.
    pub primary_key_id: u32,
    /// Every key, in keyset order.
    pub keys: Vec<KeyInfo>,
}

/// Prints the keyset info as Tinkey's `list-keyset` does: the
/// `KeysetInfo` proto in protobuf text format (as Java's `toString()`
/// prints it; key IDs unsigned).
impl fmt::Display for KeysetInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "primary_key_id: {}", self.primary_key_id)?;
        for k in &self.keys {
            writeln!(f, "key_info {{")?;
            writeln!(f, "  type_url: {:?}", k.type_url)?;
            writeln!(f, "  status: {}", k.status)?;
            writeln!(f, "  key_id: {}", k.key_id)?;
            writeln!(f, "  output_prefix_type: {}", k.output_prefix)?;
            writeln!(f, "}}")?;
        }
        Ok(())
    }
}

/// One key inside a [`Keyset`]. The key bytes are the serialized key proto
/// (`KeyData.value`), zeroized on drop.
#[derive(Clone)]
pub(crate) struct Key {
    /// The key ID, unique within the keyset.
    pub(crate) id: u32,
    /// ENABLED, DISABLED or DESTROYED.
    pub(crate) status: KeyStatus,
    /// How this key prefixes its ciphertexts.
    pub(crate) prefix: OutputPrefix,
    /// `KeyData.type_url`; kept for destroyed keys if the file had one.
    pub(crate) type_url: String,
    /// `KeyData.key_material_type`, written back as read (SYMMETRIC for
    /// every live key but KMS envelope keys, which are REMOTE or
    /// SYMMETRIC).
    pub(crate) material_type: i32,
    /// `KeyData.value`: the serialized key proto. Empty for destroyed keys.
    pub(crate) value: Zeroizing<Vec<u8>>,
    /// Whether the key had a `KeyData` at all (destroyed keys may not).
    pub(crate) has_key_data: bool,
    /// Parameters, for listings; `None` for destroyed keys.
    pub(crate) params: Option<KeyParams>,
    /// The key's primitive, built once when the key was read or created;
    /// `None` for destroyed keys.
    pub(crate) primitive: Option<KeyPrimitive>,
}

impl Key {
    /// The key's AEAD, if it is a live AEAD key.
    pub(crate) fn aead(&self) -> Option<&Arc<dyn RawAead>> {
        match &self.primitive {
            Some(KeyPrimitive::Aead(p)) => Some(p),
            _ => None,
        }
    }

    /// The key's streaming key, if it is a live streaming key.
    pub(crate) fn streaming(&self) -> Option<&Arc<StreamingKey>> {
        match &self.primitive {
            Some(KeyPrimitive::Streaming(p)) => Some(p),
            _ => None,
        }
    }

    /// The key's envelope parameters, if it is a live KMS envelope key.
    pub(crate) fn envelope(&self) -> Option<&Arc<EnvelopeKey>> {
        match &self.primitive {
            Some(KeyPrimitive::Envelope(p)) => Some(p),
            _ => None,
        }
    }

    fn info(&self, primary_key_id: u32) -> KeyInfo {
        KeyInfo {
            key_id: self.id,
            type_url: self.type_url.clone(),
            status: self.status,
            output_prefix: self.prefix,
            primary: self.id == primary_key_id,
            params: self.params.clone(),
        }
    }

    /// Short type name for Debug: the type URL after the last `.`.
    fn short_type(&self) -> &str {
        self.type_url.rsplit('.').next().unwrap_or("")
    }
}

/// A validated Tink keyset: a primary key ID and keys, each with an ID,
/// status, output prefix type and key data.
///
/// Key material is zeroized on drop and never printed: `Debug` shows only
/// IDs, types, statuses and prefixes. The only ways to get the key
/// material out are the methods whose names end in `_insecure`.
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

/// Debug helper: lists keys by ID, type, status and prefix, never their
/// material.
pub(crate) struct DebugKeys<'a>(pub(crate) &'a [Key]);

impl fmt::Debug for DebugKeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(DebugKey)).finish()
    }
}

/// Debug helper for one key.
struct DebugKey<'a>(&'a Key);

impl fmt::Debug for DebugKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.0;
        f.debug_struct("Key")
            .field("id", &k.id)
            .field("type", &k.short_type())
            .field("status", &k.status)
            .field("prefix", &k.prefix)
            .finish()
    }
}

impl Keyset {
    // ---------------------------------------------------------------- read

    /// Reads a cleartext keyset in Tink's JSON format.
    ///
    /// Accepts every form Tink writes: key IDs as unsigned numbers (Tink
    /// Java, C++, Python), as negative signed 32-bit numbers (old Tink
    /// Java) or as decimal strings (protobuf JSON); camelCase or proto field
    /// names; enum names or numbers; standard or URL-safe base64, padded or
    /// not; absent fields taking their protobuf defaults. Unknown fields are
    /// ignored, like Tink Java does.
    ///
    /// "Insecure" because the keyset's key material is stored in the clear;
    /// prefer [`Keyset::read_encrypted_json`].
    pub fn from_json_insecure(json: &[u8]) -> Result<Keyset, KeysetError> {
        let proto = json::parse_keyset(json)?;
        Keyset::from_proto(proto, default_provider()?)
    }

    /// Reads a cleartext keyset in Tink's binary (protobuf `Keyset`) format.
    ///
    /// "Insecure" because the key material is stored in the clear; prefer
    /// [`Keyset::read_encrypted_binary`].
    pub fn from_binary_insecure(bytes: &[u8]) -> Result<Keyset, KeysetError> {
        let proto = binary::parse_keyset(bytes)?;
        Keyset::from_proto(proto, default_provider()?)
    }

    /// Reads an `EncryptedKeyset` in Tink's JSON format and decrypts it
    /// with the key-encryption key `kek` and `associated_data` (empty
    /// unless the keyset was written with some), as Tink does.
    pub fn read_encrypted_json(
        json: &[u8],
        kek: &dyn encstore_core::Aead,
        associated_data: &[u8],
    ) -> Result<Keyset, KeysetError> {
        let encrypted = json::parse_encrypted(json)?;
        let plain = binary::unwrap_keyset(kek, &encrypted, associated_data)?;
        Keyset::from_binary_insecure(&plain)
    }

    /// Reads a binary `EncryptedKeyset` and decrypts it with `kek` and
    /// `associated_data`.
    pub fn read_encrypted_binary(
        bytes: &[u8],
        kek: &dyn encstore_core::Aead,
        associated_data: &[u8],
    ) -> Result<Keyset, KeysetError> {
        let encrypted = binary::parse_encrypted(bytes)?;
        let plain = binary::unwrap_keyset(kek, &encrypted, associated_data)?;
        Keyset::from_binary_insecure(&plain)
    }

    /// Reads a keyset in any of the four forms, telling them apart with
    /// [`detect_format`]. An encrypted keyset needs `kek`; a cleartext one
    /// is refused when `kek` is given (a master key was expected), with
    /// [`KeysetError::UnexpectedCleartext`].
    pub fn read(
        bytes: &[u8],
        kek: Option<(&dyn encstore_core::Aead, &[u8])>,
    ) -> Result<Keyset, KeysetError> {
        let format = detect_format(bytes);
        match (format, kek) {
            (KeysetFormat::Json, None) => Keyset::from_json_insecure(bytes),
            (KeysetFormat::Binary, None) => Keyset::from_binary_insecure(bytes),
            (KeysetFormat::EncryptedJson, Some((k, ad))) => {
                Keyset::read_encrypted_json(bytes, k, ad)
            }
            (KeysetFormat::EncryptedBinary, Some((k, ad))) => {
                Keyset::read_encrypted_binary(bytes, k, ad)
            }
            (KeysetFormat::EncryptedJson | KeysetFormat::EncryptedBinary, None) => {
                Err(KeysetError::UnexpectedEncrypted)
            }
            (KeysetFormat::Json | KeysetFormat::Binary, Some(_)) => {
                Err(KeysetError::UnexpectedCleartext)
            }
        }
    }

    /// [`Keyset::read`] with `provider` instead of the process default
    /// (see [`crate::provider`]): every key's primitive, and keys added
    /// later, come from it. The key-encryption key `kek` is whatever it is
    /// (an AEAD of its own, such as an HSM or a master keyset read under
    /// its own provider).
    ///
    /// # Errors
    /// Those of [`Keyset::read`]; under `fips`, a key that is not
    /// FIPS-approved is refused with [`KeysetError::Key`] and
    /// [`KeyError::NotFipsApproved`].
    pub fn read_with_provider(
        bytes: &[u8],
        kek: Option<(&dyn encstore_core::Aead, &[u8])>,
        provider: &'static CryptoProvider,
    ) -> Result<Keyset, KeysetError> {
        let format = detect_format(bytes);
        let proto = match (format, kek) {
            (KeysetFormat::Json, None) => json::parse_keyset(bytes)?,
            (KeysetFormat::Binary, None) => binary::parse_keyset(bytes)?,
            (KeysetFormat::EncryptedJson, Some((k, ad))) => {
                let encrypted = json::parse_encrypted(bytes)?;
                binary::parse_keyset(&binary::unwrap_keyset(k, &encrypted, ad)?)?
            }
            (KeysetFormat::EncryptedBinary, Some((k, ad))) => {
                let encrypted = binary::parse_encrypted(bytes)?;
                binary::parse_keyset(&binary::unwrap_keyset(k, &encrypted, ad)?)?
            }
            (KeysetFormat::EncryptedJson | KeysetFormat::EncryptedBinary, None) => {
                return Err(KeysetError::UnexpectedEncrypted);
            }
            (KeysetFormat::Json | KeysetFormat::Binary, Some(_)) => {
                return Err(KeysetError::UnexpectedCleartext);
            }
        };
        Keyset::from_proto(proto, provider)
    }

    // --------------------------------------------------------------- write

    /// Writes the keyset as cleartext Tink JSON, byte for byte as Tink Java
    /// (and so Tinkey) writes it: compact, fields in Tink's order, key IDs
    /// unsigned, a trailing newline. The result holds key material and is
    /// zeroized on drop.
    ///
    /// "Insecure": the key material is in the clear. Prefer
    /// [`Keyset::to_encrypted_json`].
    pub fn to_json_insecure(&self) -> Zeroizing<Vec<u8>> {
        json::write_keyset(self)
    }

    /// Writes the keyset as a cleartext binary protobuf `Keyset`. The
    /// result holds key material and is zeroized on drop.
    ///
    /// "Insecure": the key material is in the clear. Prefer
    /// [`Keyset::to_encrypted_binary`].
    pub fn to_binary_insecure(&self) -> Zeroizing<Vec<u8>> {
        binary::write_keyset(self)
    }

    /// Encrypts the keyset with the key-encryption key `kek` and
    /// `associated_data` (Tink: `kek.encrypt(serialized Keyset, ad)`) and
    /// writes an `EncryptedKeyset` with its `keysetInfo` in Tink's JSON
    /// format.
    pub fn to_encrypted_json(
        &self,
        kek: &dyn encstore_core::Aead,
        associated_data: &[u8],
    ) -> Result<Vec<u8>, KeysetError> {
        let ciphertext = binary::wrap_keyset(kek, self, associated_data)?;
        Ok(json::write_encrypted(&ciphertext, &self.info()))
    }

    /// Encrypts the keyset like [`Keyset::to_encrypted_json`] and writes a
    /// binary `EncryptedKeyset` with its `keysetInfo`.
    pub fn to_encrypted_binary(
        &self,
        kek: &dyn encstore_core::Aead,
        associated_data: &[u8],
    ) -> Result<Vec<u8>, KeysetError> {
        let ciphertext = binary::wrap_keyset(kek, self, associated_data)?;
        Ok(binary::write_encrypted(ciphertext, &self.info()))
    }

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

    // ----------------------------------------------------------- manage

    /// Creates a keyset with one new key from `template`, as its primary.
    pub fn generate(template: &KeyTemplate) -> Result<Keyset, KeysetError> {
        Keyset::generate_with_provider(template, default_provider()?)
    }

    /// [`Keyset::generate`] with `provider` (see [`crate::provider`]):
    /// the new key's material and primitive come from it, and so do those
    /// of keys added later.
    ///
    /// # Errors
    /// Those of [`Keyset::generate`]; under `fips`, a template of a key type
    /// that is not FIPS-approved fails with [`KeysetError::Template`] and
    /// [`KeyError::NotFipsApproved`].
    pub fn generate_with_provider(
        template: &KeyTemplate,
        provider: &'static CryptoProvider,
    ) -> Result<Keyset, KeysetError> {
        let key = new_key(provider, template, &HashSet::new())?;
        let id = key.id;
        Ok(Keyset {
            primary_key_id: id,
            keys: vec![key],
            provider,
        })
    }

    /// The provider this keyset's primitives come from.
    pub fn provider(&self) -> &'static CryptoProvider {
        self.provider
    }

    /// This keyset with every key's primitive built again by `provider`:
    /// the same keys, IDs, statuses and bytes. Under `fips` this is where a
    /// keyset read under another provider is checked: a key that is not
    /// FIPS-approved (ENABLED or DISABLED) is refused.
    ///
    /// # Errors
    /// [`KeysetError::Key`] naming the key and, under `fips`,
    /// [`KeyError::NotFipsApproved`] naming its type.
    pub fn with_provider(&self, provider: &'static CryptoProvider) -> Result<Keyset, KeysetError> {
        let mut keys = self.keys.clone();
        for k in &mut keys {
            if k.primitive.is_some() {
                let (params, primitive) =
                    build_key(provider, &k.type_url, &k.value).map_err(|source| {
                        KeysetError::Key {
                            key_id: k.id,
                            source,
                        }
                    })?;
                k.params = Some(params);
                k.primitive = Some(primitive);
            }
        }
        Ok(Keyset {
            primary_key_id: self.primary_key_id,
            keys,
            provider,
        })
    }

    /// Adds a new ENABLED key from `template` (not primary) and returns its
    /// ID: random from the OS CSPRNG, non-zero and unique in the keyset.
    ///
    /// # Errors
    /// [`KeysetError::TemplatePrimitive`] when the template makes keys of
    /// another primitive than the keyset's (a streaming template for an
    /// AEAD keyset, or the reverse); the template's errors.
    pub fn add_key(&mut self, template: &KeyTemplate) -> Result<u32, KeysetError> {
        let ids: HashSet<u32> = self.keys.iter().map(|k| k.id).collect();
        let key = new_key(self.provider, template, &ids)?;
        let keyset = self.primitive();
        if let Some(p) = &key.primitive
            && p.kind() != keyset
        {
            return Err(KeysetError::TemplatePrimitive {
                template: p.kind(),
                keyset,
            });
        }
        let id = key.id;
        self.keys.push(key);
        Ok(id)
    }

    /// Adds a new key from `template` and makes it the primary (Tink's
    /// `rotate`). Returns its ID.
    pub fn rotate(&mut self, template: &KeyTemplate) -> Result<u32, KeysetError> {
        let id = self.add_key(template)?;
        self.primary_key_id = id;
        Ok(id)
    }

    /// Makes key `key_id` the primary. It must be ENABLED.
    pub fn promote(&mut self, key_id: u32) -> Result<(), KeysetError> {
        let key = self.find(key_id)?;
        if key.status != KeyStatus::Enabled {
            return Err(KeysetError::KeyNotEnabled {
                key_id,
                status: key.status,
            });
        }
        self.primary_key_id = key_id;
        Ok(())
    }

    /// Enables key `key_id` (ENABLED or DISABLED; a DESTROYED key cannot be
    /// enabled).
    pub fn enable(&mut self, key_id: u32) -> Result<(), KeysetError> {
        let key = self.find_mut(key_id)?;
        if key.status == KeyStatus::Destroyed {
            return Err(KeysetError::KeyDestroyed {
                key_id,
                operation: "enable",
            });
        }
        key.status = KeyStatus::Enabled;
        Ok(())
    }

    /// Disables key `key_id`. Not the primary; not a DESTROYED key.
    pub fn disable(&mut self, key_id: u32) -> Result<(), KeysetError> {
        self.refuse_primary(key_id, "disable")?;
        let key = self.find_mut(key_id)?;
        if key.status == KeyStatus::Destroyed {
            return Err(KeysetError::KeyDestroyed {
                key_id,
                operation: "disable",
            });
        }
        key.status = KeyStatus::Disabled;
        Ok(())
    }

    /// Destroys key `key_id`: wipes and drops its key data, keeps its ID,
    /// status DESTROYED. Not the primary. Destroying a destroyed key is
    /// allowed (Tink allows it too).
    pub fn destroy(&mut self, key_id: u32) -> Result<(), KeysetError> {
        self.refuse_primary(key_id, "destroy")?;
        let key = self.find_mut(key_id)?;
        key.status = KeyStatus::Destroyed;
        key.type_url.clear();
        key.material_type = KeyMaterialType::UnknownKeymaterial as i32;
        key.value = Zeroizing::new(Vec::new());
        key.has_key_data = false;
        key.params = None;
        key.primitive = None;
        Ok(())
    }

    /// Deletes key `key_id` from the keyset. Not the primary.
    pub fn delete(&mut self, key_id: u32) -> Result<(), KeysetError> {
        self.refuse_primary(key_id, "delete")?;
        let pos = self
            .keys
            .iter()
            .position(|k| k.id == key_id)
            .ok_or(KeysetError::KeyNotFound { key_id })?;
        self.keys.remove(pos);
        Ok(())
    }

    fn refuse_primary(&self, key_id: u32, operation: &'static str) -> Result<(), KeysetError> {
        if key_id == self.primary_key_id {
            return Err(KeysetError::PrimaryKey { key_id, operation });
        }
        Ok(())
    }

    fn find(&self, key_id: u32) -> Result<&Key, KeysetError> {
        self.keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or(KeysetError::KeyNotFound { key_id })
    }

    fn find_mut(&mut self, key_id: u32) -> Result<&mut Key, KeysetError> {
        self.keys
            .iter_mut()
            .find(|k| k.id == key_id)
            .ok_or(KeysetError::KeyNotFound { key_id })
    }

    // -------------------------------------------------------- validation

    /// Validates a decoded proto keyset with Tink's rules (and encstore's
    /// stricter ones, see the crate docs) and builds every live key's
    /// primitive. The proto's key bytes are wiped whatever the outcome.
    pub(crate) fn from_proto(
        proto: WipeOnDrop,
        provider: &'static CryptoProvider,
    ) -> Result<Keyset, KeysetError> {
        let proto = &proto.0;
        if proto.key.is_empty() {
            return Err(KeysetError::NoKeys);
        }
        // Structural checks first: they are cheap.
        let mut seen = HashSet::with_capacity(proto.key.len());
        let mut shapes = Vec::with_capacity(proto.key.len());
        for k in &proto.key {
            let key_id = k.key_id;
            let status =
                KeyStatus::from_proto(k.status).ok_or(KeysetError::UnknownStatus { key_id })?;
            let prefix = OutputPrefix::from_proto(k.output_prefix_type)
                .ok_or(KeysetError::UnknownOutputPrefix { key_id })?;
            if !seen.insert(key_id) {
                return Err(KeysetError::DuplicateKeyId { key_id });
            }
            if status != KeyStatus::Destroyed {
                let data = k
                    .key_data
                    .as_ref()
                    .ok_or(KeysetError::MissingKeyData { key_id })?;
                // Tink writes REMOTE for envelope keys (and Tink Java's old
                // KeyManager.newKeyData wrote SYMMETRIC).
                let remote_ok = envelope::is_envelope(&data.type_url)
                    && data.key_material_type == KeyMaterialType::Remote as i32;
                if data.key_material_type != KeyMaterialType::Symmetric as i32 && !remote_ok {
                    return Err(KeysetError::WrongKeyMaterialType {
                        key_id,
                        found: material_name(data.key_material_type),
                    });
                }
            }
            shapes.push((status, prefix));
        }
        let primary_key_id = proto.primary_key_id;
        match proto
            .key
            .iter()
            .zip(&shapes)
            .find(|(k, _)| k.key_id == primary_key_id)
        {
            None if primary_key_id == 0 => return Err(KeysetError::NoPrimary),
            None => return Err(KeysetError::PrimaryMissing { primary_key_id }),
            Some((_, (status, _))) if *status != KeyStatus::Enabled => {
                return Err(KeysetError::PrimaryNotEnabled {
                    key_id: primary_key_id,
                    status: *status,
                });
            }
            Some(_) => {}
        }
        // Key data: type URL, version, size, parameters; build primitives.
        let mut keys = Vec::with_capacity(proto.key.len());
        for (k, (status, prefix)) in proto.key.iter().zip(shapes) {
            let key_id = k.key_id;
            if status == KeyStatus::Destroyed {
                // Destroyed keys carry no usable material: any bytes found
                // are dropped (the proto is wiped on return).
                let (type_url, material_type, has_key_data) = match &k.key_data {
                    Some(d) => (d.type_url.clone(), d.key_material_type, true),
                    None => (String::new(), 0, false),
                };
                keys.push(Key {
                    id: key_id,
                    status,
                    prefix,
                    type_url,
                    material_type,
                    value: Zeroizing::new(Vec::new()),
                    has_key_data,
                    params: None,
                    primitive: None,
                });
                continue;
            }
            let data = k
                .key_data
                .as_ref()
                .ok_or(KeysetError::MissingKeyData { key_id })?;
            let (params, primitive) = build_key(provider, &data.type_url, &data.value)
                .map_err(|source| KeysetError::Key { key_id, source })?;
            if matches!(primitive, KeyPrimitive::Envelope(_)) {
                check_envelope_prefix(prefix)
                    .map_err(|source| KeysetError::Key { key_id, source })?;
            }
            keys.push(Key {
                id: key_id,
                status,
                prefix,
                type_url: data.type_url.clone(),
                material_type: data.key_material_type,
                value: Zeroizing::new(data.value.clone()),
                has_key_data: true,
                params: Some(params),
                primitive: Some(primitive),
            });
        }
        check_one_primitive(&keys)?;
        Ok(Keyset {
            primary_key_id,
            keys,
            provider,
        })
    }
}

/// Refuses keys of both primitives among the keys that are not destroyed
/// (Tink checks only ENABLED keys; a DISABLED key can be enabled again).
fn check_one_primitive(keys: &[Key]) -> Result<(), KeysetError> {
    let first_of = |kind| {
        keys.iter()
            .find(|k| k.primitive.as_ref().map(KeyPrimitive::kind) == Some(kind))
            .map(|k| k.id)
    };
    if let (Some(aead_key_id), Some(streaming_key_id)) = (
        first_of(PrimitiveKind::Aead),
        first_of(PrimitiveKind::StreamingAead),
    ) {
        return Err(KeysetError::MixedPrimitives {
            aead_key_id,
            streaming_key_id,
        });
    }
    Ok(())
}

/// Tink Java and C++ parse KMS envelope keys with a TINK or RAW output
/// prefix only (`LegacyKmsEnvelopeAeadProtoSerialization`).
fn check_envelope_prefix(prefix: OutputPrefix) -> Result<(), KeyError> {
    match prefix {
        OutputPrefix::Tink | OutputPrefix::Raw => Ok(()),
        OutputPrefix::Legacy | OutputPrefix::Crunchy => Err(KeyError::InvalidParameter {
            key_type: "KmsEnvelopeAeadKey",
            what: format!(
                "output prefix type {prefix}; Tink allows TINK or RAW for KMS envelope keys"
            ),
        }),
    }
}

/// Tink's name for a key material type, or its number if unknown.
fn material_name(v: i32) -> String {
    match KeyMaterialType::try_from(v) {
        Ok(t) => t.as_str_name().to_owned(),
        Err(_) => v.to_string(),
    }
}

/// A random key ID from the OS CSPRNG: non-zero and not in `taken`.
/// Tink Java (`internal/Util.randKeyId`, `KeysetManager.newKeyId`) draws
/// all 32 bits, refuses 0, and redraws while the ID is in use.
pub(crate) fn new_key_id(
    provider: &CryptoProvider,
    taken: &HashSet<u32>,
) -> Result<u32, KeysetError> {
    loop {
        let id = provider
            .random_u32()
            .map_err(|()| KeysetError::Randomness)?;
        if id != 0 && !taken.contains(&id) {
            return Ok(id);
        }
    }
}

/// Generates a new ENABLED key from a template.
fn new_key(
    provider: &'static CryptoProvider,
    template: &KeyTemplate,
    taken: &HashSet<u32>,
) -> Result<Key, KeysetError> {
    let value = new_key_value(provider, template.type_url(), template.key_format()).map_err(
        |e| match e {
            KeyError::Randomness => KeysetError::Randomness,
            e => KeysetError::Template(e),
        },
    )?;
    let (params, primitive) =
        build_key(provider, template.type_url(), &value).map_err(KeysetError::Template)?;
    let material_type = if let KeyPrimitive::Envelope(_) = primitive {
        check_envelope_prefix(template.output_prefix()).map_err(KeysetError::Template)?;
        // What Tink writes for an envelope key: its key lives in a KMS.
        KeyMaterialType::Remote
    } else {
        KeyMaterialType::Symmetric
    };
    let id = new_key_id(provider, taken)?;
    Ok(Key {
        id,
        status: KeyStatus::Enabled,
        prefix: template.output_prefix(),
        type_url: template.type_url().to_owned(),
        material_type: material_type as i32,
        value,
        has_key_data: true,
        params: Some(params),
        primitive: Some(primitive),
    })
}

/// Decodes `bytes` into `msg` (prost's `merge`); when decoding fails
/// part-way, `wipe` is called on the partly decoded message before the
/// error is returned, so key bytes decoded before the failure do not
/// outlive it unwiped (prost's own `decode` drops the partial message as
/// is).
pub(crate) fn merge_or_wipe<M: prost::Message>(
    msg: &mut M,
    bytes: &[u8],
    wipe: impl FnOnce(&mut M),
) -> Result<(), prost::DecodeError> {
    let r = msg.merge(bytes);
    if r.is_err() {
        wipe(msg);
    }
    r
}

/// Wipes the key bytes of a `Keyset.Key` proto.
pub(crate) fn wipe_key_proto(k: &mut tink_proto::keyset::Key) {
    use zeroize::Zeroize;
    if let Some(d) = &mut k.key_data {
        d.value.zeroize();
    }
}

/// A decoded proto `Keyset` whose key bytes are wiped when it is dropped
/// (the tink-proto structs derive `Debug` with the key bytes and do not
/// zeroize: they never leave this module).
pub(crate) struct WipeOnDrop(pub(crate) tink_proto::Keyset);

impl Drop for WipeOnDrop {
    fn drop(&mut self) {
        for k in &mut self.0.key {
            wipe_key_proto(k);
        }
    }
}

#[cfg(test)]
mod wipe_tests {
    #![allow(clippy::unwrap_used)]
    use prost::Message;

    use super::*;

    /// A `Keyset` proto with one key whose key data is 32 bytes of 0xAA,
    /// followed by a field that is cut short: prost decodes the key, then
    /// fails.
    fn truncated_keyset() -> Vec<u8> {
        let ks = tink_proto::Keyset {
            primary_key_id: 7,
            key: vec![tink_proto::keyset::Key {
                key_data: Some(tink_proto::KeyData {
                    type_url: "type.googleapis.com/google.crypto.tink.AesGcmKey".into(),
                    value: vec![0xAA; 32],
                    key_material_type: 1,
                }),
                status: 1,
                key_id: 7,
                output_prefix_type: 1,
            }],
        };
        let mut bytes = ks.encode_to_vec();
        // Field 2 (a key), length 100, but only 3 bytes follow.
        bytes.extend_from_slice(&[0x12, 100, 1, 2, 3]);
        bytes
    }

    #[test]
    fn a_failed_keyset_decode_wipes_what_it_decoded() {
        let bytes = truncated_keyset();
        // prost leaves the key bytes decoded so far in the partial message
        // (which its `decode` drops without wiping).
        let mut plain = tink_proto::Keyset::default();
        assert!(plain.merge(&bytes[..]).is_err());
        let leaked = plain.key[0].key_data.as_ref().unwrap().value.clone();
        assert_eq!(leaked, vec![0xAA; 32]);
        // merge_or_wipe wipes them before returning the error.
        let mut msg = tink_proto::Keyset::default();
        let r = merge_or_wipe(&mut msg, &bytes, |m| {
            for k in &mut m.key {
                wipe_key_proto(k);
            }
        });
        assert!(r.is_err());
        assert!(msg.key.iter().all(|k| {
            k.key_data
                .as_ref()
                .is_none_or(|d| d.value.iter().all(|b| *b == 0))
        }));
        // And the parser built on it reports the error.
        assert!(matches!(
            binary::parse_keyset(&bytes),
            Err(KeysetError::MalformedProtobuf { .. })
        ));
    }
}
