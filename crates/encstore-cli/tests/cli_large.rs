//! Large data through the CLI: `encrypt`/`decrypt` with a streaming
//! keyset (Tink's streaming AEAD, checked against Python Tink both ways),
//! and the store commands with `--streaming-keyset`: streamed `put`/`get`,
//! `get --range`, and `status`/`rewrap`/`verify` over stores that mix small
//! and large objects.
//!
//! The 1 GiB tests (peak RSS of `encrypt` and `store put`, round trips over
//! the filesystem and SeaweedFS) live in `tests/cli_large_gib.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command as StdCommand;

use common::*;
use serde_json::{Value, json};

/// Plaintext of `n` bytes that differs at every offset class.
fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// A cleartext keyset from `template` at `d/name`.
fn new_keyset(d: &Dir, name: &str, template: &str) -> String {
    let k = d.s(name);
    ok(&["create-keyset", "--key-template", template, "--out", &k]);
    k
}

/// `encstore ARGS` with `stdin`; returns the output.
fn run_stdin(args: &[&str], stdin: &[u8]) -> std::process::Output {
    es().args(args)
        .write_stdin(stdin.to_vec())
        .output()
        .unwrap()
}

// ------------------------------------------------- encrypt / decrypt

/// Sizes around the segment boundaries of AES128_GCM_HKDF_4KB (header 24
/// bytes, tag 16: the first segment holds 4096 - 24 - 16 = 4056 bytes, the
/// others 4080) and several segments.
const SIZES_4KB: [usize; 9] = [
    0,
    1,
    4055,
    4056,
    4057,
    4056 + 4080,
    4056 + 4081,
    100_000,
    300_001,
];

/// `encstore CMD --keyset KEYSET --in IN --out OUT --associated-data AD`
/// (`encrypt` or `decrypt` a file), which must succeed.
fn crypt_file(cmd: &str, keyset: &str, input: &str, output: &str, ad: &str) {
    ok(&[
        cmd,
        "--keyset",
        keyset,
        "--in",
        input,
        "--out",
        output,
        "--associated-data",
        ad,
    ]);
}

