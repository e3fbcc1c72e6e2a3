//! SARIF 2.1.0, shaped for GitHub code scanning: every rule has a short and full
//! description, help text and a `security-severity`; every result has a message, a
//! repo-relative location with a region, and `partialFingerprints`. The run's invocation
//! says whether the scan was complete and lists the plugin failures as notifications; the
//! plugin statistics travel in the run's properties.

use crate::model::{Finding, RuleInfo, Severity};
use crate::report::ScanReport;
use serde_sarif::sarif as s;
use std::collections::{BTreeMap, HashMap};

/// The tool's home page, when the build knows a real one (`SECFLOW_INFORMATION_URI` at build
/// time, set by whoever publishes SecFlow). No made-up URL otherwise: SARIF consumers show
/// it as a link.
pub const INFORMATION_URI: Option<&str> = option_env!("SECFLOW_INFORMATION_URI");

/// The schema URL GitHub and editors resolve (serde-sarif's default one is outdated).
pub const SCHEMA_URL: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(severity: Severity) -> s::ResultLevel {
    match severity {
        Severity::Critical | Severity::High => s::ResultLevel::Error,
        Severity::Medium => s::ResultLevel::Warning,
        Severity::Low | Severity::Info => s::ResultLevel::Note,
    }
}

fn text(t: impl Into<String>) -> s::MultiformatMessageString {
    s::MultiformatMessageString::builder()
        .text(t.into())
        .build()
}

fn props(values: impl IntoIterator<Item = (String, serde_json::Value)>) -> s::PropertyBag {
    s::PropertyBag::builder()
        .additional_properties(values.into_iter().collect::<BTreeMap<_, _>>())
        .build()
}

fn rule_descriptor(rule: &RuleInfo, findings: &[&Finding]) -> s::ReportingDescriptor {
    // The rule's security-severity is its worst finding's score (GitHub reads it per rule).
    let score = findings
        .iter()
        .map(|f| f.score())
        .fold(crate::model::default_score(rule.severity), f64::max);
    let mut tags = vec!["security".to_string()];
    tags.extend(rule.cwe_ids.iter().map(|c| format!("external/cwe/cwe-{c}")));
    let description = if rule.description.trim().is_empty() {
        rule.title.clone()
    } else {
        rule.description.clone()
    };
    let help = if rule.help.trim().is_empty() {
        format!("{description}\n\nReported by the `{}` plugin.", rule.plugin)
    } else {
        rule.help.clone()
    };
    let cwe_links: Vec<String> = rule
        .cwe_ids
        .iter()
        .map(|c| format!("[CWE-{c}](https://cwe.mitre.org/data/definitions/{c}.html)"))
        .collect();
    let markdown = if cwe_links.is_empty() {
        help.clone()
    } else {
        format!("{help}\n\nReferences: {}", cwe_links.join(", "))
    };
    let precision = findings
        .iter()
        .map(|f| f.confidence)
        .max()
        .unwrap_or_default();
    let mut descriptor = s::ReportingDescriptor::builder()
        .id(sarif_rule_id(&rule.id))
        .name(rule_name(&rule.id))
        .short_description(text(rule.title.clone()))
        .full_description(text(description))
        .help(
            s::MultiformatMessageString::builder()
                .text(help)
                .markdown(markdown)
                .build(),
        )
        .default_configuration(
            s::ReportingConfiguration::builder()
                .level(serde_json::json!(level(rule.severity).to_string()))
                .build(),
        )
        .properties(props([
            ("tags".to_string(), serde_json::json!(tags)),
            (
                "security-severity".to_string(),
                serde_json::json!(format!("{score:.1}")),
            ),
            (
                "precision".to_string(),
                serde_json::json!(match precision {
                    crate::Confidence::High => "high",
                    crate::Confidence::Medium => "medium",
                    crate::Confidence::Low => "low",
                }),
            ),
            ("secflow/rule-id".to_string(), serde_json::json!(rule.id)),
        ]))
        .build();
    // A real page about the weakness: the rule's first CWE entry (no URI rather than one
    // that does not resolve).
    descriptor.help_uri = rule
        .cwe_ids
        .first()
        .map(|c| format!("https://cwe.mitre.org/data/definitions/{c}.html"));
    descriptor
}

