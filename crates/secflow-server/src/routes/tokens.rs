//! API tokens over the API (administrators): create, list, revoke.

use super::{ApiJson, Id};
use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secflow_host::ApiResource;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

fn tokens(id: &str) -> ApiResource<'_> {
    ApiResource { kind: "token", id }
}

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    /// `viewer`, `publisher`, `operator` or `admin`.
    pub role: String,
    /// Lifetime, e.g. `30d`, `12h` (none: no expiry).
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// A stored token (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TokenInfo)]
pub struct TokenInfoDoc {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A created token: `token` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: String,
    #[schema(value_type = TokenInfoDoc)]
    pub info: secflow_host::TokenInfo,
}

/// Creates a token.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body(content = CreateToken, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; the token is in the body and nowhere else", body = CreatedToken),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Refused by the API policies", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown role or bad name", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateToken>,
) -> ApiResult<Response> {
    caller.allow(&state, "tokens.manage", tokens("*")).await?;
    let expires = request
        .expires_in
        .as_deref()
        .map(humantime::parse_duration)
        .transpose()
        .map_err(|e| Problem::bad_request(format!("expires_in: {e} (e.g. 30d, 12h)")))?;
    let created = caller
        .host
        .create_token(&request.name, &request.role, expires)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: created.token,
            info: created.info,
        }),
    )
        .into_response())
}

/// Every token, newest first.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses(
        (status = 200, description = "Tokens", body = Vec<TokenInfoDoc>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Refused by the API policies", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<secflow_host::TokenInfo>>> {
    caller.allow(&state, "tokens.manage", tokens("*")).await?;
    Ok(Json(caller.host.list_tokens().await?))
}

/// Revokes a token; the next request with it is refused.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 200, description = "Revoked", body = TokenInfoDoc),
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Refused by the API policies", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such token", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Json<secflow_host::TokenInfo>> {
    caller.allow(&state, "tokens.manage", tokens(&id)).await?;
    Ok(Json(caller.host.revoke_token(&id).await?))
}
