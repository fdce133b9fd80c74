//! `encstore store ...`, the store check of the keyset commands, and
//! `encstore quickstart`: success and failure paths, run as a user runs
//! them (assert_cmd), against the filesystem backend in temp dirs.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use encstore_core::Storage;
use encstore_fs::FsStorage;

fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Child {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("encstore"));
    c.args(args)
        .env_remove("ENCSTORE_STORE")
        .env_remove("ENCSTORE_KEYSET")
        .env_remove("ENCSTORE_LOCK_LEASE_SECS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

#[test]
fn put_get_is_binary_safe_via_stdin_stdout_and_files() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    let all: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    put(&st, &k, "bin/all-bytes", &all);
    assert_eq!(get(&st, &k, "bin/all-bytes"), all);
    put(&st, &k, "empty", b"");
    assert_eq!(get(&st, &k, "empty"), b"");

    std::fs::write(d.p("in.bin"), b"\x00\xff from a file\n").unwrap();
    ok(&[
        "store",
        "put",
        "--store",
        &st,
        "--keyset",
        &k,
        "f",
        "--in",
        &d.s("in.bin"),
    ]);
    ok(&[
        "store",
        "get",
        "--store",
        &st,
        "--keyset",
        &k,
        "f",
        "--out",
        &d.s("out.bin"),
    ]);
    assert_eq!(
        std::fs::read(d.p("out.bin")).unwrap(),
        b"\x00\xff from a file\n"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.p("out.bin"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // On disk it is a Tink ciphertext, not the value.
    let raw = std::fs::read(d.p("store/f")).unwrap();
    assert_eq!(raw[0], 0x01);
    assert!(!raw.windows(11).any(|w| w == b"from a file"));
}

#[test]
fn get_missing_key_says_not_found_and_writes_nothing() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    put(&st, &k, "a", b"x");
    let out = d.s("out");
    fails(
        &[
            "store", "get", "--store", &st, "--keyset", &k, "nope", "--out", &out,
        ],
        1,
        "not found",
    );
    assert!(!d.p("out").exists());
    // A missing store directory is not silently an empty store.
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
        "does not exist",
    );
    fails(
        &[
            "store",
            "get",
            "--store",
            &st,
            "--keyset",
            &d.s("nokeyset"),
            "a",
        ],
        1,
        "cannot read keyset",
    );
    fails(
        &[
            "store",
            "get",
            "--store",
            &st,
            "--keyset",
            &k,
            "../etc/passwd",
        ],
        1,
        "invalid key",
    );
    let out = es()
        .args(["store", "put", "--store", &st, "--keyset", &k, "a//b"])
        .write_stdin("v")
        .output()
        .unwrap();
    check_fails(&[], &out, 1, "invalid key");
}

#[test]
fn get_of_tampered_or_moved_object_fails_authentication_and_keeps_out() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    put(&st, &k, "a", b"secret value");
    put(&st, &k, "b", b"other");
    let path = d.p("store/a");
    let mut raw = std::fs::read(&path).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    std::fs::write(&path, &raw).unwrap();
    std::fs::write(d.p("out"), b"old content").unwrap();
    let err = fails(
        &[
            "store",
            "get",
            "--store",
            &st,
            "--keyset",
            &k,
            "a",
            "--out",
            &d.s("out"),
        ],
        1,
        "authentication failed",
    );
    assert!(!err.contains("not found"), "{err}");
    assert_eq!(std::fs::read(d.p("out")).unwrap(), b"old content");
    // An object copied to another name does not decrypt there.
    std::fs::copy(d.p("store/b"), d.p("store/c")).unwrap();
    fails(
        &["store", "get", "--store", &st, "--keyset", &k, "c"],
        1,
        "authentication failed",
    );
    // Another keyset: the prefix names a key it does not have.
    let k2 = keyset(&d, "k2.json");
    fails(
        &["store", "get", "--store", &st, "--keyset", &k2, "b"],
        1,
        "which the loaded keyset does not have",
    );
}

