//! The on-disk layout and the filesystem-specific behaviour: modes, hidden
//! and swept temporary files, directories as prefixes, versions, and the
//! lock file's format and renewal by atomic replacement.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use encstore_core::{Error, Storage, WriteCondition};
use encstore_fs::{DEFAULT_LEASE, FsStorage};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn expect_backend<T: std::fmt::Debug>(
    r: Result<T, Error>,
    want_op: &str,
    kind: std::io::ErrorKind,
    words: &str,
) {
    match r {
        Err(Error::Backend {
            backend: "fs",
            op,
            source,
        }) => {
            assert_eq!(op, want_op);
            let io = source.downcast_ref::<std::io::Error>().unwrap();
            assert_eq!(io.kind(), kind, "{io}");
            assert!(io.to_string().contains(words), "unclear message: {io}");
        }
        other => panic!("expected an fs {want_op} error, got {other:?}"),
    }
}

/// Files are 0600 and directories 0700: the root it creates, every key
/// directory, the lock directory and its files.
#[tokio::test]
async fn files_are_0600_and_directories_0700() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("new/root");
    let store = FsStorage::new(&root).unwrap();
    assert_eq!(store.lease_duration(), DEFAULT_LEASE);
    assert_eq!(DEFAULT_LEASE, Duration::from_secs(60));
    store.store("a/b/c", b("v")).await.unwrap();
    store.store("top", b("v")).await.unwrap();
    let root = store.root();
    assert_eq!(mode(root), 0o700);
    assert_eq!(mode(&root.join("a")), 0o700);
    assert_eq!(mode(&root.join("a/b")), 0o700);
    assert_eq!(mode(&root.join("a/b/c")), 0o600);
    assert_eq!(mode(&root.join("top")), 0o600);
    let lease = store.try_lock("some/lock").await.unwrap();
    let lock_file = store.lock_file_path("some/lock").unwrap();
    assert_eq!(mode(lock_file.parent().unwrap()), 0o700);
    assert_eq!(mode(&lock_file), 0o600);
    for e in std::fs::read_dir(lock_file.parent().unwrap()).unwrap() {
        let p = e.unwrap().path();
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p), want, "{}", p.display());
    }
    store.unlock(lease).await.unwrap();
}

/// Opening refuses a zero lease and a root that is a file.
#[test]
fn builder_refuses_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let r = FsStorage::builder(dir.path()).lease(Duration::ZERO).build();
    expect_backend(r, "open", std::io::ErrorKind::InvalidInput, "lease");
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let r = FsStorage::new(&file);
    expect_backend(
        r,
        "open",
        std::io::ErrorKind::NotADirectory,
        "not a directory",
    );
}

/// Temporary files and the lock directory never show through `list`,
/// `exists` or `stat`; a directory holding only a temporary file is not a
/// prefix. `list` sweeps temporary files older than the stale age (one hour
/// by default) and keeps fresher ones.
#[tokio::test]
async fn temp_files_are_invisible_and_stale_ones_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::new(dir.path()).unwrap();
    store.store("a/k", b("v")).await.unwrap();
    let _lease = store.try_lock("held").await.unwrap();
    let root = store.root().to_path_buf();
    std::fs::create_dir(root.join("only-temp")).unwrap();
    let fresh = root.join("a/.encstore-tmp.00000000000000aa");
    let old = root.join("only-temp/.encstore-tmp.00000000000000bb");
    let old_top = root.join(".encstore-tmp.00000000000000cc");
    for p in [&fresh, &old, &old_top] {
        std::fs::write(p, b"partial").unwrap();
    }
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    for p in [&old, &old_top] {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }
    assert_eq!(store.list("", true).await.unwrap(), vec!["a/k"]);
    assert_eq!(store.list("", false).await.unwrap(), vec!["a"]);
    assert_eq!(store.list("a", false).await.unwrap(), vec!["a/k"]);
    assert!(!store.exists("only-temp").await.unwrap());
    assert!(store.stat("only-temp").await.unwrap_err().is_not_found());
    assert!(
        fresh.exists(),
        "a fresh temp file may belong to a live writer"
    );
    assert!(
        !old.exists() && !old_top.exists(),
        "stale temp files are swept"
    );
}

