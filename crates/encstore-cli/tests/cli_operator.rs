//! The tool as an operator meets it: messages that say what to do, the
//! library's warnings on stderr, consistent JSON, progress and Ctrl-C, and
//! (as root) the rotation recipe on a service user's files leaving every
//! owner, group and mode as it was.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_of(args: &[&str]) -> Value {
    let out = run(args);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}{}", stdout_of(&out), stderr_of(&out)))
}

// ------------------------------------------------------------ usage errors

/// A usage error is one line that names the environment variables that can
/// stand in for the missing flags and points to the subcommand's own help.
#[test]
fn usage_errors_name_the_environment_and_the_subcommands_help() {
    let out = run(&["store", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr_of(&out),
        "encstore: error: the following required arguments were not provided: --store <LOCATION> --keyset <PATH> \
         (these may also come from the environment: --store from ENCSTORE_STORE, --keyset from ENCSTORE_KEYSET) \
         (see `encstore store status --help`)\n"
    );
    let err = fails(&["store", "ls"], 2, "--store from ENCSTORE_STORE");
    assert!(err.contains("(see `encstore store ls --help`)"), "{err}");
    assert!(!err.contains("ENCSTORE_KEYSET"), "{err}");
    // A flag without an environment variable: only the help.
    let err = fails(&["create-keyset"], 2, "--key-template");
    assert!(
        err.contains("(see `encstore create-keyset --help`)"),
        "{err}"
    );
    assert!(!err.contains("environment"), "{err}");
    // encrypt's --keyset has no environment variable.
    let err = fails(&["encrypt"], 2, "--keyset");
    assert!(!err.contains("ENCSTORE_KEYSET"), "{err}");
    // disable-key --store comes from ENCSTORE_STORE too; flags before
    // the subcommand's arguments do not confuse the lookup.
    let err = fails(&["store", "put", "--in", "/dev/null"], 2, "ENCSTORE_STORE");
    assert!(err.contains("(see `encstore store put --help`)"), "{err}");
    // No subcommand found: the top-level help.
    let err = fails(&["no-such-command"], 2, "no-such-command");
    assert!(err.contains("(see `encstore --help`)"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

// ------------------------------------------------------------ keyset files

#[test]
fn an_empty_keyset_file_says_it_is_empty() {
    let d = Dir::new();
    std::fs::write(d.p("empty.json"), b"").unwrap();
    std::fs::write(d.p("blank.json"), b" \n\t\n").unwrap();
    let e = d.s("empty.json");
    let b = d.s("blank.json");
    let st = d.s("store");
    let err = fails(&["list-keyset", "--in", &e], 1, "is empty (0 bytes)");
    assert!(err.contains(&format!("keyset {e} is empty")), "{err}");
    fails(
        &["list-keyset", "--in", &b],
        1,
        "is empty (only 4 whitespace bytes)",
    );
    fails(
        &[
            "add-key",
            "--key-template",
            "AES256_GCM",
            "--in",
            &e,
            "--out",
            &e,
        ],
        1,
        "is empty",
    );
    fails(&["encrypt", "--keyset", &e, "--in", &e], 1, "is empty");
    fails(
        &["store", "status", "--store", &st, "--keyset", &e],
        1,
        "is empty",
    );
    let err = fails(
        &["list-keyset", "--in", &b, "--master-keyset", &e],
        1,
        "is empty",
    );
    assert!(
        err.contains(&format!("master keyset {e} is empty")),
        "{err}"
    );
    // On stdin too.
    let out = es()
        .args(["list-keyset"])
        .write_stdin(Vec::new())
        .output()
        .unwrap();
    check_fails(&["list-keyset"], &out, 1, "the keyset on stdin is empty");
    // The files are untouched.
    assert_eq!(std::fs::read(d.p("empty.json")).unwrap(), b"");
}

/// Every command detects the keyset format from the content;
/// --in-format / --keyset-format still override it; an edit in place keeps
/// the file's format.
#[test]
fn keyset_format_is_detected_the_same_way_everywhere() {
    let d = Dir::new();
    let k = d.s("k.bin");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &k,
        "--out-format",
        "binary",
    ]);
    let bin_before = std::fs::read(&k).unwrap();
    assert_ne!(bin_before.first(), Some(&b'{'));
    // Keyset commands, no --in-format.
    let v = json_of(&["list-keyset", "--in", &k, "--json"]);
    assert_eq!(v["keyInfo"].as_array().unwrap().len(), 1);
    ok(&[
        "add-key",
        "--key-template",
        "AES128_GCM",
        "--in",
        &k,
        "--out",
        &k,
    ]);
    let after = std::fs::read(&k).unwrap();
    assert_ne!(after.first(), Some(&b'{'), "an edit in place keeps binary");
    assert_eq!(
        json_of(&["list-keyset", "--in", &k, "--json"])["keyInfo"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // convert-keyset's output stays JSON by default (as Tinkey).
    ok(&["convert-keyset", "--in", &k, "--out", &d.s("k.json")]);
    assert_eq!(std::fs::read(d.p("k.json")).unwrap().first(), Some(&b'{'));
    // encrypt / decrypt, no --keyset-format.
    encrypt_hello(&d, &k);
    let pt = ok(&["decrypt", "--keyset", &k, "--in", &d.s("ct")]);
    assert_eq!(pt, b"hello");
    // stdin too.
    let out = es()
        .args(["list-keyset", "--json"])
        .write_stdin(std::fs::read(&k).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    // Store commands.
    let st = d.s("store");
    put(&st, &k, "a", b"v");
    assert_eq!(get(&st, &k, "a"), b"v");
    // The flags still override (and a wrong one is explained).
    fails(
        &["list-keyset", "--in", &k, "--in-format", "json"],
        1,
        "try --in-format binary",
    );
    fails(
        &[
            "encrypt",
            "--keyset",
            &k,
            "--keyset-format",
            "json",
            "--in",
            &d.s("msg"),
        ],
        1,
        "try --keyset-format binary",
    );
}

#[test]
fn keysets_created_in_cleartext_warn_as_the_docs_say() {
    let d = Dir::new();
    let out = run(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &d.s("k.json"),
    ]);
    assert!(out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains(
            "encstore: warning: the keyset is in cleartext (no --master-keyset or --master-key-uri)"
        ),
        "{err}"
    );
    assert!(err.contains("docs/key-management.md"), "{err}");
    // Wrapped: no warning.
    let m = d.s("master.json");
    let out = run(&["create-keyset", "--key-template", "AES256_GCM", "--out", &m]);
    assert!(out.status.success());
    let out = run(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &d.s("wrapped.json"),
        "--master-keyset",
        &m,
    ]);
    assert!(out.status.success());
    assert!(
        !stderr_of(&out).contains("cleartext"),
        "{}",
        stderr_of(&out)
    );
    // Piped to another program: no terminal warning (only the cleartext one).
    let out = run(&["create-keyset", "--key-template", "AES256_GCM"]);
    assert!(!stderr_of(&out).contains("terminal"), "{}", stderr_of(&out));
}

#[test]
fn a_cleartext_keyset_written_to_a_terminal_warns() {
    let t = Tty::spawn(&["create-keyset", "--key-template", "AES256_GCM"], &[]);
    let (code, shown) = t.finish();
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains("encstore: warning: writing a cleartext keyset to the terminal"),
        "{shown}"
    );
    assert!(shown.contains("\"primaryKeyId\""), "{shown}");
    // The same keyset through list-keyset --json to the terminal: no key
    // material, no warning.
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let t = Tty::spawn(&["list-keyset", "--in", &k, "--json"], &[]);
    let (code, shown) = t.finish();
    assert_eq!(code, Some(0), "{shown}");
    assert!(!shown.contains("warning"), "{shown}");
}

/// Writes `hello` to the file `msg` in `d` and encrypts it with keyset
/// `k` to the file `ct`.
fn encrypt_hello(d: &Dir, k: &str) {
    std::fs::write(d.p("msg"), b"hello").unwrap();
    ok(&[
        "encrypt",
        "--keyset",
        k,
        "--in",
        &d.s("msg"),
        "--out",
        &d.s("ct"),
    ]);
}

/// A master keyset `master` (a file name in `d`) and an AES256_GCM keyset
/// `k.json` encrypted under it: their paths.
fn encrypted_keyset(d: &Dir, master: &str) -> (String, String) {
    let m = keyset(d, master);
    let k = d.s("k.json");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &k,
        "--master-keyset",
        &m,
    ]);
    (m, k)
}

