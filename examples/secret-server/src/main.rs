//! A small secret server: `PUT /secrets/NAME` stores the request body,
//! `GET /secrets/NAME` returns it, `DELETE /secrets/NAME` removes it. Every
//! secret is encrypted at rest through [`EncryptedStorage`] over the
//! filesystem backend. `SIGHUP` reloads the keyset file; a failed reload
//! keeps the old keyset and logs why.
//!
//! ```sh
//! secret-server --listen 127.0.0.1:8080 --keyset keysets/dev.json --data /tmp/secrets
//! curl -X PUT --data-binary @key.pem http://127.0.0.1:8080/secrets/example.com.key
//! kill -HUP $(pidof secret-server)   # after rotating keysets/dev.json
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use encstore::{EncryptedStorage, KeysetSource, Policy, ReloadableKeyset};
use encstore_core::{Error, Storage};
use encstore_fs::FsStorage;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

struct Args {
    listen: SocketAddr,
    keyset: PathBuf,
    data: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut keyset = None;
    let mut data = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().map_err(|e| format!("--listen: {e}"))?),
            "--keyset" => keyset = Some(PathBuf::from(value)),
            "--data" => data = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        keyset: keyset.ok_or("--keyset PATH is required")?,
        data: data.ok_or("--data DIR is required")?,
    })
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn handle(store: Arc<EncryptedStorage>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(name) = req
        .uri()
        .path()
        .strip_prefix("/secrets/")
        .map(str::to_owned)
    else {
        return respond(StatusCode::NOT_FOUND, "try /secrets/NAME\n");
    };
    let method = req.method().clone();
    let result = match method {
        Method::PUT => match req.into_body().collect().await {
            Ok(body) => store
                .store(&name, body.to_bytes())
                .await
                .map(|_| Bytes::new()),
            Err(e) => return respond(StatusCode::BAD_REQUEST, format!("body: {e}\n")),
        },
        Method::GET => store.load(&name).await,
        Method::DELETE => store.delete(&name).await.map(|_| Bytes::new()),
        _ => return respond(StatusCode::METHOD_NOT_ALLOWED, "GET, PUT or DELETE\n"),
    };
    match result {
        Ok(body) => respond(StatusCode::OK, body),
        Err(e @ Error::NotFound { .. }) => respond(StatusCode::NOT_FOUND, format!("{e}\n")),
        Err(e @ Error::InvalidKey { .. }) => respond(StatusCode::BAD_REQUEST, format!("{e}\n")),
        Err(e) => {
            tracing::error!(error = %e, "request failed");
            respond(StatusCode::INTERNAL_SERVER_ERROR, format!("{}\n", e.kind()))
        }
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run().await {
        eprintln!("secret-server: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let keys = Arc::new(
        ReloadableKeyset::open(KeysetSource::cleartext(&args.keyset), Policy::default()).await?,
    );
    let backend = FsStorage::new(&args.data)?;
    let store = Arc::new(EncryptedStorage::new(Arc::new(backend), Arc::clone(&keys)));

    let mut hup = signal(SignalKind::hangup())?;
    let reload_keys = Arc::clone(&keys);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            // Success and failure are both logged by the keyset handle.
            let _ = reload_keys.reload().await;
        }
    });

    let listener = TcpListener::bind(args.listen).await?;
    // The test harness waits for this line.
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let store = Arc::clone(&store);
                async move { Ok::<_, std::convert::Infallible>(handle(store, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}
