//! The plugin marketplace over HTTP (`secflow serve --marketplace`): thin handlers over
//! `secflow-market`. What clients fetch (the pinned key, the signed index and revocation
//! list, search, plugin pages, countersigned packages) and what installing hosts send
//! (receipts and ratings, signed by their host keys) needs no token; publishing, review,
//! yanking, revoking, moderation and publishers go through the API policies like every
//! other route. A publisher token acts for the publisher of the same name.

use super::{ApiBytes, ApiQuery, Id, secflow_term_safe};
use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiResult, Denied, Problem};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use secflow_host::ApiResource;
use secflow_market::{Market, MarketError};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

fn market_resource(id: &str) -> ApiResource<'_> {
    ApiResource { kind: "market", id }
}

fn market(state: &AppState) -> ApiResult<&Market> {
    state.market.as_ref().ok_or_else(|| {
        Problem::not_found("this server does not serve a marketplace (start it with --marketplace)")
    })
}

impl From<MarketError> for Problem {
    fn from(e: MarketError) -> Problem {
        match e {
            MarketError::Invalid(m) => Problem::bad_request(m),
            MarketError::NotFound(m) => Problem::not_found(m),
            MarketError::Forbidden(m) => {
                Problem::new(StatusCode::FORBIDDEN, "refused", "Refused", m)
            }
            MarketError::Conflict(m) => {
                Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", m)
            }
            MarketError::Refused { message, report } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "vetting-refused",
                "Refused by vetting",
                message,
            )
            .with("report", report),
            MarketError::Host(e) => e.into(),
            MarketError::Store(e) => {
                tracing::error!(error = %e, "marketplace database");
                Problem::internal()
            }
        }
    }
}

/// `{id}` and `{version}` of a version route, each checked like an id.
#[derive(Debug, Clone)]
pub struct IdVersion(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdVersion {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let axum::extract::Path((id, version)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|e| Problem::bad_request(e.body_text()))?;
        for (what, value) in [("id", &id), ("version", &version)] {
            // Versions may carry `+` (semver build metadata), so the marketplace can say
            // it refuses them instead of answering "not a version".
            if !super::plausible_id(value, b"+") {
                return Err(Problem::bad_request(format!(
                    "`{}` is not a {what} (letters, digits, `-`, `_`, `.`, `+`; at most 128)",
                    secflow_term_safe(value)
                )));
            }
        }
        Ok(IdVersion(id, version))
    }
}

/// The marketplace's public key file: what clients pin (`secflow marketplace add --key`).
#[utoipa::path(get, operation_id = "market_key", path = "/v1/market/key", tag = "marketplace",
    responses((status = 200, description = "The marketplace key (a SecFlow public key file)", body = Object)))]
pub async fn key(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(market(&state)?.public_key().clone()).into_response())
}

/// The signed index: every approved, unrevoked version. Versioned (a client refuses a
/// lower version than it has seen) and expiring (a client refuses it after `expires_at`).
#[utoipa::path(get, operation_id = "market_index", path = "/v1/market/index", tag = "marketplace",
    responses((status = 200, description = "The signed index", body = secflow_market::SignedDocument)))]
pub async fn index(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(market(&state)?.index().await?).into_response())
}

/// The signed list of revoked package digests (`secflow.revocation-list/v1`, the format
/// `POST /v1/trust/lists` and `secflow trust import` take).
#[utoipa::path(get, operation_id = "market_revocations", path = "/v1/market/revocations", tag = "marketplace",
    responses((status = 200, description = "The signed revocation list", body = Object)))]
pub async fn revocations(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(market(&state)?.revocations().await?).into_response())
}

/// How to sort search results.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    #[default]
    Downloads,
    Rating,
    Recent,
}

/// Search parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words that must all appear in the id, name, description or tags.
    #[param(max_length = 200)]
    pub q: Option<String>,
    pub kind: Option<String>,
    pub category: Option<String>,
    pub tag: Option<String>,
    #[param(inline)]
    pub sort: Option<SortBy>,
    /// 1-based.
    #[param(minimum = 1, maximum = 100000)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u32>,
}

