//! Plugins: list, inspect, install (upload a `.sfpkg`), uninstall, enable, disable, run,
//! and validate a package without installing it. Each handler is a host operation behind
//! the API policies; the JSON shapes are the CLI's `--json` ones.

use super::{ApiBytes, ApiQuery, Id, Page};
use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiResult, Denied, Problem};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secflow_host::{AdmitOutcome, Answer, ApiResource, ApprovalRequest, Approver, InstallMode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

fn plugin(id: &str) -> ApiResource<'_> {
    ApiResource { kind: "plugin", id }
}

/// Filters of the plugin list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Case-insensitive text in the id, name, description, tags or categories.
    pub q: Option<String>,
    pub kind: Option<String>,
    pub category: Option<String>,
    pub tag: Option<String>,
    /// `bundled` or `installed`.
    pub origin: Option<String>,
    pub enabled: Option<bool>,
    #[serde(default = "super::default_limit")]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: u32,
    #[serde(default)]
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: u32,
}

/// Bundled and installed plugins, filtered and paged.
#[utoipa::path(get, operation_id = "plugins_list", path = "/v1/plugins", tag = "plugins", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of plugins (the shape of `secflow plugin list --json`)", body = inline(Page<secflow_host::PluginListing>)),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        Denied))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<secflow_host::PluginListing>>> {
    caller.allow(&state, "plugins.list", plugin("*")).await?;
    super::check_page(query.limit, query.offset)?;
    let search = secflow_host::types::SearchQuery {
        text: query.q.clone(),
        kind: query.kind.clone(),
        category: query.category.clone(),
        tag: query.tag.clone(),
    };
    let all: Vec<_> = caller
        .host
        .search(&search)
        .await?
        .into_iter()
        .filter(|p| {
            query
                .origin
                .as_deref()
                .is_none_or(|o| p.origin.as_str() == o)
        })
        .filter(|p| query.enabled.is_none_or(|e| p.plugin.enabled == e))
        .collect();
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(query.offset as usize)
        .take(query.limit as usize)
        .collect();
    Ok(Json(Page {
        items,
        total,
        limit: query.limit,
        offset: query.offset,
    }))
}

/// One plugin: for an installed one its manifest, grant, versions, statistics and health
/// (`secflow plugin info --json`); for a bundled one its listing and manifest.
#[utoipa::path(get, operation_id = "plugins_get", path = "/v1/plugins/{id}", tag = "plugins", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plugin id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")),
    responses(
        (status = 200, description = "The plugin", body = Object),
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "No such plugin", body = Problem, content_type = "application/problem+json")))]
pub async fn get(State(state): State<AppState>, caller: Caller, Id(id): Id) -> ApiResult<Response> {
    caller.allow(&state, "plugins.get", plugin(&id)).await?;
    let listing = caller
        .host
        .list()
        .await?
        .into_iter()
        .filter(|p| p.plugin.id == id)
        .max_by_key(|p| p.origin == secflow_host::Origin::Installed)
        .ok_or_else(|| Problem::not_found(format!("no plugin `{id}` is bundled or installed")))?;
    if listing.origin == secflow_host::Origin::Installed {
        let info = caller.host.info(&id).await?;
        return Ok(Json(info).into_response());
    }
    let manifest = secflow_host::bundled_plugin(&id)?.map(|b| b.manifest);
    Ok(Json(serde_json::json!({ "plugin": listing, "manifest": manifest })).into_response())
}

/// What an installed plugin asked for and was granted.
#[utoipa::path(get, operation_id = "plugins_permissions", path = "/v1/plugins/{id}/permissions", tag = "plugins", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plugin id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")),
    responses(
        (status = 200, description = "Asked and granted capabilities", body = Object),
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 404, description = "Not installed", body = Problem, content_type = "application/problem+json")))]
pub async fn permissions(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Response> {
    caller
        .allow(&state, "plugins.permissions", plugin(&id))
        .await?;
    installed(&caller, &id).await?;
    Ok(Json(caller.host.permissions(&id).await?).into_response())
}

/// 404 unless `id` is installed (the registry's own error would say "invalid").
pub(super) async fn installed(caller: &Caller, id: &str) -> ApiResult<()> {
    let found = caller
        .host
        .list()
        .await?
        .iter()
        .any(|p| p.plugin.id == id && p.origin == secflow_host::Origin::Installed);
    if found {
        Ok(())
    } else {
        Err(Problem::not_found(format!("no plugin `{id}` is installed")))
    }
}

/// How an upload is approved.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstallQuery {
    /// `all` approves every capability the package asks for (the API's `--yes`).
    pub approve: Option<String>,
    /// Grant only these capability labels, comma-separated (the API's `--grant`).
    pub grant: Option<String>,
    /// Upgrade an installed plugin instead of installing a new one.
    #[serde(default)]
    pub upgrade: bool,
}

