//! The scan pipeline end to end with a real detector component (`plugins/test-detector`):
//! findings, fingerprints, suppressions, baselines, failures that must not fail the scan,
//! and the awkward targets (binary, huge, non-UTF-8, symlink loops, empty directories).

use secflow_runtime::{Grants, Runtime, RuntimeConfig};
use secflow_scan::output::{self, Format};
use secflow_scan::walk::SkipReason;
use secflow_scan::{Baseline, NoProgress, ScanOptions, ScanPlugin, ScanReport, Severity};
use std::path::Path;
use std::sync::Arc;

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig::default()).unwrap()
}

fn test_detector(rt: &Runtime) -> ScanPlugin {
    let a = secflow_plugin_artifacts::TEST_DETECTOR;
    let manifest =
        secflow_manifest::Manifest::from_file(&Path::new(a.dir).join("plugin.toml")).unwrap();
    let plugin = rt.load(manifest, &a.bytes(), Grants::none()).unwrap();
    ScanPlugin {
        plugin: Arc::new(plugin),
        config: serde_json::json!({}),
        origin: "dev".into(),
    }
}

fn scan_with(root: &Path, opts: &ScanOptions) -> ScanReport {
    let rt = runtime();
    let plugins = vec![test_detector(&rt)];
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(secflow_scan::scan(
            &rt,
            root,
            &plugins,
            opts,
            Arc::new(NoProgress),
        ))
        .unwrap()
}

fn scan(root: &Path) -> ScanReport {
    scan_with(root, &ScanOptions::default())
}

fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn places(report: &ScanReport) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = report
        .findings
        .iter()
        .map(|f| (f.path().to_string(), f.line()))
        .collect();
    v.sort();
    v
}

#[test]
fn findings_fingerprints_and_suppressions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.py", "x = 1\nTEST-FINDING:high\n");
    write(
        root,
        "sub/b.js",
        "TEST-FINDING:low\n// secflow:ignore test/marker\nTEST-FINDING\nTEST-FINDING // secflow:ignore marker\nTEST-FINDING:critical\n",
    );
    write(root, ".gitignore", "ignored/\n");
    write(root, "ignored/c.txt", "TEST-FINDING\n");
    write(root, ".secflowignore", "vendor.txt\n");
    write(root, "vendor.txt", "TEST-FINDING\n");
    write(root, ".env", "TEST-FINDING:info\n");

    let report = scan(root);
    assert!(!report.partial, "{:?}", report.errors);
    assert_eq!(
        places(&report),
        vec![
            (".env".into(), 1),
            ("a.py".into(), 2),
            ("sub/b.js".into(), 1),
            ("sub/b.js".into(), 5),
        ]
    );
    assert_eq!(report.summary.suppressed_inline, 2);
    // Left out by .gitignore and .secflowignore, and counted: ignored/c.txt, vendor.txt.
    assert_eq!(report.summary.files_ignored, 2);
    assert_eq!(report.summary.by_severity[&Severity::Critical], 1);
    // Worst first.
    assert_eq!(report.findings[0].severity, Severity::Critical);
    assert_eq!(report.rules.len(), 1);
    assert_eq!(report.rules[0].help, "Remove the marker.");
    assert!(
        report.findings[0]
            .properties
            .keys()
            .all(|k| !k.starts_with("secflow.rule-")),
        "rule metadata is moved out of findings"
    );
    let stats = &report.plugins[0];
    assert_eq!(stats.id, "test-detector");
    assert_eq!(stats.files, report.summary.files_scanned);
    assert_eq!(stats.findings, 4);
    assert_eq!(stats.errors, 0);
    assert!(stats.invocations >= 1);

    // Fingerprints survive inserted lines and re-indentation.
    let before: Vec<String> = report
        .findings
        .iter()
        .map(|f| f.fingerprint.clone())
        .collect();
    write(
        root,
        "a.py",
        "import os\n\n\nx = 1\n    TEST-FINDING:high\n",
    );
    let again = scan(root);
    let after: Vec<String> = again
        .findings
        .iter()
        .map(|f| f.fingerprint.clone())
        .collect();
    let (mut before, mut after) = (before, after);
    before.sort();
    after.sort();
    assert_eq!(before, after, "every fingerprint survived, one to one");
}

