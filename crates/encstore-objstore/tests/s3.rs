//! encstore-objstore against a real S3 server (SeaweedFS on loopback,
//! started by `scripts/seaweedfs.sh`), plus the timeout, unreachable and
//! credential tests, which need no server.
//!
//! Without `ENCSTORE_S3_ENDPOINT` the server tests print `SKIPPED` and pass,
//! unless `ENCSTORE_REQUIRE_SERVICES=1` (the full test command), where they
//! fail. Every test works under its own random prefix.
//!
//! Two tests re-run this test binary as child processes (the `child_*`
//! tests, `#[ignore]`d so that they only run when asked for by name).
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use encstore_core::{Error, Storage, WriteCondition, new_lease_token};
use encstore_objstore::object_store::{BackoffConfig, RetryConfig};
use encstore_objstore::{S3Storage, S3StorageBuilder};

/// The bucket and endpoint, or `None` (after printing why) when the server
/// is not configured.
fn server(test: &str) -> Option<(String, String)> {
    encstore_objstore::testing::server(test)
}

fn unique_prefix(test: &str) -> String {
    format!(
        "encstore-s3-tests/{test}-{}",
        &new_lease_token().unwrap()[..12]
    )
}

/// A builder for the test server under `prefix`, credentials from the
/// environment.
fn builder(endpoint: &str, bucket: &str, prefix: &str) -> S3StorageBuilder {
    S3StorageBuilder::from_env(bucket, prefix)
        .endpoint(endpoint)
        .allow_http(true)
}

fn store_for(test: &str, lease: Duration) -> Option<S3Storage> {
    let (endpoint, bucket) = server(test)?;
    Some(
        builder(&endpoint, &bucket, &unique_prefix(test))
            .lease_duration(lease)
            .build()
            .unwrap(),
    )
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let Some(store) = store_for("conformance", Duration::from_secs(2)) else {
        return;
    };
    let store: Arc<dyn Storage> = Arc::new(store);
    encstore_core::conformance::run_all(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_url_reads_the_environment() {
    let Some((_, bucket)) = server("from_url") else {
        return;
    };
    // scripts/seaweedfs.sh exports AWS_ENDPOINT_URL, AWS_REGION,
    // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_ALLOW_HTTP.
    let prefix = unique_prefix("from-url");
    let store = S3Storage::from_url(&format!("s3://{bucket}/{prefix}/")).unwrap();
    assert_eq!(store.bucket(), Some(bucket.as_str()));
    assert_eq!(store.backend(), "s3");
    assert_eq!(store.prefix(), prefix);
    store.store("k", b("via url")).await.unwrap();
    assert_eq!(store.load("k").await.unwrap(), b("via url"));
    // The key really lives at prefix/key.
    let root = S3Storage::from_url(&format!("s3://{bucket}")).unwrap();
    assert_eq!(
        root.load(&format!("{prefix}/k")).await.unwrap(),
        b("via url")
    );
    store.delete("k").await.unwrap();
}

/// More than 1,000 objects and more than 1,000 common prefixes: both
/// listings page through S3's 1,000-key pages, and deleting the prefix
/// removes them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_paginates_beyond_1000_keys() {
    let Some(store) = store_for("pagination", Duration::from_secs(60)) else {
        return;
    };
    let n = 1010;
    let mut keys: Vec<String> = (0..n).map(|i| format!("many/obj{i:05}")).collect();
    keys.extend((0..n).map(|i| format!("many/dir{i:05}/leaf")));
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for k in keys.clone() {
        let store = store.clone();
        let permit = Arc::clone(&sem).acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            store.store(&k, Bytes::from_static(b"x")).await.unwrap();
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    store.store("many-not-under/x", b("x")).await.unwrap();

    let mut want_recursive = keys.clone();
    want_recursive.sort();
    let got = store.list("many", true).await.unwrap();
    assert_eq!(got.len(), 2 * n);
    assert_eq!(got, want_recursive);

    let mut want_children: Vec<String> = (0..n)
        .map(|i| format!("many/obj{i:05}"))
        .chain((0..n).map(|i| format!("many/dir{i:05}")))
        .collect();
    want_children.sort();
    let got = store.list("many", false).await.unwrap();
    assert_eq!(got.len(), 2 * n, "objects and prefixes, each once");
    assert_eq!(got, want_children);

    assert_eq!(
        store.list("", false).await.unwrap(),
        vec!["many", "many-not-under"]
    );

    store.delete("many").await.unwrap();
    assert!(store.list("many", true).await.unwrap().is_empty());
    assert!(!store.exists("many").await.unwrap());
    assert_eq!(store.load("many-not-under/x").await.unwrap(), b("x"));
    store.delete("many-not-under").await.unwrap();
}

/// The server checks signatures: the right access key with a wrong secret
/// is refused, and the refusal is a backend error, not "not found".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_refused() {
    let Some((endpoint, bucket)) = server("wrong_secret") else {
        return;
    };
    let prefix = unique_prefix("wrong-secret");
    let good = builder(&endpoint, &bucket, &prefix).build().unwrap();
    good.store("k", b("v")).await.unwrap();

    let id = std::env::var("AWS_ACCESS_KEY_ID").unwrap();
    let bad = builder(&endpoint, &bucket, &prefix)
        .credentials(id, "definitely-not-the-secret", None)
        .retry(RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        })
        .build()
        .unwrap();
    for (op, r) in [
        ("load", bad.load("k").await.map(|_| ())),
        ("store", bad.store("k2", b("v")).await),
        ("list", bad.list("", true).await.map(|_| ())),
    ] {
        match r {
            Err(Error::Backend {
                backend: "s3",
                source,
                ..
            }) => {
                let msg = source.to_string();
                assert!(
                    msg.contains("403") || msg.contains("SignatureDoesNotMatch"),
                    "{op}: expected a 403 signature refusal, got {msg}"
                );
                assert!(
                    !msg.contains("definitely-not-the-secret"),
                    "{op}: the error must not show the secret: {msg}"
                );
            }
            other => panic!("{op} with a wrong secret: expected Backend, got {other:?}"),
        }
    }
    assert!(!good.exists("k2").await.unwrap(), "nothing was written");
    good.delete("k").await.unwrap();
}

