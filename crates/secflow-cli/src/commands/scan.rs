//! `secflow scan PATH`: the bundled plugins, enabled installed ones (with their grants) and
//! any `--dev` ones over a target, in the sandbox, reported as a table, JSON, SARIF or HTML.
//!
//! Exit codes: 0 clean (or below `--fail-on`), 1 findings at or above `--fail-on`, 2 usage
//! error, 4 partial scan (a plugin failed or hit a limit) without findings at or above
//! `--fail-on`. A gate fails on both; 1 wins because it is certain (more results could only
//! add findings), while 4 says findings may be missing.

use crate::cli::ScanArgs;
use crate::exit::{Exit, HostResultExt, fail};
use secflow_host::Host;
use secflow_scan::output::{self, Format};
use secflow_scan::{Baseline, ScanOptions};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

pub fn run(host: &Host, mut args: ScanArgs) -> anyhow::Result<Exit> {
    super::marketplace::poll_revocations(host);
    // `scan -`: what is on stdin, scanned as one file named `stdin`.
    let _stdin_copy = if args.path.as_os_str() == "-" {
        let dir = read_stdin_to_file(args.max_file_size)?;
        args.path = dir.path().join("stdin");
        Some(dir)
    } else {
        None
    };
    let from_stdin = _stdin_copy.is_some();
    let format: Format = args
        .format
        .parse()
        .map_err(|e: String| fail(Exit::Usage, e))?;
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get().min(256)),
        usize::from,
    );
    let baseline = args
        .baseline
        .as_deref()
        .map(Baseline::read)
        .transpose()
        .map_err(|e| fail(Exit::Usage, e))?;
    let mut dev = Vec::new();
    for dir in &args.dev {
        dev.push(secflow_host::read_plugin_dir(dir).cli()?);
    }
    let request = secflow_host::ScanRequest {
        target: args.path.clone(),
        dev,
        only: args.plugins.clone(),
        exclude: args.exclude_plugins.clone(),
        with: args.with.clone(),
        mounts: parse_mounts(&args.mounts)?,
        configs: parse_plugin_config(&args.config)?,
        rules: if args.rules.is_empty() {
            None
        } else {
            Some(read_rule_files(&args.rules)?)
        },
        options: ScanOptions {
            jobs,
            max_file_size: args.max_file_size,
            baseline,
            redact: !args.no_redact,
            exclude: args.exclude.clone(),
            respect_ignore_files: !args.no_ignore,
            // The HTML report shows the lines around each finding.
            context_lines: if format == Format::Html { 3 } else { 0 },
            ..ScanOptions::default()
        },
    };
    let progress =
        Progress::new(!args.no_progress && !args.quiet && std::io::stderr().is_terminal());
    let scanned = host.block_on(host.scan(request, progress.clone()));
    progress.finish();
    let outcome = scanned.cli()?;
    if !args.quiet {
        for notice in &outcome.notices {
            errln!("warning: {notice}");
        }
    }
    for (id, reason) in &outcome.quarantined {
        errln!(
            "warning: {id} is quarantined ({reason}); it stays off until `secflow plugin release {id}`"
        );
    }
    let mut report = outcome.report;
    if from_stdin {
        report.target = "-".into();
    }
    // The gate counts every finding: `--severity` (or a project file's `severity`) narrows
    // what is listed, never what fails the build. The summary keeps every count.
    let gate_failed = args
        .fail_on
        .is_some_and(|threshold| report.count_at_least(threshold) > 0);
    if !args.severity.is_empty() {
        report
            .findings
            .retain(|f| args.severity.contains(&f.severity));
        let listed: std::collections::BTreeSet<&str> =
            report.findings.iter().map(|f| f.rule_id.as_str()).collect();
        report.rules.retain(|r| listed.contains(r.id.as_str()));
    }
    // Unreadable files and directories: named on stderr (the report lists them too), and
    // the scan is partial.
    let unreadable: Vec<&secflow_scan::report::SkippedFile> = report
        .skipped
        .iter()
        .filter(|s| s.reason == secflow_scan::walk::SkipReason::Unreadable)
        .collect();
    for s in unreadable.iter().take(20) {
        errln!(
            "warning: could not read {}: {}; the scan is partial",
            if s.path.is_empty() { "a path" } else { &s.path },
            s.detail
        );
    }
    if unreadable.len() > 20 {
        errln!(
            "warning: ... and {} more unreadable path(s)",
            unreadable.len() - 20
        );
    }

    if let Some(path) = &args.write_baseline {
        let baseline = Baseline::from_findings(&report.findings);
        super::write_output(path, baseline.to_json().as_bytes())?;
        if !args.quiet {
            errln!(
                "wrote a baseline of {} finding(s) to {}",
                baseline.findings.len(),
                path.display()
            );
        }
    }

    let terminal = args.output.is_none() && std::io::stdout().is_terminal();
    let look = output::table::Look {
        color: use_color(&args.color, terminal, |name| std::env::var(name).ok()),
        width: table_width(terminal, std::env::var("COLUMNS").ok()),
    };
    let rendered = output::render(&report, format, look);
    match &args.output {
        Some(path) => {
            super::write_output(path, rendered.as_bytes())?;
            if !args.quiet {
                errln!(
                    "wrote {} report to {}: {} finding(s){}",
                    args.format,
                    path.display(),
                    report.findings.len(),
                    if report.partial { ", partial scan" } else { "" }
                );
            }
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            if let Err(e) = out.write_all(rendered.as_bytes()).and_then(|_| out.flush())
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(e.into());
            }
        }
    }

    Ok(if gate_failed {
        Exit::Findings
    } else if report.partial {
        Exit::PluginFailed
    } else {
        Exit::Success
    })
}

