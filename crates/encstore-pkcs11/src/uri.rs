//! RFC 7512 PKCS#11 URIs, and where the module and the PIN come from.
//!
//! Parsing is pure (no I/O, no environment): [`Pkcs11Uri::parse`]. Filling
//! in the module path and the PIN source from the environment happens when a
//! KEK is opened, with the URI winning over the environment.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::Pkcs11Error;

/// Environment variable naming the PKCS#11 module (an absolute path to the
/// shared library), used when the URI has no `module-path`.
pub const ENV_MODULE: &str = "ENCSTORE_PKCS11_MODULE";

/// Environment variable naming a file that holds the user PIN, used when the
/// URI has no `pin-source`. There is deliberately no variable holding the PIN
/// itself; `pin-source=env:VAR` in the URI opts into that explicitly.
pub const ENV_PIN_FILE: &str = "ENCSTORE_PKCS11_PIN_FILE";

/// Where the user PIN is read from. The PIN itself is never part of a URI.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinSource {
    /// A file whose content (without trailing newlines) is the PIN:
    /// `pin-source=file:/run/secrets/hsm-pin` (or a bare absolute path).
    File(PathBuf),
    /// An environment variable holding the PIN: `pin-source=env:HSM_PIN`
    /// (an encstore extension to RFC 7512).
    Env(String),
}

impl fmt::Debug for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinSource::File(p) => write!(f, "file:{}", p.display()),
            PinSource::Env(v) => write!(f, "env:{v}"),
        }
    }
}

/// A parsed PKCS#11 URI naming one secret key on one token.
///
/// Path attributes are percent-decoded. Only the attributes encstore uses are
/// accepted; an unknown attribute is an error rather than silently ignored,
/// so that a typo never selects a different key. `pin-value` is refused: a
/// PIN never appears on a command line.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pkcs11Uri {
    /// `token=`: the token label (`CK_TOKEN_INFO.label`).
    pub token: Option<String>,
    /// `manufacturer=`: the token manufacturer ID.
    pub manufacturer: Option<String>,
    /// `serial=`: the token serial number.
    pub serial: Option<String>,
    /// `model=`: the token model.
    pub model: Option<String>,
    /// `slot-id=`: the slot ID, as a decimal number.
    pub slot_id: Option<u64>,
    /// `slot-description=`: the slot description.
    pub slot_description: Option<String>,
    /// `slot-manufacturer=`: the slot manufacturer ID.
    pub slot_manufacturer: Option<String>,
    /// `library-manufacturer=`: the module's manufacturer ID.
    pub library_manufacturer: Option<String>,
    /// `library-description=`: the module's description.
    pub library_description: Option<String>,
    /// `object=`: the key's label (`CKA_LABEL`).
    pub object: Option<String>,
    /// `id=`: the key's `CKA_ID`, as raw bytes (percent-encoded in the URI).
    pub id: Option<Vec<u8>>,
    /// `module-path=`: the absolute path of the PKCS#11 shared library.
    pub module_path: Option<PathBuf>,
    /// `pin-source=`: where the user PIN is read from.
    pub pin_source: Option<PinSource>,
}

