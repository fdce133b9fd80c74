//! Compliance policies: which key types and parameters a deployment allows.
//!
//! A [`Policy`] is an allow-list. It is enforced when a keyset is loaded
//! (every key that still has key material must be allowed), when keys are
//! created (the CLI refuses templates outside it), and at encryption.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use encstore_tink::HashType;
use encstore_tink::primitives::KeyParams;
use serde::{Deserialize, Serialize};

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid policy.
    #[error("invalid policy {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong (line and column, and the field).
        message: String,
    },
    /// A named preset does not exist.
    #[error(
        "unknown policy preset {0:?}; the valid names are {names}",
        names = Policy::PRESETS.join(", ")
    )]
    UnknownPreset(String),
}

/// The key families a [`Rule`] can allow, named as Tink's key types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyFamily {
    /// `AesGcmKey`.
    AesGcmKey,
    /// `AesGcmSivKey`.
    AesGcmSivKey,
    /// `AesEaxKey`.
    AesEaxKey,
    /// `AesCtrHmacAeadKey`.
    AesCtrHmacAeadKey,
    /// `ChaCha20Poly1305Key`.
    ChaCha20Poly1305Key,
    /// `XChaCha20Poly1305Key`.
    XChaCha20Poly1305Key,
    /// `XAesGcmKey`.
    XAesGcmKey,
    /// `AesGcmHkdfStreamingKey` (streaming AEAD: large objects).
    AesGcmHkdfStreamingKey,
    /// `AesCtrHmacStreamingKey` (streaming AEAD: large objects).
    AesCtrHmacStreamingKey,
    /// `KmsEnvelopeAeadKey`: a master key in a KMS (`kek_uri`) and a DEK
    /// template. The rule allows the envelope; its DEK must be allowed by
    /// a rule of the same policy too (the rule's own size and hash fields
    /// do not apply to it).
    KmsEnvelopeAeadKey,
}

impl KeyFamily {
    /// Every family: every AEAD key type Google's Tink 1.16 supports.
    pub const ALL: [KeyFamily; 7] = [
        KeyFamily::AesGcmKey,
        KeyFamily::AesGcmSivKey,
        KeyFamily::AesEaxKey,
        KeyFamily::AesCtrHmacAeadKey,
        KeyFamily::ChaCha20Poly1305Key,
        KeyFamily::XChaCha20Poly1305Key,
        KeyFamily::XAesGcmKey,
    ];

    /// Every streaming AEAD family Google's Tink 1.16 supports (the keys of
    /// a store's streaming keyset, for large objects).
    pub const STREAMING: [KeyFamily; 2] = [
        KeyFamily::AesGcmHkdfStreamingKey,
        KeyFamily::AesCtrHmacStreamingKey,
    ];

    /// The KMS envelope family (keys whose DEKs are made per encryption
    /// and wrapped by a master key in a KMS).
    pub const ENVELOPE: [KeyFamily; 1] = [KeyFamily::KmsEnvelopeAeadKey];

    /// The family of a key.
    pub fn of(params: &KeyParams) -> Option<KeyFamily> {
        Some(match params {
            KeyParams::AesGcm { .. } => KeyFamily::AesGcmKey,
            KeyParams::AesGcmSiv { .. } => KeyFamily::AesGcmSivKey,
            KeyParams::AesEax { .. } => KeyFamily::AesEaxKey,
            KeyParams::AesCtrHmac { .. } => KeyFamily::AesCtrHmacAeadKey,
            KeyParams::ChaCha20Poly1305 => KeyFamily::ChaCha20Poly1305Key,
            KeyParams::XChaCha20Poly1305 => KeyFamily::XChaCha20Poly1305Key,
            KeyParams::XAesGcm { .. } => KeyFamily::XAesGcmKey,
            KeyParams::AesGcmHkdfStreaming { .. } => KeyFamily::AesGcmHkdfStreamingKey,
            KeyParams::AesCtrHmacStreaming { .. } => KeyFamily::AesCtrHmacStreamingKey,
            KeyParams::KmsEnvelope { .. } => KeyFamily::KmsEnvelopeAeadKey,
            #[allow(unreachable_patterns)]
            _ => return None,
        })
    }
}

