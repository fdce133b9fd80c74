//! The HTTPS client: one request to the Vault API, bounded in time and
//! size, with network failures turned into typed errors.

use std::error::Error as StdError;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::config::VaultConfig;
use crate::error::VaultError;

/// Bound on a response body. Transit answers are small (a wrapped keyset is
/// a few KiB); anything far larger is not a transit response.
const MAX_BODY: usize = 16 << 20;

/// An error response: the status and the server's `errors` list.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) errors: Vec<String>,
}

impl ApiError {
    /// The `errors`, joined for a message.
    pub(crate) fn message(&self) -> String {
        if self.errors.is_empty() {
            self.status
                .canonical_reason()
                .unwrap_or("no message")
                .to_owned()
        } else {
            self.errors.join("; ")
        }
    }

    /// Whether any error message contains `needle` (ASCII case-insensitive).
    pub(crate) fn says(&self, needle: &str) -> bool {
        let needle = needle.to_ascii_lowercase();
        self.errors
            .iter()
            .any(|e| e.to_ascii_lowercase().contains(&needle))
    }
}

/// A connection to one Vault server with one token.
pub(crate) struct Client {
    http: reqwest::Client,
    /// `https://HOST[:PORT]`, for URLs and messages.
    pub(crate) address: String,
    token: SecretString,
    namespace: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

/// reqwest is built without a bundled TLS crypto provider (to avoid
/// aws-lc-rs); install ring as the process default unless the application
/// already chose one.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: some provider is
        // installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The first rustls error in `e`'s source chain, looking inside
/// `io::Error`s (whose `source()` skips the error they wrap).
fn find_tls_error(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(t) = inner.downcast_ref::<rustls::Error>() {
                return Some(t.to_string());
            }
            if let Some(found) = find_tls_error(inner) {
                return Some(found);
            }
        }
        cur = err.source();
    }
    None
}

/// The innermost message of `e`'s source chain (the OS error, usually).
fn innermost(e: &(dyn StdError + 'static)) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        last = err.to_string();
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            last = inner.to_string();
        }
        cur = err.source();
    }
    last
}

impl Client {
    /// A client for `address` with `config`'s token, CA and timeouts.
    pub(crate) fn new(address: String, config: &VaultConfig) -> Result<Client, VaultError> {
        let token = config.token.clone().ok_or(VaultError::NoToken)?;
        if token.expose_secret().is_empty() {
            return Err(VaultError::NoToken);
        }
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("encstore-vault/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path).map_err(|e| VaultError::CaCert {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| VaultError::CaCert {
                    path: path.clone(),
                    reason: format!("not a PEM certificate bundle ({e})"),
                })?;
            if certs.is_empty() {
                return Err(VaultError::CaCert {
                    path: path.clone(),
                    reason: "it holds no PEM certificate".to_owned(),
                });
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder.build().map_err(|e| VaultError::Unreachable {
            address: address.clone(),
            reason: format!("cannot set up the HTTPS client: {}", innermost(&e)),
        })?;
        Ok(Client {
            http,
            address,
            token,
            namespace: config.namespace.clone(),
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
        })
    }

    fn headers(&self) -> Result<HeaderMap, VaultError> {
        let mut h = HeaderMap::new();
        let mut token = HeaderValue::from_str(self.token.expose_secret()).map_err(|_| {
            VaultError::InvalidEnv {
                variable: "VAULT_TOKEN",
                reason: "the token holds characters that cannot be sent in an HTTP header"
                    .to_owned(),
            }
        })?;
        token.set_sensitive(true);
        h.insert("X-Vault-Token", token);
        h.insert("X-Vault-Request", HeaderValue::from_static("true"));
        if let Some(ns) = &self.namespace {
            let v = HeaderValue::from_str(ns).map_err(|_| VaultError::InvalidEnv {
                variable: "VAULT_NAMESPACE",
                reason: "the namespace holds characters that cannot be sent in an HTTP header"
                    .to_owned(),
            })?;
            h.insert("X-Vault-Namespace", v);
        }
        Ok(h)
    }

    fn send_error(&self, e: &reqwest::Error) -> VaultError {
        let address = self.address.clone();
        if let Some(reason) = find_tls_error(e) {
            return VaultError::Tls { address, reason };
        }
        if e.is_connect() && e.is_timeout() {
            return VaultError::Unreachable {
                address,
                reason: format!(
                    "no connection within the connect timeout ({} s)",
                    self.connect_timeout.as_secs_f64()
                ),
            };
        }
        if e.is_connect() {
            return VaultError::Unreachable {
                address,
                reason: innermost(e),
            };
        }
        if e.is_timeout() {
            return VaultError::Timeout {
                address,
                after: self.request_timeout,
            };
        }
        VaultError::Unreachable {
            address,
            reason: format!("the connection failed: {}", innermost(e)),
        }
    }

    /// Sends one request to `/v1/{path}` with a JSON `body` and returns the
    /// response body of a 2xx answer, or the server's error.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Result<Zeroizing<Vec<u8>>, ApiError>, VaultError> {
        let url = format!("{}/v1/{path}", self.address);
        let mut req = self.http.request(method, &url).headers(self.headers()?);
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_vec());
        }
        // reqwest's own timeouts bound connect and the whole exchange; this
        // outer bound only guarantees that nothing can hang past them.
        let guard = self.request_timeout + self.connect_timeout + Duration::from_secs(1);
        let exchange = async {
            let mut resp = req.send().await.map_err(|e| self.send_error(&e))?;
            let status = resp.status();
            let mut buf = Zeroizing::new(Vec::new());
            while let Some(chunk) = resp.chunk().await.map_err(|e| self.send_error(&e))? {
                if buf.len() + chunk.len() > MAX_BODY {
                    return Err(VaultError::Protocol {
                        address: self.address.clone(),
                        operation: path.to_owned(),
                        reason: format!("the response is larger than {MAX_BODY} bytes"),
                    });
                }
                buf.extend_from_slice(&chunk);
            }
            Ok((status, buf))
        };
        let (status, buf) =
            tokio::time::timeout(guard, exchange)
                .await
                .map_err(|_| VaultError::Timeout {
                    address: self.address.clone(),
                    after: self.request_timeout,
                })??;
        if status.is_success() {
            return Ok(Ok(buf));
        }
        #[derive(serde::Deserialize)]
        struct Errors {
            #[serde(default)]
            errors: Vec<String>,
        }
        let errors = serde_json::from_slice::<Errors>(&buf)
            .map(|e| e.errors)
            .unwrap_or_default();
        tracing::debug!(status = status.as_u16(), path, "vault error response");
        Ok(Err(ApiError { status, errors }))
    }

    /// Whether the server accepts the token at all (`auth/token/lookup-self`
    /// answers 2xx). Used to tell a rejected token from a missing
    /// capability after a 403. The response body (which names the token)
    /// is dropped unread.
    pub(crate) async fn token_valid(&self) -> Result<bool, VaultError> {
        match self
            .call(Method::GET, "auth/token/lookup-self", None)
            .await?
        {
            Ok(_) => Ok(true),
            Err(e) if e.status == StatusCode::FORBIDDEN => Ok(false),
            // Anything else (a policy without lookup-self, ...): the token
            // was not refused outright.
            Err(_) => Ok(true),
        }
    }
}
