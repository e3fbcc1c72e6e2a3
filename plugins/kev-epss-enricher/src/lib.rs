//! KEV and EPSS enricher: marks findings whose CVEs are in CISA's Known Exploited
//! Vulnerabilities catalog and adds FIRST's EPSS exploit-prediction scores.
//!
//! Both feeds are files the user downloads and grants read access to, under `/feeds` in the
//! sandbox (no network): `known_exploited_vulnerabilities.json` (CISA KEV, JSON) and
//! `epss_scores-current.csv` (FIRST EPSS, plain-text CSV: gunzip the published `.csv.gz`).
//! The names are configurable (`kev-file`, `epss-file`: a name inside `/feeds` or an absolute
//! guest path). A missing file is skipped with a warning; a malformed one fails the call with
//! `invalid-input` naming the file and the line or field. Files over 64 MiB are refused.
//!
//! For each finding with CVE ids:
//! - KEV (first of its CVEs in the catalog): `kev.known-exploited = "true"`, `kev.cve`,
//!   `kev.date-added`, `kev.due-date`, `kev.ransomware`, `kev.required-action`,
//!   `kev.vulnerability-name`, `kev.vendor-project`, `kev.product`; tag `known-exploited`;
//!   severity one step up and at least `high` (the old one kept in `kev.original-severity`).
//! - EPSS (its CVE with the highest score): `epss.score`, `epss.percentile` (as written in
//!   the file), `epss.cve`, `epss.score-date`; at or above `epss-threshold` (default 0.5):
//!   tag `likely-exploited` and severity at least `medium` (old one in
//!   `epss.original-severity`).

pub mod feeds;

use feeds::{Epss, Feed, Kev, MAX_FILE_BYTES};
use secflow_pdk::prelude::*;
use std::cell::OnceCell;
use std::path::{Component, Path, PathBuf};

/// Where the granted feed directory appears inside the sandbox.
pub const FEEDS_DIR: &str = "/feeds";
pub const DEFAULT_KEV_FILE: &str = "known_exploited_vulnerabilities.json";
pub const DEFAULT_EPSS_FILE: &str = "epss_scores-current.csv";
pub const DEFAULT_EPSS_THRESHOLD: f64 = 0.5;

pub struct KevEpssEnricher;

/// The plugin's configuration, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub kev_file: PathBuf,
    pub epss_file: PathBuf,
    pub epss_threshold: f64,
}

fn feed_path(config: &Value, key: &str, default: &str) -> Result<PathBuf, PluginError> {
    let name = match config.get(key) {
        None | Some(Value::Null) => default,
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
        Some(_) => {
            return Err(invalid_config(format!(
                "`{key}` must be a non-empty string"
            )));
        }
    };
    let path = Path::new(name);
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
    {
        return Err(invalid_config(format!(
            "`{key}` must not contain `..`: give a file name inside {FEEDS_DIR} or an absolute path"
        )));
    }
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        Path::new(FEEDS_DIR).join(path)
    })
}

impl Settings {
    pub fn from_config(config: &Value) -> Result<Settings, PluginError> {
        let epss_threshold = match config.get("epss-threshold") {
            None | Some(Value::Null) => DEFAULT_EPSS_THRESHOLD,
            Some(v) => v
                .as_f64()
                .filter(|t| (0.0..=1.0).contains(t))
                .ok_or_else(|| invalid_config("`epss-threshold` must be a number from 0 to 1"))?,
        };
        Ok(Settings {
            kev_file: feed_path(config, "kev-file", DEFAULT_KEV_FILE)?,
            epss_file: feed_path(config, "epss-file", DEFAULT_EPSS_FILE)?,
            epss_threshold,
        })
    }
}

/// Both feeds; either may be absent.
#[derive(Debug, Default)]
pub struct Feeds {
    pub kev: Option<Kev>,
    pub epss: Option<Epss>,
}

fn load_one<T>(
    path: &Path,
    what: &str,
    parse: fn(&[u8]) -> Result<T, String>,
    warnings: &mut Vec<String>,
) -> Result<Option<T>, PluginError> {
    let shown = path.display();
    match feeds::read_feed(path, MAX_FILE_BYTES) {
        Ok(Feed::Missing(why)) => {
            warnings.push(format!("{what} file {shown} not readable ({why}); skipped"));
            Ok(None)
        }
        Ok(Feed::Data(bytes)) => parse(&bytes)
            .map(Some)
            .map_err(|e| invalid_input(format!("{what} file {shown}: {e}"))),
        Err(e) => Err(invalid_input(format!("{what} file {shown}: {e}"))),
    }
}

/// Reads and parses both feeds. Missing files become warnings (returned, for the caller to
/// log); malformed or oversized ones are `invalid-input` errors naming the file.
pub fn load_feeds(settings: &Settings) -> Result<(Feeds, Vec<String>), PluginError> {
    let mut warnings = Vec::new();
    let kev = load_one(&settings.kev_file, "KEV", feeds::parse_kev, &mut warnings)?;
    let epss = load_one(
        &settings.epss_file,
        "EPSS",
        feeds::parse_epss,
        &mut warnings,
    )?;
    Ok((Feeds { kev, epss }, warnings))
}

