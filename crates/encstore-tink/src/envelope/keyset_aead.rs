//! [`KeysetAsyncAead`]: the async AEAD of a keyset that may hold KMS
//! envelope keys, and the [`KekResolver`] that opens their master keys.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use encstore_core::{AeadError, Kek, KekError, MasterKeyVersion};

use super::aead::{EnvelopeAead, KmsLimits};
use super::{EnvelopeError, EnvelopeOptions, shown_uri, split};
use crate::aead::{CiphertextKey, PREFIX_LEN, PrefixMap, prefix_key, split_prefix};
use crate::error::KeysetError;
use crate::keyset::{KeyStatus, Keyset, KeysetInfo, OutputPrefix, PrimitiveKind};
use crate::primitives::RawAead;

/// Opens the master key a KMS envelope key names by its `kek_uri`.
///
/// encstore-tink opens no KMS itself: the caller supplies the resolver
/// (the `encstore` crate resolves with `encstore::open::open_kek`). A
/// closure `Fn(&str) -> Result<Arc<dyn Kek>, KekError>` and a
/// `HashMap<String, Arc<dyn Kek>>` of already opened KEKs are resolvers.
#[async_trait]
pub trait KekResolver: Send + Sync {
    /// The KEK for `kek_uri` (exactly as the keyset writes it).
    ///
    /// # Errors
    /// Whatever the KEK's opening says; a URI the resolver does not know
    /// is a [`KekError::InvalidUri`].
    async fn resolve(&self, kek_uri: &str) -> Result<Arc<dyn Kek>, KekError>;
}

#[async_trait]
impl<F> KekResolver for F
where
    F: Fn(&str) -> Result<Arc<dyn Kek>, KekError> + Send + Sync,
{
    async fn resolve(&self, kek_uri: &str) -> Result<Arc<dyn Kek>, KekError> {
        self(kek_uri)
    }
}

/// The URI is not among the KEKs a map resolver was given.
#[derive(Debug, thiserror::Error)]
#[error("no master key is configured for {uri}")]
struct UnknownKekUri {
    uri: String,
}

#[async_trait]
impl KekResolver for HashMap<String, Arc<dyn Kek>> {
    async fn resolve(&self, kek_uri: &str) -> Result<Arc<dyn Kek>, KekError> {
        self.get(kek_uri).cloned().ok_or_else(|| {
            KekError::invalid_uri(UnknownKekUri {
                uri: shown_uri(kek_uri),
            })
        })
    }
}

/// A live key's primitive.
#[derive(Clone)]
enum Prim {
    /// An ordinary AEAD key: no I/O.
    Local(Arc<dyn RawAead>),
    /// A KMS envelope key.
    Envelope(Arc<EnvelopeAead>),
}

/// One prefixed key: its status, its primitive if ENABLED, and its
/// envelope description if it is an envelope key.
struct Slot {
    status: KeyStatus,
    prim: Option<Prim>,
    envelope: Option<usize>,
}

/// An envelope key that is not destroyed, for descriptions.
struct EnvelopeSlot {
    key_id: u32,
    prefix: OutputPrefix,
    status: KeyStatus,
    kek_uri: String,
    /// The AEAD of an ENABLED key (only those have their KEK resolved).
    aead: Option<Arc<EnvelopeAead>>,
}

/// What the head of an envelope ciphertext says, without I/O: which
/// envelope key wrote it, the KEK URI, and which master key and version
/// wrapped its DEK ([`Kek::describe_wrapped`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnvelopeInfo {
    /// The envelope key (for a RAW key, the one attributed; see
    /// [`KeysetAsyncAead::envelope_info`]).
    pub key_id: u32,
    /// Its output prefix type.
    pub output_prefix: OutputPrefix,
    /// Its status in the keyset.
    pub status: KeyStatus,
    /// Its `kek_uri`, as the keyset writes it.
    pub kek_uri: String,
    /// The master key and version of the encrypted DEK, as the KEK reads
    /// it; `None` when the KEK cannot tell or the key is not ENABLED (its
    /// KEK is not opened).
    pub master: Option<MasterKeyVersion>,
}

