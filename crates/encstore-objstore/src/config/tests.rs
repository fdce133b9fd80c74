use std::sync::Arc;

use encstore_core::Error;
use object_store::memory::InMemory;
use secrecy::ExposeSecret;

use super::s3::is_aws_endpoint;
use super::*;

/// The default retries give up on a dead endpoint within seconds:
/// even with the longest back-off the jitter can pick, the sleeps add
/// up to under 4 s (object_store's own default allows about a minute).
#[test]
fn default_retries_give_up_within_seconds() {
    let r = default_retry();
    let mut worst = Duration::ZERO;
    let mut next = r.backoff.init_backoff;
    for _ in 0..r.max_retries {
        worst += next;
        next = next.mul_f64(r.backoff.base).min(r.backoff.max_backoff);
    }
    assert!(worst < Duration::from_secs(4), "{worst:?}");
    assert!(r.retry_timeout <= Duration::from_secs(15));
    assert!(r.max_retries >= 3, "transient failures are still retried");
}

#[test]
fn aws_endpoints_are_recognised() {
    for e in [
        "https://s3.us-east-1.amazonaws.com",
        "https://bucket.s3.eu-west-1.amazonaws.com/",
        "https://s3.cn-north-1.amazonaws.com.cn",
        "https://S3.AMAZONAWS.COM",
    ] {
        assert!(is_aws_endpoint(e), "{e}");
    }
    for e in [
        "http://127.0.0.1:8333",
        "https://amazonaws.com.evil.example",
        "https://s3.amazonaws.community",
        "https://account.r2.cloudflarestorage.com",
        "not a url",
    ] {
        assert!(!is_aws_endpoint(e), "{e}");
    }
}

#[test]
fn completion_trust_follows_the_endpoint_and_the_setting() {
    let build = |endpoint: Option<&str>, mode| {
        let mut b = S3StorageBuilder::new("b")
            .credentials("id", "secret", None)
            .allow_http(true)
            .conditional_completion(mode);
        if let Some(e) = endpoint {
            b = b.endpoint(e);
        }
        b.build().unwrap().inner.completion
    };
    use CompletionSupport::{Trusted, Untrusted};
    use ConditionalCompletion::{Auto, Disabled, Enabled};
    assert_eq!(build(None, Auto), Trusted);
    assert_eq!(
        build(Some("https://s3.us-west-2.amazonaws.com"), Auto),
        Trusted
    );
    assert_eq!(build(Some("http://127.0.0.1:8333"), Auto), Untrusted);
    assert_eq!(build(Some("http://127.0.0.1:8333"), Enabled), Trusted);
    assert_eq!(build(None, Disabled), Untrusted);
    let mem = ObjectStorageBuilder::new(Arc::new(InMemory::new()))
        .conditional_completion(Enabled)
        .build()
        .unwrap();
    assert_eq!(mem.inner.completion, CompletionSupport::NoConnector);
}

#[test]
fn part_sizes_are_checked() {
    let s3 = |part| {
        S3StorageBuilder::new("b")
            .credentials("id", "secret", None)
            .part_size(part)
            .build()
    };
    assert!(s3(MIN_PART_SIZE).is_ok());
    let e = s3(MIN_PART_SIZE - 1).unwrap_err().to_string();
    assert!(e.contains("below the 5 MiB"), "{e}");
    let e = s3(MAX_PART_SIZE + 1).unwrap_err().to_string();
    assert!(e.contains("outside 1 byte..=5 GiB"), "{e}");
    let mem = |part, conc| {
        ObjectStorageBuilder::new(Arc::new(InMemory::new()))
            .part_size(part)
            .upload_concurrency(conc)
            .build()
    };
    assert!(mem(1024, 1).is_ok(), "any store may take small parts");
    assert!(mem(0, 1).is_err());
    assert!(mem(1024, 0).is_err());
    assert!(mem(1024, 65).is_err());
    assert!(
        UrlStorageBuilder::new("memory:///p")
            .part_size(1024)
            .build()
            .is_ok()
    );
}

#[test]
fn builder_debug_hides_credentials() {
    let b = S3StorageBuilder::new("bucket").prefix("p").credentials(
        "AKIDEXAMPLE",
        "s3cr3t-key",
        Some("session-tok".into()),
    );
    let dbg = format!("{b:?}");
    assert!(!dbg.contains("s3cr3t-key"), "{dbg}");
    assert!(!dbg.contains("session-tok"), "{dbg}");
    assert!(!dbg.contains("AKIDEXAMPLE"), "{dbg}");
    assert_eq!(
        dbg,
        "S3StorageBuilder { bucket: \"bucket\", prefix: \"p\", endpoint: None, region: None, \
         credentials: \"static (redacted)\", allow_http: None, lease: 60s, \
         request_timeout: None, .. }"
    );
    // Options are secrets too, and an endpoint's user info is dropped.
    let b = S3StorageBuilder::new("bucket")
        .endpoint("https://user:pa55word@example.com:9000/")
        .option("aws_session_token", "tok-in-an-option");
    let dbg = format!("{b:?}");
    assert!(!dbg.contains("pa55word") && !dbg.contains("user"), "{dbg}");
    assert!(!dbg.contains("tok-in-an-option"), "{dbg}");
    assert!(dbg.contains("https://example.com:9000"), "{dbg}");
}

#[test]
fn secret_is_held_as_a_secret() {
    let b = S3StorageBuilder::new("b").credentials("id", "the-secret", None);
    let c = b.credentials.as_ref().unwrap();
    // SecretString's own Debug redacts.
    assert!(!format!("{:?}", c.secret_access_key).contains("the-secret"));
    assert_eq!(c.secret_access_key.expose_secret(), "the-secret");
}

