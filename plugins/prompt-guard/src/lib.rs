//! The official prompt guard: judges the messages of an OpenAI-compatible chat request
//! (`{"messages": [{"role", "content"}]}`, content as a string or a list of text parts)
//! and blocks the request when the score of what it finds reaches the threshold.
//!
//! The signals, each written for this project and measured on the labelled corpus in
//! `corpus/` (the test prints precision, recall and the benign false-positive rate):
//! phrases that try to override the instructions or the role; fake role delimiters
//! (chat-template tokens, `### System:` headers) inside user content; invisible Unicode
//! (zero-width, bidi controls, tag characters) that hides text from a human reviewer; and
//! base64 or hex payloads that decode to any of the above.

use secflow_pdk::prelude::*;
use std::sync::OnceLock;

mod detect;

pub use detect::{Signal, score};

struct PromptGuard;

#[derive(Debug)]
struct Settings {
    threshold: u32,
    roles: Vec<String>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| Settings {
        threshold: 5,
        roles: vec!["user".into(), "tool".into()],
    })
}

impl Plugin for PromptGuard {
    fn init(config: &Value) -> Result<(), PluginError> {
        let threshold = config["threshold"].as_u64().unwrap_or(5) as u32;
        let roles = match config["roles"].as_array() {
            Some(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            None => vec!["user".into(), "tool".into()],
        };
        let _ = SETTINGS.set(Settings { threshold, roles });
        Ok(())
    }
}

/// The texts of the judged roles' messages.
fn texts(body: &Value, roles: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for message in body["messages"].as_array().into_iter().flatten() {
        let role = message["role"].as_str().unwrap_or("user");
        if !roles.iter().any(|r| r == role) {
            continue;
        }
        match &message["content"] {
            Value::String(text) => out.push(text.clone()),
            Value::Array(parts) => out.extend(
                parts
                    .iter()
                    .filter_map(|p| p["text"].as_str().map(str::to_string)),
            ),
            _ => {}
        }
    }
    // A plain completion request.
    if let Some(prompt) = body["prompt"].as_str() {
        out.push(prompt.to_string());
    }
    out
}

impl ProxyFilter for PromptGuard {
    fn on_request(request: HttpRequest) -> Result<RequestVerdict, PluginError> {
        if request.body.is_empty() {
            return Ok(RequestVerdict::Allow);
        }
        let Ok(body) = secflow_pdk::serde_json::from_slice::<Value>(&request.body) else {
            return Ok(RequestVerdict::Allow); // not JSON: not a chat request
        };
        let settings = settings();
        for text in texts(&body, &settings.roles) {
            let (total, signals) = score(&text);
            if total >= settings.threshold {
                let names: Vec<&str> = signals.iter().map(|s| s.name()).collect();
                return Ok(RequestVerdict::Block(Block {
                    status: 400,
                    reason: format!(
                        "prompt injection suspected (score {total} ≥ {}): {}",
                        settings.threshold,
                        names.join(", ")
                    ),
                }));
            }
        }
        Ok(RequestVerdict::Allow)
    }
}

secflow_pdk::export_proxy_filter!(PromptGuard);
