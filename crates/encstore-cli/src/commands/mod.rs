//! The keyset commands (Tinkey-compatible) and `encrypt`/`decrypt`.
//!
//! - this module: dispatch, and reading and writing the `--in`/`--out`
//!   keyset (locks, in-place edits, refusing to overwrite);
//! - [`keys`]: create-keyset, add-key, rotate-keyset, promote/disable/
//!   enable/destroy/delete-key, convert-keyset;
//! - [`list`]: the `list-keyset` command;
//! - [`crypt`]: encrypt, decrypt, list-key-templates.

mod crypt;
pub(crate) use crypt::SIGNAL_GRACE;
mod keys;
mod list;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use encstore::keyfile::{self, KeyfileError, KeysetFile};
use encstore::open::KekScheme;
use encstore_tink::keyset::Keyset;
use zeroize::Zeroizing;

use crate::cli::{Command, CreateMasterKey, KeysetIn, KeysetInOut, KeysetOut, MasterKeyArgs};
use crate::io;
use crate::keysets::{self, Master};

/// Runs one command.
pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::CreateKeyset(c) => keys::create_keyset(&c).await,
        Command::AddKey(c) => keys::add_key(&c, false).await,
        Command::RotateKeyset(c) => keys::add_key(&c, true).await,
        Command::PromoteKey(c) => keys::manage(&c.key, None, c.force, keys::Op::Promote).await,
        Command::DisableKey(c) => keys::manage(&c.key, Some(&c), false, keys::Op::Disable).await,
        Command::EnableKey(c) => keys::manage(&c.key, None, c.force, keys::Op::Enable).await,
        Command::DestroyKey(c) => keys::manage(&c.key, Some(&c), false, keys::Op::Destroy).await,
        Command::DeleteKey(c) => keys::manage(&c.key, Some(&c), false, keys::Op::Delete).await,
        Command::ListKeyset(c) => list::list_keyset(&c).await,
        Command::ConvertKeyset(c) => keys::convert_keyset(&c).await,
        Command::RewrapKeyset(c) => keys::rewrap_keyset(&c).await,
        Command::ListKeyTemplates => crypt::list_key_templates(),
        Command::Encrypt(c) => crypt::crypt(&c, true).await,
        Command::Decrypt(c) => crypt::crypt(&c, false).await,
        Command::CreateMasterKey(c) => create_master_key(&c).await,
        Command::Store(c) => crate::store::run(c).await,
        Command::Quickstart(c) => Box::pin(crate::quickstart::run(&c)).await,
        Command::Providers => providers(),
    }
}

/// `encstore providers`: the crypto provider in use, one `name: value`
/// line each, so an auditor can check a deployed binary. Fails (after
/// printing what it knows) when no provider can be used, such as the FIPS
/// module not being in FIPS mode.
fn providers() -> Result<()> {
    use encstore_tink::provider::{self, Provider};
    let compiled: Vec<&str> = Provider::compiled().iter().map(|p| p.name()).collect();
    let mut out = String::new();
    let status = provider::status();
    if let Ok(s) = &status {
        out.push_str(&format!("provider: {}\n", s.name()));
        out.push_str(&format!("description: {}\n", s.description));
        if let Some(v) = &s.library_version {
            out.push_str(&format!("library: AWS-LC {v}\n"));
        }
        out.push_str(&format!(
            "fips_mode: {}\n",
            if s.fips_mode { "yes" } else { "no" }
        ));
        if let Some(how) = s.selection {
            out.push_str(&format!("selected_by: {}\n", how.as_str()));
        }
        out.push_str(&format!("randomness: {}\n", s.randomness));
    }
    out.push_str(&format!("compiled: {}\n", compiled.join(", ")));
    io::write_output(None, out.as_bytes(), "the provider list")?;
    status
        .map(|_| ())
        .map_err(|e| anyhow!("crypto provider: {e}"))
}

