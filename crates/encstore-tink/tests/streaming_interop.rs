//! Streaming AEAD interop with Google's Tink (Python Tink 1.16.1, C++
//! core), both directions, through `tests/interop/streaming_check.py`:
//!
//! - every streaming template; plaintexts of 0 and 1 bytes, one below, at
//!   and one above the first-segment boundary, several segments, and
//!   10 MiB;
//! - encstore encrypts, Tink decrypts (and refuses truncated, extended,
//!   reordered-segment and wrong-associated-data ciphertexts);
//! - Tink encrypts, encstore decrypts with every API (whole buffer, the
//!   push decryptor in odd chunks, the async reader, random access) and
//!   refuses the same tampered forms;
//! - a keyset of several keys: each decrypts what any enabled key wrote;
//! - Tink reads every keyset form encstore writes (JSON, binary,
//!   EncryptedKeyset in both, with keyset associated data);
//! - key parameter probes: encstore accepts exactly the streaming keys
//!   Tink accepts.
//!
//! Needs `python3` with `tink==1.16.1` (or `ENCSTORE_PYTHON`): without
//! it the test prints `SKIPPED` and passes, unless
//! `ENCSTORE_REQUIRE_SERVICES=1`, where it fails.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use encstore_tink::streaming::SegmentLayout;
use encstore_tink::templates::{self, STREAMING_NAMES};
use encstore_tink::{Keyset, KeysetStreamingAead, OutputPrefix};
use encstore_tink::{KeysetEncoding, KeysetProtection};
use prost::Message;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1 << 20;

