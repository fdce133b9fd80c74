//! The `tracing` subscriber: the library's warnings (a PKCS#11 PIN file
//! readable by others, a plaintext object returned in migration mode, a RAW
//! primary, a lock taken over, ...) reach the operator on stderr, as
//! `encstore: warning: MESSAGE (field=value, ...)`.
//!
//! By default WARN and above are shown, except the library's per-operation
//! failure events (target `encstore::failure`): the CLI reports those
//! errors itself. `RUST_LOG` replaces the default (`RUST_LOG=debug`,
//! `RUST_LOG=encstore=trace`, `RUST_LOG=off`). Field values are shortened
//! (key names to their first and last characters), so a long name cannot
//! flood the terminal; none of the library's events carries key material or
//! plaintext.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// What is shown without `RUST_LOG`.
pub const DEFAULT_FILTER: &str = "warn,encstore::failure=off";

/// The longest field value shown, in characters.
const MAX_VALUE_CHARS: usize = 200;

/// Installs the subscriber (once, before anything else runs).
pub fn init() {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match EnvFilter::try_new(&v) {
            Ok(f) => f,
            Err(e) => {
                eprintln!(
                    "encstore: warning: RUST_LOG={v:?} is not a valid filter ({e}); showing warnings"
                );
                EnvFilter::new(DEFAULT_FILTER)
            }
        },
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(OperatorFormat)
        .try_init();
}

/// `encstore: warning: message (field=value, ...)`; below WARN the level
/// and the event's target are shown too.
struct OperatorFormat;

impl<S, N> FormatEvent<S, N> for OperatorFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        match *meta.level() {
            Level::WARN => write!(writer, "encstore: warning: ")?,
            // Not "encstore: error:": that line is the command's own result.
            Level::ERROR => write!(writer, "encstore: error (from {}): ", meta.target())?,
            level => write!(
                writer,
                "encstore: {} {}: ",
                level.as_str().to_ascii_lowercase(),
                meta.target()
            )?,
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        write!(writer, "{}", fields.message)?;
        if !fields.rest.is_empty() {
            write!(writer, " ({})", fields.rest.join(", "))?;
        }
        writeln!(writer)
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<String>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: String) {
        let value = one_line(&value);
        if field.name() == "message" {
            self.message = value;
        } else {
            self.rest.push(format!("{}={value}", field.name()));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.push(field, value.to_owned());
        } else {
            self.push(field, encstore_core::ShownKey(value).to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.push(field, s);
    }
}

/// `s` on one line, at most [`MAX_VALUE_CHARS`] characters.
fn one_line(s: &str) -> String {
    let flat = s.replace(['\n', '\r'], " ");
    if flat.chars().count() <= MAX_VALUE_CHARS {
        return flat;
    }
    let mut out: String = flat.chars().take(MAX_VALUE_CHARS).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_flattened() {
        assert_eq!(one_line("a\nb"), "a b");
        let long = "x".repeat(1000);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), MAX_VALUE_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
