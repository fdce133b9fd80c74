//! `encstore::open::open_store` for each kind of location: directories
//! (real filesystem), `memory://`, `s3://` against SeaweedFS, and `gs://` /
//! `az://` without a server (they open or fail clearly). The lease from
//! `ENCSTORE_LOCK_LEASE_SECS` is checked in child processes, each with its
//! own environment (setting variables in-process needs `unsafe`).
//!
//! The S3 test skips with `SKIPPED` without a server, and fails under
//! `ENCSTORE_REQUIRE_SERVICES=1`.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use encstore::open::{OpenStoreError, OpenStoreOptions, StoreLocation, open_store};
use encstore_core::Storage;

async fn open(
    location: &str,
    options: &OpenStoreOptions,
) -> Result<Arc<dyn Storage>, OpenStoreError> {
    open_store(&location.parse().unwrap(), options).await
}

fn open_err(r: Result<Arc<dyn Storage>, OpenStoreError>) -> OpenStoreError {
    match r {
        Ok(s) => panic!("opened {s:?}"),
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "multi-line: {e}");
            e
        }
    }
}

/// A store holds what it is given, and a lock can be taken.
async fn assert_works(store: &dyn Storage) {
    store
        .store("certs/a.pem", Bytes::from_static(b"alpha"))
        .await
        .unwrap();
    assert_eq!(&store.load("certs/a.pem").await.unwrap()[..], b"alpha");
    assert_eq!(
        store.list("certs", true).await.unwrap(),
        vec!["certs/a.pem".to_owned()]
    );
    let lease = store.try_lock("open-store-test").await.unwrap();
    store.unlock(lease).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_are_created_only_for_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let location = dir.to_str().unwrap().to_owned();

    // A read of a missing directory fails clearly and creates nothing.
    let e = open_err(open(&location, &OpenStoreOptions::read()).await);
    assert!(
        matches!(&e, OpenStoreError::Missing { path } if *path == dir),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("store {} does not exist", dir.display())
    );
    assert!(!dir.exists());

    // A write creates it (0700), and it works.
    let store = open(&location, &OpenStoreOptions::write()).await.unwrap();
    assert!(dir.is_dir());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{mode:o}");
    }
    assert_works(store.as_ref()).await;
    assert_eq!(store.lease_duration(), encstore_fs::DEFAULT_LEASE);

    // Now reads open it, by path and by file:// URL, and see the data.
    for l in [location.clone(), format!("file://{location}")] {
        let s = open(&l, &OpenStoreOptions::read()).await.unwrap();
        assert_eq!(&s.load("certs/a.pem").await.unwrap()[..], b"alpha", "{l}");
    }

    // A file is not a store, for reads and for writes.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let f = file.to_str().unwrap();
    let e = open_err(open(f, &OpenStoreOptions::read()).await);
    assert!(matches!(e, OpenStoreError::NotADirectory { .. }), "{e:?}");
    assert_eq!(e.to_string(), format!("store {f} is not a directory"));
    let e = open_err(open(f, &OpenStoreOptions::write()).await);
    assert!(
        matches!(&e, OpenStoreError::Open { location, .. } if location == f),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("cannot open store {f}: ")),
        "{e}"
    );
    // Under a file: the operating system's reason, with the path.
    let under = format!("{f}/sub");
    let e = open_err(open(&under, &OpenStoreOptions::read()).await);
    assert!(matches!(e, OpenStoreError::Inaccessible { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("cannot open store {under}: ")),
        "{e}"
    );

    // Text that is not a location never reaches the filesystem.
    for (bad, want) in [
        ("", "the store location is empty"),
        (
            "file://rel/path",
            "store location \"file://rel/path\": a file: URL needs an absolute path (file:///abs/path)",
        ),
    ] {
        let e = bad.parse::<StoreLocation>().unwrap_err();
        assert_eq!(e.to_string(), want);
        assert_eq!(OpenStoreError::from(e).to_string(), want);
    }
    // A Directory built in code with an empty path is refused too.
    let e = open_err(open_store(&StoreLocation::directory(""), &OpenStoreOptions::write()).await);
    assert!(matches!(e, OpenStoreError::Location(_)), "{e:?}");
}

