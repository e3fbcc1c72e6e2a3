//! The official PII redactor: personal data in bodies replaced by `[redacted:KIND]`.
//!
//! Every candidate is checked before it is redacted, so ordinary numbers survive: card
//! numbers must pass the Luhn check, IBANs the ISO 13616 mod-97 check, SSNs the SSA's
//! structural rules, NINOs the HMRC prefix rules, DNIs their check letter. A JSON body (any
//! body that parses as JSON) has only its string values changed and stays valid JSON;
//! anything else is redacted as text. In a stream window (`x-secflow-stream`) the body is
//! a fragment and is redacted as text.

use secflow_pdk::prelude::*;
use std::sync::OnceLock;

mod detect;
mod patterns;

pub use detect::{Kind, Redactor};

struct PiiRedactor;

static REDACTOR: OnceLock<Redactor> = OnceLock::new();

fn redactor() -> &'static Redactor {
    REDACTOR.get_or_init(Redactor::all)
}

fn strings(config: &Value, key: &str) -> Option<Vec<String>> {
    config[key].as_array().map(|items| {
        items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    })
}

impl Plugin for PiiRedactor {
    fn init(config: &Value) -> Result<(), PluginError> {
        let redactor = Redactor::new(
            strings(config, "kinds").as_deref(),
            strings(config, "national-ids").as_deref(),
        )
        .map_err(PluginError::InvalidConfig)?;
        let _ = REDACTOR.set(redactor);
        Ok(())
    }
}

/// The body redacted, or `None` when nothing in it is personal data.
fn redact_body(body: &[u8]) -> Option<Vec<u8>> {
    let redactor = redactor();
    if let Ok(mut value) = secflow_pdk::serde_json::from_slice::<Value>(body)
        && (value.is_object() || value.is_array())
    {
        return redactor
            .redact_json(&mut value)
            .then(|| secflow_pdk::serde_json::to_vec(&value).expect("JSON serializes"));
    }
    let text = String::from_utf8_lossy(body);
    let redacted = redactor.redact(&text)?;
    Some(redacted.into_bytes())
}

impl ProxyFilter for PiiRedactor {
    fn on_request(mut request: HttpRequest) -> Result<RequestVerdict, PluginError> {
        match redact_body(&request.body) {
            Some(body) => {
                request.body = body;
                Ok(RequestVerdict::Modify(request))
            }
            None => Ok(RequestVerdict::Allow),
        }
    }

    fn on_response(
        _request: HttpRequest,
        mut response: HttpResponse,
    ) -> Result<ResponseVerdict, PluginError> {
        match redact_body(&response.body) {
            Some(body) => {
                response.body = body;
                Ok(ResponseVerdict::Modify(response))
            }
            None => Ok(ResponseVerdict::Allow),
        }
    }
}

secflow_pdk::export_proxy_filter!(PiiRedactor);
