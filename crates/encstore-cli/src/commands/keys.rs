//! The commands that change a keyset: create-keyset, add-key,
//! rotate-keyset, promote/disable/enable/destroy/delete-key and
//! convert-keyset.

use anyhow::{Context, Result, anyhow};
use encstore_tink::keyset::Keyset;

use super::{
    CLEARTEXT_CREATED, dest_other, note, read_for_update, read_keyset_bytes, write_bytes,
    write_keyset,
};
use crate::cli::{
    ConvertKeyset, CreateKeyset, KeyIdCommand, KeyTemplateCommand, NewKeyArgs, RetireKeyCommand,
    RewrapKeyset,
};
use crate::parse::PolicyArg;
use crate::{io, keysets};

/// Refuses the new key `key_id` when the `--policy` of `args` does not
/// allow it, before anything is written. Policies list AEAD key families:
/// a streaming AEAD key passes without `--policy` and is refused with one.
fn check_new_key(keyset: &Keyset, key_id: u32, args: &NewKeyArgs) -> Result<()> {
    let template = &args.key_template;
    let policy = args.policy.as_ref();
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
            Some(PolicyArg { text: name, .. }) => Err(anyhow!(
                "template {template} makes a streaming AEAD key; key policies list AEAD key types only, so --policy {name} cannot allow it; nothing was written"
            )),
        };
    }
    let policy = policy.map(|p| p.policy.clone()).unwrap_or_default();
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

/// The template of a new key: `--key-template`, or with
/// `--envelope-kek-uri` a KMS envelope key whose DEKs that template makes
/// (its output prefix is the envelope key's), after checking that the
/// master key opens.
async fn new_key_template(args: &NewKeyArgs) -> Result<encstore_tink::templates::KeyTemplate> {
    let name = &args.key_template;
    let envelope = args.envelope_kek_uri.as_ref();
    let template = keysets::template(name)?;
    let Some(uri) = envelope else {
        return Ok(template);
    };
    encstore::open::open_kek(&encstore::open::MasterKeyRef::Uri(uri.clone()))
        .await
        .map_err(|e| anyhow!("--envelope-kek-uri: {e}; nothing was written"))?;
    encstore_tink::templates::kms_envelope(uri.as_str(), &template, template.output_prefix())
        .map_err(|e| {
            anyhow!("template {name} cannot be the DEK template of a KMS envelope key: {e}")
        })
}

pub(super) async fn create_keyset(c: &CreateKeyset) -> Result<()> {
    let template = new_key_template(&c.key).await?;
    let dest = dest_other(&c.out, c.force, "--force")?;
    let master = keysets::open_master(&c.master).await?;
    let keyset = Keyset::generate(&template)
        .with_context(|| format!("cannot create a key from template {}", c.key.key_template))?;
    check_new_key(&keyset, keyset.primary_key_id(), &c.key)?;
    write_keyset(&keyset, c.out.out_format, dest, master.as_ref()).await?;
    note(&format!(
        "created keyset with key {} ({}) as primary",
        keyset.primary_key_id(),
        c.key.key_template
    ));
    if master.is_none() {
        note(CLEARTEXT_CREATED);
    }
    Ok(())
}

pub(super) async fn add_key(c: &KeyTemplateCommand, rotate: bool) -> Result<()> {
    let template = new_key_template(&c.key).await?;
    let (mut keyset, master, dest) = read_for_update(&c.keyset, c.force, "--force").await?;
    let old_primary = keyset.primary_key_id();
    let id = if rotate {
        keyset.rotate(&template)
    } else {
        keyset.add_key(&template)
    }
    .with_context(|| format!("cannot add a key from template {}", c.key.key_template))?;
    check_new_key(&keyset, id, &c.key)?;
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
            tmpl = c.key.key_template
        ));
    } else {
        note(&format!(
            "added key {id} ({tmpl}), ENABLED, not primary.
Next: deploy this keyset to every reader, then `encstore promote-key --key-id {id}`.",
            tmpl = c.key.key_template
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Op {
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

pub(super) async fn manage(
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
                crate::store::retire::check_retire(&keyset, id, location, c, r.force, op.verb())
                    .await?;
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

pub(super) async fn convert_keyset(c: &ConvertKeyset) -> Result<()> {
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
        c.new_master_key_uri.as_ref(),
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

/// `rewrap-keyset`: [`Keyset::rewrap_encrypted`] of the `--in` keyset
/// under its master key's newest version, written to `--out`.
pub(super) async fn rewrap_keyset(c: &RewrapKeyset) -> Result<()> {
    let k = &c.keyset;
    let (bytes, master, dest, what) =
        read_keyset_bytes(&k.input, &k.master, Some((&k.out, c.force, "--force"))).await?;
    let Some(master) = master else {
        anyhow::bail!(
            "rewrap-keyset re-wraps an encrypted keyset: give its master key (--master-key-uri URI or --master-keyset PATH)"
        );
    };
    keysets::check_not_empty(&bytes, &what)?;
    let format = encstore_tink::keyset::detect_format(&bytes);
    if !format.is_encrypted() {
        anyhow::bail!(
            "{what} is a cleartext keyset; rewrap-keyset re-wraps an encrypted one (encrypt it with convert-keyset --new-master-key-uri)"
        );
    }
    let is_json = format.is_json();
    if let Some(f) = k.out.out_format
        && (f == crate::cli::Format::Json) != is_json
    {
        anyhow::bail!(
            "rewrap-keyset keeps the keyset's format; use convert-keyset to change it (no --out-format)"
        );
    }
    let version = |b: &[u8]| {
        encstore_tink::keyset::encrypted_keyset_ciphertext(b)
            .ok()
            .and_then(|ct| master.kek().describe_wrapped(&ct))
    };
    let before = version(&bytes);
    let out = Keyset::rewrap_encrypted(&bytes, master.kek().as_ref(), master.associated_data())
        .await
        .map_err(|e| match e {
            encstore_tink::error::KeysetError::Decryption => anyhow!(
                "{what} does not decrypt with {} and this keyset associated data (wrong master key, wrong associated data, or the file was tampered with)",
                master.source()
            ),
            e => anyhow!("cannot re-wrap {what} with {}: {e}", master.source()),
        })?;
    let after = version(&out);
    write_bytes(zeroize::Zeroizing::new(out), dest, true).await?;
    let shown = |v: &Option<encstore_core::MasterKeyVersion>| {
        v.as_ref()
            .and_then(|m| m.version)
            .map_or_else(|| "?".to_owned(), |n| format!("version {n}"))
    };
    note(&format!(
        "re-wrapped {what} with {}: {} -> {}",
        master.source(),
        shown(&before),
        shown(&after)
    ));
    Ok(())
}
