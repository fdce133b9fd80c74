//! `encstore store ...`: commands on an encrypted store, and the store
//! check behind `disable-key`/`destroy-key`/`delete-key --store`.
//!
//! - Locations: a directory path or `file:///abs/path` (the filesystem
//!   backend), or `s3://bucket/prefix`, `gs://bucket/prefix`,
//!   `az://container/prefix` and `memory:///` (the object-store backend,
//!   `encstore_objstore`, when built with the `s3` feature, on by default).
//!   [`open_backend`] is the one place that maps a location to a backend.
//! - A backend that stops answering ([`Error::Unreachable`], after the
//!   backend's bounded retries) stops `rewrap` and `verify` at once, naming
//!   the address; the objects in flight finish first (or fail), so the
//!   counts printed are true. Ctrl-C does the same and exits with 130.
//! - `rewrap` holds the store-wide lock [`REWRAP_LOCK`] for its whole run.
//!   A second rewrap waits for it (printing that it waits), or fails at once
//!   with `--no-wait`. A rewrap killed with SIGKILL leaves the lock until its
//!   lease runs out (60 s on the filesystem backend; `ENCSTORE_LOCK_LEASE_SECS`
//!   overrides the lease, for tests and impatient operators: every process
//!   sharing a store must use the same lease; it is bounded by
//!   [`encstore_core::lease`], 0.1 s to 24 h).
//! - RAW keys: the census attributes prefix-less objects to the RAW key that
//!   decrypts them (the library's [`EncryptedStorage::census`]); objects
//!   that no RAW key decrypts while the keyset holds one are reported as
//!   "prefix-less, no enabled RAW key decrypts it", never as plaintext.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use encstore::{
    Census, EncryptedStorage, ObjectClass, Options, Policy, ReloadableKeyset, RewrapOutcome,
};
use encstore_core::{Error, KeyInfo, ShownKey, Storage};
use encstore_fs::FsStorage;
use encstore_tink::keyset::Keyset;
use serde_json::json;
use tokio::task::JoinSet;

use crate::cli::{
    KeyIdCommand, MasterKeyArgs, StoreCommand, StoreGet, StoreKeysetArgs, StoreLs, StorePut,
    StoreRewrap, StoreRm, StoreStat, StoreStatus, StoreVerify,
};
use crate::commands::note;
use crate::{io, keysets};

/// The name of the store-wide lock that `store rewrap` holds.
pub const REWRAP_LOCK: &str = "encstore-rewrap";

/// Overrides the lock lease of the filesystem backend, in seconds.
pub const ENV_LOCK_LEASE: &str = encstore_core::lease::ENV_LOCK_LEASE;

/// Runs one `store` subcommand.
pub async fn run(command: StoreCommand) -> Result<()> {
    match command {
        StoreCommand::Put(c) => put(&c).await,
        StoreCommand::Get(c) => get(&c).await,
        StoreCommand::Ls(c) => ls(&c).await,
        StoreCommand::Rm(c) => rm(&c).await,
        StoreCommand::Stat(c) => stat(&c).await,
        StoreCommand::Status(c) => status(&c).await,
        StoreCommand::Rewrap(c) => rewrap(&c).await,
        StoreCommand::Verify(c) => verify(&c).await,
    }
}

// ---------------------------------------------------------------------------
// Opening stores and keysets.

/// Opens the backend at `location`. `create` allows a missing directory to
/// be created (for writes); reads of a missing directory fail clearly
/// instead of silently showing an empty store.
pub fn open_backend(location: &str, create: bool) -> Result<Arc<dyn Storage>> {
    if OBJECT_STORE_SCHEMES
        .iter()
        .any(|s| location.starts_with(s) && location[s.len()..].starts_with("://"))
    {
        return open_objstore(location);
    }
    let path = if let Some(rest) = location.strip_prefix("file://") {
        if !rest.starts_with('/') {
            bail!(
                "store location {location:?}: a file: URL needs an absolute path (file:///abs/path)"
            );
        }
        PathBuf::from(rest)
    } else if let Some((scheme, _)) = location.split_once("://") {
        bail!(
            "store location {location:?}: unsupported scheme {scheme:?} (use a directory, file:///abs/path, s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or memory:///)"
        );
    } else {
        PathBuf::from(location)
    };
    if path.as_os_str().is_empty() {
        bail!("the store location is empty");
    }
    if !create && !path.is_dir() {
        if path.exists() {
            bail!("store {} is not a directory", path.display());
        }
        bail!(
            "store {} does not exist (check the --store path or ENCSTORE_STORE)",
            path.display()
        );
    }
    if create && std::fs::symlink_metadata(&path).is_err() {
        // A mistyped --store must not silently start a second store.
        note(&format!(
            "warning: store {} does not exist; creating a new, empty store there (if you meant an existing store, check the --store path or ENCSTORE_STORE)",
            path.display()
        ));
    }
    let mut builder = FsStorage::builder(&path);
    if let Some(lease) = lease_override()? {
        builder = builder.lease(lease);
    }
    let fs = builder
        .build()
        .map_err(|e| anyhow!("cannot open store {}: {e}", path.display()))?;
    Ok(Arc::new(fs))
}

/// The schemes of the object-store backend (`encstore_objstore`); `azure`
/// is object_store's other name for `az`.
const OBJECT_STORE_SCHEMES: [&str; 5] = ["s3", "gs", "az", "azure", "memory"];

#[cfg(feature = "s3")]
fn open_objstore(location: &str) -> Result<Arc<dyn Storage>> {
    let mut builder = encstore_objstore::ObjectStorage::url_builder(location);
    if let Some(lease) = encstore_core::lease::lease_from_env()
        .map_err(|e| anyhow!("{}: {e}", encstore_core::lease::ENV_LOCK_LEASE))?
    {
        builder = builder.lease_duration(lease);
    }
    let store = builder
        .build()
        .map_err(|e| anyhow!("cannot open store {location}: {e}"))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "s3"))]
fn open_objstore(location: &str) -> Result<Arc<dyn Storage>> {
    bail!(
        "store {location}: this location needs the object-store backend (this encstore was built without the `s3` feature)"
    )
}

/// The lease from `ENCSTORE_LOCK_LEASE_SECS`, bounded (0.1 s to 24 h) by
/// encstore-core; anything else is a clear error.
fn lease_override() -> Result<Option<Duration>> {
    encstore_core::lease::lease_from_env().map_err(|e| anyhow!("{ENV_LOCK_LEASE}: {e}"))
}

/// Parses `--policy NAME|PATH`.
pub(crate) fn policy(arg: Option<&str>) -> Result<Policy> {
    let Some(p) = arg else {
        return Ok(Policy::default());
    };
    let path = Path::new(p);
    if p.ends_with(".json") || p.contains('/') || path.is_file() {
        Policy::from_file(path).map_err(|e| anyhow!("policy {p}: {e}"))
    } else {
        Policy::preset(p).map_err(|e| anyhow!("{e}"))
    }
}

/// Reads the keyset a store command names, unwraps it (master keyset or
/// HSM) and checks it against the policy.
pub async fn open_keyset(args: &StoreKeysetArgs) -> Result<Keyset> {
    keysets::load_file(&args.keyset, args.keyset_format, &args.master).await
}

async fn open_store(
    location: &str,
    args: &StoreKeysetArgs,
    allow_plaintext: bool,
    create: bool,
) -> Result<EncryptedStorage> {
    let keyset = open_keyset(args).await?;
    let policy = policy(args.policy.as_deref())?;
    let keys = ReloadableKeyset::new(&keyset, policy)
        .map_err(|e| anyhow!("keyset {}: {e}", args.keyset.display()))?;
    let backend = open_backend(location, create)?;
    Ok(EncryptedStorage::with_options(
        backend,
        Arc::new(keys),
        Options {
            namespace: None,
            allow_plaintext,
        },
    ))
}

