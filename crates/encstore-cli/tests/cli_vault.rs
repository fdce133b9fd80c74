//! The tool with a master key in Vault / OpenBao transit (`hcvault://`) and
//! in AWS KMS (`aws-kms://`, moto's emulator), against real servers: a
//! keyset wrapped in OpenBao is created, rotated, used by `store
//! put/get/rewrap/verify`, converted to AWS KMS and back; and every error
//! case (server unreachable, TLS failure, wrong token, missing key, key
//! version below min_decryption_version, sealed server) is a clear, one-line
//! error that writes nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use common::{Dir, es};
use encstore_vault::testing::{
    self, BaoDevServer, TestVault, python_tink, run_kms_interop, unique_name,
};

/// Runs the tool with `v`'s token and CA (and nothing of the caller's
/// Vault or AWS environment).
fn run_with(v: &TestVault, token: &str, ca: &str, args: &[&str]) -> Output {
    es().args(args)
        .env("VAULT_TOKEN", token)
        .env("VAULT_CACERT", ca)
        .env("VAULT_CLIENT_TIMEOUT", "10")
        .env_remove("BAO_TOKEN")
        .env_remove("BAO_CACERT")
        .env_remove("VAULT_NAMESPACE")
        .env_remove("BAO_NAMESPACE")
        .env_remove("VAULT_ADDR")
        .env("ENCSTORE_TEST_VAULT", &v.host_port)
        .output()
        .unwrap()
}

