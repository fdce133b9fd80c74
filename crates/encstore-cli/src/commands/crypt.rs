//! `encrypt`, `decrypt` and `list-key-templates`.

use std::path::Path;

use anyhow::{Result, anyhow};
use encstore_core::Aead;
use encstore_tink::keyset::Keyset;

use crate::cli::Crypt;
use crate::{io, keysets};

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
            let p = crate::text::sh(&shown.to_string());
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

pub(super) fn list_key_templates() -> Result<()> {
    let mut out = String::new();
    for name in keysets::template_names() {
        out.push_str(name);
        out.push('\n');
    }
    io::write_output(None, out.as_bytes(), "the template list")
}

pub(super) async fn crypt(c: &Crypt, encrypt: bool) -> Result<()> {
    let keyset = keysets::load_file(&c.keyset, c.keyset_format, &c.master).await?;
    if let Some(policy) = &c.policy {
        // The same check a server makes when it loads the keyset.
        encstore::ReloadableKeyset::new(&keyset, policy.policy.clone())
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
