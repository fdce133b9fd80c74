//! Keys can never reach outside ROOT: malformed keys are refused with
//! `InvalidKey` by every operation, and symlinks inside ROOT (to a directory
//! or a file outside it) are refused rather than followed, as parents and as
//! leaves. Nothing outside ROOT is created, read, changed or deleted.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::os::unix::fs::symlink;
use std::path::Path;

use bytes::Bytes;
use encstore_core::{Error, InvalidKeyReason, Storage, WriteCondition, stream};
use encstore_fs::FsStorage;

struct Fixture {
    _dir: tempfile::TempDir,
    store: FsStorage,
    outside: std::path::PathBuf,
}

/// ROOT holds `link -> OUTSIDE` (a directory symlink) and
/// `leaf -> OUTSIDE/secret` (a file symlink), plus `real/dirlink -> OUTSIDE`.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"top secret").unwrap();
    std::fs::create_dir(outside.join("sub")).unwrap();
    std::fs::write(outside.join("sub/file"), b"deeper").unwrap();
    let store = FsStorage::new(dir.path().join("root")).unwrap();
    let root = store.root().to_path_buf();
    symlink(&outside, root.join("link")).unwrap();
    symlink(outside.join("secret"), root.join("leaf")).unwrap();
    std::fs::create_dir(root.join("real")).unwrap();
    symlink(&outside, root.join("real/dirlink")).unwrap();
    std::fs::write(root.join("real/ok"), b"fine").unwrap();
    Fixture {
        _dir: dir,
        store,
        outside,
    }
}

