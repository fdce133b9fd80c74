//! [`VaultConfig`]: the token, CA, namespace and timeouts of a Vault client,
//! from the environment (as Vault's and OpenBao's own tools read it) or
//! from code.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::error::VaultError;

/// The token: `VAULT_TOKEN`, else `BAO_TOKEN`.
pub const ENV_TOKEN: [&str; 2] = ["VAULT_TOKEN", "BAO_TOKEN"];
/// A PEM file of CA certificates to trust instead of the system roots:
/// `VAULT_CACERT`, else `BAO_CACERT`.
pub const ENV_CACERT: [&str; 2] = ["VAULT_CACERT", "BAO_CACERT"];
/// The namespace (Vault Enterprise / OpenBao namespaces), sent as
/// `X-Vault-Namespace`: `VAULT_NAMESPACE`, else `BAO_NAMESPACE`.
pub const ENV_NAMESPACE: [&str; 2] = ["VAULT_NAMESPACE", "BAO_NAMESPACE"];
/// The request timeout in seconds (`30`, `30s`, `2m`):
/// `VAULT_CLIENT_TIMEOUT`, else `BAO_CLIENT_TIMEOUT`.
pub const ENV_CLIENT_TIMEOUT: [&str; 2] = ["VAULT_CLIENT_TIMEOUT", "BAO_CLIENT_TIMEOUT"];

/// How long a TCP + TLS connection may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take by default, connection included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach Vault: everything but the address, which comes from the
/// `hcvault://` URI.
///
/// `Debug` never shows the token.
#[derive(Clone)]
pub struct VaultConfig {
    /// The token sent as `X-Vault-Token`.
    pub(crate) token: Option<SecretString>,
    /// Trust only the CAs in this PEM file (system roots when `None`).
    pub(crate) ca_cert: Option<PathBuf>,
    /// `X-Vault-Namespace`.
    pub(crate) namespace: Option<String>,
    /// Bound on TCP connect plus TLS handshake.
    pub(crate) connect_timeout: Duration,
    /// Bound on a whole request.
    pub(crate) request_timeout: Duration,
}

impl Default for VaultConfig {
    fn default() -> Self {
        VaultConfig {
            token: None,
            ca_cert: None,
            namespace: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

fn env_first(names: &[&'static str]) -> Option<(&'static str, String)> {
    names.iter().find_map(|n| {
        std::env::var(n)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (*n, v))
    })
}

/// Parses `30`, `30s`, `1500ms` or `2m`.
pub(crate) fn parse_timeout(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let d = match unit {
        "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

impl VaultConfig {
    /// No token, the system's root certificates, no namespace, default
    /// timeouts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the environment as Vault's and OpenBao's CLIs do:
    /// [`ENV_TOKEN`], [`ENV_CACERT`], [`ENV_NAMESPACE`],
    /// [`ENV_CLIENT_TIMEOUT`] (the first variable of each pair that is set
    /// and not empty wins). `VAULT_ADDR` is not read: the address is in the
    /// `hcvault://` URI. `VAULT_SKIP_VERIFY` is never honoured.
    ///
    /// # Errors
    /// [`VaultError::InvalidEnv`] for a malformed timeout. A missing token
    /// is reported when the KEK is opened ([`VaultError::NoToken`]).
    pub fn from_env() -> Result<Self, VaultError> {
        let mut c = VaultConfig::new();
        if let Some((_, t)) = env_first(&ENV_TOKEN) {
            c.token = Some(SecretString::from(t.trim().to_owned()));
        }
        if let Some((_, p)) = env_first(&ENV_CACERT) {
            c.ca_cert = Some(PathBuf::from(p));
        }
        if let Some((_, ns)) = env_first(&ENV_NAMESPACE) {
            c.namespace = Some(ns.trim().to_owned());
        }
        if let Some((var, t)) = env_first(&ENV_CLIENT_TIMEOUT) {
            c.request_timeout = parse_timeout(&t).ok_or_else(|| VaultError::InvalidEnv {
                variable: var,
                reason: format!(
                    "{t:?} is not a timeout (seconds, or a number with s, ms or m, above zero)"
                ),
            })?;
        }
        Ok(c)
    }

    /// Sets the token.
    pub fn token(mut self, token: SecretString) -> Self {
        self.token = Some(token);
        self
    }

    /// Trusts only the CA certificates in this PEM file.
    pub fn ca_cert_file(mut self, path: impl AsRef<Path>) -> Self {
        self.ca_cert = Some(path.as_ref().to_owned());
        self
    }

    /// Trusts the system's root certificates (the default).
    pub fn system_roots(mut self) -> Self {
        self.ca_cert = None;
        self
    }

    /// Sets the namespace (`X-Vault-Namespace`); `None` for the root.
    pub fn namespace(mut self, namespace: Option<String>) -> Self {
        self.namespace = namespace;
        self
    }

    /// Bounds TCP connect plus TLS handshake.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bounds a whole request, connection included.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert)
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse() {
        assert_eq!(parse_timeout("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_timeout(" 7s "), Some(Duration::from_secs(7)));
        assert_eq!(parse_timeout("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("2m"), Some(Duration::from_secs(120)));
        for bad in [
            "",
            "0",
            "0s",
            "s",
            "1h",
            "-1",
            "1.5",
            "x",
            "99999999999999999999",
        ] {
            assert_eq!(parse_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let c = VaultConfig::new()
            .token(SecretString::from("s.TOKEN-SENTINEL".to_owned()))
            .namespace(Some("team".into()));
        let d = format!("{c:?}");
        assert!(!d.contains("TOKEN-SENTINEL"), "{d}");
        assert_eq!(
            d,
            "VaultConfig { token: Some(\"<redacted>\"), ca_cert: None, namespace: Some(\"team\"), connect_timeout: 10s, request_timeout: 30s }"
        );
    }
}