#[test]
fn files_left_out_by_ignore_files_are_counted_and_no_ignore_scans_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, ".gitignore", "build/\n*.tmp\n");
    write(root, ".ignore", "notes.txt\n");
    write(root, "build/a.js", "TEST-FINDING\n");
    write(root, "build/deep/b.js", "TEST-FINDING\n");
    write(root, "x.tmp", "TEST-FINDING\n");
    write(root, "notes.txt", "TEST-FINDING\n");
    write(root, "vendor/lib.js", "TEST-FINDING\n");
    write(root, "src/main.py", "TEST-FINDING\n");
    let opts = ScanOptions {
        exclude: vec!["vendor/**".into()],
        ..ScanOptions::default()
    };
    let report = scan_with(root, &opts);
    // 4 ignored; the --exclude'd vendor file is the user's choice and not counted.
    assert_eq!(report.summary.files_ignored, 4);
    assert_eq!(places(&report), vec![("src/main.py".into(), 1)]);
    let table = output::render(&report, Format::Table, Default::default());
    assert!(
        table.contains("4 file(s) left out by ignore files") && table.contains("--no-ignore"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&output::json(&report)).unwrap();
    assert_eq!(json["summary"]["files_ignored"], 4);

    let all = scan_with(
        root,
        &ScanOptions {
            respect_ignore_files: false,
            ..opts
        },
    );
    assert_eq!(all.summary.files_ignored, 0);
    assert_eq!(all.findings.len(), 5, "{:?}", places(&all));
    assert!(!output::render(&all, Format::Table, Default::default()).contains("ignore files"));
}

#[test]
fn context_lines_come_from_the_file_and_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let token = format!("ghp_{}", "Zx7Qk2Lm9Np4Rt6Vw8Yb1Cd3Fg5Hj0Ks2Mn4P");
    write(
        root,
        "a.py",
        format!("l1\nl2\ntoken = \"{token}\"\nl4\nTEST-FINDING:high\nl6\r\nl7\nl8\nl9\n"),
    );
    write(root, "b.py", "TEST-FINDING\nlast");
    let report = scan_with(
        root,
        &ScanOptions {
            context_lines: 3,
            ..ScanOptions::default()
        },
    );
    let context = |path: &str| {
        report
            .findings
            .iter()
            .find(|f| f.path() == path)
            .and_then(|f| f.location.as_ref()?.context.clone())
            .unwrap()
    };
    let a = context("a.py");
    assert_eq!(a.start_line, 2);
    assert_eq!(a.lines.len(), 7, "{a:?}");
    assert_eq!(a.lines[3], "TEST-FINDING:high");
    assert_eq!(
        a.lines[4], "l6",
        "a CR before the newline is not part of the line"
    );
    assert!(a.lines[1].starts_with("token = \"ghp_"), "{a:?}");
    assert!(!a.lines[1].contains(&token), "context is redacted: {a:?}");
    // At the start of a file, and at an end without a newline.
    let b = context("b.py");
    assert_eq!(
        (b.start_line, b.lines.clone()),
        (1, vec!["TEST-FINDING".to_string(), "last".to_string()])
    );
    // The JSON report leaves context out unless asked for.
    let plain = scan(root);
    assert!(
        plain
            .findings
            .iter()
            .all(|f| f.location.as_ref().unwrap().context.is_none())
    );
    let html = output::render(&report, Format::Html, Default::default());
    assert!(
        html.contains("TEST-FINDING:high</span>"),
        "the finding line is shown"
    );
    assert!(!html.contains(&token));
}

#[test]
fn the_table_wraps_to_the_width_with_a_hanging_indent_and_cuts_code() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.py", "TEST-FINDING:high\n");
    write(dir.path(), "b.py", "TEST-FINDING:high\n");
    let mut report = scan(dir.path());
    let words = "the quick brown fox jumps over the lazy dog ".repeat(4);
    report.findings[0].message = words.clone();
    let location = report.findings[0].location.as_mut().unwrap();
    location.snippet = Some(format!("x = call({})", "argument, ".repeat(20)));
    let look = output::table::Look {
        color: false,
        width: Some(60),
    };
    let table = output::render(&report, Format::Table, look);
    let findings = table.split("Summary").next().unwrap();
    for line in findings.lines() {
        assert!(line.chars().count() <= 60, "too wide: {line:?}\n{table}");
    }
    let lines: Vec<&str> = findings.lines().collect();
    let message_at = lines.iter().position(|l| l.contains("the quick")).unwrap();
    assert!(
        lines[message_at].starts_with("             the quick"),
        "{table}"
    );
    assert!(
        lines[message_at + 1].starts_with("             "),
        "hanging indent:\n{table}"
    );
    let code = lines.iter().find(|l| l.contains("x = call(")).unwrap();
    assert!(code.ends_with('…'), "code is cut, not wrapped:\n{table}");
    assert_eq!(
        lines.iter().filter(|l| l.contains("argument")).count(),
        1,
        "{table}"
    );
    // Grouped by file within the severity: each path once.
    assert_eq!(findings.matches("  a.py\n").count(), 1, "{table}");
    assert_eq!(findings.matches("  b.py\n").count(), 1, "{table}");
    // Without a width nothing wraps.
    let plain = output::render(&report, Format::Table, Default::default());
    assert!(
        plain
            .lines()
            .any(|l| l.trim_end().ends_with(words.trim_end())),
        "{plain}"
    );
}

