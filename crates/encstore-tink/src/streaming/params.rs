//! The two streaming key types: parsing, Tink's validation rules, and key
//! generation.
//!
//! The rules are the union of what Tink 1.16 enforces when it loads a key
//! (C++ `AesGcmHkdfStreamingKeyManager` / `AesCtrHmacStreamingKeyManager`
//! `ValidateKey`, and the `*StreamingParameters` builders behind the proto
//! parsers; Java's parameters builders agree):
//!
//! | rule | `AesGcmHkdfStreamingKey` | `AesCtrHmacStreamingKey` |
//! | --- | --- | --- |
//! | key version | 0 | 0 |
//! | derived key size | 16 or 32 | 16 or 32 |
//! | key size (HKDF input) | at least the derived key size | same |
//! | HKDF hash | SHA1, SHA256, SHA512 | same |
//! | segment HMAC hash | | SHA1, SHA256, SHA512 |
//! | tag size | 16 (AES-GCM) | 10 to the HMAC's output size |
//! | ciphertext segment size | more than header + tag, at most 2^31 - 1 | same |
//!
//! where the header is `1 + derived key size + 7` bytes.

use prost::Message;
use tink_proto::{
    AesCtrHmacStreamingKey, AesCtrHmacStreamingKeyFormat, AesCtrHmacStreamingParams,
    AesGcmHkdfStreamingKey, AesGcmHkdfStreamingKeyFormat, AesGcmHkdfStreamingParams,
};
use zeroize::{Zeroize, Zeroizing};

use crate::error::KeyError;
use crate::primitives::{HashType, KeyParams, TYPE_URL_PREFIX};

/// Type name of Tink's AES-GCM-HKDF streaming key.
pub(crate) const GCM_HKDF: &str = "AesGcmHkdfStreamingKey";
/// Type name of Tink's AES-CTR-HMAC streaming key.
pub(crate) const CTR_HMAC: &str = "AesCtrHmacStreamingKey";

/// The nonce prefix every streaming ciphertext header carries.
pub(crate) const NONCE_PREFIX_SIZE: usize = 7;
/// AES-GCM's tag size.
pub(crate) const GCM_TAG_SIZE: usize = 16;
/// The HMAC key HKDF derives for AES-CTR-HMAC streaming.
pub(crate) const CTR_HMAC_KEY_SIZE: usize = 32;
/// Smallest HMAC tag Tink allows.
const MIN_TAG_SIZE: usize = 10;
/// Largest ciphertext segment Tink allows (Java keeps it in an `int`).
const MAX_SEGMENT_SIZE: u32 = i32::MAX as u32;
/// Largest key (HKDF input) `new_key` makes. Tink sets no upper bound, but
/// a key format asking for gigabytes must not allocate them; keys read
/// from a keyset are accepted at any size Tink accepts.
const MAX_GENERATED_KEY_SIZE: usize = 1024;

/// The hash of a Tink `HashType` number, if streaming keys may use it
/// (HKDF or segment HMAC): Tink allows exactly SHA1, SHA256 and SHA512.
fn streaming_hash(v: i32) -> Option<HashType> {
    HashType::from_proto(v)
        .filter(|h| matches!(h, HashType::Sha1 | HashType::Sha256 | HashType::Sha512))
}

/// How segments are sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Mode {
    /// AES-GCM with the derived key, 12-byte nonces, 16-byte tags.
    Gcm,
    /// AES-CTR with the first derived key, HMAC with the next 32 bytes.
    CtrHmac {
        /// The segment HMAC's hash.
        hmac_hash: HashType,
        /// Tag bytes kept from the HMAC output.
        tag_size: usize,
    },
}

/// The validated parameters of one streaming key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct StreamingParams {
    /// How segments are sealed.
    pub(crate) mode: Mode,
    /// Size of the key (HKDF input keying material).
    pub(crate) key_size: usize,
    /// Size of the derived AES key (16 or 32); also the salt size.
    pub(crate) derived_key_size: usize,
    /// The HKDF hash.
    pub(crate) hkdf_hash: HashType,
    /// Size of every ciphertext segment but the last.
    pub(crate) ciphertext_segment_size: u32,
}