/// The result of [`KeysetAsyncAead::rewrap`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rewrapped {
    /// The new ciphertext: the same output prefix and DEK ciphertext bytes,
    /// a new DEK length and encrypted DEK.
    pub ciphertext: Vec<u8>,
    /// The envelope key whose master key re-wrapped the DEK.
    pub key_id: u32,
    /// The master-key version before, as the KEK reads it.
    pub before: Option<MasterKeyVersion>,
    /// The master-key version after.
    pub after: Option<MasterKeyVersion>,
}

/// The AEAD of a keyset whose keys may be KMS envelope keys as well as
/// ordinary AEAD keys, with async encryption and decryption.
///
/// - Encryption uses the primary key: an ordinary key encrypts at once,
///   with no I/O (as [`KeysetAead`](crate::KeysetAead)); an envelope key
///   makes a fresh DEK and wraps it with one KMS call.
/// - Decryption finds the key by the 5-byte prefix (one hash lookup), then
///   tries the RAW keys, ordinary ones first: an envelope key costs a KMS
///   call (unless the bytes cannot be an envelope). When nothing decrypts
///   and a KMS failed, the KMS's error is returned rather than
///   "not authentic".
/// - KMS calls are bounded ([`EnvelopeOptions`]); the master keys of the
///   ENABLED envelope keys are opened once, when the AEAD is built.
///
/// `Send + Sync`; build once, share in an `Arc`. `Debug` shows key IDs.
pub struct KeysetAsyncAead {
    primary: Prim,
    primary_prefix: [u8; PREFIX_LEN],
    primary_prefix_len: usize,
    primary_key_id: u32,
    prefixed: PrefixMap<Slot>,
    /// ENABLED RAW keys: ordinary ones first, then envelope ones, each in
    /// keyset order.
    raw: Vec<Prim>,
    envelopes: Vec<EnvelopeSlot>,
    info: KeysetInfo,
}

impl fmt::Debug for KeysetAsyncAead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enabled: Vec<u32> = self
            .info
            .keys
            .iter()
            .filter(|k| k.status == KeyStatus::Enabled)
            .map(|k| k.key_id)
            .collect();
        let envelope: Vec<u32> = self.envelopes.iter().map(|e| e.key_id).collect();
        f.debug_struct("KeysetAsyncAead")
            .field("primary_key_id", &self.primary_key_id)
            .field("enabled_key_ids", &enabled)
            .field("envelope_key_ids", &envelope)
            .finish()
    }
}

impl KeysetAsyncAead {
    /// Builds the keyset's async AEAD with the default
    /// [`EnvelopeOptions`], opening the master key of every ENABLED
    /// envelope key through `resolver` (once per distinct `kek_uri`).
    ///
    /// # Errors
    /// [`EnvelopeError::Keyset`] with [`KeysetError::WrongPrimitive`] for a
    /// streaming keyset; [`EnvelopeError::Resolve`] naming the key whose
    /// master key could not be opened.
    pub async fn new(
        keyset: &Keyset,
        resolver: &dyn KekResolver,
    ) -> Result<KeysetAsyncAead, EnvelopeError> {
        Self::with_options(keyset, resolver, &EnvelopeOptions::default()).await
    }

