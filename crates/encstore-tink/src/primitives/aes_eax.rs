//! `AesEaxKey`: AES-EAX (Bellare, Rogaway, Wagner) with a 12- or 16-byte
//! random IV and a 16-byte tag.
//!
//! The RustCrypto `eax` crate fixes the nonce at 16 bytes and re-expands the
//! AES key four times per message, so EAX is composed here from its
//! definition over RustCrypto's AES, CMAC and CTR (as Tink Java's
//! `AesEaxJce` composes it over AES/ECB and AES/CTR):
//!
//! ```text
//! N = OMAC⁰(iv)   H = OMAC¹(ad)   C = AES-CTR(key, N, pt)   T = N ⊕ H ⊕ OMAC²(C)
//! OMACᵗ(x) = CMAC(key, 0¹⁵ ‖ t ‖ x)
//! ```
//! Wycheproof's `aes_eax_test.json` (12- and 16-byte IVs) checks it.
//!
//! Tink 1.16 (C++ `AesEaxKeyManager`): key version 0, key 16 or 32 bytes,
//! IV 12 or 16 bytes. Raw ciphertext: `iv ‖ ct ‖ tag(16)`.

use encstore_core::AeadError;
use tink_proto::{AesEaxKey, AesEaxKeyFormat, AesEaxParams};
use zeroize::Zeroizing;

use super::aes_util::{Aes, AesCmac};
use super::{
    KeyParams, RawAead, TAG_SIZE, check_aes_key_size, decode, decode_key, encode_new_key, size,
};
use crate::error::KeyError;
use crate::provider::CryptoProvider;
use crate::provider::prim::ct_eq;

const KEY_TYPE: &str = "AesEaxKey";

/// An AES-EAX key.
struct AesEax {
    /// AES round keys for the CTR keystream.
    aes: Aes,
    /// CMAC keyed with the same key, for the three OMACs.
    cmac: AesCmac,
    /// IV size in bytes, 12 or 16.
    iv_size: usize,
    /// Where IVs come from.
    provider: &'static CryptoProvider,
}

impl std::fmt::Debug for AesEax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AesEax")
            .field("iv_size", &self.iv_size)
            .finish_non_exhaustive()
    }
}

impl AesEax {
    /// `OMACᵗ(x)`.
    fn omac(&self, t: u8, x: &[u8]) -> [u8; 16] {
        let mut prefix = [0u8; 16];
        prefix[15] = t;
        self.cmac.mac(&[&prefix, x])
    }

    /// `N ⊕ H`, and `N` (the CTR IV).
    fn nonce_and_header(&self, iv: &[u8], ad: &[u8]) -> ([u8; 16], [u8; 16]) {
        let n = self.omac(0, iv);
        let h = self.omac(1, ad);
        let mut nh = [0u8; 16];
        for i in 0..16 {
            nh[i] = n[i] ^ h[i];
        }
        (n, nh)
    }
}

impl RawAead for AesEax {
    fn seal_append(&self, pt: &[u8], ad: &[u8], out: &mut Vec<u8>) -> Result<(), AeadError> {
        let mut iv = [0u8; 16];
        self.provider.fill_nonce(&mut iv[..self.iv_size])?;
        let iv = &iv[..self.iv_size];
        let (n, mut tag) = self.nonce_and_header(iv, ad);
        out.reserve(self.iv_size + pt.len() + TAG_SIZE);
        out.extend_from_slice(iv);
        let ct_start = out.len();
        out.extend_from_slice(pt);
        self.aes.ctr128_apply(&n, &mut out[ct_start..]);
        let c = self.omac(2, &out[ct_start..]);
        for i in 0..16 {
            tag[i] ^= c[i];
        }
        out.extend_from_slice(&tag);
        Ok(())
    }

    fn open_in_place(&self, buf: &mut Vec<u8>, start: usize, ad: &[u8]) -> Result<(), AeadError> {
        if buf.len() < start.saturating_add(self.iv_size + TAG_SIZE) {
            return Err(AeadError::Authentication);
        }
        let ct_start = start + self.iv_size;
        let tag_start = buf.len() - TAG_SIZE;
        let (n, mut expected) = self.nonce_and_header(&buf[start..ct_start], ad);
        let c = self.omac(2, &buf[ct_start..tag_start]);
        for i in 0..16 {
            expected[i] ^= c[i];
        }
        if !ct_eq(&expected, &buf[tag_start..]) {
            return Err(AeadError::Authentication);
        }
        self.aes.ctr128_apply(&n, &mut buf[ct_start..tag_start]);
        buf.copy_within(ct_start..tag_start, 0);
        buf.truncate(tag_start - ct_start);
        Ok(())
    }

    fn overhead(&self) -> usize {
        self.iv_size + TAG_SIZE
    }

    fn header_len(&self) -> usize {
        self.iv_size
    }
}

