//! Runs each test against its own SoftHSM2 token.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once, at `C_Initialize`, and a process can
//! initialise a module only once; setting the variable in-process would also
//! need `unsafe` (forbidden here). So each test re-runs this test binary as a
//! child process, filtered to that one test, with `SOFTHSM2_CONF` pointing
//! at a token freshly initialised in a temporary directory. The child does
//! the real work; the parent only sets up and checks the child passed.
//!
//! Without `softhsm2-util` and the module, a test prints `SKIPPED: ...` and
//! passes, unless `ENCSTORE_REQUIRE_SERVICES=1`, when it fails.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

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

/// The SoftHSM2 module, if installed.
pub fn find_module() -> Option<PathBuf> {
    encstore_pkcs11::testing::find_module()
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

    let Some(module) = encstore_pkcs11::testing::softhsm_or_skip("encstore-pkcs11") else {
        return;
    };

    let tmp = tempfile::Builder::new()
        .prefix("encstore-softhsm-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_owned();
    let conf = encstore_pkcs11::testing::init_token(&dir, TOKEN, SO_PIN, PIN);
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
