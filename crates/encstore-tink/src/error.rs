//! Typed errors for keysets and keys. No variant carries key material.

use std::fmt;
use std::sync::Arc;

use encstore_core::KekError;

/// A problem with one key's data: its type, version, size or parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The type URL is not one Tink knows.
    #[error("unknown key type URL {type_url:?}")]
    UnknownTypeUrl {
        /// The refused type URL.
        type_url: String,
    },
    /// The type URL is a Tink type, but not an AEAD.
    #[error("key type {type_url:?} is not an AEAD key type")]
    NotAead {
        /// The refused type URL.
        type_url: String,
    },
    /// The key proto's `version` is newer than Tink supports (Tink refuses
    /// any version above 0).
    #[error("{key_type} key version {version} is not supported (only version 0 is)")]
    UnsupportedVersion {
        /// Short key type name, such as `AesGcmKey`.
        key_type: &'static str,
        /// The version found.
        version: u32,
    },
    /// The key material has a size the key type does not allow.
    #[error("{key_type} key is {size} bytes; allowed: {allowed}")]
    WrongKeySize {
        /// Short key type name.
        key_type: &'static str,
        /// The size found, in bytes.
        size: usize,
        /// The allowed sizes, in words.
        allowed: &'static str,
    },
    /// The type URL is a Tink AEAD whose key material lives in a KMS and
    /// that encstore does not implement (`KmsAeadKey`; `KmsEnvelopeAeadKey`
    /// is implemented by [`crate::envelope`], not by the raw primitives).
    #[error("AEAD key type {type_url:?} is not supported (its key lives in a KMS)")]
    UnsupportedAead {
        /// The refused type URL.
        type_url: String,
    },
    /// A KMS envelope key (or envelope DEK template) names a DEK type that
    /// Tink does not allow in envelopes (see
    /// [`crate::envelope::DEK_TYPES`]).
    #[error(
        "KMS envelope DEK type {type_url:?} is not allowed; Tink allows AesGcmKey, AesGcmSivKey, AesCtrHmacAeadKey, AesEaxKey, ChaCha20Poly1305Key and XChaCha20Poly1305Key"
    )]
    UnsupportedDek {
        /// The refused DEK type URL.
        type_url: String,
    },
    /// A KMS envelope key's DEK template has a key format its DEK type
    /// refuses.
    #[error("the KMS envelope DEK template is invalid: {dek}")]
    InvalidDekTemplate {
        /// What the DEK type refused.
        dek: Box<KeyError>,
    },
    /// A parameter is outside what Tink allows.
    #[error("{key_type} has an invalid parameter: {what}")]
    InvalidParameter {
        /// Short key type name.
        key_type: &'static str,
        /// Which parameter and what is allowed.
        what: String,
    },
    /// The key's serialized proto does not parse.
    #[error("{key_type} key data is not a valid protobuf")]
    MalformedKey {
        /// Short key type name.
        key_type: &'static str,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Randomness,
    /// The key type, or one of its parameters, is not FIPS-approved, and
    /// the keyset's crypto provider is `fips` (AWS-LC's FIPS 140-3
    /// module): such a key is refused when created, read or used.
    #[error("{key_type} is not FIPS-approved in this build (crypto provider \"fips\"): {reason}")]
    NotFipsApproved {
        /// Short key type name, such as `ChaCha20Poly1305Key`.
        key_type: &'static str,
        /// Why, in words.
        reason: &'static str,
    },
    /// The process has no usable crypto provider (see
    /// [`crate::provider`]), such as the FIPS module not in FIPS mode.
    #[error("crypto provider: {0}")]
    Provider(crate::provider::ProviderError),
}