#[test]
fn invalid_prefix_and_lease_are_refused() {
    match S3StorageBuilder::new("b").prefix("a/../b").build() {
        Err(Error::InvalidKey { .. }) => {}
        other => panic!("expected InvalidKey, got {other:?}"),
    }
    match S3StorageBuilder::new("b").prefix(".encstore-locks").build() {
        Err(Error::InvalidKey { .. }) => {}
        other => panic!("expected InvalidKey, got {other:?}"),
    }
    for lease in [
        Duration::ZERO,
        Duration::from_millis(99),
        Duration::from_secs(86_401),
    ] {
        let r = S3StorageBuilder::new("b")
            .credentials("id", "s", None)
            .lease_duration(lease)
            .build();
        match r {
            Err(Error::Backend { source, .. }) => {
                assert!(source.to_string().contains("lease"), "{source}")
            }
            other => panic!("lease {lease:?}: expected a refusal, got {other:?}"),
        }
    }
    let r = UrlStorageBuilder::new("memory:///p")
        .lease_duration(Duration::MAX)
        .build();
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn plain_http_needs_allow_http() {
    let r = S3StorageBuilder::new("b")
        .endpoint("http://127.0.0.1:1")
        .credentials("id", "s", None)
        .build();
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("AWS_ALLOW_HTTP=true"), "{msg}");
    assert!(msg.contains("http://127.0.0.1:1"), "{msg}");
    S3StorageBuilder::new("b")
        .endpoint("http://127.0.0.1:1")
        .credentials("id", "s", None)
        .allow_http(true)
        .build()
        .unwrap();
    S3StorageBuilder::new("b")
        .endpoint("https://127.0.0.1:1")
        .credentials("id", "s", None)
        .build()
        .unwrap();
}

#[test]
fn custom_endpoint_without_credentials_names_the_variables() {
    let msg = S3StorageBuilder::new("b")
        .endpoint("https://minio.example:9000")
        .build()
        .unwrap_err()
        .to_string();
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert!(msg.contains(var), "{msg}");
    }
    assert!(msg.contains("no S3 credentials"), "{msg}");
    let msg = S3StorageBuilder::new("b")
        .option("aws_access_key_id", "id")
        .build()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("AWS_SECRET_ACCESS_KEY is not"), "{msg}");
}

#[test]
fn urls_are_parsed_by_object_store() {
    let s = UrlStorageBuilder::new("memory:///a/b/").build().unwrap();
    assert_eq!(s.prefix(), "a/b");
    assert_eq!(s.backend(), "memory");
    let s = S3StorageBuilder::new("x")
        .credentials("id", "s", None)
        .build()
        .unwrap();
    assert_eq!(s.bucket(), Some("x"));
    for bad in [
        "b/p",
        "s3://",
        "file:///x",
        "s3://user@b/p",
        "s3://user:pw@b/p",
        "s3://b/p?x=1",
        "s3://b:99/p",
        "https://example.com/b",
        "s3://b/a/../c",
    ] {
        let r = UrlStorageBuilder::new(bad).build();
        assert!(r.is_err(), "{bad:?} should be refused: {r:?}");
        let msg = r.unwrap_err().to_string();
        assert!(!msg.contains("pw@") && !msg.contains("user"), "{msg}");
    }
}

#[cfg(feature = "gcs")]
#[test]
fn gcs_locations_open_through_object_store() {
    let s = UrlStorageBuilder::new("gs://my-bucket/tls/prod/")
        .build()
        .unwrap();
    assert_eq!(s.backend(), "gcs");
    assert_eq!(s.bucket(), Some("my-bucket"));
    assert_eq!(s.prefix(), "tls/prod");
    assert_eq!(s.address(), "https://storage.googleapis.com");
    assert_eq!(
        s.object_store().to_string(),
        "GoogleCloudStorage(my-bucket)"
    );
}

#[cfg(feature = "azure")]
#[test]
fn azure_locations_open_through_object_store() {
    let s = UrlStorageBuilder::new("az://my-container/tls")
        .option("azure_storage_account_name", "myaccount")
        .option("azure_storage_account_key", "c2VjcmV0LWtleQ==")
        .build()
        .unwrap();
    assert_eq!(s.backend(), "azure");
    assert_eq!(s.bucket(), Some("my-container"));
    assert_eq!(s.prefix(), "tls");
    assert_eq!(s.address(), "https://myaccount.blob.core.windows.net");
    assert!(!format!("{s:?}").contains("c2VjcmV0LWtleQ"));
    let s = UrlStorageBuilder::new("az://c/p")
        .option("azure_storage_use_emulator", "true")
        .build()
        .unwrap();
    assert_eq!(s.address(), "http://127.0.0.1:10000");
    // An unknown option is refused, not ignored.
    let r = UrlStorageBuilder::new("az://c/p")
        .option("azure_no_such_option", "x")
        .build();
    assert!(r.is_err(), "{r:?}");
}

#[cfg(not(feature = "gcs"))]
#[test]
fn gcs_without_its_feature_is_unsupported() {
    match UrlStorageBuilder::new("gs://bucket/p").build() {
        Err(Error::Unsupported {
            backend: "gcs",
            reason,
            ..
        }) => {
            assert!(reason.contains("`gcs` cargo feature"), "{reason}")
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[cfg(not(feature = "azure"))]
#[test]
fn azure_without_its_feature_is_unsupported() {
    assert!(matches!(
        UrlStorageBuilder::new("az://container/p").build(),
        Err(Error::Unsupported {
            backend: "azure",
            ..
        })
    ));
}