#[test]
fn list_keyset_of_an_encrypted_keyset_without_its_master_key_is_marked_unauthenticated() {
    let d = Dir::new();
    let (m, k) = encrypted_keyset(&d, "master.json");
    ok(&[
        "add-key",
        "--key-template",
        "AES128_GCM_RAW",
        "--in",
        &k,
        "--out",
        &k,
        "--master-keyset",
        &m,
    ]);
    let real = json_of(&["list-keyset", "--in", &k, "--master-keyset", &m, "--json"]);
    assert!(real.get("unauthenticated").is_none(), "{real}");

    let out = run(&["list-keyset", "--in", &k, "--json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["unauthenticated"], true);
    assert_eq!(v["primaryKeyId"], real["primaryKeyId"]);
    assert_eq!(v["keyInfo"], real["keyInfo"]);
    let err = stderr_of(&out);
    assert!(err.contains("NOT authenticated"), "{err}");
    assert!(err.contains("--master-keyset"), "{err}");

    let out = run(&["list-keyset", "--in", &k]);
    assert!(out.status.success());
    let table = stdout_of(&out);
    assert!(
        table.starts_with(
            "UNAUTHENTICATED keysetInfo (encrypted keyset, no master key given: not verified)\n"
        ),
        "{table}"
    );
    assert!(table.contains("RAW"), "{table}");

    // It really is unauthenticated: edit it, and only the unverified
    // listing changes; the keyset itself is as it was.
    let mut edited: Value = serde_json::from_slice(&std::fs::read(&k).unwrap()).unwrap();
    edited["keysetInfo"]["keyInfo"][0]["status"] = Value::from("DESTROYED");
    std::fs::write(&k, edited.to_string()).unwrap();
    let v = json_of(&["list-keyset", "--in", &k, "--json"]);
    assert_eq!(v["keyInfo"][0]["status"], "DESTROYED");
    let real_again = json_of(&["list-keyset", "--in", &k, "--master-keyset", &m, "--json"]);
    assert_eq!(real_again, real);
    // Binary encrypted keysets too.
    ok(&[
        "convert-keyset",
        "--in",
        &k,
        "--out",
        &d.s("k.bin"),
        "--out-format",
        "binary",
        "--master-keyset",
        &m,
        "--new-master-keyset",
        &m,
    ]);
    let v = json_of(&["list-keyset", "--in", &d.s("k.bin"), "--json"]);
    assert_eq!(v["unauthenticated"], true);
    assert_eq!(v["keyInfo"], real["keyInfo"]);
}

#[test]
fn list_keyset_on_a_terminal_says_it_reads_stdin() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let text = String::from_utf8(std::fs::read(&k).unwrap()).unwrap();
    let mut t = Tty::spawn(&["list-keyset", "--json"], &[]);
    t.wait_for(
        "encstore: reading the keyset from standard input (no --in given); end it with Ctrl-D",
        Duration::from_secs(30),
    );
    t.send(text.trim_end().as_bytes());
    t.send(b"\n\x04");
    let (code, shown) = t.finish();
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("\"keyInfo\""), "{shown}");
    // Not on a pipe.
    let out = es()
        .args(["list-keyset", "--json"])
        .write_stdin(text.into_bytes())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!stderr_of(&out).contains("reading"), "{}", stderr_of(&out));
}

