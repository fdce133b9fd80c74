//! The `encstore` keyset commands and `encrypt`/`decrypt`: success and
//! failure paths, run as a user runs them (assert_cmd).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use predicates::prelude::*;
use serde_json::Value;

use common::{Dir, es, fails, key_args, keyset, ok, run};

fn info(args: &[&str]) -> Value {
    let mut a = vec!["list-keyset", "--json"];
    a.extend_from_slice(args);
    serde_json::from_slice(&ok(&a)).expect("list-keyset --json prints JSON")
}

fn key_ids(v: &Value) -> Vec<u64> {
    v["keyInfo"]
        .as_array()
        .expect("keyInfo")
        .iter()
        .map(|k| k["keyId"].as_u64().expect("keyId"))
        .collect()
}

fn primary(v: &Value) -> u64 {
    v["primaryKeyId"].as_u64().expect("primaryKeyId")
}

fn status_of(v: &Value, id: u64) -> String {
    v["keyInfo"]
        .as_array()
        .expect("keyInfo")
        .iter()
        .find(|k| k["keyId"].as_u64() == Some(id))
        .map(|k| k["status"].as_str().expect("status").to_owned())
        .unwrap_or_else(|| "ABSENT".to_owned())
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn mode(_: &Path) -> u32 {
    0o600
}

/// A keyset with two keys: (path, primary, other).
fn two_key_keyset(d: &Dir) -> (String, u64, u64) {
    let k = keyset(d, "k.json");
    ok(&[
        "add-key",
        "--key-template",
        "AES128_GCM",
        "--in",
        &k,
        "--out",
        &k,
    ]);
    let v = info(&["--in", &k]);
    let p = primary(&v);
    let other = key_ids(&v)
        .into_iter()
        .find(|&i| i != p)
        .expect("second key");
    (k, p, other)
}

// ------------------------------------------------------------ templates

#[test]
fn list_key_templates_lists_tinkey_names() {
    let out = String::from_utf8(ok(&["list-key-templates"])).expect("utf8");
    for name in [
        "AES128_GCM",
        "AES256_GCM_RAW",
        "AES256_GCM_SIV",
        "AES128_CTR_HMAC_SHA256",
        "AES256_EAX",
        "CHACHA20_POLY1305",
        "XCHACHA20_POLY1305_RAW",
        "XAES_256_GCM_192_BIT_NONCE",
        "XAES_256_GCM_160_BIT_NONCE_NO_PREFIX",
    ] {
        assert!(out.lines().any(|l| l == name), "{name} missing from {out}");
    }
}

#[test]
fn every_listed_template_creates_a_working_keyset() {
    let d = Dir::new();
    let names = String::from_utf8(ok(&["list-key-templates"])).expect("utf8");
    fs::write(d.p("pt"), b"some data").expect("write");
    // Streaming AEAD templates: tests/cli_streaming.rs and, for encrypt
    // and decrypt with them, tests/cli_large.rs.
    let aead = |n: &&str| {
        encstore_tink::templates::by_name(n)
            .expect("listed")
            .primitive()
            == encstore_tink::PrimitiveKind::Aead
    };
    for name in names.lines().filter(aead) {
        let k = d.s(&format!("{name}.json"));
        ok(&["create-keyset", "--key-template", name, "--out", &k]);
        ok(&[
            "encrypt",
            "--keyset",
            &k,
            "--in",
            &d.s("pt"),
            "--out",
            &d.s("ct"),
        ]);
        let pt = ok(&["decrypt", "--keyset", &k, "--in", &d.s("ct")]);
        assert_eq!(pt, b"some data", "{name}");
    }
}

// ------------------------------------------------------- create-keyset

#[test]
fn create_keyset_json_and_binary_with_mode_0600() {
    let d = Dir::new();
    let j = d.p("k.json");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &d.s("k.json"),
    ]);
    assert_eq!(mode(&j), 0o600);
    let v: Value = serde_json::from_slice(&fs::read(&j).expect("read")).expect("Tink JSON keyset");
    assert_eq!(
        v["key"][0]["keyData"]["typeUrl"],
        "type.googleapis.com/google.crypto.tink.AesGcmKey"
    );
    assert_eq!(v["key"][0]["outputPrefixType"], "TINK");
    assert_eq!(v["key"][0]["keyId"], v["primaryKeyId"]);

    ok(&[
        "create-keyset",
        "--key-template",
        "AES128_GCM_RAW",
        "--out-format",
        "binary",
        "--out",
        &d.s("k.bin"),
    ]);
    assert_eq!(mode(&d.p("k.bin")), 0o600);
    let v = info(&["--in", &d.s("k.bin"), "--in-format", "binary"]);
    assert_eq!(v["keyInfo"][0]["outputPrefixType"], "RAW");
}

