//! Crypto providers: which library does encstore's cryptography.
//!
//! In the spirit of rustls's `CryptoProvider`, every primitive encstore
//! needs (AEADs, AES-CTR, HMAC, HKDF, random bytes) comes from a
//! [`CryptoProvider`], chosen at build time by cargo features and, when a
//! build has more than one, at run time:
//!
//! | provider ([`Provider`]) | cargo feature | what it runs on |
//! | --- | --- | --- |
//! | `ring` (default) | `ring` (default) | ring for AES-GCM and ChaCha20-Poly1305; RustCrypto for AES-GCM-SIV, AES-EAX, AES-CTR, CMAC, HMAC, HKDF (as before providers existed) |
//! | `aws-lc-rs` | `aws-lc-rs` | AWS-LC (plain build) for AES-GCM, AES-GCM-SIV, ChaCha20-Poly1305, AES-CTR, HMAC and HKDF; RustCrypto for what aws-lc-rs lacks or encstore keeps: AES-EAX, the CMAC of XAES-256-GCM's key derivation, HChaCha20 (RustCrypto `chacha20`) |
//! | `fips` | `fips` | AWS-LC's FIPS 140-3 validated module for every primitive; FIPS-approved key types only |
//!
//! Ciphertexts and keysets are byte for byte the same under every
//! provider (the test suite runs under each).
//!
//! # Choosing
//! - A keyset's primitives are built by the provider current when the
//!   keyset is read or created ([`get_default`]), or by the one passed
//!   explicitly ([`crate::Keyset::read_with_provider`],
//!   [`crate::Keyset::generate_with_provider`],
//!   [`crate::Keyset::with_provider`]); keys added later use the keyset's
//!   provider. [`crate::Keyset::provider`] tells which.
//! - The process default is fixed on first use, in this order: the
//!   provider given to [`install_default`] before that; else the
//!   environment variable `ENCSTORE_CRYPTO_PROVIDER` (`ring`, `aws-lc-rs`
//!   or `fips`: the cargo feature's name; it must be compiled in); else the
//!   build's own default: `fips` when compiled in (a FIPS build runs FIPS
//!   unless told otherwise), else `ring`, else `aws-lc-rs`.
//! - The only global state is that default: one `OnceLock` set once and
//!   never changed (like rustls's `install_default`). Nothing else is
//!   mutable, and a provider is never switched under a live keyset.
//!
//! Unlike rustls, the set of providers is closed: encstore's byte
//! compatibility with Tink is tested for each of them, which a provider
//! plugged in from outside could not be.
//!
//! # The `fips` provider
//! - [`CryptoProvider::get`]`(Provider::AwsLcFips)` (and so every use of
//!   the provider, including choosing it as the default) first checks the
//!   module with `aws_lc_rs::try_fips_mode()`: the module's power-on
//!   self-tests and integrity check have passed and it is in FIPS mode. A
//!   process where it is not refuses to run under `fips`
//!   ([`ProviderError::NotInFipsMode`]).
//! - Only FIPS-approved key types can be created, read or used: AES-GCM
//!   (`AesGcmKey`), AES-CTR-HMAC (`AesCtrHmacAeadKey`) and the streaming
//!   types built on them (`AesGcmHkdfStreamingKey`,
//!   `AesCtrHmacStreamingKey`). AES-GCM-SIV, AES-EAX, ChaCha20-Poly1305,
//!   XChaCha20-Poly1305 and XAES-256-GCM are refused with
//!   [`KeyError::NotFipsApproved`] naming the key type, and so is SHA-1 as
//!   an HMAC or HKDF hash (the module still allows it for legacy use;
//!   encstore does not, like the `fips` policy preset). A KMS envelope key
//!   (`KmsEnvelopeAeadKey`) is allowed when its DEK type is: its DEKs are
//!   made and used by the keyset's provider
//!   ([`crate::envelope::DekTemplate::provider`]).
//! - Every random byte (keys, key IDs, IVs, streaming salts and nonce
//!   prefixes) comes from the module's approved DRBG (`aws_lc_rs::rand`);
//!   a keyset AES-GCM key's IV is generated inside the module
//!   (`RandomizedNonceKey`, SP 800-38D section 8.2.2).
//! - `docs/key-management.md` and `docs/threat-model.md` say exactly what
//!   this guarantees and what it does not.
//!
//! # Example
//! ```
//! use encstore_tink::provider::{self, Provider};
//!
//! // What this process uses (fixes the default on first call).
//! let status = provider::status().expect("a provider");
//! println!("{status}");
//! assert!(Provider::compiled().contains(&status.provider));
//! ```

