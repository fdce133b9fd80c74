//! clap value parsers for the typed flags: `--store` ([`StoreLocation`]),
//! `--master-key-uri`/`--new-master-key-uri` ([`MasterKeyUri`]) and
//! `--policy` ([`Policy`]).
//!
//! A value the library refuses is reported in the library's words, never
//! echoing the value as typed (a store URL may carry credentials): the
//! library's messages show it through `encstore::open::display_uri`. Such
//! an error exits with status 1, as a refused value always did (a syntax
//! error exits with 2): [`is_refused_value`] tells them apart.

use std::ffi::OsStr;
use std::path::Path;

use clap::builder::TypedValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Command};
use encstore::open::{MasterKeyUri, StoreLocation};
use encstore::policy::{Policy, PolicyError};

/// The flags whose values these parsers check.
const TYPED_FLAGS: [&str; 4] = [
    "--store",
    "--master-key-uri",
    "--new-master-key-uri",
    "--policy",
];

/// A clap parser from a fallible function; the error names the flag and
/// says why in the function's words.
#[derive(Clone, Copy)]
pub struct Typed<T: 'static>(fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Typed<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<T, clap::Error> {
        let flag = arg
            .and_then(Arg::get_long)
            .map_or_else(|| "the value".to_owned(), |l| format!("--{l}"));
        let fail = |msg: String| {
            let mut e = clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("invalid {flag}: {msg}\n"),
            )
            .with_cmd(cmd);
            e.insert(ContextKind::InvalidArg, ContextValue::String(flag.clone()));
            e
        };
        let Some(text) = value.to_str() else {
            return Err(fail("not valid UTF-8".to_owned()));
        };
        (self.0)(text).map_err(fail)
    }
}

/// `--store LOCATION`.
pub fn store() -> Typed<StoreLocation> {
    Typed(|s| s.parse::<StoreLocation>().map_err(|e| e.to_string()))
}

/// `--master-key-uri URI`, `--new-master-key-uri URI`.
pub fn master_key_uri() -> Typed<MasterKeyUri> {
    Typed(|s| s.parse::<MasterKeyUri>().map_err(|e| e.to_string()))
}

/// A `--policy` value: the policy, and the text it was given as (for the
/// commands the tool suggests).
#[derive(Debug, Clone)]
pub struct PolicyArg {
    /// As typed.
    pub text: String,
    /// The policy.
    pub policy: Policy,
}

/// `--policy NAME|PATH`: a JSON policy file (a name ending in `.json`,
/// containing a `/`, or naming an existing file) or a preset.
pub fn policy() -> Typed<PolicyArg> {
    Typed(|p| {
        parse_policy(p)
            .map(|policy| PolicyArg {
                text: p.to_owned(),
                policy,
            })
            .map_err(|e| match e {
                PolicyError::UnknownPreset(_) => {
                    format!("{e}, or a JSON policy file (a path ending in .json or containing a /)")
                }
                e => format!("policy {p}: {e}"),
            })
    })
}

/// A JSON policy file when `p` looks like a path, else a preset name
/// (`Policy`'s `FromStr`).
fn parse_policy(p: &str) -> Result<Policy, PolicyError> {
    let path = Path::new(p);
    if p.ends_with(".json") || p.contains('/') || path.is_file() {
        Policy::from_file(path)
    } else {
        p.parse()
    }
}

/// `--range START-END`: bytes START to END of a value, both inclusive and
/// counted from 0, as in an HTTP `Range: bytes=START-END` header; `START-`
/// runs to the end of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// The first byte.
    pub start: u64,
    /// The last byte (inclusive); `None` for `START-` (to the end).
    pub last: Option<u64>,
}

impl ByteRange {
    /// The range as a half-open `start..end` (`u64::MAX` as the end of
    /// `START-`, clamped by the reader to the value's size).
    pub fn to_range(self) -> std::ops::Range<u64> {
        self.start..self.last.map_or(u64::MAX, |l| l.saturating_add(1))
    }
}

impl std::fmt::Display for ByteRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.last {
            Some(l) => write!(f, "{}-{l}", self.start),
            None => write!(f, "{}-", self.start),
        }
    }
}

