//! The keyset commands with streaming AEAD templates: created, listed,
//! rotated, and never mixed with AEAD keys.

mod common;

use common::{Dir, fails, ok};
use encstore_tink::keyset::Keyset;

const STREAMING: [&str; 8] = [
    "AES128_GCM_HKDF_4KB",
    "AES128_GCM_HKDF_1MB",
    "AES256_GCM_HKDF_4KB",
    "AES256_GCM_HKDF_1MB",
    "AES128_CTR_HMAC_SHA256_4KB",
    "AES128_CTR_HMAC_SHA256_1MB",
    "AES256_CTR_HMAC_SHA256_4KB",
    "AES256_CTR_HMAC_SHA256_1MB",
];

#[test]
fn list_key_templates_lists_the_streaming_templates_after_the_aead_ones() {
    let out = String::from_utf8(ok(&["list-key-templates"])).expect("utf8");
    let lines: Vec<&str> = out.lines().collect();
    let tail = &lines[lines.len() - STREAMING.len()..];
    assert_eq!(tail, STREAMING, "{out}");
    assert!(lines.contains(&"AES256_GCM"));
}

#[test]
fn streaming_keysets_are_created_rotated_and_listed() {
    let d = Dir::new();
    for (i, name) in STREAMING.iter().enumerate() {
        let k = d.s(&format!("{i}.json"));
        ok(&["create-keyset", "--key-template", name, "--out", &k]);
        // Every streaming template can join a streaming keyset.
        let other = STREAMING[(i + 3) % STREAMING.len()];
        ok(&[
            "rotate-keyset",
            "--key-template",
            other,
            "--in",
            &k,
            "--out",
            &k,
        ]);
        let table = String::from_utf8(ok(&["list-keyset", "--in", &k])).expect("utf8");
        assert_eq!(table.lines().count(), 3, "{table}");
        assert!(table.contains("streaming AES-"), "{table}");
        let json: serde_json::Value =
            serde_json::from_slice(&ok(&["list-keyset", "--json", "--in", &k])).expect("json");
        let keys = json["keyInfo"].as_array().expect("keyInfo");
        assert!(keys.iter().all(|k| k["outputPrefixType"] == "RAW"));
        assert!(keys.iter().all(|k| {
            k["typeUrl"]
                .as_str()
                .is_some_and(|u| u.ends_with("StreamingKey"))
        }));
        // The library reads it as a streaming keyset.
        let ks = common::read_keyset(&k);
        assert!(ks.streaming_aead().is_ok());
    }
    let table = {
        let k = d.s("0.json");
        String::from_utf8(ok(&["list-keyset", "--in", &k])).expect("utf8")
    };
    assert!(
        table.contains("streaming AES-128-GCM, HKDF-SHA256 (16-byte key), 4096-byte segments"),
        "{table}"
    );
}

#[test]
fn aead_and_streaming_keys_never_mix() {
    let d = Dir::new();
    let a = d.s("aead.json");
    let s = d.s("streaming.json");
    ok(&["create-keyset", "--key-template", "AES256_GCM", "--out", &a]);
    ok(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM_HKDF_1MB",
        "--out",
        &s,
    ]);
    let before_a = std::fs::read(&a).expect("read");
    let before_s = std::fs::read(&s).expect("read");
    fails(
        &[
            "add-key",
            "--key-template",
            "AES128_GCM_HKDF_4KB",
            "--in",
            &a,
            "--out",
            &a,
        ],
        1,
        "the template makes streaming AEAD keys, but this keyset holds AEAD keys",
    );
    fails(
        &[
            "rotate-keyset",
            "--key-template",
            "AES128_GCM",
            "--in",
            &s,
            "--out",
            &s,
        ],
        1,
        "the template makes AEAD keys, but this keyset holds streaming AEAD keys",
    );
    assert_eq!(
        std::fs::read(&a).expect("read"),
        before_a,
        "nothing written"
    );
    assert_eq!(
        std::fs::read(&s).expect("read"),
        before_s,
        "nothing written"
    );
    // encrypt with a streaming keyset writes Tink's streaming ciphertext
    // (issue 12; before, it was refused): no AEAD prefix, the streaming
    // keyset's decryption (tested against Tink) reads it, and the AEAD
    // keyset does not.
    std::fs::write(d.p("pt"), b"x").expect("write");
    let ct = ok(&["encrypt", "--keyset", &s, "--in", &d.s("pt")]);
    let ks = Keyset::from_json_insecure(&before_s).expect("keyset");
    assert_eq!(
        ks.streaming_aead()
            .expect("streaming")
            .decrypt(&ct, b"")
            .expect("decrypts"),
        b"x"
    );
    std::fs::write(d.p("ct"), &ct).expect("write");
    fails(
        &["decrypt", "--keyset", &a, "--in", &d.s("ct")],
        1,
        "cannot decrypt",
    );
    // Policies list AEAD key types: a streaming template with --policy is refused.
    fails(
        &[
            "create-keyset",
            "--key-template",
            "AES128_GCM_HKDF_4KB",
            "--policy",
            "tink",
            "--out",
            &d.s("p.json"),
        ],
        1,
        "key policies list AEAD key types only",
    );
    assert!(!d.p("p.json").exists());
}