/// Lock objects live outside the key namespace: they never show in
/// listings, and deleting every key leaves a held lock held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_are_invisible_to_listing() {
    let Some(store) = store_for("lock-listing", Duration::from_secs(5)) else {
        return;
    };
    store.store("a", b("x")).await.unwrap();
    let lease = store.try_lock("a").await.unwrap();
    let other = store.try_lock("b/c").await.unwrap();
    assert_eq!(store.list("", true).await.unwrap(), vec!["a"]);
    assert_eq!(store.list("", false).await.unwrap(), vec!["a"]);
    store.delete("a").await.unwrap();
    assert!(matches!(
        store.try_lock("a").await,
        Err(Error::LockHeld { .. })
    ));
    store.unlock(lease).await.unwrap();
    store.unlock(other).await.unwrap();
    assert!(store.list("", true).await.unwrap().is_empty());
}

/// Many contenders for one expired lock: exactly one takes it over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lock_takeover_has_one_winner() {
    let lease = Duration::from_secs(1);
    let Some(store) = store_for("takeover-race", lease) else {
        return;
    };
    for round in 0..3 {
        let name = format!("race-{round}");
        let mut stale = store.try_lock(&name).await.unwrap();
        stale.stop_renewal();
        tokio::time::sleep(lease + Duration::from_millis(300)).await;
        let attempts: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                let name = name.clone();
                tokio::spawn(async move { store.try_lock(&name).await })
            })
            .collect();
        let mut winners = Vec::new();
        for a in attempts {
            match a.await.unwrap() {
                Ok(l) => winners.push(l),
                Err(Error::LockHeld { .. }) => {}
                Err(e) => panic!("unexpected error from a contender: {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one winner");
        assert!(matches!(
            store.unlock(stale).await,
            Err(Error::LockNotHeld { .. })
        ));
        store.unlock(winners.pop().unwrap()).await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// Multi-process tests: the parent re-runs this binary as children.

const CHILD_ENV: &str = "ENCSTORE_S3_TEST_CHILD_PREFIX";
const CHILD_LEASE: Duration = Duration::from_secs(2);

/// A child process running one `child_*` test of this binary. Its output
/// goes to a log file (shown if it fails), so that its own test summary
/// lines do not mix with the parent's.
struct ChildProc {
    child: Child,
    log: PathBuf,
}

impl ChildProc {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn spawn_child(test: &str, prefix: &str, extra: &[(&str, String)]) -> ChildProc {
    let log = std::env::temp_dir().join(format!(
        "encstore-s3-{test}-{}.log",
        &new_lease_token().unwrap()[..12]
    ));
    let out = std::fs::File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, prefix)
    .stdin(Stdio::null())
    .stdout(out)
    .stderr(err);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    ChildProc {
        child: cmd.spawn().unwrap(),
        log,
    }
}

/// The child's store, or `None` when this is not a child run.
fn child_store() -> Option<S3Storage> {
    let prefix = std::env::var(CHILD_ENV).ok()?;
    let endpoint = std::env::var("ENCSTORE_S3_ENDPOINT").unwrap();
    let bucket = std::env::var("ENCSTORE_S3_BUCKET").unwrap();
    Some(
        builder(&endpoint, &bucket, &prefix)
            .lease_duration(CHILD_LEASE)
            .build()
            .unwrap(),
    )
}

async fn wait_children(children: Vec<ChildProc>, limit: Duration) {
    let deadline = Instant::now() + limit;
    for mut c in children {
        loop {
            if let Some(status) = c.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "a child process failed ({status}); its output:\n{}",
                    c.output()
                );
                break;
            }
            if Instant::now() > deadline {
                panic!(
                    "a child process did not finish within {limit:?}; its output:\n{}",
                    c.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Child of `processes_contending_for_a_lock_lose_no_increment`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by its parent test as a child process"]
async fn child_lock_incrementer() {
    let Some(store) = child_store() else {
        return;
    };
    let rounds: u64 = std::env::var("ENCSTORE_S3_TEST_ROUNDS")
        .unwrap()
        .parse()
        .unwrap();
    for _ in 0..rounds {
        let lease = store.lock("counter-lock").await.unwrap();
        let n: u64 = std::str::from_utf8(&store.load("counter").await.unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert!(lease.is_held(), "lease still held before the write");
        store
            .store("counter", b(&(n + 1).to_string()))
            .await
            .unwrap();
        store.unlock(lease).await.unwrap();
    }
}

/// Several processes increment one counter object under `lock`; no
/// increment is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_contending_for_a_lock_lose_no_increment() {
    let Some(store) = store_for("multiprocess", CHILD_LEASE) else {
        return;
    };
    store.store("counter", b("0")).await.unwrap();
    let processes = 4;
    let rounds = 15;
    let children: Vec<ChildProc> = (0..processes)
        .map(|_| {
            spawn_child(
                "child_lock_incrementer",
                store.prefix(),
                &[("ENCSTORE_S3_TEST_ROUNDS", rounds.to_string())],
            )
        })
        .collect();
    wait_children(children, Duration::from_secs(180)).await;
    assert_eq!(
        store.load("counter").await.unwrap(),
        b(&(processes * rounds).to_string()),
        "no increment lost"
    );
    store.delete("counter").await.unwrap();
}

/// Child of `killed_holder_lease_expires_and_is_taken_over`: takes the
/// lock, says so, and holds it (renewing) until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by its parent test as a child process"]
async fn child_lock_holder() {
    let Some(store) = child_store() else {
        return;
    };
    let lease = store.lock("held").await.unwrap();
    store
        .store("holder-ready", b(&std::process::id().to_string()))
        .await
        .unwrap();
    // Hold it for at most a minute; the parent kills us long before.
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(lease);
}

/// A lock holder killed with SIGKILL stops renewing; its lease expires and
/// another process takes the lock over within a lease (plus margin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_holder_lease_expires_and_is_taken_over() {
    let Some(store) = store_for("killed-holder", CHILD_LEASE) else {
        return;
    };
    let mut holder = spawn_child("child_lock_holder", store.prefix(), &[]);
    let started = Instant::now();
    while !store.exists("holder-ready").await.unwrap() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the holder never took the lock"
        );
        if let Some(status) = holder.child.try_wait().unwrap() {
            panic!("the holder exited early ({status}): {}", holder.output());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The holder renews: after three leases it still holds the lock.
    tokio::time::sleep(CHILD_LEASE * 3).await;
    assert!(
        matches!(store.try_lock("held").await, Err(Error::LockHeld { .. })),
        "a live holder keeps the lock across several leases"
    );

    holder.child.kill().unwrap(); // SIGKILL: no unlock, no goodbye.
    let killed = Instant::now();
    holder.child.wait().unwrap();
    assert!(
        matches!(store.try_lock("held").await, Err(Error::LockHeld { .. })),
        "right after the kill the lease is still valid"
    );
    let margin = Duration::from_secs(2);
    let lease = tokio::time::timeout(CHILD_LEASE + margin, store.lock("held"))
        .await
        .expect("the dead holder's lease expires within lease + margin")
        .unwrap();
    let waited = killed.elapsed();
    // The last renewal was at most a third of a lease before the kill.
    assert!(
        waited >= CHILD_LEASE / 2,
        "taken over after {waited:?}: too early for an unexpired lease"
    );
    assert!(lease.is_held());
    store.unlock(lease).await.unwrap();
    store.delete("holder-ready").await.unwrap();
}

// ---------------------------------------------------------------------------
// Timeouts: a server that accepts connections and never answers. These need
// no S3 server, so they always run.

/// A TCP listener on loopback that accepts connections and never replies.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: a test makes a handful of connections.
        while held.len() < 64 {
            match listener.accept().await {
                Ok((sock, _)) => held.push(sock),
                Err(_) => return,
            }
        }
    });
    (format!("http://{addr}"), task)
}

fn silent_store(endpoint: &str) -> S3StorageBuilder {
    S3StorageBuilder::new("bucket")
        .endpoint(endpoint)
        .allow_http(true)
        .credentials("id", "secret", None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out_per_request() {
    let (endpoint, task) = silent_server().await;
    let store = silent_store(&endpoint)
        .request_timeout(Duration::from_millis(300))
        .retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
                base: 2.0,
            },
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
        })
        .build()
        .unwrap();
    let started = Instant::now();
    let r = store.load("k").await;
    let took = started.elapsed();
    assert!(
        matches!(r, Err(Error::Timeout { backend: "s3", .. })),
        "expected Timeout, got {r:?}"
    );
    // Three attempts of 300 ms plus back-off.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let r = store.store("k", b("v")).await;
    assert!(
        matches!(r, Err(Error::Timeout { .. })),
        "expected Timeout, got {r:?}"
    );
    let r = store.try_lock("l").await;
    assert!(
        matches!(r, Err(Error::Timeout { .. })),
        "expected Timeout, got {r:?}"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_hits_the_operation_deadline() {
    let (endpoint, task) = silent_server().await;
    let store = silent_store(&endpoint)
        .request_timeout(Duration::from_secs(600))
        .operation_timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let started = Instant::now();
    let r = store.list("", true).await;
    let took = started.elapsed();
    match r {
        Err(Error::Timeout { backend, op }) => {
            assert_eq!((backend, op), ("s3", "list"));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    assert_eq!(
        store.store("k", b("v")).await.unwrap_err().to_string(),
        "s3 store timed out"
    );
    task.abort();
}

/// A refused connection (nothing listening) is `Unreachable`, naming the
/// endpoint, after the default bounded retries: within seconds, not the
/// minutes of object_store's own default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_unreachable_within_seconds() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let endpoint = format!("http://{addr}");
    drop(listener);
    // Default retries (encstore_objstore::default_retry).
    let store = silent_store(&endpoint).build().unwrap();
    for op in ["load", "store", "list", "try_lock"] {
        let call = async {
            match op {
                "load" => store.load("k").await.map(|_| ()),
                "store" => store.store("k", b("v")).await,
                "list" => store.list("", true).await.map(|_| ()),
                _ => store.try_lock("l").await.map(|_| ()),
            }
        };
        let r = tokio::time::timeout(Duration::from_secs(15), call)
            .await
            .unwrap_or_else(|_| panic!("{op}: still retrying after 15 s"));
        match r {
            Err(
                ref e @ Error::Unreachable {
                    backend: "s3",
                    ref address,
                    ..
                },
            ) => {
                assert_eq!(address, &endpoint, "{op}");
                let msg = e.to_string();
                assert!(msg.contains(&addr.to_string()), "{op}: {msg}");
                assert!(!msg.contains("secret"), "{op}: {msg}");
            }
            other => panic!("{op}: expected Unreachable, got {other:?}"),
        }
    }
}

/// The server dies under a running client (the proxy in front of
/// SeaweedFS is stopped: open connections are cut, new ones refused).
/// Operations fail as `Unreachable` naming the address, within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_is_unreachable_within_seconds() {
    let Some((endpoint, bucket)) = server("stopped_server") else {
        return;
    };
    let proxy = encstore_objstore::testing::proxy::Proxy::start(&endpoint, false).await;
    let store = builder(&proxy.endpoint, &bucket, &unique_prefix("stopped"))
        .lease_duration(Duration::from_secs(2))
        .build()
        .unwrap();
    store.store("k", b("v")).await.unwrap();
    let lease = store.try_lock("l").await.unwrap();
    assert_eq!(store.load("k").await.unwrap(), b("v"));
    proxy.stop();
    for op in ["load", "store", "list", "unlock"] {
        let started = Instant::now();
        let call = async {
            match op {
                "load" => store.load("k").await.map(|_| ()),
                "store" => store.store("k", b("w")).await,
                "list" => store.list("", true).await.map(|_| ()),
                _ => store.unlock(store.try_lock("m").await?).await,
            }
        };
        let r = tokio::time::timeout(Duration::from_secs(15), call)
            .await
            .unwrap_or_else(|_| panic!("{op}: still retrying after 15 s"));
        match r {
            Err(Error::Unreachable { address, .. }) => {
                assert_eq!(address, proxy.endpoint, "{op}");
            }
            other => panic!("{op}: expected Unreachable, got {other:?}"),
        }
        eprintln!("{op}: unreachable after {:?}", started.elapsed());
    }
    drop(lease);
}

/// With no credentials configured, an S3 store at a custom endpoint is
/// refused when built, and one on AWS (which would fall back to the EC2
/// instance-metadata service) fails its first request; both say that no
/// credentials are set and name the variables, instead of reporting the
/// metadata address as unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_name_the_variables() {
    let msg = S3StorageBuilder::new("bucket")
        .endpoint("http://127.0.0.1:9")
        .allow_http(true)
        .build()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no S3 credentials"), "{msg}");
    assert!(
        msg.contains("AWS_ACCESS_KEY_ID") && msg.contains("AWS_SECRET_ACCESS_KEY"),
        "{msg}"
    );

    // AWS (no endpoint): the metadata service is a closed local port here.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metadata = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let store = S3StorageBuilder::new("bucket")
        .option("aws_metadata_endpoint", metadata)
        .build()
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(30), store.load("k"))
        .await
        .expect("gives up on the metadata service within seconds");
    match r {
        Err(e @ Error::Backend { backend: "s3", .. }) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("s3 backend failed to load: no S3 credentials: set "),
                "{msg}"
            );
            assert!(msg.contains("AWS_ACCESS_KEY_ID"), "{msg}");
            assert!(msg.contains("AWS_SECRET_ACCESS_KEY"), "{msg}");
        }
        other => panic!("expected a Backend error naming the variables, got {other:?}"),
    }
}

