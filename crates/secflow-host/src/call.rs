//! What one run of a plugin calls, built from what a front end was given: the CLI's flags
//! and `--input`, the server's JSON body. One copy, so a detector gets the same file input
//! and an action the same parameters whichever front end asked.

use crate::{HostError, Remedy, Result};
use secflow_manifest::PluginKind;
use secflow_runtime::Call;
use secflow_runtime::bindings as b;

/// What the caller asked to run.
#[derive(Debug, Clone, Default)]
pub struct CallRequest {
    /// The plugin's health check instead of its kind's call.
    pub health: bool,
    /// For action plugins: the action to execute (none lists the actions).
    pub action: Option<String>,
    /// The input, with a name for messages (a file name, `<stdin>`, `request body`).
    pub input: Option<(String, Vec<u8>)>,
    /// The plugin's configuration as JSON (dynamic testers get it with their target).
    pub config: serde_json::Value,
}

/// The call for a plugin of `kind`.
pub fn build_call(kind: PluginKind, request: CallRequest) -> Result<Call> {
    if request.health {
        return Ok(Call::Health);
    }
    if request.action.is_some() && kind != PluginKind::Action {
        return Err(HostError::invalid(format!(
            "an action applies to action plugins; this is a {kind} plugin"
        )));
    }
    let input = request.input;
    Ok(match kind {
        PluginKind::Action => match request.action {
            None => Call::Actions,
            Some(action) => {
                let params = match &input {
                    Some((name, bytes)) => {
                        let text = std::str::from_utf8(bytes).map_err(|_| {
                            HostError::invalid(format!("the input {name} is not UTF-8 JSON"))
                        })?;
                        serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
                            HostError::invalid(format!("the input {name} is not JSON: {e}"))
                        })?;
                        text.to_string()
                    }
                    None => "{}".to_string(),
                };
                Call::Execute { action, params }
            }
        },
        PluginKind::Detector => {
            let (name, content) = input.ok_or_else(|| {
                HostError::invalid("a detector needs an input: the file to scan")
                    .with_remedy(Remedy::GiveInput)
            })?;
            Call::Detect(b::FileInput {
                path: name,
                content,
            })
        }
        PluginKind::Enricher => Call::Enrich(json_input(&input, "a JSON array of findings")?),
        PluginKind::Analytics => Call::Analyze(json_input(&input, "a JSON array of findings")?),
        PluginKind::ProxyFilter => {
            #[derive(serde::Deserialize)]
            struct Exchange {
                request: b::HttpRequest,
                response: Option<b::HttpResponse>,
            }
            let ex: Exchange =
                json_input(&input, "a JSON object {\"request\": .., \"response\": ..}")?;
            match ex.response {
                Some(resp) => Call::OnResponse(ex.request, resp),
                None => Call::OnRequest(ex.request),
            }
        }
        PluginKind::LogAnalyzer => {
            let (name, bytes) = input.ok_or_else(|| {
                HostError::invalid("a log analyzer needs an input: the log")
                    .with_remedy(Remedy::GiveInput)
            })?;
            let text = String::from_utf8_lossy(&bytes);
            let entries = text
                .lines()
                .enumerate()
                .map(|(i, line)| b::LogEntry {
                    line: i as u64 + 1,
                    timestamp: None,
                    message: line.to_string(),
                })
                .collect();
            Call::AnalyzeLogs {
                source: name,
                entries,
            }
        }
        PluginKind::DynamicTester => Call::RunTests {
            target: json_input(
                &input,
                "a JSON target {\"kind\",\"url\",\"description\",\"properties\"}",
            )?,
            config: request.config.to_string(),
        },
    })
}

fn json_input<T: serde::de::DeserializeOwned>(
    input: &Option<(String, Vec<u8>)>,
    what: &str,
) -> Result<T> {
    let (name, bytes) = input.as_ref().ok_or_else(|| {
        HostError::invalid(format!("this plugin needs an input: {what}"))
            .with_remedy(Remedy::GiveInput)
    })?;
    serde_json::from_slice(bytes)
        .map_err(|e| HostError::invalid(format!("the input {name} is not {what}: {e}")))
}