/// The Python interpreter with Tink, or `None` (after printing SKIPPED).
fn python_tink(test: &str) -> Option<String> {
    let python = std::env::var("ENCSTORE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ok = Command::new(&python)
        .args(["-c", "import tink; from tink import streaming_aead"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if std::env::var("ENCSTORE_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!(
            "{test}: ENCSTORE_REQUIRE_SERVICES=1 but {python} cannot import tink; \
             install it with: python3 -m pip install tink==1.16.1"
        );
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test}: needs Python Tink (python3 -m pip install tink==1.16.1)"
    );
    None
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/streaming_check.py")
}

/// Deterministic pseudo-random bytes.
fn bytes_of(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// The sizes the issue names, for a layout.
fn sizes(l: SegmentLayout) -> Vec<(&'static str, usize)> {
    let first = l.first_plaintext_segment_size() as usize;
    let p = l.plaintext_segment_size() as usize;
    vec![
        ("0", 0),
        ("1", 1),
        ("first-1", first - 1),
        ("first", first),
        ("first+1", first + 1),
        ("several", first + 3 * p + 7),
        ("10MiB", 10 * MIB),
    ]
}

/// Tampered forms of a ciphertext, each of which encstore must refuse,
/// with whether Google's Tink (Python, C++ core) accepts it.
///
/// Tink 1.16.1's decrypting stream ignores whatever follows a last
/// segment that is full (a ciphertext whose length is a multiple of the
/// segment size): it returns the genuine plaintext and stops reading
/// (checked with Python Tink; encstore refuses such an extension).
fn tampered(l: SegmentLayout, ct: &[u8], full: bool) -> Vec<(&'static str, Vec<u8>, bool)> {
    let n = ct.len() as u64;
    let segments = l.segment_count(n).expect("valid size");
    let seg = |i: u64| {
        let r = l.segment_ciphertext_range(i, n).expect("segment");
        r.start as usize..r.end as usize
    };
    let last = seg(segments - 1);
    let tink_ignores_extensions = n.is_multiple_of(l.ciphertext_segment_size());
    let mut out = Vec::new();
    if segments >= 2 {
        out.push((
            "truncated at the last segment boundary",
            ct[..last.start].to_vec(),
            false,
        ));
    }
    if !full {
        return out;
    }
    out.push(("truncated by one byte", ct[..ct.len() - 1].to_vec(), false));
    out.push((
        "truncated to the header",
        ct[..l.header_len() as usize].to_vec(),
        false,
    ));
    let mut longer = ct.to_vec();
    longer.push(0);
    out.push(("extended by one byte", longer, tink_ignores_extensions));
    let mut longer = ct.to_vec();
    longer.extend_from_slice(&ct[last.clone()]);
    out.push((
        "extended by a copy of the last segment",
        longer,
        tink_ignores_extensions,
    ));
    if segments >= 4 {
        let (a, b) = (seg(1), seg(2));
        let mut swapped = ct.to_vec();
        swapped[a.clone()].copy_from_slice(&ct[b.clone()]);
        swapped[b].copy_from_slice(&ct[a]);
        out.push(("segments 1 and 2 swapped", swapped, false));
    }
    out
}

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

/// Runs the Python checker on `jobs` in `dir` and returns its results.
fn run_python(python: &str, dir: &Path, jobs: &Value) -> Value {
    let jobs_path = dir.join("jobs.json");
    let results_path = dir.join("results.json");
    std::fs::write(&jobs_path, serde_json::to_vec_pretty(jobs).unwrap()).unwrap();
    let out = Command::new(python)
        .arg(script())
        .arg(&jobs_path)
        .arg(&results_path)
        .output()
        .expect("runs python");
    assert!(
        out.status.success(),
        "streaming_check.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&results_path).unwrap()).unwrap()
}

/// One plaintext of the run.
struct Case {
    id: String,
    keyset: String,
    plaintext: Vec<u8>,
    ad: Vec<u8>,
    full_tamper: bool,
}

/// Decrypts with every encstore API and checks each gets `pt`.
async fn decrypt_every_way(s: &KeysetStreamingAead, ct: &[u8], ad: &[u8], pt: &[u8], what: &str) {
    assert_eq!(
        s.decrypt(ct, ad).unwrap_or_else(|e| panic!("{what}: {e}")),
        pt,
        "{what}"
    );
    // Push decryptor, odd chunk sizes.
    let mut dec = s.decryptor(ad);
    let mut out = Vec::new();
    for chunk in ct.chunks(1 + ct.len() / 7) {
        dec.update(chunk, &mut out)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    dec.finish_into(&mut out)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(out, pt, "{what}: push decryptor");
    // Async reader.
    let mut r = s.decrypting_reader(ct, ad);
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(out, pt, "{what}: async reader");
    // Random access: everything, and ranges around the segment ends.
    let ra = s
        .open_ranged(Bytes::copy_from_slice(ct), ad)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(ra.plaintext_size(), pt.len() as u64, "{what}");
    assert_eq!(ra.read_all().await.unwrap(), pt, "{what}: read_all");
    let l = ra.layout();
    let n = pt.len() as u64;
    for i in 0..3 {
        let end = l.segment_plaintext_range(i).end;
        for (a, b) in [
            (end.saturating_sub(2), end + 2),
            (0, 1),
            (n.saturating_sub(1), n),
        ] {
            let (a, b) = (a.min(n), b.min(n));
            let got = ra
                .read_range(a..b)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got, pt[a as usize..b as usize], "{what}: range {a}..{b}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_tink_both_directions() {
    let Some(python) = python_tink("python_tink_both_directions") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut keysets: BTreeMap<String, Value> = BTreeMap::new();
    let mut aeads: BTreeMap<String, KeysetStreamingAead> = BTreeMap::new();
    let mut jobs = Vec::new();
    let mut cases = Vec::new();
    // Tink must read every form encstore writes.
    let master = Keyset::generate(&templates::by_name("AES256_GCM").unwrap()).unwrap();
    std::fs::write(d.join("master.json"), &*master.to_json_insecure()).unwrap();
    let kek = master.aead().unwrap();
    for name in STREAMING_NAMES {
        let ks = Keyset::generate(&templates::by_name(name).unwrap()).unwrap();
        std::fs::write(d.join(format!("{name}.json")), &*ks.to_json_insecure()).unwrap();
        std::fs::write(d.join(format!("{name}.bin")), &*ks.to_binary_insecure()).unwrap();
        std::fs::write(
            d.join(format!("{name}.enc.json")),
            ks.write(
                KeysetEncoding::Json,
                KeysetProtection::encrypted(&kek, b"keyset ad"),
            )
            .unwrap(),
        )
        .unwrap();
        std::fs::write(
            d.join(format!("{name}.enc.bin")),
            ks.write(
                KeysetEncoding::Binary,
                KeysetProtection::encrypted(&kek, b""),
            )
            .unwrap(),
        )
        .unwrap();
        keysets.insert(
            name.to_string(),
            json!({"file": format!("{name}.json"), "format": "json"}),
        );
        keysets.insert(
            format!("{name} binary"),
            json!({"file": format!("{name}.bin"), "format": "binary"}),
        );
        keysets.insert(
            format!("{name} encrypted json"),
            json!({"file": format!("{name}.enc.json"), "format": "json", "master": "master.json", "keyset_ad_hex": hex(b"keyset ad")}),
        );
        keysets.insert(
            format!("{name} encrypted binary"),
            json!({"file": format!("{name}.enc.bin"), "format": "binary", "master": "master.json", "keyset_ad_hex": ""}),
        );
        let s = ks.streaming_aead().unwrap();
        for (label, size) in sizes(s.layout()) {
            cases.push(Case {
                id: format!("{name} {label}"),
                keyset: name.to_string(),
                plaintext: bytes_of(size as u64 ^ name.len() as u64, size),
                ad: format!("ad {name} {label}").into_bytes(),
                full_tamper: label != "10MiB",
            });
        }
        aeads.insert(name.to_string(), s);
    }
    // A streaming key with a TINK output prefix: Tink writes no prefix.
    let tinkp = Keyset::generate(
        &templates::by_name("AES128_GCM_HKDF_4KB")
            .unwrap()
            .with_output_prefix(OutputPrefix::Tink),
    )
    .unwrap();
    std::fs::write(d.join("tinkp.json"), &*tinkp.to_json_insecure()).unwrap();
    keysets.insert(
        "tinkp".into(),
        json!({"file": "tinkp.json", "format": "json"}),
    );
    cases.push(Case {
        id: "tink prefix".into(),
        keyset: "tinkp".into(),
        plaintext: bytes_of(7, 9000),
        ad: b"p".to_vec(),
        full_tamper: false,
    });
    aeads.insert("tinkp".into(), tinkp.streaming_aead().unwrap());

    // Plaintexts; encstore's ciphertexts and tampered forms; Tink's jobs.
    // Tampered ciphertexts Tink accepts (see `tampered`).
    let mut tink_lenient = std::collections::BTreeSet::new();
    for (i, c) in cases.iter().enumerate() {
        let s = &aeads[&c.keyset];
        let pt_file = format!("pt{i}");
        std::fs::write(d.join(&pt_file), &c.plaintext).unwrap();
        let ct = if i % 2 == 0 {
            s.encrypt(&c.plaintext, &c.ad).unwrap()
        } else {
            let mut w = s.encrypting_writer(Vec::new(), &c.ad).unwrap();
            w.write_all(&c.plaintext).await.unwrap();
            w.shutdown().await.unwrap();
            w.into_inner()
        };
        assert_eq!(
            ct.len() as u64,
            s.layout()
                .ciphertext_size(c.plaintext.len() as u64)
                .unwrap()
        );
        std::fs::write(d.join(format!("ours{i}")), &ct).unwrap();
        jobs.push(json!({"id": format!("tink decrypts ours: {}", c.id), "op": "decrypt", "keyset": c.keyset,
            "in": format!("ours{i}"), "expect": pt_file, "ad_hex": hex(&c.ad)}));
        jobs.push(json!({"id": format!("tink refuses ours with other ad: {}", c.id), "op": "decrypt", "keyset": c.keyset,
            "in": format!("ours{i}"), "expect": pt_file, "ad_hex": hex(b"other")}));
        for (j, (what, bad, lenient)) in tampered(s.layout(), &ct, c.full_tamper)
            .into_iter()
            .enumerate()
        {
            let f = format!("ours{i}.bad{j}");
            std::fs::write(d.join(&f), &bad).unwrap();
            let id = format!("tink refuses ours {what}: {}", c.id);
            if lenient {
                tink_lenient.insert(id.clone());
            }
            jobs.push(json!({"id": id, "op": "decrypt", "keyset": c.keyset, "in": f, "expect": pt_file, "ad_hex": hex(&c.ad)}));
        }
        jobs.push(
            json!({"id": format!("tink encrypts: {}", c.id), "op": "encrypt", "keyset": c.keyset,
            "in": pt_file, "out": format!("theirs{i}"), "ad_hex": hex(&c.ad)}),
        );
    }

    // Several keys: A (primary at the end) and B; data written by each.
    let mut ks =
        Keyset::generate(&templates::by_name("AES256_CTR_HMAC_SHA256_1MB").unwrap()).unwrap();
    let b_id = ks.primary_key_id();
    let ours_b = ks
        .streaming_aead()
        .unwrap()
        .encrypt(&bytes_of(1, 3 * MIB), b"multi")
        .unwrap();
    std::fs::write(d.join("multi_b.json"), &*ks.to_json_insecure()).unwrap();
    let a_id = ks
        .rotate(&templates::by_name("AES128_GCM_HKDF_4KB").unwrap())
        .unwrap();
    let ours_a = ks
        .streaming_aead()
        .unwrap()
        .encrypt(&bytes_of(2, 50_000), b"multi")
        .unwrap();
    std::fs::write(d.join("multi.json"), &*ks.to_json_insecure()).unwrap();
    std::fs::write(d.join("multi_pt_a"), bytes_of(2, 50_000)).unwrap();
    std::fs::write(d.join("multi_pt_b"), bytes_of(1, 3 * MIB)).unwrap();
    std::fs::write(d.join("multi_ours_a"), &ours_a).unwrap();
    std::fs::write(d.join("multi_ours_b"), &ours_b).unwrap();
    keysets.insert(
        "multi".into(),
        json!({"file": "multi.json", "format": "json"}),
    );
    keysets.insert(
        "multi_b".into(),
        json!({"file": "multi_b.json", "format": "json"}),
    );
    for (who, pt) in [("a", "multi_pt_a"), ("b", "multi_pt_b")] {
        jobs.push(
            json!({"id": format!("tink decrypts multi {who}"), "op": "decrypt", "keyset": "multi",
            "in": format!("multi_ours_{who}"), "expect": pt, "ad_hex": hex(b"multi")}),
        );
    }
    jobs.push(json!({"id": "tink encrypts multi a", "op": "encrypt", "keyset": "multi", "in": "multi_pt_a", "out": "multi_theirs_a", "ad_hex": hex(b"multi")}));
    jobs.push(json!({"id": "tink encrypts multi b", "op": "encrypt", "keyset": "multi_b", "in": "multi_pt_b", "out": "multi_theirs_b", "ad_hex": hex(b"multi")}));

    let results = run_python(
        &python,
        d,
        &json!({"keysets": keysets, "jobs": jobs, "probes": []}),
    );

    // Tink's verdicts.
    for (name, r) in results["keysets"].as_object().unwrap() {
        assert_eq!(r, "ok", "Tink could not load encstore's keyset {name}: {r}");
    }
    assert_eq!(results["keysets"].as_object().unwrap().len(), keysets.len());
    let verdicts = results["jobs"].as_object().unwrap();
    assert_eq!(verdicts.len(), jobs.len());
    let mut refused = 0;
    let mut wrong = Vec::new();
    for (id, r) in verdicts {
        let r = r.as_str().unwrap();
        let ok = if tink_lenient.contains(id) {
            // Tink returns the genuine plaintext and ignores the rest.
            r == "ok"
        } else if id.starts_with("tink refuses") {
            refused += 1;
            r.starts_with("error: ")
        } else {
            r == "ok"
        };
        if !ok {
            wrong.push(format!("{id}: {r}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "unexpected Tink verdicts:\n{}",
        wrong.join("\n")
    );
    assert!(refused > 2 * cases.len(), "{refused} refused");
    assert!(
        !tink_lenient.is_empty(),
        "the sizes include full last segments"
    );

    // encstore decrypts what Tink wrote, every way, and refuses tampering.
    for (i, c) in cases.iter().enumerate() {
        let s = &aeads[&c.keyset];
        let ct = std::fs::read(d.join(format!("theirs{i}"))).unwrap();
        assert_eq!(
            ct.len() as u64,
            s.layout()
                .ciphertext_size(c.plaintext.len() as u64)
                .unwrap(),
            "{}",
            c.id
        );
        decrypt_every_way(s, &ct, &c.ad, &c.plaintext, &format!("Tink's {}", c.id)).await;
        assert!(s.decrypt(&ct, b"other").is_err(), "{}: other ad", c.id);
        for (what, bad, _) in tampered(s.layout(), &ct, c.full_tamper) {
            assert!(s.decrypt(&bad, &c.ad).is_err(), "{}: {what} accepted", c.id);
            // Random access: refused when opened, or when read to the end
            // (for 10 MiB, only truncation is made: its last byte fails).
            if let Ok(r) = s.open_ranged(Bytes::from(bad), &c.ad).await {
                let n = r.plaintext_size();
                let refused = if c.full_tamper {
                    r.read_all().await.is_err()
                } else {
                    r.read_range(n - 1..n).await.is_err()
                };
                assert!(refused, "{}: {what} accepted by random access", c.id);
            }
        }
    }
    let multi = ks.streaming_aead().unwrap();
    assert_eq!(multi.primary_key_id(), a_id);
    for (who, pt, key) in [
        ("a", bytes_of(2, 50_000), a_id),
        ("b", bytes_of(1, 3 * MIB), b_id),
    ] {
        let ct = std::fs::read(d.join(format!("multi_theirs_{who}"))).unwrap();
        decrypt_every_way(&multi, &ct, b"multi", &pt, &format!("Tink's multi {who}")).await;
        // Only the key that wrote it decrypts it.
        let mut only_other = ks.clone();
        let other = if key == a_id { b_id } else { a_id };
        only_other.promote(other).unwrap();
        only_other.disable(key).unwrap();
        assert!(
            only_other
                .streaming_aead()
                .unwrap()
                .decrypt(&ct, b"multi")
                .is_err(),
            "multi {who}"
        );
    }
}

/// Serialized key protos around every parameter rule.
fn probes() -> Vec<(String, String, Vec<u8>, &'static str)> {
    use tink_proto::HashType::*;
    let gcm_url = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey";
    let ctr_url = "type.googleapis.com/google.crypto.tink.AesCtrHmacStreamingKey";
    let mut out = Vec::new();
    let gcm = |version: u32, key: usize, derived: u32, hash: tink_proto::HashType, seg: u32| {
        tink_proto::AesGcmHkdfStreamingKey {
            version,
            params: Some(tink_proto::AesGcmHkdfStreamingParams {
                ciphertext_segment_size: seg,
                derived_key_size: derived,
                hkdf_hash_type: hash as i32,
            }),
            key_value: vec![0x42; key],
        }
        .encode_to_vec()
    };
    for derived in [0u32, 15, 16, 24, 32, 33] {
        for key in [derived as usize, derived as usize + 1, 64] {
            if key == 0 {
                continue;
            }
            for hash in [UnknownHash, Sha1, Sha224, Sha256, Sha384, Sha512] {
                out.push((
                    format!("gcm key {key} derived {derived} {hash:?}"),
                    gcm_url.to_owned(),
                    gcm(0, key, derived, hash, 4096),
                    "RAW",
                ));
            }
        }
        if derived > 0 {
            out.push((
                format!("gcm key {} derived {derived} short key", derived - 1),
                gcm_url.to_owned(),
                gcm(0, derived as usize - 1, derived, Sha256, 4096),
                "RAW",
            ));
        }
    }
    for derived in [16u32, 32] {
        for seg in [derived + 23, derived + 24, derived + 25, derived + 26, 100] {
            out.push((
                format!("gcm derived {derived} segment {seg}"),
                gcm_url.to_owned(),
                gcm(0, derived as usize, derived, Sha256, seg),
                "RAW",
            ));
        }
    }
    out.push((
        "gcm version 1".into(),
        gcm_url.to_owned(),
        gcm(1, 16, 16, Sha256, 4096),
        "RAW",
    ));
    out.push((
        "gcm malformed".into(),
        gcm_url.to_owned(),
        vec![0xff, 0xff],
        "RAW",
    ));
    for p in ["TINK", "LEGACY", "CRUNCHY"] {
        out.push((
            format!("gcm {p} prefix"),
            gcm_url.to_owned(),
            gcm(0, 16, 16, Sha256, 4096),
            p,
        ));
    }
    let ctr = |derived: u32,
               hkdf: tink_proto::HashType,
               hmac: tink_proto::HashType,
               tag: u32,
               seg: u32| {
        tink_proto::AesCtrHmacStreamingKey {
            version: 0,
            params: Some(tink_proto::AesCtrHmacStreamingParams {
                ciphertext_segment_size: seg,
                derived_key_size: derived,
                hkdf_hash_type: hkdf as i32,
                hmac_params: Some(tink_proto::HmacParams {
                    hash: hmac as i32,
                    tag_size: tag,
                }),
            }),
            key_value: vec![0x24; 32],
        }
        .encode_to_vec()
    };
    for hmac in [UnknownHash, Sha1, Sha224, Sha256, Sha384, Sha512] {
        for tag in [9u32, 10, 16, 20, 21, 28, 32, 33, 48, 64, 65] {
            out.push((
                format!("ctr hmac {hmac:?} tag {tag}"),
                ctr_url.to_owned(),
                ctr(16, Sha256, hmac, tag, 4096),
                "RAW",
            ));
        }
    }
    for hkdf in [UnknownHash, Sha1, Sha224, Sha384, Sha512] {
        out.push((
            format!("ctr hkdf {hkdf:?}"),
            ctr_url.to_owned(),
            ctr(32, hkdf, Sha256, 32, 4096),
            "RAW",
        ));
    }
    for derived in [16u32, 24, 32, 48] {
        for (tag, seg_delta) in [(10u32, 0u32), (10, 1), (32, 0), (32, 1), (32, 2)] {
            let seg = 1 + derived + 7 + tag + seg_delta;
            out.push((
                format!("ctr derived {derived} tag {tag} segment {seg}"),
                ctr_url.to_owned(),
                ctr(derived, Sha256, Sha256, tag, seg),
                "RAW",
            ));
        }
    }
    // No hmac_params at all.
    let bare = tink_proto::AesCtrHmacStreamingKey {
        version: 0,
        params: Some(tink_proto::AesCtrHmacStreamingParams {
            ciphertext_segment_size: 4096,
            derived_key_size: 16,
            hkdf_hash_type: Sha256 as i32,
            hmac_params: None,
        }),
        key_value: vec![1; 16],
    };
    out.push((
        "ctr without hmac params".into(),
        ctr_url.to_owned(),
        bare.encode_to_vec(),
        "RAW",
    ));
    out
}

/// encstore accepts exactly the streaming keys Tink accepts.
#[test]
fn python_tink_key_probes() {
    let Some(python) = python_tink("python_tink_key_probes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let probes = probes();
    let spec: Vec<Value> = probes
        .iter()
        .map(|(id, url, value, prefix)| json!({"id": id, "type_url": url, "key_value_hex": hex(value), "output_prefix": prefix}))
        .collect();
    let results = run_python(&python, dir.path(), &json!({"probes": spec}));
    let verdicts = results["probes"].as_object().unwrap();
    assert_eq!(verdicts.len(), probes.len(), "probe IDs are unique");
    let (mut accepted, mut refused, mut fips_refused) = (0, 0, 0);
    for (id, url, value, prefix) in &probes {
        let tink = verdicts[id].as_str().unwrap();
        let prefix = match *prefix {
            "TINK" => tink_proto::OutputPrefixType::Tink,
            "LEGACY" => tink_proto::OutputPrefixType::Legacy,
            "CRUNCHY" => tink_proto::OutputPrefixType::Crunchy,
            _ => tink_proto::OutputPrefixType::Raw,
        };
        let ks = tink_proto::Keyset {
            primary_key_id: 1,
            key: vec![tink_proto::keyset::Key {
                key_data: Some(tink_proto::KeyData {
                    type_url: url.clone(),
                    value: value.clone(),
                    key_material_type: tink_proto::key_data::KeyMaterialType::Symmetric as i32,
                }),
                status: tink_proto::KeyStatusType::Enabled as i32,
                key_id: 1,
                output_prefix_type: prefix as i32,
            }],
        };
        let ours = Keyset::from_binary_insecure(&ks.encode_to_vec());
        if let Ok(k) = &ours {
            let s = k.streaming_aead().unwrap();
            let ct = s.encrypt(b"probe", b"ad").unwrap();
            assert_eq!(s.decrypt(&ct, b"ad").unwrap(), b"probe");
        }
        // Under `fips`, a key Tink accepts is refused when it uses SHA-1.
        if let Err(
            e @ encstore_tink::KeysetError::Key {
                source: encstore_tink::KeyError::NotFipsApproved { .. },
                ..
            },
        ) = &ours
        {
            let fips = encstore_tink::provider::get_default().unwrap().fips();
            assert!(
                fips && id.contains("Sha1") && tink == "accepted",
                "{id}: {e}"
            );
            fips_refused += 1;
            continue;
        }
        assert_eq!(
            ours.is_ok(),
            tink == "accepted",
            "{id}: encstore {:?}, Tink {tink}",
            ours.err()
        );
        if ours.is_ok() {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(
        accepted + fips_refused > 20 && refused > 50 && accepted > 10,
        "{accepted} accepted, {refused} refused, {fips_refused} refused by fips (SHA-1)"
    );
}
