//! RAW keys (output prefix RAW) end to end: the census attributes
//! prefix-less objects to the RAW key that decrypts them, the store check of
//! disable/destroy/delete refuses a RAW key that still has objects, status
//! and rewrap treat objects under a RAW primary as current, and migration
//! mode never takes a prefix-less object for plaintext while the keyset
//! holds a RAW key.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::Value;

/// `encstore` with `ENCSTORE_KEYSET` and `ENCSTORE_STORE` set, as in the
/// issue's reproduction.
fn es_env(ks: &str, st: &str) -> assert_cmd::Command {
    let mut c = es();
    c.env("ENCSTORE_KEYSET", ks).env("ENCSTORE_STORE", st);
    c
}

fn ok_env(ks: &str, st: &str, args: &[&str]) -> Vec<u8> {
    let out = es_env(ks, st).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "encstore {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn other_key(k: &str, not: u32) -> u32 {
    read_keyset(k)
        .info()
        .keys
        .iter()
        .map(|k| k.key_id)
        .find(|id| *id != not)
        .unwrap()
}

/// The row of `table` that starts with `first`, split on whitespace.
fn row(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.starts_with(first))
        .unwrap_or_else(|| panic!("no row {first:?}: {table}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The store's objects (not its lock files), with their bytes.
fn objects(d: &Dir) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    snapshot_files(&d.p("store"))
        .into_iter()
        .filter(|(p, _)| !p.to_string_lossy().contains("/.encstore-locks/"))
        .collect()
}

fn objects_of(v: &Value, id: u32) -> u64 {
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"].as_u64() == Some(u64::from(id)))
        .unwrap_or_else(|| panic!("no key {id} in {v}"))["objects"]
        .as_u64()
        .unwrap()
}

/// The reproduction, step by step, with the environment variables
/// it sets. It must end in a refusal at destroy-key with nothing lost.
#[test]
fn raw_old_key_reproduction_refuses_destroy_and_loses_nothing() {
    let d = Dir::new();
    let ks = d.s("ks.json");
    let st = d.s("store");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM_RAW",
        "--out",
        &ks,
    ]);
    for i in 1..=20 {
        let out = es_env(&ks, &st)
            .args(["store", "put", &format!("obj/{i}")])
            .write_stdin(format!("secret {i}\n"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let old = primary_of(&ks);
    ok_env(
        &ks,
        &st,
        &[
            "add-key",
            "--key-template",
            "AES256_GCM",
            "--in",
            &ks,
            "--out",
            &ks,
        ],
    );
    let new = other_key(&ks, old);
    ok_env(
        &ks,
        &st,
        &[
            "promote-key",
            "--key-id",
            &new.to_string(),
            "--in",
            &ks,
            "--out",
            &ks,
        ],
    );
    let before = std::fs::read(&ks).unwrap();
    let args = [
        "destroy-key",
        "--key-id",
        &old.to_string(),
        "--in",
        &ks,
        "--out",
        &ks,
        "--store",
        &st,
    ];
    let out = es_env(&ks, &st).args(args).output().unwrap();
    let err = check_fails(&args, &out, 1, "20 objects are");
    assert!(
        err.contains(&format!("refusing to destroy key {old}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("encstore store rewrap --store {st} --keyset {ks}")),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&ks).unwrap(),
        before,
        "destroy-key changed the keyset"
    );

    // Nothing is lost.
    for i in 1..=20 {
        let v = ok_env(&ks, &st, &["store", "get", &format!("obj/{i}")]);
        assert_eq!(v, format!("secret {i}\n").as_bytes());
    }

    // status shows the 20 under the RAW key by its ID, none as plaintext.
    let v: Value =
        serde_json::from_slice(&ok_env(&ks, &st, &["store", "status", "--json"])).unwrap();
    assert_eq!(v["total"], 20, "{v}");
    assert_eq!(v["by_key_id"][old.to_string()], 20, "{v}");
    assert_eq!(objects_of(&v, old), 20, "{v}");
    assert_eq!(v["plaintext"], 0, "{v}");
    assert_eq!(v["raw"], 20, "{v}");
    assert_eq!(v["not_under_primary"], 20, "{v}");
    let table = String::from_utf8(ok_env(&ks, &st, &["store", "status"])).unwrap();
    assert_eq!(
        row(&table, &old.to_string()),
        [old.to_string(), "ENABLED".into(), "20".into()],
        "{table}"
    );
    assert!(!table.contains("plaintext"), "{table}");
    assert!(table.contains("encstore store rewrap"), "{table}");

    // The dry run would re-encrypt them as what they are: under the RAW key.
    let dry = String::from_utf8(ok_env(
        &ks,
        &st,
        &["store", "rewrap", "--allow-plaintext", "--dry-run"],
    ))
    .unwrap();
    assert!(dry.contains("would re-encrypt 20"), "{dry}");
    assert!(dry.contains(&format!("20 under key {old}")), "{dry}");
    assert!(!dry.contains("plaintext"), "{dry}");

    // The safe path: rewrap, then destroy passes.
    ok_env(&ks, &st, &["store", "rewrap"]);
    let out = es_env(&ks, &st).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 1..=20 {
        let v = ok_env(&ks, &st, &["store", "get", &format!("obj/{i}")]);
        assert_eq!(v, format!("secret {i}\n").as_bytes());
    }
}

/// A RAW keyset with `n` objects `o/I` = `value I` in `st`, then a TINK key
/// added and promoted: returns (raw key, new primary).
fn raw_store_then_rotate(d: &Dir, n: usize) -> (String, String, u32, u32) {
    let ks = d.s("ks.json");
    let st = d.s("store");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES128_GCM_RAW",
        "--out",
        &ks,
    ]);
    for i in 0..n {
        // Again until the object's first byte (its random nonce) is not
        // 0x00 or 0x01: once its RAW key is destroyed, a prefix-like head
        // is counted as an unknown key ID instead.
        loop {
            put(&st, &ks, &format!("o/{i}"), format!("value {i}").as_bytes());
            if std::fs::read(d.p(&format!("store/o/{i}"))).unwrap()[0] > 1 {
                break;
            }
        }
    }
    let old = primary_of(&ks);
    ok(&[
        "add-key",
        "--key-template",
        "AES256_GCM",
        "--in",
        &ks,
        "--out",
        &ks,
    ]);
    let new = other_key(&ks, old);
    ok(&key_args("promote-key", &new.to_string(), &ks));
    (ks, st, old, new)
}

fn retire(cmd: &str, id: u32, k: &str, st: &str, extra: &[&str]) -> std::process::Output {
    let id = id.to_string();
    let mut args = vec![cmd, "--key-id", &id, "--in", k, "--out", k, "--store", st];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn disable_destroy_delete_refuse_a_raw_key_with_objects() {
    let d = Dir::new();
    let (ks, st, old, _) = raw_store_then_rotate(&d, 5);
    for cmd in ["disable-key", "destroy-key", "delete-key"] {
        let before = std::fs::read(&ks).unwrap();
        let out = retire(cmd, old, &ks, &st, &[]);
        let err = check_fails(&[cmd], &out, 1, "5 objects are");
        assert!(err.contains("encstore store rewrap --store"), "{err}");
        assert_eq!(std::fs::read(&ks).unwrap(), before, "{cmd} wrote");
    }
    // Disabled with --force, the RAW key keeps its material: the census
    // still finds its objects, so destroy and delete still refuse.
    let out = retire("disable-key", old, &ks, &st, &["--force"]);
    assert!(out.status.success());
    let v = status_json(&st, &ks);
    assert_eq!(v["by_key_id"][old.to_string()], 5, "{v}");
    assert_eq!(objects_of(&v, old), 5);
    for cmd in ["destroy-key", "delete-key"] {
        let out = retire(cmd, old, &ks, &st, &[]);
        check_fails(&[cmd], &out, 1, "5 objects are");
    }
    // Re-enabled and rewrapped, the check passes.
    ok(&key_args("enable-key", &old.to_string(), &ks));
    ok(&rewrap_args(&st, &ks, &[]));
    let out = retire("destroy-key", old, &ks, &st, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..5 {
        assert_eq!(
            get(&st, &ks, &format!("o/{i}")),
            format!("value {i}").as_bytes()
        );
    }
}

#[test]
fn objects_under_a_raw_primary_are_current() {
    let d = Dir::new();
    let ks = d.s("ks.json");
    let st = d.s("store");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM_RAW",
        "--out",
        &ks,
    ]);
    for i in 0..30 {
        put(&st, &ks, &format!("o/{i}"), b"v");
    }
    let primary = primary_of(&ks);
    let v = status_json(&st, &ks);
    assert_eq!(v["by_key_id"][primary.to_string()], 30, "{v}");
    assert_eq!(v["not_under_primary"], 0, "{v}");
    assert_eq!(v["plaintext"], 0, "{v}");
    let table =
        String::from_utf8(ok(&["store", "status", "--store", &st, "--keyset", &ks])).unwrap();
    assert!(!table.contains("rewrap"), "{table}");
    assert!(
        table.contains(&format!(
            "30 objects; 0 not under the primary key {primary}"
        )),
        "{table}"
    );
    let dry = String::from_utf8(ok(&rewrap_args(&st, &ks, &["--dry-run"]))).unwrap();
    assert!(dry.contains("would re-encrypt 0"), "{dry}");
    let before = objects(&d);
    let s: Value = serde_json::from_slice(&ok(&rewrap_args(&st, &ks, &["--json"]))).unwrap();
    assert_eq!(s["rewrapped"], 0, "{s}");
    assert_eq!(s["already_current"], 30, "{s}");
    assert_eq!(
        objects(&d),
        before,
        "rewrap rewrote objects under the RAW primary"
    );
}

/// After a forced destroy of the RAW key, its objects can no longer be
/// attributed: they are reported apart, never as plaintext, and migration
/// mode refuses to encrypt them.
#[test]
fn prefix_less_objects_are_never_plaintext_while_a_raw_key_is_held() {
    let d = Dir::new();
    let (ks, st, old, new) = raw_store_then_rotate(&d, 6);
    let out = retire("destroy-key", old, &ks, &st, &["--force"]);
    assert!(out.status.success());
    let before = objects(&d);

    let v = status_json(&st, &ks);
    assert_eq!(v["plaintext"], 0, "{v}");
    assert_eq!(v["prefix_less_unattributed"], 6, "{v}");
    assert_eq!(v["total"], 6, "{v}");
    let table =
        String::from_utf8(ok(&["store", "status", "--store", &st, "--keyset", &ks])).unwrap();
    assert!(
        table.contains("prefix-less, no enabled RAW key decrypts it"),
        "{table}"
    );
    assert!(
        !table
            .lines()
            .any(|l| l.starts_with('-') && l.contains("plaintext")),
        "a plaintext row: {table}"
    );

    // Dry runs report them apart, and never as "would re-encrypt".
    for extra in [&["--dry-run"][..], &["--dry-run", "--allow-plaintext"][..]] {
        let dry = String::from_utf8(ok(&rewrap_args(&st, &ks, extra))).unwrap();
        assert!(dry.contains("would re-encrypt 0"), "{dry}");
        assert!(
            dry.contains("6 prefix-less, no enabled RAW key decrypts it"),
            "{dry}"
        );
        let mut json = extra.to_vec();
        json.push("--json");
        let v: Value = serde_json::from_slice(&ok(&rewrap_args(&st, &ks, &json))).unwrap();
        assert_eq!(v["would_rewrap"], 0, "{v}");
        assert_eq!(v["plaintext"], 0, "{v}");
        assert_eq!(v["prefix_less_unattributed"], 6, "{v}");
        assert_eq!(v["would_fail"], 6, "{v}");
    }

    // rewrap --allow-plaintext refuses to run.
    let args = rewrap_args(&st, &ks, &["--allow-plaintext"]);
    let err = fails(&args, 1, "--allow-plaintext");
    assert!(err.contains("RAW key"), "{err}");
    assert!(err.contains("6 objects"), "{err}");
    // Without it, each fails, reported apart.
    let args = rewrap_args(&st, &ks, &["--json"]);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(1));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["rewrapped"], 0, "{s}");
    assert_eq!(s["prefix_less_unattributed"], 6, "{s}");
    assert_eq!(s["failed"].as_array().unwrap().len(), 6, "{s}");
    assert!(
        s["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no enabled RAW key decrypts it"),
        "{s}"
    );

    // get --allow-plaintext does not hand out a ciphertext as a secret.
    let args = [
        "store",
        "get",
        "--store",
        &st,
        "--keyset",
        &ks,
        "--allow-plaintext",
        "o/1",
    ];
    let out = run(&args);
    let err = check_fails(&args, &out, 1, "RAW key");
    assert!(out.stdout.is_empty());
    assert!(err.contains("prefix"), "{err}");
    // verify --allow-plaintext counts no plaintext.
    let out = run(&[
        "store",
        "verify",
        "--store",
        &st,
        "--keyset",
        &ks,
        "--allow-plaintext",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plaintext"], 0, "{v}");
    assert_eq!(v["failed"].as_array().unwrap().len(), 6, "{v}");

    assert_eq!(objects(&d), before, "the store changed");
    let _ = new;
}

/// Migration mode with a keyset of TINK keys only: plaintext values whose
/// first byte is 0x00 or 0x01 (so they look like a Tink prefix naming a key
/// this keyset does not have) are still read and migrated.
#[test]
fn plaintext_starting_with_a_prefix_byte_is_migrated() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    put(&st, &k, "enc", b"encrypted");
    let a: &[u8] = b"\x01\x02\x03\x04\x05 binary plaintext from before";
    let b: &[u8] = b"\x00\x00\x00\x00\x07 another";
    let c: &[u8] = b"\x01";
    std::fs::write(d.p("store/a"), a).unwrap();
    std::fs::write(d.p("store/b"), b).unwrap();
    std::fs::write(d.p("store/c"), c).unwrap();
    for (key, want) in [("a", a), ("b", b), ("c", c)] {
        let got = ok(&[
            "store",
            "get",
            "--store",
            &st,
            "--keyset",
            &k,
            "--allow-plaintext",
            key,
        ]);
        assert_eq!(got, want, "{key}");
    }
    let v: Value = serde_json::from_slice(&ok(&rewrap_args(
        &st,
        &k,
        &["--dry-run", "--allow-plaintext", "--json"],
    )))
    .unwrap();
    assert_eq!(v["would_rewrap"], 3, "{v}");
    let s: Value =
        serde_json::from_slice(&ok(&rewrap_args(&st, &k, &["--allow-plaintext", "--json"])))
            .unwrap();
    assert_eq!(s["rewrapped"], 3, "{s}");
    assert_eq!(s["failed"].as_array().unwrap().len(), 0, "{s}");
    for (key, want) in [("a", a), ("b", b), ("c", c), ("enc", &b"encrypted"[..])] {
        assert_eq!(get(&st, &k, key), want, "{key}");
    }
    let v = status_json(&st, &k);
    assert_eq!(v["not_under_primary"], 0, "{v}");
}