#[test]
fn create_keyset_to_stdout() {
    let out = ok(&["create-keyset", "--key-template", "XCHACHA20_POLY1305"]);
    let v: Value = serde_json::from_slice(&out).expect("JSON on stdout");
    assert_eq!(
        v["key"][0]["keyData"]["typeUrl"],
        "type.googleapis.com/google.crypto.tink.XChaCha20Poly1305Key"
    );
}

#[test]
fn create_keyset_unknown_template_fails_and_writes_nothing() {
    let d = Dir::new();
    fails(
        &[
            "create-keyset",
            "--key-template",
            "AES512_GCM",
            "--out",
            &d.s("k.json"),
        ],
        1,
        "unknown key template \"AES512_GCM\"",
    );
    assert!(!d.p("k.json").exists());
}

#[test]
fn missing_required_flag_is_a_one_line_usage_error() {
    fails(&["create-keyset"], 2, "--key-template");
    fails(
        &[
            "create-keyset",
            "--key-template",
            "AES256_GCM",
            "--out-format",
            "yaml",
        ],
        2,
        "yaml",
    );
}

// ------------------------------------------------- add, rotate, promote

#[test]
fn add_key_adds_without_promoting_and_out_may_be_in() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let before = primary(&info(&["--in", &k]));
    es().args([
        "add-key",
        "--key-template",
        "AES256_GCM_SIV",
        "--in",
        &k,
        "--out",
        &k,
    ])
    .assert()
    .success()
    .stderr(predicate::str::contains("promote-key --key-id"));
    let v = info(&["--in", &k]);
    assert_eq!(key_ids(&v).len(), 2);
    assert_eq!(primary(&v), before, "add-key must not change the primary");
    assert_eq!(mode(&d.p("k.json")), 0o600);
    // No temp files left behind.
    let names: Vec<_> = fs::read_dir(d.0.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn add_key_unknown_template_leaves_the_keyset_alone() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let before = fs::read(d.p("k.json")).expect("read");
    fails(
        &["add-key", "--key-template", "NOPE", "--in", &k, "--out", &k],
        1,
        "unknown key template",
    );
    assert_eq!(fs::read(d.p("k.json")).expect("read"), before);
}

#[test]
fn rotate_keyset_promotes_and_warns_about_the_rollout() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let old = primary(&info(&["--in", &k]));
    let out = es()
        .args([
            "rotate-keyset",
            "--key-template",
            "AES128_GCM",
            "--in",
            &k,
            "--out",
            &k,
        ])
        .output()
        .expect("run");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "warning",
        "every reader",
        "add-key",
        "promote-key",
        "re-encrypt",
        "disable-key",
    ] {
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "{needle} not in {err}"
        );
    }
    let v = info(&["--in", &k]);
    assert_ne!(primary(&v), old);
    assert_eq!(key_ids(&v).len(), 2);
    assert!(
        err.contains(&format!("--key-id {old}")),
        "old primary named: {err}"
    );
}

