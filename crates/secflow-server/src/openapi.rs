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
        routes::scans::report,
        routes::audit::events,
        routes::audit::verify,
        routes::audit::checkpoint,
        routes::tokens::create,
        routes::tokens::list,
        routes::tokens::revoke,
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
        document()
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
            + "\n"
    })
    .clone()
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
    }
}
