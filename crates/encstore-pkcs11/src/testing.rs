//! Test helpers (cargo feature `test-util`; enable it in dev-dependencies
//! only). For tests against a real SoftHSM2 token (any crate's): finding
//! the module, skipping with a notice when SoftHSM2 is absent, initialising
//! a fresh token in a directory, and [`hsm_test`], which runs a test body
//! against its own token in a child process.
//!
//! Not part of the stable API.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

/// The SoftHSM2 module: `ENCSTORE_PKCS11_MODULE` if set, else the usual
/// install paths.
pub fn find_module() -> Option<PathBuf> {
    let arch = std::env::consts::ARCH;
    std::env::var("ENCSTORE_PKCS11_MODULE")
        .ok()
        .into_iter()
        .chain([
            "/usr/lib/softhsm/libsofthsm2.so".to_owned(),
            format!("/usr/lib/{arch}-linux-gnu/softhsm/libsofthsm2.so"),
            "/usr/lib64/softhsm/libsofthsm2.so".to_owned(),
            "/usr/local/lib/softhsm/libsofthsm2.so".to_owned(),
        ])
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The SoftHSM2 module when `softhsm2-util` and the module are installed.
/// Otherwise prints `SKIPPED: {suite} SoftHSM2 tests: …` once per process
/// straight to stderr (past the test harness's capture) and returns `None`
/// — unless `ENCSTORE_REQUIRE_SERVICES=1`, where it panics, so the full test
/// command never skips.
pub fn softhsm_or_skip(suite: &str) -> Option<PathBuf> {
    let util = Command::new("softhsm2-util")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if let (Some(module), true) = (find_module(), util) {
        return Some(module);
    }
    let msg = "SoftHSM2 (softhsm2-util and libsofthsm2.so) is not installed; run `scripts/softhsm.sh install`";
    assert!(
        std::env::var("ENCSTORE_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "ENCSTORE_REQUIRE_SERVICES=1 but {msg}"
    );
    static NOTICE: std::sync::Once = std::sync::Once::new();
    NOTICE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED: {suite} SoftHSM2 tests: {msg}");
    });
    None
}

/// Initialises a token labelled `label` with these PINs in `dir/tokens`,
/// and returns the `softhsm2.conf` to point `SOFTHSM2_CONF` at.
///
/// # Panics
/// When the directory cannot be written or `softhsm2-util` fails.
pub fn init_token(dir: &Path, label: &str, so_pin: &str, pin: &str) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).expect("create the token directory");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .expect("write softhsm2.conf");
    let out = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            so_pin,
            "--pin",
            pin,
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("run softhsm2-util");
    assert!(
        out.status.success(),
        "softhsm2-util --init-token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    conf
}

// ---------------------------------------------------------------------------
// One test, one token: the child-process runner.
//
// SoftHSM2 reads `SOFTHSM2_CONF` once, at `C_Initialize`, and a process can
// initialise a module only once; setting the variable in-process would also
// need `unsafe` (forbidden here). So [`hsm_test`] re-runs the calling test
// binary as a child process, filtered to that one test, with
// `SOFTHSM2_CONF` pointing at a token freshly initialised in a temporary
// directory. The child does the real work; the parent only sets up and
// checks the child passed. Without `softhsm2-util` and the module, a test
// prints `SKIPPED: ...` and passes, unless `ENCSTORE_REQUIRE_SERVICES=1`,
// when it fails.

/// A recognisable user PIN: no output of the crate may contain it.
pub const PIN: &str = "PIN-SENTINEL-7391";
/// A recognisable SO PIN.
pub const SO_PIN: &str = "SO-PIN-SENTINEL-8642";
/// The token label every test token gets.
pub const TOKEN: &str = "encstore";

const CHILD_VAR: &str = "ENCSTORE_PKCS11_TEST_CHILD";
const DIR_VAR: &str = "ENCSTORE_PKCS11_TEST_DIR";

/// One test's token.
pub struct Hsm {
    /// The temporary directory holding softhsm2.conf, tokens/ and pin files.
    pub dir: PathBuf,
    /// The SoftHSM2 module.
    pub module: PathBuf,
    /// A file holding [`PIN`] (also exported as `ENCSTORE_PKCS11_PIN_FILE`).
    pub pin_file: PathBuf,
}

impl Hsm {
    /// A full URI for `object` on the test token, module and PIN explicit.
    pub fn uri(&self, object: &str) -> String {
        format!(
            "pkcs11:token={TOKEN};object={object}?module-path={}&pin-source=file:{}",
            self.module.display(),
            self.pin_file.display()
        )
    }

    /// A file holding `content`, mode 0600.
    pub fn write_file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        set_mode_600(&p);
        p
    }

    /// A cryptoki session on the test token, logged in as the user, through
    /// a second context on the same (already loaded) module: used to create
    /// odd keys, read attributes back and break things under the KEK.
    pub fn admin(&self) -> (Pkcs11, Session) {
        let ctx = Pkcs11::new(&self.module).unwrap();
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => panic!("C_Initialize: {e}"),
        }
        let slot = ctx
            .get_slots_with_initialized_token()
            .unwrap()
            .into_iter()
            .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == TOKEN)
            .unwrap();
        let session = ctx.open_rw_session(slot).unwrap();
        match session.login(UserType::User, Some(&AuthPin::from(PIN.to_owned()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => panic!("C_Login: {e}"),
        }
        (ctx, session)
    }
}

fn set_mode_600(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Runs `body` against a fresh token in a child process (see module docs).
/// `name` must be the test function's name.
pub fn hsm_test<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Hsm) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Ok(child) = std::env::var(CHILD_VAR) {
        assert_eq!(child, name, "child ran the wrong test");
        let dir = PathBuf::from(std::env::var(DIR_VAR).unwrap());
        let hsm = Hsm {
            module: PathBuf::from(std::env::var("ENCSTORE_PKCS11_MODULE").unwrap()),
            pin_file: dir.join("pin"),
            dir,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(body(hsm));
        return;
    }

    let Some(module) = softhsm_or_skip(name) else {
        return;
    };

    let tmp = tempfile::Builder::new()
        .prefix("encstore-softhsm-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_owned();
    let conf = init_token(&dir, TOKEN, SO_PIN, PIN);
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    set_mode_600(&pin_file);

    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, name)
        .env(DIR_VAR, &dir)
        .env("SOFTHSM2_CONF", &conf)
        .env("ENCSTORE_PKCS11_MODULE", &module)
        .env("ENCSTORE_PKCS11_PIN_FILE", &pin_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "test {name} failed in its SoftHSM2 child process\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // Pass on what the child reported (shown with --nocapture).
    eprint!("{stderr}");
    // Anything the child printed (warnings, logs) must not hold the PIN.
    assert!(
        !stdout.contains(PIN) && !stderr.contains(PIN),
        "the child's output shows the PIN"
    );
}

/// Asserts that nothing a caller could print about `e` shows a PIN.
pub fn assert_no_pin(what: &str) {
    assert!(!what.contains(PIN), "PIN leaked: {what}");
    assert!(!what.contains(SO_PIN), "SO PIN leaked: {what}");
}