#[cfg(feature = "objstore")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_locations_open_fresh_stores() {
    let a = open("memory:///tests", &OpenStoreOptions::read())
        .await
        .unwrap();
    assert_works(a.as_ref()).await;
    let b = open("memory:///tests", &OpenStoreOptions::read())
        .await
        .unwrap();
    assert!(b.list("", true).await.unwrap().is_empty());
    let c = open(
        "memory://",
        &OpenStoreOptions::read().lease(Duration::from_secs(7)),
    )
    .await
    .unwrap();
    assert_eq!(c.lease_duration(), Duration::from_secs(7));
    let e = open_err(
        open(
            "memory://",
            &OpenStoreOptions::read().lease(Duration::from_secs(90_000)),
        )
        .await,
    );
    assert!(
        matches!(
            e,
            OpenStoreError::Lease {
                error: encstore_core::lease::LeaseError::TooLong(_)
            }
        ),
        "{e:?}"
    );
}

#[cfg(feature = "objstore")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_locations_against_seaweedfs() {
    let Some((_endpoint, bucket)) =
        encstore_objstore::testing::server("s3_locations_against_seaweedfs")
    else {
        return;
    };
    // The endpoint and credentials come from AWS_*, as for the tool.
    let prefix = format!(
        "encstore-tests/open-store-{}",
        &encstore_core::new_lease_token().unwrap()[..12]
    );
    let location = format!("s3://{bucket}/{prefix}");
    let store = open(&location, &OpenStoreOptions::read()).await.unwrap();
    assert_works(store.as_ref()).await;
    assert_eq!(store.lease_duration(), encstore_objstore::DEFAULT_LEASE);
    // The same objects through a second handle, and the prefix is honoured.
    let again = open(&location, &OpenStoreOptions::read()).await.unwrap();
    assert_eq!(&again.load("certs/a.pem").await.unwrap()[..], b"alpha");
    let parent = open(
        &format!("s3://{bucket}/{prefix}/certs"),
        &OpenStoreOptions::read(),
    )
    .await
    .unwrap();
    assert_eq!(&parent.load("a.pem").await.unwrap()[..], b"alpha");
    store.delete("certs").await.unwrap();

    // A missing bucket opens (no request is sent) and then fails naming it.
    let missing = format!(
        "encstore-missing-{}",
        &encstore_core::new_lease_token().unwrap()[..8]
    );
    let s = open(&format!("s3://{missing}/p"), &OpenStoreOptions::read())
        .await
        .unwrap();
    let e = s.load("k").await.unwrap_err();
    assert!(e.to_string().contains(&missing), "{e}");
}