#[test]
fn ls_stat_rm_and_their_failures() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    for key in ["certs/a.crt", "certs/a.key", "certs/sub/b.key", "top"] {
        put(&st, &k, key, key.as_bytes());
    }
    let top = String::from_utf8(ok(&["store", "ls", "--store", &st])).unwrap();
    assert_eq!(top.lines().collect::<Vec<_>>(), ["certs/", "top"]);
    let rec = String::from_utf8(ok(&["store", "ls", "--store", &st, "certs", "-r"])).unwrap();
    assert_eq!(
        rec.lines().collect::<Vec<_>>(),
        ["certs/a.crt", "certs/a.key", "certs/sub/b.key"]
    );
    let primary = primary_of(&k);

    let stat = String::from_utf8(ok(&["store", "stat", "--store", &st, "certs/a.key"])).unwrap();
    assert!(stat.contains("certs/a.key"), "{stat}");
    assert!(stat.contains(&format!("key ID:   {primary}")), "{stat}");
    let v: serde_json::Value = serde_json::from_slice(&ok(&[
        "store",
        "stat",
        "--store",
        &st,
        "certs/a.key",
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["key_id"].as_u64(), Some(u64::from(primary)));
    assert_eq!(v["size"].as_u64(), Some(5 + 12 + 11 + 16));
    assert!(v["modified"].as_str().unwrap().ends_with('Z'));
    fails(&["store", "stat", "--store", &st, "nope"], 1, "not found");

    fails(&["store", "rm", "--store", &st, "certs"], 1, "--recursive");
    ok(&["store", "rm", "--store", &st, "certs/a.crt"]);
    fails(
        &["store", "rm", "--store", &st, "certs/a.crt"],
        1,
        "not found",
    );
    ok(&["store", "rm", "--store", &st, "certs", "--recursive"]);
    let top = String::from_utf8(ok(&["store", "ls", "--store", &st, "-r"])).unwrap();
    assert_eq!(top.lines().collect::<Vec<_>>(), ["top"]);

    fails(
        &["store", "ls", "--store", &d.s("missing")],
        1,
        "does not exist",
    );
    fails(
        &["store", "ls", "--store", "ftp://host/x"],
        1,
        "unsupported scheme",
    );
    fails(
        &["store", "ls", "--store", "file://relative"],
        1,
        "absolute path",
    );
    // A usage error: --store is required (no ENCSTORE_STORE either).
    fails(&["store", "ls"], 2, "--store");
}

#[test]
fn file_urls_and_env_fallbacks() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let url = format!("file://{}", d.s("store"));
    put(&url, &k, "a", b"via url");
    let out = es()
        .args(["store", "get", "a"])
        .env("ENCSTORE_STORE", d.s("store"))
        .env("ENCSTORE_KEYSET", &k)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"via url");
}

