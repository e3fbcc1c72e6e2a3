//! The SARIF report as GitHub code scanning reads it, checked by Microsoft's validator
//! (`@microsoft/sarif-multitool validate --rule-kind "Gh;Sarif"`): no error, no warning.
//! `scripts/test.sh` installs the validator and sets `SECFLOW_SARIF_MULTITOOL`; in CI the
//! test fails without it, elsewhere it says so and passes.

mod common;

use common::{code, demo, repo, secflow, text};

fn multitool() -> Option<String> {
    match std::env::var("SECFLOW_SARIF_MULTITOOL") {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "SECFLOW_SARIF_MULTITOOL is not set; scripts/test.sh installs the validator"
            );
            eprintln!("skipped: set SECFLOW_SARIF_MULTITOOL (bash scripts/sarif-multitool.sh)");
            None
        }
    }
}

#[test]
fn the_demo_report_passes_githubs_sarif_rules() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let sarif = out_dir.path().join("demo.sarif");
    let out = secflow(home.path())
        .arg("scan")
        .arg(demo())
        .args(["--format", "sarif", "-o"])
        .arg(&sarif)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    let run = &doc["runs"][0];

    // The demo sits in this repository's work tree: URIs are relative to the repository
    // root, which %SRCROOT% names.
    let root_uri = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
        .as_str()
        .unwrap();
    let repo_root = std::fs::canonicalize(repo()).unwrap();
    assert_eq!(
        root_uri,
        format!("file://{}/", repo_root.display()),
        "{root_uri}"
    );
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for r in results {
        let loc = &r["locations"][0]["physicalLocation"]["artifactLocation"];
        assert_eq!(loc["uriBaseId"], "%SRCROOT%");
        let uri = loc["uri"].as_str().unwrap();
        assert!(uri.starts_with("examples/vulnerable-shop/"), "{uri}");
        assert!(repo_root.join(uri).is_file(), "{uri} does not name a file");
        assert!(!r["ruleId"].as_str().unwrap().contains('/'));
    }
    // No made-up information URI (only one the build was given); rule help links resolve
    // to real pages.
    let has_information_uri = run["tool"]["driver"].get("informationUri").is_some();
    assert_eq!(
        has_information_uri,
        option_env!("SECFLOW_INFORMATION_URI").is_some_and(|u| u.starts_with("https://"))
    );
    for rule in run["tool"]["driver"]["rules"].as_array().unwrap() {
        assert!(!rule["id"].as_str().unwrap().contains('/'), "{rule}");
        if let Some(uri) = rule.get("helpUri") {
            assert!(
                uri.as_str().unwrap().starts_with("https://cwe.mitre.org/"),
                "{uri}"
            );
        }
    }

    let Some(tool) = multitool() else { return };
    let log = out_dir.path().join("validation.sarif");
    let out = std::process::Command::new(&tool)
        .args([
            "validate",
            "--rule-kind",
            "Gh;Sarif",
            "--level",
            "Error;Warning",
        ])
        .arg("--output")
        .arg(&log)
        .arg(&sarif)
        .output()
        .unwrap();
    let validation: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&log).unwrap_or_else(|e| {
            panic!(
                "no validation log ({e}); the validator said: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            )
        }))
        .unwrap();
    let problems: Vec<String> = validation["runs"][0]["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    format!(
                        "{} {}: {}",
                        r["level"].as_str().unwrap_or("warning"),
                        r["ruleId"].as_str().unwrap_or("?"),
                        r["message"]["text"]
                            .as_str()
                            .or(r["message"]["id"].as_str())
                            .unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    println!("sarif-multitool: {} problem(s)", problems.len());
    for p in &problems {
        println!("  {p}");
    }
    // SARIF2005 asks for the tool's home page; a build without a real one
    // (SECFLOW_INFORMATION_URI) leaves it out rather than invent one. Everything else,
    // GitHub's rules included, must pass.
    let problems: Vec<String> = problems
        .into_iter()
        .filter(|p| has_information_uri || !p.contains("SARIF2005"))
        .collect();
    assert!(
        problems.is_empty(),
        "sarif-multitool found:\n{}",
        problems.join("\n")
    );
}
