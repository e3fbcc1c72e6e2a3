//! The result of a scan: findings, per-plugin statistics, errors and skipped files. This is
//! the versioned JSON document (`--format json`) and the input of every other format.

use crate::model::{Finding, RuleInfo, Severity};
use crate::walk::SkipReason;
use serde::Serialize;
use std::collections::BTreeMap;

/// Version of the JSON report schema (`docs/scan-json.md`). Adding fields is a minor bump;
/// removing or changing one is a major bump.
pub const REPORT_SCHEMA_VERSION: &str = "1.1";

/// Everything a scan produced.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    pub schema_version: &'static str,
    pub tool: ToolInfo,
    /// The target as the user named it.
    pub target: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_ms: u64,
    /// True when a plugin failed or hit a limit: some files or stages have no results.
    pub partial: bool,
    pub summary: Summary,
    pub findings: Vec<Finding>,
    /// Every rule that has a finding, with its description and help.
    pub rules: Vec<RuleInfo>,
    pub plugins: Vec<PluginStats>,
    pub errors: Vec<PluginFailure>,
    /// Files not scanned and why (at most [`MAX_SKIPPED_LISTED`]; counts are in the summary).
    pub skipped: Vec<SkippedFile>,
    pub analytics: Vec<AnalyticsResult>,
    /// Where the target sits in a git work tree (SARIF's `%SRCROOT%`); not in the JSON.
    #[serde(skip)]
    pub source_root: Option<SourceRoot>,
}

/// The git work tree a target sits in: code scanning (GitHub) resolves result paths
/// against the repository root, not against the directory that was scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRoot {
    /// The work tree's root as an absolute `file://` URI ending in `/`.
    pub uri: String,
    /// The scanned directory inside the work tree, `/`-separated, ending in `/` (empty
    /// when the target is the root itself).
    pub prefix: String,
}

impl SourceRoot {
    /// The work tree above `target` (a directory or a file), if any: the nearest ancestor
    /// holding `.git` (a directory, or a file for worktrees and submodules).
    pub fn find(target: &std::path::Path) -> Option<SourceRoot> {
        let target = std::fs::canonicalize(target).ok()?;
        let base = if target.is_file() {
            target.parent()?.to_path_buf()
        } else {
            target
        };
        let root = base.ancestors().find(|a| a.join(".git").exists())?;
        let inside = base.strip_prefix(root).ok()?;
        let mut prefix: String = inside
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if !prefix.is_empty() {
            prefix.push('/');
        }
        let mut uri = String::from("file://");
        for part in root.components().skip(1) {
            uri.push('/');
            uri.push_str(&crate::output::sarif::uri_escape(
                &part.as_os_str().to_string_lossy(),
            ));
        }
        uri.push('/');
        Some(SourceRoot { uri, prefix })
    }
}

/// How many skipped files are listed by name.
pub const MAX_SKIPPED_LISTED: usize = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub findings: usize,
    /// Every severity, worst first, including zero counts.
    pub by_severity: BTreeMap<Severity, usize>,
    pub files_scanned: u64,
    pub bytes_scanned: u64,
    pub files_skipped: BTreeMap<SkipReason, u64>,
    /// Files an ignore file (`.gitignore`, `.ignore`, `.secflowignore`) left out; 0 with
    /// `--no-ignore`. Files left out by `--exclude` are not counted.
    pub files_ignored: u64,
    /// Findings silenced by a `secflow:ignore` comment.
    pub suppressed_inline: usize,
    /// Findings silenced because the baseline already knows them.
    pub suppressed_baseline: usize,
}

/// What one plugin did during the scan.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PluginStats {
    pub id: String,
    pub version: String,
    pub kind: String,
    /// SHA-256 of the component that ran.
    pub digest: String,
    /// `bundled`, `installed` or `dev`.
    pub origin: String,
    pub invocations: u64,
    pub files: u64,
    pub findings: u64,
    pub errors: u64,
    /// Sum of invocation wall times (can exceed the scan's duration with several jobs).
    pub time_ms: f64,
    pub peak_memory_bytes: u64,
    /// Set when the plugin was stopped for the rest of the scan after repeated failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// A plugin failure the scan survived.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PluginFailure {
    pub plugin: String,
    /// The file being scanned, when the failure is about one file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The runtime's error kind (`timeout`, `memory-limit`, `trap`, `plugin-error`, ...).
    pub kind: String,
    pub message: String,
    /// A sandbox violation (a limit hit, a capability refused, an output that broke the
    /// contract), as opposed to a plugin bug or a reported error. Violations are audited as
    /// such and count toward an installed plugin's quarantine.
    pub violation: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SkippedFile {
    pub path: String,
    pub reason: SkipReason,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The report of one analytics plugin.
#[derive(Debug, Clone, Serialize)]
pub struct AnalyticsResult {
    pub plugin: String,
    pub summary_markdown: String,
    pub metrics: Vec<MetricValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricValue {
    pub name: String,
    pub value: f64,
    pub labels: BTreeMap<String, String>,
}

impl ScanReport {
    /// Findings at or above `threshold`.
    pub fn count_at_least(&self, threshold: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity >= threshold)
            .count()
    }
}