fn rank(s: Severity) -> u8 {
    match s {
        Severity::Info => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

fn from_rank(r: u8) -> Severity {
    match r {
        0 => Severity::Info,
        1 => Severity::Low,
        2 => Severity::Medium,
        3 => Severity::High,
        _ => Severity::Critical,
    }
}

pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

fn set(props: &mut Vec<(String, String)>, key: &str, value: impl Into<String>) {
    let value = value.into();
    props.retain(|(k, _)| k != key);
    props.push((key.to_string(), value));
}

fn add_tag(tags: &mut Vec<String>, tag: &str) {
    if !tags.iter().any(|t| t == tag) {
        tags.push(tag.to_string());
    }
}

fn get<'a>(props: &'a [(String, String)], key: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn parse_severity(name: &str) -> Option<Severity> {
    [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]
    .into_iter()
    .find(|s| severity_name(*s) == name)
}

/// Raises `f`'s severity to `to` if that is higher, recording the old one under `key`
/// (unless an earlier run already recorded it).
fn raise(f: &mut Finding, to: Severity, key: &str) {
    if rank(to) > rank(f.severity) {
        if get(&f.properties, key).is_none() {
            set(&mut f.properties, key, severity_name(f.severity));
        }
        f.severity = to;
    }
}

/// Adds the KEV and EPSS data to every finding that has CVE ids. Pure.
pub fn apply(findings: &mut [Finding], feeds: &Feeds, epss_threshold: f64) {
    for f in findings.iter_mut() {
        let keys: Vec<feeds::CveKey> = f.cve_ids.iter().filter_map(|c| feeds::cve_key(c)).collect();
        if keys.is_empty() {
            continue;
        }
        if let Some(entry) = feeds
            .kev
            .as_ref()
            .and_then(|kev| keys.iter().find_map(|k| kev.entries.get(k)))
        {
            let p = &mut f.properties;
            set(p, "kev.known-exploited", "true");
            set(p, "kev.cve", entry.cve.clone());
            set(p, "kev.date-added", entry.date_added.clone());
            for (key, value) in [
                ("kev.due-date", &entry.due_date),
                ("kev.ransomware", &entry.ransomware),
                ("kev.required-action", &entry.required_action),
                ("kev.vulnerability-name", &entry.vulnerability_name),
                ("kev.vendor-project", &entry.vendor_project),
                ("kev.product", &entry.product),
            ] {
                if !value.is_empty() {
                    set(p, key, value.clone());
                }
            }
            add_tag(&mut f.tags, "known-exploited");
            // One step up from the severity before any KEV raise (so a second run does not
            // raise again), and at least high.
            let base = get(&f.properties, "kev.original-severity")
                .and_then(parse_severity)
                .unwrap_or(f.severity);
            let to = from_rank((rank(base) + 1).max(rank(Severity::High)));
            raise(f, to, "kev.original-severity");
        }
        if let Some(epss) = &feeds.epss {
            let best = keys
                .iter()
                .filter_map(|k| epss.entries.get(k).map(|e| (*k, e)))
                .fold(
                    None,
                    |best: Option<(feeds::CveKey, &feeds::EpssEntry)>, (k, e)| match best {
                        Some((_, b)) if b.score.value >= e.score.value => best,
                        _ => Some((k, e)),
                    },
                );
            if let Some((key, entry)) = best {
                let p = &mut f.properties;
                set(p, "epss.score", entry.score.text());
                set(p, "epss.percentile", entry.percentile.text());
                set(p, "epss.cve", feeds::cve_string(key));
                if let Some(date) = &epss.score_date {
                    set(p, "epss.score-date", date.clone());
                }
                if entry.score.value >= epss_threshold {
                    add_tag(&mut f.tags, "likely-exploited");
                    raise(f, Severity::Medium, "epss.original-severity");
                }
            }
        }
    }
}

thread_local! {
    /// The parsed feeds, loaded on the first `enrich` call of this instance.
    static FEEDS: OnceCell<Feeds> = const { OnceCell::new() };
}

impl Plugin for KevEpssEnricher {
    fn init(config: &Value) -> Result<(), PluginError> {
        Settings::from_config(config).map(|_| ())
    }
}

impl Enricher for KevEpssEnricher {
    fn enrich(mut findings: Vec<Finding>) -> Result<Vec<Finding>, PluginError> {
        if findings.iter().all(|f| f.cve_ids.is_empty()) {
            return Ok(findings);
        }
        let settings = Settings::from_config(&config())?;
        FEEDS.with(|cell| {
            if cell.get().is_none() {
                let (loaded, warnings) = load_feeds(&settings)?;
                for w in &warnings {
                    log::warn(w);
                }
                log::info(&format!(
                    "loaded {} KEV entries (catalog {}) and {} EPSS scores (score date {})",
                    loaded.kev.as_ref().map_or(0, |k| k.entries.len()),
                    loaded
                        .kev
                        .as_ref()
                        .and_then(|k| k.catalog_version.as_deref())
                        .unwrap_or("n/a"),
                    loaded.epss.as_ref().map_or(0, |e| e.entries.len()),
                    loaded
                        .epss
                        .as_ref()
                        .and_then(|e| e.score_date.as_deref())
                        .unwrap_or("n/a"),
                ));
                let _ = cell.set(loaded);
            }
            let feeds = cell.get().expect("set above");
            apply(&mut findings, feeds, settings.epss_threshold);
            Ok(findings)
        })
    }
}

// Exported only when building the component: the native cdylib that `cargo test` builds for
// the tests in `tests/` cannot carry the component's export names.
#[cfg(target_arch = "wasm32")]
secflow_pdk::export_enricher!(KevEpssEnricher);
