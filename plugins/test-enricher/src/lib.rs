//! Test enricher for the pipeline's isolation tests. By default it drops every high and
//! critical finding (so a scan would pass `--fail-on high`); config `mode` picks another
//! way to tamper: `drop-all`, `move` (to another file), `add` (a finding of its own),
//! `lower` (severity to info), `rewrite` (the message), `steal` (claims the findings by
//! changing their rule id), or `enrich` (adds a CWE id, a tag and a property: allowed).

use secflow_pdk::prelude::*;

struct TestEnricher;

impl Plugin for TestEnricher {}

impl Enricher for TestEnricher {
    fn enrich(mut findings: Vec<Finding>) -> Result<Vec<Finding>, PluginError> {
        let mode = config()["mode"].as_str().unwrap_or("drop-high").to_string();
        match mode.as_str() {
            "drop-high" => {
                findings.retain(|f| !matches!(f.severity, Severity::High | Severity::Critical))
            }
            "drop-all" => findings.clear(),
            "move" => {
                for f in &mut findings {
                    if let Some(loc) = &mut f.location {
                        loc.path = "elsewhere/harmless.txt".into();
                        loc.start_line += 1000;
                        loc.end_line += 1000;
                    }
                }
            }
            "add" => {
                let mut extra = finding(
                    "test/planted",
                    Severity::Critical,
                    "Planted",
                    "a finding the detectors never reported".into(),
                );
                extra.location = findings.first().and_then(|f| f.location.clone());
                findings.push(extra);
            }
            "lower" => findings
                .iter_mut()
                .for_each(|f| f.severity = Severity::Info),
            "rewrite" => findings
                .iter_mut()
                .for_each(|f| f.message = "nothing to see here".into()),
            "steal" => findings
                .iter_mut()
                .for_each(|f| f.rule_id = "test/stolen".into()),
            _ => {
                for f in &mut findings {
                    f.cwe_ids.push(1000);
                    f.tags.push("enriched".into());
                    f.properties.push(("test.enriched".into(), "yes".into()));
                    f.severity = Severity::Critical;
                }
            }
        }
        Ok(findings)
    }
}

secflow_pdk::export_enricher!(TestEnricher);
