//! The user PIN: reading it from its source into zeroizing memory, and
//! logging in with it (telling a wrong PIN from a locked one).

use std::path::Path;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::ck::{ck_name, one_line};
use crate::error::Pkcs11Error;
use crate::uri::PinSource;

pub(crate) fn login(session: &Session, pin: &AuthPin, token: &str) -> Result<(), Pkcs11Error> {
    login_outcome(session.login(UserType::User, Some(pin)), token)
}

/// What a `C_Login` result means for the user. Kept apart so that
/// `CKR_PIN_LOCKED`, which SoftHSM2 never returns, is tested too.
fn login_outcome(result: cryptoki::error::Result<()>, token: &str) -> Result<(), Pkcs11Error> {
    match result {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(
            RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
            _,
        )) => Err(Pkcs11Error::WrongPin {
            token: token.to_owned(),
        }),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Pkcs11Error::PinLocked {
            token: token.to_owned(),
        }),
        Err(e) => Err(Pkcs11Error::Token {
            token: token.to_owned(),
            operation: "logging in",
            rv: ck_name(&e),
        }),
    }
}

/// Reads the PIN into zeroizing memory. The error names the source, never
/// its content.
pub(crate) fn read_pin(
    source: &PinSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AuthPin, Pkcs11Error> {
    let err = |reason: String| Pkcs11Error::PinSource {
        source_name: source.to_string(),
        reason,
    };
    let raw: Zeroizing<Vec<u8>> = match source {
        PinSource::File(path) => {
            let bytes =
                Zeroizing::new(std::fs::read(path).map_err(|e| err(one_line(&e.to_string())))?);
            warn_if_readable_by_others(path);
            bytes
        }
        PinSource::Env(var) => {
            let v =
                Zeroizing::new(env(var).ok_or_else(|| err("the variable is not set".to_owned()))?);
            Zeroizing::new(v.as_bytes().to_vec())
        }
    };
    let mut end = raw.len();
    while end > 0 && matches!(raw[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    let pin =
        std::str::from_utf8(&raw[..end]).map_err(|_| err("the PIN is not UTF-8".to_owned()))?;
    if pin.is_empty() {
        return Err(err("it is empty".to_owned()));
    }
    Ok(AuthPin::from(String::from(pin)))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(path = %path.display(), "the PKCS#11 PIN file is readable by every user; chmod 0600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use cryptoki::context::Function;

    use super::*;

    #[test]
    fn wrong_and_locked_pins_are_told_apart() {
        let t = "\"encstore\"";
        let e = login_outcome(
            Err(CkError::Pkcs11(RvError::PinIncorrect, Function::Login)),
            t,
        )
        .unwrap_err();
        assert!(matches!(e, Pkcs11Error::WrongPin { .. }), "{e:?}");
        let e = login_outcome(Err(CkError::Pkcs11(RvError::PinLocked, Function::Login)), t)
            .unwrap_err();
        assert!(matches!(e, Pkcs11Error::PinLocked { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "PKCS#11 token \"encstore\": the user PIN is locked (CKR_PIN_LOCKED); the token's security officer must reset it"
        );
        login_outcome(Ok(()), t).unwrap();
        login_outcome(
            Err(CkError::Pkcs11(
                RvError::UserAlreadyLoggedIn,
                Function::Login,
            )),
            t,
        )
        .unwrap();
        let e = login_outcome(
            Err(CkError::Pkcs11(RvError::DeviceError, Function::Login)),
            t,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "PKCS#11 token \"encstore\": logging in failed (CKR_DEVICE_ERROR from C_Login)"
        );
    }

    #[test]
    fn pin_sources_are_read_and_trimmed_without_leaking() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pin");
        std::fs::write(&f, b"PIN-SENTINEL-7391\r\n").unwrap();
        let pin = read_pin(&PinSource::File(f.clone()), &|_| None).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(pin.expose_secret(), "PIN-SENTINEL-7391");
        assert!(!format!("{pin:?}").contains("PIN-SENTINEL"));

        std::fs::write(&f, b"\n").unwrap();
        let e = read_pin(&PinSource::File(f.clone()), &|_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read the PKCS#11 PIN from file:{}: it is empty",
                f.display()
            )
        );
        let e = read_pin(&PinSource::File(dir.path().join("absent")), &|_| None).unwrap_err();
        assert!(matches!(e, Pkcs11Error::PinSource { .. }));

        let env = |k: &str| (k == "HSM_PIN").then(|| "PIN-SENTINEL-7391".to_owned());
        let pin = read_pin(&PinSource::Env("HSM_PIN".into()), &env).unwrap();
        assert_eq!(pin.expose_secret(), "PIN-SENTINEL-7391");
        let e = read_pin(&PinSource::Env("OTHER".into()), &env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read the PKCS#11 PIN from env:OTHER: the variable is not set"
        );
    }
}
