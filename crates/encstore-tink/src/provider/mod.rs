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
//! | `aws-lc-rs` | `aws-lc-rs` | AWS-LC (plain build) for AES-GCM, AES-GCM-SIV, ChaCha20-Poly1305, AES-CTR, HMAC and HKDF; RustCrypto for what aws-lc-rs lacks or encstore keeps: AES-EAX, the CMAC of XAES-256-GCM's key derivation, HChaCha20 (encstore's own) |
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
use std::sync::OnceLock;

use crate::error::KeyError;
use crate::primitives::KeyParams;

pub(crate) mod prim;

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
            selection: DEFAULT
                .get()
                .filter(|d| std::ptr::eq(d.provider, self))
                .map(|d| d.selection),
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
            KeyParams::AesCtrHmac { hash, .. } if *hash == "SHA1" => sha1("AesCtrHmacAeadKey"),
            KeyParams::AesCtrHmac { .. } => Ok(()),
            KeyParams::AesGcmHkdfStreaming { hkdf_hash, .. } if *hkdf_hash == "SHA1" => {
                sha1("AesGcmHkdfStreamingKey")
            }
            KeyParams::AesGcmHkdfStreaming { .. } => Ok(()),
            KeyParams::AesCtrHmacStreaming {
                hkdf_hash,
                hmac_hash,
                ..
            } if *hkdf_hash == "SHA1" || *hmac_hash == "SHA1" => sha1("AesCtrHmacStreamingKey"),
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

/// The process default and how it was chosen.
struct Default {
    provider: &'static CryptoProvider,
    selection: Selection,
}

/// The process's default provider: set once, on first use or by
/// [`install_default`], never changed.
static DEFAULT: OnceLock<Default> = OnceLock::new();

/// Sets the default unless one is set; returns the one in place, or an
/// error if it is another provider.
fn install(
    provider: &'static CryptoProvider,
    selection: Selection,
) -> Result<&'static CryptoProvider, ProviderError> {
    let set = DEFAULT.get_or_init(|| Default {
        provider,
        selection,
    });
    if set.provider.kind == provider.kind || selection != Selection::Installed {
        Ok(set.provider)
    } else {
        Err(ProviderError::AlreadyInstalled {
            installed: set.provider.kind,
            requested: provider.kind,
        })
    }
}

/// The provider a build picks when nothing else says: `fips` if compiled
/// in, else `ring`, else `aws-lc-rs`.
pub fn build_default() -> Provider {
    if Provider::AwsLcFips.is_compiled() {
        Provider::AwsLcFips
    } else if Provider::Ring.is_compiled() {
        Provider::Ring
    } else {
        Provider::AwsLc
    }
}

/// Makes `which` the process's default provider. Call it before reading
/// or creating any keyset (the default is fixed on first use); calling it
/// again with the same provider is harmless.
///
/// # Errors
/// [`ProviderError::NotCompiled`], [`ProviderError::NotInFipsMode`], or
/// [`ProviderError::AlreadyInstalled`] if the default is already another
/// provider.
pub fn install_default(which: Provider) -> Result<&'static CryptoProvider, ProviderError> {
    install(CryptoProvider::get(which)?, Selection::Installed)
}

/// The process's default provider, fixing it on first call: the one
/// [`install_default`] set; else `ENCSTORE_CRYPTO_PROVIDER`; else
/// [`build_default`].
///
/// # Errors
/// [`ProviderError::Environment`] when `ENCSTORE_CRYPTO_PROVIDER` names an
/// unknown or absent provider (nothing is fixed then, and every call fails
/// the same way), [`ProviderError::NotInFipsMode`] when the chosen provider
/// is `fips` and the module is not in FIPS mode.
pub fn get_default() -> Result<&'static CryptoProvider, ProviderError> {
    if let Some(d) = DEFAULT.get() {
        return Ok(d.provider);
    }
    let (provider, selection) = choose(std::env::var(ENV_VAR).ok().as_deref())?;
    install(provider, selection)
}

/// The provider the environment variable's value (if any) picks, else the
/// build default. An empty or blank value counts as unset.
fn choose(env: Option<&str>) -> Result<(&'static CryptoProvider, Selection), ProviderError> {
    match env.map(str::trim) {
        Some(name) if !name.is_empty() => {
            let env = |source| ProviderError::Environment {
                var: ENV_VAR,
                source: Box::new(source),
            };
            let which = Provider::from_name(name).map_err(env)?;
            Ok((
                CryptoProvider::get(which).map_err(env)?,
                Selection::Environment,
            ))
        }
        _ => Ok((
            CryptoProvider::get(build_default())?,
            Selection::BuildDefault,
        )),
    }
}