impl StreamingParams {
    /// `1 + derived key size + 7`: length byte, salt, nonce prefix.
    pub(crate) fn header_len(&self) -> usize {
        1 + self.derived_key_size + NONCE_PREFIX_SIZE
    }

    /// Bytes each segment adds to its plaintext.
    pub(crate) fn tag_size(&self) -> usize {
        match self.mode {
            Mode::Gcm => GCM_TAG_SIZE,
            Mode::CtrHmac { tag_size, .. } => tag_size,
        }
    }

    /// The public description of these parameters.
    pub(crate) fn key_params(&self) -> KeyParams {
        match self.mode {
            Mode::Gcm => KeyParams::AesGcmHkdfStreaming {
                key_size: self.key_size,
                derived_key_size: self.derived_key_size,
                hkdf_hash: self.hkdf_hash,
                ciphertext_segment_size: self.ciphertext_segment_size as usize,
            },
            Mode::CtrHmac {
                hmac_hash,
                tag_size,
            } => KeyParams::AesCtrHmacStreaming {
                key_size: self.key_size,
                derived_key_size: self.derived_key_size,
                hkdf_hash: self.hkdf_hash,
                hmac_hash,
                tag_size,
                ciphertext_segment_size: self.ciphertext_segment_size as usize,
            },
        }
    }
}

/// The streaming key type of a type URL, if it is one.
pub(crate) fn streaming_type(type_url: &str) -> Option<&'static str> {
    match type_url.strip_prefix(TYPE_URL_PREFIX)? {
        GCM_HKDF => Some(GCM_HKDF),
        CTR_HMAC => Some(CTR_HMAC),
        _ => None,
    }
}

fn invalid(key_type: &'static str, what: String) -> KeyError {
    KeyError::InvalidParameter { key_type, what }
}

/// The checks both key types share, on the proto's raw numbers.
fn check_common(
    key_type: &'static str,
    key_size: usize,
    derived_key_size: u32,
    hkdf_hash: i32,
    segment_size: u32,
    tag_size: usize,
) -> Result<(usize, HashType), KeyError> {
    let hkdf = streaming_hash(hkdf_hash).ok_or_else(|| {
        invalid(
            key_type,
            format!(
                "HKDF hash {} is not supported; allowed: SHA1, SHA256, SHA512",
                hash_name(hkdf_hash)
            ),
        )
    })?;
    let derived = match derived_key_size {
        16 | 32 => derived_key_size as usize,
        n => {
            return Err(invalid(
                key_type,
                format!("derived key size is {n} bytes; allowed: 16 or 32"),
            ));
        }
    };
    if key_size < derived {
        return Err(KeyError::WrongKeySize {
            key_type,
            size: key_size,
            allowed: "at least the derived key size",
        });
    }
    let header = 1 + derived + NONCE_PREFIX_SIZE;
    let min = header + tag_size + 1;
    if (segment_size as usize) < min {
        return Err(invalid(
            key_type,
            format!(
                "ciphertext segment size is {segment_size} bytes; it must be more than the header ({header}) and tag ({tag_size}): at least {min}"
            ),
        ));
    }
    if segment_size > MAX_SEGMENT_SIZE {
        return Err(invalid(
            key_type,
            format!("ciphertext segment size is {segment_size} bytes; at most {MAX_SEGMENT_SIZE}"),
        ));
    }
    Ok((derived, hkdf))
}

/// Tink's name of a `HashType` number, or the number.
fn hash_name(v: i32) -> String {
    match tink_proto::HashType::try_from(v) {
        Ok(h) => h.as_str_name().to_owned(),
        Err(_) => v.to_string(),
    }
}

fn check_gcm(key_size: usize, p: &AesGcmHkdfStreamingParams) -> Result<StreamingParams, KeyError> {
    let (derived_key_size, hkdf_hash) = check_common(
        GCM_HKDF,
        key_size,
        p.derived_key_size,
        p.hkdf_hash_type,
        p.ciphertext_segment_size,
        GCM_TAG_SIZE,
    )?;
    Ok(StreamingParams {
        mode: Mode::Gcm,
        key_size,
        derived_key_size,
        hkdf_hash,
        ciphertext_segment_size: p.ciphertext_segment_size,
    })
}

