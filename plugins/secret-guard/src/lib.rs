//! The official secret guard: the secrets engine of `secrets-detector` on HTTP bodies.
//! A secret is replaced by `[redacted:RULE]` (or, with `action = "block"`, the exchange is
//! blocked: 403 for a request, 502 for a response). The rules compile once per instance.

use secflow_pdk::prelude::*;
use secflow_secrets::{Options, Scanner};
use std::sync::OnceLock;

struct SecretGuard;

struct Settings {
    scanner: Scanner,
    block: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| Settings {
        scanner: Scanner::builtin(),
        block: false,
    })
}

impl Plugin for SecretGuard {
    fn init(config: &Value) -> Result<(), PluginError> {
        let disabled = config["disabled-rules"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let scanner = Scanner::with_options(&Options {
            disabled_rules: disabled,
            ..Options::default()
        })
        .map_err(|e| PluginError::InvalidConfig(e.to_string()))?;
        let block = config["action"].as_str() == Some("block");
        let _ = SETTINGS.set(Settings { scanner, block });
        Ok(())
    }
}

/// What the body holds: the redacted body and the rules that matched, or `None`.
pub fn redact(scanner: &Scanner, body: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
    let mut spans = scanner.scan_spans("http-body", body);
    if spans.is_empty() {
        return None;
    }
    spans.sort_by_key(|(_, range)| range.start);
    let mut out = Vec::with_capacity(body.len());
    let mut last = 0;
    let mut rules = Vec::new();
    for (found, range) in spans {
        if range.start < last {
            continue;
        }
        out.extend_from_slice(&body[last..range.start]);
        out.extend_from_slice(format!("[redacted:{}]", found.rule_id).as_bytes());
        last = range.end;
        if !rules.contains(&found.rule_id) {
            rules.push(found.rule_id);
        }
    }
    out.extend_from_slice(&body[last..]);
    Some((out, rules))
}

impl ProxyFilter for SecretGuard {
    fn on_request(mut request: HttpRequest) -> Result<RequestVerdict, PluginError> {
        let settings = settings();
        let Some((body, rules)) = redact(&settings.scanner, &request.body) else {
            return Ok(RequestVerdict::Allow);
        };
        if settings.block {
            return Ok(RequestVerdict::Block(Block {
                status: 403,
                reason: format!("a credential in the request body: {}", rules.join(", ")),
            }));
        }
        request.body = body;
        Ok(RequestVerdict::Modify(request))
    }

    fn on_response(
        _request: HttpRequest,
        mut response: HttpResponse,
    ) -> Result<ResponseVerdict, PluginError> {
        let settings = settings();
        let Some((body, rules)) = redact(&settings.scanner, &response.body) else {
            return Ok(ResponseVerdict::Allow);
        };
        if settings.block {
            return Ok(ResponseVerdict::Block(Block {
                status: 502,
                reason: format!("a credential in the response body: {}", rules.join(", ")),
            }));
        }
        response.body = body;
        Ok(ResponseVerdict::Modify(response))
    }
}

secflow_pdk::export_proxy_filter!(SecretGuard);

#[cfg(test)]
mod tests {
    #[test]
    fn a_credential_is_redacted_and_the_rest_is_kept() {
        let scanner = secflow_secrets::Scanner::builtin();
        let key = ["AKIA", "Z3Q7XK2M5RTB6WLD"].concat();
        let body = format!("{{\"id\": 7, \"aws_access_key_id\": \"{key}\"}}");
        let (redacted, rules) = super::redact(&scanner, body.as_bytes()).unwrap();
        let redacted = String::from_utf8(redacted).unwrap();
        assert!(!redacted.contains(&key), "{redacted}");
        assert!(
            redacted.starts_with("{\"id\": 7, \"aws_access_key_id\": \"[redacted:"),
            "{redacted}"
        );
        assert!(!rules.is_empty());
        assert!(super::redact(&scanner, b"nothing secret here").is_none());
    }
}
