//! Operations on one stored object: [`EncryptedStorage::reencrypt_one`]
//! (with its large-object path and the re-check), [`EncryptedStorage::verify_one`],
//! and what they report.

use std::sync::Arc;

use bytes::Bytes;
use encstore_core::{Error, Result, WriteCondition, validate_key};

use encstore_tink::KeyStatus;
use futures_util::StreamExt;
use zeroize::Zeroize;

use super::storage::Opened;
use super::{EncryptedStorage, off_the_runtime};
use crate::keys::{KeysetSnapshot, large_prefix};
use crate::large::{self, DecryptCodec, EncryptCodec, PREFIX_LEN, ReencryptCodec, encrypt_error};

/// How many times [`EncryptedStorage::reencrypt_one`] retries when a writer
/// changes the object between its read and its conditional write.
const REWRAP_ATTEMPTS: usize = 8;

/// What [`EncryptedStorage::reencrypt_one`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectReencryption {
    /// The object was re-encrypted under the primary key.
    Reencrypted {
        /// The key ID it was under before (`None`: plaintext or RAW).
        from: Option<u32>,
        /// The primary key ID it is under now.
        to: u32,
    },
    /// The object was already under the primary key; nothing was written.
    AlreadyCurrent,
    /// The object was deleted meanwhile; nothing was written.
    Deleted,
}

/// What [`EncryptedStorage::verify_one`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectCheck {
    /// Every byte of the object authenticated (and was discarded).
    Verified {
        /// The key that decrypts it: named by its prefix, or the RAW key
        /// found by trial decryption.
        key_id: u32,
        /// The object's layout.
        layout: ObjectLayout,
        /// The plaintext size in bytes.
        size: u64,
    },
    /// Migration mode: a plaintext object (see
    /// [`Options::allow_plaintext`](super::Options::allow_plaintext)).
    Plaintext {
        /// Its size in bytes.
        size: u64,
    },
    /// The object was deleted meanwhile.
    Deleted,
}

/// The two layouts of a stored object (`docs/format.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectLayout {
    /// A small object: one Tink AEAD ciphertext, under a key of the AEAD
    /// keyset.
    Aead,
    /// A large object: `0x01 ‖ BE32(key ID) ‖ Tink streaming ciphertext`,
    /// under a key of the streaming keyset.
    Streaming,
}

impl ObjectLayout {
    /// `aead` or `streaming`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectLayout::Aead => "aead",
            ObjectLayout::Streaming => "streaming",
        }
    }
}

impl EncryptedStorage {
    /// Whether `ct`, stored at `key`, decrypts with the snapshot's keysets
    /// and is under the primary key of its layout: the re-check after a
    /// re-encryption. Through the async keyset AEAD (a KMS call) when the
    /// keyset has an envelope key.
    pub(crate) async fn is_current(
        &self,
        snap: Arc<KeysetSnapshot>,
        key: &str,
        ct: Bytes,
    ) -> Result<bool> {
        let ad = self.associated_data(key);
        if snap.envelope_aead().is_some() && snap.streaming_key_of(&ct).is_none() {
            return Ok(snap.decrypts_with_primary(&ct, &ad)
                && self.decrypt_small_async(snap, key, ct).await.is_ok());
        }
        off_the_runtime(ct.len(), move || {
            snap.decrypts_with_primary(&ct, &ad) && snap.aead_decrypts(&ct, &ad)
        })
        .await
    }

    /// The former name of [`reencrypt_one`](Self::reencrypt_one): it
    /// re-encrypts an object (re-wrapping is what `rewrap_dek_one` does to
    /// a DEK, and what a master key does to a keyset).
    #[deprecated(note = "renamed to `reencrypt_one`")]
    pub async fn rewrap_one(&self, key: &str) -> Result<ObjectReencryption> {
        self.reencrypt_one(key).await
    }

