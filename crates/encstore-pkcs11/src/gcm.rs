//! Wrapping and unwrapping: `CKM_AES_GCM` inside the token, the IV from
//! the token's RNG (or the OS), and telling a bad tag from a broken token.

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;

use crate::error::Pkcs11Error;
use crate::session::Inner;

/// Length of the GCM nonce at the front of a wrapped keyset.
pub const IV_LEN: usize = 12;
/// Length of the GCM tag at the end of a wrapped keyset.
pub const TAG_LEN: usize = 16;

impl Inner {
    pub(crate) fn wrap(&self, plaintext: &[u8], ad: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let out = self.with_live("wrap", |session, key| {
            let mut iv = [0u8; IV_LEN];
            self.fill_iv(session, &mut iv)?;
            let ct = {
                let params = GcmParams::new(&mut iv, ad, (TAG_LEN as u64 * 8).into())?;
                session.encrypt(&Mechanism::AesGcm(params), key, plaintext)?
            };
            let mut out = Vec::with_capacity(IV_LEN + ct.len());
            out.extend_from_slice(&iv);
            out.extend_from_slice(&ct);
            Ok(out)
        })?;
        if out.len() != IV_LEN + plaintext.len() + TAG_LEN {
            return Err(self.op_error(
                "wrap",
                format!(
                    "the token returned {} bytes of AES-GCM output for {} bytes of input",
                    out.len() - IV_LEN,
                    plaintext.len()
                ),
            ));
        }
        Ok(out)
    }

    pub(crate) fn unwrap(&self, ciphertext: &[u8], ad: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        if ciphertext.len() < IV_LEN + TAG_LEN {
            return Err(Pkcs11Error::Authentication);
        }
        let (iv, body) = ciphertext.split_at(IV_LEN);
        self.with_live("unwrap", |session, key| {
            let mut iv = <[u8; IV_LEN]>::try_from(iv)?;
            let params = GcmParams::new(&mut iv, ad, (TAG_LEN as u64 * 8).into())?;
            match session.decrypt(&Mechanism::AesGcm(params), key, body) {
                // The spec's answer to a bad tag is CKR_ENCRYPTED_DATA_INVALID,
                // but SoftHSM2 (and some HSMs) say CKR_GENERAL_ERROR or
                // CKR_FUNCTION_FAILED. Tell a bad tag from a broken token by
                // checking that the key still works: if it encrypts, the
                // token is healthy and the ciphertext was at fault.
                Err(e @ CkError::Pkcs11(RvError::GeneralError | RvError::FunctionFailed, _)) => {
                    if key_still_works(session, key) {
                        Err(CkError::Pkcs11(
                            RvError::EncryptedDataInvalid,
                            Function::Decrypt,
                        ))
                    } else {
                        Err(e)
                    }
                }
                other => other,
            }
        })
    }

    /// Draws the IV from the token's RNG, or from the OS if the token has none.
    fn fill_iv(&self, session: &Session, iv: &mut [u8]) -> cryptoki::error::Result<()> {
        if self.token_rng {
            match session.generate_random_slice(iv) {
                Ok(()) => return Ok(()),
                Err(CkError::Pkcs11(RvError::FunctionNotSupported | RvError::RandomNoRng, _)) => {}
                Err(e) => return Err(e),
            }
        }
        getrandom::fill(iv)
            .map_err(|_| CkError::Pkcs11(RvError::RandomNoRng, Function::GenerateRandom))
    }
}

/// Whether `key` can still encrypt in `session` (a health probe: one GCM
/// encryption of nothing under a fresh IV, which reveals nothing).
fn key_still_works(session: &Session, key: ObjectHandle) -> bool {
    let mut iv = [0u8; IV_LEN];
    if getrandom::fill(&mut iv).is_err() {
        return false;
    }
    let Ok(params) = GcmParams::new(&mut iv, &[], (TAG_LEN as u64 * 8).into()) else {
        return false;
    };
    session
        .encrypt(&Mechanism::AesGcm(params), key, &[])
        .is_ok_and(|tag| tag.len() == TAG_LEN)
}