/// Copies stdin into a private temporary directory as the file `stdin` (at most
/// `max_bytes`; more is refused rather than scanned in part).
fn read_stdin_to_file(max_bytes: u64) -> anyhow::Result<tempfile::TempDir> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| fail(Exit::Usage, format!("cannot read stdin: {e}")))?;
    if bytes.len() as u64 > max_bytes {
        return Err(fail(
            Exit::Usage,
            format!(
                "stdin holds more than --max-file-size ({max_bytes} bytes); raise it or scan a file"
            ),
        ));
    }
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("stdin"), &bytes)?;
    Ok(dir)
}

/// Whether the table gets colors: `--color always|never` decide; `auto` colors a terminal
/// unless `NO_COLOR` is set to something (an empty one does not count, as no-color.org
/// says), and `FORCE_COLOR` (non-empty, not `0`) colors even a pipe.
fn use_color(when: &str, terminal: bool, env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    match when {
        "always" => true,
        "never" => false,
        _ if set("NO_COLOR") => false,
        _ if set("FORCE_COLOR") && env("FORCE_COLOR").as_deref() != Some("0") => true,
        _ => terminal,
    }
}

/// The width the table wraps to: `COLUMNS` when set to a number (so a pipe can ask for
/// wrapping too), else the terminal's width; no wrapping for a pipe or a file.
fn table_width(terminal: bool, columns: Option<String>) -> Option<usize> {
    if let Some(n) = columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return Some(n);
    }
    terminal
        .then(|| terminal_size::terminal_size_of(std::io::stdout()))
        .flatten()
        .map(|(terminal_size::Width(w), _)| usize::from(w))
}