/// One allow rule: a key family, optionally narrowed by parameters. A field
/// left out allows any value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The key family allowed.
    pub key_type: KeyFamily,
    /// Allowed AES key sizes in bytes (for AES-based families; for the
    /// streaming families, the derived AES key size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sizes: Option<Vec<usize>>,
    /// Allowed hashes: the HMAC hash of AES-CTR-HMAC; for the streaming
    /// families, the HKDF hash and (AES-CTR-HMAC streaming) the segment
    /// HMAC hash, both of which must be listed. In a policy file, Tink's
    /// names (`"SHA256"`, any case); another spelling is refused when the
    /// file is read.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hash_names")]
    pub hashes: Option<Vec<HashType>>,
    /// The smallest allowed tag, in bytes (AES-CTR-HMAC and AES-CTR-HMAC
    /// streaming).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tag_size: Option<usize>,
    /// The smallest allowed HMAC key, in bytes (AES-CTR-HMAC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_hmac_key_size: Option<usize>,
}

/// A rule's hashes in a policy file: Tink's names, checked when read.
mod hash_names {
    use encstore_tink::HashType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        hashes: &Option<Vec<HashType>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match hashes {
            Some(v) => s.collect_seq(v.iter().map(|h| h.as_str())),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<HashType>>, D::Error> {
        let names = Option::<Vec<String>>::deserialize(d)?;
        names
            .map(|v| {
                v.iter()
                    .map(|n| n.parse::<HashType>().map_err(serde::de::Error::custom))
                    .collect()
            })
            .transpose()
    }
}

impl Rule {
    /// A rule allowing every key of `family`.
    pub fn any(family: KeyFamily) -> Rule {
        Rule {
            key_type: family,
            key_sizes: None,
            hashes: None,
            min_tag_size: None,
            min_hmac_key_size: None,
        }
    }

    /// Narrows the AES key sizes.
    pub fn key_sizes(mut self, sizes: &[usize]) -> Rule {
        self.key_sizes = Some(sizes.to_vec());
        self
    }

    /// Narrows the allowed hashes.
    pub fn hashes(mut self, hashes: &[HashType]) -> Rule {
        self.hashes = Some(hashes.to_vec());
        self
    }

    fn hash_ok(&self, hash: HashType) -> bool {
        self.hashes.as_ref().is_none_or(|h| h.contains(&hash))
    }

    fn allows(&self, params: &KeyParams) -> bool {
        if KeyFamily::of(params) != Some(self.key_type) {
            return false;
        }
        let size_ok = |s: usize| self.key_sizes.as_ref().is_none_or(|v| v.contains(&s));
        match params {
            KeyParams::AesGcm { key_size }
            | KeyParams::AesGcmSiv { key_size }
            | KeyParams::AesEax { key_size, .. } => size_ok(*key_size),
            KeyParams::AesCtrHmac {
                aes_key_size,
                hmac_key_size,
                hash,
                tag_size,
                ..
            } => {
                size_ok(*aes_key_size)
                    && self.hash_ok(*hash)
                    && self.min_tag_size.is_none_or(|m| *tag_size >= m)
                    && self.min_hmac_key_size.is_none_or(|m| *hmac_key_size >= m)
            }
            KeyParams::XAesGcm { .. } => size_ok(32),
            KeyParams::AesGcmHkdfStreaming {
                derived_key_size,
                hkdf_hash,
                ..
            } => size_ok(*derived_key_size) && self.hash_ok(*hkdf_hash),
            KeyParams::AesCtrHmacStreaming {
                derived_key_size,
                hkdf_hash,
                hmac_hash,
                tag_size,
                ..
            } => {
                size_ok(*derived_key_size)
                    && self.hash_ok(*hkdf_hash)
                    && self.hash_ok(*hmac_hash)
                    && self.min_tag_size.is_none_or(|m| *tag_size >= m)
            }
            _ => size_ok(32),
        }
    }
}

/// An allow-list of key types and parameters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// A name for messages and logs, such as `fips`.
    pub name: String,
    /// The rules; a key is allowed when any rule allows it.
    pub allow: Vec<Rule>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Policy({:?}, {} rules)", self.name, self.allow.len())
    }
}

