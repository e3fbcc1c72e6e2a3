//! The marketplace's web pages (`secflow serve --marketplace`): server-rendered HTML with
//! `maud` (every value escaped by the template), one same-origin stylesheet, no scripts at
//! all, and a Content-Security-Policy that allows nothing else. Browsing needs no token,
//! like the JSON routes the pages show.

use super::{ApiQuery, Id};
use crate::AppState;
use crate::problem::ApiResult;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use secflow_market::{Market, MarketError};

/// Nothing but our own stylesheet: no scripts, frames, objects, fonts or remote images.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const STYLE: &str = include_str!("web.css");

/// Which set of pages a page belongs to: its header, footer and stylesheet path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Site {
    Market,
    Admin,
    /// The dashboard's sign-in page (no sign-out button).
    AdminSignIn,
}

fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    page_in(Site::Market, status, title, body)
}

/// A whole HTML page with the security headers.
pub(crate) fn page_in(site: Site, status: StatusCode, title: &str, body: Markup) -> Response {
    let (suffix, home, style) = match site {
        Site::Market => ("SecFlow marketplace", "/market", "/market/style.css"),
        Site::Admin | Site::AdminSignIn => ("SecFlow security", "/admin", "/admin/style.css"),
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (suffix) }
                link rel="stylesheet" href=(style);
            }
            body {
                header {
                    a.brand href=(home) { (suffix) }
                    @if site == Site::Market {
                        form action="/market" method="get" {
                            input type="search" name="q" placeholder="Search plugins" aria-label="Search plugins";
                            button type="submit" { "Search" }
                        }
                    } @else if site == Site::Admin {
                        form action="/admin/logout" method="post" {
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
                footer {
                    @if site == Site::Market {
                        "Every plugin here was vetted: signature, capabilities, secrets, a health check in the sandbox. "
                        a href="/v1/market/index" { "Signed index" }
                        " · "
                        a href="/v1/market/revocations" { "Revocations" }
                        " · "
                        a href="/v1/market/key" { "Marketplace key" }
                    } @else {
                        "Read from this server's audit log and registry when the page was loaded. JSON: "
                        code { "GET /v1/security" }
                    }
                }
            }
        }
    };
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(headers);
    response
}