#[test]
fn encrypt_and_decrypt_stream_with_a_streaming_keyset() {
    let d = Dir::new();
    let s = new_keyset(&d, "s.json", "AES128_GCM_HKDF_4KB");
    let ks = read_keyset(&s).streaming_aead().unwrap();
    for n in SIZES_4KB {
        let pt = data(n, 7);
        let (p, c, back) = (d.s("pt"), d.s("ct"), d.s("back"));
        std::fs::write(&p, &pt).unwrap();
        crypt_file("encrypt", &s, &p, &c, "doc-1");
        let ct = std::fs::read(&c).unwrap();
        // Exactly Tink's streaming ciphertext: its size, and the library's
        // streaming AEAD (tested against Tink) decrypts it.
        assert_eq!(
            ct.len() as u64,
            ks.layout().ciphertext_size(n as u64).unwrap(),
            "{n}"
        );
        assert_eq!(ks.decrypt(&ct, b"doc-1").unwrap(), pt, "{n}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&c).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Back through a file, and through stdin/stdout.
        crypt_file("decrypt", &s, &c, &back, "doc-1");
        assert_eq!(std::fs::read(&back).unwrap(), pt, "{n}");
        let out = run_stdin(
            &[
                "decrypt",
                "--keyset",
                &s,
                "--associated-data-hex",
                "646f632d31",
            ],
            &ct,
        );
        assert!(out.status.success(), "{n}");
        assert_eq!(out.stdout, pt, "{n}");
        // stdin to stdout the other way.
        let out = run_stdin(&["encrypt", "--keyset", &s, "--associated-data", "x"], &pt);
        assert!(out.status.success());
        assert_eq!(ks.decrypt(&out.stdout, b"x").unwrap(), pt, "{n}");
    }
}

#[test]
fn streaming_decrypt_refuses_bad_ciphertexts_and_writes_no_file() {
    let d = Dir::new();
    let s = new_keyset(&d, "s.json", "AES256_GCM_HKDF_4KB");
    let pt = data(50_000, 3);
    let (p, c) = (d.s("pt"), d.s("ct"));
    std::fs::write(&p, &pt).unwrap();
    crypt_file("encrypt", &s, &p, &c, "a");
    let ct = std::fs::read(&c).unwrap();
    let out_path = d.s("out");
    let decrypt = |ct: &[u8], ad: &str| {
        std::fs::write(d.p("bad"), ct).unwrap();
        let args = [
            "decrypt",
            "--keyset",
            &s,
            "--in",
            &d.s("bad"),
            "--out",
            &out_path,
            "--associated-data",
            ad,
        ];
        let out = run(&args);
        let stderr = check_fails(&args, &out, 1, "cannot decrypt");
        assert!(
            !Path::new(&out_path).exists(),
            "a failed decryption wrote {out_path}"
        );
        // No temporary file is left behind either.
        let left: Vec<_> = std::fs::read_dir(d.0.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        stderr
    };
    let e = decrypt(&ct, "b");
    assert!(e.contains("does not decrypt with any enabled key"), "{e}");
    // Cut at a segment boundary: every segment left authenticates, but the
    // last one is not sealed as the last: detected at the end.
    let e = decrypt(&ct[..4096 * 3], "a");
    assert!(e.contains("segment"), "{e}");
    let mut flipped = ct.clone();
    flipped[40 + 4096 * 5 + 9] ^= 1;
    let e = decrypt(&flipped, "a");
    assert!(e.contains("segment 5 "), "{e}");
    let mut extended = ct.clone();
    extended.extend_from_slice(&[0; 100]);
    decrypt(&extended, "a");
    decrypt(b"", "a");
    // On stdout, the segments before the damage were written, and the
    // exit status says it failed.
    let out = run_stdin(
        &["decrypt", "--keyset", &s, "--associated-data", "a"],
        &flipped,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.len() < pt.len());
    assert_eq!(out.stdout[..], pt[..out.stdout.len()]);
}

#[test]
fn streaming_encrypt_follows_the_policy_and_the_master_key() {
    let d = Dir::new();
    let s = new_keyset(&d, "s.json", "AES128_CTR_HMAC_SHA256_4KB");
    let p = d.s("pt");
    std::fs::write(&p, b"hello").unwrap();
    // modern allows AES-GCM-HKDF streaming only.
    fails(
        &["encrypt", "--keyset", &s, "--in", &p, "--policy", "modern"],
        1,
        "not allowed by the active policy",
    );
    let out = ok(&["encrypt", "--keyset", &s, "--in", &p, "--policy", "tink"]);
    assert_eq!(
        read_keyset(&s)
            .streaming_aead()
            .unwrap()
            .decrypt(&out, b"")
            .unwrap(),
        b"hello"
    );
    // An encrypted streaming keyset opens with its master keyset.
    let m = keyset(&d, "master.json");
    let es_path = d.s("s-enc.json");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM_HKDF_1MB",
        "--out",
        &es_path,
        "--master-keyset",
        &m,
        "--keyset-associated-data",
        "ks",
    ]);
    let ct = ok(&[
        "encrypt",
        "--keyset",
        &es_path,
        "--in",
        &p,
        "--master-keyset",
        &m,
        "--keyset-associated-data",
        "ks",
    ]);
    let ct_path = d.s("ct");
    std::fs::write(&ct_path, &ct).unwrap();
    let back = ok(&[
        "decrypt",
        "--keyset",
        &es_path,
        "--in",
        &ct_path,
        "--master-keyset",
        &m,
        "--keyset-associated-data",
        "ks",
    ]);
    assert_eq!(back, b"hello");
    fails(
        &["decrypt", "--keyset", &es_path, "--in", &ct_path],
        1,
        "is an encrypted keyset",
    );
}

// ------------------------------------------------------- Python Tink

