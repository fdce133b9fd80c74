//! Google's Tink (Python, `tink[hcvault]==1.16.1` with hvac) and encstore
//! read each other's Vault-wrapped keysets, against a real OpenBao:
//! `tests/interop/kms_interop.py` does Tink's side.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use encstore_core::{Aead, Kek};
use encstore_tink::KeysetEncoding;
use encstore_tink::keyset::Keyset;
use encstore_vault::testing::{self, python_tink, run_kms_interop, unique_name};
use encstore_vault::{VaultKek, ciphertext_key_version};

/// The `encryptedKeyset` field of an encrypted JSON keyset, decoded.
fn wrapped_of(json: &[u8]) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    B64.decode(v["encryptedKeyset"].as_str().unwrap()).unwrap()
}

/// The same encrypted JSON keyset with `encryptedKeyset` replaced.
fn with_wrapped(json: &[u8], wrapped: &[u8]) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(json).unwrap();
    v["encryptedKeyset"] = B64.encode(wrapped).into();
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn tink_and_encstore_read_each_others_vault_wrapped_keysets() {
    let test = "tink_and_encstore_read_each_others_vault_wrapped_keysets";
    let Some(v) = testing::server(test) else {
        return;
    };
    if !python_tink(test) {
        return;
    }
    let name = unique_name("tink");
    let kek = VaultKek::create_master_key_with(&v.uri(&name), v.config())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).to_str().unwrap().to_owned();
    let template = encstore_tink::templates::by_name("AES256_GCM").unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();

    // encstore wraps a keyset under key version 1 and encrypts with it.
    let ks1 = Keyset::generate(&template).unwrap();
    let json1 = ks1
        .write_with_kek(KeysetEncoding::Json, &kek, b"")
        .await
        .unwrap();
    assert_eq!(ciphertext_key_version(&wrapped_of(&json1)).unwrap(), 1);
    std::fs::write(d("ks1.json"), &json1).unwrap();
    let ct1 = ks1
        .aead()
        .unwrap()
        .encrypt(b"object one", b"name/one")
        .unwrap();
    std::fs::write(d("ct1"), &ct1).unwrap();
    // The master key rotates; the old wrapping is rewrapped to version 2.
    v.bao_ok(&["write", "-f", &format!("transit/keys/{name}/rotate")]);
    let re = kek
        .rewrap_ciphertext(&wrapped_of(&json1), b"")
        .await
        .unwrap();
    assert_eq!(ciphertext_key_version(&re).unwrap(), 2);
    std::fs::write(d("ks1-rewrapped.json"), with_wrapped(&json1, &re)).unwrap();
    // A keyset wrapped after the rotation.
    let ks2 = Keyset::generate(&template).unwrap();
    let json2 = ks2
        .write_with_kek(KeysetEncoding::Json, &kek, b"")
        .await
        .unwrap();
    assert_eq!(ciphertext_key_version(&wrapped_of(&json2)).unwrap(), 2);
    std::fs::write(d("ks2.json"), &json2).unwrap();
    let ct2 = ks2.aead().unwrap().encrypt(b"object two", b"").unwrap();
    std::fs::write(d("ct2"), &ct2).unwrap();
    // The KEK alone, empty associated data.
    std::fs::write(d("raw"), kek.wrap(b"raw keyset bytes", b"").await.unwrap()).unwrap();

    let primary = |ks: &Keyset| ks.info().primary_key_id;
    let manifest = serde_json::json!({
        "kms": "hcvault",
        "hcvault": v.tink_manifest_kms(&name),
        "read": [
            {"keyset": d("ks1.json"), "keyset_ad_hex": "", "ciphertext": d("ct1"),
             "ad_hex": hex(b"name/one"), "plaintext_hex": hex(b"object one"), "primary_key_id": primary(&ks1)},
            {"keyset": d("ks1-rewrapped.json"), "keyset_ad_hex": "", "ciphertext": d("ct1"),
             "ad_hex": hex(b"name/one"), "plaintext_hex": hex(b"object one"), "primary_key_id": primary(&ks1)},
            {"keyset": d("ks2.json"), "keyset_ad_hex": "", "ciphertext": d("ct2"),
             "ad_hex": "", "plaintext_hex": hex(b"object two"), "primary_key_id": primary(&ks2)},
        ],
        "write": [
            {"keyset_out": d("tink.json"), "keyset_ad_hex": "", "ciphertext_out": d("tink-ct"),
             "ad_hex": hex(b"tink name"), "plaintext_hex": hex(b"written by tink")},
        ],
        "raw_decrypt": [
            {"ciphertext": d("raw"), "ad_hex": "", "plaintext_hex": hex(b"raw keyset bytes")},
        ],
        "raw_encrypt": [
            {"out": d("tink-raw"), "ad_hex": "", "plaintext_hex": hex(b"tink raw")},
        ],
        // Python Tink's Vault AEAD only takes empty associated data.
        "refused": [{"ad_hex": hex(b"keyset ad")}],
    });
    run_kms_interop(&manifest, dir.path(), &v.token, 7);

    // What Tink wrote, encstore reads: the keyset, then its ciphertext.
    let tink_json = std::fs::read(d("tink.json")).unwrap();
    let wrapped = wrapped_of(&tink_json);
    assert!(
        wrapped.starts_with(b"vault:v2:"),
        "{:?}",
        String::from_utf8_lossy(&wrapped)
    );
    let ks = Keyset::read_with_kek(&tink_json, &kek, b"").await.unwrap();
    let pt = ks
        .aead()
        .unwrap()
        .decrypt(&std::fs::read(d("tink-ct")).unwrap(), b"tink name")
        .unwrap();
    assert_eq!(pt, b"written by tink");
    let raw = std::fs::read(d("tink-raw")).unwrap();
    assert_eq!(kek.unwrap(&raw, b"").await.unwrap(), b"tink raw");
}

