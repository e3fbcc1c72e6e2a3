//! CWE enricher: describes every CWE id a finding carries from MITRE's CWE List (4.15),
//! embedded offline in `data/cwe.tsv` (weaknesses, categories and views; see `data/NOTICE`
//! and `data/generate.py`).
//!
//! For each known id it sets `cwe.<id>.name`, `cwe.<id>.description` (unless
//! `include-description` is false) and `cwe.<id>.url`. Ids missing from the catalog get no
//! such properties; they are listed, comma-separated, in `cwe.unknown` (removed when there are
//! none). Every id also becomes a `CWE-<id>` tag unless the finding already has it (in any
//! case). Existing keys are replaced in place, so running the plugin twice gives the same
//! output; with `include-description = false` existing descriptions are left as they are.

use secflow_pdk::prelude::*;
use std::sync::OnceLock;

/// The catalog: `id TAB name TAB description` lines sorted by id; `#` lines are comments.
pub const DATA: &str = include_str!("../data/cwe.tsv");

/// One catalog entry, borrowing from [`DATA`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub id: u32,
    pub name: &'static str,
    pub description: &'static str,
}

/// Parses the catalog into entries sorted by id, or says which line is malformed.
pub fn parse(data: &'static str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::with_capacity(1500);
    for (n, line) in data.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut cols = line.splitn(3, '\t');
        let (Some(id), Some(name), Some(description)) = (cols.next(), cols.next(), cols.next())
        else {
            return Err(format!("cwe.tsv line {}: expected 3 columns", n + 1));
        };
        let id = id
            .parse()
            .map_err(|_| format!("cwe.tsv line {}: bad id {id:?}", n + 1))?;
        entries.push(Entry {
            id,
            name,
            description,
        });
    }
    // The generator writes sorted lines; sorting again is cheap and keeps lookups correct.
    entries.sort_unstable_by_key(|e| e.id);
    Ok(entries)
}

/// The parsed catalog, built on first use (once per instance).
pub fn catalog() -> &'static [Entry] {
    static CATALOG: OnceLock<Vec<Entry>> = OnceLock::new();
    CATALOG.get_or_init(|| parse(DATA).expect("embedded cwe.tsv is well-formed"))
}

/// The catalog entry of a CWE id.
pub fn lookup(id: u32) -> Option<&'static Entry> {
    let c = catalog();
    c.binary_search_by_key(&id, |e| e.id).ok().map(|i| &c[i])
}

/// The page of a CWE id on MITRE's site.
pub fn url(id: u32) -> String {
    format!("https://cwe.mitre.org/data/definitions/{id}.html")
}

/// Sets `key` to `value`: replaces the first occurrence in place, drops any later duplicate.
fn set(props: &mut Vec<(String, String)>, key: String, value: &str) {
    match props.iter().position(|(k, _)| *k == key) {
        Some(i) => {
            if props[i].1 != value {
                props[i].1 = value.to_string();
            }
            let mut seen = 0;
            props.retain(|(k, _)| {
                if *k == key {
                    seen += 1;
                    seen == 1
                } else {
                    true
                }
            });
        }
        None => props.push((key, value.to_string())),
    }
}

/// Enriches one finding (the plugin's whole logic, free of host calls so it runs natively).
pub fn enrich_finding(f: &mut Finding, include_description: bool) {
    let mut ids: Vec<u32> = Vec::with_capacity(f.cwe_ids.len());
    for &id in &f.cwe_ids {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let mut unknown: Vec<String> = Vec::new();
    for &id in &ids {
        match lookup(id) {
            Some(e) => {
                set(&mut f.properties, format!("cwe.{id}.name"), e.name);
                if include_description {
                    set(
                        &mut f.properties,
                        format!("cwe.{id}.description"),
                        e.description,
                    );
                }
                set(&mut f.properties, format!("cwe.{id}.url"), &url(id));
            }
            None => unknown.push(id.to_string()),
        }
        let tag = format!("CWE-{id}");
        if !f.tags.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
            f.tags.push(tag);
        }
    }
    if unknown.is_empty() {
        f.properties.retain(|(k, _)| k != "cwe.unknown");
    } else {
        set(&mut f.properties, "cwe.unknown".into(), &unknown.join(","));
    }
}

/// Enriches every finding; see [`enrich_finding`].
pub fn enrich_all(mut findings: Vec<Finding>, include_description: bool) -> Vec<Finding> {
    for f in &mut findings {
        enrich_finding(f, include_description);
    }
    findings
}

pub struct CweEnricher;

impl Plugin for CweEnricher {}

impl Enricher for CweEnricher {
    fn enrich(findings: Vec<Finding>) -> Result<Vec<Finding>, PluginError> {
        let include_description = config()["include-description"].as_bool().unwrap_or(true);
        Ok(enrich_all(findings, include_description))
    }
}

