//! The commands that change a keyset: create-keyset, add-key,
//! rotate-keyset, promote/disable/enable/destroy/delete-key and
//! convert-keyset.

use anyhow::{Context, Result, anyhow};
use encstore_tink::keyset::Keyset;

use super::{CLEARTEXT_CREATED, dest_other, note, read_for_update, write_keyset};
use crate::cli::{ConvertKeyset, CreateKeyset, KeyIdCommand, KeyTemplateCommand, RetireKeyCommand};
use crate::parse::PolicyArg;
use crate::{io, keysets};

/// Refuses a key made from `template` that the `--policy` does not allow,
/// before anything is written. Policies list AEAD key families: a
/// streaming AEAD key passes without `--policy` and is refused with one.
fn check_new_key(
    keyset: &Keyset,
    key_id: u32,
    template: &str,
    policy: Option<&PolicyArg>,
) -> Result<()> {
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

pub(super) async fn create_keyset(c: &CreateKeyset) -> Result<()> {
    let template = keysets::template(&c.key_template)?;
    let dest = dest_other(&c.out, c.force, "--force")?;
    let master = keysets::open_master(&c.master).await?;
    let keyset = Keyset::generate(&template)
        .with_context(|| format!("cannot create a key from template {}", c.key_template))?;
    check_new_key(
        &keyset,
        keyset.primary_key_id(),
        &c.key_template,
        c.policy.as_ref(),
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

pub(super) async fn add_key(c: &KeyTemplateCommand, rotate: bool) -> Result<()> {
    let template = keysets::template(&c.key_template)?;
    let (mut keyset, master, dest) = read_for_update(&c.keyset, c.force, "--force").await?;
    let old_primary = keyset.primary_key_id();
    let id = if rotate {
        keyset.rotate(&template)
    } else {
        keyset.add_key(&template)
    }
    .with_context(|| format!("cannot add a key from template {}", c.key_template))?;
    check_new_key(&keyset, id, &c.key_template, c.policy.as_ref())?;
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