fn check_ctr(key_size: usize, p: &AesCtrHmacStreamingParams) -> Result<StreamingParams, KeyError> {
    let hmac = p.hmac_params.unwrap_or_default();
    let hmac_hash = streaming_hash(hmac.hash).ok_or_else(|| {
        invalid(
            CTR_HMAC,
            format!(
                "HMAC hash {} is not supported; allowed: SHA1, SHA256, SHA512",
                hash_name(hmac.hash)
            ),
        )
    })?;
    let tag_size = hmac.tag_size as usize;
    if tag_size < MIN_TAG_SIZE || tag_size > hmac_hash.output_size() {
        return Err(invalid(
            CTR_HMAC,
            format!(
                "tag size is {tag_size} bytes; allowed with HMAC-{}: {MIN_TAG_SIZE} to {}",
                hmac_hash,
                hmac_hash.output_size()
            ),
        ));
    }
    let (derived_key_size, hkdf_hash) = check_common(
        CTR_HMAC,
        key_size,
        p.derived_key_size,
        p.hkdf_hash_type,
        p.ciphertext_segment_size,
        tag_size,
    )?;
    Ok(StreamingParams {
        mode: Mode::CtrHmac {
            hmac_hash,
            tag_size,
        },
        key_size,
        derived_key_size,
        hkdf_hash,
        ciphertext_segment_size: p.ciphertext_segment_size,
    })
}

fn check_version(key_type: &'static str, version: u32) -> Result<(), KeyError> {
    if version > 0 {
        return Err(KeyError::UnsupportedVersion { key_type, version });
    }
    Ok(())
}

/// Parses and validates a streaming key proto (`KeyData.value`) of type
/// `key_type` ([`GCM_HKDF`] or [`CTR_HMAC`]). The key bytes are moved into
/// zeroizing storage and the decoded proto's copy is wiped.
pub(crate) fn parse_key(
    key_type: &'static str,
    value: &[u8],
) -> Result<(StreamingParams, Zeroizing<Vec<u8>>), KeyError> {
    let malformed = || KeyError::MalformedKey { key_type };
    if key_type == GCM_HKDF {
        let mut proto = AesGcmHkdfStreamingKey::decode(value).map_err(|_| malformed())?;
        let key = Zeroizing::new(std::mem::take(&mut proto.key_value));
        check_version(key_type, proto.version)?;
        let params = check_gcm(key.len(), &proto.params.unwrap_or_default())?;
        Ok((params, key))
    } else {
        let mut proto = AesCtrHmacStreamingKey::decode(value).map_err(|_| malformed())?;
        let key = Zeroizing::new(std::mem::take(&mut proto.key_value));
        check_version(key_type, proto.version)?;
        let params = check_ctr(key.len(), &proto.params.unwrap_or_default())?;
        Ok((params, key))
    }
}