impl Policy {
    /// Everything Google's Tink 1.16 accepts as an AEAD key or a streaming
    /// AEAD key, KMS envelope keys included (with any DEK type Tink
    /// allows). The default.
    pub fn tink() -> Policy {
        Policy {
            name: "tink".into(),
            allow: KeyFamily::ALL
                .into_iter()
                .chain(KeyFamily::STREAMING)
                .chain(KeyFamily::ENVELOPE)
                .map(Rule::any)
                .collect(),
        }
    }

    /// FIPS-approved algorithms only: AES-GCM with 128- or 256-bit keys, and
    /// AES-CTR with HMAC-SHA-256/384/512 (AES key 128 or 256 bits, HMAC key
    /// and tag at least 128 bits). For large objects: AES-GCM-HKDF
    /// streaming and AES-CTR-HMAC streaming with 128- or 256-bit derived
    /// AES keys, HKDF and HMAC over SHA-256 or SHA-512 (not SHA-1), and a
    /// segment tag of at least 128 bits (HKDF with an approved HMAC is the
    /// key-derivation function of SP 800-56C).
    ///
    /// KMS envelope keys are allowed when their DEKs are (AES-GCM or
    /// AES-CTR-HMAC as above): the payload is encrypted by the DEK, and
    /// the master key's algorithm is the KMS's (Vault transit
    /// `aes256-gcm96`, AWS KMS's AES-256-GCM).
    ///
    /// This restricts *algorithms*. It does not by itself make a validated
    /// cryptographic module: encstore's primitives (ring, RustCrypto) are
    /// not FIPS 140-3 validated.
    pub fn fips() -> Policy {
        Policy {
            name: "fips".into(),
            allow: vec![
                Rule::any(KeyFamily::KmsEnvelopeAeadKey),
                Rule::any(KeyFamily::AesGcmKey).key_sizes(&[16, 32]),
                Rule {
                    key_type: KeyFamily::AesCtrHmacAeadKey,
                    key_sizes: Some(vec![16, 32]),
                    hashes: Some(vec![HashType::Sha256, HashType::Sha384, HashType::Sha512]),
                    min_tag_size: Some(16),
                    min_hmac_key_size: Some(16),
                },
                Rule::any(KeyFamily::AesGcmHkdfStreamingKey)
                    .key_sizes(&[16, 32])
                    .hashes(&[HashType::Sha256, HashType::Sha512]),
                Rule {
                    min_tag_size: Some(16),
                    ..Rule::any(KeyFamily::AesCtrHmacStreamingKey)
                        .key_sizes(&[16, 32])
                        .hashes(&[HashType::Sha256, HashType::Sha512])
                },
            ],
        }
    }

    /// A modern default: AES-GCM, AES-GCM-SIV, ChaCha20-Poly1305,
    /// XChaCha20-Poly1305 and XAES-256-GCM; for large objects, AES-GCM-HKDF
    /// streaming (128- or 256-bit derived keys, HKDF-SHA256 or SHA512).
    /// Leaves out AES-EAX, AES-CTR-HMAC and AES-CTR-HMAC streaming, which
    /// Tink keeps for compatibility (AES-GCM does the same job with one
    /// pass and a smaller tag), and SHA-1. KMS envelope keys are allowed
    /// when their DEKs are.
    pub fn modern() -> Policy {
        use KeyFamily::*;
        Policy {
            name: "modern".into(),
            allow: vec![
                Rule::any(KmsEnvelopeAeadKey),
                Rule::any(AesGcmKey).key_sizes(&[16, 32]),
                Rule::any(AesGcmSivKey).key_sizes(&[16, 32]),
                Rule::any(ChaCha20Poly1305Key),
                Rule::any(XChaCha20Poly1305Key),
                Rule::any(XAesGcmKey),
                Rule::any(AesGcmHkdfStreamingKey)
                    .key_sizes(&[16, 32])
                    .hashes(&[HashType::Sha256, HashType::Sha512]),
            ],
        }
    }