// ------------------------------------------------------------ key status

/// An object under a DISABLED key says so, names the keyset and how to
/// re-enable the key, in get, verify, rewrap and decrypt; the "newer
/// keyset?" hint is kept for key IDs the keyset does not have.
#[test]
fn an_object_under_a_disabled_key_says_how_to_enable_it() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    put(&st, &k, "certs/a.pem", b"secret a");
    encrypt_hello(&d, &k);
    let (old, _) = add_and_promote(&k);
    ok(&key_args("disable-key", &old.to_string(), &k));
    let enable = format!("encstore enable-key --key-id {old} --in {k} --out {k}");

    let err = fails(
        &[
            "store",
            "get",
            "--store",
            &st,
            "--keyset",
            &k,
            "certs/a.pem",
        ],
        1,
        &format!("is encrypted under key {old}, which is DISABLED in this keyset"),
    );
    assert!(err.contains(&enable), "{err}");
    assert!(!err.contains("newer keyset"), "{err}");

    let out = run(&["store", "verify", "--store", &st, "--keyset", &k]);
    let err = check_fails(&["verify"], &out, 1, "1 of 1 object failed");
    assert!(err.contains("FAILED \"certs/a.pem\""), "{err}");
    assert!(err.contains(&enable), "{err}");
    let report = stdout_of(&out);
    assert!(
        report.contains(&format!(
            "of the failures, 1 is under key(s) {old} that this keyset holds but not ENABLED"
        )),
        "{report}"
    );
    let v = json_of(&["store", "verify", "--store", &st, "--keyset", &k, "--json"]);
    assert_eq!(v["not_enabled_key"], 1, "{v}");
    assert_eq!(
        v["not_enabled_keys"],
        serde_json::json!([{"key_id": old, "objects": 1}])
    );
    assert_eq!(v["unknown_key"], 0, "{v}");

    let v = json_of(&rewrap_args(&st, &k, &["--json"]));
    assert_eq!(v["failed_count"], 1, "{v}");
    assert!(
        v["failed"][0]["error"].as_str().unwrap().contains(&enable),
        "{v}"
    );

    let err = fails(
        &["decrypt", "--keyset", &k, "--in", &d.s("ct")],
        1,
        "DISABLED",
    );
    assert!(
        err.contains(&format!(
            "it is encrypted under key {old}, which is DISABLED in keyset {k}"
        )),
        "{err}"
    );
    assert!(err.contains(&enable), "{err}");

    // Re-enabled as it says: readable again.
    ok(&key_args("enable-key", &old.to_string(), &k));
    assert_eq!(get(&st, &k, "certs/a.pem"), b"secret a");
    // Destroyed: the material is gone, no enable hint.
    ok(&key_args("destroy-key", &old.to_string(), &k));
    let err = fails(
        &[
            "store",
            "get",
            "--store",
            &st,
            "--keyset",
            &k,
            "certs/a.pem",
        ],
        1,
        "DESTROYED in this keyset",
    );
    assert!(!err.contains("enable-key"), "{err}");
    // A keyset without the key at all keeps the hint.
    let other = keyset(&d, "other.json");
    let err = fails(
        &[
            "store",
            "get",
            "--store",
            &st,
            "--keyset",
            &other,
            "certs/a.pem",
        ],
        1,
        "does not have",
    );
    assert!(err.contains("newer keyset"), "{err}");
    let err = fails(
        &["decrypt", "--keyset", &other, "--in", &d.s("ct")],
        1,
        "does not have",
    );
    assert!(err.contains("newer keyset"), "{err}");
}

// ------------------------------------------------------------ ls and stat