#[test]
fn promote_key_and_its_failures() {
    let d = Dir::new();
    let (k, p, other) = two_key_keyset(&d);
    ok(&key_args("promote-key", &other.to_string(), &k));
    assert_eq!(primary(&info(&["--in", &k])), other);
    // Unknown ID, non-numeric ID, negative ID, too large.
    fails(
        &["promote-key", "--key-id", "12345", "--in", &k],
        1,
        "key 12345 is not in the keyset",
    );
    fails(
        &["promote-key", "--key-id", "abc", "--in", &k],
        2,
        "--key-id",
    );
    fails(&["promote-key", "--key-id", "-1", "--in", &k], 2, "");
    fails(
        &["promote-key", "--key-id", "4294967296", "--in", &k],
        2,
        "--key-id",
    );
    // A disabled key cannot be promoted.
    ok(&key_args("disable-key", &p.to_string(), &k));
    fails(
        &key_args("promote-key", &p.to_string(), &k),
        1,
        "not ENABLED",
    );
}

// ------------------------------------- disable, enable, destroy, delete

#[test]
fn primary_cannot_be_disabled_destroyed_or_deleted() {
    let d = Dir::new();
    let (k, p, _) = two_key_keyset(&d);
    let before = fs::read(&k).expect("read");
    for cmd in ["disable-key", "destroy-key", "delete-key"] {
        fails(
            &key_args(cmd, &p.to_string(), &k),
            1,
            "it is the primary key",
        );
        assert_eq!(
            fs::read(&k).expect("read"),
            before,
            "{cmd} changed the file"
        );
    }
}

#[test]
fn disable_enable_destroy_delete_with_store_warnings() {
    let d = Dir::new();
    let (k, _, other) = two_key_keyset(&d);
    let id = other.to_string();
    for (cmd, status) in [
        ("disable-key", "DISABLED"),
        ("enable-key", "ENABLED"),
        ("destroy-key", "DESTROYED"),
        ("delete-key", "ABSENT"),
    ] {
        let out = es().args(key_args(cmd, &id, &k)).output().expect("run");
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        if cmd != "enable-key" {
            assert!(
                err.contains("warning") && err.contains("store cannot be checked"),
                "{cmd}: {err}"
            );
        }
        assert_eq!(status_of(&info(&["--in", &k]), other), status, "{cmd}");
    }
    fails(
        &["delete-key", "--key-id", &id, "--in", &k],
        1,
        "not in the keyset",
    );
}

#[test]
fn destroyed_key_cannot_be_enabled() {
    let d = Dir::new();
    let (k, _, other) = two_key_keyset(&d);
    ok(&key_args("destroy-key", &other.to_string(), &k));
    fails(
        &["enable-key", "--key-id", &other.to_string(), "--in", &k],
        1,
        "DESTROYED",
    );
}

// ---------------------------------------------------------- list-keyset

#[test]
fn list_keyset_shows_info_never_key_material() {
    let d = Dir::new();
    let (k, p, other) = two_key_keyset(&d);
    let raw: Value = serde_json::from_slice(&fs::read(&k).expect("read")).expect("json");
    let secrets: Vec<String> = raw["key"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["keyData"]["value"].as_str().expect("value").to_owned())
        .collect();
    let table = String::from_utf8(ok(&["list-keyset", "--in", &k])).expect("utf8");
    let json = String::from_utf8(ok(&["list-keyset", "--json", "--in", &k])).expect("utf8");
    for s in &secrets {
        assert!(
            !table.contains(s.as_str()) && !json.contains(s.as_str()),
            "key material printed"
        );
    }
    assert!(table.starts_with("PRIMARY"), "{table}");
    let primary_line = table
        .lines()
        .find(|l| l.contains(&p.to_string()))
        .expect("primary row");
    assert!(primary_line.starts_with('*'), "{primary_line}");
    assert!(primary_line.contains("ENABLED") && primary_line.contains("TINK"));
    assert!(primary_line.contains("AesGcmKey") && primary_line.contains("AES-256-GCM"));
    let other_line = table
        .lines()
        .find(|l| l.contains(&other.to_string()))
        .expect("other row");
    assert!(!other_line.starts_with('*'));
    let v: Value = serde_json::from_str(&json).expect("json");
    assert_eq!(primary(&v), p);
    assert_eq!(
        v["keyInfo"][0]["typeUrl"],
        "type.googleapis.com/google.crypto.tink.AesGcmKey"
    );
}

