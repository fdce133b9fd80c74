//! Keyset formats: Tink JSON (every form Tink writes, written as Tink Java
//! writes it), binary protobuf, `EncryptedKeyset` in both, and detection.

mod keyset_util;
mod provider_util;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use encstore_core::Aead;
use encstore_tink::{KeyStatus, Keyset, KeysetError, KeysetFormat, OutputPrefix, detect_format};
use encstore_tink::{KeysetEncoding, KeysetProtection};
use keyset_util::*;
use prost::Message as _;

/// A keyset with several key types, statuses and prefixes, and a key ID
/// above 2^31. The second key type is ChaCha20-Poly1305, or AES-CTR-HMAC
/// under the `fips` provider (which refuses ChaCha20).
fn mixed_keyset() -> Keyset {
    let mut ks = Keyset::generate(&tpl("AES256_GCM")).expect("generate");
    ks.add_key(&tpl("AES128_GCM_RAW")).expect("add");
    let other = if provider_util::refuses_template("CHACHA20_POLY1305") {
        "AES128_CTR_HMAC_SHA256"
    } else {
        "CHACHA20_POLY1305"
    };
    let chacha = ks.add_key(&tpl(other)).expect("add");
    let disabled = ks.add_key(&tpl("AES256_GCM")).expect("add");
    let destroyed = ks.add_key(&tpl("AES256_GCM_RAW")).expect("add");
    ks.disable(disabled).expect("disable");
    ks.destroy(destroyed).expect("destroy");
    ks.promote(chacha).expect("promote");
    ks
}

/// The Tink Java form of a keyset: compact, Java's field order, unsigned
/// IDs, standard base64, trailing newline.
fn java_fixture() -> String {
    keyset_json(
        3_000_000_000,
        &[
            aes_key(3_000_000_000, "ENABLED", "TINK", 0x11),
            aes_key(42, "DISABLED", "RAW", 0x22),
            aes_key(43, "ENABLED", "LEGACY", 0x33),
            aes_key(44, "ENABLED", "CRUNCHY", 0x44),
            r#"{"keyData":{"typeUrl":"","value":"","keyMaterialType":"UNKNOWN_KEYMATERIAL"},"status":"DESTROYED","keyId":45,"outputPrefixType":"TINK"}"#.to_owned(),
        ],
    )
}

#[test]
fn json_written_exactly_as_tink_java_writes_it() {
    let fixture = java_fixture();
    let ks = Keyset::from_json_insecure(fixture.as_bytes()).expect("read");
    let out = ks.to_json_insecure();
    assert_eq!(std::str::from_utf8(&out).expect("utf8"), fixture);
}

#[test]
fn json_round_trip_keeps_everything() {
    let ks = mixed_keyset();
    let json = ks.to_json_insecure();
    let back = Keyset::from_json_insecure(&json).expect("read back");
    assert_eq!(back.info(), ks.info());
    assert_eq!(*back.to_json_insecure(), *json);
    // The re-read keys still work: a ciphertext of the original decrypts.
    let ct = ks
        .aead()
        .expect("aead")
        .encrypt(b"msg", b"ad")
        .expect("encrypt");
    assert_eq!(
        back.aead()
            .expect("aead")
            .decrypt(&ct, b"ad")
            .expect("decrypt"),
        b"msg"
    );
}

#[test]
fn binary_round_trip_and_json_binary_json() {
    let ks = mixed_keyset();
    let bin = ks.to_binary_insecure();
    let back = Keyset::from_binary_insecure(&bin).expect("read binary");
    assert_eq!(back.info(), ks.info());
    assert_eq!(*back.to_binary_insecure(), *bin);
    assert_eq!(*back.to_json_insecure(), *ks.to_json_insecure());
    let fixture = java_fixture();
    let from_json = Keyset::from_json_insecure(fixture.as_bytes()).expect("json");
    let via_binary = Keyset::from_binary_insecure(&from_json.to_binary_insecure()).expect("binary");
    assert_eq!(
        std::str::from_utf8(&via_binary.to_json_insecure()).expect("utf8"),
        fixture
    );
}

