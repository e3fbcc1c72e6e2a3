//! The official code-pattern detector: a thin sandboxed wrapper around `secflow-patterns`.
//!
//! Rules (bundled plus the user's `--rules` files, passed in the config) compile once per
//! instance in `init`; the host runs a batch of files of one scan per instance.

use secflow_patterns::{RuleInfo, RuleSet};
use secflow_pdk::prelude::*;
use std::collections::HashMap;
use std::sync::OnceLock;

struct CodePatterns;

struct State {
    rules: RuleSet,
    info: HashMap<String, RuleInfo>,
    disabled: Vec<String>,
}

static STATE: OnceLock<State> = OnceLock::new();

impl Plugin for CodePatterns {
    fn init(config: &Value) -> Result<(), PluginError> {
        let files: Vec<(String, String)> = config["extra-rules"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|f| {
                        (
                            f["file"].as_str().unwrap_or("rules.yaml").to_string(),
                            f["text"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let builtin = config["builtin"].as_bool().unwrap_or(true);
        let rules = if files.is_empty() && builtin {
            RuleSet::builtin()
        } else {
            RuleSet::from_yaml_files(&files, builtin)
                .map_err(|e| PluginError::InvalidConfig(e.to_string()))?
        };
        let info = rules
            .rules()
            .iter()
            .map(|r| (r.id.clone(), r.clone()))
            .collect();
        let disabled = config["disabled-rules"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let _ = STATE.set(State {
            rules,
            info,
            disabled,
        });
        Ok(())
    }

    fn health() -> Health {
        match STATE.get() {
            Some(state) => Health {
                status: HealthStatus::Healthy,
                message: format!("{} rules loaded", state.info.len()),
            },
            None => Health {
                status: HealthStatus::Unhealthy,
                message: "rules not loaded".into(),
            },
        }
    }
}

fn severity(s: secflow_patterns::Severity) -> Severity {
    match s {
        secflow_patterns::Severity::Info => Severity::Info,
        secflow_patterns::Severity::Low => Severity::Low,
        secflow_patterns::Severity::Medium => Severity::Medium,
        secflow_patterns::Severity::High => Severity::High,
        secflow_patterns::Severity::Critical => Severity::Critical,
    }
}

fn confidence(c: secflow_patterns::Confidence) -> Confidence {
    match c {
        secflow_patterns::Confidence::Low => Confidence::Low,
        secflow_patterns::Confidence::Medium => Confidence::Medium,
        secflow_patterns::Confidence::High => Confidence::High,
    }
}

impl Detector for CodePatterns {
    fn detect(file: FileInput) -> Result<Vec<Finding>, PluginError> {
        let state = STATE
            .get()
            .ok_or_else(|| PluginError::Failed("init was not called".into()))?;
        Ok(state
            .rules
            .scan(&file.path, &file.content)
            .into_iter()
            .filter(|m| !state.disabled.contains(&m.rule_id))
            .filter_map(|m| {
                let rule = state.info.get(&m.rule_id)?;
                let description = if rule.description.is_empty() {
                    rule.message.clone()
                } else {
                    rule.description.clone()
                };
                Some(Finding {
                    rule_id: format!("code/{}", m.rule_id),
                    title: title_of(&rule.message),
                    message: rule.message.clone(),
                    severity: severity(rule.severity),
                    confidence: confidence(rule.confidence),
                    cwe_ids: rule.cwe.clone(),
                    cve_ids: Vec::new(),
                    cvss_vector: None,
                    location: Some(Location {
                        path: file.path.clone(),
                        start_line: m.line,
                        start_column: m.column,
                        end_line: m.line,
                        end_column: m.end_column,
                        snippet: Some(m.snippet),
                    }),
                    fingerprint: None,
                    tags: vec!["sast".into()],
                    properties: vec![
                        ("secflow.rule-description".into(), description),
                        ("secflow.rule-help".into(), rule.help.clone()),
                    ],
                })
            })
            .collect())
    }
}

/// The first clause of the rule message (up to `;` or the end of the first sentence), as
/// a short title.
fn title_of(message: &str) -> String {
    let first = message.split([';', '\n']).next().unwrap_or(message);
    let first = first.split(". ").next().unwrap_or(first);
    first.trim().trim_end_matches('.').to_string()
}

secflow_pdk::export_detector!(CodePatterns);
