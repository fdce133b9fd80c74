//! `XAesGcmKey`: XAES-256-GCM (C2SP), Tink's variant with a configurable
//! salt size.
//!
//! Per message, with a random salt of `salt_size` (8 to 12) bytes and a
//! random 12-byte IV, the AES-256-GCM key is derived with AES-256-CMAC in
//! counter mode (NIST SP 800-108r1), exactly as Tink's `BaseXAesGcm`:
//!
//! ```text
//! M1 = 00 01 'X' 00 ‖ salt ‖ 0…   (16 bytes; the salt zero-padded to 12)
//! M2 = 00 02 'X' 00 ‖ salt ‖ 0…
//! K' = CMAC(key, M1) ‖ CMAC(key, M2)
//! raw ciphertext = salt ‖ iv(12) ‖ AES-256-GCM(K', iv, pt, ad)
//! ```
//! With a 12-byte salt, `salt ‖ iv` is C2SP's 24-byte XAES-256-GCM nonce.
//! CMAC is RustCrypto `cmac` (keyed once, cloned per message) under every
//! provider; GCM is the provider's (ring or AWS-LC). Refused under `fips`.
//!
//! Tink 1.16 (C++ `XAesGcmKeyManager`): key version 0, key 32 bytes, salt
//! size 8 to 12; the key format's version must be 0 too.
//!
//! `tink-proto` 0.3 predates XAES-GCM, so its protos are defined here with
//! the field numbers of Tink's `proto/x_aes_gcm.proto`.

use encstore_core::AeadError;
use zeroize::Zeroizing;

use super::aes_util::AesCmac;
use super::nonce_aead::{open_in_place_with_nonce, seal_append_without_nonce};
use super::{
    KeyParams, RawAead, TAG_SIZE, check_32_byte_key_size, check_version, decode, decode_key,
    encode_new_key, size,
};
use crate::error::KeyError;
use crate::provider::CryptoProvider;
use crate::provider::prim::{AeadAlg, AeadKey, NONCE_LEN};

const KEY_TYPE: &str = "XAesGcmKey";
const KEY_SIZE: usize = 32;
const MIN_SALT_SIZE: usize = 8;
const MAX_SALT_SIZE: usize = 12;

/// Tink's `google.crypto.tink.XAesGcmParams`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct XAesGcmParams {
    /// Salt size in bytes; Tink allows 8 to 12.
    #[prost(uint32, tag = "1")]
    pub salt_size: u32,
}

/// Tink's `google.crypto.tink.XAesGcmKeyFormat` (field 2 is reserved).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct XAesGcmKeyFormat {
    /// Key format version; only 0.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The parameters of keys to make.
    #[prost(message, optional, tag = "3")]
    pub params: Option<XAesGcmParams>,
}

/// Tink's `google.crypto.tink.XAesGcmKey`. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq, prost::Message)]
#[prost(skip_debug)]
pub struct XAesGcmKey {
    /// Key version; only 0.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The key's parameters.
    #[prost(message, optional, tag = "2")]
    pub params: Option<XAesGcmParams>,
    /// The 32-byte key.
    #[prost(bytes = "vec", tag = "3")]
    pub key_value: Vec<u8>,
}

impl std::fmt::Debug for XAesGcmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XAesGcmKey")
            .field("version", &self.version)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// An XAES-256-GCM key.
struct XAesGcm {
    /// AES-256-CMAC keyed with the key, for the per-message derivation.
    cmac: AesCmac,
    /// Salt size in bytes (8 to 12).
    salt_size: usize,
    /// Where salts, IVs and the per-message AES-256-GCM come from.
    provider: &'static CryptoProvider,
}

impl std::fmt::Debug for XAesGcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XAesGcm")
            .field("salt_size", &self.salt_size)
            .finish_non_exhaustive()
    }
}

impl XAesGcm {
    /// The per-message AES-256-GCM key for `salt`.
    fn derive(&self, salt: &[u8]) -> Result<AeadKey, AeadError> {
        let mut m1 = [0u8; 16];
        m1[..4].copy_from_slice(&[0, 1, b'X', 0]);
        m1[4..4 + salt.len()].copy_from_slice(salt);
        let mut m2 = m1;
        m2[1] = 2;
        let mut derived = Zeroizing::new([0u8; 32]);
        derived[..16].copy_from_slice(&self.cmac.mac(&[&m1]));
        derived[16..].copy_from_slice(&self.cmac.mac(&[&m2]));
        self.provider
            .aead_key(AeadAlg::Aes256Gcm, &derived[..])
            .ok_or(AeadError::Authentication)
    }
}

