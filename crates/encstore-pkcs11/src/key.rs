//! The key object: finding the one the URI names and checking it can wrap
//! keysets, and generating a new one for `create_master_key`.

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use crate::ck::ck_name;
use crate::error::Pkcs11Error;
use crate::token::Conn;
use crate::uri::Pkcs11Uri;

/// Finds the one object `uri` names (`object=` label and/or `id=`) in a
/// logged-in `session`, and checks that it is an AES secret key allowed to
/// encrypt and decrypt. `token` is the quoted token label, for messages.
pub(crate) fn find_key(
    session: &Session,
    uri: &Pkcs11Uri,
    token: &str,
) -> Result<ObjectHandle, Pkcs11Error> {
    let token = token.to_owned();
    let token_err = |operation: &'static str, e: CkError| Pkcs11Error::Token {
        token: token.clone(),
        operation,
        rv: ck_name(&e),
    };
    let key = uri.key_description();
    let mut template = Vec::new();
    if let Some(l) = &uri.object {
        template.push(Attribute::Label(l.clone().into_bytes()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    let found = session
        .find_objects(&template)
        .map_err(|e| token_err("searching for the key", e))?;
    let handle = match found.as_slice() {
        [] => return Err(Pkcs11Error::KeyNotFound { token, key }),
        [one] => *one,
        many => {
            return Err(Pkcs11Error::AmbiguousKey {
                token,
                key,
                count: many.len(),
            });
        }
    };
    let attrs = session
        .get_attributes(
            handle,
            &[
                AttributeType::Class,
                AttributeType::KeyType,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
            ],
        )
        .map_err(|e| token_err("reading the key's attributes", e))?;
    let (mut class, mut key_type, mut encrypt, mut decrypt) = (None, None, false, false);
    for a in attrs {
        match a {
            Attribute::Class(c) => class = Some(c),
            Attribute::KeyType(k) => key_type = Some(k),
            Attribute::Encrypt(b) => encrypt = b,
            Attribute::Decrypt(b) => decrypt = b,
            _ => {}
        }
    }
    if class != Some(ObjectClass::SECRET_KEY) || key_type != Some(KeyType::AES) {
        return Err(Pkcs11Error::NotAesKey {
            token,
            key,
            found: describe_object(class, key_type),
        });
    }
    let missing = match (encrypt, decrypt) {
        (true, true) => None,
        (false, true) => Some("CKA_ENCRYPT"),
        (true, false) => Some("CKA_DECRYPT"),
        (false, false) => Some("CKA_ENCRYPT and CKA_DECRYPT"),
    };
    if let Some(missing) = missing {
        return Err(Pkcs11Error::KeyUsage {
            token,
            key,
            missing,
        });
    }
    Ok(handle)
}

/// Generates a new AES-256 key on the token `conn` reached, labelled with
/// `uri`'s `object=` (and `id=` as its `CKA_ID` if given): a private,
/// sensitive, non-extractable token object allowed to encrypt and decrypt
/// only. Refuses with [`Pkcs11Error::KeyExists`] if any object already has
/// that label (or id).
pub(crate) fn generate_key(conn: &Conn, uri: &Pkcs11Uri) -> Result<(), Pkcs11Error> {
    let Some(label) = uri.object.clone() else {
        return Err(Pkcs11Error::InvalidUri(
            "creating a master key needs object=LABEL in the URI".to_owned(),
        ));
    };
    let session = conn
        .ctx
        .open_rw_session(conn.slot)
        .map_err(|e| conn.token_err("opening a session", e))?;
    conn.login(&session)?;
    let mut taken = session
        .find_objects(&[Attribute::Label(label.clone().into_bytes())])
        .map_err(|e| conn.token_err("searching for the key", e))?;
    if let Some(id) = &uri.id {
        taken.extend(
            session
                .find_objects(&[Attribute::Id(id.clone())])
                .map_err(|e| conn.token_err("searching for the key", e))?,
        );
    }
    if !taken.is_empty() {
        return Err(Pkcs11Error::KeyExists {
            token: format!("{:?}", conn.token_label),
            key: uri.key_description(),
        });
    }
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        Attribute::Label(label.into_bytes()),
    ];
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    session
        .generate_key(&Mechanism::AesKeyGen, &template)
        .map_err(|e| conn.token_err("generating the AES key", e))?;
    tracing::info!(token = %conn.token_label, key = %uri.key_description(), "created PKCS#11 master key");
    Ok(())
}

fn describe_object(class: Option<ObjectClass>, key_type: Option<KeyType>) -> String {
    let kt = |k: KeyType| {
        if k == KeyType::DES3 {
            "DES3".to_owned()
        } else if k == KeyType::GENERIC_SECRET {
            "generic".to_owned()
        } else if k == KeyType::AES {
            "AES".to_owned()
        } else {
            k.to_string()
        }
    };
    match (class, key_type) {
        (Some(c), Some(k)) if c == ObjectClass::SECRET_KEY => format!("a {} secret key", kt(k)),
        (Some(c), Some(k)) if c == ObjectClass::PRIVATE_KEY => format!("a {} private key", kt(k)),
        (Some(c), Some(k)) if c == ObjectClass::PUBLIC_KEY => format!("a {} public key", kt(k)),
        (Some(c), _) => format!("an object of class {c}"),
        (None, _) => "an object of unknown class".to_owned(),
    }
}
