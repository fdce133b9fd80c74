//! `store verify`: [`EncryptedStorage::verify_all`](encstore::EncryptedStorage::verify_all)
//! with progress.

use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow, bail};
use encstore::{StopReason, VerifyEvent, VerifyOptions, VerifyOutcome};
use encstore_core::ShownKey;
use serde_json::json;

use super::open_store;
use super::progress::{
    self, Interrupts, Progress, RunEnd, SharedProgress, explain, failures_json_into, stop_error,
    stop_str, with_progress,
};
use crate::cli::StoreVerify;
use crate::io;
use crate::text::{count, key_counts_json};

pub(super) async fn verify(c: &StoreVerify) -> Result<()> {
    let location = &c.store.store;
    let store = open_store(location, &c.keyset, c.allow_plaintext, false).await?;
    let interrupts = Interrupts::install()?;
    let shared: SharedProgress = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&shared);
    let keyset_path = c.keyset.keyset.clone();
    let options = VerifyOptions::new()
        .concurrency(usize::from(c.concurrency))
        .cancel(interrupts.cancel.clone())
        .abort(interrupts.abort.clone())
        .on_event(move |event| match event {
            VerifyEvent::Started { total } => {
                let mut guard = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                *guard = Some(Progress::new(*total, "verify"));
            }
            VerifyEvent::Object { key, outcome } => with_progress(&sink, |p| {
                p.inc();
                if let VerifyOutcome::Failed { reason, .. } = outcome {
                    let msg = super::with_keyset_path(&reason.to_string(), &keyset_path);
                    p.println(&format!("encstore: verify: FAILED {}: {msg}", ShownKey(key)));
                }
            }),
            VerifyEvent::Stopping {
                reason: StopReason::Cancelled,
                in_flight,
            } if *in_flight > 0 => progress::println(
                &sink,
                &format!(
                    "encstore: verify: interrupted; finishing the {} in flight (Ctrl-C again to stop at once)",
                    count(*in_flight as u64, "object")
                ),
            ),
            _ => {}
        });
    let s = store
        .verify_all("", &options)
        .await
        .map_err(|e| anyhow!("cannot list {location}: {e}"))?;
    with_progress(&shared, |p| p.finish(s.stopped));
    let total = s.objects;
    let ok = s.ok;
    let text = if c.json {
        let mut v = json!({
            "objects": total,
            "ok": ok,
            "plaintext": s.plaintext,
            "deleted": s.deleted,
            "by_key_id": s.by_key_id,
            "keys": key_counts_json(&s.by_key_id),
            "primary_key_id": s.primary_key_id,
            "seconds": s.elapsed.as_secs_f64(),
            "stopped": s.stopped.map(stop_str),
        });
        if let Some(o) = v.as_object_mut() {
            failures_json_into(o, &s.failures, &c.keyset.keyset);
        }
        format!("{v}\n")
    } else {
        let mut text = format!(
            "verify: {}: {ok} {}, {} failed",
            count(total, "object"),
            if ok == 1 { "decrypts" } else { "decrypt" },
            s.failures.len()
        );
        if s.plaintext > 0 {
            text.push_str(&format!(", {} plaintext (migration mode)", s.plaintext));
        }
        if s.deleted > 0 {
            text.push_str(&format!(", {} deleted meanwhile", s.deleted));
        }
        text.push_str(&format!(" in {:.1} s\n", s.elapsed.as_secs_f64()));
        text.push_str(&explain(&s.failures, &c.keyset.keyset));
        text
    };
    io::write_output(None, text.as_bytes(), "the report")?;
    let counts = format!("checked {} of {}", s.checked(), count(total, "object"));
    let end = RunEnd {
        stopped: s.stopped,
        unreachable: s.unreachable.as_ref(),
        abandoned: s.abandoned,
    };
    stop_error(&end, &counts, location, "verify")?;
    if !s.failures.is_empty() {
        bail!(
            "{} of {} failed to decrypt (listed above)",
            s.failures.len(),
            count(total, "object")
        );
    }
    Ok(())
}