/// A directory is a prefix, not an object: `load` gives NotFound, `stat`
/// says non-terminal, `exists` is true. Storing onto a directory, or through
/// an object, fails with a clear error and writes nothing. Directories
/// emptied by `delete` stay on disk but are no longer listed or found.
#[tokio::test]
async fn directories_are_prefixes_not_objects() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::new(dir.path()).unwrap();
    store.store("d/x", b("value")).await.unwrap();
    assert!(store.load("d").await.unwrap_err().is_not_found());
    assert!(store.load_versioned("d").await.unwrap_err().is_not_found());
    let info = store.stat("d").await.unwrap();
    assert!(!info.terminal);
    assert_eq!(info.size, 0);
    assert!(store.exists("d").await.unwrap());
    let info = store.stat("d/x").await.unwrap();
    assert!(info.terminal);
    assert_eq!(info.size, 5);
    assert!(info.modified.is_some());

    expect_backend(
        store.store("d", b("v")).await,
        "store",
        std::io::ErrorKind::IsADirectory,
        "prefix of other keys",
    );
    expect_backend(
        store.store("d/x/y", b("v")).await,
        "store",
        std::io::ErrorKind::NotADirectory,
        "a parent is an object",
    );
    expect_backend(
        store
            .store_if("d/x/y", b("v"), &WriteCondition::Absent)
            .await,
        "store_if",
        std::io::ErrorKind::NotADirectory,
        "a parent is an object",
    );
    assert!(store.load("d/x/y").await.unwrap_err().is_not_found());
    store.delete("d/x/y").await.unwrap();
    assert_eq!(&store.load("d/x").await.unwrap()[..], b"value");

    store.store("e/f/g", b("v")).await.unwrap();
    store.delete("e/f/g").await.unwrap();
    assert!(store.root().join("e/f").is_dir(), "empty directories stay");
    assert!(!store.exists("e").await.unwrap());
    assert!(!store.exists("e/f").await.unwrap());
    assert_eq!(store.list("", false).await.unwrap(), vec!["d"]);
    assert_eq!(store.list("e", true).await.unwrap(), Vec::<String>::new());
    // And they can hold keys again.
    store.store("e/f/h", b("v")).await.unwrap();
    assert_eq!(store.list("", false).await.unwrap(), vec!["d", "e"]);
    // Deleting a prefix removes the directory tree.
    store.delete("e").await.unwrap();
    assert!(!store.root().join("e").exists());
}

