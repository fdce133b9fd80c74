//! Helpers shared by the CLI test files.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use assert_cmd::Command;
use encstore::{EncryptedStorage, Options, Policy, ReloadableKeyset};
use encstore_core::Storage;
use encstore_fs::FsStorage;
use encstore_tink::keyset::Keyset;

/// The `encstore` binary, with the environment that could change its
/// behaviour cleared.
pub fn es() -> Command {
    let mut c = Command::cargo_bin("encstore").expect("the encstore binary is built");
    c.env_remove("ENCSTORE_STORE")
        .env_remove("ENCSTORE_KEYSET")
        .env_remove("ENCSTORE_LOCK_LEASE_SECS")
        .env_remove("RUST_LOG");
    c
}

/// A temp dir with helpers.
pub struct Dir(pub tempfile::TempDir);

impl Dir {
    pub fn new() -> Dir {
        Dir(tempfile::tempdir().expect("tempdir"))
    }
    pub fn p(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    pub fn s(&self, name: &str) -> String {
        self.p(name).display().to_string()
    }
}

pub fn run(args: &[&str]) -> Output {
    es().args(args).output().expect("run")
}

/// Runs a command that must succeed; returns stdout.
pub fn ok(args: &[&str]) -> Vec<u8> {
    let out = run(args);
    assert!(
        out.status.success(),
        "encstore {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Checks a failed run: exit `code`, exactly one `encstore: error:` line,
/// containing `needle`. Returns stderr.
pub fn check_fails(args: &[&str], out: &Output, code: i32, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "encstore {args:?}: stderr {stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("encstore: error: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "encstore {args:?}: want one error line, got {stderr:?}"
    );
    assert!(
        errors[0].contains(needle),
        "encstore {args:?}: error {:?} does not mention {needle:?}",
        errors[0]
    );
    stderr
}

pub fn fails(args: &[&str], code: i32, needle: &str) -> String {
    let out = run(args);
    check_fails(args, &out, code, needle)
}

/// A cleartext keyset file with one AES256_GCM key; returns its path.
pub fn keyset(d: &Dir, name: &str) -> String {
    let k = d.s(name);
    ok(&["create-keyset", "--key-template", "AES256_GCM", "--out", &k]);
    k
}

pub fn primary_of(k: &str) -> u32 {
    read_keyset(k).primary_key_id()
}

pub fn read_keyset(k: &str) -> Keyset {
    Keyset::from_json_insecure(&std::fs::read(k).unwrap()).unwrap()
}

/// Adds a key and promotes it (the rollout rule, in one test step);
/// returns (old primary, new primary).
pub fn add_and_promote(k: &str) -> (u32, u32) {
    let old = primary_of(k);
    ok(&[
        "add-key",
        "--key-template",
        "AES128_GCM",
        "--in",
        k,
        "--out",
        k,
    ]);
    let new = read_keyset(k)
        .info()
        .keys
        .iter()
        .map(|k| k.key_id)
        .find(|id| *id != old)
        .unwrap();
    ok(&[
        "promote-key",
        "--key-id",
        &new.to_string(),
        "--in",
        k,
        "--out",
        k,
    ]);
    (old, new)
}

/// A library-level encrypted store over `root` with keyset file `k`.
pub fn lib_store(root: &Path, k: &str) -> EncryptedStorage {
    let keys = ReloadableKeyset::new(&read_keyset(k), Policy::tink()).unwrap();
    let fs = FsStorage::new(root).unwrap();
    EncryptedStorage::with_options(Arc::new(fs), Arc::new(keys), Options::default())
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Stores `n` objects `obj/NNNNN` with `value(i)` through the library.
pub fn populate(
    rt: &tokio::runtime::Runtime,
    store: &EncryptedStorage,
    n: usize,
    value: fn(usize) -> Vec<u8>,
) {
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let s = store.clone();
            set.spawn(async move {
                s.store(&key_name(i), value(i).into()).await.unwrap();
            });
            if set.len() >= 32 {
                set.join_next().await.unwrap().unwrap();
            }
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
}

pub fn key_name(i: usize) -> String {
    format!("obj/{:03}/{i:05}", i % 100)
}

/// `store status --json`.
pub fn status_json(store: &str, k: &str) -> serde_json::Value {
    serde_json::from_slice(&ok(&[
        "store", "status", "--store", store, "--keyset", k, "--json",
    ]))
    .expect("status --json prints JSON")
}

/// `store put` of `value` (through stdin), which must succeed.
pub fn put(store: &str, k: &str, key: &str, value: &[u8]) {
    let out = es()
        .args(["store", "put", "--store", store, "--keyset", k, key])
        .write_stdin(value.to_vec())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "put {key}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `store rewrap --store STORE --keyset K`, then `extra`.
pub fn rewrap_args<'a>(store: &'a str, k: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["store", "rewrap", "--store", store, "--keyset", k];
    args.extend_from_slice(extra);
    args
}

/// `store CMD --store ST --keyset K --streaming-keyset SK`, then `extra`.
pub fn store_args<'a>(
    cmd: &'a str,
    st: &'a str,
    k: &'a str,
    sk: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "store",
        cmd,
        "--store",
        st,
        "--keyset",
        k,
        "--streaming-keyset",
        sk,
    ];
    args.extend_from_slice(extra);
    args
}

/// `CMD --key-id ID --in K --out K`: a key command that rewrites keyset `k`.
pub fn key_args<'a>(cmd: &'a str, id: &'a str, k: &'a str) -> Vec<&'a str> {
    vec![cmd, "--key-id", id, "--in", k, "--out", k]
}

