//! Rewriting keyset files: an exclusive lock for the whole command and a
//! compare-before-rename (two concurrent writers never lose a key), owner,
//! group and mode kept, symlinks written through, and no silent overwrite
//! of another file. Run as root, some tests also run the binary as `nobody`
//! (uid 65534); they print SKIPPED when not root.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

const NOBODY: u32 = 65534;

fn key_count(k: &str) -> usize {
    read_keyset(k).len()
}

fn add_key_args(k: &str) -> Vec<&str> {
    vec![
        "add-key",
        "--key-template",
        "AES128_GCM",
        "--in",
        k,
        "--out",
        k,
    ]
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("encstore")
}

/// Concurrent add-key runs on one file: afterwards every run that
/// succeeded has its key in the file; a run that failed failed cleanly
/// (one error line) and wrote nothing.
#[test]
fn concurrent_add_keys_never_lose_a_key() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let mut expected = 1;
    for round in 0..12 {
        let children: Vec<_> = (0..4)
            .map(|_| {
                Command::new(bin())
                    .args(add_key_args(&k))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                expected += 1;
            } else {
                let errors = err.lines().filter(|l| l.starts_with("encstore: error:"));
                assert_eq!(errors.count(), 1, "{err}");
            }
        }
        assert_eq!(key_count(&k), expected, "round {round}: a key was lost");
    }
    // The lock waits rather than fails, so every run got its key in.
    assert_eq!(expected, 1 + 12 * 4);
    // No temporary or lock files left behind.
    let names: Vec<_> = std::fs::read_dir(d.0.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

/// While another process holds the keyset file's lock, a rewriting command
/// waits (saying so) and then works on the file as the holder left it.
#[test]
fn rewriting_commands_wait_for_the_keyset_lock() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let held = std::fs::File::open(&k).unwrap();
    held.lock().unwrap();
    let mut child = Command::new(bin())
        .args(add_key_args(&k))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("waiting"), "{line}");
    // The holder rewrites the file meanwhile (as another encstore would).
    ok(&[
        "add-key",
        "--key-template",
        "AES256_GCM",
        "--in",
        &k,
        "--out",
        &d.s("k2.json"),
    ]);
    let replaced = std::fs::read(d.p("k2.json")).unwrap();
    std::fs::write(&k, &replaced).unwrap();
    assert_eq!(key_count(&k), 2);
    held.unlock().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(
        key_count(&k),
        3,
        "the waiting add-key lost the holder's key"
    );
}

/// A keyset path that is a symlink is written through to its target, in
/// the target's directory; the link stays a link.
#[test]
fn symlinked_keyset_is_written_through() {
    let d = Dir::new();
    std::fs::create_dir(d.p("real")).unwrap();
    let target = keyset(&d, "real/k.json");
    let link = d.p("k.json");
    std::os::unix::fs::symlink("real/k.json", &link).unwrap();
    let l = link.display().to_string();
    ok(&add_key_args(&l));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the symlink was replaced by a file"
    );
    assert_eq!(key_count(&target), 2);
    // Through the link again, with a promote.
    let id = read_keyset(&target).info().keys[1].key_id.to_string();
    ok(&key_args("promote-key", &id, &l));
    assert_eq!(primary_of(&target).to_string(), id);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // No temporary files in either directory.
    assert_eq!(std::fs::read_dir(d.p("real")).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(d.0.path()).unwrap().count(), 2);
    // create-keyset --force through a link replaces the target, not the link.
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &l,
        "--force",
    ]);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(key_count(&target), 1);
}

/// create-keyset, and any command whose --out is not its --in, refuses to
/// overwrite an existing file unless --force.
#[test]
fn out_other_than_in_never_overwrites_without_force() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let other = keyset(&d, "other.json");
    let before = std::fs::read(&other).unwrap();
    let args = [
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &other,
    ];
    let err = fails(&args, 1, "already exists");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&other).unwrap(), before);
    let args = [
        "add-key",
        "--key-template",
        "AES256_GCM",
        "--in",
        &k,
        "--out",
        &other,
    ];
    fails(&args, 1, "already exists");
    let args = [
        "convert-keyset",
        "--in",
        &k,
        "--out",
        &other,
        "--out-format",
        "binary",
    ];
    fails(&args, 1, "already exists");
    assert_eq!(std::fs::read(&other).unwrap(), before);
    // The retire commands, whose --force overrides the store check, take
    // --overwrite for this.
    let id = primary_of(&k).to_string();
    ok(&[
        "add-key",
        "--key-template",
        "AES256_GCM",
        "--in",
        &k,
        "--out",
        &k,
    ]);
    let second = read_keyset(&k)
        .info()
        .keys
        .iter()
        .map(|x| x.key_id.to_string())
        .find(|x| *x != id)
        .unwrap();
    let args = [
        "disable-key",
        "--key-id",
        &second,
        "--in",
        &k,
        "--out",
        &other,
    ];
    let err = fails(&args, 1, "already exists");
    assert!(err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read(&other).unwrap(), before);
    ok(&[
        "disable-key",
        "--key-id",
        &second,
        "--in",
        &k,
        "--out",
        &other,
        "--overwrite",
    ]);
    assert_eq!(key_count(&other), 2);
    // --force replaces; a new file needs nothing.
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &other,
        "--force",
    ]);
    assert_ne!(std::fs::read(&other).unwrap(), before);
    ok(&[
        "add-key",
        "--key-template",
        "AES256_GCM",
        "--in",
        &k,
        "--out",
        &d.s("new.json"),
    ]);
    ok(&[
        "add-key",
        "--key-template",
        "AES256_GCM",
        "--in",
        &k,
        "--out",
        &other,
        "--force",
    ]);
    assert_eq!(key_count(&other), 3);
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0
}