secflow_pdk::export_enricher!(CweEnricher);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn with_cwes(ids: &[u32]) -> Finding {
        Finding {
            cwe_ids: ids.to_vec(),
            ..finding("r", Severity::High, "t", "m".into())
        }
    }

    fn prop<'a>(f: &'a Finding, key: &str) -> Option<&'a str> {
        f.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn data_parses_completely_without_duplicates() {
        let entries = parse(DATA).unwrap();
        assert!(entries.len() >= 900, "{} entries", entries.len());
        let data_lines = DATA
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count();
        assert_eq!(entries.len(), data_lines);
        for w in entries.windows(2) {
            assert!(w[0].id < w[1].id, "duplicate or unsorted id {}", w[1].id);
        }
        for e in &entries {
            assert!(!e.name.is_empty(), "CWE-{} has no name", e.id);
            assert!(!e.name.contains('\t') && !e.description.contains('\t'));
            assert!(e.description.chars().count() <= 300, "CWE-{}", e.id);
        }
        assert_eq!(catalog().len(), entries.len());
    }

    #[test]
    fn known_ids() {
        let mut f = with_cwes(&[79, 89, 798, 327]);
        enrich_finding(&mut f, true);
        assert_eq!(
            prop(&f, "cwe.79.name"),
            Some(
                "Improper Neutralization of Input During Web Page Generation ('Cross-site Scripting')"
            )
        );
        assert_eq!(
            prop(&f, "cwe.89.name"),
            Some(
                "Improper Neutralization of Special Elements used in an SQL Command ('SQL Injection')"
            )
        );
        assert_eq!(
            prop(&f, "cwe.798.name"),
            Some("Use of Hard-coded Credentials")
        );
        assert_eq!(
            prop(&f, "cwe.327.name"),
            Some("Use of a Broken or Risky Cryptographic Algorithm")
        );
        assert!(
            prop(&f, "cwe.798.description")
                .unwrap()
                .starts_with("The product contains hard-coded credentials")
        );
        assert_eq!(
            prop(&f, "cwe.79.url"),
            Some("https://cwe.mitre.org/data/definitions/79.html")
        );
        assert_eq!(prop(&f, "cwe.unknown"), None);
        assert_eq!(f.tags, ["CWE-79", "CWE-89", "CWE-798", "CWE-327"]);
        assert_eq!(f.properties.len(), 12);
        // Categories and views are in the catalog too.
        assert_eq!(lookup(16).unwrap().name, "Configuration");
        assert_eq!(lookup(1000).unwrap().name, "Research Concepts");
    }

    #[test]
    fn unknown_ids_are_listed_not_named() {
        let mut f = with_cwes(&[0, 79, 99999, 0]);
        enrich_finding(&mut f, true);
        assert_eq!(prop(&f, "cwe.unknown"), Some("0,99999"));
        assert_eq!(prop(&f, "cwe.0.name"), None);
        assert_eq!(prop(&f, "cwe.99999.url"), None);
        assert!(prop(&f, "cwe.79.name").is_some());
        assert_eq!(f.tags, ["CWE-0", "CWE-79", "CWE-99999"]);
        // Once the id is gone, so is the stale list.
        f.cwe_ids = vec![79];
        enrich_finding(&mut f, true);
        assert_eq!(prop(&f, "cwe.unknown"), None);
    }

    #[test]
    fn idempotent_and_replaces_existing_keys() {
        let mut f = with_cwes(&[89, 12345]);
        f.tags = vec!["cwe-89".into(), "web".into()];
        f.properties = vec![
            ("cwe.89.name".into(), "stale".into()),
            ("other".into(), "x".into()),
            ("cwe.89.name".into(), "duplicate".into()),
        ];
        let once = enrich_all(vec![f], true);
        let twice = enrich_all(once.clone(), true);
        assert_eq!(format!("{once:?}"), format!("{twice:?}"));
        let f = &once[0];
        assert_eq!(f.tags, ["cwe-89", "web", "CWE-12345"]);
        assert_eq!(f.properties[0].0, "cwe.89.name");
        assert!(f.properties[0].1.contains("SQL Injection"));
        assert_eq!(
            f.properties
                .iter()
                .filter(|(k, _)| k == "cwe.89.name")
                .count(),
            1
        );
        assert_eq!(f.properties[1], ("other".into(), "x".into()));
    }

    #[test]
    fn description_can_be_left_out() {
        let mut f = with_cwes(&[327]);
        enrich_finding(&mut f, false);
        assert_eq!(prop(&f, "cwe.327.description"), None);
        assert!(prop(&f, "cwe.327.name").is_some());
        assert!(prop(&f, "cwe.327.url").is_some());
    }

    #[test]
    fn findings_without_cwes_are_untouched() {
        let f = finding("r", Severity::Low, "t", "m".into());
        let out = enrich_all(vec![f.clone()], true);
        assert_eq!(format!("{out:?}"), format!("{:?}", vec![f]));
    }

    /// Timings (meaningful with `--release`):
    /// `cargo test -p cwe-enricher --release -- --ignored --nocapture timings`
    #[test]
    #[ignore]
    fn timings() {
        let runs = 50;
        let start = Instant::now();
        for _ in 0..runs {
            std::hint::black_box(parse(std::hint::black_box(DATA)).unwrap());
        }
        let init = start.elapsed() / runs;
        let ids = [79, 89, 798, 327, 22, 99999, 1004, 16];
        let findings: Vec<Finding> = (0..1000)
            .map(|i| with_cwes(&[ids[i % ids.len()], ids[(i + 3) % ids.len()]]))
            .collect();
        catalog();
        let mut enrich = std::time::Duration::ZERO;
        let mut out = Vec::new();
        for _ in 0..runs {
            let input = std::hint::black_box(findings.clone());
            let start = Instant::now();
            let result = enrich_all(input, true);
            enrich += start.elapsed();
            out = result;
        }
        let enrich = enrich / runs;
        let start = Instant::now();
        for _ in 0..runs {
            for i in 0..1000u32 {
                std::hint::black_box(lookup(std::hint::black_box(ids[i as usize % 8])));
            }
        }
        let lookups = start.elapsed() / runs;
        println!(
            "init (parse {} entries): {init:?}; 1000 lookups: {lookups:?}; enrich 1000 findings \
             (2 ids each): {enrich:?}",
            catalog().len()
        );
        assert_eq!(out.len(), 1000);
    }
}