/// The census of `store` (at `location`) under `prefix`.
async fn census(store: &EncryptedStorage, prefix: &str, location: &str) -> Result<Census> {
    store
        .census(prefix)
        .await
        .map_err(|e| anyhow!("cannot take the census of {location}: {e}"))
}

/// Every key in `store` (at `location`).
async fn list_all(store: &EncryptedStorage, location: &str) -> Result<Vec<String>> {
    store
        .inner()
        .list("", true)
        .await
        .map_err(|e| anyhow!("cannot list {location}: {e}"))
}

/// One line for a storage error on `key`, distinguishing "not found" and
/// authentication failures (the library's messages already say which).
fn object_error(key: &str, location: &str, e: &Error) -> anyhow::Error {
    match e {
        Error::NotFound { .. } => anyhow!("{} not found in store {location}", ShownKey(key)),
        other => anyhow!("{other}"),
    }
}

// ---------------------------------------------------------------------------
// put, get, ls, rm, stat.

async fn put(c: &StorePut) -> Result<()> {
    let value = io::read_input_secret(c.input.as_deref(), "the value")?;
    put_bytes(&c.store.store, &c.keyset, &c.key, value).await
}

/// Stores `value` under `key` (also used by `quickstart`). The value is
/// wiped once the last reference to it (in the library, or on the blocking
/// pool) is dropped.
pub async fn put_bytes(
    location: &str,
    keyset: &StoreKeysetArgs,
    key: &str,
    value: zeroize::Zeroizing<Vec<u8>>,
) -> Result<()> {
    let store = open_store(location, keyset, false, true).await?;
    store
        .store(key, Bytes::from_owner(value))
        .await
        .map_err(|e| anyhow!("cannot store {} in {location}: {e}", ShownKey(key)))
}

async fn get(c: &StoreGet) -> Result<()> {
    let store = open_store(&c.store.store, &c.keyset, c.allow_plaintext, false).await?;
    let value = match store.load(&c.key).await {
        Ok(v) => v,
        Err(e) => {
            return Err(match explain_failure(&store, &c.key).await {
                Some(why) => anyhow!("{}: {why}", ShownKey(&c.key)),
                None => anyhow!(
                    "{}",
                    with_keyset_path(
                        &object_error(&c.key, &c.store.store, &e).to_string(),
                        &c.keyset.keyset
                    )
                ),
            });
        }
    };
    // The library hands the plaintext over without a copy; this takes the
    // buffer back (no copy when it is the only reference) to wipe it.
    let value = zeroize::Zeroizing::new(Vec::from(value));
    io::write_output(c.output.as_deref(), &value, "the value")
}

/// Why an object that failed to decrypt is not readable, when the census
/// classification explains it better than the decryption error: an object
/// without a known key prefix while the keyset holds RAW keys, or one under
/// a key that is not enabled. `None` otherwise (or when it cannot be read).
async fn explain_failure(store: &EncryptedStorage, key: &str) -> Option<String> {
    let object = store.inner().load(key).await.ok()?;
    let snap = store.keyset().snapshot();
    let ad = store.associated_data(key);
    let ids = snap
        .raw_key_ids()
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match snap.classify_object(&object, &ad) {
        ObjectClass::PrefixLessUnattributed => Some(format!(
            "prefix-less, no enabled RAW key decrypts it: it has no Tink prefix, and the keyset holds RAW key(s) {ids}, so it may be a ciphertext under a RAW key that was destroyed or removed; it is never taken as plaintext (not even with --allow-plaintext)"
        )),
        ObjectClass::Key {
            key_id,
            status,
            raw: true,
        } if status != encstore_tink::keyset::KeyStatus::Enabled => Some(format!(
            "under RAW key {key_id}, which is {status}: enable it (encstore enable-key --key-id {key_id}) to read or re-encrypt it"
        )),
        ObjectClass::UnknownKeyId { key_id } if snap.holds_raw_keys() => Some(format!(
            "its first bytes name key ID {key_id}, which this keyset does not have, and no RAW key decrypts it; with RAW key(s) {ids} in the keyset it is never taken as plaintext (a RAW ciphertext may start like a prefix)"
        )),
        _ => None,
    }
}

/// The core message of a KeyNotEnabled error names the keyset as
/// `KEYSET`; the CLI knows the file.
fn with_keyset_path(msg: &str, keyset: &Path) -> String {
    let p = sh(&keyset.display().to_string());
    msg.replace("--in KEYSET --out KEYSET", &format!("--in {p} --out {p}"))
}

/// A key or prefix as typed, without its trailing slashes (`certs/` names
/// the prefix `certs`).
fn trim_slash(key: &str) -> &str {
    key.trim_end_matches('/')
}

async fn ls(c: &StoreLs) -> Result<()> {
    let location = &c.store.store;
    let backend = open_backend(location, false)?;
    let prefix = trim_slash(c.prefix.as_deref().unwrap_or(""));
    let keys = backend.list(prefix, c.recursive).await.map_err(|e| {
        if prefix.is_empty() {
            anyhow!("cannot list {location}: {e}")
        } else {
            anyhow!("cannot list {} in {location}: {e}", ShownKey(prefix))
        }
    })?;
    if keys.is_empty() && !prefix.is_empty() {
        // An object, not a prefix: say so rather than print nothing.
        if let Ok(info) = backend.stat(prefix).await
            && info.terminal
        {
            note(&format!(
                "{} is an object, not a prefix: nothing is listed under it (see `encstore store stat`)",
                ShownKey(prefix)
            ));
        }
    }
    // A non-recursive listing mixes objects and prefixes: mark the
    // prefixes with a trailing `/`, as `ls -F` does.
    let marks: Vec<bool> = if c.recursive {
        vec![false; keys.len()]
    } else {
        prefix_marks(&backend, &keys, location).await?
    };
    let mut out = String::new();
    for (k, is_prefix) in keys.iter().zip(marks) {
        out.push_str(k);
        if is_prefix {
            out.push('/');
        }
        out.push('\n');
    }
    io::write_output(None, out.as_bytes(), "the listing")
}

