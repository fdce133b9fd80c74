//! `encrypted_keyset_info`: the unauthenticated `keysetInfo` of an
//! `EncryptedKeyset`, read without the master key, JSON and binary.
#![allow(clippy::unwrap_used)]

use encstore_tink::keyset::encrypted_keyset_info;
use encstore_tink::templates::by_name;
use encstore_tink::{KeyStatus, Keyset, KeysetError, OutputPrefix};
use encstore_tink::{KeysetEncoding, KeysetProtection};

fn keyset() -> Keyset {
    let mut k = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    let raw = k.add_key(&by_name("AES128_GCM_RAW").unwrap()).unwrap();
    k.disable(raw).unwrap();
    k
}

#[test]
fn reads_the_info_of_encrypted_json_and_binary_keysets() {
    let k = keyset();
    let master = Keyset::generate(&by_name("AES256_GCM").unwrap())
        .unwrap()
        .aead()
        .unwrap();
    for bytes in [
        k.write(
            KeysetEncoding::Json,
            KeysetProtection::encrypted(&master, b"ad"),
        )
        .unwrap(),
        k.write(
            KeysetEncoding::Binary,
            KeysetProtection::encrypted(&master, b"ad"),
        )
        .unwrap(),
    ] {
        let info = encrypted_keyset_info(&bytes).unwrap().unwrap();
        let want = k.info();
        assert_eq!(info.primary_key_id, want.primary_key_id);
        assert_eq!(info.keys.len(), 2);
        for (got, want) in info.keys.iter().zip(&want.keys) {
            assert_eq!(got.key_id, want.key_id);
            assert_eq!(got.type_url, want.type_url);
            assert_eq!(got.status, want.status);
            assert_eq!(got.output_prefix, want.output_prefix);
            assert_eq!(got.primary, want.primary);
            assert!(got.params.is_none(), "no parameters without decryption");
        }
        assert_eq!(info.keys[1].status, KeyStatus::Disabled);
        assert_eq!(info.keys[1].output_prefix, OutputPrefix::Raw);
    }
}

#[test]
fn refuses_cleartext_and_malformed_input_and_reports_a_missing_info() {
    let k = keyset();
    for clear in [k.to_json_insecure(), k.to_binary_insecure()] {
        assert!(matches!(
            encrypted_keyset_info(&clear),
            Err(KeysetError::UnexpectedCleartext)
        ));
    }
    assert!(matches!(
        encrypted_keyset_info(br#"{"encryptedKeyset": "AAAA"}"#),
        Ok(None)
    ));
    assert!(
        encrypted_keyset_info(
            br#"{"encryptedKeyset": "AAAA", "keysetInfo": {"keyInfo": [{"status": "BOGUS"}]}}"#
        )
        .is_err()
    );
    assert!(encrypted_keyset_info(br#"{"encryptedKeyset": "#).is_err());
    assert!(encrypted_keyset_info(&[0x1a, 0x05, 0xff, 0xff]).is_err());
}