/// Versions change on every write (even of identical bytes), `store_if`
/// returns the version `load_versioned` then reports, and a failed
/// `store_if` writes nothing and leaves no temporary file.
#[tokio::test]
async fn versions_and_conditional_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::new(dir.path()).unwrap();
    let v1 = store
        .store_if("k", b("same"), &WriteCondition::Absent)
        .await
        .unwrap();
    assert_eq!(store.load_versioned("k").await.unwrap().version, v1);
    let parts: Vec<&str> = v1.as_str().split('-').collect();
    assert_eq!(parts.len(), 3, "hash-inode-size: {v1:?}");
    assert_eq!(parts[2], "4");
    let ino = std::fs::metadata(store.root().join("k")).unwrap().ino();
    assert_eq!(u64::from_str_radix(parts[1], 16).unwrap(), ino);

    store.store("k", b("same")).await.unwrap();
    let v2 = store.load_versioned("k").await.unwrap().version;
    assert_ne!(v1, v2, "a rewrite of identical bytes is a new version");

    match store
        .store_if("k", b("lost"), &WriteCondition::Matches(v1))
        .await
    {
        Err(Error::PreconditionFailed { key }) => assert_eq!(key, "k"),
        other => panic!("expected PreconditionFailed, got {other:?}"),
    }
    match store
        .store_if("k", b("lost"), &WriteCondition::Absent)
        .await
    {
        Err(Error::PreconditionFailed { .. }) => {}
        other => panic!("expected PreconditionFailed, got {other:?}"),
    }
    assert_eq!(&store.load("k").await.unwrap()[..], b"same");
    let v3 = store
        .store_if("k", b("new"), &WriteCondition::Matches(v2.clone()))
        .await
        .unwrap();
    assert_ne!(v3, v2);
    assert_eq!(&store.load("k").await.unwrap()[..], b"new");
    match store
        .store_if("gone", b("x"), &WriteCondition::Matches(v3))
        .await
    {
        Err(Error::PreconditionFailed { .. }) => {}
        other => panic!("expected PreconditionFailed, got {other:?}"),
    }
    let names: Vec<_> = std::fs::read_dir(store.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".encstore-tmp.")),
        "{names:?}"
    );
    assert_eq!(&store.load_head("k", 2).await.unwrap()[..], b"ne");
    assert_eq!(&store.load_head("k", 99).await.unwrap()[..], b"new");
}

#[derive(serde::Deserialize)]
struct LockRecord {
    name: String,
    token: String,
    expires_unix_ms: u64,
    pid: u32,
    host: String,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn read_record(p: &Path) -> LockRecord {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The lock file is JSON naming the lock, the owner token, the expiry, the
/// pid and the host. Renewal replaces it atomically (a new inode each time,
/// never truncated in place) with a later expiry and the same token; unlock
/// removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_file_format_and_renewal_by_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::builder(dir.path())
        .lease(Duration::from_millis(900))
        .build()
        .unwrap();
    let lease = store.try_lock("jobs/renew").await.unwrap();
    let path = store.lock_file_path("jobs/renew").unwrap();
    let first_bytes = std::fs::read(&path).unwrap();
    let first: LockRecord = serde_json::from_slice(&first_bytes).unwrap();
    // Keep the first file open: its inode cannot be reused meanwhile, and
    // its content shows whether anyone wrote to it in place.
    let mut first_file = std::fs::File::open(&path).unwrap();
    let first_ino = first_file.metadata().unwrap().ino();
    assert_eq!(first.name, "jobs/renew");
    assert_eq!(first.token, lease.token());
    assert_eq!(first.pid, std::process::id());
    assert!(!first.host.is_empty());
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(first.expires_unix_ms > now_ms && first.expires_unix_ms <= now_ms + 900);

    // More than three renewal periods later: renewed by replacement.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let later = read_record(&path);
    assert_eq!(later.token, lease.token());
    assert!(later.expires_unix_ms > first.expires_unix_ms);
    assert_ne!(
        std::fs::metadata(&path).unwrap().ino(),
        first_ino,
        "renewal replaced the file"
    );
    let mut old_content = Vec::new();
    std::io::Read::read_to_end(&mut first_file, &mut old_content).unwrap();
    assert_eq!(
        old_content, first_bytes,
        "the old file was never written in place"
    );
    assert!(lease.is_held());
    assert!(matches!(
        store.try_lock("jobs/renew").await,
        Err(Error::LockHeld { .. })
    ));
    store.unlock(lease).await.unwrap();
    assert!(!path.exists());
}

/// A lock file that cannot be parsed (damaged, or written by something
/// else) is respected while younger than a lease and taken over after.
#[tokio::test]
async fn unparsable_lock_file_is_stale_only_after_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::builder(dir.path())
        .lease(Duration::from_secs(30))
        .build()
        .unwrap();
    let path = store.lock_file_path("damaged").unwrap();
    std::fs::write(&path, b"{ not json").unwrap();
    assert!(matches!(
        store.try_lock("damaged").await,
        Err(Error::LockHeld { .. })
    ));
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(31))
        .unwrap();
    let lease = store.try_lock("damaged").await.unwrap();
    assert_eq!(read_record(&path).token, lease.token());
    store.unlock(lease).await.unwrap();
}

