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
                PolicyError::UnknownPreset(_) => e.to_string(),
                e => format!("policy {p}: {e}"),
            })
    })
}

fn parse_policy(p: &str) -> Result<Policy, PolicyError> {
    let path = Path::new(p);
    if p.ends_with(".json") || p.contains('/') || path.is_file() {
        Policy::from_file(path)
    } else {
        Policy::preset(p)
    }
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