#[test]
fn status_counts_by_key_with_table_and_json() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    for i in 0..3 {
        put(&st, &k, &format!("old/{i}"), b"v");
    }
    let (old, new) = add_and_promote(&k);
    for i in 0..2 {
        put(&st, &k, &format!("new/{i}"), b"v");
    }
    // A plaintext object (written before encryption) and one under a key
    // this keyset does not have.
    std::fs::write(d.p("store/plain"), b"hello, plaintext").unwrap();
    let other = keyset(&d, "other.json");
    put(&st, &other, "foreign", b"v");

    let v = status_json(&st, &k);
    assert_eq!(v["total"], 7);
    assert_eq!(v["by_key_id"][old.to_string()], 3);
    assert_eq!(v["by_key_id"][new.to_string()], 2);
    assert_eq!(v["primary_key_id"].as_u64(), Some(u64::from(new)));
    assert_eq!(v["plaintext"], 1);
    assert_eq!(v["unknown_key"], 1);

    let table =
        String::from_utf8(ok(&["store", "status", "--store", &st, "--keyset", &k])).unwrap();
    let row = |id: u32| {
        table
            .lines()
            .find(|l| l.starts_with(&id.to_string()))
            .unwrap_or_else(|| panic!("no row for {id}: {table}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(row(old), [old.to_string(), "ENABLED".into(), "3".into()]);
    assert_eq!(
        row(new),
        [
            new.to_string(),
            "ENABLED".into(),
            "(primary)".into(),
            "2".into()
        ]
    );
    assert!(table.contains("KEY ID") && table.contains("STATUS") && table.contains("OBJECTS"));
    assert!(table.contains("encstore store rewrap --store"), "{table}");

    // --prefix counts part of the store.
    let v: serde_json::Value = serde_json::from_slice(&ok(&[
        "store", "status", "--store", &st, "--keyset", &k, "--json", "--prefix", "old",
    ]))
    .unwrap();
    assert_eq!(v["total"], 3);
}

#[test]
fn policy_flag_refuses_keys_outside_it() {
    let d = Dir::new();
    let k = d.s("k.json");
    ok(&[
        "create-keyset",
        "--key-template",
        "CHACHA20_POLY1305",
        "--out",
        &k,
    ]);
    let st = d.s("store");
    put(&st, &k, "a", b"v");
    fails(
        &[
            "store", "status", "--store", &st, "--keyset", &k, "--policy", "fips",
        ],
        1,
        "policy",
    );
    fails(
        &[
            "store", "status", "--store", &st, "--keyset", &k, "--policy", "nonsense",
        ],
        1,
        "nonsense",
    );
    ok(&[
        "store", "status", "--store", &st, "--keyset", &k, "--policy", "modern",
    ]);
}

#[test]
fn verify_reports_every_failure_by_name() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    for i in 0..5 {
        put(&st, &k, &format!("o/{i}"), b"value");
    }
    let out = String::from_utf8(ok(&["store", "verify", "--store", &st, "--keyset", &k])).unwrap();
    assert!(out.contains("5 objects: 5 decrypt, 0 failed"), "{out}");
    for i in [1, 3] {
        let p = d.p(&format!("store/o/{i}"));
        let mut raw = std::fs::read(&p).unwrap();
        raw[10] ^= 0x80;
        std::fs::write(&p, raw).unwrap();
    }
    let args = ["store", "verify", "--store", &st, "--keyset", &k];
    let err = fails(&args, 1, "2 of 5 objects failed");
    assert!(err.contains("o/1") && err.contains("o/3"), "{err}");
    assert!(!err.contains("o/2"), "{err}");
    let out = run(&["store", "verify", "--store", &st, "--keyset", &k, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["objects"], 5);
    assert_eq!(v["ok"], 3);
    let failed: Vec<&str> = v["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["o/1", "o/3"]);
}

#[test]
fn rewrap_moves_everything_to_the_primary_and_migrates_plaintext() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    for i in 0..20 {
        put(&st, &k, &format!("o/{i}"), format!("value {i}").as_bytes());
    }
    std::fs::write(d.p("store/legacy"), b"plaintext from before").unwrap();
    let (old, new) = add_and_promote(&k);
    put(&st, &k, "fresh", b"already new");

    // Without --allow-plaintext the plaintext object fails (and stays).
    let args = rewrap_args(&st, &k, &[]);
    let err = fails(&args, 1, "could not be re-encrypted");
    assert!(err.contains("legacy"), "{err}");
    assert_eq!(
        std::fs::read(d.p("store/legacy")).unwrap(),
        b"plaintext from before"
    );
    let v = status_json(&st, &k);
    assert_eq!(v["by_key_id"][new.to_string()], 21);
    assert!(v["by_key_id"].get(old.to_string()).is_none_or(|n| n == 0));
    assert_eq!(v["plaintext"], 1);

    let out = ok(&rewrap_args(&st, &k, &["--allow-plaintext", "--json"]));
    let s: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(s["rewrapped"], 1);
    assert_eq!(s["already_current"], 21);
    assert_eq!(s["failed"].as_array().unwrap().len(), 0);
    let v = status_json(&st, &k);
    assert_eq!(v["total"], 22);
    assert_eq!(v["by_key_id"][new.to_string()], 22);
    assert_eq!(v["plaintext"], 0);
    for i in 0..20 {
        assert_eq!(
            get(&st, &k, &format!("o/{i}")),
            format!("value {i}").as_bytes()
        );
    }
    assert_eq!(get(&st, &k, "legacy"), b"plaintext from before");
    // A second run finds nothing to do; the human summary says so.
    let out = String::from_utf8(ok(&args)).unwrap();
    assert!(
        out.contains("re-encrypted 0, already current 22") && out.contains("failed 0"),
        "{out}"
    );
}

#[test]
fn rewrap_dry_run_changes_nothing() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    for i in 0..10 {
        put(&st, &k, &format!("o/{i}"), b"v");
    }
    std::fs::write(d.p("store/legacy"), b"plaintext").unwrap();
    let (old, _) = add_and_promote(&k);
    let before = snapshot_files(&d.p("store"));
    let out = String::from_utf8(ok(&rewrap_args(&st, &k, &["--dry-run"]))).unwrap();
    assert!(out.contains("would re-encrypt 10"), "{out}");
    assert!(out.contains(&format!("10 under key {old}")), "{out}");
    assert!(out.contains("--allow-plaintext"), "{out}");
    let v: serde_json::Value = serde_json::from_slice(&ok(&rewrap_args(
        &st,
        &k,
        &["--dry-run", "--json", "--allow-plaintext"],
    )))
    .unwrap();
    assert_eq!(v["would_rewrap"], 11);
    assert_eq!(
        snapshot_files(&d.p("store")),
        before,
        "dry run changed the store"
    );
}

#[test]
fn two_rewraps_never_run_at_once() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    for i in 0..5 {
        put(&st, &k, &format!("o/{i}"), b"v");
    }
    add_and_promote(&k);
    let rt = rt();
    // Another rewrap holds the lock (the test, through the library).
    let fs = FsStorage::new(d.p("store")).unwrap();
    let lease = rt.block_on(fs.try_lock("encstore-rewrap")).unwrap();
    let before = snapshot_files(&d.p("store"));

    fails(
        &rewrap_args(&st, &k, &["--no-wait"]),
        1,
        "another rewrap is running",
    );
    // Without --no-wait it waits, saying so, and does nothing meanwhile.
    let mut child = spawn(&rewrap_args(&st, &k, &[]), &[]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the second rewrap did not wait"
    );
    let files = |v: Vec<(std::path::PathBuf, Vec<u8>)>| {
        v.into_iter()
            .filter(|(p, _)| !p.to_string_lossy().contains(".encstore-locks"))
            .collect::<Vec<_>>()
    };
    assert_eq!(files(snapshot_files(&d.p("store"))), files(before));
    rt.block_on(fs.unlock(lease)).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("waiting"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-encrypted 5"));
}

#[test]
fn rewrap_with_a_concurrent_writer_keeps_every_last_write() {
    const N: usize = 1000;
    const HOT: usize = 100;
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    let rt = rt();
    let old_store = lib_store(&d.p("store"), &k);
    populate(&rt, &old_store, N, |i| format!("original {i}").into_bytes());
    let (old, new) = add_and_promote(&k);

    // The writer: a server with the new keyset overwriting HOT keys in
    // rounds, for as long as the rewrap runs (and at least 3 rounds).
    let writer_store = lib_store(&d.p("store"), &k);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let rt = common::rt();
        let mut last: std::collections::HashMap<usize, Vec<u8>> = Default::default();
        let mut round = 0usize;
        while round < 3 || !stop2.load(std::sync::atomic::Ordering::SeqCst) {
            for j in 0..HOT {
                let i = (j * 7 + round) % N;
                let v = format!("written in round {round} to {i}").into_bytes();
                rt.block_on(writer_store.store(&key_name(i), v.clone().into()))
                    .unwrap();
                last.insert(i, v);
            }
            round += 1;
        }
        (last, round)
    });
    let out = run(&rewrap_args(&st, &k, &["--json", "--concurrency", "8"]));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (last, rounds) = writer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["objects"], N);
    assert_eq!(s["failed"].as_array().unwrap().len(), 0);
    assert!(rounds >= 3);
    // Off a terminal, progress is plain lines on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("encstore: rewrap: {N} objects")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("rewrap: {N}/{N} objects in")),
        "{stderr}"
    );

    // Every object equals the last value written to it.
    let check = lib_store(&d.p("store"), &k);
    rt.block_on(async {
        for i in 0..N {
            let got = check.load(&key_name(i)).await.unwrap();
            let want = last
                .get(&i)
                .cloned()
                .unwrap_or_else(|| format!("original {i}").into_bytes());
            assert_eq!(&got[..], &want[..], "object {i}");
        }
    });
    let v = status_json(&st, &k);
    assert_eq!(v["total"], N);
    assert_eq!(v["by_key_id"][new.to_string()], N);
    assert!(v["by_key_id"].get(old.to_string()).is_none_or(|n| n == 0));
    ok(&["store", "verify", "--store", &st, "--keyset", &k]);
}