use std::fmt;
#[cfg(feature = "fips")]
use std::sync::OnceLock;

use crate::error::KeyError;
use crate::primitives::{HashType, KeyParams};

mod default;
pub(crate) mod prim;

use default::install;
pub use default::{build_default, get_default, install_default, status};

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs", feature = "fips")))]
compile_error!(
    "encstore-tink needs a crypto provider: enable its `ring` (default), `aws-lc-rs` or `fips` feature"
);

/// The environment variable that picks the process's default provider
/// when more than one is compiled in (see [`get_default`]).
pub const ENV_VAR: &str = "ENCSTORE_CRYPTO_PROVIDER";

/// A crypto provider encstore can be built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// ring (AES-GCM, ChaCha20-Poly1305) and RustCrypto (everything
    /// else). Cargo feature `ring`, the default.
    Ring,
    /// AWS-LC through aws-lc-rs, plain (not validated) build. Cargo
    /// feature `aws-lc-rs`.
    AwsLc,
    /// AWS-LC's FIPS 140-3 validated module, through aws-lc-rs's `fips`
    /// feature; FIPS-approved key types only. Cargo feature `fips`.
    AwsLcFips,
}

/// Every provider, in the order [`Provider::compiled`] lists them.
const ALL: [Provider; 3] = [Provider::Ring, Provider::AwsLc, Provider::AwsLcFips];

/// The providers of this build.
const COMPILED: &[Provider] = &[
    #[cfg(feature = "ring")]
    Provider::Ring,
    #[cfg(all(feature = "aws-lc-rs", not(feature = "fips")))]
    Provider::AwsLc,
    #[cfg(feature = "fips")]
    Provider::AwsLcFips,
];

impl Provider {
    /// The provider's name, which is also its cargo feature and its value
    /// of `ENCSTORE_CRYPTO_PROVIDER`: `ring`, `aws-lc-rs` or `fips`.
    pub const fn name(self) -> &'static str {
        match self {
            Provider::Ring => "ring",
            Provider::AwsLc => "aws-lc-rs",
            Provider::AwsLcFips => "fips",
        }
    }

    /// The provider named `name` ([`Provider::name`]), compiled in or not.
    ///
    /// # Errors
    /// [`ProviderError::UnknownName`] for any other name.
    pub fn from_name(name: &str) -> Result<Provider, ProviderError> {
        ALL.into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| ProviderError::UnknownName {
                name: name.to_owned(),
            })
    }

    /// The providers compiled into this build. With the `fips` feature,
    /// aws-lc-rs runs on the FIPS module as a whole, so `aws-lc-rs` is not
    /// offered next to `fips`.
    pub fn compiled() -> &'static [Provider] {
        COMPILED
    }

    /// Whether this provider is compiled into this build.
    pub fn is_compiled(self) -> bool {
        COMPILED.contains(&self)
    }

    /// What the provider runs on, in words.
    pub const fn description(self) -> &'static str {
        match self {
            Provider::Ring => "ring and RustCrypto",
            Provider::AwsLc => "AWS-LC (aws-lc-rs), RustCrypto for AES-EAX and CMAC",
            Provider::AwsLcFips => "AWS-LC FIPS 140-3 module (aws-lc-rs fips)",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a provider cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// No provider has this name.
    #[error("unknown crypto provider {name:?} (known: ring, aws-lc-rs, fips)")]
    UnknownName {
        /// The name asked for.
        name: String,
    },
    /// The provider exists but this build does not include it.
    #[error(
        "crypto provider {name:?} is not compiled into this build (compiled: {compiled}); build with the cargo feature `{name}`"
    )]
    NotCompiled {
        /// The provider asked for.
        name: &'static str,
        /// The providers this build has, comma-separated.
        compiled: String,
    },
    /// The FIPS module is not in FIPS mode (its self-tests or integrity
    /// check failed, or it is not the validated build): a process in that
    /// state refuses to run under the `fips` provider.
    #[error(
        "the AWS-LC FIPS module is not in FIPS mode ({reason}); refusing to run under the fips crypto provider"
    )]
    NotInFipsMode {
        /// What the module reported.
        reason: String,
    },
    /// `ENCSTORE_CRYPTO_PROVIDER` names no usable provider.
    #[error("{var}: {source}")]
    Environment {
        /// The variable's name ([`ENV_VAR`]).
        var: &'static str,
        /// Why its value cannot be used.
        source: Box<ProviderError>,
    },
    /// The process default was already fixed to another provider.
    #[error(
        "the process's crypto provider is already {installed}; it cannot be changed to {requested}"
    )]
    AlreadyInstalled {
        /// The provider in place.
        installed: Provider,
        /// The provider asked for.
        requested: Provider,
    },
}

