//! Interop with Google's Tink: the vectors in `tests/interop/vectors/`
//! (written by `tests/interop/generate.py` with Python Tink 1.16.1 and
//! committed) must all behave in encstore exactly as the manifest says:
//!
//! - every encoding of every good keyset (JSON, binary, cleartext,
//!   `EncryptedKeyset` with and without associated data) loads, and lists
//!   the keys Tink wrote (ID, type, status, prefix, primary);
//! - every good ciphertext decrypts byte for byte with every encoding of
//!   its keyset, and every bad one fails with a decryption error;
//! - every bad keyset is refused with the typed error its kind names.
//!
//! The reverse direction (encstore writes, Python Tink reads) is
//! `tests/interop/reverse.sh`, which needs Python and the built CLI.

use std::collections::HashMap;
use std::path::PathBuf;

mod provider_util;

use encstore_core::{Aead, AeadError};
use encstore_tink::error::{KeyError, KeysetError};
use encstore_tink::keyset::{KeyStatus, Keyset};
use encstore_tink::{KeysetEncoding, KeysetProtection};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/vectors")
}

struct Vectors {
    manifest: Value,
    masters: HashMap<String, Keyset>,
}

fn load() -> Vectors {
    let dir = vectors_dir();
    let text = std::fs::read_to_string(dir.join("manifest.json"))
        .expect("tests/interop/vectors/manifest.json is committed; run tests/interop/generate.py");
    let manifest: Value = serde_json::from_str(&text).expect("manifest is JSON");
    assert_eq!(manifest["schema"], 1, "manifest schema");
    let mut masters = HashMap::new();
    for (name, m) in manifest["masters"].as_object().expect("masters") {
        let bytes = std::fs::read(dir.join(str_of(&m["file"]))).expect("master file");
        let ks = Keyset::from_json_insecure(&bytes)
            .unwrap_or_else(|e| panic!("master keyset {name} does not load: {e}"));
        masters.insert(name.clone(), ks);
    }
    Vectors { manifest, masters }
}

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn hex_of(v: &Value) -> Vec<u8> {
    hex::decode(str_of(v)).unwrap_or_else(|e| panic!("bad hex in manifest: {e}"))
}

/// Reads one manifest file entry (good or bad keyset) with the
/// format-specific API, and also with [`Keyset::read`] (format detection),
/// checking both agree.
fn read_entry(v: &Vectors, entry: &Value) -> Result<Keyset, KeysetError> {
    let path = vectors_dir().join(str_of(&entry["file"]));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json = str_of(&entry["format"]) == "json";
    let encrypted = entry["encrypted"].as_bool().unwrap_or(false);
    let (r, detected) = if encrypted {
        let master = &v.masters[str_of(&entry["master_keyset"])];
        let kek = master.aead().expect("master aead");
        let ad = hex_of(&entry["keyset_associated_data_hex"]);
        let r = if json {
            Keyset::read_as(
                &bytes,
                KeysetEncoding::Json,
                KeysetProtection::encrypted(&kek, &ad),
            )
        } else {
            Keyset::read_as(
                &bytes,
                KeysetEncoding::Binary,
                KeysetProtection::encrypted(&kek, &ad),
            )
        };
        (
            r,
            Keyset::read(&bytes, KeysetProtection::encrypted(&kek, &ad)),
        )
    } else {
        let r = if json {
            Keyset::from_json_insecure(&bytes)
        } else {
            Keyset::from_binary_insecure(&bytes)
        };
        (r, Keyset::read(&bytes, KeysetProtection::Cleartext))
    };
    // Format detection must reach the same verdict (or refuse a file it
    // cannot classify, for malformed input).
    if let (Ok(a), Ok(b)) = (&r, &detected) {
        assert_eq!(a.info(), b.info(), "{}: read() disagrees", path.display());
    }
    if r.is_ok() {
        assert!(
            detected.is_ok(),
            "{}: read() refused a good file: {detected:?}",
            path.display()
        );
    } else {
        assert!(
            detected.is_err(),
            "{}: read() accepted a bad file",
            path.display()
        );
    }
    r
}

fn status_name(s: KeyStatus) -> &'static str {
    s.as_str()
}

/// Whether the process's crypto provider refuses this manifest keyset: one
/// of its keys has a type the `fips` provider does not approve. Such a
/// keyset must be refused (checked in `good_keysets_load_...`); the other
/// tests leave it out.
fn refused_by_provider(ks: &Value) -> bool {
    ks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["type_url"].as_str())
        .any(provider_util::refuses_type)
}

