//! `hcvault://` key URIs, as Tink's HashiCorp Vault integration reads them.
//!
//! Tink Go (`tink-go-hcvault`, `integration/hcvault`) takes
//! `hcvault://HOST[:PORT]/MOUNT/keys/NAME`: requests go to
//! `https://HOST[:PORT]`, and the path is split at its next-to-last
//! segment, which must be `keys`, so the mount may have several segments
//! (`hcvault://vault:8200/teams/billing/transit/keys/kek`). Python Tink
//! (`tink.integration.hcvault`) reads the same path and also requires every
//! segment to be non-empty.
//!
//! encstore is stricter than Tink where Tink would silently ignore
//! something: user info, a query or a fragment is refused (Tink Go drops
//! them), and so are empty, `.` and `..` segments and characters outside
//! `A-Z a-z 0-9 . _ - ~`, so a URI can never reach a different Vault path
//! than the one it reads as. Parsing is pure: no I/O, no environment.

use std::fmt;

use crate::error::VaultError;

/// The URI scheme, as Tink spells it.
pub const SCHEME: &str = "hcvault";

/// A parsed `hcvault://HOST[:PORT]/MOUNT/keys/NAME` URI.
#[derive(Clone, PartialEq, Eq)]
pub struct VaultUri {
    /// The host as written (an IPv6 literal keeps its brackets).
    host: String,
    /// The port, if the URI names one (HTTPS's 443 otherwise).
    port: Option<u16>,
    /// The transit mount path, without leading or trailing slash.
    mount: String,
    /// The transit key name.
    key: String,
}

fn invalid(msg: impl Into<String>) -> VaultError {
    VaultError::InvalidUri(msg.into())
}

fn valid_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~')
}

