//! Google's Tink (Python, `tink[awskms]==1.16.1` with a boto3 client pointed
//! at moto) and encstore read each other's KMS-wrapped keysets and KMS
//! ciphertexts, with and without associated data:
//! `tests/interop/kms_interop.py` does Tink's side.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use encstore_awskms::AwsKmsKek;
use encstore_awskms::testing;
use encstore_core::{Aead, Kek};
use encstore_tink::KeysetEncoding;
use encstore_tink::keyset::Keyset;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/kms_interop.py")
}

fn python_tink(test: &str) -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m, tink, boto3; from tink.integration import awskms; v = m.version('tink'); assert v == '1.16.1', v",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        testing::skip(
            test,
            "Python Tink 1.16.1 with boto3 is not installed: python3 -m pip install 'tink[hcvault,awskms]==1.16.1' hvac boto3",
        );
    }
    ok
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn tink_and_encstore_read_each_others_kms_wrapped_keysets() {
    let test = "tink_and_encstore_read_each_others_kms_wrapped_keysets";
    let Some(t) = testing::server(test) else {
        return;
    };
    if !python_tink(test) {
        return;
    }
    let kek = AwsKmsKek::open_with(&t.key_uri, t.config()).await.unwrap();
    // Through the alias: the ciphertext still names the key, so Tink (bound
    // to the key ARN) reads it.
    let by_alias = AwsKmsKek::open_with(&t.alias_uri, t.config())
        .await
        .unwrap();
    let dir = tempfile_dir();
    let d = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    let template = encstore_tink::templates::by_name("AES256_GCM").unwrap();

    let mut read = Vec::new();
    let mut raw_decrypt = Vec::new();
    let mut write = Vec::new();
    let mut raw_encrypt = Vec::new();
    let ads: [&[u8]; 3] = [b"", b"keyset ad", &[0, 0xff, 0x7f]];
    for (i, ad) in ads.iter().enumerate() {
        let ks = Keyset::generate(&template).unwrap();
        let wrapper: &AwsKmsKek = if i == 2 { &by_alias } else { &kek };
        let json = ks
            .write_with_kek(KeysetEncoding::Json, wrapper, ad)
            .await
            .unwrap();
        std::fs::write(d(&format!("ks{i}.json")), &json).unwrap();
        let ct = ks.aead().unwrap().encrypt(b"object", b"name").unwrap();
        std::fs::write(d(&format!("ct{i}")), &ct).unwrap();
        read.push(serde_json::json!({
            "keyset": d(&format!("ks{i}.json")), "keyset_ad_hex": hex(ad),
            "ciphertext": d(&format!("ct{i}")), "ad_hex": hex(b"name"),
            "plaintext_hex": hex(b"object"), "primary_key_id": ks.info().primary_key_id,
        }));
        let raw = kek.wrap(b"raw bytes", ad).await.unwrap();
        std::fs::write(d(&format!("raw{i}")), &raw).unwrap();
        raw_decrypt.push(serde_json::json!({
            "ciphertext": d(&format!("raw{i}")), "ad_hex": hex(ad), "plaintext_hex": hex(b"raw bytes"),
        }));
        write.push(serde_json::json!({
            "keyset_out": d(&format!("tink{i}.json")), "keyset_ad_hex": hex(ad),
            "ciphertext_out": d(&format!("tink-ct{i}")), "ad_hex": hex(b"tink name"),
            "plaintext_hex": hex(b"written by tink"),
        }));
        raw_encrypt.push(serde_json::json!({
            "out": d(&format!("tink-raw{i}")), "ad_hex": hex(ad), "plaintext_hex": hex(b"tink raw"),
        }));
    }
    let manifest = serde_json::json!({
        "kms": "awskms",
        "awskms": {
            "endpoint": t.endpoint, "region": t.region,
            "access_key_id": t.access_key_id, "key_uri": t.key_uri,
        },
        "read": read, "write": write, "raw_decrypt": raw_decrypt, "raw_encrypt": raw_encrypt,
    });
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(script())
        .arg(&path)
        .env(
            "ENCSTORE_INTEROP_AWS_SECRET_ACCESS_KEY",
            &t.secret_access_key,
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("12/12 checks passed"),
        "Tink's checks failed:\n{}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );

    // What Tink wrote, encstore reads, with the same associated data only.
    for (i, ad) in ads.iter().enumerate() {
        let json = std::fs::read(d(&format!("tink{i}.json"))).unwrap();
        let ks = Keyset::read_with_kek(&json, &kek, ad).await.unwrap();
        let ks_alias = Keyset::read_with_kek(&json, &by_alias, ad).await.unwrap();
        assert_eq!(*ks.to_json_insecure(), *ks_alias.to_json_insecure());
        let pt = ks
            .aead()
            .unwrap()
            .decrypt(
                &std::fs::read(d(&format!("tink-ct{i}"))).unwrap(),
                b"tink name",
            )
            .unwrap();
        assert_eq!(pt, b"written by tink");
        let other_ad: &[u8] = if ad.is_empty() { b"x" } else { b"" };
        assert!(Keyset::read_with_kek(&json, &kek, other_ad).await.is_err());
        let raw = std::fs::read(d(&format!("tink-raw{i}"))).unwrap();
        assert_eq!(kek.unwrap(&raw, ad).await.unwrap(), b"tink raw");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!(
        "encstore-awskms-tink-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Tink's KMS envelope AEAD over moto's KMS, both ways: Python Tink (its
/// own awskms `KmsClient`, bound to the key URI) decrypts encstore's
/// envelope ciphertexts (keysets with envelope keys, TINK and RAW; the bare
/// primitive; after encstore's rewrap too), and encstore decrypts Python
/// Tink's.
#[tokio::test]
async fn tink_and_encstore_read_each_others_envelope_ciphertexts() {
    use std::collections::HashMap;
    use std::sync::Arc;

    use encstore_tink::envelope::{self, EnvelopeAead, KeysetAsyncAead};
    use encstore_tink::{OutputPrefix, templates};

    let test = "tink_and_encstore_read_each_others_envelope_ciphertexts (awskms)";
    let Some(t) = testing::server(test) else {
        return;
    };
    if !python_tink(test) {
        return;
    }
    let kek = Arc::new(AwsKmsKek::open_with(&t.key_uri, t.config()).await.unwrap());
    let resolver: HashMap<String, Arc<dyn Kek>> =
        [(t.key_uri.clone(), kek.clone() as Arc<dyn Kek>)]
            .into_iter()
            .collect();
    let dir = tempfile_dir();
    let d = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    let tpl = |n: &str| templates::by_name(n).unwrap();
    // Python Tink has no ChaCha20-Poly1305.
    let deks = [
        "AES256_GCM",
        "AES128_GCM_SIV",
        "AES256_CTR_HMAC_SHA256",
        "AES128_EAX",
        "XCHACHA20_POLY1305",
    ];
    let ads: [&[u8]; 2] = [b"", b"objects/some name"];
    let (mut read, mut raw_decrypt, mut write, mut raw_encrypt) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, dek) in deks.iter().enumerate() {
        let prefix = if i % 2 == 0 {
            OutputPrefix::Tink
        } else {
            OutputPrefix::Raw
        };
        let ad = ads[i % 2];
        let ks = Keyset::generate(&templates::kms_envelope(&t.key_uri, &tpl(dek), prefix).unwrap())
            .unwrap();
        std::fs::write(d(&format!("env{i}.json")), &*ks.to_json_insecure()).unwrap();
        let aead = KeysetAsyncAead::new(&ks, &resolver).await.unwrap();
        let pt = format!("envelope {dek}").into_bytes();
        let ct = aead.encrypt(&pt, ad).await.unwrap();
        let rewrapped = aead.rewrap(&ct).await.unwrap().ciphertext;
        for (f, c) in [
            (format!("env{i}.ct"), &ct),
            (format!("env{i}-rewrapped.ct"), &rewrapped),
        ] {
            std::fs::write(d(&f), c).unwrap();
            read.push(serde_json::json!({
                "keyset": d(&format!("env{i}.json")), "no_secret": true,
                "ciphertext": d(&f), "ad_hex": hex(ad), "plaintext_hex": hex(&pt),
            }));
        }
        let single = EnvelopeAead::new(kek.clone(), &tpl(dek)).unwrap();
        let ct = single.encrypt(&pt, ad).await.unwrap();
        std::fs::write(d(&format!("raw{i}.ct")), &ct).unwrap();
        raw_decrypt.push(serde_json::json!({
            "dek_template": dek, "ciphertext": d(&format!("raw{i}.ct")),
            "ad_hex": hex(ad), "plaintext_hex": hex(&pt),
        }));
        write.push(serde_json::json!({
            "dek_template": dek, "prefix": if i % 2 == 0 { "RAW" } else { "TINK" },
            "keyset_out": d(&format!("tink-env{i}.json")), "ciphertext_out": d(&format!("tink-env{i}.ct")),
            "ad_hex": hex(ad), "plaintext_hex": hex(format!("tink {dek}").as_bytes()),
        }));
        raw_encrypt.push(serde_json::json!({
            "dek_template": dek, "out": d(&format!("tink-raw{i}.ct")),
            "ad_hex": hex(ad), "plaintext_hex": hex(format!("tink raw {dek}").as_bytes()),
        }));
    }
    let checks = read.len() + raw_decrypt.len() + write.len() + raw_encrypt.len();
    let manifest = serde_json::json!({
        "kms": "awskms",
        "awskms": {
            "endpoint": t.endpoint, "region": t.region,
            "access_key_id": t.access_key_id, "key_uri": t.key_uri,
        },
        "envelope_kek_uri": t.key_uri,
        "envelope_read": read, "envelope_raw_decrypt": raw_decrypt,
        "envelope_write": write, "envelope_raw_encrypt": raw_encrypt,
    });
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(script())
        .arg(&path)
        .env(
            "ENCSTORE_INTEROP_AWS_SECRET_ACCESS_KEY",
            &t.secret_access_key,
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains(&format!("{checks}/{checks} checks passed")),
        "Tink's checks failed:\n{}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    for (i, dek) in deks.iter().enumerate() {
        let json = std::fs::read(d(&format!("tink-env{i}.json"))).unwrap();
        assert!(String::from_utf8_lossy(&json).contains("REMOTE"));
        let ks = Keyset::from_json_insecure(&json).unwrap();
        let aead = KeysetAsyncAead::new(&ks, &resolver).await.unwrap();
        let ct = std::fs::read(d(&format!("tink-env{i}.ct"))).unwrap();
        assert_eq!(
            aead.decrypt(&ct, ads[i % 2]).await.unwrap(),
            format!("tink {dek}").into_bytes()
        );
        assert_eq!(aead.envelope_info(&ct).unwrap().kek_uri, t.key_uri);
        let single = EnvelopeAead::new(kek.clone(), &tpl(dek)).unwrap();
        let ct = std::fs::read(d(&format!("tink-raw{i}.ct"))).unwrap();
        assert!(envelope::split(&ct).is_ok());
        assert_eq!(
            single.decrypt(&ct, ads[i % 2]).await.unwrap(),
            format!("tink raw {dek}").into_bytes()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