    /// The names of the presets, as [`Policy::preset`] and
    /// [`str::parse`] take them.
    pub const PRESETS: [&'static str; 3] = ["fips", "modern", "tink"];

    /// A preset by name: `fips`, `modern` or `tink` (also
    /// `name.parse::<Policy>()`).
    ///
    /// # Errors
    /// [`PolicyError::UnknownPreset`] for any other name; its message
    /// lists the valid names.
    pub fn preset(name: &str) -> Result<Policy, PolicyError> {
        match name {
            "fips" => Ok(Policy::fips()),
            "modern" => Ok(Policy::modern()),
            "tink" => Ok(Policy::tink()),
            other => Err(PolicyError::UnknownPreset(other.to_owned())),
        }
    }

    /// Parses a policy from JSON: either `{"preset": "fips"}` or
    /// `{"name": "...", "allow": [{"key_type": "AesGcmKey", "key_sizes": [32]}, ...]}`.
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] naming the line, column and problem.
    pub fn from_json(json: &str, origin: &str) -> Result<Policy, PolicyError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Preset {
            preset: String,
        }
        if let Ok(p) = serde_json::from_str::<Preset>(json) {
            return Policy::preset(&p.preset);
        }
        serde_json::from_str::<Policy>(json).map_err(|e| PolicyError::Invalid {
            path: origin.to_owned(),
            message: e.to_string(),
        })
    }

    /// Reads a policy file (JSON, see [`Policy::from_json`]).
    ///
    /// # Errors
    /// [`PolicyError`] when the file cannot be read or parsed.
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Policy::from_json(&text, &path.display().to_string())
    }

    /// Whether a key with these parameters is allowed. A KMS envelope key
    /// needs a `KmsEnvelopeAeadKey` rule and a rule allowing its DEK.
    pub fn allows(&self, params: &KeyParams) -> bool {
        if let KeyParams::KmsEnvelope { dek, .. } = params {
            return self
                .allow
                .iter()
                .any(|r| r.key_type == KeyFamily::KmsEnvelopeAeadKey)
                && !matches!(**dek, KeyParams::KmsEnvelope { .. })
                && self.allows(dek);
        }
        self.allow.iter().any(|r| r.allows(params))
    }
}

/// A preset by name, as [`Policy::preset`]: `"fips".parse::<Policy>()`.
/// Names are exact (lower case). A policy file is read with
/// [`Policy::from_file`].
impl FromStr for Policy {
    type Err = PolicyError;

    fn from_str(name: &str) -> Result<Policy, PolicyError> {
        Policy::preset(name)
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::tink()
    }
}

