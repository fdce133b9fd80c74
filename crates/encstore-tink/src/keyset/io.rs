//! Reading and writing keysets: JSON and binary, cleartext and encrypted.

use zeroize::Zeroizing;

use super::{Keyset, KeysetFormat, binary, default_provider, detect_format, json};
use crate::error::KeysetError;
use crate::provider::CryptoProvider;

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
    /// [`KeyError::NotFipsApproved`](crate::error::KeyError::NotFipsApproved).
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
}
