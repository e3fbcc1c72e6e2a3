//! `secflow plugin new NAME --kind KIND`: a buildable plugin crate with a manifest, a sample
//! implementation of the kind's trait, and a unit test.

use crate::cli::NewArgs;
use crate::exit::{Exit, fail};
use crate::home::Home;
use secflow_manifest::{PluginId, PluginKind};

pub fn run(home: &Home, args: NewArgs) -> anyhow::Result<Exit> {
    let id = PluginId::new(&args.name).map_err(|e| fail(Exit::Usage, e))?;
    let dir = args.path.join(id.as_str());
    if dir.exists() {
        return Err(fail(
            Exit::Usage,
            format!(
                "{} already exists; pick another name or remove it",
                dir.display()
            ),
        ));
    }
    let sdk = crate::sdk::install(&home.sdk()).map_err(|e| {
        fail(
            Exit::Usage,
            format!(
                "cannot install the plugin SDK under {}: {e}",
                home.sdk().display()
            ),
        )
    })?;
    std::fs::create_dir_all(dir.join("src"))?;
    let crate_name = id.as_str().to_string();
    std::fs::write(dir.join("Cargo.toml"), cargo_toml(&crate_name, &sdk))?;
    std::fs::write(dir.join("plugin.toml"), manifest(&id, args.kind))?;
    std::fs::write(dir.join("src/lib.rs"), source(args.kind))?;
    std::fs::write(dir.join(".gitignore"), "/target\n/plugin.wasm\n")?;
    std::fs::create_dir_all(dir.join(".cargo"))?;
    std::fs::write(dir.join(".cargo/config.toml"), CARGO_CONFIG)?;
    outln!("Created {} plugin `{id}` in {}", args.kind, dir.display());
    outln!("Next: secflow plugin build {}", dir.display());
    Ok(Exit::Success)
}

/// The guest build settings of the SDK (the 128 KiB guest stack), the same file the
/// example plugins are built with.
const CARGO_CONFIG: &str = include_str!("../../../../../plugins/.cargo/config.toml");

fn cargo_toml(name: &str, sdk: &std::path::Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A plugin is its own workspace, wherever it is created.
[workspace]

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
secflow-pdk = {{ path = {sdk:?} }}

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"
"#,
        sdk = sdk.display().to_string()
    )
}

fn manifest(id: &PluginId, kind: PluginKind) -> String {
    format!(
        r#"# Plugin manifest. Schema: `secflow plugin schema`. Capabilities grant nothing by default;
# declare each one with a reason, e.g.
#   [[capabilities.network]]
#   host = "api.example.com"
#   reason = "fetches advisories"
id = "{id}"
version = "0.1.0"
kind = "{kind}"
name = "{id}"
description = "A {kind} plugin."
authors = []
license = "Apache-2.0"
host = ">=0.1.0, <0.2.0"
component = "plugin.wasm"

[limits]
memory-mib = 64
timeout-ms = 5000
"#
    )
}

fn source(kind: PluginKind) -> String {
    let body = match kind {
        PluginKind::Action => ACTION,
        PluginKind::Detector => DETECTOR,
        PluginKind::Enricher => ENRICHER,
        PluginKind::Analytics => ANALYTICS,
        PluginKind::ProxyFilter => PROXY_FILTER,
        PluginKind::LogAnalyzer => LOG_ANALYZER,
        PluginKind::DynamicTester => DYNAMIC_TESTER,
    };
    format!(
        "//! A SecFlow {kind} plugin. Build: `secflow plugin build .`\n\nuse secflow_pdk::prelude::*;\n\npub struct MyPlugin;\n\nimpl Plugin for MyPlugin {{}}\n{body}"
    )
}

const ACTION: &str = r#"
impl Action for MyPlugin {
    fn actions() -> Vec<ActionInfo> {
        vec![action("greet", "Greets `name`", &[("name", "string", true)])]
    }

    fn execute(action: &str, params: Value) -> Result<Value, PluginError> {
        match action {
            "greet" => {
                let name = params["name"].as_str().ok_or_else(|| invalid_input("`name` must be a string"))?;
                Ok(json!(format!("Hello, {name}!")))
            }
            other => Err(invalid_input(format!("unknown action `{other}`"))),
        }
    }
}

secflow_pdk::export_action!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets() {
        let out = MyPlugin::execute("greet", json!({"name": "Ada"})).unwrap();
        assert_eq!(out, json!("Hello, Ada!"));
        assert!(MyPlugin::execute("greet", json!({})).is_err());
    }
}
"#;

const DETECTOR: &str = r#"
impl Detector for MyPlugin {
    fn detect(file: FileInput) -> Result<Vec<Finding>, PluginError> {
        let text = String::from_utf8_lossy(&file.content);
        Ok(text
            .lines()
            .enumerate()
            .filter(|(_, line)| line.contains("FIXME-SECURITY"))
            .map(|(i, line)| Finding {
                location: Some(Location {
                    path: file.path.clone(),
                    start_line: i as u32 + 1,
                    start_column: 1,
                    end_line: i as u32 + 1,
                    end_column: line.len() as u32 + 1,
                    snippet: Some(line.trim().to_string()),
                }),
                ..finding("fixme-security", Severity::Low, "Security FIXME", "an unresolved security FIXME".into())
            })
            .collect())
    }
}

