//! The store check of `disable-key`, `destroy-key` and `delete-key
//! --store`: [`encstore::retirement_check`].

use anyhow::{Result, anyhow, bail};
use encstore::open::StoreLocation;
use encstore::{RetireCheckError, Retirement};
use encstore_tink::keyset::{Keyset, PrimitiveKind};

use super::open_backend;
use super::status::rewrap_words;
use crate::cli::KeyIdCommand;
use crate::commands::note;
use crate::io;
use crate::text::{count, counted, sh};

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
    let streaming = keyset.primitive() == PrimitiveKind::StreamingAead;
    let check = if streaming {
        streaming_retirement_check(backend, keyset, key_id)
            .await
            .map_err(|e| anyhow!("cannot take the census of {location}: {e}"))?
    } else {
        encstore::retirement_check(backend, keyset, key_id)
            .await
            .map_err(|e| match e {
                RetireCheckError::Census(e) => {
                    anyhow!("cannot take the census of {location}: {e}")
                }
                e => anyhow!("{e}"),
            })?
    };
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
    let cmd = if streaming {
        // The rewrap needs the store's AEAD keyset too, which this command
        // was not given.
        let mut words = rewrap_words(&location.to_string(), "AEAD_KEYSET", &c.keyset.master);
        words.push("--streaming-keyset".into());
        words.push(sh(&keyset_path));
        words.join(" ")
    } else {
        rewrap_words(&location.to_string(), &keyset_path, &c.keyset.master).join(" ")
    };
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

/// The store check for a key of a streaming keyset: the library's census
/// (five bytes per object; a large object's prefix names its streaming
/// key) with `keyset` as the store's streaming keyset. The census needs an
/// AEAD keyset beside it, which these commands are not given: a throwaway
/// one (one fresh AES-256-GCM key, never written anywhere, with a key ID
/// that is not in `keyset`) takes its place. Objects under the store's real
/// AEAD keys then count as under unknown keys, which does not change the
/// count under `key_id` (key IDs are unique across a store's keysets).
async fn streaming_retirement_check(
    backend: std::sync::Arc<dyn encstore_core::Storage>,
    keyset: &Keyset,
    key_id: u32,
) -> Result<Retirement> {
    let template = encstore_tink::templates::by_name("AES256_GCM")
        .map_err(|e| anyhow!("the placeholder AEAD keyset: {e}"))?;
    let ids: Vec<u32> = keyset.info().keys.iter().map(|k| k.key_id).collect();
    let placeholder = loop {
        let k =
            Keyset::generate(&template).map_err(|e| anyhow!("the placeholder AEAD keyset: {e}"))?;
        if !ids.contains(&k.primary_key_id()) {
            break k;
        }
    };
    // Every key type Tink supports: the check reads, it never writes.
    let keys = encstore::ReloadableKeyset::new_with_streaming(
        &placeholder,
        keyset,
        encstore::Policy::tink(),
    )
    .map_err(|e| anyhow!("cannot check the store with this streaming keyset: {e}"))?;
    let store = encstore::EncryptedStorage::new(backend, std::sync::Arc::new(keys));
    let found = store.objects_under(key_id).await?;
    Ok(if found.objects == 0 {
        Retirement::Clear {
            checked: found.checked,
        }
    } else {
        Retirement::InUse {
            objects: found.objects,
            checked: found.checked,
        }
    })
}
