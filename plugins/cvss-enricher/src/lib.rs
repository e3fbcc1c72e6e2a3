//! CVSS enricher: scores every finding that carries a CVSS vector (v3.0, v3.1, v4.0) with
//! the `cvss` crate (RustSec's implementation of the FIRST specifications).
//!
//! Adds `cvss.version`, `cvss.score` (one decimal) and `cvss.severity` properties; with
//! `set-severity` (the default) the finding's severity becomes the CVSS rating, keeping the
//! plugin's own in `cvss.original-severity`. An unparsable vector is reported in
//! `cvss.error` and leaves the finding otherwise unchanged.

use secflow_pdk::prelude::*;
use std::str::FromStr;

pub struct CvssEnricher;

impl Plugin for CvssEnricher {}

/// Score, rating and version of a vector, or why it cannot be scored.
pub fn score(vector: &str) -> Result<(f64, Severity, &'static str), String> {
    let parsed = cvss::Cvss::from_str(vector.trim()).map_err(|e| format!("{e}"))?;
    let version = match &parsed {
        cvss::Cvss::CvssV30(_) => "3.0",
        cvss::Cvss::CvssV31(_) => "3.1",
        cvss::Cvss::CvssV40(_) => "4.0",
        _ => return Err("only CVSS v3.0, v3.1 and v4.0 vectors are scored".into()),
    };
    let severity = match parsed.severity() {
        cvss::Severity::None => Severity::Info,
        cvss::Severity::Low => Severity::Low,
        cvss::Severity::Medium => Severity::Medium,
        cvss::Severity::High => Severity::High,
        cvss::Severity::Critical => Severity::Critical,
    };
    Ok((parsed.score(), severity, version))
}

fn name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
        Severity::Info => "none",
    }
}

fn set(props: &mut Vec<(String, String)>, key: &str, value: String) {
    props.retain(|(k, _)| k != key);
    props.push((key.to_string(), value));
}

impl Enricher for CvssEnricher {
    fn enrich(mut findings: Vec<Finding>) -> Result<Vec<Finding>, PluginError> {
        let set_severity = config()["set-severity"].as_bool().unwrap_or(true);
        for f in &mut findings {
            let Some(vector) = f.cvss_vector.clone() else {
                continue;
            };
            match score(&vector) {
                Ok((value, severity, version)) => {
                    set(&mut f.properties, "cvss.version", version.to_string());
                    set(&mut f.properties, "cvss.score", format!("{value:.1}"));
                    set(
                        &mut f.properties,
                        "cvss.severity",
                        name(severity).to_string(),
                    );
                    if set_severity && f.severity != severity {
                        set(
                            &mut f.properties,
                            "cvss.original-severity",
                            name(f.severity).to_string(),
                        );
                        f.severity = severity;
                    }
                }
                Err(e) => set(&mut f.properties, "cvss.error", format!("{vector}: {e}")),
            }
        }
        Ok(findings)
    }
}

secflow_pdk::export_enricher!(CvssEnricher);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_v31_and_v40() {
        let (s, sev, v) = score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H").unwrap();
        assert_eq!((s, v), (10.0, "3.1"));
        assert!(matches!(sev, Severity::Critical));
        let (s, sev, v) = score("CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N").unwrap();
        assert_eq!(v, "3.1");
        assert!(s > 0.0 && s < 4.0, "{s}");
        assert!(matches!(sev, Severity::Low));
        let (s, _, v) =
            score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N").unwrap();
        assert_eq!((s, v), (9.3, "4.0"));
        assert!(score("CVSS:3.1/AV:X").is_err());
        assert!(score("not a vector").is_err());
    }
}
