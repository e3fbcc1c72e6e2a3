//! API tokens over the API (administrators): create, list, revoke.

use super::{ApiBytes, Id};
use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiResult, Denied, Problem};
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
    /// Who or what uses it: printable, 1 to 64 characters.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[^\x00-\x1f\x7f]+$")]
    pub name: String,
    pub role: Role,
    /// Lifetime: a number and a unit, `s`, `m`, `h`, `d` or `w` (`30d`, `12h`); none: no
    /// expiry.
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{1,6}[smhdw]$")]
    pub expires_in: Option<String>,
}

/// What the API policies let a token do.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Publisher,
    Operator,
    Admin,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Publisher => "publisher",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A created token: `token` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: String,
    pub info: secflow_host::TokenInfo,
}

/// Creates a token.
#[utoipa::path(post, operation_id = "tokens_create", path = "/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body(content = CreateToken, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; the token is in the body and nowhere else", body = CreatedToken),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown role or bad name", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    caller.allow(&state, "tokens.manage", tokens("*")).await?;
    let request: CreateToken = super::json_body(&headers, &body)?;
    let expires = request
        .expires_in
        .as_deref()
        .map(parse_lifetime)
        .transpose()?;
    let host = caller.host.clone();
    let (name, role) = (request.name, request.role.as_str().to_string());
    let created =
        super::to_completion(async move { host.create_token(&name, &role, expires).await }).await?;
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
#[utoipa::path(get, operation_id = "tokens_list", path = "/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses(
        (status = 200, description = "Tokens", body = Vec<secflow_host::TokenInfo>),
        Denied))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<secflow_host::TokenInfo>>> {
    caller.allow(&state, "tokens.manage", tokens("*")).await?;
    Ok(Json(caller.host.list_tokens().await?))
}

/// Revokes a token; the next request with it is refused.
#[utoipa::path(delete, operation_id = "tokens_revoke", path = "/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "Token id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")),
    responses(
        (status = 200, description = "Revoked", body = secflow_host::TokenInfo),
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "No such token", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Json<secflow_host::TokenInfo>> {
    caller.allow(&state, "tokens.manage", tokens(&id)).await?;
    let host = caller.host.clone();
    Ok(Json(
        super::to_completion(async move { host.revoke_token(&id).await }).await?,
    ))
}

/// `30d`, `12h`, ...: the grammar the OpenAPI document gives.
fn parse_lifetime(text: &str) -> Result<std::time::Duration, Problem> {
    let bad = || {
        Problem::bad_request(format!(
            "expires_in `{}` is not a number and a unit s, m, h, d or w (e.g. 30d)",
            super::secflow_term_safe(text)
        ))
    };
    // Cut before the last character, whatever its width (a multi-byte unit is refused below).
    let Some((cut, _)) = text.char_indices().last() else {
        return Err(bad());
    };
    let (number, unit) = text.split_at(cut);
    if number.is_empty() || number.len() > 6 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    Ok(std::time::Duration::from_secs(n * seconds))
}
