//! `AwsKmsKek` against moto's KMS emulator (started by `scripts/moto.sh`
//! with SigV4 signature checking on). moto is an emulator, not AWS: where it
//! differs from AWS the test says so. Each test makes its own keys.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use encstore_awskms::testing::{self, TestKms};
use encstore_awskms::{AwsKmsConfig, AwsKmsError, AwsKmsKek};
use encstore_core::{Kek, KekError};
use encstore_tink::KeysetEncoding;
use encstore_tink::keyset::Keyset;

/// A fresh symmetric key in `region`; returns its `aws-kms://` URI.
async fn new_key(t: &TestKms, region: &str) -> String {
    let admin = t.admin(region).await;
    let meta = admin.create_key().send().await.unwrap();
    format!("aws-kms://{}", meta.key_metadata().unwrap().arn().unwrap())
}

fn arn(uri: &str) -> &str {
    uri.strip_prefix("aws-kms://").unwrap()
}

/// The bare key ID (moto's DisableKey and friends fail on an ARN).
fn key_id(uri: &str) -> &str {
    uri.rsplit_once(":key/").unwrap().1
}

/// Checks that nothing printable about `e` shows a secret, and that the
/// message is one line.
fn check_message(t: &TestKms, e: &AwsKmsError) {
    let all = format!("{e} {e:?}");
    assert!(!all.contains(&t.secret_access_key), "secret leaked: {all}");
    assert!(
        !all.contains(&t.denied_secret_access_key),
        "secret leaked: {all}"
    );
    assert!(!e.to_string().contains('\n'), "multi-line message: {e}");
}

async fn open_err(uri: &str, config: AwsKmsConfig) -> AwsKmsError {
    AwsKmsKek::open_with(uri, config).await.unwrap_err()
}

#[tokio::test]
async fn wrap_unwrap_round_trip_with_key_and_alias_arns() {
    let Some(t) = testing::server("wrap_unwrap_round_trip_with_key_and_alias_arns") else {
        return;
    };
    let by_key = AwsKmsKek::open_with(&t.key_uri, t.config()).await.unwrap();
    let by_alias = AwsKmsKek::open_with(&t.alias_uri, t.config())
        .await
        .unwrap();
    assert_eq!(
        format!("{by_key:?}"),
        format!(
            "AwsKmsKek {{ uri: {:?}, region: \"us-east-1\", endpoint: Some({:?}) }}",
            t.key_uri, t.endpoint
        )
    );
    for (pt, ad) in [
        (&b"serialized keyset"[..], &b""[..]),
        (b"serialized keyset", b"keyset associated data"),
        (&[0u8, 0xff][..], &[0u8, 0xff, 0x10][..]),
        (&[7u8; 4096][..], b"big"),
    ] {
        let w1 = by_key.wrap(pt, ad).await.unwrap();
        let w2 = by_alias.wrap(pt, ad).await.unwrap();
        assert_ne!(w1, w2);
        // The alias names the same key, so each reads the other's.
        assert_eq!(by_key.unwrap(&w2, ad).await.unwrap(), pt);
        assert_eq!(by_alias.unwrap(&w1, ad).await.unwrap(), pt);
        assert_eq!(by_key.unwrap(&w1, ad).await.unwrap(), pt);
    }
}

#[tokio::test]
async fn associated_data_is_tinks_encryption_context() {
    let Some(t) = testing::server("associated_data_is_tinks_encryption_context") else {
        return;
    };
    let uri = new_key(&t, &t.region).await;
    let kek = AwsKmsKek::open_with(&uri, t.config()).await.unwrap();
    let admin = t.admin(&t.region).await;
    let decrypt = |ct: Vec<u8>, ctx: Option<HashMap<String, String>>| {
        let admin = admin.clone();
        let key = arn(&uri).to_owned();
        async move {
            admin
                .decrypt()
                .key_id(key)
                .ciphertext_blob(Blob::new(ct))
                .set_encryption_context(ctx)
                .send()
                .await
                .map(|o| o.plaintext().unwrap().as_ref().to_vec())
        }
    };
    let ctx = |v: &str| Some(HashMap::from([("associatedData".to_owned(), v.to_owned())]));

    // encstore's ciphertext opens with exactly {"associatedData": lowercase hex}.
    let w = kek.wrap(b"keyset", b"\x00AD\xfe").await.unwrap();
    assert_eq!(
        decrypt(w.clone(), ctx("004144fe")).await.unwrap(),
        b"keyset"
    );
    assert!(decrypt(w.clone(), ctx("004144FE")).await.is_err());
    assert!(decrypt(w.clone(), None).await.is_err());
    let other_name = Some(HashMap::from([(
        "additionalData".to_owned(),
        "004144fe".to_owned(),
    )]));
    assert!(decrypt(w, other_name).await.is_err());
    // Empty associated data: no encryption context at all.
    let w = kek.wrap(b"keyset", b"").await.unwrap();
    assert_eq!(decrypt(w.clone(), None).await.unwrap(), b"keyset");
    assert!(decrypt(w, ctx("")).await.is_err());

    // And encstore reads what the SDK wrapped that way.
    let made = admin
        .encrypt()
        .key_id(arn(&uri))
        .plaintext(Blob::new(b"from the sdk".to_vec()))
        .set_encryption_context(ctx("6164"))
        .send()
        .await
        .unwrap();
    let blob = made.ciphertext_blob().unwrap().as_ref().to_vec();
    assert_eq!(kek.unwrap(&blob, b"ad").await.unwrap(), b"from the sdk");
}