/// Two instances on the same root: a lease whose renewal was stopped runs
/// out, the other instance takes over, and the old lease's unlock fails
/// with LockNotHeld, leaving the successor's lock file untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_cannot_release_the_successor() {
    let dir = tempfile::tempdir().unwrap();
    // A one-second lease: long enough that the successor's renewals (every
    // third of it) keep it held on a loaded machine, short for a test.
    let a = FsStorage::builder(dir.path())
        .lease(Duration::from_secs(1))
        .build()
        .unwrap();
    let b_store = FsStorage::builder(dir.path())
        .lease(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut old = a.try_lock("l").await.unwrap();
    old.stop_renewal();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(!old.is_held());
    let new = b_store.try_lock("l").await.unwrap();
    let path = a.lock_file_path("l").unwrap();
    match a.unlock(old).await {
        Err(Error::LockNotHeld { name }) => assert_eq!(name, "l"),
        other => panic!("expected LockNotHeld, got {other:?}"),
    }
    assert_eq!(read_record(&path).token, new.token());
    assert!(new.is_held());
    b_store.unlock(new).await.unwrap();
}

/// `FsStorage` is a shareable `Storage`: usable as `Arc<dyn Storage>` across
/// tokio tasks, and cheap to clone (clones share one root).
#[tokio::test]
async fn fs_storage_is_a_shareable_storage() {
    fn assert_bounds<T: Storage + Clone + Send + Sync + 'static>() {}
    assert_bounds::<FsStorage>();
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::new(dir.path()).unwrap();
    let shared: std::sync::Arc<dyn Storage> = std::sync::Arc::new(store.clone());
    let task = tokio::spawn(async move { shared.store("from/task", b("x")).await });
    task.await.unwrap().unwrap();
    assert_eq!(&store.load("from/task").await.unwrap()[..], b"x");
    assert_eq!(
        store.root(),
        std::fs::canonicalize(dir.path()).unwrap().as_path()
    );
}

/// The lease is bounded (100 ms..24 h) when the store opens: a zero, too
/// short, too long or absurd lease is a clear `open` error, never a panic or
/// an overflowed expiry later. At the bounds, the lock record's expiry is
/// exactly a lease ahead of the clock.
#[tokio::test]
async fn lease_is_bounded_at_build_and_expiry_is_checked() {
    use encstore_core::lease::{MAX_LEASE, MIN_LEASE};
    let dir = tempfile::tempdir().unwrap();
    for (lease, words) in [
        (Duration::ZERO, "too short"),
        (Duration::from_millis(99), "too short"),
        (MAX_LEASE + Duration::from_millis(1), "too long"),
        (Duration::from_secs(u64::MAX / 1000), "too long"),
        (Duration::MAX, "too long"),
    ] {
        let r = FsStorage::builder(dir.path()).lease(lease).build();
        expect_backend(r, "open", std::io::ErrorKind::InvalidInput, words);
    }
    for lease in [MIN_LEASE, MAX_LEASE] {
        let store = FsStorage::builder(dir.path()).lease(lease).build().unwrap();
        assert_eq!(store.lease_duration(), lease);
        let before = now_ms();
        let held = store.try_lock("bounded").await.unwrap();
        let after = now_ms();
        let rec = read_record(&store.lock_file_path("bounded").unwrap());
        let ms = lease.as_millis() as u64;
        assert!(
            rec.expires_unix_ms >= before + ms && rec.expires_unix_ms <= after + ms,
            "{lease:?}: expiry {} not a lease after [{before}, {after}]",
            rec.expires_unix_ms
        );
        store.unlock(held).await.unwrap();
    }
}