impl RawAead for XAesGcm {
    fn seal_append(&self, pt: &[u8], ad: &[u8], out: &mut Vec<u8>) -> Result<(), AeadError> {
        let mut salt_iv = [0u8; MAX_SALT_SIZE + NONCE_LEN];
        let header = &mut salt_iv[..self.salt_size + NONCE_LEN];
        self.provider.fill_nonce(header)?;
        let (salt, iv) = header.split_at(self.salt_size);
        let aead = self.derive(salt)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(iv);
        out.reserve(self.overhead() + pt.len());
        out.extend_from_slice(header);
        seal_append_without_nonce(&aead, nonce, pt, ad, out)
    }

    fn open_in_place(&self, buf: &mut Vec<u8>, start: usize, ad: &[u8]) -> Result<(), AeadError> {
        if buf.len() < start.saturating_add(self.overhead()) {
            return Err(AeadError::Authentication);
        }
        let iv_start = start + self.salt_size;
        let aead = self.derive(&buf[start..iv_start])?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&buf[iv_start..iv_start + NONCE_LEN]);
        open_in_place_with_nonce(&aead, nonce, buf, iv_start + NONCE_LEN, ad)
    }

    fn overhead(&self) -> usize {
        self.salt_size + NONCE_LEN + TAG_SIZE
    }

    fn header_len(&self) -> usize {
        self.salt_size + NONCE_LEN
    }
}

/// Tink's salt rule: 8 to 12 bytes.
fn check_params(params: Option<&XAesGcmParams>) -> Result<usize, KeyError> {
    let salt_size = size(params.map_or(0, |p| p.salt_size));
    if !(MIN_SALT_SIZE..=MAX_SALT_SIZE).contains(&salt_size) {
        return Err(KeyError::InvalidParameter {
            key_type: KEY_TYPE,
            what: format!("salt size is {salt_size} bytes; allowed: 8 to 12"),
        });
    }
    Ok(salt_size)
}

pub(super) fn from_key(
    provider: &'static CryptoProvider,
    value: &[u8],
) -> Result<(KeyParams, Box<dyn RawAead>), KeyError> {
    let (proto, key) = decode_key::<XAesGcmKey>(KEY_TYPE, value, check_32_byte_key_size)?;
    let salt_size = check_params(proto.params.as_ref())?;
    let cmac = AesCmac::new(&key).ok_or(KeyError::WrongKeySize {
        key_type: KEY_TYPE,
        size: key.len(),
        allowed: "32 bytes",
    })?;
    Ok((
        KeyParams::XAesGcm { salt_size },
        Box::new(XAesGcm {
            cmac,
            salt_size,
            provider,
        }),
    ))
}