/// Why a keyset could not be read, written, validated or changed.
///
/// Messages never contain key material or echo the input: a malformed JSON
/// keyset is reported with a fixed description and its line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeysetError {
    /// The keyset has no keys at all.
    #[error("the keyset contains no keys")]
    NoKeys,
    /// The keyset names no primary key (`primaryKeyId` is absent or 0, and
    /// no key has ID 0).
    #[error("the keyset has no primary key")]
    NoPrimary,
    /// `primaryKeyId` names a key ID that no key in the keyset has.
    #[error("the primary key {primary_key_id} is not in the keyset")]
    PrimaryMissing {
        /// The primary key ID the keyset names.
        primary_key_id: u32,
    },
    /// The primary key exists but is not ENABLED.
    #[error("the primary key {key_id} is {status}, not ENABLED")]
    PrimaryNotEnabled {
        /// The primary key ID.
        key_id: u32,
        /// Its status.
        status: crate::keyset::KeyStatus,
    },
    /// Two keys of the keyset have the same ID.
    #[error("key ID {key_id} is used by more than one key")]
    DuplicateKeyId {
        /// The repeated key ID.
        key_id: u32,
    },
    /// A key's status is UNKNOWN_STATUS or a value Tink does not define.
    #[error("key {key_id} has an unknown status")]
    UnknownStatus {
        /// The key at fault.
        key_id: u32,
    },
    /// A key's output prefix type is UNKNOWN_PREFIX or a value Tink does
    /// not define.
    #[error("key {key_id} has an unknown output prefix type")]
    UnknownOutputPrefix {
        /// The key at fault.
        key_id: u32,
    },
    /// A key that is not DESTROYED has no key data.
    #[error("key {key_id} has no key data")]
    MissingKeyData {
        /// The key at fault.
        key_id: u32,
    },
    /// A key's `keyMaterialType` is not SYMMETRIC (every AEAD key is; a
    /// KMS envelope key may also be REMOTE, which Tink writes for it).
    #[error(
        "key {key_id} has key material type {found}; AEAD keys are SYMMETRIC (KMS envelope keys REMOTE or SYMMETRIC)"
    )]
    WrongKeyMaterialType {
        /// The key at fault.
        key_id: u32,
        /// The material type found, as Tink names it (or its number).
        found: String,
    },
    /// A key's data is refused: unknown or non-AEAD type URL, wrong key
    /// size, unsupported version, bad parameters or a malformed key proto.
    #[error("key {key_id}: {source}")]
    Key {
        /// The key at fault.
        key_id: u32,
        /// What is wrong with it.
        source: KeyError,
    },
    /// The JSON text is not a well-formed Tink JSON keyset. Only a fixed
    /// description and the position are reported, never the input.
    #[error("malformed JSON keyset at line {line} column {column}: {problem}")]
    MalformedJson {
        /// What is wrong, in fixed words.
        problem: &'static str,
        /// 1-based line of the problem (0 if unknown).
        line: usize,
        /// 1-based column of the problem (0 if unknown).
        column: usize,
    },
    /// The bytes are not a valid protobuf of the expected message.
    #[error("malformed binary keyset: not a valid {message} protobuf")]
    MalformedProtobuf {
        /// The expected message: `Keyset` or `EncryptedKeyset`.
        message: &'static str,
    },
    /// The input is an encrypted keyset, but was read as cleartext.
    #[error("this is an encrypted keyset; read it with its key-encryption key")]
    UnexpectedEncrypted,
    /// The input is a cleartext keyset, but was read as an encrypted one.
    #[error("this is a cleartext keyset, not an encrypted one")]
    UnexpectedCleartext,
    /// The encrypted keyset did not decrypt under the key-encryption key and
    /// associated data (wrong master key, wrong associated data, or
    /// tampering).
    #[error(
        "the encrypted keyset does not decrypt with this key-encryption key and associated data"
    )]
    Decryption,
    /// The key-encryption key failed to encrypt the keyset, or the result
    /// did not decrypt back to the same keyset.
    #[error("the key-encryption key failed to encrypt the keyset")]
    Encryption,
    /// The key-encryption key (an HSM, a KMS) was unavailable or failed:
    /// `master key: ` and the KEK's one line, with no secret in it. The
    /// typed [`KekError`] is [`KeysetError::kek_error`] (and
    /// [`SharedKekError::kek_error`]); the KEK crate's own error, such as
    /// `encstore_pkcs11::Pkcs11Error`, is [`KekError::downcast_ref`] of it.
    /// The `source()` chain goes on with that error's own sources, so
    /// printing the whole chain shows each line once.
    #[error(transparent)]
    Kek {
        /// What the KEK said.
        error: SharedKekError,
    },
    /// No key with this ID is in the keyset.
    #[error("key {key_id} is not in the keyset")]
    KeyNotFound {
        /// The requested key ID.
        key_id: u32,
    },
    /// The operation is not allowed on the primary key (disable, destroy,
    /// delete).
    #[error("cannot {operation} key {key_id}: it is the primary key")]
    PrimaryKey {
        /// The primary key ID.
        key_id: u32,
        /// The refused operation, such as `disable`.
        operation: &'static str,
    },
    /// Only ENABLED keys can be promoted to primary.
    #[error("cannot promote key {key_id}: it is {status}, not ENABLED")]
    KeyNotEnabled {
        /// The key ID.
        key_id: u32,
        /// Its status.
        status: crate::keyset::KeyStatus,
    },
    /// The key is DESTROYED; it cannot be enabled or disabled.
    #[error("cannot {operation} key {key_id}: it is DESTROYED")]
    KeyDestroyed {
        /// The key ID.
        key_id: u32,
        /// The refused operation, such as `enable`.
        operation: &'static str,
    },
    /// No key template has this name (see [`crate::templates::NAMES`]).
    #[error("unknown key template {name:?}")]
    UnknownTemplate {
        /// The name asked for.
        name: String,
    },
    /// A new key could not be created from a template.
    #[error("cannot create a key from the template: {0}")]
    Template(KeyError),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Randomness,
    /// The keyset holds both AEAD and streaming AEAD keys (among the keys
    /// that are not destroyed). Google's Tink refuses such a keyset
    /// ("Wrong primitive class"), so encstore neither reads nor writes one.
    #[error(
        "the keyset mixes AEAD key {aead_key_id} and streaming AEAD key {streaming_key_id}; a keyset holds the keys of one primitive (Google's Tink refuses a mixed keyset)"
    )]
    MixedPrimitives {
        /// An AEAD key of the keyset.
        aead_key_id: u32,
        /// A streaming AEAD key of the keyset.
        streaming_key_id: u32,
    },
    /// No crypto provider can be used: `ENCSTORE_CRYPTO_PROVIDER` names an
    /// unknown or absent one, or the FIPS module is not in FIPS mode (see
    /// [`crate::provider`]).
    #[error("crypto provider: {0}")]
    Provider(crate::provider::ProviderError),
    /// The keyset's keys are of another primitive than the one asked for
    /// ([`crate::Keyset::aead`] on a streaming keyset, or
    /// [`crate::Keyset::streaming_aead`] on an AEAD keyset).
    #[error("this keyset holds {found} keys, not {wanted} keys")]
    WrongPrimitive {
        /// The primitive asked for.
        wanted: crate::keyset::PrimitiveKind,
        /// The keyset's primitive.
        found: crate::keyset::PrimitiveKind,
    },
    /// The keyset holds an ENABLED KMS envelope key
    /// (`KmsEnvelopeAeadKey`): encrypting or decrypting with it calls a
    /// KMS, which the synchronous [`crate::KeysetAead`] never does. Use
    /// [`crate::envelope::KeysetAsyncAead`].
    #[error(
        "key {key_id} is a KMS envelope key (KmsEnvelopeAeadKey): it encrypts and decrypts through a KMS, so this keyset needs the async AEAD (encstore_tink::envelope::KeysetAsyncAead), not the synchronous Keyset::aead"
    )]
    NeedsAsyncAead {
        /// The (first) ENABLED envelope key.
        key_id: u32,
    },
    /// The template makes keys of another primitive than the keyset's.
    #[error(
        "the template makes {template} keys, but this keyset holds {keyset} keys; a keyset holds the keys of one primitive (Google's Tink refuses a mixed keyset)"
    )]
    TemplatePrimitive {
        /// The template's primitive.
        template: crate::keyset::PrimitiveKind,
        /// The keyset's primitive.
        keyset: crate::keyset::PrimitiveKind,
    },
}

