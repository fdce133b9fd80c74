//! `encstore store ...`: commands on an encrypted store, and the store
//! check behind `disable-key`/`destroy-key`/`delete-key --store`.
//!
//! Every operation is the library's: locations open with
//! [`encstore::open::open_store`], `rewrap` is
//! [`EncryptedStorage::reencrypt_all`] (with its dry run
//! [`EncryptedStorage::reencrypt_plan`]), `verify` is
//! [`EncryptedStorage::verify_all`], `status` is
//! [`EncryptedStorage::census`] and the retire check is
//! [`encstore::retirement_check`]. This module parses, prints and shows
//! progress:
//!
//! - [`objects`]: `put`, `get`, `ls`, `rm`, `stat`;
//! - [`status`]: the census table;
//! - [`rewrap`] and [`verify`]: the runs over every object, with
//!   [`progress`] (the indicatif bar or plain lines, Ctrl-C, the stop
//!   messages and the failure breakdown);
//! - [`retire`]: the store check of the retire commands.
//!
//! A backend that stops answering, Ctrl-C (exit status 130) and a lost
//! rewrap lock stop `rewrap` and `verify` with true counts (the objects in
//! flight finish first); see the library's documentation of
//! `reencrypt_all`.

pub mod objects;
pub mod progress;
pub mod retire;
pub mod rewrap;
pub mod rewrap_deks;
pub mod status;
pub mod verify;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use encstore::open::{OpenStoreError, OpenStoreOptions, StoreLocation};
use encstore::{EncryptedStorage, LoadError, Options, Policy, ReloadableKeyset};
use encstore_core::{Error, ShownKey, Storage};
use encstore_tink::keyset::{Keyset, PrimitiveKind};

pub use self::progress::Interrupted;
use crate::cli::{StoreCommand, StoreKeysetArgs};
use crate::commands::note;
use crate::keysets;
use crate::text::sh;

/// Runs one `store` subcommand.
pub async fn run(command: StoreCommand) -> Result<()> {
    match command {
        StoreCommand::Put(c) => objects::put(&c).await,
        StoreCommand::Get(c) => objects::get(&c).await,
        StoreCommand::Ls(c) => objects::ls(&c).await,
        StoreCommand::Rm(c) => objects::rm(&c).await,
        StoreCommand::Stat(c) => objects::stat(&c).await,
        StoreCommand::Status(c) => status::status(&c).await,
        StoreCommand::Rewrap(c) => rewrap::rewrap(&c).await,
        StoreCommand::RewrapDeks(c) => rewrap_deks::rewrap_deks(&c).await,
        StoreCommand::Verify(c) => verify::verify(&c).await,
    }
}

/// Opens the backend at `location` with the library's
/// [`encstore::open::open_store`]. `create` allows a missing directory to
/// be created (for writes, with a warning: a mistyped `--store` must not
/// silently start a second store); reads of a missing directory fail
/// clearly instead of silently showing an empty store.
pub async fn open_backend(location: &StoreLocation, create: bool) -> Result<Arc<dyn Storage>> {
    if create
        && let StoreLocation::Directory(path) = location
        && !path.as_os_str().is_empty()
        && std::fs::symlink_metadata(path).is_err()
    {
        note(&format!(
            "warning: store {} does not exist; creating a new, empty store there (if you meant an existing store, check the --store path or ENCSTORE_STORE)",
            path.display()
        ));
    }
    encstore::open::open_store(location, &OpenStoreOptions::read().create(create))
        .await
        .map_err(|e| match e {
            OpenStoreError::Missing { .. } => {
                anyhow!("{e} (check the --store path or ENCSTORE_STORE)")
            }
            e => anyhow!("{e}"),
        })
}

/// The encrypted store at `location` with the `--keyset`, the
/// `--streaming-keyset` (if any) and `--policy` of `args`.
pub async fn open_store(
    location: &StoreLocation,
    args: &StoreKeysetArgs,
    allow_plaintext: bool,
    create: bool,
) -> Result<EncryptedStorage> {
    let keys = open_keys(args).await?;
    let backend = open_backend(location, create).await?;
    let options = Options::new().allow_plaintext(allow_plaintext);
    Ok(EncryptedStorage::with_options(
        backend,
        Arc::new(keys),
        options,
    ))
}

/// The keysets of `args` (the AEAD keyset and, with `--streaming-keyset`,
/// the streaming keyset, both unwrapped with the same master key),
/// checked against `--policy`.
pub async fn open_keys(args: &StoreKeysetArgs) -> Result<ReloadableKeyset> {
    let policy = args
        .policy
        .as_ref()
        .map(|p| p.policy.clone())
        .unwrap_or_default();
    let master = keysets::open_master(&args.master).await?;
    let keyset = read_keyset_file(&args.keyset, args.keyset_format, master.as_ref()).await?;
    let shown = args.keyset.display();
    if keyset.primitive() == PrimitiveKind::StreamingAead {
        bail!(
            "keyset {shown} holds streaming AEAD keys: give it as --streaming-keyset, and an AEAD keyset (for small objects) as --keyset"
        );
    }
    let streaming = match &args.streaming_keyset {
        Some(spath) => Some((
            read_keyset_file(spath, args.streaming_keyset_format, master.as_ref()).await?,
            spath.as_path(),
        )),
        None => None,
    };
    load_keys(&keyset, &args.keyset, streaming, policy).await
}