/// A temp dir that `nobody` can use, with a copy of the binary it can run.
fn nobody_dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::Builder::new()
        .prefix("encstore-nobody")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let b = d.path().join("encstore");
    std::fs::copy(bin(), &b).unwrap();
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = d.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::os::unix::fs::chown(&work, Some(NOBODY), Some(NOBODY)).unwrap();
    (d, b)
}

fn as_nobody(bin: &Path, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin)
        .args(args)
        .env_remove("ENCSTORE_STORE")
        .env_remove("ENCSTORE_KEYSET")
        .output()
        .unwrap()
}

fn owner_mode(p: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(p).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

/// Rewriting keeps owner, group and mode: as root on files owned by
/// nobody, and as nobody on its own files; a rewrite that cannot keep the
/// owner is refused and writes nothing.
#[test]
fn rewrite_keeps_owner_group_and_mode() {
    if !is_root() {
        eprintln!(
            "SKIPPED rewrite_keeps_owner_group_and_mode: needs root (to chown and run as nobody)"
        );
        return;
    }
    let (d, bin) = nobody_dir();
    let work = d.path().join("work");
    let k = work.join("k.json");
    let ks = k.display().to_string();
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &ks,
    ]);
    std::os::unix::fs::chown(&k, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o640)).unwrap();

    // Root rewrites nobody's file in place.
    ok(&add_key_args(&ks));
    assert_eq!(owner_mode(&k), (NOBODY, NOBODY, 0o640));
    assert_eq!(key_count(&ks), 2);
    let first = read_keyset(&ks).primary_key_id();
    let second = read_keyset(&ks)
        .info()
        .keys
        .iter()
        .map(|x| x.key_id)
        .find(|x| *x != first)
        .unwrap();
    ok(&key_args("promote-key", &second.to_string(), &ks));
    assert_eq!(owner_mode(&k), (NOBODY, NOBODY, 0o640));
    // --force onto another of nobody's files keeps that file's owner and mode.
    let other = work.join("other.json");
    let os = other.display().to_string();
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &os,
    ]);
    std::os::unix::fs::chown(&other, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o604)).unwrap();
    ok(&[
        "add-key",
        "--key-template",
        "AES256_GCM",
        "--in",
        &ks,
        "--out",
        &os,
        "--force",
    ]);
    assert_eq!(owner_mode(&other), (NOBODY, NOBODY, 0o604));
    assert_eq!(key_count(&os), 3);

    // nobody rewrites its own file.
    let out = as_nobody(&bin, &add_key_args(&ks));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(owner_mode(&k), (NOBODY, NOBODY, 0o640));
    assert_eq!(key_count(&ks), 3);
    let out = as_nobody(
        &bin,
        &[
            "create-keyset",
            "--key-template",
            "AES256_GCM",
            "--out",
            &ks,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(key_count(&ks), 3);

    // nobody cannot give a new file root's ownership: refused, unchanged.
    let rootfile = work.join("root.json");
    let rs = rootfile.display().to_string();
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &rs,
    ]);
    std::fs::set_permissions(&rootfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::read(&rootfile).unwrap();
    let out = as_nobody(&bin, &add_key_args(&rs));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("owner"), "{err}");
    assert_eq!(std::fs::read(&rootfile).unwrap(), before);
    assert_eq!(owner_mode(&rootfile), (0, 0, 0o644));
    // Nothing left behind in the directory.
    let mut names: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["k.json", "other.json", "root.json"]);
}

/// ENCSTORE_LOCK_LEASE_SECS out of bounds, zero, negative, NaN or huge: a
/// clear error naming the variable, never a panic.
#[test]
fn lock_lease_env_is_bounded() {
    let d = Dir::new();
    let k = keyset(&d, "k.json");
    let st = d.s("store");
    put(&st, &k, "a", b"v");
    for bad in ["0", "-1", "NaN", "inf", "1e300", "100000", "0.001", "abc"] {
        let out = es()
            .env("ENCSTORE_LOCK_LEASE_SECS", bad)
            .args(rewrap_args(&st, &k, &[]))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {err}");
        assert!(
            err.starts_with("encstore: error: ") && err.contains("ENCSTORE_LOCK_LEASE_SECS"),
            "{bad}: {err}"
        );
        assert!(!err.contains("panicked"), "{bad}: {err}");
    }
    for good in ["0.5", "2", "86400"] {
        let out = es()
            .env("ENCSTORE_LOCK_LEASE_SECS", good)
            .args(rewrap_args(&st, &k, &[]))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{good}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