    /// As [`KeysetAsyncAead::new`], with bounds on the KMS calls (shared by
    /// all the keyset's envelope keys).
    ///
    /// # Errors
    /// As [`KeysetAsyncAead::new`].
    pub async fn with_options(
        keyset: &Keyset,
        resolver: &dyn KekResolver,
        options: &EnvelopeOptions,
    ) -> Result<KeysetAsyncAead, EnvelopeError> {
        let found = keyset.primitive();
        if found != PrimitiveKind::Aead {
            return Err(KeysetError::WrongPrimitive {
                wanted: PrimitiveKind::Aead,
                found,
            }
            .into());
        }
        let limits = KmsLimits::new(options);
        let mut keks: HashMap<&str, Arc<dyn Kek>> = HashMap::new();
        let mut prefixed: PrefixMap<Slot> = PrefixMap::default();
        prefixed.reserve(keyset.keys().len());
        let (mut raw_local, mut raw_envelope) = (Vec::new(), Vec::new());
        let mut envelopes = Vec::new();
        let mut primary = None;
        let primary_key_id = keyset.primary_key_id();
        for k in keyset.keys() {
            let enabled = k.status == KeyStatus::Enabled;
            let mut envelope = None;
            let prim = if let Some(env) = k.envelope() {
                let aead = if enabled {
                    let kek = match keks.get(env.kek_uri.as_str()) {
                        Some(kek) => Arc::clone(kek),
                        None => {
                            let kek = resolver.resolve(&env.kek_uri).await.map_err(|error| {
                                EnvelopeError::Resolve {
                                    key_id: k.id,
                                    kek_uri: shown_uri(&env.kek_uri),
                                    error,
                                }
                            })?;
                            keks.insert(&env.kek_uri, Arc::clone(&kek));
                            kek
                        }
                    };
                    Some(Arc::new(EnvelopeAead::from_parts(
                        kek,
                        env.kek_uri.clone(),
                        env.dek.clone(),
                        Arc::clone(&limits),
                    )))
                } else {
                    None
                };
                envelope = Some(envelopes.len());
                envelopes.push(EnvelopeSlot {
                    key_id: k.id,
                    prefix: k.prefix,
                    status: k.status,
                    kek_uri: env.kek_uri.clone(),
                    aead: aead.clone(),
                });
                aead.map(Prim::Envelope)
            } else if enabled {
                k.aead().map(|p| Prim::Local(Arc::clone(p)))
            } else {
                None
            };
            if k.id == primary_key_id {
                primary = prim.clone().map(|p| (p, k.prefix));
            }
            let (bytes, len) = k.prefix.prefix_array(k.id);
            if len == 0 {
                match prim {
                    Some(p @ Prim::Local(_)) => raw_local.push(p),
                    Some(p @ Prim::Envelope(_)) => raw_envelope.push(p),
                    None => {}
                }
            } else {
                prefixed.insert(
                    prefix_key(bytes[0], k.id),
                    Slot {
                        status: k.status,
                        prim,
                        envelope,
                    },
                );
            }
        }
        // A validated keyset always has an enabled primary.
        let (primary, prefix) = primary.ok_or(KeysetError::PrimaryMissing { primary_key_id })?;
        let (primary_prefix, primary_prefix_len) = prefix.prefix_array(primary_key_id);
        raw_local.extend(raw_envelope);
        Ok(KeysetAsyncAead {
            primary,
            primary_prefix,
            primary_prefix_len,
            primary_key_id,
            prefixed,
            raw: raw_local,
            envelopes,
            info: keyset.info(),
        })
    }

    /// The primary key's ID.
    pub fn primary_key_id(&self) -> u32 {
        self.primary_key_id
    }

    /// Whether the primary is a KMS envelope key (each encryption is then
    /// a KMS call).
    pub fn primary_is_envelope(&self) -> bool {
        matches!(self.primary, Prim::Envelope(_))
    }

    /// Whether the keyset holds envelope keys that are not destroyed.
    pub fn has_envelope_keys(&self) -> bool {
        !self.envelopes.is_empty()
    }

    /// The keyset this AEAD was built from, without key material.
    pub fn info(&self) -> &KeysetInfo {
        &self.info
    }

    /// Encrypts with the primary key, binding `associated_data`.
    ///
    /// # Errors
    /// For an envelope primary, the KMS errors of
    /// [`EnvelopeAead::encrypt`]; local AEAD errors.
    pub async fn encrypt(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let len = self.primary_prefix_len;
        match &self.primary {
            Prim::Local(p) => {
                let capacity = len
                    .checked_add(plaintext.len())
                    .and_then(|n| n.checked_add(p.overhead()))
                    .ok_or(AeadError::TooLarge)?;
                let mut out = Vec::with_capacity(capacity);
                out.extend_from_slice(&self.primary_prefix[..len]);
                p.seal_append(plaintext, associated_data, &mut out)?;
                Ok(out)
            }
            Prim::Envelope(e) => {
                let mut out = self.primary_prefix[..len].to_vec();
                e.encrypt_append(plaintext, associated_data, &mut out)
                    .await?;
                Ok(out)
            }
        }
    }