pub(super) fn new_key(
    provider: &CryptoProvider,
    key_format: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let format: XAesGcmKeyFormat = decode(KEY_TYPE, key_format)?;
    check_version(KEY_TYPE, format.version)?;
    check_params(format.params.as_ref())?;
    encode_new_key(provider, KEY_SIZE, |key_value| XAesGcmKey {
        version: 0,
        params: format.params,
        key_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::test_util::*;

    fn from_key(value: &[u8]) -> Result<(KeyParams, Box<dyn RawAead>), KeyError> {
        super::from_key(provider_for(KEY_TYPE), value)
    }

    fn new_key(format: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        super::new_key(provider_for(KEY_TYPE), format)
    }

    fn key_proto(key: &[u8], salt_size: u32, version: u32) -> Vec<u8> {
        prost::Message::encode_to_vec(&XAesGcmKey {
            version,
            params: Some(XAesGcmParams { salt_size }),
            key_value: key.to_vec(),
        })
    }

    fn prim(key: &[u8], salt_size: u32) -> Box<dyn RawAead> {
        from_key(&key_proto(key, salt_size, 0))
            .expect("valid key")
            .1
    }

    #[test]
    fn roundtrip_tamper_wrong_ad() {
        for salt in 8..=12u32 {
            let p = prim(&[4u8; 32], salt);
            check_roundtrip(&*p, salt as usize + 28);
            check_tamper_and_ad(&*p);
        }
    }

    /// Source: C2SP XAES-256-GCM specification (c2sp.org/XAES-256-GCM),
    /// "Test vectors": with a 12-byte salt, Tink's `salt ‖ iv` is the
    /// 24-byte XAES-256-GCM nonce, so the C2SP ciphertexts must decrypt.
    #[test]
    fn known_answer_c2sp() {
        let nonce = b"ABCDEFGHIJKLMNOPQRSTUVWX";
        let mut wire = nonce.to_vec();
        wire.extend_from_slice(&hex(
            "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271",
        ));
        assert_eq!(
            prim(&[0x01; 32], 12).open(&wire, b"").expect("decrypts"),
            b"XAES-256-GCM"
        );

        let mut wire = nonce.to_vec();
        wire.extend_from_slice(&hex(
            "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d",
        ));
        assert_eq!(
            prim(&[0x03; 32], 12)
                .open(&wire, b"c2sp.org/XAES-256-GCM")
                .expect("decrypts"),
            b"XAES-256-GCM"
        );
    }

    /// A short salt is zero-padded into the derivation blocks: a salt of 8
    /// bytes derives the same key as that salt followed by 4 zero bytes.
    #[test]
    fn short_salt_is_zero_padded() {
        let key = [0x42u8; 32];
        let p8 = prim(&key, 8);
        let mut ct = Vec::new();
        p8.seal_append(b"hello", b"ad", &mut ct).expect("seals");
        let mut as12 = ct[..8].to_vec();
        as12.extend_from_slice(&[0; 4]);
        as12.extend_from_slice(&ct[8..]);
        assert_eq!(
            prim(&key, 12).open(&as12, b"ad").expect("decrypts"),
            b"hello"
        );
    }

    #[test]
    fn proto_field_numbers() {
        // version=0 (omitted), params{salt_size=12} as field 2, key_value as field 3.
        let encoded = prost::Message::encode_to_vec(&XAesGcmKey {
            version: 0,
            params: Some(XAesGcmParams { salt_size: 12 }),
            key_value: vec![0xaa; 2],
        });
        assert_eq!(encoded, hex("120208 0c1a02aaaa".replace(' ', "").as_str()));
        let format = prost::Message::encode_to_vec(&XAesGcmKeyFormat {
            version: 0,
            params: Some(XAesGcmParams { salt_size: 8 }),
        });
        assert_eq!(format, hex("1a020808"));
        let shown = format!(
            "{:?}",
            XAesGcmKey {
                version: 0,
                params: None,
                key_value: vec![0xaa; 32]
            }
        );
        assert_eq!(shown, "XAesGcmKey { version: 0, params: None, .. }");
    }

    #[test]
    fn validation() {
        assert_eq!(
            from_key(&key_proto(&[0; 32], 12, 1)).err(),
            Some(KeyError::UnsupportedVersion {
                key_type: KEY_TYPE,
                version: 1
            })
        );
        for bad in [0, 16, 31, 33] {
            assert!(matches!(
                from_key(&key_proto(&vec![0; bad], 12, 0)).err(),
                Some(KeyError::WrongKeySize { size, .. }) if size == bad
            ));
        }
        for bad_salt in [0u32, 7, 13, 24] {
            assert!(matches!(
                from_key(&key_proto(&[0; 32], bad_salt, 0)).err(),
                Some(KeyError::InvalidParameter {
                    key_type: KEY_TYPE,
                    ..
                })
            ));
        }
        let fmt = |salt_size, version| {
            prost::Message::encode_to_vec(&XAesGcmKeyFormat {
                version,
                params: Some(XAesGcmParams { salt_size }),
            })
        };
        assert!(matches!(
            new_key(&fmt(12, 1)),
            Err(KeyError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            new_key(&fmt(7, 0)),
            Err(KeyError::InvalidParameter { .. })
        ));
        for salt in [8, 10, 12] {
            let key = new_key(&fmt(salt, 0)).expect("generates");
            let (params, p) = from_key(&key).expect("loads");
            assert_eq!(
                params,
                KeyParams::XAesGcm {
                    salt_size: salt as usize
                }
            );
            check_roundtrip(&*p, salt as usize + 28);
        }
    }
}
