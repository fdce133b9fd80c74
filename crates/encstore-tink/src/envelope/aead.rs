//! [`EnvelopeAead`]: one envelope key's AEAD, and [`rewrap_envelope`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use encstore_core::{AeadError, Kek, KekError, MasterKeyVersion};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::dek::DekTemplate;
use super::{
    DEK_LEN_BYTES, EnvelopeError, EnvelopeOptions, append_encrypted_dek, shown_uri, split,
    unwrap_error,
};
use crate::templates::KeyTemplate;

/// Tink's associated data for wrapping a DEK: empty, always.
const DEK_ASSOCIATED_DATA: &[u8] = b"";

/// The bound on KMS calls that the envelope keys of one AEAD share.
pub(crate) struct KmsLimits {
    slots: Semaphore,
    options: EnvelopeOptions,
}

impl KmsLimits {
    pub(crate) fn new(options: &EnvelopeOptions) -> Arc<KmsLimits> {
        let n = options
            .max_concurrent_kms_calls
            .clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(KmsLimits {
            slots: Semaphore::new(n),
            options: options.clone(),
        })
    }

    /// Runs one KMS call in a slot, within the timeout.
    async fn call<T>(
        &self,
        kek_uri: &str,
        call: impl Future<Output = Result<T, KekError>>,
    ) -> Result<Result<T, KekError>, EnvelopeError> {
        // The semaphore is never closed.
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| EnvelopeError::KmsTimeout {
                kek_uri: shown_uri(kek_uri),
                after: self.options.kms_call_timeout,
            })?;
        tokio::time::timeout(self.options.kms_call_timeout, call)
            .await
            .map_err(|_| EnvelopeError::KmsTimeout {
                kek_uri: shown_uri(kek_uri),
                after: self.options.kms_call_timeout,
            })
    }
}

/// One KMS envelope key's AEAD: a master key (an async [`Kek`]) and a DEK
/// template. Byte-compatible with Tink's `KmsEnvelopeAead` (without output
/// prefix; see [the module](super)).
///
/// `Send + Sync`; share it in an `Arc`. `Debug` shows the master key's
/// URI and the DEK type, never a key.
pub struct EnvelopeAead {
    kek: Arc<dyn Kek>,
    /// For messages: the key's `kek_uri` (or the KEK's `Debug` when built
    /// from a bare KEK).
    kek_uri: String,
    dek: DekTemplate,
    limits: Arc<KmsLimits>,
}

impl fmt::Debug for EnvelopeAead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeAead")
            .field("kek", &shown_uri(&self.kek_uri))
            .field("dek", &self.dek)
            .finish()
    }
}

impl EnvelopeAead {
    /// An envelope AEAD over `kek` making DEKs from `dek_template` (its
    /// output prefix is ignored, as Tink ignores it), with the default
    /// [`EnvelopeOptions`].
    ///
    /// # Errors
    /// [`EnvelopeError::DekTemplate`] for a DEK type Tink does not allow
    /// ([`DEK_TYPES`](super::DEK_TYPES)) or a key format it refuses.
    pub fn new(kek: Arc<dyn Kek>, dek_template: &KeyTemplate) -> Result<Self, EnvelopeError> {
        Self::with_options(kek, dek_template, &EnvelopeOptions::default())
    }

    /// As [`EnvelopeAead::new`], with bounds on the KMS calls.
    ///
    /// # Errors
    /// As [`EnvelopeAead::new`].
    pub fn with_options(
        kek: Arc<dyn Kek>,
        dek_template: &KeyTemplate,
        options: &EnvelopeOptions,
    ) -> Result<Self, EnvelopeError> {
        let dek = DekTemplate::new(dek_template).map_err(|e| match e {
            crate::error::KeyError::Randomness => EnvelopeError::Aead(AeadError::Randomness),
            e => EnvelopeError::DekTemplate(e),
        })?;
        let kek_uri = format!("{kek:?}");
        Ok(Self::from_parts(kek, kek_uri, dek, KmsLimits::new(options)))
    }

