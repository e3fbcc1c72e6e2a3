//! Scan jobs: submit (an archive upload, or a path under an allow-listed root), status with
//! progress, the report as JSON, SARIF or HTML, cancel.

use super::{ApiBytes, ApiQuery, Id, Page, Paging};
use crate::AppState;
use crate::auth::Caller;
use crate::jobs::{JobInfo, ScanJobOptions, Target};
use crate::problem::{ApiResult, Denied, Problem};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secflow_host::ApiResource;
use secflow_scan::output::Format;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

fn scan(id: &str) -> ApiResource<'_> {
    ApiResource { kind: "scan", id }
}

/// Options of an uploaded scan, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubmitQuery {
    /// Only these plugins, comma-separated.
    pub plugins: Option<String>,
    /// Leave these plugins out, comma-separated.
    pub exclude_plugins: Option<String>,
    /// Paths to leave out (gitignore globs), comma-separated.
    pub exclude: Option<String>,
    /// Scan files that ignore files leave out.
    #[serde(default)]
    pub no_ignore: bool,
}

/// A scan of a directory on the server (only under `--scan-root`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PathScan {
    pub path: String,
    #[serde(default)]
    pub options: ScanJobOptions,
}

fn list_of(text: &Option<String>) -> Vec<String> {
    text.as_deref()
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Queues a scan. The body is a `.tar.gz`, `.tar` or `.zip` of the target (unpacked with
/// path, link, entry and size checks), or JSON naming a path under an allowed root.
#[utoipa::path(post, operation_id = "scans_submit", path = "/v1/scans", tag = "scans", security(("bearer" = [])),
    params(SubmitQuery),
    request_body(content(
        ([u8] = "application/gzip"),
        ([u8] = "application/x-tar"),
        ([u8] = "application/zip"),
        (PathScan = "application/json"))),
    responses(
        (status = 202, description = "Queued; poll the job", body = JobInfo, links(
            ("GetScan" = (operation_id = "scans_get", parameters(("id" = "$response.body#/id")))),
            ("GetReport" = (operation_id = "scans_report", parameters(("id" = "$response.body#/id")))),
            ("CancelScan" = (operation_id = "scans_cancel", parameters(("id" = "$response.body#/id")))),
            ("DeleteScan" = (operation_id = "scans_delete", parameters(("id" = "$response.body#/id")))))),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 403, description = "Refused by the API policies, or a path outside the allowed roots", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body or unpacked archive too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not an archive or JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Archive refused (traversal, links, damaged)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue is full; see Retry-After", body = Problem, content_type = "application/problem+json")))]
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SubmitQuery>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    caller.allow(&state, "scans.create", scan("*")).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (target, options) = match content_type.as_str() {
        "application/json" => {
            let request: PathScan = serde_json::from_slice(&body).map_err(|e| {
                Problem::bad_request(format!("the JSON does not fit this route: {e}"))
            })?;
            (Target::Path(request.path.into()), request.options)
        }
        "application/gzip"
        | "application/x-gzip"
        | "application/x-tar"
        | "application/zip"
        | "application/octet-stream" => {
            if body.is_empty() {
                return Err(Problem::bad_request(
                    "the body is empty; send the target as an archive",
                ));
            }
            let options = ScanJobOptions {
                plugins: list_of(&query.plugins),
                exclude_plugins: list_of(&query.exclude_plugins),
                exclude: list_of(&query.exclude),
                no_ignore: query.no_ignore,
            };
            (Target::Upload(body), options)
        }
        other => {
            return Err(Problem::unsupported_media(format!(
                "a scan takes an archive (application/gzip, application/x-tar, application/zip) or JSON naming a path, not `{}`",
                super::secflow_term_safe(other)
            )));
        }
    };
    let (jobs, host) = (state.jobs.clone(), caller.host.clone());
    let job = super::to_completion(async move {
        let job = jobs.submit(host.actor(), target, options).await?;
        host.record_scan_job(
            secflow_host::ScanJobChange::Submitted,
            &job.id,
            serde_json::json!({ "source": job.source, "options": job.options }),
        )
        .await?;
        Ok::<_, Problem>(job)
    })
    .await?;
    let location = format!("/v1/scans/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job),
    )
        .into_response())
}

/// Scan jobs, newest first.
#[utoipa::path(get, operation_id = "scans_list", path = "/v1/scans", tag = "scans", security(("bearer" = [])),
    params(Paging),
    responses(
        (status = 200, description = "A page of jobs", body = inline(Page<JobInfo>)),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        Denied))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(paging): ApiQuery<Paging>,
) -> ApiResult<Json<Page<JobInfo>>> {
    caller.allow(&state, "scans.get", scan("*")).await?;
    let paging = paging.check()?;
    let items = state
        .jobs
        .list(paging.limit as i64, paging.offset as i64)
        .await?;
    Ok(Json(Page {
        total: items.len() as u64,
        items,
        limit: paging.limit,
        offset: paging.offset,
    }))
}