/// `PLUGIN:GUEST=HOST` pairs, grouped by plugin; the host directory must exist.
fn parse_mounts(
    pairs: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<(String, std::path::PathBuf)>>> {
    let mut out: std::collections::BTreeMap<String, Vec<(String, std::path::PathBuf)>> =
        Default::default();
    for pair in pairs {
        let bad = || {
            fail(
                Exit::Usage,
                format!(
                    "--mount `{pair}` is not PLUGIN:GUEST=HOST (e.g. kev-epss-enricher:/feeds=./feeds)"
                ),
            )
        };
        let (plugin, rest) = pair.split_once(':').ok_or_else(bad)?;
        let (guest, host) = rest.split_once('=').ok_or_else(bad)?;
        let host = std::path::PathBuf::from(host);
        if !host.is_dir() {
            return Err(fail(
                Exit::Usage,
                format!("--mount {pair}: {} is not a directory", host.display()),
            ));
        }
        out.entry(plugin.to_string())
            .or_default()
            .push((guest.to_string(), host));
    }
    Ok(out)
}

/// `PLUGIN.KEY=VALUE` pairs, grouped by plugin.
fn parse_plugin_config(pairs: &[String]) -> anyhow::Result<secflow_host::PluginConfigs> {
    let mut out = secflow_host::PluginConfigs::new();
    for pair in pairs {
        let bad = || {
            fail(
                Exit::Usage,
                format!(
                    "--config `{pair}` is not PLUGIN.KEY=VALUE (e.g. secrets-detector.disabled-rules='[\"jwt\"]')"
                ),
            )
        };
        let (target, value) = pair.split_once('=').ok_or_else(bad)?;
        let (plugin, key) = target.split_once('.').ok_or_else(bad)?;
        if plugin.is_empty() || key.is_empty() {
            return Err(bad());
        }
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        out.entry(plugin.to_string())
            .or_default()
            .insert(key.to_string(), value);
    }
    Ok(out)
}

/// Rule files of `--rules` directories, as `[{"file": name, "text": yaml}]`.
fn read_rule_files(dirs: &[std::path::PathBuf]) -> anyhow::Result<serde_json::Value> {
    let mut files = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            fail(
                Exit::Usage,
                format!(
                    "--rules {}: {e}; pass a directory of *.yaml rule files",
                    dir.display()
                ),
            )
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(fail(
                Exit::Usage,
                format!("--rules {}: no *.yaml or *.yml files in it", dir.display()),
            ));
        }
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                fail(
                    Exit::Usage,
                    format!("cannot read rule file {}: {e}", path.display()),
                )
            })?;
            files.push(serde_json::json!({
                "file": display_name(&path),
                "text": text,
            }));
        }
    }
    Ok(serde_json::Value::Array(files))
}

fn display_name(path: &Path) -> String {
    path.display().to_string()
}

/// The progress bar: files, bytes and files/s, on stderr, only on a terminal.
#[derive(Debug)]
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(enabled: bool) -> Arc<Progress> {
        let bar = enabled.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} scanning: {pos} files, {msg} ({rate}) {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
                .with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} files/s", state.per_sec());
                    },
                ),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bar
        });
        Arc::new(Progress { bar })
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl secflow_scan::Progress for Progress {
    fn scanned(&self, files: u64, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(files);
            bar.set_message(secflow_scan::output::table::human_bytes(bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::use_color;

    #[test]
    fn color_follows_the_flag_then_no_color_then_force_color_then_the_terminal() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(use_color("always", false, env(&[("NO_COLOR", "1")])));
        assert!(!use_color("never", true, env(&[("FORCE_COLOR", "1")])));
        assert!(use_color("auto", true, env(&[])));
        assert!(!use_color("auto", false, env(&[])));
        assert!(!use_color("auto", true, env(&[("NO_COLOR", "1")])));
        // An empty NO_COLOR does not count.
        assert!(use_color("auto", true, env(&[("NO_COLOR", "")])));
        assert!(use_color("auto", false, env(&[("FORCE_COLOR", "1")])));
        assert!(!use_color("auto", false, env(&[("FORCE_COLOR", "0")])));
        assert!(!use_color("auto", false, env(&[("FORCE_COLOR", "")])));
    }
}
