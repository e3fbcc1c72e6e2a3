//! Plugins cannot touch each other's results: a detector cannot erase another plugin's
//! finding by colliding with its fingerprint, and an enricher can only add to the findings
//! it is given. Real components: `plugins/test-detector` (twice, under two ids) and the
//! hostile `plugins/test-enricher`.

use secflow_runtime::{Grants, Runtime, RuntimeConfig};
use secflow_scan::{NoProgress, ScanOptions, ScanPlugin, ScanReport, Severity};
use std::path::Path;
use std::sync::Arc;

fn load(
    rt: &Runtime,
    dir: &str,
    wasm: &[u8],
    id: &str,
    config: serde_json::Value,
    origin: &str,
) -> ScanPlugin {
    let text = std::fs::read_to_string(Path::new(dir).join("plugin.toml")).unwrap();
    let original_id = text
        .lines()
        .find_map(|l| l.strip_prefix("id = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let text = text.replace(
        &format!("id = \"{original_id}\""),
        &format!("id = \"{id}\""),
    );
    let manifest =
        secflow_manifest::Manifest::parse(text.as_bytes(), secflow_manifest::Format::Toml, "test")
            .unwrap();
    ScanPlugin {
        plugin: Arc::new(rt.load(manifest, wasm, Grants::none()).unwrap()),
        config,
        origin: origin.into(),
    }
}

fn detector(rt: &Runtime, id: &str) -> ScanPlugin {
    let a = secflow_plugin_artifacts::TEST_DETECTOR;
    load(rt, a.dir, &a.bytes(), id, serde_json::json!({}), "dev")
}

fn enricher(rt: &Runtime, mode: &str, origin: &str) -> ScanPlugin {
    let a = secflow_plugin_artifacts::TEST_ENRICHER;
    load(
        rt,
        a.dir,
        &a.bytes(),
        "test-enricher",
        serde_json::json!({ "mode": mode }),
        origin,
    )
}

fn scan(rt: &Runtime, root: &Path, plugins: &[ScanPlugin]) -> ScanReport {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(secflow_scan::scan(
            rt,
            root,
            plugins,
            &ScanOptions::default(),
            Arc::new(NoProgress),
        ))
        .unwrap()
}

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig::default()).unwrap()
}

#[test]
fn a_hostile_detector_cannot_erase_another_plugins_finding() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("victim.txt"), "TEST-FINDING:high\n").unwrap();
    let rt = runtime();
    let victim = detector(&rt, "victim-detector");
    let first = scan(&rt, root, std::slice::from_ref(&victim));
    assert_eq!(first.findings.len(), 1);
    let target = first.findings[0].fingerprint.clone();

    // The attacker reports, in a file that sorts first, a finding carrying the victim's
    // fingerprint (what the old dedup dropped the victim's finding for).
    std::fs::write(
        root.join("a-attacker.txt"),
        format!("TEST-FINDING:info TEST-FINGERPRINT:{target}\n"),
    )
    .unwrap();
    let attacker = detector(&rt, "attacker-detector");
    let second = scan(&rt, root, &[attacker, victim]);
    let victims: Vec<_> = second
        .findings
        .iter()
        .filter(|f| f.plugin == "victim-detector" && f.path() == "victim.txt")
        .collect();
    assert_eq!(victims.len(), 1, "{:#?}", second.findings);
    assert_eq!(
        victims[0].fingerprint, target,
        "the victim keeps its identity"
    );
    assert_eq!(victims[0].severity, Severity::High);
    // Every finding of both plugins is there: 2 plugins x (1 marker in each of 2 files).
    assert_eq!(second.findings.len(), 4, "{:#?}", second.findings);
    let unique: std::collections::HashSet<_> =
        second.findings.iter().map(|f| &f.fingerprint).collect();
    assert_eq!(unique.len(), 4, "fingerprints are unique across plugins");
}