#[test]
fn ls_marks_prefixes_and_stat_says_plaintext_or_prefix() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    for key in ["certs/a.pem", "certs/sub/b.pem", "top"] {
        put(&st, &k, key, b"value");
    }
    // A plaintext object, as written before encryption was turned on.
    std::fs::write(d.p("store/certs/plain.txt"), b"hello plaintext").unwrap();

    let ls = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["store", "ls", "--store", &st];
        a.extend_from_slice(args);
        String::from_utf8(ok(&a))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(ls(&[]), ["certs/", "top"]);
    assert_eq!(
        ls(&["certs"]),
        ["certs/a.pem", "certs/plain.txt", "certs/sub/"]
    );
    assert_eq!(
        ls(&["certs/"]),
        ls(&["certs"]),
        "a trailing slash is accepted"
    );
    assert_eq!(ls(&["certs/sub/"]), ["certs/sub/b.pem"]);
    assert_eq!(
        ls(&["certs/", "-r"]),
        ["certs/a.pem", "certs/plain.txt", "certs/sub/b.pem"]
    );
    // An object given as the prefix: nothing listed, and said so.
    let out = run(&["store", "ls", "--store", &st, "top"]);
    assert!(out.status.success() && out.stdout.is_empty());
    assert!(stderr_of(&out).contains("\"top\" is an object, not a prefix"));

    let stat = |args: &[&str]| -> String {
        let mut a = vec!["store", "stat", "--store", &st];
        a.extend_from_slice(args);
        String::from_utf8(ok(&a)).unwrap()
    };
    let s = stat(&["certs/plain.txt"]);
    assert!(s.contains("size:     15 bytes (plaintext)\n"), "{s}");
    assert!(
        s.contains("key ID:   none: plaintext (no Tink prefix;"),
        "{s}"
    );
    assert!(!s.contains("ciphertext\n"), "{s}");
    let s = stat(&["certs/plain.txt", "--keyset", &k]);
    assert!(
        s.contains("key ID:   none: plaintext (no Tink prefix, and the keyset holds no RAW key)"),
        "{s}"
    );
    let s = stat(&["certs/a.pem", "--keyset", &k]);
    assert!(s.contains("(ciphertext)"), "{s}");
    assert!(
        s.contains(&format!(
            "key ID:   {} (from its Tink prefix; ENABLED in the keyset)",
            primary_of(&k)
        )),
        "{s}"
    );
    let s = stat(&["certs/"]);
    assert!(s.contains("kind:     prefix"), "{s}");
    assert!(!s.contains("size"), "{s}");

    let j = |args: &[&str]| -> Value {
        let mut a = vec!["store", "stat", "--store", &st, "--json"];
        a.extend_from_slice(args);
        serde_json::from_slice(&ok(&a)).unwrap()
    };
    let v = j(&["certs/plain.txt"]);
    assert_eq!(v["kind"], "object");
    assert_eq!(v["content"], "plaintext");
    assert_eq!(v["key_id"], Value::Null);
    let v = j(&["certs"]);
    assert_eq!(v["kind"], "prefix");
    assert_eq!(v["terminal"], false);
    assert_eq!(v["content"], Value::Null);
    let v = j(&["certs/a.pem", "--keyset", &k]);
    assert_eq!(v["content"], "ciphertext");
    assert_eq!(v["key_id"], primary_of(&k));
    assert_eq!(v["key_status"], "ENABLED");
    assert_eq!(v["raw"], false);

    // rm accepts the trailing slash too.
    fails(
        &["store", "rm", "--store", &st, "certs/sub/"],
        1,
        "--recursive",
    );
    ok(&["store", "rm", "--store", &st, "certs/sub/", "--recursive"]);
    assert_eq!(ls(&["certs"]), ["certs/a.pem", "certs/plain.txt"]);
}

#[test]
fn a_write_to_a_store_that_does_not_exist_warns_that_it_creates_one() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let typo = d.s("stroe");
    let out = es()
        .args(["store", "put", "--store", &typo, "--keyset", &k, "a"])
        .write_stdin(b"v".to_vec())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!(
            "encstore: warning: store {typo} does not exist; creating a new, empty store there"
        )),
        "{}",
        stderr_of(&out)
    );
    // The second write finds it: no warning.
    let out = es()
        .args(["store", "put", "--store", &typo, "--keyset", &k, "b"])
        .write_stdin(b"v".to_vec())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        !stderr_of(&out).contains("does not exist"),
        "{}",
        stderr_of(&out)
    );
    // Reads never create one.
    fails(
        &[
            "store",
            "get",
            "--store",
            &d.s("missing"),
            "--keyset",
            &k,
            "a",
        ],
        1,
        "does not exist (check the --store path or ENCSTORE_STORE)",
    );
    assert!(!d.p("missing").exists());
}

#[test]
fn long_key_names_are_shortened_in_messages() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    put(&st, &k, "a", b"v");
    let seg = "n".repeat(250);
    let long = format!("certs/{seg}/{seg}/{seg}/{seg}/x.pem");
    assert!(long.len() > 1000 && long.len() <= 1024, "{}", long.len());
    let err = fails(
        &["store", "get", "--store", &st, "--keyset", &k, &long],
        1,
        "not found",
    );
    assert!(err.len() < 300, "{} bytes: {err}", err.len());
    assert!(err.contains(&format!("({} bytes)", long.len())), "{err}");
    assert!(err.contains('…'), "{err}");
    let huge = "h".repeat(50_000);
    let err = fails(
        &["store", "stat", "--store", &st, &huge],
        1,
        "longer than 1024 bytes",
    );
    assert!(err.len() < 300, "{} bytes", err.len());
    let err = fails(&["store", "rm", "--store", &st, &huge], 1, "(50000 bytes)");
    assert!(err.len() < 300, "{} bytes", err.len());
}

