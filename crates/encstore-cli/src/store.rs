//! `encstore store ...`: commands on an encrypted store, and the store
//! check behind `disable-key`/`destroy-key`/`delete-key --store`.
//!
//! - Locations: a directory path or `file:///abs/path` (the filesystem
//!   backend), or `s3://bucket/prefix` (the S3 backend, when built with the
//!   `s3` feature, on by default). [`open_backend`] is the one place that
//!   maps a location to a backend.
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
use encstore_core::{Error, KeyInfo, Storage};
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
    if let Some(rest) = location.strip_prefix("s3://") {
        return open_s3(location, rest);
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
            "store location {location:?}: unsupported scheme {scheme:?} (use a directory, file:///abs/path or s3://bucket/prefix)"
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
        bail!("store {} does not exist", path.display());
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

#[cfg(feature = "s3")]
fn open_s3(location: &str, _rest: &str) -> Result<Arc<dyn Storage>> {
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
fn open_s3(location: &str, _rest: &str) -> Result<Arc<dyn Storage>> {
    bail!(
        "store {location}: s3:// needs the S3 backend (this encstore was built without the `s3` feature)"
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
        Error::NotFound { .. } => anyhow!("{key:?} not found in store {location}"),
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
        .map_err(|e| anyhow!("cannot store {key:?} in {location}: {e}"))
}

async fn get(c: &StoreGet) -> Result<()> {
    let store = open_store(&c.store.store, &c.keyset, c.allow_plaintext, false).await?;
    let value = match store.load(&c.key).await {
        Ok(v) => v,
        Err(e) => {
            return Err(match explain_failure(&store, &c.key).await {
                Some(why) => anyhow!("{:?}: {why}", c.key),
                None => object_error(&c.key, &c.store.store, &e),
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

async fn ls(c: &StoreLs) -> Result<()> {
    let backend = open_backend(&c.store.store, false)?;
    let prefix = c.prefix.as_deref().unwrap_or("");
    let keys = backend
        .list(prefix, c.recursive)
        .await
        .map_err(|e| anyhow!("cannot list {prefix:?} in {}: {e}", c.store.store))?;
    let mut out = String::new();
    for k in keys {
        out.push_str(&k);
        out.push('\n');
    }
    io::write_output(None, out.as_bytes(), "the listing")
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
    let (backend, info) = open_and_stat(&c.store.store, &c.key).await?;
    if !info.terminal && !c.recursive {
        bail!(
            "{:?} is a prefix with keys under it; add --recursive to delete them all",
            c.key
        );
    }
    backend
        .delete(&c.key)
        .await
        .map_err(|e| anyhow!("cannot delete {:?} from {}: {e}", c.key, c.store.store))
}

/// The key ID in a Tink prefix, if the head has one.
fn prefix_key_id(head: &[u8]) -> Option<u32> {
    match head {
        [0x00 | 0x01, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

async fn stat(c: &StoreStat) -> Result<()> {
    let (backend, info) = open_and_stat(&c.store.store, &c.key).await?;
    let key_id = if info.terminal {
        match backend.load_head(&c.key, 5).await {
            Ok(head) => prefix_key_id(&head),
            Err(e) => return Err(object_error(&c.key, &c.store.store, &e)),
        }
    } else {
        None
    };
    let modified = info.modified.map(rfc3339);
    let text = if c.json {
        let v = json!({
            "key": info.key,
            "size": info.size,
            "modified": modified,
            "terminal": info.terminal,
            "key_id": key_id,
        });
        format!("{v}\n")
    } else {
        let mut s = format!("key:      {}\n", info.key);
        if info.terminal {
            s.push_str(&format!("size:     {} bytes (ciphertext)\n", info.size));
        } else {
            s.push_str("kind:     prefix (keys below it)\n");
        }
        if let Some(m) = &modified {
            s.push_str(&format!("modified: {m}\n"));
        }
        if info.terminal {
            match key_id {
                Some(id) => s.push_str(&format!("key ID:   {id} (from its Tink prefix)\n")),
                None => s.push_str("key ID:   none (plaintext, or a RAW key)\n"),
            }
        }
        s
    };
    io::write_output(None, text.as_bytes(), "the stat")
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
            "{} objects; {} not under the primary key {}\n",
            census.total,
            census.not_under_primary(),
            census.primary_key_id
        ));
        if rewrappable(&census) > 0 {
            s.push_str(&format!(
                "re-encrypt them with: {}\n",
                rewrap_command(&c.store.store, &c.keyset)
            ));
        }
        if census.prefix_less_unattributed > 0 {
            s.push_str(&format!(
                "{} object(s) have no Tink prefix and no RAW key of this keyset decrypts them: they may be ciphertexts under a RAW key that was destroyed or removed, so they are never taken as plaintext, and a rewrap cannot re-encrypt them\n",
                census.prefix_less_unattributed
            ));
        }
        s
    };
    io::write_output(None, text.as_bytes(), "the census")
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
            "store {location}: no object is under key {key_id} ({} objects checked)",
            check.checked
        ));
        return Ok(());
    }
    let keyset_path =
        io::file_name(c.keyset.input.input.as_deref()).unwrap_or_else(|| "KEYSET".to_owned());
    let cmd = rewrap_words(location, &keyset_path, &c.keyset.master).join(" ");
    if force {
        note(&format!(
            "warning: --force: {n} object(s) in {location} are still under key {key_id}; after this they will not decrypt (re-encrypt them first with: {cmd})"
        ));
        return Ok(());
    }
    bail!(
        "refusing to {verb} key {key_id}: {n} object(s) in store {location} are still encrypted under it; re-encrypt them first with `{cmd}` (or pass --force to {verb} it anyway)"
    )
}

// ---------------------------------------------------------------------------
// Progress.

/// Progress output: an indicatif bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
    start: Instant,
    last_line: Instant,
    what: &'static str,
}

impl Progress {
    fn new(total: u64, what: &'static str) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} objects, {rate}, ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} objects/s", state.per_sec());
                },
            )
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(what);
            Some(bar)
        } else {
            eprintln!("encstore: {what}: {total} objects");
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
                        "encstore: {}: {}/{} objects ({rate:.0} objects/s, ETA {eta:.0} s)",
                        self.what, self.done, self.total
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

    fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => {
                let secs = self.start.elapsed().as_secs_f64();
                eprintln!(
                    "encstore: {}: {}/{} objects in {secs:.1} s ({:.0} objects/s)",
                    self.what,
                    self.done,
                    self.total,
                    self.done as f64 / secs.max(0.001)
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// rewrap.

#[derive(Debug)]
enum Done {
    Rewrapped,
    Current,
    Deleted,
    Failed(String),
    /// Failed: no Tink prefix, and no RAW key decrypts it.
    PrefixLess(String),
}

/// A failure on `key`, explained when the census classification says more
/// than the decryption error.
async fn failed(store: &EncryptedStorage, key: &str, e: &Error) -> Done {
    match explain_failure(store, key).await {
        Some(why) if why.starts_with(PREFIX_LESS) => Done::PrefixLess(why),
        Some(why) => Done::Failed(why),
        None => Done::Failed(e.to_string()),
    }
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
            Err(e @ (Error::Authentication { .. } | Error::UnknownKeyId { .. })) => {
                return failed(store, key, &e).await;
            }
            Err(e) => return Done::Failed(e.to_string()),
        }
        let snap = store.keyset().snapshot();
        let raw = match store.inner().load(key).await {
            Ok(raw) => raw,
            Err(Error::NotFound { .. }) => return Done::Deleted,
            Err(e) => return Done::Failed(format!("re-check: {e}")),
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
    Done::Failed(
        "still not under the primary key after re-encryption (is a writer with an older keyset rewriting it?)"
            .to_owned(),
    )
}

#[derive(Debug, Default)]
struct Summary {
    objects: u64,
    rewrapped: u64,
    current: u64,
    deleted: u64,
    /// Of `failed`: prefix-less, no RAW key decrypts them.
    prefix_less: u64,
    failed: Vec<(String, String)>,
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
    let unlocked = backend.unlock(lease).await;
    let summary = result?;
    if let Err(e) = unlocked {
        note(&format!("warning: releasing the rewrap lock: {e}"));
    }
    print_summary(c, &store, &summary)
}

async fn rewrap_locked(
    c: &StoreRewrap,
    store: &EncryptedStorage,
    lease: &encstore_core::Lease,
) -> Result<Summary> {
    let location = &c.store.store;
    let keys = list_all(store, location).await?;
    let mut summary = Summary {
        objects: keys.len() as u64,
        ..Summary::default()
    };
    let mut progress = Progress::new(summary.objects, "rewrap");
    let mut set: JoinSet<(String, Done)> = JoinSet::new();
    let mut iter = keys.into_iter();
    let concurrency = usize::from(c.concurrency);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        if !lease.is_held() {
            set.abort_all();
            progress.finish();
            bail!(
                "lost the rewrap lock on {location} (its lease ran out); stopped. Run the rewrap again: it resumes where it stopped"
            );
        }
        while set.len() < concurrency {
            let Some(key) = iter.next() else { break };
            let store = store.clone();
            set.spawn(async move {
                let done = rewrap_and_check(&store, &key).await;
                (key, done)
            });
        }
        let joined = tokio::select! {
            j = set.join_next() => j,
            _ = &mut interrupted => {
                set.abort_all();
                progress.finish();
                bail!("interrupted; every object is either re-encrypted or untouched. Run the rewrap again to finish");
            }
        };
        let Some(joined) = joined else { break };
        let (key, done) = joined.map_err(|e| anyhow!("a rewrap task failed: {e}"))?;
        match done {
            Done::Rewrapped => summary.rewrapped += 1,
            Done::Current => summary.current += 1,
            Done::Deleted => summary.deleted += 1,
            Done::Failed(msg) => {
                progress.println(&format!("encstore: rewrap: {key}: {msg}"));
                summary.failed.push((key, msg));
            }
            Done::PrefixLess(msg) => {
                progress.println(&format!("encstore: rewrap: {key}: {msg}"));
                summary.prefix_less += 1;
                summary.failed.push((key, msg));
            }
        }
        progress.inc();
    }
    progress.finish();
    Ok(summary)
}

fn print_summary(c: &StoreRewrap, store: &EncryptedStorage, s: &Summary) -> Result<()> {
    let primary = store.keyset().snapshot().primary_key_id();
    let text = if c.json {
        let failed = failures_json(&s.failed);
        format!(
            "{}\n",
            json!({
                "objects": s.objects,
                "rewrapped": s.rewrapped,
                "already_current": s.current,
                "deleted": s.deleted,
                "failed": failed,
                "primary_key_id": primary,
                "prefix_less_unattributed": s.prefix_less,
            })
        )
    } else {
        let mut text = format!(
            "rewrap: {} objects: re-encrypted {}, already current {}, deleted meanwhile {}, failed {} (primary key {primary})\n",
            s.objects,
            s.rewrapped,
            s.current,
            s.deleted,
            s.failed.len()
        );
        if s.prefix_less > 0 {
            text.push_str(&format!(
                "of the failures, {} are {PREFIX_LESS} (never taken as plaintext while the keyset holds a RAW key)\n",
                s.prefix_less
            ));
        }
        text
    };
    io::write_output(None, text.as_bytes(), "the summary")?;
    if !s.failed.is_empty() {
        bail!(
            "{} object(s) could not be re-encrypted (listed above); they were left untouched",
            s.failed.len()
        );
    }
    Ok(())
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
                "prefix_less_unattributed": census.prefix_less_unattributed,
                "allow_plaintext_refused": refuses,
            })
        )
    } else {
        let mut s = format!(
            "dry run: {} objects; would re-encrypt {would} under primary key {primary}; {} already current\n",
            census.total,
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
                    "  {} plaintext objects would fail (add --allow-plaintext to encrypt them)\n",
                    census.plaintext
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
        "refusing --allow-plaintext: {} object(s) in {location} have no Tink prefix and no enabled RAW key decrypts them, and the keyset holds RAW key(s) {}: they may be ciphertexts under a RAW key that was destroyed or removed, not plaintext, and encrypting them would bury them. Nothing was changed. Run `encstore store status` to see them; restore the RAW key that wrote them, or move them out of the store, before migrating",
        census.prefix_less_unattributed,
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
    let mut set: JoinSet<(String, std::result::Result<Option<u32>, String>)> = JoinSet::new();
    let mut iter = keys.into_iter();
    let concurrency = usize::from(c.concurrency);
    let mut ok = 0u64;
    let mut deleted = 0u64;
    let mut plaintext = 0u64;
    let mut failed: Vec<(String, String)> = Vec::new();
    loop {
        while set.len() < concurrency {
            let Some(key) = iter.next() else { break };
            let store = store.clone();
            set.spawn(async move {
                let r = verify_one(&store, &key).await;
                (key, r)
            });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (key, r) = joined.map_err(|e| anyhow!("a verify task failed: {e}"))?;
        match r {
            Ok(Some(_)) => ok += 1,
            Ok(None) => plaintext += 1,
            Err(msg) if msg.is_empty() => deleted += 1,
            Err(msg) => {
                progress.println(&format!("encstore: verify: FAILED {key}: {msg}"));
                failed.push((key, msg));
            }
        }
        progress.inc();
    }
    progress.finish();
    failed.sort();
    let text = if c.json {
        let f = failures_json(&failed);
        format!(
            "{}\n",
            json!({"objects": total, "ok": ok, "plaintext": plaintext, "deleted": deleted, "failed": f})
        )
    } else {
        let mut s = format!(
            "verify: {total} objects: {ok} decrypt, {} failed",
            failed.len()
        );
        if plaintext > 0 {
            s.push_str(&format!(", {plaintext} plaintext (migration mode)"));
        }
        if deleted > 0 {
            s.push_str(&format!(", {deleted} deleted meanwhile"));
        }
        s.push('\n');
        s
    };
    io::write_output(None, text.as_bytes(), "the report")?;
    if !failed.is_empty() {
        bail!(
            "{} of {total} object(s) failed to decrypt (listed above)",
            failed.len()
        );
    }
    Ok(())
}

/// Decrypts one object: `Ok(Some(id))` when the keyset decrypts it (`id`
/// from its Tink prefix, 0 for a RAW key), `Ok(None)` for a plaintext
/// object in migration mode, `Err("")` when it was deleted meanwhile, and
/// `Err(msg)` for a failure.
async fn verify_one(
    store: &EncryptedStorage,
    key: &str,
) -> std::result::Result<Option<u32>, String> {
    let raw = match store.inner().load(key).await {
        Ok(raw) => raw,
        Err(Error::NotFound { .. }) => return Err(String::new()),
        Err(e) => return Err(e.to_string()),
    };
    let snap = store.keyset().snapshot();
    let ad = store.associated_data(key);
    if snap.aead_decrypts(&raw, &ad) {
        return Ok(Some(prefix_key_id(&raw).unwrap_or(0)));
    }
    // Not decryptable with the keyset: the library's load says why (and
    // returns plaintext objects in migration mode).
    match store.load(key).await {
        Ok(value) => {
            drop(zeroize::Zeroizing::new(Vec::from(value)));
            Ok(None)
        }
        Err(Error::NotFound { .. }) => Err(String::new()),
        Err(e) => Err(explain_failure(store, key)
            .await
            .unwrap_or_else(|| e.to_string())),
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
        assert!(e("gs://bucket").contains("unsupported scheme"));
        assert!(e("file://rel/path").contains("absolute path"));
        assert!(e("").contains("empty"));
        assert!(e("/nonexistent/encstore/store").contains("does not exist"));
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("file://{}", d.path().display());
        assert!(open_backend(&url, false).is_ok());
    }
}