/// The API's approver: approval is given in the request, never asked for later.
struct ApiApprover {
    standing: Option<String>,
}

impl Approver for ApiApprover {
    fn standing(&self) -> Option<String> {
        self.standing.clone()
    }
    fn ask(&self, _request: &ApprovalRequest<'_>) -> Answer {
        Answer::CannotAsk
    }
}

fn approver(caller: &Caller, approve: Option<&str>, grants: &[String]) -> ApiResult<ApiApprover> {
    let standing = match approve {
        None if grants.is_empty() => None,
        None => Some(format!("api:{} --grant", caller.identity.id)),
        Some("all") => Some(format!("api:{}", caller.identity.id)),
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "approve=`{}` is not understood; use approve=all, or name capabilities with grant=",
                super::secflow_term_safe(other)
            )));
        }
    };
    Ok(ApiApprover { standing })
}

pub(crate) fn check_package_type(headers: &HeaderMap) -> ApiResult<()> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if matches!(
        essence.as_str(),
        "application/octet-stream" | "application/vnd.secflow.package"
    ) {
        Ok(())
    } else {
        Err(Problem::unsupported_media(format!(
            "a package upload is `Content-Type: application/octet-stream` (or application/vnd.secflow.package), not `{}`",
            super::secflow_term_safe(content_type)
        )))
    }
}

/// Installs (or with `upgrade=true` upgrades) the uploaded `.sfpkg`: verified against the
/// trust store, admitted by the policies, granted what the request approves.
#[utoipa::path(post, operation_id = "plugins_install", path = "/v1/plugins", tag = "plugins", security(("bearer" = [])),
    params(InstallQuery),
    request_body(content = [u8], description = "The .sfpkg package", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Installed or upgraded; the admitted packages", body = Vec<Object>, links(
            ("GetPlugin" = (operation_id = "plugins_get", parameters(("id" = "$response.body#/0/id")))),
            ("GetPermissions" = (operation_id = "plugins_permissions", parameters(("id" = "$response.body#/0/id")))),
            ("RunPlugin" = (operation_id = "plugins_run", parameters(("id" = "$response.body#/0/id")))),
            ("DisablePlugin" = (operation_id = "plugins_disable", parameters(("id" = "$response.body#/0/id")))),
            ("EnablePlugin" = (operation_id = "plugins_enable", parameters(("id" = "$response.body#/0/id")))),
            ("UninstallPlugin" = (operation_id = "plugins_uninstall", parameters(("id" = "$response.body#/0/id")))))),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 403, description = "Refused by the API policies, or the package by trust or admission policy", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong content type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid package", body = Problem, content_type = "application/problem+json")))]