/// How the process's default provider was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selection {
    /// By [`install_default`].
    Installed,
    /// By the environment variable [`ENV_VAR`].
    Environment,
    /// The build's default (`fips` if compiled in, else `ring`, else
    /// `aws-lc-rs`).
    BuildDefault,
}

impl Selection {
    /// In words: `installed by the application`, `ENCSTORE_CRYPTO_PROVIDER`
    /// or `build default`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Selection::Installed => "installed by the application",
            Selection::Environment => ENV_VAR,
            Selection::BuildDefault => "build default",
        }
    }
}

/// A usable crypto provider: compiled in and, for `fips`, with the module
/// in FIPS mode. Get one with [`CryptoProvider::get`] or [`get_default`];
/// every instance is `'static` and immutable.
pub struct CryptoProvider {
    kind: Provider,
}

impl fmt::Debug for CryptoProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CryptoProvider({})", self.kind.name())
    }
}

#[cfg(feature = "ring")]
static RING: CryptoProvider = CryptoProvider {
    kind: Provider::Ring,
};
#[cfg(all(feature = "aws-lc-rs", not(feature = "fips")))]
static AWS_LC: CryptoProvider = CryptoProvider {
    kind: Provider::AwsLc,
};
#[cfg(feature = "fips")]
static AWS_LC_FIPS: CryptoProvider = CryptoProvider {
    kind: Provider::AwsLcFips,
};

/// The FIPS module's answer to `try_fips_mode()`, asked once.
#[cfg(feature = "fips")]
static FIPS_MODE: OnceLock<Result<(), ProviderError>> = OnceLock::new();

/// The `fips` provider's start-up gate: usable only if the module says it
/// is in FIPS mode.
#[cfg_attr(not(feature = "fips"), allow(dead_code))]
fn fips_gate(module_answer: Result<(), &str>) -> Result<(), ProviderError> {
    module_answer.map_err(|reason| ProviderError::NotInFipsMode {
        reason: reason.to_owned(),
    })
}

