//! A small secret server: `PUT /secrets/NAME` stores the request body,
//! `GET /secrets/NAME` returns it, `DELETE /secrets/NAME` removes it. Every
//! secret is encrypted at rest through [`EncryptedStorage`] over the
//! filesystem backend. `SIGHUP` reloads the keyset file; a failed reload
//! keeps the old keyset and logs why.
//!
//! Admin endpoints show that a server does what the `encstore` tool does,
//! through the library:
//!
//! - `POST /admin/reencrypt` starts
//!   [`EncryptedStorage::reencrypt_all`] in the background (what `encstore
//!   store rewrap` runs) while clients keep reading and writing; it logs
//!   its progress, and `GET /admin/reencrypt` shows it as JSON
//!   (`running`, `done`, `total`, and the last run's counts). SIGTERM
//!   cancels a run cleanly (the objects in flight finish) before exiting.
//! - `GET /admin/census` is the key census (`encstore store status`).
//!
//! ```sh
//! secret-server --listen 127.0.0.1:8080 --keyset keysets/dev.json --data /tmp/secrets
//! curl -X PUT --data-binary @key.pem http://127.0.0.1:8080/secrets/example.com.key
//! kill -HUP $(pidof secret-server)   # after rotating keysets/dev.json
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use encstore::{
    CancellationToken, EncryptedStorage, KeysetSource, Policy, ReencryptEvent, ReencryptOptions,
    ReencryptOutcome, ReloadableKeyset,
};
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

/// The background re-encryption: whether one runs, its progress, and the
/// last run's result.
#[derive(Default)]
struct Reencryption {
    running: bool,
    done: u64,
    total: u64,
    last: Option<serde_json::Value>,
}

/// What the request handlers share.
struct App {
    store: Arc<EncryptedStorage>,
    reencryption: Arc<Mutex<Reencryption>>,
    /// Cancelled on SIGTERM: a background run stops cleanly.
    shutdown: CancellationToken,
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(status, format!("{v}\n"))
}

/// Starts `reencrypt_all` in the background, unless one runs already.
fn start_reencryption(app: &App) -> Response<Full<Bytes>> {
    {
        let mut r = app.reencryption.lock().unwrap_or_else(|e| e.into_inner());
        if r.running {
            return respond(StatusCode::CONFLICT, "a re-encryption is running\n");
        }
        *r = Reencryption {
            running: true,
            last: r.last.take(),
            ..Reencryption::default()
        };
    }
    let state = Arc::clone(&app.reencryption);
    let events = Arc::clone(&app.reencryption);
    let store = Arc::clone(&app.store);
    let options = ReencryptOptions::new()
        .concurrency(8)
        .cancel(app.shutdown.clone())
        .on_event(move |event| {
            let mut r = events.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                ReencryptEvent::WaitingForLock { lock, .. } => {
                    tracing::info!(lock, "re-encryption waits for another run");
                }
                ReencryptEvent::Started { total } => {
                    r.total = *total;
                    tracing::info!(total, "re-encryption started");
                }
                ReencryptEvent::Object { key, outcome } => {
                    r.done += 1;
                    if let ReencryptOutcome::Failed { reason, .. } = outcome {
                        tracing::warn!(key, %reason, "object left untouched");
                    }
                    if r.done.is_multiple_of(1000) {
                        tracing::info!(done = r.done, total = r.total, "re-encryption progress");
                    }
                }
                ReencryptEvent::Stopping { reason, in_flight } => {
                    tracing::warn!(?reason, in_flight, "re-encryption stopping");
                }
                _ => {}
            }
        });
    tokio::spawn(async move {
        let result = store.reencrypt_all("", &options).await;
        let last = match result {
            Ok(s) => {
                tracing::info!(
                    objects = s.objects,
                    reencrypted = s.reencrypted,
                    failed = s.failures.len(),
                    "re-encryption finished"
                );
                serde_json::json!({
                    "objects": s.objects,
                    "reencrypted": s.reencrypted,
                    "already_current": s.already_current,
                    "deleted": s.deleted,
                    "failed": s.failures.iter().map(|f| f.key.clone()).collect::<Vec<_>>(),
                    "primary_key_id": s.primary_key_id,
                    "stopped": s.stopped.map(|r| format!("{r:?}")),
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "re-encryption did not run");
                serde_json::json!({ "error": e.to_string() })
            }
        };
        let mut r = state.lock().unwrap_or_else(|e| e.into_inner());
        r.running = false;
        r.last = Some(last);
    });
    respond(StatusCode::ACCEPTED, "re-encryption started\n")
}

async fn admin(app: &App, method: &Method, path: &str) -> Response<Full<Bytes>> {
    match (method, path) {
        (&Method::POST, "reencrypt") => start_reencryption(app),
        (&Method::GET, "reencrypt") => {
            let r = app.reencryption.lock().unwrap_or_else(|e| e.into_inner());
            json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "running": r.running,
                    "done": r.done,
                    "total": r.total,
                    "last": r.last,
                }),
            )
        }
        (&Method::GET, "census") => match app.store.census("").await {
            Ok(c) => json_response(
                StatusCode::OK,
                &serde_json::to_value(&c).unwrap_or_default(),
            ),
            Err(e) => {
                tracing::error!(error = %e, "census failed");
                respond(StatusCode::INTERNAL_SERVER_ERROR, format!("{}\n", e.kind()))
            }
        },
        _ => respond(
            StatusCode::NOT_FOUND,
            "try POST /admin/reencrypt, GET /admin/reencrypt or GET /admin/census\n",
        ),
    }
}

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(path) = req.uri().path().strip_prefix("/admin/") {
        return admin(&app, req.method(), path).await;
    }
    let store = Arc::clone(&app.store);
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
    let app = Arc::new(App {
        store,
        reencryption: Arc::default(),
        shutdown: CancellationToken::new(),
    });

    // SIGTERM: a background re-encryption stops cleanly (its objects in
    // flight finish, its lock is released), then the server exits.
    let mut term = signal(SignalKind::terminate())?;
    let on_term = Arc::clone(&app);
    tokio::spawn(async move {
        if term.recv().await.is_some() {
            on_term.shutdown.cancel();
            while on_term
                .reencryption
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .running
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            std::process::exit(0);
        }
    });

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
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let app = Arc::clone(&app);
                async move { Ok::<_, std::convert::Infallible>(handle(app, req).await) }
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
