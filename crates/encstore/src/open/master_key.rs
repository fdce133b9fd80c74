//! What [`open_kek`](super::open_kek) opens: [`MasterKeyRef`], a master key
//! URI ([`MasterKeyUri`]) or a master keyset file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use encstore_core::KekError;

use super::{display_uri, uri_scheme};

/// A kind of master key URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KekScheme {
    /// `pkcs11:` (RFC 7512): an AES-256 key in an HSM, used through
    /// encstore-pkcs11 (cargo feature `pkcs11`).
    Pkcs11,
    /// `hcvault://HOST[:PORT]/MOUNT/keys/NAME`: a Vault or OpenBao transit
    /// key, used through encstore-vault (cargo feature `vault`).
    HcVault,
    /// `aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID` (or `…:alias/NAME`): an
    /// AWS KMS key, used through encstore-awskms (cargo feature `aws-kms`).
    AwsKms,
}

impl KekScheme {
    /// Every scheme, in the order messages list them.
    pub const ALL: [KekScheme; 3] = [KekScheme::Pkcs11, KekScheme::HcVault, KekScheme::AwsKms];

    /// The scheme name: `pkcs11`, `hcvault` or `aws-kms`.
    pub fn name(self) -> &'static str {
        match self {
            KekScheme::Pkcs11 => "pkcs11",
            KekScheme::HcVault => "hcvault",
            KekScheme::AwsKms => "aws-kms",
        }
    }

    /// How a URI of this scheme starts: `pkcs11:`, `hcvault://`, `aws-kms://`.
    pub fn prefix(self) -> &'static str {
        match self {
            KekScheme::Pkcs11 => "pkcs11:",
            KekScheme::HcVault => "hcvault://",
            KekScheme::AwsKms => "aws-kms://",
        }
    }

    /// The cargo feature of the `encstore` crate that opens this scheme.
    pub fn cargo_feature(self) -> &'static str {
        match self {
            KekScheme::Pkcs11 => "pkcs11",
            KekScheme::HcVault => "vault",
            KekScheme::AwsKms => "aws-kms",
        }
    }

    /// Whether this build can open keys of this scheme.
    pub fn is_compiled_in(self) -> bool {
        match self {
            KekScheme::Pkcs11 => cfg!(feature = "pkcs11"),
            KekScheme::HcVault => cfg!(feature = "vault"),
            KekScheme::AwsKms => encstore_awskms::AWS_SUPPORT,
        }
    }

    /// The scheme named `name`, ignoring ASCII case.
    fn from_name(name: &str) -> Option<KekScheme> {
        KekScheme::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// Shown as its URI prefix (`pkcs11:`, `hcvault://`, `aws-kms://`).
impl fmt::Display for KekScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// The supported schemes, for messages.
const SUPPORTED: &str = "encstore supports pkcs11: (an HSM, RFC 7512), hcvault:// (Vault or OpenBao transit) and aws-kms:// (AWS KMS) URIs";

/// Why a master key reference was refused.
///
/// Messages are one line and show the reference through
/// [`display_uri`](super::display_uri) (no query, no user information).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MasterKeyRefError {
    /// The reference is empty.
    #[error("the master key reference is empty")]
    Empty,
    /// A master key URI was expected, and this has no scheme.
    #[error(
        "{shown:?} is not a master key URI: {SUPPORTED}; a master keyset file is given by its path"
    )]
    NotAUri {
        /// The reference, as shown.
        shown: String,
    },
    /// The URI's scheme is not one encstore supports.
    #[error(
        "unsupported master key URI scheme {scheme:?} (in {shown:?}): {SUPPORTED}; a master keyset file is given by its path (write ./NAME for a file whose name contains ':')"
    )]
    UnsupportedScheme {
        /// The scheme as written.
        scheme: String,
        /// The reference, as shown.
        shown: String,
    },
    /// The URI has a supported scheme but is malformed: the KEK crate's
    /// parser said why. The [`KekError`] is
    /// [`InvalidUri`](KekError::InvalidUri), holding the crate's typed
    /// error (`Pkcs11Error`, `VaultError` or `AwsKmsError`).
    #[error(transparent)]
    Invalid(KekError),
    /// A `file:` URL that does not name an absolute local path.
    #[error(
        "master keyset location {shown:?}: a file: URL needs an absolute local path (file:///abs/path)"
    )]
    FileUrl {
        /// The reference, as shown.
        shown: String,
    },
}