/// Parses `--range`. Refuses (with a message saying what is expected)
/// anything but `START-END` or `START-` in decimal, and a range whose end
/// comes before its start.
pub fn byte_range(s: &str) -> Result<ByteRange, String> {
    const FORM: &str = "expected START-END (bytes START to END, both inclusive, counted from 0, such as 0-4095) or START- (from START to the end)";
    let Some((a, b)) = s.split_once('-') else {
        return Err(format!("{s:?} has no '-'; {FORM}"));
    };
    let number = |t: &str, which: &str| -> Result<u64, String> {
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "{which} {t:?} of {s:?} is not a decimal byte offset; {FORM}"
            ));
        }
        t.parse::<u64>()
            .map_err(|_| format!("{which} {t:?} of {s:?} is too large"))
    };
    if a.is_empty() {
        return Err(format!(
            "{s:?} has no START (a suffix range, the last N bytes, is not supported); {FORM}"
        ));
    }
    let start = number(a, "START")?;
    let last = if b.is_empty() {
        None
    } else {
        Some(number(b, "END")?)
    };
    if let Some(l) = last
        && l < start
    {
        return Err(format!(
            "{s:?} ends before it starts (END {l} < START {start}); {FORM}"
        ));
    }
    Ok(ByteRange { start, last })
}

/// `cmd` with the typed flags taking any string: to find the syntax
/// errors (conflicts, missing flags) that a refused value hid, since clap
/// checks those only after every value parsed.
pub fn untyped(cmd: clap::Command) -> clap::Command {
    fn strip(cmd: clap::Command) -> clap::Command {
        cmd.mut_args(|a| {
            let typed = a
                .get_long()
                .is_some_and(|l| TYPED_FLAGS.contains(&format!("--{l}").as_str()));
            if typed {
                a.value_parser(clap::builder::StringValueParser::new())
            } else {
                a
            }
        })
        .mut_subcommands(strip)
    }
    strip(cmd)
}

/// Whether `e` is one of these parsers' refusals (exit status 1).
pub fn is_refused_value(e: &clap::Error) -> bool {
    e.kind() == ErrorKind::ValueValidation
        && matches!(
            e.get(ContextKind::InvalidArg),
            Some(ContextValue::String(flag)) if TYPED_FLAGS.contains(&flag.as_str())
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_policy_flag(value: &str) -> Result<PolicyArg, clap::Error> {
        let cmd = Command::new("t").arg(Arg::new("policy").long("policy").value_parser(policy()));
        cmd.try_get_matches_from(["t", "--policy", value])
            .map(|m| m.get_one::<PolicyArg>("policy").unwrap().clone())
    }

    #[test]
    fn policy_flag_takes_presets_and_names_the_valid_ones_for_a_typo() {
        let fips = parse_policy_flag("fips").unwrap();
        assert_eq!(fips.text, "fips");
        assert_eq!(fips.policy, Policy::fips());
        assert_eq!(
            parse_policy_flag("modern").unwrap().policy,
            Policy::modern()
        );
        let e = parse_policy_flag("fisp").unwrap_err();
        assert!(is_refused_value(&e));
        assert_eq!(
            e.to_string(),
            "error: invalid --policy: unknown policy preset \"fisp\"; the valid names are fips, modern, tink, or a JSON policy file (a path ending in .json or containing a /)\n"
        );
    }

    #[test]
    fn policy_flag_reads_a_json_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(
            &path,
            r#"{"name":"only-256","allow":[{"key_type":"AesGcmKey","key_sizes":[32]}]}"#,
        )
        .unwrap();
        let p = parse_policy_flag(path.to_str().unwrap()).unwrap();
        assert_eq!(p.policy.name, "only-256");
        let missing = dir.path().join("missing.json");
        let e = parse_policy_flag(missing.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("cannot read policy file"), "{e}");
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(
            byte_range("0-99"),
            Ok(ByteRange {
                start: 0,
                last: Some(99)
            })
        );
        assert_eq!(byte_range("5-5").map(ByteRange::to_range), Ok(5..6));
        assert_eq!(byte_range("7-").map(ByteRange::to_range), Ok(7..u64::MAX));
        assert_eq!(
            byte_range("0-18446744073709551615").map(ByteRange::to_range),
            Ok(0..u64::MAX)
        );
        for (bad, why) in [
            ("", "no '-'"),
            ("12", "no '-'"),
            ("-5", "suffix range"),
            ("a-5", "START \"a\""),
            ("1-b", "END \"b\""),
            ("+1-2", "START \"+1\""),
            (" 1-2", "not a decimal"),
            ("1-2-3", "END \"2-3\""),
            ("9-3", "ends before it starts"),
            ("99999999999999999999-", "too large"),
        ] {
            let e = byte_range(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