pub(crate) fn secure(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn market(state: &AppState) -> Option<&Market> {
    state.market.as_ref()
}

pub(crate) fn date(secs: u64) -> String {
    // Days since the epoch to a civil date (Howard Hinnant's algorithm), UTC.
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn stars(rating: Option<f64>) -> String {
    rating.map_or_else(|| "no ratings".to_string(), |r| format!("{r:.1} / 5"))
}

/// The stylesheet the pages link.
pub async fn style() -> Response {
    let mut response = (StatusCode::OK, STYLE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    secure(headers);
    response
}

/// The search form's parameters.
#[derive(Debug, serde::Deserialize)]
pub struct BrowseQuery {
    pub q: Option<String>,
    pub kind: Option<String>,
    pub sort: Option<String>,
    pub page: Option<u32>,
}

/// The marketplace's front page: search and browse.
pub async fn browse(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<BrowseQuery>,
) -> ApiResult<Response> {
    let Some(market) = market(&state) else {
        return Ok(not_served());
    };
    let text = query
        .q
        .clone()
        .map(|q| q.chars().take(200).collect::<String>());
    let sort = match query.sort.as_deref() {
        Some("rating") => secflow_market::Sort::Rating,
        Some("recent") => secflow_market::Sort::Recent,
        _ => secflow_market::Sort::Downloads,
    };
    let page_number = query.page.unwrap_or(1).clamp(1, 100_000) as usize;
    let result = market
        .search(&secflow_market::Query {
            text: text.clone(),
            kind: query.kind.clone().filter(|k| !k.is_empty()),
            category: None,
            tag: None,
            sort,
            page: page_number,
            per_page: 20,
        })
        .await?;
    let body = html! {
        h1 { "Plugins" }
        form.filters action="/market" method="get" {
            input type="search" name="q" value=[text.as_deref()] placeholder="Words" aria-label="Words";
            select name="kind" aria-label="Kind" {
                option value="" { "any kind" }
                @for kind in ["detector", "enricher", "analytics", "proxy-filter", "log-analyzer", "dynamic-tester", "action"] {
                    option value=(kind) selected[query.kind.as_deref() == Some(kind)] { (kind) }
                }
            }
            select name="sort" aria-label="Sort by" {
                option value="downloads" { "most installed" }
                option value="rating" selected[sort == secflow_market::Sort::Rating] { "best rated" }
                option value="recent" selected[sort == secflow_market::Sort::Recent] { "most recent" }
            }
            button type="submit" { "Filter" }
        }
        p.count { (result.total) " plugin(s)" }
        @if result.plugins.is_empty() {
            p.empty { "Nothing matches." }
        }
        ul.results {
            @for p in &result.plugins {
                li {
                    a href={ "/market/plugins/" (p.id) } { strong { (p.name) } }
                    " "
                    span.id { (p.id) " " (p.latest_version) }
                    " "
                    span.kind { (p.kind) }
                    p { (p.description) }
                    p.meta {
                        "by " (p.publisher) " · " (p.downloads) " install(s) · " (stars(p.rating))
                        " · updated " (date(p.updated_at))
                    }
                }
            }
        }
        @if result.total > page_number * result.per_page {
            a.next href={ "/market?page=" (page_number + 1) "&sort=" (query.sort.as_deref().unwrap_or("downloads")) "&q=" (url_encode(text.as_deref().unwrap_or(""))) "&kind=" (url_encode(query.kind.as_deref().unwrap_or(""))) } { "Next page" }
        }
    };
    Ok(page(StatusCode::OK, "Plugins", body))
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn not_served() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        html! { h1 { "No marketplace here" } p { "This server does not serve a marketplace." } },
    )
}

/// A plugin's page: what it is, what it may do and why, its versions, the vetting report
/// of its latest version, its installs and ratings.
pub async fn plugin(State(state): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    let Some(market) = market(&state) else {
        return Ok(not_served());
    };
    let plugin = match market.page(&id).await {
        Ok(page) => page,
        Err(MarketError::NotFound(message)) => {
            return Ok(page(
                StatusCode::NOT_FOUND,
                "Not found",
                html! { h1 { "Not found" } p { (message) } },
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let report: Option<secflow_market::Report> = serde_json::from_value(plugin.report.clone()).ok();
    let l = &plugin.listing;
    let body = html! {
        h1 { (l.name) }
        p.id { (l.id) " " (l.latest_version) " · " span.kind { (l.kind) } " · by " (l.publisher) }
        p.description { (l.description) }
        p.meta {
            (plugin.downloads.total) " install(s), " (plugin.downloads.last_90_days) " in the last 90 days · "
            (stars(l.rating)) " (" (l.ratings) ")"
        }
        section id="capabilities" {
            h2 { "What it may do" }
            @if plugin.capabilities.is_empty() {
                p { "Nothing: no files, no network, no storage. It computes on what it is given." }
            } @else {
                table {
                    thead { tr { th { "Capability" } th { "The author's reason" } } }
                    tbody {
                        @for c in &plugin.capabilities {
                            tr { td { code { (c.label) } } td { (c.reason) } }
                        }
                    }
                }
            }
        }
        section id="versions" {
            h2 { "Versions" }
            ul {
                @for v in &plugin.versions {
                    li {
                        code { (v.version) } " · " (date(v.published_at))
                        @if v.yanked { " · " span.yanked { "yanked" } }
                    }
                }
            }
        }
        section id="vetting" {
            h2 { "Vetting report (" (plugin.latest.version) ")" }
            @if let Some(report) = &report {
                @if let Some(decision) = &report.decision {
                    p {
                        @if decision.auto_approved {
                            "Approved by the marketplace policies: "
                        } @else {
                            "Sent to review by: "
                        }
                        @for (i, p) in decision.policies.iter().enumerate() {
                            @if i > 0 { ", " }
                            code { (p) }
                        }
                    }
                }
                @if let Some(by) = &plugin.latest.decided_by {
                    p { "Decided by " code { (by) } @if let Some(reason) = &plugin.latest.decision_reason { ": " (reason) } }
                }
                table {
                    thead { tr { th { "Check" } th { "Result" } th { "Details" } } }
                    tbody {
                        @for c in &report.checks {
                            @let status = serde_json::to_value(c.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                            tr {
                                td { (c.name) }
                                td class={ "status " (status) } { (status) }
                                td { (c.summary) }
                            }
                        }
                    }
                }
                @if let Some(h) = &report.health {
                    p.meta {
                        "Health check: " (h.duration_us) " µs, peak memory " (h.peak_memory_bytes / 1024) " KiB, under "
                        (h.memory_mib) " MiB / " (h.timeout_ms) " ms / " (h.fuel) " fuel, nothing granted."
                    }
                }
            } @else {
                p { "No report stored." }
            }
        }
        section id="ratings" {
            h2 { "Ratings" }
            @if plugin.ratings.is_empty() {
                p { "No ratings yet. Hosts that installed it can rate it." }
            }
            ul {
                @for r in &plugin.ratings {
                    li {
                        strong { (r.stars) " / 5" } " · " (date(r.at)) " · version " (r.version)
                        p { (r.text) }
                    }
                }
            }
        }
    };
    Ok(page(StatusCode::OK, &l.name, body))
}