pub async fn install(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<InstallQuery>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    let action = if query.upgrade {
        "plugins.upgrade"
    } else {
        "plugins.install"
    };
    caller.allow(&state, action, plugin("*")).await?;
    check_package_type(&headers)?;
    if body.is_empty() {
        return Err(Problem::bad_request(
            "the body is empty; send the .sfpkg file",
        ));
    }
    let grants: Vec<String> = query
        .grant
        .as_deref()
        .map(|g| {
            g.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let approver = approver(&caller, query.approve.as_deref(), &grants)?;
    let request = secflow_host::InstallRequest {
        packages: vec![secflow_host::Package {
            source: format!("upload by api:{}", caller.identity.id),
            bytes: body.to_vec(),
            from_marketplace: false,
        }],
        mode: if query.upgrade {
            InstallMode::Upgrade
        } else {
            InstallMode::Install
        },
        select: grants,
        mounts: Vec::new(),
        dev: false,
        allow_rollback: false,
    };
    let host = caller.host.clone();
    let admitted =
        super::to_completion(async move { host.install(request, &approver).await }).await?;
    let status = if admitted
        .iter()
        .all(|a| a.outcome == AdmitOutcome::Unchanged)
    {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(admitted)).into_response())
}

/// The outcome of a state change.
#[derive(Debug, Serialize, ToSchema)]
pub struct Changed {
    pub id: String,
    /// `uninstalled`, `enabled`, `disabled`.
    pub state: String,
    /// A sentence for people.
    pub message: String,
}

/// Uninstalls a plugin (every version, its grant and blobs).
#[utoipa::path(delete, operation_id = "plugins_uninstall", path = "/v1/plugins/{id}", tag = "plugins", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plugin id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")),
    responses(
        (status = 200, description = "Uninstalled", body = Changed),
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 403, description = "Refused", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not installed", body = Problem, content_type = "application/problem+json")))]
pub async fn uninstall(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Json<Changed>> {
    caller
        .allow(&state, "plugins.uninstall", plugin(&id))
        .await?;
    installed(&caller, &id).await?;
    let (host, target) = (caller.host.clone(), id.clone());
    let removed = super::to_completion(async move { host.uninstall(&target).await }).await?;
    Ok(Json(Changed {
        message: format!("uninstalled {id} ({} version(s))", removed.len()),
        id,
        state: "uninstalled".into(),
    }))
}

/// Approval for enabling a plugin whose upgrade waits for it.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnableQuery {
    /// `all` approves the capabilities a held upgrade asks for.
    pub approve: Option<String>,
}

/// Turns an installed plugin on (with `approve=all`, approving a held grant).
#[utoipa::path(post, operation_id = "plugins_enable", path = "/v1/plugins/{id}/enable", tag = "plugins", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plugin id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$"), EnableQuery),
    responses(
        (status = 200, description = "Enabled", body = Changed),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 403, description = "Refused", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not installed", body = Problem, content_type = "application/problem+json")))]
pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    ApiQuery(query): ApiQuery<EnableQuery>,
) -> ApiResult<Json<Changed>> {
    let action = if query.approve.is_some() {
        "plugins.approve"
    } else {
        "plugins.enable"
    };
    caller.allow(&state, action, plugin(&id)).await?;
    installed(&caller, &id).await?;
    let approver = approver(&caller, query.approve.as_deref(), &[])?;
    let (host, target) = (caller.host.clone(), id.clone());
    let message =
        super::to_completion(async move { host.enable(&target, &approver).await }).await?;
    Ok(Json(Changed {
        id,
        state: "enabled".into(),
        message,
    }))
}

/// Turns an installed plugin off.
#[utoipa::path(post, operation_id = "plugins_disable", path = "/v1/plugins/{id}/disable", tag = "plugins", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plugin id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")),
    responses(
        (status = 200, description = "Disabled", body = Changed),
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 403, description = "Refused", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not installed", body = Problem, content_type = "application/problem+json")))]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Json<Changed>> {
    caller.allow(&state, "plugins.disable", plugin(&id)).await?;
    installed(&caller, &id).await?;
    let (host, target) = (caller.host.clone(), id.clone());
    super::to_completion(async move { host.disable(&target).await }).await?;
    Ok(Json(Changed {
        message: format!("disabled {id}"),
        id,
        state: "disabled".into(),
    }))
}

/// One run of a plugin.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// For action plugins: the action (none lists the actions).
    #[serde(default)]
    pub action: Option<String>,
    /// The input: an action's parameters, findings for an enricher or analytics plugin, a
    /// `{"path", "content"}` file for a detector, `{"source", "text"}` for a log analyzer,
    /// an exchange for a proxy filter, a target for a tester.
    #[serde(default)]
    #[schema(value_type = Value)]
    pub input: Option<serde_json::Value>,
    /// Run the plugin's health check instead.
    #[serde(default)]
    pub health: bool,
    /// Plugin configuration (checked against the manifest's schema).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Option<serde_json::Value>,
}

/// What a run produced, with its resource report.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunResponse {
    /// Whatever the plugin's call returns (a number, a list, an object).
    #[schema(value_type = Value)]
    pub output: serde_json::Value,
    /// Time, memory, fuel, bytes in and out, denials.
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
    /// Log lines the plugin wrote.
    #[schema(value_type = Vec<Object>)]
    pub logs: serde_json::Value,
}

