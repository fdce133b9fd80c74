//! # encstore-pkcs11: a key-encryption key that never leaves an HSM
//!
//! A keyset is only as safe as the key that wraps it. This crate keeps that
//! key-encryption key (KEK) in a PKCS#11 token (a hardware security module,
//! or SoftHSM2 for tests) and implements [`encstore_core::Kek`] with
//! `CKM_AES_GCM` performed inside the token.
//!
//! - [`Pkcs11Uri`]: RFC 7512 URIs such as
//!   `pkcs11:token=encstore;object=kek-2026?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/hsm-pin`.
//!   `pin-value` is refused: a PIN never appears on a command line.
//!   The module and PIN file may also come from [`ENV_MODULE`] and
//!   [`ENV_PIN_FILE`]; the URI wins.
//! - [`Pkcs11Kek::open`] opens an existing key; [`Pkcs11Kek::create_master_key`]
//!   generates a non-extractable, sensitive AES-256 key and refuses if the
//!   label is taken.
//! - [`Pkcs11Error`]: one typed error per thing a user can get wrong; it
//!   converts into [`encstore_core::KekError`].
//!
//! The wrapped form is `IV (12 bytes) || AES-GCM ciphertext || tag (16 bytes)`,
//! with the caller's associated data as GCM's AAD. It is what goes into the
//! `encrypted_keyset` field of Tink's `EncryptedKeyset`.
//!
//! ```no_run
//! use encstore_core::Kek;
//! use encstore_pkcs11::Pkcs11Kek;
//!
//! # async fn demo() -> Result<(), encstore_core::KekError> {
//! let uri = "pkcs11:token=encstore;object=kek-2026?pin-source=file:/run/secrets/hsm-pin";
//! let kek = tokio::task::spawn_blocking(move || Pkcs11Kek::open(uri))
//!     .await
//!     .expect("open task")?;
//! let wrapped = kek.wrap(b"serialized keyset", b"").await?;
//! assert_eq!(kek.unwrap(&wrapped, b"").await?, b"serialized keyset");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod ck;
mod error;
mod gcm;
mod kek;
mod key;
mod pin;
mod session;
#[cfg(feature = "test-util")]
pub mod testing;
mod token;
mod uri;

pub use error::Pkcs11Error;
pub use gcm::{IV_LEN, TAG_LEN};
pub use kek::Pkcs11Kek;
pub use uri::{ENV_MODULE, ENV_PIN_FILE, PinSource, Pkcs11Uri};
