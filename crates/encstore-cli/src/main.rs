//! `encstore`: the command-line tool.
//!
//! Layout:
//! - [`cli`]: the command-line syntax (clap derive). Tinkey-compatible flag
//!   names; flags may be added, never renamed.
//! - [`commands`]: the keyset commands and `encrypt`/`decrypt`.
//! - [`keysets`]: loading and saving keysets (formats, master keys).
//! - [`io`]: stdin/stdout and atomic, mode-0600 file writes.
//! - [`parse`]: clap value parsers for `--store`, `--master-key-uri` and
//!   `--policy` (the library's types).
//! - [`text`]: plurals, shell quoting, tables, time stamps.
//!
//! - [`store`]: `encstore store put|get|ls|rm|stat|status|rewrap|verify`,
//!   and the store check of `disable-key`/`destroy-key`/`delete-key`.
//!
//! The tool is a thin shell: opening master keys and stores, re-encrypting
//! the store, verifying it and the retire check are the `encstore`
//! library's (`encstore::open`, `EncryptedStorage::reencrypt_all`,
//! `verify_all`, `encstore::retirement_check`); this crate parses
//! arguments, prints, and shows progress.
//! - [`quickstart`]: the guided tour (`encstore quickstart`).
//! - [`logging`]: the `tracing` subscriber that shows the library's
//!   warnings (`RUST_LOG` changes what is shown).
//!
//! Commands run on a tokio runtime: the store backends and key-encryption
//! keys (HSMs) are async.
//!
//! Every failure prints one line, `encstore: error: ...`, on stderr and
//! exits non-zero (1 for a failed command or a store location, master key
//! URI or policy the library refuses, 2 for a usage error, 130 for a
//! command interrupted with Ctrl-C).
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod io;
mod keysets;
mod logging;
mod parse;
mod quickstart;
mod store;
mod text;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::CommandFactory;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    logging::init();
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(e) if parse::is_refused_value(&e) => {
            // A syntax error (such as two conflicting flags) comes first,
            // as it did before the values were typed.
            match parse::untyped(cli::Cli::command()).try_get_matches() {
                Err(syntax) if !parse::is_refused_value(&syntax) => return usage_error(&syntax),
                _ => return usage_error(&e),
            }
        }
        Err(e) => return usage_error(&e),
    };
    // The crypto provider is fixed (and, under `fips`, the module's FIPS
    // mode checked) before any command runs: a process that cannot use it
    // refuses to run. `encstore providers` still reports what it knows.
    if !matches!(cli.command, cli::Command::Providers)
        && let Err(e) = encstore_tink::provider::get_default()
    {
        eprintln!("encstore: error: crypto provider: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("encstore: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(commands::run(cli.command));
    // Blocking tasks (HSM sessions) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("encstore: error: {msg}");
            if e.downcast_ref::<store::Interrupted>().is_some() {
                // As a shell reports a command killed by SIGINT.
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Parses the command line. `--version` also names the crypto provider in
/// use and whether the FIPS module is in FIPS mode (`encstore providers`
/// says more).
fn parse_args() -> Result<cli::Cli, clap::Error> {
    use clap::FromArgMatches;
    let provider = match encstore_tink::provider::status() {
        Ok(s) => s.to_string(),
        Err(e) => format!("unusable: {e}"),
    };
    // clap keeps the version for the life of the process; leaked once.
    let version: &'static str = Box::leak(
        format!("{}\ncrypto provider: {provider}", env!("CARGO_PKG_VERSION")).into_boxed_str(),
    );
    let matches = cli::Cli::command().version(version).try_get_matches()?;
    cli::Cli::from_arg_matches(&matches)
}

/// Prints a clap error: help and version as they are; anything else as one
/// `encstore: error:` line naming the environment variables that can stand
/// in for the missing flags and the subcommand's own `--help`.
fn usage_error(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.exit_code() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        _ => {
            // clap's message can span lines (a list of missing flags); keep
            // it, on one line, without the usage block.
            let rendered = e.render().to_string();
            let msg = rendered
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
            let args: Vec<OsString> = std::env::args_os().collect();
            let (path, envs) = subcommand_of(&args, msg);
            let mut line = format!("encstore: error: {msg}");
            if !envs.is_empty() {
                let alts: Vec<String> = envs
                    .iter()
                    .map(|(flag, env)| format!("{flag} from {env}"))
                    .collect();
                line.push_str(&format!(
                    " (these may also come from the environment: {})",
                    alts.join(", ")
                ));
            }
            line.push_str(&format!(" (see `encstore{path} --help`)"));
            eprintln!("{line}");
            if parse::is_refused_value(e) {
                ExitCode::FAILURE
            } else {
                ExitCode::from(2)
            }
        }
    }
}

/// The subcommand that `args` names (such as ` store put`, empty for none)
/// and, for the flags of that subcommand that `msg` mentions and that have
/// an environment variable, `(--flag, VARIABLE)`.
fn subcommand_of(args: &[OsString], msg: &str) -> (String, Vec<(String, String)>) {
    let mut cmd = cli::Cli::command();
    let mut path = String::new();
    for a in args.iter().skip(1) {
        let a = a.to_string_lossy();
        if a.starts_with('-') {
            continue;
        }
        let Some(sub) = cmd.find_subcommand(a.as_ref()).cloned() else {
            break;
        };
        path.push(' ');
        path.push_str(sub.get_name());
        cmd = sub;
    }
    let mut envs = Vec::new();
    for arg in cmd.get_arguments() {
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        let flag = format!("--{long}");
        let mentioned = msg.match_indices(&flag).any(|(i, _)| {
            !msg[i + flag.len()..].starts_with(|c: char| c == '-' || c.is_alphanumeric())
        });
        if mentioned {
            envs.push((flag, env.to_string_lossy().into_owned()));
        }
    }
    (path, envs)
}