#[test]
fn list_keyset_reads_stdin() {
    let d = Dir::new();
    let (k, p, _) = two_key_keyset(&d);
    let out = es()
        .args(["list-keyset", "--json"])
        .write_stdin(fs::read(&k).expect("read"))
        .output()
        .expect("run");
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(primary(&v), p);
}

#[test]
fn malformed_keyset_files_are_refused_with_one_line() {
    let d = Dir::new();
    fs::write(d.p("bad.json"), b"{\"primaryKeyId\": 1, \"key\": [").expect("write");
    fails(
        &["list-keyset", "--in", &d.s("bad.json")],
        1,
        "malformed JSON keyset",
    );
    fs::write(d.p("bad.bin"), [0xffu8, 0xff, 0xff, 0x0a, 0x05]).expect("write");
    fails(
        &[
            "list-keyset",
            "--in",
            &d.s("bad.bin"),
            "--in-format",
            "binary",
        ],
        1,
        "not a valid keyset",
    );
    fails(
        &["list-keyset", "--in", &d.s("missing.json")],
        1,
        "cannot read keyset",
    );
    // Format mismatch gets a hint.
    let (k, _, _) = two_key_keyset(&d);
    fails(
        &["list-keyset", "--in", &k, "--in-format", "binary"],
        1,
        "--in-format json",
    );
    // A keyset with no primary (valid JSON, invalid keyset).
    let mut v: Value = serde_json::from_slice(&fs::read(&k).expect("read")).expect("json");
    v["primaryKeyId"] = Value::from(0);
    fs::write(d.p("noprimary.json"), v.to_string()).expect("write");
    fails(
        &["list-keyset", "--in", &d.s("noprimary.json")],
        1,
        "no primary",
    );
}

// ------------------------------------------------- master keys, convert

fn master(d: &Dir) -> String {
    keyset(d, "master.json")
}

