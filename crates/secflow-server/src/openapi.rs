//! The OpenAPI 3.1 document, generated from the handlers' annotations. Served at
//! `/v1/openapi.json` and checked into `docs/openapi.json` (a test keeps it current:
//! `SECFLOW_BLESS=1 cargo test -p secflow-server openapi` rewrites it).

use crate::routes;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SecFlow API",
        description = "The REST API of `secflow serve`: plugins, runs, scan jobs, the audit log and API tokens. Every route but the operations ones needs `Authorization: Bearer sft_...`; what a token may do is decided by the API policies (Cedar). Errors are RFC 9457 problem documents (docs/api.md lists their types).",
        license(name = "Apache-2.0")
    ),
    paths(
        routes::ops::livez,
        routes::ops::readyz,
        routes::ops::metrics,
        routes::ops::version,
        routes::ops::openapi,
        routes::audit::stats,
        routes::dashboard::overview,
        routes::plugins::list,
        routes::plugins::install,
        routes::plugins::get,
        routes::plugins::uninstall,
        routes::plugins::permissions,
        routes::plugins::enable,
        routes::plugins::disable,
        routes::plugins::run,
        routes::plugins::validate,
        routes::scans::submit,
        routes::scans::list,
        routes::scans::get,
        routes::scans::cancel,
        routes::scans::delete,
        routes::scans::report,
        routes::audit::events,
        routes::audit::follow,
        routes::audit::verify,
        routes::audit::checkpoint,
        routes::tokens::create,
        routes::tokens::list,
        routes::tokens::revoke,
        routes::trust::list,
        routes::trust::add,
        routes::trust::remove,
        routes::trust::import,
        routes::policy::check,
        routes::policy::explain,
        routes::market::key,
        routes::market::index,
        routes::market::revocations,
        routes::market::search,
        routes::market::plugin,
        routes::market::package,
        routes::market::publish,
        routes::market::queue,
        routes::market::upload,
        routes::market::review,
        routes::market::yank,
        routes::market::revoke,
        routes::market::install,
        routes::market::rate,
        routes::market::moderate,
        routes::market::publishers,
        routes::market::grant,
        routes::market::publisher_key,
    ),
    components(schemas(crate::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Liveness, readiness, metrics, version"),
        (name = "plugins", description = "Installed and bundled plugins"),
        (name = "execution", description = "Running a plugin"),
        (name = "scans", description = "Scan jobs"),
        (name = "audit", description = "The tamper-evident audit log"),
        (name = "tokens", description = "API tokens (administrators)"),
        (name = "trust", description = "The trust store: which keys may sign which plugins"),
        (name = "policy", description = "The admission policies"),
        (name = "marketplace", description = "The plugin marketplace, served with `secflow serve --marketplace`: publishing with vetting, review and countersignature, the signed index and revocation list, receipts and ratings. Routes without a lock need no token."),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The document as pretty JSON with a trailing newline (the form in docs/openapi.json).
pub fn document_json() -> String {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| {
        let mut value = serde_json::to_value(document()).expect("the OpenAPI document serializes");
        camel_case_links(&mut value);
        serde_json::to_string_pretty(&value).expect("JSON serializes") + "\n"
    })
    .clone()
}

/// utoipa 5.5 writes a Link object's fields in snake case (`operation_id`); OpenAPI
/// spells them `operationId`, `operationRef`, `requestBody`, and tools ignore links
/// otherwise (schemathesis's stateful phase follows them).
fn camel_case_links(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let operations = paths
        .values_mut()
        .filter_map(|p| p.as_object_mut())
        .flat_map(|p| p.values_mut());
    for operation in operations {
        let Some(responses) = operation
            .get_mut("responses")
            .and_then(|r| r.as_object_mut())
        else {
            continue;
        };
        for response in responses.values_mut() {
            let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut()) else {
                continue;
            };
            for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
                for (from, to) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(value) = link.remove(from) {
                        link.insert(to.to_string(), value);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_is_checked_in_and_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let current = document_json();
        if std::env::var_os("SECFLOW_BLESS").is_some() {
            std::fs::write(&path, &current).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == current,
            "docs/openapi.json is out of date; run `SECFLOW_BLESS=1 cargo test -p secflow-server openapi`"
        );
        let value: serde_json::Value = serde_json::from_str(&current).unwrap();
        assert_eq!(value["openapi"], "3.1.0");
        let link = &value["paths"]["/v1/scans"]["post"]["responses"]["202"]["links"]["GetScan"];
        assert_eq!(link["operationId"], "scans_get", "{link}");
        // Every operation id is unique.
        let mut ids: Vec<&str> = value["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|p| p.as_object().unwrap().values())
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }
}