/// For each listed name, whether it is a prefix (stat says not terminal).
/// A name deleted meanwhile is shown as an object.
async fn prefix_marks(
    backend: &Arc<dyn Storage>,
    keys: &[String],
    location: &str,
) -> Result<Vec<bool>> {
    let mut marks = vec![false; keys.len()];
    let mut set: JoinSet<(usize, Result<bool, Error>)> = JoinSet::new();
    let mut next = 0;
    loop {
        while set.len() < 16 && next < keys.len() {
            let (i, key, backend) = (next, keys[next].clone(), Arc::clone(backend));
            set.spawn(async move { (i, backend.stat(&key).await.map(|info| !info.terminal)) });
            next += 1;
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (i, r) = joined.map_err(|e| anyhow!("a listing task failed: {e}"))?;
        match r {
            Ok(is_prefix) => marks[i] = is_prefix,
            Err(Error::NotFound { .. }) => {}
            Err(e) => bail!("cannot list {location}: {e}"),
        }
    }
    Ok(marks)
}

/// Opens the store at `location` and stats `key` in it.
async fn open_and_stat(location: &str, key: &str) -> Result<(Arc<dyn Storage>, KeyInfo)> {
    let backend = open_backend(location, false)?;
    let info = backend
        .stat(key)
        .await
        .map_err(|e| object_error(key, location, &e))?;
    Ok((backend, info))
}

async fn rm(c: &StoreRm) -> Result<()> {
    let key = trim_slash(&c.key);
    let (backend, info) = open_and_stat(&c.store.store, key).await?;
    if !info.terminal && !c.recursive {
        bail!(
            "{} is a prefix with keys under it; add --recursive to delete them all",
            ShownKey(key)
        );
    }
    backend.delete(key).await.map_err(|e| {
        anyhow!(
            "cannot delete {} from {}: {e}",
            ShownKey(key),
            c.store.store
        )
    })
}

/// The key ID in a Tink prefix, if the head has one.
fn prefix_key_id(head: &[u8]) -> Option<u32> {
    match head {
        [0x00 | 0x01, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// What `store stat` found in an object.
#[derive(Debug, Default)]
struct Content {
    /// `ciphertext`, `plaintext` or `prefix_less_unattributed`.
    class: &'static str,
    /// The key ID: from the Tink prefix, or the RAW key that decrypts it.
    key_id: Option<u32>,
    /// With a keyset: the key's status, or `UNKNOWN` for a key ID the
    /// keyset does not have.
    key_status: Option<&'static str>,
    /// With a keyset: whether a RAW key decrypts it.
    raw: Option<bool>,
    /// Whether a keyset was used.
    checked: bool,
}

async fn stat(c: &StoreStat) -> Result<()> {
    let location = &c.store.store;
    let key = trim_slash(&c.key);
    let (backend, info) = open_and_stat(location, key).await?;
    let content = if info.terminal {
        Some(stat_content(c, &backend, key).await?)
    } else {
        None
    };
    let modified = info.modified.map(rfc3339);
    let text = if c.json {
        let mut v = json!({
            "key": info.key,
            "size": info.size,
            "modified": modified,
            "terminal": info.terminal,
            "kind": if info.terminal { "object" } else { "prefix" },
            "key_id": content.as_ref().and_then(|x| x.key_id),
            "content": content.as_ref().map(|x| x.class),
        });
        if let (Some(x), Some(o)) = (&content, v.as_object_mut())
            && x.checked
        {
            o.insert("key_status".into(), x.key_status.into());
            o.insert("raw".into(), x.raw.into());
        }
        format!("{v}\n")
    } else {
        let mut s = format!("key:      {}\n", info.key);
        match &content {
            None => {
                s.push_str("kind:     prefix (keys below it; list them with `encstore store ls`)\n")
            }
            Some(x) => {
                s.push_str("kind:     object\n");
                let what = match x.class {
                    "ciphertext" => "ciphertext",
                    "plaintext" => "plaintext",
                    _ => "no Tink prefix",
                };
                s.push_str(&format!(
                    "size:     {} ({what})\n",
                    count(info.size, "byte")
                ));
            }
        }
        if let Some(m) = &modified {
            s.push_str(&format!("modified: {m}\n"));
        }
        if let Some(x) = &content {
            s.push_str(&content_line(x));
        }
        s
    };
    io::write_output(None, text.as_bytes(), "the stat")
}

/// What the object at `key` holds: from its first five bytes, or, with
/// `--keyset`, from the keyset's classification of the whole object.
async fn stat_content(c: &StoreStat, backend: &Arc<dyn Storage>, key: &str) -> Result<Content> {
    let location = &c.store.store;
    let head = backend
        .load_head(key, 5)
        .await
        .map_err(|e| object_error(key, location, &e))?;
    let key_id = prefix_key_id(&head);
    let mut content = Content {
        class: if key_id.is_some() {
            "ciphertext"
        } else {
            "plaintext"
        },
        key_id,
        ..Content::default()
    };
    let Some(path) = &c.keyset else {
        return Ok(content);
    };
    let keyset = keysets::load_file(path, c.keyset_format, &c.master).await?;
    let keys = ReloadableKeyset::new(&keyset, Policy::tink())
        .map_err(|e| anyhow!("keyset {}: {e}", path.display()))?;
    let store = EncryptedStorage::new(Arc::clone(backend), Arc::new(keys));
    let object = backend
        .load(key)
        .await
        .map_err(|e| object_error(key, location, &e))?;
    let snap = store.keyset().snapshot();
    let class = snap.classify_object(&object, &store.associated_data(key));
    content.checked = true;
    content.raw = Some(false);
    match class {
        ObjectClass::Key {
            key_id,
            status,
            raw,
        } => {
            content.class = "ciphertext";
            content.key_id = Some(key_id);
            content.key_status = Some(status.as_str());
            content.raw = Some(raw);
        }
        ObjectClass::UnknownKeyId { key_id } => {
            content.key_id = Some(key_id);
            content.key_status = Some("UNKNOWN");
        }
        ObjectClass::PrefixLessUnattributed => content.class = "prefix_less_unattributed",
        _ => content.class = "plaintext",
    }
    Ok(content)
}

/// The `key ID:` line of `store stat`.
fn content_line(x: &Content) -> String {
    let line = match (x.class, x.key_id, x.key_status, x.raw) {
        ("plaintext", _, _, _) if x.checked => {
            "none: plaintext (no Tink prefix, and the keyset holds no RAW key)".to_owned()
        }
        ("plaintext", _, _, _) => "none: plaintext (no Tink prefix; a ciphertext under a RAW key has none either: add --keyset to tell them apart)".to_owned(),
        ("prefix_less_unattributed", _, _, _) => format!("none: {PREFIX_LESS}"),
        (_, Some(id), Some(status), Some(true)) => {
            format!("{id} (RAW key, found by decrypting it; {status} in the keyset)")
        }
        (_, Some(id), Some("UNKNOWN"), _) => format!(
            "{id} (from its Tink prefix; the keyset does not have this key)"
        ),
        (_, Some(id), Some(status), _) => {
            format!("{id} (from its Tink prefix; {status} in the keyset)")
        }
        (_, Some(id), None, _) => format!("{id} (from its Tink prefix)"),
        _ => "none".to_owned(),
    };
    format!("key ID:   {line}\n")
}

/// Formats a time as RFC 3339 UTC, to the second.
fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------
// status.

async fn status(c: &StoreStatus) -> Result<()> {
    let store = open_store(&c.store.store, &c.keyset, false, false).await?;
    let census = census(&store, &c.prefix, &c.store.store).await?;
    let info = store.keyset().info();
    let text = if c.json {
        let keys: Vec<serde_json::Value> = info
            .keys
            .iter()
            .map(|k| {
                json!({
                    "key_id": k.key_id,
                    "status": k.status.as_str(),
                    "primary": k.primary,
                    "objects": census.by_key_id.get(&k.key_id).copied().unwrap_or(0),
                })
            })
            .collect();
        let mut v = serde_json::to_value(&census).context("census to JSON")?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "not_under_primary".into(),
                census.not_under_primary().into(),
            );
            o.insert("keys".into(), keys.into());
            // The names shared with rewrap and verify (docs/json-output.md).
            o.insert("objects".into(), census.total.into());
            o.insert(
                "already_current".into(),
                census.objects_under(census.primary_key_id).into(),
            );
            o.insert(
                "unknown_keys".into(),
                key_counts_json(&census.unknown_key_ids).into(),
            );
        }
        format!("{v}\n")
    } else {
        let mut rows: Vec<[String; 3]> = info
            .keys
            .iter()
            .map(|k| {
                let mut st = k.status.as_str().to_owned();
                if k.primary {
                    st.push_str(" (primary)");
                }
                [
                    k.key_id.to_string(),
                    st,
                    census
                        .by_key_id
                        .get(&k.key_id)
                        .copied()
                        .unwrap_or(0)
                        .to_string(),
                ]
            })
            .collect();
        // Objects under RAW keys are in their key's row (found by trial
        // decryption); the rows below are objects under no key of the
        // keyset.
        for (id, n) in &census.unknown_key_ids {
            rows.push([id.to_string(), "unknown key".into(), n.to_string()]);
        }
        for (label, n) in [
            ("plaintext", census.plaintext),
            (PREFIX_LESS, census.prefix_less_unattributed),
        ] {
            if n > 0 {
                rows.push(["-".into(), label.into(), n.to_string()]);
            }
        }
        let mut s = table(&["KEY ID", "STATUS", "OBJECTS"], &rows);
        s.push_str(&format!(
            "{}; {} not under the primary key {}\n",
            count(census.total, "object"),
            census.not_under_primary(),
            census.primary_key_id
        ));
        if rewrappable(&census) > 0 {
            s.push_str(&format!(
                "re-encrypt them with: {}\n",
                rewrap_command(&c.store.store, &c.keyset)
            ));
        }
        if census.unknown_key > 0 {
            let ids: Vec<String> = census.unknown_key_ids.keys().map(u32::to_string).collect();
            s.push_str(&format!(
                "{} under key ID(s) {} that this keyset does not have (written with a newer keyset, or with another one?)\n",
                count(census.unknown_key, "object"),
                ids.join(", ")
            ));
        }
        if census.prefix_less_unattributed > 0 {
            s.push_str(&format!(
                "{} no Tink prefix and no RAW key of this keyset decrypts them: they may be ciphertexts under a RAW key that was destroyed or removed, so they are never taken as plaintext, and a rewrap cannot re-encrypt them\n",
                counted(census.prefix_less_unattributed, "object has", "objects have")
            ));
        }
        s
    };
    io::write_output(None, text.as_bytes(), "the census")
}

/// `n` and `noun`, with the plural that `n` takes ("1 object", "2 objects").
pub(crate) fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `n` with `one` or `many` ("1 object has", "2 objects have").
pub(crate) fn counted(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A key-ID map as the JSON array `[{"key_id": N, "objects": n}, ...]`:
/// key IDs as numbers, as everywhere else in the JSON output.
fn key_counts_json(map: &BTreeMap<u32, u64>) -> Vec<serde_json::Value> {
    map.iter()
        .map(|(id, n)| json!({"key_id": id, "objects": n}))
        .collect()
}

/// The status label of prefix-less objects that no RAW key decrypts while
/// the keyset holds a RAW key.
const PREFIX_LESS: &str = "prefix-less, no enabled RAW key decrypts it";

/// Objects a rewrap can move to the primary: those under another key of
/// the keyset, and plaintext (with --allow-plaintext).
fn rewrappable(census: &Census) -> u64 {
    census.not_under_primary() - census.prefix_less_unattributed - census.unknown_key
}

fn table(header: &[&str; 3], rows: &[[String; 3]]) -> String {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 3]| {
        out.push_str(
            format!(
                "{:<w0$}  {:<w1$}  {:>w2$}",
                cells[0],
                cells[1],
                cells[2],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
            .trim_end(),
        );
        out.push('\n');
    };
    line(*header);
    for r in rows {
        line([&r[0], &r[1], &r[2]]);
    }
    out
}

/// Quotes a shell word when needed.
pub(crate) fn sh(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=,@+%".contains(&b))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The `encstore store rewrap ...` command for this store and keyset.
fn rewrap_command(location: &str, k: &StoreKeysetArgs) -> String {
    let mut words = rewrap_words(location, &k.keyset.display().to_string(), &k.master);
    if let Some(p) = &k.policy {
        words.push("--policy".into());
        words.push(sh(p));
    }
    words.join(" ")
}

/// The words of `encstore store rewrap --store LOCATION --keyset KEYSET`
/// and the master key options.
fn rewrap_words(location: &str, keyset: &str, m: &MasterKeyArgs) -> Vec<String> {
    let mut words = vec![
        "encstore".to_owned(),
        "store".into(),
        "rewrap".into(),
        "--store".into(),
        sh(location),
        "--keyset".into(),
        sh(keyset),
    ];
    if let Some(p) = &m.master_keyset {
        words.push("--master-keyset".into());
        words.push(sh(&p.display().to_string()));
    }
    if let Some(u) = &m.master_key_uri {
        words.push("--master-key-uri".into());
        words.push(sh(u));
    }
    if let Some(a) = &m.keyset_associated_data {
        words.push("--keyset-associated-data".into());
        words.push(sh(a));
    }
    if let Some(a) = &m.keyset_associated_data_hex {
        words.push("--keyset-associated-data-hex".into());
        words.push(sh(a));
    }
    words
}

// ---------------------------------------------------------------------------
// The store check of disable-key, destroy-key, delete-key.

/// Refuses to `verb` key `key_id` while the census of `location` (taken
/// with `keyset`, before the change) finds objects under it, unless
/// `force`.
pub async fn check_retire(
    keyset: &Keyset,
    key_id: u32,
    location: &str,
    c: &KeyIdCommand,
    force: bool,
    verb: &str,
) -> Result<()> {
    if keyset.info().keys.iter().all(|k| k.key_id != key_id) {
        // Let the keyset operation report the unknown key.
        return Ok(());
    }
    let keys = ReloadableKeyset::new(keyset, Policy::tink())
        .map_err(|e| anyhow!("cannot check the store with this keyset: {e}"))?;
    let backend = open_backend(location, false)?;
    let store = EncryptedStorage::new(backend, Arc::new(keys));
    // RAW keys are checked too: the census tries each RAW key that has key
    // material on the prefix-less objects.
    let check = store
        .objects_under(key_id)
        .await
        .map_err(|e| anyhow!("cannot take the census of {location}: {e}"))?;
    let n = check.objects;
    if n == 0 {
        note(&format!(
            "store {location}: no object is under key {key_id} ({} checked)",
            count(check.checked, "object")
        ));
        return Ok(());
    }
    let keyset_path =
        io::file_name(c.keyset.input.input.as_deref()).unwrap_or_else(|| "KEYSET".to_owned());
    let cmd = rewrap_words(location, &keyset_path, &c.keyset.master).join(" ");
    if force {
        note(&format!(
            "warning: --force: {} in {location} still under key {key_id}; after this they will not decrypt (re-encrypt them first with: {cmd})",
            counted(n, "object is", "objects are")
        ));
        return Ok(());
    }
    bail!(
        "refusing to {verb} key {key_id}: {} in store {location} still encrypted under it; re-encrypt them first with `{cmd}` (or pass --force to {verb} it anyway)",
        counted(n, "object is", "objects are")
    )
}

// ---------------------------------------------------------------------------
// Progress.

/// Progress output: an indicatif bar on a terminal, plain lines otherwise.
/// No rate or ETA is shown before a second has passed (it would be noise);
/// the bar is left on screen at its true count when the run ends.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
    start: Instant,
    last_line: Instant,
    what: &'static str,
}

/// `objects` or `object`, for a run over `total` objects.
fn objects_word(total: u64) -> &'static str {
    if total == 1 { "object" } else { "objects" }
}

impl Progress {
    fn new(total: u64, what: &'static str) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            let style =
                indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {tail}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .with_key(
                        "tail",
                        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let total = state.len().unwrap_or(0);
                            let _ = write!(w, "{}", objects_word(total));
                            if state.elapsed() >= Duration::from_secs(1) {
                                let _ = write!(
                                    w,
                                    ", {:.0} objects/s, ETA {} s",
                                    state.per_sec(),
                                    state.eta().as_secs()
                                );
                            }
                        },
                    )
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(what);
            Some(bar)
        } else {
            eprintln!("encstore: {what}: {}", count(total, "object"));
            None
        };
        let now = Instant::now();
        Progress {
            bar,
            total,
            done: 0,
            start: now,
            last_line: now,
            what,
        }
    }

    fn inc(&mut self) {
        self.done += 1;
        match &self.bar {
            Some(bar) => bar.inc(1),
            None => {
                if self.last_line.elapsed() >= Duration::from_secs(2) {
                    self.last_line = Instant::now();
                    let secs = self.start.elapsed().as_secs_f64().max(0.001);
                    let rate = self.done as f64 / secs;
                    let eta = (self.total - self.done) as f64 / rate.max(0.001);
                    eprintln!(
                        "encstore: {}: {}/{} {} ({rate:.0} objects/s, ETA {eta:.0} s)",
                        self.what,
                        self.done,
                        self.total,
                        objects_word(self.total)
                    );
                }
            }
        }
    }

    /// Prints a line without breaking the bar.
    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Ends the progress output with the true count; `stopped` says why a
    /// run ended early.
    fn finish(&self, stopped: Option<Stop>) -> Duration {
        let elapsed = self.start.elapsed();
        match &self.bar {
            // The bar stays on screen at the count reached.
            Some(bar) => bar.abandon(),
            None => {
                let secs = elapsed.as_secs_f64();
                let how = match stopped {
                    None => String::new(),
                    Some(s) => format!(", stopped ({})", s.as_str()),
                };
                let rate = if secs >= 1.0 {
                    format!(" ({:.0} objects/s)", self.done as f64 / secs)
                } else {
                    String::new()
                };
                eprintln!(
                    "encstore: {}: {}/{} {} in {secs:.1} s{rate}{how}",
                    self.what,
                    self.done,
                    self.total,
                    objects_word(self.total)
                );
            }
        }
        elapsed
    }
}

