//! The master-key level of a store whose keyset holds a KMS envelope key
//! over OpenBao transit: `store status` counts objects (and the keyset
//! file) by master-key version; after `bao write -f
//! transit/keys/NAME/rotate`, `store rewrap-deks` re-wraps every DEK under
//! the newest version while a writer keeps writing and after a SIGKILL
//! mid-way, `rewrap-keyset` re-wraps the keyset file, and raising
//! `min_decryption_version` then leaves everything readable. Error cases
//! write nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Dir, es};
use encstore::{EncryptedStorage, Policy, ReloadableKeyset, UriResolver};
use encstore_core::Storage;
use encstore_fs::FsStorage;
use encstore_tink::KeysetEncoding;
use encstore_tink::envelope::EnvelopeOptions;
use encstore_tink::{Keyset, OutputPrefix, templates};
use encstore_vault::VaultKek;
use encstore_vault::testing::{self, TestVault, unique_name};

/// The tool's environment for `v` (its token and CA; nothing of the
/// caller's Vault environment), with a 1 s lock lease so that a killed
/// run's lock expires at once.
fn env(v: &TestVault, token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("VAULT_TOKEN", token.to_owned()),
        ("VAULT_CACERT", v.ca_cert.display().to_string()),
        ("VAULT_CLIENT_TIMEOUT", "10".to_owned()),
        ("ENCSTORE_LOCK_LEASE_SECS", "1".to_owned()),
    ]
}

fn run(v: &TestVault, token: &str, args: &[&str]) -> Output {
    let mut c = es();
    c.args(args)
        .env_remove("BAO_TOKEN")
        .env_remove("BAO_CACERT")
        .env_remove("VAULT_NAMESPACE")
        .env_remove("VAULT_ADDR");
    for (k, val) in env(v, token) {
        c.env(k, val);
    }
    c.output().unwrap()
}