#[test]
fn binary_is_tinks_keyset_proto() {
    let fixture = java_fixture();
    let ks = Keyset::from_json_insecure(fixture.as_bytes()).expect("read");
    let proto = tink_proto::Keyset::decode(&ks.to_binary_insecure()[..]).expect("decode");
    assert_eq!(proto.primary_key_id, 3_000_000_000);
    assert_eq!(proto.key.len(), 5);
    let k0 = &proto.key[0];
    assert_eq!(k0.key_id, 3_000_000_000);
    assert_eq!(k0.status, tink_proto::KeyStatusType::Enabled as i32);
    assert_eq!(
        k0.output_prefix_type,
        tink_proto::OutputPrefixType::Tink as i32
    );
    let data = k0.key_data.as_ref().expect("key data");
    assert_eq!(data.type_url, AES_GCM_URL);
    assert_eq!(data.value, aes_gcm_value(&key_bytes(0x11)));
    assert_eq!(
        data.key_material_type,
        tink_proto::key_data::KeyMaterialType::Symmetric as i32
    );
    assert_eq!(
        proto.key[2].output_prefix_type,
        tink_proto::OutputPrefixType::Legacy as i32
    );
    assert_eq!(
        proto.key[3].output_prefix_type,
        tink_proto::OutputPrefixType::Crunchy as i32
    );
    // The JSON had an empty keyData for the destroyed key, so (as Tink
    // Java's reader does) the proto has an empty KeyData.
    assert_eq!(
        proto.key[4].status,
        tink_proto::KeyStatusType::Destroyed as i32
    );
    assert_eq!(proto.key[4].key_data, Some(tink_proto::KeyData::default()));
    // And encoding the decoded proto gives the same bytes.
    assert_eq!(proto.encode_to_vec(), ks.to_binary_insecure().to_vec());
    // Destroying a key clears its key data, as Tink's
    // `KeysetManager.destroy` does: the field is absent.
    let mut ks = ks;
    ks.destroy(42).expect("destroy");
    let proto = tink_proto::Keyset::decode(&ks.to_binary_insecure()[..]).expect("decode");
    assert!(proto.key[1].key_data.is_none());
}