// ---------------------------------------------------------------------------
// Running over every object: rewrap and verify.

/// Why a run over every object ended before the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Ctrl-C (SIGINT).
    Interrupted,
    /// The backend stopped answering.
    Unreachable,
    /// The rewrap lock's lease ran out, or another process took it over.
    LockLost,
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::Interrupted => "interrupted",
            Stop::Unreachable => "unreachable",
            Stop::LockLost => "lock_lost",
        }
    }
}

/// The error of a command stopped by Ctrl-C: `main` exits with 130 on it.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// How long the objects in flight may take to finish once the backend was
/// found unreachable (they are failing too, each after the backend's
/// bounded retries); after that they are abandoned.
const UNREACHABLE_DRAIN: Duration = Duration::from_secs(5);

/// How a run over every object ended.
struct RunEnd {
    stopped: Option<Stop>,
    /// The first unreachable-backend error, when that stopped the run.
    unreachable: Option<String>,
    /// Objects still in flight when the run gave up waiting for them
    /// (a second Ctrl-C, or the backend stayed silent): each is either
    /// done or untouched, but not counted.
    abandoned: usize,
}

/// Runs `work` on every key, `concurrency` at once, handing each result to
/// `record`, which says whether the backend is unreachable (the run then
/// stops). Ctrl-C stops it too: no new object is started, the ones in
/// flight finish and are counted (a second Ctrl-C abandons them). With a
/// `lease`, a lost lease stops it the same way.
async fn run_all<T, F, Fut>(
    keys: Vec<String>,
    concurrency: usize,
    progress: &mut Progress,
    lease: Option<&encstore_core::Lease>,
    work: F,
    mut record: impl FnMut(String, T, &mut Progress) -> Option<String>,
) -> Result<RunEnd>
where
    T: Send + 'static,
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let mut set: JoinSet<(String, T)> = JoinSet::new();
    let mut iter = keys.into_iter();
    let mut end = RunEnd {
        stopped: None,
        unreachable: None,
        abandoned: 0,
    };
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut interrupts = 0u32;
    let drain_deadline = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(drain_deadline);
    loop {
        if end.stopped.is_none()
            && let Some(l) = lease
            && !l.is_held()
        {
            end.stopped = Some(Stop::LockLost);
        }
        if end.stopped.is_none() {
            while set.len() < concurrency {
                let Some(key) = iter.next() else { break };
                let fut = work(key.clone());
                set.spawn(async move { (key, fut.await) });
            }
        }
        if set.is_empty() {
            break;
        }
        tokio::select! {
            joined = set.join_next() => {
                let Some(joined) = joined else { break };
                let (key, value) = joined.map_err(|e| anyhow!("a {} task failed: {e}", progress.what))?;
                progress.inc();
                if let Some(msg) = record(key, value, progress)
                    && end.stopped.is_none()
                {
                    end.stopped = Some(Stop::Unreachable);
                    end.unreachable = Some(msg);
                    drain_deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + UNREACHABLE_DRAIN);
                }
            }
            _ = &mut interrupted => {
                interrupts += 1;
                if interrupts >= 2 {
                    end.abandoned = set.len();
                    set.abort_all();
                    break;
                }
                if end.stopped.is_none() {
                    end.stopped = Some(Stop::Interrupted);
                }
                if !set.is_empty() {
                    progress.println(&format!(
                        "encstore: {}: interrupted; finishing the {} in flight (Ctrl-C again to stop at once)",
                        progress.what,
                        count(set.len() as u64, "object")
                    ));
                }
                interrupted.as_mut().set(tokio::signal::ctrl_c());
            }
            () = &mut drain_deadline, if end.stopped == Some(Stop::Unreachable) => {
                end.abandoned = set.len();
                set.abort_all();
                break;
            }
        }
    }
    Ok(end)
}

