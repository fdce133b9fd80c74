//! `store rewrap`: [`EncryptedStorage::reencrypt_all`] with progress, or
//! its dry run [`EncryptedStorage::reencrypt_plan`].

use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow, bail};
use encstore::{
    EncryptedStorage, LockWait, PREFIX_LESS, REENCRYPT_LOCK, ReencryptError, ReencryptEvent,
    ReencryptOptions, ReencryptOutcome, ReencryptSummary, StopReason,
};
use encstore_core::ShownKey;
use serde_json::json;

use super::open_store;
use super::progress::{
    self, Interrupted, Interrupts, Progress, RunEnd, SharedProgress, explain, failures_json_into,
    stop_error, stop_str, with_progress,
};
use crate::cli::StoreRewrap;
use crate::commands::note;
use crate::io;
use crate::text::{count, key_counts_json};

/// The name of the store-wide lock that `store rewrap` holds.
pub const REWRAP_LOCK: &str = REENCRYPT_LOCK;

pub(super) async fn rewrap(c: &StoreRewrap) -> Result<()> {
    let location = &c.store.store;
    let store = open_store(location, &c.keyset, c.allow_plaintext, false).await?;
    if c.dry_run {
        return rewrap_dry_run(c, &store).await;
    }
    let interrupts = Interrupts::install()?;
    let shared: SharedProgress = Arc::new(Mutex::new(None));
    let options = run_options(
        "rewrap",
        c.concurrency,
        c.no_wait,
        &c.keyset.keyset,
        location,
        &interrupts,
        &shared,
    );
    let summary = match store.reencrypt_all("", &options).await {
        Ok(s) => s,
        Err(e) => return Err(run_error(c, e)),
    };
    with_progress(&shared, |p| p.finish(summary.stopped));
    note_unlock_error(summary.unlock_error.as_ref(), summary.lease);
    print_summary(
        c,
        &summary,
        store.keyset().snapshot().streaming_primary_key_id(),
    )?;
    let end = RunEnd {
        stopped: summary.stopped,
        unreachable: summary.unreachable.as_ref(),
        abandoned: summary.abandoned,
    };
    let counts = format!(
        "re-encrypted {} of {}",
        summary.reencrypted,
        count(summary.objects, "object")
    );
    stop_error(&end, &counts, location, "rewrap")?;
    if !summary.failures.is_empty() {
        bail!(
            "{} could not be re-encrypted (listed above); they were left untouched",
            count(summary.failures.len() as u64, "object")
        );
    }
    Ok(())
}

/// The options of a store-wide run (`store rewrap`, `store rewrap-deks`,
/// named `command` in its messages): concurrency, lock wait, Ctrl-C, and
/// the events turned into the progress bar in `shared` and notes.
pub(super) fn run_options(
    command: &'static str,
    concurrency: u16,
    no_wait: bool,
    keyset_path: &std::path::Path,
    location: &encstore::open::StoreLocation,
    interrupts: &Interrupts,
    shared: &SharedProgress,
) -> ReencryptOptions {
    let sink = Arc::clone(shared);
    let keyset_path = keyset_path.to_path_buf();
    let shown_location = location.to_string();
    ReencryptOptions::new()
        .concurrency(usize::from(concurrency))
        .lock_wait(if no_wait {
            LockWait::FailFast
        } else {
            LockWait::Wait
        })
        .cancel(interrupts.cancel.clone())
        .abort(interrupts.abort.clone())
        .on_event(move |event| match event {
            ReencryptEvent::WaitingForLock { lock, lease } => note(&format!(
                "another rewrap is running on {shown_location} (lock {lock:?}); waiting for it to finish (a killed rewrap's lock expires after {} s; --no-wait fails instead)",
                lease.as_secs()
            )),
            ReencryptEvent::Started { total } => {
                let mut guard = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                *guard = Some(Progress::new(*total, command));
            }
            ReencryptEvent::Object { key, outcome } => with_progress(&sink, |p| {
                p.inc();
                if let ReencryptOutcome::Failed { reason, .. } = outcome {
                    let msg = super::with_keyset_path(&reason.to_string(), &keyset_path);
                    p.println(&format!("encstore: {command}: {}: {msg}", ShownKey(key)));
                }
            }),
            ReencryptEvent::Stopping {
                reason: StopReason::Cancelled,
                in_flight,
            } if *in_flight > 0 => progress::println(
                &sink,
                &format!(
                    "encstore: {command}: interrupted; finishing the {} in flight (Ctrl-C again to stop at once)",
                    count(*in_flight as u64, "object")
                ),
            ),
            _ => {}
        })
}

