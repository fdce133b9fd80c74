//! # encstore-tink: Google Tink keysets and the key-ID-prefixed AEAD
//!
//! This crate reads, writes, validates and manages Google Tink keysets,
//! byte-compatible with Tink and Tinkey, and encrypts and decrypts with
//! them exactly as Tink's AEAD does. No global registry, no `init()`.
//!
//! ## Layout
//! - [`keyset`]: the validated [`Keyset`] handle: JSON and binary
//!   formats, cleartext and encrypted (`EncryptedKeyset`), format detection
//!   ([`detect_format`]), key management (add, rotate, promote, enable,
//!   disable, destroy, delete) and [`KeysetInfo`] listings.
//! - [`aead`]: [`KeysetAead`], the keyset's AEAD
//!   (`encstore_core::Aead`): the primary encrypts as
//!   `prefix || raw ciphertext`; decryption looks the key up by prefix.
//! - [`templates`]: key templates under Tinkey's names ([`templates::NAMES`],
//!   [`templates::by_name`]).
//! - [`streaming`]: [`KeysetStreamingAead`], the keyset's streaming AEAD
//!   (Tink's `AesGcmHkdfStreamingKey` and `AesCtrHmacStreamingKey`):
//!   segment arithmetic ([`SegmentLayout`]), sync encrypt/decrypt cores,
//!   tokio `AsyncRead`/`AsyncWrite` adapters, and random access to any
//!   plaintext range over a ranged-read source.
//! - [`envelope`]: Tink's KMS envelope AEAD (`KmsEnvelopeAeadKey`): a
//!   fresh data key per message, wrapped by a KMS key-encryption key
//!   ([`encstore_core::Kek`]); [`KeysetAsyncAead`], the async AEAD of a
//!   keyset that mixes envelope and ordinary keys; the master-key version
//!   of an envelope ciphertext and its re-wrap.
//! - [`primitives`]: one raw AEAD per Tink key type (no prefix).
//! - [`provider`]: the crypto providers (ring by default, AWS-LC, AWS-LC's
//!   FIPS 140-3 module), chosen by cargo features and at run time; which
//!   one is active and whether the module is in FIPS mode
//!   ([`provider::status`]).
//! - [`error`]: [`KeysetError`] and [`KeyError`].
//! - `tink_rust` (cargo feature `tink-rust`): `TinkRustAead`, the keyset
//!   AEAD behind tink-rust's `tink_core::Aead` trait.
//!
//! ## Example
//! ```no_run
//! use encstore_core::Aead;
//! use encstore_tink::{Keyset, templates};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut keyset = Keyset::generate(&templates::by_name("AES256_GCM")?)?;
//! let aead = keyset.aead()?;
//! let ct = aead.encrypt(b"data", b"name")?;
//! keyset.rotate(&templates::by_name("AES256_GCM")?)?;
//! assert_eq!(keyset.aead()?.decrypt(&ct, b"name")?, b"data");
//! # Ok(()) }
//! ```
//!
//! ## Secret hygiene
//! Key material lives in zeroizing buffers; `Debug` never shows it. The
//! tink-proto structs (which derive `Debug` with key bytes) never appear
//! in the public API and are wiped after use. Cleartext keysets are only
//! read and written by functions whose names end in `_insecure`, or by
//! [`Keyset::read`] and [`Keyset::write`] given an explicit
//! [`KeysetProtection::Cleartext`]: the choice is always spelled out.
//!
//! ## Where encstore is stricter than Tink
//! Tink checks only ENABLED keys when it reads a keyset. encstore also
//! refuses duplicate key IDs anywhere in the keyset, a DISABLED key whose
//! key data is missing or invalid (it could never be enabled), a live
//! key whose `keyMaterialType` is not SYMMETRIC (REMOTE or SYMMETRIC for a
//! KMS envelope key), and a keyset whose keys
//! that are not destroyed mix AEAD and streaming AEAD keys (Tink refuses
//! the mix among ENABLED keys: "Wrong primitive class").
//!
//! ## tink-rust
//! encstore reads and writes the keysets and ciphertexts of tink-rust 0.3
//! (`tink-core`, `tink-aead`) byte for byte: `tests/tink_rust_interop.rs`
//! checks both directions for every key type and output prefix both
//! support (AES-GCM, AES-GCM-SIV, AES-CTR-HMAC, ChaCha20-Poly1305,
//! XChaCha20-Poly1305; tink-rust has no AES-EAX or X-AES-GCM). With the
//! cargo feature `tink-rust`, `tink_rust::TinkRustAead` lets code written
//! against tink-rust's `tink_core::Aead` trait use a [`KeysetAead`].
//!
//! encstore does not use tink-rust internally: tink-rust needs a global
//! key-manager registry filled by `init()` calls; its `Box<dyn Aead>` is
//! not `Send`; its errors are strings, where encstore's are typed
//! (`UnknownKeyId` tells a missing key from a forgery); its tink-proto
//! structs print key bytes in `Debug`; and its AES-GCM encrypt path is
//! 1.6 to 12 times slower than encstore's (`docs/performance.md`).
#![forbid(unsafe_code)]

pub mod aead;
pub mod envelope;
pub mod error;
pub mod keyset;
pub mod primitives;
pub mod provider;
pub mod streaming;
pub mod templates;
#[cfg(feature = "tink-rust")]
pub mod tink_rust;

pub use aead::{CiphertextKey, KeysetAead, parse_prefix};
pub use envelope::{EnvelopeAead, EnvelopeError, KeysetAsyncAead};
pub use error::{KeyError, KeysetError, SharedKekError};
pub use keyset::{
    KeyInfo, KeyStatus, Keyset, KeysetEncoding, KeysetFormat, KeysetInfo, KeysetProtection,
    OutputPrefix, PrimitiveKind, detect_format,
};
pub use primitives::{HashType, KeyParams, UnknownHashName};
pub use provider::{CryptoProvider, Provider, ProviderStatus};
pub use streaming::{KeysetStreamingAead, SegmentLayout, StreamingError};
pub use templates::KeyTemplate;