#[test]
fn rewrap_survives_sigkill_at_random_moments() {
    const N: usize = 2500;
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    let rt = rt();
    let value = |i: usize| format!("value of object {i} ").repeat(8).into_bytes();
    populate(&rt, &lib_store(&d.p("store"), &k), N, value);
    let (_, new) = add_and_promote(&k);
    // A killed rewrap's lock expires after 1 s instead of 60 s.
    let env = [("ENCSTORE_LOCK_LEASE_SECS", "1")];
    let args = rewrap_args(&st, &k, &[]);
    // Pseudo-random kill delays from the clock, spread over the run.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut killed_mid_run = 0;
    let mut under_primary = 0u64;
    for round in 0..6u64 {
        let delay = 150
            + (seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(round * 1442695040888963407)
                >> 33)
                % 500;
        let mut child = spawn(&args, &env);
        std::thread::sleep(Duration::from_millis(delay));
        let running = child.try_wait().unwrap().is_none();
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let v = status_json(&st, &k);
        let now = v["by_key_id"][new.to_string()].as_u64().unwrap_or(0);
        // Killed while it was re-encrypting: it had made progress, not all.
        if running && now > under_primary && now < N as u64 {
            killed_mid_run += 1;
        }
        under_primary = now;
        eprintln!("round {round}: killed after {delay} ms; {now} of {N} under the primary");
    }
    assert!(killed_mid_run >= 1, "no rewrap was killed mid-run");
    let start = Instant::now();
    let out = spawn(&args, &env).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "final run: {:?}: {}",
        start.elapsed(),
        String::from_utf8_lossy(&out.stdout)
    );

    let v = status_json(&st, &k);
    assert_eq!(v["total"], N);
    assert_eq!(v["by_key_id"][new.to_string()], N);
    let listed = String::from_utf8(ok(&["store", "ls", "--store", &st, "-r"])).unwrap();
    assert_eq!(listed.lines().count(), N);
    assert!(!listed.contains(".encstore"), "temp files listed");
    let check = lib_store(&d.p("store"), &k);
    rt.block_on(async {
        for i in 0..N {
            let got = check.load(&key_name(i)).await.unwrap();
            assert_eq!(&got[..], &value(i)[..], "object {i}");
        }
    });
}

