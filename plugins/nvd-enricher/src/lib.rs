//! NVD enricher: looks up every distinct CVE among the findings in the NVD CVE API 2.0
//! (`GET {base-url}?cveId=CVE-YYYY-NNNN`, optional `apiKey` header) and adds what it says.
//!
//! On each finding carrying a CVE that the NVD knows:
//! - `cvss_vector`, when the finding has none: the NVD's CVSS v3.1 vector, else v4.0, else
//!   v3.0 (within a version the `Primary` score first), so that the CVSS enricher, which runs
//!   after this one, scores it;
//! - `cwe_ids`: the CWEs of every weakness entry are added (deduplicated; `NVD-CWE-Other`
//!   and `NVD-CWE-noinfo` are left out);
//! - properties `nvd.cve`, `nvd.description` (English, at most 500 characters),
//!   `nvd.published`, `nvd.last-modified`, `nvd.status`, `nvd.url`, `nvd.references` (up to
//!   five URLs, vendor advisories and patches first, space-separated), and for the chosen
//!   metric `nvd.cvss-vector`, `nvd.cvss-version`, `nvd.cvss-score`, `nvd.cvss-severity`,
//!   `nvd.cvss-source`.
//!
//! With several CVEs on one finding, the first one the NVD knows gives the properties and the
//! vector; the CWEs of all of them are added. A CVE that could not be looked up (HTTP error,
//! a status other than 200, a response that is not NVD JSON, not in the NVD, not queried) is
//! logged as a warning and described in `nvd.error` on its findings; the others go on. A 403
//! or 429 (the NVD's rate limit, or a refused API key), a request the host denies, three
//! transport failures in a row, `max-requests` or `time-budget-seconds` stop further
//! requests.

pub mod nvd;

use nvd::{NvdRecord, Parsed};
use secflow_pdk::prelude::*;
use std::collections::HashMap;
use std::time::Duration;

pub const DEFAULT_BASE_URL: &str = "https://services.nvd.nist.gov/rest/json/cves/2.0";
pub const DEFAULT_MAX_REQUESTS: u32 = 20;
pub const MAX_MAX_REQUESTS: u32 = 100;
pub const DEFAULT_TIME_BUDGET_SECONDS: u64 = 60;
pub const MAX_TIME_BUDGET_SECONDS: u64 = 120;
/// Transport failures in a row after which the NVD is taken to be unreachable.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 3;
/// Most reference URLs copied into `nvd.references`.
pub const MAX_REFERENCES: usize = 5;

pub struct NvdEnricher;

/// The plugin's configuration, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub base_url: String,
    pub api_key: Option<String>,
    pub max_requests: u32,
    pub time_budget: Duration,
}

impl Settings {
    pub fn from_config(config: &Value) -> Result<Settings, PluginError> {
        let base_url = match config.get("base-url") {
            None | Some(Value::Null) => DEFAULT_BASE_URL.to_string(),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(_) => return Err(invalid_config("`base-url` must be a string")),
        };
        let rest = base_url
            .strip_prefix("https://")
            .or_else(|| base_url.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/'))
            || base_url.contains(['#', ' '])
            || base_url.chars().any(char::is_control)
        {
            return Err(invalid_config(format!(
                "`base-url` must be an http(s) URL such as {DEFAULT_BASE_URL}"
            )));
        }
        let api_key = match config.get("api-key") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s))
                if s.len() <= 256 && s.trim().bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Some(s.trim().to_string())
            }
            Some(_) => {
                return Err(invalid_config(
                    "`api-key` must be a string of printable ASCII characters (the NVD API key)",
                ));
            }
        };
        let max_requests = match config.get("max-requests") {
            None | Some(Value::Null) => DEFAULT_MAX_REQUESTS,
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= u64::from(MAX_MAX_REQUESTS))
                .map(|n| n as u32)
                .ok_or_else(|| {
                    invalid_config(format!(
                        "`max-requests` must be an integer from 0 to {MAX_MAX_REQUESTS}"
                    ))
                })?,
        };
        let time_budget = match config.get("time-budget-seconds") {
            None | Some(Value::Null) => DEFAULT_TIME_BUDGET_SECONDS,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_TIME_BUDGET_SECONDS).contains(n))
                .ok_or_else(|| {
                    invalid_config(format!(
                        "`time-budget-seconds` must be an integer from 1 to {MAX_TIME_BUDGET_SECONDS}"
                    ))
                })?,
        };
        Ok(Settings {
            base_url,
            api_key,
            max_requests,
            time_budget: Duration::from_secs(time_budget),
        })
    }

    /// The request URL for one (canonical) CVE id.
    pub fn url(&self, cve: &str) -> String {
        let sep = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}cveId={cve}", self.base_url)
    }
}

/// `CVE-YYYY-NNNN...` in canonical upper case, or `None` for anything else (so nothing but
/// a well-formed id ever reaches a URL).
pub fn canonical_cve(id: &str) -> Option<String> {
    let id = id.trim().to_ascii_uppercase();
    let (year, seq) = id.strip_prefix("CVE-")?.split_once('-')?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (year.len() == 4 && digits(year) && (4..=12).contains(&seq.len()) && digits(seq)).then_some(id)
}