/// Runs the `#[ignore]`d test `child_open` of this binary with `env`, and
/// checks that it passed.
fn run_child(env: &[(&str, &str)], remove: &[&str]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_open",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("ENCSTORE_OPEN_STORE_CHILD", "1")
    .env_remove("ENCSTORE_LOCK_LEASE_SECS");
    for v in remove {
        cmd.env_remove(v);
    }
    let out = cmd.envs(env.iter().copied()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child with {env:?} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}

/// The child: opens `ENCSTORE_TEST_LOCATION` with the options named by
/// `ENCSTORE_TEST_OPTIONS` and checks the outcome `ENCSTORE_TEST_EXPECT`:
/// `lease=SECS` (it opens, with that lease), `error=MESSAGE` (the lease
/// variable is refused with that message), or `open-error=PREFIX` (the
/// backend refuses, with a message that starts with PREFIX).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the tests below in child processes"]
async fn child_open() {
    if std::env::var("ENCSTORE_OPEN_STORE_CHILD").as_deref() != Ok("1") {
        return;
    }
    let var = |n: &str| std::env::var(n).unwrap();
    let mut options = OpenStoreOptions::write();
    match var("ENCSTORE_TEST_OPTIONS").as_str() {
        "default" => {}
        "lease=3" => options = options.lease(Duration::from_secs(3)),
        "no-env" => options = options.lease_from_env(false),
        other => panic!("{other}"),
    }
    let location = var("ENCSTORE_TEST_LOCATION");
    let r = open(&location, &options).await;
    let expect = var("ENCSTORE_TEST_EXPECT");
    if let Some(secs) = expect.strip_prefix("lease=") {
        let store = r.unwrap();
        assert_eq!(
            store.lease_duration(),
            Duration::from_secs_f64(secs.parse().unwrap())
        );
    } else if let Some(msg) = expect.strip_prefix("error=") {
        let e = open_err(r);
        assert!(matches!(e, OpenStoreError::LeaseEnv { .. }), "{e:?}");
        assert_eq!(e.to_string(), msg);
    } else if let Some(prefix) = expect.strip_prefix("open-error=") {
        let e = open_err(r);
        assert!(matches!(e, OpenStoreError::Open { .. }), "{e:?}");
        assert!(e.to_string().starts_with(prefix), "{e}");
    } else {
        panic!("{expect}");
    }
}

#[test]
fn lease_from_the_environment_is_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let dir = dir.to_str().unwrap();
    let mut locations = vec![dir];
    if cfg!(feature = "objstore") {
        locations.push("memory:///lease");
    }
    for location in locations {
        for (value, options, expect) in [
            (None, "default", "lease=60".to_owned()),
            (Some(""), "default", "lease=60".to_owned()),
            (Some("2.5"), "default", "lease=2.5".to_owned()),
            (Some("0.1"), "default", "lease=0.1".to_owned()),
            (Some("86400"), "default", "lease=86400".to_owned()),
            (
                Some("0.05"),
                "default",
                "error=ENCSTORE_LOCK_LEASE_SECS: a lock lease of 50ms is too short (the minimum is 100 ms)".to_owned(),
            ),
            (
                Some("86401"),
                "default",
                "error=ENCSTORE_LOCK_LEASE_SECS: a lock lease of 86401s is too long (the maximum is 24 h)".to_owned(),
            ),
            (
                Some("soon"),
                "default",
                "error=ENCSTORE_LOCK_LEASE_SECS: \"soon\" is not a lock lease: give a number of seconds between 0.1 and 86400".to_owned(),
            ),
            (
                Some("-1"),
                "default",
                "error=ENCSTORE_LOCK_LEASE_SECS: \"-1\" is not a lock lease: give a number of seconds between 0.1 and 86400".to_owned(),
            ),
            // An explicit lease wins; the environment can be ignored.
            (Some("soon"), "lease=3", "lease=3".to_owned()),
            (Some("soon"), "no-env", "lease=60".to_owned()),
        ] {
            let mut env = vec![
                ("ENCSTORE_TEST_LOCATION", location),
                ("ENCSTORE_TEST_OPTIONS", options),
                ("ENCSTORE_TEST_EXPECT", expect.as_str()),
            ];
            if let Some(v) = value {
                env.push(("ENCSTORE_LOCK_LEASE_SECS", v));
            }
            run_child(&env, &[]);
        }
    }
}

#[cfg(feature = "objstore")]
#[test]
fn gs_and_az_locations_open_or_fail_clearly_without_a_server() {
    // No cloud settings at all in the child: what a fresh machine sees.
    let cloud_vars: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("GOOGLE_") || k.starts_with("AZURE_"))
        .collect();
    let remove: Vec<&str> = cloud_vars.iter().map(String::as_str).collect();
    // GCS opens: object_store finds credentials lazily, on the first
    // request. Azure needs an account name up front, and says so.
    for (location, scheme, expect) in [
        (
            "gs://encstore-test-bucket/prefix",
            encstore::open::ObjectStoreScheme::Gcs,
            "lease=60",
        ),
        (
            "az://encstore-test-container/prefix",
            encstore::open::ObjectStoreScheme::Azure,
            "open-error=cannot open store az://encstore-test-container/prefix: azure backend failed to configure: ",
        ),
    ] {
        assert_eq!(
            location
                .parse::<StoreLocation>()
                .unwrap()
                .object_store_scheme(),
            Some(scheme)
        );
        run_child(
            &[
                ("ENCSTORE_TEST_LOCATION", location),
                ("ENCSTORE_TEST_OPTIONS", "default"),
                ("ENCSTORE_TEST_EXPECT", expect),
            ],
            &remove,
        );
    }
}

#[cfg(not(feature = "objstore"))]
#[tokio::test]
async fn object_store_locations_need_their_feature() {
    for l in ["s3://bucket/p", "gs://bucket/p", "az://c/p", "memory:///p"] {
        let e = open_err(open(l, &OpenStoreOptions::read()).await);
        assert!(matches!(e, OpenStoreError::NotCompiled { .. }), "{e:?}");
        assert!(
            e.to_string()
                .ends_with("store locations are not supported by this build: enable the `objstore` cargo feature of the encstore crate"),
            "{e}"
        );
    }
}