#[test]
fn encrypted_keysets_round_trip_with_master_and_ad() {
    let d = Dir::new();
    let m = master(&d);
    for fmt in ["json", "binary"] {
        let k = d.s(&format!("enc.{fmt}"));
        ok(&[
            "create-keyset",
            "--key-template",
            "AES256_GCM",
            "--master-keyset",
            &m,
            "--keyset-associated-data",
            "fleet-a",
            "--out-format",
            fmt,
            "--out",
            &k,
        ]);
        assert_eq!(mode(Path::new(&k)), 0o600);
        let bytes = fs::read(&k).expect("read");
        if fmt == "json" {
            let v: Value = serde_json::from_slice(&bytes).expect("json");
            assert!(v["encryptedKeyset"].is_string(), "an EncryptedKeyset");
            assert!(v["keysetInfo"]["primaryKeyId"].is_u64(), "with keysetInfo");
        }
        let common = [
            "--master-keyset",
            m.as_str(),
            "--in-format",
            fmt,
            "--in",
            k.as_str(),
        ];
        // Right master and AD (text and the same bytes in hex).
        let mut a = vec!["--keyset-associated-data", "fleet-a"];
        a.extend_from_slice(&common);
        let v = info(&a);
        let mut a = vec!["--keyset-associated-data-hex", "666c6565742d61"];
        a.extend_from_slice(&common);
        assert_eq!(info(&a), v);
        // add-key in place keeps it encrypted.
        let mut a = vec![
            "add-key",
            "--key-template",
            "AES128_GCM",
            "--out-format",
            fmt,
            "--out",
            k.as_str(),
        ];
        a.extend_from_slice(&["--keyset-associated-data", "fleet-a"]);
        a.extend_from_slice(&common);
        ok(&a);
        let mut a = vec!["--keyset-associated-data", "fleet-a"];
        a.extend_from_slice(&common);
        assert_eq!(key_ids(&info(&a)).len(), 2);
        // Wrong AD, missing AD, wrong master, no master.
        let mut a = vec!["list-keyset", "--keyset-associated-data", "fleet-b"];
        a.extend_from_slice(&common);
        fails(&a, 1, "does not decrypt with master keyset");
        let mut a = vec!["list-keyset"];
        a.extend_from_slice(&common);
        fails(&a, 1, "does not decrypt with master keyset");
        // One per format: create-keyset never overwrites an existing file.
        let wrong = d.s(&format!("wrong-master-{fmt}.json"));
        ok(&[
            "create-keyset",
            "--key-template",
            "AES256_GCM",
            "--out",
            &wrong,
        ]);
        fails(
            &[
                "list-keyset",
                "--master-keyset",
                &wrong,
                "--keyset-associated-data",
                "fleet-a",
                "--in-format",
                fmt,
                "--in",
                &k,
            ],
            1,
            "does not decrypt with master keyset",
        );
        // Without its master key, list-keyset shows the unauthenticated
        // keysetInfo, marked as such; commands that need the keys refuse.
        let out = run(&["list-keyset", "--in-format", fmt, "--in", &k, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["unauthenticated"], true, "{v}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("NOT authenticated"));
        fails(
            &[
                "add-key",
                "--key-template",
                "AES128_GCM",
                "--in-format",
                fmt,
                "--in",
                &k,
            ],
            1,
            "is an encrypted keyset",
        );
    }
}

#[test]
fn cleartext_keyset_with_a_master_key_is_refused() {
    let d = Dir::new();
    let m = master(&d);
    let (k, _, _) = two_key_keyset(&d);
    fails(
        &["list-keyset", "--master-keyset", &m, "--in", &k],
        1,
        "is a cleartext keyset",
    );
}

#[test]
fn master_key_uri_errors_are_one_line() {
    let d = Dir::new();
    let (k, _, _) = two_key_keyset(&d);
    // A pkcs11: URI without a module (and none in the environment).
    let out = es()
        .args([
            "list-keyset",
            "--master-key-uri",
            "pkcs11:token=x;object=kek",
            "--in",
            &k,
        ])
        .env_remove("ENCSTORE_PKCS11_MODULE")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no PKCS#11 module given"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    fails(
        &[
            "convert-keyset",
            "--new-master-key-uri",
            "gcp-kms://x",
            "--in",
            &k,
            "--out",
            &d.s("o"),
        ],
        1,
        "unsupported master key URI scheme",
    );
    assert!(!d.p("o").exists());
    fails(
        &[
            "list-keyset",
            "--master-key-uri",
            "pkcs11:x",
            "--master-keyset",
            &k,
            "--in",
            &k,
        ],
        2,
        "cannot be used with",
    );
}

#[test]
fn keyset_ad_without_master_is_refused() {
    let d = Dir::new();
    let (k, _, _) = two_key_keyset(&d);
    fails(
        &["list-keyset", "--keyset-associated-data", "x", "--in", &k],
        1,
        "no master key",
    );
    let m = master(&d);
    fails(
        &[
            "list-keyset",
            "--master-keyset",
            &m,
            "--keyset-associated-data-hex",
            "zz",
            "--in",
            &k,
        ],
        1,
        "not valid hex",
    );
}

#[test]
fn convert_keyset_formats_and_master_keys() {
    let d = Dir::new();
    let m = master(&d);
    let m2 = d.s("master2.bin");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES128_GCM",
        "--out-format",
        "binary",
        "--out",
        &m2,
    ]);
    let (k, _, _) = two_key_keyset(&d);
    let v = info(&["--in", &k]);
    // json -> binary -> json.
    ok(&[
        "convert-keyset",
        "--in",
        &k,
        "--out-format",
        "binary",
        "--out",
        &d.s("k.bin"),
    ]);
    assert_eq!(info(&["--in", &d.s("k.bin"), "--in-format", "binary"]), v);
    ok(&[
        "convert-keyset",
        "--in",
        &d.s("k.bin"),
        "--in-format",
        "binary",
        "--out",
        &d.s("k2.json"),
    ]);
    assert_eq!(
        fs::read(&k).expect("read"),
        fs::read(d.p("k2.json")).expect("read"),
        "stable JSON"
    );
    // cleartext -> encrypted (with AD) -> re-encrypted under master2 -> cleartext.
    ok(&[
        "convert-keyset",
        "--in",
        &k,
        "--new-master-keyset",
        &m,
        "--new-keyset-associated-data",
        "ad1",
        "--out",
        &d.s("e1.json"),
    ]);
    ok(&[
        "convert-keyset",
        "--in",
        &d.s("e1.json"),
        "--master-keyset",
        &m,
        "--keyset-associated-data",
        "ad1",
        "--new-master-keyset",
        &m2,
        "--out",
        &d.s("e2.json"),
    ]);
    // The AD carries over by default.
    assert_eq!(
        info(&[
            "--in",
            &d.s("e2.json"),
            "--master-keyset",
            &m2,
            "--keyset-associated-data",
            "ad1"
        ]),
        v
    );
    es().args([
        "convert-keyset",
        "--in",
        &d.s("e2.json"),
        "--master-keyset",
        &m2,
        "--keyset-associated-data",
        "ad1",
        "--out",
        &d.s("clear.json"),
    ])
    .assert()
    .success()
    .stderr(predicate::str::contains("cleartext"));
    assert_eq!(
        fs::read(&k).expect("read"),
        fs::read(d.p("clear.json")).expect("read")
    );
    // Converting in place.
    ok(&[
        "convert-keyset",
        "--in",
        &k,
        "--new-master-keyset",
        &m,
        "--out",
        &k,
    ]);
    assert_eq!(info(&["--in", &k, "--master-keyset", &m]), v);
    // A master keyset that is itself encrypted is refused.
    fails(
        &[
            "list-keyset",
            "--in",
            &k,
            "--master-keyset",
            &d.s("e1.json"),
        ],
        1,
        "is itself encrypted",
    );
}

