//! 1 GiB through the `encstore` binary in constant memory: peak RSS of
//! `encrypt`, `decrypt`, `store put` and `store get` under 64 MiB, the
//! value back byte for byte, and `store get --range` exact, over the
//! filesystem and over SeaweedFS (skipped with a notice without it, unless
//! `ENCSTORE_REQUIRE_SERVICES=1`).
//!
//! The input is generated in a temporary directory (1 MiB blocks of
//! pseudo-random bytes, each stamped with its index so that a misplaced
//! segment shows) and deleted with it. Peak RSS is the child's maximum
//! resident set size as `wait4` reports it, through GNU time
//! (`/usr/bin/time -f %M`), or, without it, the kernel's high-water mark
//! (`VmHWM` in `/proc/PID/status`) polled every 5 ms.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;

const GIB: u64 = 1 << 30;
const BLOCK: usize = 1 << 20;
/// The bound of the issue: peak RSS under 64 MiB for 1 GiB.
const LIMIT_KIB: u64 = 64 * 1024;

/// One 1 GiB test at a time: they need several GiB of disk each.
static SERIAL: Mutex<()> = Mutex::new(());

/// 1 MiB of pseudo-random bytes (xorshift64).
fn base_block() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(BLOCK);
    while out.len() < BLOCK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Block `i` of the input: the base block with `i` in its first and last
/// eight bytes.
fn block(base: &[u8], i: u64) -> Vec<u8> {
    let mut b = base.to_vec();
    b[..8].copy_from_slice(&i.to_be_bytes());
    b[BLOCK - 8..].copy_from_slice(&i.to_le_bytes());
    b
}

/// The input's bytes `start..end`.
fn expected(base: &[u8], start: u64, end: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let i = at / BLOCK as u64;
        let b = block(base, i);
        let from = (at % BLOCK as u64) as usize;
        let to = ((end - i * BLOCK as u64).min(BLOCK as u64)) as usize;
        out.extend_from_slice(&b[from..to]);
        at = i * BLOCK as u64 + to as u64;
    }
    out
}

fn write_input(path: &Path, base: &[u8]) {
    let mut w = BufWriter::with_capacity(BLOCK, std::fs::File::create(path).unwrap());
    for i in 0..GIB / BLOCK as u64 {
        w.write_all(&block(base, i)).unwrap();
    }
    w.into_inner().unwrap().sync_all().unwrap();
}

/// Checks that `path` holds exactly the input.
fn check_output(path: &Path, base: &[u8]) {
    let mut f = std::fs::File::open(path).unwrap();
    assert_eq!(f.metadata().unwrap().len(), GIB, "{}", path.display());
    let mut buf = vec![0u8; BLOCK];
    for i in 0..GIB / BLOCK as u64 {
        f.read_exact(&mut buf).unwrap();
        assert!(
            buf == block(base, i),
            "{}: block {i} differs",
            path.display()
        );
    }
}