fn vok(v: &TestVault, args: &[&str]) -> Vec<u8> {
    let out = run_with(v, &v.token, &v.ca_cert.display().to_string(), args);
    assert!(
        out.status.success(),
        "encstore {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `args`, expects exit 1 with one `encstore: error:` line that
/// contains `needle` and no token; returns it.
fn vfails(v: &TestVault, token: &str, ca: &str, args: &[&str], needle: &str) -> String {
    let out = run_with(v, token, ca, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "encstore {args:?}: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("encstore: error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(line.contains(needle), "{args:?}: {line:?} lacks {needle:?}");
    assert!(!err.contains(&v.token), "the token leaked: {err}");
    line.to_owned()
}

/// Every file under `d`, with its bytes.
fn snapshot(d: &Dir) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![d.0.path().to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn a_keyset_wrapped_in_openbao_through_the_whole_rotation() {
    let Some(v) = testing::server("a_keyset_wrapped_in_openbao_through_the_whole_rotation") else {
        return;
    };
    let d = Dir::new();
    let uri = v.uri(&unique_name("cli-kek"));
    let out = run_with(
        &v,
        &v.token,
        &v.ca_cert.display().to_string(),
        &["create-master-key", "--master-key-uri", &uri],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("created a transit key (type aes256-gcm96, not exportable)"),
        "{err}"
    );
    // The key Vault holds is what the issue names.
    let key = v.bao_ok(&[
        "read",
        "-format=json",
        &format!("transit/keys/{}", uri.rsplit('/').next().unwrap()),
    ]);
    let key: serde_json::Value = serde_json::from_str(&key).unwrap();
    assert_eq!(key["data"]["type"], "aes256-gcm96", "{key}");
    assert_eq!(key["data"]["exportable"], false, "{key}");
    // A second create is refused.
    vfails(
        &v,
        &v.token,
        &v.ca_cert.display().to_string(),
        &["create-master-key", "--master-key-uri", &uri],
        "already exists",
    );

    let k = d.s("k.json");
    let m = ["--master-key-uri", uri.as_str()];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(m.iter())
            .map(|s| (*s).to_owned())
            .collect()
    };
    let call = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        vok(&v, &a)
    };
    call(with(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &k,
    ]));
    let file = std::fs::read_to_string(&k).unwrap();
    assert!(file.contains("encryptedKeyset"), "{file}");
    assert!(
        !file.contains("\"value\""),
        "key material in the clear: {file}"
    );

    let st = d.s("store");
    let store = |sub: &str, extra: &[&str]| {
        let mut a = vec!["store", sub, "--store", st.as_str(), "--keyset", k.as_str()];
        a.extend_from_slice(extra);
        call(with(&a))
    };
    for i in 0..5 {
        let p = d.s(&format!("v{i}"));
        std::fs::write(&p, format!("secret {i}")).unwrap();
        store("put", &[&format!("s/{i}"), "--in", &p]);
    }
    let list = json(&call(with(&["list-keyset", "--in", &k, "--json"])));
    let old = list["primaryKeyId"].as_u64().unwrap();
    call(with(&[
        "add-key",
        "--key-template",
        "AES256_GCM",
        "--in",
        &k,
        "--out",
        &k,
    ]));
    let list = json(&call(with(&["list-keyset", "--in", &k, "--json"])));
    let new = list["keyInfo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["keyId"].as_u64().unwrap())
        .find(|id| *id != old)
        .unwrap();
    call(with(&[
        "promote-key",
        "--key-id",
        &new.to_string(),
        "--in",
        &k,
        "--out",
        &k,
    ]));
    let summary = json(&store("rewrap", &["--json"]));
    assert_eq!(summary["rewrapped"], 5, "{summary}");
    assert_eq!(summary["failed_count"], 0, "{summary}");
    let verified = json(&store("verify", &["--json"]));
    assert_eq!(verified["ok"], 5, "{verified}");
    assert_eq!(verified["by_key_id"][new.to_string()], 5, "{verified}");
    call(with(&[
        "disable-key",
        "--key-id",
        &old.to_string(),
        "--in",
        &k,
        "--out",
        &k,
        "--store",
        &st,
    ]));
    assert_eq!(store("get", &["s/3"]), b"secret 3");

    // To AWS KMS and back, when this build reaches AWS KMS.
    aws_round_trip(&v, &d, &k, &uri, &st);
}

fn skip_aws(msg: &str) {
    use std::io::Write;
    // Past the test harness's capture, as the service helpers do.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: a_keyset_wrapped_in_openbao_through_the_whole_rotation (AWS KMS part): {msg}"
    );
}

/// moto's KMS emulator, as `scripts/moto.sh start` exports it.
struct Kms {
    endpoint: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    key_uri: String,
}

fn kms_server() -> Option<Kms> {
    let var = |n: &str| std::env::var(n).ok().filter(|s| !s.is_empty());
    Some(Kms {
        endpoint: var("ENCSTORE_AWSKMS_ENDPOINT")?,
        region: var("ENCSTORE_AWSKMS_REGION")?,
        access_key_id: var("ENCSTORE_AWSKMS_ACCESS_KEY_ID")?,
        secret_access_key: var("ENCSTORE_AWSKMS_SECRET_ACCESS_KEY")?,
        key_uri: var("ENCSTORE_AWSKMS_KEY_URI")?,
    })
}

/// Converts the Vault-wrapped keyset `k` to AWS KMS (moto), back to Vault,
/// and to a master keyset file, reading the store each time. Skipped when
/// the binary cannot reach AWS KMS: it is built without the `aws-kms`
/// feature (of encstore-cli, or of encstore through feature unification,
/// as in a workspace build).
fn aws_round_trip(v: &TestVault, d: &Dir, k: &str, uri: &str, st: &str) {
    let probe = es()
        .args([
            "list-keyset",
            "--in",
            k,
            "--master-key-uri",
            "aws-kms://arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ])
        .env("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let probe_err = String::from_utf8_lossy(&probe.stderr);
    assert!(!probe.status.success(), "{probe_err}");
    if probe_err.contains("not supported by this build") {
        // With the CLI's own `aws-kms` feature the binary must reach AWS KMS.
        let built_with_aws = cfg!(feature = "aws-kms");
        assert!(!built_with_aws, "{probe_err}");
        skip_aws(
            "this encstore was built without AWS KMS support (cargo test -p encstore-cli --features aws-kms)",
        );
        return;
    }
    let Some(kms) = kms_server() else {
        let msg = "needs moto's KMS emulator; the ENCSTORE_AWSKMS_* variables are set by: eval \"$(bash scripts/moto.sh start)\"";
        assert!(
            std::env::var("ENCSTORE_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "ENCSTORE_REQUIRE_SERVICES=1 but the AWS KMS part {msg}"
        );
        skip_aws(msg);
        return;
    };
    let aws = |args: &[&str]| {
        let out = es()
            .args(args)
            .env("VAULT_TOKEN", &v.token)
            .env("VAULT_CACERT", &v.ca_cert)
            .env("AWS_ENDPOINT_URL_KMS", &kms.endpoint)
            .env("AWS_REGION", &kms.region)
            .env("AWS_ACCESS_KEY_ID", &kms.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &kms.secret_access_key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "encstore {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let ka = d.s("k-aws.json");
    aws(&[
        "convert-keyset",
        "--in",
        k,
        "--master-key-uri",
        uri,
        "--out",
        &ka,
        "--new-master-key-uri",
        &kms.key_uri,
    ]);
    let kb = d.s("k-back.json");
    aws(&[
        "convert-keyset",
        "--in",
        &ka,
        "--master-key-uri",
        &kms.key_uri,
        "--out",
        &kb,
        "--new-master-key-uri",
        uri,
    ]);
    let got = aws(&[
        "store",
        "get",
        "--store",
        st,
        "--keyset",
        &kb,
        "--master-key-uri",
        uri,
        "s/4",
    ]);
    assert_eq!(got, b"secret 4");
    // And to a master keyset file.
    let mk = d.s("master.json");
    aws(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &mk,
    ]);
    let kc = d.s("k-master.json");
    aws(&[
        "convert-keyset",
        "--in",
        &kb,
        "--master-key-uri",
        uri,
        "--out",
        &kc,
        "--new-master-keyset",
        &mk,
    ]);
    let got = aws(&[
        "store",
        "get",
        "--store",
        st,
        "--keyset",
        &kc,
        "--master-keyset",
        &mk,
        "s/0",
    ]);
    assert_eq!(got, b"secret 0");
}

/// Each Vault failure is one clear line, and nothing under the directory
/// changed: not the keyset (an edit in place), not the store.
#[test]
fn vault_errors_are_clear_and_write_nothing() {
    let Some(v) = testing::server("vault_errors_are_clear_and_write_nothing") else {
        return;
    };
    let d = Dir::new();
    let name = unique_name("cli-err");
    let uri = v.uri(&name);
    let ca = v.ca_cert.display().to_string();
    vok(&v, &["create-master-key", "--master-key-uri", &uri]);
    let k = d.s("k.json");
    vok(
        &v,
        &[
            "create-keyset",
            "--key-template",
            "AES256_GCM",
            "--out",
            &k,
            "--master-key-uri",
            &uri,
        ],
    );
    let st = d.s("store");
    let secret = d.s("secret");
    std::fs::write(&secret, "x").unwrap();
    vok(
        &v,
        &[
            "store",
            "put",
            "--store",
            &st,
            "--keyset",
            &k,
            "--master-key-uri",
            &uri,
            "a",
            "--in",
            &secret,
        ],
    );
    let before = snapshot(&d);
    let edit = |u: &str| -> Vec<String> {
        [
            "add-key",
            "--key-template",
            "AES256_GCM",
            "--in",
            &k,
            "--out",
            &k,
            "--master-key-uri",
            u,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let check = |token: &str, ca: &str, args: Vec<String>, needle: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        vfails(&v, token, ca, &a, needle);
        assert_eq!(snapshot(&d), before, "{args:?} changed a file");
    };

    // Unreachable: a closed port, within the timeout.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let start = std::time::Instant::now();
    check(
        &v.token,
        &ca,
        edit(&format!("hcvault://127.0.0.1:{closed}/transit/keys/{name}")),
        "is unreachable",
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
    // TLS: a CA that did not sign the server's certificate.
    let other_ca = d.s("other-ca.pem");
    let dev = BaoDevServer::start("vault_errors_are_clear_and_write_nothing");
    if let Some(dev) = &dev {
        std::fs::copy(&dev.vault.ca_cert, &other_ca).unwrap();
    }
    let before = snapshot(&d);
    let check = |token: &str, ca: &str, args: Vec<String>, needle: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        vfails(&v, token, ca, &a, needle);
        assert_eq!(snapshot(&d), before, "{args:?} changed a file");
    };
    if dev.is_some() {
        check(&v.token, &other_ca, edit(&uri), "TLS with Vault server");
    }
    // A wrong token: 403.
    check(
        "s.not-a-real-token",
        &ca,
        edit(&uri),
        "refused the token (403 permission denied)",
    );
    // A missing key.
    check(
        &v.token,
        &ca,
        edit(&v.uri("no-such-key-here")),
        "no transit key",
    );
    // A key version below min_decryption_version: rotate twice and raise
    // the minimum past the version that wrapped the keyset.
    v.bao_ok(&["write", "-f", &format!("transit/keys/{name}/rotate")]);
    v.bao_ok(&[
        "write",
        &format!("transit/keys/{name}/config"),
        "min_decryption_version=2",
    ]);
    check(
        &v.token,
        &ca,
        edit(&uri),
        "below the key's min_decryption_version",
    );
    check(
        &v.token,
        &ca,
        [
            "store",
            "get",
            "--store",
            &st,
            "--keyset",
            &k,
            "--master-key-uri",
            &uri,
            "a",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
        "below the key's min_decryption_version",
    );
    v.bao_ok(&[
        "write",
        &format!("transit/keys/{name}/config"),
        "min_decryption_version=1",
    ]);

    // Sealed: on a private server, sealed after the keyset was made.
    let Some(dev) = dev else { return };
    let dv = &dev.vault;
    let duri = dv.uri(&unique_name("sealed"));
    let dca = dv.ca_cert.display().to_string();
    let dk = d.s("dk.json");
    let out = run_with(
        dv,
        &dv.token,
        &dca,
        &["create-master-key", "--master-key-uri", &duri],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_with(
        dv,
        &dv.token,
        &dca,
        &[
            "create-keyset",
            "--key-template",
            "AES256_GCM",
            "--out",
            &dk,
            "--master-key-uri",
            &duri,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dv.bao_ok(&["operator", "seal"]);
    let before = snapshot(&d);
    let args = [
        "add-key",
        "--key-template",
        "AES256_GCM",
        "--in",
        &dk,
        "--out",
        &dk,
        "--master-key-uri",
        &duri,
    ];
    vfails(dv, &dv.token, &dca, &args, "is sealed");
    assert_eq!(snapshot(&d), before, "a sealed server changed a file");
}

/// Google's Tink (Python Tink 1.16.1 with its hcvault integration) opens a
/// keyset that the tool created, rotated and wrapped in OpenBao, and
/// decrypts what `encstore encrypt` wrote with it
/// (`tests/interop/kms_interop.py` does Tink's side).
#[test]
fn google_tink_reads_a_keyset_the_tool_wrapped_in_openbao() {
    let test = "google_tink_reads_a_keyset_the_tool_wrapped_in_openbao";
    let Some(v) = testing::server(test) else {
        return;
    };
    if !python_tink(test) {
        return;
    }
    let d = Dir::new();
    let name = unique_name("cli-tink");
    let uri = v.uri(&name);
    let k = d.s("k.json");
    vok(&v, &["create-master-key", "--master-key-uri", &uri]);
    vok(
        &v,
        &[
            "create-keyset",
            "--key-template",
            "AES256_GCM",
            "--out",
            &k,
            "--master-key-uri",
            &uri,
        ],
    );
    vok(
        &v,
        &[
            "rotate-keyset",
            "--key-template",
            "AES256_GCM",
            "--in",
            &k,
            "--out",
            &k,
            "--master-key-uri",
            &uri,
        ],
    );
    let primary = json(&vok(
        &v,
        &[
            "list-keyset",
            "--in",
            &k,
            "--json",
            "--master-key-uri",
            &uri,
        ],
    ))["primaryKeyId"]
        .as_u64()
        .unwrap();
    std::fs::write(d.p("pt"), b"read by Tink").unwrap();
    let ct = d.s("ct");
    vok(
        &v,
        &[
            "encrypt",
            "--keyset",
            &k,
            "--master-key-uri",
            &uri,
            "--associated-data",
            "certs/a.pem",
            "--in",
            &d.s("pt"),
            "--out",
            &ct,
        ],
    );
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let manifest = serde_json::json!({
        "kms": "hcvault",
        "hcvault": v.tink_manifest_kms(&name),
        "read": [{"keyset": k, "keyset_ad_hex": "", "ciphertext": ct,
                  "ad_hex": hex(b"certs/a.pem"), "plaintext_hex": hex(b"read by Tink"),
                  "primary_key_id": primary}],
    });
    run_kms_interop(&manifest, &d.p(""), &v.token, 1);
}

/// `encrypt`/`decrypt` with a keyset of KMS envelope keys (master key in
/// OpenBao): each encryption wraps a fresh DEK, the output is Tink's, and
/// Google's Tink reads it; what Tink encrypts with its own envelope keyset
/// the tool decrypts. A wrong associated data or a missing token fails
/// with one clear line.
#[test]
fn encrypt_and_decrypt_with_a_kms_envelope_keyset() {
    let test = "encrypt_and_decrypt_with_a_kms_envelope_keyset";
    let Some(v) = testing::server(test) else {
        return;
    };
    let d = Dir::new();
    let name = unique_name("cli-envelope");
    let uri = v.uri(&name);
    vok(&v, &["create-master-key", "--master-key-uri", &uri]);
    let k = d.s("env.json");
    vok(
        &v,
        &[
            "create-keyset",
            "--key-template",
            "AES256_GCM",
            "--envelope-kek-uri",
            &uri,
            "--out",
            &k,
        ],
    );
    std::fs::write(d.p("pt"), b"wrapped by a fresh DEK").unwrap();
    let (ct, ct2, back) = (d.s("ct"), d.s("ct2"), d.s("back"));
    let crypt = |cmd: &str, input: &str, out: &str, ad: &str| {
        vec![
            cmd.to_owned(),
            "--keyset".into(),
            k.clone(),
            "--associated-data".into(),
            ad.to_owned(),
            "--in".into(),
            input.to_owned(),
            "--out".into(),
            out.to_owned(),
        ]
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    vok(&v, &args(&crypt("encrypt", &d.s("pt"), &ct, "doc/1")));
    vok(&v, &args(&crypt("encrypt", &d.s("pt"), &ct2, "doc/1")));
    let (c1, c2) = (std::fs::read(&ct).unwrap(), std::fs::read(&ct2).unwrap());
    assert_ne!(c1, c2, "a fresh DEK and IV per encryption");
    let primary = json(&vok(&v, &["list-keyset", "--in", &k, "--json"]))["primaryKeyId"]
        .as_u64()
        .unwrap() as u32;
    assert_eq!(c1[0], 1, "a TINK prefix");
    assert_eq!(c1[1..5], primary.to_be_bytes());
    vok(&v, &args(&crypt("decrypt", &ct, &back, "doc/1")));
    assert_eq!(std::fs::read(&back).unwrap(), b"wrapped by a fresh DEK");
    let (token, ca) = (v.token.clone(), v.ca_cert.display().to_string());
    let wrong = d.s("wrong");
    vfails(
        &v,
        &token,
        &ca,
        &args(&crypt("decrypt", &ct, &wrong, "doc/2")),
        "not authentic under this keyset and associated data",
    );
    vfails(
        &v,
        "",
        &ca,
        &args(&crypt("decrypt", &ct, &wrong, "doc/1")),
        "no Vault token",
    );
    assert!(!d.p("wrong").exists(), "nothing written");

    // --policy applies to an envelope key's DEK template: AES-256-GCM
    // passes `modern`, AES-EAX does not.
    let mut with_policy = crypt("encrypt", &d.s("pt"), &d.s("ct3"), "doc/1");
    with_policy.extend(["--policy".into(), "modern".into()]);
    vok(&v, &args(&with_policy));
    let eax = d.s("eax.json");
    vok(
        &v,
        &[
            "create-keyset",
            "--key-template",
            "AES128_EAX",
            "--envelope-kek-uri",
            &uri,
            "--out",
            &eax,
        ],
    );
    let refused = [
        "encrypt",
        "--keyset",
        &eax,
        "--policy",
        "modern",
        "--in",
        &d.s("pt"),
        "--out",
        &wrong,
    ];
    let line = vfails(&v, &token, &ca, &refused, "refused by policy \"modern\"");
    assert!(line.contains("DEK AesEaxKey"), "{line}");
    assert!(!d.p("wrong").exists(), "nothing written");

    // The store commands take the keyset too, `store stat --keyset`
    // included (it opens the master key as the others do).
    let store = d.s("store");
    let pt = d.s("pt");
    let in_store = |cmd: &str| -> Vec<String> {
        [cmd, "--store", &store, "--keyset", &k, "doc"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    };
    let mut put = in_store("put");
    put.extend(["--in".into(), pt.clone()]);
    vok(&v, &args(&[vec!["store".to_owned()], put].concat()));
    let mut stat = in_store("stat");
    stat.push("--json".into());
    let st = json(&vok(&v, &args(&[vec!["store".to_owned()], stat].concat())));
    assert_eq!(st["key_id"].as_u64(), Some(u64::from(primary)), "{st}");
    assert_eq!(st["key_status"], "ENABLED", "{st}");
    assert_eq!(st["content"], "ciphertext", "{st}");
    let got = vok(
        &v,
        &args(&[vec!["store".to_owned()], in_store("get")].concat()),
    );
    assert_eq!(got, b"wrapped by a fresh DEK");

    // Google's Tink reads the tool's ciphertext with the tool's keyset,
    // and writes an envelope keyset and ciphertext of its own.
    if !python_tink(test) {
        return;
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let (tk, tct) = (d.s("tink.json"), d.s("tink.ct"));
    let manifest = serde_json::json!({
        "kms": "hcvault",
        "hcvault": v.tink_manifest_kms(&name),
        "envelope_kek_uri": uri,
        "envelope_read": [{"keyset": k, "no_secret": true, "ciphertext": ct,
                           "ad_hex": hex(b"doc/1"), "plaintext_hex": hex(b"wrapped by a fresh DEK")}],
        "envelope_write": [{"dek_template": "AES128_GCM", "prefix": "TINK",
                            "keyset_out": tk, "ciphertext_out": tct,
                            "ad_hex": hex(b"from Tink"), "plaintext_hex": hex(b"Tink's envelope")}],
    });
    run_kms_interop(&manifest, &d.p(""), &v.token, 2);
    let from_tink = d.s("from-tink");
    vok(
        &v,
        &[
            "decrypt",
            "--keyset",
            &tk,
            "--associated-data",
            "from Tink",
            "--in",
            &tct,
            "--out",
            &from_tink,
        ],
    );
    assert_eq!(std::fs::read(&from_tink).unwrap(), b"Tink's envelope");
}