impl KeysetError {
    /// The KEK's typed error, for [`KeysetError::Kek`].
    pub fn kek_error(&self) -> Option<&KekError> {
        match self {
            KeysetError::Kek { error } => Some(error.kek_error()),
            _ => None,
        }
    }
}

/// The [`KekError`] of a [`KeysetError::Kek`], shared so that
/// [`KeysetError`] stays `Clone`. It displays as `master key: ` and the
/// `KekError`'s message; its `source()` is the `KekError`'s (the sources of
/// the KEK crate's error, which [`KekError::downcast_ref`] reaches), so no
/// message appears twice in the chain.
///
/// Two are equal when their `KekError`s are the same variant
/// (`Authentication`, `InvalidUri`, `Unavailable`, `Failed`): the KEK
/// crates' inner errors have no equality of their own.
#[derive(Debug, Clone)]
pub struct SharedKekError(Arc<KekError>);

impl SharedKekError {
    /// Wraps `error`.
    pub fn new(error: KekError) -> Self {
        SharedKekError(Arc::new(error))
    }

    /// The KEK's typed error.
    pub fn kek_error(&self) -> &KekError {
        &self.0
    }
}

impl From<KekError> for SharedKekError {
    fn from(error: KekError) -> Self {
        SharedKekError::new(error)
    }
}

impl PartialEq for SharedKekError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(&*self.0) == std::mem::discriminant(&*other.0)
    }
}

impl Eq for SharedKekError {}

impl fmt::Display for SharedKekError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "master key: {}", self.0)
    }
}

impl std::error::Error for SharedKekError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}
