//! [`EncryptedStorage`] over the async keyset AEAD: small objects under
//! KMS envelope keys (each DEK wrapped by a master key, one bounded and
//! timed KMS call per object), and the storage error of a failed envelope
//! operation.

use std::sync::Arc;

use bytes::Bytes;
use encstore_core::{Error, Result};

use encstore_core::KekError;
use encstore_tink::envelope::{EnvelopeError, KeysetAsyncAead};
use zeroize::Zeroizing;

use super::{EncryptedStorage, envelope_op, off_the_runtime};
use crate::keys::KeysetSnapshot;
use encstore_tink::CiphertextKey;

impl EncryptedStorage {
    /// Encrypts a small value with the AEAD keyset's primary through the
    /// async keyset AEAD (an envelope primary wraps a fresh DEK with one
    /// KMS call, bounded in concurrency and time; an ordinary primary
    /// makes no I/O).
    pub(super) async fn encrypt_envelope<V>(
        &self,
        snap: &KeysetSnapshot,
        env: &Arc<KeysetAsyncAead>,
        key: &str,
        value: V,
    ) -> Result<Vec<u8>>
    where
        V: AsRef<[u8]> + Send + 'static,
    {
        let ad = self.associated_data(key);
        let len = value.as_ref().len();
        let env = Arc::clone(env);
        let r = envelope_op(len, move || async move {
            env.encrypt(value.as_ref(), &ad).await
        })
        .await?;
        match r {
            Ok(ct) => {
                let key_id = snap.primary_key_id();
                snap.warn_raw_primary_once();
                self.metrics().encrypted(key_id);
                tracing::trace!(key_id, len, "encrypted");
                Ok(ct)
            }
            Err(e) => Err(self.fail(envelope_error(key, e, "wrap a data key"))),
        }
    }

    /// Decrypts a small object: through the async keyset AEAD when the
    /// keyset has a KMS envelope key (the KMS call is awaited, never
    /// blocking a worker), else as [`decrypt_secret`](Self::decrypt_secret)
    /// on the blocking pool for large values. The key ID is the one the
    /// prefix names or, for a RAW envelope key, the one its encrypted DEK
    /// is attributed to.
    pub(super) async fn decrypt_small_async(
        &self,
        snap: Arc<KeysetSnapshot>,
        key: &str,
        ct: Bytes,
    ) -> Result<(Zeroizing<Vec<u8>>, Option<u32>)> {
        let Some(env) = snap.envelope_aead() else {
            let this = self.clone();
            let key = key.to_owned();
            return off_the_runtime(ct.len(), move || this.decrypt_secret(&snap, &key, ct)).await?;
        };
        let ad = self.associated_data(key);
        let class = snap.classify(&ct);
        let (env, owned) = (Arc::clone(env), ct.clone());
        let r = envelope_op(
            ct.len(),
            move || async move { env.decrypt(&owned, &ad).await },
        )
        .await?;
        match r {
            Ok(pt) => {
                let pt = Zeroizing::new(pt);
                let key_id = match class {
                    CiphertextKey::Prefixed {
                        key_id,
                        status: Some(_),
                        ..
                    } => Some(key_id),
                    _ => snap.envelope_info(&ct).map(|i| i.key_id),
                };
                if let Some(id) = key_id {
                    self.metrics().decrypted(id);
                }
                tracing::trace!(key_id, "decrypted");
                Ok((pt, key_id))
            }
            Err(e) => {
                if self.allow_plaintext && snap.may_be_plaintext(class) && e.is_authentication() {
                    self.plaintext_read(key);
                    return Ok((Zeroizing::new(Vec::from(ct)), None));
                }
                Err(self
                    .decrypt_failure(key, class, || envelope_error(key, e, "unwrap a data key")))
            }
        }
    }

    /// [`reencrypt`](Self::reencrypt) through the async keyset AEAD.
    pub(super) async fn reencrypt_envelope(
        &self,
        snap: Arc<KeysetSnapshot>,
        key: &str,
        ct: Bytes,
    ) -> Result<Option<(Vec<u8>, Option<u32>)>> {
        if snap.decrypts_with_primary(&ct, &self.associated_data(key)) {
            // Under the primary by its prefix (or, for a RAW envelope
            // primary, by its encrypted DEK); the re-check decrypts it.
            return Ok(None);
        }
        let (plaintext, from) = self.decrypt_small_async(Arc::clone(&snap), key, ct).await?;
        let Some(env) = snap.envelope_aead() else {
            return Ok(Some((self.encrypt(&snap, key, &plaintext)?, from)));
        };
        let ct = self.encrypt_envelope(&snap, env, key, plaintext).await?;
        Ok(Some((ct, from)))
    }
}

/// The storage error for a failed envelope operation on the object at
/// `key`: authentication failures as for any ciphertext; an unreachable
/// or silent KMS as [`Error::Unreachable`] (a store-wide run stops on it);
/// other KMS failures as a `kms` backend error naming the master key.
pub(crate) fn envelope_error(key: &str, e: EnvelopeError, op: &'static str) -> Error {
    match e {
        EnvelopeError::Authentication | EnvelopeError::Malformed { .. } => Error::Authentication {
            key: key.to_owned(),
        },
        EnvelopeError::UnknownKeyId { key_id } => Error::UnknownKeyId {
            key: key.to_owned(),
            key_id,
        },
        EnvelopeError::Aead(a) => Error::from_aead(key, a),
        EnvelopeError::KmsTimeout { ref kek_uri, .. }
        | EnvelopeError::Kek {
            ref kek_uri,
            error: KekError::Unavailable(_),
        } => Error::Unreachable {
            backend: "kms",
            address: kek_uri.clone(),
            source: Box::new(e),
        },
        e => Error::Backend {
            backend: "kms",
            op,
            source: Box::new(e),
        },
    }
}