/// Generates a fresh key from a serialized key format of type `key_type`,
/// with key material from `provider`'s source (`getrandom`, or the FIPS
/// module's DRBG), and returns the serialized key proto for
/// `KeyData.value`.
pub(crate) fn new_key(
    provider: &crate::provider::CryptoProvider,
    key_type: &'static str,
    key_format: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let malformed = || KeyError::MalformedKey { key_type };
    let too_big = |size: usize| KeyError::WrongKeySize {
        key_type,
        size,
        allowed: "at least the derived key size, at most 1024 bytes for a new key",
    };
    let random = |len: usize| crate::primitives::random_key(provider, len);
    if key_type == GCM_HKDF {
        let format = AesGcmHkdfStreamingKeyFormat::decode(key_format).map_err(|_| malformed())?;
        check_version(key_type, format.version)?;
        let params = format.params.unwrap_or_default();
        let size = format.key_size as usize;
        check_gcm(size, &params)?;
        if size > MAX_GENERATED_KEY_SIZE {
            return Err(too_big(size));
        }
        let mut proto = AesGcmHkdfStreamingKey {
            version: 0,
            params: Some(params),
            key_value: random(size)?.to_vec(),
        };
        let encoded = Zeroizing::new(proto.encode_to_vec());
        proto.key_value.zeroize();
        Ok(encoded)
    } else {
        let format = AesCtrHmacStreamingKeyFormat::decode(key_format).map_err(|_| malformed())?;
        check_version(key_type, format.version)?;
        let params = format.params.unwrap_or_default();
        let size = format.key_size as usize;
        check_ctr(size, &params)?;
        if size > MAX_GENERATED_KEY_SIZE {
            return Err(too_big(size));
        }
        let mut proto = AesCtrHmacStreamingKey {
            version: 0,
            params: Some(params),
            key_value: random(size)?.to_vec(),
        };
        let encoded = Zeroizing::new(proto.encode_to_vec());
        proto.key_value.zeroize();
        Ok(encoded)
    }
}

#[cfg(test)]
mod tests {
    use tink_proto::HashType;

    use super::*;

    fn gcm(key: usize, derived: u32, hash: HashType, segment: u32, version: u32) -> Vec<u8> {
        AesGcmHkdfStreamingKey {
            version,
            params: Some(AesGcmHkdfStreamingParams {
                ciphertext_segment_size: segment,
                derived_key_size: derived,
                hkdf_hash_type: hash as i32,
            }),
            key_value: vec![7; key],
        }
        .encode_to_vec()
    }

    fn ctr(derived: u32, hmac: HashType, tag: u32, segment: u32) -> Vec<u8> {
        AesCtrHmacStreamingKey {
            version: 0,
            params: Some(AesCtrHmacStreamingParams {
                ciphertext_segment_size: segment,
                derived_key_size: derived,
                hkdf_hash_type: HashType::Sha256 as i32,
                hmac_params: Some(tink_proto::HmacParams {
                    hash: hmac as i32,
                    tag_size: tag,
                }),
            }),
            key_value: vec![7; 32],
        }
        .encode_to_vec()
    }

    #[test]
    fn gcm_rules() {
        use HashType::*;
        let ok = |v: Vec<u8>| parse_key(GCM_HKDF, &v).map(|(p, _)| p);
        let p = ok(gcm(16, 16, Sha256, 4096, 0)).expect("template");
        assert_eq!((p.header_len(), p.tag_size()), (24, 16));
        assert!(ok(gcm(32, 32, Sha1, 4096, 0)).is_ok());
        assert!(ok(gcm(32, 32, Sha512, 4096, 0)).is_ok());
        assert!(
            ok(gcm(64, 16, Sha256, 4096, 0)).is_ok(),
            "longer key than derived"
        );
        // The smallest segment: header (1 + derived + 7) + tag + 1.
        assert!(ok(gcm(16, 16, Sha256, 16 + 24 + 1, 0)).is_ok());
        assert!(ok(gcm(16, 16, Sha256, 16 + 24, 0)).is_err());
        assert!(ok(gcm(32, 32, Sha256, 32 + 24 + 1, 0)).is_ok());
        assert!(ok(gcm(32, 32, Sha256, 32 + 24, 0)).is_err());
        assert!(ok(gcm(16, 16, Sha256, i32::MAX as u32, 0)).is_ok());
        assert!(ok(gcm(16, 16, Sha256, i32::MAX as u32 + 1, 0)).is_err());
        assert!(ok(gcm(16, 24, Sha256, 4096, 0)).is_err(), "AES-192");
        assert!(
            ok(gcm(15, 16, Sha256, 4096, 0)).is_err(),
            "key shorter than derived"
        );
        assert!(
            ok(gcm(16, 32, Sha256, 4096, 0)).is_err(),
            "key shorter than derived"
        );
        for h in [Sha224, Sha384, UnknownHash] {
            assert!(ok(gcm(16, 16, h, 4096, 0)).is_err(), "{h:?}");
        }
        assert_eq!(
            ok(gcm(16, 16, Sha256, 4096, 1)).err(),
            Some(KeyError::UnsupportedVersion {
                key_type: GCM_HKDF,
                version: 1
            })
        );
        assert_eq!(
            parse_key(GCM_HKDF, &[0xff]).err(),
            Some(KeyError::MalformedKey { key_type: GCM_HKDF })
        );
    }