/// The message for a run that did not start.
fn run_error(c: &StoreRewrap, e: ReencryptError) -> anyhow::Error {
    let location = &c.store.store;
    match e {
        ReencryptError::Census(e) => anyhow!("cannot take the census of {location}: {e}"),
        ReencryptError::UnsafeMigration {
            objects,
            raw_key_ids,
        } => {
            let ids: Vec<String> = raw_key_ids.iter().map(u32::to_string).collect();
            anyhow!(
                "refusing --allow-plaintext: {} in {location} {} no Tink prefix and no enabled RAW key decrypts them, and the keyset holds RAW key(s) {}: they may be ciphertexts under a RAW key that was destroyed or removed, not plaintext, and encrypting them would bury them. Nothing was changed. Run `encstore store status` to see them; restore the RAW key that wrote them, or move them out of the store, before migrating",
                count(objects, "object"),
                if objects == 1 { "has" } else { "have" },
                ids.join(", ")
            )
        }
        e => lock_run_error("rewrap", location, e),
    }
}

/// The message for a store-wide run (`command`: `rewrap`, `rewrap-deks`)
/// of `location` that did not start, for the errors the runs share: the
/// lock held, not taken or waited for in vain, a failed listing.
pub(super) fn lock_run_error(
    command: &str,
    location: &encstore::open::StoreLocation,
    e: ReencryptError,
) -> anyhow::Error {
    match e {
        ReencryptError::LockHeld { lease } => anyhow!(
            "another rewrap is running on {location} (it holds the lock {REWRAP_LOCK:?}); try again when it has finished, or without --no-wait to wait for it (a killed rewrap's lock expires after {} s)",
            lease.as_secs()
        ),
        ReencryptError::Lock(e) => anyhow!("cannot take the rewrap lock on {location}: {e}"),
        ReencryptError::List(e) => anyhow!("cannot list {location}: {e}"),
        ReencryptError::Cancelled => anyhow::Error::new(Interrupted(format!(
            "interrupted while waiting for the rewrap lock on {location}; nothing was changed"
        ))),
        e => anyhow!("{command} of {location}: {e}"),
    }
}

/// Warns that releasing the rewrap lock failed (`e`): it expires on its
/// own after `lease`.
pub(super) fn note_unlock_error(e: Option<&encstore_core::Error>, lease: std::time::Duration) {
    if let Some(e) = e {
        note(&format!(
            "warning: releasing the rewrap lock: {e} (it expires on its own after {} s)",
            lease.as_secs()
        ));
    }
}

fn print_summary(c: &StoreRewrap, s: &ReencryptSummary, streaming: Option<u32>) -> Result<()> {
    let primary = s.primary_key_id;
    let text = if c.json {
        let mut v = json!({
            "objects": s.objects,
            "rewrapped": s.reencrypted,
            "already_current": s.already_current,
            "deleted": s.deleted,
            "primary_key_id": primary,
            "seconds": s.elapsed.as_secs_f64(),
            "stopped": s.stopped.map(stop_str),
        });
        if let Some(o) = v.as_object_mut() {
            failures_json_into(o, &s.failures, &c.keyset.keyset);
            if let Some(id) = streaming {
                o.insert("streaming_primary_key_id".into(), id.into());
            }
        }
        format!("{v}\n")
    } else {
        let mut text = format!(
            "rewrap: {}: re-encrypted {}, already current {}, deleted meanwhile {}, failed {} ({}) in {:.1} s\n",
            count(s.objects, "object"),
            s.reencrypted,
            s.already_current,
            s.deleted,
            s.failures.len(),
            primaries(primary, streaming),
            s.elapsed.as_secs_f64()
        );
        text.push_str(&explain(&s.failures, &c.keyset.keyset));
        text
    };
    io::write_output(None, text.as_bytes(), "the summary")
}

