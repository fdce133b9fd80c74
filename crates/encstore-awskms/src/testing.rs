//! Test helpers (cargo features `aws` and `test-util`; enable `test-util`
//! in dev-dependencies only). For tests against moto's KMS emulator (any
//! crate's): where it is, or a printed notice that the test is skipped;
//! configurations for its users; an SDK client for setting keys up.
//!
//! Not part of the stable API.
#![allow(clippy::missing_panics_doc)]

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_kms::config::{Credentials, Region};
use secrecy::SecretString;

use crate::AwsKmsConfig;

/// The emulator, as `scripts/moto.sh start` exports it.
#[derive(Clone)]
pub struct TestKms {
    /// `ENCSTORE_AWSKMS_ENDPOINT`.
    pub endpoint: String,
    /// `ENCSTORE_AWSKMS_REGION`.
    pub region: String,
    /// The allowed user's access key (`ENCSTORE_AWSKMS_ACCESS_KEY_ID`).
    pub access_key_id: String,
    /// Its secret (`ENCSTORE_AWSKMS_SECRET_ACCESS_KEY`).
    pub secret_access_key: String,
    /// A user without any policy (`ENCSTORE_AWSKMS_DENIED_ACCESS_KEY_ID`).
    pub denied_access_key_id: String,
    /// Its secret (`ENCSTORE_AWSKMS_DENIED_SECRET_ACCESS_KEY`).
    pub denied_secret_access_key: String,
    /// The shared key (`ENCSTORE_AWSKMS_KEY_URI`).
    pub key_uri: String,
    /// Its alias (`ENCSTORE_AWSKMS_ALIAS_URI`).
    pub alias_uri: String,
}

impl std::fmt::Debug for TestKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestKms({})", self.endpoint)
    }
}

impl TestKms {
    /// The allowed user, the emulator's endpoint, short timeouts.
    pub fn config(&self) -> AwsKmsConfig {
        self.config_as(&self.access_key_id, &self.secret_access_key)
    }

    /// These credentials, the emulator's endpoint, short timeouts.
    pub fn config_as(&self, access_key_id: &str, secret: &str) -> AwsKmsConfig {
        AwsKmsConfig::new()
            .endpoint_url(&self.endpoint)
            .static_credentials(access_key_id, SecretString::from(secret.to_owned()), None)
            .connect_timeout(Duration::from_secs(3))
            .attempt_timeout(Duration::from_secs(10))
            .operation_timeout(Duration::from_secs(20))
    }

    /// An SDK client as the allowed user in `region`, for setting keys up.
    pub async fn admin(&self, region: &str) -> aws_sdk_kms::Client {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new(
                &self.access_key_id,
                &self.secret_access_key,
                None,
                None,
                "encstore-test",
            ))
            .load()
            .await;
        aws_sdk_kms::Client::new(&sdk)
    }
}

/// The emulator from the `ENCSTORE_AWSKMS_*` variables set by
/// `eval "$(bash scripts/moto.sh start)"`.
///
/// Without them: prints `SKIPPED: …` straight to stderr and returns `None`
/// — unless `ENCSTORE_REQUIRE_SERVICES=1`, where it panics.
pub fn server(test: &str) -> Option<TestKms> {
    let var = |n: &str| std::env::var(n).ok().filter(|s| !s.is_empty());
    let get = || {
        Some(TestKms {
            endpoint: var("ENCSTORE_AWSKMS_ENDPOINT")?,
            region: var("ENCSTORE_AWSKMS_REGION")?,
            access_key_id: var("ENCSTORE_AWSKMS_ACCESS_KEY_ID")?,
            secret_access_key: var("ENCSTORE_AWSKMS_SECRET_ACCESS_KEY")?,
            denied_access_key_id: var("ENCSTORE_AWSKMS_DENIED_ACCESS_KEY_ID")?,
            denied_secret_access_key: var("ENCSTORE_AWSKMS_DENIED_SECRET_ACCESS_KEY")?,
            key_uri: var("ENCSTORE_AWSKMS_KEY_URI")?,
            alias_uri: var("ENCSTORE_AWSKMS_ALIAS_URI")?,
        })
    };
    if let Some(t) = get() {
        return Some(t);
    }
    skip(
        test,
        "it needs moto's KMS emulator; the ENCSTORE_AWSKMS_* variables are set by: \
         eval \"$(bash scripts/moto.sh start)\"",
    );
    None
}

/// Skips `test` for what `msg` says is missing: prints `SKIPPED: …`
/// straight to stderr, or panics under `ENCSTORE_REQUIRE_SERVICES=1`.
pub fn skip(test: &str, msg: &str) {
    assert!(
        std::env::var("ENCSTORE_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "{test}: ENCSTORE_REQUIRE_SERVICES=1 but {msg}"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {msg}");
}
