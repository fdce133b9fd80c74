//! `encstore providers` and the provider line of `encstore --version`: an
//! auditor checks which crypto provider a deployed binary uses and whether
//! the FIPS module is in FIPS mode. Run under each build: default (ring),
//! `--features aws-lc-rs`, `--features fips`.

mod common;

use std::process::Output;

use common::{Dir, check_fails, es};

const VAR: &str = "ENCSTORE_CRYPTO_PROVIDER";

/// The provider this build uses when nothing picks one.
fn build_default() -> &'static str {
    if cfg!(feature = "fips") {
        "fips"
    } else {
        "ring"
    }
}

fn run_with(env: Option<&str>, args: &[&str]) -> Output {
    let mut c = es();
    c.env_remove(VAR);
    if let Some(v) = env {
        c.env(VAR, v);
    }
    c.args(args).output().expect("run")
}

/// `name: value` lines of `encstore providers`.
fn fields(out: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn field(out: &Output, name: &str) -> String {
    fields(out)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name:?} in {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn providers_names_the_active_provider_and_fips_mode() {
    let out = run_with(None, &["providers"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(field(&out, "provider"), build_default());
    assert_eq!(
        field(&out, "fips_mode"),
        if cfg!(feature = "fips") { "yes" } else { "no" }
    );
    assert_eq!(field(&out, "selected_by"), "build default");
    let mut compiled = vec!["ring"];
    if cfg!(all(feature = "aws-lc-rs", not(feature = "fips"))) {
        compiled.push("aws-lc-rs");
    }
    if cfg!(feature = "fips") {
        compiled.push("fips");
    }
    assert_eq!(field(&out, "compiled"), compiled.join(", "));
    let library = fields(&out).into_iter().find(|(k, _)| k == "library");
    assert_eq!(library.is_some(), build_default() != "ring", "{library:?}");
    if cfg!(feature = "fips") {
        assert!(field(&out, "randomness").contains("FIPS module's DRBG"));
    }
}

#[test]
fn version_names_the_provider() {
    let out = run_with(None, &["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("encstore {}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let provider = lines.next().expect("a provider line");
    assert!(
        provider.starts_with(&format!("crypto provider: {} (", build_default())),
        "{provider}"
    );
    assert!(
        provider.ends_with(if cfg!(feature = "fips") {
            "FIPS mode: yes"
        } else {
            "FIPS mode: no"
        }),
        "{provider}"
    );
    // Subcommands print the same provider line.
    let sub = run_with(None, &["store", "--version"]);
    let sub = String::from_utf8_lossy(&sub.stdout).into_owned();
    assert_eq!(sub.lines().nth(1), Some(provider), "{sub}");
}

#[test]
fn the_environment_variable_picks_a_compiled_provider() {
    let out = run_with(Some("ring"), &["providers"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(field(&out, "provider"), "ring");
    assert_eq!(field(&out, "fips_mode"), "no");
    assert_eq!(field(&out, "selected_by"), VAR);
    let version = run_with(Some("ring"), &["--version"]);
    assert!(String::from_utf8_lossy(&version.stdout).contains("crypto provider: ring ("));

    // An unknown name: every command refuses to run, naming the variable.
    for args in [&["providers"][..], &["list-key-templates"]] {
        let out = run_with(Some("openssl"), args);
        let err = check_fails(args, &out, 1, "ENCSTORE_CRYPTO_PROVIDER");
        assert!(err.contains("unknown crypto provider \"openssl\""), "{err}");
    }
    // `providers` still lists what the build has.
    let out = run_with(Some("openssl"), &["providers"]);
    assert!(field(&out, "compiled").contains("ring"));

    // A provider this build lacks.
    let absent = if cfg!(feature = "fips") {
        "aws-lc-rs"
    } else {
        "fips"
    };
    if !(cfg!(feature = "aws-lc-rs") && !cfg!(feature = "fips") && absent == "aws-lc-rs") {
        let d = Dir::new();
        let k = d.s("k.json");
        let args = ["create-keyset", "--key-template", "AES256_GCM", "--out", &k];
        let out = run_with(Some(absent), &args);
        check_fails(&args, &out, 1, "is not compiled into this build");
        assert!(!d.p("k.json").exists(), "nothing written");
    }
}

/// Under the `fips` provider: keys that are not FIPS-approved are refused
/// at creation and when read; approved ones encrypt and decrypt.
#[cfg(feature = "fips")]
#[test]
fn fips_refuses_non_approved_key_types() {
    let d = Dir::new();
    let chacha = d.s("chacha.json");
    let create = |env: Option<&str>, template: &str, out: &str| {
        run_with(
            env,
            &["create-keyset", "--key-template", template, "--out", out],
        )
    };
    for (template, key_type) in [
        ("CHACHA20_POLY1305", "ChaCha20Poly1305Key"),
        ("XCHACHA20_POLY1305", "XChaCha20Poly1305Key"),
        ("AES256_GCM_SIV", "AesGcmSivKey"),
        ("AES256_EAX", "AesEaxKey"),
    ] {
        let out = create(None, template, &chacha);
        let err = check_fails(&["create-keyset", template], &out, 1, key_type);
        assert!(err.contains("not FIPS-approved in this build"), "{err}");
        assert!(!d.p("chacha.json").exists());
    }
    // Made under ring, then read under fips: refused, naming the key type.
    let out = create(Some("ring"), "CHACHA20_POLY1305", &chacha);
    assert!(out.status.success(), "{out:?}");
    let args = ["list-keyset", "--in", &chacha];
    let out = run_with(None, &args);
    let err = check_fails(&args, &out, 1, "ChaCha20Poly1305Key");
    assert!(err.contains("not FIPS-approved in this build"), "{err}");

    // `list-key-templates` lists only what this provider can make (and
    // says on stderr that it left some out); under ring, everything.
    let lines = |out: &Output| -> Vec<String> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let out = run_with(None, &["list-key-templates"]);
    assert!(out.status.success(), "{out:?}");
    let fips_names = lines(&out);
    for name in [
        "AES256_GCM",
        "AES128_CTR_HMAC_SHA256",
        "AES256_GCM_HKDF_1MB",
    ] {
        assert!(
            fips_names.iter().any(|l| l == name),
            "{name}: {fips_names:?}"
        );
    }
    for name in [
        "CHACHA20_POLY1305",
        "XCHACHA20_POLY1305",
        "AES256_GCM_SIV",
        "AES256_EAX",
    ] {
        assert!(
            !fips_names.iter().any(|l| l == name),
            "{name}: {fips_names:?}"
        );
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not FIPS-approved are not listed"),
        "{out:?}"
    );
    let out = run_with(Some("ring"), &["list-key-templates"]);
    assert!(out.status.success(), "{out:?}");
    assert!(lines(&out).iter().any(|l| l == "CHACHA20_POLY1305"));
    assert!(lines(&out).len() > fips_names.len());

    // An approved key type works end to end.
    let gcm = d.s("gcm.json");
    let out = create(None, "AES256_GCM", &gcm);
    assert!(out.status.success(), "{out:?}");
    let (pt, ct, back) = (d.s("pt"), d.s("ct"), d.s("back"));
    std::fs::write(&pt, b"under the FIPS module").expect("write");
    for args in [
        ["encrypt", "--keyset", &gcm, "--in", &pt, "--out", &ct],
        ["decrypt", "--keyset", &gcm, "--in", &ct, "--out", &back],
    ] {
        let out = run_with(None, &args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    assert_eq!(
        std::fs::read(&back).expect("read"),
        b"under the FIPS module"
    );
}
