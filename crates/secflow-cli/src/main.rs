//! `secflow`: the command-line front end. Thin by design: it parses arguments, calls into the
//! library crates, and maps errors to the exit codes of the CLI contract:
//! 0 success, 1 findings at or above `--fail-on`, 2 usage or configuration error,
//! 3 refused (verification or policy), 4 plugin failed (trap, limit, violation).

/// `println!` for everything the CLI prints: text may hold what a plugin or a package
/// controls (a manifest's name, description and capability reasons, a plugin's error,
/// an audit event's reason), so control, escape and bidi characters are shown as `\u{..}`
/// (newlines and tabs kept). JSON from `secflow_term::to_json*` passes through unchanged.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::print_out(&format!("{}\n", secflow_term::escape(&format!($($arg)*))))
    };
}

/// `eprintln!` with the same escaping as [`outln!`].
macro_rules! errln {
    ($($arg:tt)*) => {
        eprintln!("{}", secflow_term::escape(&format!($($arg)*)))
    };
}

/// `eprint!` with the same escaping as [`outln!`].
macro_rules! err {
    ($($arg:tt)*) => {
        eprint!("{}", secflow_term::escape(&format!($($arg)*)))
    };
}

/// `print!` with the same escaping as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::print_out(&secflow_term::escape(&format!($($arg)*)))
    };
}

/// Writes to stdout; a reader that went away (`secflow plugin list | head`) ends the
/// command quietly instead of a panic.
fn print_out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => {}
        // The reader went away: end as a program killed by SIGPIPE does (128 + 13), so a
        // pipeline with `pipefail` does not mistake a cut-off refusal for success.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            std::process::exit(2);
        }
    }
}

mod cli;
#[cfg(test)]
mod clidoc;
mod commands;
mod exit;
mod project;
mod sdk;
mod security_env;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches();
    let json = wants_json(&matches);
    let mut cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_tracing(
        cli.verbose,
        cli.log_format == "json",
        matches!(
            cli.command,
            cli::Command::Serve(_) | cli::Command::Proxy { .. }
        ),
    );
    let checked = security_env::apply(&mut cli, |name| std::env::var(name).ok())
        .and_then(|()| project_settings(&mut cli, &matches))
        .and_then(|()| commands::run(cli));
    match checked {
        Ok(code) => code.into(),
        Err(err) => {
            let code = exit::code_of(&err);
            // An error can carry text a plugin controls (its error or panic message, a
            // manifest field): escaped, never raw.
            let message = format!("{err:#}");
            if json {
                let doc = serde_json::json!({
                    "error": { "exit_code": code as u8, "message": message }
                });
                match secflow_term::to_json_pretty(&doc) {
                    Ok(text) => println!("{text}"),
                    Err(_) => eprintln!("error: {}", secflow_term::escape(&message)),
                }
            } else {
                eprintln!("error: {}", secflow_term::escape(&message));
            }
            code.into()
        }
    }
}

/// A scan takes its project's `.secflow.toml` where no flag or variable says otherwise.
fn project_settings(cli: &mut cli::Cli, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    if let (cli::Command::Scan(args), Some(("scan", scan))) =
        (&mut cli.command, matches.subcommand())
        && let Some(path) = project::apply(args, scan)?
        && !args.quiet
    {
        // Said every time: the scanned project changed what the scan reports.
        eprintln!(
            "note: scan settings from {} (--no-project-config ignores it)",
            secflow_term::escape_line(&path.display().to_string())
        );
    }
    Ok(())
}

/// Whether the command asked for machine-readable output (`--json`, or `scan --format
/// json`): its errors are then a JSON document on stdout too.
fn wants_json(matches: &clap::ArgMatches) -> bool {
    let mut m = matches;
    loop {
        if m.try_get_one::<bool>("json").ok().flatten() == Some(&true)
            || m.try_get_one::<String>("format")
                .ok()
                .flatten()
                .map(String::as_str)
                == Some("json")
        {
            return true;
        }
        match m.subcommand() {
            Some((_, sub)) => m = sub,
            None => return false,
        }
    }
}

fn init_tracing(verbose: u8, json: bool, serving: bool) {
    let default = match verbose {
        // A server says what it serves: one line per request.
        0 if serving => "warn,secflow_server=info",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("SECFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // The security specification's audit log level: the host's admission and audit code.
    if let Some(level) = std::env::var("SECFLOW_AUDIT_LOG_LEVEL")
        .ok()
        .and_then(|v| security_env::audit_log_level(&v).ok())
    {
        for target in ["secflow_host", "secflow_audit"] {
            if let Ok(directive) = format!("{target}={level}").parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .init();
    } else if serving {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .without_time()
            .init();
    }
}