#[tokio::test]
async fn wrong_associated_data_tampering_and_other_keys_fail() {
    let Some(t) = testing::server("wrong_associated_data_tampering_and_other_keys_fail") else {
        return;
    };
    let a = AwsKmsKek::open_with(&new_key(&t, &t.region).await, t.config())
        .await
        .unwrap();
    let b = AwsKmsKek::open_with(&new_key(&t, &t.region).await, t.config())
        .await
        .unwrap();
    let w = a.wrap(b"keyset", b"ad").await.unwrap();
    let auth =
        |r: Result<Vec<u8>, KekError>| assert!(matches!(r, Err(KekError::Authentication)), "{r:?}");
    auth(a.unwrap(&w, b"other").await);
    auth(a.unwrap(&w, b"").await);
    let mut t1 = w.clone();
    let last = t1.len() - 1;
    t1[last] ^= 1;
    auth(a.unwrap(&t1, b"ad").await);
    let mut t2 = w.clone();
    t2[45] ^= 0x80;
    auth(a.unwrap(&t2, b"ad").await);
    assert_eq!(a.unwrap(&w, b"ad").await.unwrap(), b"keyset");

    // A ciphertext of another key: AWS answers IncorrectKeyException
    // (Authentication); moto answers AccessDeniedException with no message.
    // Either way nothing is returned.
    let e = b.decrypt(&w, b"ad").await.unwrap_err();
    check_message(&t, &e);
    assert!(
        matches!(
            e,
            AwsKmsError::Authentication | AwsKmsError::AccessDenied { .. }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn rejected_credentials_and_denied_access() {
    let Some(t) = testing::server("rejected_credentials_and_denied_access") else {
        return;
    };
    // A wrong secret: signature checking refuses it (moto: 403 + XML body).
    let e = open_err(
        &t.key_uri,
        t.config_as(&t.access_key_id, "wrong-secret-SENTINEL"),
    )
    .await;
    check_message(&t, &e);
    assert!(!format!("{e} {e:?}").contains("wrong-secret-SENTINEL"));
    assert!(
        matches!(&e, AwsKmsError::CredentialsRejected { code, .. } if code == "SignatureDoesNotMatch"),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with(&format!(
            "AWS KMS (us-east-1, endpoint {}) refused the credentials (SignatureDoesNotMatch): The request signature we calculated does not match",
            t.endpoint
        )),
        "{e}"
    );
    assert!(matches!(KekError::from(e), KekError::Unavailable(_)));
    // An access key ID nobody issued.
    let e = open_err(&t.key_uri, t.config_as("AKIAENCSTORE00000000", "x")).await;
    assert!(
        matches!(&e, AwsKmsError::CredentialsRejected { code, .. } if code == "InvalidClientTokenId"),
        "{e:?}"
    );
    // Valid credentials whose user has no KMS permission.
    let e = open_err(
        &t.key_uri,
        t.config_as(&t.denied_access_key_id, &t.denied_secret_access_key),
    )
    .await;
    check_message(&t, &e);
    assert!(
        matches!(
            &e,
            AwsKmsError::AccessDenied {
                operation: "kms:DescribeKey",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .ends_with("; the IAM or key policy must allow kms:DescribeKey"),
        "{e}"
    );
}

#[tokio::test]
async fn missing_disabled_and_unsuitable_keys() {
    let Some(t) = testing::server("missing_disabled_and_unsuitable_keys") else {
        return;
    };
    let admin = t.admin(&t.region).await;
    let account = arn(&t.key_uri).split(':').nth(4).unwrap().to_owned();
    // No such key, no such alias.
    let missing = format!(
        "aws-kms://arn:aws:kms:us-east-1:{account}:key/00000000-0000-4000-8000-000000000000"
    );
    let e = open_err(&missing, t.config()).await;
    check_message(&t, &e);
    assert!(matches!(e, AwsKmsError::KeyNotFound { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "AWS KMS (us-east-1, endpoint {}): key {} not found (",
            t.endpoint,
            arn(&missing)
        )),
        "{e}"
    );
    let e = open_err(
        &format!("aws-kms://arn:aws:kms:us-east-1:{account}:alias/no-such-alias"),
        t.config(),
    )
    .await;
    assert!(matches!(e, AwsKmsError::KeyNotFound { .. }), "{e:?}");

    // The region is the ARN's: the shared key does not exist in us-west-2.
    let e = open_err(&t.key_uri.replace(":us-east-1:", ":us-west-2:"), t.config()).await;
    assert!(matches!(e, AwsKmsError::KeyNotFound { .. }), "{e:?}");
    // A key made in us-west-2 is found there.
    let west = new_key(&t, "us-west-2").await;
    assert!(west.contains(":us-west-2:"));
    let kek = AwsKmsKek::open_with(&west, t.config()).await.unwrap();
    let w = kek.wrap(b"k", b"").await.unwrap();
    assert_eq!(kek.unwrap(&w, b"").await.unwrap(), b"k");

    // Disabled. (moto, unlike AWS, still encrypts with a disabled key, so
    // encstore checks the key state when it opens the key.)
    let uri = new_key(&t, &t.region).await;
    admin
        .disable_key()
        .key_id(key_id(&uri))
        .send()
        .await
        .unwrap();
    let e = open_err(&uri, t.config()).await;
    check_message(&t, &e);
    assert!(matches!(e, AwsKmsError::KeyDisabled { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "AWS KMS (us-east-1, endpoint {}): key {} is disabled; enable it (aws kms enable-key) to use it",
            t.endpoint,
            arn(&uri)
        )
    );
    admin
        .enable_key()
        .key_id(key_id(&uri))
        .send()
        .await
        .unwrap();
    AwsKmsKek::open_with(&uri, t.config()).await.unwrap();

    // Pending deletion.
    admin
        .schedule_key_deletion()
        .key_id(key_id(&uri))
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let e = open_err(&uri, t.config()).await;
    assert!(
        matches!(&e, AwsKmsError::KeyInvalidState { state, .. } if state == "PendingDeletion"),
        "{e:?}"
    );

    // An asymmetric key cannot be a Tink KMS AEAD.
    let rsa = admin
        .create_key()
        .key_spec(KeySpec::Rsa2048)
        .key_usage(KeyUsageType::EncryptDecrypt)
        .send()
        .await
        .unwrap();
    let rsa = format!("aws-kms://{}", rsa.key_metadata().unwrap().arn().unwrap());
    let e = open_err(&rsa, t.config()).await;
    assert!(matches!(e, AwsKmsError::KeyUnsuitable { .. }), "{e:?}");
    assert!(
        e.to_string().ends_with(
            "cannot wrap keysets: it is a RSA_2048 key for ENCRYPT_DECRYPT, not a SYMMETRIC_DEFAULT key for ENCRYPT_DECRYPT"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn unreachable_endpoints_fail_within_the_timeouts() {
    let Some(t) = testing::server("unreachable_endpoints_fail_within_the_timeouts") else {
        return;
    };
    // A closed port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = t
        .config()
        .endpoint_url(format!("http://127.0.0.1:{closed}"))
        .connect_timeout(Duration::from_secs(1))
        .attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5));
    let start = Instant::now();
    let e = open_err(&t.key_uri, config).await;
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    check_message(&t, &e);
    assert!(matches!(e, AwsKmsError::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "AWS KMS (us-east-1, endpoint http://127.0.0.1:{closed}) is unreachable: "
        )),
        "{e}"
    );
    assert!(matches!(KekError::from(e), KekError::Unavailable(_)));

    // A server that accepts connections and never answers: bounded by the
    // attempt and operation timeouts, never a hang.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = t
        .config()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_secs(1))
        .attempt_timeout(Duration::from_millis(800))
        .operation_timeout(Duration::from_secs(3));
    let start = Instant::now();
    let e = open_err(&t.key_uri, config).await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(8), "{took:?}");
    // At least one attempt timed out.
    assert!(took >= Duration::from_millis(750), "{took:?}");
    assert!(matches!(e, AwsKmsError::Timeout { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "AWS KMS (us-east-1, endpoint http://127.0.0.1:{port}) did not answer in time (each attempt may take 0.8 s, the whole call 3 s)"
        )
    );
    drop(silent);
}

#[tokio::test]
async fn keysets_round_trip_through_the_aws_kek() {
    let Some(t) = testing::server("keysets_round_trip_through_the_aws_kek") else {
        return;
    };
    let kek = AwsKmsKek::open_with(&t.alias_uri, t.config())
        .await
        .unwrap();
    let template = encstore_tink::templates::by_name("AES128_GCM").unwrap();
    let ks = Keyset::generate(&template).unwrap();
    for ad in [&b""[..], b"keyset ad"] {
        let json = ks
            .write_with_kek(KeysetEncoding::Json, &kek, ad)
            .await
            .unwrap();
        let back = Keyset::read_with_kek(&json, &kek, ad).await.unwrap();
        assert_eq!(*back.to_json_insecure(), *ks.to_json_insecure());
    }
    let json = ks
        .write_with_kek(KeysetEncoding::Json, &kek, b"a")
        .await
        .unwrap();
    assert!(Keyset::read_with_kek(&json, &kek, b"b").await.is_err());
}

// ----------------------------------------------------------------- env

const CHILD_VAR: &str = "ENCSTORE_AWSKMS_TEST_CHILD";

/// Runs `test` again with exactly these AWS variables (every other `AWS_*`
/// removed), so `AwsKmsKek::open` uses the SDK's standard chain.
fn run_child(test: &str, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, test)
        // No instance metadata lookups (and their timeouts) on this machine.
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") && k != "AWS_EC2_METADATA_DISABLED" {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {test} {env:?} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}

async fn child_body() {
    let uri = std::env::var("ENCSTORE_AWSKMS_TEST_URI").unwrap();
    let expect = std::env::var("ENCSTORE_AWSKMS_TEST_EXPECT").unwrap();
    match (expect.as_str(), AwsKmsKek::open(&uri).await) {
        ("ok", Ok(kek)) => {
            let w = kek.wrap(b"from env", b"ad").await.unwrap();
            assert_eq!(kek.unwrap(&w, b"ad").await.unwrap(), b"from env");
        }
        ("no-credentials", Err(e @ AwsKmsError::NoCredentials { .. })) => {
            assert!(
                e.to_string()
                    .starts_with("no AWS credentials: set AWS_ACCESS_KEY_ID"),
                "{e}"
            );
        }
        ("rejected", Err(AwsKmsError::CredentialsRejected { .. })) => {}
        ("unreachable", Err(AwsKmsError::Unreachable { .. })) => {}
        (want, got) => panic!("expected {want}, got {got:?}"),
    }
}

#[tokio::test]
async fn configuration_from_the_standard_chain() {
    if std::env::var(CHILD_VAR).as_deref() == Ok("configuration_from_the_standard_chain") {
        child_body().await;
        return;
    }
    let Some(t) = testing::server("configuration_from_the_standard_chain") else {
        return;
    };
    let home = tempfile_dir();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let test = "configuration_from_the_standard_chain";
    let home_s = home.to_str().unwrap().to_owned();
    let run = |expect: &str, env: &[(&str, &str)]| {
        let mut all = vec![
            ("ENCSTORE_AWSKMS_TEST_URI", t.key_uri.as_str()),
            ("ENCSTORE_AWSKMS_TEST_EXPECT", expect),
            ("HOME", home_s.as_str()),
        ];
        all.extend_from_slice(env);
        run_child(test, &all);
    };
    let id = t.access_key_id.as_str();
    let secret = t.secret_access_key.as_str();
    let ep = t.endpoint.as_str();
    // Environment credentials, the KMS-specific endpoint variable.
    run(
        "ok",
        &[
            ("AWS_ACCESS_KEY_ID", id),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_ENDPOINT_URL_KMS", ep),
        ],
    );
    // The generic endpoint variable.
    run(
        "ok",
        &[
            ("AWS_ACCESS_KEY_ID", id),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_ENDPOINT_URL", ep),
        ],
    );
    // The KMS-specific one wins over the generic one.
    run(
        "ok",
        &[
            ("AWS_ACCESS_KEY_ID", id),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_ENDPOINT_URL", &closed),
            ("AWS_ENDPOINT_URL_KMS", ep),
        ],
    );
    run(
        "unreachable",
        &[
            ("AWS_ACCESS_KEY_ID", id),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_ENDPOINT_URL_KMS", &closed),
        ],
    );
    // A profile in a shared credentials file.
    let creds = home.join("credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = AKIANOTTHISONE000000\naws_secret_access_key = nope\n\n[encstore]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"
        ),
    )
    .unwrap();
    let creds_s = creds.to_str().unwrap();
    run(
        "ok",
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", creds_s),
            ("AWS_PROFILE", "encstore"),
            ("AWS_ENDPOINT_URL_KMS", ep),
        ],
    );
    run(
        "rejected",
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", creds_s),
            ("AWS_ENDPOINT_URL_KMS", ep),
        ],
    );
    // Nothing at all.
    run("no-credentials", &[("AWS_ENDPOINT_URL_KMS", ep)]);
    std::fs::remove_dir_all(&home).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("encstore-awskms-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