// ------------------------------------------------------------ warnings

/// The CLI installs a tracing subscriber: the library's warnings reach the
/// operator as `encstore: warning:` lines, RUST_LOG changes the level, and
/// the library's per-failure events are not repeated next to the error.
#[test]
fn library_warnings_reach_the_operator() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    put(&st, &k, "a", b"v");
    std::fs::write(d.p("store/old.txt"), b"stored before encryption").unwrap();
    let args = [
        "store",
        "get",
        "--store",
        &st,
        "--keyset",
        &k,
        "--allow-plaintext",
        "old.txt",
    ];
    let out = run(&args);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"stored before encryption");
    let err = stderr_of(&out);
    assert_eq!(
        err,
        "encstore: warning: returning a plaintext object (migration mode); re-encrypt the store with `encstore store rewrap` (key=\"old.txt\")\n"
    );
    let out = es().args(args).env("RUST_LOG", "error").output().unwrap();
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "{}", stderr_of(&out));
    let out = es()
        .args(args)
        .env("RUST_LOG", "not a [filter")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(stderr_of(&out).contains("RUST_LOG=\"not a [filter\" is not a valid filter"));
    // A failing command prints its one error line, not the library's
    // failure event as well.
    let out = run(&["store", "get", "--store", &st, "--keyset", &k, "old.txt"]);
    let err = check_fails(&["get"], &out, 1, "old.txt");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `store put` with a RAW primary warns once that the objects will not name
/// their key.
#[test]
fn a_raw_primary_warns_once_on_put() {
    let d = Dir::new();
    let k = d.s("raw.json");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM_RAW",
        "--out",
        &k,
    ]);
    let id = primary_of(&k);
    let st = d.s("store");
    std::fs::create_dir(&st).unwrap();
    let out = es()
        .args(["store", "put", "--store", &st, "--keyset", &k, "a"])
        .write_stdin(b"v".to_vec())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = stderr_of(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("is RAW")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with(&format!("encstore: warning: the primary key {id} is RAW: the objects stored with it do not name their key")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // A TINK primary: nothing.
    let t = keyset(&d, "tink.json");
    let out = es()
        .args(["store", "put", "--store", &st, "--keyset", &t, "b"])
        .write_stdin(b"v".to_vec())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "{}", stderr_of(&out));
}

// ------------------------------------------------------------ JSON