// ----------------------------------------------------- encrypt/decrypt

#[test]
fn encrypt_decrypt_round_trip_files_and_pipes() {
    let d = Dir::new();
    let (k, _, _) = two_key_keyset(&d);
    let pt: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
    fs::write(d.p("pt"), &pt).expect("write");
    ok(&[
        "encrypt",
        "--keyset",
        &k,
        "--associated-data",
        "name/1",
        "--in",
        &d.s("pt"),
        "--out",
        &d.s("ct"),
    ]);
    assert_eq!(mode(&d.p("ct")), 0o600);
    ok(&[
        "decrypt",
        "--keyset",
        &k,
        "--associated-data-hex",
        "6e616d652f31",
        "--in",
        &d.s("ct"),
        "--out",
        &d.s("back"),
    ]);
    assert_eq!(fs::read(d.p("back")).expect("read"), pt);
    assert_eq!(mode(&d.p("back")), 0o600);
    // stdin/stdout.
    let out = es()
        .args(["encrypt", "--keyset", &k])
        .write_stdin(b"piped".to_vec())
        .output()
        .expect("run");
    assert!(out.status.success());
    let back = es()
        .args(["decrypt", "--keyset", &k])
        .write_stdin(out.stdout)
        .output()
        .expect("run");
    assert!(back.status.success());
    assert_eq!(back.stdout, b"piped");
}