#[test]
fn good_keysets_load_with_the_keys_tink_wrote() {
    let v = load();
    let (mut files, mut refused) = (0, 0);
    for (name, ks) in v.manifest["keysets"].as_object().expect("keysets") {
        for f in ks["files"].as_array().expect("files") {
            if refused_by_provider(ks) {
                provider_util::assert_fips_refusal(read_entry(&v, f), name);
                refused += 1;
                continue;
            }
            let keyset = read_entry(&v, f)
                .unwrap_or_else(|e| panic!("{name}: {} refused: {e}", str_of(&f["file"])));
            let info = keyset.info();
            assert_eq!(
                u64::from(info.primary_key_id),
                ks["primary_key_id"].as_u64().expect("primary"),
                "{name}: primary"
            );
            let want = ks["keys"].as_array().expect("keys");
            assert_eq!(info.keys.len(), want.len(), "{name}: key count");
            for (got, want) in info.keys.iter().zip(want) {
                assert_eq!(
                    u64::from(got.key_id),
                    want["key_id"].as_u64().expect("id"),
                    "{name}"
                );
                assert_eq!(
                    status_name(got.status),
                    str_of(&want["status"]),
                    "{name} key {}",
                    got.key_id
                );
                assert_eq!(
                    got.output_prefix.as_str(),
                    str_of(&want["output_prefix_type"]),
                    "{name} key {}",
                    got.key_id
                );
                assert_eq!(got.primary, got.key_id == info.primary_key_id);
                match want["type_url"].as_str() {
                    Some(t) => assert_eq!(got.type_url, t, "{name} key {}", got.key_id),
                    None => assert!(got.type_url.is_empty(), "{name}: destroyed key has a type"),
                }
            }
            // What encstore writes back reads back to the same keyset.
            let again = Keyset::from_json_insecure(&keyset.to_json_insecure())
                .unwrap_or_else(|e| panic!("{name}: own JSON refused: {e}"));
            assert_eq!(again.info(), info, "{name}: JSON round trip");
            let again = Keyset::from_binary_insecure(&keyset.to_binary_insecure())
                .unwrap_or_else(|e| panic!("{name}: own binary refused: {e}"));
            assert_eq!(again.info(), info, "{name}: binary round trip");
            files += 1;
        }
    }
    assert!(files + refused >= 40, "only {files} good keyset files");
    // Under `fips`, the AES-GCM keysets are still read (and checked).
    assert!(files >= 20, "only {files} good keyset files read");
}

/// Tink's binary writer and encstore's agree byte for byte on a cleartext
/// keyset (both write the canonical protobuf encoding).
#[test]
fn binary_keysets_round_trip_byte_for_byte() {
    let v = load();
    for (name, ks) in v.manifest["keysets"].as_object().expect("keysets") {
        for f in ks["files"].as_array().expect("files") {
            if f["encrypted"].as_bool() == Some(true)
                || str_of(&f["format"]) != "binary"
                || refused_by_provider(ks)
            {
                continue;
            }
            let bytes = std::fs::read(vectors_dir().join(str_of(&f["file"]))).expect("file");
            let keyset = Keyset::from_binary_insecure(&bytes).expect("good keyset");
            assert_eq!(
                hex::encode(&*keyset.to_binary_insecure()),
                hex::encode(&bytes),
                "{name}: encstore's binary differs from Tink's"
            );
        }
    }
}

#[test]
fn every_ciphertext_decrypts_or_fails_as_tink_says() {
    let v = load();
    // Every encoding of every keyset, as an AEAD.
    let mut aeads: HashMap<String, Vec<(String, encstore_tink::aead::KeysetAead)>> = HashMap::new();
    let keysets = v.manifest["keysets"].as_object().expect("keysets");
    for (name, ks) in keysets {
        if refused_by_provider(ks) {
            continue;
        }
        for f in ks["files"].as_array().expect("files") {
            let keyset = read_entry(&v, f).expect("good keyset");
            aeads
                .entry(name.clone())
                .or_default()
                .push((str_of(&f["file"]).to_owned(), keyset.aead().expect("aead")));
        }
    }
    let (mut ok, mut refused) = (0, 0);
    let (mut want_ok, mut want_refused) = (0, 0);
    for case in v.manifest["cases"].as_array().expect("cases") {
        let Some(files) = aeads.get(str_of(&case["keyset"])) else {
            // A keyset the provider refuses (checked elsewhere).
            assert!(refused_by_provider(&keysets[str_of(&case["keyset"])]));
            continue;
        };
        match str_of(&case["expect"]) {
            "ok" => want_ok += files.len(),
            _ => want_refused += files.len(),
        }
        let id = str_of(&case["id"]);
        let ct = hex_of(&case["ciphertext_hex"]);
        let pt = hex_of(&case["plaintext_hex"]);
        let ad = hex_of(&case["associated_data_hex"]);
        for (file, aead) in &aeads[str_of(&case["keyset"])] {
            let got = aead.decrypt(&ct, &ad);
            let owned = aead.decrypt_owned(ct.clone(), &ad);
            assert_eq!(
                got, owned,
                "{id} with {file}: decrypt and decrypt_owned disagree"
            );
            match str_of(&case["expect"]) {
                "ok" => {
                    let got = got.unwrap_or_else(|e| {
                        panic!("{id} ({}) with {file}: {e}", str_of(&case["note"]))
                    });
                    assert!(got == pt, "{id} with {file}: wrong plaintext");
                    ok += 1;
                }
                "decryption_failed" => {
                    match got {
                        Err(AeadError::Authentication | AeadError::UnknownKeyId { .. }) => {}
                        other => panic!(
                            "{id} ({}) with {file}: expected a decryption failure, got {other:?}",
                            str_of(&case["note"])
                        ),
                    }
                    refused += 1;
                }
                other => panic!("{id}: unknown expectation {other}"),
            }
        }
    }
    assert_eq!((ok, refused), (want_ok, want_refused));
    if provider_util::provider().fips() {
        assert!(ok > 100 && refused > 10, "ok {ok}, refused {refused}");
    } else {
        assert!(ok > 1000 && refused > 50, "ok {ok}, refused {refused}");
    }
}

