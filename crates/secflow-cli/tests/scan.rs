//! `secflow scan` as users run it: the real binary, the bundled plugins, the demo target.

mod common;

use common::{code, demo, repo, secflow, text};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

fn scan_json(home: &Path, target: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let out = secflow(home)
        .arg("scan")
        .arg(target)
        .args(["--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    (out, json)
}

#[derive(serde::Deserialize)]
struct Expected {
    clean: Vec<String>,
    ignored: Vec<String>,
    suppressed: Vec<Planted>,
    finding: Vec<Planted>,
}

#[derive(serde::Deserialize, Clone)]
struct Planted {
    file: String,
    line: u32,
    rule: String,
    #[serde(default)]
    approximate: bool,
}

/// Precision and recall per plugin (rule namespace) against `EXPECTED.toml`, printed as a
/// table, and every planted weakness must be found with nothing reported in clean files.
#[test]
fn demo_target_findings_match_the_ground_truth() {
    let home = tempfile::tempdir().unwrap();
    let expected: Expected =
        toml::from_str(&std::fs::read_to_string(demo().join("EXPECTED.toml")).unwrap()).unwrap();
    let (out, report) = scan_json(home.path(), &demo(), &["--no-progress"]);
    assert_eq!(code(&out), 0, "stderr: {}", text(&out.stderr));
    assert_eq!(report["partial"], false, "{}", report["errors"]);

    let found: Vec<(String, u32, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["location"]["path"].as_str().unwrap_or("").to_string(),
                f["location"]["start_line"].as_u64().unwrap_or(0) as u32,
                f["rule_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let namespace = |rule: &str| rule.split('/').next().unwrap_or("").to_string();
    // Log events may be anchored on any entry of the event: match them by file and rule.
    let matches = |p: &Planted, f: &(String, u32, String)| {
        p.file == f.0 && p.rule == f.2 && (p.approximate || p.line == f.1)
    };
    let namespaces: BTreeSet<String> = found
        .iter()
        .map(|f| namespace(&f.2))
        .chain(expected.finding.iter().map(|p| namespace(&p.rule)))
        .collect();

    let mut table = String::from("namespace   expected  found  true-pos  precision  recall\n");
    let mut problems = Vec::new();
    for ns in &namespaces {
        let exp: Vec<&Planted> = expected
            .finding
            .iter()
            .filter(|p| &namespace(&p.rule) == ns)
            .collect();
        let got: Vec<&(String, u32, String)> =
            found.iter().filter(|f| &namespace(&f.2) == ns).collect();
        // One to one: each planted entry takes at most one finding and each finding
        // satisfies at most one entry; exact entries choose first, so an approximate one
        // cannot take the finding an exact one needs.
        let mut used = vec![false; got.len()];
        let mut order = exp.clone();
        order.sort_by_key(|p| p.approximate);
        let mut tp = 0;
        for p in order {
            match (0..got.len()).find(|&i| !used[i] && matches(p, got[i])) {
                Some(i) => {
                    used[i] = true;
                    tp += 1;
                }
                None => problems.push(format!("missed   {}:{} {}", p.file, p.line, p.rule)),
            }
        }
        for (f, _) in got.iter().zip(&used).filter(|(_, u)| !**u) {
            problems.push(format!("unwanted {}:{} {}", f.0, f.1, f.2));
        }
        let (tp_found, tp_expected) = (tp, tp);
        let precision = if got.is_empty() {
            1.0
        } else {
            tp_found as f64 / got.len() as f64
        };
        let recall = if exp.is_empty() {
            1.0
        } else {
            tp_expected as f64 / exp.len() as f64
        };
        table.push_str(&format!(
            "{ns:<11} {:>8} {:>6} {:>9} {:>10.3} {:>7.3}\n",
            exp.len(),
            got.len(),
            tp_found,
            precision,
            recall
        ));
    }
    println!("{table}");
    for clean in &expected.clean {
        for f in found.iter().filter(|f| &f.0 == clean) {
            problems.push(format!("clean file has a finding: {}:{} {}", f.0, f.1, f.2));
        }
    }
    for ignored in &expected.ignored {
        assert!(
            !found.iter().any(|f| &f.0 == ignored),
            "{ignored} must not be scanned"
        );
    }
    for s in &expected.suppressed {
        assert!(
            !found
                .iter()
                .any(|f| f.0 == s.file && f.1 == s.line && f.2 == s.rule),
            "suppressed {}:{} reported",
            s.file,
            s.line
        );
    }
    assert_eq!(
        report["summary"]["suppressed_inline"].as_u64().unwrap(),
        expected.suppressed.len() as u64
    );
    assert!(problems.is_empty(), "{table}\n{}", problems.join("\n"));
    assert_eq!(
        found.len(),
        expected.finding.len(),
        "one finding per planted entry"
    );

    // Secrets never reach the report in clear text.
    let raw = text(&out.stdout);
    let secrets: Vec<String> = std::fs::read_to_string(demo().join("config/.env.production"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
        })
        .filter(|v| v.len() >= 20)
        .collect();
    assert!(
        secrets.len() >= 4,
        "the check has secrets to look for: {secrets:?}"
    );
    for secret in &secrets {
        assert!(
            !raw.contains(secret.as_str()),
            "secret value leaked into the report"
        );
    }
}

#[test]
fn fail_on_gates_ci_and_every_format_is_written() {
    let home = tempfile::tempdir().unwrap();
    let out = secflow(home.path())
        .arg("scan")
        .arg(demo())
        .args(["--fail-on", "high", "--no-progress"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "stderr: {}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("CRITICAL") || table.contains("HIGH"),
        "{table}"
    );
    assert!(
        table.contains("Summary") && table.contains("Plugins"),
        "{table}"
    );
    assert!(!table.contains('\u{1b}'), "no colors when piped");

    let clean = tempfile::tempdir().unwrap();
    std::fs::write(clean.path().join("ok.py"), "print('hello')\n").unwrap();
    let out = secflow(home.path())
        .arg("scan")
        .arg(clean.path())
        .args(["--fail-on", "low"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "stderr: {}", text(&out.stderr));

    let dir = tempfile::tempdir().unwrap();
    for (format, file) in [
        ("sarif", "r.sarif"),
        ("html", "r.html"),
        ("json", "r.json"),
        ("table", "r.txt"),
    ] {
        let path = dir.path().join(file);
        let out = secflow(home.path())
            .arg("scan")
            .arg(demo())
            .args(["--format", format, "-o"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{format}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("wrote"), "{}", text(&out.stderr));
        assert!(std::fs::metadata(&path).unwrap().len() > 1000, "{format}");
    }
    let sarif: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r.sarif")).unwrap()).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("crates/secflow-scan/tests/data/sarif-schema-2.1.0.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    assert!(html.contains("summary-analytics") && html.contains("Risk score"));
}

#[test]
fn a_trapping_dev_plugin_makes_a_partial_scan_exit_4_unless_a_finding_reaches_fail_on() {
    let home = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("a.txt"), "TEST-FINDING:high\n").unwrap();
    std::fs::write(target.path().join("b.txt"), "TRAP-NOW\n").unwrap();
    let (dir, component) = (
        secflow_plugin_artifacts::TEST_DETECTOR.dir,
        secflow_plugin_artifacts::TEST_DETECTOR.component,
    );
    // A dev plugin directory: the manifest plus the built component next to it.
    let plugin = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(dir).join("plugin.toml"),
        plugin.path().join("plugin.toml"),
    )
    .unwrap();
    std::fs::copy(component, plugin.path().join("test_detector.wasm")).unwrap();
    let (out, report) = scan_json(
        home.path(),
        target.path(),
        &[
            "--dev",
            plugin.path().to_str().unwrap(),
            "--fail-on",
            "critical",
        ],
    );
    assert_eq!(code(&out), 4, "stderr: {}", text(&out.stderr));
    assert_eq!(report["partial"], true);
    // A finding at or above --fail-on is certain whatever is missing: exit 1 wins.
    let (gated, gated_report) = scan_json(
        home.path(),
        target.path(),
        &[
            "--dev",
            plugin.path().to_str().unwrap(),
            "--fail-on",
            "high",
        ],
    );
    assert_eq!(code(&gated), 1, "stderr: {}", text(&gated.stderr));
    assert_eq!(gated_report["partial"], true);
    assert_eq!(report["errors"][0]["plugin"], "test-detector");
    assert_eq!(report["errors"][0]["file"], "b.txt");
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule_id"] == "test/marker")
    );
}

#[test]
fn usage_errors_name_what_is_wrong() {
    let home = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--config", "nope.key=1"], "nope"),
        (&["--config", "secrets-detector"], "PLUGIN.KEY=VALUE"),
        (&["--plugin", "nope"], "available"),
        (&["--config", "secrets-detector.bogus=1"], "bogus"),
        (&["--max-file-size", "ten"], "size"),
    ];
    for (args, needle) in cases {
        let out = secflow(home.path())
            .arg("scan")
            .arg(demo())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = secflow(home.path())
        .args(["scan", "/no/such/target"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("/no/such/target"));
}

#[test]
fn baseline_round_trip_and_user_rules() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("baseline.json");
    let out = secflow(home.path())
        .arg("scan")
        .arg(demo())
        .arg("--write-baseline")
        .arg(&baseline)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let known = first["findings"].as_array().unwrap().len();
    assert!(known > 10, "the demo has findings to suppress");
    let (out, report) = scan_json(
        home.path(),
        &demo(),
        &[
            "--baseline",
            baseline.to_str().unwrap(),
            "--fail-on",
            "info",
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);
    assert_eq!(
        report["summary"]["suppressed_baseline"].as_u64().unwrap(),
        known as u64,
        "every known finding, and only those, suppressed"
    );

    // A user rule directory adds rules to the code-pattern detector.
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("team.yaml"),
        "rules:\n  - id: generic.todo-security\n    message: A security TODO was left in the code.\n    severity: low\n    languages: [generic]\n    patterns: ['TODO\\(security\\)']\n",
    )
    .unwrap();
    let target = dir.path().join("src");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("a.txt"), "ok\n# TODO(security): check input\n").unwrap();
    let (out, report) = scan_json(home.path(), &target, &["--rules", rules.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let f = &report["findings"][0];
    assert_eq!(f["rule_id"], "code/generic.todo-security", "{report}");
    assert_eq!(f["location"]["start_line"], 2);

    // A broken rule file is a usage error naming the file and the rule.
    std::fs::write(
        rules.join("team.yaml"),
        "rules:\n  - id: generic.bad\n    message: x\n    severity: loud\n    languages: [generic]\n    patterns: ['x']\n",
    )
    .unwrap();
    let out = secflow(home.path())
        .arg("scan")
        .arg(&target)
        .arg("--rules")
        .arg(&rules)
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "a bad rule file is a usage error");
    let err = text(&out.stderr) + &text(&out.stdout);
    assert!(
        err.contains("team.yaml") && err.contains("generic.bad"),
        "{err}"
    );
}

#[test]
fn granted_feed_directories_enable_the_kev_epss_enricher() {
    let home = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    std::fs::write(
        target.path().join("deps.txt"),
        "log4j-core 2.14.1 TEST-FINDING:low TEST-CVE:CVE-2021-44228\n",
    )
    .unwrap();
    let plugin = tempfile::tempdir().unwrap();
    let a = secflow_plugin_artifacts::TEST_DETECTOR;
    std::fs::copy(
        Path::new(a.dir).join("plugin.toml"),
        plugin.path().join("plugin.toml"),
    )
    .unwrap();
    std::fs::copy(a.component, plugin.path().join("test_detector.wasm")).unwrap();
    let feeds = repo().join("plugins/kev-epss-enricher/tests/fixtures");
    let dev = plugin.path().to_str().unwrap();

    // Without the mount the enricher does not run.
    let (out, report) = scan_json(home.path(), target.path(), &["--dev", dev]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        !report["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "kev-epss-enricher")
    );

    let mount = format!("kev-epss-enricher:/feeds={}", feeds.display());
    let (out, report) = scan_json(
        home.path(),
        target.path(),
        &["--dev", dev, "--mount", &mount, "--fail-on", "high"],
    );
    // KEV raised the low finding to high: the gate trips.
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    let f = &report["findings"][0];
    assert_eq!(f["properties"]["kev.known-exploited"], "true", "{f:#}");
    assert_eq!(f["severity"], "high");

    for (bad, reason) in [
        ("kev-epss-enricher/feeds", "is not PLUGIN:GUEST=HOST"),
        (
            "nope:/feeds=/tmp",
            "names plugin `nope`, which is not available",
        ),
        (
            "kev-epss-enricher:/feeds=/no/such/dir",
            "/no/such/dir is not a directory",
        ),
    ] {
        let out = secflow(home.path())
            .arg("scan")
            .arg(target.path())
            .args(["--mount", bad])
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{bad}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(reason),
            "{bad}: {}",
            text(&out.stderr)
        );
    }
}