/// The DEK templates both Python Tink and encstore allow in envelopes
/// (Python Tink has no ChaCha20-Poly1305).
const PY_DEKS: [&str; 5] = [
    "AES256_GCM",
    "AES128_GCM_SIV",
    "AES256_CTR_HMAC_SHA256",
    "AES128_EAX",
    "XCHACHA20_POLY1305",
];

/// Tink's KMS envelope AEAD over OpenBao, both ways: Python Tink decrypts
/// encstore's envelope ciphertexts (keysets with envelope keys, TINK and
/// RAW, alone and mixed with an ordinary key; and the bare primitive), also
/// after a master-key rotation and encstore's master-key-level rewrap; and
/// encstore decrypts Python Tink's. The encrypted DEK is transit's
/// `vault:vN:` ciphertext either way.
#[tokio::test]
async fn tink_and_encstore_read_each_others_envelope_ciphertexts() {
    use std::collections::HashMap;
    use std::sync::Arc;

    use encstore_tink::envelope::{self, EnvelopeAead, KeysetAsyncAead};
    use encstore_tink::{OutputPrefix, templates};

    let test = "tink_and_encstore_read_each_others_envelope_ciphertexts";
    let Some(v) = testing::server(test) else {
        return;
    };
    if !python_tink(test) {
        return;
    }
    let name = unique_name("tink-envelope");
    let uri = v.uri(&name);
    let kek = Arc::new(
        VaultKek::create_master_key_with(&uri, v.config())
            .await
            .unwrap(),
    );
    let resolver: HashMap<String, Arc<dyn Kek>> = [(uri.clone(), kek.clone() as Arc<dyn Kek>)]
        .into_iter()
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).to_str().unwrap().to_owned();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let tpl = |n: &str| templates::by_name(n).unwrap();
    let ads: [&[u8]; 2] = [b"", b"objects/some name"];

    let mut read = Vec::new();
    let mut raw_decrypt = Vec::new();
    let mut to_rewrap = Vec::new();
    for (i, dek) in PY_DEKS.iter().enumerate() {
        let prefix = if i % 2 == 0 {
            OutputPrefix::Tink
        } else {
            OutputPrefix::Raw
        };
        let ad = ads[i % 2];
        // A keyset of one envelope key: no secret in it.
        let ks =
            Keyset::generate(&templates::kms_envelope(&uri, &tpl(dek), prefix).unwrap()).unwrap();
        std::fs::write(d(&format!("env{i}.json")), &*ks.to_json_insecure()).unwrap();
        let aead = KeysetAsyncAead::new(&ks, &resolver).await.unwrap();
        let pt = format!("envelope {dek}").into_bytes();
        let ct = aead.encrypt(&pt, ad).await.unwrap();
        std::fs::write(d(&format!("env{i}.ct")), &ct).unwrap();
        read.push(serde_json::json!({
            "keyset": d(&format!("env{i}.json")), "no_secret": true,
            "ciphertext": d(&format!("env{i}.ct")), "ad_hex": hex(ad), "plaintext_hex": hex(&pt),
        }));
        to_rewrap.push((i, ks, ct, pt.clone(), ad));
        // The bare primitive.
        let single = EnvelopeAead::new(kek.clone(), &tpl(dek)).unwrap();
        let ct = single.encrypt(&pt, ad).await.unwrap();
        std::fs::write(d(&format!("raw{i}.ct")), &ct).unwrap();
        raw_decrypt.push(serde_json::json!({
            "dek_template": dek, "ciphertext": d(&format!("raw{i}.ct")),
            "ad_hex": hex(ad), "plaintext_hex": hex(&pt),
        }));
    }
    // A mixed keyset: an ordinary primary and an envelope key.
    let mut mixed = Keyset::generate(&tpl("AES256_GCM")).unwrap();
    let env = mixed
        .add_key(
            &templates::kms_envelope(&uri, &tpl("AES128_GCM_SIV"), OutputPrefix::Tink).unwrap(),
        )
        .unwrap();
    std::fs::write(d("mixed.json"), &*mixed.to_json_insecure()).unwrap();
    let plain = KeysetAsyncAead::new(&mixed, &resolver).await.unwrap();
    let ct = plain.encrypt(b"ordinary key", b"m").await.unwrap();
    std::fs::write(d("mixed-plain.ct"), &ct).unwrap();
    mixed.promote(env).unwrap();
    let enveloped = KeysetAsyncAead::new(&mixed, &resolver).await.unwrap();
    let ct = enveloped.encrypt(b"envelope key", b"m").await.unwrap();
    std::fs::write(d("mixed-env.ct"), &ct).unwrap();
    for (f, pt) in [
        ("mixed-plain.ct", &b"ordinary key"[..]),
        ("mixed-env.ct", b"envelope key"),
    ] {
        read.push(serde_json::json!({
            "keyset": d("mixed.json"), "no_secret": false, "ciphertext": d(f),
            "ad_hex": hex(b"m"), "plaintext_hex": hex(pt),
        }));
    }

    // The master key rotates; encstore re-wraps the DEKs of half of the
    // ciphertexts: Tink must read those (now under version 2) too.
    v.bao_ok(&["write", "-f", &format!("transit/keys/{name}/rotate")]);
    for (i, ks, ct, pt, ad) in &to_rewrap {
        let aead = KeysetAsyncAead::new(ks, &resolver).await.unwrap();
        let r = aead.rewrap(ct).await.unwrap();
        assert_eq!(r.after.as_ref().and_then(|m| m.version), Some(2));
        // Even-numbered keysets have the TINK prefix.
        let prefix_len = if i % 2 == 0 { 5 } else { 0 };
        assert_eq!(
            envelope::split(&r.ciphertext[prefix_len..]).unwrap().1,
            envelope::split(&ct[prefix_len..]).unwrap().1
        );
        std::fs::write(d(&format!("env{i}-rewrapped.ct")), &r.ciphertext).unwrap();
        read.push(serde_json::json!({
            "keyset": d(&format!("env{i}.json")), "no_secret": true,
            "ciphertext": d(&format!("env{i}-rewrapped.ct")), "ad_hex": hex(ad), "plaintext_hex": hex(pt),
        }));
    }
    let single = EnvelopeAead::new(kek.clone(), &tpl("AES128_EAX")).unwrap();
    let before = single.encrypt(b"bare, rewrapped", b"").await.unwrap();
    assert!(
        envelope::encrypted_dek(&before)
            .unwrap()
            .starts_with(b"vault:v2:")
    );
    let rotated_again = {
        v.bao_ok(&["write", "-f", &format!("transit/keys/{name}/rotate")]);
        envelope::rewrap_envelope(&before, &*kek).await.unwrap()
    };
    assert!(
        envelope::encrypted_dek(&rotated_again)
            .unwrap()
            .starts_with(b"vault:v3:")
    );
    std::fs::write(d("raw-rewrapped.ct"), &rotated_again).unwrap();
    raw_decrypt.push(serde_json::json!({
        "dek_template": "AES128_EAX", "ciphertext": d("raw-rewrapped.ct"),
        "ad_hex": "", "plaintext_hex": hex(b"bare, rewrapped"),
    }));

    // What Python Tink writes.
    let write: Vec<_> = PY_DEKS
        .iter()
        .enumerate()
        .map(|(i, dek)| {
            serde_json::json!({
                "dek_template": dek, "prefix": if i % 2 == 0 { "RAW" } else { "TINK" },
                "keyset_out": d(&format!("tink-env{i}.json")), "ciphertext_out": d(&format!("tink-env{i}.ct")),
                "ad_hex": hex(ads[i % 2]), "plaintext_hex": hex(format!("tink {dek}").as_bytes()),
            })
        })
        .collect();
    let raw_encrypt: Vec<_> = PY_DEKS
        .iter()
        .enumerate()
        .map(|(i, dek)| {
            serde_json::json!({
                "dek_template": dek, "out": d(&format!("tink-raw{i}.ct")),
                "ad_hex": hex(ads[i % 2]), "plaintext_hex": hex(format!("tink raw {dek}").as_bytes()),
            })
        })
        .collect();
    let checks = read.len() + raw_decrypt.len() + write.len() + raw_encrypt.len();
    let manifest = serde_json::json!({
        "kms": "hcvault",
        "hcvault": v.tink_manifest_kms(&name),
        "envelope_kek_uri": uri,
        "envelope_read": read,
        "envelope_raw_decrypt": raw_decrypt,
        "envelope_write": write,
        "envelope_raw_encrypt": raw_encrypt,
    });
    run_kms_interop(&manifest, dir.path(), &v.token, checks);

    // What Tink wrote, encstore reads: the keyset (envelope keys, REMOTE)
    // and its ciphertext; the bare primitive's ciphertexts. Their DEKs are
    // under the newest version.
    for (i, dek) in PY_DEKS.iter().enumerate() {
        let ks =
            Keyset::from_json_insecure(&std::fs::read(d(&format!("tink-env{i}.json"))).unwrap())
                .unwrap();
        let text =
            String::from_utf8(std::fs::read(d(&format!("tink-env{i}.json"))).unwrap()).unwrap();
        assert!(text.contains("REMOTE"), "{text}");
        let aead = KeysetAsyncAead::new(&ks, &resolver).await.unwrap();
        let ct = std::fs::read(d(&format!("tink-env{i}.ct"))).unwrap();
        assert_eq!(
            aead.decrypt(&ct, ads[i % 2]).await.unwrap(),
            format!("tink {dek}").into_bytes()
        );
        assert_eq!(
            aead.envelope_info(&ct).unwrap().master.unwrap().version,
            Some(3)
        );
        let single = EnvelopeAead::new(kek.clone(), &tpl(dek)).unwrap();
        let ct = std::fs::read(d(&format!("tink-raw{i}.ct"))).unwrap();
        assert!(
            envelope::encrypted_dek(&ct)
                .unwrap()
                .starts_with(b"vault:v3:")
        );
        assert_eq!(
            single.decrypt(&ct, ads[i % 2]).await.unwrap(),
            format!("tink raw {dek}").into_bytes()
        );
    }
}
