//! The in-memory crypto of [`EncryptedStorage`]: encrypting and decrypting
//! a whole value in either layout (one-shot AEAD or large object), on the
//! blocking pool when it is large.

use std::sync::Arc;

use bytes::Bytes;
use encstore_core::{AeadError, Error, Result};

use encstore_tink::streaming::StreamingError;
use encstore_tink::{KeyStatus, KeysetStreamingAead};
use zeroize::Zeroizing;

use super::{BLOCKING_THRESHOLD, EncryptedStorage, off_the_runtime};
use crate::keys::{KeysetSnapshot, large_prefix};
use crate::large::{PREFIX_LEN, auth_error, encrypt_error};
use encstore_tink::CiphertextKey;

impl EncryptedStorage {
    /// Encrypts a small value with the AEAD keyset's primary.
    pub(super) fn encrypt(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        value: &[u8],
    ) -> Result<Vec<u8>> {
        let ad = self.associated_data(key);
        match snap.encrypt(value, &ad) {
            Ok((ct, key_id)) => {
                snap.warn_raw_primary_once();
                self.metrics().encrypted(key_id);
                tracing::trace!(key_id, len = value.len(), "encrypted");
                Ok(ct)
            }
            Err(e) => {
                if matches!(e, AeadError::Policy(_)) {
                    self.metrics().policy_refused();
                }
                Err(self.fail(Error::from_aead(key, e)))
            }
        }
    }