fn retire_args<'a>(cmd: &'a str, id: &'a str, k: &'a str, st: &'a str) -> Vec<&'a str> {
    vec![cmd, "--key-id", id, "--in", k, "--out", k, "--store", st]
}

#[test]
fn disable_destroy_delete_refuse_while_objects_remain() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    for i in 0..3 {
        put(&st, &k, &format!("o/{i}"), b"v");
    }
    let (old, _) = add_and_promote(&k);
    let id = old.to_string();
    for cmd in ["disable-key", "destroy-key", "delete-key"] {
        let before = std::fs::read(&k).unwrap();
        let args = retire_args(cmd, &id, &k, &st);
        let err = fails(&args, 1, "3 objects are");
        let expected = format!("encstore store rewrap --store {st} --keyset {k}");
        assert!(err.contains(&expected), "{cmd}: {err}");
        assert!(err.contains("--force"), "{err}");
        assert_eq!(
            std::fs::read(&k).unwrap(),
            before,
            "{cmd} changed the keyset"
        );
    }
    // --force goes ahead, with a warning.
    let mut args = retire_args("disable-key", &id, &k, &st);
    args.push("--force");
    let out = run(&args);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("3 objects are"),
        "{err}"
    );
    ok(&key_args("enable-key", &id, &k));

    // After the rewrap the check passes.
    ok(&rewrap_args(&st, &k, &[]));
    let out = run(&retire_args("disable-key", &id, &k, &st));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no object is under key"), "{err}");
    assert!(!err.contains("cannot be checked"), "{err}");
    ok(&retire_args("destroy-key", &id, &k, &st));
    ok(&retire_args("delete-key", &id, &k, &st));
    // A store that does not exist is an error, not a pass.
    fails(
        &retire_args("delete-key", &primary_of(&k).to_string(), &k, &d.s("nope")),
        1,
        "does not exist",
    );
}

