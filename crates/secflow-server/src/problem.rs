//! Errors as RFC 9457 `application/problem+json`. Every `type` is a stable URI documented
//! in `docs/api.md`; `detail` says what was wrong and what to do; nothing internal (no
//! stack trace, no SQL) reaches the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Where the problem types are documented.
pub const TYPE_BASE: &str = "https://secflow.dev/problems/";

/// A problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (stable; see docs/api.md).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the kind.
    pub title: String,
    pub status: u16,
    /// What went wrong here, and what to do about it.
    pub detail: String,
    /// Extra members for some kinds (the policies that refused, a run's report).
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Seconds to wait before retrying (also the `Retry-After` header).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("{TYPE_BASE}{kind}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            extra: serde_json::Map::new(),
            retry_after: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Serialize) -> Problem {
        self.extra.insert(
            key.to_string(),
            serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        );
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>, policies: &[String]) -> Problem {
        Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden by policy",
            detail,
        )
        .with("policies", policies)
    }

    pub fn too_large(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            detail,
        )
    }

    pub fn unsupported_media(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    pub fn busy(detail: impl Into<String>, retry_after: u64) -> Problem {
        let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "Busy", detail);
        p.retry_after = Some(retry_after);
        p
    }

    pub fn rate_limited(retry_after: u64) -> Problem {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            format!("this token's request rate is over its limit; retry in {retry_after} s"),
        );
        p.retry_after = Some(retry_after);
        p
    }

    pub fn internal() -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server could not complete the request; the server log has the details (search for the request id)",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<secflow_host::HostError> for Problem {
    fn from(e: secflow_host::HostError) -> Problem {
        use secflow_host::ErrorKind;
        match e.kind {
            ErrorKind::Invalid => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "Invalid request",
                e.message,
            ),
            ErrorKind::NotFound => Problem::not_found(e.message),
            ErrorKind::Refused => {
                Problem::new(StatusCode::FORBIDDEN, "refused", "Refused", e.message)
                    .with_remedy(e.remedy.as_ref())
            }
            ErrorKind::PluginFailed => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "plugin-failed",
                "Plugin failed",
                e.message,
            ),
            ErrorKind::Internal => {
                tracing::error!(error = %e.message, "host operation failed");
                Problem::internal()
            }
        }
    }
}

impl Problem {
    /// A host remedy in the API's words.
    fn with_remedy(self, remedy: Option<&secflow_host::Remedy>) -> Problem {
        use secflow_host::Remedy;
        let Some(remedy) = remedy else { return self };
        let text = match remedy {
            Remedy::ApproveCapabilities => {
                "approve the capabilities: repeat with ?approve=all, or name them with ?grant=LABEL"
                    .to_string()
            }
            Remedy::ApproveOnEnable => {
                "approve the new capabilities: POST /v1/plugins/{id}/enable?approve=all".to_string()
            }
            Remedy::ReviewHeldGrant { id } => format!(
                "review GET /v1/plugins/{id}/permissions, then POST /v1/plugins/{id}/enable?approve=all"
            ),
            Remedy::Enable { id } => format!("turn it on: POST /v1/plugins/{id}/enable"),
            Remedy::Release { id } => {
                format!("lift the quarantine on the host: secflow plugin release {id}")
            }
            Remedy::ExplainPolicy { .. } => {
                "see GET /v1/policy/explain or the policy files on the host".to_string()
            }
            Remedy::Reinstall => "install it again".to_string(),
            Remedy::Build { .. } | Remedy::CreateManifest => {
                "build the plugin package first".to_string()
            }
            Remedy::GiveInput => "give the input in the request's `input` member".to_string(),
        };
        let detail = format!("{}; {text}", self.detail);
        Problem { detail, ..self }
    }
}

/// Results of handlers.
pub type ApiResult<T> = Result<T, Problem>;

/// The refusals every route behind a token can give, for the OpenAPI document (never built:
/// the responses are [`Problem`]s made by the extractor and [`Caller::allow`](crate::auth)).
#[allow(dead_code)]
#[derive(Debug, utoipa::IntoResponses)]
pub enum Denied {
    /// No bearer token, or a malformed, unknown, expired or revoked one.
    #[response(
        status = 401,
        description = "No valid token",
        content_type = "application/problem+json"
    )]
    Unauthorized(#[to_schema] Problem),
    /// The API policies refused this token the route's action.
    #[response(
        status = 403,
        description = "Refused by the API policies (or, where the route says so, by the host)",
        content_type = "application/problem+json"
    )]
    Forbidden(#[to_schema] Problem),
    /// The token's request rate is over its limit.
    #[response(
        status = 429,
        description = "Too many requests; see Retry-After",
        content_type = "application/problem+json"
    )]
    RateLimited(#[to_schema] Problem),
}
