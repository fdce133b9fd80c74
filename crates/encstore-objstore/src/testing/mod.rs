//! Test helpers (cargo feature `test-util`; enable it in dev-dependencies
//! only). For tests against a real S3 server (any crate's): where the server is,
//! or a printed notice that the test is skipped, and [`proxy::Proxy`], a
//! loopback proxy in front of it that can ignore conditional writes or die.
//!
//! Not part of the stable API.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod proxy;

/// The test server's `(endpoint, bucket)` from `ENCSTORE_S3_ENDPOINT` and
/// `ENCSTORE_S3_BUCKET` (default `encstore-test`), as set by
/// `eval "$(bash scripts/seaweedfs.sh start)"`.
///
/// Without a server: prints `SKIPPED: …` straight to stderr (past the test
/// harness's capture, so a plain `cargo test` shows it) and returns `None`
/// — unless `ENCSTORE_REQUIRE_SERVICES=1` (the full test command), where it
/// panics, so the suite can never skip silently.
pub fn server(test: &str) -> Option<(String, String)> {
    let endpoint = std::env::var("ENCSTORE_S3_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty());
    let bucket = std::env::var("ENCSTORE_S3_BUCKET").unwrap_or_else(|_| "encstore-test".to_owned());
    match endpoint {
        Some(e) => Some((e, bucket)),
        None if std::env::var("ENCSTORE_REQUIRE_SERVICES").as_deref() == Ok("1") => panic!(
            "{test}: ENCSTORE_REQUIRE_SERVICES=1 but ENCSTORE_S3_ENDPOINT is unset; \
             start the server with: eval \"$(bash scripts/seaweedfs.sh start)\""
        ),
        None => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test}: needs an S3 server; ENCSTORE_S3_ENDPOINT and the AWS_* \
                 credentials are set by: eval \"$(bash scripts/seaweedfs.sh start)\""
            );
            None
        }
    }
}
