//! AES building blocks (RustCrypto `aes`, `ctr`, `cmac`) for AES-EAX (CTR
//! and CMAC) and XAES-256-GCM (CMAC key derivation), under the `ring` and
//! `aws-lc-rs` providers (the `fips` provider refuses both key types).
//! AES-CTR-HMAC's CTR comes from the provider (`provider::prim::AesCtr`).
//! The `aes` crate picks AES-NI at run time; with its `zeroize` feature the
//! round keys are wiped on drop.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper};
use aes::{Aes128, Aes256};
use cmac::{Cmac, Mac};

/// CTR with a 128-bit big-endian counter.
type Ctr128Core<C> = ctr::CtrCore<C, ctr::flavors::Ctr128BE>;

/// An expanded AES-128 or AES-256 key.
#[derive(Clone)]
pub(super) enum Aes {
    /// 16-byte key.
    Aes128(Box<Aes128>),
    /// 32-byte key.
    Aes256(Box<Aes256>),
}

impl std::fmt::Debug for Aes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Aes128(_) => "Aes128",
            Self::Aes256(_) => "Aes256",
        })
    }
}

impl Aes {
    /// Expands a 16- or 32-byte key; `None` for any other length.
    pub(super) fn new(key: &[u8]) -> Option<Self> {
        match key.len() {
            16 => Aes128::new_from_slice(key)
                .ok()
                .map(|c| Self::Aes128(Box::new(c))),
            32 => Aes256::new_from_slice(key)
                .ok()
                .map(|c| Self::Aes256(Box::new(c))),
            _ => None,
        }
    }

    /// XORs `data` with the AES-CTR keystream whose first counter block is
    /// `iv`, incremented as one 128-bit big-endian integer (wrapping), as
    /// BoringSSL's `CRYPTO_ctr128_encrypt` and Tink do.
    pub(super) fn ctr128_apply(&self, iv: &[u8; 16], data: &mut [u8]) {
        match self {
            Self::Aes128(c) => {
                let core = Ctr128Core::<Aes128>::inner_iv_init((**c).clone(), iv.into());
                StreamCipherCoreWrapper::from_core(core).apply_keystream(data);
            }
            Self::Aes256(c) => {
                let core = Ctr128Core::<Aes256>::inner_iv_init((**c).clone(), iv.into());
                StreamCipherCoreWrapper::from_core(core).apply_keystream(data);
            }
        }
    }
}

/// A keyed AES-CMAC (OMAC1), cloned per use so the key is expanded once.
#[derive(Clone)]
pub(super) enum AesCmac {
    /// 16-byte key.
    Aes128(Box<Cmac<Aes128>>),
    /// 32-byte key.
    Aes256(Box<Cmac<Aes256>>),
}

impl std::fmt::Debug for AesCmac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesCmac")
    }
}

/// CMAC of the concatenation of `parts`.
fn cmac_parts<M: Mac + Clone>(mac: &M, parts: &[&[u8]]) -> [u8; 16] {
    let mut m = mac.clone();
    for part in parts {
        m.update(part);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&m.finalize().into_bytes()[..16]);
    out
}

impl AesCmac {
    /// Keys CMAC with a 16- or 32-byte AES key; `None` for other lengths.
    pub(super) fn new(key: &[u8]) -> Option<Self> {
        match key.len() {
            16 => <Cmac<Aes128> as KeyInit>::new_from_slice(key)
                .ok()
                .map(|m| Self::Aes128(Box::new(m))),
            32 => <Cmac<Aes256> as KeyInit>::new_from_slice(key)
                .ok()
                .map(|m| Self::Aes256(Box::new(m))),
            _ => None,
        }
    }

    /// CMAC of the concatenation of `parts`.
    pub(super) fn mac(&self, parts: &[&[u8]]) -> [u8; 16] {
        match self {
            Self::Aes128(m) => cmac_parts(&**m, parts),
            Self::Aes256(m) => cmac_parts(&**m, parts),
        }
    }
}
