//! What the process's crypto provider allows, for tests that run under
//! every provider (`ring`, `aws-lc-rs`, `fips`): under `fips`, a key type
//! that is not FIPS-approved must be refused, and the tests check that
//! refusal where they would otherwise use the key.
#![allow(dead_code)]

use encstore_tink::error::{KeyError, KeysetError};
use encstore_tink::provider::{self, CryptoProvider};
use encstore_tink::templates;

/// The process default provider (what `Keyset::generate` and the readers
/// use).
pub fn provider() -> &'static CryptoProvider {
    provider::get_default().expect("a crypto provider")
}

/// Whether the provider refuses keys of `type_url`.
pub fn refuses_type(type_url: &str) -> bool {
    provider().check_key_type(type_url).is_err()
}

/// Whether the provider refuses the keys of the template named `name`.
pub fn refuses_template(name: &str) -> bool {
    refuses_type(templates::by_name(name).expect("template").type_url())
}

/// `true` if `err` is the `fips` provider's refusal of a key (when reading
/// a keyset, or creating a key from a template).
pub fn is_fips_refusal(err: &KeysetError) -> bool {
    matches!(
        err,
        KeysetError::Key {
            source: KeyError::NotFipsApproved { .. },
            ..
        } | KeysetError::Template(KeyError::NotFipsApproved { .. })
    )
}

/// Asserts that `r` is the `fips` provider's refusal, under `fips`.
#[track_caller]
pub fn assert_fips_refusal<T: std::fmt::Debug>(r: Result<T, KeysetError>, what: &str) {
    assert!(provider().fips(), "{what}: only fips refuses key types");
    match r {
        Err(e) if is_fips_refusal(&e) => {
            assert!(
                e.to_string().contains("is not FIPS-approved in this build"),
                "{what}: {e}"
            );
        }
        other => panic!("{what}: expected a fips refusal, got {other:?}"),
    }
}
