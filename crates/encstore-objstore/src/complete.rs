//! Conditional completion of S3 multipart uploads.
//!
//! S3 checks `If-None-Match: *` and `If-Match: <ETag>` on
//! `CompleteMultipartUpload`, the request that makes a multipart upload
//! visible (AWS S3 since 2024; SeaweedFS, MinIO and R2 too). That is the
//! compare-and-swap of a streamed write: the parts are uploaded first,
//! invisibly, and the condition is checked when the object appears.
//!
//! `object_store` 0.14 offers no way to ask for it: its `MultipartUpload`
//! completes unconditionally (`CompleteMultipartMode::Overwrite`), and
//! `PutMultipartOptions` has no `PutMode`. It does send every request
//! through the store's [`HttpConnector`], so the S3 stores this crate
//! builds get [`ConditionConnector`]: an HTTP service that, while a
//! [`CompletionCondition`] is in scope for the task
//! ([`complete_with`]), adds the condition header to the
//! `POST …?uploadId=…` request that completes the upload, and to nothing
//! else. Outside such a scope it forwards every request untouched.
//!
//! The header is added after signing, as `object_store` itself adds
//! `If-None-Match` to the completions of its copy-if-not-exists; S3 only
//! requires `x-amz-*` headers to be signed.
//!
//! Whether the server *honours* the header is checked once per store handle
//! by the multipart stage of the probe (`probe.rs`); until it passed,
//! conditional streamed writes never rely on this.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService,
    ReqwestConnector,
};
use object_store::{MultipartUpload, PutResult};
use reqwest::header::{HeaderName, HeaderValue, IF_MATCH, IF_NONE_MATCH};

tokio::task_local! {
    /// The condition the current task's multipart completion carries.
    static CONDITION: CompletionCondition;
}

/// The header a completion carries, and how many completion requests it was
/// sent on (object_store retries a completion that timed out or failed with
/// a 5xx; a retried conditional completion that then fails its condition
/// may have been applied by the first attempt).
#[derive(Clone, Debug)]
pub(crate) struct CompletionCondition {
    header: HeaderName,
    value: HeaderValue,
    attempts: Arc<AtomicUsize>,
}

impl CompletionCondition {
    /// `If-None-Match: *`: complete only if the key does not exist.
    pub(crate) fn absent() -> Self {
        Self::new(IF_NONE_MATCH, HeaderValue::from_static("*"))
    }

    /// `If-Match: <e_tag>`: complete only if the object is at that ETag.
    /// `None` for an ETag that is not a valid header value.
    pub(crate) fn matches(e_tag: &str) -> Option<Self> {
        HeaderValue::from_str(e_tag)
            .ok()
            .map(|v| Self::new(IF_MATCH, v))
    }

    fn new(header: HeaderName, value: HeaderValue) -> Self {
        CompletionCondition {
            header,
            value,
            attempts: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// How a conditional completion went.
pub(crate) struct Completed {
    /// The completion's result.
    pub(crate) result: object_store::Result<PutResult>,
    /// How many completion requests carried the condition: 0 means the
    /// header was never sent (the store is not one of ours), more than 1
    /// that object_store retried the completion.
    pub(crate) attempts: usize,
}

/// Completes `upload` with `condition` on its completion request.
pub(crate) async fn complete_with(
    upload: &mut dyn MultipartUpload,
    condition: CompletionCondition,
) -> Completed {
    let attempts = Arc::clone(&condition.attempts);
    let result = CONDITION.scope(condition, upload.complete()).await;
    Completed {
        result,
        attempts: attempts.load(Ordering::SeqCst),
    }
}

/// The connector of the S3 stores this crate builds: `object_store`'s own
/// reqwest connector, wrapped in [`ConditionService`].
#[derive(Debug, Default)]
pub(crate) struct ConditionConnector {
    inner: ReqwestConnector,
}

impl HttpConnector for ConditionConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(ConditionService {
            inner: self.inner.connect(options)?,
        }))
    }
}

/// Adds the task's [`CompletionCondition`] to multipart completions.
#[derive(Debug)]
struct ConditionService {
    inner: HttpClient,
}

/// Whether `req` completes a multipart upload: `POST` with an `uploadId`
/// query parameter (`POST ?uploads` creates one and has none).
fn is_completion(req: &HttpRequest) -> bool {
    req.method() == reqwest::Method::POST
        && req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("uploadId=")))
}

#[async_trait]
impl HttpService for ConditionService {
    async fn call(&self, mut req: HttpRequest) -> Result<HttpResponse, HttpError> {
        if is_completion(&req) {
            let _ = CONDITION.try_with(|c| {
                c.attempts.fetch_add(1, Ordering::SeqCst);
                req.headers_mut().insert(c.header.clone(), c.value.clone());
            });
        }
        self.inner.execute(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::client::HttpRequestBody;

    fn req(method: &str, uri: &str) -> HttpRequest {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(HttpRequestBody::from(bytes::Bytes::new()))
            .unwrap()
    }

    #[test]
    fn only_completions_are_recognised() {
        assert!(is_completion(&req("POST", "http://h/b/k?uploadId=abc")));
        assert!(is_completion(&req("POST", "http://h/b/k?x=1&uploadId=abc")));
        assert!(!is_completion(&req("POST", "http://h/b/k?uploads")));
        assert!(!is_completion(&req("POST", "http://h/b/k?uploads=")));
        assert!(!is_completion(&req(
            "PUT",
            "http://h/b/k?partNumber=1&uploadId=abc"
        )));
        assert!(!is_completion(&req("DELETE", "http://h/b/k?uploadId=abc")));
        assert!(!is_completion(&req("POST", "http://h/b/uploadId=k")));
    }

    #[test]
    fn conditions_build_their_headers() {
        let a = CompletionCondition::absent();
        assert_eq!(
            (a.header.as_str(), a.value.to_str().unwrap()),
            ("if-none-match", "*")
        );
        let m = CompletionCondition::matches("\"abc-2\"").unwrap();
        assert_eq!(
            (m.header.as_str(), m.value.to_str().unwrap()),
            ("if-match", "\"abc-2\"")
        );
        assert!(CompletionCondition::matches("bad\nvalue").is_none());
    }
}
