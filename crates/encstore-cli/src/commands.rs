//! The keyset commands (Tinkey-compatible) and `encrypt`/`decrypt`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use encstore::keyfile::{self, KeyfileError, KeysetFile};
use encstore_core::Aead;
use encstore_tink::keyset::{KeyInfo, Keyset, KeysetInfo, detect_format};
use encstore_tink::primitives::KeyParams;
use zeroize::Zeroizing;

use crate::cli::{
    Command, ConvertKeyset, CreateKeyset, CreateMasterKey, Crypt, KeyIdCommand, KeyTemplateCommand,
    KeysetIn, KeysetInOut, KeysetOut, ListKeyset, MasterKeyArgs, RetireKeyCommand,
};
use crate::io;
use crate::keysets::{self, Master};

/// Runs one command.
pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::CreateKeyset(c) => create_keyset(&c).await,
        Command::AddKey(c) => add_key(&c, false).await,
        Command::RotateKeyset(c) => add_key(&c, true).await,
        Command::PromoteKey(c) => manage(&c.key, None, c.force, Op::Promote).await,
        Command::DisableKey(c) => manage(&c.key, Some(&c), false, Op::Disable).await,
        Command::EnableKey(c) => manage(&c.key, None, c.force, Op::Enable).await,
        Command::DestroyKey(c) => manage(&c.key, Some(&c), false, Op::Destroy).await,
        Command::DeleteKey(c) => manage(&c.key, Some(&c), false, Op::Delete).await,
        Command::ListKeyset(c) => list_keyset(&c).await,
        Command::ConvertKeyset(c) => convert_keyset(&c).await,
        Command::ListKeyTemplates => list_key_templates(),
        Command::Encrypt(c) => crypt(&c, true).await,
        Command::Decrypt(c) => crypt(&c, false).await,
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
        .map_err(|e| anyhow::anyhow!("crypto provider: {e}"))
}