/// Browse and search the approved plugins.
#[utoipa::path(get, operation_id = "market_search", path = "/v1/market/plugins", tag = "marketplace",
    params(SearchQuery),
    responses(
        (status = 200, description = "One page of results", body = secflow_market::SearchResult),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json")))]
pub async fn search(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Response> {
    if query.q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(Problem::bad_request("`q` is at most 200 characters"));
    }
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(20);
    if !(1..=100_000).contains(&page) || !(1..=100).contains(&per_page) {
        return Err(Problem::bad_request(
            "`page` is 1 to 100000 and `per_page` 1 to 100",
        ));
    }
    let result = market(&state)?
        .search(&secflow_market::Query {
            text: query.q,
            kind: query.kind,
            category: query.category,
            tag: query.tag,
            sort: match query.sort.unwrap_or_default() {
                SortBy::Downloads => secflow_market::Sort::Downloads,
                SortBy::Rating => secflow_market::Sort::Rating,
                SortBy::Recent => secflow_market::Sort::Recent,
            },
            page: page as usize,
            per_page: per_page as usize,
        })
        .await?;
    Ok(Json(result).into_response())
}

/// A plugin's page: description, capabilities with the author's reasons, versions, the
/// latest version's vetting report, downloads and ratings.
#[utoipa::path(get, operation_id = "market_plugin", path = "/v1/market/plugins/{id}", tag = "marketplace",
    params(("id" = String, Path, description = "Plugin id")),
    responses(
        (status = 200, description = "The plugin page", body = secflow_market::PluginPage),
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No approved plugin of that id", body = Problem, content_type = "application/problem+json")))]
pub async fn plugin(State(state): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    Ok(Json(market(&state)?.page(&id).await?).into_response())
}

fn package_response(bytes: Vec<u8>, file_sha256: &str) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.secflow.package"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{file_sha256}\"")) {
        headers.insert(header::ETAG, etag);
    }
    response
}

/// The countersigned package of an approved, unrevoked version (yanked versions too, by
/// exact version). Its SHA-256 is the index's `file_sha256` (also the `ETag`).
#[utoipa::path(get, operation_id = "market_package", path = "/v1/market/plugins/{id}/versions/{version}/package", tag = "marketplace",
    params(("id" = String, Path, description = "Plugin id"), ("version" = String, Path, description = "Exact version")),
    responses(
        (status = 200, description = "The package", content_type = "application/vnd.secflow.package", body = [u8]),
        (status = 400, description = "Not an id or version", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such approved, unrevoked version", body = Problem, content_type = "application/problem+json")))]
pub async fn package(
    State(state): State<AppState>,
    IdVersion(id, version): IdVersion,
) -> ApiResult<Response> {
    let (row, bytes) = market(&state)?.package(&id, &version).await?;
    Ok(package_response(bytes, &row.file_sha256))
}

/// Publish a package signed by one of the publisher's keys. Vetting runs at once: the
/// version is approved (and countersigned) or waits for review; a failed check refuses it
/// (422, `report` says why). The same package again is `unchanged`.
#[utoipa::path(post, operation_id = "market_publish", path = "/v1/market/packages", tag = "marketplace", security(("bearer" = [])),
    request_body(content = [u8], description = "The .sfpkg package", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored: approved or pending review, with the vetting report", body = secflow_market::Published),
        (status = 200, description = "That exact package was published before", body = secflow_market::Published),
        (status = 400, description = "Not a package", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 409, description = "The version exists with other contents", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong content type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Refused by vetting; `report` says why", body = Problem, content_type = "application/problem+json")))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    caller
        .allow(&state, "market.publish", market_resource("*"))
        .await?;
    super::plugins::check_package_type(&headers)?;
    let market = market(&state)?.clone();
    let publisher = caller.identity.name.clone();
    let actor = caller.host.actor().to_string();
    let published =
        super::to_completion(async move { market.publish(&publisher, &body, &actor).await })
            .await?;
    let status = if published.unchanged {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(published)).into_response())
}

/// Versions waiting for review, oldest first, with their vetting reports.
#[utoipa::path(get, operation_id = "market_queue", path = "/v1/market/queue", tag = "marketplace", security(("bearer" = [])),
    responses((status = 200, description = "The review queue", body = Vec<secflow_market::Pending>), Denied))]
