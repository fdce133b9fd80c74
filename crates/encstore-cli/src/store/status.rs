//! `store status`: the key census as a table or JSON.

use anyhow::{Context, Result, anyhow};
use encstore::PREFIX_LESS;
use encstore::open::StoreLocation;
use encstore_core::MasterKeyVersion;
use encstore_tink::keyset::KeyInfo;
use serde_json::json;

use super::open_store;
use crate::cli::{MasterKeyArgs, StoreKeysetArgs, StoreStatus};
use crate::io;
use crate::text::{Align, count, counted, key_counts_json, sh, table};

pub(super) async fn status(c: &StoreStatus) -> Result<()> {
    let store = open_store(&c.store.store, &c.keyset, false, false).await?;
    let census = store
        .census(&c.prefix)
        .await
        .map_err(|e| anyhow!("cannot take the census of {}: {e}", c.store.store))?;
    let info = store.keyset().info();
    let keyset_master = keyset_master_key(&c.keyset).await?;
    let streaming = store.keyset().streaming_info();
    // The keys of both keysets: the AEAD keyset's, then the streaming
    // keyset's (large objects).
    let all_keys: Vec<(&KeyInfo, &'static str)> = info
        .keys
        .iter()
        .map(|k| (k, "aead"))
        .chain(
            streaming
                .iter()
                .flat_map(|s| s.keys.iter().map(|k| (k, "streaming"))),
        )
        .collect();
    let text = if c.json {
        let keys: Vec<serde_json::Value> = all_keys
            .iter()
            .map(|(k, keyset)| {
                json!({
                    "key_id": k.key_id,
                    "status": k.status.as_str(),
                    "primary": k.primary,
                    "keyset": keyset,
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
            o.insert("already_current".into(), census.under_primary().into());
            o.insert(
                "unknown_keys".into(),
                key_counts_json(&census.unknown_key_ids).into(),
            );
            o.insert(
                "keyset_master_key".into(),
                keyset_master.as_ref().map_or(
                    serde_json::Value::Null,
                    |m| json!({"master_key": m.key, "version": m.version}),
                ),
            );
        }
        format!("{v}\n")
    } else {
        let mut rows: Vec<[String; 3]> = all_keys
            .iter()
            .map(|(k, keyset)| {
                let mut st = k.status.as_str().to_owned();
                match (k.primary, *keyset) {
                    (true, "streaming") => st.push_str(" (streaming primary)"),
                    (true, _) => st.push_str(" (primary)"),
                    (false, "streaming") => st.push_str(" (streaming)"),
                    _ => {}
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
        let mut s = table(
            ["KEY ID", "STATUS", "OBJECTS"],
            [Align::Left, Align::Left, Align::Right],
            &rows,
        );
        match census.streaming_primary_key_id {
            None => s.push_str(&format!(
                "{}; {} not under the primary key {}\n",
                count(census.total, "object"),
                census.not_under_primary(),
                census.primary_key_id
            )),
            Some(sp) => s.push_str(&format!(
                "{} ({} large); {} not under the primary key of their kind ({} for small objects, streaming primary {sp} for large ones)\n",
                count(census.total, "object"),
                census.large,
                census.not_under_primary(),
                census.primary_key_id
            )),
        }
        if census.rewrappable() > 0 {
            s.push_str(&format!(
                "re-encrypt them with: {}\n",
                rewrap_command(&c.store.store, &c.keyset)
            ));
        }
        if census.envelope > 0 {
            let rows: Vec<[String; 3]> = census
                .master_keys
                .iter()
                .map(|m| {
                    [
                        m.master_key.clone(),
                        m.version.map_or_else(|| "-".to_owned(), |v| v.to_string()),
                        m.objects.to_string(),
                    ]
                })
                .collect();
            s.push_str(&table(
                ["MASTER KEY", "VERSION", "OBJECTS"],
                [Align::Left, Align::Right, Align::Right],
                &rows,
            ));
            s.push_str(&format!(
                "{} under KMS envelope keys (each with its own DEK, wrapped by the master key version above)\n",
                count(census.envelope, "object")
            ));
            if census.has_older_master_key_versions() {
                s.push_str(&format!(
                    "re-wrap the DEKs under older master-key versions with: {}\n",
                    rewrap_deks_command(&c.store.store, &c.keyset)
                ));
            }
        }
        if let Some(m) = &keyset_master {
            s.push_str(&format!("keyset wrapped by master key {m}\n"));
        }
        if census.unknown_key > 0 {
            let ids: Vec<String> = census.unknown_key_ids.keys().map(u32::to_string).collect();
            let hint = if census.streaming_primary_key_id.is_none() {
                " Large objects are under keys of the store's streaming keyset: give it with --streaming-keyset"
            } else {
                ""
            };
            s.push_str(&format!(
                "{} under key ID(s) {} that this keyset does not have (written with a newer keyset, or with another one?{hint})\n",
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

/// Which master key and version wrapped the `--keyset` file itself, when
/// it is an encrypted keyset and its master key can tell (no KMS call
/// beyond opening the master key).
async fn keyset_master_key(k: &StoreKeysetArgs) -> Result<Option<MasterKeyVersion>> {
    let Some(master) = crate::keysets::open_master(&k.master).await? else {
        return Ok(None);
    };
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(&k.keyset)
            .with_context(|| format!("cannot read keyset {}", k.keyset.display()))?,
    );
    Ok(encstore_tink::keyset::encrypted_keyset_ciphertext(&bytes)
        .ok()
        .and_then(|ct| master.kek().describe_wrapped(&ct)))
}

/// The `encstore store rewrap-deks ...` command for this store and keyset.
fn rewrap_deks_command(location: &StoreLocation, k: &StoreKeysetArgs) -> String {
    let mut words = rewrap_words(
        &location.to_string(),
        &k.keyset.display().to_string(),
        &k.master,
    );
    words[2] = "rewrap-deks".into();
    if let Some(p) = &k.policy {
        words.push("--policy".into());
        words.push(sh(&p.text));
    }
    words.join(" ")
}

/// The `encstore store rewrap ...` command for this store and keyset.
fn rewrap_command(location: &StoreLocation, k: &StoreKeysetArgs) -> String {
    let mut words = rewrap_words(
        &location.to_string(),
        &k.keyset.display().to_string(),
        &k.master,
    );
    if let Some(sk) = &k.streaming_keyset {
        words.push("--streaming-keyset".into());
        words.push(sh(&sk.display().to_string()));
    }
    if let Some(p) = &k.policy {
        words.push("--policy".into());
        words.push(sh(&p.text));
    }
    words.join(" ")
}

/// The words of `encstore store rewrap --store LOCATION --keyset KEYSET`
/// and the master key options.
pub(super) fn rewrap_words(location: &str, keyset: &str, m: &MasterKeyArgs) -> Vec<String> {
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
        words.push(sh(u.as_str()));
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