    /// Decrypts with the key the prefix names, else the RAW keys.
    ///
    /// # Errors
    /// [`EnvelopeError::Authentication`] or
    /// [`EnvelopeError::UnknownKeyId`] when no key decrypts; a KMS error
    /// ([`EnvelopeError::Kek`], [`EnvelopeError::KmsTimeout`], ...) when
    /// an envelope key's KMS failed and no other key decrypted.
    pub async fn decrypt(
        &self,
        ciphertext: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let mut kms_failure = None;
        let unknown = match split_prefix(ciphertext) {
            None => None,
            Some((first, key_id)) => match self.prefixed.get(&prefix_key(first, key_id)) {
                Some(Slot { prim: Some(p), .. }) => {
                    match open(p, &ciphertext[PREFIX_LEN..], associated_data).await {
                        Ok(pt) => return Ok(pt),
                        Err(e) => keep_failure(&mut kms_failure, e),
                    }
                    None
                }
                _ => Some(key_id),
            },
        };
        for p in &self.raw {
            match open(p, ciphertext, associated_data).await {
                Ok(pt) => return Ok(pt),
                Err(e) => keep_failure(&mut kms_failure, e),
            }
        }
        if let Some(e) = kms_failure {
            return Err(e);
        }
        Err(match unknown {
            Some(key_id) => EnvelopeError::UnknownKeyId { key_id },
            None => EnvelopeError::Authentication,
        })
    }

    /// Tells from the first 5 bytes of a ciphertext which key ID it names,
    /// if any, and that key's status (as
    /// [`KeysetAead::classify`](crate::KeysetAead::classify); no I/O).
    pub fn classify(&self, ciphertext_head: &[u8]) -> CiphertextKey {
        let Some((first, key_id)) = split_prefix(ciphertext_head) else {
            return CiphertextKey::Unprefixed;
        };
        let prefix = if first == 0x01 {
            OutputPrefix::Tink
        } else {
            OutputPrefix::Legacy
        };
        CiphertextKey::Prefixed {
            key_id,
            prefix,
            status: self
                .prefixed
                .get(&prefix_key(first, key_id))
                .map(|s| s.status),
        }
    }

