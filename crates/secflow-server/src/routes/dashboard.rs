//! The security dashboard for administrators (`/admin`): recent sandbox violations,
//! quarantines, refused packages, policy denials, the audit log's integrity and the plugins
//! that run and fail most, from [`secflow_host::Host::security_overview`] (the same facts
//! as `GET /v1/security`).
//!
//! A browser cannot send a bearer header on a plain navigation, so the dashboard signs in
//! with a form: the token is checked like any bearer token, the API policies must allow it
//! `security.read` (administrators, by default), and it is kept in a cookie that is
//! `HttpOnly` (no script could read it, and the pages run none), `SameSite=Strict` (no other
//! site's page can make the browser send it), limited to `/admin` and to 8 hours, and
//! `Secure` when the server speaks TLS. The JSON API never reads that cookie: it takes only
//! the `Authorization` header, so a cookie cannot be used to forge an API call (CSRF). The
//! dashboard changes nothing; its only forms are sign-in and sign-out.

use super::web::{Site, date, page_in};
use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiResult, Denied, Problem};
use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use secflow_host::ApiResource;
use secflow_host::types::Entry;

/// The session cookie's name.
pub const COOKIE: &str = "secflow_admin";

/// How long a dashboard sign-in lasts.
const SESSION_SECONDS: u64 = 8 * 3600;

/// Entries shown per recent list.
const RECENT: u64 = 20;

fn resource() -> ApiResource<'static> {
    ApiResource {
        kind: "system",
        id: "security",
    }
}

/// The token in the request's session cookie, if any.
fn session_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn session_cookie(state: &AppState, token: &str, max_age: u64) -> HeaderValue {
    let secure = if state.config.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("secflow_admin=; Path=/admin; Max-Age=0"))
}

fn redirect(to: &'static str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    super::web::secure(response.headers_mut());
    response
}

fn private(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A signed-in administrator: the session cookie's token, authenticated and allowed
/// `security.read`. Anything else goes to the sign-in page.
pub struct AdminSession(Caller);

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = session_token(parts) else {
            return Err(redirect("/admin/login"));
        };
        let caller = Caller::with_token(parts, state, Some(&token))
            .await
            .map_err(|_| redirect("/admin/login"))?;
        caller
            .allow(state, "security.read", resource())
            .await
            .map_err(|problem| login_page(state, problem.status, &problem.detail))?;
        Ok(AdminSession(caller))
    }
}

fn login_page(_state: &AppState, status: u16, message: &str) -> Response {
    let body = html! {
        h1 { "Sign in" }
        p.meta { "The security dashboard is for administrators. Sign in with an API token (" code { "secflow token create --role admin" } ")." }
        @if !message.is_empty() {
            p.error role="alert" { (message) }
        }
        form.login action="/admin/login" method="post" {
            label for="token" { "API token" }
            input #token type="password" name="token" autocomplete="off" required placeholder="sft_...";
            button type="submit" { "Sign in" }
        }
    };
    private(page_in(
        Site::AdminSignIn,
        StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED),
        "Sign in",
        body,
    ))
}

/// The sign-in form.
pub async fn login_form(State(state): State<AppState>) -> Response {
    login_page(&state, 200, "")
}

#[derive(Debug, serde::Deserialize)]
pub struct Login {
    token: String,
}

/// Checks the token like a bearer token, requires `security.read`, and sets the session
/// cookie.
pub async fn login(
    State(state): State<AppState>,
    parts: Parts,
    Form(login): Form<Login>,
) -> Response {
    let token = login.token.trim();
    // Tokens are `sft_` and URL-safe characters: anything else cannot be one, and must
    // never reach a Set-Cookie header.
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return login_page(&state, 401, "that is not an API token");
    }
    let caller = match Caller::with_token(&parts, &state, Some(token)).await {
        Ok(caller) => caller,
        Err(problem) => return login_page(&state, problem.status, &problem.detail),
    };
    if let Err(problem) = caller.allow(&state, "security.read", resource()).await {
        return login_page(&state, problem.status, &problem.detail);
    }
    let mut response = redirect("/admin");
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state, token, SESSION_SECONDS),
    );
    private(response)
}

/// Forgets the session cookie.
pub async fn logout(State(state): State<AppState>) -> Response {
    let mut response = redirect("/admin/login");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    private(response)
}

fn entry_rows(entries: &[Entry], empty: &str) -> Markup {
    html! {
        @if entries.is_empty() {
            p.empty { (empty) }
        } @else {
            table {
                thead { tr { th { "#" } th { "Time (UTC)" } th { "Plugin" } th { "Who" } th { "Why" } } }
                tbody {
                    @for e in entries {
                        tr {
                            td { (e.seq) }
                            td { (e.time.get(..19).unwrap_or(&e.time).replace('T', " ")) }
                            td {
                                @if let Some(p) = &e.event.plugin {
                                    code { (p.id) " " (p.version) }
                                } @else {
                                    @if let Some(file) = e.event.details.get("file").and_then(|f| f.as_str()) {
                                        code { (file) }
                                    } @else { "-" }
                                }
                            }
                            td { (e.event.actor) }
                            td { (e.event.reason) }
                        }
                    }
                }
            }
        }
    }
}

