//! The findings model of a scan, as every output format sees it.
//!
//! Plugins speak the WIT types of `secflow:plugin@0.1.0`; the host converts them once into
//! these types, which carry what only the host knows (the plugin that reported a finding, its
//! stable fingerprint) and serialize to the documented JSON schema (`docs/scan-json.md`).

use secflow_runtime::bindings as b;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Finding properties with these keys describe the rule, not the finding: the host moves
/// them into the run's rule table (SARIF `rules[]`, the HTML rule help) so every finding of a
/// rule does not repeat them.
pub const PROP_RULE_DESCRIPTION: &str = "secflow.rule-description";
pub const PROP_RULE_HELP: &str = "secflow.rule-help";

pub use secflow_severity::{Confidence, Severity};

/// A CVSS-like score for a severity, used when a finding carries no scored CVSS vector
/// (SARIF `security-severity` needs a number).
pub fn default_score(severity: Severity) -> f64 {
    match severity {
        Severity::Info => 0.0,
        Severity::Low => 3.0,
        Severity::Medium => 5.5,
        Severity::High => 8.0,
        Severity::Critical => 9.5,
    }
}

fn severity_from_wit(s: b::Severity) -> Severity {
    match s {
        b::Severity::Info => Severity::Info,
        b::Severity::Low => Severity::Low,
        b::Severity::Medium => Severity::Medium,
        b::Severity::High => Severity::High,
        b::Severity::Critical => Severity::Critical,
    }
}

fn severity_to_wit(s: Severity) -> b::Severity {
    match s {
        Severity::Info => b::Severity::Info,
        Severity::Low => b::Severity::Low,
        Severity::Medium => b::Severity::Medium,
        Severity::High => b::Severity::High,
        Severity::Critical => b::Severity::Critical,
    }
}

/// Where a finding is. Lines and columns are 1-based; 0 means unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Location {
    /// Relative to the scan root, `/`-separated.
    pub path: String,
    pub start_line: u32,
    pub start_column: u32,
    pub end_line: u32,
    pub end_column: u32,
    /// The offending source text, with secrets redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    /// Lines around the finding taken from the scanned file by the host (not the plugin),
    /// redacted like the snippet; only when the scan asks for context (the HTML report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
}

/// Source lines around a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Context {
    /// The line number of `lines[0]`.
    pub start_line: u32,
    pub lines: Vec<String>,
}

/// The longest context line kept, in characters; longer ones end in `…` (a minified file
/// must not put megabytes into a report).
const CONTEXT_LINE_CHARS: usize = 240;
/// The longest finding (in lines) shown whole in its context.
const MAX_SPAN: u32 = 20;

impl Context {
    /// Up to `around` lines before and after lines `start..=end` (1-based) of a file whose
    /// line starts are `line_starts` (see [`line_starts`]).
    pub fn from_content(
        content: &[u8],
        line_starts: &[usize],
        start: u32,
        end: u32,
        around: u32,
    ) -> Option<Context> {
        if start == 0 || start as usize > line_starts.len() {
            return None;
        }
        // A finding spanning many lines gets context around its first line only.
        let end = if end < start || end - start > MAX_SPAN {
            start
        } else {
            end
        };
        let first = start.saturating_sub(around).max(1);
        let last = end.saturating_add(around).min(line_starts.len() as u32);
        let lines = (first..=last)
            .map(|n| {
                let from = line_starts[n as usize - 1];
                let to = line_starts
                    .get(n as usize)
                    .map_or(content.len(), |next| next - 1);
                let raw = &content[from..to];
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let line = String::from_utf8_lossy(raw);
                match line.char_indices().nth(CONTEXT_LINE_CHARS) {
                    Some((cut, _)) => format!("{}…", &line[..cut]),
                    None => line.into_owned(),
                }
            })
            .collect();
        Some(Context {
            start_line: first,
            lines,
        })
    }
}

/// Byte offsets where each line of `content` starts (the first is 0).
pub fn line_starts(content: &[u8]) -> Vec<usize> {
    std::iter::once(0)
        .chain(memchr::memchr_iter(b'\n', content).map(|i| i + 1))
        .filter(|&i| i < content.len() || i == 0)
        .collect()
}

