//! # encstore-vault: a key-encryption key in HashiCorp Vault or OpenBao
//!
//! The key that wraps a keyset stays in Vault's (or OpenBao's) transit
//! secrets engine; this crate implements [`encstore_core::Kek`] with
//! transit's `encrypt` and `decrypt` endpoints, exactly as Google Tink's
//! HashiCorp Vault integration does, so Tink and encstore read each other's
//! wrapped keysets.
//!
//! - [`VaultUri`]: Tink's `hcvault://HOST[:PORT]/MOUNT/keys/NAME` (the mount
//!   may have several segments). Requests go over HTTPS to `HOST:PORT`.
//! - [`VaultConfig`]: the token (`VAULT_TOKEN`, else `BAO_TOKEN`), the CA
//!   file (`VAULT_CACERT`, else `BAO_CACERT`; the system roots otherwise),
//!   the namespace (`VAULT_NAMESPACE`) and bounded timeouts.
//! - [`VaultKek::open`] checks the key exists; [`create_master_key`] creates
//!   an `aes256-gcm96`, non-exportable key and refuses an existing one.
//! - [`ciphertext_key_version`] reads `N` from a wrapped keyset's
//!   `vault:vN:…`, and [`VaultKek::rewrap_ciphertext`] moves one to the
//!   newest key version: what a census and a master-key rewrap need.
//! - [`VaultError`]: one typed error per thing that can go wrong (server
//!   unreachable, TLS, token refused, key missing, key version too old,
//!   sealed, ...); it converts into [`encstore_core::KekError`].
//!
//! The wrapped form is the UTF-8 transit ciphertext `vault:vN:BASE64`, which
//! goes into the `encrypted_keyset` field of Tink's `EncryptedKeyset`.
//! With empty associated data it is exactly what Tink's Vault AEAD writes
//! and reads. Non-empty associated data is bound by the server (transit's
//! `associated_data`, for AEAD key types); Python Tink refuses non-empty
//! associated data, Tink Go's `hcvault.NewAEAD` reads it. Nothing here
//! logs or prints the token.
//!
//! ```no_run
//! use encstore_core::Kek;
//! use encstore_vault::VaultKek;
//!
//! # async fn demo() -> Result<(), encstore_core::KekError> {
//! // VAULT_TOKEN and VAULT_CACERT come from the environment.
//! let kek = VaultKek::open("hcvault://vault.internal:8200/transit/keys/kek-2026").await?;
//! let wrapped = kek.wrap(b"serialized keyset", b"").await?;
//! assert!(wrapped.starts_with(b"vault:v"));
//! assert_eq!(kek.unwrap(&wrapped, b"").await?, b"serialized keyset");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod config;
mod error;
mod kek;
#[cfg(feature = "test-util")]
pub mod testing;
mod transit;
mod uri;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, ENV_CACERT, ENV_CLIENT_TIMEOUT,
    ENV_NAMESPACE, ENV_TOKEN, VaultConfig,
};
pub use error::VaultError;
pub use kek::{VaultKek, create_master_key};
pub use transit::{KeyInfo, MASTER_KEY_TYPE, ciphertext_key_version};
pub use uri::{SCHEME, VaultUri};