impl Pkcs11Uri {
    /// Parses `pkcs11:PATH[?QUERY]`.
    pub fn parse(uri: &str) -> Result<Self, Pkcs11Error> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| invalid("it must start with \"pkcs11:\""))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut out = Pkcs11Uri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, raw) = attr
                .split_once('=')
                .ok_or_else(|| invalid(&format!("path attribute {:?} has no '='", clip(attr))))?;
            match name {
                "token" => set(&mut out.token, name, text(name, raw)?)?,
                "manufacturer" => set(&mut out.manufacturer, name, text(name, raw)?)?,
                "serial" => set(&mut out.serial, name, text(name, raw)?)?,
                "model" => set(&mut out.model, name, text(name, raw)?)?,
                "slot-description" => set(&mut out.slot_description, name, text(name, raw)?)?,
                "slot-manufacturer" => set(&mut out.slot_manufacturer, name, text(name, raw)?)?,
                "library-manufacturer" => {
                    set(&mut out.library_manufacturer, name, text(name, raw)?)?
                }
                "library-description" => set(&mut out.library_description, name, text(name, raw)?)?,
                "object" => set(&mut out.object, name, text(name, raw)?)?,
                "id" => set(&mut out.id, name, percent_decode(name, raw)?)?,
                "slot-id" => {
                    let s = text(name, raw)?;
                    let n = s
                        .parse::<u64>()
                        .map_err(|_| invalid("slot-id must be a decimal number"))?;
                    set(&mut out.slot_id, name, n)?
                }
                "type" => {
                    let t = text(name, raw)?;
                    if t != "secret-key" {
                        return Err(invalid(&format!(
                            "type={t:?} cannot be a key-encryption key; it must be an AES secret key (type=secret-key)"
                        )));
                    }
                }
                "library-version" => {
                    return Err(invalid(
                        "library-version is not supported; use module-path to choose the module",
                    ));
                }
                other => {
                    return Err(invalid(&format!(
                        "unknown path attribute {:?}",
                        clip(other)
                    )));
                }
            }
        }
        if let Some(query) = query {
            for attr in query.split('&').filter(|a| !a.is_empty()) {
                let (name, raw) = attr.split_once('=').unwrap_or((attr, ""));
                match name {
                    "pin-value" => return Err(Pkcs11Error::PinInUri),
                    "module-path" => {
                        let p = PathBuf::from(text(name, raw)?);
                        if !p.is_absolute() {
                            return Err(invalid("module-path must be an absolute path"));
                        }
                        set(&mut out.module_path, name, p)?
                    }
                    "module-name" => {
                        return Err(invalid(
                            "module-name is not supported; give the library's absolute path with module-path",
                        ));
                    }
                    "pin-source" => {
                        let src = parse_pin_source(&text(name, raw)?)?;
                        set(&mut out.pin_source, name, src)?
                    }
                    other => {
                        return Err(invalid(&format!(
                            "unknown query attribute {:?}",
                            clip(other)
                        )));
                    }
                }
            }
        }
        if out.object.is_none() && out.id.is_none() {
            return Err(invalid(
                "it names no key: add object=LABEL (and/or id=...) to the path",
            ));
        }
        Ok(out)
    }

    /// The module path: the URI's `module-path`, else `ENCSTORE_PKCS11_MODULE`.
    pub(crate) fn resolve_module(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PathBuf, Pkcs11Error> {
        if let Some(p) = &self.module_path {
            return Ok(p.clone());
        }
        match env(ENV_MODULE) {
            Some(p) if !p.is_empty() => {
                let p = PathBuf::from(p);
                if !p.is_absolute() {
                    return Err(Pkcs11Error::InvalidUri(format!(
                        "{ENV_MODULE} must be an absolute path"
                    )));
                }
                Ok(p)
            }
            _ => Err(Pkcs11Error::NoModule),
        }
    }

    /// The PIN source: the URI's `pin-source`, else `ENCSTORE_PKCS11_PIN_FILE`.
    pub(crate) fn resolve_pin_source(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PinSource, Pkcs11Error> {
        if let Some(s) = &self.pin_source {
            return Ok(s.clone());
        }
        match env(ENV_PIN_FILE) {
            Some(p) if !p.is_empty() => Ok(PinSource::File(PathBuf::from(p))),
            _ => Err(Pkcs11Error::NoPinSource),
        }
    }

    /// A short description of the key for messages: `"kek-2026"` or `id=01a2`.
    pub(crate) fn key_description(&self) -> String {
        match (&self.object, &self.id) {
            (Some(l), Some(id)) => format!("{l:?} (id={})", hex(id)),
            (Some(l), None) => format!("{l:?}"),
            (None, Some(id)) => format!("id={}", hex(id)),
            (None, None) => "(unnamed)".to_owned(),
        }
    }

    /// A short description of the token for messages.
    pub(crate) fn token_description(&self) -> String {
        match &self.token {
            Some(t) => format!("{t:?}"),
            None => "(any)".to_owned(),
        }
    }
}

/// The canonical URI text (percent-encoded where needed). It never holds a
/// PIN, because a URI carrying `pin-value` is refused at parse time.
impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pkcs11:")?;
        let mut sep = "";
        let mut path = |f: &mut fmt::Formatter<'_>, k: &str, v: &[u8]| {
            let r = write!(f, "{sep}{k}={}", percent_encode(v));
            sep = ";";
            r
        };
        let strs: [(&str, &Option<String>); 9] = [
            ("library-manufacturer", &self.library_manufacturer),
            ("library-description", &self.library_description),
            ("slot-manufacturer", &self.slot_manufacturer),
            ("slot-description", &self.slot_description),
            ("manufacturer", &self.manufacturer),
            ("model", &self.model),
            ("serial", &self.serial),
            ("token", &self.token),
            ("object", &self.object),
        ];
        if let Some(s) = self.slot_id {
            path(f, "slot-id", s.to_string().as_bytes())?;
        }
        for (k, v) in strs {
            if let Some(v) = v {
                path(f, k, v.as_bytes())?;
            }
        }
        if let Some(id) = &self.id {
            path(f, "id", id)?;
        }
        let mut qsep = "?";
        if let Some(m) = &self.module_path {
            write!(
                f,
                "{qsep}module-path={}",
                percent_encode(m.to_string_lossy().as_bytes())
            )?;
            qsep = "&";
        }
        if let Some(p) = &self.pin_source {
            write!(
                f,
                "{qsep}pin-source={}",
                percent_encode(p.to_string().as_bytes())
            )?;
        }
        Ok(())
    }
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pkcs11Uri({:?})", self.to_string())
    }
}