secflow_pdk::export_detector!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_marked_lines() {
        let file = FileInput { path: "a.py".into(), content: b"ok\n# FIXME-SECURITY check auth\n".to_vec() };
        let found = MyPlugin::detect(file).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].location.as_ref().unwrap().start_line, 2);
    }
}
"#;

const ENRICHER: &str = r#"
impl Enricher for MyPlugin {
    fn enrich(mut findings: Vec<Finding>) -> Result<Vec<Finding>, PluginError> {
        for f in &mut findings {
            f.tags.push("enriched".to_string());
        }
        Ok(findings)
    }
}

secflow_pdk::export_enricher!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_findings() {
        let out = MyPlugin::enrich(vec![finding("r", Severity::Low, "t", "m".into())]).unwrap();
        assert_eq!(out[0].tags, vec!["enriched".to_string()]);
    }
}
"#;

const ANALYTICS: &str = r#"
impl Analytics for MyPlugin {
    fn analyze(findings: Vec<Finding>) -> Result<Report, PluginError> {
        let high = findings.iter().filter(|f| matches!(f.severity, Severity::High | Severity::Critical)).count();
        Ok(Report {
            metrics: vec![
                Metric { name: "findings".into(), value: findings.len() as f64, labels: vec![] },
                Metric { name: "high_or_critical".into(), value: high as f64, labels: vec![] },
            ],
            summary_markdown: format!("**{}** findings, **{high}** high or critical.", findings.len()),
        })
    }
}

secflow_pdk::export_analytics!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let r = MyPlugin::analyze(vec![finding("r", Severity::High, "t", "m".into())]).unwrap();
        assert_eq!(r.metrics[1].value, 1.0);
    }
}
"#;

const PROXY_FILTER: &str = r#"
impl ProxyFilter for MyPlugin {
    fn on_request(request: HttpRequest) -> Result<RequestVerdict, PluginError> {
        if request.uri.starts_with("/admin") {
            return Ok(RequestVerdict::Block(Block { status: 403, reason: "admin area is closed".into() }));
        }
        Ok(RequestVerdict::Allow)
    }
}

secflow_pdk::export_proxy_filter!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str) -> HttpRequest {
        HttpRequest { method: "GET".into(), uri: uri.into(), headers: vec![], body: vec![] }
    }

    #[test]
    fn blocks_admin() {
        assert!(matches!(MyPlugin::on_request(req("/admin/users")).unwrap(), RequestVerdict::Block(_)));
        assert!(matches!(MyPlugin::on_request(req("/")).unwrap(), RequestVerdict::Allow));
    }
}
"#;

const LOG_ANALYZER: &str = r#"
impl LogAnalyzer for MyPlugin {
    fn analyze_logs(source: String, entries: Vec<LogEntry>) -> Result<Vec<Finding>, PluginError> {
        Ok(entries
            .iter()
            .filter(|e| e.message.contains("Failed password"))
            .map(|e| Finding {
                location: Some(Location {
                    path: source.clone(),
                    start_line: e.line as u32,
                    start_column: 1,
                    end_line: e.line as u32,
                    end_column: 1,
                    snippet: Some(e.message.clone()),
                }),
                ..finding("failed-login", Severity::Low, "Failed login", "a failed password attempt".into())
            })
            .collect())
    }
}

secflow_pdk::export_log_analyzer!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_failed_logins() {
        let entries = vec![LogEntry { line: 3, timestamp: None, message: "sshd: Failed password for root".into() }];
        assert_eq!(MyPlugin::analyze_logs("auth.log".into(), entries).unwrap().len(), 1);
    }
}
"#;

const DYNAMIC_TESTER: &str = r#"
impl DynamicTester for MyPlugin {
    fn run_tests(target: Target, _config: Value) -> Result<Vec<AttackResult>, PluginError> {
        // A real tester sends probes with secflow_pdk::http (declare the target host as a
        // network capability). This sample only checks the target description.
        let insecure = target.url.starts_with("http://");
        Ok(vec![AttackResult {
            attack_id: "plaintext-endpoint".into(),
            name: "Endpoint without TLS".into(),
            category: "transport".into(),
            succeeded: insecure,
            severity: if insecure { Severity::Medium } else { Severity::Info },
            request: target.url.clone(),
            response: String::new(),
            evidence: if insecure { "the target URL uses http://".into() } else { String::new() },
            finding: None,
        }])
    }
}

secflow_pdk::export_dynamic_tester!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_plain_http() {
        let t = Target { kind: "http-api".into(), url: "http://x".into(), description: String::new(), properties: vec![] };
        assert!(MyPlugin::run_tests(t, Value::Null).unwrap()[0].succeeded);
    }
}
"#;