/// Runs an installed or bundled plugin once, with its stored grant and the limits the
/// policies set. A plugin failure is a 422 problem carrying the run's report.
#[utoipa::path(post, operation_id = "plugins_run", path = "/v1/plugins/{id}/run", tag = "execution", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plugin id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")),
    request_body(content = RunRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The plugin's output and the run's resource report", body = RunResponse),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 403, description = "Refused by the API or admission policies", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plugin", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The input does not fit the plugin, or the plugin failed (report included)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Every run slot is busy; see Retry-After", body = Problem, content_type = "application/problem+json")))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    caller.allow(&state, "plugins.run", plugin(&id)).await?;
    let request: RunRequest = super::json_body(&headers, &body)?;
    let started = std::time::Instant::now();
    let cleared = caller.host.clear(&id).await?;
    let config = request.config.unwrap_or_else(|| serde_json::json!({}));
    let input = match request.input {
        None => None,
        Some(value) => Some(input_bytes(cleared.manifest.kind, value)?),
    };
    let call = secflow_host::build_call(
        cleared.manifest.kind,
        secflow_host::CallRequest {
            health: request.health,
            action: request.action,
            input,
            config: config.clone(),
        },
    )?;
    let slot = state
        .limits
        .run_slot()
        .await
        .inspect_err(|_| state.metrics.denied("busy"))?;
    let host = caller.host.clone();
    let (inv, after) = super::to_completion(async move {
        host.invoke_holding(&cleared, call, &config, &[], slot)
            .await
    })
    .await?;
    if after.quarantined.is_some() {
        state.metrics.quarantined();
    }
    let seconds = started.elapsed().as_secs_f64();
    match &inv.outcome {
        Ok(output) => {
            state.metrics.invocation(&id, "ok", seconds);
            // Serialized straight from the run's own types (the shape of `RunResponse`),
            // without building a JSON tree first: this is the hottest route.
            #[derive(Serialize)]
            struct Body<'a> {
                output: &'a secflow_runtime::Output,
                report: &'a secflow_runtime::Report,
                logs: &'a [secflow_runtime::LogLine],
            }
            Ok(Json(Body {
                output,
                report: &inv.report,
                logs: &inv.logs,
            })
            .into_response())
        }
        Err(error) => {
            let report = serde_json::to_value(&inv.report).unwrap_or_default();
            let violation = secflow_host::Failure::of(error).violation;
            state
                .metrics
                .invocation(&id, if violation { "violation" } else { "error" }, seconds);
            if violation {
                state.metrics.denied("sandbox");
            }
            Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "plugin-failed",
                "Plugin failed",
                format!("{id}: {error}"),
            )
            .with("error", error)
            .with("report", report)
            .with("quarantined", after.quarantined))
        }
    }
}

/// The input of a run as bytes with a name, the way `--input` gives it.
fn input_bytes(
    kind: secflow_manifest::PluginKind,
    value: serde_json::Value,
) -> ApiResult<(String, Vec<u8>)> {
    use secflow_manifest::PluginKind;
    match kind {
        PluginKind::Detector | PluginKind::LogAnalyzer => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct FileInput {
                #[serde(alias = "source")]
                path: String,
                #[serde(alias = "text")]
                content: String,
            }
            let file: FileInput = serde_json::from_value(value).map_err(|e| {
                Problem::bad_request(format!(
                    "a {kind} takes `input` as {{\"path\": \"...\", \"content\": \"...\"}}: {e}"
                ))
            })?;
            Ok((file.path, file.content.into_bytes()))
        }
        _ => Ok((
            "request input".to_string(),
            serde_json::to_vec(&value).unwrap_or_default(),
        )),
    }
}

/// Checks a package as an install would (signatures against the trust store, the
/// admission policies' decisions), without installing it.
#[utoipa::path(post, operation_id = "plugins_validate", path = "/v1/packages/validate", tag = "plugins", security(("bearer" = [])),
    request_body(content = [u8], description = "The .sfpkg package", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The verification and what the policies would decide", body = Object),
        (status = 400, description = "Bad request", body = Problem, content_type = "application/problem+json"),
        Denied,
        (status = 413, description = "Too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong content type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a readable package", body = Problem, content_type = "application/problem+json")))]
pub async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    caller
        .allow(&state, "plugins.validate", plugin("*"))
        .await?;
    check_package_type(&headers)?;
    let verdict = caller
        .host
        .verify_package(
            &body,
            &format!("upload by api:{}", caller.identity.id),
            false,
        )
        .await?;
    let verification = match verdict {
        secflow_host::Verdict::Judged(v) => v,
        secflow_host::Verdict::Unreadable(message) => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-package",
                "Not a package",
                format!("{message}; build one with `secflow plugin pack`"),
            ));
        }
    };
    let explanation = match verification.package.as_ref() {
        Some(package) => {
            let signers: Vec<String> = verification
                .signatures
                .iter()
                .filter(|s| s.status == secflow_host::types::SignatureStatus::Valid)
                .filter_map(|s| s.role.map(|r| r.to_string()))
                .collect();
            let e = caller
                .host
                .explain_manifest(&package.manifest, signers, false)?;
            Some(serde_json::json!({
                "plugin": e.plugin,
                "decisions": e.decisions.iter().map(|(action, d)| serde_json::json!({
                    "action": action.as_str(), "allowed": d.allowed, "policies": d.policies, "errors": d.errors,
                })).collect::<Vec<_>>(),
            }))
        }
        None => None,
    };
    Ok(Json(serde_json::json!({
        "accepted": verification.accepted(),
        "verification": verification,
        "policy": explanation,
    }))
    .into_response())
}