/// A bucket that does not exist is a backend error naming it, on every
/// operation: never `NotFound` for the key, never `LockHeld`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_is_named_on_every_operation() {
    let Some((endpoint, _)) = server("missing_bucket") else {
        return;
    };
    let bucket = format!("encstore-missing-{}", &new_lease_token().unwrap()[..8]);
    let store = builder(&endpoint, &bucket, "p").build().unwrap();
    let v = encstore_core::Version::new("\"0123\"");
    let results: Vec<(&str, Result<(), Error>)> = vec![
        ("store", store.store("k", b("v")).await),
        (
            "store_if absent",
            store
                .store_if("k", b("v"), &WriteCondition::Absent)
                .await
                .map(|_| ()),
        ),
        (
            "store_if matches",
            store
                .store_if("k", b("v"), &WriteCondition::Matches(v))
                .await
                .map(|_| ()),
        ),
        ("load", store.load("k").await.map(|_| ())),
        (
            "load_versioned",
            store.load_versioned("k").await.map(|_| ()),
        ),
        ("load_head", store.load_head("k", 4).await.map(|_| ())),
        ("load_head 0", store.load_head("k", 0).await.map(|_| ())),
        ("stat", store.stat("k").await.map(|_| ())),
        ("exists", store.exists("k").await.map(|_| ())),
        ("list", store.list("", true).await.map(|_| ())),
        ("list children", store.list("", false).await.map(|_| ())),
        ("delete", store.delete("k").await),
        ("try_lock", store.try_lock("l").await.map(|_| ())),
    ];
    for (op, r) in results {
        match r {
            Err(e @ Error::Backend { backend: "s3", .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("bucket {bucket:?} does not exist")),
                    "{op}: {msg}"
                );
            }
            other => panic!("{op}: expected a Backend error naming the bucket, got {other:?}"),
        }
    }
}

