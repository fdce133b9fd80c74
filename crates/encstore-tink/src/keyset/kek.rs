//! Encrypted keysets wrapped by an async key-encryption key
//! ([`encstore_core::Kek`]): an HSM, a KMS, or a master keyset.
//!
//! The bytes are exactly Tink's `EncryptedKeyset`, as with the synchronous
//! [`Keyset::write`] and [`KeysetProtection::Encrypted`](super::KeysetProtection::Encrypted):
//! `encryptedKeyset` is the KEK's encryption of the serialized `Keyset`
//! with the keyset associated data.

use encstore_core::{Kek, KekError};
use zeroize::Zeroizing;

use super::{Keyset, KeysetEncoding, KeysetFormat, binary, detect_format, json};
use crate::error::{KeysetError, SharedKekError};

fn kek_error(e: KekError, unwrapping: bool) -> KeysetError {
    match e {
        KekError::Authentication if unwrapping => KeysetError::Decryption,
        other => KeysetError::Kek {
            error: SharedKekError::new(other),
        },
    }
}

impl Keyset {
    /// Reads an `EncryptedKeyset`, JSON or binary (detected), and unwraps
    /// it with `kek` and `associated_data`.
    ///
    /// # Errors
    /// [`KeysetError::UnexpectedCleartext`] for a cleartext keyset,
    /// [`KeysetError::Decryption`] when the KEK does not authenticate it,
    /// [`KeysetError::Kek`] when the KEK is unavailable or fails, and every
    /// validation error of the unwrapped keyset.
    pub async fn read_with_kek(
        bytes: &[u8],
        kek: &dyn Kek,
        associated_data: &[u8],
    ) -> Result<Keyset, KeysetError> {
        let ciphertext = match detect_format(bytes) {
            KeysetFormat::EncryptedJson => json::parse_encrypted(bytes)?,
            KeysetFormat::EncryptedBinary => binary::parse_encrypted(bytes)?,
            KeysetFormat::Json | KeysetFormat::Binary => {
                return Err(KeysetError::UnexpectedCleartext);
            }
        };
        let plain = Zeroizing::new(
            kek.unwrap(&ciphertext, associated_data)
                .await
                .map_err(|e| kek_error(e, true))?,
        );
        Keyset::from_binary_insecure(&plain)
    }

    async fn wrap_with_kek(
        &self,
        kek: &dyn Kek,
        associated_data: &[u8],
    ) -> Result<Vec<u8>, KeysetError> {
        let plain = binary::write_keyset(self);
        let ciphertext = kek
            .wrap(&plain, associated_data)
            .await
            .map_err(|e| kek_error(e, false))?;
        // Like Tink Java, check that the wrapped keyset unwraps to the same
        // bytes before anyone writes it out.
        let check = Zeroizing::new(
            kek.unwrap(&ciphertext, associated_data)
                .await
                .map_err(|e| kek_error(e, false))?,
        );
        if check.as_slice() != plain.as_slice() {
            return Err(KeysetError::Encryption);
        }
        Ok(ciphertext)
    }

    /// Wraps the keyset with `kek` and `associated_data` and writes an
    /// `EncryptedKeyset` with its `keysetInfo` in `encoding`. Like Tink
    /// Java, the wrapped keyset is unwrapped again and must give the same
    /// bytes before anything is returned.
    ///
    /// # Errors
    /// [`KeysetError::Kek`] or [`KeysetError::Encryption`] when the KEK
    /// fails; nothing is returned to write in that case.
    pub async fn write_with_kek(
        &self,
        encoding: KeysetEncoding,
        kek: &dyn Kek,
        associated_data: &[u8],
    ) -> Result<Vec<u8>, KeysetError> {
        let ciphertext = self.wrap_with_kek(kek, associated_data).await?;
        Ok(match encoding {
            KeysetEncoding::Json => json::write_encrypted(&ciphertext, &self.info()),
            KeysetEncoding::Binary => binary::write_encrypted(ciphertext, &self.info()),
        })
    }

    /// Re-wraps an `EncryptedKeyset` (JSON or binary, detected) under the
    /// master key's newest version, for the same `associated_data`, and
    /// writes it back in the same format: a keyset file's own wrapping
    /// after a master-key rotation (`bao write -f
    /// transit/keys/NAME/rotate`).
    ///
    /// The wrapping moves with [`Kek::rewrap`] (Vault: transit's `rewrap`
    /// endpoint). Before anything is returned, the old and new wrappings
    /// are both unwrapped and must give the same valid keyset (two more
    /// KMS calls; a keyset file is re-wrapped rarely). The clear
    /// `keysetInfo` is written from the keyset itself.
    ///
    /// # Errors
    /// [`KeysetError::UnexpectedCleartext`] for a cleartext keyset,
    /// [`KeysetError::Decryption`] when `kek` does not unwrap it,
    /// [`KeysetError::Kek`] when the KEK fails, [`KeysetError::Encryption`]
    /// when the re-wrapped keyset does not unwrap to the same bytes, and
    /// every validation error of the keyset.
    pub async fn rewrap_encrypted(
        bytes: &[u8],
        kek: &dyn Kek,
        associated_data: &[u8],
    ) -> Result<Vec<u8>, KeysetError> {
        let format = detect_format(bytes);
        let ciphertext = match format {
            KeysetFormat::EncryptedJson => json::parse_encrypted(bytes)?,
            KeysetFormat::EncryptedBinary => binary::parse_encrypted(bytes)?,
            KeysetFormat::Json | KeysetFormat::Binary => {
                return Err(KeysetError::UnexpectedCleartext);
            }
        };
        let old = Zeroizing::new(
            kek.unwrap(&ciphertext, associated_data)
                .await
                .map_err(|e| kek_error(e, true))?,
        );
        let keyset = Keyset::from_binary_insecure(&old)?;
        let rewrapped = kek
            .rewrap(&ciphertext, associated_data)
            .await
            .map_err(|e| kek_error(e, false))?;
        let check = Zeroizing::new(
            kek.unwrap(&rewrapped, associated_data)
                .await
                .map_err(|e| kek_error(e, false))?,
        );
        if check.as_slice() != old.as_slice() {
            return Err(KeysetError::Encryption);
        }
        Ok(if format.is_json() {
            json::write_encrypted(&rewrapped, &keyset.info())
        } else {
            binary::write_encrypted(rewrapped, &keyset.info())
        })
    }
}
