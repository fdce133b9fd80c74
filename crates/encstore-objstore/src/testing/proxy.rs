//! A loopback HTTP proxy in front of the real S3 server (SeaweedFS), for
//! two simulations:
//!
//! - **A server that ignores conditional writes** (`strip_conditions`):
//!   the proxy drops `If-Match` and `If-None-Match` from every request and
//!   forwards the rest, so the server applies every `PUT` unconditionally,
//!   exactly like an S3-compatible server that accepts the headers and
//!   ignores them. object_store signs every header (SigV4 over all but
//!   `authorization`, `content-length` and `user-agent`), so a request with
//!   headers removed would fail SeaweedFS's signature check; the proxy
//!   therefore re-signs each forwarded request with the test credentials
//!   from the environment (object_store's own `AwsAuthorizer`), as the
//!   server itself would have accepted them. Re-signing is also needed in
//!   pass-through mode, because the signed `Host` changes.
//! - **A server that dies**: [`Proxy::stop`] closes the listener and every
//!   open connection, so clients see resets and then refused connections.
//! - **A server that honours conditional `PUT`s but not conditional
//!   multipart completions** ([`Proxy::start_stripping_completions`]): the
//!   conditions are dropped from `POST ?uploadId=` requests only.
//! - **A response cut short** ([`Proxy::cut_next_get`]): the next `GET` of
//!   a matching path sends only its first bytes under the full
//!   `Content-Length`, then the connection closes, as a reset mid-body
//!   would.
//!
//! It logs every request (method, path, query, condition, range, bytes
//! each way), so tests can count what reached the server and what crossed
//! the wire.
//!
//! Test code only (feature `test-util`): it panics on setup failures and
//! re-signs with the credentials of the environment.
#![allow(dead_code, clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::object_store::aws::{AwsAuthorizer, AwsCredential};
use crate::object_store::client::HttpRequestBody;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::task::AbortHandle;

/// One request as it reached the proxy.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The HTTP method.
    pub method: String,
    /// The request path (bucket and object).
    pub path: String,
    /// Whether it carried `If-Match` or `If-None-Match`.
    pub conditional: bool,
    /// The query string (`uploadId=…`, `partNumber=…`), empty if none.
    pub query: String,
    /// Its `Range` header.
    pub range: Option<String>,
    /// Its `If-Match` header.
    pub if_match: Option<String>,
    /// The request body's length.
    pub request_bytes: usize,
    /// The response body's length as sent to the client (after any cut).
    pub response_bytes: usize,
    /// The response status.
    pub status: u16,
}

struct Ctx {
    upstream: String,
    strip: bool,
    /// Strip the conditions of multipart completions only.
    strip_completions: bool,
    /// The next `GET` whose path contains `.0` sends only `.1` bytes.
    cut: Mutex<Option<(String, usize)>>,
    credential: AwsCredential,
    region: String,
    client: reqwest::Client,
    log: Mutex<Vec<Logged>>,
}