/// S3 versions are ETags, which for a single-part upload are the MD5 of
/// the content: rewriting identical bytes keeps the version (so a
/// compare-and-swap from it still succeeds, harmlessly: the content it was
/// compared against is exactly what is there), and any different content
/// changes it.
#[tokio::test]
async fn versions_are_content_etags() {
    let Some(store) = store_for("etag-versions", Duration::from_secs(60)) else {
        return;
    };
    let v1 = store
        .store_if("k", b("one"), &WriteCondition::Absent)
        .await
        .unwrap();
    assert!(v1.as_str().starts_with('"'), "an ETag: {v1:?}");
    store.store("k", b("one")).await.unwrap();
    assert_eq!(store.load_versioned("k").await.unwrap().version, v1);
    let v2 = store
        .store_if("k", b("two"), &WriteCondition::Matches(v1.clone()))
        .await
        .unwrap();
    assert_ne!(v1, v2);
    assert_eq!(store.load("k").await.unwrap(), b("two"));
    assert_eq!(store.stat("k").await.unwrap().size, 3);
    assert!(matches!(
        store
            .store_if("k", b("three"), &WriteCondition::Matches(v1))
            .await,
        Err(Error::PreconditionFailed { .. })
    ));
    store.delete("k").await.unwrap();
}