impl std::str::FromStr for Pkcs11Uri {
    type Err = Pkcs11Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pkcs11Uri::parse(s)
    }
}

fn parse_pin_source(s: &str) -> Result<PinSource, Pkcs11Error> {
    if let Some(var) = s.strip_prefix("env:") {
        let ok = !var.is_empty() && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(invalid(
                "pin-source=env:VAR needs a variable name made of letters, digits and '_'",
            ));
        }
        return Ok(PinSource::Env(var.to_owned()));
    }
    let path = if let Some(p) = s.strip_prefix("file://") {
        // file:///abs/path or file://localhost/abs/path
        p.strip_prefix("localhost").unwrap_or(p)
    } else if let Some(p) = s.strip_prefix("file:") {
        p
    } else {
        s
    };
    if !Path::new(path).is_absolute() {
        return Err(invalid(
            "pin-source must be file:/absolute/path, an absolute path, or env:VAR",
        ));
    }
    Ok(PinSource::File(PathBuf::from(path)))
}

fn set<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), Pkcs11Error> {
    if slot.is_some() {
        return Err(invalid(&format!("attribute {name} appears more than once")));
    }
    *slot = Some(value);
    Ok(())
}

fn text(name: &str, raw: &str) -> Result<String, Pkcs11Error> {
    String::from_utf8(percent_decode(name, raw)?).map_err(|_| {
        invalid(&format!(
            "attribute {name} is not UTF-8 once percent-decoded"
        ))
    })
}