    /// The streaming keyset's AEAD, or the error for a large write without
    /// one.
    pub(super) fn streaming<'a>(
        &self,
        snap: &'a KeysetSnapshot,
        key: &str,
    ) -> Result<(&'a KeysetStreamingAead, u32)> {
        match (snap.streaming_aead(), snap.streaming_primary_key_id()) {
            (Some(s), Some(id)) => Ok((s, id)),
            _ => Err(self.fail(Error::Unsupported {
                backend: "encstore",
                op: "store a large object",
                reason: format!(
                    "no streaming keyset is loaded, so {} cannot be written as a large object (streamed writes always are): load a streaming keyset beside the AEAD keyset (ReloadableKeyset::new_with_streaming, open_with_streaming or replace_streaming; see docs/rotation.md)",
                    encstore_core::ShownKey(key)
                ),
            })),
        }
    }

    /// Encrypts a whole value as a large object (in memory): the prefix of
    /// the streaming primary, then its streaming ciphertext.
    pub(super) fn encrypt_large(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        value: &[u8],
    ) -> Result<Vec<u8>> {
        let (s, key_id) = self.streaming(snap, key)?;
        tracing::trace!(target: "encstore::large", len = value.len(), "whole-value crypto");
        let ad = self.associated_data(key);
        let size = s
            .layout()
            .ciphertext_size(value.len() as u64)
            .map_err(|e| encrypt_error(self, key, e))?;
        let mut out = Vec::with_capacity(PREFIX_LEN + size as usize);
        out.extend_from_slice(&large_prefix(key_id));
        s.encrypt_to(value, &ad, &mut out)
            .map_err(|e| encrypt_error(self, key, e))?;
        self.metrics().encrypted(key_id);
        tracing::trace!(key_id, len = value.len(), "encrypted a large object");
        Ok(out)
    }

    /// Encrypts a value in the layout its size calls for.
    pub(super) fn encrypt_value(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        value: &[u8],
    ) -> Result<Vec<u8>> {
        if snap.has_streaming() && value.len() > self.streaming_threshold {
            self.encrypt_large(snap, key, value)
        } else {
            self.encrypt(snap, key, value)
        }
    }

    /// [`encrypt_value`](Self::encrypt_value), on the blocking pool for
    /// large values.
    pub(super) async fn encrypt_async(
        &self,
        snap: Arc<KeysetSnapshot>,
        key: &str,
        value: Bytes,
    ) -> Result<Vec<u8>> {
        let large = snap.has_streaming() && value.len() > self.streaming_threshold;
        if !large && let Some(env) = snap.envelope_aead() {
            return self.encrypt_envelope(&snap, env, key, value).await;
        }
        if value.len() < BLOCKING_THRESHOLD {
            return self.encrypt_value(&snap, key, &value);
        }
        let this = self.clone();
        let key = key.to_owned();
        off_the_runtime(value.len(), move || this.encrypt_value(&snap, &key, &value)).await?
    }

    /// The error for an object under key `key_id` of status `status`, which
    /// is not ENABLED.
    pub(super) fn not_enabled(&self, key: &str, key_id: u32, status: KeyStatus) -> Error {
        self.fail(Error::KeyNotEnabled {
            key: key.to_owned(),
            key_id,
            status: status.as_str(),
        })
    }

    /// The error for the object at `key`, classified `class`, that did not
    /// decrypt: when its prefix names a key the keyset has, but not
    /// ENABLED, say so (and how to fix it) rather than suggest a newer
    /// keyset; otherwise `other`.
    pub(super) fn decrypt_failure(
        &self,
        key: &str,
        class: CiphertextKey,
        other: impl FnOnce() -> Error,
    ) -> Error {
        match class {
            CiphertextKey::Prefixed {
                key_id,
                status: Some(status),
                ..
            } if status != KeyStatus::Enabled => self.not_enabled(key, key_id, status),
            _ => self.fail(other()),
        }
    }

    /// Counts and logs a plaintext object returned in migration mode.
    pub(super) fn plaintext_read(&self, key: &str) {
        self.metrics().plaintext_read();
        tracing::warn!(
            key,
            "returning a plaintext object (migration mode); re-encrypt the store with `encstore store rewrap`"
        );
    }

    /// The single-key streaming AEAD of the large object whose prefix
    /// names `key_id` with `status`.
    pub(super) fn large_key(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        key_id: u32,
        status: KeyStatus,
    ) -> Result<Arc<KeysetStreamingAead>> {
        match snap.streaming_entry(key_id).and_then(|e| e.aead.clone()) {
            Some(a) if status == KeyStatus::Enabled => Ok(a),
            _ => Err(self.not_enabled(key, key_id, status)),
        }
    }

    /// The plaintext size of a large object of `object_size` bytes under
    /// `aead`, or an authentication error when no ciphertext has that size
    /// (a truncated object).
    pub(super) fn large_plaintext_size(
        &self,
        aead: &KeysetStreamingAead,
        key: &str,
        object_size: u64,
    ) -> Result<u64> {
        let ct = object_size.saturating_sub(PREFIX_LEN as u64);
        aead.layout()
            .plaintext_size(ct)
            .map_err(|e| auth_error(self, key, &e))
    }

    /// Decrypts a whole large object in memory.
    pub(super) fn decrypt_large(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        ct: &[u8],
        key_id: u32,
        status: KeyStatus,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let aead = self.large_key(snap, key, key_id, status)?;
        tracing::trace!(target: "encstore::large", len = ct.len(), "whole-value crypto");
        let size = self.large_plaintext_size(&aead, key, ct.len() as u64)?;
        // Each segment is opened straight into the plaintext buffer (one
        // pass under aws-lc-rs; a copy and an in-place open under ring).
        let ct = &ct[PREFIX_LEN..];
        let auth = |e| auth_error(self, key, &e);
        let layout = aead.layout();
        let count = layout.segment_count(ct.len() as u64).map_err(auth)?;
        let header = ct
            .get(..layout.header_len() as usize)
            .ok_or(StreamingError::Truncated)
            .map_err(auth)?;
        let mut dec = aead
            .segment_decryptor(header, &self.associated_data(key))
            .map_err(auth)?;
        let mut out = Zeroizing::new(vec![0u8; size as usize]);
        let mut at = 0;
        for i in 0..count {
            let r = layout
                .segment_ciphertext_range(i, ct.len() as u64)
                .map_err(auth)?;
            let segment = &ct[r.start as usize..r.end as usize];
            at += dec
                .open_segment_to(segment, i + 1 == count, &mut out[at..])
                .map_err(auth)?;
        }
        if at != out.len() {
            return Err(auth(StreamingError::Truncated));
        }
        self.metrics().decrypted(key_id);
        tracing::trace!(key_id, "decrypted a large object");
        Ok(out)
    }

    /// Decrypts `ct` stored at `key` into a buffer that is wiped when
    /// dropped. Returns the plaintext and the key ID that decrypted it
    /// (`None` for a plaintext object in migration mode or a RAW key).
    /// Both layouts: a large object (its prefix names a streaming key) is
    /// decrypted in memory.
    ///
    /// Migration mode takes an object that does not decrypt for plaintext
    /// only when [`KeysetSnapshot::may_be_plaintext`] allows it: never
    /// while the keyset holds a RAW key, and never when its prefix names a
    /// key of the keyset.
    pub(super) fn decrypt_secret(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        ct: Bytes,
    ) -> Result<(Zeroizing<Vec<u8>>, Option<u32>)> {
        if let Some((key_id, status)) = snap.streaming_key_of(&ct) {
            let pt = self.decrypt_large(snap, key, &ct, key_id, status)?;
            return Ok((pt, Some(key_id)));
        }
        let ad = self.associated_data(key);
        let class = snap.classify(&ct);
        let owned: Vec<u8> = Vec::from(ct);
        // Keep a copy only when migration mode may need the original bytes.
        let original = if self.allow_plaintext && snap.may_be_plaintext(class) {
            Some(Zeroizing::new(owned.clone()))
        } else {
            None
        };
        match snap.decrypt_owned(owned, &ad, class) {
            Ok((pt, key_id)) => {
                if let Some(id) = key_id {
                    self.metrics().decrypted(id);
                }
                tracing::trace!(key_id, "decrypted");
                Ok((Zeroizing::new(pt), key_id))
            }
            Err(e) => {
                if let Some(original) = original {
                    // Migration mode: an object that names no key of this
                    // keyset and does not decrypt is taken as plaintext
                    // written before encryption was enabled.
                    self.plaintext_read(key);
                    return Ok((original, None));
                }
                if self.allow_plaintext
                    && snap.holds_raw_keys()
                    && matches!(
                        class,
                        CiphertextKey::Unprefixed | CiphertextKey::Prefixed { status: None, .. }
                    )
                {
                    tracing::warn!(
                        key,
                        "not returning an object without a known key prefix as plaintext: the keyset holds a RAW key, so it may be a RAW ciphertext (migration mode)"
                    );
                }
                Err(self.decrypt_failure(key, class, || Error::from_aead(key, e)))
            }
        }
    }

    /// [`decrypt_secret`](Self::decrypt_secret) for a caller that takes the
    /// plaintext (`load`): it is handed over without a copy.
    pub(super) fn decrypt(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        ct: Bytes,
    ) -> Result<(Bytes, Option<u32>)> {
        let (mut pt, key_id) = self.decrypt_secret(snap, key, ct)?;
        Ok((Bytes::from(std::mem::take(&mut *pt)), key_id))
    }

    /// [`decrypt`](Self::decrypt), on the blocking pool for large objects.
    pub(super) async fn decrypt_async(
        &self,
        snap: Arc<KeysetSnapshot>,
        key: &str,
        ct: Bytes,
    ) -> Result<(Bytes, Option<u32>)> {
        if snap.envelope_aead().is_some() && snap.streaming_key_of(&ct).is_none() {
            let (mut pt, key_id) = self.decrypt_small_async(snap, key, ct).await?;
            return Ok((Bytes::from(std::mem::take(&mut *pt)), key_id));
        }
        if ct.len() < BLOCKING_THRESHOLD {
            return self.decrypt(&snap, key, ct);
        }
        let this = self.clone();
        let key = key.to_owned();
        off_the_runtime(ct.len(), move || this.decrypt(&snap, &key, ct)).await?
    }

    /// The CPU part of a rewrap of a small object: `None` when `ct` is
    /// already under the primary, otherwise the new ciphertext (one-shot
    /// AEAD, whatever its size: objects keep their layout) and the key it
    /// was under. The plaintext is wiped before this returns.
    pub(super) fn reencrypt(
        &self,
        snap: &KeysetSnapshot,
        key: &str,
        ct: Bytes,
    ) -> Result<Option<(Vec<u8>, Option<u32>)>> {
        if snap.decrypts_with_primary(&ct, &self.associated_data(key)) {
            return Ok(None);
        }
        let (plaintext, from) = self.decrypt_secret(snap, key, ct)?;
        let ct = self.encrypt(snap, key, &plaintext)?;
        Ok(Some((ct, from)))
    }
}
