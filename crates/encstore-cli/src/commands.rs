//! The keyset commands (Tinkey-compatible) and `encrypt`/`decrypt`.

use anyhow::{Context, Result, anyhow};
use encstore_core::Aead;
use encstore_tink::keyset::{KeyInfo, Keyset, KeysetInfo};
use encstore_tink::primitives::KeyParams;

use crate::cli::{
    Command, ConvertKeyset, CreateKeyset, CreateMasterKey, Crypt, KeyIdCommand, KeyTemplateCommand,
    KeysetIn, ListKeyset, MasterKeyArgs, RetireKeyCommand,
};
use crate::io;
use crate::keysets::{self, Master};

/// Runs one command.
pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::CreateKeyset(c) => create_keyset(&c).await,
        Command::AddKey(c) => add_key(&c, false).await,
        Command::RotateKeyset(c) => add_key(&c, true).await,
        Command::PromoteKey(c) => manage(&c, None, Op::Promote).await,
        Command::DisableKey(c) => manage(&c.key, Some(&c), Op::Disable).await,
        Command::EnableKey(c) => manage(&c, None, Op::Enable).await,
        Command::DestroyKey(c) => manage(&c.key, Some(&c), Op::Destroy).await,
        Command::DeleteKey(c) => manage(&c.key, Some(&c), Op::Delete).await,
        Command::ListKeyset(c) => list_keyset(&c).await,
        Command::ConvertKeyset(c) => convert_keyset(&c).await,
        Command::ListKeyTemplates => list_key_templates(),
        Command::Encrypt(c) => crypt(&c, true).await,
        Command::Decrypt(c) => crypt(&c, false).await,
        Command::CreateMasterKey(c) => create_master_key(&c).await,
        Command::Store(c) => crate::store::run(c).await,
        Command::Quickstart(c) => Box::pin(crate::quickstart::run(&c)).await,
    }
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

/// Reads the `--in` keyset with its master key.
async fn read_keyset(input: &KeysetIn, master: &MasterKeyArgs) -> Result<(Keyset, Option<Master>)> {
    let master = keysets::open_master(master).await?;
    let bytes = zeroize::Zeroizing::new(io::read_input(input.input.as_deref(), "keyset")?);
    let what = io::file_name(input.input.as_deref()).map_or_else(
        || "the keyset on stdin".to_owned(),
        |p| format!("keyset {p}"),
    );
    let keyset = keysets::load(
        &bytes,
        input.in_format,
        master.as_ref(),
        &what,
        "--in-format",
    )
    .await?;
    Ok((keyset, master))
}

async fn write_keyset(
    keyset: &Keyset,
    out: &crate::cli::KeysetOut,
    master: Option<&Master>,
) -> Result<()> {
    let bytes = keysets::serialize(keyset, out.out_format, master).await?;
    io::write_output(out.output.as_deref(), &bytes, "the keyset")
}

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
    let master = keysets::open_master(&c.master).await?;
    let keyset = Keyset::generate(&template)
        .with_context(|| format!("cannot create a key from template {}", c.key_template))?;
    check_new_key(
        &keyset,
        keyset.primary_key_id(),
        &c.key_template,
        c.policy.as_deref(),
    )?;
    write_keyset(&keyset, &c.out, master.as_ref()).await?;
    note(&format!(
        "created keyset with key {} ({}) as primary",
        keyset.primary_key_id(),
        c.key_template
    ));
    Ok(())
}

async fn add_key(c: &KeyTemplateCommand, rotate: bool) -> Result<()> {
    let template = keysets::template(&c.key_template)?;
    let (mut keyset, master) = read_keyset(&c.keyset.input, &c.keyset.master).await?;
    let old_primary = keyset.primary_key_id();
    let id = if rotate {
        keyset.rotate(&template)
    } else {
        keyset.add_key(&template)
    }
    .with_context(|| format!("cannot add a key from template {}", c.key_template))?;
    check_new_key(&keyset, id, &c.key_template, c.policy.as_deref())?;
    write_keyset(&keyset, &c.keyset.out, master.as_ref()).await?;
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

async fn manage(c: &KeyIdCommand, retire: Option<&RetireKeyCommand>, op: Op) -> Result<()> {
    let (mut keyset, master) = read_keyset(&c.keyset.input, &c.keyset.master).await?;
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
    write_keyset(&keyset, &c.keyset.out, master.as_ref()).await?;
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
    let (keyset, _) = read_keyset(&c.input, &c.master).await?;
    let info = keyset.info();
    let text = if c.json {
        info_json(&info)
    } else {
        info_table(&info)
    };
    io::write_output(None, text.as_bytes(), "the listing")
}

/// The keyset info in the shape of Tink's JSON `KeysetInfo` (as in an
/// encrypted keyset's `keysetInfo`), so scripts can reuse one parser.
fn info_json(info: &KeysetInfo) -> String {
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
    let v = serde_json::json!({ "primaryKeyId": info.primary_key_id, "keyInfo": keys });
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
    let (keyset, old_master) = read_keyset(&c.keyset.input, &c.keyset.master).await?;
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
    write_keyset(&keyset, &c.keyset.out, new_master.as_ref()).await
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
    let keyset = keysets::load_file(&c.keyset, Some(c.keyset_format), &c.master).await?;
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
    let input = io::read_input(c.input.as_deref(), "input")?;
    let what = io::file_name(c.input.as_deref()).unwrap_or_else(|| "stdin".to_owned());
    // The whole result is computed in memory before anything is written.
    let output = zeroize::Zeroizing::new(if encrypt {
        aead.encrypt(&input, &ad)
            .map_err(|e| anyhow!("cannot encrypt {what}: {e}"))?
    } else {
        aead.decrypt_owned(input, &ad).map_err(|e| {
            anyhow!(
                "cannot decrypt {what} with keyset {}: {e}",
                c.keyset.display()
            )
        })?
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
