//! The audit log over the API: events with filters and paging, verification, a signed
//! checkpoint, and the security statistics.

use super::ApiQuery;
use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiResult, Denied, Problem};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use secflow_host::ApiResource;
use serde::Deserialize;
use utoipa::IntoParams;

fn audit() -> ApiResource<'static> {
    ApiResource {
        kind: "audit",
        id: "*",
    }
}

/// Filters of the event list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events about this plugin id.
    pub plugin: Option<String>,
    /// Events at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Events after this sequence number (to page forward or follow).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// At most this many events (1 to 1000, default 100).
    #[serde(default = "super::default_limit")]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: u32,
}

/// Audit events in order (the shape of `secflow audit log --json`).
#[utoipa::path(get, operation_id = "audit_events", path = "/v1/audit/events", tag = "audit", security(("bearer" = [])),
    params(EventsQuery),
    responses(
        (status = 200, description = "Events", body = Vec<Object>),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        Denied))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> ApiResult<Response> {
    caller.allow(&state, "audit.read", audit()).await?;
    super::check_page(query.limit, 0)?;
    let after = query
        .after
        .map(u64::try_from)
        .transpose()
        .map_err(|_| Problem::bad_request("after must be 0 or more"))?;
    if let Some(since) = &query.since
        && humantime::parse_rfc3339_weak(since).is_err()
    {
        return Err(Problem::bad_request(format!(
            "since `{}` is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)",
            super::secflow_term_safe(since)
        )));
    }
    let filter = secflow_host::types::AuditFilter {
        plugin: query.plugin,
        since: query.since,
        after_seq: after,
        limit: Some(query.limit as u64),
    };
    Ok(Json(caller.host.audit_entries(&filter).await?).into_response())
}

/// Verifies the whole log (hash chain, Merkle tree, stored checkpoints).
#[utoipa::path(post, operation_id = "audit_verify", path = "/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses(
        (status = 200, description = "`intact` true with the report, or false naming the first bad entry", body = Object),
        Denied))]
pub async fn verify(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.allow(&state, "audit.verify", audit()).await?;
    let body = match caller.host.audit_verify(None).await? {
        secflow_host::Integrity::Intact(report) => {
            serde_json::json!({ "intact": true, "report": report })
        }
        secflow_host::Integrity::Tampered {
            first_bad_entry,
            message,
        } => {
            serde_json::json!({ "intact": false, "first_bad_entry": first_bad_entry, "message": message })
        }
    };
    Ok(Json(body).into_response())
}

/// A checkpoint of the log, signed with the host key: keep it off the host.
#[utoipa::path(post, operation_id = "audit_checkpoint", path = "/v1/audit/checkpoint", tag = "audit", security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed checkpoint", body = Object),
        Denied))]
pub async fn checkpoint(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.allow(&state, "audit.checkpoint", audit()).await?;
    let host = caller.host.clone();
    Ok(
        Json(super::to_completion(async move { host.audit_checkpoint().await }).await?)
            .into_response(),
    )
}

/// Security statistics from the audit log (`secflow stats --json`).
#[utoipa::path(get, operation_id = "audit_stats", path = "/v1/stats", tag = "audit", security(("bearer" = [])),
    responses(
        (status = 200, description = "Statistics", body = Object),
        Denied))]
pub async fn stats(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller
        .allow(
            &state,
            "stats.read",
            ApiResource {
                kind: "system",
                id: "stats",
            },
        )
        .await?;
    Ok(Json(caller.host.audit_summary().await?).into_response())
}

/// Where to start following, and for how long.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FollowQuery {
    /// Send entries after this sequence number (`Last-Event-ID` resumes the same way).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// End the stream after this many seconds (1 to 86400, default 3600); reconnect to go on.
    #[param(minimum = 1, maximum = 86400)]
    pub seconds: Option<u32>,
}

/// Follows the audit log: every entry after `after` as a server-sent event (`event: audit`,
/// `id:` its sequence number, `data:` the entry as JSON), then new ones as they are
/// appended, until `seconds` have passed.
#[utoipa::path(get, operation_id = "audit_follow", path = "/v1/audit/events/stream", tag = "audit", security(("bearer" = [])),
    params(FollowQuery),
    responses(
        (status = 200, description = "Server-sent events", body = String, content_type = "text/event-stream"),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        Denied))]
pub async fn follow(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    ApiQuery(query): ApiQuery<FollowQuery>,
) -> ApiResult<Response> {
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    caller.allow(&state, "audit.read", audit()).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut after = match (resume, query.after) {
        (Some(seq), _) => seq,
        (None, Some(n)) => {
            u64::try_from(n).map_err(|_| Problem::bad_request("after must be 0 or more"))?
        }
        (None, None) => 0,
    };
    let seconds = query.seconds.unwrap_or(3600);
    if !(1..=86_400).contains(&seconds) {
        return Err(Problem::bad_request("seconds must be between 1 and 86400"));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds.into());
    let host = caller.host.clone();
    let stream = async_stream::stream! {
        const PAGE: u64 = 500;
        while std::time::Instant::now() < deadline {
            let filter = secflow_host::types::AuditFilter {
                after_seq: Some(after),
                limit: Some(PAGE),
                ..Default::default()
            };
            match host.audit_entries(&filter).await {
                Ok(entries) => {
                    let full = entries.len() as u64 == PAGE;
                    for entry in entries {
                        after = entry.seq;
                        // JSON escapes newlines and control characters: one `data:` line.
                        let data = serde_json::to_string(&entry).unwrap_or_default();
                        yield Ok::<_, std::convert::Infallible>(
                            SseEvent::default().event("audit").id(entry.seq.to_string()).data(data),
                        );
                    }
                    if full {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e.message, "audit follow");
                    yield Ok(SseEvent::default().event("error").data("the audit log could not be read"));
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    };
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