/// The Python interpreter with Tink, or `None` (after printing SKIPPED).
fn python_tink(test: &str) -> Option<String> {
    let python = std::env::var("ENCSTORE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let found = StdCommand::new(&python)
        .args(["-c", "import tink; from tink import streaming_aead"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(python);
    }
    assert!(
        std::env::var("ENCSTORE_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "{test}: ENCSTORE_REQUIRE_SERVICES=1 but {python} cannot import tink; install it with: python3 -m pip install tink==1.16.1"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test}: needs Python Tink (python3 -m pip install tink==1.16.1)"
    );
    None
}

/// Google's Tink (Python Tink 1.16.1) decrypts what `encstore encrypt`
/// streamed, and `encstore decrypt` decrypts what Tink streamed, for every
/// streaming template, sizes around the first-segment boundary and
/// several segments, cleartext and encrypted keysets
/// (`tests/interop/streaming_check.py` is Tink's side).
#[test]
fn python_tink_and_the_cli_read_each_others_streams() {
    let test = "python_tink_and_the_cli_read_each_others_streams";
    let Some(python) = python_tink(test) else {
        return;
    };
    let d = Dir::new();
    let master = keyset(&d, "master.json");
    let mut keysets = serde_json::Map::new();
    let mut jobs = Vec::new();
    // (job id, keyset, plaintext path, ciphertext path, ad) to decrypt
    // with the CLI once Tink wrote them.
    let mut from_tink = Vec::new();
    let templates = encstore_tink::templates::all_names()
        .filter(|n| n.contains("HKDF") || n.contains("CTR_HMAC"))
        .filter(|n| n.ends_with("KB") || n.ends_with("MB"))
        .collect::<Vec<_>>();
    assert_eq!(templates.len(), 8, "{templates:?}");
    for (t, template) in templates.iter().enumerate() {
        let name = format!("ks{t}");
        let path = d.s(&format!("{name}.json"));
        let encrypted = t % 3 == 1;
        let mut cli_master: Vec<String> = Vec::new();
        let clear = d.s(&format!("{name}-clear.json"));
        ok(&["create-keyset", "--key-template", template, "--out", &clear]);
        // The first segment's plaintext size of this template.
        let first = read_keyset(&clear)
            .streaming_aead()
            .unwrap()
            .layout()
            .first_plaintext_segment_size() as usize;
        if encrypted {
            ok(&[
                "convert-keyset",
                "--in",
                &clear,
                "--out",
                &path,
                "--new-master-keyset",
                &master,
                "--new-keyset-associated-data",
                "interop",
            ]);
            cli_master = [
                "--master-keyset",
                &master,
                "--keyset-associated-data",
                "interop",
            ]
            .map(str::to_owned)
            .to_vec();
            keysets.insert(
                name.clone(),
                json!({"file": path, "format": "json", "master": master, "keyset_ad_hex": hex(b"interop")}),
            );
        } else {
            std::fs::copy(&clear, &path).unwrap();
            keysets.insert(
                name.clone(),
                json!({"file": path, "format": "json", "master": null, "keyset_ad_hex": null}),
            );
        }
        let segment = if template.ends_with("1MB") {
            1 << 20
        } else {
            4096
        };
        let sizes = [0, 1, first - 1, first, first + 1, first + 3 * segment + 17];
        for (i, n) in sizes.into_iter().enumerate() {
            let ad = format!("ad {t} {i}");
            let pt = d.s(&format!("pt-{t}-{i}"));
            std::fs::write(&pt, data(n, t as u8)).unwrap();
            // encstore writes, Tink reads.
            let ct = d.s(&format!("ct-es-{t}-{i}"));
            let mut args: Vec<String> = [
                "encrypt",
                "--keyset",
                &path,
                "--in",
                &pt,
                "--out",
                &ct,
                "--associated-data",
                &ad,
            ]
            .map(str::to_owned)
            .to_vec();
            args.extend(cli_master.iter().cloned());
            ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
            jobs.push(
                json!({"id": format!("es-{t}-{i}"), "op": "decrypt", "keyset": name,
                "in": ct, "expect": pt, "ad_hex": hex(ad.as_bytes())}),
            );
            // Tink writes, encstore reads.
            let tink_ct = d.s(&format!("ct-tink-{t}-{i}"));
            jobs.push(
                json!({"id": format!("tink-{t}-{i}"), "op": "encrypt", "keyset": name,
                "in": pt, "out": tink_ct, "ad_hex": hex(ad.as_bytes())}),
            );
            from_tink.push((path.clone(), cli_master.clone(), pt, tink_ct, ad));
        }
    }
    let jobs_path = d.p("jobs.json");
    let results_path = d.p("results.json");
    std::fs::write(
        &jobs_path,
        serde_json::to_vec(&json!({"keysets": keysets, "jobs": jobs, "probes": []})).unwrap(),
    )
    .unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/streaming_check.py");
    let out = StdCommand::new(&python)
        .arg(&script)
        .arg(&jobs_path)
        .arg(&results_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "streaming_check.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Value = serde_json::from_slice(&std::fs::read(&results_path).unwrap()).unwrap();
    for (name, r) in results["keysets"].as_object().unwrap() {
        assert_eq!(r, "ok", "Tink refused keyset {name}");
    }
    let results = results["jobs"].as_object().unwrap();
    assert_eq!(results.len(), jobs.len());
    for (id, r) in results {
        assert_eq!(r, "ok", "job {id}");
    }
    for (path, master, pt, ct, ad) in from_tink {
        let mut args: Vec<String> = [
            "decrypt",
            "--keyset",
            &path,
            "--in",
            &ct,
            "--associated-data",
            &ad,
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(master);
        let got = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(got, std::fs::read(&pt).unwrap(), "{ct}");
        // Tink's ciphertext is bound to its associated data here too.
        let mut wrong = args.clone();
        wrong[6] = format!("{ad}!");
        let out = run(&wrong.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(out.status.code(), Some(1), "{ct}");
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ------------------------------------------------------------ store

/// A store test's files: a directory, its store, an AEAD keyset `k.json`
/// and a streaming keyset `s.json`.
struct Stores {
    d: Dir,
    st: String,
    k: String,
    sk: String,
}

/// [`Stores`] with a new streaming keyset of `template`.
fn stores(template: &str) -> Stores {
    let d = Dir::new();
    let st = d.s("store");
    let k = keyset(&d, "k.json");
    let sk = new_keyset(&d, "s.json", template);
    Stores { d, st, k, sk }
}

/// The file `big` in `d`, holding `data(size, seed)`: its path and bytes.
fn big_file(d: &Dir, size: usize, seed: u8) -> (String, Vec<u8>) {
    let big = data(size, seed);
    let p = d.s("big");
    std::fs::write(&p, &big).unwrap();
    (p, big)
}

#[test]
fn store_put_and_get_stream_large_objects_and_keep_small_ones_small() {
    let Stores { d, st, k, sk } = stores("AES128_GCM_HKDF_4KB");
    let (big_path, big) = big_file(&d, 3_000_000, 1);
    ok(&store_args(
        "put",
        &st,
        &k,
        &sk,
        &["big/file", "--in", &big_path],
    ));
    // Through stdin, a value above the threshold is streamed too.
    let out = run_stdin(&store_args("put", &st, &k, &sk, &["big/stdin"]), &big);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // At most 1 MiB stays a small (AEAD) object.
    let small = data(1 << 20, 2);
    let out = run_stdin(&store_args("put", &st, &k, &sk, &["small"]), &small);
    assert!(out.status.success());
    // The stored objects: a large one starts with 0x01 and the streaming
    // key's ID, a small one with the AEAD key's Tink prefix.
    let sid = primary_of(&sk);
    let kid = primary_of(&k);
    let head = |key: &str| std::fs::read(Path::new(&st).join(key)).unwrap()[..5].to_vec();
    let mut large_prefix = vec![1];
    large_prefix.extend_from_slice(&sid.to_be_bytes());
    let mut small_prefix = vec![1];
    small_prefix.extend_from_slice(&kid.to_be_bytes());
    assert_eq!(head("big/file"), large_prefix);
    assert_eq!(head("big/stdin"), large_prefix);
    assert_eq!(head("small"), small_prefix);

    // get: to stdout, and to a file (mode 0600).
    for key in ["big/file", "big/stdin"] {
        assert_eq!(ok(&store_args("get", &st, &k, &sk, &[key])), big, "{key}");
    }
    let out_path = d.s("got");
    ok(&store_args(
        "get",
        &st,
        &k,
        &sk,
        &["big/file", "--out", &out_path],
    ));
    assert_eq!(std::fs::read(&out_path).unwrap(), big);
    assert_eq!(ok(&store_args("get", &st, &k, &sk, &["small"])), small);
    // ENCSTORE_STREAMING_KEYSET stands in for the flag.
    let out = es()
        .args(["store", "get", "--store", &st, "--keyset", &k, "big/file"])
        .env("ENCSTORE_STREAMING_KEYSET", &sk)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, big);
    // Without the streaming keyset, the large object names a key this
    // keyset does not have.
    fails(
        &["store", "get", "--store", &st, "--keyset", &k, "big/file"],
        1,
        &sid.to_string(),
    );
    // `store stat`: the large object's key is found in the streaming
    // keyset given with --streaming-keyset, and only there.
    let json = |args: &[&str]| -> serde_json::Value { serde_json::from_slice(&ok(args)).unwrap() };
    let v = json(&store_args("stat", &st, &k, &sk, &["big/file", "--json"]));
    assert_eq!(v["key_id"].as_u64(), Some(u64::from(sid)), "{v}");
    assert_eq!(v["key_status"], "ENABLED", "{v}");
    let v = json(&[
        "store", "stat", "--store", &st, "--keyset", &k, "big/file", "--json",
    ]);
    assert_eq!(v["key_status"], "UNKNOWN", "{v}");
    let text = String::from_utf8(ok(&store_args("stat", &st, &k, &sk, &["big/file"]))).unwrap();
    assert!(
        text.contains(&format!(
            "key ID:   {sid} (from its Tink prefix; ENABLED in the keyset)"
        )),
        "{text}"
    );
    // The keysets swapped: refused, naming the file.
    fails(
        &store_args("stat", &st, &k, &k, &["big/file"]),
        1,
        "holds AEAD keys, not streaming AEAD keys",
    );

    // A damaged large object: nothing is written to --out.
    let obj = Path::new(&st).join("big/file");
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes[5 + 24 + 4096 * 400 + 3] ^= 1;
    std::fs::write(&obj, &bytes).unwrap();
    let bad_out = d.s("bad-out");
    let args = store_args("get", &st, &k, &sk, &["big/file", "--out", &bad_out]);
    let out = run(&args);
    check_fails(&args, &out, 1, "big/file");
    assert!(!Path::new(&bad_out).exists());
}

#[test]
fn store_get_range_prints_exactly_the_requested_bytes() {
    let Stores { d, st, k, sk } = stores("AES128_GCM_HKDF_4KB");
    let (p, big) = big_file(&d, 2_000_003, 5);
    ok(&store_args("put", &st, &k, &sk, &["big", "--in", &p]));
    let small = b"0123456789".to_vec();
    let sp = d.s("small");
    std::fs::write(&sp, &small).unwrap();
    ok(&store_args("put", &st, &k, &sk, &["small", "--in", &sp]));
    let n = big.len() as u64;
    // (range, expected start, expected end exclusive)
    let cases: Vec<(String, u64, u64)> = vec![
        ("0-0".into(), 0, 1),
        ("0-4095".into(), 0, 4096),
        // Across the first segment boundary (4056 plaintext bytes).
        ("4050-4070".into(), 4050, 4071),
        ("1000000-1012345".into(), 1_000_000, 1_012_346),
        (format!("{}-{}", n - 1, n - 1), n - 1, n),
        // An end past the value is clamped, as HTTP does.
        (format!("{}-{}", n - 10, n + 1000), n - 10, n),
        (format!("{}-", n - 5000), n - 5000, n),
        ("0-".into(), 0, n),
    ];
    for (r, a, b) in &cases {
        let got = ok(&store_args("get", &st, &k, &sk, &["big", "--range", r]));
        assert_eq!(got, big[*a as usize..*b as usize], "--range {r}");
    }
    let out_path = d.s("range-out");
    ok(&store_args(
        "get",
        &st,
        &k,
        &sk,
        &["big", "--range", "10-19", "--out", &out_path],
    ));
    assert_eq!(std::fs::read(&out_path).unwrap(), big[10..20]);
    // Small objects too.
    assert_eq!(
        ok(&store_args(
            "get",
            &st,
            &k,
            &sk,
            &["small", "--range", "3-5"]
        )),
        b"345"
    );
    // Unsatisfiable: a start at or after the end (exit 1, the size said).
    for r in [format!("{n}-{}", n + 10), format!("{}-", n + 1)] {
        let e = fails(
            &store_args("get", &st, &k, &sk, &["big", "--range", &r]),
            1,
            &format!("range {r} is not satisfiable"),
        );
        assert!(e.contains(&format!("its bytes are 0 to {}", n - 1)), "{e}");
    }
    fails(
        &store_args("get", &st, &k, &sk, &["small", "--range", "10-10"]),
        1,
        "holds 10 bytes",
    );
    // Malformed: a usage error (exit 2) that says what is expected.
    for (r, why) in [
        ("5", "has no '-'"),
        ("-5", "suffix range"),
        ("x-5", "not a decimal byte offset"),
        ("9-3", "ends before it starts"),
        ("1-2-3", "not a decimal byte offset"),
    ] {
        let e = fails(
            &store_args("get", &st, &k, &sk, &["big", "--range", r]),
            2,
            why,
        );
        assert!(e.contains("START-END"), "{e}");
    }
    fails(
        &store_args("get", &st, &k, &sk, &["nope", "--range", "0-1"]),
        1,
        "not found",
    );
}

#[test]
fn status_rewrap_and_verify_cover_both_keysets() {
    let Stores { d, st, k, sk } = stores("AES256_GCM_HKDF_4KB");
    let (p, big) = big_file(&d, 1_500_000, 9);
    for i in 0..3 {
        ok(&store_args(
            "put",
            &st,
            &k,
            &sk,
            &[&format!("large/{i}"), "--in", &p],
        ));
        let out = run_stdin(
            &store_args("put", &st, &k, &sk, &[&format!("small/{i}")]),
            format!("small {i}").as_bytes(),
        );
        assert!(out.status.success());
    }
    let status = |k: &str, sk: &str| -> Value {
        serde_json::from_slice(&ok(&store_args("status", &st, k, sk, &["--json"]))).unwrap()
    };
    let s0 = status(&k, &sk);
    let (old_s, old_k) = (primary_of(&sk), primary_of(&k));
    assert_eq!(s0["total"], 6);
    assert_eq!(s0["large"], 3);
    assert_eq!(s0["streaming_primary_key_id"], old_s);
    assert_eq!(s0["by_key_id"][old_s.to_string()], 3);
    assert_eq!(s0["by_key_id"][old_k.to_string()], 3);
    assert_eq!(s0["not_under_primary"], 0);
    let keys = s0["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().any(|x| x["keyset"] == "streaming"
        && x["key_id"] == old_s
        && x["objects"] == 3
        && x["primary"] == true));
    assert!(
        keys.iter()
            .any(|x| x["keyset"] == "aead" && x["key_id"] == old_k && x["objects"] == 3)
    );
    let table = String::from_utf8(ok(&store_args("status", &st, &k, &sk, &[]))).unwrap();
    assert!(table.contains("ENABLED (streaming primary)"), "{table}");
    assert!(table.contains("6 objects (3 large)"), "{table}");

    // Rotate both keysets.
    let (_, new_k) = add_and_promote(&k);
    ok(&[
        "add-key",
        "--key-template",
        "AES128_GCM_HKDF_1MB",
        "--in",
        &sk,
        "--out",
        &sk,
    ]);
    let new_s = read_keyset(&sk)
        .info()
        .keys
        .iter()
        .map(|x| x.key_id)
        .find(|id| *id != old_s)
        .unwrap();
    ok(&key_args("promote-key", &new_s.to_string(), &sk));
    let s1 = status(&k, &sk);
    assert_eq!(s1["not_under_primary"], 6);
    assert_eq!(s1["streaming_primary_key_id"], new_s);
    let table = String::from_utf8(ok(&store_args("status", &st, &k, &sk, &[]))).unwrap();
    assert!(
        table.contains("--streaming-keyset"),
        "the suggested rewrap names the streaming keyset: {table}"
    );

    let dry: Value = serde_json::from_slice(&ok(&store_args(
        "rewrap",
        &st,
        &k,
        &sk,
        &["--dry-run", "--json"],
    )))
    .unwrap();
    assert_eq!(dry["would_rewrap"], 6);
    assert_eq!(dry["streaming_primary_key_id"], new_s);
    assert_eq!(dry["large"], 3);
    let r: Value =
        serde_json::from_slice(&ok(&store_args("rewrap", &st, &k, &sk, &["--json"]))).unwrap();
    assert_eq!(r["rewrapped"], 6, "{r}");
    assert_eq!(r["streaming_primary_key_id"], new_s);
    assert_eq!(r["primary_key_id"], new_k);
    let s2 = status(&k, &sk);
    assert_eq!(s2["not_under_primary"], 0);
    assert_eq!(s2["by_key_id"][new_s.to_string()], 3);
    assert_eq!(s2["by_key_id"][new_k.to_string()], 3);
    assert_eq!(s2["large"], 3);
    // Large objects stayed large, under the new streaming key.
    let mut prefix = vec![1];
    prefix.extend_from_slice(&new_s.to_be_bytes());
    assert_eq!(
        std::fs::read(Path::new(&st).join("large/1")).unwrap()[..5],
        prefix[..]
    );
    assert_eq!(ok(&store_args("get", &st, &k, &sk, &["large/2"])), big);

    let v: Value =
        serde_json::from_slice(&ok(&store_args("verify", &st, &k, &sk, &["--json"]))).unwrap();
    assert_eq!(v["objects"], 6);
    assert_eq!(v["ok"], 6);
    assert_eq!(v["large"], 3);
    assert_eq!(v["streaming_primary_key_id"], new_s);
    // A damaged large object fails verification, by name.
    let obj = Path::new(&st).join("large/0");
    let mut bytes = std::fs::read(&obj).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 1;
    std::fs::write(&obj, &bytes).unwrap();
    let args = store_args("verify", &st, &k, &sk, &[]);
    let out = run(&args);
    let stderr = check_fails(&args, &out, 1, "1 of 6 objects failed");
    assert!(stderr.contains("FAILED \"large/0\""), "{stderr}");
}

#[test]
fn store_commands_refuse_swapped_or_colliding_keysets() {
    let d = Dir::new();
    let st = d.s("store");
    std::fs::create_dir(&st).unwrap();
    let k = keyset(&d, "k.json");
    let sk = new_keyset(&d, "s.json", "AES128_GCM_HKDF_4KB");
    fails(
        &store_args("status", &st, &sk, &k, &[]),
        1,
        "holds streaming AEAD keys: give it as --streaming-keyset",
    );
    fails(
        &store_args("status", &st, &k, &k, &[]),
        1,
        "holds AEAD keys, not streaming AEAD keys",
    );
    // --streaming-keyset-format needs --streaming-keyset.
    fails(
        &[
            "store",
            "status",
            "--store",
            &st,
            "--keyset",
            &k,
            "--streaming-keyset-format",
            "json",
        ],
        2,
        "--streaming-keyset",
    );
    // The policy covers the streaming keyset.
    let ctr = new_keyset(&d, "ctr.json", "AES128_CTR_HMAC_SHA256_4KB");
    fails(
        &store_args("status", &st, &k, &ctr, &["--policy", "modern"]),
        1,
        "streaming keyset",
    );
}

/// `store put`/`get` of a large value show a byte progress bar on a
/// terminal (util-linux `script`), and nothing on a pipe.
#[test]
fn store_put_and_get_show_a_progress_bar_on_a_terminal_only() {
    let Stores { d, st, k, sk } = stores("AES128_GCM_HKDF_1MB");
    let (p, big) = big_file(&d, 20 << 20, 4);
    let t = Tty::spawn(&store_args("put", &st, &k, &sk, &["big", "--in", &p]), &[]);
    let (code, shown) = t.finish();
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("put ["), "{shown:?}");
    assert!(shown.contains("20.00 MiB/20.00 MiB"), "{shown:?}");
    let got = d.s("got");
    let t = Tty::spawn(
        &store_args("get", &st, &k, &sk, &["big", "--out", &got]),
        &[],
    );
    let (code, shown) = t.finish();
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("get ["), "{shown:?}");
    assert!(shown.contains("20.00 MiB/20.00 MiB"), "{shown:?}");
    assert_eq!(std::fs::read(&got).unwrap(), big);
    // On a pipe: no bar, no progress lines.
    let out = run(&store_args("put", &st, &k, &sk, &["big2", "--in", &p]));
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&store_args("get", &st, &k, &sk, &["big2"]));
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, big);
}

/// `disable-key --store` on a streaming keyset counts the large objects
/// still under the key (refusing while there are any, and naming the
/// rewrap to run), then lets it go once they were re-encrypted.
#[test]
fn retiring_a_streaming_key_checks_the_store() {
    let Stores { d, st, k, sk } = stores("AES128_GCM_HKDF_4KB");
    let (p, big) = big_file(&d, 1_200_000, 6);
    for i in 0..2 {
        ok(&store_args(
            "put",
            &st,
            &k,
            &sk,
            &[&format!("l/{i}"), "--in", &p],
        ));
    }
    // A small object under the AEAD keyset is not counted for the
    // streaming key.
    put(&st, &k, "small", b"tiny");
    let old = primary_of(&sk);
    ok(&[
        "add-key",
        "--key-template",
        "AES256_GCM_HKDF_1MB",
        "--in",
        &sk,
        "--out",
        &sk,
    ]);
    let new = read_keyset(&sk)
        .info()
        .keys
        .iter()
        .map(|x| x.key_id)
        .find(|id| *id != old)
        .unwrap();
    ok(&key_args("promote-key", &new.to_string(), &sk));
    let before = std::fs::read(&sk).unwrap();
    let old_id = old.to_string();
    let mut args = key_args("disable-key", &old_id, &sk);
    args.extend(["--store", &st]);
    let e = fails(
        &args,
        1,
        &format!("refusing to disable key {old}: 2 objects are in store"),
    );
    assert!(
        e.contains("--keyset AEAD_KEYSET --streaming-keyset"),
        "the suggested rewrap names both keysets: {e}"
    );
    assert_eq!(std::fs::read(&sk).unwrap(), before, "nothing written");
    ok(&store_args("rewrap", &st, &k, &sk, &[]));
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("no object is under key {old} (3 objects checked)")),
        "{stderr}"
    );
    assert_eq!(ok(&store_args("get", &st, &k, &sk, &["l/1"])), big);
}

