//! Loading and saving keysets for the CLI: formats, master keys (KEKs) and
//! the error messages operators see.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use encstore::open::{MasterKeyRef, MasterKeyUri, MasterKeysetFormat, OpenKekError};
use encstore_core::Kek;
use encstore_tink::keyset::{Keyset, KeysetEncoding, KeysetFormat, detect_format};
use encstore_tink::templates::KeyTemplate;
use zeroize::Zeroizing;

use crate::cli::{Format, MasterKeyArgs};
use crate::io;

/// A key-encryption key and the associated data that binds the keyset.
pub struct Master {
    /// The KEK, as [`encstore::open::open_kek`] opened it: a master
    /// keyset's AEAD, an HSM key, a Vault transit key or an AWS KMS key.
    /// Every wrap and unwrap goes through the async [`Kek`] path.
    kek: Arc<dyn Kek>,
    /// `--keyset-associated-data[-hex]`, empty by default.
    associated_data: Vec<u8>,
    /// Where the KEK came from, for messages ("master keyset PATH" or
    /// "master key pkcs11:..."; never a PIN or a token).
    source: String,
}

impl Master {
    /// The KEK.
    pub fn kek(&self) -> &Arc<dyn Kek> {
        &self.kek
    }

    /// The keyset associated data.
    pub fn associated_data(&self) -> &[u8] {
        &self.associated_data
    }

    /// Where the KEK came from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Opens the master key named by `--master-keyset` / `--master-key-uri`,
/// if any, with its keyset associated data.
pub async fn open_master(args: &MasterKeyArgs) -> Result<Option<Master>> {
    let ad = io::text_or_hex(
        args.keyset_associated_data.as_deref(),
        args.keyset_associated_data_hex.as_deref(),
        "--keyset-associated-data-hex",
    )?;
    open_kek(
        args.master_keyset.as_deref(),
        args.master_keyset_format,
        args.master_key_uri.as_ref(),
        ad,
        args.keyset_associated_data.is_some() || args.keyset_associated_data_hex.is_some(),
        "--master-keyset",
    )
    .await
}

/// Opens a KEK from a master keyset file or a URI, through the library's
/// [`encstore::open::open_kek`].
pub async fn open_kek(
    keyset: Option<&Path>,
    format: Option<Format>,
    uri: Option<&MasterKeyUri>,
    associated_data: Vec<u8>,
    ad_given: bool,
    flag: &str,
) -> Result<Option<Master>> {
    let master = match (uri, keyset) {
        (Some(uri), _) => MasterKeyRef::Uri(uri.clone()),
        (None, Some(path)) => match format {
            None => MasterKeyRef::keyset_file(path),
            Some(Format::Json) => MasterKeyRef::keyset_file_in(path, MasterKeysetFormat::Json),
            Some(Format::Binary) => MasterKeyRef::keyset_file_in(path, MasterKeysetFormat::Binary),
        },
        (None, None) => {
            if ad_given {
                bail!(
                    "keyset associated data was given, but no master key ({flag} or a master key URI)"
                );
            }
            return Ok(None);
        }
    };
    let kek = match encstore::open::open_kek(&master).await {
        Ok(kek) => kek,
        // An empty file says so, rather than "not a valid keyset".
        Err(e @ (OpenKekError::InvalidKeyset { .. } | OpenKekError::EncryptedKeyset { .. })) => {
            if let MasterKeyRef::KeysetFile { path, .. } = &master
                && is_blank(path)
            {
                let bytes = io::read_input_secret(Some(path), "master keyset")?;
                check_not_empty(&bytes, &format!("master keyset {}", path.display()))?;
            }
            bail!("{e}")
        }
        Err(e) => bail!("{e}"),
    };
    Ok(Some(Master {
        kek,
        associated_data,
        source: master.describe(),
    }))
}

/// Whether the file at `path` is empty or only whitespace (small files
/// only: a keyset is never large).
fn is_blank(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() < 4096)
        && std::fs::read(path).is_ok_and(|b| {
            let blank = b.iter().all(u8::is_ascii_whitespace);
            drop(Zeroizing::new(b));
            blank
        })
}

/// Reads the `--keyset` file `path` and opens its master key: in `format`,
/// or in the format detected from its content when `format` is `None`.
pub async fn load_file(
    path: &Path,
    format: Option<Format>,
    master: &MasterKeyArgs,
) -> Result<Keyset> {
    let master = open_master(master).await?;
    let bytes = io::read_input_secret(Some(path), "keyset")?;
    let format = format_of(&bytes, format);
    load(
        &bytes,
        format,
        master.as_ref(),
        &format!("keyset {}", path.display()),
        "--keyset-format",
    )
    .await
}

/// The format of keyset `bytes`: `given` (a `--…-format` flag) when set,
/// otherwise detected from the content. Every command that reads a keyset
/// decides the same way.
pub fn format_of(bytes: &[u8], given: Option<Format>) -> Format {
    given.unwrap_or(match detect_format(bytes) {
        KeysetFormat::Json | KeysetFormat::EncryptedJson => Format::Json,
        _ => Format::Binary,
    })
}