fn ok(v: &TestVault, args: &[&str]) -> Vec<u8> {
    let out = run(v, &v.token, args);
    assert!(
        out.status.success(),
        "encstore {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// Every file under `root` but the lock directory, with its bytes.
fn files(root: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if !p.to_string_lossy().contains(".encstore") {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// `(version, objects)` of `status --json`'s `master_keys`, all of `uri`.
fn versions(status: &serde_json::Value, uri: &str) -> Vec<(u64, u64)> {
    status["master_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["master_key"], uri, "{status}");
            (
                m["version"].as_u64().unwrap(),
                m["objects"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The library's store over the same directory and keyset.
async fn lib_store(v: &TestVault, root: &std::path::Path, keyset: &Keyset) -> EncryptedStorage {
    let resolver = UriResolver::with_options(encstore::open::KekOptions::new().vault(v.config()));
    let keys = ReloadableKeyset::new_with_master_keys(
        keyset,
        None,
        Policy::default(),
        Arc::new(resolver),
        EnvelopeOptions::default(),
    )
    .await
    .unwrap();
    EncryptedStorage::new(Arc::new(FsStorage::new(root).unwrap()), Arc::new(keys))
}

/// Counts of the library census under master-key version 1 and 2.
async fn census_versions(store: &EncryptedStorage) -> (u64, u64) {
    let c = store.census("").await.unwrap();
    let at = |n| {
        c.master_keys
            .iter()
            .filter(|m| m.version == Some(n))
            .map(|m| m.objects)
            .sum::<u64>()
    };
    (at(1), at(2))
}

/// Whether the writer overwrites object `i`.
fn written(i: usize) -> bool {
    i >= 3 && (i - 3).is_multiple_of(13)
}

/// Objects the writer never touches whose DEK is under version 2: what a
/// rewrap-deks run re-wrapped (read from their heads: prefix, length,
/// then `vault:v2:`).
async fn rewrapped_by_the_run(store: &EncryptedStorage) -> usize {
    let mut n = 0;
    for i in (0..400).filter(|i| !written(*i)) {
        let head = store.inner().load_head(&key(i), 18).await.unwrap();
        if head[9..].starts_with(b"vault:v2:") {
            n += 1;
        }
    }
    n
}

fn key(i: usize) -> String {
    format!("obj/{:02}/{i:04}", i % 20)
}

#[test]
fn dek_rewrap_across_a_transit_rotate_with_a_writer_and_a_sigkill() {
    let Some(v) = testing::server("dek_rewrap_across_a_transit_rotate") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let name = unique_name("cli-deks");
    v.bao_ok(&["write", "-f", &format!("transit/keys/{name}")]);
    let uri = v.uri(&name);
    let d = Dir::new();
    let k = d.s("k.json");
    let st = d.s("store");
    std::fs::create_dir(d.p("store")).unwrap();

    // A keyset wrapped by the transit key, holding an envelope key whose
    // DEKs that same key wraps.
    let out = run(
        &v,
        &v.token,
        &[
            "create-keyset",
            "--key-template",
            "AES256_GCM",
            "--envelope-kek-uri",
            &uri,
            "--master-key-uri",
            &uri,
            "--out",
            &k,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keyset = rt.block_on(async {
        let kek = VaultKek::open_with(&uri, v.config()).await.unwrap();
        Keyset::read_with_kek(&std::fs::read(&k).unwrap(), &kek, b"")
            .await
            .unwrap()
    });
    let info = keyset.info();
    assert_eq!(
        info.keys[0].type_url,
        "type.googleapis.com/google.crypto.tink.KmsEnvelopeAeadKey"
    );
    assert_eq!(info.keys[0].output_prefix, OutputPrefix::Tink);
    // A master key that does not exist: refused, nothing written.
    let missing = v.uri(&unique_name("cli-deks-missing"));
    let other = d.s("other.json");
    let out = run(
        &v,
        &v.token,
        &[
            "create-keyset",
            "--key-template",
            "AES256_GCM",
            "--envelope-kek-uri",
            &missing,
            "--out",
            &other,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no transit key"), "{err}");
    assert!(!d.p("other.json").exists());
    const N: usize = 400;
    let store = rt.block_on(lib_store(&v, &d.p("store"), &keyset));
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..N {
            let s = store.clone();
            set.spawn(async move { s.store(&key(i), format!("original {i}").into()).await });
            if set.len() >= 16 {
                set.join_next().await.unwrap().unwrap().unwrap();
            }
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
    });
    let args = |sub: &'static str| -> Vec<String> {
        vec![
            "store".into(),
            sub.into(),
            "--store".into(),
            st.clone(),
            "--keyset".into(),
            k.clone(),
            "--master-key-uri".into(),
            uri.clone(),
        ]
    };
    let status = || {
        let mut a = args("status");
        a.push("--json".into());
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        json(&ok(&v, &a))
    };
    let s = status();
    assert_eq!(versions(&s, &uri), vec![(1, N as u64)]);
    assert_eq!(s["envelope"], N);
    assert_eq!(s["keyset_master_key"]["master_key"], uri.as_str());
    assert_eq!(s["keyset_master_key"]["version"], 1);

    v.bao_ok(&["write", "-f", &format!("transit/keys/{name}/rotate")]);

    // The text status says which versions hold DEKs and what to run.
    let mut a = args("status");
    let text = {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        String::from_utf8(ok(&v, &a)).unwrap()
    };
    assert!(text.contains("MASTER KEY"), "{text}");
    assert!(
        text.contains(&format!("keyset wrapped by master key {uri} version 1")),
        "{text}"
    );

    // A writer keeps overwriting some objects (each write wraps its new
    // DEK under version 2) while the rewraps run.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let store = store.clone();
        let stop = Arc::clone(&stop);
        let handle = rt.handle().clone();
        std::thread::spawn(move || {
            handle.block_on(async {
                let mut last: HashMap<String, String> = HashMap::new();
                let mut round = 0;
                while !stop.load(Ordering::Relaxed) {
                    for i in (0..N).filter(|i| written(*i)) {
                        let value = format!("writer {round} {i}");
                        store.store(&key(i), value.clone().into()).await.unwrap();
                        last.insert(key(i), value);
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                    round += 1;
                }
                (last, round)
            })
        })
    };

    // A rewrap-deks killed (SIGKILL) mid-way.
    let (v1_before, _) = rt.block_on(census_versions(&store));
    let mut a2 = args("rewrap-deks");
    a2.extend(["--concurrency".into(), "1".into()]);
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("encstore"));
    cmd.args(&a2)
        .env_remove("ENCSTORE_STORE")
        .env_remove("ENCSTORE_KEYSET")
        .env_remove("VAULT_ADDR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, val) in env(&v, &v.token) {
        cmd.env(name, val);
    }
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    loop {
        let done = rt.block_on(rewrapped_by_the_run(&store));
        if done >= 20 || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "rewrap-deks ended early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let (v1_killed, v2_killed) = rt.block_on(census_versions(&store));
    let done = rt.block_on(rewrapped_by_the_run(&store));
    eprintln!(
        "killed: {v1_killed} under version 1, {v2_killed} under version 2 ({done} re-wrapped by the killed run)"
    );
    assert!(running, "rewrap-deks finished before it could be killed");
    // Killed mid-way: it had re-wrapped some DEKs, not all.
    assert!(done >= 20 && v1_killed > 0, "not killed mid-way");
    assert!(v1_killed < v1_before);

    // The rerun finishes (the killed run's lock expired) and skips what
    // was done.
    let mut a3 = args("rewrap-deks");
    a3.push("--json".into());
    let a3: Vec<&str> = a3.iter().map(String::as_str).collect();
    let summary = json(&ok(&v, &a3));
    stop.store(true, Ordering::Relaxed);
    let (last, rounds) = writer.join().unwrap();
    assert!(rounds >= 1);
    eprintln!("rerun: {summary}");
    assert_eq!(summary["objects"], N);
    assert!(summary["already_current"].as_u64().unwrap() >= N as u64 - v1_killed);
    assert!(summary["rewrapped"].as_u64().unwrap() <= v1_killed);
    assert_eq!(summary["failed"].as_array().unwrap().len(), 0);
    assert_eq!(summary["newest_master_keys"][0]["version"], 2);

    // Nothing lost: every object holds the last value written to it.
    rt.block_on(async {
        for i in 0..N {
            let want = last
                .get(&key(i))
                .cloned()
                .unwrap_or_else(|| format!("original {i}"));
            assert_eq!(
                &store.load(&key(i)).await.unwrap()[..],
                want.as_bytes(),
                "{i}"
            );
        }
    });
    let s = status();
    assert_eq!(versions(&s, &uri), vec![(2, N as u64)]);
    assert_eq!(s["total"], N);
    assert_eq!(s["keyset_master_key"]["version"], 1);

    // The keyset file itself, re-wrapped in place.
    let kv: Vec<String> = vec![
        "rewrap-keyset".into(),
        "--in".into(),
        k.clone(),
        "--out".into(),
        k.clone(),
        "--master-key-uri".into(),
        uri.clone(),
    ];
    let kv: Vec<&str> = kv.iter().map(String::as_str).collect();
    let out = run(&v, &v.token, &kv);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("version 1 -> version 2"), "{err}");
    assert!(
        std::fs::read_to_string(&k)
            .unwrap()
            .contains("encryptedKeyset")
    );
    assert_eq!(status()["keyset_master_key"]["version"], 2);

    // Nothing is left under version 1: raising min_decryption_version
    // leaves every object and the keyset readable.
    v.bao_ok(&[
        "write",
        &format!("transit/keys/{name}/config"),
        "min_decryption_version=2",
    ]);
    let a4 = args("verify");
    let a4: Vec<&str> = a4.iter().map(String::as_str).collect();
    ok(&v, &a4);
    a = args("get");
    a.push(key(0));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let got = ok(&v, &a);
    assert_eq!(
        got,
        last.get(&key(0))
            .cloned()
            .unwrap_or_else(|| "original 0".to_owned())
            .into_bytes()
    );
}

#[test]
fn failed_dek_and_keyset_rewraps_change_no_file() {
    let Some(v) = testing::server("failed_dek_and_keyset_rewraps_change_no_file") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let name = unique_name("cli-deks-err");
    v.bao_ok(&["write", "-f", &format!("transit/keys/{name}")]);
    let uri = v.uri(&name);
    let d = Dir::new();
    let k = d.s("k.json");
    let st = d.s("store");
    std::fs::create_dir(d.p("store")).unwrap();
    let dek = templates::by_name("AES256_GCM").unwrap();
    let keyset =
        Keyset::generate(&templates::kms_envelope(&uri, &dek, OutputPrefix::Tink).unwrap())
            .unwrap();
    rt.block_on(async {
        let kek = VaultKek::open_with(&uri, v.config()).await.unwrap();
        let file = keyset
            .write_with_kek(KeysetEncoding::Json, &kek, b"")
            .await
            .unwrap();
        std::fs::write(&k, file).unwrap();
        let store = lib_store(&v, &d.p("store"), &keyset).await;
        for i in 0..5 {
            store.store(&key(i), "v".into()).await.unwrap();
        }
    });
    v.bao_ok(&["write", "-f", &format!("transit/keys/{name}/rotate")]);
    let before = files(d.0.path());
    let fails = |token: &str, args: &[&str], needle: &str| {
        let out = run(&v, token, args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("encstore: error: "))
            .unwrap_or_else(|| panic!("no error line: {err}"));
        assert!(line.contains(needle), "{args:?}: {line}");
        assert!(!err.contains(&v.token), "the token leaked: {err}");
        assert_eq!(before, files(d.0.path()), "{args:?} changed a file");
    };
    let deks = [
        "store",
        "rewrap-deks",
        "--store",
        st.as_str(),
        "--keyset",
        k.as_str(),
        "--master-key-uri",
        uri.as_str(),
    ];
    let keyset_args = [
        "rewrap-keyset",
        "--in",
        k.as_str(),
        "--out",
        k.as_str(),
        "--master-key-uri",
        uri.as_str(),
    ];
    // A DEK type the policy refuses: refused, nothing written.
    let other = d.s("chacha.json");
    let out = run(
        &v,
        &v.token,
        &[
            "create-keyset",
            "--key-template",
            "CHACHA20_POLY1305",
            "--envelope-kek-uri",
            &uri,
            "--policy",
            "fips",
            "--out",
            &other,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("KmsEnvelopeAeadKey") && err.contains("not allowed by policy"),
        "{err}"
    );
    assert_eq!(before, files(d.0.path()));
    // A wrong token: refused by the server.
    fails("not-a-token", &deks, "403");
    fails("not-a-token", &keyset_args, "403");
    // A cleartext keyset has nothing to re-wrap.
    let clear = d.s("clear.json");
    std::fs::write(&clear, keyset.to_json_insecure().as_slice()).unwrap();
    let before_clear = files(d.0.path());
    let out = run(
        &v,
        &v.token,
        &[
            "rewrap-keyset",
            "--in",
            &clear,
            "--out",
            &clear,
            "--master-key-uri",
            &uri,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is a cleartext keyset"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(before_clear, files(d.0.path()));
    std::fs::remove_file(&clear).unwrap();
    // min_decryption_version raised before the rewrap: the v1 DEKs and
    // the v1 keyset no longer unwrap; each failure is reported and
    // nothing is written.
    v.bao_ok(&[
        "write",
        &format!("transit/keys/{name}/config"),
        "min_decryption_version=2",
    ]);
    fails(&v.token, &keyset_args, "min_decryption_version");
    fails(&v.token, &deks, "min_decryption_version");
}