#[test]
fn failed_decrypt_writes_nothing() {
    let d = Dir::new();
    let (k, _, _) = two_key_keyset(&d);
    fs::write(d.p("pt"), b"secret").expect("write");
    ok(&[
        "encrypt",
        "--keyset",
        &k,
        "--associated-data",
        "a",
        "--in",
        &d.s("pt"),
        "--out",
        &d.s("ct"),
    ]);
    // Wrong AD: no output file created, nothing on stdout.
    fails(
        &[
            "decrypt",
            "--keyset",
            &k,
            "--associated-data",
            "b",
            "--in",
            &d.s("ct"),
            "--out",
            &d.s("out"),
        ],
        1,
        "cannot decrypt",
    );
    assert!(!d.p("out").exists());
    let out = es()
        .args([
            "decrypt",
            "--keyset",
            &k,
            "--associated-data",
            "b",
            "--in",
            &d.s("ct"),
        ])
        .output()
        .expect("run");
    assert!(!out.status.success() && out.stdout.is_empty());
    // Tampered: an existing --out file is left untouched.
    let mut ct = fs::read(d.p("ct")).expect("read");
    let last = ct.len() - 1;
    ct[last] ^= 1;
    fs::write(d.p("bad"), &ct).expect("write");
    fs::write(d.p("out"), b"previous").expect("write");
    fails(
        &[
            "decrypt",
            "--keyset",
            &k,
            "--associated-data",
            "a",
            "--in",
            &d.s("bad"),
            "--out",
            &d.s("out"),
        ],
        1,
        "decryption failed",
    );
    assert_eq!(fs::read(d.p("out")).expect("read"), b"previous");
    // Truncated, and a key not in the keyset.
    fs::write(d.p("short"), &ct[..3]).expect("write");
    fails(
        &[
            "decrypt",
            "--keyset",
            &k,
            "--in",
            &d.s("short"),
            "--out",
            &d.s("out"),
        ],
        1,
        "cannot decrypt",
    );
    let other = d.s("other.json");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &other,
    ]);
    fails(
        &[
            "decrypt",
            "--keyset",
            &other,
            "--associated-data",
            "a",
            "--in",
            &d.s("ct"),
            "--out",
            &d.s("out"),
        ],
        1,
        "cannot decrypt",
    );
    assert_eq!(fs::read(d.p("out")).expect("read"), b"previous");
    let names: Vec<_> = fs::read_dir(d.0.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        !names.iter().any(|n| n.to_string_lossy().ends_with(".tmp")),
        "{names:?}"
    );
}

#[test]
fn encrypt_decrypt_with_an_encrypted_keyset() {
    let d = Dir::new();
    let m = master(&d);
    let k = d.s("enc.bin");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES128_GCM",
        "--master-keyset",
        &m,
        "--keyset-associated-data",
        "kad",
        "--out-format",
        "binary",
        "--out",
        &k,
    ]);
    fs::write(d.p("pt"), b"x").expect("write");
    let flags = [
        "--keyset",
        k.as_str(),
        "--keyset-format",
        "binary",
        "--master-keyset",
        m.as_str(),
        "--keyset-associated-data",
        "kad",
    ];
    let (pt, ct) = (d.s("pt"), d.s("ct"));
    let mut a = vec!["encrypt", "--in", pt.as_str(), "--out", ct.as_str()];
    a.extend_from_slice(&flags);
    ok(&a);
    let mut a = vec!["decrypt", "--in", ct.as_str()];
    a.extend_from_slice(&flags);
    assert_eq!(ok(&a), b"x");
    // Wrong keyset AD on decrypt: refused, nothing written.
    fails(
        &[
            "decrypt",
            "--keyset",
            &k,
            "--keyset-format",
            "binary",
            "--master-keyset",
            &m,
            "--keyset-associated-data",
            "other",
            "--in",
            &d.s("ct"),
            "--out",
            &d.s("out"),
        ],
        1,
        "does not decrypt with master keyset",
    );
    assert!(!d.p("out").exists());
}

#[test]
fn bad_associated_data_hex_is_refused() {
    let d = Dir::new();
    let (k, _, _) = two_key_keyset(&d);
    fs::write(d.p("pt"), b"x").expect("write");
    fails(
        &[
            "encrypt",
            "--keyset",
            &k,
            "--associated-data-hex",
            "abc",
            "--in",
            &d.s("pt"),
            "--out",
            &d.s("ct"),
        ],
        1,
        "--associated-data-hex is not valid hex",
    );
    assert!(!d.p("ct").exists());
    fails(
        &[
            "encrypt",
            "--keyset",
            &k,
            "--associated-data",
            "a",
            "--associated-data-hex",
            "00",
            "--in",
            &d.s("pt"),
        ],
        2,
        "cannot be used with",
    );
}