/// Ranged reads: shorter, longer and zero lengths, and an empty object
/// (which has no byte 0, so the server refuses any range on it).
#[tokio::test]
async fn load_head_edge_cases() {
    let Some(store) = store_for("load-head", Duration::from_secs(60)) else {
        return;
    };
    store.store("k", b("0123456789")).await.unwrap();
    assert_eq!(store.load_head("k", 1).await.unwrap(), b("0"));
    assert_eq!(store.load_head("k", 10).await.unwrap(), b("0123456789"));
    assert_eq!(store.load_head("k", 11).await.unwrap(), b("0123456789"));
    assert_eq!(store.load_head("k", 0).await.unwrap(), b(""));
    store.store("empty", Bytes::new()).await.unwrap();
    assert_eq!(store.load_head("empty", 5).await.unwrap(), b(""));
    assert_eq!(store.load_head("empty", 0).await.unwrap(), b(""));
    assert!(matches!(
        store.load_head("missing", 0).await,
        Err(Error::NotFound { .. })
    ));
    let info = store.stat("empty").await.unwrap();
    assert_eq!((info.size, info.terminal), (0, true));
    store.delete("k").await.unwrap();
    store.delete("empty").await.unwrap();
}

/// A lock write whose response was lost leaves the holder with a stale
/// ETag. The record still carries the holder's token, so renewal and unlock
/// recover from the record's current ETag instead of reporting the lock
/// lost. Simulated by rewriting the record (same token) behind the lease's
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_recovers_from_a_lost_response() {
    use encstore_objstore::object_store::path::Path;
    use encstore_objstore::object_store::{ObjectStoreExt, PutPayload};

    let lease_len = Duration::from_secs(2);
    let Some(store) = store_for("lost-response", lease_len) else {
        return;
    };
    let os = store.object_store();
    let path = Path::parse(format!(
        "{}/{}/l",
        store.prefix(),
        encstore_objstore::LOCK_DIR
    ))
    .unwrap();
    let rewrite = |token: String| {
        let os = os.clone();
        let path = path.clone();
        async move {
            let rec = format!(
                r#"{{"token":"{token}","expires_unix_ms":{},"host":"elsewhere","pid":1}}"#,
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
                    + 60_000
            );
            os.put(&path, PutPayload::from(rec.into_bytes()))
                .await
                .unwrap();
        }
    };

    // Renewal recovers.
    let lease = store.try_lock("l").await.unwrap();
    rewrite(lease.token().to_owned()).await;
    tokio::time::sleep(lease_len * 2).await;
    assert!(lease.is_held(), "renewal recovered from the stale ETag");
    // Unlock recovers.
    rewrite(lease.token().to_owned()).await;
    store.unlock(lease).await.unwrap();
    let again = store.try_lock("l").await.unwrap();

    // But a record with another token is another owner's: lost.
    rewrite("someone-else".to_owned()).await;
    match store.unlock(again).await {
        Err(Error::LockNotHeld { .. }) => {}
        other => panic!("expected LockNotHeld, got {other:?}"),
    }
    assert!(matches!(
        store.try_lock("l").await,
        Err(Error::LockHeld { .. })
    ));

    os.delete(&path).await.unwrap();
}