fn usage_rows(rows: &[secflow_host::types::PluginUsage], empty: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { (empty) }
        } @else {
            table {
                thead { tr { th { "Plugin" } th.num { "Runs" } th.num { "Errors" } th.num { "Violations" } } }
                tbody {
                    @for r in rows {
                        tr {
                            td { code { (r.plugin_id) } }
                            td.num { (r.executions) }
                            td.num { (r.errors) }
                            td.num { (r.violations) }
                        }
                    }
                }
            }
        }
    }
}

/// The dashboard.
pub async fn dashboard(
    State(_state): State<AppState>,
    AdminSession(caller): AdminSession,
) -> ApiResult<Response> {
    let o = caller.host.security_overview(RECENT).await?;
    let s = &o.summary;
    let entries = o.audit["entries"].as_u64();
    let body = html! {
        h1 { "Security" }
        p.meta { "Signed in as " code { (caller.identity.id) } " (" (caller.identity.role) ")." }
        section.cards {
            div class={ "card " (if o.audit_intact { "ok" } else { "bad" }) } #audit {
                span.label { "Audit log" }
                @if o.audit_intact {
                    strong { "intact" }
                    span.sub { (entries.unwrap_or(0)) " entries verified, root " code { (o.audit["root"].as_str().unwrap_or("").get(..16).unwrap_or("")) "…" } }
                } @else {
                    strong { "TAMPERED" }
                    span.sub {
                        @if let Some(seq) = o.audit["first_bad_entry"].as_u64() { "first bad entry #" (seq) ": " }
                        (o.audit["message"].as_str().unwrap_or(""))
                    }
                }
            }
            div class={ "card " (if s.sandbox_violations > 0 { "warn" } else { "ok" }) } {
                span.label { "Sandbox violations" } strong { (s.sandbox_violations) }
            }
            div class={ "card " (if o.quarantined.is_empty() { "ok" } else { "warn" }) } {
                span.label { "Quarantined" } strong { (o.quarantined.len()) }
            }
            div class={ "card " (if s.verification_failures > 0 { "warn" } else { "ok" }) } {
                span.label { "Refused packages" } strong { (s.verification_failures) }
            }
            div.card {
                span.label { "Policy denials" } strong { (s.policy_violations) }
            }
            div.card {
                span.label { "Plugin runs" } strong { (s.plugin_runs) }
            }
        }
        section #quarantined {
            h2 { "Quarantined plugins" }
            @if o.quarantined.is_empty() {
                p.empty { "None." }
            } @else {
                table {
                    thead { tr { th { "Plugin" } th { "Version" } th.num { "Violations" } th { "Why" } th { "Since" } } }
                    tbody {
                        @for p in &o.quarantined {
                            tr {
                                td { code { (p.id) } }
                                td { (p.version) }
                                td.num { (p.violations) }
                                td { (p.quarantine_reason.as_deref().unwrap_or("")) }
                                td { (p.updated_at.get(..10).unwrap_or(&p.updated_at)) }
                            }
                        }
                    }
                }
                p.meta { "Release one with " code { "secflow plugin release ID" } " once the cause is understood." }
            }
        }
        section #violations {
            h2 { "Recent sandbox violations" }
            (entry_rows(&o.recent_violations, "None recorded."))
        }
        section #verification {
            h2 { "Recent verification failures" }
            (entry_rows(&o.recent_verification_failures, "None recorded."))
        }
        section #denials {
            h2 { "Recent policy denials" }
            (entry_rows(&o.recent_policy_denials, "None recorded."))
        }
        section #top {
            h2 { "Most run plugins" }
            (usage_rows(&o.top_by_runs, "No plugin has run yet."))
            h2 { "Most failing plugins" }
            (usage_rows(&o.top_by_errors, "No plugin has failed."))
        }
        p.meta { "Loaded " (loaded_at()) " UTC." }
    };
    Ok(private(page_in(
        Site::Admin,
        StatusCode::OK,
        "Security",
        body,
    )))
}

fn loaded_at() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let time = secs % 86_400;
    format!(
        "{} {:02}:{:02}:{:02}",
        date(secs),
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

/// `GET /v1/security`'s query.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverviewQuery {
    /// Entries per recent list (1 to 200).
    #[serde(default = "default_recent")]
    #[param(minimum = 1, maximum = 200)]
    pub recent: u64,
}

fn default_recent() -> u64 {
    RECENT
}

/// The security overview as JSON: the audit log verified now, the summary counts,
/// quarantined plugins, recent sandbox violations, verification failures and policy
/// denials (newest first), and the plugins with the most runs and failures.
#[utoipa::path(get, operation_id = "security_overview", path = "/v1/security", tag = "audit", security(("bearer" = [])),
    params(OverviewQuery),
    responses(
        (status = 200, description = "The overview", body = Object),
        (status = 400, description = "A bad parameter", body = Problem, content_type = "application/problem+json"),
        Denied))]
pub async fn overview(
    State(state): State<AppState>,
    caller: Caller,
    super::ApiQuery(query): super::ApiQuery<OverviewQuery>,
) -> ApiResult<Response> {
    caller.allow(&state, "security.read", resource()).await?;
    if !(1..=secflow_host::MAX_RECENT).contains(&query.recent) {
        return Err(Problem::bad_request(format!(
            "recent must be 1 to {}",
            secflow_host::MAX_RECENT
        )));
    }
    Ok(axum::Json(caller.host.security_overview(query.recent).await?).into_response())
}
