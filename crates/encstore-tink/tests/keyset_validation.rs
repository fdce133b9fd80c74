//! Every bad keyset is refused with the `KeysetError` variant that names
//! its problem; no input makes the readers panic.

mod keyset_util;

use encstore_tink::{KeyError, KeyStatus, Keyset, KeysetError};
use encstore_tink::{KeysetEncoding, KeysetProtection};
use keyset_util::*;

fn read(json: &str) -> Result<Keyset, KeysetError> {
    Keyset::from_json_insecure(json.as_bytes())
}

fn err(json: &str) -> KeysetError {
    read(json).expect_err("keyset must be refused")
}

#[test]
fn valid_keyset_reads() {
    let ks = read(&keyset_json(7, &[aes_key(7, "ENABLED", "TINK", 1)])).expect("valid");
    assert_eq!(ks.primary_key_id(), 7);
    assert_eq!(ks.len(), 1);
}

#[test]
fn no_keys() {
    assert_eq!(err(r#"{"primaryKeyId":1,"key":[]}"#), KeysetError::NoKeys);
    assert_eq!(err("{}"), KeysetError::NoKeys);
    assert_eq!(err(r#"{"primaryKeyId":1,"key":null}"#), KeysetError::NoKeys);
    assert_eq!(
        Keyset::from_binary_insecure(&[]).expect_err("empty"),
        KeysetError::NoKeys
    );
}

#[test]
fn no_primary() {
    let json = format!(r#"{{"key":[{}]}}"#, aes_key(5, "ENABLED", "TINK", 1));
    assert_eq!(err(&json), KeysetError::NoPrimary);
    // A key with ID 0 can be the primary, as in protobuf a missing
    // primaryKeyId is 0.
    let json = format!(r#"{{"key":[{}]}}"#, aes_key(0, "ENABLED", "TINK", 1));
    assert_eq!(read(&json).expect("key 0 is primary").primary_key_id(), 0);
}

#[test]
fn primary_missing() {
    let json = keyset_json(8, &[aes_key(7, "ENABLED", "TINK", 1)]);
    assert_eq!(
        err(&json),
        KeysetError::PrimaryMissing { primary_key_id: 8 }
    );
}

#[test]
fn primary_not_enabled() {
    for (status, expected) in [
        ("DISABLED", KeyStatus::Disabled),
        ("DESTROYED", KeyStatus::Destroyed),
    ] {
        let json = keyset_json(
            7,
            &[
                aes_key(7, status, "TINK", 1),
                aes_key(8, "ENABLED", "TINK", 2),
            ],
        );
        assert_eq!(
            err(&json),
            KeysetError::PrimaryNotEnabled {
                key_id: 7,
                status: expected
            }
        );
    }
}

#[test]
fn duplicate_key_ids() {
    let json = keyset_json(
        7,
        &[
            aes_key(7, "ENABLED", "TINK", 1),
            aes_key(9, "ENABLED", "TINK", 2),
            aes_key(9, "DISABLED", "RAW", 3),
        ],
    );
    assert_eq!(err(&json), KeysetError::DuplicateKeyId { key_id: 9 });
}

#[test]
fn unknown_status() {
    let json = keyset_json(
        7,
        &[
            aes_key(7, "ENABLED", "TINK", 1),
            aes_key(9, "UNKNOWN_STATUS", "TINK", 2),
        ],
    );
    assert_eq!(err(&json), KeysetError::UnknownStatus { key_id: 9 });
    // A number Tink does not define (protobuf JSON allows enum numbers).
    let json = keyset_json(7, &[aes_key(7, "ENABLED", "TINK", 1)])
        .replace(r#""status":"ENABLED""#, r#""status":9"#);
    assert_eq!(err(&json), KeysetError::UnknownStatus { key_id: 7 });
    // No status at all is UNKNOWN_STATUS.
    let json =
        keyset_json(7, &[aes_key(7, "ENABLED", "TINK", 1)]).replace(r#""status":"ENABLED","#, "");
    assert_eq!(err(&json), KeysetError::UnknownStatus { key_id: 7 });
}

#[test]
fn unknown_output_prefix() {
    let json = keyset_json(7, &[aes_key(7, "ENABLED", "UNKNOWN_PREFIX", 1)]);
    assert_eq!(err(&json), KeysetError::UnknownOutputPrefix { key_id: 7 });
    let json = keyset_json(7, &[aes_key(7, "ENABLED", "TINK", 1)])
        .replace(r#""outputPrefixType":"TINK""#, r#""outputPrefixType":17"#);
    assert_eq!(err(&json), KeysetError::UnknownOutputPrefix { key_id: 7 });
}

#[test]
fn missing_key_data() {
    let enabled_no_data = r#"{"status":"ENABLED","keyId":7,"outputPrefixType":"TINK"}"#;
    assert_eq!(
        err(&keyset_json(7, &[enabled_no_data.to_owned()])),
        KeysetError::MissingKeyData { key_id: 7 }
    );
    let disabled_no_data = r#"{"status":"DISABLED","keyId":8,"outputPrefixType":"TINK"}"#;
    assert_eq!(
        err(&keyset_json(
            7,
            &[
                aes_key(7, "ENABLED", "TINK", 1),
                disabled_no_data.to_owned()
            ]
        )),
        KeysetError::MissingKeyData { key_id: 8 }
    );
    // A destroyed key needs none.
    let destroyed = r#"{"status":"DESTROYED","keyId":8,"outputPrefixType":"TINK"}"#;
    let ks = read(&keyset_json(
        7,
        &[aes_key(7, "ENABLED", "TINK", 1), destroyed.to_owned()],
    ))
    .expect("destroyed key without data");
    assert_eq!(ks.info().keys[1].status, KeyStatus::Destroyed);
    assert_eq!(ks.info().keys[1].params, None);
}

#[test]
fn wrong_key_material_type() {
    let json = keyset_json(
        7,
        &[key_json_material(
            7,
            "ENABLED",
            "TINK",
            AES_GCM_URL,
            &aes_gcm_value(&key_bytes(1)),
            "ASYMMETRIC_PRIVATE",
        )],
    );
    assert_eq!(
        err(&json),
        KeysetError::WrongKeyMaterialType {
            key_id: 7,
            found: "ASYMMETRIC_PRIVATE".to_owned()
        }
    );
}

#[test]
fn unknown_type_url() {
    let url = "type.googleapis.com/google.crypto.tink.NoSuchKey";
    let json = keyset_json(7, &[key_json(7, "ENABLED", "TINK", url, b"\x1a\x00")]);
    assert_eq!(
        err(&json),
        KeysetError::Key {
            key_id: 7,
            source: KeyError::UnknownTypeUrl {
                type_url: url.to_owned()
            }
        }
    );
}

#[test]
fn non_aead_type_url() {
    let json = keyset_json(7, &[key_json(7, "ENABLED", "TINK", HMAC_URL, b"")]);
    assert_eq!(
        err(&json),
        KeysetError::Key {
            key_id: 7,
            source: KeyError::NotAead {
                type_url: HMAC_URL.to_owned()
            }
        }
    );
}

#[test]
fn wrong_key_size() {
    let json = keyset_json(
        7,
        &[key_json(
            7,
            "ENABLED",
            "TINK",
            AES_GCM_URL,
            &aes_gcm_value(&[1; 20]),
        )],
    );
    assert!(
        matches!(
            err(&json),
            KeysetError::Key {
                key_id: 7,
                source: KeyError::WrongKeySize { size: 20, .. }
            }
        ),
        "{:?}",
        err(&json)
    );
}

#[test]
fn unsupported_key_version() {
    let json = keyset_json(
        7,
        &[key_json(
            7,
            "ENABLED",
            "TINK",
            AES_GCM_URL,
            &aes_gcm_value_v(1, &key_bytes(1)),
        )],
    );
    assert!(
        matches!(
            err(&json),
            KeysetError::Key {
                key_id: 7,
                source: KeyError::UnsupportedVersion { version: 1, .. }
            }
        ),
        "{:?}",
        err(&json)
    );
}

#[test]
fn malformed_key_proto() {
    // Field 3 claims 200 bytes; there are 2.
    let json = keyset_json(
        7,
        &[key_json(
            7,
            "ENABLED",
            "TINK",
            AES_GCM_URL,
            b"\x1a\xc8\x01ab",
        )],
    );
    assert!(
        matches!(
            err(&json),
            KeysetError::Key {
                key_id: 7,
                source: KeyError::MalformedKey { .. }
            }
        ),
        "{:?}",
        err(&json)
    );
}

#[test]
fn disabled_keys_are_validated_too() {
    let json = keyset_json(
        7,
        &[
            aes_key(7, "ENABLED", "TINK", 1),
            key_json(8, "DISABLED", "TINK", AES_GCM_URL, &aes_gcm_value(&[1; 20])),
        ],
    );
    assert!(matches!(err(&json), KeysetError::Key { key_id: 8, .. }));
}

#[test]
fn destroyed_keys_are_not_parsed() {
    // Whatever a destroyed key carries is dropped, not parsed.
    let json = keyset_json(
        7,
        &[
            aes_key(7, "ENABLED", "TINK", 1),
            key_json_material(
                8,
                "DESTROYED",
                "TINK",
                "type.googleapis.com/google.crypto.tink.NoSuchKey",
                b"junk",
                "UNKNOWN_KEYMATERIAL",
            ),
        ],
    );
    let ks = read(&json).expect("destroyed key data is ignored");
    let out = String::from_utf8(ks.to_json_insecure().to_vec()).expect("utf8");
    assert!(
        !out.contains("anVuaw"),
        "destroyed material must be dropped: {out}"
    );
}

#[test]
fn malformed_json_reports_position_not_input() {
    match err("{\n  \"primaryKeyId\": 1,\n  \"key\": [ }") {
        KeysetError::MalformedJson { line, column, .. } => {
            assert_eq!(line, 3);
            assert!(column > 0);
        }
        e => panic!("unexpected {e:?}"),
    }
    assert!(matches!(
        err("[1, 2]"),
        KeysetError::MalformedJson { problem, .. } if problem.contains("not a JSON object")
    ));
    assert!(matches!(
        err("{\"primaryKeyId\": 1, \"key\": ["),
        KeysetError::MalformedJson { problem, .. } if problem.contains("end of input")
    ));
    assert!(matches!(err(""), KeysetError::MalformedJson { .. }));
    // A secret-looking value in a bad place is never echoed.
    let secret = "c2VjcmV0LWtleS1ieXRlcw";
    for bad in [
        format!(r#"{{"primaryKeyId":"{secret}","key":[]}}"#),
        format!(r#"{{"primaryKeyId":1,"key":[{{"status":"{secret}"}}]}}"#),
        format!(r#"{{"primaryKeyId":1,"key":[{{"keyData":{{"value":"{secret}!"}}}}]}}"#),
        format!(r#"{{"primaryKeyId":1,"key":"{secret}"}}"#),
        format!(r#"{{"primaryKeyId":1,"key":[{{"keyData":{{"typeUrl":["{secret}"]}}}}]}}"#),
    ] {
        let e = err(&bad);
        assert!(matches!(e, KeysetError::MalformedJson { .. }), "{e:?}");
        assert!(!e.to_string().contains(secret), "{e}");
        assert!(!format!("{e:?}").contains(secret), "{e:?}");
    }
}

#[test]
fn malformed_json_names_the_problem() {
    let problem = |json: &str| match err(json) {
        KeysetError::MalformedJson { problem, .. } => problem,
        e => panic!("unexpected {e:?}"),
    };
    assert!(problem(r#"{"primaryKeyId":4294967296,"key":[]}"#).contains("key ID"));
    assert!(problem(r#"{"primaryKeyId":-2147483649,"key":[]}"#).contains("key ID"));
    assert!(problem(r#"{"primaryKeyId":1.5,"key":[]}"#).contains("key ID"));
    assert!(problem(r#"{"key":[{"status":"ON"}]}"#).contains("status"));
    assert!(problem(r#"{"key":[{"outputPrefixType":"NONE"}]}"#).contains("outputPrefixType"));
    assert!(
        problem(r#"{"key":[{"keyData":{"keyMaterialType":"X"}}]}"#).contains("keyMaterialType")
    );
    assert!(problem(r#"{"key":[{"keyData":{"value":"***"}}]}"#).contains("base64"));
    assert!(problem(r#"{"key":[{"keyData":{"typeUrl":5}}]}"#).contains("string"));
    assert!(problem(r#"{"key":[],"key":[]}"#).contains("twice"));
}

#[test]
fn malformed_protobuf() {
    for bad in [&b"\xff\xff\xff"[..], b"\x12\x05ab", b"\x0a"] {
        assert_eq!(
            Keyset::from_binary_insecure(bad).expect_err("bad protobuf"),
            KeysetError::MalformedProtobuf { message: "Keyset" }
        );
    }
}

/// A cheap stand-in for the fuzz target: thousands of mutations of valid
/// keysets (bit flips, truncations, splices) through every reader. None may
/// panic.
#[test]
fn no_panic_on_mutated_input() {
    let json = keyset_json(
        0x8000_0001,
        &[
            aes_key(0x8000_0001, "ENABLED", "TINK", 1),
            aes_key(2, "DISABLED", "RAW", 2),
            r#"{"status":"DESTROYED","keyId":3,"outputPrefixType":"LEGACY"}"#.to_owned(),
        ],
    );
    let valid = Keyset::from_json_insecure(json.as_bytes()).expect("valid");
    let binary = valid.to_binary_insecure().to_vec();
    let kek = valid.aead().expect("aead");
    let enc_json = valid
        .write(
            KeysetEncoding::Json,
            KeysetProtection::encrypted(&kek, b"ad"),
        )
        .expect("enc");
    let enc_bin = valid
        .write(
            KeysetEncoding::Binary,
            KeysetProtection::encrypted(&kek, b"ad"),
        )
        .expect("enc");
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for seed in [
        json.as_bytes().to_vec(),
        binary,
        enc_json.to_vec(),
        enc_bin.to_vec(),
    ] {
        for _ in 0..1500 {
            let mut m = seed.clone();
            match rng.below(4) {
                0 => {
                    let i = rng.below(m.len());
                    m[i] ^= 1 << rng.below(8);
                }
                1 => m.truncate(rng.below(m.len())),
                2 => {
                    let i = rng.below(m.len());
                    m[i] = rng.next() as u8;
                }
                _ => {
                    let i = rng.below(m.len());
                    let j = rng.below(m.len());
                    let chunk = m[i..].to_vec();
                    m.truncate(j);
                    m.extend_from_slice(&chunk);
                }
            }
            let _ = Keyset::from_json_insecure(&m);
            let _ = Keyset::from_binary_insecure(&m);
            let _ = Keyset::read_as(
                &m,
                KeysetEncoding::Json,
                KeysetProtection::encrypted(&kek, b"ad"),
            );
            let _ = Keyset::read_as(
                &m,
                KeysetEncoding::Binary,
                KeysetProtection::encrypted(&kek, b"ad"),
            );
            let _ = encstore_tink::detect_format(&m);
        }
    }
}