/// One finding, as reported in every output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule_id: String,
    pub title: String,
    pub message: String,
    pub severity: Severity,
    pub confidence: Confidence,
    #[serde(default)]
    pub cwe_ids: Vec<u32>,
    #[serde(default)]
    pub cve_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_vector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Stable identity: rule id, normalized path, normalized snippet and occurrence index.
    pub fingerprint: String,
    /// Id of the plugin that reported it.
    pub plugin: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// What a run knows about one rule: taken from the first finding of the rule that carried
/// the `secflow.rule-*` properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RuleInfo {
    pub id: String,
    pub title: String,
    /// Longer explanation; falls back to the title.
    pub description: String,
    /// How to fix it; may be empty.
    pub help: String,
    pub plugin: String,
    pub severity: Severity,
    pub cwe_ids: Vec<u32>,
}

impl Finding {
    /// Converts a plugin's finding, splitting off the rule metadata it carried.
    pub fn from_wit(f: b::Finding, plugin: &str) -> (Finding, RuleInfo) {
        let mut properties: BTreeMap<String, String> = f.properties.into_iter().collect();
        let description = properties.remove(PROP_RULE_DESCRIPTION);
        let help = properties.remove(PROP_RULE_HELP);
        let finding = Finding {
            rule_id: f.rule_id,
            title: f.title,
            message: f.message,
            severity: severity_from_wit(f.severity),
            confidence: match f.confidence {
                b::Confidence::Low => Confidence::Low,
                b::Confidence::Medium => Confidence::Medium,
                b::Confidence::High => Confidence::High,
            },
            cwe_ids: f.cwe_ids,
            cve_ids: f.cve_ids,
            cvss_vector: f.cvss_vector,
            location: f.location.map(|l| Location {
                path: l.path,
                start_line: l.start_line,
                start_column: l.start_column,
                end_line: l.end_line,
                end_column: l.end_column,
                snippet: l.snippet,
                context: None,
            }),
            fingerprint: f.fingerprint.unwrap_or_default(),
            plugin: plugin.to_string(),
            tags: f.tags,
            properties,
        };
        let rule = RuleInfo {
            id: finding.rule_id.clone(),
            title: finding.title.clone(),
            description: description.unwrap_or_default(),
            help: help.unwrap_or_default(),
            plugin: plugin.to_string(),
            severity: finding.severity,
            cwe_ids: finding.cwe_ids.clone(),
        };
        (finding, rule)
    }

    /// The WIT form handed to enrichers and analytics (the fingerprint travels with it so
    /// the host can recognise the finding when it comes back).
    pub fn to_wit(&self) -> b::Finding {
        b::Finding {
            rule_id: self.rule_id.clone(),
            title: self.title.clone(),
            message: self.message.clone(),
            severity: severity_to_wit(self.severity),
            confidence: match self.confidence {
                Confidence::Low => b::Confidence::Low,
                Confidence::Medium => b::Confidence::Medium,
                Confidence::High => b::Confidence::High,
            },
            cwe_ids: self.cwe_ids.clone(),
            cve_ids: self.cve_ids.clone(),
            cvss_vector: self.cvss_vector.clone(),
            location: self.location.as_ref().map(|l| b::Location {
                path: l.path.clone(),
                start_line: l.start_line,
                start_column: l.start_column,
                end_line: l.end_line,
                end_column: l.end_column,
                snippet: l.snippet.clone(),
            }),
            fingerprint: Some(self.fingerprint.clone()),
            tags: self.tags.clone(),
            properties: self
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The path of the finding, or `""` for findings about the whole target.
    pub fn path(&self) -> &str {
        self.location.as_ref().map_or("", |l| l.path.as_str())
    }

    pub fn line(&self) -> u32 {
        self.location.as_ref().map_or(0, |l| l.start_line)
    }

    /// The score SARIF's `security-severity` and the HTML report use: from the CVSS
    /// enricher's `cvss.score` property when present, else from the severity.
    pub fn score(&self) -> f64 {
        self.properties
            .get("cvss.score")
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| (0.0..=10.0).contains(s))
            .unwrap_or_else(|| default_score(self.severity))
    }
}

/// Sort order of every output: worst first, then by file and position.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.path().cmp(b.path()))
            .then_with(|| a.line().cmp(&b.line()))
            .then_with(|| a.rule_id.cmp(&b.rule_id))
            .then_with(|| a.fingerprint.cmp(&b.fingerprint))
    });
}