/// Why one object failed, for the summary's breakdown.
#[derive(Debug, Clone, Copy)]
enum FailClass {
    /// No Tink prefix, and no RAW key decrypts it.
    PrefixLess,
    /// Under a key ID the keyset does not have.
    UnknownKey(u32),
    /// Under a key the keyset has, but not ENABLED.
    NotEnabled(u32),
    /// Anything else.
    Other,
}

/// A failure on one object.
#[derive(Debug)]
struct Failure {
    msg: String,
    class: FailClass,
}

/// Failures by class, for the summaries.
#[derive(Debug, Default)]
struct Failures {
    /// Every failure: (key, message), sorted by key at the end.
    list: Vec<(String, String)>,
    prefix_less: u64,
    unknown: BTreeMap<u32, u64>,
    not_enabled: BTreeMap<u32, u64>,
}

impl Failures {
    fn add(&mut self, key: String, f: Failure) {
        match f.class {
            FailClass::PrefixLess => self.prefix_less += 1,
            FailClass::UnknownKey(id) => *self.unknown.entry(id).or_default() += 1,
            FailClass::NotEnabled(id) => *self.not_enabled.entry(id).or_default() += 1,
            FailClass::Other => {}
        }
        self.list.push((key, f.msg));
    }

    /// The failure fields shared by the JSON summaries of rewrap and
    /// verify (docs/json-output.md).
    fn json_into(&self, o: &mut serde_json::Map<String, serde_json::Value>) {
        o.insert("failed".into(), failures_json(&self.list).into());
        o.insert("failed_count".into(), (self.list.len() as u64).into());
        o.insert(
            "unknown_key".into(),
            self.unknown.values().sum::<u64>().into(),
        );
        o.insert(
            "unknown_key_ids".into(),
            serde_json::to_value(&self.unknown).unwrap_or_default(),
        );
        o.insert("unknown_keys".into(), key_counts_json(&self.unknown).into());
        o.insert(
            "not_enabled_key".into(),
            self.not_enabled.values().sum::<u64>().into(),
        );
        o.insert(
            "not_enabled_keys".into(),
            key_counts_json(&self.not_enabled).into(),
        );
        o.insert("prefix_less_unattributed".into(), self.prefix_less.into());
    }

    /// The lines after a human summary that explain the failures by class.
    fn explain(&self, keyset: &Path) -> String {
        let mut s = String::new();
        if !self.unknown.is_empty() {
            let ids: Vec<String> = self.unknown.keys().map(u32::to_string).collect();
            s.push_str(&format!(
                "of the failures, {} under key ID(s) {} that this keyset does not have (written with a newer keyset, or with another one?)\n",
                counted(self.unknown.values().sum(), "is", "are"),
                ids.join(", ")
            ));
        }
        if !self.not_enabled.is_empty() {
            let ids: Vec<String> = self.not_enabled.keys().map(u32::to_string).collect();
            let p = sh(&keyset.display().to_string());
            s.push_str(&format!(
                "of the failures, {} under key(s) {} that this keyset holds but not ENABLED (a DISABLED key comes back with `encstore enable-key --key-id ID --in {p} --out {p}`)\n",
                counted(self.not_enabled.values().sum(), "is", "are"),
                ids.join(", ")
            ));
        }
        if self.prefix_less > 0 {
            s.push_str(&format!(
                "of the failures, {} {PREFIX_LESS} (never taken as plaintext while the keyset holds a RAW key)\n",
                counted(self.prefix_less, "is", "are")
            ));
        }
        s
    }
}