#[test]
fn hostile_enrichers_cannot_drop_move_add_or_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("a.py"), "TEST-FINDING:high\nTEST-FINDING:low\n").unwrap();
    std::fs::write(root.join("b.py"), "TEST-FINDING:critical\n").unwrap();
    let rt = runtime();
    let det = detector(&rt, "test-detector");
    let baseline = scan(&rt, root, std::slice::from_ref(&det));
    assert_eq!(baseline.findings.len(), 3);
    assert!(baseline.errors.is_empty());

    for (mode, problem) in [
        ("drop-high", "returned 1 finding(s) for the 3"),
        ("drop-all", "returned 0 finding(s)"),
        ("move", "changed the location"),
        ("add", "returned 4 finding(s)"),
        ("lower", "lowered"),
        ("rewrite", "changed the message"),
        ("steal", "changed the rule id"),
        ("props", "changed or removed the property `test.marker`"),
    ] {
        let report = scan(&rt, root, &[det.clone(), enricher(&rt, mode, "installed")]);
        assert_eq!(
            report.findings, baseline.findings,
            "{mode}: the findings pass through unchanged"
        );
        assert_eq!(
            report.count_at_least(Severity::High),
            2,
            "{mode}: --fail-on high still fires"
        );
        let errors: Vec<_> = report
            .errors
            .iter()
            .filter(|e| e.plugin == "test-enricher")
            .collect();
        assert_eq!(errors.len(), 1, "{mode}: {errors:?}");
        assert_eq!(errors[0].kind, "invalid-output");
        assert!(errors[0].violation, "{mode}: counted as a violation");
        assert!(
            errors[0].message.contains(problem),
            "{mode}: {}",
            errors[0].message
        );
    }

    // Honest enrichment is kept: a CWE id, a tag, a property and a higher severity.
    let report = scan(
        &rt,
        root,
        &[det.clone(), enricher(&rt, "enrich", "installed")],
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.findings.len(), 3);
    for f in &report.findings {
        assert!(f.cwe_ids.contains(&1000) && f.tags.contains(&"enriched".to_string()));
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.plugin, "test-detector", "the detector keeps the credit");
    }
    // Lowering a severity is for SecFlow's own (bundled) enrichers only.
    let report = scan(&rt, root, &[det, enricher(&rt, "lower", "bundled")]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.findings.iter().all(|f| f.severity == Severity::Info));
}

#[test]
fn secrets_are_redacted_in_every_format_whoever_wrote_them() {
    let dir = tempfile::tempdir().unwrap();
    // A provider token on a marker line: the host fills the snippet from the line, and the
    // enricher copies it into a tag and a property.
    let token = format!("ghp_{}", "Zx7Qk2Lm9Np4Rt6Vw8Yb1Cd3Fg5Hj0Ks2Mn4P");
    std::fs::write(
        dir.path().join("a.py"),
        format!("token = \"{token}\"  # TEST-FINDING:high\n"),
    )
    .unwrap();
    let rt = runtime();
    let plugins = [
        detector(&rt, "test-detector"),
        enricher(&rt, "leak", "installed"),
    ];
    let report = scan(&rt, dir.path(), &plugins);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let f = &report.findings[0];
    assert!(
        f.properties.contains_key("test.leak"),
        "the enrichment is kept"
    );
    use secflow_scan::output::{Format, render};
    for format in [Format::Json, Format::Sarif, Format::Html, Format::Table] {
        let text = render(&report, format, Default::default());
        assert!(!text.contains(&token), "{format:?} leaks the token");
        assert!(
            text.contains("ghp_"),
            "{format:?}: the masked token is still recognisable"
        );
    }
    // With --no-redact the report says what the plugins said.
    let opts = ScanOptions {
        redact: false,
        ..ScanOptions::default()
    };
    let raw = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(secflow_scan::scan(
            &rt,
            dir.path(),
            &plugins,
            &opts,
            Arc::new(NoProgress),
        ))
        .unwrap();
    assert!(render(&raw, Format::Json, Default::default()).contains(&token));
}
