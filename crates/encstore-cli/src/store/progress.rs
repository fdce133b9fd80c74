//! Progress display and the endings of `rewrap` and `verify`: the
//! indicatif bar (or plain lines), Ctrl-C, the stop messages, and the
//! failure breakdown of the summaries.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use encstore::open::StoreLocation;
use encstore::{CancellationToken, FailureCounts, ObjectFailure, PREFIX_LESS, StopReason};
use encstore_core::Error;
use serde_json::json;

use crate::text::{count, counted, key_counts_json, objects_word, sh};

/// Progress output: an indicatif bar on a terminal, plain lines otherwise.
/// No rate or ETA is shown before a second has passed (it would be noise);
/// the bar is left on screen at its true count when the run ends.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
    start: Instant,
    last_line: Instant,
    what: &'static str,
}

impl Progress {
    pub fn new(total: u64, what: &'static str) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            let style =
                indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {tail}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .with_key(
                        "tail",
                        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let total = state.len().unwrap_or(0);
                            let _ = write!(w, "{}", objects_word(total));
                            if state.elapsed() >= Duration::from_secs(1) {
                                let _ = write!(
                                    w,
                                    ", {:.0} objects/s, ETA {} s",
                                    state.per_sec(),
                                    state.eta().as_secs()
                                );
                            }
                        },
                    )
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(what);
            Some(bar)
        } else {
            eprintln!("encstore: {what}: {}", count(total, "object"));
            None
        };
        let now = Instant::now();
        Progress {
            bar,
            total,
            done: 0,
            start: now,
            last_line: now,
            what,
        }
    }

    pub fn inc(&mut self) {
        self.done += 1;
        match &self.bar {
            Some(bar) => bar.inc(1),
            None => {
                if self.last_line.elapsed() >= Duration::from_secs(2) {
                    self.last_line = Instant::now();
                    let secs = self.start.elapsed().as_secs_f64().max(0.001);
                    let rate = self.done as f64 / secs;
                    let eta = (self.total - self.done) as f64 / rate.max(0.001);
                    eprintln!(
                        "encstore: {}: {}/{} {} ({rate:.0} objects/s, ETA {eta:.0} s)",
                        self.what,
                        self.done,
                        self.total,
                        objects_word(self.total)
                    );
                }
            }
        }
    }

    /// Prints a line without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Ends the progress output with the true count; `stopped` says why a
    /// run ended early.
    pub fn finish(&self, stopped: Option<StopReason>) {
        match &self.bar {
            // The bar stays on screen at the count reached.
            Some(bar) => bar.abandon(),
            None => {
                let secs = self.start.elapsed().as_secs_f64();
                let how = match stopped {
                    None => String::new(),
                    Some(s) => format!(", stopped ({})", stop_str(s)),
                };
                let rate = if secs >= 1.0 {
                    format!(" ({:.0} objects/s)", self.done as f64 / secs)
                } else {
                    String::new()
                };
                eprintln!(
                    "encstore: {}: {}/{} {} in {secs:.1} s{rate}{how}",
                    self.what,
                    self.done,
                    self.total,
                    objects_word(self.total)
                );
            }
        }
    }
}

/// The progress of a run, shared with the library's event callback: none
/// until the run starts.
pub type SharedProgress = std::sync::Arc<Mutex<Option<Progress>>>;

/// Runs `f` on the progress, if the run started.
pub fn with_progress(p: &SharedProgress, f: impl FnOnce(&mut Progress)) {
    let mut guard = p.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(progress) = guard.as_mut() {
        f(progress);
    }
}

/// Prints `line` on stderr without breaking the bar.
pub fn println(p: &SharedProgress, line: &str) {
    let guard = p.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match guard.as_ref() {
        Some(progress) => progress.println(line),
        None => eprintln!("{line}"),
    }
}

/// How a stop reason is named in the output (`stopped` in the JSON, see
/// docs/json-output.md).
pub fn stop_str(s: StopReason) -> &'static str {
    match s {
        StopReason::Cancelled => "interrupted",
        StopReason::Unreachable => "unreachable",
        StopReason::LockLost => "lock_lost",
        _ => "stopped",
    }
}

/// Ctrl-C for a run: the first SIGINT cancels it (the objects in flight
/// finish and are counted), the second abandons the objects in flight.
pub struct Interrupts {
    /// Fires on the first Ctrl-C.
    pub cancel: CancellationToken,
    /// Fires on the second.
    pub abort: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Interrupts {
    /// Takes over SIGINT for the rest of the process (the handler is
    /// installed before this returns).
    pub fn install() -> Result<Interrupts> {
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))?;
        let (cancel, abort) = (CancellationToken::new(), CancellationToken::new());
        let (c, a) = (cancel.clone(), abort.clone());
        let task = tokio::spawn(async move {
            if sigint.recv().await.is_none() {
                return;
            }
            c.cancel();
            if sigint.recv().await.is_some() {
                a.cancel();
            }
        });
        Ok(Interrupts {
            cancel,
            abort,
            task,
        })
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The error of a command stopped by Ctrl-C: `main` exits with 130 on it.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// How a run ended, for [`stop_error`].
pub struct RunEnd<'a> {
    pub stopped: Option<StopReason>,
    pub unreachable: Option<&'a Error>,
    pub abandoned: usize,
}