#[test]
fn quickstart_runs_the_whole_story_and_reruns() {
    let d = Dir::new();
    let dir = d.s("tour");
    for run_no in 0..2 {
        let out = run(&["quickstart", "--dir", &dir]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run {run_no}: {stdout}\n{stderr}");
        for n in 1..=8 {
            assert!(
                stdout.contains(&format!("Step {n}/8")),
                "step {n}: {stdout}"
            );
        }
        for cmd in [
            "$ encstore create-keyset",
            "encstore store put",
            "$ encstore add-key",
            "$ encstore promote-key",
            "$ encstore store status",
            "$ encstore store rewrap",
            "$ encstore store verify",
            "$ encstore disable-key",
        ] {
            assert!(stdout.contains(cmd), "{cmd}: {stdout}");
        }
        assert!(
            stdout.contains("verify: 6 objects: 6 decrypt, 0 failed"),
            "{stdout}"
        );
        let k = format!("{dir}/keysets/quickstart.json");
        let st = format!("{dir}/demo-store");
        let v = status_json(&st, &k);
        assert_eq!(v["total"], 6, "run {run_no}");
        assert_eq!(v["not_under_primary"], 0);
        let info = read_keyset(&k).info();
        assert_eq!(info.keys.len(), 2);
        let old = info.keys.iter().find(|k| !k.primary).unwrap();
        assert_eq!(old.status.as_str(), "DISABLED");
        assert_eq!(
            get(&st, &k, "quickstart/db/password"),
            b"correct horse battery staple"
        );
    }
}

#[test]
fn quickstart_fails_clearly_on_a_bad_dir() {
    let d = Dir::new();
    std::fs::write(d.p("file"), b"not a directory").unwrap();
    let dir = d.s("file");
    fails(&["quickstart", "--dir", &dir], 1, "cannot create");
}

#[test]
fn put_reads_stdin_until_eof() {
    // A value larger than a pipe buffer, written in pieces.
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    let value: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut put = std::process::Command::new(assert_cmd::cargo::cargo_bin("encstore"))
        .args(["store", "put", "--store", &st, "--keyset", &k, "big"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = put.stdin.take().unwrap();
    for chunk in value.chunks(7000) {
        stdin.write_all(chunk).unwrap();
    }
    drop(stdin);
    assert!(put.wait().unwrap().success());
    assert_eq!(get(&st, &k, "big"), value);
}

#[test]
fn rewrap_interrupted_by_sigint_releases_its_lock() {
    const N: usize = 1000;
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    let rt = rt();
    populate(&rt, &lib_store(&d.p("store"), &k), N, |i| {
        format!("v{i}").into_bytes()
    });
    let (_, new) = add_and_promote(&k);
    let args = rewrap_args(&st, &k, &[]);
    let child = spawn(&args, &[("ENCSTORE_LOCK_LEASE_SECS", "60")]);
    std::thread::sleep(Duration::from_millis(400));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        // It finished before the signal: nothing more to check.
        eprintln!("the rewrap finished before SIGINT; the interrupt path was not exercised");
        return;
    }
    assert!(stderr.contains("interrupted"), "{stderr}");
    // The lock was released: a --no-wait rewrap runs at once (with a 60 s
    // lease, a leaked lock would make it fail) and finishes the job.
    let mut a = args.to_vec();
    a.push("--no-wait");
    ok(&a);
    let v = status_json(&st, &k);
    assert_eq!(v["by_key_id"][new.to_string()], N);
}
