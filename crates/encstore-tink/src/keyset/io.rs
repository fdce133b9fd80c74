//! Reading and writing keysets: JSON and binary, cleartext and encrypted.
//!
//! Every read and write says whether the keyset is encrypted: in its name
//! (`*_insecure`: cleartext; `*_with_kek`: wrapped by an async
//! [`encstore_core::Kek`]) or with an explicit [`KeysetProtection`].

use std::fmt;

use zeroize::Zeroizing;

use super::{Keyset, KeysetFormat, binary, default_provider, detect_format, json};
use crate::error::KeysetError;
use crate::provider::CryptoProvider;

/// How a keyset is protected at rest: the choice every
/// [`Keyset::read`] and [`Keyset::write`] spells out.
#[derive(Clone, Copy)]
pub enum KeysetProtection<'a> {
    /// A cleartext keyset: the key material is stored in the clear
    /// (Tink's `insecure` cleartext keysets). Reading an encrypted keyset
    /// this way fails with [`KeysetError::UnexpectedEncrypted`].
    Cleartext,
    /// An `EncryptedKeyset`: the serialized keyset encrypted by the
    /// key-encryption key `kek` with `associated_data` (empty unless the
    /// keyset was written with some), as Tink does. Reading a cleartext
    /// keyset this way fails with [`KeysetError::UnexpectedCleartext`].
    Encrypted {
        /// The key-encryption key (a master keyset's AEAD, an HSM key).
        kek: &'a dyn encstore_core::Aead,
        /// The keyset associated data.
        associated_data: &'a [u8],
    },
}

impl<'a> KeysetProtection<'a> {
    /// [`KeysetProtection::Encrypted`] with `kek` and `associated_data`.
    pub fn encrypted(kek: &'a dyn encstore_core::Aead, associated_data: &'a [u8]) -> Self {
        KeysetProtection::Encrypted {
            kek,
            associated_data,
        }
    }

    /// Whether this is [`KeysetProtection::Encrypted`].
    pub fn is_encrypted(&self) -> bool {
        matches!(self, KeysetProtection::Encrypted { .. })
    }
}

/// Shows which protection, never the key-encryption key.
impl fmt::Debug for KeysetProtection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeysetProtection::Cleartext => f.write_str("Cleartext"),
            KeysetProtection::Encrypted {
                associated_data, ..
            } => f
                .debug_struct("Encrypted")
                .field("associated_data_len", &associated_data.len())
                .finish_non_exhaustive(),
        }
    }
}

/// The serialization of a keyset file: Tink's JSON or binary (protobuf).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeysetEncoding {
    /// Tink's JSON format (as Tink Java and Tinkey write it).
    Json,
    /// Tink's binary format (protobuf `Keyset` or `EncryptedKeyset`).
    Binary,
}