pub async fn queue(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller
        .allow(&state, "market.review", market_resource("*"))
        .await?;
    Ok(Json(market(&state)?.queue().await?).into_response())
}

/// A pending version's upload as the publisher sent it, for its reviewers.
#[utoipa::path(get, operation_id = "market_upload", path = "/v1/market/plugins/{id}/versions/{version}/upload", tag = "marketplace", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plugin id"), ("version" = String, Path, description = "Exact version")),
    responses(
        (status = 200, description = "The uploaded package", content_type = "application/vnd.secflow.package", body = [u8]),
        (status = 400, description = "Not an id or version", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "No such pending version", body = Problem, content_type = "application/problem+json")))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    IdVersion(id, version): IdVersion,
) -> ApiResult<Response> {
    caller
        .allow(&state, "market.review", market_resource(&id))
        .await?;
    let (row, bytes) = market(&state)?.upload(&id, &version).await?;
    Ok(package_response(bytes, &row.upload_sha256))
}

/// A reviewer's decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    pub decision: ReviewDecision,
    /// Why (kept with the version and in the audit log).
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReviewDecision {
    /// Approve: the marketplace countersigns it and lists it.
    Approve,
    Reject,
}

/// Approve (countersign and list) or reject a pending version.
#[utoipa::path(post, operation_id = "market_review", path = "/v1/market/plugins/{id}/versions/{version}/review", tag = "marketplace", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plugin id"), ("version" = String, Path, description = "Exact version")),
    request_body = ReviewBody,
    responses(
        (status = 200, description = "Decided", body = secflow_market::VersionRow),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "No such version", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pending (decided already, or revoked)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong content type", body = Problem, content_type = "application/problem+json")))]
pub async fn review(
    State(state): State<AppState>,
    caller: Caller,
    IdVersion(id, version): IdVersion,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    caller
        .allow(&state, "market.review", market_resource(&id))
        .await?;
    let body: ReviewBody = super::json_body(&headers, &body)?;
    let market = market(&state)?.clone();
    let actor = caller.host.actor().to_string();
    let row = super::to_completion(async move {
        market
            .review(
                &id,
                &version,
                matches!(body.decision, ReviewDecision::Approve),
                &body.reason,
                &actor,
            )
            .await
    })
    .await?;
    Ok(Json(row).into_response())
}

/// A yank (or un-yank).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct YankBody {
    /// `false` un-yanks.
    #[serde(default = "yes")]
    pub yanked: bool,
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

fn yes() -> bool {
    true
}

/// Yank a version: version ranges stop picking it; installed copies and exact-version
/// installs keep working. A publisher yanks only its own versions.
#[utoipa::path(post, operation_id = "market_yank", path = "/v1/market/plugins/{id}/versions/{version}/yank", tag = "marketplace", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plugin id"), ("version" = String, Path, description = "Exact version")),
    request_body = YankBody,
    responses(
        (status = 200, description = "Yanked or un-yanked", body = secflow_market::VersionRow),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "No such version", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong content type", body = Problem, content_type = "application/problem+json")))]
pub async fn yank(
    State(state): State<AppState>,
    caller: Caller,
    IdVersion(id, version): IdVersion,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    caller
        .allow(&state, "market.yank", market_resource(&id))
        .await?;
    let body: YankBody = super::json_body(&headers, &body)?;
    // An administrator yanks anything; anyone else only what its publisher published.
    let publisher = (caller.identity.role != "admin").then(|| caller.identity.name.clone());
    let market = market(&state)?.clone();
    let actor = caller.host.actor().to_string();
    let row = super::to_completion(async move {
        market
            .yank(
                &id,
                &version,
                body.yanked,
                &body.reason,
                publisher.as_deref(),
                &actor,
            )
            .await
    })
    .await?;
    Ok(Json(row).into_response())
}

/// Why a version is revoked.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// Revoke a version: off the index, no longer served, and its digest on the signed
/// revocation list clients apply (they refuse to run it and quarantine it).
#[utoipa::path(post, operation_id = "market_revoke", path = "/v1/market/plugins/{id}/versions/{version}/revoke", tag = "marketplace", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plugin id"), ("version" = String, Path, description = "Exact version")),
    request_body = RevokeBody,
    responses(
        (status = 200, description = "Revoked", body = secflow_market::VersionRow),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "No such version", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong content type", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    IdVersion(id, version): IdVersion,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    caller
        .allow(&state, "market.revoke", market_resource(&id))
        .await?;
    let body: RevokeBody = super::json_body(&headers, &body)?;
    let market = market(&state)?.clone();
    let actor = caller.host.actor().to_string();
    let row =
        super::to_completion(
            async move { market.revoke(&id, &version, &body.reason, &actor).await },
        )
        .await?;
    Ok(Json(row).into_response())
}

/// Most client networks whose anonymous-write budgets are kept before idle ones are
/// dropped (a flood from many addresses cannot grow the table without bound).
const MAX_TRACKED_PEERS: usize = 10_000;

/// Anonymous writes need no token, so no per-token limit: each client network has its
/// own budget (10/s, bursts of 30), and all of them together share one (100/s, bursts of
/// 200). A request without a known peer (a router served by something other than
/// [`crate::serve`]) has only the shared one.
fn anonymous_write(state: &AppState, peer: Option<crate::Peer>) -> ApiResult<()> {
    if let Some(peer) = peer {
        let limiter = &state.limits.market_anonymous_per_peer;
        if limiter.len() > MAX_TRACKED_PEERS {
            limiter.retain_recent();
        }
        if limiter.check_key(&peer.network()).is_err() {
            state.metrics.denied("rate-limit");
            return Err(Problem::rate_limited(1));
        }
    }
    if state.limits.market_anonymous.check().is_err() {
        state.metrics.denied("rate-limit");
        return Err(Problem::rate_limited(1));
    }
    Ok(())
}

/// Count an install: a receipt signed by the installing host's key (once per host and
/// version).
#[utoipa::path(post, operation_id = "market_install", path = "/v1/market/installs", tag = "marketplace",
    request_body = secflow_market::HostSigned,
    responses(
        (status = 201, description = "Counted", body = Object),
        (status = 200, description = "Counted before", body = Object),
        (status = 400, description = "A malformed, forged or stale receipt, or not for a published version", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such version", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong content type", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many anonymous writes; retry", body = Problem, content_type = "application/problem+json")))]
pub async fn install(
    State(state): State<AppState>,
    peer: Option<Extension<crate::Peer>>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    anonymous_write(&state, peer.map(|Extension(p)| p))?;
    let receipt: secflow_market::HostSigned = super::json_body(&headers, &body)?;
    let market = market(&state)?.clone();
    let new =
        super::to_completion(async move { market.record_install(&receipt, "api:anonymous").await })
            .await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(serde_json::json!({"counted": new}))).into_response())
}

/// Rate a plugin: a rating signed by a host that sent an install receipt for it; one per
/// host and plugin (a new one replaces the old).
#[utoipa::path(post, operation_id = "market_rate", path = "/v1/market/plugins/{id}/ratings", tag = "marketplace",
    params(("id" = String, Path, description = "Plugin id")),
    request_body = secflow_market::HostSigned,
    responses(
        (status = 201, description = "Stored", body = secflow_market::RatingRow),
        (status = 400, description = "A malformed or forged rating", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No install receipt from this host", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong content type", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many anonymous writes; retry", body = Problem, content_type = "application/problem+json")))]
pub async fn rate(
    State(state): State<AppState>,
    Id(id): Id,
    peer: Option<Extension<crate::Peer>>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    anonymous_write(&state, peer.map(|Extension(p)| p))?;
    let rating: secflow_market::HostSigned = super::json_body(&headers, &body)?;
    let market = market(&state)?.clone();
    let row = super::to_completion(async move { market.rate(&id, &rating, "api:anonymous").await })
        .await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

/// A moderation decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModerateBody {
    /// `false` shows it again.
    #[serde(default = "yes")]
    pub hidden: bool,
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// Hide (or show again) a rating.
#[utoipa::path(post, operation_id = "market_moderate", path = "/v1/market/plugins/{id}/ratings/{host}", tag = "marketplace", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plugin id"), ("host" = String, Path, description = "The rating host's key id")),
    request_body = ModerateBody,
    responses(
        (status = 204, description = "Done"),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "No such rating", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong content type", body = Problem, content_type = "application/problem+json")))]
pub async fn moderate(
    State(state): State<AppState>,
    caller: Caller,
    IdVersion(id, host_id): IdVersion,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    caller
        .allow(&state, "market.moderate", market_resource(&id))
        .await?;
    let body: ModerateBody = super::json_body(&headers, &body)?;
    let market = market(&state)?.clone();
    let actor = caller.host.actor().to_string();
    super::to_completion(async move {
        market
            .moderate(&id, &host_id, body.hidden, &body.reason, &actor)
            .await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The publishers, their namespaces and keys (administrators).
#[utoipa::path(get, operation_id = "market_publishers", path = "/v1/market/publishers", tag = "marketplace", security(("bearer" = [])),
    responses((status = 200, description = "Every publisher", body = Vec<secflow_market::PublisherRow>), Denied))]
pub async fn publishers(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller
        .allow(&state, "market.publishers", market_resource("*"))
        .await?;
    Ok(Json(market(&state)?.publishers().await?).into_response())
}

/// Namespaces for a publisher (created if new).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// The publisher; its publisher tokens carry this name.
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9][a-z0-9-]*$")]
    pub name: String,
    /// Plugin id prefixes: `acme` owns `acme` and `acme-*`.
    #[schema(min_items = 1, max_items = 64)]
    pub namespaces: Vec<String>,
}

/// Create a publisher or grant it more namespaces (administrators).
#[utoipa::path(post, operation_id = "market_grant", path = "/v1/market/publishers", tag = "marketplace", security(("bearer" = [])),
    request_body = GrantBody,
    responses(
        (status = 200, description = "The publisher", body = secflow_market::PublisherRow),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 409, description = "A namespace belongs to another publisher", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong content type", body = Problem, content_type = "application/problem+json")))]
pub async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    caller
        .allow(&state, "market.publishers", market_resource("*"))
        .await?;
    let body: GrantBody = super::json_body(&headers, &body)?;
    if body.namespaces.is_empty() || body.namespaces.len() > 64 {
        return Err(Problem::bad_request("give 1 to 64 namespaces"));
    }
    let market = market(&state)?.clone();
    let actor = caller.host.actor().to_string();
    let row = super::to_completion(async move {
        market
            .grant_namespaces(&body.name, &body.namespaces, &actor)
            .await
    })
    .await?;
    Ok(Json(row).into_response())
}

/// A publisher key to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublisherKeyBody {
    /// The text of the key's public key file (`secflow key export NAME`).
    #[schema(min_length = 1, max_length = 8192)]
    pub public_key: String,
}

/// Register a signing key of a publisher (administrators: a publisher's token alone must
/// not be enough to publish).
#[utoipa::path(post, operation_id = "market_publisher_key", path = "/v1/market/publishers/{id}/keys", tag = "marketplace", security(("bearer" = [])),
    params(("id" = String, Path, description = "Publisher name")),
    request_body = PublisherKeyBody,
    responses(
        (status = 200, description = "The publisher", body = secflow_market::PublisherRow),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "No such publisher", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key belongs to another publisher", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong content type", body = Problem, content_type = "application/problem+json")))]
pub async fn publisher_key(
    State(state): State<AppState>,
    caller: Caller,
    Id(name): Id,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    // Administrators only: were a publisher token enough to register a key, a stolen
    // token alone could publish, and the signing key would protect nothing.
    caller
        .allow(&state, "market.publishers", market_resource(&name))
        .await?;
    let body: PublisherKeyBody = super::json_body(&headers, &body)?;
    let market = market(&state)?.clone();
    let actor = caller.host.actor().to_string();
    let row = super::to_completion(async move {
        market
            .add_publisher_key(&name, &body.public_key, &actor)
            .await
    })
    .await?;
    Ok(Json(row).into_response())
}