#[test]
fn identical_findings_in_one_file_stay_distinct() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.txt",
        "TEST-FINDING\nTEST-FINDING\nTEST-FINDING\n",
    );
    let report = scan(dir.path());
    assert_eq!(report.findings.len(), 3);
    let mut fps: Vec<&str> = report
        .findings
        .iter()
        .map(|f| f.fingerprint.as_str())
        .collect();
    fps.sort();
    fps.dedup();
    assert_eq!(fps.len(), 3, "three distinct fingerprints");
}

#[test]
fn baseline_suppresses_known_findings_only() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.txt", "TEST-FINDING\n");
    let first = scan(dir.path());
    let baseline = Baseline::from_findings(&first.findings);
    let file = dir.path().join("baseline.json");
    std::fs::write(&file, baseline.to_json()).unwrap();
    write(dir.path(), "b.txt", "TEST-FINDING:high\n");
    // A second, identical finding in the known file (occurrence 1): new, even though the
    // rule, the file and the text are those of a known one.
    write(dir.path(), "a.txt", "TEST-FINDING\nTEST-FINDING\n");
    let opts = ScanOptions {
        baseline: Some(Baseline::read(&file).unwrap()),
        ..ScanOptions::default()
    };
    let report = scan_with(dir.path(), &opts);
    assert_eq!(
        places(&report),
        vec![("a.txt".into(), 2), ("b.txt".into(), 1)]
    );
    assert_eq!(report.summary.suppressed_baseline, 1);

    // A broken baseline is a clear error naming the file.
    std::fs::write(&file, "{\"version\": 1, \"findings\": 3}").unwrap();
    let err = Baseline::read(&file).unwrap_err();
    assert!(
        err.contains("baseline.json") && err.contains("--write-baseline"),
        "{err}"
    );
}

#[test]
fn a_trapping_plugin_gives_a_partial_result_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..6 {
        write(dir.path(), &format!("ok{i}.txt"), "TEST-FINDING\n");
    }
    write(dir.path(), "boom.txt", "TRAP-NOW\n");
    let report = scan(dir.path());
    assert!(report.partial);
    // Every healthy file still has its finding although it shared a batch with the trap.
    assert_eq!(report.findings.len(), 6);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let e = &report.errors[0];
    assert_eq!(e.plugin, "test-detector");
    assert_eq!(e.file.as_deref(), Some("boom.txt"));
    assert_eq!(e.kind, "trap");
    assert!(e.message.contains("asked to trap"), "{}", e.message);
    assert_eq!(report.plugins[0].errors, 1);
    let table = output::render(&report, Format::Table, Default::default());
    assert!(table.contains("Partial scan"), "{table}");
}

#[test]
fn endless_loops_and_memory_hogs_are_stopped_per_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.txt", "TEST-FINDING\n");
    write(dir.path(), "loop.txt", "LOOP-NOW\n");
    write(dir.path(), "hog.txt", "ALLOC-NOW\n");
    let report = scan(dir.path());
    assert!(report.partial);
    assert_eq!(places(&report), vec![("a.txt".into(), 1)]);
    let mut kinds: Vec<(String, String)> = report
        .errors
        .iter()
        .map(|e| (e.file.clone().unwrap_or_default(), e.kind.clone()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("hog.txt".into(), "memory-limit".into()),
            ("loop.txt".into(), "timeout".into())
        ]
    );
}

#[test]
fn a_plugin_that_keeps_failing_is_stopped_for_the_rest_of_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..12 {
        write(dir.path(), &format!("t{i:02}.txt"), "TRAP-NOW\n");
    }
    let opts = ScanOptions {
        max_plugin_failures: 3,
        jobs: 1,
        ..ScanOptions::default()
    };
    let report = scan_with(dir.path(), &opts);
    assert!(report.partial);
    assert_eq!(report.errors.len(), 3, "{:?}", report.errors);
    assert!(report.plugins[0].stopped.is_some());
}