/// A failure on `key`, classified, explained when the census
/// classification says more than the decryption error.
async fn classify_failure(store: &EncryptedStorage, key: &str, e: &Error) -> Failure {
    let explained = explain_failure(store, key).await;
    let class = match (e, &explained) {
        (_, Some(why)) if why.starts_with(PREFIX_LESS) => FailClass::PrefixLess,
        (Error::UnknownKeyId { key_id, .. }, _) => FailClass::UnknownKey(*key_id),
        (Error::KeyNotEnabled { key_id, .. }, _) => FailClass::NotEnabled(*key_id),
        _ => FailClass::Other,
    };
    Failure {
        msg: explained.unwrap_or_else(|| e.to_string()),
        class,
    }
}

/// A plain failure (no class).
fn other_failure(msg: String) -> Failure {
    Failure {
        msg,
        class: FailClass::Other,
    }
}

// ---------------------------------------------------------------------------
// rewrap.

#[derive(Debug)]
enum Done {
    Rewrapped,
    Current,
    Deleted,
    Failed(Failure),
    /// The backend did not answer: the run stops.
    Unreachable(String),
}

/// Re-encrypts one object and re-checks it: after `rewrap_one`, the stored
/// object must decrypt and be under the primary. A writer still on an older
/// keyset may write it back under an old key in between; then it is
/// rewrapped again, a few times, before giving up.
async fn rewrap_and_check(store: &EncryptedStorage, key: &str) -> Done {
    let mut rewrapped = false;
    for _ in 0..3 {
        match store.rewrap_one(key).await {
            Ok(RewrapOutcome::Deleted) => return Done::Deleted,
            Ok(RewrapOutcome::Rewrapped { .. }) => rewrapped = true,
            Ok(_) => {}
            Err(
                e @ (Error::Authentication { .. }
                | Error::UnknownKeyId { .. }
                | Error::KeyNotEnabled { .. }),
            ) => {
                return Done::Failed(classify_failure(store, key, &e).await);
            }
            Err(e @ Error::Unreachable { .. }) => return Done::Unreachable(e.to_string()),
            Err(e) => return Done::Failed(other_failure(e.to_string())),
        }
        let snap = store.keyset().snapshot();
        let raw = match store.inner().load(key).await {
            Ok(raw) => raw,
            Err(Error::NotFound { .. }) => return Done::Deleted,
            Err(e @ Error::Unreachable { .. }) => return Done::Unreachable(e.to_string()),
            Err(e) => return Done::Failed(other_failure(format!("re-check: {e}"))),
        };
        let ad = store.associated_data(key);
        if snap.decrypts_with_primary(&raw, &ad) && snap.aead_decrypts(&raw, &ad) {
            return if rewrapped {
                Done::Rewrapped
            } else {
                Done::Current
            };
        }
    }
    Done::Failed(other_failure(
        "still not under the primary key after re-encryption (is a writer with an older keyset rewriting it?)"
            .to_owned(),
    ))
}

#[derive(Debug, Default)]
struct Summary {
    objects: u64,
    rewrapped: u64,
    current: u64,
    deleted: u64,
    failures: Failures,
    elapsed: Duration,
    stopped: Option<Stop>,
}

async fn rewrap(c: &StoreRewrap) -> Result<()> {
    let location = &c.store.store;
    let store = open_store(location, &c.keyset, c.allow_plaintext, false).await?;
    if c.dry_run {
        return rewrap_dry_run(c, &store).await;
    }
    refuse_unsafe_migration(c, &store).await?;

    // The store-wide lock: one rewrap at a time.
    let backend = Arc::clone(store.inner());
    let lease = match backend.try_lock(REWRAP_LOCK).await {
        Ok(l) => l,
        Err(Error::LockHeld { .. }) if c.no_wait => bail!(
            "another rewrap is running on {location} (it holds the lock {REWRAP_LOCK:?}); try again when it has finished, or without --no-wait to wait for it (a killed rewrap's lock expires after {} s)",
            backend.lease_duration().as_secs()
        ),
        Err(Error::LockHeld { .. }) => {
            note(&format!(
                "another rewrap is running on {location} (lock {REWRAP_LOCK:?}); waiting for it to finish (a killed rewrap's lock expires after {} s; --no-wait fails instead)",
                backend.lease_duration().as_secs()
            ));
            backend
                .lock(REWRAP_LOCK)
                .await
                .map_err(|e| anyhow!("cannot take the rewrap lock on {location}: {e}"))?
        }
        Err(e) => bail!("cannot take the rewrap lock on {location}: {e}"),
    };

    let result = rewrap_locked(c, &store, &lease).await;
    let unreachable = matches!(&result, Ok((_, end)) if end.stopped == Some(Stop::Unreachable));
    let lease_secs = backend.lease_duration().as_secs();
    let unlocked = if unreachable {
        // The backend is not answering: do not wait long to release the
        // lock; it expires on its own.
        match tokio::time::timeout(UNREACHABLE_DRAIN, backend.unlock(lease)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                backend: "store",
                op: "unlock",
            }),
        }
    } else {
        backend.unlock(lease).await
    };
    let (summary, end) = result?;
    if let Err(e) = unlocked {
        note(&format!(
            "warning: releasing the rewrap lock: {e} (it expires on its own after {lease_secs} s)"
        ));
    }
    print_summary(c, &store, &summary)?;
    stop_error(&end, &summary_counts(&summary), location, "rewrap")?;
    if !summary.failures.list.is_empty() {
        bail!(
            "{} could not be re-encrypted (listed above); they were left untouched",
            count(summary.failures.list.len() as u64, "object")
        );
    }
    Ok(())
}

/// "re-encrypted N of M" for the stop messages.
fn summary_counts(s: &Summary) -> String {
    format!(
        "re-encrypted {} of {}",
        s.rewrapped,
        count(s.objects, "object")
    )
}

/// The error for a run that stopped early (after its summary was printed):
/// [`Interrupted`] for Ctrl-C (exit 130).
fn stop_error(end: &RunEnd, counts: &str, location: &str, what: &str) -> Result<()> {
    let abandoned = if end.abandoned > 0 {
        format!(
            "; {} in flight {} abandoned uncounted",
            count(end.abandoned as u64, "object"),
            if end.abandoned == 1 { "was" } else { "were" }
        )
    } else {
        String::new()
    };
    let again = if what == "rewrap" {
        "every object is either re-encrypted or untouched; run the rewrap again to finish (it resumes where it stopped)"
    } else {
        "nothing was changed; run the verify again"
    };
    match end.stopped {
        None => Ok(()),
        Some(Stop::Interrupted) => Err(anyhow::Error::new(Interrupted(format!(
            "interrupted ({counts}{abandoned}); {again}"
        )))),
        Some(Stop::Unreachable) => bail!(
            "stopped: the backend of {location} stopped answering: {} ({counts}{abandoned}); {again} once it is back",
            end.unreachable.as_deref().unwrap_or("unreachable")
        ),
        Some(Stop::LockLost) => bail!(
            "lost the rewrap lock on {location} (its lease ran out, or another process took it over); stopped ({counts}{abandoned}). Run the rewrap again: it resumes where it stopped"
        ),
    }
}