/// The distinct CVE ids of the findings, in order of first appearance.
pub fn distinct_cves(findings: &[Finding]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in findings.iter().flat_map(|f| &f.cve_ids) {
        if let Some(id) = canonical_cve(id)
            && !out.contains(&id)
        {
            out.push(id);
        }
    }
    out
}

/// One HTTP exchange, as the plugin needs it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// The NVD's `message` header (it explains 4xx answers), if any.
    pub message: Option<String>,
}

#[derive(Debug, Clone)]
pub enum FetchError {
    /// The host refused the request (not granted, internal address, request budget spent).
    Denied(String),
    /// Anything else: DNS, connection, TLS, timeout, a body over the host's size limit.
    Transport(String),
}

/// What became of one CVE.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Found(Box<NvdRecord>),
    NotFound,
    Failed(String),
    NotQueried(String),
}

impl Outcome {
    fn error(&self) -> Option<String> {
        match self {
            Outcome::Found(_) => None,
            Outcome::NotFound => Some("not found in the NVD".to_string()),
            Outcome::Failed(why) | Outcome::NotQueried(why) => Some(why.clone()),
        }
    }
}

/// Looks up `cves` one by one with `fetch(url)`. `out_of_time()` is asked before each
/// request. Returns the outcome per CVE and the warnings to log.
pub fn query_all(
    cves: &[String],
    settings: &Settings,
    mut fetch: impl FnMut(&str) -> Result<Reply, FetchError>,
    mut out_of_time: impl FnMut() -> bool,
) -> (HashMap<String, Outcome>, Vec<String>) {
    let mut outcomes = HashMap::new();
    let mut warnings = Vec::new();
    let mut stop: Option<String> = None;
    let mut sent = 0u32;
    let mut failures_in_a_row = 0u32;
    for id in cves {
        if stop.is_none() && sent >= settings.max_requests {
            stop = Some(format!(
                "not queried: max-requests ({}) reached",
                settings.max_requests
            ));
        }
        if stop.is_none() && out_of_time() {
            stop = Some(format!(
                "not queried: time-budget-seconds ({}) spent",
                settings.time_budget.as_secs()
            ));
        }
        if let Some(why) = &stop {
            outcomes.insert(id.clone(), Outcome::NotQueried(why.clone()));
            continue;
        }
        sent += 1;
        let outcome = match fetch(&settings.url(id)) {
            Ok(reply) => {
                failures_in_a_row = 0;
                let message = reply
                    .message
                    .as_deref()
                    .map(|m| format!(" ({})", nvd::truncate(m.trim(), 200)))
                    .unwrap_or_default();
                match reply.status {
                    200 => match nvd::parse_response(&reply.body, id) {
                        Ok(Parsed::Found(record)) => Outcome::Found(record),
                        Ok(Parsed::NotFound) => Outcome::NotFound,
                        Err(e) => Outcome::Failed(format!("unusable NVD response: {e}")),
                    },
                    status @ (403 | 429) => {
                        stop = Some(format!(
                            "not queried: the NVD refused an earlier request with HTTP {status}"
                        ));
                        Outcome::Failed(format!(
                            "HTTP {status}{message}: rate limited by the NVD or the API key was refused; no more requests are sent"
                        ))
                    }
                    status => Outcome::Failed(format!("HTTP {status}{message}")),
                }
            }
            Err(FetchError::Denied(why)) => {
                stop = Some("not queried: the host denied an earlier request".to_string());
                Outcome::Failed(format!("request denied by the host: {why}"))
            }
            Err(FetchError::Transport(why)) => {
                failures_in_a_row += 1;
                if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES {
                    stop = Some(format!(
                        "not queried: {MAX_CONSECUTIVE_FAILURES} requests in a row failed"
                    ));
                }
                Outcome::Failed(format!("request failed: {}", nvd::truncate(&why, 300)))
            }
        };
        if let Some(error) = outcome.error()
            && !matches!(outcome, Outcome::NotFound)
        {
            warnings.push(format!("NVD lookup of {id}: {error}"));
        }
        outcomes.insert(id.clone(), outcome);
    }
    let skipped = outcomes
        .values()
        .filter(|o| matches!(o, Outcome::NotQueried(_)))
        .count();
    if let (Some(why), true) = (&stop, skipped > 0) {
        warnings.push(format!("{skipped} CVE(s) {why}"));
    }
    (outcomes, warnings)
}

fn set(props: &mut Vec<(String, String)>, key: &str, value: impl Into<String>) {
    let value = value.into();
    props.retain(|(k, _)| k != key);
    props.push((key.to_string(), value));
}

