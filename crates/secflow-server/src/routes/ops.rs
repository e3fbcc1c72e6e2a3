//! Operations: liveness, readiness, metrics, version, the OpenAPI document.

use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiResult, Denied, Problem};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use secflow_host::ApiResource;
use serde::Serialize;
use utoipa::ToSchema;

/// Liveness and readiness answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
    /// Each readiness check and its result.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub checks: std::collections::BTreeMap<String, String>,
}

/// The process is up.
#[utoipa::path(get, operation_id = "ops_livez", path = "/livez", tag = "operations",
    responses((status = 200, description = "The server process answers", body = Health)))]
pub async fn livez() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
        checks: Default::default(),
    })
}

/// The server can do its work: the state directory, the token store and the audit log are
/// usable.
#[utoipa::path(get, operation_id = "ops_readyz", path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready; `detail` names the failing check", body = Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let mut checks = std::collections::BTreeMap::new();
    let mut failed = Vec::new();
    let root = &state.host.paths().root;
    let probe = root.join(".readyz");
    match std::fs::write(&probe, b"ok").and_then(|_| std::fs::remove_file(&probe)) {
        Ok(()) => checks.insert("state_dir".into(), "ok".into()),
        Err(e) => {
            failed.push(format!("state directory {}: {e}", root.display()));
            checks.insert("state_dir".into(), "error".into())
        }
    };
    match state.host.list_tokens().await {
        Ok(_) => checks.insert("database".into(), "ok".into()),
        Err(e) => {
            failed.push(format!("token store: {e}"));
            checks.insert("database".into(), "error".into())
        }
    };
    let filter = secflow_host::types::AuditFilter {
        limit: Some(1),
        ..Default::default()
    };
    match state.host.audit_entries(&filter).await {
        Ok(_) => checks.insert("audit_log".into(), "ok".into()),
        Err(e) => {
            failed.push(format!("audit log: {e}"));
            checks.insert("audit_log".into(), "error".into())
        }
    };
    if failed.is_empty() {
        axum::Json(Health {
            status: "ready".into(),
            checks,
        })
        .into_response()
    } else {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            failed.join("; "),
        )
        .with("checks", checks)
        .into_response()
    }
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(get, operation_id = "ops_metrics", path = "/metrics", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "Metrics in the Prometheus text format", body = String, content_type = "text/plain"),
        Denied))]
pub async fn metrics(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller
        .allow(
            &state,
            "stats.read",
            ApiResource {
                kind: "system",
                id: "metrics",
            },
        )
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response())
}

/// The server's version and the plugins built into it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    pub version: String,
    pub api: String,
    /// Bundled plugins: id, version and pinned digest.
    pub bundled: Vec<BundledInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BundledInfo {
    pub id: String,
    pub version: String,
    pub kind: String,
    pub sha256: String,
}

/// The version (no token needed).
#[utoipa::path(get, operation_id = "ops_version", path = "/v1/version", tag = "operations",
    responses((status = 200, description = "Version", body = Version)))]
pub async fn version() -> ApiResult<axum::Json<Version>> {
    let bundled = secflow_host::bundled()
        .map_err(Problem::from)?
        .into_iter()
        .map(|b| BundledInfo {
            id: b.manifest.id.to_string(),
            version: b.manifest.version.to_string(),
            kind: b.manifest.kind.to_string(),
            sha256: b.sha256.to_string(),
        })
        .collect();
    Ok(axum::Json(Version {
        version: env!("CARGO_PKG_VERSION").into(),
        api: "v1".into(),
        bundled,
    }))
}

/// This API's OpenAPI 3.1 document (no token needed).
#[utoipa::path(get, operation_id = "ops_openapi", path = "/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
        .into_response()
}
