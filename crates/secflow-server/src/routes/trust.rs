//! The trust store over the API: list it (read), trust or untrust a key, import a signed
//! revocation list or key rotation (administrators).

use super::{ApiBytes, Id};
use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiResult, Denied, Problem};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secflow_host::ApiResource;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

fn trust(id: &str) -> ApiResource<'_> {
    ApiResource { kind: "trust", id }
}

/// The trust store: trusted keys with roles and scopes, signature thresholds, revocations
/// (the shape of `secflow trust list --json`).
#[utoipa::path(get, operation_id = "trust_list", path = "/v1/trust", tag = "trust", security(("bearer" = [])),
    responses(
        (status = 200, description = "The trust store", body = Object),
        Denied))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.allow(&state, "trust.read", trust("*")).await?;
    Ok(Json(caller.host.trust_store()?).into_response())
}

/// A key to trust.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKey {
    /// The text of the key's public key file (`secflow key export NAME`).
    #[schema(min_length = 1, max_length = 8192)]
    pub public_key: String,
    /// `publisher`, `marketplace` or `revocation`.
    pub role: KeyRole,
    /// Globs of plugin ids the key may sign (`*`, `acme-*`).
    #[schema(min_items = 1)]
    pub scopes: Vec<String>,
}

/// What a trusted key may sign.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyRole {
    Publisher,
    Marketplace,
    Revocation,
}

/// What a trust change did.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrustChanged {
    /// A sentence for people.
    pub message: String,
}

/// Trusts a key for a role and scopes (administrators).
#[utoipa::path(post, operation_id = "trust_add", path = "/v1/trust/keys", tag = "trust", security(("bearer" = [])),
    request_body(content = AddKey, content_type = "application/json"),
    responses(
        (status = 201, description = "Trusted", body = TrustChanged),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a public key file, or a bad scope", body = Problem, content_type = "application/problem+json")))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    caller.allow(&state, "trust.write", trust("*")).await?;
    let request: AddKey = super::json_body(&headers, &body)?;
    let role = match request.role {
        KeyRole::Publisher => secflow_host::types::Role::Publisher,
        KeyRole::Marketplace => secflow_host::types::Role::Marketplace,
        KeyRole::Revocation => secflow_host::types::Role::RevocationAuthority,
    };
    let host = caller.host.clone();
    let change = secflow_host::TrustChange::AddPublicKey {
        text: request.public_key,
        role,
        scopes: request.scopes,
    };
    let message = super::to_completion(async move { host.change_trust(change).await }).await?;
    Ok((StatusCode::CREATED, Json(TrustChanged { message })).into_response())
}

/// Stops trusting a key (administrators). Packages it signed are refused from then on.
#[utoipa::path(delete, operation_id = "trust_remove", path = "/v1/trust/keys/{id}", tag = "trust", security(("bearer" = [])),
    params(("id" = String, Path, description = "Key id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")),
    responses(
        (status = 200, description = "No longer trusted", body = TrustChanged),
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "No such trusted key", body = Problem, content_type = "application/problem+json")))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Json<TrustChanged>> {
    caller.allow(&state, "trust.write", trust(&id)).await?;
    let host = caller.host.clone();
    let change = secflow_host::TrustChange::Remove { key: id };
    let message = super::to_completion(async move { host.change_trust(change).await }).await?;
    Ok(Json(TrustChanged { message }))
}

/// A signed revocation list or key rotation, as `secflow trust revoke --output FILE` or
/// `secflow key rotate` writes it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedList {
    /// The id of the signing key (a trusted revocation key, or the key being rotated).
    #[schema(min_length = 1, max_length = 128)]
    pub key_id: String,
    /// The exact signed text.
    #[schema(min_length = 1)]
    pub body: String,
    /// The signature over `body`.
    #[schema(min_length = 1, max_length = 512)]
    pub signature: String,
}

/// Imports a signed revocation list or key rotation (administrators). Signed elsewhere by a
/// key the trust store trusts for it, so the server holds no revocation key; a revoked key
/// or digest is refused from the next run on.
#[utoipa::path(post, operation_id = "trust_import", path = "/v1/trust/lists", tag = "trust", security(("bearer" = [])),
    request_body(content = SignedList, content_type = "application/json"),
    responses(
        (status = 200, description = "Imported", body = TrustChanged),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a signed list", body = Problem, content_type = "application/problem+json")))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Json<TrustChanged>> {
    caller.allow(&state, "trust.write", trust("*")).await?;
    let request: SignedList = super::json_body(&headers, &body)?;
    let text = serde_json::to_string(&request)
        .map_err(|e| Problem::bad_request(format!("the document: {e}")))?;
    let host = caller.host.clone();
    let change = secflow_host::TrustChange::ImportSigned { text };
    let message = super::to_completion(async move { host.change_trust(change).await }).await?;
    Ok(Json(TrustChanged { message }))
}
