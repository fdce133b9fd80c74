//! The process's default provider: chosen once (installed by the
//! application, named by `ENCSTORE_CRYPTO_PROVIDER`, or the build
//! default) and never changed.

use std::sync::OnceLock;

use super::{CryptoProvider, ENV_VAR, Provider, ProviderError, ProviderStatus, Selection};

/// The process default and how it was chosen.
struct Default {
    provider: &'static CryptoProvider,
    selection: Selection,
}

/// The process's default provider: set once, on first use or by
/// [`install_default`], never changed.
static DEFAULT: OnceLock<Default> = OnceLock::new();

/// How `provider` became the process default; `None` if it is not the
/// default.
pub(super) fn selection_of(provider: &CryptoProvider) -> Option<Selection> {
    DEFAULT
        .get()
        .filter(|d| std::ptr::eq(d.provider, provider))
        .map(|d| d.selection)
}

/// Sets the default unless one is set; returns the one in place, or an
/// error if it is another provider.
pub(super) fn install(
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
pub(super) fn choose(
    env: Option<&str>,
) -> Result<(&'static CryptoProvider, Selection), ProviderError> {
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
