//! `.secflow.toml`: a project's scan settings, found upward from the scan target (the
//! nearest one wins). Flags and environment variables win over it; it wins over the
//! defaults. Paths in it are relative to the file.
//!
//! It holds what describes the project (format, gate, severities, exclusions, plugins and
//! their configuration, extra rules, baseline, limits), not what grants anything: host
//! directories (`--mount`), network opt-ins (`--with`), plugins from source (`--dev`) and
//! `--no-redact` stay command-line only, so a repository being scanned cannot widen what
//! the scan may do or reveal.

use crate::cli::ScanArgs;
use crate::exit::{Exit, fail};
use clap::parser::ValueSource;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = ".secflow.toml";

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    #[serde(default)]
    scan: ScanSettings,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ScanSettings {
    format: Option<String>,
    fail_on: Option<String>,
    #[serde(default)]
    severity: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    no_ignore: Option<bool>,
    #[serde(default)]
    plugins: Vec<String>,
    #[serde(default)]
    exclude_plugins: Vec<String>,
    /// `PLUGIN.KEY = VALUE`, as `--config` takes them.
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    rules: Vec<PathBuf>,
    baseline: Option<PathBuf>,
    jobs: Option<u16>,
    max_file_size: Option<String>,
}

/// The largest project file read.
const MAX_BYTES: u64 = 64 * 1024;

/// The nearest `.secflow.toml` at or above `target` (a file's directory for a file), up to
/// the root of the git work tree the target is in; outside a work tree, only the target's
/// own directory. It must be a regular file, not a symlink: a repository cannot point the
/// scanner at a file elsewhere on the machine, and a directory above the project (`/tmp`)
/// cannot plant settings for it.
pub fn find(target: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(target).ok()?;
    let dir = if start.is_file() {
        start.parent()?.to_path_buf()
    } else {
        start
    };
    let in_work_tree = dir.ancestors().any(|d| d.join(".git").exists());
    for d in dir.ancestors() {
        let candidate = d.join(FILE_NAME);
        if std::fs::symlink_metadata(&candidate).is_ok_and(|m| m.file_type().is_file()) {
            return Some(candidate);
        }
        if !in_work_tree || d.join(".git").exists() {
            break;
        }
    }
    None
}

/// Applies the project file (if any) to `args` where `matches` says a value came from the
/// default, not from the command line or the environment. Returns the file used.
pub fn apply(args: &mut ScanArgs, matches: &clap::ArgMatches) -> anyhow::Result<Option<PathBuf>> {
    if args.no_project_config || args.path.as_os_str() == "-" {
        return Ok(None);
    }
    let Some(path) = find(&args.path) else {
        return Ok(None);
    };
    let bad = |e: String| fail(Exit::Usage, format!("{}: {e}", path.display()));
    let size = std::fs::symlink_metadata(&path)
        .map_err(|e| bad(e.to_string()))?
        .len();
    if size > MAX_BYTES {
        return Err(bad(format!(
            "larger than {MAX_BYTES} bytes; a project file is a few lines"
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let file: ProjectFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let s = file.scan;
    let base = path.parent().unwrap_or(Path::new("."));
    let unset = |id: &str| {
        !matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    if let Some(format) = s.format
        && unset("format")
    {
        if !["table", "json", "sarif", "html"].contains(&format.as_str()) {
            return Err(bad(format!(
                "scan.format `{format}` is not one of table, json, sarif, html"
            )));
        }
        args.format = format;
    }
    if let Some(level) = s.fail_on
        && unset("fail_on")
    {
        args.fail_on = Some(
            level
                .parse()
                .map_err(|e: String| bad(format!("scan.fail-on: {e}")))?,
        );
    }
    if !s.severity.is_empty() && unset("severity") {
        args.severity = s
            .severity
            .iter()
            .map(|v| {
                v.parse()
                    .map_err(|e: String| bad(format!("scan.severity: {e}")))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if !s.exclude.is_empty() && unset("exclude") {
        args.exclude = s.exclude;
    }
    if let Some(no_ignore) = s.no_ignore
        && unset("no_ignore")
    {
        args.no_ignore = no_ignore;
    }
    if !s.plugins.is_empty() && unset("plugins") {
        args.plugins = s.plugins;
    }
    if !s.exclude_plugins.is_empty() && unset("exclude_plugins") {
        args.exclude_plugins = s.exclude_plugins;
    }
    if !s.config.is_empty() && unset("config") {
        args.config = s
            .config
            .into_iter()
            .map(|(key, value)| {
                let json = serde_json::to_string(&value).map_err(|e| bad(e.to_string()))?;
                Ok(format!("{key}={json}"))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if !s.rules.is_empty() && unset("rules") {
        args.rules = s.rules.iter().map(|r| base.join(r)).collect();
    }
    if let Some(baseline) = s.baseline
        && unset("baseline")
    {
        args.baseline = Some(base.join(baseline));
    }
    if let Some(jobs) = s.jobs
        && unset("jobs")
    {
        if !(1..=256).contains(&jobs) {
            return Err(bad("scan.jobs must be from 1 to 256".into()));
        }
        args.jobs = Some(jobs);
    }
    if let Some(size) = s.max_file_size
        && unset("max_file_size")
    {
        args.max_file_size =
            crate::cli::parse_size(&size).map_err(|e| bad(format!("scan.max-file-size: {e}")))?;
    }
    Ok(Some(path))
}
