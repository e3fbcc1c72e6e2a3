//! Conventions a user of Semgrep, Trivy or gitleaks expects from the command line.

mod common;

use common::{code, secflow, text};

#[test]
fn bad_values_are_refused_before_anything_runs() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // No zero jobs: a scan with no workers would hang or do nothing.
    let out = secflow(h)
        .args(["scan", ".", "--jobs", "0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--jobs"),
        "{}",
        text(&out.stderr)
    );

    // `--since` takes a time, not any string compared as text.
    for bad in [
        "yesterday",
        "2026-13-01",
        "2026-11-22T25:00:00Z",
        "1700000000",
    ] {
        let out = secflow(h)
            .args(["audit", "log", "--since", bad])
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "--since {bad}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("is not a time"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn since_compares_times_not_text() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // One event now.
    let out = secflow(h)
        .args(["run", "secrets-detector", "--health"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let count = |since: &str| {
        let out = secflow(h)
            .args(["audit", "log", "--json", "--since", since])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{since}: {}", text(&out.stderr));
        text(&out.stdout).lines().count()
    };
    assert!(count("2000-01-01") > 0);
    assert_eq!(count("2999-01-01T00:00:00Z"), 0);
    // The same instant written with an offset far east: still in the past, so everything.
    assert!(count("2000-01-01T09:00:00+09:00") > 0);
    assert_eq!(count("2999-01-01T09:00:00+09:00"), 0);
}

#[test]
fn version_names_the_build_and_its_bundled_plugins() {
    let home = tempfile::tempdir().unwrap();
    let out = secflow(home.path())
        .args(["version", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let plugins = v["bundled_plugins"].as_array().unwrap();
    assert!(plugins.iter().any(|p| p["id"] == "secrets-detector"));
    assert!(
        plugins
            .iter()
            .all(|p| p["sha256"].as_str().is_some_and(|s| s.len() == 64))
    );
}
