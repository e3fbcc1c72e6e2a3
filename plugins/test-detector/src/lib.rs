//! Test detector for the scan pipeline: one finding per `TEST-FINDING[:severity]` marker
//! (with the CVE ids of any `TEST-CVE:CVE-...` markers on the line, and the fingerprint of
//! a `TEST-FINGERPRINT:value` marker: how a hostile detector would try to collide with
//! another plugin's finding),
//! and, to prove a failing plugin cannot fail a scan, a trap on `TRAP-NOW`, an endless loop
//! on `LOOP-NOW` and unbounded allocation on `ALLOC-NOW`.

use secflow_pdk::prelude::*;

struct TestDetector;

impl Plugin for TestDetector {}

impl Detector for TestDetector {
    fn detect(file: FileInput) -> Result<Vec<Finding>, PluginError> {
        let text = String::from_utf8_lossy(&file.content);
        if text.contains("TRAP-NOW") {
            panic!("asked to trap by {}", file.path);
        }
        if text.contains("LOOP-NOW") {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        if text.contains("ALLOC-NOW") {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        let mut findings = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let Some(at) = line.find("TEST-FINDING") else {
                continue;
            };
            let severity = match line[at..]
                .split(':')
                .nth(1)
                .map(|s| s.trim_end_matches(|c: char| !c.is_ascii_alphabetic()))
            {
                Some(s) if s.starts_with("critical") => Severity::Critical,
                Some(s) if s.starts_with("high") => Severity::High,
                Some(s) if s.starts_with("low") => Severity::Low,
                Some(s) if s.starts_with("info") => Severity::Info,
                _ => Severity::Medium,
            };
            findings.push(Finding {
                rule_id: "test/marker".into(),
                title: "Test marker".into(),
                message: format!("marker found in {}", file.path),
                severity,
                confidence: Confidence::High,
                cwe_ids: vec![79],
                // `TEST-CVE:CVE-...` markers on the line become CVE ids (for enricher tests).
                cve_ids: line
                    .split("TEST-CVE:")
                    .skip(1)
                    .filter_map(|rest| rest.split_whitespace().next())
                    .map(str::to_string)
                    .collect(),
                cvss_vector: None,
                location: Some(Location {
                    path: file.path.clone(),
                    start_line: i as u32 + 1,
                    start_column: at as u32 + 1,
                    end_line: i as u32 + 1,
                    end_column: (at + "TEST-FINDING".len()) as u32 + 1,
                    snippet: None,
                }),
                fingerprint: line
                    .split("TEST-FINGERPRINT:")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_string),
                tags: vec!["test".into()],
                properties: vec![
                    ("test.marker".into(), "planted".into()),
                    (
                        "secflow.rule-description".into(),
                        "A marker planted by a test.".into(),
                    ),
                    ("secflow.rule-help".into(), "Remove the marker.".into()),
                ],
            });
        }
        Ok(findings)
    }
}

secflow_pdk::export_detector!(TestDetector);
