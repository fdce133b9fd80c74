//! `encrypt`, `decrypt` and `list-key-templates`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, anyhow};
use encstore_core::Aead;
use encstore_tink::keyset::{Keyset, PrimitiveKind};
use encstore_tink::streaming::KeysetStreamingAead;
use zeroize::Zeroizing;

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
    let (names, left_out) = keysets::template_names()?;
    let mut out = String::new();
    for name in names {
        out.push_str(name);
        out.push('\n');
    }
    io::write_output(None, out.as_bytes(), "the template list")?;
    if left_out > 0 {
        eprintln!(
            "({left_out} templates of key types that are not FIPS-approved are not listed: this build runs the fips provider; `encstore providers` shows it)"
        );
    }
    Ok(())
}

pub(super) async fn crypt(c: &Crypt, encrypt: bool) -> Result<()> {
    let keyset = keysets::load_file(&c.keyset, c.keyset_format, &c.master).await?;
    if keyset.primitive() == PrimitiveKind::StreamingAead {
        return stream_crypt(c, &keyset, encrypt).await;
    }
    let shown = c.keyset.display();
    let aead = match keyset.aead() {
        Ok(aead) => {
            if let Some(policy) = &c.policy {
                // The same check a server makes when it loads the keyset.
                encstore::ReloadableKeyset::new(&keyset, policy.policy.clone())
                    .map_err(|e| anyhow!("keyset {shown}: {e}"))?;
            }
            FileAead::Sync(aead)
        }
        Err(encstore_tink::KeysetError::NeedsAsyncAead { .. }) => {
            // KMS envelope keys need the async AEAD. The keyset is loaded
            // as a server loads it: checked against the policy (an
            // envelope key passes when its DEK template does), its master
            // keys opened once from their `kek_uri` with the environment's
            // configuration (`VAULT_TOKEN`, `AWS_*`, ...). Each file then
            // costs one KMS call (a fresh DEK wrapped, or one unwrapped).
            let policy = c
                .policy
                .as_ref()
                .map(|p| p.policy.clone())
                .unwrap_or_default();
            let keys = encstore::ReloadableKeyset::new_with_master_keys(
                &keyset,
                None,
                policy,
                Arc::new(encstore::UriResolver::new()),
                encstore_tink::envelope::EnvelopeOptions::default(),
            )
            .await
            .map_err(|e| anyhow!("keyset {shown}: {e}"))?;
            let aead = keys.snapshot().envelope_aead().cloned().ok_or_else(|| {
                anyhow!("keyset {shown}: no ENABLED KMS envelope key after loading")
            })?;
            FileAead::Envelope(aead)
        }
        Err(e) => return Err(anyhow!("keyset {shown}: {e}")),
    };
    let ad = io::text_or_hex(
        c.associated_data.as_deref(),
        c.associated_data_hex.as_deref(),
        "--associated-data-hex",
    )?;
    let mut input = io::read_input_secret(c.input.as_deref(), "input")?;
    let what = io::file_name(c.input.as_deref()).unwrap_or_else(|| "stdin".to_owned());
    let unknown_key = |key_id| {
        decrypt_error(
            &keyset,
            &c.keyset,
            &what,
            &encstore_core::AeadError::UnknownKeyId { key_id },
        )
    };
    // The whole result is computed in memory before anything is written.
    let output = Zeroizing::new(match (&aead, encrypt) {
        (FileAead::Sync(aead), true) => aead
            .encrypt(&input, &ad)
            .map_err(|e| anyhow!("cannot encrypt {what}: {e}"))?,
        (FileAead::Sync(aead), false) => aead
            .decrypt_owned(std::mem::take(&mut *input), &ad)
            .map_err(|e| decrypt_error(&keyset, &c.keyset, &what, &e))?,
        (FileAead::Envelope(aead), true) => aead
            .encrypt(&input, &ad)
            .await
            .map_err(|e| anyhow!("cannot encrypt {what} with keyset {shown}: {e}"))?,
        (FileAead::Envelope(aead), false) => {
            aead.decrypt(&input, &ad).await.map_err(|e| match e {
                encstore_tink::envelope::EnvelopeError::UnknownKeyId { key_id } => {
                    unknown_key(key_id)
                }
                e => anyhow!("cannot decrypt {what} with keyset {shown}: {e}"),
            })?
        }
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

/// The AEAD `encrypt`/`decrypt` use for a one-shot (not streaming) keyset.
enum FileAead {
    Sync(encstore_tink::KeysetAead),
    /// A keyset with KMS envelope keys.
    Envelope(Arc<encstore_tink::envelope::KeysetAsyncAead>),
}

/// `encrypt`/`decrypt` with a streaming keyset: Tink's streaming AEAD, in
/// constant memory (one segment, read into and written from in place),
/// whatever the size of the input. The output is exactly Tink's streaming
/// ciphertext (a header, then segments; no key ID: `decrypt` tries every
/// ENABLED key, as Tink does).
///
/// A file output (`--out`) is written to a temporary file and renamed into
/// place only once the whole input was encrypted, or decrypted and
/// authenticated up to its last segment. On stdout, the plaintext of each
/// segment is written once that segment authenticated; a ciphertext cut
/// short or altered further on is detected when its end is read, and the
/// command then fails (exit status 1) after part of the plaintext was
/// written: check the exit status.
async fn stream_crypt(c: &Crypt, keyset: &Keyset, encrypt: bool) -> Result<()> {
    if let Some(policy) = &c.policy {
        check_policy(keyset, &policy.policy)
            .map_err(|e| anyhow!("keyset {}: {e}", c.keyset.display()))?;
    }
    let streaming = keyset
        .streaming_aead()
        .map_err(|e| anyhow!("keyset {}: {e}", c.keyset.display()))?;
    let ad = io::text_or_hex(
        c.associated_data.as_deref(),
        c.associated_data_hex.as_deref(),
        "--associated-data-hex",
    )?;
    let input = c.input.clone();
    let output = c.output.clone();
    let keyset_path = c.keyset.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let mut task = tokio::task::spawn_blocking(move || {
        stream_crypt_blocking(
            &streaming,
            encrypt,
            &ad,
            input,
            output,
            &keyset_path,
            &stop_flag,
        )
    });
    tokio::select! {
        r = &mut task => r.map_err(|e| anyhow!("the streaming task failed: {e}"))?,
        _ = tokio::signal::ctrl_c() => {
            // The loop stops before its next chunk and drops the output,
            // which removes the temporary file of --out.
            stop.store(true, Ordering::SeqCst);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
            let out = match io::file_name(c.output.as_deref()) {
                Some(p) => format!("{p} was not written"),
                None => "stdout has only part of the output".to_owned(),
            };
            Err(anyhow::Error::new(crate::store::Interrupted(format!(
                "interrupted; {out}"
            ))))
        }
    }
}

/// Refuses a keyset with a key outside `policy` (the check
/// `ReloadableKeyset` makes for AEAD keysets).
pub(crate) fn check_policy(keyset: &Keyset, policy: &encstore::Policy) -> Result<()> {
    for k in keyset.info().keys {
        if let Some(params) = &k.params
            && !policy.allows(params)
        {
            return Err(anyhow!(
                "{}",
                encstore::LoadError::Policy {
                    policy: policy.name.clone(),
                    refusal: encstore_core::PolicyRefusal {
                        key_id: k.key_id,
                        key_type: encstore::policy::describe(params),
                    },
                }
            ));
        }
    }
    Ok(())
}

fn stream_crypt_blocking(
    s: &KeysetStreamingAead,
    encrypt: bool,
    ad: &[u8],
    input: Option<std::path::PathBuf>,
    output: Option<std::path::PathBuf>,
    keyset_path: &Path,
    stop: &AtomicBool,
) -> Result<()> {
    use encstore_tink::streaming::{Checkpoint, CopyError};
    let what = io::file_name(input.as_deref()).unwrap_or_else(|| "stdin".to_owned());
    let out_what = if encrypt {
        "the ciphertext"
    } else {
        "the plaintext"
    };
    let (mut reader, size) = io::open_input(input.as_deref(), "input")?;
    let mut sink = io::Sink::open(output.as_deref(), out_what)?;
    let mut go_on = |at: Checkpoint| {
        // The end of a pipe may come from Ctrl-C itself (it also stops the
        // command writing into the pipe): wait a moment for the signal
        // before taking it for the end of the input.
        if at == Checkpoint::InputEnd && size.is_none() {
            std::thread::sleep(SIGNAL_GRACE);
        }
        !stop.load(Ordering::SeqCst)
    };
    // Zero-copy, in the library: the input is read straight into the
    // stream's segment buffer and written from it, sealed or opened in
    // place; that buffer is wiped when the stream is dropped.
    let copied = if encrypt {
        s.encrypt_copy_with(ad, &mut reader, &mut sink, &mut go_on)
    } else {
        s.decrypt_copy_with(ad, &mut reader, &mut sink, &mut go_on)
    };
    match copied {
        Ok(_) => {}
        Err(CopyError::Read(e)) => return Err(anyhow!("cannot read {what}: {e}")),
        Err(CopyError::Write(e)) => {
            return Err(anyhow!("cannot write {out_what} to {}: {e}", sink.name()));
        }
        // Not shown: the async side reports the interruption.
        Err(CopyError::Stopped) => anyhow::bail!("interrupted"),
        Err(e) if encrypt => return Err(anyhow!("cannot encrypt {what}: {e}")),
        Err(e) => {
            return Err(anyhow!(
                "cannot decrypt {what} with streaming keyset {}: {e}",
                keyset_path.display()
            ));
        }
    }
    check_stop(stop)?;
    sink.finish(out_what)
}

/// How long the end of a piped input waits for a Ctrl-C that may have
/// caused it (see `stream_crypt_blocking`, `store put`).
pub(crate) const SIGNAL_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Fails once Ctrl-C was pressed (the error is not shown: the async side
/// reports the interruption).
fn check_stop(stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::SeqCst) {
        anyhow::bail!("interrupted");
    }
    Ok(())
}