async fn create_master_key(c: &CreateMasterKey) -> Result<()> {
    let uri = &c.master_key_uri;
    let scheme = uri.split_once(':').map_or("", |(s, _)| s);
    if !scheme.eq_ignore_ascii_case("pkcs11") {
        anyhow::bail!(
            "unsupported master key URI scheme {scheme:?} (in {:?}): create-master-key needs a pkcs11: URI",
            keysets::display_uri(uri)
        );
    }
    keysets::open_pkcs11(uri, true).await?;
    note(&format!(
        "created a non-extractable AES-256 master key: {}
Use it with --master-key-uri (create-keyset, convert-keyset --new-master-key-uri, ...).",
        keysets::display_uri(uri)
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
enum Dest {
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
fn dest_other(out: &KeysetOut, overwrite: bool, flag: &'static str) -> Result<Dest> {
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
async fn read_keyset(
    input: &KeysetIn,
    master: &MasterKeyArgs,
    out: Option<(&KeysetOut, bool, &'static str)>,
) -> Result<(Keyset, Option<Master>, Dest)> {
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

/// Reads the keyset of a command that rewrites it (`--in`, `--out`).
async fn read_for_update(
    k: &KeysetInOut,
    overwrite: bool,
    flag: &'static str,
) -> Result<(Keyset, Option<Master>, Dest)> {
    read_keyset(&k.input, &k.master, Some((&k.out, overwrite, flag))).await
}

async fn write_keyset(
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
    match dest {
        Dest::Stdout => {
            if master.is_none() && std::io::stdout().is_terminal() {
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
const CLEARTEXT_CREATED: &str = "warning: the keyset is in cleartext (no --master-keyset or --master-key-uri): anyone who can read it can decrypt everything it protects; use it for tests and local development only (docs/key-management.md)";

/// Refuses a key made from `template` that the `--policy` does not allow,
/// before anything is written. Policies list AEAD key families: a
/// streaming AEAD key passes without `--policy` and is refused with one.
fn check_new_key(keyset: &Keyset, key_id: u32, template: &str, policy: Option<&str>) -> Result<()> {
    let params = keyset
        .info()
        .keys
        .into_iter()
        .find(|k| k.key_id == key_id)
        .and_then(|k| k.params);
    if let Some(p) = &params
        && p.is_streaming()
    {
        return match policy {
            None => Ok(()),
            Some(name) => Err(anyhow!(
                "template {template} makes a streaming AEAD key; key policies list AEAD key types only, so --policy {name} cannot allow it; nothing was written"
            )),
        };
    }
    let policy = crate::store::policy(policy)?;
    match params {
        Some(p) if policy.allows(&p) => Ok(()),
        Some(p) => Err(anyhow!(
            "template {template} ({}) is not allowed by policy {:?}; nothing was written",
            encstore::policy::describe(&p),
            policy.name
        )),
        None => Err(anyhow!("template {template} made a key without parameters")),
    }
}

async fn create_keyset(c: &CreateKeyset) -> Result<()> {
    let template = keysets::template(&c.key_template)?;
    let dest = dest_other(&c.out, c.force, "--force")?;
    let master = keysets::open_master(&c.master).await?;
    let keyset = Keyset::generate(&template)
        .with_context(|| format!("cannot create a key from template {}", c.key_template))?;
    check_new_key(
        &keyset,
        keyset.primary_key_id(),
        &c.key_template,
        c.policy.as_deref(),
    )?;
    write_keyset(&keyset, c.out.out_format, dest, master.as_ref()).await?;
    note(&format!(
        "created keyset with key {} ({}) as primary",
        keyset.primary_key_id(),
        c.key_template
    ));
    if master.is_none() {
        note(CLEARTEXT_CREATED);
    }
    Ok(())
}

async fn add_key(c: &KeyTemplateCommand, rotate: bool) -> Result<()> {
    let template = keysets::template(&c.key_template)?;
    let (mut keyset, master, dest) = read_for_update(&c.keyset, c.force, "--force").await?;
    let old_primary = keyset.primary_key_id();
    let id = if rotate {
        keyset.rotate(&template)
    } else {
        keyset.add_key(&template)
    }
    .with_context(|| format!("cannot add a key from template {}", c.key_template))?;
    check_new_key(&keyset, id, &c.key_template, c.policy.as_deref())?;
    write_keyset(&keyset, c.keyset.out.out_format, dest, master.as_ref()).await?;
    if rotate {
        note(&format!(
            "warning: rotate-keyset added key {id} ({tmpl}) and made it the primary at once.
Every reader must have key {id} before any data is written with it: a reader
still on the old keyset cannot decrypt what the new primary writes.
The safe rollout is:
  1) encstore add-key --key-template {tmpl}, then deploy that keyset to every reader;
  2) encstore promote-key --key-id {id}, then deploy it;
  3) re-encrypt existing data under the new primary:
     encstore store rewrap --store LOCATION --keyset KEYSET (check with encstore store status);
  4) encstore disable-key --key-id {old_primary} --store LOCATION (the old primary): it refuses
     while objects are still under that key.
See docs/rotation.md.",
            tmpl = c.key_template
        ));
    } else {
        note(&format!(
            "added key {id} ({tmpl}), ENABLED, not primary.
Next: deploy this keyset to every reader, then `encstore promote-key --key-id {id}`.",
            tmpl = c.key_template
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Promote,
    Disable,
    Enable,
    Destroy,
    Delete,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Promote => "promote",
            Op::Disable => "disable",
            Op::Enable => "enable",
            Op::Destroy => "destroy",
            Op::Delete => "delete",
        }
    }
}

async fn manage(
    c: &KeyIdCommand,
    retire: Option<&RetireKeyCommand>,
    force: bool,
    op: Op,
) -> Result<()> {
    // The retire commands' --force overrides the store check; for them,
    // replacing another existing --out file takes --overwrite.
    let flag = if retire.is_some() {
        "--overwrite"
    } else {
        "--force"
    };
    let (mut keyset, master, dest) = read_for_update(&c.keyset, force, flag).await?;
    let id = c.key_id;
    let checked = match retire {
        Some(r) => match &r.store {
            Some(location) => {
                crate::store::check_retire(&keyset, id, location, c, r.force, op.verb()).await?;
                true
            }
            None => false,
        },
        None => false,
    };
    match op {
        Op::Promote => keyset.promote(id),
        Op::Disable => keyset.disable(id),
        Op::Enable => keyset.enable(id),
        Op::Destroy => keyset.destroy(id),
        Op::Delete => keyset.delete(id),
    }
    .map_err(|e| anyhow!("{e}"))?;
    write_keyset(&keyset, c.keyset.out.out_format, dest, master.as_ref()).await?;
    let consequence = match op {
        Op::Promote => {
            note(&format!(
                "key {id} is now the primary: new data is encrypted with it. Every reader must already have it.
Next: deploy this keyset, then re-encrypt existing data: `encstore store rewrap --store LOCATION --keyset KEYSET`."
            ));
            return Ok(());
        }
        Op::Enable => {
            note(&format!("key {id} is ENABLED"));
            return Ok(());
        }
        Op::Disable => "no longer decrypts (until enable-key)",
        Op::Destroy => "has lost its key material for good",
        Op::Delete => "is gone from the keyset for good",
    };
    if checked {
        note(&format!("key {id} {consequence}."));
    } else {
        note(&format!(
            "warning: key {id} {consequence}; data still encrypted under it will not decrypt.
warning: the store cannot be checked for such data without --store LOCATION; make sure everything was re-encrypted first (`encstore store status`)."
        ));
    }
    Ok(())
}

async fn list_keyset(c: &ListKeyset) -> Result<()> {
    // Without a master key (open_master refuses associated data then),
    // an encrypted keyset is listed from its unauthenticated keysetInfo.
    let master = keysets::open_master(&c.master).await?;
    let bytes = io::read_input_secret(c.input.input.as_deref(), "keyset")?;
    let what = io::file_name(c.input.input.as_deref()).map_or_else(
        || "the keyset on stdin".to_owned(),
        |p| format!("keyset {p}"),
    );
    keysets::check_not_empty(&bytes, &what)?;
    let format = keysets::format_of(&bytes, c.input.in_format);
    let detected = detect_format(&bytes);
    let declared_json = format == crate::cli::Format::Json;
    if master.is_none() && detected.is_encrypted() && detected.is_json() == declared_json {
        let info = encstore_tink::keyset::encrypted_keyset_info(&bytes)
            .map_err(|e| anyhow!("{what} is not a valid encrypted keyset: {e}"))?
            .ok_or_else(|| {
                anyhow!(
                    "{what} is an encrypted keyset without a keysetInfo; give its master key (--master-keyset PATH or --master-key-uri URI) to list it"
                )
            })?;
        note(&format!(
            "warning: {what} is encrypted and no master key was given: this is the keysetInfo stored in the clear beside it, which is NOT authenticated (anyone who can write the file can change it) and has no key parameters; give --master-keyset or --master-key-uri to list the keyset itself"
        ));
        let text = if c.json {
            info_json(&info, true)
        } else {
            format!(
                "UNAUTHENTICATED keysetInfo (encrypted keyset, no master key given: not verified)\n{}",
                info_table(&info)
            )
        };
        return io::write_output(None, text.as_bytes(), "the listing");
    }
    let keyset = keysets::load(&bytes, format, master.as_ref(), &what, "--in-format").await?;
    let info = keyset.info();
    let text = if c.json {
        info_json(&info, false)
    } else {
        info_table(&info)
    };
    io::write_output(None, text.as_bytes(), "the listing")
}

/// The keyset info in the shape of Tink's JSON `KeysetInfo` (as in an
/// encrypted keyset's `keysetInfo`), so scripts can reuse one parser; with
/// `"unauthenticated": true` when it was read without the master key.
fn info_json(info: &KeysetInfo, unauthenticated: bool) -> String {
    let keys: Vec<serde_json::Value> = info
        .keys
        .iter()
        .map(|k| {
            serde_json::json!({
                "typeUrl": k.type_url,
                "status": k.status.as_str(),
                "keyId": k.key_id,
                "outputPrefixType": k.output_prefix.as_str(),
            })
        })
        .collect();
    let mut v = serde_json::json!({ "primaryKeyId": info.primary_key_id, "keyInfo": keys });
    if unauthenticated && let Some(o) = v.as_object_mut() {
        o.insert("unauthenticated".into(), true.into());
    }
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

fn info_table(info: &KeysetInfo) -> String {
    let rows: Vec<[String; 6]> = info
        .keys
        .iter()
        .map(|k| {
            [
                if k.primary { "*".into() } else { String::new() },
                k.key_id.to_string(),
                k.status.as_str().to_owned(),
                k.output_prefix.as_str().to_owned(),
                short_type(k),
                k.params
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), describe_params),
            ]
        })
        .collect();
    let header = [
        "PRIMARY",
        "KEY ID",
        "STATUS",
        "PREFIX",
        "TYPE",
        "PARAMETERS",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

fn short_type(k: &KeyInfo) -> String {
    match k.type_url.rsplit('.').next() {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => "(destroyed)".to_owned(),
    }
}

fn describe_params(p: &KeyParams) -> String {
    match p {
        KeyParams::AesGcm { key_size } => format!("AES-{}-GCM", key_size * 8),
        KeyParams::AesGcmSiv { key_size } => format!("AES-{}-GCM-SIV", key_size * 8),
        KeyParams::AesEax { key_size, iv_size } => {
            format!("AES-{}-EAX, {iv_size}-byte IV", key_size * 8)
        }
        KeyParams::AesCtrHmac {
            aes_key_size,
            iv_size,
            hmac_key_size,
            hash,
            tag_size,
        } => format!(
            "AES-{}-CTR ({iv_size}-byte IV) + HMAC-{hash} ({hmac_key_size}-byte key, {tag_size}-byte tag)",
            aes_key_size * 8
        ),
        KeyParams::ChaCha20Poly1305 => "ChaCha20-Poly1305".to_owned(),
        KeyParams::XChaCha20Poly1305 => "XChaCha20-Poly1305".to_owned(),
        KeyParams::XAesGcm { salt_size } => format!("XAES-256-GCM, {salt_size}-byte salt"),
        KeyParams::AesGcmHkdfStreaming {
            key_size,
            derived_key_size,
            hkdf_hash,
            ciphertext_segment_size,
        } => format!(
            "streaming AES-{}-GCM, HKDF-{hkdf_hash} ({key_size}-byte key), {ciphertext_segment_size}-byte segments",
            derived_key_size * 8
        ),
        KeyParams::AesCtrHmacStreaming {
            key_size,
            derived_key_size,
            hkdf_hash,
            hmac_hash,
            tag_size,
            ciphertext_segment_size,
        } => format!(
            "streaming AES-{}-CTR + HMAC-{hmac_hash} ({tag_size}-byte tag), HKDF-{hkdf_hash} ({key_size}-byte key), {ciphertext_segment_size}-byte segments",
            derived_key_size * 8
        ),
        other => format!("{other:?}"),
    }
}

async fn convert_keyset(c: &ConvertKeyset) -> Result<()> {
    let (keyset, old_master, dest) = read_for_update(&c.keyset, c.force, "--force").await?;
    let new_ad_given =
        c.new_keyset_associated_data.is_some() || c.new_keyset_associated_data_hex.is_some();
    let new_ad = if new_ad_given {
        io::text_or_hex(
            c.new_keyset_associated_data.as_deref(),
            c.new_keyset_associated_data_hex.as_deref(),
            "--new-keyset-associated-data-hex",
        )?
    } else {
        // By default the keyset stays bound to the same associated data.
        io::text_or_hex(
            c.keyset.master.keyset_associated_data.as_deref(),
            c.keyset.master.keyset_associated_data_hex.as_deref(),
            "--keyset-associated-data-hex",
        )?
    };
    let new_master = keysets::open_kek(
        c.new_master_keyset.as_deref(),
        c.new_master_keyset_format,
        c.new_master_key_uri.as_deref(),
        new_ad,
        new_ad_given,
        "--new-master-keyset",
    )
    .await?;
    if new_master.is_none() && old_master.is_some() {
        note(
            "warning: writing the keyset in cleartext (no --new-master-keyset or --new-master-key-uri): its key material is unprotected",
        );
    }
    write_keyset(&keyset, c.keyset.out.out_format, dest, new_master.as_ref()).await
}

/// Why `decrypt` failed: for a ciphertext whose prefix names a key, whether
/// the keyset has that key (and in which status) or not at all.
fn decrypt_error(
    keyset: &Keyset,
    path: &Path,
    what: &str,
    e: &encstore_core::AeadError,
) -> anyhow::Error {
    let shown = path.display();
    let encstore_core::AeadError::UnknownKeyId { key_id } = e else {
        return anyhow!("cannot decrypt {what} with keyset {shown}: {e}");
    };
    let status = keyset
        .info()
        .keys
        .iter()
        .find(|k| k.key_id == *key_id)
        .map(|k| k.status);
    match status {
        Some(encstore_tink::keyset::KeyStatus::Disabled) => {
            let p = crate::store::sh(&shown.to_string());
            anyhow!(
                "cannot decrypt {what}: it is encrypted under key {key_id}, which is DISABLED in keyset {shown}; re-enable it with `encstore enable-key --key-id {key_id} --in {p} --out {p}`"
            )
        }
        Some(s) => anyhow!(
            "cannot decrypt {what}: it is encrypted under key {key_id}, which is {s} in keyset {shown}: its key material is gone, so only a backup of the keyset from before it was destroyed can decrypt it"
        ),
        None => anyhow!(
            "cannot decrypt {what}: it is encrypted under key ID {key_id}, which keyset {shown} does not have (was it written with a newer keyset?)"
        ),
    }
}

fn list_key_templates() -> Result<()> {
    let mut out = String::new();
    for name in keysets::template_names() {
        out.push_str(name);
        out.push('\n');
    }
    io::write_output(None, out.as_bytes(), "the template list")
}

async fn crypt(c: &Crypt, encrypt: bool) -> Result<()> {
    let keyset = keysets::load_file(&c.keyset, c.keyset_format, &c.master).await?;
    if c.policy.is_some() {
        // The same check a server makes when it loads the keyset.
        encstore::ReloadableKeyset::new(&keyset, crate::store::policy(c.policy.as_deref())?)
            .map_err(|e| anyhow!("keyset {}: {e}", c.keyset.display()))?;
    }
    let aead = keyset
        .aead()
        .map_err(|e| anyhow!("keyset {}: {e}", c.keyset.display()))?;
    let ad = io::text_or_hex(
        c.associated_data.as_deref(),
        c.associated_data_hex.as_deref(),
        "--associated-data-hex",
    )?;
    let mut input = io::read_input_secret(c.input.as_deref(), "input")?;
    let what = io::file_name(c.input.as_deref()).unwrap_or_else(|| "stdin".to_owned());
    // The whole result is computed in memory before anything is written.
    let output = zeroize::Zeroizing::new(if encrypt {
        aead.encrypt(&input, &ad)
            .map_err(|e| anyhow!("cannot encrypt {what}: {e}"))?
    } else {
        aead.decrypt_owned(std::mem::take(&mut *input), &ad)
            .map_err(|e| decrypt_error(&keyset, &c.keyset, &what, &e))?
    });
    io::write_output(
        c.output.as_deref(),
        &output,
        if encrypt {
            "the ciphertext"
        } else {
            "the plaintext"
        },
    )
}
