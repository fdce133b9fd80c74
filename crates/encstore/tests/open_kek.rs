//! `encstore::open::open_kek` and `create_master_key` against real KEKs:
//! master keyset files, SoftHSM2 (PKCS#11), OpenBao (Vault transit) and,
//! with the `aws-kms` feature, moto's KMS emulator. No mocks.
//!
//! The services skip with `SKIPPED` when absent, and fail under
//! `ENCSTORE_REQUIRE_SERVICES=1`. Tests that need a process environment of
//! their own (the PKCS#11 module, `VAULT_TOKEN`, `AWS_*`) re-run this test
//! binary as a child process with it: setting variables in-process needs
//! `unsafe`, which is forbidden.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;
use std::sync::Arc;

use encstore::open::{
    KekOptions, KekScheme, MasterKeyRef, MasterKeyUri, MasterKeysetFormat, OpenKekError,
    create_master_key, open_kek,
};
use encstore_core::{Kek, KekError};
use encstore_tink::Keyset;
use encstore_tink::KeysetEncoding;
use encstore_tink::templates::by_name;

/// Wraps with `a`, unwraps with `b` (and the other way round), and checks
/// that other associated data fails to authenticate.
async fn assert_same_key(a: &dyn Kek, b: &dyn Kek) {
    let w = a.wrap(b"serialized keyset", b"ad").await.unwrap();
    assert_eq!(b.unwrap(&w, b"ad").await.unwrap(), b"serialized keyset");
    let w = b.wrap(b"another", b"").await.unwrap();
    assert_eq!(a.unwrap(&w, b"").await.unwrap(), b"another");
    assert!(matches!(
        a.unwrap(&w, b"other ad").await,
        Err(KekError::Authentication)
    ));
}

fn open_err(r: Result<Arc<dyn Kek>, OpenKekError>) -> OpenKekError {
    match r {
        Ok(k) => panic!("opened {k:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line: {msg}");
            e
        }
    }
}