/// A master key URI with a scheme encstore supports.
///
/// Parsing checks the scheme, and the whole URI with its KEK crate's
/// parser when that crate is compiled in (so a malformed URI, or a
/// `pkcs11:` URI with `pin-value`, is refused before anything is opened).
/// `Display` and `Debug` show [`MasterKeyUri::display`] (no query);
/// [`MasterKeyUri::as_str`] is the full URI.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MasterKeyUri {
    /// The scheme, recognised ignoring case.
    scheme: KekScheme,
    /// The URI as given.
    uri: String,
}

impl MasterKeyUri {
    /// Parses a master key URI.
    ///
    /// # Errors
    /// [`MasterKeyRefError::Empty`], [`NotAUri`](MasterKeyRefError::NotAUri),
    /// [`UnsupportedScheme`](MasterKeyRefError::UnsupportedScheme) (the
    /// message lists the supported schemes), or
    /// [`Invalid`](MasterKeyRefError::Invalid) with the KEK crate's reason.
    pub fn parse(uri: &str) -> Result<MasterKeyUri, MasterKeyRefError> {
        if uri.trim().is_empty() {
            return Err(MasterKeyRefError::Empty);
        }
        let shown = || display_uri(uri);
        let Some(name) = uri_scheme(uri) else {
            return Err(MasterKeyRefError::NotAUri { shown: shown() });
        };
        let Some(scheme) = KekScheme::from_name(name) else {
            return Err(MasterKeyRefError::UnsupportedScheme {
                scheme: name.to_owned(),
                shown: shown(),
            });
        };
        validate(scheme, uri).map_err(MasterKeyRefError::Invalid)?;
        Ok(MasterKeyUri {
            scheme,
            uri: uri.to_owned(),
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> KekScheme {
        self.scheme
    }

    /// The full URI, as given. A `pkcs11:` URI's query holds the module and
    /// PIN-file paths (never a PIN: `pin-value` is refused); prefer
    /// [`MasterKeyUri::display`] in messages.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// The URI for messages: [`display_uri`](super::display_uri).
    pub fn display(&self) -> String {
        display_uri(&self.uri)
    }
}

/// The scheme's own parser, where compiled in.
fn validate(scheme: KekScheme, uri: &str) -> Result<(), KekError> {
    match scheme {
        #[cfg(feature = "pkcs11")]
        KekScheme::Pkcs11 => encstore_pkcs11::Pkcs11Uri::parse(uri)
            .map(drop)
            .map_err(KekError::from),
        #[cfg(feature = "vault")]
        KekScheme::HcVault => encstore_vault::VaultUri::parse(uri)
            .map(drop)
            .map_err(KekError::from),
        KekScheme::AwsKms => encstore_awskms::AwsKmsUri::parse(uri)
            .map(drop)
            .map_err(KekError::from),
        #[allow(unreachable_patterns)]
        _ => Ok(()),
    }
}

impl FromStr for MasterKeyUri {
    type Err = MasterKeyRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MasterKeyUri::parse(s)
    }
}

/// Shows [`MasterKeyUri::display`].
impl fmt::Display for MasterKeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// `MasterKeyUri("pkcs11:token=encstore;object=kek")`: the display form.
impl fmt::Debug for MasterKeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKeyUri({:?})", self.display())
    }
}

/// The serialization of a master keyset file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MasterKeysetFormat {
    /// Tink's JSON keyset.
    Json,
    /// Tink's binary (protobuf) keyset.
    Binary,
}