/// `store get`, which must succeed; returns the value.
pub fn get(store: &str, k: &str, key: &str) -> Vec<u8> {
    ok(&["store", "get", "--store", store, "--keyset", k, key])
}

/// Every file under `root`, with its bytes, sorted (lock files included).
pub fn snapshot_files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Quotes a word for `sh -c`.
pub fn sh_word(w: &str) -> String {
    format!("'{}'", w.replace('\'', r"'\''"))
}

/// `encstore ARGS` running on a pseudo-terminal (util-linux `script`):
/// its stdin, stdout and stderr are the terminal, so what it shows is what
/// an operator sees. Bytes written with [`Tty::send`] are typed on that
/// terminal (`\x03` is Ctrl-C, `\x04` Ctrl-D).
pub struct Tty {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    out: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Tty {
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Tty {
        use std::io::Read;
        let bin = assert_cmd::cargo::cargo_bin("encstore");
        let mut cmd = format!("exec {}", sh_word(&bin.display().to_string()));
        for a in args {
            cmd.push(' ');
            cmd.push_str(&sh_word(a));
        }
        let mut c = std::process::Command::new("script");
        c.args(["-q", "-e", "-c", &cmd, "/dev/null"])
            .env_remove("ENCSTORE_STORE")
            .env_remove("ENCSTORE_KEYSET")
            .env_remove("ENCSTORE_LOCK_LEASE_SECS")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in envs {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("util-linux `script` runs");
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().unwrap();
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&out);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Tty {
            child,
            stdin,
            out,
            reader: Some(reader),
        }
    }

    /// Everything the terminal showed so far.
    pub fn shown(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal shows `needle` (panics after `limit`).
    pub fn wait_for(&self, needle: &str, limit: std::time::Duration) {
        let start = std::time::Instant::now();
        while !self.shown().contains(needle) {
            assert!(
                start.elapsed() < limit,
                "the terminal never showed {needle:?}: {:?}",
                self.shown()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Types `bytes` on the terminal.
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the command; returns its exit code and what it showed.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        drop(self.stdin.take());
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        (status.code(), self.shown())
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0
}

/// `encstore` spawned with piped stdout and stderr (the environment that
/// could change its behaviour cleared), plus `envs`.
pub fn spawn_es(args: &[&str], envs: &[(&str, &str)]) -> std::process::Child {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("encstore"));
    c.args(args)
        .env_remove("ENCSTORE_STORE")
        .env_remove("ENCSTORE_KEYSET")
        .env_remove("ENCSTORE_LOCK_LEASE_SECS")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.spawn().unwrap()
}