/// The status of the process's default provider ([`get_default`]).
///
/// # Errors
/// Those of [`get_default`].
pub fn status() -> Result<ProviderStatus, ProviderError> {
    get_default().map(CryptoProvider::status)
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
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in ALL {
            assert_eq!(Provider::from_name(p.name()), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(
            Provider::from_name("openssl"),
            Err(ProviderError::UnknownName {
                name: "openssl".into()
            })
        );
        assert_eq!(
            Provider::from_name("openssl").unwrap_err().to_string(),
            "unknown crypto provider \"openssl\" (known: ring, aws-lc-rs, fips)"
        );
        // Names are exact: no case folding, no aliases.
        assert!(Provider::from_name("RING").is_err());
        assert!(Provider::from_name("aws-lc-rs-fips").is_err());
    }

    /// The compiled list follows the cargo features exactly, and every
    /// provider outside it is refused by name.
    #[test]
    fn compiled_providers_follow_the_features() {
        assert_eq!(Provider::Ring.is_compiled(), cfg!(feature = "ring"));
        assert_eq!(
            Provider::AwsLc.is_compiled(),
            cfg!(all(feature = "aws-lc-rs", not(feature = "fips")))
        );
        assert_eq!(Provider::AwsLcFips.is_compiled(), cfg!(feature = "fips"));
        assert!(!Provider::compiled().is_empty());
        for p in ALL {
            match CryptoProvider::get(p) {
                Ok(c) => {
                    assert!(p.is_compiled());
                    assert_eq!(c.provider(), p);
                    assert_eq!(c.fips(), p == Provider::AwsLcFips);
                }
                Err(ProviderError::NotCompiled { name, compiled }) => {
                    assert!(!p.is_compiled());
                    assert_eq!(name, p.name());
                    for c in Provider::compiled() {
                        assert!(compiled.contains(c.name()), "{compiled}");
                    }
                    let msg = CryptoProvider::get(p).unwrap_err().to_string();
                    assert!(msg.contains(&format!("`{}`", p.name())), "{msg}");
                }
                Err(e) => panic!("{p}: {e}"),
            }
        }
    }

    #[test]
    fn the_build_default_prefers_fips_then_ring() {
        let expected = if cfg!(feature = "fips") {
            Provider::AwsLcFips
        } else if cfg!(feature = "ring") {
            Provider::Ring
        } else {
            Provider::AwsLc
        };
        assert_eq!(build_default(), expected);
    }

    /// A module that is not in FIPS mode makes the `fips` provider
    /// unusable, with the module's own words in the message.
    #[test]
    fn the_fips_gate_refuses_a_module_not_in_fips_mode() {
        assert_eq!(fips_gate(Ok(())), Ok(()));
        let err = fips_gate(Err("FIPS mode not enabled!")).unwrap_err();
        assert_eq!(
            err,
            ProviderError::NotInFipsMode {
                reason: "FIPS mode not enabled!".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "the AWS-LC FIPS module is not in FIPS mode (FIPS mode not enabled!); refusing to run under the fips crypto provider"
        );
    }

    /// Under `fips` the module reports FIPS mode, and the status says so;
    /// the other providers never claim it.
    #[test]
    fn status_reports_fips_mode_only_for_the_fips_module() {
        for p in Provider::compiled() {
            let s = CryptoProvider::get(*p).expect("compiled").status();
            assert_eq!(s.provider, *p);
            assert_eq!(s.fips_mode, *p == Provider::AwsLcFips, "{p}");
            assert_eq!(s.library_version.is_some(), *p != Provider::Ring);
            assert_eq!(s.compiled, Provider::compiled());
            let line = s.to_string();
            assert!(line.starts_with(p.name()), "{line}");
            assert!(
                line.ends_with(if s.fips_mode {
                    "FIPS mode: yes"
                } else {
                    "FIPS mode: no"
                }),
                "{line}"
            );
        }
    }

    /// Under `fips`: exactly the non-approved key types are refused, with
    /// the key type and "not FIPS-approved in this build" in the message;
    /// the others pass. Other providers refuse nothing.
    #[test]
    fn fips_refuses_exactly_the_non_approved_key_types() {
        let refused = [
            "AesGcmSivKey",
            "AesEaxKey",
            "ChaCha20Poly1305Key",
            "XChaCha20Poly1305Key",
            "XAesGcmKey",
        ];
        let approved = [
            "AesGcmKey",
            "AesCtrHmacAeadKey",
            "AesGcmHkdfStreamingKey",
            "AesCtrHmacStreamingKey",
        ];
        for p in Provider::compiled() {
            let c = CryptoProvider::get(*p).expect("compiled");
            for name in approved {
                let url = format!("{}{name}", crate::primitives::TYPE_URL_PREFIX);
                assert_eq!(c.check_key_type(&url), Ok(()), "{p} {name}");
            }
            for name in refused {
                let url = format!("{}{name}", crate::primitives::TYPE_URL_PREFIX);
                let r = c.check_key_type(&url);
                if c.fips() {
                    let e = r.expect_err(name);
                    assert!(
                        matches!(e, KeyError::NotFipsApproved { key_type, .. } if key_type == name)
                    );
                    let msg = e.to_string();
                    assert!(
                        msg.starts_with(&format!("{name} is not FIPS-approved in this build")),
                        "{msg}"
                    );
                } else {
                    assert_eq!(r, Ok(()), "{p} {name}");
                }
            }
        }
    }

    #[test]
    fn fips_refuses_sha1_and_keeps_sha2() {
        let ctr = |hash| KeyParams::AesCtrHmac {
            aes_key_size: 32,
            iv_size: 16,
            hmac_key_size: 32,
            hash,
            tag_size: 16,
        };
        let gcm_stream = |hkdf_hash| KeyParams::AesGcmHkdfStreaming {
            key_size: 32,
            derived_key_size: 32,
            hkdf_hash,
            ciphertext_segment_size: 4096,
        };
        let ctr_stream = |hkdf_hash, hmac_hash| KeyParams::AesCtrHmacStreaming {
            key_size: 32,
            derived_key_size: 32,
            hkdf_hash,
            hmac_hash,
            tag_size: 32,
            ciphertext_segment_size: 4096,
        };
        let sha1 = [
            (ctr("SHA1"), "AesCtrHmacAeadKey"),
            (gcm_stream("SHA1"), "AesGcmHkdfStreamingKey"),
            (ctr_stream("SHA1", "SHA256"), "AesCtrHmacStreamingKey"),
            (ctr_stream("SHA256", "SHA1"), "AesCtrHmacStreamingKey"),
            (KeyParams::ChaCha20Poly1305, "ChaCha20Poly1305Key"),
        ];
        let sha2 = [
            ctr("SHA224"),
            ctr("SHA256"),
            ctr("SHA384"),
            ctr("SHA512"),
            gcm_stream("SHA256"),
            gcm_stream("SHA512"),
            ctr_stream("SHA512", "SHA256"),
            KeyParams::AesGcm { key_size: 16 },
        ];
        for p in Provider::compiled() {
            let c = CryptoProvider::get(*p).expect("compiled");
            for params in &sha2 {
                assert_eq!(c.check_key_params(params), Ok(()), "{p} {params:?}");
            }
            for (params, name) in &sha1 {
                let r = c.check_key_params(params);
                if c.fips() {
                    assert!(
                        matches!(r, Err(KeyError::NotFipsApproved { key_type, .. }) if key_type == *name),
                        "{params:?}: {r:?}"
                    );
                } else {
                    assert_eq!(r, Ok(()));
                }
            }
        }
    }

    /// `ENCSTORE_CRYPTO_PROVIDER` picks any compiled provider by name;
    /// an unknown or absent one is an error naming the variable; unset or
    /// blank means the build default.
    #[test]
    fn the_environment_variable_picks_a_compiled_provider() {
        for p in Provider::compiled() {
            let (c, how) = choose(Some(p.name())).expect("compiled");
            assert_eq!((c.provider(), how), (*p, Selection::Environment));
            let (c, _) = choose(Some(&format!(" {} ", p.name()))).expect("trimmed");
            assert_eq!(c.provider(), *p);
        }
        for unset in [None, Some(""), Some("  ")] {
            let (c, how) = choose(unset).expect("build default");
            assert_eq!(
                (c.provider(), how),
                (build_default(), Selection::BuildDefault)
            );
        }
        let e = choose(Some("rustcrypto")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ENCSTORE_CRYPTO_PROVIDER: unknown crypto provider \"rustcrypto\" (known: ring, aws-lc-rs, fips)"
        );
        for p in ALL {
            if !p.is_compiled() {
                let e = choose(Some(p.name())).unwrap_err();
                assert!(
                    matches!(&e, ProviderError::Environment { source, .. }
                        if matches!(**source, ProviderError::NotCompiled { .. })),
                    "{e:?}"
                );
            }
        }
    }

    /// The default is fixed once: a second install of another provider is
    /// refused, of the same one is harmless, and the status says how it
    /// was chosen.
    #[test]
    fn the_default_is_fixed_once() {
        let d = get_default().expect("a default");
        assert!(Provider::compiled().contains(&d.provider()));
        assert!(std::ptr::eq(get_default().expect("again"), d));
        assert!(std::ptr::eq(
            install_default(d.provider()).expect("same provider"),
            d
        ));
        for p in Provider::compiled() {
            if *p != d.provider() {
                assert_eq!(
                    install_default(*p).err(),
                    Some(ProviderError::AlreadyInstalled {
                        installed: d.provider(),
                        requested: *p
                    })
                );
            }
        }
        let s = status().expect("status");
        assert_eq!(s.provider, d.provider());
        assert!(s.selection.is_some());
        for p in Provider::compiled() {
            if *p != d.provider() {
                let other = CryptoProvider::get(*p).expect("compiled").status();
                assert_eq!(other.selection, None, "{p} is not the default");
            }
        }
    }
}