impl CryptoProvider {
    /// The provider `which`, if this build has it and (for
    /// [`Provider::AwsLcFips`]) the module is in FIPS mode.
    ///
    /// # Errors
    /// [`ProviderError::NotCompiled`], [`ProviderError::NotInFipsMode`].
    pub fn get(which: Provider) -> Result<&'static CryptoProvider, ProviderError> {
        let not_compiled = || ProviderError::NotCompiled {
            name: which.name(),
            compiled: COMPILED
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join(", "),
        };
        match which {
            #[cfg(feature = "ring")]
            Provider::Ring => Ok(&RING),
            #[cfg(all(feature = "aws-lc-rs", not(feature = "fips")))]
            Provider::AwsLc => Ok(&AWS_LC),
            #[cfg(feature = "fips")]
            Provider::AwsLcFips => {
                FIPS_MODE
                    .get_or_init(|| fips_gate(aws_lc_rs::try_fips_mode()))
                    .clone()?;
                Ok(&AWS_LC_FIPS)
            }
            #[allow(unreachable_patterns)]
            _ => Err(not_compiled()),
        }
    }

    /// Which provider this is.
    pub fn provider(&self) -> Provider {
        self.kind
    }

    /// `true` for the `fips` provider (which exists only once the module
    /// has reported FIPS mode).
    pub fn fips(&self) -> bool {
        self.kind == Provider::AwsLcFips
    }

    /// What this provider is, for `encstore --version`, `encstore
    /// providers` and logs.
    pub fn status(&self) -> ProviderStatus {
        ProviderStatus {
            provider: self.kind,
            description: self.kind.description(),
            library_version: self.library_version(),
            fips_mode: self.fips_mode(),
            randomness: self.randomness(),
            compiled: COMPILED,
            selection: default::selection_of(self),
        }
    }

    /// The linked AWS-LC's version, for the AWS-LC providers.
    fn library_version(&self) -> Option<String> {
        match self.kind {
            #[cfg(any(feature = "aws-lc-rs", feature = "fips"))]
            Provider::AwsLc | Provider::AwsLcFips => Some(aws_lc_rs::awslc_version().to_owned()),
            _ => None,
        }
    }

    /// Asks the module (for the `fips` provider) whether it is in FIPS mode
    /// now; `false` for the others.
    fn fips_mode(&self) -> bool {
        match self.kind {
            #[cfg(feature = "fips")]
            Provider::AwsLcFips => aws_lc_rs::try_fips_mode().is_ok(),
            _ => false,
        }
    }

    /// Where random bytes come from, in words.
    fn randomness(&self) -> &'static str {
        if self.fips() {
            "the FIPS module's DRBG (keys, key IDs, IVs, salts)"
        } else {
            match crate::primitives::nonce_source() {
                crate::primitives::NonceSource::KernelVdso => {
                    "kernel CSPRNG (IVs through the vDSO getrandom, keys through getrandom)"
                }
                _ => "kernel CSPRNG (getrandom)",
            }
        }
    }

    /// Whether keys of type `type_url` can be created, read and used under
    /// this provider (before their parameters are looked at: see
    /// [`CryptoProvider::check_key_params`]).
    ///
    /// # Errors
    /// [`KeyError::NotFipsApproved`] naming the key type, under `fips`.
    pub fn check_key_type(&self, type_url: &str) -> Result<(), KeyError> {
        if !self.fips() {
            return Ok(());
        }
        let name = type_url
            .strip_prefix(crate::primitives::TYPE_URL_PREFIX)
            .unwrap_or(type_url);
        let refusal = |key_type: &'static str, reason: &'static str| {
            Err(KeyError::NotFipsApproved { key_type, reason })
        };
        match name {
            "AesGcmSivKey" => refusal(
                "AesGcmSivKey",
                "AES-GCM-SIV is not a FIPS-approved mode of operation",
            ),
            "AesEaxKey" => refusal(
                "AesEaxKey",
                "AES-EAX is not a FIPS-approved mode of operation",
            ),
            "ChaCha20Poly1305Key" => refusal(
                "ChaCha20Poly1305Key",
                "ChaCha20-Poly1305 is not a FIPS-approved algorithm",
            ),
            "XChaCha20Poly1305Key" => refusal(
                "XChaCha20Poly1305Key",
                "XChaCha20-Poly1305 is not a FIPS-approved algorithm",
            ),
            "XAesGcmKey" => refusal(
                "XAesGcmKey",
                "XAES-256-GCM is not a FIPS-approved mode (the FIPS module does not implement Tink's variant)",
            ),
            _ => Ok(()),
        }
    }

    /// Whether a key with these parameters can be created, read and used
    /// under this provider. Under `fips`, on top of
    /// [`CryptoProvider::check_key_type`]: no SHA-1 as an HMAC or HKDF
    /// hash.
    ///
    /// # Errors
    /// [`KeyError::NotFipsApproved`] naming the key type, under `fips`.
    pub fn check_key_params(&self, params: &KeyParams) -> Result<(), KeyError> {
        if !self.fips() {
            return Ok(());
        }
        let sha1 = |key_type: &'static str| {
            Err(KeyError::NotFipsApproved {
                key_type,
                reason: "SHA-1 is refused by encstore's fips provider (legacy use only; the fips policy preset refuses it too)",
            })
        };
        match params {
            KeyParams::AesGcm { .. } => Ok(()),
            KeyParams::AesCtrHmac { hash, .. } if *hash == HashType::Sha1 => {
                sha1("AesCtrHmacAeadKey")
            }
            KeyParams::AesCtrHmac { .. } => Ok(()),
            KeyParams::AesGcmHkdfStreaming { hkdf_hash, .. } if *hkdf_hash == HashType::Sha1 => {
                sha1("AesGcmHkdfStreamingKey")
            }
            KeyParams::AesGcmHkdfStreaming { .. } => Ok(()),
            KeyParams::AesCtrHmacStreaming {
                hkdf_hash,
                hmac_hash,
                ..
            } if *hkdf_hash == HashType::Sha1 || *hmac_hash == HashType::Sha1 => {
                sha1("AesCtrHmacStreamingKey")
            }
            KeyParams::AesCtrHmacStreaming { .. } => Ok(()),
            KeyParams::AesGcmSiv { .. } => self.check_key_type("AesGcmSivKey"),
            KeyParams::AesEax { .. } => self.check_key_type("AesEaxKey"),
            KeyParams::ChaCha20Poly1305 => self.check_key_type("ChaCha20Poly1305Key"),
            KeyParams::XChaCha20Poly1305 => self.check_key_type("XChaCha20Poly1305Key"),
            KeyParams::XAesGcm { .. } => self.check_key_type("XAesGcmKey"),
            // An envelope key's data is encrypted by its DEKs, made and
            // used by this provider: approved if they are. Its KEK lives
            // in a KMS or HSM, outside the module (docs/key-management.md).
            KeyParams::KmsEnvelope { dek, .. } => self.check_key_params(dek),
        }
    }

    /// Makes this provider the process default, unless one is already
    /// fixed (see [`install_default`]).
    ///
    /// # Errors
    /// [`ProviderError::AlreadyInstalled`] if another provider is already
    /// the default.
    pub fn install_default(&'static self) -> Result<(), ProviderError> {
        install(self, Selection::Installed).map(|_| ())
    }
}