async fn create_master_key(c: &CreateMasterKey) -> Result<()> {
    let uri = &c.master_key_uri;
    encstore::open::create_master_key(uri)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let what = match uri.scheme() {
        KekScheme::HcVault => "a transit key (type aes256-gcm96, not exportable)",
        _ => "a non-extractable AES-256 master key",
    };
    note(&format!(
        "created {what}: {uri}
Use it with --master-key-uri (create-keyset, convert-keyset --new-master-key-uri, ...)."
    ));
    Ok(())
}

/// Prints a message for the operator on stderr (stdout may carry a keyset).
pub(crate) fn note(msg: &str) {
    for line in msg.lines() {
        eprintln!("encstore: {line}");
    }
}

/// Where a command writes its keyset.
pub(crate) enum Dest {
    /// `--out` is the `--in` file: it stays locked for the whole command and
    /// is replaced only if it still holds the bytes that were read.
    InPlace(KeysetFile),
    /// Another file: replaced only with `overwrite` (`flag` says how).
    File {
        path: PathBuf,
        overwrite: bool,
        flag: &'static str,
    },
    /// Standard output.
    Stdout,
}

/// The `--out` destination of `out`; an existing file that is not the
/// `--in` file is refused now, before any work, unless `overwrite`.
pub(crate) fn dest_other(out: &KeysetOut, overwrite: bool, flag: &'static str) -> Result<Dest> {
    let Some(path) = io::file_name(out.output.as_deref()).map(PathBuf::from) else {
        return Ok(Dest::Stdout);
    };
    let overwrite = overwrite || out.overwrite;
    if !overwrite && std::fs::symlink_metadata(&path).is_ok() {
        let target = keyfile::resolve(&path).unwrap_or_else(|_| path.clone());
        if std::fs::symlink_metadata(&target).is_ok() {
            bail!(exists_message(&path, flag));
        }
    }
    Ok(Dest::File {
        path,
        overwrite,
        flag,
    })
}

fn exists_message(path: &Path, flag: &str) -> String {
    format!(
        "{} already exists; nothing was written (pass {flag} to replace it)",
        path.display()
    )
}

fn waiting_note(path: &Path) -> impl FnMut() + Send + 'static {
    let shown = path.display().to_string();
    move || {
        note(&format!(
            "waiting for another command that is rewriting keyset {shown} (it holds the file's lock)"
        ));
    }
}

/// Opens and locks `path` on a blocking thread (the wait may be long).
async fn lock_keyset(path: &Path) -> Result<KeysetFile> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut wait = waiting_note(&owned);
        KeysetFile::open_locked(&owned, &mut wait)
    })
    .await
    .map_err(|e| anyhow!("the keyset lock task failed: {e}"))?
    .map_err(|e| anyhow!("keyset {}: {e}", path.display()))
}