/// Tink's IV rule: 12 or 16 bytes.
fn check_iv_size(params: Option<&AesEaxParams>) -> Result<usize, KeyError> {
    let iv_size = size(params.map_or(0, |p| p.iv_size));
    if iv_size != 12 && iv_size != 16 {
        return Err(KeyError::InvalidParameter {
            key_type: KEY_TYPE,
            what: format!("IV size is {iv_size} bytes; allowed: 12 or 16"),
        });
    }
    Ok(iv_size)
}

pub(super) fn from_key(
    provider: &'static CryptoProvider,
    value: &[u8],
) -> Result<(KeyParams, Box<dyn RawAead>), KeyError> {
    let (proto, key) = decode_key::<AesEaxKey>(KEY_TYPE, value, check_aes_key_size)?;
    let iv_size = check_iv_size(proto.params.as_ref())?;
    let wrong = || KeyError::WrongKeySize {
        key_type: KEY_TYPE,
        size: key.len(),
        allowed: "16 or 32 bytes",
    };
    let aead = AesEax {
        aes: Aes::new(&key).ok_or_else(wrong)?,
        cmac: AesCmac::new(&key).ok_or_else(wrong)?,
        iv_size,
        provider,
    };
    let params = KeyParams::AesEax {
        key_size: key.len(),
        iv_size,
    };
    Ok((params, Box::new(aead)))
}

pub(super) fn new_key(
    provider: &CryptoProvider,
    key_format: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let format: AesEaxKeyFormat = decode(KEY_TYPE, key_format)?;
    check_aes_key_size(KEY_TYPE, size(format.key_size))?;
    let iv_size = check_iv_size(format.params.as_ref())?;
    encode_new_key(provider, size(format.key_size), |key_value| AesEaxKey {
        version: 0,
        params: Some(AesEaxParams {
            iv_size: iv_size as u32,
        }),
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

    fn key_proto(key: &[u8], iv_size: u32, version: u32) -> Vec<u8> {
        prost::Message::encode_to_vec(&AesEaxKey {
            version,
            params: Some(AesEaxParams { iv_size }),
            key_value: key.to_vec(),
        })
    }

    fn prim(key: &[u8], iv_size: u32) -> Box<dyn RawAead> {
        from_key(&key_proto(key, iv_size, 0)).expect("valid key").1
    }

    #[test]
    fn roundtrip_tamper_wrong_ad() {
        for size in [16, 32] {
            for iv in [12u32, 16] {
                let p = prim(&vec![1u8; size], iv);
                check_roundtrip(&*p, iv as usize + 16);
                check_tamper_and_ad(&*p);
            }
        }
    }

    /// Source: the EAX paper (Bellare, Rogaway, Wagner 2004), appendix test
    /// vector 2 (non-empty message, 16-byte nonce).
    #[test]
    fn known_answer_eax_paper() {
        let key = hex("91945d3f4dcbee0bf45ef52255f095a4");
        let nonce = hex("becaf043b0a23d843194ba972c66debd");
        let ad = hex("fa3bfd4806eb53fa");
        let pt = hex("f7fb");
        let mut ct = nonce.clone();
        ct.extend_from_slice(&hex("19dd5c4c9331049d0bdab0277408f67967e5"));
        assert_eq!(prim(&key, 16).open(&ct, &ad).expect("decrypts"), pt);
    }

    #[test]
    fn validation() {
        assert_eq!(
            from_key(&key_proto(&[0; 16], 16, 1)).err(),
            Some(KeyError::UnsupportedVersion {
                key_type: KEY_TYPE,
                version: 1
            })
        );
        for bad in [0, 15, 24, 33] {
            assert!(matches!(
                from_key(&key_proto(&vec![0; bad], 16, 0)).err(),
                Some(KeyError::WrongKeySize { size, .. }) if size == bad
            ));
        }
        for bad_iv in [0u32, 8, 11, 13, 15, 17, 32] {
            assert!(matches!(
                from_key(&key_proto(&[0; 16], bad_iv, 0)).err(),
                Some(KeyError::InvalidParameter {
                    key_type: KEY_TYPE,
                    ..
                })
            ));
        }
        let no_params = prost::Message::encode_to_vec(&AesEaxKey {
            version: 0,
            params: None,
            key_value: vec![0; 16],
        });
        assert!(matches!(
            from_key(&no_params),
            Err(KeyError::InvalidParameter { .. })
        ));
        let fmt = |key_size, iv_size| {
            prost::Message::encode_to_vec(&AesEaxKeyFormat {
                params: Some(AesEaxParams { iv_size }),
                key_size,
            })
        };
        assert!(matches!(
            new_key(&fmt(24, 16)),
            Err(KeyError::WrongKeySize { size: 24, .. })
        ));
        assert!(matches!(
            new_key(&fmt(16, 8)),
            Err(KeyError::InvalidParameter { .. })
        ));
        for size in [16, 32] {
            for iv in [12, 16] {
                let key = new_key(&fmt(size, iv)).expect("generates");
                let (params, p) = from_key(&key).expect("loads");
                assert_eq!(
                    params,
                    KeyParams::AesEax {
                        key_size: size as usize,
                        iv_size: iv as usize
                    }
                );
                check_roundtrip(&*p, iv as usize + 16);
            }
        }
    }
}