/// The CLI decrypts ciphertexts that Google's Tink wrote, with a keyset
/// Tink encrypted (from the committed interop vectors).
#[test]
fn decrypts_what_python_tink_wrote() {
    let vectors = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/vectors");
    let manifest: Value =
        serde_json::from_slice(&fs::read(vectors.join("manifest.json")).expect("manifest"))
            .expect("json");
    let ks = &manifest["keysets"]["mixed_all_types"];
    let file = ks["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| {
            f["file"]
                .as_str()
                .is_some_and(|s| s.ends_with(".enc-ad.bin"))
        })
        .expect("encrypted binary file");
    let master = vectors.join(
        manifest["masters"]["aes256_gcm"]["file"]
            .as_str()
            .expect("master"),
    );
    let d = Dir::new();
    let mut n = 0;
    for case in manifest["cases"].as_array().expect("cases") {
        if case["keyset"] != "mixed_all_types" || case["expect"] != "ok" || n >= 8 {
            continue;
        }
        n += 1;
        fs::write(
            d.p("ct"),
            hex::decode(case["ciphertext_hex"].as_str().expect("hex")).expect("hex"),
        )
        .expect("write");
        let out = ok(&[
            "decrypt",
            "--keyset",
            vectors
                .join(file["file"].as_str().expect("file"))
                .to_str()
                .expect("utf8"),
            "--keyset-format",
            "binary",
            "--master-keyset",
            master.to_str().expect("utf8"),
            "--keyset-associated-data-hex",
            file["keyset_associated_data_hex"].as_str().expect("ad"),
            "--associated-data-hex",
            case["associated_data_hex"].as_str().expect("ad"),
            "--in",
            &d.s("ct"),
        ]);
        assert_eq!(
            hex::encode(out),
            case["plaintext_hex"].as_str().expect("pt")
        );
    }
    assert_eq!(n, 8);
}

/// `--policy` refuses templates outside it when keys are created or
/// rotated, and keysets outside it at encryption; nothing is written.
#[test]
fn policy_refuses_templates_and_keysets_outside_it() {
    let d = Dir::new();
    let k = d.s("k.json");
    fails(
        &[
            "create-keyset",
            "--key-template",
            "CHACHA20_POLY1305",
            "--policy",
            "fips",
            "--out",
            &k,
        ],
        1,
        "not allowed by policy \"fips\"",
    );
    assert!(!d.p("k.json").exists(), "nothing written");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--policy",
        "fips",
        "--out",
        &k,
    ]);
    let before = std::fs::read(&k).unwrap();
    for cmd in ["add-key", "rotate-keyset"] {
        let err = fails(
            &[
                cmd,
                "--key-template",
                "XCHACHA20_POLY1305",
                "--policy",
                "fips",
                "--in",
                &k,
                "--out",
                &k,
            ],
            1,
            "XChaCha20Poly1305Key",
        );
        assert!(err.contains("fips"), "{err}");
        assert_eq!(
            std::fs::read(&k).unwrap(),
            before,
            "{cmd} changed the keyset"
        );
    }
    ok(&[
        "add-key",
        "--key-template",
        "AES128_GCM",
        "--policy",
        "fips",
        "--in",
        &k,
        "--out",
        &k,
    ]);
    // A keyset with a key outside the policy is refused at encryption.
    let chacha = d.s("c.json");
    ok(&[
        "create-keyset",
        "--key-template",
        "CHACHA20_POLY1305",
        "--out",
        &chacha,
    ]);
    let input = d.p("pt");
    std::fs::write(&input, b"x").unwrap();
    let out = d.s("ct");
    fails(
        &[
            "encrypt",
            "--keyset",
            &chacha,
            "--policy",
            "fips",
            "--in",
            input.to_str().unwrap(),
            "--out",
            &out,
        ],
        1,
        "refused by policy",
    );
    assert!(!d.p("ct").exists());
    ok(&[
        "encrypt",
        "--keyset",
        &k,
        "--policy",
        "fips",
        "--in",
        input.to_str().unwrap(),
        "--out",
        &out,
    ]);
    fails(
        &[
            "create-keyset",
            "--key-template",
            "AES256_GCM",
            "--policy",
            "nope",
            "--out",
            &d.s("n.json"),
        ],
        1,
        "unknown policy preset",
    );
}