/// Reads the `--in` keyset with its master key. With `out`, also decides
/// where the result goes: when `--out` is the `--in` file, that file is
/// locked before it is read and stays locked until the command ends.
/// `overwrite` allows replacing another existing `--out` file (`flag` is
/// how the user says so).
pub(crate) async fn read_keyset(
    input: &KeysetIn,
    master: &MasterKeyArgs,
    out: Option<(&KeysetOut, bool, &'static str)>,
) -> Result<(Keyset, Option<Master>, Dest)> {
    let (bytes, master, dest, what) = read_keyset_bytes(input, master, out).await?;
    let keyset = keysets::load(
        &bytes,
        keysets::format_of(&bytes, input.in_format),
        master.as_ref(),
        &what,
        "--in-format",
    )
    .await?;
    Ok((keyset, master, dest))
}

/// The bytes of the `--in` keyset, its master key, where the result goes
/// (as [`read_keyset`]) and how messages name the input.
pub(crate) async fn read_keyset_bytes(
    input: &KeysetIn,
    master: &MasterKeyArgs,
    out: Option<(&KeysetOut, bool, &'static str)>,
) -> Result<(Zeroizing<Vec<u8>>, Option<Master>, Dest, String)> {
    let in_path = io::file_name(input.input.as_deref()).map(PathBuf::from);
    let out_path = out.and_then(|(o, _, _)| io::file_name(o.output.as_deref()).map(PathBuf::from));
    let master = keysets::open_master(master).await?;
    let (bytes, dest) = match (&in_path, &out_path, out) {
        (Some(i), Some(o), Some(_)) if keyfile::same_file(i, o) => {
            let locked = lock_keyset(i).await?;
            (
                Zeroizing::new(locked.bytes().to_vec()),
                Dest::InPlace(locked),
            )
        }
        _ => {
            let dest = match out {
                Some((o, overwrite, flag)) => dest_other(o, overwrite, flag)?,
                None => Dest::Stdout,
            };
            let bytes = io::read_input_secret(input.input.as_deref(), "keyset")?;
            (bytes, dest)
        }
    };
    let what = in_path.as_ref().map_or_else(
        || "the keyset on stdin".to_owned(),
        |p| format!("keyset {}", p.display()),
    );
    Ok((bytes, master, dest, what))
}

/// Reads the keyset of a command that rewrites it (`--in`, `--out`).
pub(crate) async fn read_for_update(
    k: &KeysetInOut,
    overwrite: bool,
    flag: &'static str,
) -> Result<(Keyset, Option<Master>, Dest)> {
    read_keyset(&k.input, &k.master, Some((&k.out, overwrite, flag))).await
}

pub(crate) async fn write_keyset(
    keyset: &Keyset,
    format: Option<crate::cli::Format>,
    dest: Dest,
    master: Option<&Master>,
) -> Result<()> {
    let format = match (&dest, format) {
        (_, Some(f)) => f,
        // An edit in place keeps the file's format.
        (Dest::InPlace(locked), None) => keysets::format_of(locked.bytes(), None),
        (_, None) => crate::cli::Format::Json,
    };
    let bytes = keysets::serialize(keyset, format, master).await?;
    write_bytes(bytes, dest, master.is_some()).await
}

/// Writes serialized keyset `bytes` to `dest`, as [`write_keyset`] does
/// (`encrypted`: whether they are an encrypted keyset).
pub(crate) async fn write_bytes(
    bytes: Zeroizing<Vec<u8>>,
    dest: Dest,
    encrypted: bool,
) -> Result<()> {
    match dest {
        Dest::Stdout => {
            if !encrypted && std::io::stdout().is_terminal() {
                note(CLEARTEXT_ON_TERMINAL);
            }
            io::write_output(None, &bytes, "the keyset")
        }
        Dest::InPlace(locked) => locked
            .replace(&bytes)
            .map_err(|e| anyhow!("cannot write the keyset: {e}")),
        Dest::File {
            path,
            overwrite,
            flag,
        } => {
            let shown = path.clone();
            tokio::task::spawn_blocking(move || {
                let mut wait = waiting_note(&path);
                keyfile::write_new(&path, &bytes, overwrite, &mut wait)
            })
            .await
            .map_err(|e| anyhow!("the keyset write task failed: {e}"))?
            .map_err(|e| match e {
                KeyfileError::Exists { .. } => anyhow!(exists_message(&shown, flag)),
                e => anyhow!("cannot write the keyset to {}: {e}", shown.display()),
            })
        }
    }
}

/// The warning for a cleartext keyset printed on a terminal.
const CLEARTEXT_ON_TERMINAL: &str = "warning: writing a cleartext keyset to the terminal: its key material is now on your screen (and perhaps in the terminal's scrollback); redirect it to a file (--out PATH) or give a master key (--master-keyset PATH or --master-key-uri URI)";

/// The warning for a keyset created without a master key
/// (docs/key-management.md, "A cleartext keyset").
pub(crate) const CLEARTEXT_CREATED: &str = "warning: the keyset is in cleartext (no --master-keyset or --master-key-uri): anyone who can read it can decrypt everything it protects; use it for tests and local development only (docs/key-management.md)";