#[test]
fn reads_every_form_tink_writes() {
    let value = aes_gcm_value(&key_bytes(7));
    let std_b64 = STANDARD.encode(&value);
    let url_b64 = URL_SAFE_NO_PAD.encode(&value);
    // Python (protobuf json_format.MessageToJson): pretty, defaults
    // omitted, a destroyed key without keyData.
    let python = format!(
        r#"{{
  "primaryKeyId": 4294967295,
  "key": [
    {{
      "keyData": {{
        "typeUrl": "{AES_GCM_URL}",
        "value": "{std_b64}",
        "keyMaterialType": "SYMMETRIC"
      }},
      "status": "ENABLED",
      "keyId": 4294967295,
      "outputPrefixType": "TINK"
    }},
    {{
      "status": "DESTROYED",
      "keyId": 12,
      "outputPrefixType": "RAW"
    }}
  ]
}}"#
    );
    // Old Tink Java: IDs >= 2^31 as negative int32.
    let old_java = keyset_json(
        u32::MAX,
        &[key_json(u32::MAX, "ENABLED", "TINK", AES_GCM_URL, &value)],
    )
    .replace("4294967295", "-1");
    // Tink C++ (rapidjson, pretty, its own field order).
    let cpp = format!(
        r#"{{
    "primaryKeyId": 4294967295,
    "key": [
        {{
            "keyId": 4294967295,
            "status": "ENABLED",
            "outputPrefixType": "TINK",
            "keyData": {{
                "typeUrl": "{AES_GCM_URL}",
                "keyMaterialType": "SYMMETRIC",
                "value": "{std_b64}"
            }}
        }}
    ]
}}"#
    );
    // Protobuf JSON variants: IDs as strings, proto field names, enum
    // numbers, URL-safe unpadded base64, unknown fields.
    let proto_json = format!(
        r#"{{"primary_key_id":"4294967295","extra":{{"a":[1,2]}},"key":[{{"key_data":{{"type_url":"{AES_GCM_URL}","value":"{url_b64}","key_material_type":1}},"status":1,"key_id":"4294967295","output_prefix_type":1}}]}}"#
    );
    for (name, json) in [
        ("python", python),
        ("old java", old_java),
        ("c++", cpp),
        ("protobuf json", proto_json),
    ] {
        let ks =
            Keyset::from_json_insecure(json.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ks.primary_key_id(), u32::MAX, "{name}");
        let info = ks.info();
        assert_eq!(info.keys[0].key_id, u32::MAX, "{name}");
        assert_eq!(info.keys[0].output_prefix, OutputPrefix::Tink, "{name}");
        assert_eq!(info.keys[0].type_url, AES_GCM_URL, "{name}");
        // Written back in Tink Java's form, with the unsigned ID.
        let out = String::from_utf8(ks.to_json_insecure().to_vec()).expect("utf8");
        assert!(
            out.starts_with(r#"{"primaryKeyId":4294967295,"key":[{"keyData":{"#),
            "{name}: {out}"
        );
        assert!(out.contains(&format!(r#""value":"{std_b64}""#)), "{name}");
    }
}

#[test]
fn negative_ids_map_to_unsigned() {
    let json = keyset_json(0, &[aes_key(0, "ENABLED", "TINK", 1)])
        .replace(r#""primaryKeyId":0"#, r#""primaryKeyId":-2147483648"#)
        .replace(r#""keyId":0"#, r#""keyId":-2147483648"#);
    let ks = Keyset::from_json_insecure(json.as_bytes()).expect("read");
    assert_eq!(ks.primary_key_id(), 0x8000_0000);
}

fn kek() -> encstore_tink::KeysetAead {
    Keyset::generate(&tpl("AES256_GCM"))
        .expect("kek keyset")
        .aead()
        .expect("kek aead")
}

#[test]
fn encrypted_json_round_trip_with_and_without_ad() {
    let ks = mixed_keyset();
    let kek = kek();
    for ad in [&b""[..], b"keyset binding"] {
        let enc = ks
            .write(KeysetEncoding::Json, KeysetProtection::encrypted(&kek, ad))
            .expect("encrypt");
        assert_eq!(detect_format(&enc), KeysetFormat::EncryptedJson);
        let back = Keyset::read_as(
            &enc,
            KeysetEncoding::Json,
            KeysetProtection::encrypted(&kek, ad),
        )
        .expect("decrypt");
        assert_eq!(back.info(), ks.info());
        assert_eq!(*back.to_json_insecure(), *ks.to_json_insecure());
    }
    let enc = ks
        .write(
            KeysetEncoding::Json,
            KeysetProtection::encrypted(&kek, b"right"),
        )
        .expect("encrypt");
    assert_eq!(
        Keyset::read_as(
            &enc,
            KeysetEncoding::Json,
            KeysetProtection::encrypted(&kek, b"wrong")
        )
        .expect_err("wrong ad"),
        KeysetError::Decryption
    );
    assert_eq!(
        Keyset::read_as(
            &enc,
            KeysetEncoding::Json,
            KeysetProtection::encrypted(&kek, b"")
        )
        .expect_err("missing ad"),
        KeysetError::Decryption
    );
    assert_eq!(
        Keyset::read_as(
            &enc,
            KeysetEncoding::Json,
            KeysetProtection::encrypted(&self::kek(), b"right")
        )
        .expect_err("wrong kek"),
        KeysetError::Decryption
    );
}

#[test]
fn encrypted_binary_round_trip_with_and_without_ad() {
    let ks = mixed_keyset();
    let kek = kek();
    for ad in [&b""[..], b"keyset binding"] {
        let enc = ks
            .write(
                KeysetEncoding::Binary,
                KeysetProtection::encrypted(&kek, ad),
            )
            .expect("encrypt");
        assert_eq!(detect_format(&enc), KeysetFormat::EncryptedBinary);
        let back = Keyset::read_as(
            &enc,
            KeysetEncoding::Binary,
            KeysetProtection::encrypted(&kek, ad),
        )
        .expect("decrypt");
        assert_eq!(*back.to_binary_insecure(), *ks.to_binary_insecure());
    }
    let enc = ks
        .write(
            KeysetEncoding::Binary,
            KeysetProtection::encrypted(&kek, b"right"),
        )
        .expect("encrypt");
    assert_eq!(
        Keyset::read_as(
            &enc,
            KeysetEncoding::Binary,
            KeysetProtection::encrypted(&kek, b"wrong")
        )
        .expect_err("wrong ad"),
        KeysetError::Decryption
    );
}

#[test]
fn encrypted_keyset_is_tinks_and_holds_no_key_material() {
    let fixture = java_fixture();
    let ks = Keyset::from_json_insecure(fixture.as_bytes()).expect("read");
    let kek = kek();
    // Binary: an EncryptedKeyset proto whose ciphertext is
    // kek.encrypt(serialized Keyset, ad), with keysetInfo.
    let bin = ks
        .write(
            KeysetEncoding::Binary,
            KeysetProtection::encrypted(&kek, b"ad"),
        )
        .expect("encrypt");
    let proto = tink_proto::EncryptedKeyset::decode(&bin[..]).expect("decode");
    let plain = kek
        .decrypt(&proto.encrypted_keyset, b"ad")
        .expect("kek decrypt");
    assert_eq!(plain, ks.to_binary_insecure().to_vec());
    let info = proto.keyset_info.expect("keyset info");
    assert_eq!(info.primary_key_id, 3_000_000_000);
    assert_eq!(info.key_info.len(), 5);
    assert_eq!(info.key_info[0].type_url, AES_GCM_URL);
    assert_eq!(
        info.key_info[1].status,
        tink_proto::KeyStatusType::Disabled as i32
    );
    assert_eq!(
        info.key_info[1].output_prefix_type,
        tink_proto::OutputPrefixType::Raw as i32
    );
    // JSON: Tink Java's shape.
    let json = ks
        .write(
            KeysetEncoding::Json,
            KeysetProtection::encrypted(&kek, b"ad"),
        )
        .expect("encrypt");
    let text = std::str::from_utf8(&json).expect("utf8");
    assert!(text.starts_with(r#"{"encryptedKeyset":""#), "{text}");
    assert!(text.ends_with("}}\n"), "{text}");
    assert!(text.contains(
        r#""keysetInfo":{"primaryKeyId":3000000000,"keyInfo":[{"typeUrl":"type.googleapis.com/google.crypto.tink.AesGcmKey","status":"ENABLED","keyId":3000000000,"outputPrefixType":"TINK"},"#
    ), "{text}");
    assert!(
        text.contains(
            r#"{"typeUrl":"","status":"DESTROYED","keyId":45,"outputPrefixType":"TINK"}]}}"#
        ),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(text).expect("json");
    let ct = STANDARD
        .decode(v["encryptedKeyset"].as_str().expect("string"))
        .expect("base64");
    assert_eq!(
        kek.decrypt(&ct, b"ad").expect("kek decrypt"),
        ks.to_binary_insecure().to_vec()
    );
    // No key bytes in the clear.
    let key_b64 = STANDARD.encode(aes_gcm_value(&key_bytes(0x11)));
    assert!(!text.contains(&key_b64));
}

#[test]
fn reads_encrypted_json_as_other_tinks_write_it() {
    let ks = Keyset::from_json_insecure(java_fixture().as_bytes()).expect("read");
    let kek = kek();
    let ct = kek.encrypt(&ks.to_binary_insecure(), b"").expect("encrypt");
    // Python's MessageToJson form (pretty; no keysetInfo needed), and
    // proto field names with URL-safe base64.
    for json in [
        format!(
            "{{\n  \"encryptedKeyset\": \"{}\"\n}}",
            STANDARD.encode(&ct)
        ),
        format!(
            r#"{{"encrypted_keyset":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(&ct)
        ),
    ] {
        let back = Keyset::read_as(
            json.as_bytes(),
            KeysetEncoding::Json,
            KeysetProtection::encrypted(&kek, b""),
        )
        .expect("read");
        assert_eq!(back.info(), ks.info());
    }
}

#[test]
fn detects_all_four_forms() {
    let ks = mixed_keyset();
    let kek = kek();
    assert_eq!(detect_format(&ks.to_json_insecure()), KeysetFormat::Json);
    assert_eq!(
        detect_format(&ks.to_binary_insecure()),
        KeysetFormat::Binary
    );
    assert_eq!(
        detect_format(
            &ks.write(KeysetEncoding::Json, KeysetProtection::encrypted(&kek, b""))
                .expect("enc")
        ),
        KeysetFormat::EncryptedJson
    );
    assert_eq!(
        detect_format(
            &ks.write(
                KeysetEncoding::Binary,
                KeysetProtection::encrypted(&kek, b"")
            )
            .expect("enc")
        ),
        KeysetFormat::EncryptedBinary
    );
    assert_eq!(detect_format(b"  \n{\"key\":[]}"), KeysetFormat::Json);
    assert!(KeysetFormat::EncryptedJson.is_encrypted() && KeysetFormat::EncryptedJson.is_json());
    assert!(!KeysetFormat::Binary.is_encrypted() && !KeysetFormat::Binary.is_json());
}

#[test]
fn read_dispatches_and_refuses_the_wrong_kind() {
    let ks = mixed_keyset();
    let kek = kek();
    let forms = [
        (ks.to_json_insecure().to_vec(), false),
        (ks.to_binary_insecure().to_vec(), false),
        (
            ks.write(
                KeysetEncoding::Json,
                KeysetProtection::encrypted(&kek, b"ad"),
            )
            .expect("enc")
            .to_vec(),
            true,
        ),
        (
            ks.write(
                KeysetEncoding::Binary,
                KeysetProtection::encrypted(&kek, b"ad"),
            )
            .expect("enc")
            .to_vec(),
            true,
        ),
    ];
    for (bytes, encrypted) in &forms {
        if *encrypted {
            let back = Keyset::read(bytes, KeysetProtection::encrypted(&kek, b"ad")).expect("read");
            assert_eq!(back.info(), ks.info());
            assert_eq!(
                Keyset::read(bytes, KeysetProtection::Cleartext).expect_err("no kek"),
                KeysetError::UnexpectedEncrypted
            );
        } else {
            let back = Keyset::read(bytes, KeysetProtection::Cleartext).expect("read");
            assert_eq!(back.info(), ks.info());
            assert_eq!(
                Keyset::read(bytes, KeysetProtection::encrypted(&kek, b"ad"))
                    .expect_err("kek given"),
                KeysetError::UnexpectedCleartext
            );
        }
    }
    // The specific readers refuse the other kind too.
    assert_eq!(
        Keyset::from_json_insecure(&forms[2].0).expect_err("encrypted json"),
        KeysetError::UnexpectedEncrypted
    );
    assert_eq!(
        Keyset::read_as(
            &forms[0].0,
            KeysetEncoding::Json,
            KeysetProtection::encrypted(&kek, b"ad")
        )
        .expect_err("cleartext json"),
        KeysetError::UnexpectedCleartext
    );
    assert_eq!(
        Keyset::read_as(
            &forms[1].0,
            KeysetEncoding::Binary,
            KeysetProtection::encrypted(&kek, b"ad")
        )
        .expect_err("cleartext binary"),
        KeysetError::UnexpectedCleartext
    );
}

#[test]
fn info_lists_keys_without_material() {
    let ks = Keyset::from_json_insecure(java_fixture().as_bytes()).expect("read");
    let info = ks.info();
    assert_eq!(info.primary_key_id, 3_000_000_000);
    let summary: Vec<_> = info
        .keys
        .iter()
        .map(|k| {
            (
                k.key_id,
                k.status,
                k.output_prefix,
                k.primary,
                k.params.is_some(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                3_000_000_000,
                KeyStatus::Enabled,
                OutputPrefix::Tink,
                true,
                true
            ),
            (42, KeyStatus::Disabled, OutputPrefix::Raw, false, true),
            (43, KeyStatus::Enabled, OutputPrefix::Legacy, false, true),
            (44, KeyStatus::Enabled, OutputPrefix::Crunchy, false, true),
            (45, KeyStatus::Destroyed, OutputPrefix::Tink, false, false),
        ]
    );
    assert_eq!(
        info.keys[0].params,
        Some(encstore_tink::KeyParams::AesGcm { key_size: 32 })
    );
}

#[test]
fn info_displays_as_tinkey_lists_it() {
    let json = keyset_json(
        3_000_000_000,
        &[
            aes_key(3_000_000_000, "ENABLED", "TINK", 1),
            r#"{"status":"DESTROYED","keyId":7,"outputPrefixType":"RAW"}"#.to_owned(),
        ],
    );
    let ks = Keyset::from_json_insecure(json.as_bytes()).expect("read");
    assert_eq!(
        ks.info().to_string(),
        "primary_key_id: 3000000000\n\
         key_info {\n\
         \x20 type_url: \"type.googleapis.com/google.crypto.tink.AesGcmKey\"\n\
         \x20 status: ENABLED\n\
         \x20 key_id: 3000000000\n\
         \x20 output_prefix_type: TINK\n\
         }\n\
         key_info {\n\
         \x20 type_url: \"\"\n\
         \x20 status: DESTROYED\n\
         \x20 key_id: 7\n\
         \x20 output_prefix_type: RAW\n\
         }\n"
    );
}

/// `write` and `read_as` take the encoding and the protection as explicit
/// arguments: the cleartext forms are byte for byte the `*_insecure` ones,
/// a declared encoding is not second-guessed, and the protection's `Debug`
/// names no key.
#[test]
fn write_and_read_as_spell_out_encoding_and_protection() {
    let ks = mixed_keyset();
    let kek = kek();
    let clear = KeysetProtection::Cleartext;
    let json = ks.write(KeysetEncoding::Json, clear).expect("json");
    assert_eq!(*json, *ks.to_json_insecure());
    let bin = ks.write(KeysetEncoding::Binary, clear).expect("binary");
    assert_eq!(*bin, *ks.to_binary_insecure());
    for (bytes, encoding) in [
        (&json, KeysetEncoding::Json),
        (&bin, KeysetEncoding::Binary),
    ] {
        let back = Keyset::read_as(bytes, encoding, clear).expect("read_as");
        assert_eq!(back.info(), ks.info());
        assert_eq!(KeysetEncoding::of(detect_format(bytes)), encoding);
    }
    // A declared encoding is not second-guessed.
    assert!(matches!(
        Keyset::read_as(&json, KeysetEncoding::Binary, clear),
        Err(KeysetError::MalformedProtobuf { .. })
    ));
    assert!(matches!(
        Keyset::read_as(&bin, KeysetEncoding::Json, clear),
        Err(KeysetError::MalformedJson { .. })
    ));
    let enc = KeysetProtection::encrypted(&kek, b"ad");
    assert!(enc.is_encrypted() && !clear.is_encrypted());
    for encoding in [KeysetEncoding::Json, KeysetEncoding::Binary] {
        let bytes = ks.write(encoding, enc).expect("encrypted");
        assert!(detect_format(&bytes).is_encrypted());
        assert_eq!(KeysetEncoding::of(detect_format(&bytes)), encoding);
        let back = Keyset::read_as(&bytes, encoding, enc).expect("read_as encrypted");
        assert_eq!(*back.to_json_insecure(), *ks.to_json_insecure());
        assert_eq!(
            Keyset::read_as(&bytes, encoding, clear).expect_err("as cleartext"),
            if encoding == KeysetEncoding::Json {
                KeysetError::UnexpectedEncrypted
            } else {
                Keyset::from_binary_insecure(&bytes).expect_err("binary")
            }
        );
        assert_eq!(
            Keyset::read_as(
                &bytes,
                encoding,
                KeysetProtection::encrypted(&kek, b"other")
            )
            .expect_err("wrong ad"),
            KeysetError::Decryption
        );
    }
    assert_eq!(
        Keyset::read_as(&json, KeysetEncoding::Json, enc).expect_err("cleartext"),
        KeysetError::UnexpectedCleartext
    );
    assert_eq!(format!("{clear:?}"), "Cleartext");
    assert_eq!(
        format!("{enc:?}"),
        "Encrypted { associated_data_len: 2, .. }"
    );
}
