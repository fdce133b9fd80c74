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
//!
//! It logs every request (method, path, whether it carried a condition),
//! so tests can count what reached the server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;
use tokio::task::AbortHandle;

/// One request as it reached the proxy.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The HTTP method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// Whether it carried `If-Match` or `If-None-Match`.
    pub conditional: bool,
}

struct Ctx {
    upstream: String,
    strip: bool,
    credential: AwsCredential,
    region: String,
    client: reqwest::Client,
    log: Mutex<Vec<Logged>>,
}

/// A running proxy; stopped on drop. `Debug` shows the endpoint only
/// (never the credentials it re-signs with).
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
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ctx = Arc::new(Ctx {
            upstream: upstream.trim_end_matches('/').to_owned(),
            strip: strip_conditions,
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

    /// How many requests touched a path containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log()
            .iter()
            .filter(|l| l.path.contains(needle))
            .count()
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proxy({} -> {})", self.endpoint, self.ctx.upstream)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn handle(
    req: Request<Incoming>,
    ctx: Arc<Ctx>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(status(400)),
    };
    let conditional =
        parts.headers.contains_key("if-match") || parts.headers.contains_key("if-none-match");
    ctx.log.lock().unwrap().push(Logged {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        conditional,
    });
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
        if hop_or_signature || (ctx.strip && condition) {
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
    let bytes = resp.bytes().await.unwrap_or_default();
    Ok(back.body(Full::new(bytes)).unwrap())
}

fn status(code: u16) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::new()))
        .unwrap()
}