/// A snapshot of everything under `dir` (paths and contents).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.push((e.path().display().to_string(), Vec::new()));
                stack.push(e.path());
            } else {
                out.push((
                    e.path().display().to_string(),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn assert_symlink_refused<T: std::fmt::Debug>(what: &str, r: Result<T, Error>) {
    match r {
        Err(Error::Backend {
            backend: "fs",
            source,
            ..
        }) => {
            let msg = source.to_string();
            assert!(msg.contains("symlink"), "{what}: unclear message {msg:?}");
            let io = source.downcast_ref::<std::io::Error>().unwrap();
            assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput, "{what}");
        }
        other => panic!("{what}: expected a symlink refusal, got {other:?}"),
    }
}

/// Runs every operation on `key` and expects each to refuse the symlink.
async fn every_op_refuses(store: &FsStorage, key: &str) {
    let v = Bytes::from_static(b"attacker");
    assert_symlink_refused(&format!("store {key}"), store.store(key, v.clone()).await);
    assert_symlink_refused(
        &format!("store_if absent {key}"),
        store
            .store_if(key, v.clone(), &WriteCondition::Absent)
            .await,
    );
    assert_symlink_refused(&format!("load {key}"), store.load(key).await);
    assert_symlink_refused(&format!("load_head {key}"), store.load_head(key, 3).await);
    assert_symlink_refused(
        &format!("load_versioned {key}"),
        store.load_versioned(key).await,
    );
    assert_symlink_refused(
        &format!("load_range {key}"),
        store.load_range(key, 0..3).await,
    );
    assert_symlink_refused(&format!("load_stream {key}"), store.load_stream(key).await);
    assert_symlink_refused(
        &format!("load_stream_versioned {key}"),
        store.load_stream_versioned(key).await,
    );
    assert_symlink_refused(
        &format!("store_stream {key}"),
        store.store_stream(key, stream::once(v.clone())).await,
    );
    assert_symlink_refused(
        &format!("store_stream_if absent {key}"),
        store
            .store_stream_if(key, stream::once(v.clone()), &WriteCondition::Absent)
            .await,
    );
    assert_symlink_refused(&format!("delete {key}"), store.delete(key).await);
    assert_symlink_refused(&format!("exists {key}"), store.exists(key).await);
    assert_symlink_refused(&format!("stat {key}"), store.stat(key).await);
    assert_symlink_refused(&format!("list {key}"), store.list(key, false).await);
    assert_symlink_refused(&format!("list -r {key}"), store.list(key, true).await);
}

/// A symlink to a directory outside ROOT, as a parent (at the top and
/// nested), and a symlink to a file outside ROOT, as the leaf: every
/// operation refuses it, and the outside tree is untouched.
#[tokio::test]
async fn symlinks_are_refused_by_every_operation() {
    let f = fixture();
    let before = snapshot(&f.outside);
    for key in [
        "link/secret",
        "link/new",
        "link/sub/file",
        "link/sub/new/deeper",
        "link",
        "leaf",
        "real/dirlink",
        "real/dirlink/secret",
        "real/dirlink/brand-new",
    ] {
        every_op_refuses(&f.store, key).await;
    }
    assert_eq!(snapshot(&f.outside), before, "nothing outside ROOT changed");
    // The symlinks themselves are still there, unfollowed and unreplaced.
    let root = f.store.root();
    for l in ["link", "leaf", "real/dirlink"] {
        assert!(
            std::fs::symlink_metadata(root.join(l))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
    // Listing never descends into or shows a symlink; real keys still work.
    assert_eq!(f.store.list("", true).await.unwrap(), vec!["real/ok"]);
    assert_eq!(f.store.list("", false).await.unwrap(), vec!["real"]);
    assert_eq!(f.store.list("real", false).await.unwrap(), vec!["real/ok"]);
    assert_eq!(&f.store.load("real/ok").await.unwrap()[..], b"fine");
    // Deleting the prefix holding a symlink removes the link, not its target.
    f.store.delete("real").await.unwrap();
    assert!(!root.join("real").exists());
    assert_eq!(
        snapshot(&f.outside),
        before,
        "delete did not follow the link"
    );
}

/// Malformed keys (traversal, absolute, empty segments, `.`, NUL,
/// backslash, control characters, reserved names, over-long) are refused
/// with `InvalidKey` by every operation, before touching the disk.
#[tokio::test]
async fn malformed_keys_are_refused_by_every_operation() {
    let f = fixture();
    let before_outside = snapshot(&f.outside);
    let root_parent = f.store.root().parent().unwrap().to_path_buf();
    let before_parent: Vec<_> = std::fs::read_dir(&root_parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let long_segment = "x".repeat(256);
    let long_key = ["y"; 600].join("/");
    let cases: Vec<(&str, InvalidKeyReason)> = vec![
        ("../outside/secret", InvalidKeyReason::DotDotSegment),
        ("a/../../outside/x", InvalidKeyReason::DotDotSegment),
        ("..", InvalidKeyReason::DotDotSegment),
        ("/etc/passwd", InvalidKeyReason::LeadingSlash),
        ("", InvalidKeyReason::Empty),
        ("a//b", InvalidKeyReason::EmptySegment),
        ("a/", InvalidKeyReason::TrailingSlash),
        ("./a", InvalidKeyReason::DotSegment),
        ("a\0b", InvalidKeyReason::Nul),
        ("..\\outside\\secret", InvalidKeyReason::Backslash),
        ("a\nb", InvalidKeyReason::ControlCharacter),
        (".encstore-locks/x", InvalidKeyReason::Reserved),
        (
            "a/.encstore-tmp.0123456789abcdef",
            InvalidKeyReason::Reserved,
        ),
        (&long_segment, InvalidKeyReason::SegmentTooLong),
        (&long_key, InvalidKeyReason::TooLong),
    ];
    let s = &f.store;
    for (key, want) in cases {
        let v = || Bytes::from_static(b"x");
        let check = |op: &str, e: Option<Error>| match e {
            Some(Error::InvalidKey { reason, .. }) => {
                assert_eq!(reason, want, "{op} {key:?}")
            }
            other => panic!("{op} {key:?}: expected InvalidKey({want:?}), got {other:?}"),
        };
        check("store", s.store(key, v()).await.err());
        check(
            "store_if",
            s.store_if(key, v(), &WriteCondition::Absent).await.err(),
        );
        check("load", s.load(key).await.err());
        check("load_head", s.load_head(key, 1).await.err());
        check("load_versioned", s.load_versioned(key).await.err());
        check("load_range", s.load_range(key, 0..1).await.err());
        check("load_stream", s.load_stream(key).await.err());
        check(
            "load_stream_versioned",
            s.load_stream_versioned(key).await.err(),
        );
        check(
            "store_stream",
            s.store_stream(key, stream::once(v())).await.err(),
        );
        check(
            "store_stream_if",
            s.store_stream_if(key, stream::once(v()), &WriteCondition::Absent)
                .await
                .err(),
        );
        check("delete", s.delete(key).await.err());
        check("exists", s.exists(key).await.err());
        check("stat", s.stat(key).await.err());
        check("try_lock", s.try_lock(key).await.err());
        check("lock", s.lock(key).await.err());
        check("lock_file_path", s.lock_file_path(key).err());
        if !key.is_empty() {
            // The empty prefix is the whole store, valid for list.
            check("list", s.list(key, true).await.err());
        }
    }
    assert_eq!(snapshot(&f.outside), before_outside);
    let after_parent: Vec<_> = std::fs::read_dir(&root_parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before_parent, after_parent, "nothing created next to ROOT");
}

/// A FIFO planted in ROOT is neither read (which would hang a thread) nor
/// listed: `load` fails at once with a clear error.
#[tokio::test]
async fn fifos_are_refused_without_blocking() {
    let f = fixture();
    let fifo = f.store.root().join("fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo failed");
    let load = tokio::time::timeout(std::time::Duration::from_secs(5), f.store.load("fifo"))
        .await
        .expect("load of a FIFO must not block");
    match load {
        Err(Error::Backend { source, .. }) => {
            assert!(
                source.to_string().contains("not a regular file"),
                "{source}"
            )
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    for (op, r) in [
        ("load_range", f.store.load_range("fifo", 0..1).await.err()),
        ("load_stream", f.store.load_stream("fifo").await.err()),
        (
            "load_stream_versioned",
            f.store.load_stream_versioned("fifo").await.err(),
        ),
    ] {
        match r {
            Some(Error::Backend { source, .. }) => assert!(
                source.to_string().contains("not a regular file"),
                "{op}: {source}"
            ),
            other => panic!("{op}: expected a backend error, got {other:?}"),
        }
    }
    assert!(f.store.stat("fifo").await.is_err());
    assert_eq!(f.store.list("", true).await.unwrap(), vec!["real/ok"]);
}