/// Runs `encstore ARGS` (stdin empty, stdout and stderr captured) and
/// returns its output, its peak RSS in KiB and how long it took.
fn measured(args: &[&str]) -> (Output, u64, Duration) {
    let bin = assert_cmd::cargo::cargo_bin("encstore");
    let gnu_time = Path::new("/usr/bin/time").exists()
        && Command::new("/usr/bin/time")
            .args(["-f", "%M", "true"])
            .output()
            .is_ok_and(|o| o.status.success());
    let start = Instant::now();
    let mut cmd = if gnu_time {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "encstore-peak-rss-kib=%M"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    cmd.args(args)
        .env_remove("ENCSTORE_STORE")
        .env_remove("ENCSTORE_KEYSET")
        .env_remove("ENCSTORE_STREAMING_KEYSET")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    if gnu_time {
        let mut out = child.wait_with_output().unwrap();
        let elapsed = start.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let (rest, line) = stderr
            .trim_end()
            .rsplit_once('\n')
            .unwrap_or(("", stderr.trim_end()));
        let kib: u64 = line
            .strip_prefix("encstore-peak-rss-kib=")
            .unwrap_or_else(|| panic!("no peak RSS from GNU time: {stderr}"))
            .parse()
            .unwrap();
        out.stderr = rest.as_bytes().to_vec();
        return (out, kib, elapsed);
    }
    // Poll the high-water mark until the process exits.
    let pid = child.id();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (peak, done) = (std::sync::Arc::clone(&peak), std::sync::Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kib) = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak.fetch_max(kib, std::sync::atomic::Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    poller.join().unwrap();
    (
        out,
        peak.load(std::sync::atomic::Ordering::SeqCst),
        start.elapsed(),
    )
}

/// Runs `args`, which must succeed in under 64 MiB of peak RSS; prints
/// the figures.
fn run_bounded(what: &str, args: &[&str]) {
    let (out, kib, took) = measured(args);
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{what}: peak RSS {:.1} MiB, {:.1} s",
        kib as f64 / 1024.0,
        took.as_secs_f64()
    );
    assert!(kib > 0, "{what}: no RSS measured");
    assert!(
        kib < LIMIT_KIB,
        "{what}: peak RSS {kib} KiB is not under 64 MiB"
    );
}

/// Ranges of the 1 GiB value to read back with `store get --range`:
/// inside one 1 MiB segment, across a segment boundary, the last bytes.
fn ranges() -> Vec<(u64, u64)> {
    let mid = GIB / 2;
    vec![
        (mid + 100, mid + 100 + 4095),
        (mid - 1000, mid + 3 * BLOCK as u64),
        (GIB - 77, GIB - 1),
    ]
}

/// put, get (checked), and ranges of a 1 GiB value `big/1gib` in
/// `store`; returns the store options (`--store ... --keyset ...
/// --streaming-keyset ...`).
fn round_trip(store: &str, d: &Dir, base: &[u8], input: &str, label: &str) -> Vec<String> {
    let k = keyset(d, &format!("k-{label}.json"));
    let sk = d.s(&format!("s-{label}.json"));
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM_HKDF_1MB",
        "--out",
        &sk,
    ]);
    let common = ["--store", store, "--keyset", &k, "--streaming-keyset", &sk];
    let with = |cmd: &'static str, extra: &[&str]| -> Vec<String> {
        let mut a = vec!["store".to_owned(), cmd.to_owned()];
        a.extend(common.iter().map(|s| (*s).to_owned()));
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let strs = |v: &[String]| v.iter().map(String::as_str).collect::<Vec<_>>().join(" ");
    let args = with("put", &["big/1gib", "--in", input]);
    run_bounded(
        &format!("store put 1 GiB ({label})"),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let status: serde_json::Value = serde_json::from_slice(&ok(&with("status", &["--json"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()))
    .unwrap();
    assert_eq!(status["large"], 1, "{status}");
    let got = d.s(&format!("got-{label}"));
    let args = with("get", &["big/1gib", "--out", &got]);
    run_bounded(
        &format!("store get 1 GiB ({label})"),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    check_output(Path::new(&got), base);
    std::fs::remove_file(&got).unwrap();
    for (a, b) in ranges() {
        let r = format!("{a}-{b}");
        let args = with("get", &["big/1gib", "--range", &r]);
        let start = Instant::now();
        let bytes = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        eprintln!(
            "store get --range {r} ({label}): {} bytes in {:.2} s",
            bytes.len(),
            start.elapsed().as_secs_f64()
        );
        assert!(
            bytes == expected(base, a, b + 1),
            "{}: wrong bytes",
            strs(&args)
        );
    }
    common.iter().map(|s| (*s).to_owned()).collect()
}

fn remove(store: &str) {
    ok(&["store", "rm", "--store", store, "big/1gib"]);
    let left = ok(&["store", "ls", "--store", store, "--recursive"]);
    assert!(left.is_empty(), "{}", String::from_utf8_lossy(&left));
}

#[test]
fn one_gib_through_encrypt_decrypt_and_a_filesystem_store_in_constant_memory() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let start = Instant::now();
    let d = Dir::new();
    let base = base_block();
    let input = d.s("input");
    write_input(Path::new(&input), &base);
    eprintln!(
        "wrote 1 GiB of input in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let sk = d.s("s.json");
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM_HKDF_1MB",
        "--out",
        &sk,
    ]);
    let (ct, pt) = (d.s("input.ct"), d.s("input.pt"));
    run_bounded(
        "encrypt 1 GiB",
        &[
            "encrypt",
            "--keyset",
            &sk,
            "--in",
            &input,
            "--out",
            &ct,
            "--associated-data",
            "big",
        ],
    );
    let ks = read_keyset(&sk).streaming_aead().unwrap();
    assert_eq!(
        std::fs::metadata(&ct).unwrap().len(),
        ks.layout().ciphertext_size(GIB).unwrap()
    );
    run_bounded(
        "decrypt 1 GiB",
        &[
            "decrypt",
            "--keyset",
            &sk,
            "--in",
            &ct,
            "--out",
            &pt,
            "--associated-data",
            "big",
        ],
    );
    std::fs::remove_file(&ct).unwrap();
    check_output(Path::new(&pt), &base);
    std::fs::remove_file(&pt).unwrap();

    let store = d.s("store");
    round_trip(&store, &d, &base, &input, "fs");
    remove(&store);
    eprintln!(
        "one_gib_through_encrypt_decrypt_and_a_filesystem_store: {:.1} s in all",
        start.elapsed().as_secs_f64()
    );
}

#[cfg(feature = "s3")]
#[test]
fn one_gib_through_a_seaweedfs_store_in_constant_memory() {
    let test = "one_gib_through_a_seaweedfs_store_in_constant_memory";
    let Some((endpoint, bucket)) = encstore_objstore::testing::server(test) else {
        return;
    };
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let start = Instant::now();
    let tag = encstore_core::new_lease_token().unwrap();
    let store = format!("s3://{bucket}/cli-tests/{test}-{}", &tag[..12]);
    let d = Dir::new();
    let base = base_block();
    let input = d.s("input");
    write_input(Path::new(&input), &base);
    let opts = round_trip(&store, &d, &base, &input, "s3");

    // The ranges again through a logging proxy: each reads the prefix and
    // header (45 bytes), then, in one ranged GET, only the 1 MiB segments
    // that cover the range.
    let rt = rt();
    let proxy = rt.block_on(encstore_objstore::testing::proxy::Proxy::start(
        &endpoint, false,
    ));
    const SEGMENT: u64 = 1 << 20;
    for (a, b) in ranges() {
        let before = proxy.log().len();
        let r = format!("{a}-{b}");
        let mut args: Vec<&str> = vec!["store", "get"];
        args.extend(opts.iter().map(String::as_str));
        args.extend(["big/1gib", "--range", &r]);
        let out = es()
            .args(&args)
            .env("AWS_ENDPOINT_URL", &proxy.endpoint)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == expected(&base, a, b + 1),
            "--range {r} through the proxy"
        );
        let gets: Vec<_> = proxy.log()[before..]
            .iter()
            .filter(|l| l.method == "GET" && l.path.contains("big/1gib"))
            .cloned()
            .collect();
        let moved: usize = gets.iter().map(|l| l.response_bytes).sum();
        // The segments covering bytes a..=b (a segment's plaintext is 1 MiB
        // less the tag, and the first is shortened by the header), plus one
        // for the offset of the segment grid, plus the 45-byte head.
        let bound = 45 + ((b - a + 1).div_ceil(SEGMENT - 16) + 1) * SEGMENT;
        eprintln!(
            "store get --range {r} (s3, through a proxy): {} GETs, {moved} bytes (bound {bound})",
            gets.len()
        );
        assert_eq!(gets.len(), 2, "{gets:?}");
        assert!(gets.iter().all(|l| l.range.is_some()), "{gets:?}");
        assert!((moved as u64) <= bound, "{moved} > {bound}: {gets:?}");
    }
    proxy.stop();
    remove(&store);
    eprintln!("{test}: {:.1} s in all", start.elapsed().as_secs_f64());
}