async fn rewrap_dry_run(c: &StoreRewrap, store: &EncryptedStorage) -> Result<()> {
    let location = &c.store.store;
    let plan = store
        .reencrypt_plan("")
        .await
        .map_err(|e| anyhow!("cannot take the census of {location}: {e}"))?;
    let census = &plan.census;
    let primary = census.primary_key_id;
    let streaming = census.streaming_primary_key_id;
    let by_key = &plan.by_key_id;
    let migrating = plan.migrating;
    let would = plan.would_reencrypt;
    let would_fail = plan.would_fail;
    let refuses = plan.allow_plaintext_refused;
    let text = if c.json {
        let mut v = json!({
                "dry_run": true,
                "objects": census.total,
                "would_rewrap": would,
                "would_rewrap_by_key_id": by_key,
                "plaintext": census.plaintext,
                "raw": census.raw,
                "already_current": plan.already_current(),
                "would_fail": would_fail,
                "primary_key_id": primary,
                "unknown_key": census.unknown_key,
                "unknown_key_ids": census.unknown_key_ids,
                "unknown_keys": key_counts_json(&census.unknown_key_ids),
                "would_rewrap_keys": key_counts_json(by_key),
                "prefix_less_unattributed": census.prefix_less_unattributed,
                "allow_plaintext_refused": refuses,
        });
        if let Some(o) = v.as_object_mut() {
            o.insert("large".into(), census.large.into());
            if let Some(id) = streaming {
                o.insert("streaming_primary_key_id".into(), id.into());
            }
        }
        format!("{v}\n")
    } else {
        let mut s = format!(
            "dry run: {}; would re-encrypt {would} under {}; {} already current\n",
            count(census.total, "object"),
            primaries(primary, streaming),
            plan.already_current()
        );
        for (id, n) in by_key {
            s.push_str(&format!("  {n} under key {id}\n"));
        }
        if census.plaintext > 0 {
            if c.allow_plaintext {
                s.push_str(&format!("  {} plaintext\n", census.plaintext));
            } else {
                s.push_str(&format!(
                    "  {} would fail (add --allow-plaintext to encrypt them)\n",
                    count(census.plaintext, "plaintext object")
                ));
            }
        }
        if census.unknown_key > 0 {
            let ids: Vec<String> = census.unknown_key_ids.keys().map(u32::to_string).collect();
            if migrating {
                s.push_str(&format!(
                    "  {} start with what looks like a Tink prefix of key ID(s) {} that this keyset does not have: taken as plaintext and encrypted (check that this is the right keyset)\n",
                    census.unknown_key,
                    ids.join(", ")
                ));
            } else {
                s.push_str(&format!(
                    "  {} under key IDs this keyset does not have ({}) would fail\n",
                    census.unknown_key,
                    ids.join(", ")
                ));
            }
        }
        if census.prefix_less_unattributed > 0 {
            s.push_str(&format!(
                "  {} {PREFIX_LESS}: would fail (never taken as plaintext while the keyset holds a RAW key)\n",
                census.prefix_less_unattributed
            ));
        }
        if refuses {
            s.push_str("  --allow-plaintext would refuse to run: the keyset holds a RAW key\n");
        }
        s.push_str("nothing was changed\n");
        s
    };
    io::write_output(None, text.as_bytes(), "the report")
}

/// `primary key P`, or with a streaming keyset `primary key P, streaming
/// primary key S (large objects)`.
pub(super) fn primaries(primary: u32, streaming: Option<u32>) -> String {
    match streaming {
        None => format!("primary key {primary}"),
        Some(s) => format!("primary key {primary}, streaming primary key {s} (large objects)"),
    }
}
