//! The store check of `disable-key`, `destroy-key` and `delete-key
//! --store`: [`encstore::retirement_check`].

use anyhow::{Result, anyhow, bail};
use encstore::open::StoreLocation;
use encstore::{RetireCheckError, Retirement};
use encstore_tink::keyset::Keyset;

use super::open_backend;
use super::status::rewrap_words;
use crate::cli::KeyIdCommand;
use crate::commands::note;
use crate::io;
use crate::text::{count, counted};

/// Refuses to `verb` key `key_id` while the census of `location` (taken
/// with `keyset`, before the change) finds objects under it, unless
/// `force`.
pub async fn check_retire(
    keyset: &Keyset,
    key_id: u32,
    location: &StoreLocation,
    c: &KeyIdCommand,
    force: bool,
    verb: &str,
) -> Result<()> {
    if keyset.info().keys.iter().all(|k| k.key_id != key_id) {
        // Let the keyset operation report the unknown key.
        return Ok(());
    }
    let backend = open_backend(location, false).await?;
    let check = encstore::retirement_check(backend, keyset, key_id)
        .await
        .map_err(|e| match e {
            RetireCheckError::Census(e) => {
                anyhow!("cannot take the census of {location}: {e}")
            }
            e => anyhow!("{e}"),
        })?;
    let n = match check {
        Retirement::NotInKeyset => return Ok(()),
        Retirement::Clear { checked } => {
            note(&format!(
                "store {location}: no object is under key {key_id} ({} checked)",
                count(checked, "object")
            ));
            return Ok(());
        }
        Retirement::InUse { objects, .. } => objects,
        _ => bail!("store {location}: the check of key {key_id} gave an unknown result"),
    };
    let keyset_path =
        io::file_name(c.keyset.input.input.as_deref()).unwrap_or_else(|| "KEYSET".to_owned());
    let cmd = rewrap_words(&location.to_string(), &keyset_path, &c.keyset.master).join(" ");
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