/// What a provider is: printed by `encstore --version` and `encstore
/// providers` so an auditor can check a deployed binary.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderStatus {
    /// The provider.
    pub provider: Provider,
    /// What it runs on, in words.
    pub description: &'static str,
    /// The linked AWS-LC's version (AWS-LC providers only).
    pub library_version: Option<String>,
    /// `true` only for the `fips` provider, and only if the module reports
    /// FIPS mode (`aws_lc_rs::try_fips_mode()`), asked again for this
    /// status.
    pub fips_mode: bool,
    /// Where random bytes come from, in words.
    pub randomness: &'static str,
    /// The providers compiled into this build.
    pub compiled: &'static [Provider],
    /// How this provider became the process default; `None` if it is not
    /// the default.
    pub selection: Option<Selection>,
}

impl ProviderStatus {
    /// The provider's name (`ring`, `aws-lc-rs` or `fips`).
    pub fn name(&self) -> &'static str {
        self.provider.name()
    }
}

/// One line: `fips (AWS-LC FIPS 140-3 module (aws-lc-rs fips), AWS-LC
/// 3.0.0), FIPS mode: yes`.
impl fmt::Display for ProviderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}", self.provider.name(), self.description)?;
        if let Some(v) = &self.library_version {
            write!(f, ", AWS-LC {v}")?;
        }
        write!(
            f,
            "), FIPS mode: {}",
            if self.fips_mode { "yes" } else { "no" }
        )
    }
}

/// Tests only: the AWS-LC code path without the FIPS checks, on the FIPS
/// module of a `fips` build, so that the implementations of key types the
/// `fips` provider refuses are tested in that build too.
#[cfg(all(test, feature = "fips"))]
static AWS_LC_UNCHECKED: CryptoProvider = CryptoProvider {
    kind: Provider::AwsLc,
};

/// Tests only: every implementation in this build: each compiled provider
/// and, in a `fips` build, the AWS-LC code path without the FIPS checks.
#[cfg(test)]
pub(crate) fn test_implementations() -> Vec<&'static CryptoProvider> {
    #[allow(unused_mut)]
    let mut all: Vec<&'static CryptoProvider> = COMPILED
        .iter()
        .map(|p| CryptoProvider::get(*p).expect("compiled"))
        .collect();
    #[cfg(feature = "fips")]
    all.push(&AWS_LC_UNCHECKED);
    all
}

#[cfg(test)]
mod tests;