#[test]
fn awkward_targets() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Binary: a NUL byte early on, even with a marker in it.
    write(root, "logo.png", b"\x89PNG\r\n\x1a\n\0\0\0TEST-FINDING");
    // Too large for the cap below.
    write(root, "big.txt", "TEST-FINDING\n".repeat(10_000));
    // Not UTF-8, still scanned.
    write(root, "latin1.txt", b"caf\xe9 TEST-FINDING\n\xff\xfe\n");
    // A symlink loop and a symlink leaving the target.
    std::os::unix::fs::symlink(root, root.join("loop")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.txt", "TEST-FINDING\n");
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("escape-dir")).unwrap();
    // An empty directory.
    std::fs::create_dir(root.join("empty")).unwrap();

    let opts = ScanOptions {
        max_file_size: 64 << 10,
        ..ScanOptions::default()
    };
    let report = scan_with(root, &opts);
    assert!(!report.partial, "{:?}", report.errors);
    assert_eq!(places(&report), vec![("latin1.txt".into(), 1)]);
    let skipped = &report.summary.files_skipped;
    assert_eq!(skipped.get(&SkipReason::Binary), Some(&1));
    assert_eq!(skipped.get(&SkipReason::TooLarge), Some(&1));
    assert_eq!(
        skipped.get(&SkipReason::SymlinkLoop),
        Some(&1),
        "{skipped:?}"
    );
    assert_eq!(
        skipped.get(&SkipReason::SymlinkOutsideTarget),
        Some(&2),
        "{skipped:?}"
    );
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.path == "big.txt" && s.detail.contains("--max-file-size"))
    );

    // An empty directory is a clean, complete scan.
    let empty = tempfile::tempdir().unwrap();
    let report = scan(empty.path());
    assert!(!report.partial);
    assert_eq!(report.summary.files_scanned, 0);
    assert!(report.findings.is_empty());

    // A single file can be the target.
    let report = scan(&root.join("latin1.txt"));
    assert_eq!(places(&report), vec![("latin1.txt".into(), 1)]);
}

#[test]
fn a_missing_target_is_an_error_naming_it() {
    let rt = runtime();
    let err = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(secflow_scan::scan(
            &rt,
            Path::new("/no/such/dir"),
            &[],
            &ScanOptions::default(),
            Arc::new(NoProgress),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("/no/such/dir"), "{err}");
}

#[test]
fn every_format_renders_and_sarif_validates_against_the_official_schema() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "src/a b.py", "TEST-FINDING:high\nx\n");
    write(dir.path(), "boom.txt", "TRAP-NOW\n");
    write(
        dir.path(),
        "notes.txt",
        "<script>alert(1)</script> TEST-FINDING:low\n",
    );
    // A terminal escape sequence in a scanned file must not reach the terminal.
    write(
        dir.path(),
        "esc.txt",
        "\u{1b}]0;pwned\u{7}\u{1b}[2J TEST-FINDING:info\n",
    );
    let report = scan(dir.path());

    let sarif = output::sarif::to_value(&report);
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("data/sarif-schema-2.1.0.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "SARIF schema errors: {errors:#?}");
    // GitHub code scanning's rules.
    let run = &sarif["runs"][0];
    assert_eq!(sarif["version"], "2.1.0");
    let rule = &run["tool"]["driver"]["rules"][0];
    for key in ["shortDescription", "fullDescription", "help"] {
        assert!(
            rule[key]["text"].as_str().is_some_and(|t| !t.is_empty()),
            "{key}"
        );
    }
    let sev: f64 = rule["properties"]["security-severity"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.1..=10.0).contains(&sev));
    for result in run["results"].as_array().unwrap() {
        assert!(result["partialFingerprints"]["primaryLocationLineHash"].is_string());
        let loc = &result["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(!uri.starts_with('/') && !uri.contains("://"), "{uri}");
        assert!(loc["region"]["startLine"].as_i64().unwrap() >= 1);
    }
    assert!(run["results"].as_array().unwrap().iter().any(
        |r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "src/a%20b.py"
    ));
    assert_eq!(run["invocations"][0]["executionSuccessful"], false);

    let json: serde_json::Value = serde_json::from_str(&output::json(&report)).unwrap();
    assert_eq!(json["schema_version"], "1.1");
    assert_eq!(json["partial"], true);
    assert_eq!(json["plugins"][0]["id"], "test-detector");
    assert_eq!(
        json["findings"].as_array().unwrap().len(),
        3,
        "{:#}",
        json["summary"]
    );

    let html = output::render(&report, Format::Html, Default::default());
    assert!(html.contains("default-src 'none'"));
    assert!(!html.contains("<script>"), "scanned text must be escaped");
    assert!(
        html.contains("&lt;script&gt;"),
        "and it is there, escaped: the check above is not vacuous"
    );
    assert!(!html.contains("src=\"http"), "no external fetches");
    assert!(html.contains("test-detector"));
    assert!(html.contains("<svg"));

    let table = output::render(&report, Format::Table, Default::default());
    assert!(
        table.contains("HIGH (1)") && table.contains("src/a b.py"),
        "{table}"
    );
    assert!(
        !table.contains('\u{1b}'),
        "no colors unless asked, no escapes from files"
    );
    assert!(table.contains("\\u{1b}]0;pwned"), "{table}");
    assert!(
        output::render(
            &report,
            Format::Table,
            output::table::Look {
                color: true,
                width: None
            }
        )
        .contains('\u{1b}')
    );
}
