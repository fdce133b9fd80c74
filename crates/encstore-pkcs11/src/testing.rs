//! For tests against a real SoftHSM2 token (any crate's): finding the
//! module, skipping with a notice when SoftHSM2 is absent, and initialising
//! a fresh token in a directory.

use std::path::{Path, PathBuf};
use std::process::Command;

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