fn assert_numeric_key_ids(v: &Value, path: &str) {
    match v {
        Value::Object(o) => {
            for (name, x) in o {
                if name == "key_id" || name == "primary_key_id" {
                    assert!(
                        x.is_u64() || x.is_null(),
                        "{path}.{name} is not a number: {x}"
                    );
                }
                assert_numeric_key_ids(x, &format!("{path}.{name}"));
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                assert_numeric_key_ids(x, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

/// status, rewrap (and its dry run) and verify share names: `objects`,
/// `already_current`, `unknown_key`/`unknown_key_ids`/`unknown_keys`,
/// `failed`; key IDs are numbers; unknown key IDs are listed.
#[test]
fn json_outputs_share_one_naming_scheme() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    put(&st, &k, "old/1", b"1");
    put(&st, &k, "old/2", b"2");
    let (old, new) = add_and_promote(&k);
    put(&st, &k, "new/1", b"3");
    // Two objects written with a keyset this one does not know.
    let other = keyset(&d, "other.json");
    let stranger = primary_of(&other);
    put(&st, &other, "stranger/1", b"4");
    put(&st, &other, "stranger/2", b"5");
    let unknown = serde_json::json!([{"key_id": stranger, "objects": 2}]);

    let s = json_of(&["store", "status", "--store", &st, "--keyset", &k, "--json"]);
    assert_numeric_key_ids(&s, "status");
    assert_eq!(s["objects"], 5);
    assert_eq!(s["total"], 5, "the old name stays");
    assert_eq!(s["already_current"], 1);
    assert_eq!(s["unknown_key"], 2);
    assert_eq!(s["unknown_key_ids"][stranger.to_string()], 2);
    assert_eq!(s["unknown_keys"], unknown);

    let dry = json_of(&rewrap_args(&st, &k, &["--dry-run", "--json"]));
    assert_numeric_key_ids(&dry, "dry run");
    assert_eq!(dry["objects"], 5);
    assert_eq!(dry["already_current"], 1);
    assert_eq!(dry["unknown_keys"], unknown);
    assert_eq!(
        dry["would_rewrap_keys"],
        serde_json::json!([{"key_id": old, "objects": 2}])
    );

    let out = run(&rewrap_args(&st, &k, &["--json"]));
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_numeric_key_ids(&r, "rewrap");
    assert_eq!(r["objects"], 5);
    assert_eq!(r["rewrapped"], 2);
    assert_eq!(r["already_current"], 1);
    assert_eq!(r["primary_key_id"], new);
    assert_eq!(r["failed_count"], 2);
    assert_eq!(r["failed"].as_array().unwrap().len(), 2);
    assert_eq!(r["failed"][0]["key"], "stranger/1");
    assert_eq!(r["unknown_key"], 2);
    assert_eq!(r["unknown_key_ids"][stranger.to_string()], 2);
    assert_eq!(r["unknown_keys"], unknown);
    assert_eq!(r["stopped"], Value::Null);
    assert!(r["seconds"].is_f64(), "{r}");

    let out = run(&["store", "verify", "--store", &st, "--keyset", &k, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_numeric_key_ids(&v, "verify");
    assert_eq!(v["objects"], 5);
    assert_eq!(v["ok"], 3);
    assert_eq!(v["by_key_id"][new.to_string()], 3);
    assert_eq!(
        v["keys"],
        serde_json::json!([{"key_id": new, "objects": 3}])
    );
    assert_eq!(v["failed_count"], 2);
    assert_eq!(v["unknown_key"], 2);
    assert_eq!(v["unknown_keys"], unknown);
    assert_eq!(v["primary_key_id"], new);

    // The human summaries name the unknown key IDs too.
    let out = run(&rewrap_args(&st, &k, &[]));
    assert!(
        stdout_of(&out).contains(&format!(
            "of the failures, 2 are under key ID(s) {stranger} that this keyset does not have"
        )),
        "{}",
        stdout_of(&out)
    );
    let out = run(&["store", "status", "--store", &st, "--keyset", &k]);
    assert!(
        stdout_of(&out).contains(&format!(
            "2 objects under key ID(s) {stranger} that this keyset does not have"
        )),
        "{}",
        stdout_of(&out)
    );
    // stat's key ID is a number too.
    let v = json_of(&["store", "stat", "--store", &st, "new/1", "--json"]);
    assert_eq!(v["key_id"], new);
}

// ------------------------------------------------------------ progress

/// One object: "1 object", no rate (the run takes under a second), and
/// the elapsed time in the summary.
#[test]
fn progress_uses_plurals_and_shows_no_rate_for_a_short_run() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    put(&st, &k, "only", b"v");
    add_and_promote(&k);
    let out = run(&rewrap_args(&st, &k, &[]));
    assert!(out.status.success(), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains("encstore: rewrap: 1 object\n"), "{err}");
    assert!(err.contains("encstore: rewrap: 1/1 object in "), "{err}");
    assert!(!err.contains("objects/s"), "no rate under a second: {err}");
    let summary = stdout_of(&out);
    assert!(
        summary.starts_with("rewrap: 1 object: re-encrypted 1, already current 0, deleted meanwhile 0, failed 0 (primary key "),
        "{summary}"
    );
    let tail = summary.trim_end().rsplit(") in ").next().unwrap();
    assert!(
        tail.ends_with(" s") && tail.trim_end_matches(" s").parse::<f64>().is_ok(),
        "{summary}"
    );
    let out = run(&["store", "verify", "--store", &st, "--keyset", &k]);
    assert!(out.status.success());
    assert!(
        stdout_of(&out).starts_with("verify: 1 object: 1 decrypts, 0 failed in "),
        "{}",
        stdout_of(&out)
    );
}

/// Objects (cheap ones) for the interruption tests.
fn big_store(d: &Dir, n: usize) -> (String, String, u32) {
    let k = keyset(d, "k.json");
    let rt = rt();
    populate(&rt, &lib_store(&d.p("store"), &k), n, |i| {
        format!("v{i}").into_bytes()
    });
    let (_, new) = add_and_promote(&k);
    (d.s("store"), k, new)
}

/// The number after `label` in `text` (the last occurrence).
fn number_after(text: &str, label: &str) -> u64 {
    let i = text
        .rfind(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"));
    text[i + label.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?} in {text}"))
}

/// SIGINT in the middle of a rewrap: the objects in flight finish, the
/// counts printed are the objects really re-encrypted (the census agrees),
/// the lock is released, and the exit status is 130.
#[test]
fn ctrl_c_during_rewrap_prints_the_true_count_and_exits_130() {
    const N: usize = 6000;
    let d = Dir::new();
    let (st, k, new) = big_store(&d, N);
    let args = rewrap_args(&st, &k, &["--concurrency", "2"]);
    let mut child = spawn_es(&args, &[("ENCSTORE_LOCK_LEASE_SECS", "60")]);
    // Wait for the first periodic progress line (after 2 s): mid-run.
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    loop {
        let line = lines.next().expect("progress before the end").unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("objects/s") {
            break;
        }
        assert!(
            !line.contains(&format!("{N}/{N}")),
            "finished too soon: {seen}"
        );
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let err = format!("{seen}{}", rest.join("\n"));
    let out = child.wait_with_output().unwrap();
    let summary = stdout_of(&out);
    assert_eq!(out.status.code(), Some(130), "{err}\n{summary}");
    let rewrapped = number_after(&summary, "re-encrypted ");
    assert!(rewrapped > 0 && (rewrapped as usize) < N, "{summary}");
    // The progress line ends at the same true count.
    let finished = number_after(&err, "encstore: rewrap: ");
    assert_eq!(finished, rewrapped, "{err}");
    assert!(
        err.contains(&format!("{rewrapped}/{N} objects in")),
        "{err}"
    );
    assert!(err.contains(", stopped (interrupted)"), "{err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "encstore: error: interrupted (re-encrypted {rewrapped} of {N} objects)"
        )),
        "{err}"
    );
    // The census agrees with what was printed.
    let v = status_json(&st, &k);
    assert_eq!(v["by_key_id"][new.to_string()], rewrapped, "{v}");
    assert_eq!(v["objects"], N);
    // The lock was released: --no-wait runs at once and finishes.
    let mut a = args.clone();
    a.push("--no-wait");
    ok(&a);
    assert_eq!(status_json(&st, &k)["by_key_id"][new.to_string()], N);
}

/// Ctrl-C typed on the terminal: the progress bar stays on screen at the
/// true count, and the exit status is 130.
#[test]
fn ctrl_c_on_a_terminal_leaves_the_bar_at_the_true_count() {
    const N: usize = 6000;
    let d = Dir::new();
    let (st, k, new) = big_store(&d, N);
    let mut t = Tty::spawn(
        &rewrap_args(&st, &k, &["--concurrency", "2"]),
        &[("ENCSTORE_LOCK_LEASE_SECS", "60")],
    );
    // The rate appears after a second: mid-run.
    t.wait_for("objects/s", Duration::from_secs(60));
    t.send(b"\x03");
    let (code, shown) = t.finish();
    assert_eq!(code, Some(130), "{shown}");
    let rewrapped = number_after(&shown, "objects: re-encrypted ");
    assert!(rewrapped > 0 && (rewrapped as usize) < N, "{shown}");
    // The bar's last frame shows the true count.
    let bar = shown.rfind(&format!("/{N} objects")).unwrap();
    let start = shown[..bar].rfind(|c: char| !c.is_ascii_digit()).unwrap() + 1;
    assert_eq!(
        shown[start..bar].parse::<u64>().unwrap(),
        rewrapped,
        "{shown}"
    );
    assert!(shown.contains("encstore: error: interrupted"), "{shown}");
    assert_eq!(
        status_json(&st, &k)["by_key_id"][new.to_string()],
        rewrapped
    );
}

// ------------------------------------------------------------ ownership

const NOBODY: u32 = 65534;

/// (uid, gid, mode) of every file and directory under `root`, by path.
fn owners(root: &Path) -> Vec<(PathBuf, (u32, u32, u32))> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        out.push((p.clone(), (m.uid(), m.gid(), m.mode() & 0o7777)));
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

/// A private place `nobody` can reach, with a copy of the binary.
fn service_home() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::Builder::new()
        .prefix("encstore-svc")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let b = d.path().join("encstore");
    std::fs::copy(assert_cmd::cargo::cargo_bin("encstore"), &b).unwrap();
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o755)).unwrap();
    (d, b)
}

/// Runs the binary as `nobody` (with `stdin` as its input).
fn as_nobody(bin: &Path, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut c = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin)
        .args(args)
        .env_remove("ENCSTORE_STORE")
        .env_remove("ENCSTORE_KEYSET")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin).unwrap();
    c.wait_with_output().unwrap()
}

