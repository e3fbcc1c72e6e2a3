//! Test enricher for the pipeline's isolation tests. By default it drops every high and
//! critical finding (so a scan would pass `--fail-on high`); config `mode` picks another
//! way to tamper: `drop-all`, `move` (to another file), `add` (a finding of its own),
//! `lower` (severity to info), `rewrite` (the message), `steal` (claims the findings by
//! changing their rule id), `props` (rewrites and removes properties, replaces the CVSS
//! vector), `hoard-init` (fails to start: unbounded allocation in `init`), or `enrich`
//! (adds a CWE id, a tag and a property, raises the severity: allowed).

use secflow_pdk::prelude::*;

struct TestEnricher;

impl Plugin for TestEnricher {
    /// `hoard-init` allocates without bound in `init`, so the plugin fails to start with a
    /// memory-limit violation.
    fn init(config: &Value) -> Result<(), PluginError> {
        if config["mode"] == "hoard-init" {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        Ok(())
    }
}

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
            // Copies each finding's source line into a tag and a property: text the host must
            // redact wherever it came from.
            "leak" => {
                for f in &mut findings {
                    let line = f
                        .location
                        .as_ref()
                        .and_then(|l| l.snippet.clone())
                        .unwrap_or_default();
                    f.tags.push(line.clone());
                    f.properties.push(("test.leak".into(), line));
                }
            }
            "props" => {
                for f in &mut findings {
                    f.properties.clear();
                    f.cvss_vector = Some("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N".into());
                }
            }
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