/// Refuses an empty (or all-whitespace) keyset file with a message that
/// says so, instead of a parse error.
pub fn check_not_empty(bytes: &[u8], what: &str) -> Result<()> {
    if bytes.is_empty() {
        bail!("{what} is empty (0 bytes): it holds no keyset");
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        bail!(
            "{what} is empty (only {} whitespace bytes): it holds no keyset",
            bytes.len()
        );
    }
    Ok(())
}

/// Reads a keyset from `bytes` (named `what` in messages) in `format`,
/// unwrapping it with `master` when one is given (through the async KEK
/// path). `format_flag` names the flag that sets `format`, for hints.
pub async fn load(
    bytes: &[u8],
    format: Format,
    master: Option<&Master>,
    what: &str,
    format_flag: &str,
) -> Result<Keyset> {
    check_not_empty(bytes, what)?;
    let detected = detect_format(bytes);
    let declared_json = format == Format::Json;
    match master {
        None => {
            if detected.is_encrypted() && detected.is_json() == declared_json {
                bail!(
                    "{what} is an encrypted keyset; give its master key (--master-keyset PATH or --master-key-uri URI) and any --keyset-associated-data"
                );
            }
            let r = if declared_json {
                Keyset::from_json_insecure(bytes)
            } else {
                Keyset::from_binary_insecure(bytes)
            };
            r.map_err(|e| keyset_error(e, what, format, detected, format_flag))
        }
        Some(m) => {
            if !detected.is_encrypted() && detected.is_json() == declared_json {
                bail!(
                    "{what} is a cleartext keyset, but a master key was given (use convert-keyset to encrypt it)"
                );
            }
            if detected.is_json() != declared_json {
                let (is, flag) = if detected.is_json() {
                    ("JSON", "json")
                } else {
                    ("binary", "binary")
                };
                bail!(
                    "{what} is not a valid keyset in the declared format (the file looks {is}; try {format_flag} {flag})"
                );
            }
            Keyset::read_with_kek(bytes, m.kek.as_ref(), &m.associated_data)
                .await
                .map_err(|e| match e {
                    encstore_tink::error::KeysetError::Decryption => anyhow!(
                        "{what} does not decrypt with {} and this keyset associated data (wrong master key, wrong associated data, or the file was tampered with)",
                        m.source
                    ),
                    encstore_tink::error::KeysetError::Kek { error } => anyhow!(
                        "cannot unwrap {what} with {}: {}",
                        m.source,
                        error.kek_error()
                    ),
                    e => keyset_error(e, what, format, detected, format_flag),
                })
        }
    }
}

fn keyset_error(
    e: encstore_tink::error::KeysetError,
    what: &str,
    declared: Format,
    detected: KeysetFormat,
    format_flag: &str,
) -> anyhow::Error {
    let declared_json = declared == Format::Json;
    if detected.is_json() != declared_json {
        let (is, flag) = if detected.is_json() {
            ("JSON", "json")
        } else {
            ("binary", "binary")
        };
        return anyhow!(
            "{what} is not a valid keyset: {e} (the file looks {is}; try {format_flag} {flag})"
        );
    }
    anyhow!("{what} is not a valid keyset: {e}")
}

/// Serializes `keyset` in `format`, wrapped with `master` when given
/// (through the async KEK path, which checks that the result unwraps).
/// A cleartext result holds key material and is wiped when dropped.
/// Nothing is written here: callers write the bytes only once this
/// succeeded, so a failing KEK never touches the old file.
pub async fn serialize(
    keyset: &Keyset,
    format: Format,
    master: Option<&Master>,
) -> Result<Zeroizing<Vec<u8>>> {
    let Some(m) = master else {
        return Ok(match format {
            Format::Json => keyset.to_json_insecure(),
            Format::Binary => keyset.to_binary_insecure(),
        });
    };
    let r = match format {
        Format::Json => {
            keyset
                .write_with_kek(KeysetEncoding::Json, m.kek.as_ref(), &m.associated_data)
                .await
        }
        Format::Binary => {
            keyset
                .write_with_kek(KeysetEncoding::Binary, m.kek.as_ref(), &m.associated_data)
                .await
        }
    };
    Ok(Zeroizing::new(r.map_err(|e| {
        anyhow!("cannot encrypt the keyset with {}: {e}", m.source)
    })?))
}

/// Looks up a key template by its Tinkey name.
pub fn template(name: &str) -> Result<KeyTemplate> {
    encstore_tink::templates::by_name(name).map_err(|_| {
        anyhow!("unknown key template {name:?}; run `encstore list-key-templates` for the names")
    })
}

/// The template names the active crypto provider can make keys from, in
/// listing order (AEAD, then streaming AEAD), and how many it leaves out
/// (under `fips`, those of key types that are not FIPS-approved).
pub fn template_names() -> Result<(Vec<&'static str>, usize)> {
    let provider = encstore_tink::provider::get_default()?;
    let names = encstore_tink::templates::names_for(provider);
    let left_out = encstore_tink::templates::all_names().count() - names.len();
    Ok((names, left_out))
}
