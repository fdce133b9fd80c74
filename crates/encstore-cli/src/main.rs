//! `encstore`: the command-line tool.
//!
//! Layout:
//! - [`cli`]: the command-line syntax (clap derive). Tinkey-compatible flag
//!   names; flags may be added, never renamed.
//! - [`commands`]: the keyset commands and `encrypt`/`decrypt`.
//! - [`keysets`]: loading and saving keysets (formats, master keys).
//! - [`io`]: stdin/stdout and atomic, mode-0600 file writes.
//!
//! - [`store`]: `encstore store put|get|ls|rm|stat|status|rewrap|verify`,
//!   and the store check of `disable-key`/`destroy-key`/`delete-key`.
//! - [`quickstart`]: the guided tour (`encstore quickstart`).
//!
//! Commands run on a tokio runtime: the store backends and key-encryption
//! keys (HSMs) are async.
//!
//! Every failure prints one line, `encstore: error: ...`, on stderr and
//! exits non-zero (1 for a failed command, 2 for a usage error).
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod io;
mod keysets;
mod quickstart;
mod store;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            return match e.kind() {
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
                    // clap's message can span lines (a list of missing
                    // flags); keep it, on one line, without the usage block.
                    let rendered = e.render().to_string();
                    let msg = rendered
                        .lines()
                        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ");
                    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
                    eprintln!("encstore: error: {msg} (see `encstore --help`)");
                    ExitCode::from(2)
                }
            };
        }
    };
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
            ExitCode::FAILURE
        }
    }
}