impl fmt::Display for MasterKeysetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MasterKeysetFormat::Json => "JSON",
            MasterKeysetFormat::Binary => "binary",
        })
    }
}

/// A reference to a master key (key-encryption key): what
/// [`open_kek`](super::open_kek) opens.
///
/// Parsed from text ([`FromStr`]): a string with a supported URI scheme is
/// a [`MasterKeyRef::Uri`]; a `file:` URL (`file:///abs/path`) or a string
/// without a scheme is a master keyset file whose format is detected from
/// its content; any other scheme is refused with a message listing the
/// supported ones.
///
/// ```
/// use encstore::open::{KekScheme, MasterKeyRef};
///
/// let r: MasterKeyRef = "pkcs11:token=encstore;object=kek-2026".parse().unwrap();
/// assert!(matches!(&r, MasterKeyRef::Uri(u) if u.scheme() == KekScheme::Pkcs11));
/// let r: MasterKeyRef = "/etc/encstore/master.json".parse().unwrap();
/// assert!(matches!(r, MasterKeyRef::KeysetFile { format: None, .. }));
/// let e = "gcp-kms://projects/p".parse::<MasterKeyRef>().unwrap_err();
/// assert!(e.to_string().starts_with("unsupported master key URI scheme \"gcp-kms\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterKeyRef {
    /// A key in an HSM, Vault/OpenBao transit or AWS KMS.
    Uri(MasterKeyUri),
    /// A cleartext Tink AEAD keyset in a file (a "master keyset").
    KeysetFile {
        /// The file.
        path: PathBuf,
        /// Its format; `None` detects it from the content.
        format: Option<MasterKeysetFormat>,
    },
}

impl MasterKeyRef {
    /// A master keyset file, its format detected from its content.
    pub fn keyset_file(path: impl Into<PathBuf>) -> MasterKeyRef {
        MasterKeyRef::KeysetFile {
            path: path.into(),
            format: None,
        }
    }

    /// A master keyset file read in `format`.
    pub fn keyset_file_in(path: impl Into<PathBuf>, format: MasterKeysetFormat) -> MasterKeyRef {
        MasterKeyRef::KeysetFile {
            path: path.into(),
            format: Some(format),
        }
    }

    /// Parses a master key URI (not a file path): see [`MasterKeyUri::parse`].
    ///
    /// # Errors
    /// As [`MasterKeyUri::parse`].
    pub fn uri(uri: &str) -> Result<MasterKeyRef, MasterKeyRefError> {
        MasterKeyUri::parse(uri).map(MasterKeyRef::Uri)
    }

    /// What the reference is, for messages: `master key pkcs11:token=…`
    /// (through [`display_uri`](super::display_uri)) or
    /// `master keyset /path`.
    pub fn describe(&self) -> String {
        match self {
            MasterKeyRef::Uri(u) => format!("master key {}", u.display()),
            MasterKeyRef::KeysetFile { path, .. } => format!("master keyset {}", path.display()),
        }
    }
}

impl FromStr for MasterKeyRef {
    type Err = MasterKeyRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(MasterKeyRefError::Empty);
        }
        match uri_scheme(s) {
            Some(scheme) if scheme.eq_ignore_ascii_case("file") => {
                let path = file_url_path(&s[scheme.len() + 1..]).ok_or_else(|| {
                    MasterKeyRefError::FileUrl {
                        shown: display_uri(s),
                    }
                })?;
                Ok(MasterKeyRef::keyset_file(path))
            }
            Some(_) => MasterKeyRef::uri(s),
            None => Ok(MasterKeyRef::keyset_file(s)),
        }
    }
}

/// The absolute path of a `file:` URL's rest (`///abs`, `//localhost/abs`
/// or `/abs`), taken literally (no percent-decoding).
fn file_url_path(rest: &str) -> Option<&Path> {
    let path = match rest.strip_prefix("//") {
        Some(after) => after.strip_prefix("localhost").unwrap_or(after),
        None => rest,
    };
    (path.starts_with('/') && path.len() > 1).then(|| Path::new(path))
}