/// The error for a run that stopped early (after its summary was printed):
/// [`Interrupted`] for Ctrl-C (exit 130).
pub fn stop_error(
    end: &RunEnd<'_>,
    counts: &str,
    location: &StoreLocation,
    what: &str,
) -> Result<()> {
    let abandoned = if end.abandoned > 0 {
        format!(
            "; {} in flight {} abandoned uncounted",
            count(end.abandoned as u64, "object"),
            if end.abandoned == 1 { "was" } else { "were" }
        )
    } else {
        String::new()
    };
    let again = if what == "rewrap" {
        "every object is either re-encrypted or untouched; run the rewrap again to finish (it resumes where it stopped)"
    } else {
        "nothing was changed; run the verify again"
    };
    match end.stopped {
        None => Ok(()),
        Some(StopReason::Cancelled) => Err(anyhow::Error::new(Interrupted(format!(
            "interrupted ({counts}{abandoned}); {again}"
        )))),
        Some(StopReason::Unreachable) => bail!(
            "stopped: the backend of {location} stopped answering: {} ({counts}{abandoned}); {again} once it is back",
            end.unreachable
                .map_or_else(|| "unreachable".to_owned(), ToString::to_string)
        ),
        Some(StopReason::LockLost) => bail!(
            "lost the rewrap lock on {location} (its lease ran out, or another process took it over); stopped ({counts}{abandoned}). Run the rewrap again: it resumes where it stopped"
        ),
        Some(_) => bail!("stopped ({counts}{abandoned}); {again}"),
    }
}

/// The message printed for a failed object (the keyset file named).
pub fn failure_message(f: &ObjectFailure, keyset: &Path) -> String {
    super::with_keyset_path(&f.reason.to_string(), keyset)
}

/// The failure fields shared by the JSON summaries of rewrap and verify
/// (docs/json-output.md).
pub fn failures_json_into(
    o: &mut serde_json::Map<String, serde_json::Value>,
    failures: &[ObjectFailure],
    keyset: &Path,
) {
    let counts = FailureCounts::of(failures);
    let failed: Vec<serde_json::Value> = failures
        .iter()
        .map(|f| json!({"key": f.key, "error": failure_message(f, keyset)}))
        .collect();
    o.insert("failed".into(), failed.into());
    o.insert("failed_count".into(), (failures.len() as u64).into());
    o.insert(
        "unknown_key".into(),
        counts.unknown_key_ids.values().sum::<u64>().into(),
    );
    o.insert(
        "unknown_key_ids".into(),
        serde_json::to_value(&counts.unknown_key_ids).unwrap_or_default(),
    );
    o.insert(
        "unknown_keys".into(),
        key_counts_json(&counts.unknown_key_ids).into(),
    );
    o.insert(
        "not_enabled_key".into(),
        counts.not_enabled_key_ids.values().sum::<u64>().into(),
    );
    o.insert(
        "not_enabled_keys".into(),
        key_counts_json(&counts.not_enabled_key_ids).into(),
    );
    o.insert(
        "prefix_less_unattributed".into(),
        counts.prefix_less_unattributed.into(),
    );
}

/// The lines after a human summary that explain the failures by class.
pub fn explain(failures: &[ObjectFailure], keyset: &Path) -> String {
    let counts = FailureCounts::of(failures);
    let mut s = String::new();
    if !counts.unknown_key_ids.is_empty() {
        let ids: Vec<String> = counts.unknown_key_ids.keys().map(u32::to_string).collect();
        s.push_str(&format!(
            "of the failures, {} under key ID(s) {} that this keyset does not have (written with a newer keyset, or with another one?)\n",
            counted(counts.unknown_key_ids.values().sum(), "is", "are"),
            ids.join(", ")
        ));
    }
    if !counts.not_enabled_key_ids.is_empty() {
        let ids: Vec<String> = counts
            .not_enabled_key_ids
            .keys()
            .map(u32::to_string)
            .collect();
        let p = sh(&keyset.display().to_string());
        s.push_str(&format!(
            "of the failures, {} under key(s) {} that this keyset holds but not ENABLED (a DISABLED key comes back with `encstore enable-key --key-id ID --in {p} --out {p}`)\n",
            counted(counts.not_enabled_key_ids.values().sum(), "is", "are"),
            ids.join(", ")
        ));
    }
    if counts.prefix_less_unattributed > 0 {
        s.push_str(&format!(
            "of the failures, {} {PREFIX_LESS} (never taken as plaintext while the keyset holds a RAW key)\n",
            counted(counts.prefix_less_unattributed, "is", "are")
        ));
    }
    s
}
