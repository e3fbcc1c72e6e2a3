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

#[test]
fn the_security_specifications_variables_are_recognized() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let with = |name: &str, value: &str, args: &[&str]| {
        secflow(h).env(name, value).args(args).output().unwrap()
    };
    // The two switches that would turn SecFlow off are refused with the reason.
    for (name, why) in [
        (
            "SECFLOW_SIGNATURE_VERIFICATION",
            "cannot turn verification off",
        ),
        ("SECFLOW_SANDBOX_ENABLED", "cannot turn the sandbox off"),
    ] {
        for value in ["false", "0", "off"] {
            let out = with(name, value, &["plugin", "list"]);
            assert_eq!(code(&out), 2, "{name}={value}");
            assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
        }
        // Leaving them on is fine.
        let out = with(name, "true", &["plugin", "list"]);
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    }

    // Unsigned plugins only in developer mode.
    let out = with(
        "SECFLOW_ALLOW_UNSIGNED_PLUGINS",
        "true",
        &["plugin", "install", "missing.sfpkg"],
    );
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("applies only in developer mode"),
        "{}",
        text(&out.stderr)
    );
    // With --dev the install goes on (and fails on the missing file, not on the variable).
    let out = with(
        "SECFLOW_ALLOW_UNSIGNED_PLUGINS",
        "true",
        &["plugin", "install", "missing.sfpkg", "--dev"],
    );
    assert!(
        text(&out.stderr).contains("cannot read missing.sfpkg"),
        "{}",
        text(&out.stderr)
    );

    // The audit log level takes a level.
    let out = with("SECFLOW_AUDIT_LOG_LEVEL", "loud", &["plugin", "list"]);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("is not a level"));
    let out = with("SECFLOW_AUDIT_LOG_LEVEL", "WARNING", &["plugin", "list"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));

    // The policy location: a directory is used, a file is refused with what to do.
    let policies = tempfile::tempdir().unwrap();
    let out = with(
        "SECFLOW_SECURITY_POLICY_FILE",
        policies.path().to_str().unwrap(),
        &["policy", "init"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    // `policy init` wrote the defaults where the variable points.
    assert!(std::fs::read_dir(policies.path()).unwrap().count() > 0);
    let file = policies.path().join("one.cedar");
    std::fs::write(&file, "permit(principal, action, resource);").unwrap();
    let out = with(
        "SECFLOW_SECURITY_POLICY_FILE",
        file.to_str().unwrap(),
        &["policy", "check"],
    );
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("is a file"),
        "{}",
        text(&out.stderr)
    );
}
