//! [`AwsKmsConfig`]: what may override the AWS SDK's standard chain, and
//! the timeouts.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

/// How long a TCP (+ TLS) connection may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt of a KMS call may take by default.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a KMS call may take by default, retries included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How many attempts a KMS call gets by default (the SDK's standard
/// retries, for throttling and transient failures).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Static credentials given in code.
#[derive(Clone)]
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub(crate) struct StaticCredentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: SecretString,
    pub(crate) session_token: Option<SecretString>,
}

/// Overrides of the AWS SDK's standard configuration chain, and timeouts.
///
/// By default everything comes from the standard chain: credentials from
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`,
/// `AWS_PROFILE` and the shared config and credentials files, web identity,
/// the ECS and EC2 instance roles; the endpoint from `AWS_ENDPOINT_URL_KMS`
/// or `AWS_ENDPOINT_URL`. The region is always the key ARN's.
///
/// `Debug` never shows the secret access key or session token.
#[derive(Clone)]
pub struct AwsKmsConfig {
    pub(crate) endpoint_url: Option<String>,
    pub(crate) credentials: Option<StaticCredentials>,
    pub(crate) profile: Option<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) attempt_timeout: Duration,
    pub(crate) operation_timeout: Duration,
    pub(crate) max_attempts: u32,
}

impl Default for AwsKmsConfig {
    fn default() -> Self {
        AwsKmsConfig {
            endpoint_url: None,
            credentials: None,
            profile: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

impl AwsKmsConfig {
    /// Everything from the standard chain, default timeouts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends requests to this endpoint (e.g. an emulator, or a VPC
    /// endpoint) instead of the region's.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Uses these credentials instead of the standard chain.
    pub fn static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: SecretString,
        session_token: Option<SecretString>,
    ) -> Self {
        self.credentials = Some(StaticCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token,
        });
        self
    }

    /// Uses this profile of the shared config files instead of
    /// `AWS_PROFILE` / `default`.
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.profile = Some(name.into());
        self
    }

    /// Bounds TCP connect (and TLS).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bounds one attempt of a call.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Bounds a whole call, retries included.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Attempts per call (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }
}

impl fmt::Debug for AwsKmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsConfig")
            .field("endpoint_url", &self.endpoint_url)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|c| format!("static {} (secret redacted)", c.access_key_id)),
            )
            .field("profile", &self.profile)
            .field("connect_timeout", &self.connect_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let c = AwsKmsConfig::new()
            .endpoint_url("http://127.0.0.1:1")
            .static_credentials(
                "AKIDEXAMPLE",
                SecretString::from("SECRET-SENTINEL".to_owned()),
                Some(SecretString::from("TOKEN-SENTINEL".to_owned())),
            )
            .max_attempts(0);
        let d = format!("{c:?}");
        assert!(
            !d.contains("SECRET-SENTINEL") && !d.contains("TOKEN-SENTINEL"),
            "{d}"
        );
        assert_eq!(
            d,
            "AwsKmsConfig { endpoint_url: Some(\"http://127.0.0.1:1\"), credentials: Some(\"static AKIDEXAMPLE (secret redacted)\"), profile: None, connect_timeout: 5s, attempt_timeout: 10s, operation_timeout: 30s, max_attempts: 1 }"
        );
    }
}