fn ok_as_nobody(bin: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let out = as_nobody(bin, args, stdin);
    assert!(
        out.status.success(),
        "as nobody: encstore {args:?}: {}",
        stderr_of(&out)
    );
    out.stdout
}

/// The rotation recipe of the README (add a key, promote it, rewrap) run by
/// `runner` on a store and keyset owned by the service user `nobody`
/// (keyset 0640, store root 0750, objects 0640 and one 0600): every owner,
/// group and mode stays as it was, and `nobody` still reads everything.
fn rotation_recipe_keeps_owners(runner: &dyn Fn(&[&str]) -> Output, who: &str) {
    let (home, bin) = service_home();
    let etc = home.path().join("etc");
    let var = home.path().join("store");
    std::fs::create_dir(&etc).unwrap();
    std::fs::create_dir(&var).unwrap();
    for dir in [&etc, &var] {
        std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY)).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    }
    let k = etc.join("keys.json");
    let ks = k.display().to_string();
    let st = var.display().to_string();
    // The service user creates its keyset and stores its secrets.
    ok_as_nobody(
        &bin,
        &[
            "create-keyset",
            "--key-template",
            "AES256_GCM",
            "--out",
            &ks,
        ],
        b"",
    );
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o640)).unwrap();
    let values: Vec<(String, String)> = (0..12)
        .map(|i| (format!("certs/{i:02}.pem"), format!("secret {i}")))
        .collect();
    for (key, value) in &values {
        ok_as_nobody(
            &bin,
            &["store", "put", "--store", &st, "--keyset", &ks, key],
            value.as_bytes(),
        );
    }
    // One object with a stricter mode, as an operator may have set it.
    std::fs::set_permissions(
        var.join("certs/03.pem"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let files_before = owners(&var);
    let keyset_before = owners(&k);
    assert!(
        files_before
            .iter()
            .filter(|(p, _)| p.starts_with(var.join("certs")))
            .all(|(_, (u, g, _))| (*u, *g) == (NOBODY, NOBODY)),
        "{files_before:?}"
    );

    // The recipe, as `who`.
    let old = read_keyset(&ks).primary_key_id();
    let out = runner(&[
        "add-key",
        "--key-template",
        "AES256_GCM",
        "--in",
        &ks,
        "--out",
        &ks,
    ]);
    assert!(out.status.success(), "{who}: add-key: {}", stderr_of(&out));
    let new = read_keyset(&ks)
        .info()
        .keys
        .iter()
        .map(|x| x.key_id)
        .find(|id| *id != old)
        .unwrap();
    let out = runner(&key_args("promote-key", &new.to_string(), &ks));
    assert!(
        out.status.success(),
        "{who}: promote-key: {}",
        stderr_of(&out)
    );
    let out = runner(&rewrap_args(&st, &ks, &[]));
    assert!(out.status.success(), "{who}: rewrap: {}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("re-encrypted 12"),
        "{}",
        stdout_of(&out)
    );

    // Nothing changed owner, group or mode.
    assert_eq!(owners(&k), keyset_before, "{who}: the keyset");
    let files_after = owners(&var);
    for (p, before) in &files_before {
        let after = files_after
            .iter()
            .find(|(q, _)| q == p)
            .unwrap_or_else(|| panic!("{who}: {} is gone", p.display()));
        assert_eq!(&after.1, before, "{who}: {}", p.display());
    }
    // Anything new (the rewrap lock's files) is the service user's too.
    for (p, (u, g, _)) in &files_after {
        assert_eq!((*u, *g), (NOBODY, NOBODY), "{who}: {}", p.display());
    }
    // The service still reads everything, and everything is under the new
    // key.
    for (key, value) in &values {
        let got = ok_as_nobody(
            &bin,
            &["store", "get", "--store", &st, "--keyset", &ks, key],
            b"",
        );
        assert_eq!(got, value.as_bytes(), "{who}: {key}");
    }
    ok_as_nobody(
        &bin,
        &["store", "verify", "--store", &st, "--keyset", &ks],
        b"",
    );
    let v: Value = serde_json::from_slice(&ok_as_nobody(
        &bin,
        &["store", "status", "--store", &st, "--keyset", &ks, "--json"],
        b"",
    ))
    .unwrap();
    assert_eq!(v["by_key_id"][new.to_string()], 12, "{who}: {v}");
    // And it can still write and rotate on its own.
    ok_as_nobody(
        &bin,
        &["store", "put", "--store", &st, "--keyset", &ks, "after"],
        b"x",
    );
    ok_as_nobody(
        &bin,
        &[
            "add-key",
            "--key-template",
            "AES128_GCM",
            "--in",
            &ks,
            "--out",
            &ks,
        ],
        b"",
    );
    drop(home);
}

/// Done when: the rotation recipe, run as root on files owned by another
/// user, leaves every owner, group and mode unchanged, and the service user
/// still reads everything. Also run by the service user itself.
#[test]
fn rotation_recipe_keeps_every_owner_group_and_mode() {
    if !is_root() {
        eprintln!(
            "SKIPPED rotation_recipe_keeps_every_owner_group_and_mode: needs root (chown, setpriv)"
        );
        return;
    }
    rotation_recipe_keeps_owners(&|args: &[&str]| run(args), "root");
    let (_home, bin) = service_home();
    rotation_recipe_keeps_owners(&|args: &[&str]| as_nobody(&bin, args, b""), "nobody");
}

/// Malformed keysets (random bytes, truncated and mangled encrypted
/// keysets) on the new paths (format detection, the unauthenticated
/// keysetInfo): never a panic, always one error line, exit 1.
#[test]
fn malformed_keysets_never_panic() {
    let d = Dir::new();
    let (m, k) = encrypted_keyset(&d, "m.json");
    let json = std::fs::read(&k).unwrap();
    let kb = d.s("k.bin");
    ok(&[
        "convert-keyset",
        "--in",
        &k,
        "--out",
        &kb,
        "--out-format",
        "binary",
        "--master-keyset",
        &m,
        "--new-master-keyset",
        &m,
    ]);
    let bin = std::fs::read(&kb).unwrap();
    // A small deterministic generator (no test may depend on luck).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut inputs: Vec<Vec<u8>> = vec![
        br#"{"encryptedKeyset": "AAAA", "keysetInfo": 7}"#.to_vec(),
        br#"{"encryptedKeyset": "AAAA", "keysetInfo": {"keyInfo": [{"keyId": -1}]}}"#.to_vec(),
        br#"{"encryptedKeyset": 5}"#.to_vec(),
        vec![0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f],
    ];
    for i in 0..40usize {
        let src = if i % 2 == 0 { &json } else { &bin };
        let mut v = src.clone();
        match i % 4 {
            0 | 1 => v.truncate((next() as usize) % v.len()),
            _ => {
                for _ in 0..4 {
                    let at = (next() as usize) % v.len();
                    v[at] = next() as u8;
                }
            }
        }
        inputs.push(v);
    }
    for (i, input) in inputs.iter().enumerate() {
        let p = d.p(&format!("bad{i}"));
        std::fs::write(&p, input).unwrap();
        let ps = p.display().to_string();
        for args in [
            vec!["list-keyset", "--in", ps.as_str()],
            vec!["list-keyset", "--in", ps.as_str(), "--json"],
            vec!["encrypt", "--keyset", ps.as_str(), "--in", ps.as_str()],
        ] {
            let out = run(&args);
            let err = stderr_of(&out);
            assert!(!err.contains("panicked"), "{args:?} on input {i}: {err}");
            match out.status.code() {
                // A mangled byte may leave the unauthenticated info valid.
                Some(0) => assert_eq!(args[0], "list-keyset", "input {i}: {err}"),
                Some(1) => {
                    let errors = err
                        .lines()
                        .filter(|l| l.starts_with("encstore: error: "))
                        .count();
                    assert_eq!(errors, 1, "{args:?} on input {i}: {err}");
                }
                other => panic!("{args:?} on input {i}: exit {other:?}: {err}"),
            }
        }
    }
}
