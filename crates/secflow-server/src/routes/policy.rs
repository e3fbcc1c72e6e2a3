//! The admission policies over the API: their files and problems, and what they decide for
//! an installed plugin.

use super::Id;
use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiResult, Denied, Problem};
use axum::Json;
use axum::extract::State;
use secflow_host::ApiResource;
use serde::Serialize;
use utoipa::ToSchema;

/// The loaded admission policies.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyStatus {
    /// The files loaded, schema first (`<built-in>/...` for the shipped defaults).
    pub sources: Vec<String>,
    /// Validation errors (the engine then denies everything) and warnings.
    #[schema(value_type = Vec<Object>)]
    pub problems: Vec<serde_json::Value>,
    pub errors: usize,
}

/// The admission policies and their validation problems (`secflow policy check`).
#[utoipa::path(get, operation_id = "policy_check", path = "/v1/policy", tag = "policy", security(("bearer" = [])),
    responses(
        (status = 200, description = "Sources and problems", body = PolicyStatus),
        Denied,
        (status = 422, description = "The policy files cannot be read", body = Problem, content_type = "application/problem+json")))]
pub async fn check(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<PolicyStatus>> {
    caller
        .allow(
            &state,
            "policy.read",
            ApiResource {
                kind: "policy",
                id: "*",
            },
        )
        .await?;
    let check = caller.host.policy_check()?;
    Ok(Json(PolicyStatus {
        errors: check.errors(),
        sources: check.sources,
        problems: check
            .problems
            .iter()
            .map(|p| serde_json::to_value(p).unwrap_or_default())
            .collect(),
    }))
}

/// What the policies decide for an installed plugin, action by action
/// (`secflow policy explain ID`).
#[utoipa::path(get, operation_id = "policy_explain", path = "/v1/plugins/{id}/policy", tag = "policy", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plugin id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")),
    responses(
        (status = 200, description = "The plugin's facts and each action's decision", body = Object),
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "Not installed", body = Problem, content_type = "application/problem+json")))]
pub async fn explain(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Json<serde_json::Value>> {
    caller
        .allow(
            &state,
            "policy.check",
            ApiResource {
                kind: "plugin",
                id: &id,
            },
        )
        .await?;
    super::plugins::installed(&caller, &id).await?;
    let e = caller.host.explain_installed(&id).await?;
    Ok(Json(serde_json::json!({
        "plugin": e.plugin,
        "decisions": e.decisions.iter().map(|(action, d)| serde_json::json!({
            "action": action.as_str(), "allowed": d.allowed, "policies": d.policies, "errors": d.errors,
        })).collect::<Vec<_>>(),
    })))
}
