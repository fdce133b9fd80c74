//! `store rewrap-deks`: [`EncryptedStorage::rewrap_deks_all`] with
//! progress: the master-key-level rewrap of every envelope object's DEK.
//!
//! [`EncryptedStorage::rewrap_deks_all`]: encstore::EncryptedStorage::rewrap_deks_all

use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow, bail};
use encstore::{ReencryptError, RewrapDeksSummary};
use serde_json::json;

use super::open_store;
use super::progress::{
    Interrupts, RunEnd, SharedProgress, explain, failures_json_into, stop_error, stop_str,
    with_progress,
};
use crate::cli::StoreRewrapDeks;
use crate::io;
use crate::text::count;

pub(super) async fn rewrap_deks(c: &StoreRewrapDeks) -> Result<()> {
    let location = &c.store.store;
    let store = open_store(location, &c.keyset, false, false).await?;
    if store.keyset().snapshot().envelope_aead().is_none() {
        bail!(
            "keyset {} has no ENABLED KMS envelope key: no object of {location} has a DEK to re-wrap (`store rewrap` re-encrypts objects under the primary key)",
            c.keyset.keyset.display()
        );
    }
    let interrupts = Interrupts::install()?;
    let shared: SharedProgress = Arc::new(Mutex::new(None));
    let options = super::rewrap::run_options(
        "rewrap-deks",
        c.concurrency,
        c.no_wait,
        &c.keyset.keyset,
        location,
        &interrupts,
        &shared,
    );
    let summary = match store.rewrap_deks_all("", &options).await {
        Ok(s) => s,
        Err(e) => return Err(run_error(c, e)),
    };
    with_progress(&shared, |p| p.finish(summary.stopped));
    super::rewrap::note_unlock_error(summary.unlock_error.as_ref(), summary.lease);
    print_summary(c, &summary)?;
    let end = RunEnd {
        stopped: summary.stopped,
        unreachable: summary.unreachable.as_ref(),
        abandoned: summary.abandoned,
    };
    let counts = format!(
        "re-wrapped the DEKs of {} of {}",
        summary.rewrapped,
        count(summary.objects, "object")
    );
    stop_error(&end, &counts, location, "rewrap-deks")?;
    if !summary.failures.is_empty() {
        bail!(
            "the DEKs of {} could not be re-wrapped (listed above); they were left untouched",
            count(summary.failures.len() as u64, "object")
        );
    }
    Ok(())
}

/// The message for a run that did not start.
fn run_error(c: &StoreRewrapDeks, e: ReencryptError) -> anyhow::Error {
    match e {
        ReencryptError::Census(e) => {
            anyhow!("cannot ask the master key for its newest version: {e}; nothing was changed")
        }
        e => super::rewrap::lock_run_error("rewrap-deks", &c.store.store, e),
    }
}

fn print_summary(c: &StoreRewrapDeks, s: &RewrapDeksSummary) -> Result<()> {
    let newest: Vec<serde_json::Value> = s
        .newest
        .iter()
        .map(|(k, v)| json!({"master_key": k, "version": v}))
        .collect();
    let text = if c.json {
        let mut v = json!({
            "objects": s.objects,
            "rewrapped": s.rewrapped,
            "already_current": s.already_current,
            "not_envelope": s.not_envelope,
            "deleted": s.deleted,
            "newest_master_keys": newest,
            "seconds": s.elapsed.as_secs_f64(),
            "stopped": s.stopped.map(stop_str),
        });
        if let Some(o) = v.as_object_mut() {
            failures_json_into(o, &s.failures, &c.keyset.keyset);
        }
        format!("{v}\n")
    } else {
        let versions: Vec<String> = s
            .newest
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k} version {v}"),
                None => k.clone(),
            })
            .collect();
        let mut text = format!(
            "rewrap-deks: {}: DEK re-wrapped {}, already current {}, not envelope objects {}, deleted meanwhile {}, failed {} (newest: {}) in {:.1} s\n",
            count(s.objects, "object"),
            s.rewrapped,
            s.already_current,
            s.not_envelope,
            s.deleted,
            s.failures.len(),
            versions.join(", "),
            s.elapsed.as_secs_f64()
        );
        text.push_str(&explain(&s.failures, &c.keyset.keyset));
        text
    };
    io::write_output(None, text.as_bytes(), "the summary")
}
