//! `list-keyset`: the keyset's info as a table or as Tink-shaped JSON.

use anyhow::{Result, anyhow};
use encstore_tink::keyset::{KeyInfo, KeysetInfo, detect_format};

use super::note;
use crate::cli::ListKeyset;
use crate::text::{Align, table};
use crate::{io, keysets};

pub(super) async fn list_keyset(c: &ListKeyset) -> Result<()> {
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
                    .map_or_else(|| "-".to_owned(), ToString::to_string),
            ]
        })
        .collect();
    table(
        [
            "PRIMARY",
            "KEY ID",
            "STATUS",
            "PREFIX",
            "TYPE",
            "PARAMETERS",
        ],
        [Align::Left; 6],
        &rows,
    )
}

fn short_type(k: &KeyInfo) -> String {
    match k.type_url.rsplit('.').next() {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => "(destroyed)".to_owned(),
    }
}