/// A running proxy; stopped on drop.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    ctx: Arc<Ctx>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://host:port`), with the
    /// credentials from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`.
    pub async fn start(upstream: &str, strip_conditions: bool) -> Proxy {
        Self::start_with(upstream, strip_conditions, false).await
    }

    /// Starts a proxy that drops `If-Match` and `If-None-Match` from
    /// multipart completions (`POST ?uploadId=`) only.
    pub async fn start_stripping_completions(upstream: &str) -> Proxy {
        Self::start_with(upstream, false, true).await
    }

    async fn start_with(upstream: &str, strip_conditions: bool, strip_completions: bool) -> Proxy {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ctx = Arc::new(Ctx {
            upstream: upstream.trim_end_matches('/').to_owned(),
            strip: strip_conditions,
            strip_completions,
            cut: Mutex::new(None),
            credential: AwsCredential {
                key_id: std::env::var("AWS_ACCESS_KEY_ID").unwrap(),
                secret_key: std::env::var("AWS_SECRET_ACCESS_KEY").unwrap(),
                token: None,
            },
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned()),
            client: reqwest::Client::builder().build().unwrap(),
            log: Mutex::new(Vec::new()),
        });
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let ctx = Arc::clone(&ctx);
            let tasks = Arc::clone(&tasks);
            tokio::spawn(async move {
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        return;
                    };
                    let ctx = Arc::clone(&ctx);
                    let conn = tokio::spawn(async move {
                        let svc = service_fn(move |req| handle(req, Arc::clone(&ctx)));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(sock), svc)
                            .await;
                    });
                    tasks.lock().unwrap().push(conn.abort_handle());
                }
            })
        };
        tasks.lock().unwrap().push(accept.abort_handle());
        Proxy {
            endpoint: format!("http://{addr}"),
            addr,
            ctx,
            tasks,
        }
    }

    /// Closes the listener and every connection: the "server" is gone.
    pub fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Everything that reached the proxy so far.
    pub fn log(&self) -> Vec<Logged> {
        self.ctx.log.lock().unwrap().clone()
    }

    /// Cuts the response to the next `GET` whose path contains `needle`
    /// after `bytes` bytes of its body.
    pub fn cut_next_get(&self, needle: &str, bytes: usize) {
        *self.ctx.cut.lock().unwrap() = Some((needle.to_owned(), bytes));
    }

    /// How many requests touched a path containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log()
            .iter()
            .filter(|l| l.path.contains(needle))
            .count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn handle(req: Request<Incoming>, ctx: Arc<Ctx>) -> Result<Response<ProxyBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(status(400)),
    };
    let conditional =
        parts.headers.contains_key("if-match") || parts.headers.contains_key("if-none-match");
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .map(|v| v.to_str().unwrap_or("").to_owned())
    };
    let query = parts.uri.query().unwrap_or("").to_owned();
    let completion =
        parts.method == hyper::Method::POST && query.split('&').any(|q| q.starts_with("uploadId="));
    let cut = if parts.method == hyper::Method::GET {
        let mut cut = ctx.cut.lock().unwrap();
        match cut.as_ref() {
            Some((needle, n)) if parts.uri.path().contains(needle.as_str()) => {
                let n = *n;
                *cut = None;
                Some(n)
            }
            _ => None,
        }
    } else {
        None
    };
    let index = {
        let mut log = ctx.log.lock().unwrap();
        log.push(Logged {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            conditional,
            query,
            range: header("range"),
            if_match: header("if-match"),
            request_bytes: body.len(),
            response_bytes: 0,
            status: 0,
        });
        log.len() - 1
    };
    let url = format!(
        "{}{}",
        ctx.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut out = http::Request::builder()
        .method(parts.method.clone())
        .uri(&url)
        .body(HttpRequestBody::from(body.clone()))
        .unwrap();
    for (name, value) in &parts.headers {
        let n = name.as_str();
        let hop_or_signature = matches!(
            n,
            "host"
                | "authorization"
                | "x-amz-date"
                | "x-amz-content-sha256"
                | "content-length"
                | "connection"
                | "keep-alive"
                | "transfer-encoding"
        );
        let condition = matches!(n, "if-match" | "if-none-match");
        if hop_or_signature || ((ctx.strip || (ctx.strip_completions && completion)) && condition) {
            continue;
        }
        out.headers_mut().append(name.clone(), value.clone());
    }
    AwsAuthorizer::new(&ctx.credential, "s3", &ctx.region)
        .try_authorize(&mut out, None)
        .unwrap();
    let mut forward = ctx.client.request(parts.method, &url).body(body);
    for (name, value) in out.headers() {
        forward = forward.header(name, value);
    }
    let resp = match forward.send().await {
        Ok(r) => r,
        Err(_) => return Ok(status(502)),
    };
    let mut back = Response::builder().status(resp.status().as_u16());
    for (name, value) in resp.headers() {
        if !matches!(
            name.as_str(),
            "connection" | "keep-alive" | "transfer-encoding"
        ) {
            back = back.header(name, value);
        }
    }
    let status = resp.status().as_u16();
    let mut bytes = resp.bytes().await.unwrap_or_default();
    let body = match cut {
        Some(n) => {
            // The upstream Content-Length stays; the body fails after `n`
            // bytes, so the server side drops the connection mid-body.
            bytes.truncate(n);
            let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
                Ok(Frame::data(bytes.clone())),
                Err(std::io::Error::other("cut by the test proxy")),
            ];
            BoxBody::new(StreamBody::new(futures_util::stream::iter(frames)))
        }
        None => full(bytes.clone()),
    };
    if let Some(l) = ctx.log.lock().unwrap().get_mut(index) {
        l.response_bytes = bytes.len();
        l.status = status;
    }
    Ok(back.body(body).unwrap())
}

/// The keys of the incomplete multipart uploads under `prefix` in
/// `bucket` at `endpoint` (S3 `ListMultipartUploads`, signed with the test
/// credentials from the environment).
pub async fn incomplete_uploads(endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let credential = AwsCredential {
        key_id: std::env::var("AWS_ACCESS_KEY_ID").unwrap(),
        secret_key: std::env::var("AWS_SECRET_ACCESS_KEY").unwrap(),
        token: None,
    };
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
    let mut url = url::Url::parse(&format!("{}/{bucket}", endpoint.trim_end_matches('/'))).unwrap();
    url.query_pairs_mut()
        .append_pair("uploads", "")
        .append_pair("prefix", prefix);
    let mut req = http::Request::builder()
        .method("GET")
        .uri(url.as_str())
        .body(HttpRequestBody::from(Bytes::new()))
        .unwrap();
    AwsAuthorizer::new(&credential, "s3", &region)
        .try_authorize(&mut req, None)
        .unwrap();
    let mut get = reqwest::Client::new().get(url.as_str());
    for (name, value) in req.headers() {
        get = get.header(name, value);
    }
    let resp = get.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "ListMultipartUploads: {status} {text}");
    text.split("<Upload>")
        .skip(1)
        .filter_map(|u| {
            let k = u.split_once("<Key>")?.1;
            Some(k.split_once("</Key>")?.0.to_owned())
        })
        .collect()
}

/// The proxy's response body: whole, or cut short.
type ProxyBody = BoxBody<Bytes, std::io::Error>;

fn full(bytes: Bytes) -> ProxyBody {
    BoxBody::new(Full::new(bytes).map_err(|never| match never {}))
}

fn status(code: u16) -> Response<ProxyBody> {
    Response::builder()
        .status(code)
        .body(full(Bytes::new()))
        .unwrap()
}