    /// The envelope slot and the raw envelope ciphertext a ciphertext (or
    /// its first [`MAX_HEAD_LEN`](super::MAX_HEAD_LEN) bytes) is under.
    ///
    /// A prefixed ciphertext names its key. An unprefixed one is
    /// attributed to the first RAW envelope key (not destroyed, in keyset
    /// order) whose KEK recognizes the encrypted DEK
    /// ([`Kek::describe_wrapped`]), else to the only RAW envelope key if
    /// there is one: a hint, since RAW ciphertexts carry no key ID.
    fn envelope_of<'a>(
        &self,
        ciphertext: &'a [u8],
    ) -> Result<(&EnvelopeSlot, &'a [u8]), EnvelopeError> {
        if let Some((first, key_id)) = split_prefix(ciphertext)
            && let Some(slot) = self.prefixed.get(&prefix_key(first, key_id))
        {
            return match slot.envelope {
                Some(i) => Ok((&self.envelopes[i], &ciphertext[PREFIX_LEN..])),
                None => Err(EnvelopeError::NotEnvelope),
            };
        }
        let raw: Vec<&EnvelopeSlot> = self
            .envelopes
            .iter()
            .filter(|e| e.prefix == OutputPrefix::Raw)
            .collect();
        if raw.is_empty() {
            return Err(EnvelopeError::NotEnvelope);
        }
        // Without a prefix, bytes that are not shaped as an envelope are
        // not one.
        let (encrypted_dek, _) = split(ciphertext).map_err(|_| EnvelopeError::NotEnvelope)?;
        let recognized = raw.iter().find(|e| {
            e.aead
                .as_ref()
                .is_some_and(|a| a.kek().describe_wrapped(encrypted_dek).is_some())
        });
        match (recognized, raw.as_slice()) {
            (Some(e), _) | (None, [e]) => Ok((e, ciphertext)),
            (None, _) => Err(EnvelopeError::NotEnvelope),
        }
    }

    /// Which envelope key wrote a ciphertext, and which master key and
    /// version wrapped its DEK, from its first
    /// [`MAX_HEAD_LEN`](super::MAX_HEAD_LEN) bytes (or all of it) and
    /// without I/O: what a census counts.
    ///
    /// # Errors
    /// [`EnvelopeError::NotEnvelope`] when the ciphertext is not under an
    /// envelope key of this keyset; [`EnvelopeError::Malformed`].
    pub fn envelope_info(&self, ciphertext_head: &[u8]) -> Result<EnvelopeInfo, EnvelopeError> {
        let (slot, raw) = self.envelope_of(ciphertext_head)?;
        let master = match &slot.aead {
            Some(a) => a.describe(raw)?,
            None => {
                split(raw)?;
                None
            }
        };
        Ok(EnvelopeInfo {
            key_id: slot.key_id,
            output_prefix: slot.prefix,
            status: slot.status,
            kek_uri: slot.kek_uri.clone(),
            master,
        })
    }

    /// The newest version of the master key of envelope key `key_id`
    /// ([`EnvelopeAead::newest_master_version`]: one KMS call), to compare
    /// with [`EnvelopeInfo::master`] before a [`KeysetAsyncAead::rewrap`].
    ///
    /// # Errors
    /// [`EnvelopeError::NotEnvelope`] when `key_id` is not an ENABLED
    /// envelope key of this keyset; the KMS errors.
    pub async fn newest_master_version(
        &self,
        key_id: u32,
    ) -> Result<Option<MasterKeyVersion>, EnvelopeError> {
        let aead = self
            .envelopes
            .iter()
            .find(|e| e.key_id == key_id)
            .and_then(|e| e.aead.as_ref())
            .ok_or(EnvelopeError::NotEnvelope)?;
        aead.newest_master_version().await
    }

    /// Re-wraps the DEK of an envelope ciphertext under its master key's
    /// newest version ([`EnvelopeAead::rewrap`]: one KMS call, Vault's
    /// transit `rewrap`), keeping the output prefix and the DEK ciphertext
    /// bytes. The result decrypts to the same plaintext with the same
    /// associated data.
    ///
    /// # Errors
    /// [`EnvelopeError::NotEnvelope`] for a ciphertext under an ordinary
    /// key; [`EnvelopeError::UnknownKeyId`] for one under an envelope key
    /// that is not ENABLED; the errors of [`rewrap_envelope`](super::rewrap_envelope).
    pub async fn rewrap(&self, ciphertext: &[u8]) -> Result<Rewrapped, EnvelopeError> {
        let (slot, raw) = self.envelope_of(ciphertext)?;
        let prefix = &ciphertext[..ciphertext.len() - raw.len()];
        let candidates: Vec<&EnvelopeSlot> = if prefix.is_empty() {
            self.envelopes
                .iter()
                .filter(|e| e.prefix == OutputPrefix::Raw && e.aead.is_some())
                .collect()
        } else {
            vec![slot]
        };
        if candidates.iter().all(|e| e.aead.is_none()) {
            return Err(EnvelopeError::UnknownKeyId {
                key_id: slot.key_id,
            });
        }
        let mut failure = None;
        for e in candidates {
            let Some(aead) = &e.aead else { continue };
            let mut out = prefix.to_vec();
            match aead.rewrap_append(raw, &mut out).await {
                Ok(()) => {
                    return Ok(Rewrapped {
                        key_id: e.key_id,
                        before: aead.describe(raw)?,
                        after: aead.describe(&out[prefix.len()..])?,
                        ciphertext: out,
                    });
                }
                Err(err) => keep_failure(&mut failure, err),
            }
        }
        Err(failure.unwrap_or(EnvelopeError::Authentication))
    }
}

/// Decrypts a raw ciphertext with one key.
async fn open(
    p: &Prim,
    ciphertext: &[u8],
    associated_data: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    match p {
        Prim::Local(p) => p
            .open(ciphertext, associated_data)
            .map_err(|_| EnvelopeError::Authentication),
        Prim::Envelope(e) => e.decrypt(ciphertext, associated_data).await,
    }
}

/// Keeps the first failure that is not an authentication failure (a KMS
/// that failed says more than "not authentic").
fn keep_failure(kept: &mut Option<EnvelopeError>, e: EnvelopeError) {
    if kept.is_none() && !e.is_authentication() {
        *kept = Some(e);
    }
}