/// The URI's display form, or the keyset file's path.
impl fmt::Display for MasterKeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterKeyRef::Uri(u) => fmt::Display::fmt(u, f),
            MasterKeyRef::KeysetFile { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

impl From<MasterKeyUri> for MasterKeyRef {
    fn from(uri: MasterKeyUri) -> Self {
        MasterKeyRef::Uri(uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> MasterKeyRefError {
        match s.parse::<MasterKeyRef>() {
            Ok(r) => panic!("{s:?} parsed as {r:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.contains('\n'), "{msg}");
                e
            }
        }
    }

    #[test]
    fn schemes_are_recognised() {
        for (s, scheme) in [
            (
                "pkcs11:token=encstore;object=kek?module-path=/m.so&pin-source=file:/p",
                KekScheme::Pkcs11,
            ),
            (
                "hcvault://vault.internal:8200/transit/keys/kek",
                KekScheme::HcVault,
            ),
            (
                "aws-kms://arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                KekScheme::AwsKms,
            ),
            (
                "AWS-KMS://arn:aws:kms:us-east-1:111122223333:alias/kek",
                KekScheme::AwsKms,
            ),
        ] {
            let r: MasterKeyRef = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            let MasterKeyRef::Uri(u) = &r else {
                panic!("{s}: {r:?}")
            };
            assert_eq!(u.scheme(), scheme);
            assert_eq!(u.as_str(), s);
            assert_eq!(u.to_string(), display_uri(s));
        }
        let u: MasterKeyUri = "pkcs11:token=t;object=k?module-path=/m.so".parse().unwrap();
        assert_eq!(u.to_string(), "pkcs11:token=t;object=k");
        assert_eq!(
            format!("{u:?}"),
            "MasterKeyUri(\"pkcs11:token=t;object=k\")"
        );
        assert_eq!(
            MasterKeyRef::from(u).describe(),
            "master key pkcs11:token=t;object=k"
        );
    }

    #[test]
    fn unknown_schemes_list_the_supported_ones() {
        for (s, scheme) in [
            (
                "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
                "gcp-kms",
            ),
            ("vault://host/transit/keys/k", "vault"),
            ("pkcs12:token=t", "pkcs12"),
            ("keys:v1.json", "keys"),
            ("https://vault:8200/v1/transit/keys/k", "https"),
        ] {
            let e = err(s);
            assert!(
                matches!(&e, MasterKeyRefError::UnsupportedScheme { scheme: got, .. } if got == scheme),
                "{s}: {e:?}"
            );
            let msg = e.to_string();
            for p in ["pkcs11:", "hcvault://", "aws-kms://"] {
                assert!(msg.contains(p), "{msg}");
            }
        }
        // Credentials in an unknown URI never reach the message.
        let e = err("kms://user:SECRET-PW@host/k?token=SECRET-TOK");
        let msg = format!("{e} {e:?}");
        assert!(!msg.contains("SECRET"), "{msg}");
    }

    #[test]
    fn malformed_uris_carry_the_kek_crates_typed_error() {
        let e = err("aws-kms://not-an-arn");
        let MasterKeyRefError::Invalid(k) = &e else {
            panic!("{e:?}")
        };
        assert!(matches!(k, KekError::InvalidUri(_)));
        assert!(matches!(
            k.downcast_ref::<encstore_awskms::AwsKmsError>(),
            Some(encstore_awskms::AwsKmsError::InvalidUri(_))
        ));
        assert!(e.to_string().starts_with("invalid aws-kms URI: "), "{e}");
    }

    #[cfg(feature = "pkcs11")]
    #[test]
    fn malformed_pkcs11_uris_are_refused() {
        use encstore_pkcs11::Pkcs11Error;
        let e = err("pkcs11:token=t;object=k?pin-value=1234");
        assert!(
            matches!(&e, MasterKeyRefError::Invalid(k) if matches!(k.downcast_ref::<Pkcs11Error>(), Some(Pkcs11Error::PinInUri))),
            "{e:?}"
        );
        assert!(!format!("{e} {e:?}").contains("1234"));
        let e = err("pkcs11:token=t;objekt=k");
        assert!(
            matches!(&e, MasterKeyRefError::Invalid(k) if matches!(k.downcast_ref::<Pkcs11Error>(), Some(Pkcs11Error::InvalidUri(_)))),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("invalid PKCS#11 URI: "), "{e}");
    }

    #[cfg(feature = "vault")]
    #[test]
    fn malformed_hcvault_uris_are_refused() {
        use encstore_vault::VaultError;
        for s in [
            "hcvault://vault:8200/transit/kek",
            "hcvault://tok@vault:8200/transit/keys/k",
            "hcvault://vault:8200/transit/keys/k?x=1",
            "hcvault:///transit/keys/k",
        ] {
            let e = err(s);
            assert!(
                matches!(&e, MasterKeyRefError::Invalid(k) if matches!(k.downcast_ref::<VaultError>(), Some(VaultError::InvalidUri(_)))),
                "{s}: {e:?}"
            );
            assert!(e.to_string().starts_with("invalid hcvault URI: "), "{e}");
        }
    }

    #[test]
    fn files_and_paths() {
        let r: MasterKeyRef = "/etc/encstore/master.json".parse().unwrap();
        assert_eq!(r, MasterKeyRef::keyset_file("/etc/encstore/master.json"));
        assert_eq!(r.to_string(), "/etc/encstore/master.json");
        assert_eq!(r.describe(), "master keyset /etc/encstore/master.json");
        let r: MasterKeyRef = "keys/master.bin".parse().unwrap();
        assert_eq!(r, MasterKeyRef::keyset_file("keys/master.bin"));
        let r: MasterKeyRef = "./keys:v1.json".parse().unwrap();
        assert_eq!(r, MasterKeyRef::keyset_file("./keys:v1.json"));
        for s in [
            "file:///etc/m.json",
            "file:/etc/m.json",
            "file://localhost/etc/m.json",
        ] {
            let r: MasterKeyRef = s.parse().unwrap();
            assert_eq!(r, MasterKeyRef::keyset_file("/etc/m.json"), "{s}");
        }
        for s in [
            "file://host/etc/m.json",
            "file:rel/m.json",
            "file://",
            "file:/",
        ] {
            assert!(matches!(err(s), MasterKeyRefError::FileUrl { .. }), "{s}");
        }
        assert!(matches!(err(""), MasterKeyRefError::Empty));
        assert!(matches!(err("  "), MasterKeyRefError::Empty));
        assert_eq!(
            MasterKeyRef::keyset_file_in("m.bin", MasterKeysetFormat::Binary),
            MasterKeyRef::KeysetFile {
                path: "m.bin".into(),
                format: Some(MasterKeysetFormat::Binary)
            }
        );
    }

    #[test]
    fn a_master_key_uri_needs_a_scheme() {
        let e = MasterKeyUri::parse("/etc/master.json").unwrap_err();
        assert!(matches!(e, MasterKeyRefError::NotAUri { .. }), "{e:?}");
        assert!(e.to_string().contains("is not a master key URI"), "{e}");
        assert!(matches!(
            MasterKeyUri::parse("").unwrap_err(),
            MasterKeyRefError::Empty
        ));
    }

    #[test]
    fn scheme_metadata() {
        assert_eq!(KekScheme::Pkcs11.to_string(), "pkcs11:");
        assert_eq!(KekScheme::HcVault.cargo_feature(), "vault");
        assert_eq!(KekScheme::AwsKms.name(), "aws-kms");
        assert_eq!(KekScheme::Pkcs11.is_compiled_in(), cfg!(feature = "pkcs11"));
        assert_eq!(
            KekScheme::AwsKms.is_compiled_in(),
            encstore_awskms::AWS_SUPPORT
        );
    }
}
