//! encstore's keyset AEAD behind tink-rust's `Aead` trait (cargo feature
//! `tink-rust`).
//!
//! Code written against tink-rust 0.3 (`tink_core::Aead`, usually held as
//! `Box<dyn tink_core::Aead>`) takes a [`TinkRustAead`] in place of the
//! primitive `tink_aead::new(&handle)` returns, and gets encstore's keyset
//! AEAD: the same ciphertexts, byte-compatible with tink-rust and Google's
//! Tink on the same keyset, with no registry and no `tink_aead::init()`.
//!
//! ```
//! use encstore_tink::{Keyset, templates, tink_rust::TinkRustAead};
//!
//! // Code written for tink-rust: takes any `tink_core::Aead`.
//! fn seal(aead: &dyn tink_core::Aead, record: &[u8]) -> Vec<u8> {
//!     aead.encrypt(record, b"records/1").expect("encrypts")
//! }
//!
//! let keyset = Keyset::generate(&templates::by_name("AES256_GCM").unwrap()).unwrap();
//! let aead: Box<dyn tink_core::Aead> = TinkRustAead::from_keyset(&keyset).unwrap().boxed();
//! let ct = seal(&*aead, b"hello");
//! assert_eq!(aead.decrypt(&ct, b"records/1").unwrap(), b"hello");
//! ```
//!
//! Errors become `TinkError`s whose text is encstore's error (which never
//! holds key material, plaintext or ciphertext) after `aead::encrypt: ` or
//! `aead::decrypt: `: a ciphertext naming a key this keyset lacks still
//! says which key ID it named.

use std::fmt;
use std::sync::Arc;

use encstore_core::Aead;
use tink_core::TinkError;
use tink_core::utils::wrap_err;

use crate::aead::KeysetAead;
use crate::error::KeysetError;
use crate::keyset::Keyset;

/// An encstore AEAD (usually a [`KeysetAead`]) that implements tink-rust's
/// [`tink_core::Aead`].
///
/// Cloning is cheap (one `Arc`) and clones share the keys, as tink-rust's
/// `box_clone` expects. Unlike tink-rust's own AEAD it is `Send + Sync`.
/// `Debug` shows the wrapped AEAD's `Debug`, which for a [`KeysetAead`]
/// is key IDs only.
#[derive(Clone)]
pub struct TinkRustAead {
    /// The encstore AEAD every call goes to.
    inner: Arc<dyn Aead>,
}

impl TinkRustAead {
    /// Wraps any encstore AEAD: a [`KeysetAead`], or an AEAD that other
    /// encstore layers built around one (policies, reloadable keysets).
    pub fn new(aead: impl Aead + 'static) -> TinkRustAead {
        TinkRustAead {
            inner: Arc::new(aead),
        }
    }

    /// Wraps a shared encstore AEAD without another allocation.
    pub fn from_arc(aead: Arc<dyn Aead>) -> TinkRustAead {
        TinkRustAead { inner: aead }
    }

    /// Builds the keyset's AEAD ([`Keyset::aead`]) and wraps it.
    ///
    /// # Errors
    /// The errors of [`Keyset::aead`].
    pub fn from_keyset(keyset: &Keyset) -> Result<TinkRustAead, KeysetError> {
        Ok(TinkRustAead::new(keyset.aead()?))
    }

    /// The wrapped encstore AEAD, for encstore APIs.
    pub fn encstore_aead(&self) -> &Arc<dyn Aead> {
        &self.inner
    }

    /// This AEAD as the trait object tink-rust's APIs take and return
    /// (`tink_aead::new` returns a `Box<dyn tink_core::Aead>`).
    pub fn boxed(self) -> Box<dyn tink_core::Aead> {
        Box::new(self)
    }
}

impl From<KeysetAead> for TinkRustAead {
    fn from(aead: KeysetAead) -> TinkRustAead {
        TinkRustAead::new(aead)
    }
}

impl From<Arc<dyn Aead>> for TinkRustAead {
    fn from(aead: Arc<dyn Aead>) -> TinkRustAead {
        TinkRustAead::from_arc(aead)
    }
}

impl fmt::Debug for TinkRustAead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TinkRustAead").field(&self.inner).finish()
    }
}

impl tink_core::Aead for TinkRustAead {
    fn encrypt(&self, plaintext: &[u8], additional_data: &[u8]) -> Result<Vec<u8>, TinkError> {
        self.inner
            .encrypt(plaintext, additional_data)
            .map_err(|e| wrap_err("aead::encrypt", e))
    }

    fn decrypt(&self, ciphertext: &[u8], additional_data: &[u8]) -> Result<Vec<u8>, TinkError> {
        self.inner
            .decrypt(ciphertext, additional_data)
            .map_err(|e| wrap_err("aead::decrypt", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_sync_clone() {
        fn assert_bounds<T: Send + Sync + Clone + 'static>() {}
        assert_bounds::<TinkRustAead>();
    }
}