/// The error kinds about a key's data (not the keyset's structure).
const KEY_DATA_KINDS: [&str; 4] = [
    "wrong_key_size",
    "unsupported_version",
    "invalid_parameter",
    "malformed_key",
];

/// The typed error each kind in the manifest names.
fn matches_kind(kind: &str, err: &KeysetError) -> bool {
    use KeysetError as E;
    match kind {
        "no_primary" => matches!(err, E::NoPrimary),
        "primary_missing" => matches!(err, E::PrimaryMissing { .. }),
        "primary_not_enabled" => matches!(err, E::PrimaryNotEnabled { .. }),
        "duplicate_key_id" => matches!(err, E::DuplicateKeyId { .. }),
        "empty_keyset" => matches!(err, E::NoKeys),
        "unknown_status" => matches!(err, E::UnknownStatus { .. }),
        "unknown_prefix" => matches!(err, E::UnknownOutputPrefix { .. }),
        "malformed_json" => matches!(err, E::MalformedJson { .. }),
        "malformed_protobuf" => matches!(err, E::MalformedProtobuf { .. }),
        "keyset_decryption_failed" => matches!(err, E::Decryption),
        "unknown_type_url" => matches!(
            err,
            E::Key {
                source: KeyError::UnknownTypeUrl { .. },
                ..
            }
        ),
        "not_aead" => matches!(
            err,
            E::Key {
                source: KeyError::NotAead { .. },
                ..
            }
        ),
        "wrong_key_size" => matches!(
            err,
            E::Key {
                source: KeyError::WrongKeySize { .. },
                ..
            }
        ),
        "unsupported_version" => {
            matches!(
                err,
                E::Key {
                    source: KeyError::UnsupportedVersion { .. },
                    ..
                }
            )
        }
        "invalid_parameter" => {
            matches!(
                err,
                E::Key {
                    source: KeyError::InvalidParameter { .. },
                    ..
                }
            )
        }
        "malformed_key" => matches!(
            err,
            E::Key {
                source: KeyError::MalformedKey { .. },
                ..
            }
        ),
        other => panic!("manifest names an error kind this test does not know: {other}"),
    }
}

#[test]
fn every_bad_keyset_is_refused_with_its_typed_error() {
    let v = load();
    let mut failures = Vec::new();
    let bad = v.manifest["bad_keysets"].as_array().expect("bad_keysets");
    for b in bad {
        let id = str_of(&b["id"]);
        let kind = str_of(&b["expect"]);
        match read_entry(&v, b) {
            Ok(ks) => failures.push(format!("{id}: accepted ({ks:?}); expected {kind}")),
            // Under `fips`, a bad key of a type it does not approve is
            // refused for its type before its data is looked at.
            Err(e) if provider_util::is_fips_refusal(&e) && KEY_DATA_KINDS.contains(&kind) => {}
            Err(e) if matches_kind(kind, &e) => {
                // The message is one line and specific.
                let msg = e.to_string();
                assert!(!msg.contains('\n'), "{id}: multi-line message {msg:?}");
            }
            Err(e) => failures.push(format!("{id}: refused with {e:?} ({e}); expected {kind}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad keysets misjudged:\n{}",
        failures.len(),
        bad.len(),
        failures.join("\n")
    );
    assert!(bad.len() >= 40);
}

/// The `keysetInfo` Tink writes in an encrypted JSON keyset agrees with
/// what encstore decrypts.
#[test]
fn encrypted_json_keyset_info_matches() {
    let v = load();
    for (name, ks) in v.manifest["keysets"].as_object().expect("keysets") {
        for f in ks["files"].as_array().expect("files") {
            if f["encrypted"].as_bool() != Some(true)
                || str_of(&f["format"]) != "json"
                || refused_by_provider(ks)
            {
                continue;
            }
            let text =
                std::fs::read_to_string(vectors_dir().join(str_of(&f["file"]))).expect("file");
            let json: Value = serde_json::from_str(&text).expect("json");
            let info = &json["keysetInfo"];
            assert_eq!(info["primaryKeyId"], ks["primary_key_id"], "{name}");
            let keyset = read_entry(&v, f).expect("good");
            let ids: Vec<u64> = info["keyInfo"]
                .as_array()
                .expect("keyInfo")
                .iter()
                .map(|k| k["keyId"].as_u64().expect("keyId"))
                .collect();
            let want: Vec<u64> = keyset
                .info()
                .keys
                .iter()
                .map(|k| u64::from(k.key_id))
                .collect();
            assert_eq!(ids, want, "{name}");
        }
    }
}