/// Sends SIGINT to `child`, then closes its stdin; returns its exit code
/// and stderr.
fn interrupt(mut child: std::process::Child) -> (Option<i32>, String) {
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = child.id().to_string();
    let killed = StdCommand::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `encstore ARGS` with piped stdin, stdout and stderr; the first
/// `first` bytes are written to its stdin (which stays open).
fn spawn_feeding(args: &[&str], first: &[u8]) -> std::process::Child {
    use std::io::Write;
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("encstore"))
        .args(args)
        .env_remove("ENCSTORE_STORE")
        .env_remove("ENCSTORE_KEYSET")
        .env_remove("ENCSTORE_STREAMING_KEYSET")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.as_mut().unwrap().write_all(first).unwrap();
    child
}

/// Files under `dir` (recursively).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// Ctrl-C in the middle of a streamed `decrypt --out`, `store put` or
/// `encrypt --out`: exit status 130, and no output, no stored object, no
/// temporary file (a half-decrypted plaintext must not stay on disk).
#[test]
fn ctrl_c_in_the_middle_of_a_stream_leaves_nothing_behind() {
    let d = Dir::new();
    let sk = new_keyset(&d, "s.json", "AES128_GCM_HKDF_4KB");
    let k = keyset(&d, "k.json");
    let pt = data(3 << 20, 8);
    let ct = read_keyset(&sk)
        .streaming_aead()
        .unwrap()
        .encrypt(&pt, b"")
        .unwrap();
    let outdir = d.p("out");
    std::fs::create_dir(&outdir).unwrap();
    let out = outdir.join("plain").display().to_string();

    let child = spawn_feeding(
        &["decrypt", "--keyset", &sk, "--out", &out],
        &ct[..ct.len() - 1000],
    );
    let (code, stderr) = interrupt(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted;") && stderr.contains("was not written"),
        "{stderr}"
    );
    assert!(
        files_under(&outdir).is_empty(),
        "{:?}",
        files_under(&outdir)
    );

    let enc_out = outdir.join("ct").display().to_string();
    let child = spawn_feeding(&["encrypt", "--keyset", &sk, "--out", &enc_out], &pt);
    let (code, stderr) = interrupt(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        files_under(&outdir).is_empty(),
        "{:?}",
        files_under(&outdir)
    );

    let st = d.s("store");
    let child = spawn_feeding(&store_args("put", &st, &k, &sk, &["big"]), &pt);
    let (code, stderr) = interrupt(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("\"big\" was not stored"), "{stderr}");
    assert!(
        files_under(Path::new(&st)).is_empty(),
        "{:?}",
        files_under(Path::new(&st))
    );
}

