//! The official secrets detector: a thin sandboxed wrapper around `secflow-secrets`.
//!
//! The rules compile once per instance in `init`; the host runs a batch of files of one scan
//! per instance, so that cost is paid per batch, not per file.

use secflow_pdk::prelude::*;
use secflow_secrets::{Options, RuleInfo, Scanner};
use std::collections::HashMap;
use std::sync::OnceLock;

struct SecretsDetector;

struct State {
    scanner: Scanner,
    rules: HashMap<String, RuleInfo>,
}

static STATE: OnceLock<State> = OnceLock::new();

fn strings(config: &Value, key: &str) -> Option<Vec<String>> {
    config[key].as_array().map(|items| {
        items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    })
}

impl Plugin for SecretsDetector {
    fn init(config: &Value) -> Result<(), PluginError> {
        let options = Options {
            disabled_rules: strings(config, "disabled-rules").unwrap_or_default(),
            extra_allowlist: strings(config, "allowlist").unwrap_or_default(),
            allow_paths: strings(config, "allow-paths"),
            min_entropy_delta: config["min-entropy-delta"].as_f64().unwrap_or(0.0),
        };
        let scanner = Scanner::with_options(&options)
            .map_err(|e| PluginError::InvalidConfig(e.to_string()))?;
        let rules = scanner
            .rules()
            .iter()
            .map(|r| (r.id.clone(), r.clone()))
            .collect();
        let _ = STATE.set(State { scanner, rules });
        Ok(())
    }

    fn health() -> Health {
        match STATE.get() {
            Some(state) => Health {
                status: HealthStatus::Healthy,
                message: format!("{} rules loaded", state.rules.len()),
            },
            None => Health {
                status: HealthStatus::Unhealthy,
                message: "rules not loaded".into(),
            },
        }
    }
}

fn severity(s: secflow_secrets::Severity) -> Severity {
    match s {
        secflow_secrets::Severity::Info => Severity::Info,
        secflow_secrets::Severity::Low => Severity::Low,
        secflow_secrets::Severity::Medium => Severity::Medium,
        secflow_secrets::Severity::High => Severity::High,
        secflow_secrets::Severity::Critical => Severity::Critical,
    }
}

fn confidence(c: secflow_secrets::Confidence) -> Confidence {
    match c {
        secflow_secrets::Confidence::Low => Confidence::Low,
        secflow_secrets::Confidence::Medium => Confidence::Medium,
        secflow_secrets::Confidence::High => Confidence::High,
    }
}

impl Detector for SecretsDetector {
    fn detect(file: FileInput) -> Result<Vec<Finding>, PluginError> {
        let state = STATE
            .get()
            .ok_or_else(|| PluginError::Failed("init was not called".into()))?;
        let matches = state.scanner.scan(&file.path, &file.content);
        Ok(matches
            .into_iter()
            .filter_map(|m| {
                let rule = state.rules.get(&m.rule_id)?;
                let mut properties = vec![
                    (
                        "secflow.rule-description".to_string(),
                        rule.description.clone(),
                    ),
                    ("secflow.rule-help".to_string(), rule.help.clone()),
                ];
                if let Some(e) = m.entropy {
                    properties.push(("secret.entropy".to_string(), format!("{e:.2}")));
                }
                Some(Finding {
                    rule_id: format!("secrets/{}", m.rule_id),
                    title: rule.title.clone(),
                    message: format!(
                        "{} committed in {}; revoke it and load it from a secret store",
                        rule.title, file.path
                    ),
                    severity: severity(rule.severity),
                    confidence: confidence(rule.confidence),
                    cwe_ids: vec![rule.cwe],
                    cve_ids: Vec::new(),
                    cvss_vector: None,
                    location: Some(Location {
                        path: file.path.clone(),
                        start_line: m.line,
                        start_column: m.column,
                        end_line: m.end_line,
                        end_column: m.end_column,
                        snippet: Some(m.snippet),
                    }),
                    fingerprint: None,
                    tags: vec!["secret".into(), "credentials".into()],
                    properties,
                })
            })
            .collect())
    }
}

secflow_pdk::export_detector!(SecretsDetector);
