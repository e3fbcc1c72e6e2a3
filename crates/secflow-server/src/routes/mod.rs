//! The routes, and the extractors that turn every malformed request into a problem
//! document naming the fault (bad JSON, unknown fields, a wrong content type, an id that
//! could not name anything).

pub mod audit;
pub mod dashboard;
pub mod market;
pub mod ops;
pub mod plugins;
pub mod policy;
pub mod scans;
pub mod tokens;
pub mod trust;
pub mod web;

use crate::AppState;
use crate::problem::Problem;
use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::{get, post};

/// Every route. `openapi::tests` checks that each one is in the OpenAPI document.
pub fn routes(state: &AppState) -> Router<AppState> {
    let json_limit = DefaultBodyLimit::max(state.config.max_json_bytes);
    let upload_limit = DefaultBodyLimit::max(state.config.max_upload_bytes);
    let mut router = Router::new()
        .route("/livez", get(ops::livez))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/version", get(ops::version))
        .route("/v1/openapi.json", get(ops::openapi))
        .route("/v1/stats", get(audit::stats))
        .route("/v1/security", get(dashboard::overview))
        // The administrators' security dashboard (HTML, not in the OpenAPI document).
        .route("/admin", get(dashboard::dashboard))
        .route(
            "/admin/login",
            get(dashboard::login_form).post(dashboard::login),
        )
        .route("/admin/logout", post(dashboard::logout))
        .route("/admin/style.css", get(web::style))
        .route(
            "/v1/plugins",
            get(plugins::list)
                .post(plugins::install)
                .layer(upload_limit),
        )
        .route(
            "/v1/plugins/{id}",
            get(plugins::get).delete(plugins::uninstall),
        )
        .route("/v1/plugins/{id}/permissions", get(plugins::permissions))
        .route("/v1/plugins/{id}/enable", post(plugins::enable))
        .route("/v1/plugins/{id}/disable", post(plugins::disable))
        .route("/v1/plugins/{id}/run", post(plugins::run).layer(json_limit))
        .route(
            "/v1/packages/validate",
            post(plugins::validate).layer(upload_limit),
        )
        .route(
            "/v1/scans",
            get(scans::list).post(scans::submit).layer(upload_limit),
        )
        .route("/v1/scans/{id}", get(scans::get).delete(scans::delete))
        .route("/v1/scans/{id}/cancel", post(scans::cancel))
        .route("/v1/scans/{id}/report", get(scans::report))
        .route("/v1/audit/events", get(audit::events))
        .route("/v1/audit/events/stream", get(audit::follow))
        .route("/v1/audit/verify", post(audit::verify))
        .route("/v1/audit/checkpoint", post(audit::checkpoint))
        .route(
            "/v1/tokens",
            get(tokens::list).post(tokens::create).layer(json_limit),
        )
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/v1/trust", get(trust::list))
        .route("/v1/trust/keys", post(trust::add))
        .route("/v1/trust/keys/{id}", axum::routing::delete(trust::remove))
        .route("/v1/trust/lists", post(trust::import).layer(json_limit))
        .route("/v1/policy", get(policy::check))
        .route("/v1/plugins/{id}/policy", get(policy::explain));
    if state.market.is_some() {
        router = router
            .route("/v1/market/key", get(market::key))
            .route("/v1/market/index", get(market::index))
            .route("/v1/market/revocations", get(market::revocations))
            .route("/v1/market/plugins", get(market::search))
            .route("/v1/market/plugins/{id}", get(market::plugin))
            .route(
                "/v1/market/plugins/{id}/versions/{version}/package",
                get(market::package),
            )
            .route(
                "/v1/market/plugins/{id}/versions/{version}/upload",
                get(market::upload),
            )
            .route(
                "/v1/market/plugins/{id}/versions/{version}/review",
                post(market::review),
            )
            .route(
                "/v1/market/plugins/{id}/versions/{version}/yank",
                post(market::yank),
            )
            .route(
                "/v1/market/plugins/{id}/versions/{version}/revoke",
                post(market::revoke),
            )
            .route("/v1/market/plugins/{id}/ratings", post(market::rate))
            .route(
                "/v1/market/plugins/{id}/ratings/{host}",
                post(market::moderate),
            )
            .route(
                "/v1/market/packages",
                post(market::publish).layer(upload_limit),
            )
            .route("/v1/market/queue", get(market::queue))
            .route("/v1/market/installs", post(market::install))
            .route(
                "/v1/market/publishers",
                get(market::publishers).post(market::grant),
            )
            .route(
                "/v1/market/publishers/{id}/keys",
                post(market::publisher_key),
            )
            // The web pages (HTML, not in the OpenAPI document).
            .route("/market", get(web::browse))
            .route("/market/style.css", get(web::style))
            .route("/market/plugins/{id}", get(web::plugin));
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_json_bytes))
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::not_found(format!(
        "no route {}; see /v1/openapi.json for the API",
        secflow_term_safe(uri.path())
    ))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!(
            "{method} is not allowed on {}; see /v1/openapi.json",
            secflow_term_safe(uri.path())
        ),
    )
}