/// A lock object that is not a lock record (damaged, foreign) is held
/// until it is one lease old by the server's modification time, then stale
/// and taken over, as the filesystem backend does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_lock_object_is_stale_after_one_lease() {
    use encstore_objstore::object_store::path::Path;
    use encstore_objstore::object_store::{ObjectStoreExt, PutPayload};

    let lease_len = Duration::from_secs(2);
    let Some(store) = store_for("unparsable-lock", lease_len) else {
        return;
    };
    let os = store.object_store();
    let path = Path::parse(format!(
        "{}/{}/l",
        store.prefix(),
        encstore_objstore::LOCK_DIR
    ))
    .unwrap();
    os.put(&path, PutPayload::from_static(b"garbage"))
        .await
        .unwrap();
    let written = Instant::now();
    assert!(matches!(
        store.try_lock("l").await,
        Err(Error::LockHeld { .. })
    ));
    let lease = tokio::time::timeout(lease_len * 4, store.lock("l"))
        .await
        .expect("an unparsable lock object goes stale after a lease")
        .unwrap();
    // Server times have second granularity: allow one second of rounding.
    assert!(
        written.elapsed() + Duration::from_secs(1) >= lease_len,
        "taken over after {:?}",
        written.elapsed()
    );
    store.unlock(lease).await.unwrap();
    os.delete(&path).await.unwrap();
}