    /// Re-encrypts the object at `key` under the current primary key of
    /// its layout (a small object under the AEAD keyset's primary, a large
    /// one under the streaming keyset's, streamed in constant memory), with
    /// a conditional write: if a writer changes the object in between, the
    /// new value is re-read and the attempt repeated, so a value a server
    /// wrote meanwhile is never overwritten.
    ///
    /// # Errors
    /// Decryption errors (the object is left untouched), and
    /// [`Error::PreconditionFailed`] if the object kept changing for
    /// several attempts in a row.
    pub async fn reencrypt_one(&self, key: &str) -> Result<ObjectReencryption> {
        validate_key(key)?;
        for _ in 0..REWRAP_ATTEMPTS {
            let snap = self.keys.snapshot();
            if snap.has_streaming() {
                // Five bytes say whether the object is large (and whether
                // it is already under a primary) without reading it.
                let head = match self.inner.load_head(key, PREFIX_LEN).await {
                    Ok(h) => h,
                    Err(Error::NotFound { .. }) => return Ok(ObjectReencryption::Deleted),
                    Err(e) => return Err(e),
                };
                if let Some((from, status)) = snap.streaming_key_of(&head) {
                    match self.rewrap_large(&snap, key, &head, from, status).await? {
                        Some(outcome) => return Ok(outcome),
                        None => continue,
                    }
                }
                if snap.is_under_primary(&head) {
                    return Ok(ObjectReencryption::AlreadyCurrent);
                }
            }
            let loaded = match self.inner.load_versioned(key).await {
                Ok(v) => v,
                Err(Error::NotFound { .. }) => return Ok(ObjectReencryption::Deleted),
                Err(e) => return Err(e),
            };
            if snap.streaming_key_of(&loaded.value).is_some() {
                // Replaced by a large object since the head was read.
                continue;
            }
            let primary = snap.primary_key_id();
            let len = loaded.value.len();
            let value = loaded.value;
            let step = if snap.envelope_aead().is_some() {
                self.reencrypt_envelope(snap, key, value).await?
            } else {
                let this = self.clone();
                let owned_key = key.to_owned();
                off_the_runtime(len, move || this.reencrypt(&snap, &owned_key, value)).await??
            };
            let Some((ct, from)) = step else {
                return Ok(ObjectReencryption::AlreadyCurrent);
            };
            match self
                .inner
                .store_if(
                    key,
                    Bytes::from(ct),
                    &WriteCondition::Matches(loaded.version),
                )
                .await
            {
                Ok(_) => {
                    tracing::debug!(key, from, to = primary, "rewrapped");
                    return Ok(ObjectReencryption::Reencrypted { from, to: primary });
                }
                Err(Error::PreconditionFailed { .. }) => {
                    tracing::debug!(key, "object changed during rewrap; retrying");
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::PreconditionFailed {
            key: key.to_owned(),
        })
    }

    /// One attempt at rewrapping the large object at `key`, whose first
    /// five bytes were `head` (naming streaming key `from`): a versioned
    /// stream, decrypted and re-encrypted under the streaming primary in
    /// constant memory, written back with `store_stream_if(Matches)`.
    /// `None`: the object changed meanwhile; try again.
    pub(super) async fn rewrap_large(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        head: &[u8],
        from: u32,
        status: KeyStatus,
    ) -> Result<Option<ObjectReencryption>> {
        let (s, to) = self.streaming(snap, key)?;
        if from == to {
            return Ok(Some(ObjectReencryption::AlreadyCurrent));
        }
        let old = self.large_key(snap, key, from, status)?;
        let vs = match self.inner.load_stream_versioned(key).await {
            Ok(v) => v,
            Err(Error::NotFound { .. }) => return Ok(Some(ObjectReencryption::Deleted)),
            Err(e) => return Err(e),
        };
        let mut body = vs.stream.body;
        let first = large::peek(&mut body, PREFIX_LEN).await?;
        if first.len() < PREFIX_LEN || first[..PREFIX_LEN] != head[..PREFIX_LEN] {
            return Ok(None);
        }
        self.large_plaintext_size(&old, key, vs.stream.size)?;
        let ad = self.associated_data(key);
        let enc = s
            .segment_encryptor(&ad)
            .map_err(|e| encrypt_error(self, key, e))?;
        let codec = ReencryptCodec::new(
            DecryptCodec::new(old, ad, self.target(key, from)),
            EncryptCodec::new(enc, self.target(key, to)),
        );
        let rest = large::prepend(first.slice(PREFIX_LEN..), body);
        let prefix = Bytes::copy_from_slice(&large_prefix(to));
        let new_body = large::pump(codec, Some(prefix), rest);
        match self
            .inner
            .store_stream_if(key, new_body, &WriteCondition::Matches(vs.version))
            .await
        {
            Ok(_) => {
                tracing::debug!(key, from, to, "rewrapped a large object");
                Ok(Some(ObjectReencryption::Reencrypted {
                    from: Some(from),
                    to,
                }))
            }
            Err(Error::PreconditionFailed { .. }) => {
                tracing::debug!(key, "large object changed during rewrap; retrying");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Decrypts the whole object at `key` and discards the plaintext: the
    /// check behind `encstore store verify`. A large object is streamed and
    /// authenticated segment by segment in constant memory (its plaintext
    /// is wiped as it goes); a small one is decrypted in memory and wiped.
    ///
    /// # Errors
    /// What a `load` of the object fails with: [`Error::Authentication`]
    /// (tampered, truncated, moved), [`Error::UnknownKeyId`],
    /// [`Error::KeyNotEnabled`], backend errors. A missing object is
    /// [`ObjectCheck::Deleted`], not an error.
    pub async fn verify_one(&self, key: &str) -> Result<ObjectCheck> {
        let (opened, _) = match self.open_read(key, false, true).await {
            Ok(o) => o,
            Err(Error::NotFound { .. }) => return Ok(ObjectCheck::Deleted),
            Err(e) => return Err(e),
        };
        match opened {
            Opened::Large { stream, key_id } => {
                let mut body = stream.body;
                let mut size = 0u64;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk?;
                    size += chunk.len() as u64;
                    let mut owned = Vec::from(chunk);
                    owned.zeroize();
                }
                Ok(ObjectCheck::Verified {
                    key_id,
                    layout: ObjectLayout::Streaming,
                    size,
                })
            }
            Opened::Small { plaintext, key_id } => {
                let size = plaintext.len() as u64;
                drop(plaintext);
                Ok(match key_id {
                    Some(key_id) => ObjectCheck::Verified {
                        key_id,
                        layout: ObjectLayout::Aead,
                        size,
                    },
                    None => ObjectCheck::Plaintext { size },
                })
            }
        }
    }
}