/// Runs the `#[ignore]`d test `name` of this binary in a child process
/// with `env` added, and checks that it ran and passed.
#[cfg_attr(not(any(feature = "vault", feature = "aws-kms")), allow(dead_code))]
fn run_child(name: &str, env: &[(&str, &str)]) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().copied())
        .env("ENCSTORE_OPEN_KEK_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {name} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}

/// Whether this process is a child started by [`run_child`].
#[cfg_attr(not(any(feature = "vault", feature = "aws-kms")), allow(dead_code))]
fn is_child() -> bool {
    std::env::var("ENCSTORE_OPEN_KEK_CHILD").as_deref() == Ok("1")
}

// ---------------------------------------------------------------------------
// Master keyset files.

#[tokio::test]
async fn master_keyset_files_json_and_binary_detected_or_forced() {
    let dir = tempfile::tempdir().unwrap();
    let master = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    let json = dir.path().join("master.json");
    let bin = dir.path().join("master.bin");
    std::fs::write(&json, &*master.to_json_insecure()).unwrap();
    std::fs::write(&bin, &*master.to_binary_insecure()).unwrap();

    let from_json = open_kek(&MasterKeyRef::keyset_file(&json)).await.unwrap();
    let from_bin = open_kek(&MasterKeyRef::keyset_file(&bin)).await.unwrap();
    assert_same_key(from_json.as_ref(), from_bin.as_ref()).await;
    // Forced formats, and the text form.
    let forced = open_kek(&MasterKeyRef::keyset_file_in(
        &bin,
        MasterKeysetFormat::Binary,
    ))
    .await
    .unwrap();
    assert_same_key(forced.as_ref(), from_json.as_ref()).await;
    let parsed: MasterKeyRef = format!("file://{}", json.display()).parse().unwrap();
    let via_url = open_kek(&parsed).await.unwrap();
    assert_same_key(via_url.as_ref(), from_bin.as_ref()).await;

    // What it wraps is a Tink EncryptedKeyset that reads back with it.
    let data = Keyset::generate(&by_name("AES128_GCM").unwrap()).unwrap();
    let wrapped = data
        .write_with_kek(KeysetEncoding::Json, from_json.as_ref(), b"")
        .await
        .unwrap();
    let back = Keyset::read_with_kek(&wrapped, from_bin.as_ref(), b"")
        .await
        .unwrap();
    assert_eq!(back.primary_key_id(), data.primary_key_id());

    // Neither Debug shows the master key's material.
    let clear: serde_json::Value = serde_json::from_slice(&master.to_json_insecure()).unwrap();
    let value = clear["key"][0]["keyData"]["value"].as_str().unwrap();
    assert!(!format!("{from_json:?}").contains(value));

    // A different master keyset does not unwrap it.
    let other = dir.path().join("other.json");
    let k = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    std::fs::write(&other, &*k.to_json_insecure()).unwrap();
    let other = open_kek(&MasterKeyRef::keyset_file(&other)).await.unwrap();
    let w = from_json.wrap(b"x", b"").await.unwrap();
    assert!(matches!(
        other.unwrap(&w, b"").await,
        Err(KekError::Authentication)
    ));
}

#[tokio::test]
async fn bad_master_keyset_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    let master = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    let master_kek = open_kek(&{
        std::fs::write(path("m.json"), &*master.to_json_insecure()).unwrap();
        MasterKeyRef::keyset_file(path("m.json"))
    })
    .await
    .unwrap();

    // Missing.
    let e = open_err(open_kek(&MasterKeyRef::keyset_file(path("absent.json"))).await);
    assert!(
        matches!(&e, OpenKekError::ReadKeyset { error, .. } if error.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    assert!(e.to_string().starts_with(&format!(
        "cannot read master keyset {}: ",
        path("absent.json").display()
    )));

    // Itself encrypted, JSON and binary, whatever format is forced.
    let data = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    std::fs::write(
        path("enc.json"),
        data.write_with_kek(KeysetEncoding::Json, master_kek.as_ref(), b"")
            .await
            .unwrap(),
    )
    .unwrap();
    std::fs::write(
        path("enc.bin"),
        data.write_with_kek(KeysetEncoding::Binary, master_kek.as_ref(), b"")
            .await
            .unwrap(),
    )
    .unwrap();
    for (file, format) in [
        ("enc.json", None),
        ("enc.bin", None),
        ("enc.json", Some(MasterKeysetFormat::Binary)),
    ] {
        let r = MasterKeyRef::KeysetFile {
            path: path(file),
            format,
        };
        let e = open_err(open_kek(&r).await);
        assert!(matches!(e, OpenKekError::EncryptedKeyset { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "master keyset {} is itself encrypted; a master keyset must be a cleartext AEAD keyset",
                path(file).display()
            )
        );
    }

    // The wrong forced format.
    let e = open_err(
        open_kek(&MasterKeyRef::keyset_file_in(
            path("m.json"),
            MasterKeysetFormat::Binary,
        ))
        .await,
    );
    assert!(
        matches!(
            &e,
            OpenKekError::InvalidKeyset {
                format: MasterKeysetFormat::Binary,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("is not a valid AEAD keyset (read as binary): "),
        "{e}"
    );

    // Not a keyset at all, empty, and a keyset of a non-AEAD key type.
    std::fs::write(path("text"), b"not a keyset\n").unwrap();
    std::fs::write(path("empty"), b"").unwrap();
    std::fs::write(
        path("mac.json"),
        br#"{"primaryKeyId":1,"key":[{"keyData":{"typeUrl":"type.googleapis.com/google.crypto.tink.HmacKey","value":"EgQIAxAgGiBhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYQ==","keyMaterialType":"SYMMETRIC"},"status":"ENABLED","keyId":1,"outputPrefixType":"TINK"}]}"#,
    )
    .unwrap();
    for file in ["text", "empty", "mac.json"] {
        let e = open_err(open_kek(&MasterKeyRef::keyset_file(path(file))).await);
        assert!(
            matches!(e, OpenKekError::InvalidKeyset { .. }),
            "{file}: {e:?}"
        );
        assert!(
            e.to_string().starts_with(&format!(
                "master keyset {} is not a valid AEAD keyset",
                path(file).display()
            )),
            "{e}"
        );
    }

    // create_master_key is for URIs only.
    let e = open_err(
        MasterKeyRef::keyset_file(path("m.json"))
            .create(&KekOptions::default())
            .await,
    );
    assert!(matches!(e, OpenKekError::CreateKeysetFile { .. }), "{e:?}");
}

#[tokio::test]
async fn aws_kms_keys_are_not_created_and_need_their_feature() {
    let uri: MasterKeyUri =
        "aws-kms://arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            .parse()
            .unwrap();
    let e = open_err(create_master_key(&uri).await);
    if encstore_awskms::AWS_SUPPORT {
        assert!(
            matches!(
                e,
                OpenKekError::CreateUnsupported {
                    scheme: KekScheme::AwsKms,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("aws kms create-key"), "{e}");
    } else {
        // Without the AWS SDK, opening and creating both say so.
        assert!(
            matches!(
                e,
                OpenKekError::NotCompiled {
                    scheme: KekScheme::AwsKms
                }
            ),
            "{e:?}"
        );
        let e = open_err(open_kek(&MasterKeyRef::Uri(uri)).await);
        assert_eq!(
            e.to_string(),
            "aws-kms:// master keys are not supported by this build: enable the `aws-kms` cargo feature of the encstore crate"
        );
    }
}

#[tokio::test]
async fn schemes_without_their_feature_say_so() {
    for (uri, scheme) in [
        ("pkcs11:token=t;object=k", KekScheme::Pkcs11),
        ("hcvault://127.0.0.1:1/transit/keys/k", KekScheme::HcVault),
    ] {
        if scheme.is_compiled_in() {
            continue;
        }
        let master: MasterKeyRef = uri.parse().unwrap();
        let e = open_err(open_kek(&master).await);
        assert!(
            matches!(e, OpenKekError::NotCompiled { scheme: s } if s == scheme),
            "{e:?}"
        );
        assert!(
            e.to_string().contains(&format!(
                "enable the `{}` cargo feature",
                scheme.cargo_feature()
            )),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------
// PKCS#11 (SoftHSM2): one fresh token per test, in a child process.

#[cfg(feature = "pkcs11")]
mod pkcs11 {
    use encstore_pkcs11::Pkcs11Error;
    use encstore_pkcs11::testing::{Hsm, TOKEN, assert_no_pin, hsm_test};

    use super::*;

    #[test]
    fn pkcs11_create_open_and_typed_errors() {
        // The full test path: hsm_test re-runs this binary filtered to it.
        hsm_test(
            "pkcs11::pkcs11_create_open_and_typed_errors",
            |hsm: Hsm| async move {
                let uri: MasterKeyUri = hsm.uri("kek-open").parse().unwrap();
                assert_eq!(uri.scheme(), KekScheme::Pkcs11);

                // Not there yet: the PKCS#11 error, typed, through KekError.
                let e = open_err(open_kek(&MasterKeyRef::Uri(uri.clone())).await);
                assert_no_pin(&format!("{e} {e:?}"));
                let OpenKekError::Kek(k) = &e else {
                    panic!("{e:?}")
                };
                assert!(matches!(k, KekError::Unavailable(_)), "{k:?}");
                assert!(
                    matches!(
                        k.downcast_ref::<Pkcs11Error>(),
                        Some(Pkcs11Error::KeyNotFound { .. })
                    ),
                    "{k:?}"
                );
                assert_eq!(
                    e.to_string(),
                    format!(
                        "PKCS#11 token \"{TOKEN}\": no key \"kek-open\" (create it with encstore create-master-key)"
                    )
                );

                let created = create_master_key(&uri).await.unwrap();
                let e = open_err(create_master_key(&uri).await);
                assert!(
                    matches!(&e, OpenKekError::Kek(k) if matches!(k.downcast_ref::<Pkcs11Error>(), Some(Pkcs11Error::KeyExists { .. }))),
                    "{e:?}"
                );
                let opened = open_kek(&MasterKeyRef::Uri(uri)).await.unwrap();
                assert_same_key(created.as_ref(), opened.as_ref()).await;
                assert_no_pin(&format!("{opened:?}"));

                // The module and PIN file from the environment, as the tool
                // reads them (hsm_test sets ENCSTORE_PKCS11_MODULE and
                // ENCSTORE_PKCS11_PIN_FILE).
                let bare: MasterKeyRef = format!("pkcs11:token={TOKEN};object=kek-open")
                    .parse()
                    .unwrap();
                let from_env = open_kek(&bare).await.unwrap();
                assert_same_key(from_env.as_ref(), opened.as_ref()).await;

                // A missing module is Unavailable, and names the module.
                let e = open_err(
                open_kek(
                    &format!("pkcs11:token={TOKEN};object=kek-open?module-path=/nonexistent/libnope.so")
                        .parse()
                        .unwrap(),
                )
                .await,
            );
                assert_eq!(
                    e.to_string(),
                    "PKCS#11 module /nonexistent/libnope.so not found"
                );
                assert!(matches!(&e, OpenKekError::Kek(KekError::Unavailable(_))));
            },
        );
    }
}

// ---------------------------------------------------------------------------
// Vault / OpenBao transit.

#[cfg(feature = "vault")]
mod vault {
    use encstore::open::open_kek_with;
    use encstore_vault::VaultError;
    use encstore_vault::testing::{TestVault, server, unique_name};

    use super::*;

    fn options(v: &TestVault) -> KekOptions {
        KekOptions::new().vault(v.config())
    }

    #[tokio::test]
    async fn vault_create_open_and_typed_errors() {
        let Some(v) = server("vault_create_open_and_typed_errors") else {
            return;
        };
        let name = unique_name("encstore-open-kek");
        let uri: MasterKeyUri = v.uri(&name).parse().unwrap();
        assert_eq!(uri.scheme(), KekScheme::HcVault);
        let master = MasterKeyRef::Uri(uri.clone());

        let e = open_err(open_kek_with(&master, &options(&v)).await);
        assert!(
            matches!(&e, OpenKekError::Kek(k) if matches!(k.downcast_ref::<VaultError>(), Some(VaultError::KeyNotFound { .. }))),
            "{e:?}"
        );
        assert!(!format!("{e} {e:?}").contains(&v.token));

        let created = encstore::open::create_master_key_with(&uri, &options(&v))
            .await
            .unwrap();
        // What create-master-key promises: aes256-gcm96, not exportable.
        let info: serde_json::Value = serde_json::from_str(&v.bao_ok(&[
            "read",
            "-format=json",
            &format!("transit/keys/{name}"),
        ]))
        .unwrap();
        assert_eq!(info["data"]["type"], "aes256-gcm96", "{info}");
        assert_eq!(info["data"]["exportable"], false, "{info}");

        let e = open_err(encstore::open::create_master_key_with(&uri, &options(&v)).await);
        assert!(
            matches!(&e, OpenKekError::Kek(k) if matches!(k.downcast_ref::<VaultError>(), Some(VaultError::KeyExists { .. }))),
            "{e:?}"
        );

        let opened = open_kek_with(&master, &options(&v)).await.unwrap();
        assert_same_key(created.as_ref(), opened.as_ref()).await;
        let w = opened.wrap(b"k", b"").await.unwrap();
        assert!(w.starts_with(b"vault:v1:"));

        // The environment path (VAULT_TOKEN, VAULT_CACERT), as the tool
        // reads it, in a child process that has exactly those.
        run_child(
            "vault::child_vault_from_env",
            &[
                ("VAULT_TOKEN", &v.token),
                ("VAULT_CACERT", v.ca_cert.to_str().unwrap()),
                ("ENCSTORE_TEST_URI", uri.as_str()),
                ("ENCSTORE_TEST_WRAPPED", std::str::from_utf8(&w).unwrap()),
            ],
        );
        // And without a token there, a clear error that names the variable.
        run_child(
            "vault::child_vault_without_token",
            &[
                ("VAULT_TOKEN", ""),
                ("BAO_TOKEN", ""),
                ("ENCSTORE_TEST_URI", uri.as_str()),
            ],
        );
        v.bao_ok(&[
            "write",
            &format!("transit/keys/{name}/config"),
            "deletion_allowed=true",
        ]);
        v.bao_ok(&["delete", &format!("transit/keys/{name}")]);
    }

    #[tokio::test]
    #[ignore = "run by vault_create_open_and_typed_errors in a child process"]
    async fn child_vault_from_env() {
        if !is_child() {
            return;
        }
        let uri = std::env::var("ENCSTORE_TEST_URI").unwrap();
        let wrapped = std::env::var("ENCSTORE_TEST_WRAPPED").unwrap();
        let kek = open_kek(&uri.parse().unwrap()).await.unwrap();
        assert_eq!(kek.unwrap(wrapped.as_bytes(), b"").await.unwrap(), b"k");
    }

    #[tokio::test]
    #[ignore = "run by vault_create_open_and_typed_errors in a child process"]
    async fn child_vault_without_token() {
        if !is_child() {
            return;
        }
        let uri = std::env::var("ENCSTORE_TEST_URI").unwrap();
        let e = open_err(open_kek(&uri.parse().unwrap()).await);
        assert!(
            matches!(&e, OpenKekError::Kek(k) if matches!(k.downcast_ref::<VaultError>(), Some(VaultError::NoToken))),
            "{e:?}"
        );
        assert!(e.to_string().contains("VAULT_TOKEN"), "{e}");
    }
}

// ---------------------------------------------------------------------------
// AWS KMS (moto), with the `aws-kms` feature.

#[cfg(feature = "aws-kms")]
mod aws_kms {
    use encstore::open::open_kek_with;
    use encstore_awskms::AwsKmsError;
    use encstore_awskms::testing::server;

    use super::*;

    #[tokio::test]
    async fn aws_kms_open_from_options_and_environment() {
        let Some(kms) = server("aws_kms_open_from_options_and_environment") else {
            return;
        };
        let master: MasterKeyRef = kms.key_uri.parse().unwrap();
        let by_alias: MasterKeyRef = kms.alias_uri.parse().unwrap();
        let opts = KekOptions::new().aws_kms(kms.config());
        let key = open_kek_with(&master, &opts).await.unwrap();
        let alias = open_kek_with(&by_alias, &opts).await.unwrap();
        assert_same_key(key.as_ref(), alias.as_ref()).await;

        // A user without permission: typed, and no secret in the message.
        let denied = KekOptions::new()
            .aws_kms(kms.config_as(&kms.denied_access_key_id, &kms.denied_secret_access_key));
        let e = open_err(open_kek_with(&master, &denied).await);
        assert!(
            matches!(&e, OpenKekError::Kek(k) if matches!(k.downcast_ref::<AwsKmsError>(), Some(AwsKmsError::AccessDenied { .. }))),
            "{e:?}"
        );
        assert!(!format!("{e} {e:?}").contains(&kms.denied_secret_access_key));

        let w = key.wrap(b"k", b"").await.unwrap();
        run_child(
            "aws_kms::child_aws_kms_from_env",
            &[
                ("AWS_ACCESS_KEY_ID", &kms.access_key_id),
                ("AWS_SECRET_ACCESS_KEY", &kms.secret_access_key),
                ("AWS_ENDPOINT_URL_KMS", &kms.endpoint),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("ENCSTORE_TEST_URI", &kms.key_uri),
                ("ENCSTORE_TEST_WRAPPED", &hex(&w)),
            ],
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[tokio::test]
    #[ignore = "run by aws_kms_open_from_options_and_environment in a child process"]
    async fn child_aws_kms_from_env() {
        if !is_child() {
            return;
        }
        let uri = std::env::var("ENCSTORE_TEST_URI").unwrap();
        let w = std::env::var("ENCSTORE_TEST_WRAPPED").unwrap();
        let w: Vec<u8> = (0..w.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&w[i..i + 2], 16).unwrap())
            .collect();
        let kek = open_kek(&uri.parse().unwrap()).await.unwrap();
        assert_eq!(kek.unwrap(&w, b"").await.unwrap(), b"k");
    }
}
