//! `secflow`: the command-line front end. Thin by design: it parses arguments, calls into the
//! library crates, and maps errors to the exit codes of the CLI contract:
//! 0 success, 1 findings at or above `--fail-on`, 2 usage or configuration error,
//! 3 refused (verification or policy), 4 plugin failed (trap, limit, violation).

mod cli;
mod commands;
mod exit;
mod home;
mod sdk;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    match commands::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            let code = exit::code_of(&err);
            eprintln!("error: {err:#}");
            code.into()
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SECFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}