fn check_segment(seg: &str, what: &str) -> Result<(), VaultError> {
    if seg.is_empty() {
        return Err(invalid(format!(
            "the {what} has an empty path segment (expected hcvault://HOST[:PORT]/MOUNT/keys/NAME)"
        )));
    }
    if seg == "." || seg == ".." {
        return Err(invalid(format!(
            "the {what} has a {seg:?} path segment, which is refused"
        )));
    }
    if let Some(c) = seg.chars().find(|c| !valid_segment_char(*c)) {
        return Err(invalid(format!(
            "the {what} {seg:?} has the character {c:?}; only letters, digits, '.', '_', '-' and '~' are accepted"
        )));
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), VaultError> {
    if host.is_empty() {
        return Err(invalid(
            "no host (expected hcvault://HOST[:PORT]/MOUNT/keys/NAME)",
        ));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let ok = inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        if !ok {
            return Err(invalid(format!(
                "the host {host:?} is not a valid IPv6 literal"
            )));
        }
        return Ok(());
    }
    let ok = host.split('.').all(|label| {
        !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if !ok {
        return Err(invalid(format!(
            "the host {host:?} is not a valid host name or address"
        )));
    }
    Ok(())
}

impl VaultUri {
    /// Parses `hcvault://HOST[:PORT]/MOUNT/keys/NAME`.
    ///
    /// # Errors
    /// [`VaultError::InvalidUri`] saying what is wrong. The message never
    /// repeats user info (which could be a token).
    pub fn parse(uri: &str) -> Result<VaultUri, VaultError> {
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or_else(|| invalid("expected hcvault://HOST[:PORT]/MOUNT/keys/NAME"))?;
        if !scheme.eq_ignore_ascii_case(SCHEME) {
            return Err(invalid(format!(
                "the scheme is {scheme:?}, not hcvault (expected hcvault://HOST[:PORT]/MOUNT/keys/NAME)"
            )));
        }
        if rest.contains('?') || rest.contains('#') {
            return Err(invalid(
                "a query or fragment is not accepted (expected hcvault://HOST[:PORT]/MOUNT/keys/NAME)",
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            // Never echo it: the user info could be a token.
            return Err(invalid(
                "user info (user@ or token@) is not accepted in the URI; the token comes from VAULT_TOKEN or BAO_TOKEN",
            ));
        }
        let (host, port) = split_host_port(authority)?;
        check_host(host)?;

        let path = path.strip_prefix('/').unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() < 3 || segments[segments.len() - 2] != "keys" {
            return Err(invalid(format!(
                "the path /{path} is not MOUNT/keys/NAME (expected hcvault://HOST[:PORT]/MOUNT/keys/NAME)"
            )));
        }
        let key = segments[segments.len() - 1];
        check_segment(key, "key name")?;
        let mount_segments = &segments[..segments.len() - 2];
        for seg in mount_segments {
            check_segment(seg, "mount path")?;
        }
        Ok(VaultUri {
            host: host.to_owned(),
            port,
            mount: mount_segments.join("/"),
            key: key.to_owned(),
        })
    }

    /// The server's base address, `https://HOST[:PORT]`.
    pub fn address(&self) -> String {
        match self.port {
            Some(p) => format!("https://{}:{p}", self.host),
            None => format!("https://{}", self.host),
        }
    }

    /// The host as written in the URI.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, if the URI names one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The transit mount path (`transit`, or several segments).
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The transit key name.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The Vault API path of an operation on this key:
    /// `MOUNT/{op}/NAME` (`encrypt`, `decrypt`, `rewrap`, `keys`).
    pub(crate) fn api_path(&self, op: &str) -> String {
        format!("{}/{op}/{}", self.mount, self.key)
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), VaultError> {
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => {
                let (h, tail) = authority.split_at(end + 1);
                match tail.strip_prefix(':') {
                    Some(p) => (h, Some(p)),
                    None if tail.is_empty() => (h, None),
                    None => return Err(invalid(format!("the host {authority:?} is malformed"))),
                }
            }
            None => return Err(invalid(format!("the host {authority:?} is malformed"))),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => {
            let n = (!p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                .then(|| p.parse::<u16>().ok())
                .flatten()
                .filter(|n| *n != 0)
                .ok_or_else(|| {
                    invalid(format!("the port {p:?} is not a number from 1 to 65535"))
                })?;
            Some(n)
        }
    };
    Ok((host, port))
}

impl fmt::Display for VaultUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}://{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "/{}/keys/{}", self.mount, self.key)
    }
}

impl fmt::Debug for VaultUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultUri({self})")
    }
}

impl std::str::FromStr for VaultUri {
    type Err = VaultError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VaultUri::parse(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn err(uri: &str) -> String {
        match VaultUri::parse(uri) {
            Err(VaultError::InvalidUri(m)) => m,
            other => panic!("{uri}: expected InvalidUri, got {other:?}"),
        }
    }

    #[test]
    fn parses_tink_style_uris() {
        let u = VaultUri::parse("hcvault://vault.example.com:8200/transit/keys/kek-2026").unwrap();
        assert_eq!(u.host(), "vault.example.com");
        assert_eq!(u.port(), Some(8200));
        assert_eq!(u.mount(), "transit");
        assert_eq!(u.key(), "kek-2026");
        assert_eq!(u.address(), "https://vault.example.com:8200");
        assert_eq!(u.api_path("encrypt"), "transit/encrypt/kek-2026");
        assert_eq!(
            u.to_string(),
            "hcvault://vault.example.com:8200/transit/keys/kek-2026"
        );
        assert_eq!(
            format!("{u:?}"),
            "VaultUri(hcvault://vault.example.com:8200/transit/keys/kek-2026)"
        );

        // A mount of several segments, as in Tink's own tests.
        let u = VaultUri::parse("hcvault://127.0.0.1/teams/billing/service/cipher/keys/key-bar")
            .unwrap();
        assert_eq!(u.mount(), "teams/billing/service/cipher");
        assert_eq!(u.key(), "key-bar");
        assert_eq!(u.port(), None);
        assert_eq!(u.address(), "https://127.0.0.1");
        assert_eq!(
            u.api_path("decrypt"),
            "teams/billing/service/cipher/decrypt/key-bar"
        );

        // "keys" may also appear inside the mount: the next-to-last segment decides.
        let u = VaultUri::parse("hcvault://h:1/a/keys/b/keys/c").unwrap();
        assert_eq!((u.mount(), u.key()), ("a/keys/b", "c"));

        // IPv6 and the scheme in any case (Tink Go compares it case-insensitively).
        let u = VaultUri::parse("HCVault://[::1]:8200/transit/keys/k").unwrap();
        assert_eq!(u.address(), "https://[::1]:8200");
        assert_eq!(u.to_string(), "hcvault://[::1]:8200/transit/keys/k");
        let u: VaultUri = "hcvault://[::1]/transit/keys/k".parse().unwrap();
        assert_eq!(u.address(), "https://[::1]");
    }

    #[test]
    fn refuses_malformed_uris() {
        assert_eq!(
            err("aws-kms://arn:aws:kms:us-east-1:1:key/x"),
            "the scheme is \"aws-kms\", not hcvault (expected hcvault://HOST[:PORT]/MOUNT/keys/NAME)"
        );
        assert_eq!(
            err("hcvault:transit/keys/k"),
            "expected hcvault://HOST[:PORT]/MOUNT/keys/NAME"
        );
        assert_eq!(
            err("hcvault://h:8200/transit/k"),
            "the path /transit/k is not MOUNT/keys/NAME (expected hcvault://HOST[:PORT]/MOUNT/keys/NAME)"
        );
        assert!(
            err("hcvault://h:8200/keys/k").starts_with("the path /keys/k is not MOUNT/keys/NAME")
        );
        assert!(err("hcvault://h:8200").starts_with("the path / is not"));
        assert!(err("hcvault://h:8200/transit/keys/k/").starts_with("the path"));
        assert_eq!(
            err("hcvault://h:8200/transit/keys/"),
            "the key name has an empty path segment (expected hcvault://HOST[:PORT]/MOUNT/keys/NAME)"
        );
        assert!(err("hcvault://h:8200//transit/keys/k").contains("empty path segment"));
        assert!(err("hcvault://h:8200/a//b/keys/k").contains("empty path segment"));
        assert_eq!(
            err("hcvault://h:8200/../sys/keys/k"),
            "the mount path has a \"..\" path segment, which is refused"
        );
        assert!(err("hcvault://h:8200/transit/keys/..").contains("\"..\""));
        assert!(err("hcvault://h:8200/transit/keys/a%2Fb").contains("the character '%'"));
        assert!(err("hcvault://h:8200/tr ansit/keys/k").contains("the character ' '"));
        assert_eq!(
            err("hcvault://h:8200/transit/keys/k?namespace=x"),
            "a query or fragment is not accepted (expected hcvault://HOST[:PORT]/MOUNT/keys/NAME)"
        );
        assert!(err("hcvault://h:8200/transit/keys/k#f").starts_with("a query or fragment"));
        assert_eq!(
            err("hcvault:///transit/keys/k"),
            "no host (expected hcvault://HOST[:PORT]/MOUNT/keys/NAME)"
        );
        for port in ["0", "65536", "", "x", "-1", "+80"] {
            assert_eq!(
                err(&format!("hcvault://h:{port}/transit/keys/k")),
                format!("the port {port:?} is not a number from 1 to 65535")
            );
        }
        assert!(err("hcvault://ho_st/transit/keys/k").contains("not a valid host"));
        assert!(err("hcvault://[::1/transit/keys/k").contains("malformed"));
        assert!(err("hcvault://[zz]/transit/keys/k").contains("not a valid IPv6"));
        assert!(err("hcvault://[::1]x/transit/keys/k").contains("malformed"));
    }

    #[test]
    fn user_info_is_refused_without_being_echoed() {
        let m = err("hcvault://s.SECRETTOKEN@vault:8200/transit/keys/k");
        assert!(!m.contains("SECRETTOKEN"), "{m}");
        assert!(m.contains("VAULT_TOKEN"), "{m}");
    }
}