impl KeysetEncoding {
    /// The encoding of a detected [`KeysetFormat`].
    pub fn of(format: KeysetFormat) -> KeysetEncoding {
        if format.is_json() {
            KeysetEncoding::Json
        } else {
            KeysetEncoding::Binary
        }
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
    /// prefer an encrypted keyset ([`Keyset::read`] with
    /// [`KeysetProtection::Encrypted`]).
    pub fn from_json_insecure(json: &[u8]) -> Result<Keyset, KeysetError> {
        let proto = json::parse_keyset(json)?;
        Keyset::from_proto(proto, default_provider()?)
    }

    /// Reads a cleartext keyset in Tink's binary (protobuf `Keyset`) format.
    ///
    /// "Insecure" because the key material is stored in the clear; prefer
    /// an encrypted keyset ([`Keyset::read`] with
    /// [`KeysetProtection::Encrypted`]).
    pub fn from_binary_insecure(bytes: &[u8]) -> Result<Keyset, KeysetError> {
        let proto = binary::parse_keyset(bytes)?;
        Keyset::from_proto(proto, default_provider()?)
    }

    /// Reads a keyset in any of the four forms (JSON or binary, cleartext
    /// or encrypted), told apart with [`detect_format`], protected as
    /// `protection` says: a cleartext keyset with
    /// [`KeysetProtection::Cleartext`], an `EncryptedKeyset` with
    /// [`KeysetProtection::Encrypted`] (decrypted with its `kek` and
    /// `associated_data`, as Tink does).
    ///
    /// # Errors
    /// [`KeysetError::UnexpectedEncrypted`] for an encrypted keyset read as
    /// cleartext, [`KeysetError::UnexpectedCleartext`] for a cleartext one
    /// read with a key-encryption key (a master key was expected),
    /// [`KeysetError::Decryption`] when the key-encryption key does not
    /// decrypt it, the malformed-JSON or malformed-protobuf errors, and
    /// every validation error of the keyset.
    pub fn read(bytes: &[u8], protection: KeysetProtection<'_>) -> Result<Keyset, KeysetError> {
        Keyset::read_with_provider(bytes, protection, default_provider()?)
    }

    /// Reads a keyset declared to be in `encoding` (no detection: JSON
    /// bytes read as binary fail as malformed protobuf, and the reverse),
    /// protected as `protection` says. For files whose format is given by
    /// the user or configuration rather than guessed.
    ///
    /// # Errors
    /// Those of [`Keyset::read`], and the malformed-JSON or
    /// malformed-protobuf errors when the bytes are not in `encoding`.
    pub fn read_as(
        bytes: &[u8],
        encoding: KeysetEncoding,
        protection: KeysetProtection<'_>,
    ) -> Result<Keyset, KeysetError> {
        let proto = match (encoding, protection) {
            (KeysetEncoding::Json, KeysetProtection::Cleartext) => json::parse_keyset(bytes)?,
            (KeysetEncoding::Binary, KeysetProtection::Cleartext) => binary::parse_keyset(bytes)?,
            (
                encoding,
                KeysetProtection::Encrypted {
                    kek,
                    associated_data,
                },
            ) => {
                let encrypted = match encoding {
                    KeysetEncoding::Json => json::parse_encrypted(bytes)?,
                    KeysetEncoding::Binary => binary::parse_encrypted(bytes)?,
                };
                let plain = binary::unwrap_keyset(kek, &encrypted, associated_data)?;
                binary::parse_keyset(&plain)?
            }
        };
        Keyset::from_proto(proto, default_provider()?)
    }

    /// [`Keyset::read`] with `provider` instead of the process default
    /// (see [`crate::provider`]): every key's primitive, and keys added
    /// later, come from it. The key-encryption key is whatever it is (an
    /// AEAD of its own, such as an HSM or a master keyset read under its
    /// own provider).
    ///
    /// # Errors
    /// Those of [`Keyset::read`]; under `fips`, a key that is not
    /// FIPS-approved is refused with [`KeysetError::Key`] and
    /// [`KeyError::NotFipsApproved`](crate::error::KeyError::NotFipsApproved).
    pub fn read_with_provider(
        bytes: &[u8],
        protection: KeysetProtection<'_>,
        provider: &'static CryptoProvider,
    ) -> Result<Keyset, KeysetError> {
        let format = detect_format(bytes);
        let proto = match (format, protection) {
            (KeysetFormat::Json, KeysetProtection::Cleartext) => json::parse_keyset(bytes)?,
            (KeysetFormat::Binary, KeysetProtection::Cleartext) => binary::parse_keyset(bytes)?,
            (
                KeysetFormat::EncryptedJson | KeysetFormat::EncryptedBinary,
                KeysetProtection::Encrypted {
                    kek,
                    associated_data,
                },
            ) => {
                let encrypted = if format.is_json() {
                    json::parse_encrypted(bytes)?
                } else {
                    binary::parse_encrypted(bytes)?
                };
                let plain = binary::unwrap_keyset(kek, &encrypted, associated_data)?;
                binary::parse_keyset(&plain)?
            }
            (
                KeysetFormat::EncryptedJson | KeysetFormat::EncryptedBinary,
                KeysetProtection::Cleartext,
            ) => {
                return Err(KeysetError::UnexpectedEncrypted);
            }
            (KeysetFormat::Json | KeysetFormat::Binary, KeysetProtection::Encrypted { .. }) => {
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
    /// "Insecure": the key material is in the clear. Prefer an encrypted
    /// keyset ([`Keyset::write`] with [`KeysetProtection::Encrypted`]).
    pub fn to_json_insecure(&self) -> Zeroizing<Vec<u8>> {
        json::write_keyset(self)
    }

    /// Writes the keyset as a cleartext binary protobuf `Keyset`. The
    /// result holds key material and is zeroized on drop.
    ///
    /// "Insecure": the key material is in the clear. Prefer an encrypted
    /// keyset ([`Keyset::write`] with [`KeysetProtection::Encrypted`]).
    pub fn to_binary_insecure(&self) -> Zeroizing<Vec<u8>> {
        binary::write_keyset(self)
    }

    /// Writes the keyset in `encoding`, protected as `protection` says:
    /// cleartext (as [`Keyset::to_json_insecure`] and
    /// [`Keyset::to_binary_insecure`] write it), or an `EncryptedKeyset`
    /// with its `keysetInfo`: the serialized keyset encrypted with the
    /// key-encryption key and associated data (Tink:
    /// `kek.encrypt(serialized Keyset, ad)`), checked to decrypt back to
    /// the same bytes before it is returned. The result is zeroized on drop
    /// (it holds key material when cleartext).
    ///
    /// # Errors
    /// [`KeysetError::Encryption`] when the key-encryption key fails or its
    /// ciphertext does not decrypt back to the keyset; nothing is returned
    /// to write in that case.
    pub fn write(
        &self,
        encoding: KeysetEncoding,
        protection: KeysetProtection<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, KeysetError> {
        Ok(match (encoding, protection) {
            (KeysetEncoding::Json, KeysetProtection::Cleartext) => json::write_keyset(self),
            (KeysetEncoding::Binary, KeysetProtection::Cleartext) => binary::write_keyset(self),
            (
                encoding,
                KeysetProtection::Encrypted {
                    kek,
                    associated_data,
                },
            ) => {
                let ciphertext = binary::wrap_keyset(kek, self, associated_data)?;
                Zeroizing::new(match encoding {
                    KeysetEncoding::Json => json::write_encrypted(&ciphertext, &self.info()),
                    KeysetEncoding::Binary => binary::write_encrypted(ciphertext, &self.info()),
                })
            }
        })
    }
}