/// Up to [`MAX_REFERENCES`] URLs: vendor advisories first, then patches, then the rest, each
/// group in the NVD's order.
fn pick_references(record: &NvdRecord) -> Vec<&str> {
    let rank = |tags: &[String]| {
        if tags.iter().any(|t| t == "Vendor Advisory") {
            0
        } else if tags.iter().any(|t| t == "Patch") {
            1
        } else {
            2
        }
    };
    let mut refs: Vec<(usize, &str)> = record
        .references
        .iter()
        .filter(|r| !r.url.contains(' '))
        .map(|r| (rank(&r.tags), r.url.as_str()))
        .collect();
    refs.sort_by_key(|(rank, _)| *rank);
    refs.into_iter()
        .map(|(_, url)| url)
        .take(MAX_REFERENCES)
        .collect()
}

/// Writes the outcomes onto the findings. Pure.
pub fn apply(findings: &mut [Finding], outcomes: &HashMap<String, Outcome>) {
    for f in findings.iter_mut() {
        let mut ids: Vec<String> = Vec::new();
        for id in f.cve_ids.iter().filter_map(|c| canonical_cve(c)) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let mut described = false;
        let mut errors = Vec::new();
        for id in &ids {
            let Some(outcome) = outcomes.get(id) else {
                continue;
            };
            let Outcome::Found(record) = outcome else {
                errors.extend(outcome.error().map(|e| format!("{id}: {e}")));
                continue;
            };
            for cwe in &record.cwe_ids {
                if !f.cwe_ids.contains(cwe) {
                    f.cwe_ids.push(*cwe);
                }
            }
            if f.cvss_vector.is_none()
                && let Some(cvss) = &record.cvss
            {
                f.cvss_vector = Some(cvss.vector.clone());
            }
            if described {
                continue;
            }
            described = true;
            let p = &mut f.properties;
            set(p, "nvd.cve", id.clone());
            set(
                p,
                "nvd.url",
                format!("https://nvd.nist.gov/vuln/detail/{id}"),
            );
            for (key, value) in [
                ("nvd.description", &record.description),
                ("nvd.published", &record.published),
                ("nvd.last-modified", &record.last_modified),
                ("nvd.status", &record.status),
            ] {
                if let Some(value) = value {
                    set(p, key, value.clone());
                }
            }
            let refs = pick_references(record);
            if !refs.is_empty() {
                set(p, "nvd.references", refs.join(" "));
            }
            if let Some(cvss) = &record.cvss {
                set(p, "nvd.cvss-vector", cvss.vector.clone());
                set(p, "nvd.cvss-version", cvss.version);
                if let Some(score) = cvss.base_score {
                    set(p, "nvd.cvss-score", format!("{score:.1}"));
                }
                if let Some(severity) = &cvss.base_severity {
                    set(p, "nvd.cvss-severity", severity.to_ascii_lowercase());
                }
                if let Some(source) = &cvss.source {
                    set(p, "nvd.cvss-source", source.clone());
                }
            }
        }
        if !errors.is_empty() {
            set(&mut f.properties, "nvd.error", errors.join("; "));
        }
    }
}

/// The real fetcher: one GET through the SDK's `wasi:http` client.
#[cfg(target_arch = "wasm32")]
fn fetch(settings: &Settings, url: &str) -> Result<Reply, FetchError> {
    use secflow_pdk::http::{self, HttpError};
    let headers: Vec<(&str, &str)> = settings
        .api_key
        .as_deref()
        .map(|key| ("apiKey", key))
        .into_iter()
        .collect();
    match http::request("GET", url, &headers, None) {
        Ok(r) => Ok(Reply {
            status: r.status,
            message: r.header("message"),
            body: r.body,
        }),
        Err(HttpError::Denied(why)) => Err(FetchError::Denied(why)),
        Err(e) => Err(FetchError::Transport(e.to_string())),
    }
}

impl Plugin for NvdEnricher {
    fn init(config: &Value) -> Result<(), PluginError> {
        Settings::from_config(config).map(|_| ())
    }
}

#[cfg(target_arch = "wasm32")]
impl Enricher for NvdEnricher {
    fn enrich(mut findings: Vec<Finding>) -> Result<Vec<Finding>, PluginError> {
        let cves = distinct_cves(&findings);
        if cves.is_empty() {
            return Ok(findings);
        }
        let settings = Settings::from_config(&config())?;
        let started = std::time::Instant::now();
        let (outcomes, warnings) = query_all(
            &cves,
            &settings,
            |url| fetch(&settings, url),
            || started.elapsed() >= settings.time_budget,
        );
        for w in &warnings {
            log::warn(w);
        }
        let found = outcomes
            .values()
            .filter(|o| matches!(o, Outcome::Found(_)))
            .count();
        log::info(&format!(
            "NVD: {found} of {} CVE(s) found in {} ms",
            cves.len(),
            started.elapsed().as_millis()
        ));
        apply(&mut findings, &outcomes);
        Ok(findings)
    }
}

// Exported only when building the component: the native cdylib that `cargo test` builds for
// the tests in `tests/` cannot carry the component's export names.
#[cfg(target_arch = "wasm32")]
secflow_pdk::export_enricher!(NvdEnricher);