    #[test]
    fn ctr_rules() {
        use HashType::*;
        let ok = |v: Vec<u8>| parse_key(CTR_HMAC, &v).map(|(p, _)| p);
        let p = ok(ctr(32, Sha256, 32, 4096)).expect("template");
        assert_eq!((p.header_len(), p.tag_size()), (40, 32));
        assert!(ok(ctr(16, Sha1, 20, 4096)).is_ok());
        assert!(ok(ctr(16, Sha1, 21, 4096)).is_err());
        assert!(ok(ctr(16, Sha512, 64, 4096)).is_ok());
        assert!(ok(ctr(16, Sha512, 65, 4096)).is_err());
        assert!(ok(ctr(16, Sha256, 10, 4096)).is_ok());
        assert!(ok(ctr(16, Sha256, 9, 4096)).is_err());
        assert!(ok(ctr(16, Sha384, 32, 4096)).is_err());
        assert!(ok(ctr(16, Sha224, 16, 4096)).is_err());
        // Segment must exceed header + tag.
        assert!(ok(ctr(16, Sha256, 32, 24 + 32 + 1)).is_ok());
        assert!(ok(ctr(16, Sha256, 32, 24 + 32)).is_err());
        assert!(ok(ctr(16, Sha256, 10, 24 + 10 + 1)).is_ok());
    }

    #[test]
    fn errors_are_specific() {
        let e = parse_key(GCM_HKDF, &gcm(16, 16, HashType::Sha384, 4096, 0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "AesGcmHkdfStreamingKey has an invalid parameter: HKDF hash SHA384 is not supported; allowed: SHA1, SHA256, SHA512"
        );
        let e = parse_key(GCM_HKDF, &gcm(16, 16, HashType::Sha256, 40, 0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "AesGcmHkdfStreamingKey has an invalid parameter: ciphertext segment size is 40 bytes; it must be more than the header (24) and tag (16): at least 41"
        );
        let e = parse_key(CTR_HMAC, &ctr(16, HashType::Sha1, 32, 4096)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "AesCtrHmacStreamingKey has an invalid parameter: tag size is 32 bytes; allowed with HMAC-SHA1: 10 to 20"
        );
    }

    #[test]
    fn new_keys_follow_the_format() {
        let format = AesGcmHkdfStreamingKeyFormat {
            version: 0,
            key_size: 32,
            params: Some(AesGcmHkdfStreamingParams {
                ciphertext_segment_size: 4096,
                derived_key_size: 32,
                hkdf_hash_type: HashType::Sha256 as i32,
            }),
        };
        let a = new_key(
            crate::provider::get_default().expect("provider"),
            GCM_HKDF,
            &format.encode_to_vec(),
        )
        .expect("new");
        let b = new_key(
            crate::provider::get_default().expect("provider"),
            GCM_HKDF,
            &format.encode_to_vec(),
        )
        .expect("new");
        assert_ne!(*a, *b, "fresh key material");
        let (p, key) = parse_key(GCM_HKDF, &a).expect("valid");
        assert_eq!((p.key_size, key.len()), (32, 32));
        let mut big = format;
        big.key_size = 1 << 30;
        assert!(matches!(
            new_key(
                crate::provider::get_default().expect("provider"),
                GCM_HKDF,
                &big.encode_to_vec()
            ),
            Err(KeyError::WrongKeySize { .. })
        ));
        let mut v1 = format;
        v1.version = 1;
        assert!(matches!(
            new_key(
                crate::provider::get_default().expect("provider"),
                GCM_HKDF,
                &v1.encode_to_vec()
            ),
            Err(KeyError::UnsupportedVersion { .. })
        ));
    }
}