/// One job: its state, progress, and a summary once done.
#[utoipa::path(get, operation_id = "scans_get", path = "/v1/scans/{id}", tag = "scans", security(("bearer" = [])),
    params(("id" = String, Path, description = "Scan job id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")),
    responses(
        (status = 200, description = "The job", body = JobInfo),
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Json<JobInfo>> {
    caller.allow(&state, "scans.get", scan(&id)).await?;
    state
        .jobs
        .get(&id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no scan job `{id}`")))
}

/// The report format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `json` (default), `sarif` or `html`.
    pub format: Option<String>,
}

/// A finished job's report.
#[utoipa::path(get, operation_id = "scans_report", path = "/v1/scans/{id}/report", tag = "scans", security(("bearer" = [])),
    params(("id" = String, Path, description = "Scan job id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$"), ReportQuery),
    responses(
        (status = 200, description = "The report", content(
            (Object = "application/json"),
            (Object = "application/sarif+json"),
            (String = "text/html"))),
        (status = 400, description = "Bad format", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has not finished", body = Problem, content_type = "application/problem+json")))]
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> ApiResult<Response> {
    caller.allow(&state, "scans.get", scan(&id)).await?;
    let (format, content_type) = match query.format.as_deref().unwrap_or("json") {
        "json" => (Format::Json, "application/json"),
        "sarif" => (Format::Sarif, "application/sarif+json"),
        "html" => (Format::Html, "text/html; charset=utf-8"),
        other => {
            return Err(Problem::bad_request(format!(
                "format `{}` is not json, sarif or html",
                super::secflow_term_safe(other)
            )));
        }
    };
    let job = state
        .jobs
        .get(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no scan job `{id}`")))?;
    if job.state != "done" {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "not-finished",
            "Not finished",
            format!(
                "scan job {id} is {}; its report exists once it is done",
                job.state
            ),
        )
        .with("state", &job.state));
    }
    let bytes = state
        .jobs
        .report(&id, format)
        .await?
        .ok_or_else(|| Problem::not_found(format!("scan job {id} kept no report")))?;
    let mut response = ([(header::CONTENT_TYPE, content_type)], bytes).into_response();
    if format == Format::Html {
        // The report is self-contained; forbid anything else when a browser opens it.
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            axum::http::HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
            ),
        );
    }
    Ok(response)
}

/// Cancels a queued or running job (a job that has ended stays as it is). The job stays
/// listed, as `cancelled`, until it is deleted.
#[utoipa::path(post, operation_id = "scans_cancel", path = "/v1/scans/{id}/cancel", tag = "scans", security(("bearer" = [])),
    params(("id" = String, Path, description = "Scan job id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")),
    responses(
        (status = 200, description = "The job after the cancel", body = JobInfo),
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json")))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Json<JobInfo>> {
    caller.allow(&state, "scans.cancel", scan(&id)).await?;
    let change = secflow_host::ScanJobChange::CancelAsked;
    let job = change_job(&state, &caller, id, change, |jobs, id| async move {
        jobs.cancel(&id).await
    })
    .await?;
    Ok(Json(job))
}

/// Deletes a job that has ended (done, failed or cancelled) and its results and reports.
#[utoipa::path(delete, operation_id = "scans_delete", path = "/v1/scans/{id}", tag = "scans", security(("bearer" = [])),
    params(("id" = String, Path, description = "Scan job id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")),
    responses(
        (status = 200, description = "The job as it was when deleted", body = JobInfo),
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is queued or running: cancel it first", body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Json<JobInfo>> {
    caller.allow(&state, "scans.delete", scan(&id)).await?;
    let change = secflow_host::ScanJobChange::Deleted;
    let job = change_job(&state, &caller, id, change, |jobs, id| async move {
        jobs.delete(&id).await
    })
    .await?;
    Ok(Json(job))
}

/// Cancels or deletes the job `id` with `operation` and records the change with the job's
/// state, both to completion (a dropped request cuts neither). No such job is a 404.
async fn change_job<F, Fut>(
    state: &AppState,
    caller: &Caller,
    id: String,
    change: secflow_host::ScanJobChange,
    operation: F,
) -> ApiResult<JobInfo>
where
    F: FnOnce(crate::jobs::Jobs, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ApiResult<Option<JobInfo>>> + Send + 'static,
{
    let (jobs, host) = (state.jobs.clone(), caller.host.clone());
    super::to_completion(async move {
        let job = operation(jobs, id.clone())
            .await?
            .ok_or_else(|| Problem::not_found(format!("no scan job `{id}`")))?;
        host.record_scan_job(change, &id, serde_json::json!({ "state": job.state }))
            .await?;
        Ok::<_, Problem>(job)
    })
    .await
}