/// Both keysets of a store wrapped by one master keyset (with keyset
/// associated data): the store commands open the streaming keyset with
/// the same master key options as --keyset.
#[test]
fn the_streaming_keyset_opens_with_the_master_key_options_of_the_keyset() {
    let d = Dir::new();
    let st = d.s("store");
    let m = keyset(&d, "master.json");
    let (k, sk) = (d.s("k.json"), d.s("s.json"));
    for (path, template) in [(&k, "AES256_GCM"), (&sk, "AES256_GCM_HKDF_4KB")] {
        ok(&[
            "create-keyset",
            "--key-template",
            template,
            "--out",
            path,
            "--master-keyset",
            &m,
            "--keyset-associated-data",
            "app",
        ]);
    }
    let big = data(1_100_000, 2);
    let p = d.s("big");
    std::fs::write(&p, &big).unwrap();
    let master = [
        "--master-keyset",
        m.as_str(),
        "--keyset-associated-data",
        "app",
    ];
    let mut args = store_args("put", &st, &k, &sk, &["big", "--in", &p]);
    args.extend(master);
    ok(&args);
    let mut args = store_args("get", &st, &k, &sk, &["big"]);
    args.extend(master);
    assert_eq!(ok(&args), big);
    let mut args = store_args("status", &st, &k, &sk, &["--json"]);
    args.extend(master);
    let v: Value = serde_json::from_slice(&ok(&args)).unwrap();
    assert_eq!(v["large"], 1);
    // Without the master key, or with other associated data, the pair does
    // not open.
    fails(
        &store_args("get", &st, &k, &sk, &["big"]),
        1,
        "is an encrypted keyset",
    );
    let mut args = store_args("get", &st, &k, &sk, &["big"]);
    args.extend([
        "--master-keyset",
        m.as_str(),
        "--keyset-associated-data",
        "other",
    ]);
    fails(&args, 1, "does not decrypt with master keyset");
}