/// `keyset` (from the file `path`) and the streaming keyset (if any) as
/// one handle checked against `policy`. KMS envelope keys open their
/// master keys from their `kek_uri`, with the configuration from the
/// environment (`VAULT_TOKEN`, `AWS_*`, ...).
async fn load_keys(
    keyset: &Keyset,
    path: &Path,
    streaming: Option<(Keyset, &Path)>,
    policy: Policy,
) -> Result<ReloadableKeyset> {
    let shown = path.display();
    if let Some((s, spath)) = &streaming
        && s.primitive() != PrimitiveKind::StreamingAead
    {
        bail!(
            "streaming keyset {} holds AEAD keys, not streaming AEAD keys: create one with a streaming template (such as `encstore create-keyset --key-template AES256_GCM_HKDF_1MB`; see `encstore list-key-templates`)",
            spath.display()
        );
    }
    ReloadableKeyset::new_with_master_keys(
        keyset,
        streaming.as_ref().map(|(s, _)| s),
        policy,
        Arc::new(encstore::UriResolver::new()),
        encstore_tink::envelope::EnvelopeOptions::default(),
    )
    .await
    .map_err(|e| match (e, &streaming) {
        (LoadError::Streaming(inner), Some((_, spath))) => {
            anyhow!("streaming keyset {}: {inner}", spath.display())
        }
        (e @ LoadError::KeyIdCollision { .. }, Some((_, spath))) => {
            anyhow!(
                "keyset {shown} and streaming keyset {}: {e}",
                spath.display()
            )
        }
        (e, _) => anyhow!("keyset {shown}: {e}"),
    })
}

/// Reads the keyset file `path` (in `format`, or detected) and unwraps it
/// with `master`.
async fn read_keyset_file(
    path: &Path,
    format: Option<crate::cli::Format>,
    master: Option<&keysets::Master>,
) -> Result<Keyset> {
    let bytes = crate::io::read_input_secret(Some(path), "keyset")?;
    let format = keysets::format_of(&bytes, format);
    keysets::load(
        &bytes,
        format,
        master,
        &format!("keyset {}", path.display()),
        "--keyset-format",
    )
    .await
}

/// `keyset` (and the streaming keyset, if any) at full strength (every
/// key type Tink supports) over `backend`: what `stat --keyset` reads
/// with.
pub async fn with_keyset(
    backend: &Arc<dyn Storage>,
    keyset: &Keyset,
    streaming: Option<(Keyset, &Path)>,
    path: &Path,
) -> Result<EncryptedStorage> {
    let keys = load_keys(keyset, path, streaming, Policy::tink()).await?;
    Ok(EncryptedStorage::new(Arc::clone(backend), Arc::new(keys)))
}

/// One line for a storage error on `key`, distinguishing "not found" and
/// authentication failures (the library's messages already say which).
pub fn object_error(key: &str, location: &StoreLocation, e: &Error) -> anyhow::Error {
    match e {
        Error::NotFound { .. } => anyhow!("{} not found in store {location}", ShownKey(key)),
        other => anyhow!("{other}"),
    }
}

/// The core message of a KeyNotEnabled error names the keyset as
/// `KEYSET`; the CLI knows the file.
pub fn with_keyset_path(msg: &str, keyset: &Path) -> String {
    let p = sh(&keyset.display().to_string());
    msg.replace("--in KEYSET --out KEYSET", &format!("--in {p} --out {p}"))
}

/// A key or prefix as typed, without its trailing slashes (`certs/` names
/// the prefix `certs`).
pub fn trim_slash(key: &str) -> &str {
    key.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn open_err(l: &str) -> String {
        let location: StoreLocation = match l.parse() {
            Ok(l) => l,
            Err(e) => return e.to_string(),
        };
        match open_backend(&location, false).await {
            Ok(_) => panic!("{l} opened"),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn locations() {
        assert!(
            open_err("ftp://host/x")
                .await
                .contains("unsupported scheme")
        );
        assert!(
            open_err("ftp://host/x")
                .await
                .contains("gs://bucket/prefix")
        );
        assert!(open_err("file://rel/path").await.contains("absolute path"));
        assert!(open_err("").await.contains("empty"));
        let e = open_err("/nonexistent/encstore/store").await;
        assert!(
            e.contains("does not exist (check the --store path or ENCSTORE_STORE)"),
            "{e}"
        );
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url: StoreLocation = format!("file://{}", d.path().display())
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(open_backend(&url, false).await.is_ok());
    }

    /// Every object-store scheme reaches encstore-objstore.
    #[tokio::test]
    async fn object_store_schemes_route_to_objstore() {
        for l in ["memory:///", "memory:///some/prefix"] {
            let location: StoreLocation = l.parse().unwrap_or_else(|e| panic!("{e}"));
            assert!(open_backend(&location, false).await.is_ok(), "{l}");
        }
        for l in [
            "s3://bucket/a?x=1",
            "gs://bucket/a?x=1",
            "az://container/a?x=1",
        ] {
            let e = open_err(l).await;
            assert!(e.contains("query or a fragment"), "{l}: {e}");
            assert!(!e.contains("unsupported scheme"), "{l}: {e}");
        }
    }
}