async fn rewrap_locked(
    c: &StoreRewrap,
    store: &EncryptedStorage,
    lease: &encstore_core::Lease,
) -> Result<(Summary, RunEnd)> {
    let location = &c.store.store;
    let keys = list_all(store, location).await?;
    let mut summary = Summary {
        objects: keys.len() as u64,
        ..Summary::default()
    };
    let mut progress = Progress::new(summary.objects, "rewrap");
    let keyset_path = c.keyset.keyset.clone();
    let worker = store.clone();
    let end = run_all(
        keys,
        usize::from(c.concurrency),
        &mut progress,
        Some(lease),
        move |key| {
            let store = worker.clone();
            async move { rewrap_and_check(&store, &key).await }
        },
        |key, done, progress| {
            match done {
                Done::Rewrapped => summary.rewrapped += 1,
                Done::Current => summary.current += 1,
                Done::Deleted => summary.deleted += 1,
                Done::Failed(f) => {
                    let msg = with_keyset_path(&f.msg, &keyset_path);
                    progress.println(&format!("encstore: rewrap: {}: {msg}", ShownKey(&key)));
                    summary.failures.add(
                        key,
                        Failure {
                            msg,
                            class: f.class,
                        },
                    );
                }
                Done::Unreachable(msg) => return Some(msg),
            }
            None
        },
    )
    .await?;
    summary.stopped = end.stopped;
    summary.elapsed = progress.finish(end.stopped);
    summary.failures.list.sort();
    Ok((summary, end))
}

fn print_summary(c: &StoreRewrap, store: &EncryptedStorage, s: &Summary) -> Result<()> {
    let primary = store.keyset().snapshot().primary_key_id();
    let text = if c.json {
        let mut v = json!({
            "objects": s.objects,
            "rewrapped": s.rewrapped,
            "already_current": s.current,
            "deleted": s.deleted,
            "primary_key_id": primary,
            "seconds": s.elapsed.as_secs_f64(),
            "stopped": s.stopped.map(Stop::as_str),
        });
        if let Some(o) = v.as_object_mut() {
            s.failures.json_into(o);
        }
        format!("{v}\n")
    } else {
        let mut text = format!(
            "rewrap: {}: re-encrypted {}, already current {}, deleted meanwhile {}, failed {} (primary key {primary}) in {:.1} s\n",
            count(s.objects, "object"),
            s.rewrapped,
            s.current,
            s.deleted,
            s.failures.list.len(),
            s.elapsed.as_secs_f64()
        );
        text.push_str(&s.failures.explain(&c.keyset.keyset));
        text
    };
    io::write_output(None, text.as_bytes(), "the summary")
}

/// The `failed` list of a JSON summary: `{"key": ..., "error": ...}` each.
fn failures_json(failed: &[(String, String)]) -> Vec<serde_json::Value> {
    failed
        .iter()
        .map(|(k, m)| json!({"key": k, "error": m}))
        .collect()
}

async fn rewrap_dry_run(c: &StoreRewrap, store: &EncryptedStorage) -> Result<()> {
    let location = &c.store.store;
    let census = census(store, "", location).await?;
    let holds_raw = store.keyset().snapshot().holds_raw_keys();
    let primary = census.primary_key_id;
    let by_key: BTreeMap<u32, u64> = census
        .by_key_id
        .iter()
        .filter(|(id, _)| **id != primary)
        .map(|(id, n)| (*id, *n))
        .collect();
    // Migration mode takes for plaintext the prefix-less objects, and those
    // whose first bytes name a key ID the keyset does not have (plaintext
    // may start with 0x00 or 0x01), but only while the keyset holds no RAW
    // key (the census then counts no prefix-less object as plaintext).
    let migrating = c.allow_plaintext && !holds_raw;
    let plaintext_rewrapped = if migrating {
        census.plaintext + census.unknown_key
    } else if c.allow_plaintext {
        census.plaintext
    } else {
        0
    };
    let would: u64 = by_key.values().sum::<u64>() + plaintext_rewrapped;
    let would_fail = census.total
        - census.objects_under(primary)
        - by_key.values().sum::<u64>()
        - plaintext_rewrapped;
    let refuses = c.allow_plaintext && holds_raw && census.prefix_less_unattributed > 0;
    let text = if c.json {
        format!(
            "{}\n",
            json!({
                "dry_run": true,
                "objects": census.total,
                "would_rewrap": would,
                "would_rewrap_by_key_id": by_key,
                "plaintext": census.plaintext,
                "raw": census.raw,
                "already_current": census.objects_under(primary),
                "would_fail": would_fail,
                "primary_key_id": primary,
                "unknown_key": census.unknown_key,
                "unknown_key_ids": census.unknown_key_ids,
                "unknown_keys": key_counts_json(&census.unknown_key_ids),
                "would_rewrap_keys": key_counts_json(&by_key),
                "prefix_less_unattributed": census.prefix_less_unattributed,
                "allow_plaintext_refused": refuses,
            })
        )
    } else {
        let mut s = format!(
            "dry run: {}; would re-encrypt {would} under primary key {primary}; {} already current\n",
            count(census.total, "object"),
            census.objects_under(primary)
        );
        for (id, n) in &by_key {
            s.push_str(&format!("  {n} under key {id}\n"));
        }
        if census.plaintext > 0 {
            if c.allow_plaintext {
                s.push_str(&format!("  {} plaintext\n", census.plaintext));
            } else {
                s.push_str(&format!(
                    "  {} would fail (add --allow-plaintext to encrypt them)\n",
                    count(census.plaintext, "plaintext object")
                ));
            }
        }
        if census.unknown_key > 0 {
            let ids: Vec<String> = census.unknown_key_ids.keys().map(u32::to_string).collect();
            if migrating {
                s.push_str(&format!(
                    "  {} start with what looks like a Tink prefix of key ID(s) {} that this keyset does not have: taken as plaintext and encrypted (check that this is the right keyset)\n",
                    census.unknown_key,
                    ids.join(", ")
                ));
            } else {
                s.push_str(&format!(
                    "  {} under key IDs this keyset does not have ({}) would fail\n",
                    census.unknown_key,
                    ids.join(", ")
                ));
            }
        }
        if census.prefix_less_unattributed > 0 {
            s.push_str(&format!(
                "  {} {PREFIX_LESS}: would fail (never taken as plaintext while the keyset holds a RAW key)\n",
                census.prefix_less_unattributed
            ));
        }
        if refuses {
            s.push_str("  --allow-plaintext would refuse to run: the keyset holds a RAW key\n");
        }
        s.push_str("nothing was changed\n");
        s
    };
    io::write_output(None, text.as_bytes(), "the report")
}

/// `--allow-plaintext` refuses to run while the keyset holds a RAW key and
/// the store has prefix-less objects that no RAW key decrypts: they may be
/// ciphertexts, and encrypting them as if they were the secret would bury
/// them under another layer.
async fn refuse_unsafe_migration(c: &StoreRewrap, store: &EncryptedStorage) -> Result<()> {
    let snap = store.keyset().snapshot();
    if !c.allow_plaintext || !snap.holds_raw_keys() {
        return Ok(());
    }
    let location = &c.store.store;
    let census = census(store, "", location).await?;
    if census.prefix_less_unattributed == 0 {
        return Ok(());
    }
    let ids: Vec<String> = snap.raw_key_ids().iter().map(u32::to_string).collect();
    bail!(
        "refusing --allow-plaintext: {} in {location} {} no Tink prefix and no enabled RAW key decrypts them, and the keyset holds RAW key(s) {}: they may be ciphertexts under a RAW key that was destroyed or removed, not plaintext, and encrypting them would bury them. Nothing was changed. Run `encstore store status` to see them; restore the RAW key that wrote them, or move them out of the store, before migrating",
        count(census.prefix_less_unattributed, "object"),
        if census.prefix_less_unattributed == 1 {
            "has"
        } else {
            "have"
        },
        ids.join(", ")
    )
}

// ---------------------------------------------------------------------------
// verify.