/// Runs a host operation to its end even when the request is dropped on the way (the
/// client went away, or the request hit `--request-timeout`): dropping the handler's future
/// would cut the operation between its change and its audit event, and a plugin run cut
/// off mid-call would leave a run nobody recorded. The request gets the result if it still
/// waits for it.
pub(crate) async fn to_completion<T, E, F>(operation: F) -> crate::problem::ApiResult<T>
where
    T: Send + 'static,
    E: Send + 'static,
    Problem: From<E>,
    F: std::future::Future<Output = Result<T, E>> + Send + 'static,
{
    match tokio::spawn(operation).await {
        Ok(result) => Ok(result?),
        Err(e) => {
            tracing::error!(error = %e, "a host operation panicked");
            Err(Problem::internal())
        }
    }
}

/// Request text echoed in a message, cut and without control characters.
fn secflow_term_safe(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    cut.chars().filter(|c| !c.is_control()).collect()
}

fn body_problem(status: axum::http::StatusCode, text: String) -> Problem {
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        Problem::too_large(format!(
            "the body is larger than this route accepts ({text})"
        ))
    } else {
        Problem::bad_request(format!("cannot read the body: {text}"))
    }
}

/// A JSON body read as bytes, parsed once the caller is authorized (an unauthorized caller
/// learns nothing from validation errors): a wrong content type is 415, bad JSON or unknown
/// fields 400.
pub fn json_body<T: serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<T, Problem> {
    let essence = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(Problem::unsupported_media(
            "this route takes JSON: send `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            Problem::bad_request(format!("the JSON does not fit this route: {e}"))
        }
        _ => Problem::bad_request(format!("the body is not valid JSON: {e}")),
    })
}

/// Raw bodies (packages, archives), with the size limit as a 413 problem.
#[derive(Debug, Clone)]
pub struct ApiBytes(pub bytes::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        bytes::Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|e| body_problem(e.status(), e.body_text()))
    }
}

/// Query strings: a bad parameter is a 400 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| {
                Problem::bad_request(format!("bad query string: {}", e.body_text()))
            })
    }
}

/// Whether a path segment could name something: letters, digits, `-`, `_`, `.` and the
/// bytes in `extra`, at most 128, not starting with `.` (no traversal, no control
/// characters).
pub(crate) fn plausible_id(value: &str, extra: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && !value.starts_with('.')
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') || extra.contains(&b)
        })
}

/// The `{id}` of a route, checked to be a plausible id: letters, digits, `-`, `_`, `.`,
/// at most 128, not starting with `.` (no traversal, no control characters).
#[derive(Debug, Clone)]
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let axum::extract::Path(id) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e: PathRejection| Problem::bad_request(e.body_text()))?;
        if !plausible_id(&id, b"") {
            return Err(Problem::bad_request(format!(
                "`{}` is not an id (letters, digits, `-`, `_`, `.`; at most 128)",
                secflow_term_safe(&id)
            )));
        }
        Ok(Id(id))
    }
}

/// Paging of list routes.
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Items per page (1 to 1000, default 100).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: u32,
    /// Items to skip.
    #[serde(default)]
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: u32,
}

/// `limit` in 1..=1000 and `offset` at most 1,000,000, as the OpenAPI document says.
pub fn check_page(limit: u32, offset: u32) -> Result<(), Problem> {
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 1000"));
    }
    if offset > 1_000_000 {
        return Err(Problem::bad_request("offset must be at most 1000000"));
    }
    Ok(())
}

fn default_limit() -> u32 {
    100
}

impl Paging {
    pub fn check(self) -> Result<Paging, Problem> {
        check_page(self.limit, self.offset)?;
        Ok(self)
    }
}

/// A page of items.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}
