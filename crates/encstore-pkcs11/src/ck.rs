//! Naming cryptoki errors the way PKCS#11 does (`CKR_PIN_INCORRECT from
//! C_Login`), on one line, for [`Pkcs11Error`](crate::Pkcs11Error) messages.

use cryptoki::error::{Error as CkError, RvError};

/// `CKR_…`-style name of a cryptoki error, short and on one line.
pub(crate) fn ck_name(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, func) => format!("{} from C_{func:?}", rv_name(*rv)),
        CkError::LibraryLoading(l) => one_line(&l.to_string()),
        other => one_line(&other.to_string()),
    }
}

fn rv_name(rv: RvError) -> String {
    // RvError's Debug is the CamelCase of the CKR_ name; turn it back.
    let camel = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The reason text for a mid-operation failure.
pub(crate) fn explain(e: &CkError) -> String {
    let hint = match e {
        CkError::Pkcs11(RvError::CryptokiNotInitialized, _) => {
            " (the module was finalised by another part of this process; open the KEK again)"
        }
        CkError::Pkcs11(RvError::SessionHandleInvalid | RvError::SessionClosed, _) => {
            " (the token closed the session)"
        }
        CkError::Pkcs11(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid, _) => {
            " (the key object is no longer on the token)"
        }
        CkError::Pkcs11(RvError::DeviceRemoved | RvError::TokenNotPresent, _) => {
            " (the token was removed)"
        }
        _ => "",
    };
    format!("{}{hint}", ck_name(e))
}

pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rv_names_match_pkcs11() {
        assert_eq!(rv_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(rv_name(RvError::PinLocked), "CKR_PIN_LOCKED");
        assert_eq!(
            rv_name(RvError::SessionHandleInvalid),
            "CKR_SESSION_HANDLE_INVALID"
        );
    }
}