    pub(crate) fn from_parts(
        kek: Arc<dyn Kek>,
        kek_uri: String,
        dek: DekTemplate,
        limits: Arc<KmsLimits>,
    ) -> Self {
        EnvelopeAead {
            kek,
            kek_uri,
            dek,
            limits,
        }
    }

    /// The DEK template.
    pub fn dek_template(&self) -> &DekTemplate {
        &self.dek
    }

    /// The master key.
    pub fn kek(&self) -> &Arc<dyn Kek> {
        &self.kek
    }

    /// Encrypts `plaintext` with a fresh DEK, binding `associated_data`;
    /// the DEK is wrapped by one KMS call (empty associated data).
    ///
    /// # Errors
    /// [`EnvelopeError::Kek`] or [`EnvelopeError::KmsTimeout`] when the KMS
    /// fails; [`EnvelopeError::EncryptedDekSize`]; local AEAD errors.
    pub async fn encrypt(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let mut out = Vec::new();
        self.encrypt_append(plaintext, associated_data, &mut out)
            .await?;
        Ok(out)
    }

    /// Appends the envelope ciphertext to `out` (which may hold an output
    /// prefix).
    pub(crate) async fn encrypt_append(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EnvelopeError> {
        let (dek, aead) = self.dek.new_dek().map_err(|e| match e {
            crate::error::KeyError::Randomness => EnvelopeError::Aead(AeadError::Randomness),
            // The template was checked when this AEAD was built.
            e => EnvelopeError::DekTemplate(e),
        })?;
        let wrapped = self
            .limits
            .call(&self.kek_uri, self.kek.wrap(&dek, DEK_ASSOCIATED_DATA))
            .await?
            .map_err(|error| EnvelopeError::Kek {
                kek_uri: shown_uri(&self.kek_uri),
                error,
            })?;
        drop(dek);
        let capacity = out
            .len()
            .checked_add(DEK_LEN_BYTES + wrapped.len())
            .and_then(|n| n.checked_add(plaintext.len()))
            .and_then(|n| n.checked_add(aead.overhead()))
            .ok_or(AeadError::TooLarge)?;
        out.reserve(capacity - out.len());
        append_encrypted_dek(out, &wrapped, &self.kek_uri)?;
        aead.seal_append(plaintext, associated_data, out)?;
        Ok(())
    }

    /// Decrypts an envelope ciphertext (without output prefix): one KMS
    /// call unwraps the DEK, which decrypts the rest.
    ///
    /// # Errors
    /// [`EnvelopeError::Malformed`] for bytes that are not an envelope
    /// ciphertext, [`EnvelopeError::Authentication`] when the master key
    /// or the DEK does not authenticate it, [`EnvelopeError::Kek`] and
    /// [`EnvelopeError::KmsTimeout`] when the KMS fails,
    /// [`EnvelopeError::InvalidDek`].
    pub async fn decrypt(
        &self,
        ciphertext: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let (encrypted_dek, payload) = split(ciphertext)?;
        let dek = Zeroizing::new(
            self.limits
                .call(
                    &self.kek_uri,
                    self.kek.unwrap(encrypted_dek, DEK_ASSOCIATED_DATA),
                )
                .await?
                .map_err(|e| unwrap_error(e, &self.kek_uri))?,
        );
        let aead = self
            .dek
            .dek_aead(&dek)
            .map_err(|error| EnvelopeError::InvalidDek {
                kek_uri: shown_uri(&self.kek_uri),
                dek_type: self.dek.type_url().to_owned(),
                error,
            })?;
        drop(dek);
        aead.open(payload, associated_data)
            .map_err(|_| EnvelopeError::Authentication)
    }

    /// Which master key and version wrapped the DEK of an envelope
    /// ciphertext (without output prefix), as the KEK reads it
    /// ([`Kek::describe_wrapped`]; no I/O). `Ok(None)` when the KEK cannot
    /// tell.
    ///
    /// # Errors
    /// [`EnvelopeError::Malformed`].
    pub fn describe(&self, ciphertext: &[u8]) -> Result<Option<MasterKeyVersion>, EnvelopeError> {
        let (encrypted_dek, _) = split(ciphertext)?;
        Ok(self.kek.describe_wrapped(encrypted_dek))
    }

    /// The master key's newest version, as the KEK describes a fresh
    /// wrapping of a throwaway byte (one KMS call; nothing is stored):
    /// what [`EnvelopeAead::describe`] of a ciphertext is compared with to
    /// tell whether its DEK needs [`EnvelopeAead::rewrap`]. `Ok(None)` when
    /// the KEK cannot tell versions.
    ///
    /// # Errors
    /// [`EnvelopeError::Kek`] and [`EnvelopeError::KmsTimeout`].
    pub async fn newest_master_version(&self) -> Result<Option<MasterKeyVersion>, EnvelopeError> {
        let probe = self
            .limits
            .call(&self.kek_uri, self.kek.wrap(&[0], DEK_ASSOCIATED_DATA))
            .await?
            .map_err(|error| EnvelopeError::Kek {
                kek_uri: shown_uri(&self.kek_uri),
                error,
            })?;
        Ok(self.kek.describe_wrapped(&probe))
    }

    /// Re-wraps the DEK of an envelope ciphertext (without output prefix)
    /// under the master key's newest version ([`Kek::rewrap`]: Vault's
    /// transit `rewrap`, where the DEK never leaves the server), in one
    /// KMS call. The DEK ciphertext bytes are kept as they are.
    ///
    /// # Errors
    /// As [`rewrap_envelope`].
    pub async fn rewrap(&self, ciphertext: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let mut out = Vec::with_capacity(ciphertext.len() + 16);
        self.rewrap_append(ciphertext, &mut out).await?;
        Ok(out)
    }

    pub(crate) async fn rewrap_append(
        &self,
        ciphertext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EnvelopeError> {
        rewrap_into(
            &*self.kek,
            &self.kek_uri,
            Some(&self.limits),
            ciphertext,
            out,
        )
        .await
    }
}

/// Re-wraps the DEK of a raw envelope ciphertext (without output prefix)
/// under `kek`'s newest master-key version ([`Kek::rewrap`] with empty
/// associated data: Vault's transit `rewrap` endpoint; unwrap then wrap
/// for the others) and returns the new ciphertext:
/// `BE32(len(new encrypted DEK)) ‖ new encrypted DEK ‖ the same DEK
/// ciphertext bytes`. The payload is neither decrypted nor re-encrypted.
///
/// # Errors
/// [`EnvelopeError::Malformed`]; [`EnvelopeError::Authentication`] when
/// the master key does not unwrap the DEK; [`EnvelopeError::Kek`];
/// [`EnvelopeError::EncryptedDekSize`].
pub async fn rewrap_envelope(ciphertext: &[u8], kek: &dyn Kek) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = Vec::with_capacity(ciphertext.len() + 16);
    rewrap_into(kek, &format!("{kek:?}"), None, ciphertext, &mut out).await?;
    Ok(out)
}

async fn rewrap_into(
    kek: &dyn Kek,
    kek_uri: &str,
    limits: Option<&KmsLimits>,
    ciphertext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EnvelopeError> {
    let (encrypted_dek, payload) = split(ciphertext)?;
    let call = kek.rewrap(encrypted_dek, DEK_ASSOCIATED_DATA);
    let rewrapped = match limits {
        Some(l) => l.call(kek_uri, call).await?,
        None => call.await,
    }
    .map_err(|e| unwrap_error(e, kek_uri))?;
    append_encrypted_dek(out, &rewrapped, kek_uri)?;
    out.extend_from_slice(payload);
    Ok(())
}
