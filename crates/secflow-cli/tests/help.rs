//! `--help` of every command: pinned as snapshots (`tests/snapshots/`, `INSTA_UPDATE=always`
//! to bless after a deliberate change), and checked for flags without a description.

mod common;

use common::{code, secflow, text};
use std::path::Path;

/// `secflow ARGS --help`, with what differs between machines filtered out.
fn help(args: &[&str]) -> String {
    // No SECFLOW_HOME: clap shows an environment variable's value in the help, and the
    // state directory is not read for `--help`.
    let mut cmd = secflow(Path::new("unused"));
    cmd.env_remove("SECFLOW_HOME");
    let out = cmd
        .args(args)
        .arg("--help")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The subcommands a help text lists under `Commands:`.
fn subcommands(help: &str) -> Vec<String> {
    let Some(start) = help.find("\nCommands:\n") else {
        return Vec::new();
    };
    help[start + 11..]
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Every command path, depth first: `[]`, `["scan"]`, `["plugin", "install"]`, ...
fn all_commands() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        for sub in subcommands(&help(&args)).into_iter().rev() {
            let mut next = path.clone();
            next.push(sub);
            todo.push(next);
        }
        out.push(path);
    }
    out
}

/// Option and argument entries that have no description: a flag line with nothing after
/// the flag, and no indented continuation line under it.
fn undocumented(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let mut missing = Vec::new();
    let mut in_options = false;
    for (i, line) in lines.iter().enumerate() {
        if line.ends_with(':') && !line.starts_with(' ') {
            in_options = *line == "Options:" || *line == "Arguments:";
            continue;
        }
        if !in_options || line.trim().is_empty() {
            continue;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if !(2..=6).contains(&indent)
            || !(trimmed.starts_with('-') || trimmed.starts_with('[') || trimmed.starts_with('<'))
        {
            continue;
        }
        let has_text = trimmed.trim_end().contains("  ");
        let continued = lines
            .get(i + 1)
            .is_some_and(|next| next.len() - next.trim_start().len() >= 10);
        if !has_text && !continued {
            missing.push(trimmed.to_string());
        }
    }
    missing
}

#[test]
fn every_command_has_a_pinned_help_that_documents_every_flag() {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\[env: ([A-Z_]+)=[^\]]*\]", "[env: $1=]");
    settings.add_filter(&regex_escape(env!("CARGO_PKG_VERSION")), "[version]");
    settings.set_prepend_module_to_snapshot(false);
    let commands = all_commands();
    assert!(commands.len() > 30, "{commands:?}");
    let mut problems = Vec::new();
    let mut pinned = Vec::new();
    for path in &commands {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&args);
        for flag in undocumented(&text) {
            problems.push(format!("secflow {} {flag}", path.join(" ")));
        }
        let name = if path.is_empty() {
            "help".to_string()
        } else {
            format!("help-{}", path.join("-"))
        };
        pinned.push((name, text));
    }
    assert!(
        problems.is_empty(),
        "flags without a description:\n{}",
        problems.join("\n")
    );
    for (name, text) in pinned {
        settings.bind(|| insta::assert_snapshot!(name, text));
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}