/// A short, human-readable description of a key's parameters.
pub fn describe(params: &KeyParams) -> String {
    match params {
        KeyParams::AesGcm { key_size } => format!("AesGcmKey, {}-bit", key_size * 8),
        KeyParams::AesGcmSiv { key_size } => format!("AesGcmSivKey, {}-bit", key_size * 8),
        KeyParams::AesEax { key_size, iv_size } => {
            format!("AesEaxKey, {}-bit, {iv_size}-byte IV", key_size * 8)
        }
        KeyParams::AesCtrHmac {
            aes_key_size,
            hash,
            tag_size,
            ..
        } => format!(
            "AesCtrHmacAeadKey, {}-bit AES, HMAC-{hash}, {tag_size}-byte tag",
            aes_key_size * 8
        ),
        KeyParams::ChaCha20Poly1305 => "ChaCha20Poly1305Key".into(),
        KeyParams::XChaCha20Poly1305 => "XChaCha20Poly1305Key".into(),
        KeyParams::XAesGcm { salt_size } => format!("XAesGcmKey, {salt_size}-byte salt"),
        KeyParams::AesGcmHkdfStreaming {
            derived_key_size,
            hkdf_hash,
            ciphertext_segment_size,
            ..
        } => format!(
            "AesGcmHkdfStreamingKey, {}-bit AES, HKDF-{hkdf_hash}, {ciphertext_segment_size}-byte segments",
            derived_key_size * 8
        ),
        KeyParams::AesCtrHmacStreaming {
            derived_key_size,
            hkdf_hash,
            hmac_hash,
            tag_size,
            ciphertext_segment_size,
            ..
        } => format!(
            "AesCtrHmacStreamingKey, {}-bit AES, HKDF-{hkdf_hash}, HMAC-{hmac_hash}, {tag_size}-byte tag, {ciphertext_segment_size}-byte segments",
            derived_key_size * 8
        ),
        KeyParams::KmsEnvelope { kek_uri, dek } => {
            format!(
                "KmsEnvelopeAeadKey, master key {kek_uri}, DEK {}",
                describe(dek)
            )
        }
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use encstore_tink::HashType;

    use super::*;

    fn ctr(aes: usize, hash: HashType, tag: usize) -> KeyParams {
        KeyParams::AesCtrHmac {
            aes_key_size: aes,
            iv_size: 16,
            hmac_key_size: 32,
            hash,
            tag_size: tag,
        }
    }

    #[test]
    fn fips_allows_only_approved_algorithms() {
        let p = Policy::fips();
        assert!(p.allows(&KeyParams::AesGcm { key_size: 16 }));
        assert!(p.allows(&KeyParams::AesGcm { key_size: 32 }));
        assert!(p.allows(&ctr(32, HashType::Sha256, 32)));
        assert!(!p.allows(&ctr(32, HashType::Sha1, 20)));
        assert!(!p.allows(&ctr(16, HashType::Sha256, 10)));
        assert!(!p.allows(&KeyParams::ChaCha20Poly1305));
        assert!(!p.allows(&KeyParams::XChaCha20Poly1305));
        assert!(!p.allows(&KeyParams::AesGcmSiv { key_size: 32 }));
        assert!(!p.allows(&KeyParams::AesEax {
            key_size: 32,
            iv_size: 16
        }));
        assert!(!p.allows(&KeyParams::XAesGcm { salt_size: 12 }));
    }

    #[test]
    fn modern_leaves_out_legacy_modes() {
        let p = Policy::modern();
        assert!(p.allows(&KeyParams::XChaCha20Poly1305));
        assert!(p.allows(&KeyParams::AesGcmSiv { key_size: 32 }));
        assert!(!p.allows(&KeyParams::AesEax {
            key_size: 16,
            iv_size: 12
        }));
        assert!(!p.allows(&ctr(32, HashType::Sha256, 32)));
        assert!(Policy::tink().allows(&ctr(16, HashType::Sha1, 10)));
    }

    fn envelope(dek: KeyParams) -> KeyParams {
        KeyParams::KmsEnvelope {
            kek_uri: "hcvault://vault:8200/transit/keys/k".into(),
            dek: Box::new(dek),
        }
    }

    #[test]
    fn envelope_keys_are_allowed_when_their_dek_is() {
        let gcm = envelope(KeyParams::AesGcm { key_size: 32 });
        let chacha = envelope(KeyParams::ChaCha20Poly1305);
        let eax = envelope(KeyParams::AesEax {
            key_size: 16,
            iv_size: 16,
        });
        for p in [Policy::tink(), Policy::modern(), Policy::fips()] {
            assert!(p.allows(&gcm), "{}", p.name);
        }
        assert!(Policy::tink().allows(&chacha));
        assert!(Policy::modern().allows(&chacha));
        assert!(!Policy::fips().allows(&chacha));
        assert!(Policy::tink().allows(&eax));
        assert!(!Policy::modern().allows(&eax));
        // A policy allowing AES-GCM but not the envelope family refuses it.
        let only_gcm = Policy {
            name: "gcm".into(),
            allow: vec![Rule::any(KeyFamily::AesGcmKey)],
        };
        assert!(!only_gcm.allows(&gcm));
        let p = Policy::from_json(
            r#"{"name":"kms","allow":[{"key_type":"KmsEnvelopeAeadKey"},{"key_type":"AesGcmKey","key_sizes":[32]}]}"#,
            "inline",
        )
        .unwrap();
        assert!(p.allows(&gcm));
        assert!(!p.allows(&envelope(KeyParams::AesGcm { key_size: 16 })));
        assert!(describe(&gcm).contains("KmsEnvelopeAeadKey, master key hcvault://"));
    }

    #[test]
    fn policy_files_parse_and_refuse_typos() {
        let p = Policy::from_json(
            r#"{"name":"only-256","allow":[{"key_type":"AesGcmKey","key_sizes":[32]}]}"#,
            "inline",
        )
        .unwrap();
        assert!(p.allows(&KeyParams::AesGcm { key_size: 32 }));
        assert!(!p.allows(&KeyParams::AesGcm { key_size: 16 }));
        assert_eq!(
            Policy::from_json(r#"{"preset":"fips"}"#, "x").unwrap(),
            Policy::fips()
        );
        let err = Policy::from_json(
            r#"{"name":"x","allow":[{"key_type":"AesGcmKey","keysizes":[32]}]}"#,
            "p.json",
        )
        .unwrap_err();
        assert!(err.to_string().contains("keysizes"), "{err}");
        let err = Policy::from_json(r#"{"preset":"fisp"}"#, "p.json").unwrap_err();
        assert!(matches!(err, PolicyError::UnknownPreset(_)));
    }

    #[test]
    fn policy_file_hashes_are_tinks_names_and_a_misspelt_one_is_refused() {
        let streaming = |hkdf_hash| KeyParams::AesGcmHkdfStreaming {
            key_size: 32,
            derived_key_size: 32,
            hkdf_hash,
            ciphertext_segment_size: 1 << 20,
        };
        // Any case is Tink's name; the rule compares typed hashes.
        let p = Policy::from_json(
            r#"{"name":"h","allow":[{"key_type":"AesGcmHkdfStreamingKey","hashes":["sha512","SHA256"]}]}"#,
            "inline",
        )
        .unwrap();
        assert_eq!(
            p.allow[0].hashes,
            Some(vec![HashType::Sha512, HashType::Sha256])
        );
        assert!(p.allows(&streaming(HashType::Sha256)));
        assert!(!p.allows(&streaming(HashType::Sha1)));
        // Written back with Tink's names, and read back the same.
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(r#""hashes":["SHA512","SHA256"]"#), "{json}");
        assert_eq!(Policy::from_json(&json, "again").unwrap(), p);
        // A spelling that is not Tink's used to be kept as a string that
        // matched no key (the rule then refused every key of its family);
        // now the file is refused, naming the valid hashes.
        let err = Policy::from_json(
            r#"{"name":"h","allow":[{"key_type":"AesGcmHkdfStreamingKey","hashes":["SHA-256"]}]}"#,
            "p.json",
        )
        .unwrap_err();
        assert!(matches!(err, PolicyError::Invalid { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("p.json"), "{msg}");
        assert!(
            msg.contains(
                "unknown hash \"SHA-256\": expected one of SHA1, SHA224, SHA256, SHA384, SHA512"
            ),
            "{msg}"
        );
    }

    #[test]
    fn presets_parse_by_name_and_an_unknown_name_lists_the_valid_ones() {
        for name in Policy::PRESETS {
            let p: Policy = name.parse().unwrap();
            assert_eq!(p, Policy::preset(name).unwrap());
            assert_eq!(p.name, name);
        }
        assert_eq!("fips".parse::<Policy>().unwrap(), Policy::fips());
        assert_eq!("modern".parse::<Policy>().unwrap(), Policy::modern());
        assert_eq!("tink".parse::<Policy>().unwrap(), Policy::tink());
        for bad in ["nope", "FIPS", " fips", ""] {
            let err = bad.parse::<Policy>().unwrap_err();
            assert!(matches!(&err, PolicyError::UnknownPreset(n) if n == bad));
            assert_eq!(
                err.to_string(),
                format!("unknown policy preset {bad:?}; the valid names are fips, modern, tink")
            );
        }
    }
}