async fn verify(c: &StoreVerify) -> Result<()> {
    let location = &c.store.store;
    let store = open_store(location, &c.keyset, c.allow_plaintext, false).await?;
    let keys = list_all(&store, location).await?;
    let total = keys.len() as u64;
    let mut progress = Progress::new(total, "verify");
    let mut by_key: BTreeMap<u32, u64> = BTreeMap::new();
    let mut ok = 0u64;
    let mut deleted = 0u64;
    let mut plaintext = 0u64;
    let mut failures = Failures::default();
    let worker = store.clone();
    let keyset_path = c.keyset.keyset.clone();
    let end = run_all(
        keys,
        usize::from(c.concurrency),
        &mut progress,
        None,
        move |key| {
            let store = worker.clone();
            async move { verify_one(&store, &key).await }
        },
        |key, r, progress| {
            match r {
                Verified::Decrypted(id) => {
                    ok += 1;
                    if let Some(id) = id {
                        *by_key.entry(id).or_default() += 1;
                    }
                }
                Verified::Plaintext => plaintext += 1,
                Verified::Deleted => deleted += 1,
                Verified::Failed(f) => {
                    let msg = with_keyset_path(&f.msg, &keyset_path);
                    progress.println(&format!(
                        "encstore: verify: FAILED {}: {msg}",
                        ShownKey(&key)
                    ));
                    failures.add(
                        key,
                        Failure {
                            msg,
                            class: f.class,
                        },
                    );
                }
                Verified::Unreachable(msg) => return Some(msg),
            }
            None
        },
    )
    .await?;
    let elapsed = progress.finish(end.stopped);
    failures.list.sort();
    let primary = store.keyset().snapshot().primary_key_id();
    let text = if c.json {
        let mut v = json!({
            "objects": total,
            "ok": ok,
            "plaintext": plaintext,
            "deleted": deleted,
            "by_key_id": by_key,
            "keys": key_counts_json(&by_key),
            "primary_key_id": primary,
            "seconds": elapsed.as_secs_f64(),
            "stopped": end.stopped.map(Stop::as_str),
        });
        if let Some(o) = v.as_object_mut() {
            failures.json_into(o);
        }
        format!("{v}\n")
    } else {
        let mut s = format!(
            "verify: {}: {ok} {}, {} failed",
            count(total, "object"),
            if ok == 1 { "decrypts" } else { "decrypt" },
            failures.list.len()
        );
        if plaintext > 0 {
            s.push_str(&format!(", {plaintext} plaintext (migration mode)"));
        }
        if deleted > 0 {
            s.push_str(&format!(", {deleted} deleted meanwhile"));
        }
        s.push_str(&format!(" in {:.1} s\n", elapsed.as_secs_f64()));
        s.push_str(&failures.explain(&c.keyset.keyset));
        s
    };
    io::write_output(None, text.as_bytes(), "the report")?;
    let counts = format!(
        "checked {} of {}",
        ok + plaintext + deleted + failures.list.len() as u64,
        count(total, "object")
    );
    stop_error(&end, &counts, location, "verify")?;
    if !failures.list.is_empty() {
        bail!(
            "{} of {} failed to decrypt (listed above)",
            failures.list.len(),
            count(total, "object")
        );
    }
    Ok(())
}

/// What verifying one object found.
#[derive(Debug)]
enum Verified {
    /// The keyset decrypts it; the key ID (from its prefix, or the RAW key
    /// that decrypts it; `None` if that cannot be told).
    Decrypted(Option<u32>),
    /// A plaintext object, in migration mode.
    Plaintext,
    /// Deleted meanwhile.
    Deleted,
    Failed(Failure),
    /// The backend did not answer: the run stops.
    Unreachable(String),
}

/// Decrypts one object.
async fn verify_one(store: &EncryptedStorage, key: &str) -> Verified {
    let raw = match store.inner().load(key).await {
        Ok(raw) => raw,
        Err(Error::NotFound { .. }) => return Verified::Deleted,
        Err(e @ Error::Unreachable { .. }) => return Verified::Unreachable(e.to_string()),
        Err(e) => return Verified::Failed(other_failure(e.to_string())),
    };
    let snap = store.keyset().snapshot();
    let ad = store.associated_data(key);
    if snap.aead_decrypts(&raw, &ad) {
        let id = match snap.classify(&raw) {
            encstore::HeadClass::Known { key_id, .. } => Some(key_id),
            _ => snap.raw_key_for(&raw, &ad).map(|(id, _)| id),
        };
        return Verified::Decrypted(id);
    }
    // Not decryptable with the keyset: the library's load says why (and
    // returns plaintext objects in migration mode).
    match store.load(key).await {
        Ok(value) => {
            drop(zeroize::Zeroizing::new(Vec::from(value)));
            Verified::Plaintext
        }
        Err(Error::NotFound { .. }) => Verified::Deleted,
        Err(e @ Error::Unreachable { .. }) => Verified::Unreachable(e.to_string()),
        Err(e) => Verified::Failed(classify_failure(store, key, &e).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_829_696);
        assert_eq!(rfc3339(t), "2026-11-28T01:34:56Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(sh("/tmp/a-b_c.json"), "/tmp/a-b_c.json");
        assert_eq!(sh("with space"), "'with space'");
        assert_eq!(sh("it's"), r"'it'\''s'");
        assert_eq!(
            sh("pkcs11:token=t;object=k?module-path=/m.so"),
            "'pkcs11:token=t;object=k?module-path=/m.so'"
        );
        assert_eq!(sh(""), "''");
    }

    #[test]
    fn prefix_key_ids() {
        assert_eq!(prefix_key_id(&[1, 0, 0, 1, 0, 9]), Some(256));
        assert_eq!(prefix_key_id(&[0, 0xff, 0xff, 0xff, 0xff]), Some(u32::MAX));
        assert_eq!(prefix_key_id(b"hello"), None);
        assert_eq!(prefix_key_id(&[1, 2, 3]), None);
    }

    #[test]
    fn locations() {
        let e = |l: &str| match open_backend(l, false) {
            Ok(_) => panic!("{l} opened"),
            Err(e) => e.to_string(),
        };
        assert!(e("ftp://host/x").contains("unsupported scheme"));
        assert!(e("ftp://host/x").contains("gs://bucket/prefix"));
        assert!(e("file://rel/path").contains("absolute path"));
        assert!(e("").contains("empty"));
        assert!(e("/nonexistent/encstore/store").contains("does not exist"));
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("file://{}", d.path().display());
        assert!(open_backend(&url, false).is_ok());
    }

    /// Every object-store scheme reaches encstore-objstore: its own
    /// messages come back (memory:// opens; a malformed URL of each scheme
    /// fails there, not as an unsupported scheme).
    #[cfg(feature = "s3")]
    #[test]
    fn object_store_schemes_route_to_objstore() {
        assert!(open_backend("memory:///", false).is_ok());
        assert!(open_backend("memory:///some/prefix", true).is_ok());
        for l in [
            "s3://bucket/a?x=1",
            "gs://bucket/a?x=1",
            "az://container/a?x=1",
            "memory:///a?x=1",
        ] {
            let e = match open_backend(l, false) {
                Ok(_) => panic!("{l} opened"),
                Err(e) => e.to_string(),
            };
            assert!(e.contains("query or a fragment"), "{l}: {e}");
            assert!(!e.contains("unsupported scheme"), "{l}: {e}");
        }
    }

    #[test]
    fn plurals() {
        assert_eq!(count(0, "object"), "0 objects");
        assert_eq!(count(1, "object"), "1 object");
        assert_eq!(count(2, "byte"), "2 bytes");
        assert_eq!(counted(1, "object is", "objects are"), "1 object is");
        assert_eq!(counted(3, "object is", "objects are"), "3 objects are");
        assert_eq!(objects_word(1), "object");
        assert_eq!(objects_word(0), "objects");
    }
}