fn percent_decode(name: &str, raw: &str) -> Result<Vec<u8>, Pkcs11Error> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = b.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            match (hi, lo) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => {
                    return Err(invalid(&format!(
                        "attribute {name} has a bad percent-escape (use %XX with two hex digits)"
                    )));
                }
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn percent_encode(v: &[u8]) -> String {
    let mut s = String::with_capacity(v.len());
    for &c in v {
        // RFC 7512 pk11-pchar/pk11-qchar unreserved characters, plus '/' and ':'.
        if c.is_ascii_alphanumeric() || b"-._~:[]@!$'()*+,/".contains(&c) {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

pub(crate) fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

/// Keeps user-controlled text in messages short.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

fn invalid(why: &str) -> Pkcs11Error {
    Pkcs11Error::InvalidUri(why.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "pkcs11:token=encstore;object=kek-2026?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/hsm-pin";

    #[test]
    fn parses_the_issue_example() {
        let u = Pkcs11Uri::parse(EXAMPLE).unwrap();
        assert_eq!(u.token.as_deref(), Some("encstore"));
        assert_eq!(u.object.as_deref(), Some("kek-2026"));
        assert_eq!(
            u.module_path.as_deref(),
            Some(Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(
            u.pin_source,
            Some(PinSource::File("/run/secrets/hsm-pin".into()))
        );
        assert_eq!(u.to_string(), EXAMPLE);
        assert_eq!(Pkcs11Uri::parse(&u.to_string()).unwrap(), u);
    }

    #[test]
    fn percent_decodes_path_attributes() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=My%20Token%3b1;object=k%C3%A9k;id=%01%ff%00;serial=ab;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;slot-id=7;type=secret-key",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("My Token;1"));
        assert_eq!(u.object.as_deref(), Some("kék"));
        assert_eq!(u.id.as_deref(), Some(&[1u8, 0xff, 0][..]));
        assert_eq!(u.serial.as_deref(), Some("ab"));
        assert_eq!(u.manufacturer.as_deref(), Some("SoftHSM project"));
        assert_eq!(u.model.as_deref(), Some("SoftHSM v2"));
        assert_eq!(u.slot_id, Some(7));
        let again = Pkcs11Uri::parse(&u.to_string()).unwrap();
        assert_eq!(again, u);
    }

    #[test]
    fn refuses_pin_value() {
        let e = Pkcs11Uri::parse("pkcs11:token=t;object=k?pin-value=SECRET-PIN-4242").unwrap_err();
        assert!(matches!(e, Pkcs11Error::PinInUri));
        assert!(!e.to_string().contains("SECRET-PIN-4242"));
        assert!(!format!("{e:?}").contains("SECRET-PIN-4242"));
        let e = Pkcs11Uri::parse("pkcs11:token=t;object=k?pin-value").unwrap_err();
        assert!(matches!(e, Pkcs11Error::PinInUri));
    }

    #[test]
    fn pin_sources() {
        let p = |s: &str| {
            Pkcs11Uri::parse(&format!("pkcs11:object=k?pin-source={s}"))
                .map(|u| u.pin_source.unwrap())
        };
        assert_eq!(p("file:/a/b").unwrap(), PinSource::File("/a/b".into()));
        assert_eq!(p("file:///a/b").unwrap(), PinSource::File("/a/b".into()));
        assert_eq!(p("/a/b").unwrap(), PinSource::File("/a/b".into()));
        assert_eq!(p("env:HSM_PIN").unwrap(), PinSource::Env("HSM_PIN".into()));
        assert!(p("relative/pin").is_err());
        assert!(p("env:").is_err());
        assert!(p("env:A-B").is_err());
        assert!(p("|/bin/cat /pin").is_err());
    }

    #[test]
    fn rejects_malformed_uris() {
        for bad in [
            "pkcs12:object=k",
            "object=k",
            "pkcs11:token=t",
            "pkcs11:object=a;object=b",
            "pkcs11:object=k;bogus=1",
            "pkcs11:object=k;noequals",
            "pkcs11:object=%zz",
            "pkcs11:object=%4",
            "pkcs11:object=%ff",
            "pkcs11:object=k;type=private",
            "pkcs11:object=k;slot-id=x",
            "pkcs11:object=k?module-path=relative.so",
            "pkcs11:object=k?module-name=softhsm2",
            "pkcs11:object=k?bogus=1",
            "pkcs11:object=k?module-path=/a.so&module-path=/b.so",
        ] {
            let e = Pkcs11Uri::parse(bad).unwrap_err();
            assert!(matches!(e, Pkcs11Error::InvalidUri(_)), "{bad}: {e:?}");
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn exact_debug_and_display() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=encstore;object=kek?module-path=/m.so&pin-source=env:HSM_PIN",
        )
        .unwrap();
        assert_eq!(
            format!("{u:?}"),
            r#"Pkcs11Uri("pkcs11:token=encstore;object=kek?module-path=/m.so&pin-source=env:HSM_PIN")"#
        );
        assert_eq!(
            u.to_string(),
            "pkcs11:token=encstore;object=kek?module-path=/m.so&pin-source=env:HSM_PIN"
        );
    }

    #[test]
    fn uri_wins_over_environment() {
        let env = |k: &str| match k {
            ENV_MODULE => Some("/env/module.so".to_owned()),
            ENV_PIN_FILE => Some("/env/pin".to_owned()),
            _ => None,
        };
        let none = |_: &str| None;
        let bare = Pkcs11Uri::parse("pkcs11:token=t;object=k").unwrap();
        assert_eq!(
            bare.resolve_module(&env).unwrap(),
            Path::new("/env/module.so")
        );
        assert_eq!(
            bare.resolve_pin_source(&env).unwrap(),
            PinSource::File("/env/pin".into())
        );
        assert!(matches!(
            bare.resolve_module(&none),
            Err(Pkcs11Error::NoModule)
        ));
        assert!(matches!(
            bare.resolve_pin_source(&none),
            Err(Pkcs11Error::NoPinSource)
        ));
        let full = Pkcs11Uri::parse(
            "pkcs11:token=t;object=k?module-path=/uri/m.so&pin-source=file:/uri/pin",
        )
        .unwrap();
        assert_eq!(full.resolve_module(&env).unwrap(), Path::new("/uri/m.so"));
        assert_eq!(
            full.resolve_pin_source(&env).unwrap(),
            PinSource::File("/uri/pin".into())
        );
        let rel = |k: &str| (k == ENV_MODULE).then(|| "libsofthsm2.so".to_owned());
        assert!(matches!(
            bare.resolve_module(&rel),
            Err(Pkcs11Error::InvalidUri(_))
        ));
    }
}