/// `code/python.sql-concat` → `PythonSqlConcat`: SARIF names are identifiers.
fn rule_name(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// SARIF rule ids without `/` (GitHub's code scanning treats them as paths in its UI):
/// `secrets/aws-access-key` → `secrets.aws-access-key`.
fn sarif_rule_id(id: &str) -> String {
    id.replace('/', ".")
}

fn result(f: &Finding, rule_index: usize, prefix: &str) -> s::Result {
    let mut builder_locations = Vec::new();
    if let Some(loc) = &f.location
        && !loc.path.is_empty()
    {
        let start_line = loc.start_line.max(1) as i64;
        let mut region = s::Region::builder().start_line(start_line).build();
        if loc.start_column > 0 {
            region.start_column = Some(loc.start_column as i64);
        }
        if loc.end_line >= loc.start_line && loc.end_line > 0 {
            region.end_line = Some(loc.end_line as i64);
            if loc.end_column > 0
                && (loc.end_line > loc.start_line || loc.end_column > loc.start_column)
            {
                region.end_column = Some(loc.end_column as i64);
            }
        }
        if let Some(snippet) = &loc.snippet {
            region.snippet = Some(s::ArtifactContent::builder().text(snippet.clone()).build());
        }
        builder_locations.push(
            s::Location::builder()
                .physical_location(
                    s::PhysicalLocation::builder()
                        .artifact_location(
                            s::ArtifactLocation::builder()
                                .uri(uri_escape(&format!("{prefix}{}", loc.path)))
                                .uri_base_id("%SRCROOT%".to_string())
                                .build(),
                        )
                        .region(region)
                        .build(),
                )
                .build(),
        );
    }
    let mut properties: Vec<(String, serde_json::Value)> = vec![
        ("severity".into(), serde_json::json!(f.severity.as_str())),
        (
            "confidence".into(),
            serde_json::json!(f.confidence.as_str()),
        ),
        ("plugin".into(), serde_json::json!(f.plugin)),
    ];
    if !f.cve_ids.is_empty() {
        properties.push(("cve-ids".into(), serde_json::json!(f.cve_ids)));
    }
    if let Some(v) = &f.cvss_vector {
        properties.push(("cvss-vector".into(), serde_json::json!(v)));
    }
    if !f.tags.is_empty() {
        properties.push(("tags".into(), serde_json::json!(f.tags)));
    }
    for (k, v) in &f.properties {
        properties.push((k.clone(), serde_json::json!(v)));
    }
    let message = if f.message.is_empty() {
        f.title.clone()
    } else {
        f.message.clone()
    };
    let mut r = s::Result::builder()
        .rule_id(sarif_rule_id(&f.rule_id))
        .rule_index(rule_index as i64)
        .level(level(f.severity))
        .message(s::Message::builder().text(message).build())
        .partial_fingerprints(BTreeMap::from([
            ("primaryLocationLineHash".to_string(), f.fingerprint.clone()),
            ("secflow/v1".to_string(), f.fingerprint.clone()),
        ]))
        .properties(props(properties))
        .build();
    if !builder_locations.is_empty() {
        r.locations = Some(builder_locations);
    }
    r
}

/// Percent-encodes what a URI reference cannot hold, keeping `/` (paths stay relative).
pub(crate) fn uri_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        // `:` is escaped too: a first segment like `file:` would make the URI absolute.
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The SARIF log as a value (tests validate it against the official schema).
pub fn to_value(report: &ScanReport) -> serde_json::Value {
    let mut by_rule: HashMap<&str, Vec<&Finding>> = HashMap::new();
    for f in &report.findings {
        by_rule.entry(f.rule_id.as_str()).or_default().push(f);
    }
    let rules: Vec<&RuleInfo> = report.rules.iter().collect();
    let index: HashMap<&str, usize> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let descriptors: Vec<s::ReportingDescriptor> = rules
        .iter()
        .map(|r| rule_descriptor(r, by_rule.get(r.id.as_str()).map_or(&[][..], |v| v)))
        .collect();
    let results: Vec<s::Result> = report
        .findings
        .iter()
        .map(|f| {
            result(
                f,
                index.get(f.rule_id.as_str()).copied().unwrap_or(0),
                report
                    .source_root
                    .as_ref()
                    .map_or("", |r| r.prefix.as_str()),
            )
        })
        .collect();
    let mut driver = s::ToolComponent::builder()
        .name("SecFlow".to_string())
        .semantic_version(report.tool.version.to_string())
        .rules(descriptors)
        .build();
    driver.information_uri = INFORMATION_URI
        .filter(|u| u.starts_with("https://"))
        .map(str::to_string);
    let notifications: Vec<s::Notification> = report
        .errors
        .iter()
        .map(|e| {
            let mut text = format!("{} failed ({}): {}", e.plugin, e.kind, e.message);
            if let Some(file) = &e.file {
                text = format!("{text} [file: {file}]");
            }
            s::Notification::builder()
                .level(serde_json::json!("error"))
                .message(s::Message::builder().text(text).build())
                .build()
        })
        .collect();
    let mut invocation = s::Invocation::builder()
        .execution_successful(!report.partial)
        .build();
    if !notifications.is_empty() {
        invocation.tool_execution_notifications = Some(notifications);
    }
    let mut run = s::Run::builder()
        .tool(s::Tool::builder().driver(driver).build())
        .results(results)
        .invocations(vec![invocation])
        .column_kind(serde_json::json!("unicodeCodePoints"))
        .properties(props([
            (
                "secflow/partial".to_string(),
                serde_json::json!(report.partial),
            ),
            (
                "secflow/summary".to_string(),
                serde_json::json!(report.summary),
            ),
            (
                "secflow/plugins".to_string(),
                serde_json::json!(report.plugins),
            ),
            (
                "secflow/analytics".to_string(),
                serde_json::json!(report.analytics),
            ),
        ]))
        .build();
    if let Some(root) = &report.source_root {
        run.original_uri_base_ids = Some(BTreeMap::from([(
            "%SRCROOT%".to_string(),
            s::ArtifactLocation::builder().uri(root.uri.clone()).build(),
        )]));
    }
    let sarif = s::Sarif::builder()
        .schema(SCHEMA_URL.to_string())
        .version(serde_json::json!("2.1.0"))
        .runs(vec![run])
        .build();
    serde_json::to_value(&sarif).expect("SARIF serializes")
}

pub fn render(report: &ScanReport) -> String {
    secflow_term::to_json_pretty(&to_value(report)).expect("SARIF serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uris() {
        assert_eq!(rule_name("code/python.sql-concat"), "CodePythonSqlConcat");
        assert_eq!(uri_escape("src/my file#1.py"), "src/my%20file%231.py");
    }
}
